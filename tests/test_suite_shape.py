"""The test suite's own shape: fixtures are shared from conftest, never redefined per file."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _fixtures(path: Path) -> set[str]:
    """Names of the functions in ``path`` decorated with ``pytest.fixture``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Attribute) and target.attr == "fixture":
                names.add(node.name)
    return names


def test_no_module_redefines_a_conftest_fixture() -> None:
    shared = _fixtures(TESTS / "conftest.py")
    assert len(shared) > 10  # the scan finds them
    clashes = {
        path.name: sorted(shared & _fixtures(path))
        for path in sorted(TESTS.glob("test_*.py"))
        if shared & _fixtures(path)
    }
    assert clashes == {}
