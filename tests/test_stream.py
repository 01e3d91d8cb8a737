"""pylock.net.stream: a reader that follows a download's partial file as the downloader reports it.

Real files and real threads: a "downloader" here writes and flushes the partial file, then
tells the feed, exactly as :func:`pylock.net.fetch._write` does.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pylock.errors import HashMismatchError
from pylock.net.stream import DownloadFeed, FeedReader, StreamRestarted, streaming_supported

#: How long a read must stay blocked to count as "waiting", and the most any step may take.
BLOCKED = 0.15
PATIENCE = 10.0


class Writer:
    """The downloader's side: writes into ``path`` and tells the feed what is flushed."""

    def __init__(self, feed: DownloadFeed, path: Path) -> None:
        self.feed = feed
        self.path = path
        self.total = 0
        self.handle: Any = None

    def begin(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle = self.path.open("wb")
        self.total = 0
        self.feed.begin(self.path)

    def write(self, data: bytes, *, tell: bool = True) -> None:
        self.handle.write(data)
        self.handle.flush()
        self.total += len(data)
        if tell:
            self.feed.wrote(self.total)

    def store(self, final: Path) -> None:
        """Close, rename into the "cache", and report success, as ``obtain`` does."""
        self.handle.close()
        os.replace(self.path, final)
        self.feed.finished(final)


class Call:
    """A call running on a thread, so a test can see whether it is blocked."""

    def __init__(self, function: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self.result = function()
            except BaseException as exc:
                self.error = exc
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def blocked(self) -> bool:
        """Still running after a short wait."""
        return not self._done.wait(BLOCKED)

    def outcome(self) -> object:
        assert self._done.wait(PATIENCE), "the call never returned"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def feed() -> DownloadFeed:
    return DownloadFeed()


@pytest.fixture
def writer(feed: DownloadFeed, tmp_path: Path) -> Iterator[Writer]:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "archives").mkdir()
    w = Writer(feed, tmp_path / "tmp" / "abc.part")
    yield w
    if w.handle is not None:
        w.handle.close()


def noise(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    block = str(seed).encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def read_all(reader: FeedReader, sizes: Callable[[], int] = lambda: 4096) -> bytes:
    chunks = []
    while chunk := reader.read(sizes()):
        chunks.append(chunk)
    return b"".join(chunks)


# -- what the reader sees ----------------------------------------------------------------


def test_reader_sees_only_bytes_reported_as_written(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"a" * 100)
    # On disk but not yet reported: a reader must not run ahead of the downloader.
    writer.write(b"b" * 50, tell=False)
    with feed.reader() as reader:
        assert reader.read(1000) == b"a" * 100
        call = Call(lambda: reader.read(1000))
        assert call.blocked()
        feed.wrote(writer.total)
        assert call.outcome() == b"b" * 50


def test_read_respects_the_requested_size(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(bytes(range(256)))
    with feed.reader() as reader:
        assert reader.read(10) == bytes(range(10))
        assert reader.read(0) == b""  # not end-of-file: nothing was asked for
        assert reader.read(-1) == bytes(range(10, 256))  # everything available, no waiting


def test_reader_blocks_at_the_current_end(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"x" * 10)
    with feed.reader() as reader:
        assert reader.read(10) == b"x" * 10
        call = Call(lambda: reader.read(10))
        assert call.blocked()
        writer.write(b"y" * 4)
        assert call.outcome() == b"y" * 4


def test_reader_opened_before_the_download_starts_waits_for_it(
    feed: DownloadFeed, writer: Writer
) -> None:
    with feed.reader() as reader:
        call = Call(lambda: reader.read(5))
        assert call.blocked()
        writer.begin()
        assert call.blocked()  # started, but no bytes yet
        writer.write(b"hello world")
        assert call.outcome() == b"hello"


def test_end_of_file_only_after_finished(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    data = noise(5000)
    writer.begin()
    writer.write(data)
    with feed.reader() as reader:
        assert reader.read(len(data)) == data
        # Everything that exists has been read, but the download is not verified yet.
        call = Call(lambda: reader.read(100))
        assert call.blocked()
        writer.store(tmp_path / "archives" / "final.tar.gz")
        assert call.outcome() == b""
        assert reader.read(100) == b""


def test_finished_with_unread_bytes_reads_them_all(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    data = noise(10_000, seed=3)
    writer.begin()
    with feed.reader() as reader:
        assert reader.read(0) == b""
        writer.write(data[:4000])
        assert reader.read(1000) == data[:1000]
        writer.write(data[4000:])
        writer.store(tmp_path / "archives" / "final.tar.gz")
        # The open handle follows the renamed file (POSIX), to the verified end.
        assert read_all(reader) == data[1000:]


# -- failures and restarts ----------------------------------------------------------------


def test_failed_raises_the_download_error_in_a_waiting_reader(
    feed: DownloadFeed, writer: Writer
) -> None:
    writer.begin()
    writer.write(b"partial")
    error = HashMismatchError(url="http://x/a.tar.gz", expected="0" * 64, actual="1" * 64)
    with feed.reader() as reader:
        assert reader.read(100) == b"partial"
        call = Call(lambda: reader.read(100))
        assert call.blocked()
        feed.failed(error)
        with pytest.raises(HashMismatchError) as caught:
            call.outcome()
        assert caught.value is error
        # And on every later read: the failure is final.
        with pytest.raises(HashMismatchError):
            reader.read(1)
        assert not reader.restarted


def test_failed_is_seen_even_when_bytes_remain_unread(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"0123456789")
    with feed.reader() as reader:
        assert reader.read(2) == b"01"
        feed.failed(OSError("disk full"))
        with pytest.raises(OSError, match="disk full"):
            reader.read(2)


def test_failed_before_any_attempt_raises_on_first_read(feed: DownloadFeed) -> None:
    feed.failed(ConnectionResetError("gone"))
    with feed.reader() as reader, pytest.raises(ConnectionResetError):
        reader.read(1)


def test_second_begin_restarts_the_stream(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"first attempt")
    with feed.reader() as reader:
        assert reader.read(5) == b"first"
        before = reader.restarted
        assert reader.read(100) == b" attempt"
        writer.begin()  # a retry truncates the same file and starts over
        assert (before, reader.restarted) == (False, True)
        with pytest.raises(StreamRestarted):
            reader.read(1)
        writer.write(b"second")
        with pytest.raises(StreamRestarted):  # still void: these bytes belong to attempt 2
            reader.read(1)


def test_truncation_before_the_restart_is_reported_is_not_an_early_end(
    feed: DownloadFeed, writer: Writer
) -> None:
    # A retry truncates the partial file first and only then calls `begin`: a read in
    # between must not return b"" (an early end-of-file), or the archive reads as truncated.
    data = noise(100_000)
    writer.begin()
    writer.write(data)
    with feed.reader() as reader:
        assert reader.read(100) == data[:100]
        writer.handle.close()
        writer.handle = writer.path.open("wb")  # truncated; `begin` not reported yet
        got = b""
        with pytest.raises(StreamRestarted):  # (after what the handle had buffered)
            for _ in range(100):
                chunk = reader.read(4096)
                assert chunk, "an early end-of-file"
                got += chunk
        assert got == data[100 : 100 + len(got)]


def test_restart_wakes_a_blocked_reader(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"abc")
    with feed.reader() as reader:
        assert reader.read(3) == b"abc"
        call = Call(lambda: reader.read(3))
        assert call.blocked()
        writer.begin()
        with pytest.raises(StreamRestarted):
            call.outcome()
        assert reader.restarted


def test_reader_that_starts_during_the_second_attempt_follows_it(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    writer.begin()
    writer.write(b"junk")
    writer.begin()
    writer.write(b"good ")
    with feed.reader() as reader:
        assert reader.read(5) == b"good "
        writer.write(b"bytes")
        writer.store(tmp_path / "archives" / "a.tar.gz")
        assert read_all(reader) == b"bytes"
        assert not reader.restarted


def test_restarted_is_false_for_a_reader_that_never_read(
    feed: DownloadFeed, writer: Writer
) -> None:
    writer.begin()
    writer.begin()
    assert not feed.reader().restarted


# -- the download finishing before the reader opens the partial file ---------------------------


def test_reader_opened_after_the_partial_file_was_renamed_uses_the_final_file(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    data = noise(3000, seed=7)
    final = tmp_path / "archives" / "a.tar.gz"
    writer.begin()
    writer.write(data)
    writer.handle.close()
    os.replace(writer.path, final)  # stored, but `finished` not reported yet
    reader = feed.reader()
    call = Call(lambda: read_all(reader))
    assert call.blocked()  # the partial file is gone: wait for the outcome
    feed.finished(final)
    assert call.outcome() == data
    reader.close()


def test_reader_opened_after_the_partial_file_vanished_reports_the_failure(
    feed: DownloadFeed, writer: Writer
) -> None:
    writer.begin()
    writer.write(b"abc")
    writer.handle.close()
    writer.path.unlink()  # `obtain` removes the partial file of a failed download
    feed.failed(TimeoutError("stalled"))
    with feed.reader() as reader, pytest.raises(TimeoutError):
        reader.read(1)


def test_finished_before_any_attempt_reads_the_final_file(
    feed: DownloadFeed, tmp_path: Path
) -> None:
    # Another process downloaded it while this one waited for the cache's gate.
    final = tmp_path / "stored.tar.gz"
    data = noise(70_000, seed=9)
    final.write_bytes(data)
    feed.finished(final)
    with feed.reader() as reader:
        assert read_all(reader, lambda: 1000) == data
        assert reader.read() == b""
        assert not reader.restarted


def test_reader_waiting_for_a_first_attempt_gets_the_final_file(
    feed: DownloadFeed, tmp_path: Path
) -> None:
    final = tmp_path / "stored.tar.gz"
    final.write_bytes(b"from another process")
    reader = feed.reader()
    call = Call(lambda: read_all(reader))
    assert call.blocked()
    feed.finished(final)
    assert call.outcome() == b"from another process"
    reader.close()


def test_failure_after_success_does_not_void_a_verified_download(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    # sync fails every feed when any download fails; one already verified stays good.
    writer.begin()
    writer.write(b"complete archive")
    writer.store(tmp_path / "archives" / "a.tar.gz")
    feed.failed(HashMismatchError(url="http://x/other", expected="0" * 64, actual="1" * 64))
    with feed.reader() as reader:
        assert read_all(reader) == b"complete archive"


def test_close_is_idempotent_and_releases_the_handle(feed: DownloadFeed, writer: Writer) -> None:
    writer.begin()
    writer.write(b"abc")
    reader = feed.reader()
    assert reader.read(1) == b"a"
    reader.close()
    reader.close()


# -- a real writer thread ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_writer_and_reader_reassemble_identical_bytes(
    feed: DownloadFeed, writer: Writer, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    data = noise(600_000, seed=seed)
    final = tmp_path / "archives" / "a.tar.gz"
    sizes = [rng.choice([1, 7, 512, 4096, 65_536, 200_000]) for _ in range(400)]
    pauses = [rng.random() < 0.1 for _ in range(400)]

    def download() -> None:
        writer.begin()
        position = 0
        step = 0
        while position < len(data):
            chunk = data[position : position + sizes[step % len(sizes)]]
            writer.write(chunk)
            position += len(chunk)
            if pauses[step % len(pauses)]:
                time.sleep(0.001)
            step += 1
        writer.store(final)

    reads = random.Random(seed + 100)
    reader = feed.reader()
    call = Call(lambda: read_all(reader, lambda: reads.choice([1, 100, 8192, 1 << 20, -1])))
    thread = threading.Thread(target=download)
    thread.start()
    thread.join(PATIENCE)
    assert call.outcome() == data
    reader.close()
    assert final.read_bytes() == data


def test_concurrent_restart_mid_stream_is_always_detected(
    feed: DownloadFeed, writer: Writer, tmp_path: Path
) -> None:
    """Bytes of two attempts are never silently spliced together."""
    first, second = noise(300_000, seed=11), noise(300_000, seed=12)

    def download() -> None:
        writer.begin()
        for start in range(0, 150_000, 5000):
            writer.write(first[start : start + 5000])
        writer.begin()
        for start in range(0, len(second), 5000):
            writer.write(second[start : start + 5000])
        writer.store(tmp_path / "archives" / "a.tar.gz")

    reader = feed.reader()
    call = Call(lambda: read_all(reader, lambda: 3000))
    thread = threading.Thread(target=download)
    thread.start()
    thread.join(PATIENCE)
    try:
        got = call.outcome()
    except StreamRestarted:
        assert reader.restarted
    else:
        # The reader only got going after the restart: then it read attempt 2 alone.
        assert got == second
        assert not reader.restarted
    reader.close()


def test_streaming_supported_matches_the_platform() -> None:
    assert streaming_supported() is (os.name != "nt")
