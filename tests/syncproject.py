"""A project synced in-process from a loopback server, and fake PBS builds to serve it.

Shared by the sync tests (``test_sync`` and the hardening and speed tests built on it);
the fixtures that make them (``sync_project``, ``app_a``, ``app_b``, ``tool``) are in
``conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

import attrs
import pytest

from pylock.cli import main
from pylock.lockfile import Artifact, LockedPython, dumps, make_lock
from pylock.platforms import host
from pylock.urls import PBS_DOWNLOAD_PREFIX
from pylock.versions import ArchiveFormat, Flavor, Implementation
from tests.archives import Entry, compress, exe, file, symlink, tar_bytes
from tests.httpserver import Fault, HttpServer

HOST = host()
TRIPLE = HOST.pbs_triple
DIGEST = "sha256:" + "0" * 64
TAG_A, TAG_B = "20990101", "20990202"
#: The most any wait in these tests may take before it counts as a hang.
PATIENCE = 30.0


# -- archives ------------------------------------------------------------------------------


def noise(size: int, seed: str) -> bytes:
    """Incompressible bytes, so that an archive's size (and download time) is predictable."""
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


@attrs.frozen(kw_only=True)
class Build:
    """One PBS-shaped install_only archive of a fake interpreter, as the mirror serves it."""

    #: The interpreter's name in the lock.
    name: str
    #: Upstream build tag.
    tag: str
    #: ``3.12`` and the like.
    minor: str
    #: The archive format.
    fmt: ArchiveFormat
    #: The archive's members (``python/...``).
    entries: tuple[Entry, ...]
    #: The archive's bytes.
    data: bytes

    @property
    def version(self) -> str:
        return f"{self.minor}.7"

    @property
    def filename(self) -> str:
        return f"cpython-{self.version}+{self.tag}-{TRIPLE}-install_only_stripped.{self.fmt}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def path(self) -> str:
        """The path the loopback mirror serves it at (upstream layout: ``<tag>/<file>``)."""
        return f"/{self.tag}/{self.filename}"

    @property
    def url(self) -> str:
        """The canonical upstream URL the lock records."""
        return f"{PBS_DOWNLOAD_PREFIX}{self.tag}/{quote(self.filename)}"

    @property
    def label(self) -> str:
        return f"cpython {self.version}+{self.tag}"

    def python(self, *, default: bool = False) -> LockedPython:
        return LockedPython(
            name=self.name,
            implementation=Implementation.CPYTHON,
            version=self.version,
            build=self.tag,
            flavor=Flavor.INSTALL_ONLY_STRIPPED,
            default=default,
            artifacts=(
                Artifact(platform=HOST.key, url=self.url, sha256=self.sha256, size=len(self.data)),
            ),
        )

    def tree(self) -> dict[str, tuple[str, str]]:
        """What ``DIR/NAME`` must hold: relative path -> (kind, digest or link target)."""
        tree = {}
        for entry in self.entries:
            rel = entry.name.removeprefix("python/")
            if entry.kind == "symlink":
                tree[rel] = ("link", entry.target)
            elif entry.kind == "file":
                mode = "x" if entry.mode & 0o111 else "-"
                tree[rel] = (f"file{mode}", hashlib.sha256(entry.data).hexdigest())
        return tree

    @property
    def markers(self) -> dict[str, bytes]:
        """The first and the last file of the archive, both naming the build."""
        return {
            f"bin/python{self.minor}": self.entries[0].data,
            "share/zz-build-tag": self.entries[-1].data,
        }


def make_build(
    name: str = "app",
    tag: str = TAG_A,
    *,
    minor: str = "3.12",
    fmt: ArchiveFormat = ArchiveFormat.TAR_GZ,
    big: int = 400_000,
) -> Build:
    """A build whose first and last members name it, with ``big`` incompressible bytes between."""
    p = "python/"
    entries = (
        exe(f"{p}bin/python{minor}", f"#!fake python {minor} build {tag}\n".encode()),
        symlink(f"{p}bin/python3", f"python{minor}"),
        symlink(f"{p}bin/python", f"python{minor}"),
        file(f"{p}include/python{minor}/Python.h", b"/* header */\n" * 20),
        file(f"{p}lib/python{minor}/os.py", f"# os for {tag}\n".encode() * 50),
        file(f"{p}lib/python{minor}/site-packages/README.txt", b"site\n"),
        file(f"{p}lib/python{minor}/big.bin", noise(big, f"{name}-{tag}")),
        file(f"{p}share/zz-build-tag", f"{name} {tag}\n".encode()),
    )
    data = compress(tar_bytes(entries), fmt)
    return Build(name=name, tag=tag, minor=minor, fmt=fmt, entries=entries, data=data)


