"""The archive cache: layout, atomic store, holds across processes, prune, clean, verify."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import platformdirs
import pytest

from pylock.errors import PylockError, UsageError
from pylock.settings import Settings
from pylock.sync.cache import Cache, CacheEntry, parse_size, safe_filename
from tests.syncproject import Build, Project

NAME = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
DAY = 86400.0
#: The two commands that evict archives, for the tests of what they may not remove.
evicting_commands = pytest.mark.parametrize("command", [["clean"], ["prune", "--max-size", "0"]])
#: For tests that fork and become another user.
as_root = pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root, to become another user",
)


@pytest.fixture
def homeless(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HOME, and a uid the user database does not know (OpenShift, `docker run -u`)."""
    import pwd

    def nobody(uid: int) -> Any:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", nobody)


def put(cache: Cache, data: bytes, name: str = NAME) -> tuple[str, Path]:
    """Store ``data`` the way a download does: a tmp file, then :meth:`Cache.store`."""
    sha = hashlib.sha256(data).hexdigest()
    tmp = cache.new_tmp_path(sha)
    tmp.write_bytes(data)
    return sha, cache.store(sha, name, tmp)


def set_last_used(cache: Cache, sha: str, when: float) -> None:
    os.utime(cache.archive_dir(sha) / ".last-used", (when, when))


def test_from_env_prefers_pylock_cache_dir(tmp_path: Path) -> None:
    def from_env(environ: dict[str, str]) -> Cache:
        return Cache.from_settings(Settings.from_environ(environ))

    chosen = from_env({"PYLOCK_CACHE_DIR": str(tmp_path / "c")})
    assert chosen.root == tmp_path / "c"
    default = from_env({})
    assert default.root == Path(platformdirs.user_cache_dir("pylock", appauthor=False))
    assert from_env({"PYLOCK_CACHE_DIR": ""}).root == default.root
    if sys.platform.startswith("linux") and not os.environ.get("XDG_CACHE_HOME"):
        assert default.root == Path.home() / ".cache" / "pylock"


def test_store_uses_the_content_addressed_layout(cache: Cache) -> None:
    sha, path = put(cache, b"archive bytes")
    assert path == cache.root / "archives" / "sha256" / sha / NAME
    assert path.read_bytes() == b"archive bytes"
    assert sorted(p.name for p in path.parent.iterdir()) == [".last-used", NAME]
    assert cache.lookup(sha, NAME) == path
    # Content is identity: another file name for the same bytes is still a hit.
    assert cache.lookup(sha, "renamed.tar.gz") == path
    assert cache.lookup(sha) == path
    assert cache.lookup("0" * 64, NAME) is None
    assert list(cache.tmp_dir.iterdir()) == []


def test_second_store_of_the_same_archive_keeps_the_first(cache: Cache) -> None:
    sha, first = put(cache, b"same")
    _, second = put(cache, b"same", "other-name.tar.gz")
    assert second == first
    assert [p.name for p in cache.archive_dir(sha).iterdir() if p.name[0] != "."] == [NAME]
    assert list(cache.tmp_dir.iterdir()) == []


