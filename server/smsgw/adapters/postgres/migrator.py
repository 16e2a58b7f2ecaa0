"""Applies the numbered SQL files in migrations/, each once, in order.

A migration never changes once it has landed: ``manifest.sha256`` beside
them records each one's checksum (in ``sha256sum`` format), a test compares
the files with it, and ``make migrations-manifest`` adds the new ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
MANIFEST = "manifest.sha256"
# Any constant will do: it only has to be the same for every migrating process.
_LOCK_ID = 0x5353_4D47

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def discover(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


def read_manifest(directory: Path) -> dict[str, str]:
    """File name to checksum, in the manifest's order; empty if there is none yet."""
    path = directory / MANIFEST
    if not path.exists():
        return {}
    lines = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: checksum for checksum, name in lines}


def manifest_problems(directory: Path) -> list[str]:
    """How the migrations differ from their manifest; empty when they agree."""
    try:
        found = {m.filename: m for m in discover(directory)}
    except ValueError as exc:
        return [str(exc)]
    unlisted = [f"{name} is not in {MANIFEST}: run `make migrations-manifest`"
                for name in found if name not in read_manifest(directory)]
    return _landed_problems(directory, found) + unlisted


def _landed_problems(directory: Path, found: dict[str, Migration]) -> list[str]:
    listed = read_manifest(directory)
    problems = [f"{name} is in {MANIFEST} but gone: a landed migration is never removed"
                for name in listed if name not in found]
    problems += [f"{name} changed after it landed: add a new migration instead"
                 for name, checksum in listed.items()
                 if name in found and found[name].checksum != checksum]
    if list(listed) != sorted(listed):
        problems.append(f"{MANIFEST} is not in version order")
    versions = sorted(m.version for m in found.values())
    if versions != list(range(1, len(versions) + 1)):
        problems.append(f"migrations are numbered 1, 2, 3… with no gaps, found {versions}: "
                        "a new one takes the next number")
    return problems


def write_manifest(directory: Path) -> list[str]:
    """Adds the migrations the manifest lacks and returns their names.

    Refuses (``ValueError``) while a listed migration is changed or gone, or
    the numbering has a gap: those are fixed in the files, not the manifest.
    """
    migrations = discover(directory)
    problems = _landed_problems(directory, {m.filename: m for m in migrations})
    if problems:
        raise ValueError("; ".join(problems))
    listed = read_manifest(directory)
    (directory / MANIFEST).write_text(
        "".join(f"{m.checksum}  {m.filename}\n" for m in migrations))
    return [m.filename for m in migrations if m.filename not in listed]


async def migrate(conn: asyncpg.Connection, directory: Path) -> list[Migration]:
    """Applies what is missing; the advisory lock lets many servers start at once."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_LEDGER)
        done = {r["version"]: r["checksum"] for r in
                await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        applied = []
        for migration in discover(directory):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum)
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
