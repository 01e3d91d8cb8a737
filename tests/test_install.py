"""Tests for pylock.sync.install: atomic installs, crash recovery, locking, prune, verify."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from pylock import cli
from pylock.errors import ArchiveError, HashMismatchError, InstallError
from pylock.lockfile import Artifact, LockedPython, dumps, loads, make_lock
from pylock.platforms import Platform, host
from pylock.progress import NullReporter, Reporter
from pylock.sync.install import (
    Fixup,
    executable,
    install,
    installed_names,
    prune,
    verify,
)
from pylock.sync.records import installed_state, is_current, read_record
from pylock.versions import ArchiveFormat, Flavor, Implementation
from tests import archives
from tests.archives import Entry
from tests.indexdata import locked_python

LINUX = Platform.parse("linux-x86_64-gnu")
WINDOWS = Platform.parse("windows-x86_64")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks and signals")


def make_archive(
    tmp_path: Path, label: str, entries: list[Entry], fmt: ArchiveFormat = ArchiveFormat.TAR_GZ
) -> tuple[Path, Artifact]:
    path = archives.write_archive(
        tmp_path / f"cpython-{label}-install_only{archives.suffix(fmt)}", entries, fmt
    )
    artifact = Artifact(
        platform=LINUX.key,
        url=f"https://example.invalid/{path.name}",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size=path.stat().st_size,
    )
    return path, artifact


def locked(
    artifact: Artifact,
    *,
    name: str = "app",
    version: str = "3.12.7",
    implementation: Implementation = Implementation.CPYTHON,
    flavor: Flavor | None = Flavor.INSTALL_ONLY,
) -> LockedPython:
    return locked_python(
        name, version, "20241016", [artifact], implementation=implementation, flavor=flavor
    )


def version_tree(marker: str, *, files: int = 0, size: int = 0) -> list[Entry]:
    """A PBS install_only tree whose contents say which version it is."""
    entries = [*archives.pbs_install_only(), archives.file("python/VERSION", marker.encode())]
    for i in range(files):
        entries.append(archives.file(f"python/lib/pkg{i % 20}/mod{i}.py", marker.encode() * size))
    return entries


class NoFixups:
    """Fix-ups that find nothing to change."""

    def __init__(self, tmp_tree: Path, final: Path, warn: Callable[[str], None]) -> None:
        pass

    def written(self, rel: str) -> None:
        pass

    def apply(self) -> list[str]:
        return []


def do_install(
    archive: Path,
    artifact: Artifact,
    dest_root: Path,
    *,
    python: LockedPython | None = None,
    fixup: Fixup | None = None,
    if_needed: bool = False,
    platform: Platform = LINUX,
    reporter: Reporter | None = None,
) -> Path:
    python = python or locked(artifact)
    install(
        archive,
        dest_root=dest_root,
        python=python,
        artifact=artifact,
        platform=platform,
        fixup=fixup,
        reporter=reporter or NullReporter(),
        if_needed=if_needed,
    )
    return dest_root.absolute() / python.name


def v1_installed_v2_ready(tmp_path: Path) -> tuple[Path, Path, Artifact]:
    """``app`` v1 installed into ``tmp_path/d``, and v2's archive and artifact, for an
    upgrade to try: the install root, then v2's archive and artifact."""
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1"))
    a2, art2 = make_archive(tmp_path, "v2", version_tree("v2"))
    do_install(a1, art1, dest_root)
    return dest_root, a2, art2


def leftovers(dest_root: Path) -> list[str]:
    return sorted(
        n for n in os.listdir(dest_root) if n.startswith(".pylock-") and n != ".pylock-locks"
    )


# -- installing -------------------------------------------------------------------------------


@posix_only
def test_install_layout_and_record(tmp_path: Path) -> None:
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    dest_root = tmp_path / "pythons"
    tree = do_install(archive, artifact, dest_root)
    assert tree == dest_root / "app"
    assert (tree / "VERSION").read_text() == "v1"
    assert os.readlink(tree / "bin/python3") == "python3.12"
    document = json.loads((tree / ".pylock/install.json").read_text())
    assert document["installer"] == "pylock"
    assert document["artifact"]["sha256"] == artifact.sha256
    assert document["python"]["version"] == "3.12.7"
    record = {e.path: e for e in read_record(tree)}
    assert record["VERSION"].sha256 == hashlib.sha256(b"v1").hexdigest()
    assert record["bin/python3"].link == "python3.12"
    assert record["bin/python3.12"].executable
    assert (tree / ".pylock/RECORD").read_text().splitlines()[0].count(",") == 3
    state = installed_state(dest_root, "app")
    assert state is not None
    assert (state.sha256, state.url, state.platform) == (artifact.sha256, artifact.url, LINUX.key)
    assert is_current(state, artifact)
    assert not is_current(state, Artifact(platform=LINUX.key, url="x", sha256="0" * 64))
    assert installed_names(dest_root) == ["app"]
    assert verify(dest_root, "app").ok
    assert leftovers(dest_root) == []


@posix_only
def test_installed_tree_is_readable_by_other_users(tmp_path: Path) -> None:
    # A Docker image's non-root users must be able to run the interpreter.
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    old = os.umask(0o022)
    try:
        tree = do_install(archive, artifact, tmp_path / "pythons")
    finally:
        os.umask(old)
    assert (tree.stat().st_mode & 0o777) == 0o755
    assert ((tree / "bin").stat().st_mode & 0o777) == 0o755


def test_installed_state_is_none_for_foreign_or_broken(tmp_path: Path) -> None:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "broken/.pylock").mkdir(parents=True)
    (tmp_path / "broken/.pylock/install.json").write_text("{not json")
    (tmp_path / "other/.pylock").mkdir(parents=True)
    (tmp_path / "other/.pylock/install.json").write_text('{"installer": "someone-else"}')
    for name in ("missing", "foreign", "broken", "other"):
        assert installed_state(tmp_path, name) is None
    assert installed_names(tmp_path) == []


