"""``pylock sync`` of a real, runnable interpreter: cold from a mirror, then warm from the cache.

The archive is the running CPython itself, packaged in python-build-standalone layout and
made relocatable by :mod:`realpython`; after the sync it must run from its new home with
its compiled modules (``ssl``, ``sqlite3``) working.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pylock.cli import main
from tests.realpython import (
    RealArchive,
    clean_env,
    mirrored_project,
    serve_directory,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="archives are built on Linux"),
]

PROBE = "import sys, ssl, sqlite3; print(sys.prefix); print(sys.version.split()[0])"


def run_probe(python: Path) -> list[str]:
    done = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, env=clean_env(), check=True
    )
    return done.stdout.split()


def test_synced_interpreter_runs_from_its_new_location(
    tmp_path: Path, real_archive: RealArchive
) -> None:
    archive = real_archive
    project, mirror = mirrored_project(tmp_path, archive)
    env = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    with serve_directory(mirror) as url:
        cold = tmp_path / "cold"
        code = main(
            ["--project", str(project), "sync", "--into", str(cold), "--mirror", url], environ=env
        )
        assert code == 0
    assert run_probe(cold / "app" / "bin" / "python3") == [str(cold / "app"), archive.version]
    # The server is gone: a second directory is filled from the cache alone.
    warm = tmp_path / "warm"
    code = main(["--project", str(project), "sync", "--into", str(warm), "--offline"], environ=env)
    assert code == 0
    assert run_probe(warm / "app" / "bin" / "python3") == [str(warm / "app"), archive.version]
    assert main(["--project", str(project), "verify", "--into", str(warm)], environ=env) == 0
