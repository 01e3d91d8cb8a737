"""``pylock sync``: make an install directory match the lock, for one platform.

The order of work is chosen for the Docker case. First a cheap check reads each
interpreter's install record; when everything is current this returns before the
cache, the downloader or any decompressor is imported. Otherwise cache hits are
installed right away while misses download in the background, so extraction of one
archive overlaps the download of the next.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pylock.errors import HashMismatchError, PylockError, UsageError
from pylock.lockfile import Artifact, LockedPython, LockFile

if TYPE_CHECKING:
    from pylock.net.fetch import FetchOptions
    from pylock.net.stream import DownloadFeed, FeedReader
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache

#: A fix-up step for a freshly extracted tree: ``fixup(tmp_tree, final_path, warn)``
#: returns the relative paths it changed, and warns about files it had to leave alone.
Fixup = Callable[[Path, Path, Callable[[str], None]], Iterable[str]]


@attrs.frozen(kw_only=True)
class Job:
    """One interpreter to install: the lock entry and its artifact for this platform."""

    #: The lock entry.
    python: LockedPython
    #: The artifact for the target platform.
    artifact: Artifact


@attrs.frozen(kw_only=True)
class SyncPlan:
    """What a sync has to do, decided from the lock and the install records alone."""

    #: Interpreters to (re)install.
    jobs: tuple[Job, ...]
    #: Interpreters already installed from the locked artifact.
    current: tuple[str, ...]
    #: Locked interpreters with no artifact for the target platform.
    unavailable: tuple[str, ...]
    #: Installed interpreters the lock no longer lists (to prune).
    stale: tuple[str, ...]
    #: Every name the lock lists: pruning never touches these.
    keep: frozenset[str]

    @property
    def is_noop(self) -> bool:
        """Whether nothing needs installing or removing."""
        return not self.jobs and not self.stale


@attrs.frozen(kw_only=True)
class SyncResult:
    """What a sync did."""

    #: Names installed or reinstalled.
    installed: tuple[str, ...] = ()
    #: Names that were already current.
    current: tuple[str, ...] = ()
    #: Names removed because the lock no longer lists them.
    removed: tuple[str, ...] = ()
    #: Names not locked for this platform.
    unavailable: tuple[str, ...] = ()
    #: Number of archives downloaded (cache misses).
    downloaded: int = 0
    #: Interpreters that could not be installed, each with its error (the others were).
    failed: tuple[tuple[str, PylockError], ...] = ()


def plan_sync(
    lock: LockFile,
    *,
    dest_root: Path,
    platform: Platform,
    only: Collection[str] = (),
    reinstall: bool = False,
    prune: bool = True,
) -> SyncPlan:
    """Decide what to do; reads only small install-record files."""
    from pylock.sync.install import installed_names
    from pylock.sync.records import installed_state, is_current

    unknown = sorted(set(only) - set(lock.names))
    if unknown:
        raise UsageError(
            f"{', '.join(repr(n) for n in unknown)} not in the lock "
            f"(locked: {', '.join(lock.names) or 'nothing'})"
        )
    jobs: list[Job] = []
    current: list[str] = []
    unavailable: list[str] = []
    for python in lock.pythons:
        if only and python.name not in only:
            continue
        artifact = python.artifact_for(platform.key)
        if artifact is None:
            if only:
                raise PylockError(
                    f"{python.name} is not locked for {platform.key} "
                    f"(locked for: {', '.join(python.platforms)})",
                    hint=f"add {platform.key!r} to its platforms in pythons.toml "
                    "and run `pylock lock`",
                )
            unavailable.append(python.name)
            continue
        state = installed_state(dest_root, python.name)
        if not reinstall and state is not None and is_current(state, artifact):
            current.append(python.name)
        else:
            jobs.append(Job(python=python, artifact=artifact))
    stale: list[str] = []
    if prune and dest_root.is_dir():
        stale = sorted(set(installed_names(dest_root)) - set(lock.names))
    return SyncPlan(
        jobs=tuple(jobs),
        current=tuple(current),
        unavailable=tuple(unavailable),
        stale=tuple(stale),
        keep=frozenset(lock.names),
    )


class _Downloads:
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
        self._done = threading.Event()
        self._paths: dict[str, Path] = {}
        self._errors: dict[str, BaseException] = {}
        self._feeds = feeds
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
        import asyncio

        from pylock.net.fetch import Wanted, ensure_archives_async

        # Each archive succeeds or fails on its own: one interpreter that cannot be had
        # must not cancel the downloads of the others.
        async def each() -> None:
            limit = asyncio.Semaphore(max(1, options.jobs))

            async def one(wanted: Wanted) -> None:
                async with limit:
                    try:
                        found = await ensure_archives_async(
                            [wanted], cache, options, reporter, tally=self.tally
                        )
                        self._paths[wanted.sha256] = found[wanted.sha256]
                    except Exception as exc:
                        self._errors[wanted.sha256] = exc

            await asyncio.gather(
                *(
                    one(Wanted.from_artifact(j.artifact, feed=self._feeds.get(j.artifact.sha256)))
                    for j in jobs
                )
            )

        try:
            asyncio.run(each())
        except BaseException as exc:  # handed to the waiting threads
            for job in jobs:
                self._errors.setdefault(job.artifact.sha256, exc)
        finally:
            for sha256, feed in self._feeds.items():
                error = self._errors.get(sha256)
                if error is not None:
                    feed.failed(error)
                elif sha256 in self._paths:
                    feed.finished(self._paths[sha256])
            self._done.set()

    def wait(self, sha256: str) -> BaseException | None:
        """Wait until every download ended; the error that stopped this one, if any."""
        self._done.wait()
        return self._errors.get(sha256)

    def path(self, sha256: str) -> Path:
        error = self.wait(sha256)
        if error is not None:
            raise error
        return self._paths[sha256]


def _streamable(job: Job) -> bool:
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


def execute_sync(
    plan: SyncPlan,
    *,
    dest_root: Path,
    platform: Platform,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    jobs: int = 4,
    fixup: Fixup | None = None,
    reinstall: bool = False,
) -> SyncResult:
    """Carry out a plan: fetch misses, install in parallel (streaming misses), prune."""
    from pylock.net.stream import DownloadFeed, StreamRestarted
    from pylock.sync.install import install, prune

    hits: list[Job] = []
    misses: list[Job] = []
    for job in plan.jobs:
        if cache.lookup(job.artifact.sha256, job.artifact.filename) is not None:
            hits.append(job)
        else:
            misses.append(job)
    unique_misses: dict[str, Job] = {}
    for job in misses:
        unique_misses.setdefault(job.artifact.sha256, job)
    feeds = {
        sha256: DownloadFeed()
        for sha256, job in unique_misses.items()
        if not options.offline and _streamable(job)
    }
    # Exactly one install reads each stream; any other job with the same archive
    # waits for the stored file.
    streams = {sha256: unique_misses[sha256] for sha256 in feeds}
    downloads = _Downloads(list(unique_misses.values()), cache, options, reporter, feeds)
    dest_root.mkdir(parents=True, exist_ok=True)

    def install_from(job: Job, archive: Path, source: FeedReader | None = None) -> None:
        install(
            archive,
            dest_root=dest_root,
            python=job.python,
            artifact=job.artifact,
            platform=platform,
            fixup=fixup,
            reporter=reporter,
            # Another sync may have installed it while this one waited.
            if_needed=not reinstall,
            source=source,
        )

    def install_streamed(job: Job) -> bool:
        """Install while downloading; False if the download restarted (install later)."""
        reader = feeds[job.artifact.sha256].reader()
        try:
            install_from(
                job, cache.archive_path(job.artifact.sha256, job.artifact.filename), reader
            )
        except BaseException as exc:
            if isinstance(exc, StreamRestarted) or reader.restarted:
                reporter.detail(f"{job.artifact.filename}: download restarted; installing after it")
                return False
            # Wrong bytes often break decompression before the download's own hash
            # check fails, and a download cancelled because another one failed raises
            # asyncio's CancelledError here: either way the download's error is the
            # one to report (a sha256 mismatch naming the URL, not a "corrupt archive"
            # in a cache path that never existed).
            error = downloads.wait(job.artifact.sha256)
            if error is not None and error is not exc:
                raise error from None
            raise
        finally:
            reader.close()
        return True

    def install_one(job: Job) -> str:
        if streams.get(job.artifact.sha256) is job and install_streamed(job):
            return job.python.name
        for attempt in (1, 2):
            archive = cache.lookup(job.artifact.sha256, job.artifact.filename)
            if archive is None:
                archive = downloads.path(job.artifact.sha256)
            try:
                with cache.hold(job.artifact.sha256):
                    install_from(job, archive)
                return job.python.name
            except HashMismatchError:
                # The cached copy rotted on disk (or was tampered with): drop it and
                # fetch a fresh one, once.
                cache.evict(job.artifact.sha256)
                reporter.warn(
                    f"cached archive {job.artifact.filename} is corrupt; evicted it"
                    + ("" if options.offline else " and downloading it again")
                )
                if attempt == 2 or options.offline:
                    raise
                from pylock.net.fetch import Wanted, ensure_archives

                ensure_archives(
                    [Wanted.from_artifact(job.artifact)],
                    cache,
                    options,
                    reporter,
                    tally=refetched,
                )
        raise AssertionError("unreachable")

    # Archives fetched again after the cached copy turned out corrupt: downloads too.
    refetched: set[str] = set()
    installed: list[str] = []
    errors: list[tuple[str, BaseException]] = []
    # Hits first: they start extracting while the misses are still downloading.
    ordered = hits + misses
    # Extraction is CPU-bound (inflate, hash, write) and each one already overlaps its
    # writes on a second thread: more installs than cores only add memory.
    workers = max(1, min(jobs, len(ordered), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(install_one, job) for job in ordered]
        for job, future in zip(ordered, futures, strict=True):
            try:
                installed.append(future.result())
            except BaseException as exc:
                errors.append((job.python.name, exc))
    # No download outlives the sync (a streamed install skipped because another
    # process installed it meanwhile leaves its download running).
    downloads.wait("")
    failed: list[tuple[str, PylockError]] = []
    for name, error in errors:
        if not isinstance(error, PylockError):
            raise error  # a bug, or Ctrl-C: keep the traceback
        if isinstance(error, HashMismatchError):
            job = next(j for j in plan.jobs if j.python.name == name)
            error.hint = mismatch_hint(error, job)
        failed.append((name, error))
    removed = prune(dest_root, keep=plan.keep) if plan.stale else []
    return SyncResult(
        failed=tuple(sorted(failed, key=lambda f: f[0])),
        installed=tuple(sorted(installed)),
        current=plan.current,
        removed=tuple(removed),
        unavailable=plan.unavailable,
        downloaded=len(downloads.tally) + len(refetched),
    )


def mismatch_hint(error: HashMismatchError, job: Job) -> str:
    """What actually fixes a hash mismatch for this interpreter, given where the bytes came from.

    ``lock --upgrade`` alone changes nothing: the index still holds the locked hash.
    """
    name = job.python.name
    if error.url != job.artifact.url:
        return (
            f"the file came through a mirror or URL rewrite ({error.url}); the lock names "
            f"upstream's file ({job.artifact.url}). Make the mirror serve that file (e.g. "
            "refill it with `pylock mirror`), or sync without the mirror to check"
        )
    if job.python.build is None:
        return (
            f"the file at {job.artifact.url} changed since it was locked. If you trust the "
            f"new file, `pylock lock --upgrade-python {name}` downloads it again and records "
            f"its hash (if [python.{name}] sets sha256, update that first)"
        )
    return (
        f"upstream now serves other bytes for {job.python.label} than the ones it published "
        "and pylock locked: find out why before trusting them. To move to another build, "
        f"run `pylock lock --refresh --upgrade-python {name}`"
    )
