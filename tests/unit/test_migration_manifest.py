"""Migrations are immutable once landed: migrations/manifest.sha256 guards them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smsgw.adapters.postgres import migrator
from smsgw.settings import REPO_ROOT

MIGRATIONS = REPO_ROOT / "migrations"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The repository's migrations and manifest, to change freely."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


def _newest(directory: Path) -> Path:
    return sorted(directory.glob("*.sql"))[-1]


def test_the_migrations_match_their_manifest() -> None:
    assert migrator.manifest_problems(MIGRATIONS) == []
    listed = list(migrator.read_manifest(MIGRATIONS))
    assert listed == [m.filename for m in migrator.discover(MIGRATIONS)]
    assert listed[:3] == ["0001_initial.sql", "0002_webhooks.sql", "0003_providers.sql"]


def test_the_manifest_checksums_are_the_ledgers(copy: Path) -> None:
    # The same digest schema_migrations records, so the two can be compared.
    for migration in migrator.discover(copy):
        assert migrator.read_manifest(copy)[migration.filename] == migration.checksum


def test_a_landed_migration_that_changes_is_caught(copy: Path) -> None:
    first = copy / "0001_initial.sql"
    first.write_text(first.read_text() + "\n-- a harmless-looking comment\n")
    assert migrator.manifest_problems(copy) == [
        "0001_initial.sql changed after it landed: add a new migration instead"]
    with pytest.raises(ValueError, match="changed after it landed"):
        migrator.write_manifest(copy)


def test_a_landed_migration_that_disappears_is_caught(copy: Path) -> None:
    newest = _newest(copy)
    newest.unlink()
    assert migrator.manifest_problems(copy) == [
        f"{newest.name} is in manifest.sha256 but gone: a landed migration is never removed"]


def test_a_new_migration_must_be_added_to_the_manifest(copy: Path) -> None:
    number = len(migrator.discover(copy)) + 1
    (copy / f"{number:04d}_next.sql").write_text("CREATE TABLE next (x int);\n")
    assert migrator.manifest_problems(copy) == [
        f"{number:04d}_next.sql is not in manifest.sha256: run `make migrations-manifest`"]
    assert migrator.write_manifest(copy) == [f"{number:04d}_next.sql"]
    assert migrator.manifest_problems(copy) == []
    assert migrator.write_manifest(copy) == []


def test_a_new_migration_takes_the_next_number(copy: Path) -> None:
    number = len(migrator.discover(copy)) + 2
    (copy / f"{number:04d}_skips_one.sql").write_text("SELECT 1;\n")
    assert any("no gaps" in p for p in migrator.manifest_problems(copy))
    with pytest.raises(ValueError, match="no gaps"):
        migrator.write_manifest(copy)


def test_a_new_migration_cannot_reuse_a_landed_number(copy: Path) -> None:
    (copy / "0002_also_second.sql").write_text("SELECT 1;\n")
    assert migrator.manifest_problems(copy) == ["two migrations share a version number"]


def test_the_manifest_command_adds_and_checks(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(MIGRATIONS, root / "migrations")
    shutil.copytree(REPO_ROOT / "scripts", root / "scripts")
    script = [sys.executable, str(root / "scripts" / "migrations_manifest.py")]
    assert subprocess.run([*script, "--check"], check=False).returncode == 0
    number = len(migrator.discover(root / "migrations")) + 1
    (root / "migrations" / f"{number:04d}_next.sql").write_text("SELECT 1;\n")
    checked = subprocess.run([*script, "--check"], check=False, capture_output=True, text=True)
    assert checked.returncode == 1
    assert "run `make migrations-manifest`" in checked.stderr
    added = subprocess.run(script, capture_output=True, text=True, check=True)
    assert added.stdout == f"added {number:04d}_next.sql\n"
    assert subprocess.run([*script, "--check"], check=False).returncode == 0
