"""Named SQL queries, kept in .sql files beside this module and loaded once.

A file holds several queries, each introduced by a ``-- name: <name>`` line.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_QUERY_DIR = Path(__file__).parent / "queries"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


@functools.cache
def load(aggregate: str) -> dict[str, str]:
    return parse((_QUERY_DIR / f"{aggregate}.sql").read_text())
