"""Adds new migrations to migrations/manifest.sha256 (``make migrations-manifest``).

Only new files are added: a migration already listed that changed or went
missing is refused, since a landed migration is never edited (write a new
one), and so is a gap in the numbering. ``--check`` changes nothing and
fails on any difference, as the test does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smsgw.adapters.postgres import migrator

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report differences")
    args = parser.parse_args(argv)
    if args.check:
        problems = migrator.manifest_problems(MIGRATIONS)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    try:
        added = migrator.write_manifest(MIGRATIONS)
    except ValueError as exc:
        print(f"manifest not updated: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"added {name}" for name in added) or "manifest up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
