"""The writer: creates the checked files, directories and links, and hashes what it writes.

The extraction queues batches of operations; :class:`Writer` carries them out, on the
calling thread (:class:`InlineSink`) or on a second one (:class:`ThreadSink`) so that
writing overlaps decompression. The queue is bounded, so memory stays small whatever the
archive's size. What was written comes back as :class:`RecordEntry` values, plain data
that :mod:`pylock.sync.records` stores as an install's record. A threaded extraction also
hands the writer the archive's own hash updates (``HASH``), off the decompressing thread.

Hashing every file costs about a sixth of a warm install's CPU time. Given the digests
an earlier extraction of the same archive reported (``known``, kept by the archive cache
beside the archive), the writer records those instead: the archive's own sha256, checked
by the same extraction (or by the download it streams from), vouches that the bytes are
the ones hashed before. A file whose size differs from its known digest is hashed from
disk after all.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from pylock.archive.policy import WINDOWS, join_link
from pylock.errors import ArchiveError
from pylock.fsutil import sha256_file
from pylock.interrupts import finish_through_interrupts, held

#: Batches of writer work in flight; with ~1 MiB per batch this caps buffered data.
_QUEUE_DEPTH = 4
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_UTIME_FD = os.utime in os.supports_fd


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


#: Operation codes, the first item of each queued tuple (see :meth:`Writer.run`).
MKDIR, FILE, DATA, END, SYMLINK, HARDLINK, HASH = range(7)


class Writer:
    """Carries out filesystem operations; every path has been checked before it gets here."""

    def __init__(
        self,
        dest: str,
        archive: str,
        known: Mapping[str, tuple[int, str]] | None = None,
        on_file: Callable[[str], None] | None = None,
    ) -> None:
        self.dest = dest
        self.archive = archive
        #: ``path -> (size, sha256)`` of files whose digests need not be computed again.
        self.known = known or {}
        #: Told the path of each regular file once it is written and closed.
        self.on_file = on_file
        self.entries: list[RecordEntry] = []
        self._by_path: dict[str, RecordEntry] = {}
        self._fd = -1
        self._hash: Any = None
        self._size = 0
        self._rel = ""
        self._executable = False
        self._mtime = 0.0

    def _path(self, rel: str) -> str:
        return os.path.join(self.dest, rel.replace("/", os.sep) if WINDOWS else rel)

    def run(self, ops: list[tuple[Any, ...]]) -> None:
        for op in ops:
            code = op[0]
            if code == DATA:
                self._write(op[1])
            elif code == FILE:
                self._open(op[1], op[2], op[3])
                for view in op[4]:
                    self._write(view)
                if op[5]:
                    self._close()
            elif code == END:
                self._close()
            elif code == MKDIR:
                self._mkdir(op[1])
            elif code == SYMLINK:
                self._symlink(op[1], op[2])
            elif code == HARDLINK:
                self._hardlink(op[1], op[2])
            elif code == HASH:
                # The archive's own hash, off the decompressing thread (its bottleneck).
                op[1].update(op[2])

    def _mkdir(self, rel: str) -> None:
        path = self._path(rel)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            if not os.path.isdir(path) or os.path.islink(path) or _spelled_otherwise(path):
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
        self._hash = None if rel in self.known else hashlib.sha256()
        self._size = 0
        self._rel = rel
        self._executable = executable
        self._mtime = mtime

    def _write(self, view: memoryview) -> None:
        if self._hash is not None:
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
        if self._hash is not None:
            digest = self._hash.hexdigest()
        else:
            size, digest = self.known[self._rel]
            if size != self._size:
                digest = sha256_file(self._path(self._rel))
        self._add(
            RecordEntry(
                path=self._rel,
                sha256=digest,
                size=self._size,
                executable=self._executable,
            )
        )
        if self.on_file is not None:
            self.on_file(self._rel)

    def _add(self, entry: RecordEntry) -> None:
        self.entries.append(entry)
        self._by_path[entry.path] = entry

    def _symlink(self, rel: str, target: str) -> None:
        try:
            os.symlink(target, self._path(rel))
        except FileExistsError:
            raise self._collision(rel) from None
        except OSError as exc:
            if not WINDOWS:
                # os.symlink names the target first (`python3.12`, no path at all): the
                # error names the link that could not be made (a FAT drive has none).
                raise OSError(
                    exc.errno, f"cannot create a symlink: {exc.strerror}", self._path(rel)
                ) from None
            # Windows without Developer Mode cannot create symlinks: copy the file instead.
            source = self._by_path.get(join_link(rel.rpartition("/")[0], target) or "")
            if source is None or source.link is not None:
                raise ArchiveError(
                    "cannot create a symlink here (enable Windows Developer Mode)",
                    archive=self.archive,
                    member=rel,
                ) from None
            self._copy(source.path, rel)
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
            self._copy(source_rel, rel)
            shutil.copystat(self._path(source_rel), self._path(rel), follow_symlinks=False)
        self._add(attrs.evolve(source, path=rel))

    def _copy(self, source_rel: str, rel: str) -> None:
        """Copy the file extracted at ``source_rel`` to ``rel``, for a link the system cannot
        make, as a new file like every other: never over one that is there. Windows refuses
        a symlink without Developer Mode (a hard link on FAT or a share) before it looks at
        the name, which where case is ignored can be an earlier member's (``Tool`` for
        ``tool``): the copy replaced that member's bytes, and the install went on."""
        try:
            with open(self._path(source_rel), "rb") as source, open(self._path(rel), "xb") as new:
                shutil.copyfileobj(source, new)
        except FileExistsError:
            raise self._collision(rel) from None

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class InlineSink:
    """Runs writer operations on the calling thread (one CPU, or tiny archives)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def submit(self, ops: list[tuple[Any, ...]]) -> None:
        self.writer.run(ops)

    def close(self, *, abort: bool) -> None:
        if abort:
            self.writer.abort()


class ThreadSink:
    """Runs writer operations on a second thread, so writing overlaps decompression."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.error: BaseException | None = None
        #: Whether the end of the queue is in it (once only: the writer reads one).
        self._stopping = False
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
        self._put(ops)

    def _put(self, ops: list[tuple[Any, ...]] | None) -> None:
        # Ctrl-C or SIGTERM is taken once the batch is in: raised inside the queue's
        # Condition.wait, a second one (`timeout` sends SIGTERM twice) left its lock
        # released ("RuntimeError: release unlocked lock", a traceback) or held (the
        # sync hung in the clean-up's put).
        with held():
            self._queue.put(ops)

    def _stop(self) -> None:
        if not self._stopping:
            self._put(None)
            self._stopping = True
        self._thread.join()

    def close(self, *, abort: bool) -> None:
        # Waited for through a second Ctrl-C (or the second SIGTERM `timeout` sends): a
        # writer left running put files into the tree the caller was removing (field test:
        # a `.pylock-tmp-*` tree stayed behind).
        finish_through_interrupts(self._stop)
        if abort:
            self.writer.abort()
        elif self.error is not None:
            raise self.error


def _spelled_otherwise(path: str) -> bool:
    """Whether the directory at ``path`` was made under another name: ``Lib`` where the
    archive says ``lib``, on a file system that ignores case (macOS, Windows, exFAT). Its
    files would land beside another directory's, and the record name paths that are not
    there. Names are compared in one Unicode form: HFS+ stores its own."""
    import unicodedata

    parent, name = os.path.split(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return False
    return unicodedata.normalize("NFC", name) not in {
        unicodedata.normalize("NFC", n) for n in names
    }
