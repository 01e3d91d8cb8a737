"""Windows and macOS behaviour, emulated on Linux: ``--bin-dir`` launchers that cmd.exe can
read, ``msvcrt`` lock errors, cache staging names short enough for MAX_PATH, the native
host under Rosetta or x64 emulation on Windows on Arm, and ``.netrc`` on Windows.

Each test injects the other system's behaviour: the code page cmd.exe reads batch files
in, a stand-in ``msvcrt`` module, ctypes functions in place of libSystem's and
kernel32's, the platform constants.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import json
import os
import re
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from pylock import fsutil, ownfiles, platforms
from pylock.archive.policy import aliased_on_windows
from pylock.errors import PylockError
from pylock.fsutil import FileLock, LockTimeout
from pylock.net import policy
from pylock.net.policy import netrc_authorization
from pylock.ownfiles import RefusedFileError, is_junction, read_own_file
from pylock.platforms import host
from pylock.settings import Settings
from pylock.sync import bindir
from pylock.sync.bindir import sync_links
from pylock.sync.cache import Cache

HEAD = b"@setlocal EnableExtensions DisableDelayedExpansion\r\n"

# -- #5: .cmd launchers ------------------------------------------------------------------


def _launcher_bytes(target: str, bin_dir: str) -> bytes:
    text = bindir._launcher(PureWindowsPath(target), PureWindowsPath(bin_dir))
    return text.encode(bindir._BATCH_ENCODING)


def test_launcher_for_an_ascii_path_names_it_with_percent_doubled() -> None:
    # `%d` would be expanded by cmd.exe (to nothing here); `%%` is a literal `%`.
    assert _launcher_bytes(r"C:\build\100%done\.pythons\app\python.exe", r"C:\bin") == (
        HEAD + b'@"C:\\build\\100%%done\\.pythons\\app\\python.exe" %*\r\n'
    )


def test_launcher_under_a_non_ascii_profile_is_ascii_and_relative_to_itself() -> None:
    data = _launcher_bytes(
        r"C:\Users\Jürgen\proj\50%\.pythons\app\python.exe", r"C:\Users\Jürgen\.local\bin"
    )
    assert data.isascii()  # reads the same whatever the console's code page
    assert data == HEAD + (
        b"@goto run\r\n"
        b":find_dir\r\n"
        b'@set "pylock_dir=%~dp0"\r\n'
        b"@exit /b\r\n"
        b":run\r\n"
        b"@call :find_dir\r\n"
        b'@"%pylock_dir%..\\..\\proj\\50%%\\.pythons\\app\\python.exe" %*\r\n'
    )


def test_launcher_on_another_drive_is_written_in_the_console_code_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bindir, "_BATCH_ENCODING", "cp850")
    data = _launcher_bytes(r"C:\Users\Jürgen\.pythons\app\python.exe", r"D:\bin")
    # ü is 0x81 in code page 850, the byte cmd.exe decodes back to ü; UTF-8's 0xC3 0xBC
    # would read as ├╝.
    assert data == HEAD + b'@"C:\\Users\\J\x81rgen\\.pythons\\app\\python.exe" %*\r\n'


def test_launcher_the_code_page_cannot_spell_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bindir, "_BATCH_ENCODING", "cp437")
    with pytest.raises(PylockError, match="cannot write a launcher") as caught:
        _launcher_bytes(r"C:\Users\张伟\.pythons\app\python.exe", r"D:\bin")
    assert "ASCII" in (caught.value.hint or "")


def test_sync_links_writes_reads_and_removes_code_page_launchers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bindir, "_BATCH_ENCODING", "cp850")
    bin_dir = tmp_path / "bin"
    # Non-ASCII between the bin dir and the target: the absolute path, in cp850.
    target = tmp_path / "Zoë" / ".pythons" / "app" / "python.exe"
    first = sync_links(bin_dir, {"python3.13": target}, windows=True)
    assert first.created == ("python3.13",)
    data = (bin_dir / "python3.13.cmd").read_bytes()
    assert data == HEAD + b'@"' + str(target).encode("cp850") + b'" %*\r\n'
    assert "Zo\x89".encode("latin-1") in data  # ë in code page 850
    # Read back in the same encoding: nothing to change, and still pylock's own.
    again = sync_links(bin_dir, {"python3.13": target}, windows=True)
    assert (again.created, again.removed) == ((), ())
    gone = sync_links(bin_dir, {}, windows=True)
    assert gone.removed == ("python3.13",)
    assert not (bin_dir / "python3.13.cmd").exists()


def windows_junction(monkeypatch: pytest.MonkeyPatch, *junctions: Path) -> None:
    """Behave as Windows, where ``junctions`` (directories here) are junctions."""
    inodes = {os.stat(path).st_ino for path in junctions}
    monkeypatch.setattr(fsutil, "_WINDOWS", True)
    monkeypatch.setattr(ownfiles, "_WINDOWS", True)
    monkeypatch.setattr(ownfiles, "is_junction", lambda info: info.st_ino in inodes)
    monkeypatch.setattr(fsutil, "is_junction", ownfiles.is_junction)


def test_a_windows_junction_is_a_link_never_entered_nor_taken_for_a_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability attack: on Windows `islink` and `is_symlink()` are false for a junction
    (`mklink /J`), and `is_dir(follow_symlinks=False)` true: verify walked into one (out of
    the tree, or round in circles), and an install directory's `app` junction to another
    project's tree was taken for this one's own, to replace or prune. Simulated here: a
    directory whose inode is the junction's."""
    from pylock import fsutil

    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "os.py").write_text("")
    (root / "junction").mkdir()
    (root / "junction" / "beyond.py").write_text("")
    windows_junction(monkeypatch, root / "junction")
    assert sorted(rel for rel, _ in fsutil.walk_tree(str(root))) == [
        "junction",
        "lib",
        "lib/os.py",
    ]
    assert fsutil.is_link(root / "junction") and not fsutil.is_link(root / "lib")
    # The real test of a junction, by its reparse tag (OneDrive's folders carry others).
    monkeypatch.undo()
    junction_tag, cloud_tag = 0xA0000003, 0x9000001A
    assert is_junction(type("Info", (), {"st_reparse_tag": junction_tag})())
    assert not is_junction(type("Info", (), {"st_reparse_tag": cloud_tag})())
    assert not is_junction(os.stat(root))


