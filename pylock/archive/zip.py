"""Zip support: the errors zipfile leaks, member data as bounded views, member times.

A zip is read through its central directory with :mod:`zipfile`; symlinks, special
files, encrypted members and compression methods other than stored and deflated are
refused (see :func:`member_mode`).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from typing import IO, Any

from pylock.archive.codecs import CHUNK_SIZE
from pylock.errors import ArchiveError


def zip_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What zipfile raises for a malformed archive (its decompressors and parsers leak)."""
    import struct
    import zipfile
    import zlib

    return (
        *more,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        ValueError,
        OverflowError,
        RuntimeError,
        struct.error,
    )


def _unreadable(exc: Exception, archive: str, member: str) -> ArchiveError:
    return ArchiveError(f"cannot read member ({exc})", archive=archive, member=member)


def open_member(handle: Any, info: Any, archive: str) -> IO[bytes]:
    """Open a member of the open ``zipfile.ZipFile`` ``handle``; a bad header is one error."""
    try:
        stream: IO[bytes] = handle.open(info)
    except zip_errors(OSError) as exc:
        raise _unreadable(exc, archive, info.filename) from exc
    return stream


def zip_views(stream: IO[bytes], archive: str, member: str) -> Iterator[memoryview]:
    while True:
        try:
            data = stream.read(CHUNK_SIZE)
        except zip_errors(OSError) as exc:
            # Only the read is guarded: a full disk while writing must propagate as it is.
            raise _unreadable(exc, archive, member) from exc
        if not data:
            return
        yield memoryview(data)


def zip_mtime(info: Any) -> float:
    import time

    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def member_mode(info: Any, archive: str) -> int:
    """The Unix mode of a zip member (0 if the zip has none), refusing what is never extracted:
    symlinks, devices and other special files, encrypted members, names with a NUL byte."""
    name = info.filename
    if "\0" in info.orig_filename:
        # zipfile cuts the name at the NUL: what is written would not be what is named.
        raise ArchiveError(
            "NUL byte in the member name", archive=archive, member=repr(info.orig_filename)
        )
    mode: int = info.external_attr >> 16 if info.create_system == 3 else 0
    if stat.S_ISLNK(mode):
        raise ArchiveError("symlinks in zip archives are refused", archive=archive, member=name)
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError("device or special file refused", archive=archive, member=name)
    if info.flag_bits & 0x1:
        raise ArchiveError("encrypted member", archive=archive, member=name)
    if info.compress_type not in _METHODS:
        # zipfile inflates bzip2 and LZMA members without an output bound: a 1 KB member
        # took 3 GB of memory. Interpreter zips (PyPy, GraalPy on Windows) use deflate.
        raise ArchiveError(
            f"compression method {info.compress_type} refused (only stored and deflated)",
            archive=archive,
            member=name,
        )
    return mode


#: The zip compression methods extracted: stored (0) and deflated (8).
_METHODS = frozenset({0, 8})
