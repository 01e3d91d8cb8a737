"""Atomic interpreter installs under ``DIR/NAME``, their records, prune and verify.

Layout of an install directory::

    DIR/NAME/                      the interpreter, archive top directory stripped
    DIR/NAME/.pylock/install.json  what was installed (artifact, lock entry); written last
    DIR/NAME/.pylock/RECORD        every file and symlink: path, sha256 or link, size, x
    DIR/.pylock-locks/NAME.lock    cross-process lock for installing or removing NAME
    DIR/.pylock-tmp-NAME-*         an extraction in progress (or left by a crash)
    DIR/.pylock-old-NAME-*         the previous tree during an upgrade's two renames
    DIR/.pylock-trash-NAME-*       a tree being deleted

An install extracts into ``.pylock-tmp-NAME-*``, writes the record, and renames the
tree into place; an upgrade first renames the old tree to ``.pylock-old-NAME-*``, and
moves it to ``.pylock-trash-NAME-*`` once the new one is in place. So ``DIR/NAME`` is
always a complete old or a complete new tree, or (between the two renames only)
absent. Every sync (:func:`clean_leftovers`), and the next install of NAME, repair a
crash under NAME's lock: leftover temporary and trash trees are deleted and, if
``DIR/NAME`` is missing, the old tree is renamed back (the new one may be incomplete,
and re-installing it from the cache is cheap).

The record itself (``install.json`` and ``RECORD``) is read and written by
:mod:`pylock.sync.records`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

from pylock.errors import InstallError, PylockError, UnreadableRecordError, some_names
from pylock.fastpath import STATE_FILE
from pylock.fsutil import (
    FileLock,
    LockTimeout,
    MountedInsideError,
    is_link,
    is_real_dir,
    make_dir,
    mounts_inside,
    not_world_writable,
    on_modeless_file_system,
    out_of_space_hint,
    remove_stale_temporaries,
    require_sha256,
    walk_tree,
)
from pylock.ownfiles import is_a_copy
from pylock.progress import elide
from pylock.sync import records
from pylock.sync.records import (
    INSTALL_JSON,
    META_DIR,
    RECORD_VERSION,
    InstallState,
    installed_state,
    is_current,
    read_install_json,
    read_record,
)

if TYPE_CHECKING:
    from threading import Event

    from pylock.archive.codecs import Readable
    from pylock.archive.writer import RecordEntry
    from pylock.lockfile import Artifact, LockedPython
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache


class TreeFixup(Protocol):
    """The fix-ups of one tree (see :mod:`pylock.sync.fixups`)."""

    def written(self, rel: str) -> None:
        """The extraction wrote the file ``rel`` (``/``-separated); on its writer thread."""

    def apply(self) -> Iterable[str]:
        """Patch the complete tree; return every relative path changed, added or removed."""


#: ``fixup(tmp_tree, final_path, warn)``: the fix-ups of a tree to be installed at
#: ``final_path``, which warn about the files they have to leave alone.
Fixup = Callable[[Path, Path, Callable[[str], None]], TreeFixup]

LOCKS_DIR = ".pylock-locks"
TMP_PREFIX = ".pylock-tmp-"
OLD_PREFIX = ".pylock-old-"
TRASH_PREFIX = ".pylock-trash-"


@attrs.frozen(kw_only=True)
class VerifyReport:
    """What :func:`verify` (``pylock verify``) found: an install tree against its record."""

    #: The interpreter's name.
    name: str
    #: Recorded files whose contents, type, mode or link target changed.
    modified: tuple[str, ...] = ()
    #: Recorded files that are gone.
    missing: tuple[str, ...] = ()
    #: Files not in the record, except bytecode caches of recorded sources (see ``bytecode``).
    extra: tuple[str, ...] = ()
    #: Bytecode caches (``__pycache__/*.pyc``) not in the record that are not what their
    #: recorded source compiles to with the tree's interpreter, or could not be checked.
    bytecode: tuple[str, ...] = ()
    #: Caches left unchecked because the tree differs from its record (it fails anyway).
    unchecked_bytecode: int = 0
    #: ``(path, what)`` for setuid or setgid files, and files or directories anyone may
    #: write to (extraction creates neither).
    permissions: tuple[tuple[str, str], ...] = ()
    #: How many recorded files and symlinks were checked.
    checked: int = 0
    #: The tree is pylock's (it has ``.pylock/``), but its ``install.json`` is missing or
    #: damaged, or its ``RECORD`` cannot be read: what is wrong with it. Nothing could be
    #: checked, which is a finding, not a pass.
    damaged_record: str = ""
    #: The record is a newer pylock's (its ``record-version`` is later than this one reads):
    #: not damage that ``sync --reinstall`` should undo, but a reason to upgrade pylock.
    newer_record: bool = False

    @property
    def ok(self) -> bool:
        """Whether the tree is exactly what was installed: nothing changed, gone or added."""
        return not (
            self.modified
            or self.missing
            or self.extra
            or self.bytecode
            or self.permissions
            or self.damaged_record
        )

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Every difference as ``(kind, path)``, in the order ``pylock verify`` lists them."""
        found = [("record", self.damaged_record)] if self.damaged_record else []
        found += [("modified", p) for p in self.modified]
        found += [("missing", p) for p in self.missing]
        found += [("extra", p) for p in self.extra]
        found += [("bytecode", p) for p in self.bytecode]
        found += [("permissions", f"{p} ({what})") for p, what in self.permissions]
        return found


def verify_installed(
    dest_root: Path, names: Sequence[str] = (), reporter: Reporter | None = None
) -> Iterator[VerifyReport]:
    """Verify ``names`` (default: everything pylock installed in ``dest_root``).

    Nothing installed, or a name that pylock did not install, is an error before any
    tree is hashed; the trees are then hashed one by one as the reports are consumed,
    each under its interpreter's lock (:func:`verify`).
    """
    from pylock.fsutil import display_path

    # Trees whose record was damaged are checked too: breaking one JSON file must not
    # hide a tampered tree from `verify`.
    chosen = list(names) or pylock_trees(dest_root)
    if not chosen:
        raise PylockError(
            f"no interpreters installed by pylock in {display_path(dest_root)}",
            hint="run `pylock sync` first, or pass --into DIR",
        )
    missing = [n for n in chosen if not _made_by_pylock(dest_root, n)]
    if missing:
        raise PylockError(
            f"not installed by pylock in {display_path(dest_root)}: {', '.join(missing)}"
            + installed_there(dest_root, missing),
            hint="check the name; if it is locked, run `pylock sync` first",
        )
    return (verify(dest_root, name, reporter) for name in chosen)


