"""Safe streaming extraction of interpreter archives (tar.gz, tar.zst, tar.bz2, zip).

The tar reader is pylock's own: it streams members straight from the decompressor,
hashes the raw archive bytes as they are read, and checks every name and link itself
(Debian 12's Python 3.11.2 has no ``tarfile.data_filter``, and tarfile's per-member
overhead is a large share of a warm ``sync``). Decompression and parsing run on the
calling thread while a writer thread creates files and hashes their contents; the
queue between them is bounded, so memory stays small whatever the archive's size.

What a refused archive can never do: write outside ``dest``; write through a symlink
(even one pointing inside ``dest``); leave a symlink whose target resolves outside
``dest``; create a hardlink to anything but a regular file extracted before it; create
a device, FIFO or setuid file.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import queue
import re
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import attrs

from pylock.errors import ArchiveError, HashMismatchError
from pylock.versions import ArchiveFormat, Flavor, Implementation

_READ_SIZE = 1 << 20


class Readable(Protocol):
    """Anything with a binary ``read``: an open file, or a download still arriving."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all if negative); ``b""`` at the end."""
        ...


#: Upper bound of one decompressed chunk, so that a compression bomb cannot blow up memory.
_CHUNK_SIZE = 1 << 20
#: Batches of writer work in flight; with ~1 MiB per batch this caps buffered data.
_QUEUE_DEPTH = 4
_BATCH_BYTES = 1 << 20
_BATCH_OPS = 512
_BLOCK = 512
#: Limit for GNU long names and pax headers: real ones are a few hundred bytes.
_MAX_META = 1 << 20
_WINDOWS = sys.platform == "win32"
_DRIVE = re.compile(r"^[A-Za-z]:")
#: C0 and C1 control characters and DEL: no real member name has one, and a terminal obeys them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_UTIME_FD = os.utime in os.supports_fd


class Layout(enum.StrEnum):
    """Where the interpreter sits inside an archive, and so what to strip."""

    #: PBS ``install_only[_stripped]``: everything under ``python/``, which is stripped.
    PBS_INSTALL_ONLY = "pbs-install-only"
    #: PBS ``full``: only ``python/install/`` is extracted (build/, licenses/ are skipped).
    PBS_FULL = "pbs-full"
    #: PyPy, GraalPy, and others: one top directory (named after the stem), stripped.
    TOPDIR = "topdir"


@attrs.frozen(kw_only=True)
class RecordEntry:
    """One file or symlink written by an extraction."""

    #: Path relative to the install root, ``/``-separated.
    path: str
    #: Lowercase hex sha256 of the contents; ``None`` for a symlink.
    sha256: str | None
    #: Size in bytes (0 for a symlink).
    size: int
    #: The symlink's target as stored in the archive; ``None`` for a file.
    link: str | None = None
    #: Whether the file was made executable.
    executable: bool = False


def layout_for(implementation: Implementation, flavor: Flavor | None) -> Layout:
    """The layout of an upstream archive of this implementation and flavor.

    >>> layout_for(Implementation.CPYTHON, Flavor.FULL)
    <Layout.PBS_FULL: 'pbs-full'>
    >>> layout_for(Implementation.PYPY, None)
    <Layout.TOPDIR: 'topdir'>
    """
    if implementation is Implementation.CPYTHON:
        return Layout.PBS_FULL if flavor is Flavor.FULL else Layout.PBS_INSTALL_ONLY
    return Layout.TOPDIR


# -- names ---------------------------------------------------------------------------------


def _split_name(name: str, archive: str) -> list[str]:
    """The components of a member name, refusing every form that could leave ``dest``."""

    def refuse(why: str) -> ArchiveError:
        return ArchiveError(why, archive=archive, member=name)

    if not name or "\0" in name:
        raise refuse("empty member name or NUL in it")
    if not name.isprintable() and _CONTROL.search(name):
        raise refuse("control character in member name")
    if "\\" in name:
        # A separator on Windows, where ``..\\..\\x`` escapes; no real archive needs one.
        raise refuse("backslash in member name")
    if name.startswith("/"):
        raise refuse("absolute path")
    if _DRIVE.match(name):
        raise refuse("path with a drive letter")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise refuse("'..' in member name")
    if _WINDOWS and any(":" in part or part.endswith((".", " ")) for part in parts):
        raise refuse("name that Windows would alias to another file")
    return parts