def test_a_junction_lends_no_tree_its_records_nor_takes_the_lock_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability attack: the no-op fast path and the install lock tested for links with
    `os.path.islink` and `is_symlink()`, which are false for a Windows junction: a tree
    moved away and junctioned back kept its record's stamps (the fast path said "up to
    date" where the full sync refuses the tree), and a junctioned `.pylock-locks` put the
    lock files wherever it pointed."""
    from pylock.fastpath import record_stamp
    from pylock.sync.install import LOCKS_DIR, _name_filelock

    meta = tmp_path / "into" / "app" / ".pylock"
    meta.mkdir(parents=True)
    (meta / "install.json").write_text("{}")
    locks = tmp_path / "into" / LOCKS_DIR
    locks.mkdir()
    assert record_stamp(str(meta / "install.json")) is not None
    _name_filelock(tmp_path / "into", "app")
    windows_junction(monkeypatch, meta.parent, locks)
    assert record_stamp(str(meta / "install.json")) is None
    with pytest.raises(PylockError, match="is a link"):
        _name_filelock(tmp_path / "into", "app")


def test_without_o_nofollow_a_link_is_still_refused_for_pylocks_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability attack: Windows has no `O_NOFOLLOW`, and `read_own_file` looked for a
    link only when the open failed: there, an install record, a state file or a cache
    sidecar was read through a link planted in its place. A link put there between the
    look and the open is refused too."""
    monkeypatch.setattr(ownfiles, "_NO_FOLLOW", 0)
    real = tmp_path / "real.json"
    real.write_text('{"a": 1}')
    (tmp_path / "link.json").symlink_to(real)
    with pytest.raises(RefusedFileError, match="symbolic link"):
        read_own_file(tmp_path / "link.json", 100)
    assert read_own_file(tmp_path / "link.json", 100, follow_symlinks=True) == b'{"a": 1}'
    assert read_own_file(real, 100) == b'{"a": 1}'
    # A junction to a directory (for a record's name, a directory is refused anyway).
    (tmp_path / "dir").mkdir()
    windows_junction(monkeypatch, tmp_path / "dir")
    with pytest.raises(RefusedFileError, match="symbolic link"):
        read_own_file(tmp_path / "dir", 100)
    # A link put in the file's place between the look and the open: looked for again.
    looks = [os.lstat(real), os.lstat(tmp_path / "link.json")]
    monkeypatch.setattr(os, "lstat", lambda path: looks.pop(0))
    with pytest.raises(RefusedFileError, match="symbolic link"):
        read_own_file(real, 100)
    assert looks == []


def test_cache_file_names_are_never_windows_device_names(tmp_path: Path) -> None:
    """Portability attack: an archive called `nul.tar.gz` (a direct URL) or a listing from
    `https://aux.corp.example/` was cached under that name, which Windows takes for a
    device: the archive could not be stored, the listing never cached."""
    from pylock.index.metadata import MetadataStore
    from pylock.sync.cache import safe_filename

    for name, expected in [
        ("nul.tar.gz", "_nul.tar.gz"),
        ("CON", "_CON"),
        ("com1.zip", "_com1.zip"),
        ("python.tar.gz.", "python.tar.gz"),
        ("console.tar.gz", "console.tar.gz"),
    ]:
        assert safe_filename(name) == expected
    store = MetadataStore(tmp_path)
    for url in ["https://aux.corp.example/releases", "https://github.com/aux"]:
        body, meta = store._paths(url)
        for path in (body, meta):
            assert not aliased_on_windows(path.name), path.name
            assert path.parent == tmp_path


