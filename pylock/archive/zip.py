"""Zip support: the errors zipfile leaks, member data as bounded views, member times.

A zip is read through its central directory with :mod:`zipfile`; symlinks, special
files, encrypted members and compression methods other than stored and deflated are
refused (see :func:`member_mode`).
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from pylock.archive.codecs import CHUNK_SIZE
from pylock.archive.policy import limit_error
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


def check_member_count(path: str | os.PathLike[str], limit: int, archive: str) -> None:
    """Refuse a zip whose central directory lists more than ``limit`` members, counting
    its records before :class:`zipfile.ZipFile` builds an object for each (a 95 MB zip of a
    million empty members took 580 MB and 20 s to refuse that way). The count follows the
    records themselves, as zipfile does, not the total the end record states. A zip whose
    end this cannot find is left to zipfile to refuse."""
    with open(path, "rb") as handle:
        where = _central_directory(handle)
        if where is None:
            return
        start, size = where
        handle.seek(start)
        count = 0
        left = size
        buffer = b""
        pos = 0  # where the next record starts in ``buffer``

        def have(needed: int) -> bool:
            """Read on until ``needed`` bytes from ``pos`` are in ``buffer``; whether they
            are (a directory cut short is zipfile's to refuse)."""
            nonlocal buffer, pos, left
            while len(buffer) - pos < needed:
                more = handle.read(min(left, 1 << 20)) if left > 0 else b""
                if not more:
                    return False
                left -= len(more)
                buffer = buffer[pos:] + more  # what is left of the last read, then the next
                pos = 0
            return True

        while have(_CDH_SIZE):
            if buffer[pos : pos + 4] != b"PK\x01\x02":
                return  # not a record: zipfile refuses it
            name, extra, comment = struct.unpack_from("<HHH", buffer, pos + 28)
            count += 1
            if count > limit:
                raise limit_error(
                    f"more than {limit:,} members (pylock's limit per archive)",
                    archive=archive,
                    member=_record_name(handle, buffer, pos, name, left),
                )
            skip = _CDH_SIZE + name + extra + comment
            if not have(skip):
                return
            pos += skip


def _record_name(handle: BinaryIO, buffer: bytes, pos: int, size: int, left: int) -> str:
    """The member name of the record at ``pos`` (read on if it is not all in ``buffer``),
    decoded as zipfile decodes it: UTF-8 if the record says so, else code page 437."""
    raw = buffer[pos + _CDH_SIZE : pos + _CDH_SIZE + size]
    if len(raw) < size and left > 0:
        raw += handle.read(min(left, size - len(raw)))
    (flags,) = struct.unpack_from("<H", buffer, pos + 8)
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


#: The fixed part of a central directory record.
_CDH_SIZE = 46


def _central_directory(handle: BinaryIO) -> tuple[int, int] | None:
    """(offset, size) of a zip's central directory, as zipfile locates it (an archive with
    bytes before it, such as a self-extractor, included); ``None`` without an end record."""
    end = handle.seek(0, os.SEEK_END)
    tail_size = min(end, 22 + 0xFFFF)
    handle.seek(end - tail_size)
    tail = handle.read(tail_size)
    # As zipfile looks: an end record without a comment in the last 22 bytes first (its
    # own fields may hold the signature's bytes), then the last signature before a comment.
    at = len(tail) - 22
    if at < 0 or tail[at : at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    location = end - tail_size + at
    (size,) = struct.unpack_from("<I", tail, at + 12)
    if location >= 76:
        # Zip64: its end record (56 bytes) and locator (20) right before, as zipfile reads.
        handle.seek(location - 76)
        zip64 = handle.read(76)
        if zip64[:4] == b"PK\x06\x06" and zip64[56:60] == b"PK\x06\x07":
            (size,) = struct.unpack_from("<Q", zip64, 40)
            location -= 76
    start = location - size
    return (start, size) if start >= 0 else None


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
