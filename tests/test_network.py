"""Opt-in checks against the real upstream hosts (``pytest -m network``; never run in CI).

They catch what the look-alike servers cannot: upstream changing its formats.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pylock.cli import main
from pylock.lockfile import loads

pytestmark = pytest.mark.network

CONFIG = """\
[python.app]
version = "3.13"
platforms = ["linux-x86_64-gnu", "macos-aarch64", "windows-x86_64"]

[python.pypy]
implementation = "pypy"
version = "3.11"
platforms = ["linux-x86_64-gnu"]
"""


def test_refresh_resolves_from_live_upstream(tmp_path: Path) -> None:
    (tmp_path / "pythons.toml").write_text(CONFIG)
    env = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    assert main(["--project", str(tmp_path), "lock", "--refresh"], environ=env) == 0
    lock = loads((tmp_path / "pythons.lock").read_text())
    app = lock.get("app")
    assert app is not None and app.version.startswith("3.13.")
    assert {a.platform for a in app.artifacts} == {
        "linux-x86_64-gnu",
        "macos-aarch64",
        "windows-x86_64",
    }
    assert lock.get("pypy") is not None


def test_sync_downloads_and_runs_a_real_build(tmp_path: Path) -> None:
    (tmp_path / "pythons.toml").write_text('[python.app]\nversion = "3.13"\nplatforms = ["host"]\n')
    env = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    assert main(["--project", str(tmp_path), "lock"], environ=env) == 0
    into = tmp_path / "pythons"
    assert main(["--project", str(tmp_path), "sync", "--into", str(into)], environ=env) == 0
    assert main(["--project", str(tmp_path), "verify", "--into", str(into)], environ=env) == 0