def test_a_store_whose_rename_fails_says_why(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scanner holding the new file past the rename's patience (Windows) raised that
    error, not a FileNotFoundError about the final directory it then tried to discard."""
    import pylock.sync.cache

    def held(source: object, target: object) -> None:
        raise PermissionError(13, "The process cannot access the file", str(source))

    monkeypatch.setattr(pylock.sync.cache, "rename", held)
    with pytest.raises(PylockError, match=r"cannot store .* in the cache at .*: The process"):
        put(cache, b"archive bytes")
    assert list(cache.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["../../etc", "A" * 64, "abc", "", "0" * 63 + "/"])
def test_malformed_sha256_never_becomes_a_path(cache: Cache, bad: str) -> None:
    with pytest.raises(ValueError, match="not a lowercase hex sha256"):
        cache.lookup(bad)
    with pytest.raises(ValueError):
        cache.archive_path(bad, NAME)


def test_hostile_file_names_are_flattened(cache: Cache) -> None:
    sha, path = put(cache, b"x", "../../../escape.tar.gz")
    assert path.parent == cache.archive_dir(sha)
    assert path.name == "_.._.._escape.tar.gz"
    assert safe_filename(".hidden") == "hidden"
    assert safe_filename("a\\b/c") == "a_b_c"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("123", 123),
        ("123B", 123),
        ("1K", 1024),
        ("500M", 500 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("1.5 gib", int(1.5 * 1024**3)),
        ("800MB", 800 * 1000**2),
        ("1T", 1024**4),
        (" 10kb ", 10_000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "-1G", "1.2.3M", "10X", "5iB", "1 0M", "1e9"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError, match="invalid size"):
        parse_size(text)


def test_list_reports_size_filename_and_last_use(cache: Cache) -> None:
    a, _ = put(cache, b"a" * 10, "a.tar.gz")
    b, _ = put(cache, b"b" * 20, "b.tar.zst")
    set_last_used(cache, a, 1_000_000.0)
    (cache.archives_dir / "not-a-hash").mkdir()
    entries = cache.list()
    assert [(e.filename, e.size, e.sha256) for e in entries] == [
        ("a.tar.gz", 10, a),
        ("b.tar.zst", 20, b),
    ]
    assert entries[0].last_used == 1_000_000.0
    assert cache.size() == 30
    cache.lookup(a)
    assert cache.list()[0].last_used > time.time() - 60


def test_prune_by_age_removes_only_old_archives(cache: Cache) -> None:
    now = time.time()
    old, _ = put(cache, b"old", "old.tar.gz")
    new, _ = put(cache, b"new", "new.tar.gz")
    set_last_used(cache, old, now - 40 * DAY)
    set_last_used(cache, new, now - 2 * DAY)
    report = cache.prune(unused_for=30 * DAY, now=now)
    assert [e.sha256 for e in report.removed] == [old]
    assert report.freed == 3
    assert report.held == ()
    assert cache.lookup(old) is None
    assert cache.lookup(new) is not None


def test_prune_by_size_evicts_least_recently_used_first(cache: Cache) -> None:
    now = time.time()
    shas = []
    for age, name in ((5, "oldest"), (3, "middle"), (1, "newest")):
        sha, _ = put(cache, name.encode() * 100, f"{name}.tar.gz")
        set_last_used(cache, sha, now - age * DAY)
        shas.append(sha)
    sizes = [e.size for e in sorted(cache.list(), key=lambda e: e.last_used)]
    report = cache.prune(max_size=sizes[2] + sizes[1], now=now)
    assert [e.filename for e in report.removed] == ["oldest.tar.gz"]
    assert cache.size() <= sizes[2] + sizes[1]
    report = cache.prune(max_size=0, now=now)
    assert [e.filename for e in report.removed] == ["middle.tar.gz", "newest.tar.gz"]
    assert cache.list() == []


def test_prune_keeps_only_the_archives_asked_for_and_those_held(cache: Cache) -> None:
    now = time.time()
    kept, _ = put(cache, b"kept", "kept.tar.gz")
    put(cache, b"old", "old.tar.gz")
    held, _ = put(cache, b"held", "held.tar.gz")
    set_last_used(cache, kept, now - 40 * DAY)  # kept: age is a separate limit
    with cache.hold(held):
        report = cache.prune(keep={kept}, now=now)
    assert [e.filename for e in report.removed] == ["old.tar.gz"]
    assert [e.filename for e in report.held] == ["held.tar.gz"]
    assert sorted(e.filename for e in cache.list()) == ["held.tar.gz", "kept.tar.gz"]
    # With an age limit as well, each limit evicts what it names, once.
    report = cache.prune(keep={kept, held}, unused_for=30 * DAY, now=now)
    assert [e.filename for e in report.removed] == ["kept.tar.gz"]


def test_an_archive_whose_holds_cannot_be_listed_is_left_and_named(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holds another user's process made (in a directory this user may not list) read as
    "not held", and prune evicted the archive from under that process. (Attack on the
    day's diff: not "kept because in use" either, which nothing may be: it names why.)"""
    sha, path = put(cache, b"held", "held.tar.gz")
    holds = cache.locks_dir / "holds" / sha
    holds.mkdir(parents=True)
    real = Path.iterdir

    def unlistable(self: Path) -> Iterator[Path]:
        if self == holds:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", unlistable)
    with pytest.raises(PermissionError):
        cache.is_held(sha)
    report = cache.prune(max_size=0)
    assert report.removed == () and report.held == ()
    (refusal,) = report.refused
    assert refusal.entry.sha256 == sha and refusal.path == str(holds)
    assert path.read_bytes() == b"held"


def test_a_file_where_an_archives_holds_go_holds_nothing(cache: Cache) -> None:
    """Attack on the day's diff: a file at `locks/holds/<sha256>` kept the archive for
    good, "in use"."""
    sha, path = put(cache, b"free", "free.tar.gz")
    (cache.locks_dir / "holds").mkdir(parents=True)
    (cache.locks_dir / "holds" / sha).write_bytes(b"")
    assert not cache.is_held(sha)
    assert [e.sha256 for e in cache.prune(max_size=0).removed] == [sha]
    assert not path.exists()


def test_a_use_stamped_in_the_future_ages_from_the_prune_that_finds_it(cache: Cache) -> None:
    """A host whose clock is ahead stamped an archive's use in 2100 (a shared cache): it
    outlived every `--unused-for`, and every archive used since, until 2100."""
    now = time.time()
    ahead, _ = put(cache, b"ahead", "ahead.tar.gz")
    old, _ = put(cache, b"old", "old.tar.gz")
    set_last_used(cache, ahead, 4102444800.0)  # 2100-01-01
    set_last_used(cache, old, now - 40 * DAY)
    report = cache.prune(unused_for=30 * DAY, now=now)
    assert [e.sha256 for e in report.removed] == [old]
    assert {e.sha256: e.last_used for e in cache.list()} == {ahead: now}
    report = cache.prune(unused_for=30 * DAY, now=now + 31 * DAY)
    assert [e.sha256 for e in report.removed] == [ahead]


def test_a_use_stamped_a_little_ahead_is_another_hosts_now_and_stays(cache: Cache) -> None:
    """Attack on the day's diff: a prune on a host whose clock was behind stamped the uses
    other hosts had just made back to its own now, and the next prune elsewhere evicted
    archives used minutes ago. Within a day ahead, a stamp is another clock's now."""
    now = time.time()
    sha, _ = put(cache, b"used", "used.tar.gz")
    set_last_used(cache, sha, now + 3600)
    assert cache.prune(unused_for=60, now=now).removed == ()
    assert cache.list()[0].last_used == now + 3600


def test_list_does_not_count_as_a_use_of_the_archives_it_finds(
    installed: Project, app_a: Build
) -> None:
    """`pylock list` (a prompt, an IDE) stamped every locked archive as used: they never
    aged for `prune --unused-for`, while a no-op sync, which relies on them, did not."""
    marker = installed.archive(app_a).parent / ".last-used"
    os.utime(marker, (1_000_000_000, 1_000_000_000))
    assert installed.run("list", "--into", str(installed.into)).code == 0
    assert marker.stat().st_mtime == 1_000_000_000


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("action", ["prune", "clean"])
def test_a_link_where_an_archives_holds_go_is_never_followed(
    cache: Cache, tmp_path: Path, action: str
) -> None:
    """Attack on the day's diff (a shared cache): another user linked
    `locks/holds/<sha256>` to the cleaning user's own directory, and `cache clean` removed
    every file in it that nobody had locked (an SSH key, a thesis)."""
    sha, path = put(cache, b"archive", "a.tar.gz")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    (docs / "1-0123456789ab.lock").write_text("named like a marker")
    (cache.locks_dir / "holds").mkdir(parents=True)
    (cache.locks_dir / "holds" / sha).symlink_to(docs)
    report = cache.prune(max_size=0) if action == "prune" else cache.clean()
    assert sorted(p.name for p in docs.iterdir()) == ["1-0123456789ab.lock", "thesis.tex"]
    assert [e.sha256 for e in report.removed] == [sha] and not path.exists()
    assert not os.path.lexists(cache.locks_dir / "holds" / sha)


def test_a_hold_replaces_a_file_where_its_directory_goes(cache: Cache) -> None:
    """Attack on the day's diff: with a file at `locks/holds/<sha256>`, a hold fell back to
    "a read-only cache" and held nothing: `clean` removed the archive being read."""
    sha, path = put(cache, b"archive", "a.tar.gz")
    (cache.locks_dir / "holds").mkdir(parents=True)
    (cache.locks_dir / "holds" / sha).write_bytes(b"")
    with cache.hold(sha) as held:
        assert held == path
        report = cache.clean()
        assert [e.sha256 for e in report.held] == [sha] and path.exists()


def test_a_hold_whose_directory_a_prune_removed_meanwhile_still_holds(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: a prune that found the archive unheld removed the empty
    holds directory between a hold's mkdir and its marker; the hold took that for a
    read-only cache and held nothing (337 of 6,000 ungated holds in a race)."""
    from pylock import fsutil

    sha, path = put(cache, b"archive", "a.tar.gz")
    real = fsutil.FileLock.acquire
    raced: list[str] = []

    def acquire(self: fsutil.FileLock, *args: Any, **kwargs: Any) -> None:
        if "/holds/" in self.path and not raced:
            raced.append(self.path)
            os.rmdir(os.path.dirname(self.path))  # what the prune did, just then
        real(self, *args, **kwargs)

    monkeypatch.setattr(fsutil.FileLock, "acquire", acquire)
    with cache.hold(sha, gated=False) as held:
        assert raced and held == path
        assert [e.sha256 for e in cache.clean().held] == [sha] and path.exists()


def test_prune_without_limits_keeps_archives(cache: Cache) -> None:
    put(cache, b"keep")
    assert cache.prune().removed == ()
    assert len(cache.list()) == 1


def test_prune_and_clean_skip_an_archive_held_in_this_process(cache: Cache) -> None:
    held_sha, held_path = put(cache, b"held", "held.tar.gz")
    free_sha, _ = put(cache, b"free", "free.tar.gz")
    with cache.hold(held_sha) as path:
        assert path == held_path
        assert cache.is_held(held_sha)
        report = cache.prune(max_size=0)
        assert [e.sha256 for e in report.held] == [held_sha]
        assert [e.sha256 for e in report.removed] == [free_sha]
        report = cache.clean()
        assert [e.sha256 for e in report.held] == [held_sha]
        assert held_path.read_bytes() == b"held"
    assert not cache.is_held(held_sha)
    assert [e.sha256 for e in cache.clean().removed] == [held_sha]
    assert cache.list() == []


@pytest.mark.parametrize(
    "action",
    [
        lambda cache: cache.clean(),
        lambda cache: cache.prune(max_size=0),
        lambda cache: cache.prune(unused_for=0, now=time.time() + DAY),
        lambda cache: cache.prune(keep=()),
    ],
    ids=["clean", "max-size", "unused-for", "keep"],
)
def test_what_another_process_removed_first_is_not_counted(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, action: Callable[[Cache], Any]
) -> None:
    """Race attack: two `cache clean` runs at once said "removed 4" and "removed 3" of 4
    archives: each counted those the other had evicted since it listed them."""
    shas = {put(cache, bytes([n]) * 100, f"{n}.tar.gz")[0] for n in range(4)}
    other = Cache(cache.root)
    real_list = Cache.list
    others: list[Any] = []

    def listed_then_cleaned(self: Cache) -> list[Any]:
        entries = real_list(self)
        if self is cache and not others:
            others.append(other.clean())  # the other process, between list and evict
        return entries

    monkeypatch.setattr(Cache, "list", listed_then_cleaned)
    report = action(cache)
    assert {e.sha256 for e in others[0].removed} == shas
    assert (report.removed, report.held, report.freed) == ((), (), 0)
    assert cache.list() == []


def test_hold_of_a_missing_archive_yields_none(cache: Cache) -> None:
    with cache.hold("1" * 64) as path:
        assert path is None


def test_several_holders_at_once(cache: Cache) -> None:
    sha, _ = put(cache, b"shared")
    with cache.hold(sha) as one, cache.hold(sha) as two:
        assert one == two
    assert not cache.is_held(sha)
    assert not (cache.locks_dir / "holds" / sha).exists()


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pylock.sync.cache import Cache

    cache = Cache(Path(sys.argv[1]))
    with cache.hold(sys.argv[2]) as path:
        print("held" if path else "missing", flush=True)
        sys.stdin.read()
    """
)


def start_holder(cache: Cache, sha: str, says: str = "held") -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache.root), sha],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == says
    return holder


