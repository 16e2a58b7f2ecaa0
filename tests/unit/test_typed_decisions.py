"""Adapters, simulators and the bench decide on typed values, never on text.

Two ways a decision can hang on spelling rather than on a type: comparing an
enum by its ``.name`` (``status.name != "DELIVERED"``: a typo compares false
forever, and no type checker sees it), and reading a status out of an
exception's text (``re.search(..., str(exc))``). smpp34's ``SmppError`` has no
status field, so reading its text is confined to one function, whose
mapping tests/unit/test_smpp_status.py and tests/integration/test_smpp_adapter.py
prove; this test keeps it the only one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
AREAS = ("smsgw/adapters/providers", "smsgw_simulators", "smsgw_bench", "smsgw/cli")
# The one reader of exception text: Refusal.of_error.
TEXT_READERS = {"smsgw/adapters/providers/smpp/status.py"}
_PATTERN_CALLS = {"search", "match", "fullmatch", "findall", "finditer"}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for area in AREAS:
        for path in sorted((SERVER / area).rglob("*.py")):
            yield str(path.relative_to(SERVER)), ast.parse(path.read_text(), str(path))


def _is_name_attribute(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "name"


def _is_text(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Set | ast.Tuple | ast.List):
        return any(_is_text(e) for e in node.elts)
    return False


def _is_str_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "str" and len(node.args) == 1
            and isinstance(node.args[0], ast.Name))


def names_compared_as_text(tree: ast.Module) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
            and any(map(_is_name_attribute, [node.left, *node.comparators]))
            and any(map(_is_text, [node.left, *node.comparators]))]


def text_read_for_meaning(tree: ast.Module) -> list[int]:
    """``pattern.search(str(exc))``, ``re.match(p, str(exc))``, ``"X" in str(exc)``."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in _PATTERN_CALLS and any(map(_is_str_call, node.args))):
            found.append(node.lineno)
        if (isinstance(node, ast.Compare)
                and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
                and any(map(_is_str_call, node.comparators))):
            found.append(node.lineno)
    return found


MODULES = list(modules())


def test_the_areas_are_there() -> None:
    assert len(MODULES) > 20
    assert {path for path, _tree in MODULES} >= TEXT_READERS


@pytest.mark.parametrize(("path", "tree"), MODULES, ids=[path for path, _ in MODULES])
def test_no_enum_is_compared_by_its_name(path: str, tree: ast.Module) -> None:
    assert names_compared_as_text(tree) == [], f"{path}: compare the enum member itself"


@pytest.mark.parametrize(("path", "tree"), MODULES, ids=[path for path, _ in MODULES])
def test_no_meaning_is_read_out_of_text_but_in_one_place(path: str, tree: ast.Module) -> None:
    if path in TEXT_READERS:
        return
    assert text_read_for_meaning(tree) == [], f"{path}: branch on a typed field"


def test_the_checks_catch_what_they_are_for() -> None:
    bad = ast.parse('if parsed.status.name != "DELIVERED": pass\n'
                    'found = _STATUS.search(str(exc))\n'
                    'ok = "THROTTLED" in str(exc)\n'
                    'fine = status is MessageStatus.DELIVERED and provider.kind == "smpp"\n')
    assert names_compared_as_text(bad) == [1]
    assert text_read_for_meaning(bad) == [2, 3]
