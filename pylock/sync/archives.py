"""The archive cache tier: make sure locked archives are in the cache, downloading misses.

Hits cost a ``stat``; misses are downloaded in parallel, on up to ``--jobs`` worker threads
that take them in turn, by :class:`pylock.net.stdhttp.StdDownloader`, each once even across
processes (a per-archive gate lock), and stored only once verified. Offline, a miss is an
:class:`OfflineError` that says where the archive was expected.

A plain download imports neither asyncio nor aiohttp: a cold sync starts its GET sooner
for it. Only the remote cache (:mod:`pylock.net.registry`, aiohttp) runs an event loop,
on the worker's thread; and :func:`download_unknown` for ``lock``'s direct URLs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from pylock.errors import ArchivesNotFetchedError, OfflineError, PylockError, some_names
from pylock.fsutil import FileLock, require_sha256, sha256_file
from pylock.interrupts import raise_lost
from pylock.net.options import FetchOptions
from pylock.net.stream import WAIT_STEP, wait_for
from pylock.progress import Reporter, Task, human_size
from pylock.sync.cache import Cache, safe_filename
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    import threading
    from collections.abc import Coroutine

    from pylock.lockfile import Artifact, LockedPython
    from pylock.net.fetch import Fetcher
    from pylock.net.registry import RegistryClient, RemoteCache
    from pylock.net.stdhttp import StdDownloader
    from pylock.net.stream import DownloadFeed


@attrs.frozen(kw_only=True)
class Wanted:
    """An archive that must be in the cache."""

    #: Canonical URL (from the lock); rewrites are applied when fetching.
    url: str
    #: Expected lowercase hex sha256.
    sha256: str
    #: Expected size in bytes, when known.
    size: int | None = None
    #: File name in the cache; by default the URL's last path segment.
    filename: str = attrs.field(
        default=attrs.Factory(lambda self: filename_from_url(self.url), takes_self=True)
    )
    #: Told about every attempt and every flushed chunk, so an installer can extract
    #: while the download runs (see :mod:`pylock.net.stream`).
    feed: DownloadFeed | None = attrs.field(default=None, eq=False, repr=False)
    #: The locked interpreter and artifact it is, which name its remote cache tag.
    locked: tuple[LockedPython, Artifact] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def lock_name(self) -> str | None:
        """The interpreter's name in the lock, which a pushed manifest is annotated with."""
        return self.locked[0].name if self.locked is not None else None

    def remote_tag(self) -> str:
        """The registry tag it is pushed under (worked out only then: it needs the
        registry module)."""
        if self.locked is not None:
            return remote_tag(*self.locked)
        from pylock.net.registry import tag_for

        return tag_for(self.filename, sha256=self.sha256)

    @classmethod
    def from_artifact(
        cls,
        artifact: Artifact,
        *,
        feed: DownloadFeed | None = None,
        python: LockedPython | None = None,
    ) -> Wanted:
        """The archive of a locked artifact (of ``python``, which names its registry tag)."""
        return cls(
            url=artifact.url,
            sha256=artifact.sha256,
            size=artifact.size,
            filename=artifact.filename,
            feed=feed,
            locked=(python, artifact) if python is not None else None,
        )


def remote_tag(python: LockedPython, artifact: Artifact) -> str:
    """The registry tag of a locked archive:
    ``<implementation>-<version>-<build>-<platform>[-<variant>]-<flavor>-<sha256[:12]>``."""
    from pylock.net.registry import tag_for

    variant = python.variant.value if python.variant.value != "default" else None
    return tag_for(
        python.implementation.value,
        python.version,
        python.build,
        artifact.platform,
        variant,
        python.flavor.value if python.flavor is not None else None,
        sha256=artifact.sha256,
    )