def test_prune_and_clean_skip_an_archive_another_process_holds(cache: Cache) -> None:
    sha, path = put(cache, b"in use elsewhere")
    with start_holder(cache, sha) as holder:
        assert cache.is_held(sha)
        assert cache.prune(max_size=0, unused_for=0).removed == ()
        assert [e.sha256 for e in cache.clean().held] == [sha]
        assert path.exists()
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(30) == 0
    assert [e.sha256 for e in cache.prune(max_size=0).removed] == [sha]


def test_hold_left_by_a_killed_process_does_not_block_forever(cache: Cache) -> None:
    sha, _ = put(cache, b"x")
    with start_holder(cache, sha) as holder:
        holder.kill()
        holder.wait(30)
    markers = list((cache.locks_dir / "holds" / sha).iterdir())
    assert len(markers) == 1  # the killed process could not clean up after itself
    assert not cache.is_held(sha)
    assert not (cache.locks_dir / "holds" / sha).exists()
    assert len(cache.prune(max_size=0).removed) == 1


@pytest.mark.parametrize("action", ["prune", "clean"])
def test_the_locks_of_archives_no_longer_cached_go_unless_in_use(cache: Cache, action: str) -> None:
    """Growth attack: a cache used for months (a BuildKit cache mount, a CI runner) kept a
    gate lock file, and often a holds directory, for every archive it ever fetched."""
    from pylock.fsutil import FileLock

    kept, _ = put(cache, b"kept", "kept.tar.gz")
    evicted, _ = put(cache, b"evicted", "evicted.tar.gz")
    for sha in (kept, evicted):
        with cache.hold(sha):  # (takes the gate, as a download does)
            pass
    assert cache.evict(evicted)  # found corrupt by a sync: its gate and holds stay
    killed = "ab" * 32  # a download killed before it stored: a gate and a dead hold
    (cache.locks_dir / "holds" / killed).mkdir(parents=True)
    (cache.locks_dir / "holds" / killed / "1-0123456789ab.lock").touch()
    Path(cache.gate(killed).path).touch()
    downloading = cache.gate("cd" * 32)  # another sync's download, in progress
    assert downloading.try_acquire()
    streaming = "ef" * 32  # another sync's hold of what it installs while it downloads
    with start_holder(cache, streaming, "missing") as holder:
        report = cache.prune() if action == "prune" else cache.clean()
        names = sorted(p.name for p in cache.locks_dir.glob("*.lock"))
        holds = sorted(p.name for p in (cache.locks_dir / "holds").iterdir())
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(30) == 0
    downloading.release()
    assert report.refused == ()
    if action == "prune":
        assert names == sorted([f"{kept}.lock", f"{'cd' * 32}.lock", f"{streaming}.lock"])
        assert holds == sorted([kept, streaming])
    else:
        assert names == sorted([f"{'cd' * 32}.lock", f"{streaming}.lock"])
        assert holds == [streaming]
    cache.clean()
    assert list(cache.locks_dir.glob("*.lock")) == []
    assert list((cache.locks_dir / "holds").iterdir()) == []
    # Unlinked gates are made again, and guard again.
    with cache.gate(kept):
        assert not FileLock(cache.locks_dir / f"{kept}.lock").try_acquire()