def test_launchers_relative_to_themselves_are_judged_by_the_tree_they_run(
    tmp_path: Path,
) -> None:
    """Portability attack: under a non-ASCII profile (`C:\\Users\\Jürgen`) launchers name
    their program relative to themselves, which only an absolute path was matched against:
    `sync --no-prune` removed the launcher of an interpreter it kept installed, and
    `sync --only app` left the old launcher of the interpreter it upgraded."""
    root = tmp_path / "Jürgen"
    into, bin_dir = root / "proj" / ".pythons", root / "bin"
    old, app = into / "old" / "python.exe", into / "app" / "python.exe"
    sync_links(bin_dir, {"python3.12": old, "python3.13": app}, windows=True, install_dir=into)
    assert b"%pylock_dir%" in (bin_dir / "python3.12.cmd").read_bytes()
    # The lock dropped `old`; `sync --no-prune` keeps its tree, and so its launcher.
    kept = sync_links(
        bin_dir, {"python3.13": app}, windows=True, install_dir=into, kept=[into / "old"]
    )
    assert kept.removed == () and (bin_dir / "python3.12.cmd").exists()
    # `sync --only app` moved app from 3.13 to 3.14: its old launcher goes, old's stays.
    only = sync_links(
        bin_dir,
        {"python3.14": app},
        windows=True,
        install_dir=into,
        trees=[into / "app"],
        kept=[into / "old"],
    )
    assert only.removed == ("python3.13",)
    assert (bin_dir / "python3.12.cmd").exists()


def test_launchers_a_manifest_names_no_owner_for_are_judged_by_their_path(
    tmp_path: Path,
) -> None:
    """Windows' side of a bin dir shared with a project an older pylock synced (its
    manifest names no install directories): the other project's launcher stays, this
    project's own old one is pruned."""
    bin_dir = tmp_path / "bin"
    a, b = tmp_path / "a" / ".pythons", tmp_path / "b" / ".pythons"
    sync_links(bin_dir, {"python3.12": a / "app" / "python.exe"}, windows=True, install_dir=a)
    sync_links(bin_dir, {"python3.11": b / "old" / "python.exe"}, windows=True, install_dir=b)
    manifest = bin_dir / bindir.MANIFEST
    manifest.write_text(json.dumps({"links": json.loads(manifest.read_text())["links"]}))

    done = sync_links(
        bin_dir, {"python3.13": b / "svc" / "python.exe"}, windows=True, install_dir=b
    )
    assert done.removed == ("python3.11",)
    assert (bin_dir / "python3.12.cmd").is_file()


def test_a_launcher_that_cannot_be_written_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bindir, "_BATCH_ENCODING", "cp437")
    bin_dir = tmp_path / "bin"
    wanted = {
        "python3.12": tmp_path / "ok" / "python.exe",
        "python3.13": tmp_path / "张伟" / "python.exe",
    }
    with pytest.raises(PylockError, match="cannot write a launcher"):
        sync_links(bin_dir, wanted, windows=True)
    assert list(bin_dir.iterdir()) == []


def test_launchers_of_earlier_versions_are_still_pylocks_to_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bindir, "_BATCH_ENCODING", "cp850")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    targets = {
        "python3.12": tmp_path / "plain" / "python.exe",
        "python3.13": tmp_path / "Jürgen" / "python.exe",
    }
    # What earlier versions wrote: one line, UTF-8 whatever the path, recorded as text.
    old = {name: f'@"{target}" %*\r\n' for name, target in targets.items()}
    for name, text in old.items():
        (bin_dir / f"{name}.cmd").write_bytes(text.encode("utf-8"))
    (bin_dir / bindir.MANIFEST).write_text(json.dumps({"links": old}), encoding="utf-8")
    result = sync_links(bin_dir, targets, windows=True)
    assert result.created == ("python3.12", "python3.13")
    assert (bin_dir / "python3.13.cmd").read_bytes().startswith(HEAD)
    assert "J\x81rgen".encode("latin-1") in (bin_dir / "python3.13.cmd").read_bytes()


# -- #10: msvcrt lock errors -------------------------------------------------------------


def _fake_msvcrt(fail: Callable[[int], OSError | None]) -> types.SimpleNamespace:
    """An ``msvcrt`` whose ``locking`` raises ``fail(call number)`` when that is not None."""
    calls: list[tuple[int, int]] = []

    def locking(fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1
        calls.append((fd, mode))
        error = fail(len(calls)) if mode == 2 else None
        if error is not None:
            raise error

    return types.SimpleNamespace(locking=locking, LK_NBLCK=2, LK_UNLCK=0, calls=calls)


def _use(monkeypatch: pytest.MonkeyPatch, fake: types.SimpleNamespace) -> None:
    lock_fd, unlock_fd = fsutil._msvcrt_locking(fake)
    monkeypatch.setattr(fsutil, "_lock_fd", lock_fd)
    monkeypatch.setattr(fsutil, "_unlock_fd", unlock_fd)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EDEADLOCK], ids=["EACCES", "EDEADLOCK"])
def test_msvcrt_lock_violation_is_held_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    _use(monkeypatch, _fake_msvcrt(lambda _: OSError(code, os.strerror(code))))
    lock = FileLock(tmp_path / "x.lock")
    assert lock.try_acquire() is False
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=0.05, poll=0.01)


def test_msvcrt_other_errors_raise_instead_of_waiting_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the first call fails: a lock that took it for "held elsewhere" would poll
    # again and succeed, instead of raising.
    fake = _fake_msvcrt(lambda n: OSError(errno.EINVAL, "Invalid argument") if n == 1 else None)
    _use(monkeypatch, fake)
    lock = FileLock(tmp_path / "x.lock")
    with pytest.raises(OSError, match="Invalid argument") as caught:
        lock.acquire()
    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename == str(tmp_path / "x.lock")  # the user learns which file
    assert not lock.is_locked
    fd = fake.calls[0][0]
    with pytest.raises(OSError):  # not leaked
        os.fstat(fd)


