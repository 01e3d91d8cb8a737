"""The layers hold (ARCHITECTURE, issue 12): imports only go down, no cycles, a pure core.

Every module under ``pylock/`` is parsed with :mod:`ast` and every import it contains is
collected: top-level ones, those inside functions (pylock imports heavy things lazily) and
those under ``if TYPE_CHECKING:``. Type-only imports count for the directions too: a lower
layer that names an upper layer's type depends on it just the same, and would form a cycle
the moment the annotation became real. They are left out of the cycle check only, because a
type-only import never runs and so cannot make an import-time cycle; the directions already
forbid the upward edges that such a cycle would need.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.projects import imported_after

ROOT = Path(__file__).resolve().parent.parent / "pylock"

#: Layers, bottom up. A module's layer is the first entry whose name is the module or a
#: package containing it (so ``pylock.index.live`` is a listing, ``pylock.index.model`` core).
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "pylock",  # the package itself: __version__
        "pylock.errors",
        "pylock.fsutil",
        "pylock.ownfiles",
        "pylock.progress",
        "pylock.bounded",
        "pylock.settings",
        "pylock.interrupts",
    ),
    "fastpath": ("pylock.fastpath",),
    "core": (
        "pylock.versions",
        "pylock.platforms",
        "pylock.urls",
        "pylock.config",
        "pylock.lockfile",
        "pylock.resolve",
        "pylock.diff",
        "pylock.outdated",
        "pylock.index.model",
        "pylock.index.names",
        "pylock.index.snapshot",
        "pylock.index.uvjson",
    ),
    "net": ("pylock.net",),
    "archive": ("pylock.archive",),
    "listings": (
        "pylock.index.pbs",
        "pylock.index.pypy",
        "pylock.index.graalpy",
        "pylock.index.metadata",
        "pylock.index.live",
        "pylock.index",  # the package's __init__
    ),
    "sync": ("pylock.sync",),
    "usecases": (
        "pylock.project",
        "pylock.lockio",
        "pylock.init",
        "pylock.direct",
        "pylock.mirror",
        "pylock.review",
    ),
    "cli": ("pylock.cli", "pylock.completion"),
    "entry": ("pylock.entry", "pylock.__main__"),
}

#: Which layers (or single modules) each layer may import; its own layer is always allowed.
ALLOWED: dict[str, frozenset[str]] = {
    "foundation": frozenset(),
    # stdlib only, bar the two stdlib-only helpers it shares with the full CLI
    "fastpath": frozenset({"pylock.fsutil", "pylock.ownfiles", "pylock.settings", "pylock"}),
    "core": frozenset({"foundation"}),
    "net": frozenset({"foundation", "core"}),
    "archive": frozenset({"foundation", "pylock.versions"}),
    "listings": frozenset({"foundation", "core", "net", "archive"}),
    "sync": frozenset({"foundation", "fastpath", "core", "net", "archive", "listings"}),
    "usecases": frozenset({"foundation", "fastpath", "core", "net", "archive", "listings", "sync"}),
    "cli": frozenset(
        {"foundation", "fastpath", "core", "net", "archive", "listings", "sync", "usecases"}
    ),
    # the console script starts a cold sync's downloads before it imports the CLI
    "entry": frozenset({"foundation", "fastpath", "sync", "cli"}),
}

#: Deliberate single edges against the layer order, each with its reason.
DELIBERATE: frozenset[tuple[str, str]] = frozenset(
    {
        # every line the Reporter prints is redacted; urls is pure and imports only errors
        ("pylock.progress", "pylock.urls"),
        # and so is every URL that Settings' repr shows (a proxy's, a mirror's password)
        ("pylock.settings", "pylock.urls"),
    }
)

#: Upward imports waiting for a move (none left: keep it that way).
KNOWN_PENDING: frozenset[tuple[str, str]] = frozenset()

#: The pure core: no event loop, no network, no decompressors, nothing above it.
PURE_CORE = (*LAYERS["core"], "pylock.bounded", "pylock.errors")
PURE_FORBIDDEN_TOP = frozenset({"aiohttp", "zstandard", "asyncio"})
PURE_FORBIDDEN_PACKAGES = ("pylock.net", "pylock.archive", "pylock.sync")

#: What the start-up path (``import pylock.cli``) must not pay for.
HEAVY = ("aiohttp", "zstandard", "cattrs", "asyncio")
START_UP = ("pylock.cli", "pylock.sync.execute", "pylock.sync.install")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, tree: ast.AST) -> Iterator[tuple[str, bool]]:
    """(imported module, type-only?) for every import anywhere in ``tree``."""

    def walk(node: ast.AST, typing_only: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, typing_only
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if MODULES[module].name != "__init__.py":
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                # ``from pylock.index import live`` imports the submodule
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in MODULES else base), typing_only
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from walk(child, True)
            for child in node.orelse:
                yield from walk(child, typing_only)
            return
        for nested in ast.iter_child_nodes(node):
            yield from walk(nested, typing_only)

    yield from walk(tree, False)


def build_graph() -> dict[str, dict[str, bool]]:
    """module -> {imported module: type-only everywhere?}, for every import in the tree."""
    graph: dict[str, dict[str, bool]] = {}
    for module, path in MODULES.items():
        edges: dict[str, bool] = {}
        for target, typing_only in imports(module, ast.parse(path.read_text("utf-8"))):
            edges[target] = edges.get(target, True) and typing_only
        graph[module] = edges
    return graph


GRAPH = build_graph()


#: Entries that name a package's ``__init__`` alone, not what the package holds: a new
#: module there must be placed in a layer on purpose, not fall into one.
PACKAGE_ONLY = frozenset({"pylock", "pylock.index"})


def layer_of(module: str) -> str:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            inside = module == prefix or (
                prefix not in PACKAGE_ONLY and module.startswith(prefix + ".")
            )
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def may_import(source: str, target: str) -> bool:
    if (source, target) in DELIBERATE:
        return True
    source_layer, target_layer = layer_of(source), layer_of(target)
    allowed = ALLOWED[source_layer]
    return target_layer == source_layer or target_layer in allowed or target in allowed


def internal(target: str) -> bool:
    return target == "pylock" or target.startswith("pylock.")


def upward_imports(graph: dict[str, dict[str, bool]]) -> set[tuple[str, str]]:
    return {
        (source, target)
        for source, edges in graph.items()
        for target in edges
        if internal(target) and not may_import(source, target)
    }


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), runtime edges only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, typing_only in graph.get(node, {}).items():
            if typing_only or target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def impure_imports(graph: dict[str, dict[str, bool]]) -> set[tuple[str, str]]:
    """(module, import) for every forbidden import of the pure core or of any pylock module
    it reaches: the core may use the foundation, so a foundation module's import (a lazy
    one too, which the run-time check never sees) is the core's as well."""
    reached: set[str] = set()
    todo = [module for module in PURE_CORE if module in graph]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += [target for target in graph[module] if target in graph]
    return {
        (module, target)
        for module in reached
        for target in graph[module]
        if target.split(".")[0] in PURE_FORBIDDEN_TOP or target.startswith(PURE_FORBIDDEN_PACKAGES)
    }


