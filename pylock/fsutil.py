"""Small filesystem helpers shared by the modules that write files: atomic writes, removal,
file hashes, bounded reads of pylock's own files, tree walks, and the cross-process
:class:`FileLock`.

Also the names of the project's two files, defined here once because this module is
stdlib-only: the no-op sync fast path (:mod:`pylock.fastpath`) needs them as well.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Re-exported: the bounded reads live in a module of their own, which the no-op fast path
# imports without this one's imports.
from pylock.ownfiles import RefusedFileError as RefusedFileError
from pylock.ownfiles import is_junction, is_temporary_of
from pylock.ownfiles import is_link as is_link
from pylock.ownfiles import read_own_file as read_own_file

if TYPE_CHECKING:
    from threading import Event

#: The project file people edit.
CONFIG_FILENAME = "pythons.toml"
#: The lock ``pylock lock`` writes and ``pylock sync`` reads.
LOCK_FILENAME = "pythons.lock"

# A constant rather than `sys.platform` tests: mypy (which runs on Linux) would take the
# Windows branches for unreachable and leave them unchecked.
_WINDOWS = sys.platform == "win32"


#: The mode ``tempfile.mkstemp`` gives, which pylock 0.2.0's atomic writes left on files.
_MKSTEMP_MODE = 0o600


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes go to a temporary file in the same directory, are flushed to disk, and
    replace the target with :func:`os.replace`. The file gets the mode a plain ``open``
    would give it (0666 less the umask), or keeps the mode of the file it replaces: not
    ``tempfile.mkstemp``'s 0600, which a web server serving a mirror, or another user in a
    Docker stage reading ``pythons.lock``, could not read. A file that has exactly 0600 is
    taken for one pylock 0.2.0 wrote that way, and gets the umask's mode too. Under umask
    0 the new file is not writable by others all the same: a state or record another user
    could rewrite would make a sync skip what the lock asks for.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _written_beside(path, data)
    try:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            # On Windows a mode is only the read-only flag: copied from a read-only target
            # (a Perforce checkout), it made the temporary file one that nothing could
            # delete after the replace failed, and they piled up.
            if mode != _MKSTEMP_MODE and not _WINDOWS:
                os.chmod(tmp, mode)
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def written_name(path: str) -> str:
    """``path``, or the file it is a temporary copy of (:func:`atomic_write_bytes`'s
    ``DIR/.NAME.<hex>.tmp`` is ``DIR/NAME``): what an error should name.

    >>> written_name("/b/..pylock-links.json.0123456789ab.tmp"), written_name("/b/python3")
    ('/b/.pylock-links.json', '/b/python3')
    """
    cut = max(path.rfind("/"), path.rfind(os.sep)) + 1  # (Windows takes both)
    match = _TEMPORARY.fullmatch(path[cut:])
    return path[:cut] + match[1] if match else path


#: A temporary file of :func:`atomic_write_bytes`: ``.NAME.<12 hex digits>.tmp``.
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{12}\.tmp")


def _written_beside(path: Path, data: bytes) -> Path:
    """A new temporary file next to ``path`` holding ``data``, flushed to disk."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o664)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def create_file(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, whole or not at all: never a part of it under its
    name (a kill half-way), and never over a file that is there (``FileExistsError``).

    A hard link puts the written file in place; where the file system has none, the file
    is created in place (``O_EXCL``) and, should the writing fail, removed.
    """
    tmp = _written_beside(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (FAT, some network and FUSE file systems).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags, 0o664)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def current_umask() -> int:
    """The process's umask. Linux states it in ``/proc/self/status``; elsewhere it is read
    by setting it and back, which another thread creating a file meanwhile would feel:
    call it where no other thread of the run writes."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def out_of_space_hint(path: Path, then: str) -> str:
    """What to do about ENOSPC at ``path``: free disk space, or, where the file system has
    room but no inodes left (many small files; ``df -h`` shows space free), free those."""
    try:
        usage = os.statvfs(path) if hasattr(os, "statvfs") else None
    except OSError:
        usage = None
    if usage is not None and usage.f_files and usage.f_favail == 0 and usage.f_bavail > 0:
        return f"the file system has no free inodes left (see `df -i`): remove files, then {then}"
    return f"free some disk space, then {then}"


