"""pylock's own record and state files are read with bounds: what stands in their place
never hangs a command, never exhausts its memory and never shows a traceback.

A pipe (a read used to wait for a writer for ever), a symlink to ``/dev/zero`` (a read
used to go on until memory ran out), a file over the size pylock reads, and a directory
are each put in place of:

- ``DIR/NAME/.pylock/install.json``: no record, as for a damaged one. ``list`` says "not
  installed", ``which`` and ``verify`` fail cleanly, and ``sync`` refuses to replace a
  tree it cannot show it installed;
- ``DIR/NAME/.pylock/RECORD``: ``verify`` fails with its one clean error, and
  ``sync --reinstall``, which its hint names, repairs the tree;
- ``DIR/.pylock-state``: no state. The no-op fast path gives way to the full sync,
  which writes a fresh state.

Every command runs as a user runs it: the console script, in a subprocess, with a
timeout and a cap on its address space, so that the old unbounded reads fail these
tests instead of hanging them or filling the machine's memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pylock.fsutil import RefusedFileError, read_own_file
from tests.syncproject import PATIENCE, Build, Project, Result

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pipes, /dev/zero, rlimits: POSIX")

KINDS = ("pipe", "device", "too big", "directory")
#: What ``verify`` says about each kind standing in for ``RECORD``.
REASONS = {
    "pipe": "not a regular file",
    "device": "a symbolic link",
    "too big": "larger than 64 MiB",
    "directory": "not a regular file",
}
#: Room for pylock's own needs, far from what reading ``/dev/zero`` to the end would take.
ADDRESS_SPACE = 2 * 1024**3

_SCRIPT = Path(sys.executable).with_name("pylock")
CONSOLE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pylock"]


def _bounded_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run(project: Project, *argv: str) -> Result:
    """``pylock --project ROOT ARGV`` as a user runs it, bounded in time and memory."""
    done = subprocess.run(
        [*CONSOLE, "--project", str(project.root), *argv],
        cwd=project.root,
        env=project.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        preexec_fn=_bounded_memory,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def sync(project: Project, *extra: str) -> Result:
    return run(project, "sync", "--into", str(project.into), "--mirror", project.mirror, *extra)


def plant(path: Path, kind: str, oversized: bytes | int) -> None:
    """Put ``kind`` in place of pylock's file ``path``.

    ``oversized`` is what "too big" writes: the bytes of a file otherwise valid, so that
    only its size can have it refused, or the size of a sparse file of NULs.
    """
    path.unlink()
    if kind == "pipe":
        os.mkfifo(path)  # nobody ever writes to it: a blocking open or read waits for ever
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif isinstance(oversized, int):
        with open(path, "wb") as handle:
            handle.truncate(oversized)  # sparse: no disk used
    else:
        path.write_bytes(oversized)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_install_json_is_no_record(installed: Project, kind: str) -> None:
    path = installed.into / "app" / ".pylock" / "install.json"
    # Valid but for its size (over the 1 MiB read): only the limit tells it apart.
    plant(path, kind, path.read_bytes() + b" " * (1024 * 1024))

    listed = run(installed, "list", "--into", str(installed.into))
    assert listed.code == 0, listed.err
    assert "[not installed, cached]" in listed.out
    which = run(installed, "which", "app", "--into", str(installed.into))
    assert which.code == 1
    assert "pylock: error: app is not installed in" in which.err
    # A tree with pylock's .pylock/ and no readable record is a finding, not "nothing
    # installed" (which hid a tampered tree), ...
    verify = run(installed, "verify", "--into", str(installed.into))
    assert verify.code == 1
    assert "record: .pylock/install.json is missing or damaged" in verify.out
    assert "pylock: error: app differs from the install record" in verify.err
    # ... and the sync that every command points to replaces it (it refused before). The
    # fast path sees a record other than the one it stamped, so the full sync runs.
    synced = sync(installed)
    assert synced.code == 0, synced.err
    assert installed.leftovers() == []
    assert run(installed, "verify", "--into", str(installed.into)).code == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_record_fails_verify_cleanly(
    installed: Project, app_a: Build, kind: str
) -> None:
    path = installed.into / "app" / ".pylock" / "RECORD"
    plant(path, kind, 64 * 1024 * 1024 + 1)

    # Nothing else reads RECORD: the no-op sync (fast path) and list are unaffected.
    assert "1 interpreter up to date" in sync(installed).err
    assert "[installed]" in run(installed, "list", "--into", str(installed.into)).out
    verify = run(installed, "verify", "--into", str(installed.into))
    assert verify.code == 1
    assert f"  record: .pylock/RECORD cannot be read: {REASONS[kind]}" in verify.out
    assert verify.err.splitlines()[0] == "pylock: error: app differs from the install record"
    assert "pylock sync --reinstall" in verify.err

    repaired = sync(installed, "--reinstall")
    assert repaired.code == 0, repaired.err
    assert path.is_file() and not path.is_symlink()
    assert run(installed, "verify", "--into", str(installed.into)).code == 0
    assert installed.leftovers() == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_state_gives_way_to_the_full_sync(installed: Project, kind: str) -> None:
    path = installed.into / ".pylock-state"
    before = path.stat()
    fast = sync(installed)
    assert fast.code == 0, fast.err
    assert path.stat().st_ino == before.st_ino  # the fast path answered: nothing rewritten

    # Valid but for a line of padding (a key the reader ignores) over the 16 MiB read.
    plant(path, kind, path.read_bytes() + b"padding " + b"x" * (16 * 1024 * 1024) + b"\n")
    full = sync(installed)
    assert full.code == 0, full.err
    assert "1 interpreter up to date" in full.err
    if kind == "directory":
        assert path.is_dir()  # the state cannot be written there: every sync is a full one
    else:
        # The full sync ran, and left a fresh state the fast path can use again.
        assert path.is_file() and not path.is_symlink()
        assert path.stat().st_size < 4096
        again = path.stat()
        assert sync(installed).code == 0
        assert path.stat().st_ino == again.st_ino


# -- the shared reader ---------------------------------------------------------------------


def test_read_own_file_reads_a_regular_file_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "record"
    path.write_bytes(b"x" * 100)
    assert read_own_file(path, 100) == b"x" * 100
    with pytest.raises(RefusedFileError, match=r"^larger than 99 bytes$"):
        read_own_file(path, 99)
    with pytest.raises(FileNotFoundError):  # missing is not refused: it is just missing
        read_own_file(tmp_path / "missing", 100)


@pytest.mark.parametrize("kind", ["pipe", "device", "directory", "symlink to a regular file"])
def test_read_own_file_refuses_what_pylock_never_writes(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "record"
    if kind == "symlink to a regular file":
        (tmp_path / "elsewhere").write_bytes(b"{}")
        path.symlink_to("elsewhere")
    else:
        path.write_bytes(b"")
        plant(path, kind, 0)
    open_fds = len(os.listdir("/dev/fd"))
    with pytest.raises(RefusedFileError) as refused:
        read_own_file(path, 1024)
    assert refused.value.path == str(path)
    reason = "not a regular file" if kind in ("pipe", "directory") else "a symbolic link"
    assert str(refused.value) == reason
    assert len(os.listdir("/dev/fd")) == open_fds  # nothing left open


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_read_own_file_reads_on_past_a_size_of_zero() -> None:
    # /proc reports a size of 0 for files that hold text: read on, within the limit.
    assert b"Name:" in read_own_file("/proc/self/status", 1024 * 1024)
    with pytest.raises(RefusedFileError, match="larger than"):
        read_own_file("/proc/self/status", 10)


def test_a_stale_lock_is_warned_about_on_every_sync(installed: Project, app_a: Build) -> None:
    """pythons.toml changed after the lock: every sync says so, not only the first (which
    used to leave the fast path a state, and the fast path says nothing)."""
    from pylock.config import digests_of_file
    from pylock.lockfile import dumps, make_lock

    config = installed.root / "pythons.toml"
    config.write_text('[python.app]\nversion = "3.12"\n')
    for _ in range(3):
        again = sync(installed)
        assert again.code == 0, again.err
        assert "pythons.toml changed since pythons.lock was written" in again.err
        assert "1 interpreter up to date" in again.err
    # Locked from this pythons.toml, the fast path answers again, and quietly.
    (digest,) = digests_of_file(config)
    lock = make_lock([app_a.python()], config_digest=digest)
    (installed.root / "pythons.lock").write_text(dumps(lock))
    assert "changed since" not in sync(installed).err
    state = installed.into / ".pylock-state"
    before = state.stat().st_ino
    quiet = sync(installed)
    assert quiet.code == 0 and "changed since" not in quiet.err
    assert state.stat().st_ino == before  # the fast path answered: nothing rewritten


@pytest.mark.parametrize("fixed", ["/a\u0000b", "/x/\ud800"], ids=["nul", "lone-surrogate"])
def test_a_path_no_system_can_spell_in_the_record_is_a_damaged_record(
    installed: Project, fixed: str
) -> None:
    """Attack: ``samefile`` raised on the NUL, and the fallback ``realpath`` raised again:
    a traceback from ``sync``, ``list`` and ``which``. The tree is now not current. Locale
    attack: the same with a path the file system encoding cannot encode (a lone surrogate
    here; a UTF-8 session's path read under LANG=C, in the field)."""
    import json

    record = installed.into / "app" / ".pylock" / "install.json"
    data = json.loads(record.read_text(encoding="utf-8"))
    data["fixed-up-for"] = fixed
    record.write_text(json.dumps(data), encoding="utf-8")
    into = ["--into", str(installed.into)]
    listed = installed.run("list", *into)
    assert listed.code == 0 and "[out of date" in listed.out, listed.out + listed.err
    which = installed.run("which", *into, "app")
    assert "Traceback" not in which.err
    synced = installed.run("sync", *into, "--mirror", installed.mirror)
    assert synced.code == 0, synced.err
    assert json.loads(record.read_text(encoding="utf-8"))["fixed-up-for"] != fixed


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need Developer Mode on Windows")
def test_verify_never_reads_through_a_symlinked_directory_a_record_names(
    installed: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a tampered tree (`app/evil -> elsewhere`) and record (`evil` a link, and
    `evil/secret` a file with the hash of the file there) passed `verify`, which had
    hashed a file outside the tree on the record's say-so."""
    import hashlib

    from pylock import fsutil

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_bytes(b"not the tree's")
    digest = hashlib.sha256(b"not the tree's").hexdigest()
    tree = installed.into / "app"
    (tree / "evil").symlink_to(elsewhere)
    record = tree / ".pylock" / "RECORD"
    with record.open("a", encoding="utf-8") as handle:
        handle.write(f"evil,link={elsewhere},0,\n")
        handle.write(f"evil/secret,sha256={digest},14,\n")
    read: list[str] = []
    hashed = fsutil.sha256_file

    def spy(path: Path, *args: object) -> str:
        read.append(str(path))
        return hashed(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fsutil, "sha256_file", spy)
    done = installed.run("verify", "--into", str(installed.into))
    assert done.code == 1, done.out + done.err
    assert "evil/secret" in done.out
    assert not any("secret" in path for path in read)


def test_a_damaged_record_does_not_stop_verify_checking_the_other_trees(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """Bin-dir attack: garbage appended to one tree's RECORD ended `verify` with that
    error alone, and a modified file in the other tree went unreported."""
    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync().code == 0
    with (sync_project.into / "app" / ".pylock" / "RECORD").open("a", encoding="utf-8") as f:
        f.write("garbage\n")
    tool_tree = sync_project.into / "tool"
    tampered = next(p for p in tool_tree.rglob("*") if p.is_file() and ".pylock" not in p.parts)
    tampered.write_bytes(tampered.read_bytes() + b"x")
    verify = sync_project.verify()
    assert verify.code == 1
    assert "  record: .pylock/RECORD cannot be read: line " in verify.out
    assert f"  modified: {tampered.relative_to(tool_tree).as_posix()}" in verify.out
    assert verify.err.splitlines()[0] == "pylock: error: app, tool differ from the install record"


def test_a_record_a_newer_pylock_wrote_is_not_verified_as_ok_nor_replaced_silently(
    installed: Project,
) -> None:
    """Formats attack: a tree whose record is version 2 (a newer pylock's, in a shared
    install directory) was `ok` to `verify`, which does not know that format, and `sync`
    replaced it without a word: two pylocks sharing the directory reinstall every run."""
    import json

    record = installed.into / "app" / ".pylock" / "install.json"
    data = json.loads(record.read_text(encoding="utf-8"))
    data["record-version"] = 2
    record.write_text(json.dumps(data), encoding="utf-8")
    verified = installed.verify()
    assert verified.code == 1
    assert "record version 2, which a newer pylock wrote" in verified.out + verified.err
    assert "upgrade pylock" in verified.out + verified.err
    # Upgrade test: its closing error called the tree damaged and said to reinstall it,
    # which would replace the newer pylock's tree with this one's.
    assert verified.err.splitlines() == [
        "pylock: error: app was installed by a newer pylock, which this one cannot verify",
        "pylock: hint: upgrade pylock to verify it",
    ]
    synced = installed.sync()
    assert synced.code == 0, synced.err
    assert "replacing a tree a newer pylock installed" in synced.err
    assert installed.verify().code == 0