# -- the checker itself ----------------------------------------------------------------


def test_a_new_module_must_be_given_a_layer() -> None:
    """Architecture audit: ``pylock`` (for ``__version__``) was a prefix of every module,
    so a new top-level module fell into the foundation, allowed to be imported by all."""
    for new in ("pylock.newmod", "pylock.index.newsource"):
        with pytest.raises(AssertionError, match="is in no layer"):
            layer_of(new)
    assert layer_of("pylock") == "foundation" and layer_of("pylock.index") == "listings"


def test_the_parser_sees_nested_relative_and_type_only_imports() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import pylock.errors\n"
        "if TYPE_CHECKING:\n"
        "    from pylock.sync.cache import Cache\n"
        "def f():\n"
        "    from pylock.net import fetch\n"
        "    from . import stream\n"
        "    from .fetch import Fetcher\n"
    )
    found = dict(imports("pylock.net.stream", ast.parse(source)))
    assert found["pylock.errors"] is False
    assert found["pylock.sync.cache"] is True
    assert found["pylock.net.fetch"] is False
    assert found["pylock.net.stream"] is False
    assert "pylock.net" not in found


def test_the_directions_catch_an_upward_import() -> None:
    graph = {
        "pylock.net.fetch": {"pylock.sync.cache": False, "pylock.errors": False},
        "pylock.sync.cache": {"pylock.errors": False},
        "pylock.versions": {"pylock.archive.extract": True},
        "pylock.archive.extract": {"pylock.versions": False, "pylock.platforms": False},
    }
    assert upward_imports(graph) == {
        ("pylock.net.fetch", "pylock.sync.cache"),
        ("pylock.versions", "pylock.archive.extract"),  # type-only counts
        ("pylock.archive.extract", "pylock.platforms"),  # archive may use only versions
    }