def installed_names(dest_root: Path) -> list[str]:
    """Names of the interpreters pylock installed in ``dest_root``, sorted."""
    return _names(dest_root, lambda name: read_install_json(str(dest_root / name)) is not None)


def has_meta_dir(tree: Path) -> bool:
    """Whether ``tree`` has pylock's ``.pylock/`` directory (a real one, not a link)."""
    meta = tree / META_DIR
    return meta.is_dir() and not is_link(meta)


def pylock_trees(dest_root: Path) -> list[str]:
    """Names of the trees pylock made in ``dest_root``, sorted: those it installed, and
    those whose install record is damaged (they still have ``.pylock/``)."""
    return _names(dest_root, lambda name: _made_by_pylock(dest_root, name))


def installed_there(dest_root: Path, asked: Sequence[str]) -> str:
    """`` (installed there: a, b)``, the trees pylock made in ``dest_root``, for a message
    about names (``asked``) that are not among them (empty when there are none)."""
    there = pylock_trees(dest_root)
    return f" (installed there: {some_names(there, asked)})" if there else ""


def _made_by_pylock(dest_root: Path, name: str) -> bool:
    tree = dest_root / name
    if is_link(tree):
        return False  # an alias (`current -> app`): the tree it names is listed as itself
    data = read_install_json(str(tree))
    if data is not None and is_a_copy(data, name):
        return False  # a copy of another tree: prune leaves it, so verify and sync do too
    # A record that was read sits in a real `.pylock/`; a damaged one leaves that too.
    return has_meta_dir(tree)


def _names(dest_root: Path, wanted: Callable[[str], bool]) -> list[str]:
    """The entries of ``dest_root`` that are ``wanted``, sorted: names pylock could have
    installed under (not its own dot-names, and none a lock could not hold, whose control
    characters would reach the terminal)."""
    from pylock.lockfile import is_valid_name

    try:
        entries = os.listdir(dest_root)
    except OSError:
        return []
    return sorted(entry for entry in entries if is_valid_name(entry) and wanted(entry))


# -- locking and recovery ------------------------------------------------------------------


def _name_filelock(dest_root: Path, name: str) -> FileLock:
    """The cross-process lock file of ``DIR/NAME`` (not yet acquired)."""
    locks = dest_root / LOCKS_DIR
    if is_link(locks):
        # Its lock files would be made wherever it points (or fail as "File exists").
        raise InstallError(
            f"{locks} is a link (a symlink or junction); pylock keeps its lock files in a "
            "directory there",
            hint="remove the link (pylock makes the directory again)",
        )
    if not locks.is_dir():
        make_dir(locks)  # under umask 0 too: not others' to fill (a group's, though)
    return FileLock(locks / f"{name}.lock")


@contextmanager
def _name_lock(
    dest_root: Path, name: str, reporter: Reporter | None, stop: Event | None = None
) -> Iterator[None]:
    """Hold the cross-process lock for installing or removing ``DIR/NAME``.

    The lock is per interpreter, not per directory, so that one sync can install
    several interpreters in parallel while two syncs into one directory still never
    work on the same interpreter at once. Once ``stop`` is set, a wait for it ends
    with :class:`LockTimeout`.
    """
    lock = _name_filelock(dest_root, name)
    _wait_for(lock, dest_root / name, reporter, stop)
    try:
        yield
    finally:
        lock.release()


def _wait_for(
    lock: FileLock, tree: Path, reporter: Reporter | None, stop: Event | None = None
) -> None:
    """Take ``lock``; after a second of waiting, say that another process works on ``tree``."""
    try:
        lock.acquire(timeout=1, stop=stop)
    except LockTimeout:
        if stop is not None and stop.is_set():
            raise
        if reporter is not None:
            reporter.event(f"waiting for another pylock process working on {tree}")
        lock.acquire(stop=stop)


def _leftovers(dest_root: Path, name: str) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {TMP_PREFIX: [], OLD_PREFIX: [], TRASH_PREFIX: []}
    try:
        entries = os.listdir(dest_root)
    except OSError:
        return found
    for entry in entries:
        for prefix, paths in found.items():
            if entry.startswith(prefix) and entry[len(prefix) :].rpartition("-")[0] == name:
                paths.append(dest_root / entry)
    return found


def _recover(dest_root: Path, name: str, reporter: Reporter | None) -> list[Path]:
    """Finish what a killed pylock left of NAME (the caller holds NAME's lock).

    Returns the leftover trees it removed.
    """
    from pylock.fsutil import remove_tree, rename

    found = _leftovers(dest_root, name)
    final = dest_root / name
    olds = [p for p in found[OLD_PREFIX] if read_install_json(str(p)) is not None]
    if olds and not os.path.lexists(final):
        # Killed between an upgrade's two renames: the old tree is complete, put it back.
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        rename(newest, final, fresh=False)
        found[OLD_PREFIX].remove(newest)
        if reporter is not None:
            reporter.warn(f"restored {final} after an interrupted upgrade")
    removed = []
    for paths in found.values():
        for path in paths:
            try:
                remove_tree(path)
            except OSError as exc:
                # Junk never fails an install: on Windows a tree whose python.exe still
                # runs can be renamed aside but not deleted. A later run retries.
                if reporter is not None:
                    reporter.warn(cannot_remove_yet(path, exc))
                continue
            removed.append(path)
    return removed


#: When a temporary file of the fast path's state is a killed sync's, not a live one's.
_STALE_STATE_SECONDS = 60


