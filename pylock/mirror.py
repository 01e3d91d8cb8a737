"""``pylock mirror``: the locked archives as a static tree in the upstream layout.

A mirror tree can be served by any static web server, S3 bucket or Artifactory, or read
as ``file://``. Each canonical URL maps to one path under the tree:

- ``https://github.com/astral-sh/python-build-standalone/releases/download/<tag>/<file>``
  -> ``<tag>/<file>`` (``%2B`` decoded to a literal ``+``);
- ``https://downloads.python.org/pypy/<file>`` -> ``pypy/<file>``;
- ``https://github.com/oracle/graalpython/releases/download/<tag>/<file>``
  -> ``graalpy/<tag>/<file>``;
- any other ``scheme://host[:port]/<path>`` -> ``other/<host>[_<port>]/<path>``,

so that ``--mirror BASE`` (pylock and uv), ``--pypy-mirror BASE/pypy/`` (pylock and uv),
``--graalpy-mirror BASE/graalpy/`` (uv) or ``--rewrite
https://github.com/oracle/graalpython/releases/download/=BASE/graalpy/`` (pylock) find
every file. Every directory holding archives gets a ``SHA256SUMS`` (``<hex>  <name>``,
sorted, literal ``+``), and the top holds ``download-metadata.json`` in uv's format, with
the canonical URLs, for ``uv python install --python-downloads-json-url``.

Files come from the archive cache (hard-linked where possible, else copied), downloading
misses first. Every file is placed atomically and re-hashed before it gets its final
name; a re-run skips files that are present with the right hash, repairs the rest, and
removes the temporary files of runs that were killed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import time
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import attrs

from pylock.archive.policy import aliased_on_windows
from pylock.bounded import json_loads
from pylock.errors import HashMismatchError, MirrorError, printable
from pylock.fsutil import (
    CLOCK_SKEW,
    FileLock,
    RefusedFileError,
    atomic_write_text,
    current_umask,
    read_own_file,
    replace,
    require_sha256,
    sha256_file,
    undo_0600,
)
from pylock.lockfile import Artifact, LockedPython, LockFile
from pylock.platforms import Platform
from pylock.sync.cache import HOLD_TRIES, fetching_again, vanished
from pylock.urls import (
    GRAALPY_DOWNLOAD_PREFIX,
    PBS_DOWNLOAD_PREFIX,
    PYPY_DOWNLOAD_PREFIX,
    redact_url,
    url_problem,
)
from pylock.versions import Implementation, Variant

if TYPE_CHECKING:
    from pylock.net.options import FetchOptions
    from pylock.net.registry import RegistryClient, RemoteCache
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache

PBS_PREFIX = PBS_DOWNLOAD_PREFIX
PYPY_PREFIX = PYPY_DOWNLOAD_PREFIX
GRAALPY_PREFIX = GRAALPY_DOWNLOAD_PREFIX

#: Upstream download prefixes and the directory each maps to in a mirror ("" = the top).
UPSTREAM_DIRS: tuple[tuple[str, str], ...] = (
    (PBS_PREFIX, ""),
    (PYPY_PREFIX, "pypy"),
    (GRAALPY_PREFIX, "graalpy"),
)
_UPSTREAM_IMPLEMENTATIONS: tuple[tuple[str, Implementation], ...] = (
    (PBS_PREFIX, Implementation.CPYTHON),
    (PYPY_PREFIX, Implementation.PYPY),
    (GRAALPY_PREFIX, Implementation.GRAALPY),
)
#: Where archives from any other host go.
OTHER_DIR = "other"
SUMS_NAME = "SHA256SUMS"
UV_JSON_NAME = "download-metadata.json"
#: The lock file at the top of a mirror tree while a run merges into its own files.
LOCK_NAME = ".pylock-mirror.lock"
#: The most bytes of an existing ``SHA256SUMS`` or ``download-metadata.json`` read (uv's
#: own JSON, every build upstream has, is a few MiB).
OWN_FILE_MAX_BYTES = 64 * 2**20
#: How long a temporary file in the tree must have been left alone before a run removes
#: it. A younger one may be another run's, about to be renamed into place; placing a file
#: takes a link or a copy (which keeps the file's times fresh), then one hash.
STALE_TEMP_SECONDS = 10 * 60

# The temporary names of the tree's files: ``.NAME.<12 hex>.tmp`` from ``_place`` and from
# ``fsutil.atomic_write_bytes``, and the ``tempfile.mkstemp`` names that the latter gave the
# mirror's own files before.
_ARCHIVE_TEMP = re.compile(r"\..+\.[0-9a-f]{12}\.tmp", re.DOTALL)
_OWN_FILE_TEMP = re.compile(
    rf"\.(?:{re.escape(SUMS_NAME)}|{re.escape(UV_JSON_NAME)})\.[A-Za-z0-9_]{{6,32}}\.tmp"
)


@attrs.frozen(kw_only=True)
class MirrorEntry:
    """One archive to place in the mirror."""

    #: The interpreter it belongs to (the first one, if several share the archive).
    python: LockedPython
    #: The locked artifact.
    artifact: Artifact
    #: Where it goes, relative to the mirror's top.
    path: PurePosixPath


@attrs.frozen(kw_only=True)
class MirrorReport:
    """What a mirror run did, by relative path."""

    #: Archives that were not in the mirror before.
    added: tuple[str, ...] = ()
    #: Archives that were present with the right hash and left alone.
    unchanged: tuple[str, ...] = ()
    #: Archives that were present with the wrong content and were replaced.
    repaired: tuple[str, ...] = ()
    #: Interpreters left out of ``download-metadata.json`` (with the reason).
    not_in_uv_json: tuple[str, ...] = ()
    #: The implementations with upstream archives in the tree: this run's, and those that
    #: earlier runs listed in ``download-metadata.json`` (which is merged across runs).
    implementations: frozenset[Implementation] = frozenset()
    #: Whether some archives came from hosts other than the known upstreams.
    other_hosts: bool = False
    #: For those: each URL prefix and the folder under the top that mirrors it.
    other_rewrites: tuple[tuple[str, str], ...] = ()
    #: Folders under ``other/`` that earlier runs wrote and this run's rewrites do not name:
    #: the tree keeps no record of the URL prefix each stands for.
    earlier_other: tuple[str, ...] = ()

    @property
    def archives(self) -> int:
        """How many archives the mirror holds for this lock."""
        return len(self.added) + len(self.unchanged) + len(self.repaired)


# -- the layout (pure) ---------------------------------------------------------------------


def _has_control(text: str) -> bool:
    # A line break in a file name splits its SHA256SUMS line in two (str.splitlines breaks
    # at U+2028 and U+2029 as well); other control characters garble a listing.
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text)


#: Characters no file name may hold on Windows (or, for ``/``, anywhere).
_NOT_IN_NAMES = frozenset('\\:*?"<>|')

#: What to do when a file of the tree cannot be written.
_WRITE_HINT = "check that this user may write OUTDIR and that its disk has room, then run again"
#: ... or a directory stands where a file goes.
_IN_THE_WAY = "move that directory out of the mirror tree, or give another OUTDIR"
#: ... or a lock's URL cannot become a path in the tree.
_URL_HINT = (
    "a mirror keeps each archive under its URL's path: correct the `url` in pythons.toml "
    "and run `pylock lock`"
)


def _safe_parts(text: str, url: str) -> list[str]:
    parts = unquote(text).split("/")
    for part in parts:
        if _has_control(part):
            raise MirrorError(
                f"cannot mirror {url!r}: its path has a control character in {part!r}",
                hint=_URL_HINT,
            )
        if part in ("", ".", "..") or part != part.strip() or _NOT_IN_NAMES & set(part):
            raise MirrorError(
                f"cannot mirror {url!r}: its path has an unsafe or empty segment {part!r}",
                hint=_URL_HINT,
            )
        if aliased_on_windows(part):
            # A mirror is a tree to copy anywhere: a share, a Windows runner's disk.
            raise MirrorError(
                f"cannot mirror {url!r}: {part!r} in its path names a device or another "
                "file on Windows",
                hint=_URL_HINT,
            )
    return parts


def mirror_path(url: str) -> PurePosixPath:
    """Where the archive at canonical ``url`` lives in a mirror tree.

    >>> str(mirror_path(PBS_PREFIX + "20251014/cpython-3.13.9%2B20251014-x.tar.gz"))
    '20251014/cpython-3.13.9+20251014-x.tar.gz'
    >>> str(mirror_path("https://downloads.python.org/pypy/pypy3.11-v7.3.20-linux64.tar.bz2"))
    'pypy/pypy3.11-v7.3.20-linux64.tar.bz2'
    >>> str(mirror_path("https://artifacts.example:8443/py/cpython-corp.tar.gz"))
    'other/artifacts.example_8443/py/cpython-corp.tar.gz'
    """
    path: PurePosixPath
    for prefix, folder in UPSTREAM_DIRS:
        if url.startswith(prefix):
            # Not urlsplit: it would read a "//" after the prefix as a host name.
            rest = url[len(prefix) :].partition("#")[0].partition("?")[0]
            parts = _safe_parts(rest, url)
            path = PurePosixPath(folder, *parts) if folder else PurePosixPath(*parts)
            break
    else:
        problem = url_problem(url)
        if problem is not None:
            raise MirrorError(f"cannot mirror {url!r}: {problem}", hint=_URL_HINT)
        split = urlsplit(url)
        host = (split.hostname or "localhost").lower().replace(":", "_")
        if split.port is not None:
            host = f"{host}_{split.port}"
        parts = _safe_parts(split.path.lstrip("/"), url)
        path = PurePosixPath(OTHER_DIR, *_safe_parts(host, url), *parts)
    # The top level holds the mirror's own files; an archive never belongs there.
    if len(path.parts) < 2 or path.name in (SUMS_NAME, UV_JSON_NAME):
        raise MirrorError(
            f"cannot mirror {url!r}: it does not look like an upstream archive URL",
            hint=_URL_HINT,
        )
    return path


def plan_mirror(lock: LockFile, platforms: Collection[str] | None) -> list[MirrorEntry]:
    """The archives of ``lock`` for ``platforms`` (``None``: all), one entry per file.

    Raise :class:`MirrorError` when two different archives would land on one path.
    """
    by_path: dict[PurePosixPath, MirrorEntry] = {}
    # Also by the case-folded path: on macOS and Windows, A.tar.gz and a.tar.gz are one
    # file, which can hold both only if their bytes are the same.
    folded: dict[str, MirrorEntry] = {}
    for python in lock.pythons:
        for artifact in python.artifacts:
            if platforms is not None and artifact.platform not in platforms:
                continue
            path = mirror_path(artifact.url)
            entry = MirrorEntry(python=python, artifact=artifact, path=path)
            earlier = folded.setdefault(str(path).casefold(), entry)
            by_path.setdefault(path, entry)
            if earlier.artifact.sha256 != artifact.sha256:
                where = (
                    f"at the same URL {artifact.url}"
                    if earlier.artifact.url == artifact.url
                    else f"at {earlier.artifact.url} and {artifact.url}, which both map to "
                    + (
                        f"{path} in the mirror"
                        if earlier.path == path
                        else f"{earlier.path} and {path}, one file where case does not count"
                    )
                )
                raise MirrorError(
                    f"{earlier.python.name} and {python.name} lock different archives "
                    f"(sha256 {earlier.artifact.sha256} and {artifact.sha256}) {where}",
                    hint="re-create the lock with `pylock lock --upgrade`",
                )
    return [by_path[p] for p in sorted(by_path)]


def sha256sums_text(sums: Mapping[str, str]) -> str:
    """A ``SHA256SUMS`` body as upstream writes it: sorted by name, two spaces.

    >>> sha256sums_text({"b+1.tar.gz": "22", "a.tar.gz": "11"})
    '11  a.tar.gz\\n22  b+1.tar.gz\\n'
    """
    return "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))


def parse_sha256sums(text: str) -> dict[str, str]:
    """Read a ``SHA256SUMS`` body (also the ``*name`` binary-mode form); skip junk lines."""
    from pylock.lockfile import is_sha256

    result: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.strip().partition(" ")
        name = name.strip().removeprefix("*")
        if sep and is_sha256(digest) and name and "/" not in name:
            result[name] = digest
    return result


def uv_key_and_entry(python: LockedPython, artifact: Artifact) -> tuple[str, dict[str, Any]] | None:
    """The uv downloads-JSON key and entry for one artifact, or ``None`` if uv cannot use it.

    uv only rewrites URLs under the upstream prefixes with ``--mirror``, ``--pypy-mirror``
    and ``--graalpy-mirror``, so direct-URL artifacts are left out, as are versions uv's
    key cannot express.
    """
    from packaging.version import InvalidVersion, Version

    if not any(artifact.url.startswith(prefix) for prefix, _ in UPSTREAM_DIRS):
        return None
    try:
        platform = Platform.parse(artifact.platform)
        version = Version(python.version)
    except (ValueError, InvalidVersion):
        return None
    if platform.os == "emscripten" or len(version.release) != 3:
        return None
    os_name, family, arch_variant, libc = platform.uv_fields
    major, minor, patch = version.release
    pre = "".join(str(p) for p in version.pre) if version.pre else ""
    arch = f"{family}_{arch_variant}" if arch_variant else family
    variant = None if python.variant is Variant.DEFAULT else str(python.variant)
    suffix = f"+{variant}" if variant else ""
    name = str(python.implementation)
    key = f"{name}-{major}.{minor}.{patch}{pre}{suffix}-{os_name}-{arch}-{libc}"
    entry = {
        "name": name,
        "arch": {"family": family, "variant": arch_variant},
        "os": os_name,
        "libc": libc,
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": pre,
        # The tree is published: a secret a hand-edited lock's URL carries (`?token=`) is
        # not, as in install records. uv's mirror answers by path, which it keeps.
        "url": redact_url(artifact.url),
        "sha256": artifact.sha256,
        "variant": variant,
        "build": python.build,
    }
    return key, entry


def uv_downloads_json(
    entries: Iterable[MirrorEntry],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """uv's downloads JSON for ``entries``, and the interpreters it had to leave out.

    uv's key has no room for the flavor or build, so when two locked interpreters share
    a key (say 3.13.9 ``full`` and ``install_only``), the first by name wins.
    """
    document: dict[str, dict[str, Any]] = {}
    left_out: list[str] = []
    for entry in sorted(entries, key=lambda e: (e.python.name, e.artifact.platform)):
        made = uv_key_and_entry(entry.python, entry.artifact)
        label = f"{entry.python.name} ({entry.artifact.platform})"
        if made is None:
            left_out.append(f"{label}: not an upstream archive uv can mirror")
            continue
        key, value = made
        if key in document and document[key]["sha256"] != value["sha256"]:
            left_out.append(f"{label}: uv key {key} is already taken by another archive")
            continue
        document[key] = value
    return document, left_out


# -- writing the tree ----------------------------------------------------------------------


def _is_intact(path: Path, artifact: Artifact) -> bool | None:
    """``True`` if ``path`` holds the artifact, ``False`` if it holds something else,
    ``None`` if there is no file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        blocker = next(p for p in path.parents if os.path.lexists(p))
        raise MirrorError(
            f"cannot write {path}: {blocker} is a file, not a directory",
            hint="move that file out of the mirror tree, or give another OUTDIR",
        ) from None
    if not path.is_file():
        return False
    if artifact.size is not None and size != artifact.size:
        return False
    return sha256_file(path) == artifact.sha256