def _join_link(parent: str, target: str) -> str | None:
    """Resolve a relative link target lexically from its directory; ``None`` if it escapes.

    >>> _join_link("lib", "libpython3.12.so.1.0"), _join_link("bin", "../lib/x")
    ('lib/libpython3.12.so.1.0', 'lib/x')
    >>> _join_link("bin", "../../etc/passwd") is None
    True
    """
    parts = parent.split("/") if parent else []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class _Namer:
    """Maps archive member names to paths inside ``dest`` for one layout."""

    def __init__(self, layout: Layout, archive: str) -> None:
        self.layout = layout
        self.archive = archive
        self.top: str | None = None

    def relpath(self, name: str, *, is_dir: bool) -> str | None:
        """The ``/``-joined path under ``dest``; ``None`` for members the layout skips."""
        parts = _split_name(name, self.archive)
        if not parts:
            if is_dir:
                return None
            raise ArchiveError("file with an empty path", archive=self.archive, member=name)
        if self.layout is Layout.TOPDIR:
            if self.top is None:
                self.top = parts[0]
            elif parts[0] != self.top:
                raise ArchiveError(
                    f"outside the archive's top directory {self.top}/ "
                    "(expected every member under one top directory)",
                    archive=self.archive,
                    member=name,
                )
            rest = parts[1:]
        else:
            if parts[0] != "python":
                raise ArchiveError(
                    "outside python/ (expected a python-build-standalone archive)",
                    archive=self.archive,
                    member=name,
                )
            if self.layout is Layout.PBS_FULL:
                if len(parts) < 2 or parts[1] != "install":
                    return None
                rest = parts[2:]
            else:
                rest = parts[1:]
        if not rest:
            if is_dir:
                return None
            raise ArchiveError(
                "a file where the top directory should be", archive=self.archive, member=name
            )
        return "/".join(rest)


# -- reading and decompressing ------------------------------------------------------------


