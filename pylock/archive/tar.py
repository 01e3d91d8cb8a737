"""The streaming tar reader: ustar, pax and GNU headers, straight from a decompressor.

pylock reads tar itself rather than through :mod:`tarfile`: Debian 12's Python 3.11.2 has
no ``tarfile.data_filter``, and tarfile's per-member overhead is a large share of a warm
``sync``. Headers are checked strictly (checksums, sizes, times, pax records); devices,
FIFOs and sparse files are refused. :func:`tar_members` yields the members and leaves their
data in :class:`Blocks` for the caller to consume.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from pylock.archive.codecs import DECOMPRESSORS, RawReader
from pylock.errors import ArchiveError
from pylock.versions import ArchiveFormat

BLOCK = 512
#: Limit for GNU long names and pax headers: real ones are a few hundred bytes.
_MAX_META = 1 << 20


class Truncated(Exception):
    pass


class Blocks:
    """Sequential access to decompressed tar bytes; member data comes out as views."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf = chunk
                self._pos = 0
                return True
        return False

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._fill()

    def read(self, size: int) -> bytes:
        if size < 0:
            raise Truncated  # never reached (sizes are checked); must not move backwards
        end = self._pos + size
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        need = size - len(parts[0])
        while need:
            if not self._fill():
                raise Truncated
            take = min(need, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            need -= take
        return b"".join(parts)

    def views(self, size: int) -> Iterator[memoryview]:
        if size < 0:
            raise Truncated  # never reached (sizes are checked); must not loop for ever
        while size:
            if self._pos >= len(self._buf) and not self._fill():
                raise Truncated
            take = min(size, len(self._buf) - self._pos)
            yield memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            size -= take

    def skip(self, size: int) -> None:
        for _ in self.views(size):
            pass

    def rest(self) -> Iterator[int]:
        """Read the stream to its end (the codec's end checks run), yielding chunk sizes."""
        left = len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        if left:
            yield left
        for chunk in self._chunks:
            yield len(chunk)


_REGULAR = frozenset(b"07\0")
_DECIMAL = re.compile(rb"[0-9]{1,20}")
_PAX_DECIMAL = re.compile(r"[0-9]{1,20}")
_PAX_TIME = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{0,12})?")
#: Largest member accepted (64 GiB); real interpreter files are a few hundred MB at most.
_MAX_MEMBER = 1 << 36
#: Modification times an install may carry: 1901 to 9999 (what every OS can set).
_MIN_MTIME = -(1 << 31)
_MAX_MTIME = 253402300799
_DEVICE_TYPES = {ord("3"): "character device", ord("4"): "block device", ord("6"): "FIFO"}
_ZERO_BLOCK = bytes(BLOCK)


#: Metadata headers (pax, GNU long names, volume labels) that may come before one member.
#: Real archives have at most three (global pax, pax, long name); without a bound, an
#: archive of nothing but metadata would be read to its end, uncounted.
_MAX_META_RUN = 8
#: The data of all metadata headers in one archive (real ones: at most a few MB, a pax
#: header of a few hundred bytes per member). Parsing pax records costs a few
#: microseconds each: without a bound of its own, 4 GiB of them took minutes.
_MAX_META_TOTAL = 64 << 20
#: Records in one pax header (real ones: a handful; xattrs add a few).
_MAX_PAX_RECORDS = 1024
#: The pax keys pylock reads (and ``GNU.sparse*``, to refuse): only these are kept, so that
#: a header of 70,000 records is not copied for every member.
_PAX_KEYS = frozenset({"path", "linkpath", "size", "mtime"})


@attrs.frozen
class TarMember:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink"
    size: int
    mode: int
    mtime: float
    linkname: str
    #: Bytes of metadata headers' data read before it, which count as unpacked bytes.
    meta: int = 0


def _number(field: bytes) -> int:
    """A numeric header field: octal digits, or GNU base-256 (which may be negative).

    >>> _number(b"0000644\\0"), _number(b"\\x80" + (512).to_bytes(11, "big"))
    (420, 512)
    >>> _number(b"\\xff" * 10 + b"\\xfe\\x00")
    -512
    """
    if field[0] & 0x80:
        # GNU base-256 for values that do not fit in octal (files over 8 GiB).
        if field[0] == 0xFF:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    # int(text, 8) would also take "-7", "+7", "0o7" and "7_7"; bytes.isdigit is ASCII-only,
    # and int() refuses 8 and 9.
    if not text.isdigit():
        raise ValueError("not an octal number")
    return int(text, 8)