def speaking_build(name: str, tag: str, minor: str = "3.12") -> Build:
    """A small build whose ``python`` is a shell script that prints who it is."""
    p = "python/"
    speech = f"#!/bin/sh\necho 'fake cpython {minor}.7+{tag} ({name})'\n"
    entries = (
        exe(f"{p}bin/python{minor}", speech.encode()),
        symlink(f"{p}bin/python3", f"python{minor}"),
        symlink(f"{p}bin/python", f"python{minor}"),
        file(f"{p}lib/python{minor}/os.py", b"# os\n"),
    )
    data = compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)
    return Build(
        name=name, tag=tag, minor=minor, fmt=ArchiveFormat.TAR_GZ, entries=entries, data=data
    )


def tree_of(root: Path) -> dict[str, tuple[str, str]]:
    """The files and links under an install, without pylock's record (same shape as above)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".pylock" or rel.startswith(".pylock/") or "__pycache__" in rel:
            continue
        if path.is_symlink():
            tree[rel] = ("link", os.readlink(path))
        elif path.is_file():
            mode = "x" if path.stat().st_mode & 0o111 else "-"
            tree[rel] = (f"file{mode}", hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


def installed_sha(tree: Path) -> str:
    document = json.loads((tree / ".pylock" / "install.json").read_text())
    return str(document["artifact"]["sha256"])


# -- a project, run in-process -------------------------------------------------------------


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


class Project:
    """A project directory with a lock, an install dir and a cache, synced from ``server``."""

    def __init__(self, root: Path, server: HttpServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.server = server
        self.capsys = capsys
        self.into = root / "pythons"
        self.cache = root / "cache"
        self.environ = {"PYLOCK_CACHE_DIR": str(self.cache)}

    @property
    def mirror(self) -> str:
        return self.server.base_url + "/"

    def lock(self, *builds: Build, platform: str | None = None) -> None:
        """Lock ``builds`` for this machine, or with their archives under another
        ``platform`` key (for `sync --platform`, or a lock with nothing for here)."""
        pythons = [b.python() for b in builds]
        if platform is not None:
            pythons = [
                attrs.evolve(
                    p, artifacts=tuple(attrs.evolve(a, platform=platform) for a in p.artifacts)
                )
                for p in pythons
            ]
        lock = make_lock(pythons, config_digest=DIGEST)
        (self.root / "pythons.lock").write_text(dumps(lock), encoding="utf-8")

    def serve(
        self, *builds: Build, faults: Iterable[Fault] = (), always: Iterable[Fault] = ()
    ) -> None:
        for build in builds:
            self.server.serve(build.path, build.data, faults=faults, always=always)

    def run(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = main(["--project", str(self.root), *argv], environ=self.environ)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def install(self, *builds: Build) -> None:
        """Lock ``builds``, serve them, and sync them: the starting point of many tests."""
        self.lock(*builds)
        self.serve(*builds)
        result = self.sync()
        assert result.code == 0, result.err

    def sync(self, *extra: str) -> Result:
        return self.run("sync", "--into", str(self.into), "--mirror", self.mirror, *extra)

    def verify(self) -> Result:
        return self.run("verify", "--into", str(self.into))

    def archive(self, build: Build) -> Path:
        return self.cache / "archives" / "sha256" / build.sha256 / build.filename

    def partials(self) -> list[Path]:
        tmp = self.cache / "tmp"
        return sorted(tmp.glob("*.part")) if tmp.is_dir() else []

    def assert_failed_cleanly(self, result: Result, *names: str) -> None:
        """The sync failed with an error message, not a traceback, and left no trace.

        None of ``names`` is installed, and there are no temporary trees in the install
        directory and no partial downloads in the cache.
        """
        assert result.code == 1, result.err
        assert "pylock: error:" in result.err
        assert "Traceback" not in result.err
        for name in names:
            assert not (self.into / name).exists()
        assert self.leftovers() == []
        assert self.partials() == []

    def leftovers(self) -> list[str]:
        """pylock's temporary trees in the install dir (none after a completed sync)."""
        if not self.into.is_dir():
            return []
        return sorted(
            p.name
            for p in self.into.iterdir()
            if p.name.startswith((".pylock-tmp-", ".pylock-old-", ".pylock-trash-"))
        )

    def command(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "pylock", "--project", str(self.root), *argv]

    def sync_command(self, *extra: str) -> list[str]:
        return self.command("sync", "--into", str(self.into), "--mirror", self.mirror, *extra)

    def subprocess_env(self) -> dict[str, str]:
        env = {**os.environ, **self.environ}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            argv,
            cwd=self.root,
            env=self.subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def check(self, argv: Sequence[str], *extra_env: tuple[str, str]) -> Result:
        env = self.subprocess_env()
        env.update(dict(extra_env))
        done = subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=PATIENCE
        )
        return Result(done.returncode, done.stdout, done.stderr)


def signal_when_ready(
    process: subprocess.Popen[str],
    ready: Callable[[subprocess.Popen[str]], None],
    signum: int,
    *,
    timeout: float = 30,
) -> tuple[float, int, str]:
    """Send ``signum`` to ``process`` once ``ready(process)`` returns; give the seconds it
    then took to exit, its exit code and its stderr. Killed if it outlives ``timeout``."""
    try:
        ready(process)
        sent = time.monotonic()
        process.send_signal(signum)
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return time.monotonic() - sent, process.returncode, err