def _is_temp_name(name: str) -> bool:
    return bool(_ARCHIVE_TEMP.fullmatch(name) or _OWN_FILE_TEMP.fullmatch(name))


def _remove_stale_temps(folder: Path, reporter: Reporter, *, now: float, max_age: float) -> None:
    """Remove the temporary files that interrupted runs left in ``folder``.

    A run killed by SIGTERM (``timeout``, a cancelled CI job, ``docker stop``) cleans up
    nothing. Only regular files with pylock's temporary names go, and only those neither
    modified nor changed for ``max_age`` seconds: a younger one may be a live run's. The
    change time counts because a hard link from the cache keeps the cached file's mtime.
    A time far ahead of the clock makes no file young (see :func:`~pylock.fsutil.is_stale`):
    a run killed before the clock was set back would otherwise stay until it caught up.
    """
    try:
        with os.scandir(folder) as found:
            candidates = [entry for entry in found if _is_temp_name(entry.name)]
    except OSError:
        return  # not written yet, or unreadable: the writes that follow will say so
    for entry in candidates:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        young = any(-CLOCK_SKEW <= now - t < max_age for t in (info.st_mtime, info.st_ctime))
        if not stat.S_ISREG(info.st_mode) or young:
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            reporter.warn(
                f"cannot remove {entry.path}, left by an interrupted run: {exc.strerror or exc}"
            )
            continue
        reporter.detail(f"removed {entry.path}, left by an interrupted run")


