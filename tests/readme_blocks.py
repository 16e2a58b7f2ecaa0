"""The README's fenced code blocks, and the markers that tell its test what to do with them.

A block's marker is an HTML comment on the line right before its opening fence
(invisible on GitHub, plain in the source):

    <!-- readme-test: skip (why) -->   not run
    <!-- readme-test: NAME -->         run or checked; tests/e2e/test_readme.py holds
                                       what each of its commands must do

Blocks in a shell or Python language (RUNNABLE) are run unless skipped, so each
needs a marker; blocks in any other language are only checked when named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RUNNABLE = frozenset({"sh", "bash", "shell", "console", "python"})
SKIP = "skip"

_MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<name>[\w-]+)\b(?P<note>.*?)-->\s*$")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<language>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, counted from 1
    language: str
    text: str
    marker: str | None  # NAME of the marker right before the fence, if any
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.language or 'no language'})"

    def commands(self) -> list[str]:
        """What a reader would type, one entry per command; a Python block is one entry.

        Shell: backslash continuations joined, blank and comment lines dropped;
        in a console block only the ``$ `` lines count.
        """
        if self.language == "python":
            return [self.text]
        lines = self.text.splitlines()
        if self.language == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands: list[str] = []
        pending = ""
        for line in lines:
            pending += line
            if pending.endswith("\\"):
                pending += "\n"
                continue
            if pending.strip() and not pending.lstrip().startswith("#"):
                commands.append(pending.strip())
            pending = ""
        return commands


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, in order, with the marker before it."""
    found: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        close = re.compile(rf"^ {{0,3}}{opening['fence'][0]}{{{len(opening['fence'])},}}\s*$")
        end = next((n for n in range(index + 1, len(lines)) if close.match(lines[n])), len(lines))
        indent = len(opening["indent"])
        body = "\n".join(_dedent(line, indent) for line in lines[index + 1:end])
        marker = _MARKER.match(lines[index - 1].strip()) if index else None
        found.append(Block(index + 1, opening["language"].lower(), body + "\n",
                           marker["name"] if marker else None,
                           marker["note"].strip(" -—()") if marker else ""))
        index = end + 1
    return found


def _dedent(line: str, indent: int) -> str:
    """Removes the fence's own indentation, and no more (CommonMark's rule)."""
    strip = len(line) - len(line.lstrip(" "))
    return line[min(indent, strip):]