def _hits(
    wanted: Sequence[Wanted], cache: Cache, reporter: Reporter, *, verify_hits: bool
) -> tuple[dict[str, Path], list[Wanted], set[str]]:
    found: dict[str, Path] = {}
    misses: list[Wanted] = []
    corrupt: set[str] = set()
    seen: set[str] = set()
    for item in wanted:
        if item.sha256 in seen:
            continue
        seen.add(item.sha256)
        path = cache.lookup(item.sha256, item.filename)
        if path is not None:
            problem = _hit_problem(path, item, verify_hits=verify_hits)
            if problem is None:
                found[item.sha256] = path
                if item.feed is not None:
                    # Another process stored it meanwhile: its reader need not wait.
                    item.feed.finished(path)
                continue
            try:
                cache.evict(item.sha256)
            except OSError as exc:
                # Not to be fetched around: the store would keep the corrupt copy.
                raise PylockError(
                    f"cached {path.name} is corrupt ({problem}), and the cache at "
                    f"{cache.root} cannot be changed: {exc.strerror or exc}",
                    hint=cache.unremovable_hint(item.sha256, exc),
                ) from None
            corrupt.add(item.sha256)
            reporter.warn(f"cached {path.name} is corrupt ({problem}); evicted it")
        misses.append(item)
    return found, misses, corrupt


def check_cached_size(
    path: Path, *, sha256: str, size: int | None, filename: str, name: str | None
) -> None:
    """A cached archive must have the lock's size too, as a download must: the same lock
    must not pass on a machine with a warm cache and fail on a fresh one.

    A cached file of another size whose sha256 is still right means the lock's size is
    wrong (a :class:`PylockError`), and the archive stays: the cache is shared, and the
    archive is good. One whose sha256 is wrong too is corrupt (:class:`HashMismatchError`).
    """
    if size is None:
        return
    actual = path.stat().st_size
    if actual == size:
        return
    require_sha256(path, sha256)
    fix = f"run `pylock lock --upgrade-python {name}`, or fix it" if name else "fix it"
    raise PylockError(
        f"size mismatch for {filename}: the lock says {size} bytes; the archive with its "
        f"sha256 has {actual}",
        hint=f"the lock's size{f' for {name}' if name else ''} is wrong (a hand edit?): "
        f"{fix} to {actual}",
    )


def _hit_problem(path: Path, item: Wanted, *, verify_hits: bool) -> str | None:
    """Why a cached archive is corrupt, or ``None``; a :class:`PylockError` when the
    archive is good and the lock's size is wrong (:func:`check_cached_size`)."""
    from pylock.errors import HashMismatchError

    try:
        try:
            check_cached_size(
                path,
                sha256=item.sha256,
                size=item.size,
                filename=item.filename,
                name=item.lock_name,
            )
        except HashMismatchError:
            return f"size {path.stat().st_size}, expected {item.size}"
        if verify_hits:
            actual = sha256_file(path)
            if actual != item.sha256:
                return f"sha256 {actual}, expected {item.sha256}"
    except FileNotFoundError:
        return "it vanished"
    return None


def _offline_error(
    misses: Sequence[Wanted], cache: Cache, corrupt: set[str]
) -> OfflineError | PylockError:
    # A cache that cannot be read (PYLOCK_CACHE_DIR naming a file, another user's 0700
    # directory) is no cache that lacks these archives: "fetch them first" would not help.
    try:
        cache.require_readable("use")
    except PylockError as error:
        return error

    def line(item: Wanted) -> str:
        why = "was corrupt and has been evicted" if item.sha256 in corrupt else "is not cached"
        return (
            f"{item.filename} (sha256 {item.sha256}) {why}; its URL is {item.url}; "
            f"expected at {cache.archive_path(item.sha256, item.filename)}"
        )

    if len(misses) == 1:
        message = f"offline, and archive {line(misses[0])}"
    else:
        lines = "\n".join(f"  {line(item)}" for item in misses)
        message = f"offline, and {len(misses)} archives are missing from {cache.root}:\n{lines}"
    from pylock.net.policy import OFFLINE_HINT

    return OfflineError(message, url=misses[0].url, hint=OFFLINE_HINT)


def _hits_or_refusal(
    wanted: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    *,
    verify_hits: bool,
) -> tuple[dict[str, Path], list[Wanted]]:
    """The cached archives, and the misses once downloading them is known to be allowed."""
    found, misses, corrupt = _hits(wanted, cache, reporter, verify_hits=verify_hits)
    if misses:
        if options.offline:
            raise _offline_error(misses, cache, corrupt)
        cache.require_writable()
    return found, misses


