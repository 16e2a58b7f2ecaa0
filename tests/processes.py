"""The machine's live processes, as the leftover checks of the e2e tests read them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LiveProcess:
    pid: int
    cmdline: str
    cwd: str
    group: int

    def describe(self) -> str:
        return f"{self.pid} {self.cmdline.strip()} (cwd {self.cwd})"


def live_processes() -> Iterator[LiveProcess]:
    """Every process but this one, skipping those gone meanwhile (or zombies)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
            group = os.getpgid(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
        yield LiveProcess(int(proc.name), cmdline, cwd, group)