def test_msvcrt_lock_and_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_msvcrt(lambda _: None)
    _use(monkeypatch, fake)
    with FileLock(tmp_path / "x.lock") as lock:
        assert lock.is_locked
    assert [mode for _, mode in fake.calls] == [2, 0]


def test_windows_fsutil_locks_with_msvcrt() -> None:
    # A fresh copy of the module as Windows would import it (the shared one stays as is).
    fake = _fake_msvcrt(lambda _: OSError(errno.EACCES, "Permission denied"))
    spec = importlib.util.spec_from_file_location("fsutil_on_windows", fsutil.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as windows:
        windows.setitem(sys.modules, "msvcrt", fake)
        windows.setattr(sys, "platform", "win32")
        spec.loader.exec_module(module)
    assert module._WINDOWS is True
    assert module._lock_fd(0) is False
    assert fake.calls == [(0, 2)]


# -- #11: cache staging names ------------------------------------------------------------


def test_cache_staging_path_is_barely_longer_than_the_final_one(cache: Cache) -> None:
    sha = "ab" * 32
    staging = cache.new_tmp_path(sha, ".dir")
    assert re.fullmatch(rf"{sha}\.[0-9a-f]{{10}}\.dir", staging.name)
    final = cache.archive_dir(sha)
    # Both then get the archive's name: only the final path's length decides MAX_PATH.
    assert len(str(staging)) == len(str(final)) + 3
    assert cache.new_tmp_path(sha, ".dir") != staging


# -- #12: the native host under emulation ------------------------------------------------


def _libc(translated: int | None) -> types.SimpleNamespace:
    """libSystem's ``sysctlbyname`` as macOS answers it (``None``: no such sysctl)."""
    proto = ctypes.CFUNCTYPE(
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    )

    def sysctlbyname(name: bytes, oldp: int, oldlenp: Any, newp: int | None, newlen: int) -> int:
        assert name == b"sysctl.proc_translated" and newp is None and newlen == 0
        assert oldlenp.contents.value == ctypes.sizeof(ctypes.c_int)
        if translated is None:
            return -1  # ENOENT: an Intel Mac
        ctypes.cast(oldp, ctypes.POINTER(ctypes.c_int)).contents.value = translated
        return 0

    return types.SimpleNamespace(sysctlbyname=proto(sysctlbyname))


def _kernel32(native: int | None, ok: int = 1) -> types.SimpleNamespace:
    """kernel32's ``IsWow64Process2`` (``None``: a Windows too old to have it)."""
    if native is None:
        return types.SimpleNamespace()
    proto = ctypes.CFUNCTYPE(
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_ushort),
        ctypes.POINTER(ctypes.c_ushort),
    )

    def is_wow64_process2(handle: int, process: Any, machine: Any) -> int:
        assert handle == ctypes.c_void_p(-1).value  # GetCurrentProcess()'s pseudo handle
        process.contents.value = 0  # IMAGE_FILE_MACHINE_UNKNOWN: not a WOW64 process
        machine.contents.value = native
        return ok

    return types.SimpleNamespace(IsWow64Process2=proto(is_wow64_process2))


@pytest.mark.parametrize(
    ("translated", "expected"),
    [(1, True), (0, False), (None, False)],
    ids=["rosetta", "native", "intel"],
)
def test_rosetta_translation(translated: int | None, expected: bool) -> None:
    assert platforms._rosetta_translated(_libc(translated)) is expected


def test_rosetta_question_without_libsystem_is_no() -> None:
    assert platforms._rosetta_translated() is False  # Linux has no libSystem


@pytest.mark.parametrize(
    ("machine", "translated", "expected"),
    [
        ("x86_64", 1, "macos-aarch64"),
        ("x86_64", None, "macos-x86_64"),
        ("arm64", None, "macos-aarch64"),
    ],
)
def test_host_under_rosetta_is_apple_silicon(
    monkeypatch: pytest.MonkeyPatch, machine: str, translated: int | None, expected: str
) -> None:
    asked: list[bool] = []
    real = platforms._rosetta_translated

    def translated_here() -> bool:
        asked.append(True)
        return real(_libc(translated))

    monkeypatch.setattr("pylock.platforms.sys.platform", "darwin")
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: machine)
    monkeypatch.setattr(platforms, "_rosetta_translated", translated_here)
    assert host().key == expected
    assert asked == ([True] if machine == "x86_64" else [])  # a native arm64 Python asks nothing


@pytest.mark.parametrize(
    ("kernel32", "expected"),
    [
        (_kernel32(0xAA64), "aarch64"),
        (_kernel32(0x8664), "x86_64"),
        (_kernel32(0xAA64, ok=0), None),
        (_kernel32(0x1234), None),
        (_kernel32(None), None),
    ],
    ids=["arm64", "amd64", "failed", "unknown", "missing"],
)
def test_windows_native_machine(kernel32: types.SimpleNamespace, expected: str | None) -> None:
    assert platforms._windows_native_machine(kernel32) == expected


def test_windows_native_machine_off_windows_is_unknown() -> None:
    assert platforms._windows_native_machine() is None  # no ctypes.WinDLL here