class _RawReader:
    """Reads an archive file front to back, hashing and reporting every byte once."""

    def __init__(
        self, handle: Readable, *, hashed: bool, on_progress: Callable[[int], None] | None
    ) -> None:
        self._handle = handle
        self._hash = hashlib.sha256() if hashed else None
        self._on_progress = on_progress

    def read(self, size: int = _READ_SIZE) -> bytes:
        data = self._handle.read(size if size > 0 else _READ_SIZE)
        if data:
            if self._hash is not None:
                self._hash.update(data)
            if self._on_progress is not None:
                self._on_progress(len(data))
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the decompressor did not need, e.g. past the tar end."""
        while self.read():
            pass

    def hexdigest(self) -> str:
        assert self._hash is not None
        return self._hash.hexdigest()


def _zlib() -> Any:
    try:
        from isal import isal_zlib  # about twice as fast as zlib at inflating

        return isal_zlib
    except ImportError:  # pragma: no cover - isal is a CPython-only dependency
        import zlib

        return zlib


def _corrupt(archive: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"corrupt or truncated archive ({exc})", archive=archive)


def _gzip_chunks(raw: _RawReader, archive: str) -> Iterator[bytes]:
    zlib = _zlib()
    inflater = zlib.decompressobj(31)
    started = False
    while True:
        data = raw.read()
        if not data:
            break
        while data:
            try:
                out = inflater.decompress(data, _CHUNK_SIZE)
            except Exception as exc:
                raise _corrupt(archive, exc) from exc
            started = True
            if out:
                yield out
            if inflater.eof:
                # A multi-member gzip file: the next member starts right after.
                data = inflater.unused_data
                if data:
                    inflater = zlib.decompressobj(31)
            else:
                data = inflater.unconsumed_tail
    if not started or not inflater.eof:
        raise ArchiveError("truncated gzip stream", archive=archive)


def _bz2_chunks(raw: _RawReader, archive: str) -> Iterator[bytes]:
    import bz2

    decompressor = bz2.BZ2Decompressor()
    data = b""
    started = False
    while True:
        if decompressor.eof:
            # Parallel bzip2 tools write several streams back to back.
            data = decompressor.unused_data or raw.read()
            if not data:
                return
            decompressor = bz2.BZ2Decompressor()
        try:
            if decompressor.needs_input:
                if not data:
                    data = raw.read()
                    if not data:
                        raise ArchiveError(
                            "truncated bzip2 stream" if started else "empty archive",
                            archive=archive,
                        )
                out = decompressor.decompress(data, _CHUNK_SIZE)
                data = b""
            else:
                out = decompressor.decompress(b"", _CHUNK_SIZE)
        except (OSError, EOFError, ValueError) as exc:
            raise _corrupt(archive, exc) from exc
        started = True
        if out:
            yield out


def _zstd_chunks(raw: _RawReader, archive: str) -> Iterator[bytes]:
    import zstandard

    # The stream reader only calls ``read``; typing wants a whole IO.
    source: Any = raw
    reader = zstandard.ZstdDecompressor().stream_reader(
        source, read_size=_READ_SIZE, read_across_frames=True
    )
    while True:
        try:
            out = reader.read(_CHUNK_SIZE)
        except zstandard.ZstdError as exc:
            raise _corrupt(archive, exc) from exc
        if not out:
            return
        yield out


_DECOMPRESSORS: dict[ArchiveFormat, Callable[[_RawReader, str], Iterator[bytes]]] = {
    ArchiveFormat.TAR_GZ: _gzip_chunks,
    ArchiveFormat.TAR_BZ2: _bz2_chunks,
    ArchiveFormat.TAR_ZST: _zstd_chunks,
}


# -- the tar stream ----------------------------------------------------------------------


class _Truncated(Exception):
    pass


class _Blocks:
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
            raise _Truncated  # never reached (sizes are checked); must not move backwards
        end = self._pos + size
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        need = size - len(parts[0])
        while need:
            if not self._fill():
                raise _Truncated
            take = min(need, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            need -= take
        return b"".join(parts)

    def views(self, size: int) -> Iterator[memoryview]:
        if size < 0:
            raise _Truncated  # never reached (sizes are checked); must not loop for ever
        while size:
            if self._pos >= len(self._buf) and not self._fill():
                raise _Truncated
            take = min(size, len(self._buf) - self._pos)
            yield memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            size -= take

    def skip(self, size: int) -> None:
        for _ in self.views(size):
            pass


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
_ZERO_BLOCK = bytes(_BLOCK)


@attrs.frozen
class _TarMember:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink"
    size: int
    mode: int
    mtime: float
    linkname: str


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
    pos = 0
    while pos < len(data) and data[pos] != 0:
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


def _tar_members(blocks: _Blocks, archive: str) -> Iterator[_TarMember]:
    """Parse ustar, pax and GNU headers; the caller must consume each file's data."""
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    while True:
        if blocks.at_eof():
            # Every tar writer ends with zero blocks; without them the stream was cut short
            # (a truncated zstd frame decompresses to nothing, without an error).
            raise _Truncated
        header = blocks.read(_BLOCK)
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
        padded = -size % _BLOCK
        if typeflag in b"LKxg":
            if size > _MAX_META:
                raise ArchiveError("oversized tar metadata header", archive=archive)
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
                (pax if typeflag == ord("x") else global_pax).update(records)
            continue
        fields = {**global_pax, **pax}
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
            continue  # a GNU volume label carries no data
        else:
            raise ArchiveError(
                f"unsupported tar member type {chr(typeflag)!r}", archive=archive, member=name
            )
        if kind != "file" and size:
            # Only regular files carry data (as in tarfile); anything else is malformed.
            raise ArchiveError(f"{kind} with data", archive=archive, member=name)
        yield _TarMember(name, kind, size, mode, when, linkname)