def clean_leftovers(dest_root: Path, reporter: Reporter | None = None) -> list[Path]:
    """Remove the trees killed pylock runs left in ``dest_root``; return them.

    ``.pylock-tmp-NAME-*``, ``.pylock-old-NAME-*`` and ``.pylock-trash-NAME-*`` are
    created and removed only under NAME's cross-process lock, and the OS releases a
    lock when its holder dies, even by ``kill -9``. So a leftover whose lock is free
    was left by a dead process and goes (an interrupted upgrade's old tree is put back
    first), while one whose lock another process holds is its work in progress and
    stays: this never waits for, nor disturbs, a concurrent sync.
    """
    from pylock.lockfile import is_valid_name

    names = set()
    try:
        with os.scandir(dest_root) as entries:
            for entry in entries:
                for prefix in (TMP_PREFIX, OLD_PREFIX, TRASH_PREFIX):
                    if entry.name.startswith(prefix):
                        names.add(entry.name[len(prefix) :].rpartition("-")[0])
    except OSError:
        return []
    # The fast path's state, half written by a killed sync.
    remove_stale_temporaries(dest_root / STATE_FILE, _STALE_STATE_SECONDS)
    removed: list[Path] = []
    for name in sorted(n for n in names if is_valid_name(n)):
        try:
            with _name_lock_if_free(dest_root, name) as free:
                if free:
                    removed += _recover(dest_root, name, reporter)
        except OSError as exc:
            # Junk must never fail a sync (a file in use on Windows); the next one retries.
            if reporter is not None:
                reporter.warn(f"could not remove pylock's leftovers of {name}: {exc}")
    if reporter is not None:
        for path in removed:
            reporter.detail(f"removed {path.name}, left by an interrupted pylock run")
    return removed


@contextmanager
def _name_lock_if_free(dest_root: Path, name: str) -> Iterator[bool]:
    """Hold NAME's lock if no other process does (yields ``True``), else yield ``False``."""
    lock = _name_filelock(dest_root, name)
    if not lock.try_acquire():
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _token() -> str:
    # What secrets.token_hex does, without importing secrets (base64, hmac) at start-up.
    return os.urandom(4).hex()


# -- installing ----------------------------------------------------------------------------


def install(
    archive: Path,
    *,
    dest_root: Path,
    python: LockedPython,
    artifact: Artifact,
    platform: Platform,
    fixup: Fixup | None = None,
    reporter: Reporter,
    if_needed: bool = False,
    source: Readable | None = None,
    cache: Cache | None = None,
    rehash: bool = False,
    stop: Event | None = None,
) -> bool:
    """Install ``archive`` as ``DIR/NAME`` atomically; whether it did (see ``if_needed``).

    ``source`` is read instead of ``archive`` when given: an archive still downloading
    (see :mod:`pylock.net.stream`), whose reader verifies the download before its end.
    ``cache``, the archive cache that holds (or is storing) the archive, keeps the
    digests of the files it extracts, so that the next install of it does not hash
    them again. With ``rehash`` (``sync --reinstall``) every file is hashed anyway and
    the digests the cache keeps are replaced: a repair trusts nothing it need not.

    ``fixup(tmp_tree, final_path, warn)`` gives the fix-ups of the tree: told of each
    file as it is written, they patch the tree before it is renamed into place and
    return the relative paths they changed, added or removed, which the record takes
    in; they report files they leave alone through ``warn``.
    With ``if_needed``, an install that became current while waiting for the lock
    (another process did it) is left alone, and ``False`` returned. A wait for another
    process's install of ``DIR/NAME`` ends when ``stop`` is set (the sync was interrupted
    while this ran on a worker thread), with :class:`~pylock.fsutil.LockTimeout`. A
    hostile archive raises :class:`~pylock.errors.ArchiveError`, a corrupt one
    :class:`~pylock.errors.HashMismatchError`, and a file-system failure (a full disk)
    :class:`InstallError`; in every case the previous install is left as it was.
    """
    from pylock.lockfile import is_valid_name

    name = python.name
    if not is_valid_name(name):
        raise InstallError(f"invalid interpreter name {name!r}")
    dest_root = dest_root.absolute()
    final = dest_root / name
    try:
        make_dir(dest_root)
        with _name_lock(dest_root, name, reporter, stop):
            _recover(dest_root, name, reporter)
            state = installed_state(dest_root, name)
            if if_needed and state and is_current(state, artifact, fixups=fixup is not None):
                return False
            if state is not None and state.record_version > RECORD_VERSION and reporter:
                reporter.warn(
                    f"{name}: replacing a tree a newer pylock installed (its record is "
                    f"version {state.record_version}; this pylock writes {RECORD_VERSION}): "
                    "upgrade pylock where this install directory is shared"
                )
            _install_locked(
                archive,
                final,
                python,
                artifact,
                platform,
                fixup,
                reporter,
                source,
                cache,
                rehash,
            )
    except OSError as exc:
        import errno

        where = f" ({_where(str(exc.filename), dest_root, name)})" if exc.filename else ""
        hints = {
            errno.ENOSPC: out_of_space_hint(dest_root, "run `pylock sync` again"),
            # Only an archive's own names get that long: the install path leaves it no room.
            errno.ENAMETOOLONG: "a path in the archive is too long for this file system "
            "under this install directory: try a shorter --into path, and check that the "
            "lock names the archive you meant",
        }
        code = exc.errno or 0
        # Windows without long paths says ERROR_FILENAME_EXCED_RANGE (206), or "path not
        # found" (3) for a path past MAX_PATH: both are ENOENT/EINVAL to Python.
        longest = max(len(str(exc.filename or "")), len(str(exc.filename2 or "")))
        winerror = getattr(exc, "winerror", None)
        if winerror in (3, 206) and longest >= 248:
            code = errno.ENAMETOOLONG
        hint = hints.get(code)
        if winerror in (5, 32) and os.path.isdir(dest_root / name):
            # Windows renames no folder that a running python.exe (a virtualenv's, an
            # IDE's) has files open in, nor one a virus scanner still reads (for longer
            # than fsutil.rename waits): the upgrade's move of the old tree.
            hint = (
                f"close what runs {dest_root / name} (python.exe, virtualenvs made from it, "
                "IDEs), or let an antivirus scan of it end, then run `pylock sync` again"
            )
        raise InstallError(
            f"cannot install {name} into {dest_root}: {exc.strerror or exc}{where}",
            hint=hint,
        ) from exc
    return True