@pytest.mark.parametrize(
    ("environ", "native", "expected"),
    [
        # x64 Python on Windows on Arm: emulated, but not WOW64, so the environment says AMD64.
        ({"PROCESSOR_ARCHITECTURE": "AMD64"}, 0xAA64, "windows-aarch64"),
        ({"PROCESSOR_ARCHITECTURE": "AMD64"}, 0x8664, "windows-x86_64"),
        ({"PROCESSOR_ARCHITECTURE": "AMD64"}, None, "windows-x86_64"),
        # x86 Python on Arm is WOW64: the environment tells, nothing else is asked.
        (
            {"PROCESSOR_ARCHITECTURE": "x86", "PROCESSOR_ARCHITEW6432": "ARM64"},
            -1,
            "windows-aarch64",
        ),
    ],
)
def test_host_of_x64_python_on_windows_on_arm(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], native: int | None, expected: str
) -> None:
    real = platforms._windows_native_machine

    def native_here() -> str | None:
        assert native != -1, "asked though the environment told"
        return real(_kernel32(native))

    monkeypatch.setattr("pylock.platforms.sys.platform", "win32")
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: "AMD64")
    monkeypatch.delenv("PROCESSOR_ARCHITEW6432", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(platforms, "_windows_native_machine", native_here)
    assert host().key == expected


# -- #13: netrc on Windows ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "windows", "expected"),
    [
        ([".netrc", "_netrc"], True, ".netrc"),
        (["_netrc"], True, "_netrc"),
        ([".netrc"], True, ".netrc"),
        ([], True, "_netrc"),
        (["_netrc"], False, ".netrc"),
    ],
)
def test_netrc_on_windows_is_dot_netrc_then_underscore_netrc(
    tmp_path: Path, present: list[str], windows: bool, expected: str
) -> None:
    for name in present:
        (tmp_path / name).write_text("machine h login u password p\n")
    settings = Settings(home=str(tmp_path))
    assert settings.netrc_path(windows=windows) == str(tmp_path / expected)
    # NETRC names the one file, on every system.
    named = Settings(home=str(tmp_path), netrc=str(tmp_path / "other"))
    assert named.netrc_path(windows=windows) == str(tmp_path / "other")


def test_dot_netrc_credentials_are_sent_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".netrc").write_text("machine mirror.example login ci password tok\n")
    (tmp_path / "_netrc").write_text("machine mirror.example login old password stale\n")
    netrc_path = Settings.netrc_path
    monkeypatch.setattr(
        Settings, "netrc_path", lambda self: netrc_path(self, windows=True), raising=True
    )
    header = netrc_authorization("https://mirror.example/x.tar.gz", Settings(home=str(tmp_path)))
    assert header == "Basic Y2k6dG9r"  # ci:tok, from .netrc


# -- field test 5: removing trees --------------------------------------------------------


def _tree_in_a_shared_directory(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """``(into, into/name)``: a small tree in an install directory others read (0755)."""
    into = tmp_path / "into"
    tree = into / name
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / "os.py").write_text("")
    into.chmod(0o755)
    return into, tree


def test_a_tree_that_cannot_be_removed_leaves_the_directory_around_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running interpreter that writes ``__pycache__`` into its old tree during a prune
    makes the last ``rmdir`` fail: the install directory keeps its mode (other users run
    interpreters from it), and the error stands."""
    into, tree = _tree_in_a_shared_directory(tmp_path, ".pylock-trash-app")
    real_rmdir = os.rmdir

    def refilled(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path) == os.fspath(tree):
            raise OSError(errno.ENOTEMPTY, "Directory not empty", os.fspath(path))
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", refilled)
    with pytest.raises(OSError, match="not empty"):
        fsutil.remove_tree(tree)
    assert (into.stat().st_mode & 0o777) == 0o755
    assert (tree.stat().st_mode & 0o777) == 0o755


def test_a_read_only_entry_in_the_way_is_made_writable_inside_the_tree_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file (Windows) or directory blocks a deletion: what is in the tree is
    made writable and the deletion goes on; the directory around the tree is left alone."""
    into, tree = _tree_in_a_shared_directory(tmp_path, "app")
    real_unlink = os.unlink
    refused: list[str] = []
    chmodded: list[str] = []
    real_chmod = os.chmod

    def read_only_once(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path).endswith("os.py") and not refused:
            refused.append(os.fspath(path))
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        real_unlink(path, *args, **kwargs)

    def chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        chmodded.append(os.path.abspath(os.fspath(path)))
        real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", read_only_once)
    monkeypatch.setattr(os, "chmod", chmod)
    fsutil.remove_tree(tree)
    assert refused and not tree.exists()
    assert chmodded == [str(tree / "lib"), str(tree / "lib" / "os.py")]
    assert (into.stat().st_mode & 0o777) == 0o755


# -- field test 5: file URLs of Windows shares ------------------------------------------