# -- writing -----------------------------------------------------------------------------

_MKDIR, _FILE, _DATA, _END, _SYMLINK, _HARDLINK = range(6)


class _Writer:
    """Carries out filesystem operations; every path has been checked before it gets here."""

    def __init__(self, dest: str, archive: str) -> None:
        self.dest = dest
        self.archive = archive
        self.entries: list[RecordEntry] = []
        self._by_path: dict[str, RecordEntry] = {}
        self._fd = -1
        self._hash: Any = None
        self._size = 0
        self._rel = ""
        self._executable = False
        self._mtime = 0.0

    def _path(self, rel: str) -> str:
        return os.path.join(self.dest, rel.replace("/", os.sep) if _WINDOWS else rel)

    def run(self, ops: list[tuple[Any, ...]]) -> None:
        for op in ops:
            code = op[0]
            if code == _DATA:
                self._write(op[1])
            elif code == _FILE:
                self._open(op[1], op[2], op[3])
                for view in op[4]:
                    self._write(view)
                if op[5]:
                    self._close()
            elif code == _END:
                self._close()
            elif code == _MKDIR:
                self._mkdir(op[1])
            elif code == _SYMLINK:
                self._symlink(op[1], op[2])
            elif code == _HARDLINK:
                self._hardlink(op[1], op[2])

    def _mkdir(self, rel: str) -> None:
        path = self._path(rel)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise self._collision(rel) from None

    def _collision(self, rel: str) -> ArchiveError:
        return ArchiveError(
            "two members map to one path (names that differ only in case?)",
            archive=self.archive,
            member=rel,
        )

    def _open(self, rel: str, executable: bool, mtime: float) -> None:
        try:
            self._fd = os.open(self._path(rel), _OPEN_FLAGS, 0o755 if executable else 0o644)
        except FileExistsError:
            raise self._collision(rel) from None
        self._hash = hashlib.sha256()
        self._size = 0
        self._rel = rel
        self._executable = executable
        self._mtime = mtime

    def _write(self, view: memoryview) -> None:
        self._hash.update(view)
        self._size += len(view)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        try:
            if _UTIME_FD:
                os.utime(fd, (self._mtime, self._mtime))
        finally:
            os.close(fd)
        if not _UTIME_FD:
            os.utime(self._path(self._rel), (self._mtime, self._mtime))
        self._add(
            RecordEntry(
                path=self._rel,
                sha256=self._hash.hexdigest(),
                size=self._size,
                executable=self._executable,
            )
        )

    def _add(self, entry: RecordEntry) -> None:
        self.entries.append(entry)
        self._by_path[entry.path] = entry

    def _symlink(self, rel: str, target: str) -> None:
        try:
            os.symlink(target, self._path(rel))
        except FileExistsError:
            raise self._collision(rel) from None
        except OSError:
            if not _WINDOWS:
                raise
            # Windows without Developer Mode cannot create symlinks: copy the file instead.
            source = self._by_path.get(_join_link(rel.rpartition("/")[0], target) or "")
            if source is None or source.link is not None:
                raise ArchiveError(
                    "cannot create a symlink here (enable Windows Developer Mode)",
                    archive=self.archive,
                    member=rel,
                ) from None
            shutil.copyfile(self._path(source.path), self._path(rel))
            self._add(attrs.evolve(source, path=rel))
            return
        self._add(RecordEntry(path=rel, sha256=None, size=0, link=target))

    def _hardlink(self, rel: str, source_rel: str) -> None:
        source = self._by_path[source_rel]
        try:
            os.link(self._path(source_rel), self._path(rel))
        except FileExistsError:
            raise self._collision(rel) from None
        except OSError:
            shutil.copy2(self._path(source_rel), self._path(rel), follow_symlinks=False)
        self._add(attrs.evolve(source, path=rel))

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _InlineSink:
    """Runs writer operations on the calling thread (one CPU, or tiny archives)."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def submit(self, ops: list[tuple[Any, ...]]) -> None:
        self.writer.run(ops)

    def close(self, *, abort: bool) -> None:
        if abort:
            self.writer.abort()


class _ThreadSink:
    """Runs writer operations on a second thread, so writing overlaps decompression."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.error: BaseException | None = None
        self._queue: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._loop, name="pylock-extract", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ops = self._queue.get()
            if ops is None:
                return
            if self.error is None:
                try:
                    self.writer.run(ops)
                except BaseException as exc:
                    self.error = exc
                    self.writer.abort()
            # After an error keep consuming, so the producer never blocks on a full queue.

    def submit(self, ops: list[tuple[Any, ...]]) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(ops)

    def close(self, *, abort: bool) -> None:
        self._queue.put(None)
        self._thread.join()
        if abort:
            self.writer.abort()
        elif self.error is not None:
            raise self.error