def ensure_archives(
    wanted: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    *,
    verify_hits: bool = False,
    each: bool = False,
    tally: set[str] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Path]:
    """Make sure every wanted archive is in the cache; returns sha256 -> cached path.

    Hits cost a ``stat`` (and a re-hash with ``verify_hits``); misses are downloaded in
    parallel, each once even across processes. Offline, a miss raises :class:`OfflineError`.
    The first download that fails stops the others, and its error is raised; with ``each``,
    it stops none, and what failed is raised once all are done (see :func:`_raise_failed`).
    The sha256 of every archive actually downloaded is added to ``tally``. Once ``cancel``
    is set (a worker thread's Ctrl-C, which lands on another thread), the downloads stop
    and :class:`~pylock.net.stdhttp.Cancelled` is raised.
    """
    found, misses = _hits_or_refusal(wanted, cache, options, reporter, verify_hits=verify_hits)
    if misses:
        paths, errors = _download_all(
            misses,
            cache,
            options,
            reporter,
            tally,
            worker=obtain,
            stop_on_error=not each,
            cancel=cancel,
        )
        if errors and not each:
            raise next(iter(errors.values()))  # the first: it stopped the others
        _raise_failed(wanted, errors)
        found.update(paths)
    return found


def ensure_each(
    wanted: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    *,
    tally: set[str] | None = None,
    stop: threading.Event | None = None,
) -> tuple[dict[str, Path], dict[str, Exception]]:
    """:func:`ensure_archives` where each archive succeeds or fails on its own: one that
    cannot be had does not stop the others. Returns the paths and the errors, by sha256.
    Setting ``stop`` ends the downloads under way (Ctrl-C in another thread)."""

    def one(
        cache: Cache,
        item: Wanted,
        options: FetchOptions,
        reporter: Reporter,
        tally: set[str] | None,
        **context: Any,
    ) -> Path:
        found, misses = _hits_or_refusal([item], cache, options, reporter, verify_hits=False)
        if not misses:
            return found[item.sha256]
        return obtain(cache, item, options, reporter, tally, **context)

    return _download_all(
        wanted, cache, options, reporter, tally, worker=one, stop_on_error=False, stop=stop
    )


def _raise_failed(wanted: Sequence[Wanted], errors: Mapping[str, Exception]) -> None:
    """Raise the error of the one ``wanted`` archive that failed (``errors``, by sha256),
    or, when several did, :class:`ArchivesNotFetchedError` with each one's error under its
    name, in the order wanted: a closing line names the first few (150 from a mirror that
    was down made one line of 150 names)."""
    if len(errors) == 1:
        raise next(iter(errors.values()))
    if not errors:
        return
    names = {item.sha256: item.filename for item in wanted}
    failed = [
        (name, error if isinstance(error, PylockError) else PylockError(str(error)))
        for sha256, name in names.items()
        if (error := errors.get(sha256)) is not None
    ]
    raise ArchivesNotFetchedError(
        f"{len(failed)} of {len(names)} archives could not be fetched: "
        + some_names([name for name, _ in failed]),
        failed,
    )


def _download_all(
    items: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    tally: set[str] | None,
    *,
    worker: Callable[..., Path],
    stop_on_error: bool,
    stop: threading.Event | None = None,
    cancel: threading.Event | None = None,
) -> tuple[dict[str, Path], dict[str, Exception]]:
    """Run ``worker`` for each item on up to ``options.jobs`` threads.

    Threads, not an event loop: a download is one blocking GET (see
    :mod:`pylock.net.stdhttp`), and a sync that starts it sooner ends sooner. With
    ``stop_on_error`` the first failure stops the rest (their :class:`Cancelled` is not
    reported); errors are returned in the order they happened. Ctrl-C (or ``stop``) stops
    every download, and waits for them to remove their partial files; so does ``cancel``,
    which then raises :class:`~pylock.net.stdhttp.Cancelled`.
    """
    import threading

    from pylock.net.stdhttp import Cancelled, StdDownloader

    if stop is None:
        stop = threading.Event()
    downloader = StdDownloader(options, reporter, settings=options.settings)
    paths: dict[str, Path] = {}
    errors: dict[str, Exception] = {}
    pending = list({item.sha256: item for item in items}.values())
    lock = threading.Lock()

    def work(finished: threading.Event) -> None:
        try:
            download_each()
        finally:
            finished.set()

    def download_each() -> None:
        while True:
            with lock:
                if not pending or stop.is_set():
                    return
                item = pending.pop(0)
            try:
                path = worker(
                    cache, item, options, reporter, tally, downloader=downloader, stop=stop
                )
            except Cancelled:
                continue  # stopped: what stopped it is reported, not this
            except Exception as error:
                with lock:
                    errors[item.sha256] = error
                if stop_on_error:
                    stop.set()
            else:
                with lock:
                    paths[item.sha256] = path

    # Waited for by events, not ``Thread.join``: on Python 3.11 a join that Ctrl-C
    # interrupts marks the live thread as stopped, so the join after ``stop.set()``
    # returned at once, and the process ended before the download removed its partial file.
    finished = [threading.Event() for _ in range(max(1, min(options.jobs, len(pending))))]
    for n, done in enumerate(finished):
        threading.Thread(
            target=work, args=(done,), name=f"pylock-download-{n}", daemon=True
        ).start()
    try:
        for done in finished:
            if cancel is None:
                wait_for(done)
                continue
            while not done.wait(WAIT_STEP):
                raise_lost()
                if cancel.is_set():
                    raise Cancelled
    except BaseException:
        from pylock.net.dockerauth import cancel_helpers

        stop.set()
        cancel_helpers()  # a thread may wait for a hung credential helper
        for done in finished:
            wait_for(done)
        raise
    return paths, errors