def test_a_share_that_pylock_mirror_names_is_a_path_on_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``pylock mirror \\\\server\\share\\mirror`` prints ``file://server/share/mirror``
    (``Path.as_uri``): on Windows that is the share again, not a refused URL."""
    import nturl2path
    import urllib.request

    uri = PureWindowsPath(r"\\server\share\mirror").as_uri()
    assert uri == "file://server/share/mirror"
    monkeypatch.setattr(urllib.request, "url2pathname", nturl2path.url2pathname)
    found = policy.file_path(f"{uri}/20251014/a%2Bb.tar.gz", windows=True)
    assert str(found) == r"\\server\share\mirror\20251014\a+b.tar.gz"
    assert (
        str(policy.file_path("file:///C:/Users/ci/dl.json", windows=True)) == r"C:\Users\ci\dl.json"
    )
    with pytest.raises(PylockError, match="unsupported file URL with a host") as refused:
        policy.file_path(uri, windows=False)
    assert (
        refused.value.hint is not None and "write file:///server/share/mirror" in refused.value.hint
    )


def test_a_file_url_is_decoded_once() -> None:
    # A mirror that keeps upstream's escaped names on disk (a file called `a%2Bb`).
    assert policy.file_path("file:///srv/mirror/a%252Bb", windows=False) == Path(
        "/srv/mirror/a%2Bb"
    )


@pytest.mark.skipif(os.name == "nt", reason="POSIX bytes paths")
def test_the_file_url_of_a_path_that_is_no_utf8_names_that_path(tmp_path: Path) -> None:
    """Locale attack: `pylock mirror DIR` prints `file:///.../mir%FFror/` (Path.as_uri
    encodes the bytes), and the sync it advises could not find it: the URL was decoded as
    UTF-8, `%FF` as U+FFFD (under a Latin-1 locale, `%C3%AF` as `ï`, another byte)."""
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/mir\xffror"))
    odd.mkdir()
    (odd / "a+b.tar.gz").write_bytes(b"x")
    found = policy.file_path(odd.as_uri() + "/a%2Bb.tar.gz", windows=False)
    assert found == odd / "a+b.tar.gz" and found.read_bytes() == b"x"


def test_a_winsock_error_is_told_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows' C library has no text for Winsock codes: "[Errno 10061] Unknown error"."""
    import socket

    from pylock.net.stdhttp import socket_error

    monkeypatch.setattr(
        socket, "errorTab", {10061: "Target machine actively refused it."}, raising=False
    )
    assert str(socket_error(10061)) == "[Errno 10061] Target machine actively refused it."
    refused = socket_error(errno.ECONNREFUSED)  # not in that table: the C library's words
    assert isinstance(refused, ConnectionRefusedError) and "refused" in str(refused)


def test_an_atomic_write_over_a_read_only_file_on_windows_leaves_no_read_only_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows a mode is only the read-only flag: copying a read-only target's made a
    temporary file nothing could delete once the replace failed (they piled up beside a
    Perforce-checked-out pythons.lock). Elsewhere the target's mode is kept."""
    target = tmp_path / "pythons.lock"
    target.write_text("old")
    target.chmod(0o444)
    fsutil.atomic_write_bytes(target, b"new")
    assert (target.stat().st_mode & 0o777) == 0o444
    chmodded: list[str] = []
    monkeypatch.setattr(fsutil, "_WINDOWS", True)
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: chmodded.append(str(path)))
    fsutil.atomic_write_bytes(target, b"newer")
    assert target.read_bytes() == b"newer" and chmodded == []


# -- usable CPUs: the affinity set where there is one, capped by a cgroup CPU quota ----------