def mounted_noexec(path: Path) -> bool:
    """Whether ``path`` is on a file system that runs no programs (``mount -o noexec``).
    Known where Python exposes ``os.ST_NOEXEC`` (Linux); ``False`` elsewhere."""
    flag = getattr(os, "ST_NOEXEC", None)
    if flag is None or not hasattr(os, "statvfs"):
        return False
    try:
        return bool(os.statvfs(path).f_flag & flag)
    except OSError:
        return False


def undo_0600(path: Path) -> None:
    """Give ``path`` the mode a new file gets (see :func:`atomic_write_bytes`) if it has the
    one pylock 0.2.0's atomic writes left (0600), which a web server serving a mirror, or
    another user reading ``pythons.lock``, cannot read: for a file whose content is
    current, so not written again. Changed in place, its owner kept (a rewrite by root
    made it root's). Never fails."""
    if _WINDOWS:
        return
    try:
        if stat.S_IMODE(os.stat(path).st_mode) != _MKSTEMP_MODE:
            return
        # As a new file gets it (never writable by others, even under umask 0); the run's
        # threads have ended by now.
        os.chmod(path, 0o664 & ~current_umask())
    except OSError:
        pass


def make_dir(path: Path) -> None:
    """``mkdir -p path``; under umask 0, the directory made is not writable by others all
    the same: it holds interpreters, their records or links to them, which another user
    must not replace. A directory that was there is left as it is."""
    made: list[Path] = []
    missing = path
    while not missing.is_dir() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    path.mkdir(parents=True, exist_ok=True)
    for directory in made:
        not_world_writable(directory)


def not_world_writable(path: Path) -> None:
    """Take the write bit for others off ``path`` (umask 0 gave it), and nothing else: a
    directory shared by a group (setgid, umask 002) stays writable by the group. (Windows
    has no such bit.)"""
    if _WINDOWS:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IWOTH:
        os.chmod(path, mode & ~stat.S_IWOTH)


#: How far ahead of this host's clock a file's time may be and still be another host's
#: "now" (a cache or project shared over NFS, whose server stamps the files, or between
#: machines whose clocks disagree): a day. A time further ahead is a stamp from before
#: this clock was set back, which would otherwise stay "young" until the clock caught up.
CLOCK_SKEW = 86400.0


def is_stale(mtime: float, now: float, older_than: float) -> bool:
    """Whether a file last written at ``mtime`` is more than ``older_than`` seconds old, or
    stamped more than :data:`CLOCK_SKEW` ahead of ``now``.

    >>> is_stale(0, 61, 60), is_stale(0, 59, 60), is_stale(3600, 0, 60), is_stale(9e4, 0, 60)
    (True, False, False, True)
    """
    age = now - mtime
    return age > older_than or age < -CLOCK_SKEW


def remove_stale_temporaries(path: Path, older_than: float) -> None:
    """Remove the temporary files :func:`atomic_write_bytes` left beside ``path`` when a
    writer was killed (:func:`is_temporary_of`), once they are ``older_than`` seconds old
    (a live writer renames its own within milliseconds). Never fails: junk must not stop a
    command. So is one stamped far in the future (see :func:`is_stale`). With
    ``older_than`` 0 (a caller that holds the lock every writer takes), every one goes."""
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if is_temporary_of(path.name, entry.name):
                with contextlib.suppress(OSError):
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    if older_than <= 0 or is_stale(mtime, now, older_than):
                        os.unlink(entry.path)


#: How long a rename waits, in all, for a file another program briefly holds (Windows).
_RENAME_PATIENCE = 2.0
#: The same for a directory: a virus scanner reads a fresh interpreter's thousands of
#: files (``.dll``, ``.pyd``, ``.exe``) for longer than it holds one file.
_TREE_RENAME_PATIENCE = 10.0


def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """:func:`os.replace`, retried for a moment on Windows when another program (a virus
    scanner or indexer looking at a file just written) holds ``source`` or ``target``.

    Elsewhere, and for any other error, it fails at once.
    """
    _patiently(os.replace, source, target)


def rename(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, fresh: bool = True
) -> None:
    """:func:`os.rename` of a directory tree (never over an existing target), retried as
    :func:`replace` is, for longer if the tree is ``fresh`` (just written, so a scanner
    may still read it). An old tree that does not move is mostly one a running program
    holds, which waiting longer does not change."""
    patience = _TREE_RENAME_PATIENCE if fresh else _RENAME_PATIENCE
    _patiently(os.rename, source, target, patience=patience)