# -- the extraction ----------------------------------------------------------------------


class _Extraction:
    """Checks each member against everything extracted before it, then queues the writes."""

    def __init__(self, dest: str, archive: str, namer: _Namer, threaded: bool) -> None:
        self.archive = archive
        self.namer = namer
        self.writer = _Writer(dest, archive)
        self.sink: _InlineSink | _ThreadSink = (
            _ThreadSink(self.writer) if threaded else _InlineSink(self.writer)
        )
        #: Paths created so far: ``f`` file, ``d`` directory, ``l`` symlink.
        self.kinds: dict[str, str] = {"": "d"}
        #: Case-folded symlink paths: on macOS and Windows ``Lib/x`` can reach ``lib -> ...``.
        self.folded_links: set[str] = set()
        self.symlinks: list[str] = []
        self._ops: list[tuple[Any, ...]] = []
        self._bytes = 0

    def _refuse(self, message: str, member: str) -> ArchiveError:
        return ArchiveError(message, archive=self.archive, member=member)

    def _flush(self) -> None:
        if self._ops:
            ops, self._ops, self._bytes = self._ops, [], 0
            self.sink.submit(ops)

    def _queue(self, op: tuple[Any, ...], size: int = 0) -> None:
        self._ops.append(op)
        self._bytes += size
        if self._bytes >= _BATCH_BYTES or len(self._ops) >= _BATCH_OPS:
            self._flush()

    def _parents(self, rel: str, member: str) -> None:
        """Create the missing parents of ``rel``, refusing to pass through a link or file."""
        parent = rel.rpartition("/")[0]
        if self.kinds.get(parent) == "d":
            return
        missing = []
        while self.kinds.get(parent) != "d":
            kind = self.kinds.get(parent)
            if kind == "l" or parent.casefold() in self.folded_links:
                raise self._refuse(f"would write through the symlink {parent}", member)
            if kind == "f":
                raise self._refuse(f"{parent} is a file, not a directory", member)
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for path in reversed(missing):
            self.kinds[path] = "d"
            self._queue((_MKDIR, path))

    def _claim(self, rel: str, kind: str, member: str) -> None:
        self._parents(rel, member)
        if rel in self.kinds:
            raise self._refuse(f"duplicate member for {rel}", member)
        if rel.casefold() in self.folded_links:
            raise self._refuse(f"would overwrite the symlink {rel}", member)
        self.kinds[rel] = kind

    def directory(self, rel: str, member: str) -> None:
        existing = self.kinds.get(rel)
        if existing == "d":
            return
        if existing is not None or rel.casefold() in self.folded_links:
            raise self._refuse(f"directory conflicts with an earlier member {rel}", member)
        self._parents(rel, member)
        self.kinds[rel] = "d"
        self._queue((_MKDIR, rel))

    def file(
        self,
        rel: str,
        member: str,
        *,
        executable: bool,
        mtime: float,
        data: Iterable[memoryview],
    ) -> None:
        self._claim(rel, "f", member)
        first: list[memoryview] = []
        pending = 0
        opened = False
        for view in data:
            if opened:
                self._queue((_DATA, view), len(view))
                continue
            first.append(view)
            pending += len(view)
            if pending >= _CHUNK_SIZE:
                # A large file: open it now and stream the rest, chunk by chunk.
                self._queue((_FILE, rel, executable, mtime, first, False), pending)
                opened = True
        if opened:
            self._queue((_END,))
        else:
            self._queue((_FILE, rel, executable, mtime, first, True), pending)

    def symlink(self, rel: str, target: str, member: str) -> None:
        if not target or "\0" in target:
            raise self._refuse("symlink with an empty target", member)
        if _CONTROL.search(target):
            raise self._refuse("control character in symlink target", member)
        if target.startswith(("/", "\\")) or _DRIVE.match(target):
            raise self._refuse(f"symlink to an absolute path {target}", member)
        if "\\" in target:
            raise self._refuse(f"backslash in symlink target {target}", member)
        if _join_link(rel.rpartition("/")[0], target) is None:
            raise self._refuse(f"symlink target {target} escapes the destination", member)
        self._claim(rel, "l", member)
        self.folded_links.add(rel.casefold())
        self.symlinks.append(rel)
        self._queue((_SYMLINK, rel, target))

    def hardlink(self, rel: str, linkname: str, member: str) -> None:
        try:
            source = self.namer.relpath(linkname, is_dir=False)
        except ArchiveError:
            raise self._refuse(f"hardlink to {linkname}, outside the destination", member) from None
        if source is None or self.kinds.get(source) != "f":
            raise self._refuse(
                f"hardlink to {linkname}, which is not a file extracted before it", member
            )
        self._claim(rel, "f", member)
        self._queue((_HARDLINK, rel, source))

    def finish(self) -> list[RecordEntry]:
        self._flush()
        self.sink.close(abort=False)
        return self.writer.entries

    def abort(self) -> None:
        self._ops = []
        self.sink.close(abort=True)