#: The most columns of a path in a message: an archive's deep or long names keep their
#: two ends.
_MOST = 200


def _where(filename: str, dest_root: Path, name: str) -> str:
    """Where an OS error struck, for its message: a file of the tree being made is named
    as the archive's (or the fix-ups') file, not by the temporary directory's name.

    >>> _where("/d/.pylock-tmp-app-1a2b3c4d/lib/x.py", Path("/d"), "app")
    'writing lib/x.py of the new tree'
    >>> _where("/d/.pylock-locks/app.lock", Path("/d"), "app")
    '/d/.pylock-locks/app.lock'
    """
    parts = Path(filename).parts
    root = dest_root.parts
    if (
        len(parts) > len(root) + 1
        and parts[: len(root)] == root
        and parts[len(root)].startswith(f"{TMP_PREFIX}{name}-")
    ):
        return f"writing {elide('/'.join(parts[len(root) + 1 :]), _MOST)} of the new tree"
    return elide(filename, _MOST)


def _install_locked(
    archive: Path,
    final: Path,
    python: LockedPython,
    artifact: Artifact,
    platform: Platform,
    fixup: Fixup | None,
    reporter: Reporter,
    source: Readable | None,
    cache: Cache | None,
    rehash: bool,
) -> None:

    from pylock.fsutil import remove_tree_to_the_end

    dest_root, name = final.parent, final.name
    _check_replaceable(final)
    # Not tempfile.mkdtemp: its 0700 mode would travel with the rename, and an image's
    # non-root users could not run the interpreter. mkdir applies the umask instead.
    tmp = dest_root / f"{TMP_PREFIX}{name}-{_token()}"
    tmp.mkdir()
    # Under umask 0: nobody else may add files to an interpreter (verify reports it).
    not_world_writable(tmp)
    total = artifact.size if source is not None else archive.stat().st_size
    task = reporter.task(f"installing {name}", total=total)
    try:
        fixups = fixup(tmp, final, reporter.warn) if fixup is not None else None
        entries, layout = _extract(
            archive,
            tmp,
            python,
            artifact,
            task.advance,
            source,
            cache,
            rehash,
            on_file=fixups.written if fixups is not None else None,
        )
        if python.implementation == "cpython" and not platform.is_windows:
            _add_python_link(tmp, entries, python)
        _require_interpreter(tmp, python, platform, archive)
        fixed_up_for = None
        if fixups is not None:
            changed = list(fixups.apply())
            entries = records.rehash(tmp, entries, changed)
            # Only a tree whose files now name its path must be reinstalled once moved:
            # PyPy, GraalPy and Windows trees have nothing rewritten.
            fixed_up_for = str(final) if changed else None
        records.write_record(
            tmp, entries, python, artifact, layout, fixed_up_for, fixups=fixup is not None
        )
        left = _swap_in(tmp, final)
        if left is not None:
            reporter.warn(cannot_remove_yet(*left))
    finally:
        try:
            task.done("")
        finally:
            # Also after a second interrupt in task.done. Never let a failed clean-up hide
            # the error that caused it; recovery retries it.
            with contextlib.suppress(OSError):
                remove_tree_to_the_end(tmp)
    reporter.detail(f"installed {name} into {final} ({len(entries)} files)")


def _extract(
    archive: Path,
    tmp: Path,
    python: LockedPython,
    artifact: Artifact,
    on_progress: Callable[[int], None],
    source: Readable | None = None,
    cache: Cache | None = None,
    rehash: bool = False,
    *,
    on_file: Callable[[str], None] | None = None,
) -> tuple[list[RecordEntry], str]:
    from pylock.archive.extract import extract_archive
    from pylock.archive.layout import detect_layout, layout_for
    from pylock.errors import ArchiveError
    from pylock.versions import ArchiveFormat

    try:
        fmt = ArchiveFormat.from_filename(artifact.filename)
    except ValueError:
        try:
            fmt = ArchiveFormat.from_filename(archive.name)
        except ValueError as exc:
            raise ArchiveError(str(exc), archive=str(archive)) from None
    if python.implementation == "cpython" and python.build is None:
        try:
            layout = detect_layout(archive, fmt)  # a direct URL: trust what is inside
        except ArchiveError:
            if source is None:  # a cached archive, not a download under way: one that
                # rotted is a hash mismatch (evicted and fetched again), as in extraction
                require_sha256(archive, artifact.sha256)
            raise
    else:
        layout = layout_for(python.implementation, python.flavor)
    sidecar = records.digests_sidecar(layout)
    known = None
    if cache is not None and not rehash:
        data = cache.sidecar(artifact.sha256, sidecar)
        known = records.load_digests(data) if data is not None else None
    entries = extract_archive(
        archive,
        tmp,
        fmt=fmt,
        layout=layout,
        # A streamed download is hashed by the downloader, which fails the stream on a
        # mismatch before its end; hashing it twice would only cost time.
        expected_sha256=artifact.sha256 if source is None else None,
        on_progress=on_progress,
        source=source,
        known_digests=known,
        on_file=on_file,
    )
    # A member under it (a file, a link, or only a directory: `python/.pylock/`, or
    # `.PYLOCK/` where names are case-insensitive).
    reserved = next((e.path for e in entries if e.path.split("/", 1)[0] == META_DIR), None)
    if reserved is not None or os.path.lexists(tmp / META_DIR):
        raise ArchiveError(
            f"the archive has its own {META_DIR}/, which pylock reserves for its record",
            archive=str(archive),
            member=reserved or f"{META_DIR}/",
        )
    if cache is not None and known is None:
        # The archive is verified by now (a streamed one by its download).
        cache.put_sidecar(artifact.sha256, sidecar, records.dump_digests(entries))
    return entries, str(layout)


