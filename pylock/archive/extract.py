"""Safe streaming extraction of interpreter archives (tar.gz, tar.zst, tar.bz2, zip).

:func:`extract_archive` is the entry point. It reads members from the tar reader
(:mod:`~pylock.archive.tar`, fed by :mod:`~pylock.archive.codecs`) or from a zip
(:mod:`~pylock.archive.zip`), maps their names for the layout
(:mod:`~pylock.archive.layout`), checks each one against the policy
(:mod:`~pylock.archive.policy`) and against everything extracted before it, and queues
the writes for the writer (:mod:`~pylock.archive.writer`).

What a refused archive can never do: write outside ``dest``; write through a symlink
(even one pointing inside ``dest``); leave a symlink whose target resolves outside
``dest``; create a hardlink to anything but a regular file extracted before it; create
a device, FIFO or setuid file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pylock.archive.codecs import CHUNK_SIZE, DECOMPRESSORS, RawReader, Readable, corrupt
from pylock.archive.layout import Layout, Namer
from pylock.archive.policy import MAX_MEMBERS as MAX_MEMBERS
from pylock.archive.policy import amount, check_symlinks, limit_error, link_target_problem
from pylock.archive.tar import BLOCK, Blocks, Truncated, tar_members
from pylock.archive.writer import (
    DATA,
    END,
    FILE,
    HARDLINK,
    HASH,
    MKDIR,
    SYMLINK,
    InlineSink,
    RecordEntry,
    ThreadSink,
    Writer,
)
from pylock.archive.zip import (
    check_member_count,
    member_mode,
    open_member,
    zip_errors,
    zip_mtime,
    zip_views,
)
from pylock.errors import ArchiveError, HashMismatchError
from pylock.fsutil import sha256_file
from pylock.settings import usable_cpus
from pylock.versions import ArchiveFormat

_BATCH_BYTES = 1 << 20
_BATCH_OPS = 512

#: Most bytes an archive may unpack to: every member's data, skipped members and what
#: follows the tar end included. The largest real archives (PBS ``full`` builds, GraalPy
#: JVM builds) unpack to under 1 GB; 4 GiB is 4x that, and keeps a few KB of bzip2 from
#: filling a CI runner's disk.
MAX_UNPACKED = 4 << 30


class _Extraction:
    """Checks each member against everything extracted before it, then queues the writes."""

    def __init__(
        self,
        dest: str,
        archive: str,
        namer: Namer,
        threaded: bool,
        known: Mapping[str, tuple[int, str]] | None = None,
        *,
        on_file: Callable[[str], None] | None = None,
        max_members: int = MAX_MEMBERS,
        max_unpacked: int = MAX_UNPACKED,
    ) -> None:
        self.archive = archive
        self.namer = namer
        self.writer = Writer(dest, archive, known, on_file)
        self.threaded = threaded
        self.sink: InlineSink | ThreadSink = (
            ThreadSink(self.writer) if threaded else InlineSink(self.writer)
        )
        #: Paths created so far: ``f`` file, ``d`` directory, ``l`` symlink.
        self.kinds: dict[str, str] = {"": "d"}
        #: Case-folded symlink paths: on macOS and Windows ``Lib/x`` can reach ``lib -> ...``.
        self.folded_links: set[str] = set()
        self.symlinks: list[str] = []
        self._ops: list[tuple[Any, ...]] = []
        self._bytes = 0
        #: The chunk the last view queued was part of (see :meth:`_pinned`).
        self._last_chunk: object = None
        self.max_members = max_members
        self.max_unpacked = max_unpacked
        #: Members seen and bytes of data they declare, skipped ones too (see ``admit``).
        self.members = 0
        self.unpacked = 0

    def _refuse(self, message: str, member: str) -> ArchiveError:
        return ArchiveError(message, archive=self.archive, member=member)

    def admit(self, member: str, size: int) -> int:
        """Count a member, and the ``size`` bytes of data it declares, against the limits;
        return how many of those bytes the unpacked-size limit still allows.

        Called before its data is read: each member's size is known from its header (a
        zip member cannot produce more than its declared size), so nothing is counted
        per byte.
        """
        self.members += 1
        if self.members > self.max_members:
            raise limit_error(
                f"more than {self.max_members:,} members (pylock's limit per archive)",
                archive=self.archive,
                member=member,
            )
        allowed = min(size, self.max_unpacked - self.unpacked)
        self.unpacked += size
        return allowed

    def over_limit(self, member: str | None) -> ArchiveError:
        where = "" if member is not None else ", after the end of the tar archive"
        return limit_error(
            f"unpacks to more than {amount(self.max_unpacked)} (pylock's limit per archive){where}",
            archive=self.archive,
            member=member,
        )

    def other_bytes(self, size: int, member: str | None = None) -> None:
        """Count ``size`` bytes that are no member's data against the limit: what follows
        the end of a tar archive, or the metadata headers before ``member``."""
        self.unpacked += size
        if self.unpacked > self.max_unpacked:
            raise self.over_limit(member)

    def _flush(self) -> None:
        if self._ops:
            ops, self._ops, self._bytes = self._ops, [], 0
            self.sink.submit(ops)

    def _pinned(self, view: memoryview) -> int:
        """The bytes queuing ``view`` keeps in memory: all of the chunk it is a view of,
        counted with the first view of it. A one-byte file among skipped members pinned a
        whole decompressed megabyte, and a batch of them half a gigabyte (attack). A batch
        may hold views of one chunk counted in the batch before: one chunk more."""
        chunk = view.obj
        if chunk is self._last_chunk:
            return 0
        self._last_chunk = chunk
        return len(chunk) if isinstance(chunk, bytes | bytearray) else len(view)

    def _queue(self, op: tuple[Any, ...], size: int = 0) -> None:
        self._ops.append(op)
        self._bytes += size
        if self._bytes >= _BATCH_BYTES or len(self._ops) >= _BATCH_OPS:
            self._flush()

    def hash_later(self, hasher: Any, data: bytes) -> None:
        """Have the writer thread update ``hasher`` with ``data``, in archive order."""
        self._queue((HASH, hasher, data), len(data))

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
            self._queue((MKDIR, path))

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
        self._queue((MKDIR, rel))

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
        pending = held = 0
        opened = False
        for view in data:
            if opened:
                self._queue((DATA, view), self._pinned(view))
                continue
            first.append(view)
            pending += len(view)
            held += self._pinned(view)
            if pending >= CHUNK_SIZE:
                # A large file: open it now and stream the rest, chunk by chunk.
                self._queue((FILE, rel, executable, mtime, first, False), held)
                opened = True
        if opened:
            self._queue((END,))
        else:
            self._queue((FILE, rel, executable, mtime, first, True), held)

    def symlink(self, rel: str, target: str, member: str) -> None:
        problem = link_target_problem(rel, target)
        if problem is not None:
            raise self._refuse(problem, member)
        self._claim(rel, "l", member)
        self.folded_links.add(rel.casefold())
        self.symlinks.append(rel)
        self._queue((SYMLINK, rel, target))

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
        self._queue((HARDLINK, rel, source))

    def finish(self) -> list[RecordEntry]:
        self._flush()
        self.sink.close(abort=False)
        return self.writer.entries

    def abort(self) -> None:
        self._ops = []
        self.sink.close(abort=True)


def _extract_tar(raw: RawReader, extraction: _Extraction, fmt: ArchiveFormat) -> None:
    archive = extraction.archive
    namer = extraction.namer
    blocks = Blocks(DECOMPRESSORS[fmt](raw, archive))
    try:
        for member in tar_members(blocks, archive):
            name = member.name
            if member.meta:
                extraction.other_bytes(member.meta, name)  # its pax or long-name headers
            allowed = extraction.admit(name, member.size)
            if allowed < member.size:
                # Read up to the limit first: a header that claims more than the stream
                # holds is a truncated archive, and is reported as one.
                blocks.skip(allowed)
                raise extraction.over_limit(name)
            rel = namer.relpath(name, is_dir=member.kind == "dir")
            if rel is None:
                blocks.skip(member.size + (-member.size % BLOCK))
                continue
            if member.kind == "file":
                extraction.file(
                    rel,
                    name,
                    executable=bool(member.mode & 0o111),
                    mtime=member.mtime,
                    data=blocks.views(member.size),
                )
                blocks.skip(-member.size % BLOCK)
            elif member.kind == "dir":
                extraction.directory(rel, name)
            elif member.kind == "symlink":
                extraction.symlink(rel, member.linkname, name)
            else:
                extraction.hardlink(rel, member.linkname, name)
        # Read the compressed stream to its end, not only to the tar's first end block:
        # only there do gzip and bzip2 check their CRCs, and only there is data after
        # the last compressed stream seen. Such data is refused by all three codecs
        # alike (zstd's reader always read ahead into it and refused it). The lock's
        # sha256 covers every byte, so this is not about attacks; an archive that
        # `gzip -t` rejects is simply not installed. (python-zstandard's reader cannot
        # report a frame cut short, so a zstd archive missing only its padding or its
        # checksum still installs.) What follows the end block is normally under 10 KB
        # of padding; it is not a pass over the archive, and counts against the limit.
        for size in blocks.rest():
            extraction.other_bytes(size)
    except Truncated:
        raise ArchiveError("truncated archive", archive=archive) from None


def _extract_zip(
    path: Path, raw: RawReader, extraction: _Extraction, expected_sha256: str | None
) -> None:
    import zipfile

    archive = extraction.archive
    # A zip is read through its central directory, out of order; hash it in one sequential
    # pass first, so that a corrupt download is caught before anything is written.
    raw.drain()
    if expected_sha256 is not None and raw.hexdigest() != expected_sha256:
        raise HashMismatchError(url=archive, expected=expected_sha256, actual=raw.hexdigest())
    check_member_count(path, extraction.max_members, archive)
    try:
        handle = zipfile.ZipFile(path)
    except zip_errors(OSError) as exc:
        raise corrupt(archive, exc) from exc
    with handle:
        infos = handle.infolist()
        if len(infos) > extraction.max_members:
            # The central directory is read already; refuse before writing anything.
            raise limit_error(
                f"more than {extraction.max_members:,} members (pylock's limit per archive)",
                archive=archive,
                member=infos[extraction.max_members].filename,
            )
        for info in infos:
            name = info.filename
            if extraction.admit(name, info.file_size) < info.file_size:
                raise extraction.over_limit(name)
            mode = member_mode(info, archive)
            # Not ``info.is_dir()``: it fails with IndexError on an empty name, which the
            # namer refuses with a clean error.
            is_dir = name.endswith("/") or stat.S_ISDIR(mode)
            rel = extraction.namer.relpath(name, is_dir=is_dir)
            if rel is None:
                continue
            if is_dir:
                extraction.directory(rel, name)
                continue
            mtime = zip_mtime(info)
            with open_member(handle, info, archive) as stream:
                extraction.file(
                    rel,
                    name,
                    executable=bool(mode & 0o111),
                    mtime=mtime,
                    data=zip_views(stream, archive, name),
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
    known_digests: Mapping[str, tuple[int, str]] | None = None,
    max_members: int | None = None,
    max_unpacked: int | None = None,
    on_file: Callable[[str], None] | None = None,
) -> list[RecordEntry]:
    """Extract ``archive`` into the empty (or new) directory ``dest``; return what was written.

    ``source``, if given, is read instead of opening ``archive`` (which then only names
    it in messages): a tar still arriving, see :mod:`pylock.net.stream`. Zip archives need
    a seekable file and cannot be streamed.

    ``layout`` says which top directory to strip. When ``expected_sha256`` is given the raw
    archive bytes are hashed as they are read, and :class:`HashMismatchError` is raised
    after extraction if they differ; a corrupt archive that also fails to decompress gets
    the same error, so the caller can evict it and download it again. ``on_progress``
    receives counts of archive bytes read. ``known_digests`` maps extracted paths to the
    ``(size, sha256)`` an earlier extraction of this very archive reported: those files
    are not hashed again (see :mod:`pylock.archive.writer`). A hostile or malformed
    archive raises :class:`ArchiveError`, and so does one with more than ``max_members``
    members or more than ``max_unpacked`` bytes of data (default :data:`MAX_MEMBERS` and
    :data:`MAX_UNPACKED`); ``on_file(path)`` is told of each regular file written (on
    the writer's thread), once it is complete. Nothing is ever written outside ``dest``, and on
    any error the caller must delete ``dest``. ``OSError`` (a full disk) propagates
    unchanged.
    """
    name = str(archive)
    dest_path = _prepare_dest(dest)
    if threaded is None:
        threaded = usable_cpus() > 1
    namer = Namer(layout, name)
    if source is not None and fmt is ArchiveFormat.ZIP:
        raise ValueError("zip archives cannot be extracted from a stream")
    with contextlib.ExitStack() as stack:
        handle = source if source is not None else stack.enter_context(open(archive, "rb"))
        raw = RawReader(handle, hashed=expected_sha256 is not None, on_progress=on_progress)
        extraction = _Extraction(
            dest_path,
            name,
            namer,
            threaded and fmt is not ArchiveFormat.ZIP,
            known_digests,
            max_members=MAX_MEMBERS if max_members is None else max_members,
            max_unpacked=MAX_UNPACKED if max_unpacked is None else max_unpacked,
            on_file=on_file,
        )
        if extraction.threaded and raw.hashed and source is None:
            # Decompression is the slow half of a warm install: the writer thread, which
            # waits for it, hashes the archive instead. The file can be hashed again if
            # the extraction fails and the queued updates are dropped.
            raw.defer = extraction.hash_later
        try:
            if fmt is ArchiveFormat.ZIP:
                _extract_zip(archive, raw, extraction, expected_sha256)
            else:
                _extract_tar(raw, extraction, fmt)
            entries = extraction.finish()
            raw.defer = None  # the writer is done: anything left is hashed here
            if not entries:
                raise ArchiveError(
                    f"no files to install (is the layout {layout} right for it?)", archive=name
                )
        except ArchiveError as exc:
            extraction.abort()
            if expected_sha256 is not None:
                if raw.defer is not None:
                    raw.defer = None
                    actual = sha256_file(archive)
                else:
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
    check_symlinks(dest_path, extraction.symlinks, name)
    return entries