def _extract_tar(raw: _RawReader, extraction: _Extraction, fmt: ArchiveFormat) -> None:
    archive = extraction.archive
    namer = extraction.namer
    blocks = _Blocks(_DECOMPRESSORS[fmt](raw, archive))
    try:
        for member in _tar_members(blocks, archive):
            name = member.name
            rel = namer.relpath(name, is_dir=member.kind == "dir")
            if rel is None:
                blocks.skip(member.size + (-member.size % _BLOCK))
                continue
            if member.kind == "file":
                extraction.file(
                    rel,
                    name,
                    executable=bool(member.mode & 0o111),
                    mtime=member.mtime,
                    data=blocks.views(member.size),
                )
                blocks.skip(-member.size % _BLOCK)
            elif member.kind == "dir":
                extraction.directory(rel, name)
            elif member.kind == "symlink":
                extraction.symlink(rel, member.linkname, name)
            else:
                extraction.hardlink(rel, member.linkname, name)
    except _Truncated:
        raise ArchiveError("truncated archive", archive=archive) from None


def _extract_zip(
    path: Path, raw: _RawReader, extraction: _Extraction, expected_sha256: str | None
) -> None:
    import zipfile

    archive = extraction.archive
    # A zip is read through its central directory, out of order; hash it in one sequential
    # pass first, so that a corrupt download is caught before anything is written.
    raw.drain()
    if expected_sha256 is not None and raw.hexdigest() != expected_sha256:
        raise HashMismatchError(url=archive, expected=expected_sha256, actual=raw.hexdigest())
    try:
        handle = zipfile.ZipFile(path)
    except _zip_errors(OSError) as exc:
        raise _corrupt(archive, exc) from exc
    with handle:
        for info in handle.infolist():
            name = info.filename
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                raise ArchiveError(
                    "symlinks in zip archives are refused", archive=archive, member=name
                )
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ArchiveError("device or special file refused", archive=archive, member=name)
            if info.flag_bits & 0x1:
                raise ArchiveError("encrypted member", archive=archive, member=name)
            is_dir = info.is_dir() or stat.S_ISDIR(mode)
            rel = extraction.namer.relpath(name, is_dir=is_dir)
            if rel is None:
                continue
            if is_dir:
                extraction.directory(rel, name)
                continue
            mtime = _zip_mtime(info)
            try:
                stream = handle.open(info)
            except _zip_errors(OSError) as exc:
                raise ArchiveError(
                    f"cannot read member ({exc})", archive=archive, member=name
                ) from exc
            with stream:
                extraction.file(
                    rel,
                    name,
                    executable=bool(mode & 0o111),
                    mtime=mtime,
                    data=_zip_views(stream, archive, name),
                )


