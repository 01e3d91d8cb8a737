"""``pylock sync`` as a whole: lock -> cache -> (streamed) install, against a loopback mirror.

Most tests run ``pylock.cli.main`` in-process; the ones where process death, the console
entry point or two processes at once matter run ``python -m pylock`` in a subprocess.
A :class:`TreeWatcher` samples ``DIR/NAME`` on a thread while a sync runs, and fails the
test if it ever sees a half-installed or mixed tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest

import pylock.net.stream
from pylock.versions import ArchiveFormat
from tests.archives import compress, exe, file, tar_bytes
from tests.httpserver import Reset, Status, Throttle, WrongBytes
from tests.syncproject import (
    PATIENCE,
    TAG_A,
    TAG_B,
    TRIPLE,
    Build,
    Project,
    installed_sha,
    make_build,
    noise,
    tree_of,
)

pytestmark = [
    pytest.mark.skipif(TRIPLE is None, reason="no python-build-standalone triple for this host"),
    pytest.mark.skipif(os.name == "nt", reason="POSIX install layout and signals"),
]


class StreamSpy:
    """Counts the bytes installs read through :class:`pylock.net.stream.FeedReader`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        self.restarts = 0
        original = pylock.net.stream.FeedReader.read
        spy = self

        def read(reader: pylock.net.stream.FeedReader, size: int = -1) -> bytes:
            try:
                data = original(reader, size)
            except pylock.net.stream.StreamRestarted:
                spy.restarts += 1
                raise
            spy.bytes += len(data)
            return data

        monkeypatch.setattr(pylock.net.stream.FeedReader, "read", read)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> StreamSpy:
    return StreamSpy(monkeypatch)


# -- watching DIR/NAME while a sync runs ----------------------------------------------------