def _readable_as_the_umask_says(path: Path) -> bool:
    """Whether ``path`` can be read by everyone a new file of the mirror would let read."""
    if os.name == "nt":
        return True
    wanted = 0o444 & ~current_umask()
    return stat.S_IMODE(os.stat(path).st_mode) & wanted == wanted


def _place(source: Path, target: Path, artifact: Artifact) -> None:
    """Put ``source`` at ``target`` atomically: link (or copy) to a temporary name, hash, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # The name _ARCHIVE_TEMP matches: a later run removes the file if this one is killed.
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            if not _readable_as_the_umask_says(source):
                # A cache made under umask 077: a link would carry its 0600 into a tree
                # made to be served (and a chmod of the link would change the cache's file).
                raise PermissionError("the cached file is more private than the tree")
            os.link(source, tmp)
        except OSError:
            # Another filesystem, or one without hard links (FAT, some network shares).
            shutil.copyfile(source, tmp)
        actual = sha256_file(tmp)
        if actual != artifact.sha256:
            raise HashMismatchError(url=str(source), expected=artifact.sha256, actual=actual)
        if target.is_dir() and not target.is_symlink():
            raise MirrorError(f"cannot write {target}: a directory is in the way", hint=_IN_THE_WAY)
        replace(tmp, target)  # patiently: a scanner may hold it (Windows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # rename(2) does nothing when both names are links to one file (another run placed
    # the same cached archive meanwhile): the temporary name would stay.
    tmp.unlink(missing_ok=True)


def _fetch_into_cache(
    entries: list[MirrorEntry],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> dict[str, Path]:
    from pylock.sync.archives import Wanted, ensure_archives

    # Hits are not re-hashed here: every file is hashed anyway as it is placed.
    wanted = [Wanted.from_artifact(e.artifact, python=e.python) for e in entries]
    # Each archive on its own: one that fails does not stop the others, and all that
    # failed are named at once (a mirror run is fixed and run again once, not per file).
    # Offline, one error names every archive missing, as `fetch`'s does.
    return ensure_archives(wanted, cache, options, reporter, each=True)


def _read_own(path: Path) -> bytes | None:
    """The bytes of the mirror's own file at ``path``, or ``None`` if there is none.

    Read bounded and without blocking, regular files only: a pipe in its place would wait
    for a writer for ever. Raises :class:`RefusedFileError` for something else in its
    place, :class:`OSError` for a file that cannot be read.
    """
    try:
        return read_own_file(path, OWN_FILE_MAX_BYTES)
    except FileNotFoundError:
        return None


def _write_own(path: Path, text: str) -> None:
    """Write the mirror's own file ``path`` atomically, naming ``path`` in any error."""
    if path.is_dir() and not path.is_symlink():
        raise MirrorError(f"cannot write {path}: a directory is in the way", hint=_IN_THE_WAY)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        # Not the temporary file the error names: the file the user will look for.
        raise MirrorError(f"cannot write {path}: {exc.strerror or exc}", hint=_WRITE_HINT) from None