def _zip_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
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


def _zip_views(stream: IO[bytes], archive: str, member: str) -> Iterator[memoryview]:
    while True:
        try:
            data = stream.read(_CHUNK_SIZE)
        except _zip_errors(OSError) as exc:
            # Only the read is guarded: a full disk while writing must propagate as it is.
            raise ArchiveError(
                f"cannot read member ({exc})", archive=archive, member=member
            ) from exc
        if not data:
            return
        yield memoryview(data)


def _zip_mtime(info: Any) -> float:
    import time

    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _check_symlinks(dest: str, symlinks: list[str], archive: str) -> None:
    """Resolve every symlink on disk: chains of links that each look fine can still escape."""
    root = os.path.realpath(dest)
    escaping = []
    for rel in symlinks:
        path = os.path.join(dest, rel)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            escaping.append((rel, path))
    for _, path in escaping:
        # Do not leave a way out behind, even for a caller that forgets to delete ``dest``.
        os.unlink(path)
    if escaping:
        raise ArchiveError(
            "symlink resolves outside the destination (through other links)",
            archive=archive,
            member=escaping[0][0],
        )


def _prepare_dest(dest: Path) -> str:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"extraction target {dest} is not empty")
    return os.path.abspath(dest)


def extract_archive(
    archive: Path,
    dest: Path,
    *,
    fmt: ArchiveFormat,
    layout: Layout,
    expected_sha256: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    threaded: bool | None = None,
    source: Readable | None = None,
) -> list[RecordEntry]:
    """Extract ``archive`` into the empty (or new) directory ``dest``; return what was written.

    ``source``, if given, is read instead of opening ``archive`` (which then only names
    it in messages): a tar still arriving, see :mod:`pylock.net.stream`. Zip archives need
    a seekable file and cannot be streamed.

    ``layout`` says which top directory to strip. When ``expected_sha256`` is given the raw
    archive bytes are hashed as they are read, and :class:`HashMismatchError` is raised
    after extraction if they differ; a corrupt archive that also fails to decompress gets
    the same error, so the caller can evict it and download it again. ``on_progress``
    receives counts of archive bytes read. A hostile or malformed archive raises
    :class:`ArchiveError`; nothing is ever written outside ``dest``, and on any error the
    caller must delete ``dest``. ``OSError`` (a full disk) propagates unchanged.
    """
    name = str(archive)
    dest_path = _prepare_dest(dest)
    if threaded is None:
        threaded = (os.cpu_count() or 1) > 1
    namer = _Namer(layout, name)
    if source is not None and fmt is ArchiveFormat.ZIP:
        raise ValueError("zip archives cannot be extracted from a stream")
    with contextlib.ExitStack() as stack:
        handle = source if source is not None else stack.enter_context(open(archive, "rb"))
        raw = _RawReader(handle, hashed=expected_sha256 is not None, on_progress=on_progress)
        extraction = _Extraction(dest_path, name, namer, threaded and fmt is not ArchiveFormat.ZIP)
        try:
            if fmt is ArchiveFormat.ZIP:
                _extract_zip(archive, raw, extraction, expected_sha256)
            else:
                _extract_tar(raw, extraction, fmt)
            entries = extraction.finish()
            if not entries:
                raise ArchiveError(
                    f"no files to install (is the layout {layout} right for it?)", archive=name
                )
        except ArchiveError as exc:
            extraction.abort()
            if expected_sha256 is not None:
                raw.drain()
                actual = raw.hexdigest()
                if actual != expected_sha256:
                    raise HashMismatchError(
                        url=name, expected=expected_sha256, actual=actual
                    ) from exc
            raise
        except BaseException:
            extraction.abort()
            raise
        raw.drain()
    if expected_sha256 is not None and raw.hexdigest() != expected_sha256:
        raise HashMismatchError(url=name, expected=expected_sha256, actual=raw.hexdigest())
    _check_symlinks(dest_path, extraction.symlinks, name)
    return entries