def test_installed_state_imports_nothing_heavy(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pylock.sync.records import installed_state, is_current
        installed_state(Path({str(tmp_path)!r}), "app")
        heavy = {{"filelock", "zstandard", "aiohttp", "cattrs", "asyncio",
                  "pylock.archive.extract", "pylock.archive.writer"}}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@posix_only
def test_adds_bin_python_for_older_pbs(tmp_path: Path) -> None:
    archive, artifact = make_archive(tmp_path, "old", archives.pbs_install_only(python_link=False))
    tree = do_install(archive, artifact, tmp_path / "d")
    assert os.readlink(tree / "bin/python") == "python3.12"
    assert {e.path: e for e in read_record(tree)}["bin/python"].link == "python3.12"
    assert verify(tmp_path / "d", "app").ok


@posix_only
def test_no_bin_python_is_added_through_a_symlinked_bin(tmp_path: Path) -> None:
    """Attack: ``bin`` a link to ``lib/real``: the added ``bin/python`` landed in
    ``lib/real``, unrecorded under that name, and ``verify`` failed on a fresh install."""
    entries = [
        archives.exe("python/lib/real/python3.12", b"#!fake\n"),
        archives.symlink("python/lib/real/python3", "python3.12"),
        archives.symlink("python/bin", "lib/real"),
    ]
    archive, artifact = make_archive(tmp_path, "linked", entries)
    tree = do_install(archive, artifact, tmp_path / "d")
    assert not os.path.lexists(tree / "lib/real/python")
    assert verify(tmp_path / "d", "app").ok


@posix_only
def test_fixup_changes_are_recorded(tmp_path: Path) -> None:
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    calls: list[tuple[Path, Path]] = []

    written: list[str] = []

    class Patch:
        def __init__(self, tmp_tree: Path, final: Path, warn: Callable[[str], None]) -> None:
            calls.append((tmp_tree, final))
            assert tmp_tree.name.startswith(".pylock-tmp-app-")
            self.tmp_tree = tmp_tree
            self.final = final

        def written(self, rel: str) -> None:
            assert (self.tmp_tree / rel).is_file()
            written.append(rel)

        def apply(self) -> list[str]:
            (self.tmp_tree / "VERSION").write_text(f"patched for {self.final}")
            (self.tmp_tree / "lib/python3.12/os.py").unlink()
            (self.tmp_tree / "lib/python3.12/__pycache__").mkdir()
            (self.tmp_tree / "new.txt").write_text("added")
            return ["VERSION", "lib/python3.12/os.py", "new.txt"]

    dest_root = tmp_path / "d"
    tree = do_install(archive, artifact, dest_root, fixup=Patch)
    assert calls[0][1] == tree
    # Told of every regular file as it was written, and of nothing else.
    regular = [
        e.name.removeprefix("python/")
        for e in version_tree("v1")
        if e.kind == "file" and e.name.startswith("python/")
    ]
    assert sorted(written) == sorted(regular)
    record = {e.path: e for e in read_record(tree)}
    assert record["VERSION"].sha256 == hashlib.sha256(f"patched for {tree}".encode()).hexdigest()
    assert "lib/python3.12/os.py" not in record
    assert record["new.txt"].size == 5
    assert verify(dest_root, "app").ok
    state = installed_state(dest_root, "app")
    assert state is not None and is_current(state, artifact)
    # A tree moved elsewhere carries the old path in its patched files: not current there.
    moved = tmp_path / "moved"
    shutil.move(str(dest_root), moved)
    state = installed_state(moved, "app")
    assert state is not None and not is_current(state, artifact)


@posix_only
def test_a_tree_the_fixups_left_alone_stays_current_once_moved(tmp_path: Path) -> None:
    """PyPy, GraalPy and Windows trees: the fix-ups ran but wrote no path into them."""
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    dest_root = tmp_path / "d"
    do_install(archive, artifact, dest_root, fixup=NoFixups)
    moved = tmp_path / "moved"
    shutil.move(str(dest_root), moved)
    state = installed_state(moved, "app")
    assert state is not None and state.fixed_up_for is None
    assert is_current(state, artifact)


@posix_only
def test_a_tree_reached_by_another_spelling_of_its_path_stays_current(tmp_path: Path) -> None:
    """Portability review: on macOS `~/Projects/app` and `~/projects/app` are one directory
    that realpath spells two ways, and every sync reinstalled. A bind mount (Docker's
    volumes) is the same case on Linux: the test makes one where it may."""
    import subprocess

    class PathFixups(NoFixups):
        def __init__(self, tmp_tree: Path, final: Path, warn: Callable[[str], None]) -> None:
            self.tmp_tree, self.final = tmp_tree, final

        def apply(self) -> list[str]:
            (self.tmp_tree / "VERSION").write_text(f"patched for {self.final}")
            return ["VERSION"]

    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    dest_root = tmp_path / "d"
    do_install(archive, artifact, dest_root, fixup=PathFixups)
    other = tmp_path / "other-spelling"
    other.mkdir()
    if subprocess.run(
        ["mount", "--bind", str(dest_root), str(other)], capture_output=True
    ).returncode:
        pytest.skip("cannot make a bind mount here")
    try:
        state = installed_state(other, "app")
        assert state is not None and state.fixed_up_for == str(dest_root / "app")
        assert is_current(state, artifact)
    finally:
        subprocess.run(["umount", str(other)], check=True)


@pytest.mark.parametrize(("winerror", "hinted"), [(206, True), (3, True), (5, False)])
def test_a_path_past_max_path_on_windows_gets_the_long_path_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, winerror: int, hinted: bool
) -> None:
    """Windows without long paths reports a path past MAX_PATH as error 206 or 3 (errno
    ENOENT or EINVAL), not ENAMETOOLONG: the hint about a shorter --into was lost."""
    import errno

    import pylock.sync.install

    class WindowsError(OSError):
        pass

    long_name = str(tmp_path / ("x" * 250))

    def too_long(*args: object, **kwargs: object) -> None:
        error = WindowsError(errno.ENOENT, "The system cannot find the path", long_name)
        error.winerror = winerror  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(pylock.sync.install, "_install_locked", too_long)
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    with pytest.raises(InstallError) as caught:
        do_install(archive, artifact, tmp_path / "d")
    assert ("try a shorter --into path" in (caught.value.hint or "")) is hinted


