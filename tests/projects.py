"""Projects on disk for the CLI tests: a lock for this host, and pylock run as a user runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from pylock.lockfile import Artifact, dumps, make_lock
from pylock.platforms import host
from pylock.versions import Flavor
from tests.indexdata import locked_python

#: The ``pythons.toml`` example of DESIGN.md: every kind of entry, ``[defaults]`` merged in.
DESIGN_EXAMPLE = """
[defaults]
platforms = ["linux-x86_64-gnu", "linux-aarch64-gnu", "macos-aarch64"]
flavor = "install_only_stripped"

[python.app]
version = "3.13"

[python.nogil]
version = "3.14"
variant = "freethreaded"

[python.legacy]
version = ">=3.10.12,<3.11"
platforms = ["linux-x86_64-gnu"]

[python.pinned]
version = "3.12.11"
build = "20251007"

[python.pypy]
implementation = "pypy"
version = "3.11"

[python.inhouse]
url = "https://artifacts.example/cpython-3.12.9-corp-x86_64-linux.tar.gz"
sha256 = "%s"
platforms = ["linux-x86_64-gnu"]
""" % ("ab" * 32)


def write_host_lock(project: Path, data: bytes, url: str, *, direct: bool = False) -> None:
    """``project/pythons.lock`` locking ``app`` = CPython 3.12.7+20990101 (``install_only``)
    for this host, its one archive ``data`` at ``url``; ``direct``: a direct-URL entry
    (no build, no flavor).
    """
    artifact = Artifact(
        platform=host().key, url=url, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )
    python = locked_python(
        "app",
        "3.12.7",
        None if direct else "20990101",
        [artifact],
        flavor=None if direct else Flavor.INSTALL_ONLY,
    )
    lock = make_lock([python], config_digest="sha256:" + "0" * 64)
    (project / "pythons.lock").write_text(dumps(lock), encoding="utf-8")


def host_project(parent: Path, data: bytes, url: str) -> Path:
    """A new ``parent/project`` holding :func:`write_host_lock`'s lock."""
    project = parent / "project"
    project.mkdir()
    write_host_lock(project, data, url)
    return project


def run_pylock(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pylock --project PROJECT ARGS`` with the cache in the project, no colour."""
    return subprocess.run(
        pylock_command(project, *args),
        capture_output=True,
        text=True,
        env=pylock_env(project),
        timeout=timeout,
        check=False,
    )


def pylock_command(project: Path, *args: str) -> list[str]:
    """``python -m pylock --project PROJECT ARGS``."""
    return [sys.executable, "-m", "pylock", "--project", str(project), *args]


def pylock_env(project: Path) -> dict[str, str]:
    """The environment of :func:`run_pylock`: the cache in the project, no colour."""
    return {**os.environ, "PYLOCK_CACHE_DIR": str(project / "cache"), "NO_COLOR": "1"}


def imported_after(statement: str) -> set[str]:
    """The modules a fresh interpreter of this venv holds after running ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())
