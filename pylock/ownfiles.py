"""Bounded reads of pylock's own small files: install records, state files, sidecars;
and the names of the temporary files its atomic writes make.

Standard library only (``os``, ``stat``) and cheap to import, so that the no-op sync fast
path (:mod:`pylock.fastpath`) reads its state and the lock by the same rules as the full
sync reads records. :mod:`pylock.fsutil` re-exports the read, its error and the link test.
"""

from __future__ import annotations

import os
import stat
import sys

# Not blocking: opening a pipe for reading waits for a writer, for ever if none comes.
# Not following a symlink (unless asked): pylock writes these files itself, always as
# regular files, so a link in their place is someone else's doing. Followed, it could open
# a device (for some, opening alone has effects), or lend a tree the install record of
# another, and with it pylock's leave to replace or prune the tree.
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_WINDOWS = sys.platform == "win32"


class RefusedFileError(OSError):
    """:func:`read_own_file` would not read ``path``: a symlink, not a regular file, or too large.

    An :class:`OSError`, so that a caller that treats a file it cannot read as a damaged
    one treats this one the same way.
    """

    def __init__(self, path: str, limit: int, reason: str) -> None:
        super().__init__(reason)
        #: The file refused.
        self.path = path
        #: The most bytes the caller would read.
        self.limit = limit


#: The most a project's ``pythons.lock`` or ``pythons.toml`` may hold when read this way.
PROJECT_FILE_LIMIT = 256 * 1024 * 1024


def too_large(name: str, limit: int) -> RefusedFileError:
    """The refusal of ``name``, larger than ``limit`` bytes ("larger than 256 MiB")."""
    size = f"{limit >> 20} MiB" if limit and limit % 2**20 == 0 else f"{limit} bytes"
    return RefusedFileError(name, limit, f"larger than {size}")


def read_own_file(
    path: str | os.PathLike[str], limit: int, *, follow_symlinks: bool = False
) -> bytes:
    """The bytes of one of pylock's own small files (an install record, a state file).

    Only a regular file of at most ``limit`` bytes, not reached through a symlink (unless
    ``follow_symlinks``: a project's lock may be a link), is read, and never more than
    ``limit + 1`` bytes of it: a pipe would block the read for ever and ``/dev/zero``
    would never end. Anything else raises :class:`RefusedFileError`; a file that cannot
    be opened, :class:`OSError`.
    """
    name = os.fspath(path)
    # Where the system has no O_NOFOLLOW (Windows), the link is looked for before the open,
    # and again after it: a link put in the file's place meanwhile is refused too. (Not by
    # comparing the file's identity: some Windows file systems, network drives among them,
    # give a path and an open file different ones.)
    looked = not follow_symlinks and not _NO_FOLLOW
    if looked:
        _refuse_a_link(name, limit)
    try:
        fd = os.open(name, _FLAGS if follow_symlinks else _FLAGS | _NO_FOLLOW)
    except OSError:
        if not follow_symlinks and is_link(name):
            # The error O_NOFOLLOW gives differs between systems.
            raise RefusedFileError(name, limit, "a symbolic link") from None
        raise
    try:
        if looked:
            _refuse_a_link(name, limit)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFileError(name, limit, "not a regular file")
        if info.st_size > limit:
            raise too_large(name, limit)
        with open(fd, "rb", closefd=False) as handle:
            # The measured size, not the limit: a read of N bytes allocates N bytes. Read
            # on (still bounded) if there is more than measured, as a file growing
            # meanwhile, or one of a file system that reports no size, would have.
            data = handle.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += handle.read(limit + 1 - len(data))
    finally:
        os.close(fd)
    if len(data) > limit:
        raise too_large(name, limit)
    return data


def _refuse_a_link(name: str, limit: int) -> None:
    """Raise :class:`RefusedFileError` if ``name`` is a link (``OSError`` if it is gone)."""
    info = os.lstat(name)
    if stat.S_ISLNK(info.st_mode) or (_WINDOWS and is_junction(info)):
        raise RefusedFileError(name, limit, "a symbolic link")


def is_link(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a symlink or (Windows) a junction: an alias of another directory,
    never one of pylock's own trees, and never entered."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISLNK(info.st_mode) or (_WINDOWS and is_junction(info))


def is_junction(info: os.stat_result) -> bool:
    """Whether ``info`` is a Windows junction's (``mklink /J``), by its reparse tag (not any
    reparse point: OneDrive's cloud folders are ones too, and are real directories)."""
    tag: int = getattr(info, "st_reparse_tag", 0)
    return tag == _IO_REPARSE_TAG_MOUNT_POINT


#: ``stat.IO_REPARSE_TAG_MOUNT_POINT``, which only Windows' ``stat`` module has.
_IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003


def read_project_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a project's ``pythons.lock`` or ``pythons.toml``: a regular file (a
    symlink to one is fine) of at most :data:`PROJECT_FILE_LIMIT` bytes, never a pipe or a
    device, which would hang the command or never end (see :func:`read_own_file`)."""
    return read_own_file(path, PROJECT_FILE_LIMIT, follow_symlinks=True)


def is_temporary_of(name: str, entry: str) -> bool:
    """Whether ``entry`` is a temporary file of an atomic write of ``name``:
    ``.NAME.<random>.tmp``, as ``fsutil.atomic_write_bytes`` names them (and ``tempfile``
    did, before pylock 0.3).

    >>> [is_temporary_of("a.json", n) for n in (".a.json.0f3c.tmp", ".a.json.tmp", "a.json")]
    [True, False, False]
    """
    prefix = f".{name}."
    return entry.startswith(prefix) and entry.endswith(".tmp") and len(entry) > len(prefix) + 4


def is_a_copy(record: object, name: str) -> bool:
    """Whether the install record ``record`` (its JSON) found in ``DIR/NAME`` names another
    interpreter by more than case: a copy of its tree, which is the user's (pruning it
    deleted backups). A name that differs only in case is the same tree on macOS and
    Windows, pylock's to replace when an interpreter is renamed by case.

    >>> is_a_copy({"name": "app"}, "backup"), is_a_copy({"name": "App"}, "app")
    (True, False)
    """
    recorded = record.get("name") if isinstance(record, dict) else None
    return isinstance(recorded, str) and recorded.casefold() != name.casefold()
