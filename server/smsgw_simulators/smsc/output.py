"""What the simulator writes: the journal of completed messages, the stats file, warnings."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Final, TextIO

FLUSH_EVERY_S: Final = 0.1


class Journal:
    """One JSON line per completed message, buffered and flushed every 100 ms."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: TextIO | None = None
        self._buffer: list[str] = []
        self.enabled = False  # until open(): no line is kept before the file is there

    def open(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", encoding="utf-8")
            self.enabled = True

    def append(self, line: str) -> None:
        self._buffer.append(line)

    def flush(self) -> None:
        if self._file is not None and self._buffer:
            self._file.write("".join(self._buffer))
            self._buffer.clear()
            self._file.flush()

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
            except OSError as exc:
                warn(f"journal write failed: {exc!r}")

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def warn(message: str) -> None:
    print(f"smsc: {message}", file=sys.stderr, flush=True)