#: Errors that say the tree's file system takes no locks (NFS without lockd).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
#: Why a tree cannot be locked and is written without: it cannot be written at all (a
#: write it needs says so), or its file system takes no locks.
_UNLOCKABLE = {errno.EACCES, errno.EPERM, errno.EROFS, *_NO_LOCKS}


@contextlib.contextmanager
def _merging(outdir: Path) -> Iterator[None]:
    """Hold the tree's lock while this run reads, merges and writes its own files.

    Each run adds its entries to what ``SHA256SUMS`` and ``download-metadata.json`` hold:
    two runs into one OUTDIR (other locks, other platforms) that both read before either
    writes keep only one run's entries. The lock file goes once the files are written,
    so that it is never part of the tree that gets served or copied. A tree that cannot
    be written is not locked: no run changes it, and a write this one needs says why.
    """
    path = outdir / LOCK_NAME
    lock = FileLock(path)
    try:
        lock.acquire()
    except OSError as exc:
        if exc.errno not in _UNLOCKABLE:
            raise MirrorError(
                f"cannot lock {path}: {exc.strerror or exc}",
                hint="remove that file if no other `pylock mirror` writes this tree",
            ) from None
        if exc.errno in _NO_LOCKS:
            # A file system that takes no locks (NFS without lockd) is written as before,
            # and the file made for the lock goes. (One this user may not open is
            # another run's, live: left alone.)
            with contextlib.suppress(OSError):
                path.unlink()
        yield
        return
    try:
        yield
    finally:
        # Removed while held: a run waiting for the lock then finds the file gone and
        # locks a fresh one (see FileLock). Windows removes no file that is open, ours
        # included: there it goes once released, unless another run has it open then.
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()
        if os.name == "nt":
            with contextlib.suppress(OSError):
                path.unlink()