def _patiently(
    move: Callable[[Any, Any], None],
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    patience: float = _RENAME_PATIENCE,
    windows: bool = sys.platform == "win32",
) -> None:
    deadline = time.monotonic() + patience
    delay = 0.01
    while True:
        try:
            move(source, target)
            return
        except PermissionError:
            # ERROR_ACCESS_DENIED / ERROR_SHARING_VIOLATION: held for a moment by a scanner.
            if not windows or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`), with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _retry_writable(root: str) -> Callable[[Callable[[str], object], str, Any], None]:
    """An ``rmtree`` error handler for the tree at ``root``: a read-only file (Windows) or
    directory (anywhere) in the way of a deletion is made writable, and the deletion tried
    again. Any other error (a directory that a running program fills again, a busy file)
    stands, and nothing outside the tree ever changes its mode: the install directory and
    the cache root are shared with other users."""
    root = os.path.abspath(root)

    def retry(func: Callable[[str], object], path: str, exc: Any) -> None:
        error = exc[1] if isinstance(exc, tuple) else exc  # onerror (3.11) or onexc
        if not isinstance(error, PermissionError):
            raise error
        with contextlib.suppress(OSError):
            parent = os.path.abspath(os.path.dirname(path))
            if parent == root or parent.startswith(os.path.join(root, "")):
                os.chmod(parent, stat.S_IRWXU)
            if not os.path.islink(path):
                # chmod follows a link: its target may be any file outside the tree. (A
                # link is removed once its directory is writable; its own mode is moot.)
                os.chmod(path, stat.S_IRWXU)
        func(path)

    return retry


#: File system types (as Linux names them) that keep no POSIX modes: FAT and exFAT drives,
#: NTFS through ntfs-3g or ntfs3, SMB shares, WSL's Windows drives (9p, drvfs) and
#: VirtualBox's shared folders.
_MODELESS = frozenset(
    {
        "vfat",
        "msdos",
        "exfat",
        "ntfs",
        "ntfs3",
        "fuseblk",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "drvfs",
        "vboxsf",
    }
)


#: The same kinds as macOS names them (``statfs``'s ``f_fstypename``).
_MODELESS_MACOS = frozenset({"msdos", "exfat", "ntfs", "smbfs", "webdav"})


def on_modeless_file_system(
    path: str | os.PathLike[str], *, platform: str = sys.platform, libc: Any = None
) -> bool:
    """Whether ``path`` is on a file system of a kind that keeps no POSIX modes (see
    :data:`_MODELESS`): by the mount table on Linux, by ``statfs`` on macOS (``libc``
    stands in for libSystem in tests); elsewhere ``False``, and modes are taken as they
    read."""
    if platform == "darwin":
        return _macos_file_system(path, libc) in _MODELESS_MACOS
    if not platform.startswith("linux"):
        return False
    text = _mountinfo()
    if text is None:
        return False
    real = os.path.realpath(path)
    best, kind = "", ""
    for point, fstype in mount_table(text):
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind in _MODELESS


def _mountinfo() -> str | None:
    """Linux's table of this process's mounts (``/proc/self/mountinfo``), or ``None``
    where there is none (another system, or no ``/proc``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            return table.read()
    except OSError:
        return None


def mount_table(text: str) -> Iterator[tuple[str, str]]:
    r"""The mount points in ``/proc/self/mountinfo``'s ``text`` and the kind of each.

    >>> line = "36 35 98:0 /m /mnt/my\\040disk rw - ext3 /dev/root rw"
    >>> list(mount_table(line + "\nbad line"))
    [('/mnt/my disk', 'ext3')]
    """
    for line in text.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split(" ")
        if len(parts) < 5 or not rest:
            continue
        yield _unescaped(parts[4]), rest.split(" ", 1)[0]


def _unescaped(point: str) -> str:
    # Spaces, tabs, newlines and backslashes in a mount point are octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), point)


def _escaped(path: str) -> str:
    """``path`` as ``/proc/self/mountinfo`` writes it (:func:`_unescaped` undone)."""
    return re.sub(r"[ \t\n\\]", lambda m: f"\\{ord(m[0]):03o}", path)


class MountedInsideError(OSError):
    """A tree to delete is a mount point or holds one (a Docker volume, a bind mount):
    deleting it would delete the mounted file system's files, which are not the tree's.
    Nothing was deleted. ``filename`` is the tree, ``mount`` the (first) mount point."""

    def __init__(self, tree: str, mounts: list[str]) -> None:
        self.mount = mounts[0]
        self.mounts = mounts
        itself = self.mount in (tree, os.path.realpath(tree))
        where = "is a mount point" if itself else f"holds the mount point {self.mount}"
        super().__init__(errno.EBUSY, f"{tree} {where}", tree)

    def __str__(self) -> str:
        return str(self.strerror)


def mounts_inside(tree: str | os.PathLike[str]) -> list[str]:
    """The mount points at ``tree`` or anywhere under it, outermost first: the file systems
    a deletion of ``tree`` must not enter (``shutil.rmtree`` does, and deletes a bind-mounted
    volume's files, then fails on the mount point with EBUSY).

    On Linux by the mount table, which also knows a bind mount from the same file system
    (the same ``st_dev``); elsewhere by a walk that compares each directory's device with
    the tree's, links and Windows junctions not followed (a Windows volume mounted in a
    folder is a junction of sorts: neither this walk nor ``rmtree`` enters it).
    """
    top = os.path.abspath(tree)
    text = _mountinfo()
    if text is not None:
        real = os.path.realpath(top)
        # Most trees hold no mount: one substring search, before the table is parsed.
        if _escaped(real) not in text:
            return []
        inside = real.rstrip("/") + "/"
        points = {p for p, _ in mount_table(text) if p == real or p.startswith(inside)}
        return sorted(points, key=lambda p: (p.count("/"), p))
    return _mounts_by_device(top)


def _mounts_by_device(top: str) -> list[str]:
    """:func:`mounts_inside` where there is no mount table to read: the directories on
    another device than ``top``'s, not entered."""
    try:
        if os.path.ismount(top):
            return [top]
        device = _device_of(top)
    except OSError:
        return []  # not there: nothing to delete
    found: list[str] = []
    pending = [top]
    while pending:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                if not is_real_dir(entry):
                    continue
                with contextlib.suppress(OSError):
                    if _device_of(entry.path) != device:
                        found.append(entry.path)
                    else:
                        pending.append(entry.path)
    return sorted(found, key=lambda p: (p.count(os.sep), p))


def _device_of(path: str) -> int:
    # os.lstat, not DirEntry.stat: on Windows the latter's st_dev is always 0.
    return os.lstat(path).st_dev


def refuse_mounts(tree: str | os.PathLike[str]) -> None:
    """Raise :class:`MountedInsideError` if ``tree`` is or holds a mount point."""
    mounts = mounts_inside(tree)
    if mounts:
        raise MountedInsideError(os.path.abspath(tree), mounts)


def _macos_file_system(path: str | os.PathLike[str], libc: Any = None) -> str:
    """The kind of file system ``path`` is on, as macOS' ``statfs`` names it (``apfs``,
    ``exfat``, ...); ``""`` if it cannot tell.

    Through ctypes, as :mod:`pylock.platforms` asks sysctl: no ``mount`` command to run
    and parse. The ``struct statfs`` of 64-bit inodes (``statfs$INODE64`` on Intel, plain
    ``statfs`` on Apple silicon) holds the name, at most 16 bytes, at offset 72.
    """
    try:
        import ctypes

        if libc is None:
            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib", use_errno=True)
        try:
            statfs = getattr(libc, "statfs$INODE64")
        except AttributeError:
            statfs = libc.statfs
        statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        statfs.restype = ctypes.c_int
        buffer = ctypes.create_string_buffer(_STATFS_SIZE)
        if statfs(os.fsencode(os.path.realpath(path)), buffer) != 0:
            return ""
    except (ImportError, OSError, AttributeError, ValueError):
        return ""
    name = buffer.raw[_FSTYPENAME_OFFSET : _FSTYPENAME_OFFSET + 16].split(b"\0", 1)[0]
    return name.decode("ascii", "replace")


#: ``struct statfs`` (64-bit inodes) on macOS: its size (2,168 bytes; a page, to spare), and
#: where ``f_fstypename`` starts, after ``f_bsize`` to ``f_fssubtype``.
_STATFS_SIZE = 4096
_FSTYPENAME_OFFSET = 72


def walk_tree(root: str, prune: Collection[str] = ()) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Everything under ``root`` as ``(relative /-separated path, entry)``, links not followed
    (nor Windows junctions: see :func:`is_real_dir`).

    A path in ``prune`` is neither yielded nor entered. One ``scandir`` per directory: far
    cheaper than an ``lstat`` per file for the thousands of files of an interpreter.
    """
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if rel in prune:
                    continue
                if is_real_dir(entry):
                    pending.append(rel)
                yield rel, entry


def is_real_dir(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a directory itself: not a link to one, nor a Windows junction
    (``mklink /J``, how Windows users without privileges alias a folder), which
    ``is_dir(follow_symlinks=False)`` and ``is_symlink()`` both take for a directory."""
    if not entry.is_dir(follow_symlinks=False):
        return False
    return not _WINDOWS or not is_junction(entry.stat(follow_symlinks=False))


def remove_tree(path: Path) -> None:
    """Delete a directory tree, or a file or symlink, if it exists.

    A tree that is or holds a mount point is not touched: :class:`MountedInsideError`.
    """
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        # Before anything is deleted: rmtree enters a mount point (a volume mounted in an
        # interpreter's site-packages), deleted the volume's files, then failed on it.
        refuse_mounts(path)
        # On Windows by its \\?\ name: a tree renamed to a longer name (.pylock-trash-)
        # may hold paths past MAX_PATH that the plain name cannot delete.
        top = long_path(os.path.abspath(path))
        retry = _retry_writable(top)
        try:
            if sys.version_info >= (3, 12):
                shutil.rmtree(top, onexc=retry)
            else:
                shutil.rmtree(top, onerror=retry)
        except (RecursionError, OSError) as error:
            # ``rmtree`` keeps a directory open per level (and recursed once per level
            # before Python 3.13): a tree a few hundred directories deep (an old install, a
            # hostile archive of an earlier pylock) ran out of recursion or of file
            # descriptors (256 by default on macOS), stayed, and every later sync's
            # clean-up failed on it. Such a tree is removed one directory at a time.
            if isinstance(error, OSError) and error.errno not in _OUT_OF_DESCRIPTORS:
                raise
            _remove_deep(top, retry)


#: ``EMFILE`` (this process) and ``ENFILE`` (the system): no descriptor left to open with.
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def _remove_deep(top: str, retry: Callable[[Callable[[str], object], str, Any], None]) -> None:
    """Delete the directory tree ``top`` without recursion, links not followed."""
    pending = [top]
    while pending:
        current = pending[-1]
        subdirs = []
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not _is_link(entry):
                    subdirs.append(entry.path)
                else:
                    _remove_entry(entry, retry)
        if subdirs:
            pending.extend(subdirs)
        else:
            _attempt(os.rmdir, current, retry)
            pending.pop()


def _is_link(entry: os.DirEntry[str]) -> bool:
    """A symlink, or (Windows) a junction or other reparse point: removed, never entered."""
    if entry.is_symlink():
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT)


def _remove_entry(
    entry: os.DirEntry[str], retry: Callable[[Callable[[str], object], str, Any], None]
) -> None:
    if _WINDOWS and entry.is_dir():  # a link to a directory (or a junction): rmdir removes it
        _attempt(os.rmdir, entry.path, retry)
    else:
        _attempt(os.unlink, entry.path, retry)


def _attempt(
    func: Callable[[str], object],
    path: str,
    retry: Callable[[Callable[[str], object], str, Any], None],
) -> None:
    try:
        func(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        retry(func, path, error)


def long_path(absolute: str, *, windows: bool = _WINDOWS) -> str:
    r"""``absolute`` in the ``\\?\`` form that lifts Windows' 260-character MAX_PATH limit
    (elsewhere as it is).

    >>> print(long_path("C:\\p\\x", windows=True), long_path("\\\\srv\\share\\x", windows=True))
    \\?\C:\p\x \\?\UNC\srv\share\x
    >>> print(long_path("\\\\.\\C:\\p", windows=True), long_path("/p/x", windows=False))
    \\.\C:\p /p/x
    """
    if not windows or absolute.startswith(("\\\\?\\", "\\\\.\\")):  # already, or a device
        return absolute
    if absolute.startswith("\\\\"):  # \\server\share\...
        return "\\\\?\\UNC\\" + absolute[2:]
    return "\\\\?\\" + absolute


def remove_tree_to_the_end(path: Path) -> None:
    """:func:`remove_tree`, finished even if Ctrl-C (or SIGTERM taken as Ctrl-C) arrives
    meanwhile; that interrupt is raised again once the tree is gone.

    For the clean-up after a first interrupt: a second one a few milliseconds later cut
    the removal short and left half a temporary tree (field test 8).
    """
    from pylock.interrupts import finish_through_interrupts

    finish_through_interrupts(lambda: remove_tree(path))


def broken_link(path: Path) -> str | None:
    """The target ``path`` names if it is a symbolic link that cannot be followed (its
    target gone, or a loop), else ``None``.

    Such a link is named as one in errors: "does not exist" sent users looking for a file
    they could see (and `init` refused to replace it). The target is given as a message
    shows it: escaped, and cut in its middle (a link's target may be 4 KB, and hold a
    terminal's escape sequences).
    """
    if not os.path.islink(path) or path.exists():
        return None
    try:
        target = os.readlink(path)
    except OSError:  # replaced meanwhile
        return None
    from pylock.errors import printable, shorten_middle

    return shorten_middle(printable(target))


def missing(path: Path) -> str:
    """Why ``path`` cannot be opened though it was looked for: the words for an error."""
    target = broken_link(path)
    if target is not None:
        return f"{path.name} is a symbolic link to {target}, which does not exist"
    return f"{path.name} does not exist"


def display_path(path: Path) -> str:
    """A path as the user would like to read it: relative to cwd when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):  # elsewhere, or the working directory was removed
        return str(path)


