"""Two ``pylock mirror`` runs that write one OUTDIR at once, interleaved in-process.

Run A stops right after it read one of the tree's own files; run B then goes as far as
it can. Without a lock B finishes, and A's write drops B's entries; with one, B waits
for A at the lock, which is what lets A go on (no sleeps, no timing).
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import threading
from pathlib import Path

import pytest

import pylock.fsutil
import pylock.mirror
from pylock.errors import MirrorError
from pylock.lockfile import LockFile
from pylock.mirror import LOCK_NAME, SUMS_NAME, UV_JSON_NAME, parse_sha256sums
from pylock.sync.cache import Cache
from tests.test_mirror import locked, make, pbs_artifact, publish, run_mirror, sha

#: Long enough for a loaded CI machine; only reached when the interleaving broke.
_PATIENCE = 60
_LINUX = b"linux archive" * 100
_MAC = b"mac archive" * 100


def _two_locks(upstream_dir: Path) -> tuple[LockFile, LockFile]:
    """Two projects' locks whose archives share a folder of the mirror (and its sums)."""
    linux = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", _LINUX)
    mac = pbs_artifact("macos-aarch64", "3.13.9", "20251014", _MAC)
    publish(upstream_dir, linux, _LINUX)
    publish(upstream_dir, mac, _MAC)
    return (
        make(locked("app", "3.13.9", "20251014", linux)),
        make(locked("app", "3.13.9", "20251014", mac)),
    )


@pytest.mark.parametrize("paused_after", [f"20251014/{SUMS_NAME}", UV_JSON_NAME])
def test_two_runs_into_one_outdir_keep_each_others_entries(
    tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch, paused_after: str
) -> None:
    """Attack: two runs of different locks into one OUTDIR kept only one run's archives
    in download-metadata.json, in 10 runs of 10 (exit 0, no warning)."""
    upstream_dir = tmp_path / "upstream"
    first, second = _two_locks(upstream_dir)
    out = tmp_path / "mirror"
    paused = threading.Event()  # run A has read the file and waits
    go_on = threading.Event()  # run B is done, or waits for the lock A holds
    real_read = pylock.mirror._read_own
    real_try = pylock.fsutil.FileLock.try_acquire

    def read_own(path: Path) -> bytes | None:
        data = real_read(path)
        if threading.current_thread() is not threading.main_thread() and (
            path == out / paused_after
        ):
            paused.set()
            assert go_on.wait(_PATIENCE)
        return data

    def try_acquire(self: pylock.fsutil.FileLock) -> bool:
        taken = real_try(self)
        if not taken and Path(self.path).parent == out:
            go_on.set()
        return taken

    monkeypatch.setattr(pylock.mirror, "_read_own", read_own)
    monkeypatch.setattr(pylock.fsutil.FileLock, "try_acquire", try_acquire)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        run_a = pool.submit(run_mirror, first, out, cache, upstream_dir)
        assert paused.wait(_PATIENCE)
        try:
            run_mirror(second, out, cache, upstream_dir)
        finally:
            go_on.set()
        run_a.result()

    sums = parse_sha256sums((out / "20251014" / SUMS_NAME).read_text(encoding="utf-8"))
    assert sorted(sums.values()) == sorted([sha(_LINUX), sha(_MAC)])
    uv = json.loads((out / UV_JSON_NAME).read_text(encoding="utf-8"))
    assert sorted(uv) == ["cpython-3.13.9-darwin-aarch64-none", "cpython-3.13.9-linux-x86_64-gnu"]
    # The lock is no part of the tree that gets served.
    assert not list(out.rglob(".*"))


