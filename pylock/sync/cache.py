"""The content-addressed archive cache: its layout, cross-process locking and housekeeping.

Layout under the cache root (``PYLOCK_CACHE_DIR``, else the user cache directory)::

    archives/sha256/<hex>/<original-filename>   immutable archives, one per directory
    archives/sha256/<hex>/.last-used            empty file; its mtime records the last use
    archives/sha256/<hex>/.files-<layout>       what installs of it extract (see below)
    metadata/                                   upstream listings (owned by the index code)
    tmp/                                        partial downloads and staging, same filesystem
    locks/<hex>.lock                            per-archive gate: download, evict, start a hold
    locks/holds/<hex>/<pid>-<token>.lock        one lock file per process reading the archive

An archive directory appears with a single ``rename`` of a complete, verified staging
directory, so a reader never sees a partial archive. The gate lock serialises downloading
and evicting one archive across processes; holds are separate lock files so that any
number of installers can read one archive at once while ``prune`` can still tell, with a
non-blocking try, whether anyone does. ``prune`` and ``clean`` remove the gates and holds
of archives no longer cached, under the gate, unless another process has them.

Beside an archive the cache may keep small *sidecars*, facts derived from the archive's
verified content that save work the next time it is used: the install code keeps the
sha256 of every file an extraction wrote (``.files-<layout>``,
:func:`pylock.sync.records.dump_digests`). They are written atomically, checked
when read, go with the archive on eviction, and are only ever a shortcut: a missing or
unwritable one costs the work it would have saved.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Iterator, MutableSequence
from pathlib import Path
from typing import Literal

import attrs

from pylock.archive.policy import unaliased
from pylock.errors import CacheReadOnlyError, PylockError
from pylock.fsutil import (
    CLOCK_SKEW,
    FileLock,
    LockTimeout,
    broken_link,
    is_stale,
    out_of_space_hint,
    read_own_file,
    remove_tree,
    rename,
    replace,
    sha256_file,
)
from pylock.lockfile import is_sha256
from pylock.settings import Settings
from pylock.settings import parse_size as parse_size  # where callers look for it

_USED = ".last-used"
#: What :meth:`Cache._try_evict` did: removed the archive, found it gone (another process
#: removed it first), or kept it (held, being downloaded, or in a read-only cache).
_Eviction = Literal["removed", "gone", "kept"]
#: Windows' word for a file another process has open (which it will not remove).
_ERROR_SHARING_VIOLATION = 32
#: Whether this system can set a link's own times.
_UTIME_NOFOLLOW = os.utime in os.supports_follow_symlinks
#: A sidecar larger than this is not read (an interpreter's file digests are < 1 MiB).
_SIDECAR_MAX_BYTES = 16 * 1024 * 1024
# Partial work older than this, with no live owner we can detect, is debris of a killed run.
_STALE_TMP_SECONDS = 3600.0
#: How old a writability probe (``probe.*.tmp``) left in ``tmp/`` or ``locks/`` must be
#: to be a killed run's.
_STALE_PROBE_SECONDS = 60
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
#: The names :meth:`Cache.new_tmp_path` gives, and gave before 0.3 (``KEY.PID-12HEX``):
#: what pylock may remove from ``tmp/``.
#: The key of a download whose sha256 is not known yet (see :meth:`Cache.unknown_download`).
_UNKNOWN = "unknown"
_OWN_TMP_NAME = re.compile(
    r"(?P<key>[0-9a-f]{64}|unknown|probe|evicted)\.(?:[0-9a-f]{10}|[0-9]+-[0-9a-f]{12})"
    r"(?:\.part|\.tmp|\.sidecar|\.dir)?"
)


def safe_filename(name: str) -> str:
    """``name`` reduced to a portable, plain file name: no separators, no dot at either end
    (Windows drops a trailing one), and no name Windows takes for a device.

    >>> safe_filename("cpython-3.13.9+20251014-x86_64-unknown-linux-gnu.tar.gz")
    'cpython-3.13.9+20251014-x86_64-unknown-linux-gnu.tar.gz'
    >>> safe_filename("../evil:name"), safe_filename(""), safe_filename("nul.tar.gz")
    ('_evil_name', 'archive', '_nul.tar.gz')
    """
    cleaned = _UNSAFE_CHARS.sub("_", name).strip(".") or "archive"
    return unaliased(cleaned)


@attrs.frozen(kw_only=True)
class CacheEntry:
    """One archive in the cache."""

    #: Its sha256, also its directory name.
    sha256: str
    #: The original file name.
    filename: str
    #: Where it is.
    path: Path
    #: Size in bytes.
    size: int
    #: When it was last used (stored or looked up), in seconds since the epoch.
    last_used: float


@attrs.frozen(kw_only=True)
class Refusal:
    """An archive the file system would not let this process remove (not one in use)."""

    #: The archive.
    entry: CacheEntry
    #: What could not be removed, opened or locked.
    path: str
    #: Why, in the system's words (``Permission denied``).
    reason: str
    #: The error's number (``errno.EACCES``), if it has one.
    code: int | None

    @classmethod
    def of(cls, entry: CacheEntry, error: OSError) -> Refusal:
        """The refusal ``error`` describes (its file, else the archive's directory)."""
        path = os.fspath(error.filename) if error.filename is not None else entry.path.parent
        return cls(
            entry=entry, path=str(path), reason=error.strerror or str(error), code=error.errno
        )


@attrs.frozen(kw_only=True)
class PruneReport:
    """What ``prune`` or ``clean`` did."""

    #: Archives removed.
    removed: tuple[CacheEntry, ...] = ()
    #: Archives that would have been removed but another process holds (or is fetching).
    held: tuple[CacheEntry, ...] = ()
    #: Archives that would have been removed but this user may not (another user's, say).
    refused: tuple[Refusal, ...] = ()
    #: Bytes of what killed runs left in ``tmp/`` (partial downloads) that went too.
    leftovers: int = 0

    @property
    def freed(self) -> int:
        """Bytes of archives and leftovers removed."""
        return sum(entry.size for entry in self.removed) + self.leftovers


@attrs.frozen(kw_only=True)
class CorruptEntry:
    """An archive whose content no longer has its sha256."""

    #: The archive.
    entry: CacheEntry
    #: The sha256 its bytes have now.
    actual: str
    #: Whether it was evicted; ``False`` when another process holds it right now, or it
    #: could not be removed (:attr:`refusal`).
    evicted: bool
    #: Why the file system would not let it be removed (another user's, say).
    refusal: Refusal | None = None


@attrs.frozen(kw_only=True)
class CacheVerifyReport:
    """What :meth:`Cache.verify` (``pylock cache verify``) found."""

    #: Archives whose content matches.
    ok: tuple[CacheEntry, ...] = ()
    #: Archives whose content does not.
    corrupt: tuple[CorruptEntry, ...] = ()


#: How long an eviction waits for an archive's gate: another `prune` or `clean` removing
#: it holds it for milliseconds (then it is gone, not "in use"); a download, for longer.
_GATE_PATIENCE = 0.5


def _acquire_briefly(gate: FileLock) -> bool:
    """Take ``gate`` if it is free now or within :data:`_GATE_PATIENCE` seconds."""
    try:
        gate.acquire(_GATE_PATIENCE, poll=0.02)
    except LockTimeout:
        return False
    return True


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


class Cache:
    """A content-addressed archive cache rooted at one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.archives_dir = self.root / "archives" / "sha256"
        self.metadata_dir = self.root / "metadata"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Cache:
        """The cache at ``PYLOCK_CACHE_DIR``, else the platform's user cache directory."""
        return cls(settings.cache_root())

    # -- paths -----------------------------------------------------------------------

    def archive_dir(self, sha256: str) -> Path:
        """The directory that holds the archive with this sha256."""
        _check_sha256(sha256)
        return self.archives_dir / sha256

    def archive_path(self, sha256: str, filename: str) -> Path:
        """Where the archive ``filename`` with this sha256 lives once cached."""
        return self.archive_dir(sha256) / safe_filename(filename)

    def gate(self, sha256: str) -> FileLock:
        """The per-archive lock taken to download or evict it (not acquired)."""
        _check_sha256(sha256)
        return _lock(self.locks_dir / f"{sha256}.lock")

    def require_writable(self, doing: str = "store downloads in") -> None:
        """Raise :class:`CacheReadOnlyError` unless archives can be stored (or removed) here."""
        error = self._write_error()
        no_room = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        if doing in ("prune", "clean") and error is not None and error.errno in no_room:
            # The probe needs room and removing does not: a full disk is when one prunes.
            return
        if error is not None:
            if isinstance(error, PermissionError):
                # Most often a BuildKit cache mount (made by root) in a non-root stage: the
                # id to give it is this user's, which a `USER 1001` stage copying an
                # example's uid=1000 would not have.
                uid = getattr(os, "getuid", lambda: 0)() or 1000
                hint = (
                    "this user may not write there: in a Dockerfile, give the cache mount "
                    f"your user's id (`--mount=type=cache,target=...,uid={uid}`); elsewhere, "
                    "point PYLOCK_CACHE_DIR at a directory you can write"
                )
            elif isinstance(error, FileNotFoundError):
                hint = (
                    "no directory can be made there: point PYLOCK_CACHE_DIR at a directory "
                    "you can write (pylock makes it if it is missing)"
                )
            elif (target := broken_link(self.root)) is not None:
                hint = (
                    f"{self.root} is a symbolic link to {target}, which does not exist: "
                    "create that directory, or point PYLOCK_CACHE_DIR elsewhere"
                )
            elif isinstance(error, (FileExistsError, NotADirectoryError)) and not (
                self.root.is_dir()
            ):
                hint = (
                    f"{self.root} is not a directory, and a file stands where one would be made: "
                    "point PYLOCK_CACHE_DIR at a directory "
                    "(pylock makes it if it is missing)"
                )
            elif error.errno in no_room:
                # A full disk (or inode table, or quota): no read-only cache to fill elsewhere.
                hint = out_of_space_hint(
                    self.root, "try again (`pylock cache prune --max-size SIZE` shrinks the cache)"
                )
            elif doing in ("prune", "clean"):
                hint = (
                    f"a read-only cache keeps what it holds: {doing} it where it is writable "
                    "(on the machine or in the stage that fills it)"
                )
            else:
                hint = (
                    "a read-only cache serves only the archives it holds: fill it with "
                    "`pylock fetch` where it is writable, or point PYLOCK_CACHE_DIR at a "
                    "writable directory"
                )
            raise CacheReadOnlyError(
                f"cannot {doing} the cache at {self.root}: {error.strerror or error}",
                root=str(self.root),
                hint=hint,
            ) from None

    def require_readable(self, doing: str) -> None:
        """Raise :class:`~pylock.errors.PylockError` if the cache is there but cannot be
        read: not a directory, or one this user may not list. (One that is not there at all
        is an empty cache.)"""
        for directory in (self.root, self.archives_dir.parent, self.archives_dir):
            try:
                # Not os.path.lexists: it says "not there" for what this user may not search.
                os.lstat(directory)
            except FileNotFoundError:
                return
            except OSError as error:
                raise self._read_error(doing, directory.parent, error) from None
            try:
                if not directory.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
                os.listdir(directory)
            except OSError as error:
                raise self._read_error(doing, directory, error) from None

    def _read_error(self, doing: str, directory: Path, error: OSError) -> PylockError:
        """The error for a cache whose ``directory`` cannot be read (``error`` says why)."""
        where = "" if directory == self.root else f"{directory}: "
        if isinstance(error, PermissionError):
            hint = (
                f"this user may not read {directory}: it is another user's, or its mode "
                "keeps others out. Give this user read and search permission on it (a "
                "group that shares the cache), or point PYLOCK_CACHE_DIR at a cache of "
                "your own"
            )
        else:
            hint = (
                "point PYLOCK_CACHE_DIR at the cache directory (pylock makes it if it is missing)"
            )
        return PylockError(
            f"cannot {doing} the cache at {self.root}: {where}{error.strerror or error}",
            hint=hint,
        )

    def writable(self) -> bool:
        """Whether archives can be stored (and removed) here."""
        return self._write_error() is None

    def _write_error(self) -> OSError | None:
        try:
            probe = self.new_tmp_path("probe", ".tmp")
            probe.touch(exist_ok=False)
            probe.unlink()
            # Evicting takes an archive's gate, a file in locks/.
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            probe = self.locks_dir / f"probe.{os.getpid()}-{os.urandom(6).hex()}.tmp"
            probe.touch(exist_ok=False)
            probe.unlink()
        except OSError as error:
            return error
        return None

    def new_tmp_path(self, key: str, suffix: str = ".part") -> Path:
        """A fresh path in ``tmp/`` whose name starts with ``key`` (a sha256 or a word)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # 40 random bits and no pid: short, because a staging directory holds the
        # archive's own name, and Windows' 260-character MAX_PATH counts it all. So
        # tmp/<sha256>.<token>.dir/NAME is only 3 characters longer than the archive's
        # final path, archives/sha256/<sha256>/NAME, which sets the limit anyway.
        return self.tmp_dir / f"{key}.{os.urandom(5).hex()}{suffix}"

    @contextlib.contextmanager
    def unknown_download(self) -> Iterator[Path]:
        """A fresh path in ``tmp/`` for a download whose sha256 is not known yet (``lock``'s
        direct URLs), guarded while the block runs: ``prune`` and ``clean`` leave it alone
        however old it looks (a shared cache's clocks may disagree by hours). Removed after.
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        token = os.urandom(5).hex()
        guard = _lock(self._unknown_guard(token))
        guard.acquire()  # a name nobody else uses: taken at once
        path = self.tmp_dir / f"{_UNKNOWN}.{token}.part"
        try:
            yield path
        finally:
            try:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            finally:
                guard.release()
                with contextlib.suppress(OSError):
                    os.unlink(guard.path)

    def _unknown_guard(self, token: str) -> Path:
        return self.locks_dir / f"{_UNKNOWN}.{token}.lock"

    # -- reading ---------------------------------------------------------------------

    def lookup(self, sha256: str, filename: str | None = None, *, use: bool = True) -> Path | None:
        """The cached archive with this sha256, or ``None``; records the use unless ``use``
        is false (a status query, which must not keep archives from ``prune --unused-for``).

        Content decides identity: an archive cached under another file name is a hit.
        """
        directory = self.archive_dir(sha256)
        found: Path | None = None
        if filename is not None:
            candidate = directory / safe_filename(filename)
            if candidate.is_file():
                found = candidate
        if found is None:
            found = _archive_in(directory)
        if found is not None and use:
            self.touch(sha256)
        return found

    def touch(self, sha256: str, *, when: float | None = None) -> None:
        """Record that the archive was just used (for ``prune --unused-for``), or at ``when``.

        The marker is never followed: in a cache shared with other users, a link planted
        in its place must not make this process create or touch the file it names.
        """
        marker = self.archive_dir(sha256) / _USED
        times = None if when is None else (when, when)
        try:
            if _UTIME_NOFOLLOW:
                os.utime(marker, times, follow_symlinks=False)
            elif not os.path.islink(marker):  # (Windows: links need privileges to make)
                os.utime(marker, times)
        except FileNotFoundError:
            # O_EXCL: a link (even one to nothing) is not followed, the open fails.
            with contextlib.suppress(OSError):
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError:
            pass  # a read-only cache is still a cache

    @contextlib.contextmanager
    def hold(self, sha256: str, *, gated: bool = True) -> Iterator[Path | None]:
        """Hold the archive against ``prune`` and ``clean`` while reading it; yields its path.

        Yields ``None`` if it is not cached. Any number of processes may hold one archive.
        ``gated=False`` registers the hold without waiting for the archive's gate, which
        a download of it keeps until the archive is stored: for a reader that follows that
        download, whose archive is not there to evict yet.
        """
        marker = self.locks_dir / "holds" / sha256 / f"{os.getpid()}-{os.urandom(6).hex()}.lock"
        try:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                _clear_non_dir(marker.parent)
            hold = _lock(marker)
            # Registering under the gate means a concurrent prune either saw this hold or
            # finished evicting before it; it never evicts an archive that is being opened.
            with self.gate(sha256) if gated else contextlib.nullcontext():
                for attempt in range(_HOLD_ATTEMPTS):
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        hold.acquire()
                        break
                    except FileNotFoundError:
                        # A prune removed the empty holds directory in between (it found
                        # the archive unheld): make it again, or this hold holds nothing.
                        if attempt == _HOLD_ATTEMPTS - 1:
                            raise
                path = self.lookup(sha256)
        except OSError:
            read_only = True
        else:
            read_only = False
        if read_only:
            # A read-only cache (a Docker read-only mount): its hits still serve, unheld;
            # a cache nobody can write is a cache nobody prunes under us through pylock.
            yield self.lookup(sha256)
            return
        try:
            yield path
        finally:
            hold.release()
            with contextlib.suppress(OSError):
                marker.unlink()

    def is_held(self, sha256: str) -> bool:
        """Whether any process holds the archive; removes hold files left by dead ones.

        Raises :class:`OSError` where this user cannot list its holds (another user's
        directory): an eviction must not guess, and says why it left the archive.
        """
        holds = self.locks_dir / "holds" / sha256
        try:
            if _clear_non_dir(holds):
                return False
            # Only names pylock gives its markers: those of dead holders are removed.
            markers = [m for m in holds.iterdir() if _MARKER.fullmatch(m.name)]
        except (FileNotFoundError, NotADirectoryError):
            return False
        held = False
        for marker in markers:
            lock = _lock(marker)
            if not lock.try_acquire():
                held = True
                continue
            lock.release()
            with contextlib.suppress(OSError):
                marker.unlink()
        if not held:
            with contextlib.suppress(OSError):
                holds.rmdir()
        return held

    def list(self) -> list[CacheEntry]:
        """Every cached archive, sorted by file name."""
        entries = []
        try:
            directories = list(self.archives_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as error:
            # Not "no archives": `cache list` said 0 and `prune` removed nothing, exit 0.
            raise self._read_error("read", self.archives_dir, error) from None
        for directory in directories:
            if not is_sha256(directory.name):
                continue
            entry = self._entry(directory)
            if entry is not None:
                entries.append(entry)
        return sorted(entries, key=lambda e: (e.filename, e.sha256))

    def _entry(self, directory: Path) -> CacheEntry | None:
        archive = _archive_in(directory)
        if archive is None:
            return None
        try:
            stat = archive.stat()
        except OSError:
            return None
        try:
            last_used = os.lstat(directory / _USED).st_mtime  # a planted link: its own
        except OSError:
            last_used = stat.st_mtime
        return CacheEntry(
            sha256=directory.name,
            filename=archive.name,
            path=archive,
            size=stat.st_size,
            last_used=last_used,
        )

    def _sidecar_path(self, sha256: str, name: str) -> Path:
        if not name.startswith(".") or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"not a sidecar name: {name!r}")
        return self.archive_dir(sha256) / name

    def sidecar(self, sha256: str, name: str) -> bytes | None:
        """The bytes of the archive's sidecar ``name`` (a dot-name), or ``None``.

        Only a regular file of a sane size is read (:func:`~pylock.fsutil.read_own_file`):
        not a pipe, which would block, nor a device that never ends, nor a symlink.
        """
        try:
            return read_own_file(self._sidecar_path(sha256, name), _SIDECAR_MAX_BYTES)
        except OSError:
            return None

    # -- writing ---------------------------------------------------------------------

    def put_sidecar(self, sha256: str, name: str, data: bytes) -> None:
        """Keep ``data`` as the cached archive's sidecar ``name``, if the archive is here.

        Best effort and never an error: a read-only cache, a full disk or an archive
        evicted meanwhile only mean the sidecar is not kept. Not synced to disk either:
        the reader checks a sidecar's content, and one lost in a crash is only missed.
        """
        path = self._sidecar_path(sha256, name)
        if _archive_in(path.parent) is None or len(data) > _SIDECAR_MAX_BYTES:
            return  # (one too large to be read would only be rewritten by every install)
        # Not fsutil.atomic_write_bytes: it would create the directory again for an
        # archive evicted meanwhile (a directory that then blocks storing it), leave its
        # temporary file there after a crash instead of in tmp/, and sync to disk.
        try:
            tmp = self.new_tmp_path(sha256, ".sidecar")
            try:
                tmp.write_bytes(data)
                replace(tmp, path)  # patiently: a scanner may hold it (Windows)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        except OSError:
            pass

    def store(self, sha256: str, filename: str, source: Path) -> Path:
        """Move the verified file ``source`` (in ``tmp/``) into the cache; returns its path.

        The caller has checked the hash. If another process stored the same archive
        first, that copy wins and ``source`` is discarded.
        """
        try:
            return self._store(sha256, safe_filename(filename), source)
        except OSError as exc:
            # The cache's failure, not a bug: said in one line, not as a traceback.
            raise PylockError(
                f"cannot store {filename} in the cache at {self.root}: {exc.strerror or exc}",
                hint="check the cache directory's permissions and free space, or set "
                "PYLOCK_CACHE_DIR",
            ) from None

    def _store(self, sha256: str, name: str, source: Path) -> Path:
        staging = self.new_tmp_path(sha256, ".dir")
        staging.mkdir()
        final_dir = self.archive_dir(sha256)
        try:
            replace(source, staging / name)  # a download just closed: patiently (Windows)
            (staging / _USED).touch()
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                rename(staging, final_dir)
            except OSError:
                existing = _archive_in(final_dir)
                if existing is not None:
                    return existing
                if not os.path.lexists(final_dir):
                    # Nothing in the way: the rename itself failed (a scanner holding the
                    # new file on Windows past fsutil's patience), and its error says why.
                    raise
                # A directory without its archive (deleted by hand, or replaced by
                # something that is not a file): debris that would block this archive for
                # ever. The caller holds the gate, so nobody else is storing it.
                self._discard(final_dir)
                rename(staging, final_dir)
        finally:
            remove_tree(staging)
        return final_dir / name

    def evict(self, sha256: str, *, unless_intact: bool = False) -> bool:
        """Remove the archive, e.g. because its hash no longer matches; ``False`` if absent.

        Holds are ignored: a corrupt archive is corrupt for every reader.

        ``unless_intact`` keeps a copy whose content has its sha256 (and returns
        ``False``), for a reader that found the archive corrupt. Readers sharing the
        cache each find a rotted copy corrupt: the first evicts it and may have stored a
        good one by the time the last evicts, which by sha256 alone would throw the good
        copy away (a download lost, and the file removed under whoever holds it). Only the
        content tells the two apart, checked under the gate, which every store takes.
        """
        with self.gate(sha256):
            if unless_intact and self._intact(sha256):
                return False
            return self.evict_locked(sha256)

    def unremovable_hint(self, sha256: str, error: OSError) -> str:
        """What to do about the archive ``sha256`` that ``error`` kept this user from evicting."""
        directory = self.archive_dir(sha256)
        if error.errno == errno.EROFS:
            return (
                f"the cache at {self.root} is read-only: remove {directory} where it is "
                "writable, or point PYLOCK_CACHE_DIR at another cache"
            )
        return (
            f"{directory} is another user's, or in a directory this user may not change: "
            f"remove it as its owner (or make the cache writable to every user who shares "
            "it), or point PYLOCK_CACHE_DIR at a cache of your own"
        )

    def _intact(self, sha256: str) -> bool:
        """Whether the archive stored under ``sha256`` is there and has that sha256."""
        archive = _archive_in(self.archive_dir(sha256))
        try:
            return archive is not None and sha256_file(archive) == sha256
        except FileNotFoundError:
            return False

    def evict_locked(self, sha256: str) -> bool:
        """:meth:`evict` for a caller that already holds :meth:`gate`.

        Raises :class:`OSError` when this user may not remove it (another user's archive
        in a shared cache, say): that is no archive in use, to be left for a later prune.
        """
        directory = self.archive_dir(sha256)
        if not directory.exists():
            return False
        try:
            self._discard(directory)
        except FileNotFoundError:
            return False
        except OSError:
            # Windows will not move a file another process has open; drop the archive
            # alone if that works, else leave it for a later prune.
            archive = _archive_in(directory)
            if archive is None:
                if not os.path.lexists(directory):
                    return False
                raise  # a directory this user may neither move nor list
            try:
                archive.unlink()
            except OSError as error:
                if getattr(error, "winerror", None) == _ERROR_SHARING_VIOLATION:
                    return False
                raise
        return True

    def _discard(self, directory: Path) -> None:
        """Move ``directory`` out of the way, then delete it (best effort).

        Renaming first makes the removal atomic for readers, even if deleting is slow.
        """
        graveyard = self.new_tmp_path("evicted", "")
        rename(directory, graveyard)
        with contextlib.suppress(OSError):
            remove_tree(graveyard)

    def clear_partials(self, sha256: str) -> None:
        """Delete partial downloads of this archive; call only while holding :meth:`gate`."""
        with contextlib.suppress(OSError):
            for stale in self.tmp_dir.glob(f"{sha256}.*"):
                remove_tree(stale)

    # -- housekeeping ----------------------------------------------------------------

    def verify(self, on_progress: Callable[[int], None] | None = None) -> CacheVerifyReport:
        """Re-hash every archive and evict those that no longer match (unless held)."""
        ok: list[CacheEntry] = []
        corrupt: list[CorruptEntry] = []
        for entry in self.list():
            try:
                actual = sha256_file(entry.path, on_progress)
            except FileNotFoundError:
                continue  # pruned by another process meanwhile
            if actual == entry.sha256:
                ok.append(entry)
                continue
            # Checked again under the gate: another process may have replaced the copy
            # hashed here with a good one meanwhile (a sync that found it corrupt too).
            refusal = None
            try:
                evicted = self._try_evict(entry.sha256, unless_intact=True) != "kept"
            except OSError as error:
                evicted, refusal = False, Refusal.of(entry, error)
            if not evicted and self._intact(entry.sha256):
                ok.append(entry)
                continue
            corrupt.append(
                CorruptEntry(entry=entry, actual=actual, evicted=evicted, refusal=refusal)
            )
        return CacheVerifyReport(ok=tuple(ok), corrupt=tuple(corrupt))

    def prune(
        self,
        *,
        max_size: int | None = None,
        unused_for: float | None = None,
        keep: Collection[str] | None = None,
        now: float | None = None,
    ) -> PruneReport:
        """Evict archives whose sha256 is not in ``keep`` (the archives some locks name),
        then those unused for ``unused_for`` seconds, then the least recently used ones
        until the cache holds at most ``max_size`` bytes. Held archives stay.

        With no limit, only debris of killed runs (in ``tmp/``) is removed. A cache that
        is not there has nothing to prune (its parent may be read-only: nothing is made).
        """
        if not os.path.lexists(self.root):
            return PruneReport()
        self.require_writable("prune")
        now = time.time() if now is None else now
        removed: list[CacheEntry] = []
        held: list[CacheEntry] = []
        refused: list[Refusal] = []
        remaining = sorted(map(self._not_ahead_of(now), self.list()), key=lambda e: e.last_used)
        for unwanted in (
            (lambda entry: keep is not None and entry.sha256 not in keep),
            (lambda entry: unused_for is not None and now - entry.last_used > unused_for),
        ):
            # One pass each: `remaining.remove` per eviction made 10,000 archives take 30 s.
            kept_now: list[CacheEntry] = []
            for entry in remaining:
                if not unwanted(entry):
                    kept_now.append(entry)
                else:
                    self._evict_into(entry, removed, held, refused)
            remaining = kept_now
        if max_size is not None:
            # What stays takes room: held archives, and those this user may not remove.
            total = sum(e.size for e in remaining) + sum(e.size for e in held)
            total += sum(refusal.entry.size for refusal in refused)
            for entry in list(remaining):
                if total <= max_size:
                    break
                eviction = self._evict_into(entry, removed, held, refused)
                if eviction != "kept":
                    total -= entry.size
        leftovers = self._clean_tmp()
        self._clean_debris()
        self._clean_locks()
        return PruneReport(
            removed=tuple(removed), held=tuple(held), refused=tuple(refused), leftovers=leftovers
        )

    def clean(self) -> PruneReport:
        """Remove every archive that no process holds, the metadata and abandoned partial work."""
        if not os.path.lexists(self.root):
            return PruneReport()
        self.require_writable("clean")
        removed: list[CacheEntry] = []
        held: list[CacheEntry] = []
        refused: list[Refusal] = []
        for entry in self.list():
            self._evict_into(entry, removed, held, refused)
        from pylock.index.metadata import MetadataStore

        MetadataStore(self.metadata_dir).clear()
        leftovers = self._clean_tmp()
        self._clean_debris()
        self._clean_locks()
        return PruneReport(
            removed=tuple(removed), held=tuple(held), refused=tuple(refused), leftovers=leftovers
        )

    def _not_ahead_of(self, now: float) -> Callable[[CacheEntry], CacheEntry]:
        """An entry as of ``now``: one whose use is stamped later was used now. Within
        :data:`~pylock.fsutil.CLOCK_SKEW` that is another host's now (a shared cache), and
        the stamp stays: this clock may be the one behind. Further ahead it is a stamp from
        before a clock was set back, and is stamped now: left, it would outlive every
        ``--unused-for`` and every recently used archive until that date."""

        def clamped(entry: CacheEntry) -> CacheEntry:
            if entry.last_used <= now:
                return entry
            if entry.last_used - now > CLOCK_SKEW:
                self.touch(entry.sha256, when=now)
            return attrs.evolve(entry, last_used=now)

        return clamped

    def size(self) -> int:
        """Total bytes of cached archives."""
        return sum(entry.size for entry in self.list())

    def _try_evict(self, sha256: str, *, unless_intact: bool = False) -> _Eviction:
        """Evict the archive unless its gate or a hold is taken (or, with
        ``unless_intact``, its content has its sha256): whether this process removed it,
        another had already, or it stays. Raises :class:`OSError` when this user may not
        remove it or take its gate (a read-only cache, another user's archive)."""
        gate = self.gate(sha256)
        if not _acquire_briefly(gate):
            return "kept"  # being downloaded or opened right now
        try:
            if self.is_held(sha256) or (unless_intact and self._intact(sha256)):
                return "kept"
            removed = self.evict_locked(sha256)
            if _archive_in(self.archive_dir(sha256)) is not None:
                return "kept"  # Windows refuses to remove a file another process has open
            # Gone, not removed: another clean or prune got there first, and counts it.
            return "removed" if removed else "gone"
        finally:
            gate.release()

    def _evict_into(
        self,
        entry: CacheEntry,
        removed: MutableSequence[CacheEntry],
        held: MutableSequence[CacheEntry],
        refused: MutableSequence[Refusal],
    ) -> _Eviction:
        """:meth:`_try_evict` for ``prune`` and ``clean``, which count what it did."""
        try:
            eviction = self._try_evict(entry.sha256)
        except OSError as error:
            refused.append(Refusal.of(entry, error))
            return "kept"
        if eviction == "removed":
            removed.append(entry)
        elif eviction == "kept":
            held.append(entry)
        return eviction

    def _clean_debris(self) -> None:
        """Remove archive directories that lost their archive (and so are not listed)."""
        try:
            directories = list(self.archives_dir.iterdir())
        except OSError:
            return
        for directory in directories:
            if is_sha256(directory.name) and _archive_in(directory) is None:
                with contextlib.suppress(OSError):  # another user's, say: not ours to say
                    self._try_evict(directory.name)

    def _clean_locks(self) -> None:
        """Remove the gates and holds directories of archives no longer cached: one of
        each for every archive ever fetched otherwise, in a cache used for months."""
        try:
            keys = {name.removesuffix(".lock") for name in os.listdir(self.locks_dir)}
        except OSError:
            return
        with contextlib.suppress(OSError):
            keys.update(os.listdir(self.locks_dir / "holds"))
        for sha256 in sorted(keys):
            if is_sha256(sha256) and _archive_in(self.archive_dir(sha256)) is None:
                with contextlib.suppress(OSError):  # another user's, say: left alone
                    self._remove_gate(sha256)

    def _remove_gate(self, sha256: str) -> None:
        """Remove the archive's gate and holds unless it is cached, being downloaded, or
        held (an install that streams its download holds it before the gate is free)."""
        gate = self.gate(sha256)
        if not gate.try_acquire():
            return
        try:
            # Checked under the gate, which storing the archive and a gated hold take.
            if _archive_in(self.archive_dir(sha256)) is not None or self.is_held(sha256):
                return
            # Removed while held: a process waiting for it then finds the file gone and
            # locks a fresh one (see FileLock). Windows removes no file that is open, ours
            # included: there it goes once released, unless another process has it open.
            with contextlib.suppress(OSError):
                os.unlink(gate.path)
        finally:
            gate.release()
        if os.name == "nt":
            os.unlink(gate.path)

    def _clean_tmp(self) -> int:
        """Remove what killed runs left in ``tmp/``; how many bytes that was."""
        try:
            items = list(self.tmp_dir.iterdir())
        except OSError:
            return 0
        now = time.time()
        freed = 0
        for item in items:
            own = _OWN_TMP_NAME.fullmatch(item.name)
            if own is None:
                # Not a name pylock gives: someone else's, in a directory that PYLOCK_CACHE_DIR
                # (set to $HOME or /, say) made look like a cache. Never pylock's to delete.
                continue
            key = own["key"]
            if is_sha256(key) and item.name.endswith(".sidecar"):
                # Written without the gate (a sync's file digests, in milliseconds): only
                # one a killed run left is old.
                with contextlib.suppress(OSError):
                    # (Far in the future, too: a shared cache's clocks may disagree. Losing a
                    # live one costs a later sync the hashing it would have saved.)
                    if abs(now - item.stat().st_mtime) > _STALE_PROBE_SECONDS:
                        freed += _removed_size(item)
                continue
            if is_sha256(key):
                # Partial work on a known archive is live exactly while its gate is held.
                gate = self.gate(key)
                try:
                    if not gate.try_acquire():
                        continue
                except OSError:
                    continue  # a gate that cannot be taken: the work may be live
                try:
                    freed += _removed_size(item)
                finally:
                    gate.release()
                continue
            if key == _UNKNOWN:
                removed = self._remove_unknown(item)
                if removed is not None:
                    freed += removed
                    continue
            if key == "probe":
                # A writability probe lives for two system calls: one a minute old (or
                # stamped far ahead, before the clock was set back) is a killed run's.
                with contextlib.suppress(OSError):
                    if is_stale(item.stat().st_mtime, now, _STALE_PROBE_SECONDS):
                        freed += _removed_size(item)
                continue
            if key != "evicted":
                try:
                    age = now - item.stat().st_mtime
                except OSError:
                    continue
                if age < _STALE_TMP_SECONDS:
                    continue
            freed += _removed_size(item)
        self._clean_lock_probes(now)
        return freed

    def _remove_unknown(self, item: Path) -> int | None:
        """Remove ``tmp/unknown.TOKEN.part`` unless its download is live (its guard is held,
        see :meth:`unknown_download`): the bytes freed. ``None`` for one with no guard (a
        pylock before guards made it), which its age decides."""
        guard_path = self._unknown_guard(item.name.split(".")[1])
        if not os.path.lexists(guard_path):
            return None
        guard = FileLock(guard_path)
        try:
            if not guard.try_acquire():
                return 0
        except OSError:
            return 0  # a guard that cannot be taken: the download may be live
        try:
            freed = _removed_size(item)
        finally:
            guard.release()
        with contextlib.suppress(OSError):
            os.unlink(guard_path)
        return freed

    def _clean_lock_probes(self, now: float) -> None:
        """Remove the writability probes a killed run left in ``locks/`` (see
        :meth:`_write_error`), and the guards of its downloads (:meth:`unknown_download`)."""
        try:
            items = [
                p for p in self.locks_dir.iterdir() if p.name.startswith(("probe.", "unknown."))
            ]
        except OSError:
            return
        for item in items:
            if item.name.startswith(_UNKNOWN):
                # A killed download's guard whose file went already (see _remove_unknown).
                guard = FileLock(item)
                with contextlib.suppress(OSError):
                    if guard.try_acquire():
                        try:
                            item.unlink()
                        finally:
                            guard.release()
                continue
            with contextlib.suppress(OSError):
                if item.name.endswith(".tmp") and is_stale(
                    item.stat().st_mtime, now, _STALE_PROBE_SECONDS
                ):
                    item.unlink()


#: How often a hold makes its directory again when a prune removed it meanwhile.
_HOLD_ATTEMPTS = 5

#: The name of a hold's marker (:meth:`Cache.hold`): ``<pid>-<12 hex>.lock``.
_MARKER = re.compile(r"[0-9]+-[0-9a-f]{12}\.lock")

#: How often a run (a sync's install, a mirror's copy or push) fetches an archive again
#: that a concurrent prune or clean removed before it was held, or another sync evicted
#: as corrupt while it was held, before it gives up.
HOLD_TRIES = 3


def vanished(error: BaseException | None, archive: Path | None) -> bool:
    """Whether ``error`` says that the held ``archive`` itself is missing: a sync that found
    it corrupt evicted it (an eviction ignores holds), and it is to be fetched again.

    Any other failure (a missing destination, a permission refused) is the run's own.
    """
    return (
        archive is not None
        and isinstance(error, FileNotFoundError)
        and error.filename is not None
        and os.fspath(error.filename) == os.fspath(archive)
    )


def fetching_again(filename: str, *, offline: bool) -> str:
    """What a run says (``-v``) of an archive that left the cache meanwhile (see
    :data:`HOLD_TRIES`) and that it fetches again (``offline``: cannot).

    >>> fetching_again("x.tar.gz", offline=True)
    'x.tar.gz was removed from the cache meanwhile; offline, it cannot be fetched again'
    """
    again = "offline, it cannot be fetched again" if offline else "fetching it again"
    return f"{filename} was removed from the cache meanwhile; {again}"


def _clear_non_dir(path: Path) -> bool:
    """Remove what stands at ``path`` where a holds directory goes, unless it is a real
    directory: a link, a file or a FIFO, which pylock never makes there and never follows
    (a link to a user's directory made a ``clean`` by that user remove the files in it).
    Whether something was there to remove; raises :class:`FileNotFoundError` if nothing is.
    """
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        return False
    with contextlib.suppress(OSError):
        os.unlink(path)
    return True


def _archive_in(directory: Path) -> Path | None:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    for name in names:
        if not name.startswith("."):
            path = directory / name
            if path.is_file():
                return path
    return None


def _check_sha256(sha256: str) -> None:
    # A malformed digest would otherwise become a path outside the cache.
    if not is_sha256(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")


def _removed_size(item: Path) -> int:
    """Remove ``item`` (a file or a directory) from ``tmp/``; the bytes its files held, or
    0 if it could not be removed (another user's, say)."""
    size = 0
    try:
        if item.is_dir() and not item.is_symlink():
            for top, _, names in os.walk(item):
                for name in names:
                    with contextlib.suppress(OSError):
                        size += os.lstat(os.path.join(top, name)).st_size
        else:
            size = item.lstat().st_size
        remove_tree(item)
    except OSError:
        return 0
    return size


def prune_as_asked(
    cache: Cache,
    *,
    max_size: str | None = None,
    unused_for_days: float | None = None,
    keep: Collection[str] | None = None,
) -> PruneReport:
    """``pylock cache prune``: check the command line's limits, then prune by them.

    ``max_size`` is a size such as ``500M`` or ``2G`` (``--max-size``);
    ``unused_for_days`` a number of days >= 0 (not NaN); ``keep`` the sha256 of the
    archives that ``--keep-lock`` locks name.
    """
    from pylock.errors import UsageError
    from pylock.settings import parse_size

    limit = parse_size(max_size) if max_size is not None else None
    unused_for = None
    if unused_for_days is not None:
        if not unused_for_days >= 0:
            raise UsageError(
                f"--unused-for must be a number of days >= 0, not {unused_for_days}",
                hint="for example `pylock cache prune --unused-for 30`",
            )
        unused_for = unused_for_days * 86400
    return cache.prune(max_size=limit, unused_for=unused_for, keep=keep)
