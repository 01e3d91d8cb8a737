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


def test_no_module_borrows_another_modules_fixture() -> None:
    # ``from tests.test_x import some_fixture`` makes it a fixture of the importing module
    # too, where it silently shadows conftest's fixture of the same name: shared fixtures
    # belong in conftest.
    borrowed = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                source = TESTS / f"{node.module.rpartition('.')[2]}.py"  # type: ignore[union-attr]
                names = {alias.name for alias in node.names} & _fixtures(source)
                if names:
                    borrowed[path.name] = sorted(names)
    assert borrowed == {}