def test_an_upgrade_windows_refuses_for_a_tree_in_use_says_to_close_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability review: a python.exe running from NAME makes Windows refuse the rename of
    the old tree; the error said only "Access is denied"."""
    import pylock.sync.install

    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    do_install(archive, artifact, dest_root)

    class WindowsError(OSError):
        pass

    def in_use(*args: object, **kwargs: object) -> None:
        error = WindowsError(13, "Access is denied", str(dest_root / "app"))
        error.winerror = 5  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(pylock.sync.install, "_install_locked", in_use)
    with pytest.raises(InstallError) as caught:
        do_install(archive, artifact, dest_root)
    assert caught.value.hint == (
        f"close what runs {dest_root.absolute() / 'app'} (python.exe, virtualenvs made from it, "
        "IDEs), or let an antivirus scan of it end, then run `pylock sync` again"
    )


@posix_only
def test_atomic_upgrade(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1", files=30, size=10))
    a2, art2 = make_archive(tmp_path, "v2", version_tree("v2", files=5, size=10))
    do_install(a1, art1, dest_root)
    tree = do_install(a2, art2, dest_root)
    assert (tree / "VERSION").read_text() == "v2"
    assert not (tree / "lib/pkg10").exists()  # only in v1: nothing of the old tree is left
    state = installed_state(dest_root, "app")
    assert state is not None and is_current(state, art2)
    assert verify(dest_root, "app").ok
    assert leftovers(dest_root) == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_ctrl_c_around_the_swap_rename_keeps_an_interpreter_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Crash attack: Ctrl-C (or SIGTERM) between an upgrade's two renames left NAME absent:
    the old tree was put back only on an OSError. Before the new tree's rename, the old one
    goes back; after it, the new one stays."""
    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    real_rename = os.rename

    def interrupted(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        moving_in = os.path.basename(os.fspath(source)).startswith(".pylock-tmp-")
        if moving_in and when == "before":
            raise KeyboardInterrupt
        real_rename(source, target, *args, **kwargs)
        if moving_in:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        do_install(a2, art2, dest_root)
    monkeypatch.setattr(os, "rename", real_rename)
    assert (dest_root / "app/VERSION").read_text() == ("v1" if when == "before" else "v2")
    assert verify(dest_root, "app").ok


@posix_only
@pytest.mark.parametrize("after", ["the old tree's rename", "the new tree's rename"])
def test_a_signal_between_the_renames_waits_for_the_swap_to_be_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    """Signal attack: a SIGTERM whose handler ran just after the old tree's rename left no
    NAME at all (the new tree deleted, the old one under .pylock-old-); just after the new
    tree's, it left the old one there. The signal waits for the swap now, then is raised."""
    import signal

    from pylock.interrupts import Terminated, sigterm_as_interrupt

    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    real_rename = os.rename
    prefix = ".pylock-old-" if after == "the old tree's rename" else ".pylock-tmp-"

    def signalled(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        real_rename(source, target, *args, **kwargs)
        names = os.path.basename(os.fspath(source)), os.path.basename(os.fspath(target))
        if any(name.startswith(prefix) for name in names):
            os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode

    monkeypatch.setattr(os, "rename", signalled)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        do_install(a2, art2, dest_root)
    monkeypatch.setattr(os, "rename", real_rename)
    assert (dest_root / "app/VERSION").read_text() == "v2"
    assert verify(dest_root, "app").ok
    assert leftovers(dest_root) == []


def install_saying(archive: Path, artifact: Artifact, dest_root: Path) -> str:
    """Install ``archive`` as app for Linux, without fix-ups; what it said."""
    stream = io.StringIO()
    do_install(archive, artifact, dest_root, reporter=Reporter(stream, live=False))
    return stream.getvalue()


def assert_only_app(dest_root: Path, version: str) -> None:
    """``DIR/app`` is the tree of ``version``, intact, and nothing of pylock's is left."""
    assert (dest_root / "app/VERSION").read_text() == version
    assert verify(dest_root, "app").ok
    assert leftovers(dest_root) == []


def refuse_removing(
    monkeypatch: pytest.MonkeyPatch, prefix: str, error: OSError, blocker: str
) -> None:
    """Make ``remove_tree`` of a tree named ``prefix...`` fail with ``error``, naming the file
    ``blocker`` in it (an immutable file, a file in use)."""
    import pylock.fsutil

    real_remove = pylock.fsutil.remove_tree

    def refused(path: Path, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(path).startswith(prefix):
            error.filename = str(Path(path) / blocker)
            raise error
        real_remove(path, *args, **kwargs)

    monkeypatch.setattr(pylock.fsutil, "remove_tree", refused)


def refuse_renames_to_the_trash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse renames to ``.pylock-trash-*``, as Windows does for a tree with a file in use."""
    real_rename = os.rename

    def in_use(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(os.fspath(target)).startswith(".pylock-trash-"):
            raise PermissionError(13, "The process cannot access the file", os.fspath(source))
        real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", in_use)


def test_an_upgrade_whose_old_tree_cannot_be_moved_aside_still_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows a file in use (or a scanner) can refuse the rename of the old tree to
    the trash after the new tree is in place: that install succeeded, and said it failed
    (field test 5). The old tree is junk: it is removed where it is."""
    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    refuse_renames_to_the_trash(monkeypatch)
    do_install(a2, art2, dest_root)
    # The old tree removed where it was (it used to stay, with no word, until a later sync).
    assert_only_app(dest_root, "v2")


def test_an_old_tree_that_can_be_neither_moved_nor_removed_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync attack follow-up: an old tree whose rename to the trash was refused stayed
    under its .pylock-old- name with no warning; it is junk, not an upgrade to undo."""
    from pylock.sync.install import clean_leftovers

    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    refuse_renames_to_the_trash(monkeypatch)
    denied = PermissionError(13, "Permission denied")
    refuse_removing(monkeypatch, ".pylock-old-", denied, "bin/python3")
    said = install_saying(a2, art2, dest_root)
    (old,) = [dest_root / name for name in leftovers(dest_root)]
    assert old.name.startswith(".pylock-old-app-")
    assert f"could not remove {old} yet: Permission denied ({old / 'bin/python3'})" in said
    assert (dest_root / "app/VERSION").read_text() == "v2"
    # Pruned before the old tree could go: it is junk, not an upgrade to undo (it came
    # back as app v1 under a later sync, the lock no longer naming it).
    monkeypatch.undo()
    shutil.rmtree(dest_root / "app")
    clean_leftovers(dest_root)
    assert leftovers(dest_root) == []
    assert not (dest_root / "app").exists()


def test_an_old_tree_that_cannot_be_removed_is_named_by_the_upgrade_that_left_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync attack: an immutable file in the old tree left it as trash, silently; later
    syncs warned `could not remove .pylock-trash-app-... yet`, with no directory, no file
    and no advice."""
    from pylock.sync.install import clean_leftovers

    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    immutable = PermissionError(1, "Operation not permitted")
    refuse_removing(monkeypatch, ".pylock-trash-", immutable, "lib/os.py")
    said = install_saying(a2, art2, dest_root)
    (trash,) = [dest_root / name for name in leftovers(dest_root)]
    expected = (
        f"could not remove {trash} yet: Operation not permitted ({trash / 'lib/os.py'}); "
        "the next sync tries again (if it keeps failing, remove it by hand)"
    )
    assert expected in said
    stream = io.StringIO()
    clean_leftovers(dest_root, Reporter(stream, live=False))
    assert expected in stream.getvalue()  # and again, the same, by the next sync
    monkeypatch.undo()
    clean_leftovers(dest_root)
    assert leftovers(dest_root) == []


def test_a_file_list_too_large_to_read_back_is_never_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scale attack: 110,000 members with long names wrote a 72 MB RECORD, which its
    reader (64 MiB at most) refused: `verify` failed for ever, and its hint, a reinstall,
    wrote the same record again. The install is refused instead, and leaves nothing."""
    import pylock.sync.records

    monkeypatch.setattr(pylock.sync.records, "_RECORD_MAX_BYTES", 2000)
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1", files=40))
    dest_root = tmp_path / "d"
    with pytest.raises(InstallError, match="the archive's file list is too large to record"):
        do_install(archive, artifact, dest_root)
    assert not (dest_root / "app").exists()
    assert leftovers(dest_root) == []


@posix_only
def test_if_needed_skips_a_current_install(tmp_path: Path) -> None:
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    dest_root = tmp_path / "d"
    do_install(archive, artifact, dest_root)
    inode = (dest_root / "app/.pylock/install.json").stat().st_ino
    do_install(archive, artifact, dest_root, if_needed=True)
    assert (dest_root / "app/.pylock/install.json").stat().st_ino == inode
    do_install(archive, artifact, dest_root)  # a reinstall
    assert (dest_root / "app/.pylock/install.json").stat().st_ino != inode


@posix_only
@pytest.mark.parametrize("failure", ["hash", "hostile", "reserved", "reserved-directory"])
def test_failed_upgrade_keeps_old_install(tmp_path: Path, failure: str) -> None:
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1"))
    do_install(a1, art1, dest_root)
    before = archives.snapshot(dest_root / "app")
    if failure == "hash":
        a2, art2 = make_archive(tmp_path, "v2", version_tree("v2"))
        art2 = Artifact(platform=LINUX.key, url=art2.url, sha256="1" * 64)
        expected: type[Exception] = HashMismatchError
    elif failure == "hostile":
        entries = [*version_tree("v2"), archives.symlink("python/lib/x", "../../../etc")]
        a2, art2 = make_archive(tmp_path, "v2", entries)
        expected = ArchiveError
    elif failure == "reserved":
        entries = [*version_tree("v2"), archives.file("python/.pylock/install.json", b"{}")]
        a2, art2 = make_archive(tmp_path, "v2", entries)
        expected = ArchiveError
    else:
        # Code review: a directory alone got past the check, and failed later with
        # "File exists (writing .pylock of the new tree)".
        entries = [*version_tree("v2"), archives.directory("python/.pylock")]
        a2, art2 = make_archive(tmp_path, "v2", entries)
        expected = ArchiveError
    with pytest.raises(expected) as caught:
        do_install(a2, art2, dest_root)
    if failure.startswith("reserved"):
        assert "the archive has its own .pylock/" in str(caught.value)
    assert (dest_root / "app/VERSION").read_text() == "v1"
    assert archives.snapshot(dest_root / "app") == before
    assert verify(dest_root, "app").ok
    assert leftovers(dest_root) == []


@posix_only
def test_a_file_system_without_symlinks_is_named_by_the_link_not_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability: on a FAT drive (Linux's vfat says EPERM) the install failed with
    "Operation not permitted (python3.12)": os.symlink names the link's target first,
    which is no file of the tree, and nothing said a symlink was what failed."""
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))

    def no_symlinks(target: str, link: str, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(1, "Operation not permitted", target, None, link)

    monkeypatch.setattr(os, "symlink", no_symlinks)
    with pytest.raises(InstallError) as caught:
        do_install(archive, artifact, dest_root)
    assert str(caught.value) == (
        f"cannot install app into {dest_root}: cannot create a symlink: Operation not "
        "permitted (writing bin/python of the new tree)"
    )
    assert leftovers(dest_root) == []


@posix_only
def test_a_second_ctrl_c_during_the_clean_up_still_removes_the_temporary_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test 8: two Ctrl-C a few milliseconds apart left half a `.pylock-tmp-*` tree:
    the second cut short the clean-up after the first."""
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    real_rmtree = shutil.rmtree
    calls: list[str] = []

    def interrupted_rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(str(path))
        if len(calls) == 1:
            next(Path(path).rglob("*.py")).unlink()  # some of it is gone, not all
            raise KeyboardInterrupt  # the second Ctrl-C
        real_rmtree(path, *args, **kwargs)

    class FirstCtrlC(NoFixups):
        def apply(self) -> list[str]:
            monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        do_install(archive, artifact, dest_root, fixup=FirstCtrlC)
    assert len(calls) == 2
    assert leftovers(dest_root) == []
    assert not (dest_root / "app").exists()


def test_a_second_ctrl_c_as_the_progress_line_ends_still_removes_the_temporary_tree(
    tmp_path: Path,
) -> None:
    """Field test (Docker, `timeout` sends SIGTERM twice): the second came while the
    install's progress line was ended, before the clean-up began, which it skipped."""
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))

    class FirstCtrlC(NoFixups):
        def apply(self) -> list[str]:
            raise KeyboardInterrupt

    class SecondCtrlC(NullReporter):
        def _on_done(self, task: Any, message: str | None) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        do_install(archive, artifact, dest_root, fixup=FirstCtrlC, reporter=SecondCtrlC())
    assert leftovers(dest_root) == []
    assert not (dest_root / "app").exists()


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    (dest_root / "app").mkdir(parents=True)
    (dest_root / "app/precious.txt").write_text("mine")
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    with pytest.raises(InstallError, match="not installed by pylock"):
        do_install(archive, artifact, dest_root)
    assert os.listdir(dest_root / "app") == ["precious.txt"]
    assert leftovers(dest_root) == []


