"""The layers a newcomer reads in the tree hold in the imports too.

contract (protos) -> API -> services -> domain, with ports between services
and adapters: the domain does no I/O, services and the API import ports and
domain records (never an adapter), adapters never import services or the API,
and only the composition root (app) and the command line wire adapters in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "smsgw"
IO_LIBRARIES = ("asyncpg", "redis", "grpc", "httpx", "smpp34", "socket", "subprocess")


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def offending(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in modules(layer):
        hits = sorted(i for i in imports(path)
                      if any(i == f or i.startswith(f + ".") for f in forbidden))
        if hits:
            bad[str(path.relative_to(PACKAGE))] = hits
    return bad


def test_the_domain_is_pure() -> None:
    assert offending("domain", ("smsgw.adapters", "smsgw.services", "smsgw.api", "smsgw.app",
                                *IO_LIBRARIES)) == {}


@pytest.mark.parametrize("layer", ["services", "api", "ports"])
def test_services_the_api_and_ports_never_import_an_adapter(layer: str) -> None:
    assert offending(layer, ("smsgw.adapters", "smsgw.app", "asyncpg", "redis")) == {}


def test_adapters_never_import_services_or_the_api() -> None:
    assert offending("adapters", ("smsgw.services", "smsgw.api", "smsgw.app")) == {}


def test_the_production_package_ships_no_simulator_or_bench() -> None:
    assert not (PACKAGE / "simulators").exists()
    assert not list(PACKAGE.glob("bench*.py"))
    # The carrier simulator is the default provider: loaded by kind, only when configured.
    pool_imports = imports(PACKAGE / "pool.py", top_level_only=True)
    assert not any(i.startswith("smsgw_simulators") for i in pool_imports)