def _acquire(
    cache: Cache, sha256: str, on_wait: Callable[[], None], stop: threading.Event | None
) -> FileLock:
    """Take the archive's gate, polling while another process (or thread) downloads it."""
    gate = cache.gate(sha256)
    delay = 0.02
    waited = False
    while not gate.try_acquire():
        if not waited:
            on_wait()
            waited = True
        if stop is None:
            time.sleep(delay)
        elif stop.wait(delay):
            from pylock.net.stdhttp import Cancelled

            raise Cancelled
        delay = min(delay * 2, 0.5)
    return gate


def obtain(
    cache: Cache,
    item: Wanted,
    options: FetchOptions,
    reporter: Reporter,
    tally: set[str] | None = None,
    *,
    downloader: StdDownloader,
    stop: threading.Event | None = None,
) -> Path:
    """Download one archive into the cache unless it is (or meanwhile got) there: from the
    remote cache when it has it, else from the origin. Blocking; any thread.

    Its sha256 goes into ``tally`` if it was downloaded here from the origin. Setting
    ``stop`` ends it with :class:`~pylock.net.stdhttp.Cancelled` within a chunk.
    """
    remote = options.remote
    gate = _acquire(
        cache,
        item.sha256,
        lambda: reporter.detail(f"waiting for another process to download {item.filename}"),
        stop,
    )
    try:
        hit = cache.lookup(item.sha256, item.filename)
        if hit is not None:
            if item.feed is not None:
                item.feed.finished(hit)
            return hit
        cache.clear_partials(item.sha256)
        partial = cache.new_tmp_path(item.sha256)
        started = time.monotonic()
        task = reporter.task(f"Downloading {item.filename}", item.size)
        try:
            size = None
            if remote is not None and not remote.pull_broken:
                size = _run_async(
                    lambda: _pull(remote, item, partial, task, reporter, options), stop
                )
            from_origin = size is None
            if size is None:
                if remote is not None and remote.no_origin:
                    raise _no_origin_error(item, remote)
                _, size = downloader.download(
                    item.url,
                    partial,
                    sha256=item.sha256,
                    size=item.size,
                    task=task,
                    feed=item.feed,
                    stop=stop,
                )
            path = cache.store(item.sha256, item.filename, partial)
        except BaseException as error:
            task.done("")
            with contextlib.suppress(OSError):  # a tmp/ made read-only: the error is above
                partial.unlink(missing_ok=True)
            if item.feed is not None:
                item.feed.failed(error)
            raise
        if tally is not None and from_origin:
            tally.add(item.sha256)
        if item.feed is not None:
            item.feed.finished(path)
        where = "" if from_origin else " from the remote cache"
        task.done(
            f"Downloaded {item.filename}{where} ({human_size(size)}) in "
            f"{time.monotonic() - started:.1f}s"
        )
        if from_origin and remote is not None and remote.push and not remote.push_broken:
            _run_async(lambda: _push_with_client(remote, item, path, reporter), stop)
        return path
    finally:
        gate.release()


_T = TypeVar("_T")