class TreeWatcher:
    """Samples ``DIR/NAME`` on a thread: it must always be absent or one complete tree.

    Each sample opens the directory once and reads through that handle, so a rename in
    the middle of a sample cannot mix two trees; a sample whose directory moved away
    meanwhile is void. A tree counts as complete when its record exists and both marker
    files (the archive's first and last member) belong to the build the record names.
    """

    def __init__(self, final: Path, builds: Iterable[Build]) -> None:
        self.final = final
        self.builds = {b.sha256: b for b in builds}
        self.problems: list[str] = []
        self.seen: set[str] = set()
        self.samples = 0
        self.overlap = False
        self._on_sample: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(PATIENCE)
        # The tree as the sync left it, too: on a busy machine the thread may not have
        # looked between the final rename and now (CI saw `seen` empty once).
        if not self._thread.is_alive():
            self._sample()

    def also(self, check: Callable[[], None]) -> TreeWatcher:
        """Run ``check`` on every sample too."""
        self._on_sample = check
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            if self._on_sample is not None:
                self._on_sample()
            time.sleep(0.001)

    def _read(self, fd: int, rel: str) -> bytes:
        handle = os.open(rel, os.O_RDONLY, dir_fd=fd)
        try:
            chunks = []
            while chunk := os.read(handle, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(handle)

    def _sample(self) -> None:
        try:
            fd = os.open(self.final, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            inode = os.fstat(fd).st_ino
            problem = None
            try:
                record = json.loads(self._read(fd, ".pylock/install.json"))
                sha = record["artifact"]["sha256"]
                build = self.builds.get(sha)
                if build is None:
                    problem = f"a tree recorded as {sha}, which no build here has"
                else:
                    for rel, expected in build.markers.items():
                        if self._read(fd, rel) != expected:
                            problem = f"{rel} is not the file of {build.label}: a mixed tree"
            except FileNotFoundError as exc:
                problem = f"an incomplete tree ({exc.filename} missing)"
                sha = None
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"an incomplete tree (unreadable record: {exc})"
                sha = None
            try:
                still_there = os.lstat(self.final).st_ino == inode
            except FileNotFoundError:
                still_there = False
            if not still_there:
                return  # renamed away while sampled (an upgrade's swap): no verdict
            self.samples += 1
            if problem is not None:
                self.problems.append(problem)
            elif sha is not None:
                self.seen.add(sha)
        finally:
            os.close(fd)


def extracting_while_downloading(sync_project: Project, build: Build, watcher: TreeWatcher) -> None:
    """Note when the install's temporary tree has files while the download is unfinished."""
    partials = sync_project.partials()
    if not partials:
        return
    try:
        unfinished = partials[0].stat().st_size < len(build.data)
    except FileNotFoundError:
        return
    try:
        extracted = [
            p
            for tmp in sync_project.into.glob(f".pylock-tmp-{build.name}-*")
            for p in tmp.rglob("*")
            if p.is_file()
        ]
    except FileNotFoundError:
        return  # the tree was renamed into place while it was walked: look again next time
    if unfinished and extracted:
        watcher.overlap = True


# -- cold, warm, no-op ---------------------------------------------------------------------


def test_cold_sync_streams_the_download_into_the_install(
    sync_project: Project, app_a: Build, spy: StreamSpy
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert f"installed app: {app_a.label}" in result.err
    assert "(1 installed, 1 downloaded)" in result.err
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert installed_sha(sync_project.into / "app") == app_a.sha256
    # The install read the whole archive from the download as it arrived.
    assert spy.bytes == len(app_a.data)
    # And the download was stored in the cache, verified, with nothing left over.
    assert sync_project.archive(app_a).read_bytes() == app_a.data
    assert sync_project.partials() == []
    assert sync_project.leftovers() == []
    assert sync_project.server.hits(app_a.path) == 1
    assert sync_project.verify().code == 0


def test_warm_sync_installs_from_the_cache_without_streaming(
    sync_project: Project, app_a: Build, spy: StreamSpy
) -> None:
    sync_project.install(app_a)
    shutil.rmtree(sync_project.into)
    streamed = spy.bytes
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert "(1 installed, 0 downloaded)" in result.err
    assert spy.bytes == streamed  # not one byte through a download feed
    assert sync_project.server.hits(app_a.path) == 1
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.verify().code == 0


def test_no_fixups_is_part_of_what_an_install_is(sync_project: Project, app_a: Build) -> None:
    """README attack: `sync --no-fixups` over a fixed-up tree said "up to date" and left
    it fixed up, and a plain sync after it left the tree as shipped: the record did not say
    which the tree was."""
    record = sync_project.into / "app" / ".pylock" / "install.json"

    def fixed_up() -> object:
        return json.loads(record.read_text())["fixups"]

    sync_project.install(app_a)
    assert fixed_up() is True
    for flags, wanted in ((["--no-fixups"], False), ([], True)):
        result = sync_project.sync(*flags)
        assert result.code == 0, result.err
        assert f"installed app: {app_a.label}" in result.err
        assert "0 downloaded" in result.err
        assert fixed_up() is wanted
        again = sync_project.sync(*flags)
        assert "installed app" not in again.err and "up to date" in again.err
    # A record pylock 0.2.0 wrote does not say; the path fix-ups wrote does (upgrade
    # attack: such trees were current either way, and one synced with --no-fixups kept
    # its build machine's paths).
    for fixed_up_for, asked in ((None, ["--no-fixups"]), (str(record.parents[1]), [])):
        document = json.loads(record.read_text())
        del document["fixups"]
        document["fixed-up-for"] = fixed_up_for
        record.write_text(json.dumps(document))
        assert "installed app" not in sync_project.sync(*asked).err
        other = [] if asked else ["--no-fixups"]
        assert "installed app" in sync_project.sync(*other).err


def test_a_platform_without_fixups_has_current_trees(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: where no fix-ups exist (Windows), the record said none
    ran while the planner asked for trees with them: no tree was ever current, so the
    fast path never answered and an offline sync after `cache clean` failed."""
    import pylock.sync.fixups

    monkeypatch.setattr(pylock.sync.fixups, "fixup_for", lambda platform: None)
    sync_project.install(app_a)
    assert (sync_project.into / ".pylock-state").is_file()
    assert sync_project.run("cache", "clean").code == 0
    again = sync_project.sync("--offline")
    assert again.code == 0, again.err
    assert "up to date" in again.err


def test_noop_sync_touches_nothing(sync_project: Project, app_a: Build, tool: Build) -> None:
    sync_project.install(app_a, tool)
    before = {name: (sync_project.into / name).stat().st_ino for name in ("app", "tool")}
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert "2 interpreters up to date in" in result.err
    assert "installed" not in result.err.replace("up to date", "")
    assert {name: (sync_project.into / name).stat().st_ino for name in before} == before
    assert sync_project.server.hits(app_a.path) == sync_project.server.hits(tool.path) == 1


def test_reinstall_restores_a_modified_tree_from_the_cache(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.install(app_a)
    edited = sync_project.into / "app" / "lib" / "python3.12" / "os.py"
    edited.write_text("# tampered\n")
    assert sync_project.verify().code == 1
    # A plain sync trusts the record (that is what keeps it cheap) ...
    assert "1 interpreter up to date" in sync_project.sync().err
    # ... --reinstall does not.
    result = sync_project.sync("--reinstall")
    assert result.code == 0, result.err
    assert "(1 installed, 0 downloaded)" in result.err
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.verify().code == 0
    assert sync_project.leftovers() == []


def test_only_installs_just_the_named_interpreters(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, tool)
    result = sync_project.sync("--only", "tool")
    assert result.code == 0, result.err
    assert sorted(p.name for p in sync_project.into.iterdir() if not p.name.startswith(".")) == [
        "tool"
    ]
    assert sync_project.server.hits(app_a.path) == 0
    assert tree_of(sync_project.into / "tool") == tool.tree()
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert "(1 installed, 1 downloaded)" in result.err
    assert tree_of(sync_project.into / "app") == app_a.tree()


def test_unknown_only_name_is_a_usage_error(sync_project: Project, app_a: Build) -> None:
    sync_project.lock(app_a)
    result = sync_project.sync("--only", "nope")
    assert result.code == 2
    assert "pylock: error: no interpreter named 'nope' in pythons.lock (locked: app)" in result.err
    assert not (sync_project.into / "nope").exists()
    assert sync_project.server.log == []


def test_a_name_not_among_many_is_told_the_nearest_not_every_name(
    sync_project: Project, app_a: Build
) -> None:
    # A monorepo's 150 interpreters made each of these errors a 1,300-character line.
    sync_project.lock(*(attrs.evolve(app_a, name=f"py-{n:03d}") for n in range(150)))
    nearest = "py-099, py-149, py-139 and 147 more"
    for argv in (["sync", "--only", "py-99"], ["which", "py-99"]):
        result = sync_project.run(*argv)
        assert result.code == 2
        assert f"no interpreter named 'py-99' in pythons.lock (locked: {nearest})\n" in result.err


def test_prune_removes_what_the_lock_dropped_and_nothing_else(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    sync_project.install(app_a, tool)
    mine = sync_project.into / "mine"
    (mine / "bin").mkdir(parents=True)
    (mine / "bin" / "python3").write_text("not pylock's")
    sync_project.lock(app_a)
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert "removed tool (no longer in pythons.lock)" in result.err
    assert not (sync_project.into / "tool").exists()
    assert (mine / "bin" / "python3").read_text() == "not pylock's"
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.leftovers() == []


def test_a_failed_prune_still_says_what_it_removed_and_what_else_failed(
    sync_project: Project, app_a: Build, app_b: Build, tool: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prune attack: a tree the prune could not move failed the sync with "cannot prune"
    alone: the tree it had removed before went without its "removed" line, and an
    install that failed in the same sync without its error."""
    gone = make_build("gone", TAG_B, minor="3.10", big=1000)
    sync_project.install(app_a, gone, tool)
    real_rename = os.rename

    def refused(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(source) == str(sync_project.into / "tool"):
            raise PermissionError(13, "Permission denied", os.fspath(source))
        real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "rename", refused)
    sync_project.lock(app_b)  # not served: its upgrade fails
    result = sync_project.sync()
    monkeypatch.undo()
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "removed gone (no longer in pythons.lock)\n" in result.err
    assert not (sync_project.into / "gone").exists()
    assert (
        f"pylock: error: cannot prune tool from {sync_project.into}: Permission denied\n"
        in result.err
    )
    assert "pylock: error: app: " in result.err
    assert result.err.rstrip().endswith(
        "1 of 1 interpreter(s) could not be installed: app (0 installed or up to date)"
    )
    assert tree_of(sync_project.into / "tool") == tool.tree()
    assert tree_of(sync_project.into / "app") == app_a.tree()


def test_no_prune_keeps_dropped_interpreters(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    sync_project.install(app_a, tool)
    sync_project.lock(app_a)
    result = sync_project.sync("--no-prune")
    assert result.code == 0, result.err
    assert "removed" not in result.err
    assert tree_of(sync_project.into / "tool") == tool.tree()
    # New-user walk-through: the kept interpreter was out of `which`'s reach ("no
    # interpreter named 'tool' in pythons.lock"), though it stays to be used.
    which = sync_project.run("which", "tool", "--into", str(sync_project.into))
    assert which.code == 0, which.err
    assert Path(which.out.strip()).parent.parent == sync_project.into / "tool"
    assert which.err == (
        f"pylock: warning: tool in {sync_project.into} is not in pythons.lock: pylock installed "
        "it from an earlier lock (kept by `sync --no-prune`) or another one\n"
    )
    assert sync_project.run("which", "nope", "--into", str(sync_project.into)).code == 2
    assert sync_project.sync().code == 0
    assert not (sync_project.into / "tool").exists()


# -- the network misbehaving ---------------------------------------------------------------


@pytest.mark.slow
def test_slow_download_is_extracted_while_it_arrives(
    sync_project: Project, app_b: Build, spy: StreamSpy
) -> None:
    sync_project.lock(app_b)
    # About a second for the whole body: the big member is last, so the small ones are
    # on disk long before the archive's end arrives.
    sync_project.serve(app_b, always=[Throttle(chunk=32_768, delay=0.01)])
    watcher = TreeWatcher(sync_project.into / "app", [app_b])
    watcher.also(lambda: extracting_while_downloading(sync_project, app_b, watcher))
    with watcher:
        result = sync_project.sync()
    assert result.code == 0, result.err
    assert watcher.overlap, "extraction never overlapped the download"
    assert watcher.problems == []
    assert watcher.seen == {app_b.sha256}
    assert spy.bytes == len(app_b.data)
    assert tree_of(sync_project.into / "app") == app_b.tree()
    assert sync_project.verify().code == 0


@pytest.mark.slow
def test_reset_mid_body_restarts_the_stream_and_installs_the_retry(
    sync_project: Project, app_b: Build, spy: StreamSpy
) -> None:
    sync_project.lock(app_b)
    sync_project.serve(
        app_b,
        faults=[Reset(after=len(app_b.data) // 2)],
        always=[Throttle(chunk=65_536, delay=0.005)],
    )
    with TreeWatcher(sync_project.into / "app", [app_b]) as watcher:
        result = sync_project.run(
            "-v", "sync", "--into", str(sync_project.into), "--mirror", sync_project.mirror
        )
    assert result.code == 0, result.err
    assert sync_project.server.hits(app_b.path) == 2
    assert spy.restarts >= 1
    assert "download restarted; installing after it" in result.err
    assert watcher.problems == []
    assert tree_of(sync_project.into / "app") == app_b.tree()
    assert installed_sha(sync_project.into / "app") == app_b.sha256
    assert sync_project.archive(app_b).read_bytes() == app_b.data
    assert sync_project.partials() == []
    assert sync_project.leftovers() == []
    assert sync_project.verify().code == 0


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_flipped, id="flipped-mid-stream"),
        pytest.param(lambda data: noise(len(data), "garbage"), id="not-an-archive"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="last-byte"),
    ],
)
def test_wrong_bytes_fail_with_the_hash_mismatch_and_leave_nothing(
    sync_project: Project, app_a: Build, corrupt: Callable[[bytes], bytes]
) -> None:
    wrong = corrupt(app_a.data)
    assert len(wrong) == len(app_a.data) and wrong != app_a.data
    sync_project.lock(app_a)
    sync_project.server.serve(app_a.path, app_a.data, always=[WrongBytes(wrong)])
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "app")
    actual = hashlib.sha256(wrong).hexdigest()
    served = sync_project.server.url(app_a.path)
    assert (
        f"pylock: error: app: sha256 mismatch for {served} (rewritten from {app_a.url}): "
        f"expected {app_a.sha256}, got {actual}"
    ) in result.err
    assert not (sync_project.cache / "archives" / "sha256" / app_a.sha256).exists()
    # Not retried: a wrong hash is not a transient failure.
    assert sync_project.server.hits(app_a.path) == 1


def test_wrong_size_is_refused_before_anything_is_written(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.lock(app_a)
    sync_project.server.serve(app_a.path, app_a.data, always=[WrongBytes(app_a.data + b"x")])
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "app")
    assert f"size mismatch for {sync_project.server.url(app_a.path)}" in result.err
    assert f"expected {len(app_a.data)}, got {len(app_a.data) + 1}" in result.err


@pytest.mark.slow
def test_one_bad_download_fails_the_sync_cleanly_while_another_streams(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    # "app" sorts first and streams slowly; "tool" fails its hash at once, which cancels
    # app's download. The user must see tool's mismatch, not the cancellation.
    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, always=[Throttle(chunk=16_384, delay=0.02)])
    sync_project.server.serve(tool.path, tool.data, always=[WrongBytes(noise(len(tool.data), "x"))])
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "tool")
    assert f"sha256 mismatch for {sync_project.server.url(tool.path)}" in result.err
    # app is either complete or not there at all.
    if (sync_project.into / "app").exists():
        assert tree_of(sync_project.into / "app") == app_a.tree()


def test_hostile_archive_with_the_locked_hash_is_refused_and_nothing_escapes(
    sync_project: Project, tmp_path: Path
) -> None:
    entries = (
        exe("python/bin/python3.12", b"#!fake\n"),
        file("python/../../escaped.txt", b"gotcha\n"),
        file("python/share/zz-build-tag", b"x\n"),
    )
    data = compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)
    hostile = Build(
        name="app", tag=TAG_A, minor="3.12", fmt=ArchiveFormat.TAR_GZ, entries=entries, data=data
    )
    sync_project.lock(hostile)
    sync_project.serve(hostile)
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "app")
    assert "escaped.txt" in result.err
    assert not list(tmp_path.rglob("escaped.txt"))
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    # The download itself was fine: it is cached, verified, for whoever wants to look.
    assert sync_project.archive(hostile).read_bytes() == data


