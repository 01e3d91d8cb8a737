"""Small filesystem helpers shared by the modules that write files: atomic writes, removal,
file hashes.

Also the names of the project's two files, defined here once because this module is
stdlib-only: the no-op sync fast path (:mod:`pylock.fastpath`) needs them as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The project file people edit.
CONFIG_FILENAME = "pythons.toml"
#: The lock ``pylock lock`` writes and ``pylock sync`` reads.
LOCK_FILENAME = "pythons.lock"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes go to a temporary file in the same directory, are flushed to disk, and
    replace the target with :func:`os.replace`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`), with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _retry_writable(func, path, _exc):  # type: ignore[no-untyped-def]
    # Read-only files and directories (common in extracted trees on Windows) block deletion.
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        os.chmod(path, stat.S_IRWXU)
    func(path)


def remove_tree(path: Path) -> None:
    """Delete a directory tree, or a file or symlink, if it exists."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=_retry_writable)
        else:
            shutil.rmtree(path, onerror=_retry_writable)


def display_path(path: Path) -> str:
    """A path as the user would like to read it: relative to cwd when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
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