def _signed_checksum(header: bytes) -> int:
    # Some old tar implementations summed the header as signed chars.
    high = sum(1 for i, b in enumerate(header) if b > 127 and not 148 <= i < 156)
    return sum(header[:148]) + sum(header[156:]) + 8 * 32 - 256 * high


def _text(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _parse_pax(data: bytes) -> dict[str, str]:
    """Records ``LENGTH KEY=VALUE\\n``; LENGTH counts the whole record, itself included.

    >>> _parse_pax(b"16 path=python/\\n11 size=42\\n")
    {'path': 'python/', 'size': '42'}
    """
    records: dict[str, str] = {}
    pos = count = 0
    while pos < len(data) and data[pos] != 0:
        count += 1
        if count > _MAX_PAX_RECORDS:
            raise ValueError("too many pax records")
        space = data.find(b" ", pos, pos + 21)
        if space < 0 or not _DECIMAL.fullmatch(data[pos:space]):
            raise ValueError("bad pax record length")
        length = int(data[pos:space])
        end = pos + length
        # Each record must reach past its own length field and stay inside the header.
        if end <= space + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise ValueError("bad pax record length")
        key, sep, value = data[space + 1 : end - 1].partition(b"=")
        if not sep or not key:
            raise ValueError("bad pax record")
        records[key.decode("utf-8")] = value.decode("utf-8")
        pos = end
    return records


def _pax_size(value: str) -> int:
    if not _PAX_DECIMAL.fullmatch(value):
        raise ValueError("bad pax size")
    return int(value)


def _pax_mtime(value: str) -> float:
    # float() would also take "inf", "nan", "1e300" and "1_0".
    if not _PAX_TIME.fullmatch(value):
        raise ValueError("bad pax mtime")
    return float(value)


def tar_members(blocks: Blocks, archive: str) -> Iterator[TarMember]:
    """Parse ustar, pax and GNU headers; the caller must consume each file's data."""
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    meta = run = total_meta = 0
    while True:
        if blocks.at_eof():
            # Every tar writer ends with zero blocks; without them the stream was cut short
            # (a truncated zstd frame decompresses to nothing, without an error).
            raise Truncated
        header = blocks.read(BLOCK)
        if header == _ZERO_BLOCK:
            return
        try:
            checksum = _number(header[148:156])
            size = _number(header[124:136])
            mode = _number(header[100:108])
            mtime = _number(header[136:148])
        except ValueError:
            raise ArchiveError("invalid tar header (not a tar archive?)", archive=archive) from None
        unsigned = sum(header[:148]) + sum(header[156:]) + 8 * 32
        if checksum != unsigned and checksum != _signed_checksum(header):
            raise ArchiveError("bad tar header checksum (not a tar archive?)", archive=archive)
        if not 0 <= size <= _MAX_MEMBER:
            # A negative size would make the reader move backwards, for ever.
            raise ArchiveError(f"invalid member size {size} in a tar header", archive=archive)
        typeflag = header[156]
        padded = -size % BLOCK
        if typeflag in b"LKxgV":
            run += 1
            if run > _MAX_META_RUN:
                raise ArchiveError("too many tar metadata headers in a row", archive=archive)
        if typeflag in b"LKxg":
            if size > _MAX_META:
                raise ArchiveError("oversized tar metadata header", archive=archive)
            meta += size
            total_meta += size
            if total_meta > _MAX_META_TOTAL:
                raise ArchiveError(
                    f"more than {_MAX_META_TOTAL >> 20} MiB of tar metadata headers",
                    archive=archive,
                )
            data = blocks.read(size)
            blocks.skip(padded)
            if typeflag == ord("L"):
                long_name = _text(data)
            elif typeflag == ord("K"):
                long_link = _text(data)
            else:
                try:
                    records = _parse_pax(data)
                except (ValueError, UnicodeDecodeError):
                    raise ArchiveError("invalid pax header", archive=archive) from None
                kept = {
                    key: value
                    for key, value in records.items()
                    if key in _PAX_KEYS or key.startswith("GNU.sparse")
                }
                (pax if typeflag == ord("x") else global_pax).update(kept)
            continue
        # POSIX: an empty value deletes the keyword, a global header's value included.
        fields = {key: value for key, value in {**global_pax, **pax}.items() if value}
        raw_name = long_name
        if raw_name is None:
            raw_name = _text(header[0:100])
            prefix = _text(header[345:500])
            if header[257:263] == b"ustar\0" and prefix:
                raw_name = prefix + b"/" + raw_name
        raw_link = long_link if long_link is not None else _text(header[157:257])
        pax, long_name, long_link = {}, None, None
        try:
            name = fields["path"] if "path" in fields else raw_name.decode("utf-8")
            linkname = fields["linkpath"] if "linkpath" in fields else raw_link.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError("member name is not UTF-8", archive=archive) from None
        try:
            if "size" in fields:
                size = _pax_size(fields["size"])
            when = _pax_mtime(fields["mtime"]) if "mtime" in fields else float(mtime)
        except ValueError:
            raise ArchiveError("invalid pax size or mtime", archive=archive, member=name) from None
        if size > _MAX_MEMBER:
            raise ArchiveError(f"invalid member size {size}", archive=archive, member=name)
        if not _MIN_MTIME <= when <= _MAX_MTIME:
            raise ArchiveError(
                f"modification time {when:.0f} out of range", archive=archive, member=name
            )
        if any(key.startswith("GNU.sparse") for key in fields) or typeflag == ord("S"):
            raise ArchiveError("sparse files are not supported", archive=archive, member=name)
        if typeflag in _REGULAR:
            kind = "dir" if typeflag == 0 and name.endswith("/") else "file"
        elif typeflag == ord("5"):
            kind = "dir"
        elif typeflag == ord("2"):
            kind = "symlink"
        elif typeflag == ord("1"):
            kind = "hardlink"
        elif typeflag in _DEVICE_TYPES:
            raise ArchiveError(f"{_DEVICE_TYPES[typeflag]} refused", archive=archive, member=name)
        elif typeflag == ord("V"):
            # A GNU volume label names the archive; it is not a member. GNU tar and tarfile
            # both skip its data blocks (tarfile skips the data of every type it does not
            # know), so the next header comes after them: reading that data as headers
            # would install members no listing shows. Real labels carry no data.
            if size > _MAX_META:
                raise ArchiveError("oversized tar volume label", archive=archive, member=name)
            meta += size
            blocks.skip(size + (-size % BLOCK))  # the pax size, if any
            continue
        else:
            # GNU 'M' (the rest of a file begun on another volume), 'N' (old long names),
            # Solaris 'X' and the rest: tarfile lists them (and would extract them as
            # regular files), so skipping them would hide members; refusing installs nothing.
            raise ArchiveError(
                f"unsupported tar member type {chr(typeflag)!r}", archive=archive, member=name
            )
        if kind != "file" and size:
            # Only regular files carry data (as in tarfile); anything else is malformed.
            raise ArchiveError(f"{kind} with data", archive=archive, member=name)
        yield TarMember(name, kind, size, mode, when, linkname, meta)
        meta = run = 0


def read_tar_member(
    archive: Path, fmt: ArchiveFormat, member: str, *, max_size: int = 1 << 20
) -> bytes | None:
    """The contents of the regular file ``member`` of a tar archive; ``None`` if absent.

    Names are compared without a leading ``./``. A malformed archive, or a ``member``
    larger than ``max_size``, raises :class:`ArchiveError`.
    """
    name = str(archive)
    with open(archive, "rb") as handle:
        blocks = Blocks(DECOMPRESSORS[fmt](RawReader(handle, hashed=False, on_progress=None), name))
        try:
            for entry in tar_members(blocks, name):
                size = entry.size if entry.kind == "file" else 0
                if entry.kind == "file" and entry.name.removeprefix("./") == member:
                    if size > max_size:
                        raise ArchiveError(
                            f"larger than {max_size} bytes", archive=name, member=entry.name
                        )
                    return blocks.read(size)
                blocks.skip(size + (-size % BLOCK))
        except Truncated:
            raise ArchiveError("truncated archive", archive=name) from None
    return None
