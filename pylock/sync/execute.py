"""``pylock sync``: make an install directory match the lock, for one platform.

The order of work is chosen for the Docker case. First a cheap check reads each
interpreter's install record; when everything is current this returns before the
cache, the downloader or any decompressor is imported. Otherwise cache hits are
installed right away while misses download in the background, so extraction of one
archive overlaps the download of the next.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Literal

import attrs

from pylock.errors import (
    HashMismatchError,
    InstallError,
    PylockError,
    UsageError,
    printable,
    some_names,
)
from pylock.fsutil import (
    broken_link,
    make_dir,
    mounted_noexec,
    out_of_space_hint,
    written_name,
)
from pylock.sync.plan import Job, SyncPlan, current_names, plan_sync, warn_if_config_changed

if TYPE_CHECKING:
    from pylock.lockfile import LockFile
    from pylock.net.options import FetchOptions
    from pylock.net.stream import DownloadFeed, FeedReader
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache
    from pylock.sync.downloads import Downloads
    from pylock.sync.install import Fixup


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
    #: Why a tree the lock no longer lists could not be removed (those in ``removed``
    #: were).
    unpruned: PylockError | None = None
    #: Archives that came from the remote cache, and archives pushed to it.
    from_registry: int = 0
    pushed: int = 0

    @property
    def changed_nothing(self) -> bool:
        """Whether this sync changed nothing: every interpreter was current, or another
        process installed it while this one waited (its summary is "up to date")."""
        work = (self.installed, self.removed, self.failed, self.downloaded)
        done = any(work) or self.unpruned is not None
        return not done and not self.from_registry and not self.pushed


_INTO_HINT = "choose another directory with --into (or PYLOCK_INSTALL_DIR)"
_BIN_DIR_ELSEWHERE = "choose another --bin-dir (or PYLOCK_BIN_DIR)"
_BIN_DIR_HINT = f"make it writable, or {_BIN_DIR_ELSEWHERE}"


#: Whether paths that differ only in case name one file, as on macOS and Windows by
#: default (a case-sensitive volume there only gets a stricter check than it needs).
_FOLDED_NAMES = sys.platform in ("darwin", "win32")


def _check_not_in_a_tree(bin_dir: Path, dest: Path, names: set[str]) -> None:
    """Refuse a bin dir inside an interpreter's tree: its links would be files the tree's
    record does not list (``verify`` fails), and go with the tree when it is replaced."""
    from pylock.sync.install import pylock_trees

    real_bin = Path(os.path.realpath(bin_dir))
    real_dest = os.path.realpath(dest)

    def key(text: str) -> str:
        return text.casefold() if _FOLDED_NAMES else text

    try:
        inside = PurePath(key(str(real_bin))).relative_to(key(real_dest)).parts
    except ValueError:
        return
    if not inside:
        return
    trees = {key(name) for name in (*names, *pylock_trees(dest))}
    if inside[0] in trees:
        top = real_bin.parts[len(real_bin.parts) - len(inside)]  # as spelled
        raise UsageError(
            f"--bin-dir: {bin_dir} is inside the tree of {top} in {dest}",
            hint=_BIN_DIR_ELSEWHERE,
        )


def _check_not_a_tree(dest: Path) -> None:
    """Refuse an install directory that is, or is inside, an interpreter's tree
    (``--into DIR/app``, as if ``--into`` named the interpreter's own directory): its
    installs would be files the tree's record does not list (``verify`` fails), and go
    with the tree when it is replaced."""
    from pylock.sync.records import read_install_json

    real = Path(os.path.realpath(dest))
    for tree in (real, *real.parents):
        if tree.parent != tree and read_install_json(str(tree)) is not None:
            raise UsageError(
                f"the install directory {dest} is inside the tree of {tree.name} in {tree.parent}",
                hint=f"install into the directory that holds the interpreters: --into "
                f"{tree.parent} (or PYLOCK_INSTALL_DIR)",
            )


def _vanished(error: BaseException, archive: Path) -> bool:
    """Whether ``error`` says that ``archive`` itself is missing (raised as it is, or as
    the cause of :func:`~pylock.sync.install.install`'s :class:`InstallError`).

    Any other failure, a missing install directory or a permission refused, is the
    install's own and is reported.
    """
    from pylock.sync.cache import vanished

    return vanished(error.__cause__ if isinstance(error, InstallError) else error, archive)


def _check_size(archive: Path, job: Job) -> None:
    """:func:`~pylock.sync.archives.check_cached_size` for ``job``'s archive."""
    if job.artifact.size is None or archive.stat().st_size == job.artifact.size:
        return  # as almost always: no module to import for it
    from pylock.sync.archives import check_cached_size

    check_cached_size(
        archive,
        sha256=job.artifact.sha256,
        size=job.artifact.size,
        filename=job.artifact.filename,
        name=job.python.name,
    )


def usable_dir(
    path: Path, what: str, hint: str, *, elsewhere: str | None = None, writing: bool = True
) -> None:
    """Create the directory ``path`` if needed; a clean error if it cannot be or is read-only
    (with ``writing`` false, read-only is fine: nothing may need to change there).

    ``elsewhere`` is the hint when ``path`` is something else than a directory (``hint``
    by default): mkdir would say "File exists", which no permission change helps.
    """
    target = broken_link(path)
    if target is not None:
        raise PylockError(
            f"{what} {path} is a symbolic link to {target}, which does not exist",
            hint="create that directory, or remove the link (pylock then makes a directory)",
        )
    if os.path.lexists(path) and not path.is_dir():
        raise PylockError(f"{what} {path} is not a directory", hint=elsewhere or hint)
    try:
        make_dir(path)
    except OSError as exc:
        raise PylockError(
            f"cannot create {what} {path}: {exc.strerror or exc}", hint=hint
        ) from None
    if writing and not os.access(path, os.W_OK):
        why = "read-only file system" if _on_read_only_mount(path) else "permission denied"
        raise PylockError(f"cannot write to {what} {path}: {why}", hint=hint)


def _on_read_only_mount(path: Path) -> bool:
    """Whether ``path`` is on a file system mounted read-only (where no permission change
    helps); ``False`` where the system cannot say (Windows has no statvfs)."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return False
    try:
        return bool(statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1))
    except OSError:
        return False


@attrs.define(kw_only=True)
class _Installer:
    """Installs the jobs of one sync: a streamed miss while it downloads, the rest from
    the cache (a cached copy that turns out corrupt is evicted and fetched once more)."""

    dest_root: Path
    platform: Platform
    cache: Cache
    options: FetchOptions
    reporter: Reporter
    fixup: Fixup | None
    reinstall: bool
    downloads: Downloads
    feeds: dict[str, DownloadFeed]
    #: The one job that reads each stream; any other job with the same archive waits for
    #: the stored file.
    streams: dict[str, Job]
    #: Archives fetched again after the cached copy turned out corrupt: downloads too.
    refetched: set[str] = attrs.Factory(set)

    def install_one(self, job: Job) -> bool:
        """Install ``job``; ``False`` if another process installed it meanwhile."""
        sha256 = job.artifact.sha256
        if self.streams.get(sha256) is job:
            done = self._install_streamed(job)
            if done is not None:
                return done
        from pylock.sync.cache import HOLD_TRIES, fetching_again

        mismatches = 0
        for _ in range(HOLD_TRIES):
            self._ensure_cached(job)
            archive = None
            try:
                # The hold looks the archive up again: a prune or clean that ran since
                # either removed it (fetch it again) or now leaves it alone.
                with self.cache.hold(sha256) as archive:
                    if archive is not None:
                        _check_size(archive, job)
                        return self._install_from(job, archive)
            except HashMismatchError as exc:
                # The cached copy rotted on disk (or was tampered with): drop it and
                # fetch a fresh one, once.
                mismatches += 1
                eviction = self._evict_corrupt(job)
                if mismatches == 2:
                    raise  # a fresh download that does not match: where did it come from?
                if eviction == "replaced":
                    continue  # another sync got there first: install its good copy
                if isinstance(eviction, OSError):
                    raise PylockError(
                        str(exc), hint=self.cache.unremovable_hint(sha256, eviction)
                    ) from None
                if self.options.offline:
                    raise PylockError(
                        str(exc),
                        hint="the cached archive was corrupt and has been evicted: run "
                        "`pylock fetch` (or sync without --offline) where the network is "
                        "reachable",
                    ) from None
            except (InstallError, FileNotFoundError) as exc:
                if archive is None or not _vanished(exc, archive):
                    raise
                # Held, yet gone: another sync found it corrupt and evicted it (an
                # eviction ignores holds). Fetched again, as after a prune.
                self.reporter.detail(
                    fetching_again(job.artifact.filename, offline=self.options.offline)
                )
        raise InstallError(
            f"{job.artifact.filename} was removed from the cache at {self.cache.root} "
            f"{HOLD_TRIES} times before it could be installed",
            hint="let `pylock cache clean` or `pylock cache prune` finish, then sync again",
        )

    def _ensure_cached(self, job: Job) -> None:
        """Make sure the archive is in the cache: this sync's download of it, or a fresh one
        (a hit when the sync was planned may have been pruned since)."""
        sha256 = job.artifact.sha256
        if self.cache.lookup(sha256, job.artifact.filename) is not None:
            return
        if self.downloads.has(sha256):
            self.downloads.path(sha256)  # raises the download's error
            if self.cache.lookup(sha256, job.artifact.filename) is not None:
                return
        self._refetch(job)

    def _install_from(self, job: Job, archive: Path, source: FeedReader | None = None) -> bool:
        from pylock.sync.install import install

        return install(
            archive,
            dest_root=self.dest_root,
            python=job.python,
            artifact=job.artifact,
            platform=self.platform,
            fixup=self.fixup,
            reporter=self.reporter,
            # Another sync may have installed it while this one waited.
            if_needed=not self.reinstall,
            source=source,
            cache=self.cache,
            # A reinstall repairs: it hashes every file rather than trust the cache.
            rehash=self.reinstall,
            # Set on Ctrl-C: a worker waiting for another process's install gives up.
            stop=self.downloads.stop,
        )

    def _install_streamed(self, job: Job) -> bool | None:
        """Install while downloading: whether it installed (as :meth:`install_one`), or
        ``None`` if the download restarted or its archive is gone (install from the cache)."""
        from pylock.net.stream import StreamRestarted

        artifact = job.artifact
        reader = self.feeds[artifact.sha256].reader()
        try:
            # Held from the start, so that a prune or clean leaves the archive alone once
            # the download stores it (its gate is the download's until then).
            with self.cache.hold(artifact.sha256, gated=False):
                return self._install_from(
                    job, self.cache.archive_path(artifact.sha256, artifact.filename), reader
                )
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Ctrl-C (this thread installs when there is one job at a time): end the
                # download rather than wait for it.
                self.downloads.halt()
                raise
            restarted = f"{artifact.filename}: download restarted; installing after it"
            if isinstance(exc, StreamRestarted) or reader.restarted:
                self.reporter.detail(restarted)
                return None
            # Wrong bytes often break decompression before the download's own hash
            # check fails, and a download stopped because the sync is ending raises a
            # cancellation here: either way the download's error is the one to report
            # (a sha256 mismatch naming the URL, not a "corrupt archive" in a cache path
            # that never existed).
            error = self.downloads.wait(artifact.sha256)
            if error is not None and error is not exc:
                raise error from None
            if error is None and _restarted(reader):
                # Bad bytes from a source that was then refused (a remote cache blob with
                # the wrong hash) broke the read before the origin download began.
                self.reporter.detail(restarted)
                return None
            raise
        finally:
            reader.close()

    def _evict_corrupt(self, job: Job) -> Literal["evicted", "replaced"] | OSError:
        """Evict a corrupt cached archive: whether it is gone, was replaced by a good copy
        (another sync evicted it first and fetched it again), or why it cannot be (a
        read-only cache, another user's archive)."""
        sha256 = job.artifact.sha256
        try:
            evicted = self.cache.evict(sha256, unless_intact=True)
        except OSError as exc:
            # The file refused, whose name a shared cache's other users choose.
            where = f": {printable(os.fspath(exc.filename))}" if exc.filename is not None else ""
            self.reporter.warn(
                f"cached archive {job.artifact.filename} is corrupt, and the cache at "
                f"{self.cache.root} cannot be changed ({exc.strerror or exc}{where}): remove "
                f"{self.cache.archive_dir(sha256)} where it is writable"
            )
            return exc
        if not evicted and self.cache.lookup(sha256) is not None:
            self.reporter.detail(
                f"cached archive {job.artifact.filename} was corrupt; another process has "
                "replaced it with a good copy"
            )
            return "replaced"
        self.reporter.warn(
            f"cached archive {job.artifact.filename} is corrupt; evicted it"
            + ("" if self.options.offline else " and downloading it again")
        )
        return "evicted"

    def _refetch(self, job: Job) -> None:
        from pylock.sync.archives import Wanted, ensure_archives

        ensure_archives(
            [Wanted.from_artifact(job.artifact, python=job.python)],
            self.cache,
            self.options,
            self.reporter,
            tally=self.refetched,
            # Ctrl-C lands on the command's thread, which sets it: a worker's re-fetch
            # stops too, rather than finish the download first.
            cancel=self.downloads.stop,
        )


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
    from pylock.sync.downloads import HEAD_START, cache_misses, start_downloads
    from pylock.sync.early import claim

    hits, wanted = cache_misses(plan.jobs, cache)
    misses = [job for job in plan.jobs if job not in hits]
    unique_misses = {job.artifact.sha256: job for job in wanted}
    # Begun before the command line was parsed, if this is a plain cold sync.
    downloads = claim(wanted, cache, options, reporter) or start_downloads(
        wanted, cache, options, reporter
    )
    feeds = downloads.feeds
    try:
        if feeds and not hits:
            # Nothing to install before the first bytes arrive: let the downloads import
            # the HTTP client and send their requests without this thread competing for
            # the interpreter (the GIL), then import the install machinery.
            downloads.wait_started(HEAD_START)
        usable_dir(dest_root, "the install directory", _INTO_HINT)
        installer = _Installer(
            dest_root=dest_root,
            platform=platform,
            cache=cache,
            options=options,
            reporter=reporter,
            fixup=fixup,
            reinstall=reinstall,
            downloads=downloads,
            feeds=feeds,
            # A head start's download that ended before the sync looked is a cache hit.
            streams={sha256: job for sha256, job in unique_misses.items() if sha256 in feeds},
        )
        # Hits first: they start extracting while the misses are still downloading.
        installed, elsewhere, errors = _install_all(installer, hits + misses, jobs)
        # Said now, not by the caller: after a Ctrl-C too, the user learns what is done.
        labels = {job.python.name: job.python.label for job in plan.jobs}
        for name in sorted(installed):
            reporter.event(f"installed {name}: {labels[name]}")
        # No download outlives the sync (a streamed install skipped because another
        # process installed it meanwhile leaves its download running).
        downloads.wait("")
    except BaseException:
        # Ctrl-C or SIGTERM outside the installs (which stop the downloads themselves):
        # stop them too, and let them delete their partial files before the exit.
        downloads.stop_all()
        raise
    failed = list(plan.refused)
    # Ctrl-C first: the downloads it stopped fail too, with less to say.
    for name, error in sorted(errors, key=lambda e: isinstance(e[1], Exception)):
        if not isinstance(error, PylockError):
            raise error  # a bug, or Ctrl-C: keep the traceback
        if isinstance(error, HashMismatchError):
            job = next(j for j in plan.jobs if j.python.name == name)
            error.hint = mismatch_hint(error, job)
        failed.append((name, error))
    from pylock.sync.install import prune

    removed, unpruned = (
        prune(dest_root, keep=plan.keep, reporter=reporter) if plan.stale else ([], None)
    )
    return SyncResult(
        failed=tuple(sorted(failed, key=lambda f: f[0])),
        unpruned=unpruned,
        installed=tuple(sorted(installed)),
        current=tuple(sorted((*plan.current, *elsewhere))),
        removed=tuple(removed),
        unavailable=plan.unavailable,
        downloaded=len(downloads.tally) + len(installer.refetched),
        from_registry=len(options.remote.pulled) if options.remote is not None else 0,
        pushed=len(options.remote.pushed) if options.remote is not None else 0,
    )


def _install_all(
    installer: _Installer, ordered: list[Job], jobs: int
) -> tuple[list[str], list[str], list[tuple[str, BaseException]]]:
    """Install ``ordered`` on a few threads: the names installed, those another process
    installed meanwhile, and each failure."""
    from pylock.interrupts import unmasked
    from pylock.settings import usable_cpus

    installed: list[str] = []
    elsewhere: list[str] = []
    errors: list[tuple[str, BaseException]] = []
    # Extraction is CPU-bound (inflate, hash, write) and each one already overlaps its
    # writes on a second thread: more installs than cores only add memory.
    workers = max(1, min(jobs, len(ordered), usable_cpus()))
    if workers == 1:
        # One at a time, on this thread: no pool to import (4 ms) or hand over to, and
        # Ctrl-C stops the install under way at once.
        for job in ordered:
            try:
                (installed if installer.install_one(job) else elsewhere).append(job.python.name)
            except BaseException as raised:
                exc = unmasked(raised)
                errors.append((job.python.name, exc))
                if not isinstance(exc, Exception):
                    _stop_the_rest(installer.downloads.halt)  # Ctrl-C: no download outlives it
                    break  # nor does an install start after it
        return installed, elsewhere, errors
    import concurrent.futures

    from pylock.interrupts import raise_lost
    from pylock.net.stream import WAIT_STEP

    #: Installs under way when a Ctrl-C came while this thread waited for them.
    interrupted: list[tuple[Job, concurrent.futures.Future[bool]]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(installer.install_one, job) for job in ordered]
        for job, future in zip(ordered, futures, strict=True):
            try:
                # In steps, so that Ctrl-C is taken at once on Windows too.
                while not future.done():
                    concurrent.futures.wait((future,), timeout=WAIT_STEP)
                    raise_lost()
                (installed if future.result() else elsewhere).append(job.python.name)
            except BaseException as raised:
                exc = unmasked(raised)
                errors.append((job.python.name, exc))
                if not isinstance(exc, Exception):

                    def stop_the_rest() -> None:
                        installer.downloads.halt()  # Ctrl-C: no download outlives it
                        for waiting in futures:
                            waiting.cancel()  # nor does an install that has not started

                    _stop_the_rest(stop_the_rest)
                    interrupted.append((job, future))
    # The pool has waited for the installs under way, which nothing stops from here (one
    # from the cache runs to its end): what they did is said as for the others. One
    # left out was an upgrade the user was never told of (attack).
    for job, future in interrupted:
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            (installed if future.result() else elsewhere).append(job.python.name)
        else:
            errors.append((job.python.name, error))
    return installed, elsewhere, errors


def _stop_the_rest(stop: Callable[[], None]) -> None:
    """``stop`` the rest of the installs after an interrupt, to its end: a second one
    meanwhile (a double Ctrl-C) neither cuts it short nor leaves the loop before the
    installs under way are waited for and reported (attack); the first is on its way."""
    from pylock.interrupts import finish_through_interrupts

    with contextlib.suppress(KeyboardInterrupt):
        finish_through_interrupts(stop)


def _restarted(reader: FeedReader) -> bool:
    """Whether the download behind ``reader`` started over (asked afresh: it can change)."""
    return reader.restarted


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


@attrs.frozen(kw_only=True)
class SyncRequest:
    """What ``pylock sync`` was asked to do."""

    #: The lock, already read.
    lock: LockFile
    #: ``pythons.lock``, and ``pythons.toml`` beside it (for the staleness warning).
    lock_path: Path
    config_path: Path
    #: The install directory.
    dest_root: Path
    platform: Platform
    #: Only these names (``--only``); empty means all.
    only: tuple[str, ...] = ()
    reinstall: bool = False
    prune: bool = True
    fixups: bool = True
    #: Where to keep links to the interpreters (``--bin-dir`` / ``PYLOCK_BIN_DIR``).
    bin_dir: Path | None = None
    #: Whether this is a whole-lock sync for the host, which the fast path may trust.
    remember: bool = True
    #: The checked invocation's key, for the fast path (``pylock.fastpath.options_key``).
    options_key: str | None = None
    #: The sha256 of the lock's bytes as read, for the fast path; ``None``: no state.
    lock_sha256: str | None = None


@attrs.frozen(kw_only=True)
class SyncOutcome:
    """What ``run_sync`` did."""

    #: Nothing needed installing or removing.
    noop: bool
    #: The interpreters already current and the work done (empty for a no-op).
    result: SyncResult
    #: Names current after the sync: already current, or installed now.
    current: tuple[str, ...]


def run_sync(
    request: SyncRequest,
    *,
    cache: Callable[[], Cache],
    options: Callable[[], FetchOptions],
    reporter: Reporter,
) -> SyncOutcome:
    """``pylock sync``: plan, install, fix up, link the bin dir and leave the fast-path state.

    ``cache`` and ``options`` are called only when something has to be installed, so a
    no-op never opens the cache or checks download settings. Interpreters that fail are
    in the outcome's ``result.failed``; the others are installed and linked. A tree it
    could not prune is ``result.unpruned``; the rest of the sync is done and linked.
    """
    from pylock.fastpath import config_sha256, forget_state
    from pylock.sync.install import clean_leftovers

    lock, dest, platform = request.lock, request.dest_root, request.platform
    if dest.exists() and not dest.is_dir():
        raise PylockError(f"the install directory {dest} is not a directory", hint=_INTO_HINT)
    _check_not_a_tree(dest)
    # What the warning below is about: the fast path skips it only for this very file.
    config_sha = config_sha256(str(request.lock_path.parent)) if request.remember else None
    if warn_if_config_changed(request.config_path, request.lock_path, lock, reporter):
        # No state for the fast path, which does not warn: every sync says it again until
        # the lock is updated.
        request = attrs.evolve(request, remember=False)
    # Before planning: an interrupted upgrade's old tree may need putting back first.
    clean_leftovers(dest, reporter)
    fixup = None
    if request.fixups:
        from pylock.sync.fixups import fixup_for

        fixup = fixup_for(platform)
    # What the install records say of the trees (whether fix-ups ran, not only whether
    # they were asked for: a Windows tree has none), and so what a current one must say.
    request = attrs.evolve(request, fixups=fixup is not None)
    plan = plan_sync(
        lock,
        dest_root=dest,
        platform=platform,
        only=request.only,
        reinstall=request.reinstall,
        prune=request.prune,
        fixups=request.fixups,
    )
    if plan.unavailable and not (plan.jobs or plan.refused or plan.current or plan.stale):
        # A build for a platform nobody locked must not go green with nothing installed.
        # (A directory with trees to prune is synced: the lock dropped this platform.)
        raise _locked_elsewhere("install", request.lock_path.name, plan.unavailable, platform.key)
    skipped = _not_locked_for(plan.unavailable, platform.key)
    for warning in skipped:
        reporter.warn(warning)
    if request.bin_dir is not None:
        from pylock.sync.bindir import check_links, link_owners, plan_links

        if platform.is_windows != (sys.platform == "win32"):
            # .cmd launchers on a POSIX machine (or links on Windows) run nothing here,
            # and a bin dir shared with this machine's syncs would hold both kinds.
            raise UsageError(
                f"--bin-dir links interpreters to run on this machine, not {platform.key}'s",
                hint="sync without --bin-dir for another platform; link them where they run",
            )

        # A name two interpreters would share is an error before anything is installed
        # (among those synced: `--only` into separate bin dirs is the way out).
        to_link = [
            p.name
            for p in lock.pythons
            if p.artifact_for(platform.key) is not None
            and (not request.only or p.name in request.only)
        ]
        link_owners(p for p in lock.pythons if p.name in to_link)
        # Before anything is installed: a bin dir that cannot be made fails the sync
        # while the install directory is still as it was.
        _check_not_in_a_tree(request.bin_dir, dest, {p.name for p in lock.pythons})
        # A no-op whose links are right writes nothing there (a read-only image's, say).
        usable_dir(
            request.bin_dir,
            "--bin-dir",
            _BIN_DIR_HINT,
            elsewhere=_BIN_DIR_ELSEWHERE,
            writing=not plan.is_noop,
        )
        # A file pylock did not make where a link goes (the user's own `python3`) is
        # refused now too, not after every download and install.
        check_links(
            request.bin_dir.absolute(),
            plan_links(lock, dest_root=request.dest_root, platform=platform, installed=to_link),
            windows=platform.is_windows,
        )
    if plan.is_noop:
        _link_bin_dir(request, reporter)
        _remember(request, plan.current, config_sha, reporter, skipped)
        return SyncOutcome(
            noop=True,
            result=SyncResult(current=plan.current, unavailable=plan.unavailable),
            current=plan.current,
        )
    forget_state(str(dest))
    fetch_options = options()
    result = execute_sync(
        plan,
        dest_root=dest,
        platform=platform,
        cache=cache(),
        options=fetch_options,
        reporter=reporter,
        jobs=fetch_options.jobs,
        fixup=fixup,
        reinstall=request.reinstall,
    )
    for name in result.removed:
        reporter.event(f"removed {name} (no longer in {request.lock_path.name})")
    if result.installed and _runs_here(request.platform) and mounted_noexec(request.dest_root):
        reporter.warn(
            f"{request.dest_root} is on a file system mounted noexec: the interpreters "
            "installed there cannot run (sync to a directory on another one, --into DIR)"
        )
    # After a failure, links are added, never removed: an interpreter whose upgrade failed
    # is still installed as it was, and keeps its links. A tree that could not be pruned
    # keeps its links too, as --no-prune's do. A tree installed anew links only what it
    # wants now: an upgrade to another minor version leaves no link to the old one's.
    _link_bin_dir(
        request,
        reporter,
        prune=not result.failed,
        gone=result.removed + result.installed,
        unpruned=result.unpruned is not None,
    )
    current = result.installed + result.current
    if not result.failed and result.unpruned is None:
        _remember(request, current, config_sha, reporter, skipped)
    return SyncOutcome(noop=False, result=result, current=current)


def _runs_here(platform: Platform) -> bool:
    """Whether interpreters for ``platform`` are meant to run on this machine (not a
    ``sync --platform`` for another one)."""
    from pylock.platforms import host

    try:
        return host().key == platform.key
    except ValueError:  # a machine no upstream builds for
        return False


#: How many links a sync names in its "linked" line (``-v``: all of them).
_LINKS_SHOWN = 12


def _link_bin_dir(
    request: SyncRequest,
    reporter: Reporter,
    *,
    prune: bool = True,
    gone: Sequence[str] = (),
    unpruned: bool = False,
) -> None:
    """Make the bin dir link exactly the current interpreters (``prune=False``: at least
    them, and the links it had besides). ``gone``: the trees this sync removed or
    installed anew, whose links beyond those wanted go whatever else is kept (``--only``,
    a failed install). ``unpruned``: trees the lock no longer lists may still be
    installed (a prune failed), and keep theirs."""
    if request.bin_dir is None:
        return
    from pylock.sync.bindir import plan_links, sync_links

    installed = current_names(request.lock, request.dest_root, request.platform)
    if request.only:
        # The others' links are not this sync's to change: they stay as they are.
        installed = [name for name in installed if name in request.only]
    wanted = plan_links(
        request.lock, dest_root=request.dest_root, platform=request.platform, installed=installed
    )
    bin_dir = request.bin_dir
    install_dir = request.dest_root.absolute()
    kept: list[Path] = []
    if not request.prune or unpruned:
        from pylock.sync.install import installed_names

        # What --no-prune (or a failed prune) leaves installed keeps its commands on PATH.
        others = set(installed_names(request.dest_root)) - set(request.lock.names)
        kept = [d / n for d in {request.dest_root, install_dir} for n in others]
    try:
        linked = sync_links(
            bin_dir.absolute(),
            wanted,
            windows=request.platform.is_windows,
            install_dir=install_dir,
            prune=prune,
            # As the links spell their targets (see plan_links), and absolute.
            trees=[d / n for d in {request.dest_root, install_dir} for n in request.only]
            if request.only
            else None,
            kept=kept,
            gone=[d / n for d in {request.dest_root, install_dir} for n in gone],
        )
    except OSError as exc:
        # A link's own name, not its target's (os.symlink names the target first); the
        # file a temporary one was for.
        path = exc.filename2 if exc.filename2 is not None else exc.filename
        where = f" ({written_name(os.fspath(path))})" if path is not None else ""
        raise PylockError(
            f"--bin-dir: cannot update {bin_dir}: {exc.strerror or exc}{where}",
            hint=out_of_space_hint(bin_dir, "run the sync again")
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            else _BIN_DIR_HINT,
        ) from None
    for name, owner in linked.taken:
        reporter.warn(
            f"--bin-dir: {bin_dir / name} linked an interpreter in {owner}; it now links this "
            f"project's (in {request.dest_root})"
        )
    for name in linked.left:
        reporter.warn(
            f"--bin-dir: {bin_dir / name} links another interpreter of {request.dest_root}; "
            "left as it is (a sync without --only moves it)"
        )
    if linked.created:
        # What lands on PATH is worth a line by default; a line, not a screenful (-v has
        # every name).
        names = linked.created
        if len(names) > _LINKS_SHOWN and reporter.verbosity <= 0:
            more = len(names) - _LINKS_SHOWN
            shown = f"{', '.join(names[:_LINKS_SHOWN])} and {more} more"
        else:
            shown = ", ".join(names)
        reporter.event(f"linked {shown} into {bin_dir}")
    for name in linked.removed:
        reporter.event(f"removed link {bin_dir / name}")


def _remember(
    request: SyncRequest,
    names: Sequence[str],
    config_sha: str | None,
    reporter: Reporter,
    warnings: Sequence[str],
) -> None:
    """Leave the state the no-op fast path checks (only after a whole-lock, host sync);
    with it the sync's ``warnings``, which the fast path gives again."""
    if not request.remember:
        return
    from pylock.fastpath import write_state
    from pylock.sync.records import installed_state

    dest = request.dest_root
    for name in names:
        state = installed_state(dest, name)
        if state is not None and state.fixed_up_for not in (None, str(state.path)):
            # Fixed up for this directory spelled another way (through a symlink): current
            # while that link stands, which only the full sync checks, every time.
            return
    try:
        write_state(
            dest=str(dest),
            lock_sha=request.lock_sha256,
            config_sha=config_sha,
            names=names,
            key=request.options_key,
            warnings=warnings,
            # Another sync into this directory, of another lock, may have replaced one of
            # these trees since this one checked it: a state stamping it would say "up to
            # date" for this lock until the tree changed again.
            still_current=lambda: (
                set(names)
                <= set(current_names(request.lock, dest, request.platform, fixups=request.fixups))
            ),
        )
    except OSError as exc:
        reporter.detail(f"could not record sync state: {exc}")


@attrs.frozen(kw_only=True)
class FillOutcome:
    """What ``fill_cache`` did."""

    #: Every wanted archive, by sha256, at its place in the cache.
    paths: dict[str, Path]
    #: The sha256 of the archives downloaded now from the origin.
    downloaded: tuple[str, ...]
    #: The sha256 of the archives that came from the remote cache, and of those pushed.
    from_registry: tuple[str, ...] = ()
    pushed: tuple[str, ...] = ()
    #: Sizes by sha256, as the lock gives them (else as found once the fill was done).
    sizes: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def downloaded_bytes(self) -> int:
        """How many bytes were downloaded (from the origin or the remote cache).

        Counted from :attr:`sizes`: an archive a concurrent ``cache clean`` removed since
        was still downloaded.
        """
        return sum(self.sizes.get(sha, 0) for sha in (*self.downloaded, *self.from_registry))


def _not_locked_for(names: Sequence[str], key: str) -> list[str]:
    """The warning for the interpreters a sync or fetch for ``key`` skips: one that names
    them (the first few of many), not one each. A lock of 150 interpreters, one of them
    locked for the platform asked for, gave 149 warnings on every sync.

    >>> _not_locked_for(["app"], "macos-aarch64")
    ['app is not locked for macos-aarch64; skipped']
    >>> _not_locked_for(["app", "tool"], "macos-aarch64")
    ['app, tool are not locked for macos-aarch64; skipped']
    >>> _not_locked_for([], "macos-aarch64")
    []
    """
    if not names:
        return []
    verb = "is" if len(names) == 1 else "are"
    return [f"{some_names(names)} {verb} not locked for {key}; skipped"]


def _locked_elsewhere(verb: str, lock_name: str, names: Sequence[str], key: str) -> PylockError:
    """The error for a sync or fetch for a platform that no interpreter is locked for."""
    return PylockError(
        f"nothing to {verb}: {lock_name} locks {some_names(names)} for other platforms than {key}",
        hint=f"add {key} to the platforms in pythons.toml and run `pylock lock` "
        "(`pylock list --platform KEY` shows what a platform has)",
    )


def fill_cache(
    lock: LockFile,
    *,
    platform_keys: Sequence[str] | None,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> FillOutcome:
    """``pylock fetch``: put the lock's archives for ``platform_keys`` (``None``: all) in
    the cache.

    Fills the cache so that a later ``sync --offline`` (or an air-gapped build) has
    everything; hits are re-hashed because a bad archive found later is costlier.
    """
    from pylock.sync.archives import Wanted, ensure_archives

    wanted: list[Wanted] = []
    elsewhere: dict[str, list[str]] = {key: [] for key in platform_keys or ()}
    for python in lock.pythons:
        if platform_keys is None:
            wanted.extend(Wanted.from_artifact(a, python=python) for a in python.artifacts)
            continue
        for key in platform_keys:
            artifact = python.artifact_for(key)
            if artifact is None:
                elsewhere[key].append(python.name)
            else:
                wanted.append(Wanted.from_artifact(artifact, python=python))
    skipped = [
        warning for key, names in elsewhere.items() for warning in _not_locked_for(names, key)
    ]
    if lock.pythons and not wanted:
        from pylock.fsutil import LOCK_FILENAME

        # As for `sync`: a CI step warming the cache for a platform nobody locked fails,
        # with the error alone (no "not locked" warning before it).
        names = [python.name for python in lock.pythons]
        raise _locked_elsewhere("fetch", LOCK_FILENAME, names, " or ".join(platform_keys or ()))
    for warning in skipped:
        reporter.warn(warning)
    fetched: set[str] = set()
    # Each archive on its own, as for `mirror`: one that fails does not stop the others, and
    # all that failed are named at once (a cache warmed for CI is fixed and run again once).
    paths = ensure_archives(
        wanted, cache, options, reporter, verify_hits=True, each=True, tally=fetched
    )
    remote = options.remote
    sizes = {w.sha256: w.size for w in wanted if w.size is not None}
    for sha, path in paths.items():
        if sha not in sizes:
            with contextlib.suppress(OSError):
                sizes[sha] = path.stat().st_size
    return FillOutcome(
        sizes=sizes,
        paths=paths,
        downloaded=tuple(sha for sha in paths if sha in fetched),
        from_registry=tuple(sha for sha in paths if remote is not None and sha in remote.pulled),
        pushed=tuple(sha for sha in paths if remote is not None and sha in remote.pushed),
    )
