"""Decompressors for tar archives: gzip (isal, else zlib), bzip2 and zstd, as bounded chunks.

:class:`RawReader` reads the archive file front to back, hashing and reporting every raw
byte once; each decompressor turns it into decompressed chunks of at most
:data:`CHUNK_SIZE` bytes, so that a compression bomb cannot blow up memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pylock.errors import ArchiveError
from pylock.versions import ArchiveFormat

READ_SIZE = 1 << 20


class Readable(Protocol):
    """Anything with a binary ``read``: an open file, or a download still arriving."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all if negative); ``b""`` at the end."""
        ...


#: Upper bound of one decompressed chunk, so that a compression bomb cannot blow up memory.
CHUNK_SIZE = 1 << 20


class RawReader:
    """Reads an archive file front to back, hashing and reporting every byte once."""

    def __init__(
        self, handle: Readable, *, hashed: bool, on_progress: Callable[[int], None] | None
    ) -> None:
        self._handle = handle
        self._hash = hashlib.sha256() if hashed else None
        self._on_progress = on_progress
        #: If set, ``defer(hash, data)`` is called instead of ``hash.update(data)``, to
        #: update the hash on another thread, in order (see ``pylock.archive.extract``).
        self.defer: Callable[[Any, bytes], None] | None = None

    @property
    def hashed(self) -> bool:
        return self._hash is not None

    def read(self, size: int = READ_SIZE) -> bytes:
        data = self._handle.read(size if size > 0 else READ_SIZE)
        if data:
            if self._hash is not None:
                if self.defer is None:
                    self._hash.update(data)
                else:
                    self.defer(self._hash, data)
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
    except (ImportError, OSError):  # not installed where it has no wheel; or its library
        import zlib  # could not be loaded

        return zlib


def corrupt(archive: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"corrupt or truncated archive ({exc})", archive=archive)


def undecodable(
    archive: str, exc: BaseException, kind: str, *, head: bytes, magic: bytes, started: bool
) -> ArchiveError:
    """The error for ``kind`` data its decompressor refused: not that kind at all, when it
    refused the stream's first bytes (``head``) and they lack the format's ``magic``;
    else corrupt or truncated."""
    if not started and not head.startswith(magic):
        return not_compressed_as_named(archive, kind)
    return corrupt(archive, exc)


def not_compressed_as_named(archive: str, kind: str) -> ArchiveError:
    """The error for an archive whose first bytes are no ``kind`` data at all: not one cut
    short or damaged, but something else under an archive's name."""
    return ArchiveError(
        f"not {kind} data, as the file name says: the URL serves something else (a web "
        "page, another format), or the file is misnamed",
        archive=archive,
    )


#: Compressed bytes read per step of gzip. Inflating more input than one chunk's worth
#: (about a third of :data:`CHUNK_SIZE` for a typical archive) leaves a tail that every
#: later call copies again: with whole megabytes, that made inflating about 12% slower.
_GZIP_READ_SIZE = 1 << 18


def _gzip_chunks(raw: RawReader, archive: str) -> Iterator[bytes]:
    zlib = _zlib()
    inflater = zlib.decompressobj(31)
    started = False
    while True:
        data = raw.read(_GZIP_READ_SIZE)
        if not data:
            break
        while data:
            try:
                out = inflater.decompress(data, CHUNK_SIZE)
            except Exception as exc:
                why = undecodable(
                    archive, exc, "gzip", head=data, magic=b"\x1f\x8b", started=started
                )
                raise why from exc
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


def _bz2_chunks(raw: RawReader, archive: str) -> Iterator[bytes]:
    import bz2

    decompressor = bz2.BZ2Decompressor()
    data = b""
    head = b""  # the stream's first bytes: "BZh" where it is bzip2 at all
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
                    head = head or data[:3]
                out = decompressor.decompress(data, CHUNK_SIZE)
                data = b""
            else:
                out = decompressor.decompress(b"", CHUNK_SIZE)
        except (OSError, EOFError, ValueError) as exc:
            why = undecodable(archive, exc, "bzip2", head=head, magic=b"BZh", started=started)
            raise why from exc
        started = True
        if out:
            yield out


def _zstd_chunks(raw: RawReader, archive: str) -> Iterator[bytes]:
    import zstandard

    # The stream reader only calls ``read``; typing wants a whole IO.
    source: Any = raw
    reader = zstandard.ZstdDecompressor().stream_reader(
        source, read_size=READ_SIZE, read_across_frames=True
    )
    while True:
        try:
            out = reader.read(CHUNK_SIZE)
        except zstandard.ZstdError as exc:
            raise corrupt(archive, exc) from exc
        if not out:
            return
        yield out


DECOMPRESSORS: dict[ArchiveFormat, Callable[[RawReader, str], Iterator[bytes]]] = {
    ArchiveFormat.TAR_GZ: _gzip_chunks,
    ArchiveFormat.TAR_BZ2: _bz2_chunks,
    ArchiveFormat.TAR_ZST: _zstd_chunks,
}
