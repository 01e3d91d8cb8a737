"""The archive cache tier: make sure locked archives are in the cache, downloading misses.

Hits cost a ``stat``; misses are downloaded in parallel by :class:`pylock.net.fetch.Fetcher`,
each once even across processes (a per-archive gate lock), and stored only once verified.
Offline, a miss is an :class:`OfflineError` that says where the archive was expected.

asyncio is imported inside the functions that use it: a sync whose archives are all cached
never pays for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from pylock.errors import OfflineError, PylockError
from pylock.fsutil import sha256_file
from pylock.net.fetch import OFFLINE_HINT, Fetcher, FetchOptions
from pylock.progress import Reporter, Task, human_size
from pylock.sync.cache import Cache, safe_filename
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    from pylock.lockfile import Artifact, LockedPython
    from pylock.net.registry import RegistryClient, RemoteCache
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
    #: The remote cache tag and the lock name it is annotated with, when pushed.
    tag: str | None = None
    lock_name: str | None = None

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
            tag=remote_tag(python, artifact) if python is not None else None,
            lock_name=python.name if python is not None else None,
        )


def remote_tag(python: LockedPython, artifact: Artifact) -> str:
    """The registry tag of a locked archive:
    ``<implementation>-<version>-<build>-<platform>[-<variant>]``."""
    from pylock.net.registry import tag_for

    variant = python.variant.value if python.variant.value != "default" else None
    return tag_for(
        python.implementation.value, python.version, python.build or "", artifact.platform, variant
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
            cache.evict(item.sha256)
            corrupt.add(item.sha256)
            reporter.warn(f"cached {path.name} is corrupt ({problem}); evicted it")
        misses.append(item)
    return found, misses, corrupt


def _hit_problem(path: Path, item: Wanted, *, verify_hits: bool) -> str | None:
    try:
        if item.size is not None and path.stat().st_size != item.size:
            return f"size {path.stat().st_size}, expected {item.size}"
        if verify_hits:
            actual = sha256_file(path)
            if actual != item.sha256:
                return f"sha256 {actual}, expected {item.sha256}"
    except FileNotFoundError:
        return "it vanished"
    return None


def _offline_error(misses: Sequence[Wanted], cache: Cache, corrupt: set[str]) -> OfflineError:
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
    tally: set[str] | None = None,
) -> dict[str, Path]:
    """Make sure every wanted archive is in the cache; returns sha256 -> cached path.

    Hits cost a ``stat`` (and a re-hash with ``verify_hits``); misses are downloaded in
    parallel, each once even across processes. Offline, a miss raises :class:`OfflineError`.
    The sha256 of every archive actually downloaded is added to ``tally``.
    """
    found, misses = _hits_or_refusal(wanted, cache, options, reporter, verify_hits=verify_hits)
    if not misses:
        return found
    import asyncio

    found.update(asyncio.run(_download_all(misses, cache, options, reporter, tally)))
    return found


async def ensure_archives_async(
    wanted: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    *,
    verify_hits: bool = False,
    tally: set[str] | None = None,
) -> dict[str, Path]:
    """:func:`ensure_archives` for callers already inside an event loop."""
    found, misses = _hits_or_refusal(wanted, cache, options, reporter, verify_hits=verify_hits)
    if misses:
        found.update(await _download_all(misses, cache, options, reporter, tally))
    return found


async def _download_all(
    misses: Sequence[Wanted],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
    tally: set[str] | None = None,
) -> dict[str, Path]:
    import asyncio
    from contextlib import AsyncExitStack

    limit = asyncio.Semaphore(max(1, options.jobs))
    async with Fetcher(options, reporter) as fetcher, AsyncExitStack() as stack:
        registry = None
        if options.remote is not None:
            registry = await stack.enter_async_context(options.remote.client())

        async def one(item: Wanted) -> tuple[str, Path]:
            async with limit:
                return item.sha256, await obtain(
                    fetcher, cache, item, reporter, tally, registry=registry
                )

        tasks = [asyncio.ensure_future(one(item)) for item in misses]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            return dict(task.result() for task in tasks)
        finally:
            for task in tasks:
                task.cancel()
            # Let cancelled downloads remove their partial files before the loop closes.
            await asyncio.gather(*tasks, return_exceptions=True)


async def _acquire(cache: Cache, sha256: str, on_wait: Callable[[], None]) -> Any:
    import asyncio

    from filelock import Timeout

    gate = cache.gate(sha256)
    delay = 0.02
    waited = False
    while True:
        try:
            gate.acquire(timeout=0)
        except Timeout:
            if not waited:
                on_wait()
                waited = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        return gate


async def obtain(
    fetcher: Fetcher,
    cache: Cache,
    item: Wanted,
    reporter: Reporter,
    tally: set[str] | None = None,
    *,
    registry: RegistryClient | None = None,
) -> Path:
    """Download one archive into the cache unless it is (or meanwhile got) there: from the
    remote cache (``registry``) when it has it, else from the origin.

    Its sha256 goes into ``tally`` if it was downloaded here from the origin.
    """
    remote = fetcher.options.remote
    gate = await _acquire(
        cache,
        item.sha256,
        lambda: reporter.detail(f"waiting for another process to download {item.filename}"),
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
            size = await _from_registry(
                registry, remote, item, partial, task, reporter, fetcher.options.max_download_size
            )
            from_origin = size is None
            if size is None:
                if remote is not None and remote.no_origin:
                    raise _no_origin_error(item, remote)
                size = await _from_origin(fetcher, item, partial, task)
            path = cache.store(item.sha256, item.filename, partial)
        except BaseException as error:
            task.done("")
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
        if from_origin and registry is not None and remote is not None and remote.push:
            await _push(registry, remote, item, path, reporter)
        return path
    finally:
        gate.release()


async def _from_registry(
    registry: RegistryClient | None,
    remote: RemoteCache | None,
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
    if registry is None or remote is None or remote.pull_broken:
        return None
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
        async with registry.open_blob(item.sha256, size=bound) as chunks:
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
        remote.failed(error, reporter.warn)
        reporter.detail(f"{item.filename}: remote cache failed ({error.message})")
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
    from pylock.net.registry import artifact_manifest, tag_for

    size = path.stat().st_size
    tag = item.tag or tag_for(item.filename, "", "", "")
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
    with remote.lock:
        remote.pushed.add(item.sha256)
    reporter.detail(f"pushed {item.filename} to {remote.ref} as {tag}")


def _no_origin_error(item: Wanted, remote: RemoteCache) -> PylockError:
    from pylock.errors import RemoteCacheMissError

    why = "could not be had from" if remote.pull_broken else "is not in"
    return RemoteCacheMissError(
        f"archive {item.filename} (sha256 {item.sha256}) {why} the remote cache "
        f"{remote.ref}, and --no-origin forbids downloading it from {item.url}",
        registry=str(remote.ref),
        digest=item.sha256,
        hint=f"seed the registry from a machine with access to the origin: "
        f"`pylock mirror --to {remote.ref}`",
    )


async def _from_origin(fetcher: Fetcher, item: Wanted, partial: Path, task: Task) -> int:
    """Download ``item`` from its origin (rewritten to a mirror) into ``partial``; its size.

    An http(s) GET goes through :class:`pylock.net.stdhttp.StdDownloader` in a worker
    thread, so a sync that only downloads archives never imports aiohttp; ``file://`` and
    the rest go through the :class:`Fetcher`. Both follow :mod:`pylock.net.policy`.
    """
    target = fetcher.target(item.url)
    if urlsplit(target).scheme not in ("http", "https"):
        _, size = await fetcher.download(
            item.url, partial, sha256=item.sha256, size=item.size, task=task, feed=item.feed
        )
        return size
    import asyncio
    import threading

    from pylock.net.stdhttp import StdDownloader

    stop = threading.Event()
    downloader = StdDownloader(fetcher.options, fetcher.reporter, settings=fetcher.settings)
    running = asyncio.ensure_future(
        asyncio.to_thread(
            downloader.download,
            item.url,
            partial,
            sha256=item.sha256,
            size=item.size,
            task=task,
            feed=item.feed,
            stop=stop,
        )
    )
    try:
        _, size = await asyncio.shield(running)
    except asyncio.CancelledError:
        # The thread cannot be cancelled: tell it to stop, and wait for it to let go of
        # the partial file (within a chunk, or a read timeout) before it is removed.
        stop.set()
        await asyncio.gather(running, return_exceptions=True)
        raise
    return size


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
    partial = cache.new_tmp_path("unknown")
    task = reporter.task(f"Downloading {filename}", None)
    try:
        sha256, size = await fetcher.download(url, partial, sha256=None, size=None, task=task)
        gate = await _acquire(cache, sha256, lambda: None)
        try:
            existing = cache.lookup(sha256)
            path = existing if existing is not None else cache.store(sha256, filename, partial)
        finally:
            gate.release()
    except BaseException:
        task.done("")
        raise
    finally:
        partial.unlink(missing_ok=True)
    task.done(f"Downloaded {filename} ({human_size(size)}), sha256 {sha256}")
    return sha256, size, path


__all__ = [
    "Wanted",
    "download_unknown",
    "download_unknown_async",
    "ensure_archives",
    "ensure_archives_async",
    "obtain",
]