def _require_interpreter(
    tree: Path, python: LockedPython, platform: Platform, archive: Path
) -> None:
    """Refuse a tree with no interpreter where ``which``/``run`` look for one: an archive
    for another platform or variant (a free-threaded one without ``python3.13t``), which
    installed "successfully", and which ``verify`` called ok."""
    from pylock.errors import printable

    found = _executable_in(tree, python, platform)
    if not os.path.isfile(found):
        where = found.relative_to(tree).as_posix()
        raise InstallError(
            f"{printable(archive.name)} holds no {python.implementation} interpreter for "
            f"{platform.key} where pylock looks for one ({where})",
            hint=f"the lock names the wrong archive for {python.name}: check its URL (a "
            "`url` in pythons.toml, a downloads JSON, a hand edit), then run `pylock lock`",
        )


def _add_python_link(tmp: Path, entries: list[RecordEntry], python: LockedPython) -> None:
    """Older PBS archives (before 20240224) have ``bin/python3`` but no ``bin/python``."""
    from pylock.archive.writer import RecordEntry

    bin_dir = tmp / "bin"
    if bin_dir.is_symlink() or not bin_dir.is_dir() or os.path.lexists(bin_dir / "python"):
        return  # never through a symlinked bin/: the link would land where it points
    minor = ".".join(python.version.split(".")[:2])
    suffix = python.variant.pbs_abi_suffix
    if (bin_dir / "python3").is_symlink():
        target = os.readlink(bin_dir / "python3")
    elif (bin_dir / f"python{minor}{suffix}").exists():
        target = f"python{minor}{suffix}"
    elif (bin_dir / "python3").exists():
        target = "python3"
    else:
        return
    if "/" in target or "\\" in target:
        return
    try:
        os.symlink(target, bin_dir / "python")
    except OSError:
        return  # e.g. a Windows host without symlink rights, installing for Linux
    entries.append(RecordEntry(path="bin/python", sha256=None, size=0, link=target))


def _check_replaceable(final: Path) -> None:
    mounted = refuse_to_replace(final)
    if mounted is not None:
        raise mounted
    # A tree with pylock's .pylock/ is pylock's even when its record was damaged: sync
    # repairs it (it refused before, while verify, which and list said to run sync).
    if os.path.lexists(final) and not _made_by_pylock(final.parent, final.name):
        raise InstallError(
            f"{final} exists and was not installed by pylock; refusing to replace it",
            hint="move it away, or install into another directory with --into",
        )


def refuse_to_replace(final: Path) -> InstallError | None:
    """Why the tree ``final`` must not be replaced, if a file system is mounted at or in
    it (see :func:`mounted_error`). Asked when the sync is planned, before any download,
    and again just before the tree goes: a mount may come meanwhile."""
    if os.path.lexists(final) and not is_link(final):
        mounts = mounts_inside(final)
        if mounts:
            return mounted_error(final, mounts)
    return None


def mounted_error(tree: Path, mounts: Sequence[str], *, pruned: int = 0) -> InstallError:
    """The refusal to replace the interpreter ``tree`` (or, with ``pruned`` trees that are
    no longer locked, to remove it, the first of them) while a file system is mounted at it
    or in it: the tree goes (renamed aside, then deleted) and the mount with it, and its
    files (a Docker volume on site-packages) with the tree."""
    point = mounts[0]
    more = f" (and {len(mounts) - 1} more)" if len(mounts) > 1 else ""
    real = os.path.realpath(tree)
    if point in (str(tree), real):
        where = f"it is itself a mount point{more}"
    else:
        inside = os.path.relpath(point, real) if point.startswith(os.path.join(real, "")) else point
        where = f"{inside} in it is a mount point{more}"
    if pruned:
        doing = f"remove {tree.name} (no longer in the lock) from {tree.parent}"
    else:
        doing = f"replace {tree}"
    others = f"; {pruned - 1} more such trees are kept too" if pruned > 1 else ""
    keep = "; or keep it with --no-prune" if pruned else ""
    return InstallError(
        f"cannot {doing}: {where} (a volume or bind mount), whose files would be deleted "
        f"with the tree; nothing was changed{others}",
        hint=f"unmount {point}, or mount the volume outside the interpreter's tree (the "
        f"install directory itself may be one), then sync again{keep}",
    )


def cannot_remove_yet(path: Path, error: OSError) -> str:
    """The warning for a tree pylock made junk of and could not remove (a file in use on
    Windows, an immutable one, one another user owns, one a file system is mounted in):
    what, why, and what happens next."""
    if isinstance(error, MountedInsideError):
        # rm -r, the usual "by hand", would delete the mounted files too.
        return (
            f"left {path} in place: {error.mount} is mounted in it (a volume or bind mount), "
            "whose files deleting the tree would delete; unmount it, and the next sync "
            "removes the tree"
        )
    blocker = f" ({error.filename})" if error.filename and error.filename != str(path) else ""
    return (
        f"could not remove {path} yet: {error.strerror or error}{blocker}; the next sync "
        "tries again (if it keeps failing, remove it by hand)"
    )


def _swap_in(tmp: Path, final: Path) -> tuple[Path, OSError] | None:
    """Rename the new tree ``tmp`` into place as ``final``, keeping the old one until the
    new one is there; the old tree that could not be removed afterwards (it is junk now)
    and why, if any."""
    from pylock.fsutil import rename
    from pylock.interrupts import held

    # fsutil.rename: a virus scanner on Windows may hold a file it was just given.
    if not os.path.lexists(final):
        rename(tmp, final)
        return None
    _check_replaceable(final)
    token = _token()
    old = final.with_name(f"{OLD_PREFIX}{final.name}-{token}")
    # Ctrl-C and SIGTERM wait for the renames to be done: one just after the first left
    # no NAME at all, and one just after the second left the old tree under its
    # .pylock-old- name (attack). The removal of the old tree runs to its end anyway.
    with held():
        try:
            # Not waited for long: a running python.exe holds it (the hint below says so),
            # and Ctrl-C waits for this block.
            rename(final, old, fresh=False)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            return _replace(tmp, final, old, token)
    # overlayfs without redirect_dir (Docker's default) cannot rename a directory that
    # comes from a lower image layer: a sync in a later layer or a derived image. The old
    # tree is deleted in place, then the new one renamed in: not atomic (a crash in between
    # leaves NAME absent or partly deleted, and the next sync installs it again).
    remove_in_place(final)
    rename(tmp, final)
    return None