class _Counted(io.RawIOBase):
    """A binary file that tells ``on_progress`` how many bytes each read returned."""

    def __init__(self, handle: io.BufferedReader, on_progress: Callable[[int], None]) -> None:
        self._handle = handle
        self._on_progress = on_progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)
        if count:
            self._on_progress(count)
        return count


def sha256_file(path: Path | str, on_progress: Callable[[int], None] | None = None) -> str:
    """The lowercase hex sha256 of a file's contents, read in bounded chunks.

    Built on :func:`hashlib.file_digest`. ``on_progress``, if given, receives the count of
    bytes of each chunk read.
    """
    with open(path, "rb") as handle:
        source: Any = handle if on_progress is None else _Counted(handle, on_progress)
        return hashlib.file_digest(source, "sha256").hexdigest()


def require_sha256(path: Path | str, expected: str) -> None:
    """Raise :class:`~pylock.errors.HashMismatchError` unless the file hashes to ``expected``
    (a cached archive that rotted, or one whose lock entry is wrong)."""
    actual = sha256_file(path)
    if actual != expected:
        from pylock.errors import HashMismatchError

        raise HashMismatchError(url=str(path), expected=expected, actual=actual)


#: ``msvcrt.locking`` errors that mean "another open file holds a lock on these bytes":
#: EACCES for a lock violation, and EDEADLOCK, which the C runtime gives when its retries
#: run out. Any other error (EINVAL, say, from a network file system that does not lock)
#: is raised: taken for "held elsewhere", it would keep a wait without a time limit
#: waiting for ever.
_MSVCRT_HELD = frozenset({errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)})