def test_usable_cpus_are_the_affinity_set_where_the_system_keeps_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Field test 8: under `taskset -c 0` on two cores, a sync ran two installs side by
    side on one core (``os.cpu_count()`` counts the machine's CPUs)."""
    from pylock import settings
    from pylock.settings import usable_cpus

    monkeypatch.setattr(settings, "cgroup_cpu_limit", lambda: None)  # this machine's own
    monkeypatch.delattr(os, "process_cpu_count", raising=False)  # Python 3.13 has it
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cpus() == 1
    # macOS and Windows have no affinity call: every CPU, and at least one.
    monkeypatch.delattr(os, "sched_getaffinity")
    assert usable_cpus() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus() == 1
    monkeypatch.setattr(os, "process_cpu_count", lambda: 2, raising=False)
    assert usable_cpus() == 2
    # A cgroup CPU quota (`docker run --cpus 1`) caps them, and never raises them.
    monkeypatch.setattr(settings, "cgroup_cpu_limit", lambda: 1)
    assert usable_cpus() == 1
    monkeypatch.setattr(settings, "cgroup_cpu_limit", lambda: 64)
    assert usable_cpus() == 2


def _cgroups(tmp_path: Path, groups: str, files: dict[str, str | bytes]) -> tuple[str, str]:
    """A fake ``/proc/self/cgroup`` saying ``groups``, and a cgroup mount holding ``files``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(groups)
    root = tmp_path / "sys-fs-cgroup"
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    root.mkdir(exist_ok=True)
    return str(proc), str(root)


@pytest.mark.parametrize(
    ("groups", "files", "expected"),
    [
        # cgroup v2 in a container: the group's path is not under the mount, whose top
        # is the container's own group. `docker run --cpus 1.5` rounds up to 2.
        ("0::/system.slice/docker-1.scope\n", {"cpu.max": "150000 100000\n"}, 2),
        ("0::/\n", {"cpu.max": "50000 100000\n"}, 1),
        # No quota anywhere: "max", or no cpu.max file at all.
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),
        ("0::/\n", {}, None),
        # The tightest along the group and its ancestors (a Kubernetes pod's limit).
        (
            "0::/kubepods/pod1/c1\n",
            {"kubepods/pod1/cpu.max": "100000 100000", "kubepods/pod1/c1/cpu.max": "max 100000"},
            1,
        ),
        (
            "0::/a/b\n",
            {"cpu.max": "800000 100000", "a/cpu.max": "300000 100000", "a/b/cpu.max": "max"},
            3,
        ),
        # cgroup v1: the cpu controller's own mount, quota -1 for none.
        (
            "4:memory:/x\n2:cpu,cpuacct:/docker/1\n",
            {
                "cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            2,
        ),
        (
            "1:cpu:/\n",
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            None,
        ),
        # A controller named like cpu is not cpu; other lines are left alone.
        (
            "3:cpuset:/\n",
            {"cpuset/cpu.cfs_quota_us": "100000", "cpuset/cpu.cfs_period_us": "100000"},
            None,
        ),
    ],
)
def test_a_cgroup_cpu_quota_is_read_as_whole_cpus(
    tmp_path: Path, groups: str, files: dict[str, str | bytes], expected: int | None
) -> None:
    """A container's `--cpus` limit is not in its affinity set: a sync in `docker run
    --cpus 1` on a 64-core host counted 64 CPUs, and extracted with threads that the
    quota then throttled."""
    from pylock.settings import cgroup_cpu_limit

    assert cgroup_cpu_limit(*_cgroups(tmp_path, groups, files)) == expected


@pytest.mark.parametrize(
    "content",
    [
        b"",  # truncated
        b"150000",  # no period
        b"-150000 100000",  # negative
        b"150000 0",  # a zero period
        b"150000 -100000",
        b"0 100000",
        b"1.5 1",
        b"\xff\xfe 100000",  # not text
        b"9" * 100_000 + b" 1",  # longer than any such file: read in part, and refused
        b"max max",
    ],
)
def test_a_hostile_cgroup_file_means_no_quota(tmp_path: Path, content: bytes) -> None:
    from pylock.settings import cgroup_cpu_limit

    assert cgroup_cpu_limit(*_cgroups(tmp_path, "0::/\n", {"cpu.max": content})) is None


def test_cgroup_files_that_are_missing_endless_or_escaping_mean_no_quota(tmp_path: Path) -> None:
    from pylock.settings import cgroup_cpu_limit

    # Not Linux: no /proc/self/cgroup.
    assert cgroup_cpu_limit(str(tmp_path / "missing"), str(tmp_path)) is None
    # A directory where the file should be; an endless one (read in part, and it ends).
    proc, root = _cgroups(tmp_path, "0::/\n", {})
    (Path(root) / "cpu.max").mkdir()
    assert cgroup_cpu_limit(proc, root) is None
    (Path(root) / "cpu.max").rmdir()
    (Path(root) / "cpu.max").symlink_to("/dev/zero")
    assert cgroup_cpu_limit(proc, root) is None
    assert cgroup_cpu_limit("/dev/zero", root) is None
    # A FIFO nobody writes to: opening it must not wait for a writer.
    if hasattr(os, "mkfifo"):
        (Path(root) / "cpu.max").unlink()
        os.mkfifo(Path(root) / "cpu.max")
        assert cgroup_cpu_limit(proc, root) is None
        os.mkfifo(tmp_path / "proc-fifo")
        assert cgroup_cpu_limit(str(tmp_path / "proc-fifo"), root) is None
        # One with a writer that has written nothing yet: the read gives None, not bytes.
        writer = os.open(Path(root) / "cpu.max", os.O_RDWR)
        try:
            assert cgroup_cpu_limit(proc, root) is None
        finally:
            os.close(writer)
    # A group path that climbs out of the mount is not followed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cpu.max").write_text("100000 100000")
    proc, root = _cgroups(tmp_path / "up", "0::/../../outside\n", {})
    assert cgroup_cpu_limit(proc, root) is None
    # Garbage lines are passed over; a good line after them still counts.
    proc, root = _cgroups(
        tmp_path / "mixed", "garbage\n::\n0:\n0::/\n", {"cpu.max": "100000 100000"}
    )
    assert cgroup_cpu_limit(proc, root) == 1


def test_a_real_cgroup_cpu_quota_caps_the_usable_cpus(tmp_path: Path) -> None:
    """The kernel's own files, where this machine lets the test make a group (root, with
    the cpu controller as cgroup v1 or v2): a child process in a group with half a CPU."""
    import subprocess
    import uuid

    name = f"pylock-test-{uuid.uuid4().hex[:8]}"
    v1 = Path("/sys/fs/cgroup/cpu")
    v2 = Path("/sys/fs/cgroup")
    if (v1 / "cpu.cfs_quota_us").exists():
        group, limit, join = v1 / name, ("cpu.cfs_quota_us", "50000"), "tasks"
    elif "cpu" in _read_or_empty(v2 / "cgroup.subtree_control").split():
        group, limit, join = v2 / name, ("cpu.max", "50000 100000"), "cgroup.procs"
    else:
        pytest.skip("no cgroup cpu controller here")
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup here: {exc}")
    try:
        (group / limit[0]).write_text(limit[1])
        script = (
            "import os, sys\n"
            f"open({str(group / join)!r}, 'w').write(str(os.getpid()))\n"
            "from pylock.settings import usable_cpus, cgroup_cpu_limit\n"
            "print(cgroup_cpu_limit(), usable_cpus())\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", "1"]
    finally:
        group.rmdir()


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# -- programs pylock runs: found on PATH, never in the current directory ----------------------


def _program(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\necho planted\n")
    path.chmod(0o755)
    return path


def test_programs_are_found_on_path_but_never_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability review: Windows runs a bare `git` from the current directory (the
    checkout under review) before PATH, and shutil.which searches it first there too."""
    from pylock.fsutil import find_program

    planted = _program(tmp_path / "checkout", "git")
    monkeypatch.chdir(tmp_path / "checkout")
    for path in ("", ".", os.pathsep, f".{os.pathsep}checkout", "relative/bin"):
        assert find_program("git", {"PATH": path}) is None
    real = _program(tmp_path / "bin", "git")
    found = find_program("git", {"PATH": os.pathsep.join([".", "", str(real.parent)])})
    assert found == str(real) != str(planted)
    # No PATH at all: the default search path (execvp's and shutil.which's).
    assert find_program("git", {}) == shutil.which("git", path=os.defpath)
    # Not a file, or not executable: passed over.
    (tmp_path / "dir" / "git").mkdir(parents=True)
    (tmp_path / "noexec").mkdir()
    (tmp_path / "noexec" / "git").write_text("")
    both = os.pathsep.join([str(tmp_path / "dir"), str(tmp_path / "noexec"), str(real.parent)])
    if os.name != "nt":
        assert find_program("git", {"PATH": both}) == str(real)


def test_windows_program_lookup_tries_pathext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pylock.fsutil as fsutil

    monkeypatch.setattr(fsutil, "_WINDOWS", True)
    helper = _program(tmp_path / "bin", "docker-credential-desktop.EXE")
    env = {"PATH": f'"{tmp_path / "bin"}"', "PATHEXT": ".COM;.EXE"}
    assert fsutil.find_program("docker-credential-desktop", env) == str(helper)
    assert fsutil.find_program("docker-credential-desktop.EXE", env) == str(helper)
    assert fsutil.find_program("docker-credential-desktop", {**env, "PATHEXT": ".BAT"}) is None


def test_diff_and_credential_helpers_run_no_program_planted_in_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pylock.errors import GitError
    from pylock.net.dockerauth import run_helper
    from pylock.review import read_lock_at_ref
    from pylock.settings import Settings

    project = tmp_path / "checkout"
    _program(project, "git")
    marker = tmp_path / "the planted helper ran"
    helper = _program(project, "docker-credential-planted")
    helper.write_text(f'#!/bin/sh\ntouch "{marker}"\necho \'{{"Username": "u", "Secret": "s"}}\'\n')
    monkeypatch.chdir(project)
    with pytest.raises(GitError, match="git is not installed"):
        read_lock_at_ref(
            project, "main", settings=Settings.from_environ({"PATH": os.pathsep.join(["", "."])})
        )
    notes: list[str] = []
    settings = Settings.from_environ({"PATH": "."})
    assert run_helper("planted", "r.example", settings=settings, debug=notes.append) is None
    assert notes == ["credential helper docker-credential-planted is not on PATH"]
    assert not marker.exists()


def test_fixups_write_in_binary_mode_where_the_system_has_a_text_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability review: fix-ups opened their rewrite without O_BINARY, so on Windows
    (a sync for a Linux target) every LF became CRLF, and the record hashed the damage."""
    from pylock.sync import fixups

    binary = 0x8000  # Windows' value; 0 or absent elsewhere
    monkeypatch.setattr(os, "O_BINARY", binary, raising=False)
    opened: list[int] = []
    real_open = os.open

    def spying_open(path: Any, flags: int, mode: int = 0o777) -> int:
        opened.append(flags)
        return real_open(path, flags & ~binary, mode)

    monkeypatch.setattr(os, "open", spying_open)
    target = tmp_path / "x.pc"
    target.write_text("prefix=/install\n", encoding="utf-8")
    fixups._replace(target, "prefix=/opt/app\n")
    assert target.read_bytes() == b"prefix=/opt/app\n"
    assert opened and all(flags & binary for flags in opened)


def test_the_cache_moves_fresh_files_patiently_on_windows(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability review: the first move of a freshly downloaded archive (and the
    sidecar's, the eviction's) was a bare os.replace/os.rename, which a virus scanner
    holding the file fails at once on Windows; fsutil's moves retry for a moment."""
    import hashlib

    as_on_windows = {**(fsutil._patiently.__kwdefaults__ or {}), "windows": True}
    monkeypatch.setattr(fsutil._patiently, "__kwdefaults__", as_on_windows)
    held_once: set[tuple[str, str]] = set()

    def scanned(real: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def move(source: Any, target: Any) -> None:
            key = (real.__name__, str(source))
            if key not in held_once:  # a scanner looks at each fresh file once, briefly
                held_once.add(key)
                raise PermissionError(13, "The process cannot access the file", str(source))
            real(source, target)

        return move

    monkeypatch.setattr(os, "replace", scanned(os.replace))
    monkeypatch.setattr(os, "rename", scanned(os.rename))
    data = b"archive bytes"
    sha = hashlib.sha256(data).hexdigest()
    partial = cache.new_tmp_path(sha)
    partial.write_bytes(data)
    stored = cache.store(sha, "a.tar.gz", partial)
    assert stored.read_bytes() == data
    cache.put_sidecar(sha, ".digests", b"{}")
    assert cache.sidecar(sha, ".digests") == b"{}"
    assert cache.evict(sha)
    assert cache.lookup(sha) is None
    assert len(held_once) >= 4  # the archive, staging, the sidecar, the eviction
