"""Issue 11 §8: ``verify`` catches planted bytecode and unsafe permissions.

Bytecode caches Python writes are not in the record; ``verify`` has the tree's own
interpreter compile each recorded source that has a cache, and reports caches that differ.
The fast tests use a fake tree whose ``bin/python3`` runs the interpreter running the
tests; the slow one syncs a real relocatable CPython (see ``realpython.py``), uses it as
a user would, and plants a ``.pyc`` that changes what ``import json`` does.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import py_compile
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pylock.cli import main
from pylock.errors import MOST_PROBLEMS_SHOWN
from pylock.platforms import host
from pylock.sync.bytecode import CachedBytecode, mismatched_bytecode, parse_cache_path
from pylock.sync.install import verify
from pylock.versions import ArchiveFormat
from tests.archives import Entry, exe, file, symlink, write_archive
from tests.projects import host_project
from tests.syncproject import Project, make_build

if TYPE_CHECKING:
    from tests.realpython import RealArchive

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX trees, modes and shell launcher")

HOST = host()
TAG = sys.implementation.cache_tag
LIB = "lib/python3.12"
MODULE = f"{LIB}/greet.py"
SOURCE = b"def hello():\n    return 'hello'\n"
EVIL = b"def hello():\n    return 'planted'\n"


def launcher() -> bytes:
    """A ``bin/python3`` that runs the interpreter running the tests."""
    return f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode()


def sync_tree(
    tmp_path: Path, *, runnable: bool = True, extra: Sequence[Entry] = ()
) -> tuple[Path, Path]:
    """Sync a fake interpreter with one module (and ``extra``); return (project, tree)."""
    entries = [
        file(f"python/{MODULE}", SOURCE),
        file(f"python/{LIB}/pkg/__init__.py", b"VALUE = 1.5\nNAN = float('nan')\n"),
        *extra,
    ]
    broken = b"#!/bin/sh\necho 'cannot run here' >&2\nexit 126\n"
    entries.insert(0, exe("python/bin/python3", launcher() if runnable else broken))
    archive = write_archive(tmp_path / "python.tar.gz", entries, ArchiveFormat.TAR_GZ)
    project = host_project(tmp_path, archive.read_bytes(), archive.as_uri())
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    assert (
        main(["--project", str(project), "-q", "sync", "--into", str(tmp_path / "py")], environ)
        == 0
    )
    return project, tmp_path / "py" / "app"


def compile_cache(tree: Path, rel: str, *, optimize: int = -1, source: bytes | None = None) -> Path:
    """Write the cache the running interpreter would write for ``rel``; with ``source``, a
    cache of other code whose header still matches the recorded file's mtime and size."""
    path = tree / rel
    target = Path(
        importlib.util.cache_from_source(str(path), optimization=optimize if optimize > 0 else "")
    )
    if source is None:
        py_compile.compile(str(path), cfile=str(target), doraise=True, optimize=optimize)
        return target
    from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]

    info = os.stat(path)
    code = compile(source, str(path), "exec", dont_inherit=True)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(_code_to_timestamp_pyc(code, info.st_mtime, info.st_size))
    return target