@pytest.mark.slow
def test_restart_whose_retry_fails_reports_the_download_error(
    sync_project: Project, app_b: Build
) -> None:
    sync_project.lock(app_b)
    sync_project.serve(
        app_b,
        faults=[Reset(after=len(app_b.data) // 3), Status(404)],
        always=[Throttle(chunk=65_536, delay=0.005)],
    )
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "app")
    served = sync_project.server.url(app_b.path)
    assert f"pylock: error: app: HTTP 404 Not Found for {served}" in result.err
    assert sync_project.server.hits(app_b.path) == 2


def test_server_error_then_success_is_retried(sync_project: Project, app_a: Build) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a, faults=[Status(500)])
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert sync_project.server.hits(app_a.path) == 2
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.verify().code == 0


def test_not_found_is_a_clean_error_without_retries(sync_project: Project, app_a: Build) -> None:
    sync_project.lock(app_a)  # and the mirror does not have it
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "app")
    served = sync_project.server.url(app_a.path)
    assert f"pylock: error: app: HTTP 404 Not Found for {served}" in result.err
    assert app_a.url in result.err
    assert "pylock: hint: check that the mirror holds the file asked for" in result.err
    assert sync_project.server.hits(app_a.path) == 1


def test_a_hint_that_failures_share_is_said_once_after_them(sync_project: Project) -> None:
    """A mirror that lacked every archive of a lock of 150 said its hint 150 times, one
    under each error: the hint that several share is said once, at the end; one that a
    single failure has stays under its error."""
    builds = [make_build(f"py{i}", f"2099010{i}", big=1000) for i in range(4)]
    wrong = make_build("wrong", "20990201", big=1000)
    sync_project.lock(*builds, wrong)  # and the mirror has none of the four
    sync_project.serve(attrs.evolve(wrong, data=builds[0].data))
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result, "py0", "py3", "wrong")
    lines = result.err.splitlines()
    hint = "pylock: hint: check that the mirror holds the file asked for"
    errors = [line for line in lines if line.startswith("pylock: error: py")]
    assert [line.split(":")[2] for line in errors] == [" py0", " py1", " py2", " py3"]
    assert lines.count(hint) == 1 and lines[-1] == hint, result.err
    assert lines[-2].startswith("pylock: error: 5 of 5 interpreter(s) could not be installed")
    # The wrong file's own hint follows its error.
    mismatch = next(i for i, line in enumerate(lines) if line.startswith("pylock: error: wrong:"))
    assert lines[mismatch + 1].startswith("pylock: hint: ") and lines[mismatch + 1] != hint

    # Two hints, each shared: each said once, naming its interpreters.
    for build in builds[2:]:
        sync_project.server.status(build.path, 401)
    result = sync_project.sync()
    hints = [line for line in result.err.splitlines() if line.startswith("pylock: hint: ")]
    assert len(hints) == 2 and hints[-1].startswith(
        "pylock: hint: py0, py1: check that the mirror holds the file asked for; py2, py3: "
    ), result.err


