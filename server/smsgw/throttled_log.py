"""Log lines that repeat during an outage, one per interval with a count.

A store that is away for twenty seconds would otherwise write the same
warning once per call: thousands of lines that hide the one that matters.
The first occurrence of each key is logged at once; later ones within the
interval are counted and reported with the next line that gets through.
"""

from __future__ import annotations

import logging
import time
from typing import Any


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_seconds: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *, extra: dict[str, Any] | None = None,
                exc_info: BaseException | None = None) -> None:
        self.log(logging.WARNING, key, message, extra=extra, exc_info=exc_info)

    def error(self, key: str, message: str, *, extra: dict[str, Any] | None = None,
              exc_info: BaseException | None = None) -> None:
        self.log(logging.ERROR, key, message, extra=extra, exc_info=exc_info)

    def log(self, level: int, key: str, message: str, *, extra: dict[str, Any] | None = None,
            exc_info: BaseException | None = None) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        fields = dict(extra or {})
        if suppressed := self._suppressed.pop(key, 0):
            fields["repeated"] = suppressed
        self._logger.log(level, message, extra=fields, exc_info=exc_info)