def _run_async(make: Callable[[], Coroutine[Any, Any, _T]], stop: threading.Event | None) -> _T:
    """Run a registry coroutine to its end on this thread's own event loop; ``stop``
    cancels it (checked every 0.1 s) and raises :class:`~pylock.net.stdhttp.Cancelled`."""
    import asyncio

    async def main() -> _T:
        task = asyncio.ensure_future(make())
        while stop is not None:
            done, _ = await asyncio.wait({task}, timeout=0.1)
            if done:
                break
            if stop.is_set():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                from pylock.net.stdhttp import Cancelled

                raise Cancelled
        return await task

    return asyncio.run(main())


async def _pull(
    remote: RemoteCache,
    item: Wanted,
    partial: Path,
    task: Task,
    reporter: Reporter,
    options: FetchOptions,
) -> int | None:
    async with remote.client(reporter.detail) as registry:
        return await _from_registry(
            registry, remote, item, partial, task, reporter, options.max_download_size
        )


async def _push_with_client(
    remote: RemoteCache, item: Wanted, path: Path, reporter: Reporter
) -> None:
    async with remote.client(reporter.detail) as registry:
        await _push(registry, remote, item, path, reporter)


async def _from_registry(
    registry: RegistryClient,
    remote: RemoteCache,
    item: Wanted,
    partial: Path,
    task: Task,
    reporter: Reporter,
    cap: int,
) -> int | None:
    """Stream the archive from the remote cache into ``partial`` (and its feed), verified;
    its size, or ``None`` to go to the origin: a miss (silent), or a failure (one warning
    per run: the registry never breaks a build). Without a locked size, ``cap`` bounds it.
    """
    bound = item.size if item.size is not None else cap
    import hashlib

    from pylock.errors import (
        DownloadTooLargeError,
        HashMismatchError,
        RegistryBlobNotFoundError,
        RegistryError,
    )

    digest = hashlib.sha256()
    written = 0
    try:
        async with registry.open_blob(
            item.sha256, size=bound, exact=item.size is not None
        ) as chunks:
            with partial.open("wb") as out:
                if item.feed is not None:
                    item.feed.begin(partial)
                async for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    task.advance(len(chunk))
                    if item.feed is not None:
                        out.flush()
                        item.feed.wrote(written)
        if (written != bound and item.size is not None) or digest.hexdigest() != item.sha256:
            raise HashMismatchError(
                url=registry.blob_url(item.sha256),
                expected=f"{item.sha256} ({bound} bytes)",
                actual=f"{digest.hexdigest()} ({written} bytes)",
            )
    except RegistryBlobNotFoundError:
        return None
    except (RegistryError, HashMismatchError, DownloadTooLargeError) as error:
        if isinstance(error, DownloadTooLargeError):
            error = HashMismatchError(
                url=registry.blob_url(item.sha256),
                expected=f"{item.sha256} ({bound} bytes)",
                actual="more bytes",
            )
        if isinstance(error, HashMismatchError):
            with remote.lock:
                remote.corrupt.add(item.sha256)
            # Not a mirror's or upstream's doing, which the generic hint is about.
            error.hint = (
                f"the registry's copy of {item.filename} is corrupt: delete the blob "
                f"sha256:{item.sha256} in the registry to repair it"
            )
        if isinstance(error, RegistryError):
            with remote.lock:
                remote.pull_failures[item.sha256] = error
        remote.failed(error, reporter.warn)
        reporter.detail(f"{item.filename}: remote cache failed ({error.message})")
        with contextlib.suppress(OSError):  # the download from the origin writes it afresh
            partial.unlink(missing_ok=True)
        task.advance(-written)
        return None
    with remote.lock:
        remote.pulled.add(item.sha256)
    return written