def _write_sums(outdir: Path, entries: list[MirrorEntry]) -> None:
    by_dir: dict[PurePosixPath, dict[str, str]] = {}
    for entry in entries:
        by_dir.setdefault(entry.path.parent, {})[entry.path.name] = entry.artifact.sha256
    for folder, ours in by_dir.items():
        path = outdir.joinpath(folder, SUMS_NAME)
        try:
            data = _read_own(path)
            known = parse_sha256sums(data.decode("utf-8")) if data is not None else {}
        except (OSError, UnicodeDecodeError):
            data, known = None, {}
        # Keep what earlier runs (other locks, other platforms) put here and still exists.
        sums = {n: d for n, d in known.items() if path.with_name(n).is_file()}
        sums.update(ours)
        if data is None or known != sums:
            _write_own(path, sha256sums_text(sums))
        else:
            undo_0600(path)


def _write_uv_json(
    outdir: Path, entries: list[MirrorEntry], reporter: Reporter
) -> tuple[dict[str, Any], list[str]]:
    """Merge ``entries`` into the tree's uv JSON; the merged document and what was left out."""
    document, left_out = uv_downloads_json(entries)
    path = outdir / UV_JSON_NAME
    if path.is_dir() and not path.is_symlink():
        raise MirrorError(f"cannot write {path}: a directory is in the way", hint=_IN_THE_WAY)
    merged: dict[str, Any] = {}
    existing: Any = {}
    data: bytes | None = None
    try:
        data = _read_own(path)
        if data is not None:
            existing = json_loads(data)
    except RefusedFileError as exc:
        reporter.warn(f"{path}: {exc}; writing it afresh")
    except (OSError, ValueError):
        reporter.warn(f"{path} is not valid JSON; writing it afresh")
    if isinstance(existing, dict):
        for key, value in existing.items():
            url = value.get("url") if isinstance(value, dict) else None
            # Keep entries of earlier runs whose archive is still in the tree.
            try:
                present = isinstance(url, str) and outdir.joinpath(mirror_path(url)).is_file()
            except MirrorError as exc:
                reporter.detail(f"{UV_JSON_NAME}: dropped {key}: {exc}")
                present = False
            if present:
                merged[key] = value
    merged.update(document)
    text = json.dumps(dict(sorted(merged.items())), indent=2) + "\n"
    if data != text.encode("utf-8"):
        _write_own(path, text)
    else:
        undo_0600(path)
    return merged, left_out