def run_verify(project: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--project", str(project), "verify", "--into", str(tree.parent)], environ={})
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rel(path: Path, tree: Path) -> str:
    return path.relative_to(tree).as_posix()


def test_parse_cache_path() -> None:
    assert parse_cache_path("__pycache__/m.cpython-312.pyc") == CachedBytecode(
        path="__pycache__/m.cpython-312.pyc", source="m.py", tag="cpython-312", optimize=0
    )
    assert parse_cache_path("a/__pycache__/m.x.cpython-312.opt-2.pyc") == CachedBytecode(
        path="a/__pycache__/m.x.cpython-312.opt-2.pyc",
        source="a/m.x.py",
        tag="cpython-312",
        optimize=2,
    )
    for other in ("a/__pycache__/m.pyc", "a/m.cpython-312.pyc", "a/__pycache__/x.txt"):
        assert parse_cache_path(other) is None


def test_caches_python_writes_verify_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tree = sync_tree(tmp_path)
    # The tree's interpreter imports its modules, at every optimization level.
    for flag in ([], ["-O"], ["-OO"]):
        subprocess.run(
            [str(tree / "bin/python3"), *flag, "-c", "import greet, pkg"],
            cwd=tree,
            env={"PYTHONPATH": str(tree / LIB)},
            check=True,
        )
    caches = sorted(p.name for p in (tree / LIB / "__pycache__").iterdir())
    assert caches == [f"greet.{TAG}.opt-1.pyc", f"greet.{TAG}.opt-2.pyc", f"greet.{TAG}.pyc"]
    report = verify(tree.parent, "app")
    assert report.ok, report
    assert run_verify(project, tree, capsys) == (0, "app: ok (4 files)\n")


def test_caches_of_a_module_that_is_a_link_verify_clean_and_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module may be a link to another file of the tree: Debian's Python has
    `_sysconfigdata__linux_x86_64-linux-gnu.py -> _sysconfigdata__x86_64-linux-gnu.py`,
    and sysconfig imports it by the link's name. The cache Python writes for it under that
    name was called extra, and `verify` failed every tree that had run sysconfig."""
    alias = f"{LIB}/alias.py"
    project, tree = sync_tree(tmp_path, extra=[symlink(f"python/{alias}", "greet.py")])
    subprocess.run(
        [str(tree / "bin/python3"), "-c", "import alias"],
        cwd=tree,
        env={"PYTHONPATH": str(tree / LIB)},
        check=True,
    )
    assert sorted(p.name for p in (tree / LIB / "__pycache__").iterdir()) == [f"alias.{TAG}.pyc"]
    assert verify(tree.parent, "app").ok
    assert run_verify(project, tree, capsys)[0] == 0
    # Still checked against what its source compiles to.
    planted = compile_cache(tree, alias, source=EVIL)
    assert verify(tree.parent, "app").bytecode == (rel(planted, tree),)


def test_planted_bytecode_with_a_valid_header_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tree = sync_tree(tmp_path)
    planted = compile_cache(tree, MODULE, source=EVIL)
    # It is what Python runs: the header matches the recorded source.
    done = subprocess.run(
        [str(tree / "bin/python3"), "-c", "import greet; print(greet.hello())"],
        env={"PYTHONPATH": str(tree / LIB)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "planted\n"
    report = verify(tree.parent, "app")
    assert report.bytecode == (rel(planted, tree),)
    assert not report.ok
    code, output = run_verify(project, tree, capsys)
    assert code == 1
    assert f"  bytecode: {rel(planted, tree)}\n" in output
    assert "pylock: error: app differs from the install record" in output


@pytest.mark.parametrize("optimize", [1, 2])
def test_planted_optimized_bytecode_is_reported(tmp_path: Path, optimize: int) -> None:
    _, tree = sync_tree(tmp_path)
    good = compile_cache(tree, MODULE, optimize=optimize)
    assert verify(tree.parent, "app").ok
    # An -O cache holding level-0 code (asserts kept) is not what -O compiles.
    compile_cache(tree, f"{LIB}/pkg/__init__.py")
    wrong = tree / LIB / "pkg/__pycache__" / f"__init__.{TAG}.opt-{optimize}.pyc"
    wrong.write_bytes((tree / LIB / "pkg/__pycache__" / f"__init__.{TAG}.pyc").read_bytes())
    source = tree / f"{LIB}/pkg/__init__.py"
    assert b"assert" not in source.read_bytes()  # same code at every level: still fine
    assert verify(tree.parent, "app").ok
    good.write_bytes(good.read_bytes()[:16] + b"\xff" * 8)
    assert verify(tree.parent, "app").bytecode == (rel(good, tree),)


def test_other_cache_tags_and_bad_magic_are_reported(tmp_path: Path) -> None:
    _, tree = sync_tree(tmp_path)
    good = compile_cache(tree, MODULE)
    foreign = good.with_name("greet.cpython-199.pyc")
    foreign.write_bytes(good.read_bytes())
    bad_magic = good.with_name(f"greet.{TAG}.opt-1.pyc")
    bad_magic.write_bytes(b"\0\0\0\0" + good.read_bytes()[4:])
    assert verify(tree.parent, "app").bytecode == tuple(
        sorted([rel(foreign, tree), rel(bad_magic, tree)])
    )


def test_unrecorded_caches_without_their_source_are_extra(tmp_path: Path) -> None:
    _, tree = sync_tree(tmp_path)
    orphan = tree / LIB / "__pycache__" / f"gone.{TAG}.pyc"
    orphan.parent.mkdir()
    orphan.write_bytes(b"junk")
    junk = tree / LIB / "__pycache__" / "notes.txt"
    junk.write_text("x")
    report = verify(tree.parent, "app")
    assert report.extra == (rel(orphan, tree), rel(junk, tree))
    assert report.bytecode == ()


def test_caches_are_not_checked_when_recorded_files_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tree = sync_tree(tmp_path)
    compile_cache(tree, MODULE, source=EVIL)
    (tree / "bin/python3").write_bytes(b"#!/bin/sh\necho pwned > /dev/null\n")
    report = verify(tree.parent, "app")
    assert report.modified == ("bin/python3",)
    assert (report.bytecode, report.unchecked_bytecode) == ((), 1)
    code, output = run_verify(project, tree, capsys)
    assert code == 1
    assert "(1 bytecode caches not checked: the tree differs from its record)" in output


def test_caches_that_cannot_be_checked_are_reported(tmp_path: Path) -> None:
    """No runnable interpreter in the tree: its caches cannot be trusted."""
    _, tree = sync_tree(tmp_path, runnable=False)
    cache = compile_cache(tree, MODULE)
    assert verify(tree.parent, "app").bytecode == (rel(cache, tree),)


def test_checker_that_dies_fails_its_remaining_caches(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "__pycache__").mkdir(parents=True)
    (tree / "m.py").write_bytes(SOURCE)
    caches = [CachedBytecode(path=f"__pycache__/m.{TAG}.pyc", source="m.py", tag=TAG, optimize=0)]
    py_compile.compile(str(tree / "m.py"), cfile=str(tree / caches[0].path), doraise=True)
    assert mismatched_bytecode(tree, Path(sys.executable), caches) == []
    assert mismatched_bytecode(tree, Path("/bin/false"), caches) == [caches[0].path]
    assert mismatched_bytecode(tree, tmp_path / "missing", caches) == [caches[0].path]


@pytest.mark.parametrize(
    ("target", "bits", "what"),
    [
        ("bin/python3", stat.S_ISUID, "setuid"),
        (MODULE, stat.S_ISGID, "setgid"),
        (MODULE, stat.S_IWOTH, "world-writable"),
        (LIB, stat.S_IWOTH, "world-writable"),
        (".", stat.S_IWOTH, "world-writable"),
    ],
)
def test_unsafe_permissions_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, bits: int, what: str
) -> None:
    project, tree = sync_tree(tmp_path)
    path = tree / target
    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | bits)
    if not os.stat(path).st_mode & bits:
        pytest.skip("this file system drops the bit")
    report = verify(tree.parent, "app")
    assert report.permissions == ((target, what),)
    assert report.modified == ()
    code, output = run_verify(project, tree, capsys)
    assert code == 1
    assert f"  permissions: {target} ({what})\n" in output


@pytest.mark.parametrize("modeless", [True, False], ids=["exfat", "chmod-r-777"])
def test_a_tree_on_a_file_system_without_modes_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modeless: bool
) -> None:
    """Portability attack: on exFAT, an SMB share or WSL's /mnt/c every file shows as
    rwxrwxrwx, and a fresh install failed verify (every file "modified", every entry
    "world-writable"), with a hint to reinstall that changed nothing. Attack on the day's
    diff: told by the record's mode alone, a `chmod -R 777` of the tree passed verify too;
    the mount table tells them apart (a stand-in for exFAT's here)."""
    import pylock.fsutil

    _, tree = sync_tree(tmp_path)
    for top, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            if not os.path.islink(os.path.join(top, name)):
                os.chmod(os.path.join(top, name), 0o777)
    os.chmod(tree, 0o777)
    real = pylock.fsutil.on_modeless_file_system
    assert not real(tree)  # this test's own disk keeps modes
    monkeypatch.setattr(pylock.sync.install, "on_modeless_file_system", lambda path: modeless)
    report = verify(tree.parent, "app")
    assert report.ok is modeless, report
    if not modeless:
        assert report.modified and (".", "world-writable") in report.permissions


def test_the_mount_table_names_the_file_systems_without_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as Linux writes it: the longest mount point that holds the path, its type
    after " - ", and octal escapes in the mount point."""
    import builtins
    import io

    import pylock.fsutil

    disk = tmp_path / "my drive"
    disk.mkdir()
    table = (
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"40 22 8:17 / {str(disk).replace(' ', chr(92) + '040')} rw,relatime - exfat /dev/sdb1 rw\n"
    )
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/proc/self/mountinfo":
            return io.StringIO(table)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert pylock.fsutil.on_modeless_file_system(disk / "py" / "app")
    assert not pylock.fsutil.on_modeless_file_system(tmp_path)
    assert not pylock.fsutil.on_modeless_file_system(str(disk) + "2")


class _FakeLibSystem:
    """libSystem's ``statfs`` for a path on a drive of ``kind``: the 64-bit-inode one as
    ``statfs$INODE64`` (Intel) or, with ``intel=False``, as ``statfs`` (Apple silicon)."""

    def __init__(self, kind: bytes, *, intel: bool = True, status: int = 0) -> None:
        self.kind, self.status, self.asked = kind, status, list[bytes]()
        setattr(self, "statfs$INODE64" if intel else "statfs", _Function(self._statfs))

    def _statfs(self, path: bytes, buffer: Any) -> int:
        self.asked.append(path)
        # f_bsize ... f_fssubtype before it: 72 bytes; f_mntonname after it.
        ctypes.memmove(ctypes.addressof(buffer) + 72, self.kind + b"\0", len(self.kind) + 1)
        ctypes.memmove(ctypes.addressof(buffer) + 88, b"/Volumes/USB\0", 13)
        return self.status


class _Function:
    """A ctypes function's stand-in: called, and given ``argtypes`` and ``restype``."""

    def __init__(self, call: Callable[..., int]) -> None:
        self.call = call
        self.argtypes: object = None
        self.restype: object = None

    def __call__(self, *args: Any) -> int:
        return self.call(*args)


def test_macos_asks_statfs_for_the_file_systems_without_modes(tmp_path: Path) -> None:
    """Portability review: the file system's kind came from Linux's mount table alone, so
    on macOS a fresh install on an exFAT or FAT drive or an SMB share failed verify (every
    file "modified", every entry "world-writable"), as it once did on Linux."""
    from pylock.fsutil import on_modeless_file_system

    for kind, modeless in [(b"exfat", True), (b"msdos", True), (b"smbfs", True), (b"apfs", False)]:
        for intel in (True, False):
            libc = _FakeLibSystem(kind, intel=intel)
            assert on_modeless_file_system(tmp_path, platform="darwin", libc=libc) is modeless
            assert libc.asked == [os.fsencode(os.path.realpath(tmp_path))]
    failed = _FakeLibSystem(b"exfat", status=-1)
    assert not on_modeless_file_system(tmp_path, platform="darwin", libc=failed)
    # Elsewhere (Windows, the BSDs), modes are taken as they read.
    assert not on_modeless_file_system(tmp_path, platform="win32")


def test_what_finder_and_explorer_write_into_folders_is_not_extra(tmp_path: Path) -> None:
    """Portability attack: a look at the tree in Finder (`.DS_Store`) or Explorer
    (`desktop.ini`, `Thumbs.db`) failed verify, with a hint to reinstall."""
    _, tree = sync_tree(tmp_path)
    for name in (".DS_Store", "lib/Thumbs.db", "desktop.ini", "lib/DESKTOP.INI"):
        (tree / name).write_bytes(b"\0")
    assert verify(tree.parent, "app").ok
    (tree / "lib" / "x.DS_Store").write_bytes(b"\0")
    assert verify(tree.parent, "app").extra == ("lib/x.DS_Store",)


def test_setgid_directories_are_not_reported(tmp_path: Path) -> None:
    """Directories inherit setgid from a shared-group parent; that is not tampering."""
    _, tree = sync_tree(tmp_path)
    os.chmod(tree / LIB, 0o2755)
    assert verify(tree.parent, "app").ok


def test_fresh_install_under_umask_zero_verifies(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _, tree = sync_tree(tmp_path)
    finally:
        os.umask(old)
    assert not os.stat(tree).st_mode & stat.S_IWOTH
    assert verify(tree.parent, "app").ok


def test_control_characters_in_extra_names_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tree = sync_tree(tmp_path)
    (tree / "evil\x1b[2Jname").write_text("x")
    code, output = run_verify(project, tree, capsys)
    assert code == 1
    assert "\x1b" not in output
    assert "  extra: evil\\x1b[2Jname\n" in output


# -- a real interpreter ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="archives are built on Linux")
def test_a_used_real_tree_verifies_and_planted_bytecode_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], real_archive: RealArchive
) -> None:
    from tests.realpython import (
        clean_env,
        mirrored_project,
        serve_directory,
    )

    archive = real_archive
    project, mirror = mirrored_project(tmp_path, archive)
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    into = tmp_path / "py"
    with serve_directory(mirror) as url:
        argv = ["--project", str(project), "-q", "sync", "--into", str(into), "--mirror", url]
        assert main(argv, environ=environ) == 0
    tree = into / "app"
    python = tree / "bin/python3"
    env = clean_env()

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(python), *args], capture_output=True, text=True, env=env, check=True
        )
        return done.stdout

    run("-c", "import json, ssl, sqlite3, asyncio, sysconfig; sysconfig.get_config_vars()")
    stdlib = Path(run("-c", "import sysconfig; print(sysconfig.get_path('stdlib'))").strip())
    run("-m", "compileall", "-q", str(stdlib))
    assert list(stdlib.glob("json/__pycache__/*.pyc"))
    assert run_verify(project, tree, capsys)[0] == 0

    source = stdlib / "json/__init__.py"
    planted = run(
        "-c",
        "import importlib.util, importlib._bootstrap_external as b, os, sys\n"
        f"src = {str(source)!r}\n"
        "st = os.stat(src)\n"
        "code = compile(open(src, 'rb').read() + b'\\ndumps = lambda *a, **k: \"PLANTED\"\\n',"
        " src, 'exec', dont_inherit=True)\n"
        "path = importlib.util.cache_from_source(src)\n"
        "open(path, 'wb').write(b._code_to_timestamp_pyc(code, st.st_mtime, st.st_size))\n"
        "print(path)",
    ).strip()
    assert run("-c", "import json; print(json.dumps(1))") == "PLANTED\n"
    code, output = run_verify(project, tree, capsys)
    assert code == 1
    assert f"  bytecode: {Path(planted).relative_to(tree).as_posix()}\n" in output
    assert output.count("  bytecode: ") == 1