def test_a_sync_taking_a_gate_as_a_clean_lets_go_of_it_holds_what_it_took(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Race attack on removing the gates of archives no longer cached: a sync that takes
    the gate the moment the cleaner lets go of it must hold the gate every other process
    takes, not a file removed under it (two downloads of one archive, or an eviction of
    what a hold is opening)."""
    from pylock import fsutil

    sha = "ab" * 32
    with cache.gate(sha):
        pass
    real = fsutil.FileLock.release
    syncs: list[fsutil.FileLock] = []

    def release(self: fsutil.FileLock) -> None:
        real(self)
        if self.path.endswith(f"{sha}.lock") and not syncs:
            syncs.append(fsutil.FileLock(self.path))
            assert syncs[0].try_acquire()  # the other process, just then

    monkeypatch.setattr(fsutil.FileLock, "release", release)
    cache.clean()
    monkeypatch.undo()
    assert syncs and syncs[0].is_locked
    try:
        assert not fsutil.FileLock(cache.locks_dir / f"{sha}.lock").try_acquire()
    finally:
        syncs[0].release()


def test_evict_ignores_holds_for_corrupt_archives(cache: Cache) -> None:
    sha, _ = put(cache, b"rotten")
    with cache.hold(sha):
        assert cache.evict(sha) is True
    assert cache.lookup(sha) is None
    assert cache.evict(sha) is False


def test_verify_evicts_mismatches_and_reports_them(cache: Cache) -> None:
    good, _ = put(cache, b"good", "good.tar.gz")
    bad, bad_path = put(cache, b"bad", "bad.tar.gz")
    bad_path.chmod(0o644)
    bad_path.write_bytes(b"flipped")
    report = cache.verify()
    assert [e.sha256 for e in report.ok] == [good]
    assert len(report.corrupt) == 1
    corrupt = report.corrupt[0]
    assert corrupt.entry.sha256 == bad
    assert corrupt.actual == hashlib.sha256(b"flipped").hexdigest()
    assert corrupt.evicted
    assert cache.lookup(bad) is None
    assert cache.lookup(good) is not None


def test_verify_leaves_a_held_corrupt_archive_in_place(cache: Cache) -> None:
    sha, path = put(cache, b"bytes")
    path.write_bytes(b"other bytes")
    with cache.hold(sha):
        report = cache.verify()
    assert [c.evicted for c in report.corrupt] == [False]
    assert path.exists()
    assert cache.verify().corrupt[0].evicted


def test_verify_keeps_a_good_copy_stored_after_it_hashed_a_corrupt_one(cache: Cache) -> None:
    # Another process found the copy corrupt too, evicted it and stored a good one while
    # `cache verify` was hashing the old one: by sha256 alone, verify threw the good one out.
    sha, path = put(cache, b"good bytes")
    path.chmod(0o644)
    path.write_bytes(b"rotten bytes")

    def replaced_when_read(_count: int) -> None:
        if path.read_bytes() != b"good bytes":  # the whole file is read by now
            path.write_bytes(b"good bytes")

    report = cache.verify(on_progress=replaced_when_read)
    assert report.corrupt == ()
    assert [e.sha256 for e in report.ok] == [sha]
    assert path.read_bytes() == b"good bytes"
    assert cache.lookup(sha) == path


def test_a_sidecar_too_large_to_be_read_is_not_kept(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scale attack: written whole, read up to 16 MiB: every install of an archive with
    # some 140,000 files hashed them all again and rewrote it.
    import pylock.sync.cache

    sha, _ = put(cache, b"archive")
    monkeypatch.setattr(pylock.sync.cache, "_SIDECAR_MAX_BYTES", 10)
    cache.put_sidecar(sha, ".files-x", b"x" * 11)
    assert not (cache.archive_dir(sha) / ".files-x").exists()
    cache.put_sidecar(sha, ".files-x", b"x" * 10)
    assert cache.sidecar(sha, ".files-x") == b"x" * 10


def test_partial_downloads_are_cleaned_only_when_nobody_writes_them(cache: Cache) -> None:
    sha = "a" * 64
    partial = cache.new_tmp_path(sha)
    partial.write_bytes(b"half")
    gate = cache.gate(sha)
    with gate:
        cache.prune()
        assert partial.exists()  # its downloader is alive (holds the gate)
    cache.prune()
    assert not partial.exists()
    fresh = cache.new_tmp_path("unknown")
    fresh.write_bytes(b"direct url, hash not known yet")
    old = cache.new_tmp_path("unknown")
    old.write_bytes(b"abandoned")
    os.utime(old, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    cache.clean()
    assert fresh.exists()
    assert not old.exists()


def test_a_killed_runs_writability_probes_are_removed_after_a_minute(cache: Cache) -> None:
    """Crash attack: a `cache clean` killed between creating and removing its probe left
    `tmp/probe.*.tmp` for an hour (and `locks/probe.*.tmp` for good), against the README's
    "prune or clean removes it"."""
    cache.locks_dir.mkdir(parents=True, exist_ok=True)
    old_tmp = cache.new_tmp_path("probe", ".tmp")
    old_lock = cache.locks_dir / "probe.123-abcdef.tmp"
    fresh = cache.new_tmp_path("probe", ".tmp")
    for path in (old_tmp, old_lock, fresh):
        path.touch()
    for path in (old_tmp, old_lock):
        os.utime(path, (time.time() - 120, time.time() - 120))
    cache.prune()
    assert not old_tmp.exists() and not old_lock.exists()
    assert fresh.exists()  # a live run's, maybe


def test_a_killed_runs_probes_stamped_in_the_future_are_removed(cache: Cache) -> None:
    """Time attack: a probe a killed run stamped before the clock was set back stayed
    until the clock caught up (`cache clean` too): only "a minute old" counted."""
    cache.locks_dir.mkdir(parents=True, exist_ok=True)
    ahead = time.time() + 2 * DAY
    probes = [cache.new_tmp_path("probe", ".tmp"), cache.locks_dir / "probe.123-abcdef.tmp"]
    for path in probes:
        path.touch()
        os.utime(path, (ahead, ahead))
    cache.clean()
    assert not any(path.exists() for path in probes)


def test_a_probe_stamped_a_little_ahead_may_be_another_hosts_live_one(cache: Cache) -> None:
    """Attack on the day's diff: on NFS the server stamps the files, and a client whose
    clock is behind saw another host's live probe an hour ahead and removed it."""
    cache.locks_dir.mkdir(parents=True, exist_ok=True)
    ahead = time.time() + 3600
    probes = [cache.new_tmp_path("probe", ".tmp"), cache.locks_dir / "probe.123-abcdef.tmp"]
    for path in probes:
        path.touch()
        os.utime(path, (ahead, ahead))
    cache.clean()
    assert all(path.exists() for path in probes)


@pytest.mark.parametrize("action", ["prune", "clean"])
def test_a_live_download_of_an_unknown_archive_is_left_alone_however_old_it_looks(
    cache: Cache, action: str
) -> None:
    """Time attack: `lock`'s download of a direct URL (its sha256 not known yet) was judged
    by its age alone, so a `cache prune` on a host whose clock was two hours ahead (a
    shared cache) removed it under the download, which failed."""
    two_hours_ago = time.time() - 7200
    with cache.unknown_download() as partial:
        partial.write_bytes(b"arriving")
        os.utime(partial, (two_hours_ago, two_hours_ago))
        report = getattr(cache, action)()
        assert partial.read_bytes() == b"arriving" and report.leftovers == 0
    assert not partial.exists()
    assert not any(cache.locks_dir.glob("unknown.*"))


def test_a_killed_download_of_an_unknown_archive_goes_at_once(cache: Cache) -> None:
    """Its guard is free: no need to wait an hour (nor for the clock, if it is stamped in
    the future). A guard whose file went already goes too."""
    cache.locks_dir.mkdir(parents=True, exist_ok=True)
    cache.tmp_dir.mkdir(parents=True, exist_ok=True)
    ahead = time.time() + 2 * DAY
    killed = cache.tmp_dir / "unknown.0123456789.part"
    killed.write_bytes(b"killed")
    os.utime(killed, (ahead, ahead))
    guards = [
        cache.locks_dir / "unknown.0123456789.lock",
        cache.locks_dir / "unknown.abcdef0123.lock",
    ]
    for guard in guards:
        guard.touch()
    assert cache.prune().leftovers == len(b"killed")
    assert not killed.exists()
    assert not any(guard.exists() for guard in guards)


@pytest.mark.parametrize("action", ["prune", "clean"])
def test_prune_and_clean_leave_what_pylock_did_not_put_in_tmp(cache: Cache, action: str) -> None:
    """CLI attack: `PYLOCK_CACHE_DIR=$HOME pylock cache prune` deleted every entry of
    ~/tmp an hour old (and `=/` emptied /tmp), as if it were a killed run's partial work."""
    old = time.time() - 2 * DAY
    foreign = [cache.tmp_dir / name for name in ("work", "notes.txt", "a" * 64, "unknown.x.part")]
    cache.tmp_dir.mkdir(parents=True, exist_ok=True)
    (cache.tmp_dir / "work").mkdir()
    (cache.tmp_dir / "work" / "precious").write_text("keep me", encoding="utf-8")
    for path in foreign[1:]:
        path.write_text("keep me", encoding="utf-8")
    ours = cache.new_tmp_path("unknown")
    ours.write_bytes(b"abandoned")
    # What pylock 0.2.0 named them (KEY.PID-12HEX): its debris goes too.
    older = [
        cache.tmp_dir / "unknown.4242-0123456789ab.part",
        cache.tmp_dir / "evicted.42-0123456789ab",
    ]
    older[0].write_bytes(b"abandoned")
    older[1].mkdir()
    (older[1] / "big.tar.gz").write_bytes(b"evicted")
    for path in (*foreign, ours, *older):
        os.utime(path, (old, old))
    report = getattr(cache, action)()
    # Upgrade attack: "freed 0 B" after removing them.
    assert report.leftovers == len(b"abandoned" * 2 + b"evicted") == report.freed
    assert all(path.exists() for path in foreign)
    assert (cache.tmp_dir / "work" / "precious").read_text(encoding="utf-8") == "keep me"
    assert not ours.exists()
    assert not any(path.exists() for path in older)


def test_clean_removes_metadata(cache: Cache) -> None:
    from pylock.index.metadata import CachedDocument, MetadataStore

    store = MetadataStore(cache.metadata_dir)
    cache.metadata_dir.mkdir(parents=True)
    store.save(CachedDocument(url="https://example.test/a", status=200, body=b"{}", checked_at=1.0))
    put(cache, b"z")
    report = cache.clean()
    assert len(report.removed) == 1
    assert not cache.metadata_dir.exists()
    assert cache.list() == []


def test_clean_leaves_files_it_did_not_store_in_metadata(cache: Cache) -> None:
    """CLI attack, continued: with PYLOCK_CACHE_DIR=$HOME, `cache clean` removed ~/metadata
    whole, whatever it held."""
    from pylock.index.metadata import CachedDocument, MetadataStore

    store = MetadataStore(cache.metadata_dir)
    (cache.metadata_dir / "photos").mkdir(parents=True)
    (cache.metadata_dir / "photos" / "a.jpg").write_bytes(b"jpeg")
    (cache.metadata_dir / "notes.json").write_text("{}", encoding="utf-8")
    store.save(CachedDocument(url="https://example.test/a", status=200, body=b"{}", checked_at=1.0))
    # A write killed half-way, as tempfile named it before pylock 0.3.
    (cache.metadata_dir / ".h_a.0123456789abcdef.body.ab_qz9k1.tmp").write_bytes(b"{")
    cache.clean()
    assert store.load("https://example.test/a") is None
    assert sorted(p.name for p in cache.metadata_dir.iterdir()) == ["notes.json", "photos"]
    assert (cache.metadata_dir / "photos" / "a.jpg").read_bytes() == b"jpeg"


# -- the `pylock cache` command --------------------------------------------------------


def run_cache(cache: Cache, *args: str) -> int:
    from pylock.cli import main

    return main(["cache", *args], {**os.environ, "PYLOCK_CACHE_DIR": str(cache.root)})


def test_cache_dir_and_list_commands(cache: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cache(cache, "dir") == 0
    assert capsys.readouterr().out == f"{cache.root}\n"
    sha, _ = put(cache, b"x" * 2048)
    assert run_cache(cache, "list") == 0
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    assert line.startswith(sha[:16])
    assert line.endswith(NAME)
    assert "2.0 KiB" in line
    assert "1 archive(s)" in captured.err


def test_cache_prune_command(cache: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    old, _ = put(cache, b"old" * 100, "old.tar.gz")
    set_last_used(cache, old, now - 10 * DAY)
    put(cache, b"new" * 100, "new.tar.gz")
    assert run_cache(cache, "prune", "--unused-for", "7") == 0
    assert "removed 1 archive(s)" in capsys.readouterr().err
    assert [e.filename for e in cache.list()] == ["new.tar.gz"]
    assert run_cache(cache, "prune", "--max-size", "0.1K") == 0
    assert [e.filename for e in cache.list()] == []
    assert run_cache(cache, "prune", "--max-size", "lots") == 2
    assert "pylock: error: invalid size 'lots'" in capsys.readouterr().err
    assert run_cache(cache, "prune", "--unused-for", "-1") == 2


@pytest.mark.parametrize("command", [["prune", "--max-size", "1G"], ["clean"]])
def test_prune_and_clean_of_a_cache_that_is_not_there_do_nothing(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """UX attack: with a read-only HOME and no cache yet, `cache prune` and `cache clean`
    failed on "permission denied" making it, where `cache list` said 0 archives."""
    parent = tmp_path / "read-only-home"
    parent.mkdir()
    cache = Cache(parent / "cache")
    parent.chmod(0o555)
    try:
        assert run_cache(cache, *command) == 0, capsys.readouterr().err
        assert "removed 0 archive(s)" in capsys.readouterr().err
        assert not cache.root.exists()
    finally:
        parent.chmod(0o755)


def test_cache_verify_and_clean_commands(cache: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    put(cache, b"fine", "fine.tar.gz")
    assert run_cache(cache, "verify") == 0
    assert "1 archive(s) OK, 0 corrupt" in capsys.readouterr().err
    bad, path = put(cache, b"bad", "bad.tar.gz")
    path.write_bytes(b"rotten")
    assert run_cache(cache, "verify") == 1
    captured = capsys.readouterr()
    assert f"corrupt: bad.tar.gz (expected sha256 {bad}" in captured.out
    assert "evicted" in captured.out
    assert "pylock: error: 1 cached archive(s) were corrupt" in captured.err
    assert run_cache(cache, "clean") == 0
    assert "removed 1 archive(s)" in capsys.readouterr().err
    assert cache.list() == []


@pytest.mark.parametrize("action", ["list", "verify"])
def test_cache_list_and_verify_refuse_a_cache_that_is_a_file(
    tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # They said "0 archive(s)" and "0 corrupt", exit 0, for a cache that cannot exist.
    root = tmp_path / "cache"
    root.write_text("not a directory")
    assert run_cache(Cache(root), action) == 1
    err = capsys.readouterr().err
    assert f"pylock: error: cannot {action} the cache at {root}: Not a directory" in err
    assert "point PYLOCK_CACHE_DIR at the cache directory" in err
    assert run_cache(Cache(tmp_path / "missing"), action) == 0  # not there: empty


def test_cache_listings_escape_the_names_they_show(
    cache: Cache, capsys: pytest.CaptureFixture[str]
) -> None:
    # A shared or planted cache names its files: an escape sequence reached the terminal.
    _, stored = put(cache, b"x", "ok.tar.gz")  # pylock stores under a clean name itself
    path = stored.with_name("evil\x1b[2J\nfake.tar.gz")
    stored.rename(path)
    assert run_cache(cache, "list") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J\\nfake.tar.gz" in out
    path.chmod(0o644)
    path.write_bytes(b"rotten")
    assert run_cache(cache, "verify") == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "corrupt: evil\\x1b[2J\\nfake.tar.gz" in out


@pytest.mark.parametrize("stamp", [1e17, -1e17], ids=["year-3e9", "before-the-calendar"])
def test_cache_list_shows_a_use_no_calendar_holds_as_unknown(
    cache: Cache, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stamp: float
) -> None:
    """A `.last-used` stamped 1e17 (tmpfs, btrfs and NFS take it) failed the whole listing
    with "Value too large for defined data type", naming no file, and a permissions hint."""
    put(cache, b"x", "far.tar.gz")
    put(cache, b"y", "near.tar.gz")
    real = Cache.list

    def stamped(self: Cache) -> list[CacheEntry]:
        return [
            attrs.evolve(e, last_used=stamp) if e.filename == "far.tar.gz" else e
            for e in real(self)
        ]

    monkeypatch.setattr(Cache, "list", stamped)
    assert run_cache(cache, "list") == 0
    far, near = capsys.readouterr().out.splitlines()
    assert far.split()[-2:] == ["?", "far.tar.gz"]
    assert near.endswith("near.tar.gz") and "?" not in near


def _as_another_user(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child that has become ``nobody``; its exit status (0: fine).
    Everything it needs must be imported already: the child may not read /root."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            work()
            code = 0
        except BaseException as error:
            sys.stderr.write(f"{type(error).__name__}: {error}\n")
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@as_root
def test_a_cache_shared_by_two_users_takes_the_other_users_locks_and_partials(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Crash attack: root's download into nobody's cache left a 0644 gate lock file and a
    partial download: nobody's sync of that archive then failed on "Permission denied:
    locks/<sha>.lock", and `cache prune` and `cache clean` stopped on it."""
    import tempfile

    from pylock.fsutil import FileLock

    shared = Path(tempfile.mkdtemp(prefix="pylock-shared-cache-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        cache = Cache(shared / "cache")
        put(cache, b"kept" * 10)
        cache.gate("00" * 32)  # the cache's folders, as nobody made them
        cache.locks_dir.mkdir(exist_ok=True)
        for folder in (cache.root, *cache.root.rglob("*")):
            if folder.is_dir():
                folder.chmod(0o777)
        # Root's, from a download killed in nobody's cache: a partial and a 0644 gate.
        partial = cache.new_tmp_path("ab" * 32)
        partial.write_bytes(b"half")
        gate = cache.gate("ab" * 32)
        assert gate.try_acquire()
        gate.release()
        assert (cache.locks_dir / f"{'ab' * 32}.lock").stat().st_mode & 0o777 == 0o644
        cache.prune()  # imports what the child needs, while /root is readable

        read_only = shared / "read-only"
        read_only.mkdir(mode=0o755)  # root's: nobody may not make a lock file in it

        def take_roots_lock_and_prune() -> None:
            other = FileLock(cache.locks_dir / f"{'ab' * 32}.lock")
            assert other.try_acquire()
            other.release()
            cache.prune(max_size=0)
            cache.clean()
            # No lock file there, and none to be made: the refusal, not "no such file".
            try:
                FileLock(read_only / "x.lock").try_acquire()
            except PermissionError:
                pass
            else:
                raise AssertionError("a lock was taken in a read-only directory")

        assert _as_another_user(take_roots_lock_and_prune) == 0
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (PermissionError(13, "Permission denied"), "this user may not write there"),
        (FileNotFoundError(2, "No such file or directory"), "no directory can be made there"),
        (OSError(30, "Read-only file system"), "a read-only cache serves only the archives"),
        # Field test: a sync on a full disk was told its cache was read-only, to be filled
        # with `pylock fetch` elsewhere.
        (OSError(errno.ENOSPC, "No space left on device"), "free some disk space, then try"),
        (
            OSError(getattr(errno, "EDQUOT", errno.ENOSPC), "Disk quota exceeded"),
            "free some disk space, then try",
        ),
    ],
)
def test_a_cache_that_cannot_be_written_gets_the_hint_of_its_error(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, error: OSError, hint: str
) -> None:
    """Environment attack: with HOME unset (a cache under /nonexistent) the error blamed
    PYLOCK_CACHE_DIR, which nobody had set, and "the cache belongs to another user"; under
    a path where nothing can be made, it said the cache was read-only."""
    from pylock.errors import CacheReadOnlyError

    monkeypatch.setattr(Cache, "_write_error", lambda self: error)
    with pytest.raises(CacheReadOnlyError) as info:
        cache.require_writable()
    said = f"cannot store downloads in the cache at {cache.root}: {error.strerror}"
    assert str(info.value) == said
    assert info.value.hint is not None and info.value.hint.startswith(hint)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX user ids")
def test_a_cache_this_user_may_not_write_is_told_this_users_id(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test (Docker): a `USER 1001` stage was told to give the cache mount
    `uid=1000`, which it then could not write either."""
    from pylock.errors import CacheReadOnlyError

    monkeypatch.setattr(Cache, "_write_error", lambda self: PermissionError(13, "denied"))
    monkeypatch.setattr(os, "getuid", lambda: 1001)
    with pytest.raises(CacheReadOnlyError) as info:
        cache.require_writable()
    assert "`--mount=type=cache,target=...,uid=1001`" in str(info.value.hint)


@pytest.mark.parametrize("doing", ["prune", "clean"])
def test_a_read_only_cache_told_to_shrink_is_told_where_to_do_it(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, doing: str
) -> None:
    """Error-message audit: `cache clean` of a read-only cache said to fill it with
    `pylock fetch` where it is writable."""
    from pylock.errors import CacheReadOnlyError

    monkeypatch.setattr(Cache, "_write_error", lambda self: OSError(30, "Read-only file system"))
    with pytest.raises(CacheReadOnlyError) as info:
        cache.require_writable(doing)
    assert info.value.hint is not None
    assert info.value.hint.startswith(f"a read-only cache keeps what it holds: {doing}")


@pytest.mark.parametrize("doing", ["prune", "clean"])
def test_a_full_disk_is_pruned_not_called_read_only(
    tmpfs: Callable[[str], Path], doing: str
) -> None:
    """Fault attack: on a file system with no inode (or block) left, `cache prune` and
    `cache clean`, the commands the sync's out-of-space hint names, refused with "No
    space left on device" and called the cache read-only: their writability probe is a new
    file, and removing archives needs no room."""
    cache = Cache(tmpfs("size=4m,nr_inodes=64") / "cache")
    sha, archive = put(cache, b"x" * 200_000)
    with cache.gate(sha):  # the lock file an eviction takes, as the download left it
        pass
    with contextlib.suppress(OSError):  # fill the inode table
        for n in range(100):
            (cache.root.parent / f"filler-{n}").touch()
    assert cache._write_error() is not None
    report = cache.clean() if doing == "clean" else cache.prune(max_size=0)
    assert [e.sha256 for e in report.removed] == [sha]
    assert not archive.exists()


def test_a_directory_where_a_metadata_document_goes_is_replaced_and_cleaned(
    cache: Cache,
) -> None:
    """Live-listing attack: a directory in place of a cached listing failed every refresh
    with "Is a directory" (naming a temporary file), and `cache clean` left it."""
    from pylock.index.metadata import CachedDocument, MetadataStore

    store = MetadataStore(cache.metadata_dir)
    cache.metadata_dir.mkdir(parents=True)
    doc = CachedDocument(url="https://example.test/a", status=200, body=b"{}", checked_at=1.0)
    store.save(doc)
    stored = list(cache.metadata_dir.iterdir())
    for path in stored:
        path.unlink()
        (path / "junk").mkdir(parents=True)
    store.save(doc)  # a fetch that succeeds stores it again
    assert store.load(doc.url) == doc
    for path in stored:
        path.unlink()
        (path / "junk").mkdir(parents=True)
    cache.clean()
    assert not cache.metadata_dir.exists()


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symlinks")
def test_a_planted_last_used_link_is_never_followed(cache: Cache, tmp_path: Path) -> None:
    """Attack as another user of a shared cache: `.last-used` replaced by a link made
    root's sync create the file it named (a link to nothing: `/etc/nologin`, say) or set
    its time (a link to a file)."""
    sha, _ = put(cache, b"shared bytes")
    marker = cache.archive_dir(sha) / ".last-used"
    nothing = tmp_path / "PWNED"
    marker.unlink()
    marker.symlink_to(nothing)
    cache.lookup(sha)
    assert not nothing.exists()
    victim = tmp_path / "victim"
    victim.write_text("mine")
    os.utime(victim, (1_000_000_000.0, 1_000_000_000.0))
    marker.unlink()
    marker.symlink_to(victim)
    cache.lookup(sha)
    assert victim.stat().st_mtime == 1_000_000_000.0
    # prune --unused-for reads the link's own time, not the file's it names.
    assert cache.list()[0].last_used > time.time() - 60


def test_no_home_to_find_the_cache_in_is_a_clean_error(
    homeless: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Attack as a uid with no passwd entry and no HOME (OpenShift, `docker run -u 12345`):
    every command that needs the cache ended in platformdirs' RuntimeError, a traceback."""
    from pylock.cli import main

    for name in ("PYLOCK_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("platformdirs finds a cache without HOME elsewhere")
    assert main(["cache", "dir"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pylock: error: cannot tell where the cache goes: ")
    assert "hint: set PYLOCK_CACHE_DIR to a directory (or HOME to an absolute one)" in err
    # A `~` no home answers is an error too: left as written, it made a directory named
    # `~` where the command ran (attack on the day's diff); pathlib raised before.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYLOCK_CACHE_DIR", "~nosuchuser-pylock/cache")
    assert main(["cache", "dir"]) == 1
    err = capsys.readouterr().err
    assert "PYLOCK_CACHE_DIR is '~nosuchuser-pylock/cache', but no user 'nosuchuser-pylock'" in err
    monkeypatch.setenv("PYLOCK_CACHE_DIR", "~/cache")
    assert main(["cache", "dir"]) == 1
    assert "but this user has no home here" in capsys.readouterr().err
    monkeypatch.setenv("PYLOCK_CACHE_DIR", str(tmp_path / "c"))
    assert main(["cache", "prune", "--keep-lock", "~/pythons.lock"]) == 1
    assert "--keep-lock is '~/pythons.lock', but this user has no home" in capsys.readouterr().err
    assert not (tmp_path / "~").exists()


# -- another user's archives in a shared cache -------------------------------------------


def refuse_removal(monkeypatch: pytest.MonkeyPatch, cache: Cache, sha: str) -> Path:
    """Make the archive ``sha`` refuse to go, as root's archive does in a group-writable
    shared cache (its directory is root's 0755: neither moved nor emptied); root passes
    every mode check, so the refusal is injected. Returns the archive's directory."""
    import errno

    directory = cache.archive_dir(sha)
    real_rename, real_unlink = os.rename, os.unlink

    def denied(*paths: Any) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), *map(str, paths))

    def rename(source: Any, target: Any, **kw: Any) -> None:
        if Path(source) == directory:
            raise denied(source, target)
        real_rename(source, target, **kw)

    def unlink(path: Any, **kw: Any) -> None:
        if Path(path).parent == directory:
            raise denied(path)
        real_unlink(path, **kw)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    return directory


@evicting_commands
def test_an_archive_this_user_may_not_remove_is_not_in_use(
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """Attack as another user of a shared cache: root's archive, which `cache clean` and
    `cache prune` could not remove, was "1 kept because in use" (exit 0)."""
    theirs, path = put(cache, b"root's", "theirs.tar.gz")
    put(cache, b"mine", "mine.tar.gz")
    refuse_removal(monkeypatch, cache, theirs)
    assert run_cache(cache, *command) == 1
    err = capsys.readouterr().err
    assert "removed 1 archive(s)" in err and "1 could not be removed" in err
    assert "in use" not in err
    said = f"pylock: error: cannot remove 1 archive(s) from the cache at {cache.root}:\n"
    assert said in err and f"  {path}: Permission denied\n" in err
    assert "another user's" in err and "PYLOCK_CACHE_DIR" in err
    assert [e.sha256 for e in cache.list()] == [theirs]
    report = cache.clean()
    assert (report.removed, report.held) == ((), ())
    assert [(r.entry.sha256, r.path, r.reason) for r in report.refused] == [
        (theirs, str(path), "Permission denied")
    ]


def test_a_corrupt_archive_this_user_may_not_remove_is_named_by_verify(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same attack: `cache verify` said "kept: another process is using it"."""
    sha, path = put(cache, b"root's")
    path.write_bytes(b"rotten")
    refuse_removal(monkeypatch, cache, sha)
    assert run_cache(cache, "verify") == 1
    captured = capsys.readouterr()
    assert f"; kept: cannot remove {path}: Permission denied" in captured.out
    assert "another process" not in captured.out
    assert "another user's" in captured.err
    assert path.read_bytes() == b"rotten"


def test_a_corrupt_archive_a_sync_may_not_evict_gets_the_caches_hint(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same attack: a sync that found root's cached archive corrupt, and could not
    evict it, blamed "a mirror or URL rewrite" for bytes that the cache held."""
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    assert sync_project.run("fetch", "--mirror", sync_project.mirror).code == 0
    archive = sync_project.archive(app_a)
    archive.write_bytes(b"X" * len(app_a.data))  # same size, other bytes
    directory = refuse_removal(monkeypatch, Cache(sync_project.cache), app_a.sha256)
    done = sync_project.sync()
    assert done.code == 1
    assert (
        f"cached archive {app_a.filename} is corrupt, and the cache at {sync_project.cache} "
        f"cannot be changed (Permission denied: {archive})"
    ) in done.err
    hint = done.err.split("hint:")[-1]
    assert f"{directory} is another user's" in hint and "mirror" not in hint
    assert "Traceback" not in done.err
    assert sync_project.server.hits(app_a.path) == 1


def deny_archives(monkeypatch: pytest.MonkeyPatch, cache: Cache) -> Path:
    """Make ``archives/`` unsearchable, as chmod 0 (or another user's 0700) does for any
    user but root, whom no mode stops. Returns the directory."""
    import errno

    denied = cache.root / "archives"
    real = {name: getattr(os, name) for name in ("lstat", "stat", "listdir", "scandir")}

    def refusing(name: str) -> Callable[..., Any]:
        # Its own entry can be looked at, not what it holds.
        lists = name in ("listdir", "scandir")

        def call(path: Any = ".", *args: Any, **kw: Any) -> Any:
            if isinstance(path, (str, os.PathLike)) and (
                (lists and Path(path) == denied) or denied in Path(path).parents
            ):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real[name](path, *args, **kw)

        return call

    for name in real:
        monkeypatch.setattr(os, name, refusing(name))
    return denied


@pytest.mark.parametrize("action", ["list", "verify"])
def test_cache_list_and_verify_refuse_archives_they_may_not_search(
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: str,
) -> None:
    """Attack as another user: with `archives/` at mode 0 (or another user's 0700), `cache
    list` and `cache verify` said "0 archive(s)", exit 0: os.path.lexists says "not there"
    for a path it may not search, and the listing swallowed the refusal."""
    put(cache, b"x")
    denied = deny_archives(monkeypatch, cache)
    assert run_cache(cache, action) == 1
    err = capsys.readouterr().err
    said = f"pylock: error: cannot {action} the cache at {cache.root}: {denied}: Permission denied"
    assert said in err
    assert f"this user may not read {denied}" in err
    assert "0 archive(s)" not in err


@evicting_commands
def test_prune_and_clean_refuse_archives_they_may_not_list(
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """The same attack: they said "removed 0 archive(s)", exit 0."""
    put(cache, b"x")
    deny_archives(monkeypatch, cache)
    assert run_cache(cache, *command) == 1
    err = capsys.readouterr().err
    assert f"pylock: error: cannot read the cache at {cache.root}: " in err
    assert "Permission denied" in err and "removed 0" not in err


@as_root
def test_another_users_private_archives_are_no_empty_cache(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The attack itself: root's 0700 `archives/` in a cache nobody may write."""
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="pylock-shared-cache-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        cache = Cache(shared / "cache")
        put(cache, b"root's")
        cache.root.chmod(0o777)
        (cache.root / "archives").chmod(0o700)

        def list_it() -> None:
            for call in (lambda: cache.require_readable("list"), cache.list):
                try:
                    call()
                except PylockError as error:
                    assert str(error).endswith(": Permission denied"), str(error)
                else:
                    raise AssertionError("an unreadable cache was listed as empty")

        assert _as_another_user(list_it) == 0
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)


def test_an_offline_sync_with_a_cache_that_is_a_file_says_so(
    sync_project: Any, app_a: Any, tmp_path: Path
) -> None:
    """Error-message audit: `PYLOCK_CACHE_DIR=/etc/passwd pylock sync --offline` said the
    archive "is not cached ... expected at /etc/passwd/archives/..." and to fetch it first."""
    sync_project.lock(app_a)
    a_file = tmp_path / "not-a-cache"
    a_file.write_text("x")
    sync_project.environ["PYLOCK_CACHE_DIR"] = str(a_file)
    result = sync_project.sync("--offline")
    assert result.code == 1
    assert f"cannot use the cache at {a_file}: Not a directory" in result.err
    assert "is not cached" not in result.err and "Traceback" not in result.err


# -- attack on the day's diff: prune under contention and refusals --------------------------


def test_prune_to_a_size_counts_what_it_may_not_remove(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive this user may not remove, refused by `--unused-for`'s pass, left the size
    pass's total: `--max-size 250` then stopped with 300 bytes left."""
    shas = [put(cache, bytes([n]) * 100, f"{n}.tar.gz")[0] for n in range(4)]
    now = time.time()
    set_last_used(cache, shas[0], now - 40 * DAY)  # unused, and another user's
    for age, sha in enumerate(shas[1:], start=3):
        set_last_used(cache, sha, now - age * DAY)
    real = Cache.evict_locked

    def not_mine(self: Cache, sha256: str) -> bool:
        if sha256 == shas[0]:
            raise PermissionError(13, "Permission denied", str(self.archive_dir(sha256)))
        return real(self, sha256)

    monkeypatch.setattr(Cache, "evict_locked", not_mine)
    report = cache.prune(unused_for=30 * DAY, max_size=250)
    assert [r.entry.sha256 for r in report.refused] == [shas[0]]
    assert sum(e.size for e in cache.list()) <= 250


def test_an_archive_another_pruner_is_removing_is_gone_not_in_use(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `cache prune --max-size` at once: each found the other's gate taken, called the
    archive "kept because in use", kept counting its size, and evicted on: the cache
    ended empty."""
    import threading

    sha, _ = put(cache, b"x" * 100)
    other = Cache(cache.root)
    gate = other.gate(sha)
    threads: list[threading.Thread] = []
    real_list = Cache.list

    def other_pruner() -> None:
        try:
            other.evict_locked(sha)
            time.sleep(0.1)
        finally:
            gate.release()

    def listed_then_the_other_evicts(self: Cache) -> list[Any]:
        entries = real_list(self)
        if self is cache and not threads:
            assert gate.try_acquire()
            threads.append(threading.Thread(target=other_pruner))
            threads[0].start()
        return entries

    monkeypatch.setattr(Cache, "list", listed_then_the_other_evicts)
    report = cache.prune(max_size=0)
    threads[0].join()
    assert (report.removed, report.held) == ((), ())
    assert real_list(cache) == []


def test_a_live_sidecar_write_is_no_leftover_but_an_old_one_is(cache: Cache) -> None:
    """A sync's file-digests sidecar, written in tmp/ without the gate, was taken for a
    killed run's by a concurrent `cache clean`, deleted, and counted as freed."""
    sha, _ = put(cache, b"archive")
    live = cache.new_tmp_path(sha, ".sidecar")
    live.write_bytes(b"d" * 1000)
    old = cache.new_tmp_path(sha, ".sidecar")
    old.write_bytes(b"d" * 10)
    then = time.time() - 3600
    os.utime(old, (then, then))
    future = cache.new_tmp_path(sha, ".sidecar")  # another machine's clock, far ahead
    future.write_bytes(b"d" * 5)
    ahead = time.time() + 3600
    os.utime(future, (ahead, ahead))
    report = cache.prune()
    assert live.exists() and not old.exists() and not future.exists()
    assert report.leftovers == 15


def test_an_install_dir_under_a_home_nobody_has_is_an_error_not_a_directory_named_tilde(
    homeless: None, sync_project: Any, app_a: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Attack on the day's diff: with no home, `--into '~/py'` installed into `./~/py`
    (and the fix-ups wrote that path into the interpreter)."""
    monkeypatch.chdir(tmp_path)
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    result = sync_project.run("sync", "--into", "~/py", "--mirror", sync_project.mirror)
    assert result.code == 1
    assert "--into is '~/py', but this user has no home here" in result.err
    assert not (tmp_path / "~").exists()
    # Error-message audit: a bin dir from the environment was called `--bin-dir`.
    sync_project.environ["PYLOCK_BIN_DIR"] = "~/bin"
    result = sync_project.run("sync", "--into", "py", "--mirror", sync_project.mirror)
    assert result.code == 1
    assert "pylock: error: PYLOCK_BIN_DIR is '~/bin', but this user" in result.err
    assert "give PYLOCK_BIN_DIR an absolute path" in result.err
    assert not (tmp_path / "~").exists()


def test_a_relative_home_reads_no_netrc_of_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack on the day's diff: `HOME=.` sent the credentials of a `.netrc` the project
    shipped (the docker config was fenced off the same way already), and an empty HOME
    read `/.netrc`."""
    assert Settings.from_environ({"HOME": "."}).netrc_path() == ""
    assert Settings.from_environ({"HOME": "/home/u"}).netrc_path(windows=False) == "/home/u/.netrc"
    monkeypatch.setenv("HOME", "")
    assert Settings.from_environ({"HOME": ""}).netrc_path() == ""


@pytest.mark.skipif(os.name == "nt", reason="HOME is POSIX's")
def test_an_empty_home_is_no_home_for_a_tilde(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Round-two attack: `HOME= PYLOCK_CACHE_DIR=~/c` put the cache at `/c` (an empty HOME
    expands to `/`); and the no-op fast path worked out `./~/...` where the CLI refuses."""
    from pylock.cli import main
    from pylock.fastpath import sync_dirs

    monkeypatch.setenv("HOME", "")
    monkeypatch.setenv("PYLOCK_CACHE_DIR", "~/c")
    assert main(["cache", "dir"]) == 1
    assert "PYLOCK_CACHE_DIR is '~/c', but this user has no home here" in capsys.readouterr().err
    settings = Settings.from_environ({"HOME": ""})
    assert settings.expanded("~/x") is None and settings.expanded("/a/~b") == "/a/~b"
    assert sync_dirs({"--into": "~/py"}, settings) is None
    settings = Settings.from_environ({"HOME": str(tmp_path)})
    assert settings.expanded("~/x") == str(tmp_path / "x")
    assert settings.expanded("~") == str(tmp_path)


@pytest.mark.skipif(os.name == "nt", reason="a backslash separates ~ from the rest on Windows")
def test_a_tilde_user_with_a_backslash_is_named_as_the_user_it_asks_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--into '~\\x'` asks for the home of a user named `\\x` on POSIX, but the error said
    this user had no home (with HOME set), as if `\\` separated the name there."""
    from pylock.cli import main

    assert main(["sync", "--into", "~\\nosuch", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "--into is '~\\\\nosuch', but no user '\\\\nosuch' is known here" in err
    assert "this user has no home" not in err