def _replace(tmp: Path, final: Path, old: Path, token: str) -> tuple[Path, OSError] | None:
    """:func:`_swap_in` once the old tree is renamed away as ``old``."""
    from pylock.fsutil import remove_tree, rename
    from pylock.interrupts import finish_through_interrupts

    try:
        rename(tmp, final)
    except BaseException:
        # Refused (or an interrupt where none is held): the old tree goes back, unless the
        # new one made it into place after all. A second Ctrl-C does not stop that half-way.
        def put_back() -> None:
            if not os.path.lexists(final):
                rename(old, final, fresh=False)

        finish_through_interrupts(put_back)
        raise
    # The new tree is in place: the old one is junk, which never fails an install. On
    # Windows a file still in use (or a scanner) can block its rename or deletion; the
    # next sync removes what is left (see _recover).
    trash = final.with_name(f"{TRASH_PREFIX}{final.name}-{token}")
    try:
        os.rename(old, trash)
    except OSError as exc:
        # Left under its .pylock-old- name, a tree with a record reads as an upgrade cut
        # short, which _recover puts back if NAME is ever missing (pruned, say): without
        # its record it is only junk, and is removed where it is.
        try:
            os.unlink(os.path.join(old, records.META_DIR, records.INSTALL_JSON))
        except FileNotFoundError:
            pass
        except OSError:
            return old, exc
        trash = old
    try:
        finish_through_interrupts(lambda: remove_tree(trash))
    except OSError as exc:
        return trash, exc
    return None


# -- prune, verify, executables ----------------------------------------------------------


def prune(
    dest_root: Path, keep: Collection[str], reporter: Reporter | None = None
) -> tuple[list[str], InstallError | None]:
    """Remove interpreters pylock installed whose names are not in ``keep``; return them,
    and why one could not be removed, if any: the names returned are gone all the same,
    and the sync that failed reports them.

    Only directories with a pylock install record are touched, plus pylock's own
    leftovers from interrupted runs. Anything else in ``dest_root`` stays. On Windows a
    tree that cannot be moved because it is in use (a running ``python.exe``) is kept,
    with a warning, for the next sync to remove: the installs that sync made stand.
    """
    from pylock.fsutil import remove_tree
    from pylock.lockfile import is_valid_name

    removed: list[str] = []
    mounted: list[tuple[Path, list[str]]] = []
    #: Trees that could not be removed, and why: the others are still pruned.
    refused: list[tuple[str, OSError]] = []
    try:
        entries = sorted(os.listdir(dest_root))
    except FileNotFoundError:
        return removed, None
    except OSError as exc:  # unreadable (its mode changed meanwhile), or not a directory
        return removed, InstallError(f"cannot prune {dest_root}: {exc.strerror or exc}")
    leftover_names = set()
    for entry in entries:
        for prefix in (TMP_PREFIX, OLD_PREFIX, TRASH_PREFIX):
            if entry.startswith(prefix):
                leftover_names.add(entry[len(prefix) :].rpartition("-")[0])
    try:
        for name in sorted(leftover_names):
            if name in keep:
                with _name_lock(dest_root, name, None):
                    _recover(dest_root, name, None)
            else:
                with _name_lock(dest_root, name, None):
                    for paths in _leftovers(dest_root, name).values():
                        for path in paths:
                            with contextlib.suppress(OSError):
                                remove_tree(path)  # junk: a later run retries
        for name in entries:
            if name.startswith(".") or name in keep or not is_valid_name(name):
                continue
            tree = dest_root / name
            if is_link(tree) or not tree.is_dir() or _same_as_kept(tree, name, keep):
                continue
            try:
                if _prune_one(dest_root, name, tree, mounted, reporter):
                    removed.append(name)
            except OSError as exc:
                refused.append((name, exc))  # the others are still pruned; the sync fails
    except OSError as exc:
        error = InstallError(f"cannot prune {dest_root}: {exc.strerror or exc}")
        error.__cause__ = exc
        return removed, error
    if refused:
        (first, why), rest = refused[0], [n for n, _ in refused[1:]]
        more = f" (and {some_names(rest)}, which could not be removed either)" if rest else ""
        error = InstallError(f"cannot prune {first} from {dest_root}: {why.strerror or why}{more}")
        error.__cause__ = why
        return removed, error
    if mounted:
        return removed, mounted_error(*mounted[0], pruned=len(mounted))
    return removed, None


def _prune_one(
    dest_root: Path,
    name: str,
    tree: Path,
    mounted: list[tuple[Path, list[str]]],
    reporter: Reporter | None,
) -> bool:
    """Remove the tree ``name`` for :func:`prune` if it is pylock's; whether it did. A
    tree with a mount inside is added to ``mounted`` and left."""
    from pylock.fsutil import remove_tree

    with _name_lock(dest_root, name, None):
        data = read_install_json(str(tree))
        if data is None or is_a_copy(data, name):
            return False  # no record, or another tree's (a copy): not pylock's
        mounts = mounts_inside(tree)
        if mounts:
            # Renamed aside, the mount goes with the tree, and its files with the
            # trash. The others are still pruned; the sync fails after them.
            mounted.append((tree, mounts))
            return False
        trash = dest_root / f"{TRASH_PREFIX}{name}-{_token()}"
        try:
            os.rename(tree, trash)
        except PermissionError as exc:
            # Windows' "access denied" or "in use" (5, 32) pass when the program
            # ends; elsewhere a permission error stays, and fails the sync.
            if getattr(exc, "winerror", None) not in (5, 32):
                raise
            if reporter is not None:
                reporter.warn(
                    f"could not remove {name} (no longer in the lock) from {dest_root}"
                    f" yet: {exc.strerror or exc}; the next sync tries again"
                )
            return False
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            remove_in_place(tree)  # from a lower overlayfs layer: see _swap_in
        else:
            # Gone from the install directory already; the trash may outlive this
            # run (a running python.exe on Windows), and the next run removes it.
            with contextlib.suppress(OSError):
                remove_tree(trash)
    return True


