"""The core stays pure and the start-up path stays light (STYLE.md, DESIGN.md §9)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "zstandard", "cattrs", "asyncio")

PURE_CORE = (
    "pylock.errors",
    "pylock.versions",
    "pylock.platforms",
    "pylock.config",
    "pylock.lockfile",
    "pylock.resolve",
    "pylock.cli",
    "pylock.sync.execute",
    "pylock.sync.install",
)


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_core_imports_nothing_heavy() -> None:
    modules = imported_after("\n".join(f"import {m}" for m in PURE_CORE))
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_fetch_module_imports_aiohttp_lazily() -> None:
    modules = imported_after(
        "import pylock.net.fetch, pylock.sync.cache, pylock.archive.extract, pylock.sync.records"
    )
    assert "aiohttp" not in modules
    assert "zstandard" not in modules