def detect_layout(archive: Path, fmt: ArchiveFormat) -> Layout:
    """Tell the layout of a direct-URL archive from its first members.

    ``python/install/`` (or ``python/PYTHON.json``) means a PBS full archive, other
    ``python/`` members an install_only one, and a single other top directory
    :attr:`Layout.TOPDIR`. Anything else raises :class:`ArchiveError`.
    """
    name = str(archive)
    members = list(_first_members(archive, fmt, limit=64))
    if not members:
        raise ArchiveError("the archive is empty", archive=name)
    tops: dict[str, None] = {}
    for member, is_dir in members:
        parts = _split_name(member, name)
        if not parts:
            continue
        if len(parts) == 1 and not is_dir:
            raise ArchiveError(
                "a file at the top level (expected one top directory, such as python/)",
                archive=name,
                member=member,
            )
        tops[parts[0]] = None
        if parts[0] == "python" and len(parts) > 1:
            if parts[1] in ("install", "build", "licenses", "PYTHON.json"):
                return Layout.PBS_FULL
            return Layout.PBS_INSTALL_ONLY
    if len(tops) != 1:
        listing = ", ".join(f"{top}/" for top in list(tops)[:5]) or "none"
        raise ArchiveError(f"expected exactly one top directory, found: {listing}", archive=name)
    return Layout.TOPDIR


def read_tar_member(
    archive: Path, fmt: ArchiveFormat, member: str, *, max_size: int = 1 << 20
) -> bytes | None:
    """The contents of the regular file ``member`` of a tar archive; ``None`` if absent.

    Names are compared without a leading ``./``. A malformed archive, or a ``member``
    larger than ``max_size``, raises :class:`ArchiveError`.
    """
    name = str(archive)
    with open(archive, "rb") as handle:
        blocks = _Blocks(
            _DECOMPRESSORS[fmt](_RawReader(handle, hashed=False, on_progress=None), name)
        )
        try:
            for entry in _tar_members(blocks, name):
                size = entry.size if entry.kind == "file" else 0
                if entry.kind == "file" and entry.name.removeprefix("./") == member:
                    if size > max_size:
                        raise ArchiveError(
                            f"larger than {max_size} bytes", archive=name, member=entry.name
                        )
                    return blocks.read(size)
                blocks.skip(size + (-size % _BLOCK))
        except _Truncated:
            raise ArchiveError("truncated archive", archive=name) from None
    return None


def _first_members(archive: Path, fmt: ArchiveFormat, *, limit: int) -> Iterator[tuple[str, bool]]:
    name = str(archive)
    if fmt is ArchiveFormat.ZIP:
        import zipfile

        try:
            with zipfile.ZipFile(archive) as handle:
                infos = handle.infolist()
        except _zip_errors(OSError) as exc:
            raise _corrupt(name, exc) from exc
        for info in infos:
            yield info.filename, info.is_dir()
        return
    with open(archive, "rb") as handle:
        blocks = _Blocks(
            _DECOMPRESSORS[fmt](_RawReader(handle, hashed=False, on_progress=None), name)
        )
        try:
            for count, member in enumerate(_tar_members(blocks, name)):
                yield member.name, member.kind == "dir"
                if count + 1 >= limit:
                    return
                if member.kind == "file":
                    blocks.skip(member.size + (-member.size % _BLOCK))
        except _Truncated:
            raise ArchiveError("truncated archive", archive=name) from None