def remove_in_place(tree: Path) -> None:
    """Delete an installed tree where it stands, for when it cannot be renamed aside.

    Its record goes first, so that a crash partway leaves a tree the next sync sees as
    damaged and replaces, never one it trusts; its ``.pylock/`` goes last, so that what
    is left is still known as pylock's (a directory without it is the user's, and a sync
    refuses to replace it).
    """
    from pylock.fsutil import refuse_mounts, remove_tree

    # Each piece would refuse a mount in it, but only once the record and the pieces
    # before it were gone: a half-deleted tree.
    refuse_mounts(tree)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(tree / META_DIR / INSTALL_JSON)
    with os.scandir(tree) as entries:
        rest = [Path(entry.path) for entry in entries if entry.name != META_DIR]
    for path in rest:
        remove_tree(path)
    remove_tree(tree)


def _same_as_kept(tree: Path, name: str, keep: Collection[str]) -> bool:
    """Whether ``tree`` is a kept interpreter's directory under another spelling: on a
    case-insensitive file system `App` is `app`, and removing it would remove that one."""
    folded = name.casefold()
    for kept in keep:
        if kept.casefold() == folded:
            with contextlib.suppress(OSError):
                if os.path.samefile(tree, tree.parent / kept):
                    return True
    return False


def _unsafe_mode(mode: int, *, is_dir: bool) -> str | None:
    import stat

    what = []
    if not is_dir:
        # A directory may inherit setgid from its parent (BSD-style group sharing).
        if mode & stat.S_ISUID:
            what.append("setuid")
        if mode & stat.S_ISGID:
            what.append("setgid")
    if mode & stat.S_IWOTH:
        what.append("world-writable")
    return ", ".join(what) or None


#: What Finder and Explorer write into any folder a user looks at: no part of the tree, and
#: nothing an interpreter reads, so not "extra" to :func:`verify` (lowercase).
_FOLDER_METADATA = frozenset({".ds_store", "desktop.ini", "thumbs.db"})
#: Whether the file system may store a name in another Unicode form than it was given:
#: macOS' HFS+ decomposes ``café`` (NFD). Elsewhere the two spellings are two files.
_NORMALIZING = sys.platform == "darwin"


def _as_stored(found: Iterable[str]) -> Callable[[str], str]:
    """A record's path as spelled on disk among ``found``, if it is there in another Unicode
    form (see :data:`_NORMALIZING`); else as it is."""
    import unicodedata

    stored = {unicodedata.normalize("NFC", rel): rel for rel in found if not rel.isascii()}
    return lambda rel: stored.get(unicodedata.normalize("NFC", rel), rel)


def _keeps_modes(tree: Path) -> bool:
    """Whether the file system under ``tree`` keeps POSIX modes. FAT and exFAT drives, SMB
    shares and WSL's ``/mnt/c`` show every file as ``rwxrwxrwx``: there, every file would be
    "modified" (executable) and "world-writable" to :func:`verify`, and a reinstall would
    change nothing. Two signs, both needed: the record pylock wrote without execute
    permission reads as executable, and the file system is of such a kind (by the mount
    table on Linux, by ``statfs`` on macOS). The first alone is what a ``chmod -R 777`` of
    the tree looks like, which verify must report."""
    try:
        written = os.stat(tree / META_DIR / INSTALL_JSON).st_mode
    except OSError:
        return True
    return not written & 0o111 or not on_modeless_file_system(tree)