def test_direct_url_layout_is_detected(tmp_path: Path) -> None:
    archive, artifact = make_archive(tmp_path, "direct", archives.pbs_full())
    python = attrs.evolve(locked(artifact), build=None, flavor=None)
    tree = do_install(archive, artifact, tmp_path / "d", python=python)
    assert (tree / "lib/python3.12/os.py").exists()
    assert not (tree / "PYTHON.json").exists()


# -- crash recovery ---------------------------------------------------------------------------


@posix_only
def test_recovers_from_a_kill_between_the_two_renames(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1"))
    a2, art2 = make_archive(tmp_path, "v2", version_tree("v2"))
    do_install(a1, art1, dest_root)
    # The state a kill leaves after `NAME -> .pylock-old-NAME-*` and before the new tree
    # moved in: no DIR/NAME, the old tree aside, a (possibly incomplete) new one.
    os.rename(dest_root / "app", dest_root / ".pylock-old-app-deadbeef")
    (dest_root / ".pylock-tmp-app-abc123").mkdir()
    (dest_root / ".pylock-tmp-app-abc123/half").write_text("partial")
    (dest_root / ".pylock-trash-app-0badf00d").mkdir()
    (dest_root / ".pylock-tmp-app2-zzz").mkdir()  # another name's: not ours to touch
    tree = do_install(a1, art1, dest_root, if_needed=True)
    assert (tree / "VERSION").read_text() == "v1"  # restored, and current: nothing to do
    assert leftovers(dest_root) == [".pylock-tmp-app2-zzz"]
    tree = do_install(a2, art2, dest_root)
    assert (tree / "VERSION").read_text() == "v2"
    assert verify(dest_root, "app").ok


def _install_script(tmp_path: Path) -> Path:
    script = tmp_path / "do_install.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path
            from pylock.sync.install import install
            from pylock.lockfile import Artifact, LockedPython
            from pylock.platforms import Platform
            from pylock.progress import NullReporter

            archive, dest_root, sha256, name = sys.argv[1:5]
            artifact = Artifact(platform="linux-x86_64-gnu", url="https://x.invalid/a.tar.gz",
                                sha256=sha256)
            python = LockedPython(name=name, implementation="cpython", version="3.12.7",
                                  build="20241016", flavor="install_only", artifacts=(artifact,))
            print("start", flush=True)
            install(Path(archive), dest_root=Path(dest_root), python=python, artifact=artifact,
                    platform=Platform.parse("linux-x86_64-gnu"), reporter=NullReporter())
            print("done", flush=True)
            """
        )
    )
    return script


def _assert_whole(dest_root: Path, allowed: dict[str, str]) -> str | None:
    """DIR/NAME is absent or a complete tree of one of the allowed versions."""
    tree = dest_root / "app"
    if not tree.exists():
        return None
    state = installed_state(dest_root, "app")
    assert state is not None, "a tree without a record is visible under DIR/NAME"
    version = (tree / "VERSION").read_text()
    assert allowed[version] == state.sha256
    report = verify(dest_root, "app")
    assert report.ok and not report.extra, report
    return version


@posix_only
@pytest.mark.slow
def test_kill_mid_install_then_rerun(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1", files=100, size=100))
    a2, art2 = make_archive(tmp_path, "v2", version_tree("v2", files=800, size=1000))
    allowed = {"v1": art1.sha256, "v2": art2.sha256}
    script = _install_script(tmp_path)
    do_install(a1, art1, dest_root)
    rng = random.Random(1234)
    outcomes = set()
    mid_extraction = 0
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(a2), str(dest_root), art2.sha256, "app"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "start"
        if round_ % 2:
            # Wait for the extraction to begin, then kill it somewhere inside.
            deadline = time.monotonic() + 10
            while not any(n.startswith(".pylock-tmp-app-") for n in os.listdir(dest_root)):
                assert time.monotonic() < deadline
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.03))
        else:
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        mid_extraction += any(n.startswith(".pylock-tmp-app-") for n in os.listdir(dest_root))
        outcomes.add(_assert_whole(dest_root, allowed))
        # The rerun completes, whatever the kill left behind.
        tree = do_install(a2, art2, dest_root)
        assert (tree / "VERSION").read_text() == "v2"
        assert _assert_whole(dest_root, allowed) == "v2"
        assert leftovers(dest_root) == []
        # Back to v1 for the next round, so every kill interrupts an upgrade.
        do_install(a1, art1, dest_root)
    assert mid_extraction >= 1
    assert "v1" in outcomes


@posix_only
@pytest.mark.slow
def test_concurrent_installs_into_one_directory(tmp_path: Path) -> None:
    script = _install_script(tmp_path)
    dest_root = tmp_path / "d"
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1", files=300, size=500))
    a2, art2 = make_archive(tmp_path, "v2", version_tree("v2", files=300, size=500))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(archive), str(dest_root), art.sha256, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for archive, art, name in [
            (a1, art1, "app"),
            (a2, art2, "app"),
            (a1, art1, "app"),
            (a2, art2, "other"),
        ]
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.split() == ["start", "done"]
    assert _assert_whole(dest_root, {"v1": art1.sha256, "v2": art2.sha256}) in ("v1", "v2")
    assert verify(dest_root, "other").ok
    assert leftovers(dest_root) == []
    assert installed_names(dest_root) == ["app", "other"]


def test_full_disk_keeps_the_old_install(tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    mount = tmpfs("size=2m")
    a1, art1 = make_archive(tmp_path, "v1", version_tree("v1"))
    big = [*version_tree("v2"), archives.file("python/lib/big.bin", os.urandom(3 << 20))]
    a2, art2 = make_archive(tmp_path, "v2", big)
    do_install(a1, art1, mount)
    with pytest.raises(InstallError, match="No space left on device") as info:
        do_install(a2, art2, mount)
    assert info.value.hint is not None and "disk space" in info.value.hint
    assert_only_app(mount, "v1")


# -- prune ------------------------------------------------------------------------------------


def test_prune_keeps_a_tree_in_use_with_a_warning_and_removes_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows refuses to move a directory whose python.exe runs: that failed the whole
    sync after its installs (field test 5). The tree is kept, said, and pruned later."""
    from tests.test_live import Recorder

    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    for name in ("keep", "busy", "drop"):
        do_install(archive, artifact, dest_root, python=locked(artifact, name=name))
    real_rename = os.rename

    class WindowsError(PermissionError):
        winerror = 32  # ERROR_SHARING_VIOLATION

    def in_use(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(os.fspath(source)) == "busy":
            raise WindowsError(13, "Access is denied", os.fspath(source))
        real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", in_use)
    # Elsewhere a permission error does not pass by itself: it fails the prune.
    WindowsError.winerror = None  # type: ignore[assignment]
    removed, error = prune(dest_root, keep={"keep", "drop"})
    assert removed == [] and isinstance(error, InstallError)
    assert str(error) == f"cannot prune busy from {dest_root}: Access is denied"
    WindowsError.winerror = 32
    reporter = Recorder()
    assert prune(dest_root, keep={"keep"}, reporter=reporter) == (["drop"], None)
    (warning,) = reporter.warnings
    assert warning.startswith(f"could not remove busy (no longer in the lock) from {dest_root}")
    assert warning.endswith("Access is denied; the next sync tries again")
    assert verify(dest_root, "busy").ok
    monkeypatch.setattr(os, "rename", real_rename)
    assert prune(dest_root, keep={"keep"}) == (["busy"], None)


def test_a_tree_prune_cannot_remove_does_not_keep_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prune attack: the first tree that could not be removed stopped the prune, and the
    trees after it (by name) waited for the next sync. They are removed now, and the
    error names every tree that stays."""
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    for name in ("abusy", "bdrop", "cbusy", "keep"):
        do_install(archive, artifact, dest_root, python=locked(artifact, name=name))
    real_rename = os.rename

    def refused(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(os.fspath(source)) in ("abusy", "cbusy"):
            raise PermissionError(13, "Permission denied", os.fspath(source))
        real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", refused)
    removed, error = prune(dest_root, keep={"keep"})
    assert removed == ["bdrop"] and not (dest_root / "bdrop").exists()
    assert str(error) == (
        f"cannot prune abusy from {dest_root}: Permission denied "
        "(and cbusy, which could not be removed either)"
    )
    assert isinstance(error, InstallError) and isinstance(error.__cause__, PermissionError)
    assert verify(dest_root, "abusy").ok and verify(dest_root, "cbusy").ok


@posix_only
def test_prune_removes_only_unkept_pylock_installs(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    for name in ("keep", "drop1", "drop2"):
        do_install(archive, artifact, dest_root, python=locked(artifact, name=name))
    (dest_root / "foreign").mkdir()
    (dest_root / "foreign/file").write_text("not ours")
    (dest_root / "notes.txt").write_text("not ours either")
    (dest_root / ".pylock-state").write_text("the CLI's state file")
    (dest_root / "fake/.pylock").mkdir(parents=True)
    (dest_root / "fake/.pylock/install.json").write_text('{"installer": "other"}')
    (dest_root / "link").symlink_to(dest_root / "drop1")
    (dest_root / ".pylock-tmp-gone-abc").mkdir()
    assert prune(dest_root, keep={"keep"}) == (["drop1", "drop2"], None)
    assert sorted(os.listdir(dest_root)) == [
        ".pylock-locks",
        ".pylock-state",
        "fake",
        "foreign",
        "keep",
        "link",
        "notes.txt",
    ]
    assert verify(dest_root, "keep").ok
    assert prune(dest_root, keep={"keep"}) == ([], None)
    assert prune(tmp_path / "nonexistent", keep=()) == ([], None)
    # An install directory that is not one (a file there) is an error, not a traceback.
    removed, error = prune(tmp_path / "d" / "notes.txt", keep=())
    assert removed == [] and error is not None
    assert str(error).startswith(f"cannot prune {dest_root / 'notes.txt'}: ")


# -- verify -----------------------------------------------------------------------------------


@posix_only
def test_verify_detects_modified_missing_and_extra(tmp_path: Path) -> None:
    dest_root = tmp_path / "d"
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    tree = do_install(archive, artifact, dest_root)
    (tree / "VERSION").write_text("v9")  # same size, other contents
    (tree / "lib/python3.12/os.py").write_text("short")
    (tree / "include/python3.12/Python.h").unlink()
    (tree / "bin/python3").unlink()
    (tree / "bin/python3").symlink_to("elsewhere")
    (tree / "lib/libpython3.12.so.1.0").chmod(0o644)  # lost its exec bit
    (tree / "lib/python3.12/site-packages/extra.py").write_text("pip put me here")
    (tree / "lib/python3.12/__pycache__").mkdir()
    (tree / "lib/python3.12/__pycache__/os.cpython-312.pyc").write_bytes(b"bytecode")
    report = verify(dest_root, "app")
    assert report.modified == (
        "VERSION",
        "bin/python3",
        "lib/libpython3.12.so.1.0",
        "lib/python3.12/os.py",
    )
    assert report.missing == ("include/python3.12/Python.h",)
    assert report.extra == ("lib/python3.12/site-packages/extra.py",)
    assert not report.ok


@pytest.mark.parametrize("normalizing", [True, False])
def test_verify_finds_names_that_hfs_plus_stored_decomposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, normalizing: bool
) -> None:
    """Portability: macOS' HFS+ stores `café.py` decomposed (NFD). Verify looked for the
    record's spelling among the names on disk: a fresh install was "modified" and "extra"
    both, and `sync --reinstall`, which the hint names, changed nothing. Elsewhere the two
    spellings are two files, and one in place of the other still counts."""
    from pylock.sync import bytecode
    from pylock.sync import install as install_module

    dest_root = tmp_path / "d"
    entries = [
        *version_tree("v1"),
        archives.file("python/lib/python3.12/caf\u00e9.py", b"cafe = 1\n"),
        archives.file("python/lib/python3.12/na\u00efve/x.py", b"x = 1\n"),
    ]
    archive, artifact = make_archive(tmp_path, "v1", entries)
    tree = do_install(archive, artifact, dest_root)
    lib = tree / "lib/python3.12"
    (lib / "caf\u00e9.py").rename(lib / "cafe\u0301.py")  # as HFS+ would have written them
    (lib / "na\u00efve").rename(lib / "nai\u0308ve")
    (lib / "__pycache__").mkdir()
    (lib / "__pycache__/cafe\u0301.cpython-312.pyc").write_bytes(b"bytecode")
    monkeypatch.setattr(install_module, "_NORMALIZING", normalizing, raising=False)
    checked: list[str] = []

    def compiled(tree: Path, exe: Path, caches: list[bytecode.CachedBytecode]) -> list[str]:
        checked.extend(cache.source for cache in caches)
        return []

    monkeypatch.setattr(bytecode, "mismatched_bytecode", compiled)
    report = verify(dest_root, "app")
    if normalizing:
        assert report.ok, report
        assert checked == ["lib/python3.12/cafe\u0301.py"]
    else:
        assert report.missing == ("lib/python3.12/caf\u00e9.py", "lib/python3.12/na\u00efve/x.py")
        assert "lib/python3.12/cafe\u0301.py" in report.extra


def test_verify_of_a_missing_install(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="not installed"):
        verify(tmp_path, "app")


# -- executables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("implementation", "platform", "expected"),
    [
        (Implementation.CPYTHON, LINUX, "bin/python3"),
        (Implementation.CPYTHON, WINDOWS, "python.exe"),
        (Implementation.PYPY, LINUX, "bin/pypy3"),
        (Implementation.PYPY, WINDOWS, "pypy3.exe"),
        (Implementation.GRAALPY, LINUX, "bin/graalpy"),
        (Implementation.GRAALPY, WINDOWS, "bin/graalpy.exe"),
    ],
)
def test_executable(
    tmp_path: Path, implementation: Implementation, platform: Platform, expected: str
) -> None:
    artifact = Artifact(platform=platform.key, url="https://x.invalid/a.tar.gz", sha256="0" * 64)
    python = locked(artifact, implementation=implementation)
    assert executable(tmp_path, python, platform) == tmp_path / "app" / expected


def test_executable_falls_back_to_what_exists(tmp_path: Path) -> None:
    artifact = Artifact(platform=WINDOWS.key, url="https://x.invalid/a.zip", sha256="0" * 64)
    python = locked(artifact, implementation=Implementation.GRAALPY)
    (tmp_path / "app").mkdir()
    (tmp_path / "app/graalpy.exe").write_bytes(b"MZ")
    assert executable(tmp_path, python, WINDOWS) == tmp_path / "app/graalpy.exe"


# -- the `verify` and `which` commands ----------------------------------------------------------


@pytest.fixture
def linux_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI takes this machine for :data:`LINUX`, whatever it is (``--platform KEY``
    still names KEY)."""
    from pylock import cli
    from pylock.platforms import resolve_platform

    def platform(self: cli.Context, key: str | None = None) -> Platform:
        return resolve_platform(key, host_platform=LINUX) if key else LINUX

    monkeypatch.setattr(cli.Context, "platform", platform)


@pytest.fixture
def installed_here(tmp_path: Path, linux_host: None) -> tuple[Path, Path]:
    """``(project, install dir)``: app locked and installed, seen from a Linux host."""
    return _project_with_install(tmp_path)


def _project_with_install(tmp_path: Path) -> tuple[Path, Path]:
    from pylock.lockfile import dumps, make_lock

    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    host_artifact = Artifact(
        platform=Platform.parse("linux-x86_64-gnu").key,
        url=artifact.url,
        sha256=artifact.sha256,
        size=artifact.size,
    )
    python = locked(host_artifact)
    project = tmp_path / "project"
    project.mkdir()
    lock = make_lock([python], config_digest="sha256:" + "0" * 64)
    (project / "pythons.lock").write_text(dumps(lock))
    dest = tmp_path / "pythons"
    do_install(archive, host_artifact, dest)
    return project, dest


@posix_only
def test_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pylock.cli import main

    project, dest = _project_with_install(tmp_path)
    assert main(["--project", str(project), "verify", "--into", str(dest)]) == 0
    records = len(read_record(dest / "app"))
    assert capsys.readouterr().out == f"app: ok ({records} files)\n"
    # An extra file alone already fails verification (DESIGN: exit 1 on any mismatch).
    (dest / "app/lib/python3.12/site-packages/x.py").write_text("pip")
    assert main(["--project", str(project), "verify", "--into", str(dest)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"app: 1 difference from its {records} recorded files",
        "  extra: lib/python3.12/site-packages/x.py",
    ]
    (dest / "app/VERSION").write_text("v9")
    (dest / "app/lib/python3.12/os.py").unlink()
    assert main(["--project", str(project), "verify", "--into", str(dest)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"app: 3 differences from its {records} recorded files",
        "  modified: VERSION",
        "  missing: lib/python3.12/os.py",
        "  extra: lib/python3.12/site-packages/x.py",
    ]
    # The hint's sync repairs the directory verified: the one --into named.
    assert captured.err.splitlines() == [
        "pylock: error: app differs from the install record",
        f"pylock: hint: run `pylock sync --reinstall --into {shlex.quote(str(dest))}` "
        "to restore it",
    ]
    assert main(["verify", "--into", str(dest), "nope"]) == 1
    assert "not installed by pylock" in capsys.readouterr().err
    assert main(["verify", "--into", str(tmp_path / "empty")]) == 1
    assert "no interpreters installed by pylock" in capsys.readouterr().err


@posix_only
def test_cli_which(
    tmp_path: Path, installed_here: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from pylock import cli

    project, dest = installed_here
    base = ["--project", str(project), "which"]
    assert cli.main([*base, "app", "--into", str(dest)]) == 0
    assert capsys.readouterr().out == f"{dest / 'app/bin/python3'}\n"
    assert cli.main([*base, "nope", "--into", str(dest)]) == 2
    assert "no interpreter named 'nope'" in capsys.readouterr().err
    assert cli.main([*base, "app", "--into", str(tmp_path / "elsewhere")]) == 1
    assert "app is not installed in" in capsys.readouterr().err
    # Without a lock (a slim image), the install record is enough.
    (project / "pythons.lock").unlink()
    assert cli.main([*base, "app", "--into", str(dest)]) == 0
    assert capsys.readouterr().out == f"{dest / 'app/bin/python3'}\n"


@posix_only
def test_repair_hints_keep_the_into_the_command_was_given(
    tmp_path: Path, linux_host: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """README attack: `verify --into DIR`, `which --into DIR` and `run --into DIR` of a
    broken or stale tree said to run `pylock sync --reinstall`, `pylock verify NAME` or
    `pylock sync` without the --into: followed as written, they act on .pythons/ (or,
    with no lock there, fail), and the tree in DIR stays as it was."""
    (tmp_path / "my work").mkdir()  # a path with a space: the hint quotes it
    project, dest = _project_with_install(tmp_path / "my work")
    where = f"--into {shlex.quote(str(dest))}"
    (dest / "app/VERSION").write_text("v9")
    assert cli.main(["--project", str(project), "verify", "--into", str(dest)]) == 1
    assert f"pylock: hint: run `pylock sync --reinstall {where}` to restore it" in (
        capsys.readouterr().err
    )
    exe = (dest / "app/bin/python3").resolve()
    mode = exe.stat().st_mode
    exe.chmod(0o644)
    for command, *rest in (["which", "app"], ["run", "app", "--", "-V"]):
        assert cli.main(["--project", str(project), command, "--into", str(dest), *rest]) == 1
        assert (
            f"pylock: hint: run `pylock verify {where} app` to check the install, "
            f"`pylock sync --reinstall {where}` to repair it"
        ) in capsys.readouterr().err
    exe.chmod(mode)
    lock = project / "pythons.lock"
    lock.write_text(
        re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "' + "0" * 64 + '"', lock.read_text())
    )
    assert cli.main(["--project", str(project), "which", "--into", str(dest), "app"]) == 0
    assert f"is out of date; run `pylock sync {where}`" in capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere"
    assert cli.main(["--project", str(project), "which", "--into", str(elsewhere), "app"]) == 1
    assert f"pylock: hint: run `pylock sync --into {elsewhere}` first" in capsys.readouterr().err
    # Without --into, the hints name the plain commands, as before.
    assert cli.main(["--project", str(project), "which", "app"]) == 1
    assert "pylock: hint: run `pylock sync` first" in capsys.readouterr().err


@posix_only
def test_which_of_an_executable_that_cannot_be_run_fails_as_run_does(
    installed_here: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLI attack: `which` printed the path (exit 0) of a bin/python3 that was a directory
    or had lost its executable bit, where `run` reported the broken install."""
    from pylock import cli

    project, dest = installed_here
    base = ["--project", str(project), "which", "app", "--into", str(dest)]
    named = dest / "app" / "bin" / "python3"
    exe = named.resolve()
    mode = exe.stat().st_mode
    exe.chmod(0o644)
    assert cli.main(base) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"pylock: error: app's {named} cannot be run (not executable)" in captured.err
    assert "pylock: hint: " in captured.err
    exe.unlink()
    exe.mkdir()
    assert cli.main(base) == 1
    assert "app has no executable at" in capsys.readouterr().err
    exe.rmdir()
    exe.write_bytes(b"")
    exe.chmod(mode)
    assert cli.main(base) == 0
    capsys.readouterr()
    # Executable, and refused all the same: a file system mounted noexec. Reinstalling
    # cannot help; another directory can.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **kw: False if Path(p) == named else real_access(p, m, **kw)
    )
    assert cli.main(base) == 1
    err = capsys.readouterr().err
    assert "its file system does not let programs run (mounted noexec?)" in err
    assert "pylock: hint: sync into a directory where programs may run (--into DIR)" in err


def _synced_for_windows(tmp_path: Path) -> tuple[Path, Path, LockedPython]:
    """``(project, install dir, locked pp)``: PyPy synced with ``--platform windows-x86_64``."""
    windows = Platform.parse("windows-x86_64")
    path = archives.write_archive(
        tmp_path / "pypy3.10-v7.3.17-win64.zip", archives.pypy_windows(), ArchiveFormat.ZIP
    )
    artifact = Artifact(
        platform=windows.key,
        url=f"https://example.invalid/{path.name}",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size=path.stat().st_size,
    )
    python = locked_python(
        "pp", "3.10.14", "v7.3.17", [artifact], implementation=Implementation.PYPY, flavor=None
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.lock").write_text(
        dumps(make_lock([python], config_digest="sha256:" + "0" * 64))
    )
    dest = tmp_path / "pythons"
    do_install(path, artifact, dest, python=python, platform=windows)
    return project, dest, python


@posix_only
@pytest.mark.usefixtures("linux_host")
def test_which_and_run_of_a_tree_synced_for_another_platform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sync --platform windows-x86_64` on Linux: `which` shows the Windows layout's
    executable and says whose it is; `run` says why it cannot start it here."""
    project, dest, _ = _synced_for_windows(tmp_path)
    base = ["--project", str(project)]

    assert cli.main([*base, "which", "pp", "--into", str(dest)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{dest.absolute() / 'pp' / 'pypy3.exe'}\n"
    assert "pp was installed for windows-x86_64" in captured.err
    assert "out of date" not in captured.err

    assert cli.main([*base, "run", "--into", str(dest), "pp", "-c", "pass"]) == 1
    err = capsys.readouterr().err
    assert f"cannot run {dest.absolute() / 'pp' / 'pypy3.exe'}" in err
    assert "hint: pp was installed for windows-x86_64" in err
    # The lock has no build for this machine: a sync without --platform would fail too
    # (cross-platform attack), so the hint says what would work.
    here = host().key
    assert (
        f"and pythons.lock has no build of it for this machine: add {here!r} to its "
        "platforms in pythons.toml and run `pylock lock`"
    ) in err
    lock = loads((project / "pythons.lock").read_text(encoding="utf-8"))
    (pp,) = lock.pythons
    ours = attrs.evolve(pp.artifacts[0], platform=here, sha256="e" * 64)
    relocked = attrs.evolve(pp, artifacts=(*pp.artifacts, ours))
    (project / "pythons.lock").write_text(
        dumps(make_lock([relocked], config_digest="sha256:" + "0" * 64))
    )
    assert cli.main([*base, "run", "--into", str(dest), "pp", "-c", "pass"]) == 1
    assert "sync it without --platform to run it here" in capsys.readouterr().err


def test_the_executable_is_one_that_runs_before_a_link_that_leads_nowhere(tmp_path: Path) -> None:
    """Cross-platform attack: `bin/python3 -> python3` (a loop) beside a real
    `bin/python3.12` made `which` report the loop, and fail."""
    from pylock.sync.install import executable

    python = locked_python("app", "3.12.7", "20990101", [])
    bin_dir = tmp_path / "app" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to("python3")
    (bin_dir / "python3.12").write_bytes(b"")
    linux = Platform.parse("linux-x86_64-gnu")
    assert executable(tmp_path, python, linux) == bin_dir / "python3.12"
    (bin_dir / "python3.12").unlink()
    assert executable(tmp_path, python, linux) == bin_dir / "python3"  # for the caller to judge


@posix_only
@pytest.mark.usefixtures("linux_host")
def test_list_tells_a_tree_synced_for_another_platform_and_judges_it_for_that_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list` on Linux, of a tree synced with `--platform windows-x86_64`: not "out of
    date (run `pylock sync`)", a sync that would replace it with a Linux build, but
    installed for Windows; `list --platform windows-x86_64` judges it against the lock."""
    project, dest, python = _synced_for_windows(tmp_path)
    lock_path = project / "pythons.lock"
    (windows_artifact,) = python.artifacts
    linux_artifact = attrs.evolve(windows_artifact, platform="linux-x86_64-gnu", sha256="d" * 64)

    def relock(*artifacts: Artifact) -> None:
        relocked = attrs.evolve(python, artifacts=artifacts)
        lock_path.write_text(dumps(make_lock([relocked], config_digest="sha256:" + "0" * 64)))

    relock(linux_artifact, windows_artifact)

    def listed(*extra: str, fmt: str = "json") -> Any:
        argv = ["--project", str(project), "list", "--format", fmt, "--into", str(dest), *extra]
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        return json.loads(out)["pythons"][0] if fmt == "json" else out

    row = listed()
    assert (row["state"], row["installed-for"]) == ("other-platform", "windows-x86_64")
    assert "`pylock list --platform windows-x86_64`" in row["status"]
    assert "[installed for windows-x86_64 (check it with" in listed(fmt="text")

    row = listed("--platform", "windows-x86_64")
    assert (row["state"], row["status"], row["installed-for"]) == ("installed", "installed", None)

    # The lock moves on: out of date for Windows, and still not this machine's.
    relock(linux_artifact, attrs.evolve(windows_artifact, sha256="e" * 64))
    assert listed("--platform", "windows-x86_64")["state"] == "out-of-date"
    assert listed()["state"] == "other-platform"

    # Locked for Windows only: the state answers for this machine, and the tree is named.
    relock(windows_artifact)
    row = listed()
    assert (row["state"], row["installed-for"]) == ("not-locked", "windows-x86_64")
    assert row["status"].startswith("not locked for this platform; installed for windows")
    # Asked about a platform that is locked for neither: not locked, whatever the tree.
    row = listed("--platform", "macos-aarch64")
    assert (row["state"], row["installed-for"]) == ("not-locked", "windows-x86_64")
    # ... in words that name it (README audit: they said "this platform").
    assert row["status"].startswith("not locked for macos-aarch64; installed for windows")

    # The record's key is read, not repeated: another spelling of this machine's platform
    # is this machine's, and so is one this pylock does not know (as for `which`), rather
    # than an "installed for" line whose suggested command would fail.
    record = dest / "pp" / ".pylock" / "install.json"
    text = record.read_text()
    for recorded in ("linux-amd64", "\\u001b[2Jnew-os"):
        record.write_text(text.replace('"windows-x86_64"', f'"{recorded}"'))
        row = listed()
        assert (row["state"], row["installed-for"]) == ("not-locked", None), recorded


@posix_only
def test_run_of_a_broken_executable_says_how_to_repair_it(
    installed_here: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project, dest = installed_here
    (dest / "app" / "bin" / "python3.12").chmod(0o644)  # bin/python3 links to it
    assert cli.main(["--project", str(project), "run", "--into", str(dest), "app"]) == 1
    err = capsys.readouterr().err
    assert "cannot run" in err and "Permission denied" in err
    assert f"hint: run `pylock verify --into {shlex.quote(str(dest))} app` to check" in err


@posix_only
def test_list_json_gives_a_machine_state_beside_the_words(
    installed_here: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lock_path = installed_here[0] / "pythons.lock"
    (app,) = loads(lock_path.read_text()).pythons
    host = app.artifacts[0]
    moved = attrs.evolve(app, artifacts=(attrs.evolve(host, sha256="e" * 64),))
    other = attrs.evolve(app, name="other")
    windows = attrs.evolve(
        app, name="win", artifacts=(attrs.evolve(host, platform="windows-x86_64"),)
    )

    def listed(*pythons: LockedPython) -> list[tuple[str, str, str]]:
        lock_path.write_text(dumps(make_lock(list(pythons), config_digest="sha256:" + "0" * 64)))
        project, dest = installed_here
        argv = ["--project", str(project), "list", "--format", "json", "--into", str(dest)]
        assert cli.main(argv) == 0
        rows = json.loads(capsys.readouterr().out)["pythons"]
        return [(row["name"], row["state"], row["status"]) for row in rows]

    assert listed(app, other, windows) == [
        ("app", "installed", "installed"),
        ("other", "not-installed", "not installed"),
        ("win", "not-locked", "not locked for this platform"),
    ]
    assert listed(moved) == [("app", "out-of-date", "out of date (run `pylock sync`)")]


def test_a_clean_up_that_fails_after_ctrl_c_still_ends_in_the_interrupt() -> None:
    """Attack on the day's diff: a clean-up interrupted by Ctrl-C and then refused (a file
    in use on Windows) let the OSError out and dropped the interrupt: a Ctrl-C became an
    install error (exit 1), or was swallowed where OSErrors are."""
    from pylock.interrupts import finish_through_interrupts

    calls: list[int] = []

    def clean_up() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        raise PermissionError(13, "in use")

    with pytest.raises(KeyboardInterrupt) as info:
        finish_through_interrupts(clean_up)
    assert isinstance(info.value.__cause__, PermissionError)
    assert len(calls) == 2
    # Without an interrupt, the error is the clean-up's own.
    with pytest.raises(PermissionError):
        finish_through_interrupts(lambda: (_ for _ in ()).throw(PermissionError(13, "x")))