def build_mirror(
    lock: LockFile,
    outdir: Path,
    *,
    platforms: Collection[str] | None,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> MirrorReport:
    """Write (or bring up to date) a mirror of ``lock``'s archives for ``platforms`` in ``outdir``.

    ``platforms=None`` mirrors every locked platform. Archives missing from the cache
    are downloaded through it (honouring ``options``' rewrites and ``--offline``).
    """
    entries = plan_mirror(lock, platforms)
    if not entries:
        covered = sorted({a.platform for p in lock.pythons for a in p.artifacts})
        wanted = ", ".join(sorted(platforms)) if platforms is not None else "any platform"
        raise MirrorError(
            f"nothing to mirror: the lock has no archives for {wanted}",
            hint=f"the lock covers {', '.join(covered)}; use --platform KEY or --all-platforms"
            if covered
            else "add interpreters to pythons.toml and run `pylock lock`",
        )
    created = not os.path.lexists(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        what = (
            f"{outdir} is a symlink to {os.readlink(outdir)}, which does not exist"
            if os.path.islink(outdir) and not os.path.exists(outdir)
            else f"{outdir} is not a directory"
        )
        raise MirrorError(what, hint="give a directory (or a new path) as OUTDIR") from None
    except OSError as exc:
        raise MirrorError(
            f"cannot create {outdir}: {exc.strerror}",
            hint="check that its parent is a directory this user may write, or give another OUTDIR",
        ) from None
    try:
        return _fill_mirror(outdir, entries, cache, options, reporter)
    except BaseException:
        if created:
            _remove_empty_dirs(outdir)  # a first run that failed leaves no empty mirror
        raise


def _remove_empty_dirs(top: Path) -> None:
    """Remove ``top`` and the directories under it that hold nothing (no file anywhere)."""
    for folder, _, _ in sorted(os.walk(top), key=lambda item: len(item[0]), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _fill_mirror(
    outdir: Path,
    entries: list[MirrorEntry],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> MirrorReport:
    now = time.time()
    for folder in sorted({outdir, *(outdir.joinpath(e.path.parent) for e in entries)}):
        _remove_stale_temps(folder, reporter, now=now, max_age=STALE_TEMP_SECONDS)

    added: list[str] = []
    unchanged: list[str] = []
    repaired: list[str] = []
    todo: list[MirrorEntry] = []
    for entry in entries:
        state = _is_intact(outdir.joinpath(entry.path), entry.artifact)
        if state is True:
            unchanged.append(str(entry.path))
            reporter.detail(f"{entry.path}: present and verified")
        else:
            if state is False:
                reporter.warn(f"{entry.path}: wrong content in the mirror; replacing it")
                repaired.append(str(entry.path))
            else:
                added.append(str(entry.path))
            todo.append(entry)

    if todo:
        _copy_from_cache(outdir, todo, cache, options, reporter)

    with _merging(outdir):
        _write_sums(outdir, entries)
        uv_json, left_out = _write_uv_json(outdir, entries, reporter)
    for reason in left_out:
        reporter.detail(f"{UV_JSON_NAME}: left out {reason}")
    urls = [e.artifact.url for e in entries]
    # The printed commands are for the whole tree, so they cover earlier runs' entries too.
    urls += [v["url"] for v in uv_json.values() if isinstance(v, dict) and "url" in v]
    others = [e for e in entries if e.path.parts[0] == OTHER_DIR]
    rewrites = sorted({r for r in map(_other_rewrite, others) if r is not None})
    named = {"/".join(e.path.parts[:2]) for e in others}
    try:
        folders = sorted(
            d.name
            for d in (outdir / OTHER_DIR).iterdir()
            if d.is_dir() and not d.name.startswith(".")
        )
    except OSError:
        folders = []
    return MirrorReport(
        added=tuple(added),
        unchanged=tuple(unchanged),
        repaired=tuple(repaired),
        not_in_uv_json=tuple(left_out),
        implementations=frozenset(
            implementation
            for url in urls
            for prefix, implementation in _UPSTREAM_IMPLEMENTATIONS
            if isinstance(url, str) and url.startswith(prefix)
        ),
        other_hosts=bool(others),
        other_rewrites=tuple(rewrites),
        earlier_other=tuple(f for f in folders if f"{OTHER_DIR}/{f}" not in named),
    )


def _other_rewrite(entry: MirrorEntry) -> tuple[str, str] | None:
    """The URL prefix of a direct-URL archive and the folder that mirrors it, if printable."""
    split = urlsplit(entry.artifact.url)  # mirror_path has checked that it parses
    if "@" in split.netloc:
        return None  # never print credentials
    return f"{split.scheme}://{split.netloc}/", "/".join(entry.path.parts[:2])


@contextlib.contextmanager
def _held(
    entry: MirrorEntry, cache: Cache, options: FetchOptions, reporter: Reporter
) -> Iterator[Path]:
    """The entry's cached archive, held against `cache prune` and `clean` until the block
    ends; fetched again if one of them removed it since it was fetched."""
    with cache.hold(entry.artifact.sha256) as path:
        if path is None:
            # The hold is registered first: the copy fetched now is held too.
            reporter.detail(fetching_again(entry.artifact.filename, offline=options.offline))
            path = _fetch_into_cache([entry], cache, options, reporter)[entry.artifact.sha256]
        yield path


def _too_often_removed(entry: MirrorEntry, cache: Cache) -> MirrorError:
    return MirrorError(
        f"{entry.artifact.filename} was removed from the cache at {cache.root} "
        f"{HOLD_TRIES} times before it could be used",
        hint="let `pylock cache clean` or `pylock cache prune` finish, then run again",
    )


def _copy_from_cache(
    outdir: Path,
    todo: list[MirrorEntry],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> None:
    _fetch_into_cache(todo, cache, options, reporter)
    for entry in todo:
        target = outdir.joinpath(entry.path)
        sha256 = entry.artifact.sha256
        mismatches = 0
        for _ in range(HOLD_TRIES):
            source: Path | None = None
            try:
                # Held from its lookup to its placement, so that a concurrent `pylock cache
                # prune` or `clean` leaves it alone meanwhile.
                with _held(entry, cache, options, reporter) as source:
                    _place(source, target, entry.artifact)
            except HashMismatchError:
                mismatches += 1
                if mismatches == 2:
                    raise
                # A cache file that rotted since it was verified: evict it, fetch it again.
                reporter.warn(f"cached {entry.artifact.filename} is corrupt; downloading it again")
                try:
                    cache.evict(sha256, unless_intact=True)  # not a good copy another run put
                except OSError as exc:
                    raise MirrorError(
                        f"cached {entry.artifact.filename} is corrupt, and the cache at "
                        f"{cache.root} cannot be changed: {exc.strerror or exc}",
                        hint=cache.unremovable_hint(sha256, exc),
                    ) from None
                _fetch_into_cache([entry], cache, options, reporter)
                continue
            except OSError as exc:
                if vanished(exc, source):
                    reporter.detail(
                        fetching_again(entry.artifact.filename, offline=options.offline)
                    )
                    continue
                raise MirrorError(
                    f"cannot write {target}: {exc.strerror or exc}", hint=_WRITE_HINT
                ) from None
            break
        else:
            raise _too_often_removed(entry, cache)
        reporter.detail(f"{entry.path}: written")


@attrs.frozen(kw_only=True)
class SeedReport:
    """What ``pylock mirror --to oci://...`` did, by archive file name."""

    #: Blobs uploaded now, and blobs the registry already had (their tags are refreshed).
    pushed: tuple[str, ...] = ()
    present: tuple[str, ...] = ()


def seed_registry(
    lock: LockFile,
    remote: RemoteCache,
    *,
    platforms: Collection[str] | None,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> SeedReport:
    """Fill the remote cache with ``lock``'s archives for ``platforms`` (``None``: all).

    Archives come through the local cache (downloaded from the origin on a miss) and are
    verified there; each is pushed as a blob (skipped when the registry has it) and a
    tagged manifest. Unlike a sync's write-back, a failure here is an error.
    """
    import asyncio

    from pylock.net.registry import artifact_manifest
    from pylock.sync.archives import remote_tag

    entries = plan_mirror(lock, platforms)
    if not entries:
        wanted = ", ".join(sorted(platforms)) if platforms is not None else "any platform"
        raise MirrorError(
            f"nothing to push: the lock has no archives for {wanted}",
            hint="check --platform, or run `pylock lock`",
        )
    # From the origin only: what the registry has is no seed for itself.
    options = attrs.evolve(options, remote=None)
    _fetch_into_cache(entries, cache, options, reporter)

    async def push_one(client: RegistryClient, entry: MirrorEntry, path: Path) -> bool:
        """Push one archive and its tag; whether the blob was uploaded (not there yet)."""
        artifact = entry.artifact
        require_sha256(path, artifact.sha256)
        uploaded = False
        if not await client.has_blob(artifact.sha256, size=path.stat().st_size):
            await client.push_blob(path, artifact.sha256)
            uploaded = True
        tag = remote_tag(entry.python, artifact)
        manifest = artifact_manifest(
            sha256=artifact.sha256,
            size=path.stat().st_size,
            filename=artifact.filename,
            lock_name=entry.python.name,
            origin_url=artifact.url,
        )
        await client.push_manifest(tag, manifest)
        reporter.detail(f"{artifact.filename}: in {remote.ref} as {tag}")
        return uploaded

    async def push_all() -> SeedReport:
        pushed: list[str] = []
        present: list[str] = []
        async with remote.client(reporter.detail) as client:
            for entry in entries:
                for _ in range(HOLD_TRIES):
                    path: Path | None = None
                    try:
                        # Held while it is read, so that a concurrent `pylock cache prune`
                        # or `clean` leaves it alone meanwhile.
                        with _held(entry, cache, options, reporter) as path:
                            uploaded = await push_one(client, entry, path)
                    except OSError as exc:
                        if not vanished(exc, path):
                            raise
                        reporter.detail(
                            fetching_again(entry.artifact.filename, offline=options.offline)
                        )
                        continue
                    break
                else:
                    raise _too_often_removed(entry, cache)
                (pushed if uploaded else present).append(entry.artifact.filename)
        return SeedReport(pushed=tuple(pushed), present=tuple(present))

    return asyncio.run(push_all())


def usage_lines(base: str, report: MirrorReport) -> list[str]:
    """How to point pylock and uv at a mirror served at ``base``, for what it holds."""
    base = base.rstrip("/")
    pylock_flags: list[str] = []
    uv_flags: list[str] = []

    def flag(flags: list[str], name: str, value: str) -> None:
        # Quoted where a shell would read it otherwise (`[::1]` is a glob to zsh).
        flags.append(f"{name} {shlex.quote(value)}")

    if Implementation.CPYTHON in report.implementations:
        flag(pylock_flags, "--mirror", f"{base}/")
        flag(uv_flags, "--mirror", f"{base}/")
    if Implementation.PYPY in report.implementations:
        flag(pylock_flags, "--pypy-mirror", f"{base}/pypy/")
        flag(uv_flags, "--pypy-mirror", f"{base}/pypy/")
    if Implementation.GRAALPY in report.implementations:
        flag(pylock_flags, "--rewrite", f"{GRAALPY_PREFIX}={base}/graalpy/")
        flag(uv_flags, "--graalpy-mirror", f"{base}/graalpy/")
    for source, folder in report.other_rewrites:
        flag(pylock_flags, "--rewrite", f"{source}={base}/{folder}/")
    lines = [f"  pylock sync {' '.join(pylock_flags)}"] if pylock_flags else []
    if report.other_hosts and not report.other_rewrites:
        lines.append(
            f"  archives from other hosts are under {OTHER_DIR}/<host>[_<port>]/: add "
            f"--rewrite https://<host>/={base}/{OTHER_DIR}/<host>/ for each"
        )
    if report.earlier_other:
        # Names found in the tree, which anyone who can write it may have put there.
        shown = ", ".join(f"{OTHER_DIR}/{printable(f)}/" for f in report.earlier_other)
        lines.append(
            f"  earlier runs put archives of other hosts under {shown}: add the --rewrite "
            f"those runs printed (https://<host>/={base}/{OTHER_DIR}/<folder>/) for each"
        )
    if uv_flags:
        lines.append(
            f"  uv python install {' '.join(uv_flags)} "
            f"--python-downloads-json-url {shlex.quote(f'{base}/{UV_JSON_NAME}')}"
        )
    return lines