def test_the_pure_core_check_follows_the_foundation_it_uses() -> None:
    """Architecture audit: only the core's own imports were checked, so a foundation helper
    that imported asyncio inside a function made the core use it unnoticed."""
    graph = {
        "pylock.versions": {"pylock.errors": False},
        "pylock.lockfile": {"pylock.fsutil": False, "pylock.versions": False},
        "pylock.fsutil": {"pylock.errors": False, "asyncio": False},
        "pylock.errors": {"attrs": False},
        "pylock.sync.cache": {"aiohttp": False},  # not reached from the core
    }
    assert impure_imports(graph) == {("pylock.fsutil", "asyncio")}


def test_the_cycle_finder_finds_cycles_and_ignores_type_only_edges() -> None:
    graph = {
        "a": {"b": False},
        "b": {"c": False},
        "c": {"a": False, "d": False},
        "d": {"e": True},
        "e": {"d": False},
        "f": {"f": False},
    }
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["f"]]


# -- the tree --------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_imports_only_go_down_the_layers() -> None:
    found = upward_imports(GRAPH)
    unexpected = sorted(found - KNOWN_PENDING)
    assert not unexpected, "upward imports:\n" + "\n".join(f"  {s} -> {t}" for s, t in unexpected)


def test_known_pending_exceptions_are_still_needed() -> None:
    # An exception whose import is gone must go too, so the list only ever shrinks.
    stale = sorted(KNOWN_PENDING - upward_imports(GRAPH))
    if stale:
        pytest.fail("remove from KNOWN_PENDING: " + ", ".join(f"{s} -> {t}" for s, t in stale))


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_net_imports_nothing_above_it() -> None:
    for module in MODULES:
        if layer_of(module) != "net":
            continue
        above = [
            t
            for t in GRAPH[module]
            if internal(t) and layer_of(t) not in ("foundation", "core", "net")
        ]
        assert not above, f"{module} imports {above}"


def test_pure_core_imports_nothing_impure_statically() -> None:
    found = sorted(impure_imports(GRAPH))
    assert not found, "impure imports:\n" + "\n".join(f"  {s} -> {t}" for s, t in found)


def test_pure_core_imports_nothing_impure_at_run_time() -> None:
    present = [m for m in PURE_CORE if m in MODULES]
    modules = imported_after("\n".join(f"import {m}" for m in present))
    assert present and set(present) <= modules
    heavy = {m for m in modules if m.split(".")[0] in PURE_FORBIDDEN_TOP}
    upper = {m for m in modules if m.startswith(PURE_FORBIDDEN_PACKAGES)}
    assert not heavy
    assert not upper


def test_fast_path_uses_only_the_standard_library() -> None:
    for target in GRAPH["pylock.fastpath"]:
        top = target.split(".")[0]
        assert top in sys.stdlib_module_names or may_import("pylock.fastpath", target), target


# -- the start-up path -----------------------------------------------------------------


def test_start_up_path_imports_nothing_heavy() -> None:
    modules = imported_after("\n".join(f"import {m}" for m in START_UP))
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_fetch_module_imports_aiohttp_lazily() -> None:
    modules = imported_after(
        "import pylock.net.fetch, pylock.sync.archives, pylock.sync.cache, pylock.archive.extract,"
        " pylock.sync.records"
    )
    assert "aiohttp" not in modules
    assert "zstandard" not in modules
