"""Extract an archive while it downloads: a download's partial file, read as it grows.

The downloader writes into the cache's ``tmp/`` file as usual and reports progress to
a :class:`DownloadFeed`; an installer thread reads the same file through a
:class:`FeedReader`, which blocks at the end of what has arrived. Nothing is held in
memory, and the download stays the single source of truth: the reader only reaches
end-of-file once the downloader has checked the sha256 and stored the archive, and it
raises if the download fails. The install is renamed into place only after that, so
a streamed install is exactly as verified as one extracted from the cache.

If the downloader has to start again (a retry after a reset), the bytes already read
are void: the reader raises :class:`StreamRestarted` and the caller falls back to
extracting the finished file from the cache.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO

from pylock.interrupts import raise_lost

#: How long a wait for another thread (a download, an install) lasts before it looks up
#: again: a lock wait cannot be interrupted on Windows before Python 3.14, so Ctrl-C is
#: taken between two waits.
WAIT_STEP = 0.25


def wait_for(event: threading.Event) -> None:
    """``event.wait()``, in steps that Ctrl-C can come between on every system; an
    interrupt Python swallowed meanwhile is raised at the next step."""
    while not event.wait(WAIT_STEP):
        raise_lost()
    raise_lost()


class StreamRestarted(Exception):
    """The download started over; what was read so far must be discarded."""


class DownloadFeed:
    """What the downloader tells readers: where the bytes are, how many, and the outcome."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._path: Path | None = None
        self._attempt = 0
        self._written = 0
        self._final: Path | None = None
        self._error: BaseException | None = None
        self._done = False

    # -- the downloader's side -------------------------------------------------------

    def begin(self, path: Path) -> None:
        """A (new) attempt starts writing ``path`` from byte 0."""
        with self._cond:
            self._attempt += 1
            self._path = path
            self._written = 0
            self._cond.notify_all()

    def wrote(self, total: int) -> None:
        """``total`` bytes of the current attempt are on disk (flushed)."""
        with self._cond:
            self._written = total
            self._cond.notify_all()

    def finished(self, final: Path) -> None:
        """The archive is verified and stored at ``final``."""
        with self._cond:
            self._final = final
            self._done = True
            self._cond.notify_all()

    def failed(self, error: BaseException) -> None:
        """The download failed for good.

        Ignored once :meth:`finished` was called: sync fails every feed when any one
        download fails, and an archive already verified and stored stays good.
        """
        with self._cond:
            if self._final is not None:
                return
            self._error = error
            self._done = True
            self._cond.notify_all()

    # -- the reader's side -----------------------------------------------------------

    def wait_started(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the first attempt to begin (the response
        arrived) or the download to end; whether either happened."""
        with self._cond:
            return self._cond.wait_for(lambda: self._attempt > 0 or self._done, timeout)

    def reader(self) -> FeedReader:
        """A file-like reader of the archive, following the download."""
        return FeedReader(self)


class FeedReader:
    """A read-only binary stream over a download in progress (see :class:`DownloadFeed`)."""

    def __init__(self, feed: DownloadFeed) -> None:
        self._feed = feed
        self._handle: IO[bytes] | None = None
        self._attempt = 0
        self._position = 0

    def _open(self) -> None:
        feed = self._feed
        with feed._cond:
            while feed._attempt == 0 and not feed._done:
                feed._cond.wait()
                raise_lost()
            if feed._error is not None:
                raise feed._error
            if feed._attempt == 0 and feed._final is not None:
                # Never downloaded here: another process had already stored it.
                path = feed._final
            else:
                assert feed._path is not None
                path = feed._path
            self._attempt = feed._attempt
        try:
            # On POSIX an open file survives the rename from tmp/ into archives/ ...
            self._handle = open(path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            # ... but the download may have finished (and moved it) before we opened it.
            # Nothing has been read yet, so the stored archive serves just as well.
            with feed._cond:
                while not feed._done:
                    feed._cond.wait()
                if feed._error is not None:
                    raise feed._error from None
                assert feed._final is not None
                final = feed._final
            try:
                self._handle = open(final, "rb")  # noqa: SIM115 - closed in close()
            except FileNotFoundError:
                # Stored, then pruned by another process before this reader held it: the
                # caller installs from the cache after fetching it again.
                raise StreamRestarted from None

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes, waiting for them to arrive; ``b""`` at the verified end."""
        if size == 0:
            return b""  # as for any file; waiting here for bytes nobody asked for could hang
        if self._handle is None:
            self._open()
        assert self._handle is not None
        feed = self._feed
        with feed._cond:
            while True:
                # The sequential install reads on the main thread: an interrupt Python
                # swallowed stops it here, not once the download is done (attack).
                raise_lost()
                if feed._error is not None:
                    raise feed._error
                if feed._attempt != self._attempt and self._attempt != 0:
                    raise StreamRestarted
                available = (
                    feed._written - self._position if feed._attempt == self._attempt else None
                )
                if available is None or available > 0 or feed._done:
                    break
                feed._cond.wait()
            # Past the verified end there is nothing more to wait for: read to the end.
            limited = available is not None and not feed._done
        if limited:
            assert available is not None
            size = available if size < 0 else min(size, available)
        data = self._handle.read(size if size >= 0 else -1)
        self._position += len(data)
        if limited and len(data) < size:
            # The file shrank under us: a retry truncates it before it reports ``begin``.
            # Returning the short read would pass for an early end of the archive.
            raise StreamRestarted
        with feed._cond:
            if feed._attempt != self._attempt and self._attempt != 0:
                # The retry began while we read: these bytes may be of either attempt.
                raise StreamRestarted
        return data

    @property
    def restarted(self) -> bool:
        """Whether the download started over after this reader began.

        The downloader rewrites the same file on a retry, so a read that raced the
        restart may have seen bytes of either attempt: whatever failed after a restart
        failed for that reason.
        """
        with self._feed._cond:
            return self._attempt != 0 and self._feed._attempt != self._attempt

    def close(self) -> None:
        """Release the file handle."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def streaming_supported() -> bool:
    """Whether a file may be renamed while open, which streaming relies on (not Windows)."""
    return os.name != "nt"