def test_the_summary_of_a_failed_sync_names_a_few_of_many(sync_project: Project) -> None:
    """Each failure is named in its own error; the closing line listed all 150 again, a
    1,000-character line."""
    builds = [make_build(f"py{i:02d}", f"209901{i:02d}", big=100) for i in range(12)]
    sync_project.lock(*builds)  # and the mirror has none of them
    result = sync_project.sync()
    sync_project.assert_failed_cleanly(result)
    lines = result.err.splitlines()
    assert sum(line.startswith("pylock: error: py") for line in lines) == 12
    assert lines[-2] == (
        "pylock: error: 12 of 12 interpreter(s) could not be installed: py00, py01, py02, "
        "py03, py04, py05, py06, py07, py08, py09 and 2 more (0 installed or up to date)"
    )


# -- the cache -----------------------------------------------------------------------------


def _corrupt_cached(sync_project: Project, build: Build) -> None:
    cached = sync_project.archive(build)
    data = bytearray(cached.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 8):
        data[i] ^= 0x55
    cached.chmod(0o644)
    cached.write_bytes(bytes(data))


def test_corrupt_cached_archive_is_evicted_and_downloaded_again(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.install(app_a)
    shutil.rmtree(sync_project.into)
    _corrupt_cached(sync_project, app_a)
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert f"cached archive {app_a.filename} is corrupt; evicted it and downloading it again" in (
        result.err
    )
    assert sync_project.server.hits(app_a.path) == 2
    assert sync_project.archive(app_a).read_bytes() == app_a.data
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.verify().code == 0
    assert sync_project.leftovers() == []


def test_corrupt_cached_archive_offline_is_a_clean_error_and_keeps_the_old_tree(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.install(app_a)
    _corrupt_cached(sync_project, app_a)
    result = sync_project.sync("--reinstall", "--offline")
    assert result.code == 1
    assert f"cached archive {app_a.filename} is corrupt; evicted it" in result.err
    assert "pylock: error: app: sha256 mismatch for" in result.err
    assert f"expected {app_a.sha256}" in result.err
    assert "Traceback" not in result.err
    assert not sync_project.archive(app_a).exists()
    # The installed tree was never touched.
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.verify().code == 0
    assert sync_project.leftovers() == []
    assert sync_project.server.hits(app_a.path) == 1


def test_offline_cold_cache_names_the_archive_url_and_cache_path(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    result = sync_project.sync("--offline")
    assert result.code == 1
    assert app_a.filename in result.err
    assert app_a.url in result.err
    assert str(sync_project.archive(app_a)) in result.err
    assert "pylock: hint: run `pylock fetch` with network access first" in result.err
    assert sync_project.server.log == []
    assert not (sync_project.into / "app").exists()


# -- upgrades ------------------------------------------------------------------------------


@pytest.mark.slow
def test_upgrade_replaces_the_tree_atomically(
    sync_project: Project, app_a: Build, app_b: Build, spy: StreamSpy
) -> None:
    sync_project.install(app_a)
    sync_project.lock(app_b)
    sync_project.serve(app_b, always=[Throttle(chunk=16_384, delay=0.01)])
    with TreeWatcher(sync_project.into / "app", [app_a, app_b]) as watcher:
        result = sync_project.sync()
    assert result.code == 0, result.err
    assert f"installed app: {app_b.label}" in result.err
    assert watcher.problems == []
    assert watcher.seen == {app_a.sha256, app_b.sha256}, "the watcher saw only one tree"
    assert spy.bytes == len(app_a.data) + len(app_b.data)
    assert tree_of(sync_project.into / "app") == app_b.tree()
    assert sync_project.leftovers() == []
    listing = sync_project.run("list", "--into", str(sync_project.into))
    assert listing.code == 0
    line = next(line for line in listing.out.splitlines() if line.startswith("app"))
    assert "installed" in line and "out of date" not in line
    assert sync_project.verify().code == 0
    # And back again, from the cache this time (the non-streamed install).
    sync_project.lock(app_a)
    with TreeWatcher(sync_project.into / "app", [app_a, app_b]) as watcher:
        assert sync_project.sync().code == 0
    assert watcher.problems == []
    assert tree_of(sync_project.into / "app") == app_a.tree()


# -- subprocesses: killed, concurrent, the fast path ----------------------------------------


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"pylock exited ({process.returncode}) before the moment came:\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the moment never came")
        time.sleep(0.002)


def _part_started(sync_project: Project) -> Callable[[], bool]:
    def check() -> bool:
        return any(p.stat().st_size > 0 for p in sync_project.partials() if p.exists())

    return check


def _extraction_started(sync_project: Project, name: str) -> Callable[[], bool]:
    def check() -> bool:
        return any(
            p.is_file()
            for tmp in sync_project.into.glob(f".pylock-tmp-{name}-*")
            for p in tmp.rglob("*")
        )

    return check


@pytest.mark.slow
@pytest.mark.parametrize(
    ("moment", "upgrade"),
    [("download", False), ("extraction", False), ("extraction", True)],
)
def test_kill_mid_sync_leaves_nothing_half_installed(
    sync_project: Project, app_a: Build, app_b: Build, moment: str, upgrade: bool
) -> None:
    if upgrade:
        sync_project.install(app_a)
    sync_project.lock(app_b)
    # A body that takes ~3 s: the kill comes long before its end.
    sync_project.serve(app_b, always=[Throttle(chunk=16_384, delay=0.02)])
    process = sync_project.popen(sync_project.sync_command())
    try:
        _wait_for(
            _part_started(sync_project)
            if moment == "download"
            else _extraction_started(sync_project, "app"),
            process,
        )
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.communicate(timeout=PATIENCE)
    assert process.returncode == -signal.SIGKILL
    assert not sync_project.archive(app_b).exists()
    if upgrade:
        assert tree_of(sync_project.into / "app") == app_a.tree()
        assert installed_sha(sync_project.into / "app") == app_a.sha256
        assert sync_project.verify().code == 0
    else:
        assert not (sync_project.into / "app").exists()
    # A rerun cleans up after the killed one and completes.
    sync_project.serve(app_b)
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert tree_of(sync_project.into / "app") == app_b.tree()
    assert sync_project.leftovers() == []
    assert sync_project.partials() == []
    assert sync_project.verify().code == 0


@pytest.mark.slow
def test_concurrent_syncs_share_one_download(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    sync_project.lock(app_a, tool)
    # About a second per download, so that both processes want the same archives at once.
    sync_project.serve(app_a, tool, always=[Throttle(chunk=16_384, delay=0.04)])
    with TreeWatcher(sync_project.into / "app", [app_a]) as watcher:
        first = sync_project.popen(sync_project.sync_command())
        second = sync_project.popen(sync_project.sync_command())
        _wait_for(_part_started(sync_project), first)
        assert first.poll() is None and second.poll() is None
        results = [p.communicate(timeout=PATIENCE) for p in (first, second)]
    assert watcher.problems == []
    for process, (_, err) in zip((first, second), results, strict=True):
        assert process.returncode == 0, err
        assert "Traceback" not in err
    assert sync_project.server.hits(app_a.path) == 1
    assert sync_project.server.hits(tool.path) == 1
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert tree_of(sync_project.into / "tool") == tool.tree()
    assert sync_project.leftovers() == []
    assert sync_project.partials() == []
    assert sync_project.verify().code == 0


HEAVY = ("aiohttp", "zstandard", "cattrs", "attrs", "attr", "packaging")


def _imported(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    } - {"package"}


@pytest.mark.slow
def test_noop_fast_path_imports_nothing_heavy_and_falls_through_on_change(
    sync_project: Project, app_a: Build, app_b: Build, tool: Build
) -> None:
    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, tool, app_b)
    assert sync_project.sync().code == 0
    timed = [sys.executable, "-X", "importtime", *sync_project.sync_command()[1:]]

    fast = sync_project.check(timed)
    assert fast.code == 0, fast.err
    assert "2 interpreters up to date in pythons\n" in fast.err  # relative to the cwd
    modules = _imported(fast.err)
    assert "pylock.fastpath" in modules
    assert "pylock.cli" not in modules
    assert {m for m in modules if m.split(".")[0] in HEAVY} == set()

    # An edited lock (here only a comment) is not provably the same: the full sync runs.
    lock = sync_project.root / "pythons.lock"
    lock.write_text(lock.read_text() + "# edited\n")
    full = sync_project.check(timed)
    assert full.code == 0, full.err
    assert "pylock.cli" in _imported(full.err)
    assert "2 interpreters up to date" in full.err
    # ... and records the new state, so the next run is fast again.
    again = sync_project.check(timed)
    assert "pylock.cli" not in _imported(again.err)

    # A deleted install: the full sync reinstalls it, from the cache.
    shutil.rmtree(sync_project.into / "tool")
    result = sync_project.check(sync_project.sync_command("--offline"))
    assert result.code == 0, result.err
    assert f"installed tool: {tool.label}" in result.err
    assert tree_of(sync_project.into / "tool") == tool.tree()

    # A new build in the lock: downloaded and installed.
    sync_project.lock(app_b, tool)
    result = sync_project.check(sync_project.sync_command())
    assert result.code == 0, result.err
    assert f"installed app: {app_b.label}" in result.err
    assert tree_of(sync_project.into / "app") == app_b.tree()
    assert (
        sync_project.check(sync_project.command("verify", "--into", str(sync_project.into))).code
        == 0
    )


def test_fast_path_notices_a_pruneable_interpreter(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    sync_project.install(app_a, tool)
    # After a --no-prune sync the state matches the lock, but an installed interpreter
    # the lock no longer lists is waiting to be pruned: the fast path must not say
    # "up to date".
    sync_project.lock(app_a)
    assert sync_project.sync("--no-prune").code == 0
    result = sync_project.check(sync_project.sync_command())
    assert result.code == 0, result.err
    assert "removed tool" in result.err
    assert not (sync_project.into / "tool").exists()


def test_a_cache_tmp_made_read_only_mid_download_is_reported_under_the_name(
    sync_project: Project, app_a: Build, tool: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash attack: with tmp/ made read-only mid-download, storing the archive failed,
    then removing the partial file failed too, and that second error replaced the first:
    "Permission denied: .../x.part", under no name and without the "K of N" summary."""
    from pylock.sync.cache import Cache

    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, tool)

    def refused(self: Cache, sha256: str, name: str, source: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(self.tmp_dir / f"{sha256}.x.dir"))

    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name.endswith(".part"):
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    real_store = Cache._store
    monkeypatch.setattr(
        Cache,
        "_store",
        lambda self, sha, name, source: (refused if name == app_a.filename else real_store)(
            self, sha, name, source
        ),
    )
    monkeypatch.setattr(Path, "unlink", unlink)
    result = sync_project.sync("--jobs", "1")
    said = result.err
    assert result.code == 1 and ".part" not in said
    for line in (
        f"pylock: error: app: cannot store {app_a.filename} in the cache at",
        "1 of 2 interpreter(s) could not be installed: app",
        f"installed tool: {tool.label}",
    ):
        assert line in said