async def _push(
    registry: RegistryClient, remote: RemoteCache, item: Wanted, path: Path, reporter: Reporter
) -> None:
    """Push an archive that came from the origin: the blob, then a tagged manifest that
    references it. A failure is a warning (once per run), never an error."""
    if remote.push_broken:
        return
    from pylock.errors import RegistryError
    from pylock.net.registry import artifact_manifest

    if item.sha256 in remote.corrupt:
        # The registry has "the blob", so an upload would be skipped: only deleting it
        # there helps. Saying "pushed" would be a lie.
        reporter.warn(
            f"the remote cache {remote.ref} holds a corrupt copy of {item.filename} "
            f"(sha256 {item.sha256}), which a push cannot replace: delete that blob in the "
            "registry, then push again"
        )
        return

    size = path.stat().st_size
    tag = item.remote_tag()
    try:
        await registry.push_blob(path, item.sha256)
        manifest = artifact_manifest(
            sha256=item.sha256,
            size=size,
            filename=item.filename,
            lock_name=item.lock_name or "",
            origin_url=item.url,
        )
        await registry.push_manifest(tag, manifest)
    except RegistryError as error:
        remote.failed(error, reporter.warn, push=True)
        return
    except (OSError, ValueError) as error:
        # Whatever else goes wrong is still a warning: a push never fails a build, nor
        # fails unsaid (the install has finished; this thread's error would go unread).
        from pylock.net.policy import reason

        unexpected = RegistryError(
            f"pushing {item.filename} failed: {reason(error)}",
            registry=str(remote.ref),
            operation="push",
        )
        remote.failed(unexpected, reporter.warn, push=True)
        return
    with remote.lock:
        remote.pushed.add(item.sha256)
    reporter.detail(f"pushed {item.filename} to {remote.ref} as {tag}")


def _no_origin_error(item: Wanted, remote: RemoteCache) -> PylockError:
    from pylock.errors import RemoteCacheMissError

    seed = f"`pylock mirror --to {remote.ref}`"
    if item.sha256 in remote.corrupt:
        why = "is corrupt in"
        hint = (
            f"delete the blob sha256:{item.sha256} in the registry (its bytes do not match), "
            f"then seed it again from a machine with access to the origin: {seed}"
        )
    elif (failure := remote.pull_failures.get(item.sha256)) is not None or (
        remote.pull_broken and (failure := remote.pull_failure) is not None
    ):
        # Not a registry that lacks it: one that did not answer, or refused this client
        # (or this archive: a 400 or 429 is no miss, and seeding would not help).
        why = "could not be had from"
        hint = f"the registry failed: {failure.message}: " + (
            failure.hint
            or "check that it is up and reachable from here, and its URL, then run again"
        )
    else:
        why = "is not in"
        hint = f"seed the registry from a machine with access to the origin: {seed}"
    return RemoteCacheMissError(
        f"archive {item.filename} (sha256 {item.sha256}) {why} the remote cache "
        f"{remote.ref}, and --no-origin forbids downloading it from {item.url}",
        registry=str(remote.ref),
        digest=item.sha256,
        hint=hint,
    )


def download_unknown(
    url: str, cache: Cache, options: FetchOptions, reporter: Reporter
) -> tuple[str, int, Path]:
    """Download a direct URL whose hash is not known yet into the cache.

    Returns (sha256, size, cached path), so that ``lock`` can record the hash.
    """
    if options.offline:
        raise OfflineError(
            f"cannot download {url} to learn its sha256: pylock is offline",
            url=url,
            hint="give its sha256 in pythons.toml, or lock with network access",
        )
    import asyncio

    from pylock.net.fetch import Fetcher

    async def run() -> tuple[str, int, Path]:
        async with Fetcher(options, reporter) as fetcher:
            return await download_unknown_async(fetcher, url, cache, reporter)

    return asyncio.run(run())


async def download_unknown_async(
    fetcher: Fetcher, url: str, cache: Cache, reporter: Reporter
) -> tuple[str, int, Path]:
    """:func:`download_unknown` with the caller's :class:`Fetcher`."""
    cache.require_writable()
    filename = safe_filename(filename_from_url(url))
    task = reporter.task(f"Downloading {filename}", None)
    try:
        with cache.unknown_download() as partial:
            sha256, size = await fetcher.download(url, partial, sha256=None, size=None, task=task)
            import asyncio

            gate = await asyncio.to_thread(_acquire, cache, sha256, lambda: None, None)
            try:
                existing = cache.lookup(sha256)
                path = existing if existing is not None else cache.store(sha256, filename, partial)
            finally:
                gate.release()
    except BaseException:
        task.done("")
        raise
    task.done(f"Downloaded {filename} ({human_size(size)}), sha256 {sha256}")
    return sha256, size, path


__all__ = [
    "Wanted",
    "download_unknown",
    "download_unknown_async",
    "ensure_archives",
    "ensure_each",
    "obtain",
]