def test_caches_are_not_checked_when_files_were_added(tmp_path: Path) -> None:
    """An added file could run inside the checker (an extension module shadowing a
    start-up module): the interpreter is not run, and the caches count as unchecked."""
    _, tree = sync_tree(tmp_path)
    compile_cache(tree, MODULE, source=EVIL)
    marker = tmp_path / "ran"
    (tree / LIB / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    report = verify(tree.parent, "app")
    assert report.extra == (f"{LIB}/sitecustomize.py",)
    assert (report.bytecode, report.unchecked_bytecode) == ((), 1)
    assert not marker.exists()


# -- verify and a sync at the same time ---------------------------------------------------------


def test_verify_waits_for_a_sync_working_on_the_tree(tmp_path: Path) -> None:
    """Code review: verify read the record, then hashed the tree, without the tree's
    lock: an upgrade swapped in between made it report an intact tree as modified."""
    import threading

    from pylock.progress import Reporter
    from pylock.sync import install

    _, tree = sync_tree(tmp_path)
    other = install._name_filelock(tree.parent, "app")  # a sync installing `app`
    other.acquire(timeout=0)
    reports: list[object] = []
    reporter = Reporter(verbosity=0, color=False, dumb_terminal=True)
    worker = threading.Thread(target=lambda: reports.append(verify(tree.parent, "app", reporter)))
    try:
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "verify did not wait for the lock"
    finally:
        other.release()
    worker.join(10)
    assert not worker.is_alive()
    assert len(reports) == 1 and getattr(reports[0], "ok", False)


def test_verify_reads_a_tree_whose_lock_cannot_be_opened_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's lock file, or a read-only install directory without one: the tree
    is checked without the lock, and verify makes no lock file (one made by whoever
    verified could keep another user's sync from opening it)."""
    import shutil

    from pylock.fsutil import FileLock
    from pylock.sync.install import LOCKS_DIR

    _, tree = sync_tree(tmp_path)
    locks = tree.parent / LOCKS_DIR
    assert (locks / "app.lock").is_file()  # the sync made it

    def not_yours(self: FileLock) -> bool:
        raise PermissionError(13, "Permission denied", str(self.path))

    with monkeypatch.context() as patched:
        patched.setattr(FileLock, "try_acquire", not_yours)
        assert verify(tree.parent, "app").ok
    shutil.rmtree(locks)
    assert verify(tree.parent, "app").ok
    assert not locks.exists()
    (tree / MODULE).write_bytes(b"changed\n")
    assert not verify(tree.parent, "app").ok


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_under_umask_zero_nothing_that_says_what_a_tree_is_is_world_writable(
    tmp_path: Path,
) -> None:
    """Fidelity attack: under umask 0 the tree was 0755/0644 but its `.pylock/` record and
    the install directory's state were world-writable; another user rewrote install.json
    to the lock's build and `sync` kept the old tree, "up to date"."""
    old = os.umask(0)
    try:
        project, tree = sync_tree(tmp_path)
        bin_dir = tmp_path / "bin"
        sync = ["--project", str(project), "-q", "sync", "--into", str(tree.parent)]
        environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
        assert main([*sync, "--bin-dir", str(bin_dir)], environ) == 0
    finally:
        os.umask(old)
    dest = tree.parent
    written = [tree / ".pylock", *(tree / ".pylock").iterdir(), dest / ".pylock-locks"]
    written += [p for p in (dest / ".pylock-state",) if p.exists()]
    # The directories trees and links are put in (environment attack: another user could
    # rename a tree, and drop in one of their own, record and all).
    written += [dest, bin_dir]
    for path in written:
        assert not path.stat().st_mode & stat.S_IWOTH, path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_a_directory_a_group_shares_stays_writable_by_the_group(tmp_path: Path) -> None:
    """Attack on the day's diff: `.pylock-locks` made 0755 under umask 002 kept the
    group's other users from installing into a shared (setgid) directory; and under
    umask 0 only the last of the directories made lost its write bit for others."""
    old = os.umask(0o002)
    try:
        _, tree = sync_tree(tmp_path)
    finally:
        os.umask(old)
    for path in (tree.parent, tree.parent / ".pylock-locks", tree / ".pylock"):
        assert path.stat().st_mode & 0o070 == 0o070, path
    from pylock.fsutil import make_dir

    old = os.umask(0)
    try:
        make_dir(tmp_path / "u0" / "a" / "b")
    finally:
        os.umask(old)
    for path in (tmp_path / "u0", tmp_path / "u0" / "a", tmp_path / "u0" / "a" / "b"):
        assert not path.stat().st_mode & stat.S_IWOTH, path


def test_an_archive_with_no_interpreter_is_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the variants: a free-threaded archive without `python3.14t` (or any
    archive for another platform) installed "successfully", `verify` called it ok, and
    `which`/`run` said to repair it with `sync --reinstall`, which did the same again."""
    archive = write_archive(
        tmp_path / "python.tar.gz",
        [file(f"python/{MODULE}", SOURCE), file("python/share/README", b"no interpreter\n")],
        ArchiveFormat.TAR_GZ,
    )
    project = host_project(tmp_path, archive.read_bytes(), archive.as_uri())
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    capsys.readouterr()
    argv = ["--project", str(project), "sync", "--into", str(tmp_path / "py")]
    assert main(argv, environ) == 1
    err = capsys.readouterr().err
    assert "python.tar.gz holds no cpython interpreter for " in err
    assert "where pylock looks for one (bin/python3)" in err
    assert "the lock names the wrong archive for app: check its URL" in err
    assert not (tmp_path / "py" / "app").exists()


# -- many differences ---------------------------------------------------------------------------


def test_a_tree_with_thousands_of_extra_files_lists_the_first_and_counts_the_rest(
    sync_project: Project,
) -> None:
    """A tree with 5,000 files pip put there was 5,000 lines of `verify`, and 150 trees that
    differ were all named in one error line."""
    builds = [make_build(f"py{i:02d}", f"209901{i:02d}", big=100) for i in range(12)]
    sync_project.install(*builds)
    junk = sync_project.into / "py00" / "lib" / "junk"
    junk.mkdir()
    for n in range(MOST_PROBLEMS_SHOWN + 5):
        (junk / f"f{n:03d}.txt").write_text("x")
    for build in builds:
        with (sync_project.into / build.name / "share" / "zz-build-tag").open("a") as tag:
            tag.write("changed\n")
    result = sync_project.verify()
    assert result.code == 1
    lines = result.out.splitlines()
    start = lines.index(f"py00: {MOST_PROBLEMS_SHOWN + 6} differences from its 8 recorded files")
    listed = lines[start + 1 : start + 1 + MOST_PROBLEMS_SHOWN]
    # The modified file first, then extra ones, up to the cap.
    assert listed[0] == "  modified: share/zz-build-tag"
    extra = [f"  extra: lib/junk/f{n:03d}.txt" for n in range(MOST_PROBLEMS_SHOWN + 5)]
    assert listed[1:] == extra[: MOST_PROBLEMS_SHOWN - 1]
    assert lines[start + 1 + MOST_PROBLEMS_SHOWN] == "  and 6 more: 6 extra (-v lists them all)"
    assert lines[start + 2 + MOST_PROBLEMS_SHOWN].startswith("py01: 1 difference")
    assert result.err.splitlines()[0] == (
        "pylock: error: py00, py01, py02, py03, py04, py05, py06, py07, py08, py09 and 2 more "
        "differ from the install record"
    )
    everything = sync_project.run("verify", "-v", "--into", str(sync_project.into))
    assert everything.code == 1 and "more" not in everything.out
    assert all(line in everything.out.splitlines() for line in extra)