@pytest.mark.parametrize(
    "error", [errno.EROFS, errno.ENOLCK, errno.EACCES], ids=["read-only", "no-locks", "denied"]
)
def test_a_tree_whose_lock_cannot_be_made_is_still_checked(
    tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    """A mirror on a read-only file system (a served copy, say), or on one that takes no
    locks (NFS without lockd: attack on the day's diff, a MirrorError that left the lock
    file behind): a re-run that finds it complete passes, as it did before the tree had a
    lock, and leaves nothing in it."""
    upstream_dir = tmp_path / "upstream"
    first, _ = _two_locks(upstream_dir)
    out = tmp_path / "mirror"
    run_mirror(first, out, cache, upstream_dir)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    real_try = pylock.fsutil.FileLock.try_acquire

    def try_acquire(self: pylock.fsutil.FileLock) -> bool:
        if Path(self.path) == out / LOCK_NAME:
            if error != errno.EROFS:
                Path(self.path).touch()  # made (or another run's), then refused
            raise OSError(error, os.strerror(error), self.path)
        return real_try(self)

    monkeypatch.setattr(pylock.fsutil.FileLock, "try_acquire", try_acquire)
    report = run_mirror(first, out, cache, upstream_dir, offline=True)
    assert len(report.unchanged) == 1
    if error == errno.EACCES:
        # Another run's live lock file, which this user may not open: left alone (attack
        # on the day's diff: it was removed, and a third run locked a fresh one).
        assert (out / LOCK_NAME).exists()
        (out / LOCK_NAME).unlink()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes read-only directories"
)
def test_a_read_only_outdir_is_a_clean_error(tmp_path: Path, cache: Cache) -> None:
    upstream_dir = tmp_path / "upstream"
    first, _ = _two_locks(upstream_dir)
    out = tmp_path / "mirror"
    run_mirror(first, out, cache, upstream_dir)
    sums = out / "20251014" / SUMS_NAME
    sums.unlink()  # something to write, where nothing can be
    for folder in (out, out / "20251014"):
        folder.chmod(0o555)
    try:
        with pytest.raises(MirrorError) as info:
            run_mirror(first, out, cache, upstream_dir)
    finally:
        for folder in (out, out / "20251014"):
            folder.chmod(0o755)
    assert str(info.value) == f"cannot write {sums}: Permission denied"
    assert not (out / LOCK_NAME).exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_files_pylock_0_2_0_left_at_0600_are_made_readable_even_when_current(
    tmp_path: Path, cache: Cache
) -> None:
    """Upgrade attack: a mirror tree 0.2.0 wrote (its own files 0600, unreadable to the web
    server) stayed 0600 when a later release found their content current, as a lock did."""
    upstream_dir = tmp_path / "upstream"
    first, _ = _two_locks(upstream_dir)
    out = tmp_path / "mirror"
    run_mirror(first, out, cache, upstream_dir)
    own = [out / UV_JSON_NAME, *out.rglob(SUMS_NAME)]
    for path in own:
        path.chmod(0o600)
    old = os.umask(0o022)
    try:
        run_mirror(first, out, cache, upstream_dir, offline=True)
    finally:
        os.umask(old)
    assert {path.name: path.stat().st_mode & 0o777 for path in own} == {
        path.name: 0o644 for path in own
    }


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_a_current_lock_left_at_0600_is_made_readable(tmp_path: Path) -> None:
    from pylock.cli import main

    (tmp_path / "pythons.toml").write_text(
        '[python.app]\nversion = "3.12"\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    assert main(["--project", str(tmp_path), "-q", "lock", "--offline"]) == 0
    lock = tmp_path / "pythons.lock"
    text = lock.read_text()
    lock.chmod(0o600)
    if os.geteuid() == 0:
        # Attack on the day's diff: the lock was written again, and so became root's.
        os.chown(lock, 65534, 65534)
    old = os.umask(0o022)
    try:
        assert main(["--project", str(tmp_path), "-q", "lock", "--offline", "--check"]) == 0
        assert lock.stat().st_mode & 0o777 == 0o600  # --check writes nothing
        assert main(["--project", str(tmp_path), "-q", "lock", "--offline"]) == 0
    finally:
        os.umask(old)
    assert lock.stat().st_mode & 0o777 == 0o644 and lock.read_text() == text
    if os.geteuid() == 0:
        assert (lock.stat().st_uid, lock.stat().st_gid) == (65534, 65534)
