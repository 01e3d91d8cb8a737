"""The downloads of one sync: its cache misses, fetched on a background thread.

:func:`start_downloads` starts them; each install then waits for its archive, or reads it
as it arrives (see :mod:`pylock.net.stream`). The same object serves a sync's head start
(:mod:`pylock.sync.early`): downloads begun before the command line was even parsed, which
the sync adopts when they are exactly the ones it would have started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pylock.interrupts import finish_through_interrupts

if TYPE_CHECKING:
    from pylock.net.options import FetchOptions
    from pylock.net.stream import DownloadFeed
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache
    from pylock.sync.plan import Job

#: How long a sync with only downloads to install lets them start first (seconds).
HEAD_START = 0.5


def streamable(job: Job) -> bool:
    """Whether a miss can be installed while it downloads (a tar of a known layout)."""
    from pylock.net.stream import streaming_supported
    from pylock.versions import ArchiveFormat

    if not streaming_supported() or job.python.build is None:
        # Direct-URL archives have their layout detected from the finished file.
        return False
    try:
        fmt = ArchiveFormat.from_filename(job.artifact.filename)
    except ValueError:
        return False
    return fmt is not ArchiveFormat.ZIP


def cache_misses(jobs: Sequence[Job], cache: Cache) -> tuple[list[Job], list[Job]]:
    """``jobs`` whose archive is in the cache, and one job per archive that is not."""
    hits: list[Job] = []
    misses: dict[str, Job] = {}
    for job in jobs:
        if cache.lookup(job.artifact.sha256, job.artifact.filename) is not None:
            hits.append(job)
        else:
            misses.setdefault(job.artifact.sha256, job)
    return hits, list(misses.values())


def start_downloads(
    misses: Sequence[Job], cache: Cache, options: FetchOptions, reporter: Reporter
) -> Downloads:
    """Start downloading ``misses`` (one job per archive), streaming those that can be.

    When one of them is fetched over https, the TLS context is made beside the download
    thread's imports and connection (:func:`~pylock.net.tls.prepare_ssl_context`),
    not after them.
    """
    from pylock.net import policy
    from pylock.net.stream import DownloadFeed
    from pylock.net.tls import prepare_ssl_context

    settings = options.settings
    if (
        settings is not None
        and not options.offline
        and not options.remote  # the registry's client makes its own
        and any(policy.needs_tls(job.artifact.url, options.rewrites) for job in misses)
    ):
        prepare_ssl_context(settings)
    feeds = {
        job.artifact.sha256: DownloadFeed()
        for job in misses
        if not options.offline and streamable(job)
    }
    return Downloads(list(misses), cache, options, reporter, feeds)


class Downloads:
    """Cache misses downloading in a background thread.

    Each miss that can be streamed gets a :class:`~pylock.net.stream.DownloadFeed`, so its
    install starts reading while the bytes arrive; the others are waited for whole.
    """

    def __init__(
        self,
        jobs: list[Job],
        cache: Cache,
        options: FetchOptions,
        reporter: Reporter,
        feeds: dict[str, DownloadFeed],
    ) -> None:
        #: What is downloaded, and how: a sync adopts downloads it did not start (see
        #: :mod:`pylock.sync.early`) only when these are what it would have started.
        self.jobs = tuple(jobs)
        self.cache = cache
        self.options = options
        self.reporter = reporter
        self.feeds = feeds
        self._done = threading.Event()
        #: Set to end the downloads under way (the sync is being interrupted).
        self.stop = threading.Event()
        self._paths: dict[str, Path] = {}
        self._errors: dict[str, BaseException] = {}
        self._shas = frozenset(job.artifact.sha256 for job in jobs)
        #: sha256 of every archive downloaded, re-downloads after corruption included.
        self.tally: set[str] = set()
        self._thread = threading.Thread(
            target=self._run, args=(jobs, cache, options, reporter), daemon=True
        )
        if jobs:
            self._thread.start()
        else:
            self._done.set()

    def _run(
        self, jobs: list[Job], cache: Cache, options: FetchOptions, reporter: Reporter
    ) -> None:
        from pylock.net.stdhttp import Cancelled
        from pylock.sync.archives import Wanted, ensure_each

        wanted = [
            Wanted.from_artifact(
                j.artifact, feed=self.feeds.get(j.artifact.sha256), python=j.python
            )
            for j in jobs
        ]
        try:
            # Each archive succeeds or fails on its own: one interpreter that cannot be
            # had must not stop the downloads of the others.
            paths, errors = ensure_each(
                wanted, cache, options, reporter, tally=self.tally, stop=self.stop
            )
            self._paths.update(paths)
            self._errors.update(errors)
            for job in jobs:
                if job.artifact.sha256 not in paths and job.artifact.sha256 not in errors:
                    self._errors[job.artifact.sha256] = Cancelled()  # stopped by Ctrl-C
        except BaseException as exc:  # handed to the waiting threads
            for job in jobs:
                self._errors.setdefault(job.artifact.sha256, exc)
        finally:
            for sha256, feed in self.feeds.items():
                error = self._errors.get(sha256)
                if error is not None:
                    feed.failed(error)
                elif sha256 in self._paths:
                    feed.finished(self._paths[sha256])
            self._done.set()

    def wait(self, sha256: str) -> BaseException | None:
        """Wait until every download ended; the error that stopped this one, if any."""
        from pylock.net.stream import wait_for

        wait_for(self._done)
        return self._errors.get(sha256)

    def wait_started(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for every streamed download's response.

        Until then the threads that send the requests need the interpreter (importing the
        HTTP client, sending): a caller that has nothing else to do yet lets them have it.
        """
        deadline = time.monotonic() + timeout
        for feed in self.feeds.values():
            feed.wait_started(max(0.0, deadline - time.monotonic()))

    def halt(self) -> None:
        """Tell the downloads under way to end (Ctrl-C, SIGTERM), and kill any credential
        helper one of them waits for; :meth:`wait` for them to have ended.

        Called after a first interrupt: a second one a few milliseconds later (importing
        the helpers' module takes about 10 ms) neither keeps the downloads going nor cuts
        this short; it is raised once this is done.
        """
        self.stop.set()  # first: nothing may come between the interrupt and this
        finish_through_interrupts(_cancel_helpers)

    def stop_all(self) -> None:
        """End the downloads under way, and wait until their partial files are gone (a
        second interrupt meanwhile is raised once they are)."""

        def stop_and_wait() -> None:
            self.halt()
            self.wait("")

        finish_through_interrupts(stop_and_wait)

    def has(self, sha256: str) -> bool:
        """Whether this sync downloads the archive (it was a miss when planned)."""
        return sha256 in self._shas

    def path(self, sha256: str) -> Path:
        error = self.wait(sha256)
        if error is not None:
            raise error
        return self._paths[sha256]


def _cancel_helpers() -> None:
    from pylock.net.dockerauth import cancel_helpers

    cancel_helpers()