def _scan(tree: Path, check_modes: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """Files and symlinks under ``tree`` (links not followed), and unsafe permissions seen."""
    found: list[str] = []
    unsafe: list[tuple[str, str]] = []
    if check_modes:
        what = _unsafe_mode(os.stat(tree).st_mode, is_dir=True)
        if what:
            unsafe.append((".", what))
    for rel, entry in walk_tree(os.fspath(tree), prune={META_DIR}):
        is_dir = is_real_dir(entry)  # a junction is a link here, as a symlink is
        if not is_dir:
            found.append(rel)
        if check_modes and not entry.is_symlink():
            what = _unsafe_mode(entry.stat(follow_symlinks=False).st_mode, is_dir=is_dir)
            if what:
                unsafe.append((rel, what))
    return found, unsafe


def _tree_executable(dest_root: Path, state: InstallState) -> Path | None:
    from pylock.errors import PylockError
    from pylock.platforms import Platform

    try:
        return executable(dest_root, python_from_state(state), Platform.parse(state.platform))
    except (PylockError, ValueError):
        return None


def verify(dest_root: Path, name: str, reporter: Reporter | None = None) -> VerifyReport:
    """Re-hash ``DIR/NAME`` against its record; check its bytecode caches and permissions.

    It holds NAME's lock meanwhile (waiting for a sync that installs it), so that no
    upgrade comes between reading the record and hashing the tree: that would report an
    intact tree as modified. Where the lock cannot be taken (no lock file, which is never
    made here, or one that cannot be opened or locked) the tree is read without it.
    """
    with _name_lock_to_read(dest_root, name, reporter):
        return _verify(dest_root, name)


@contextmanager
def _name_lock_to_read(dest_root: Path, name: str, reporter: Reporter | None) -> Iterator[None]:
    # Never made here: `verify` writes nothing, and a lock file made by whoever verified
    # could keep another user's sync from opening it. Every sync makes it, and keeps it.
    path = dest_root / LOCKS_DIR / f"{name}.lock"
    lock: FileLock | None = FileLock(path) if path.is_file() else None
    try:
        taken = lock is not None and lock.try_acquire()
    except OSError:
        lock = None  # one that cannot be opened or locked (NFS, a foreign ACL): read without
    if lock is None:
        yield
        return
    try:
        if not taken:
            _wait_for(lock, dest_root / name, reporter)
        yield
    finally:
        lock.release()


def _verify(dest_root: Path, name: str) -> VerifyReport:
    from pylock.fsutil import sha256_file
    from pylock.sync.bytecode import mismatched_bytecode, parse_cache_path

    tree = dest_root / name
    state = installed_state(dest_root, name)
    if state is None:
        if has_meta_dir(tree):
            damage = f"{META_DIR}/{INSTALL_JSON} is missing or damaged"
            return VerifyReport(name=name, damaged_record=damage)
        raise InstallError(
            f"{name} is not installed in {dest_root}", hint="run `pylock sync` first"
        )
    if state.record_version > RECORD_VERSION:
        damage = (
            f"{META_DIR}/{INSTALL_JSON} is record version {state.record_version}, which a "
            f"newer pylock wrote (this one reads {RECORD_VERSION}): upgrade pylock to verify it"
        )
        return VerifyReport(name=name, damaged_record=damage, newer_record=True)
    try:
        record = read_record(tree)
    except UnreadableRecordError as exc:
        # One tree's damage is its own finding: the others are still checked.
        damage = f"{META_DIR}/{records.RECORD_FILE} cannot be read: {exc.reason}"
        return VerifyReport(name=name, damaged_record=damage)
    check_modes = sys.platform != "win32" and _keeps_modes(tree)
    found, unsafe = _scan(tree, check_modes)
    present = set(found)
    in_tree = frozenset(found)
    # A record says what the archive spelled, which HFS+ stored decomposed: a fresh
    # install verified as modified (and extra), and a reinstall changed nothing.
    as_stored = _as_stored(found) if _NORMALIZING else None
    modified: list[str] = []
    missing: list[str] = []
    for entry in record:
        rel = entry.path
        if rel not in in_tree and as_stored is not None:
            rel = as_stored(rel)
        path = tree / rel
        present.discard(rel)
        if rel not in in_tree:
            # Absent, or there only through a symlinked directory (`lib -> /usr/lib` in a
            # tampered tree and record): what lies beyond is not the tree's to vouch for,
            # and is never read.
            (modified if os.path.lexists(path) else missing).append(entry.path)
            continue
        if entry.link is not None:
            if not path.is_symlink() or os.readlink(path) != entry.link:
                modified.append(entry.path)
            continue
        if path.is_symlink() or not path.is_file():
            modified.append(entry.path)
            continue
        info = path.stat()
        if info.st_size != entry.size or (
            check_modes and bool(info.st_mode & 0o111) != entry.executable
        ):
            modified.append(entry.path)
            continue
        if sha256_file(path) != entry.sha256:
            modified.append(entry.path)
    # Caches Python wrote for recorded sources are checked against a fresh compile;
    # anything else unrecorded (a cache without its source included) is extra. A source
    # may be a link to a recorded file (Debian's `_sysconfigdata__linux_*.py`, which
    # sysconfig imports by that name): Python caches it under the link's name.
    from pylock.archive.policy import join_link

    files = {e.path for e in record if e.sha256 is not None}
    sources = files | {
        e.path
        for e in record
        if e.link is not None and join_link(e.path.rpartition("/")[0], e.link) in files
    }
    if as_stored is not None:
        sources = {as_stored(source) for source in sources}  # as the caches name them
    extra: list[str] = []
    caches = []
    for rel in present:
        cache = parse_cache_path(rel)
        if cache is not None and cache.source in sources:
            caches.append(cache)
        elif rel.rpartition("/")[2].lower() not in _FOLDER_METADATA:
            extra.append(rel)
    bytecode: list[str] = []
    unchecked = 0
    if modified or missing or extra:
        # Never run an interpreter whose tree differs from its record: a changed or added
        # file (an extension module shadowing encodings/) could run in the checker.
        unchecked = len(caches)
    elif caches:
        executable_path = _tree_executable(dest_root, state)
        if executable_path is None:
            bytecode = [c.path for c in caches]
        else:
            caches.sort(key=lambda c: c.path)
            bytecode = mismatched_bytecode(tree, executable_path, caches)
    return VerifyReport(
        name=name,
        modified=tuple(sorted(modified)),
        missing=tuple(sorted(missing)),
        extra=tuple(sorted(extra)),
        bytecode=tuple(sorted(bytecode)),
        unchecked_bytecode=unchecked,
        permissions=tuple(sorted(unsafe)),
        checked=len(record),
    )


def python_from_state(state: InstallState) -> LockedPython:
    """The lock entry an install record was made for (for commands run without a lock)."""
    from pylock.lockfile import LockedPython
    from pylock.versions import Flavor, Implementation, Variant

    entry = state.python
    try:
        return LockedPython(
            name=state.name,
            implementation=Implementation(entry["implementation"]),
            version=str(entry["version"]),
            build=entry.get("build"),
            variant=Variant.parse(entry.get("variant") or ""),
            flavor=Flavor(entry["flavor"]) if entry.get("flavor") else None,
        )
    except (KeyError, ValueError) as exc:
        raise InstallError(f"the install record of {state.path} is damaged ({exc})") from None


def executable(dest_root: Path, python: LockedPython, platform: Platform) -> Path:
    """The interpreter's executable under ``DIR/NAME`` (the first candidate that exists)."""
    return _executable_in(dest_root / python.name, python, platform)


def _executable_in(tree: Path, python: LockedPython, platform: Platform) -> Path:
    minor = ".".join(python.version.split(".")[:2])
    abi = python.variant.pbs_abi_suffix
    candidates: list[str]
    if python.implementation == "pypy":
        candidates = (
            ["pypy3.exe", "pypy.exe", "python.exe"]
            if platform.is_windows
            else ["bin/pypy3", "bin/pypy", "bin/python3"]
        )
    elif python.implementation == "graalpy":
        candidates = (
            ["bin/graalpy.exe", "graalpy.exe", "bin/python.exe"]
            if platform.is_windows
            else ["bin/graalpy", "bin/python3"]
        )
    elif platform.is_windows:
        candidates = ["python.exe", f"python{minor}{abi}.exe", f"python{abi}.exe"]
    else:
        candidates = ["bin/python3", f"bin/python{minor}{abi}", "bin/python"]
    # A file first (through its links): a link that leads nowhere (or to itself) is passed
    # over for a candidate that runs; then whatever is there, for the caller to judge.
    for exists in (os.path.isfile, os.path.lexists):
        for candidate in candidates:
            path = tree / candidate
            if exists(path):
                return path
    return tree / candidates[0]