def find_program(name: str, variables: Mapping[str, str]) -> str | None:
    """The absolute path of the program ``name`` in the ``PATH`` of ``variables`` (the
    environment the settings read), or ``None``.

    Only absolute ``PATH`` entries are searched. Unlike :func:`shutil.which` (and
    ``CreateProcess`` given a bare name) on Windows, the current directory never is: a
    checkout under review could plant a ``git.exe`` there. On Windows the ``PATHEXT``
    extensions are tried.
    """
    extensions = [""]
    if _WINDOWS:
        pathext = variables.get("PATHEXT") or ".COM;.EXE;.BAT;.CMD"
        extensions = [ext for ext in pathext.split(";") if ext]
        if any(name.lower().endswith(ext.lower()) for ext in extensions):
            extensions.insert(0, "")
    path = variables.get("PATH")
    # No PATH at all: the default search path, as execvp and shutil.which use.
    for directory in (os.defpath if path is None else path).split(os.pathsep):
        directory = directory.strip('"')
        if not os.path.isabs(directory):
            continue  # "" and "." mean the current directory
        for ext in extensions:
            candidate = os.path.join(directory, name + ext)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


def _msvcrt_locking(msvcrt: Any) -> tuple[Callable[[int], bool], Callable[[int], None]]:
    """The lock and unlock functions of :class:`FileLock` on Windows, over ``msvcrt``.

    Built from the module given, not imported here, so that tests on other systems can
    pass a stand-in.
    """

    def lock_fd(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as error:
            # EACCES also covers a few errors that are no lock at all (a handle without
            # write access, which FileLock never opens); the C runtime gives nothing finer.
            if error.errno in _MSVCRT_HELD:
                return False
            raise
        return True

    def unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    return lock_fd, unlock_fd


def _flock_locking() -> tuple[Callable[[int], bool], Callable[[int], None]]:
    """The lock and unlock functions of :class:`FileLock` on POSIX."""
    import fcntl

    def lock_fd(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

    return lock_fd, unlock_fd


if _WINDOWS:  # pragma: no cover - Windows
    import msvcrt

    _lock_fd, _unlock_fd = _msvcrt_locking(msvcrt)
else:
    _lock_fd, _unlock_fd = _flock_locking()


_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_lock_file(path: str) -> tuple[int, OSError | None]:
    """The lock file open for :class:`FileLock`, and the refusal when it could only be
    opened read-only (another user's 0644 lock file in a shared cache, or one on a file
    system mounted read-only: flock needs no write access, except on NFS, where the
    caller gives the refusal instead)."""
    try:
        return os.open(path, _LOCK_FLAGS, 0o644), None
    except OSError as refused:
        if _WINDOWS or not (isinstance(refused, PermissionError) or refused.errno == errno.EROFS):
            raise
        try:
            return os.open(path, _LOCK_FLAGS & ~(os.O_RDWR | os.O_CREAT) | os.O_RDONLY), refused
        except FileNotFoundError:
            raise refused from None  # not there, and not to be made here: the first error


class LockTimeout(Exception):
    """:meth:`FileLock.acquire` gave up: another process (or thread) holds the lock."""

    def __init__(self, path: str) -> None:
        super().__init__(f"the lock {path} is held elsewhere")
        self.path = path


class FileLock:
    """An exclusive lock on a file, between processes and between threads of one process.

    ``flock`` on POSIX and ``msvcrt.locking`` on Windows: both belong to the open file,
    so the operating system drops the lock when its holder dies, and two threads with
    their own :class:`FileLock` on one path exclude each other. Not reentrant; the lock
    file is created if missing and left in place (a file someone removes while another
    process waits for it is noticed, and the lock taken on a fresh one).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; whether it was taken.

        Raises :class:`OSError` when the file cannot be opened or locked for another
        reason than a lock held elsewhere (a file system that does not lock, say).
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this object")
        while True:
            fd, refused = _open_lock_file(self.path)
            try:
                if not _lock_fd(fd):
                    os.close(fd)
                    return False
                # Removed between our open and our lock (a cleaner, or the holder before
                # us): a lock on an unlinked file guards nothing. Take a fresh one.
                if os.fstat(fd).st_nlink == 0:
                    os.close(fd)
                    continue
            except BaseException as error:
                os.close(fd)
                if refused is not None and isinstance(error, OSError):
                    # flock emulated with POSIX locks (NFS) wants a writable file.
                    raise refused from None
                if isinstance(error, OSError) and error.filename is None:
                    # A lock call's error (msvcrt's, say) names no file: name the lock.
                    error.filename = self.path
                raise
            self._fd = fd
            return True

    def acquire(
        self, timeout: float | None = None, *, poll: float = 0.05, stop: Event | None = None
    ) -> None:
        """Wait for the lock, at most ``timeout`` seconds (``None``: for ever).

        Raises :class:`LockTimeout` when the time is up, or as soon as ``stop`` is set (a
        worker thread of a command interrupted with Ctrl-C); ``timeout=0`` tries once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(self.path)
            if stop is None:
                time.sleep(poll)
            elif stop.wait(poll):
                raise LockTimeout(self.path)

    def release(self) -> None:
        """Let go of the lock (a lock not held is left alone)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock_fd(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
