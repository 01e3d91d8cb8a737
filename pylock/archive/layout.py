"""Where the interpreter sits inside an archive: which top directory to strip or skip.

A python-build-standalone ``install_only`` archive keeps everything under ``python/``; a
``full`` one keeps the install under ``python/install/`` next to build files; PyPy,
GraalPy and others use one top directory named after the archive's stem.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from pathlib import Path

from pylock.archive.codecs import DECOMPRESSORS, RawReader, corrupt
from pylock.archive.policy import MAX_MEMBERS, split_name
from pylock.archive.tar import BLOCK, Blocks, Truncated, tar_members
from pylock.archive.zip import check_member_count, zip_errors
from pylock.errors import ArchiveError
from pylock.versions import ArchiveFormat, Flavor, Implementation


class Layout(enum.StrEnum):
    """Where the interpreter sits inside an archive, and so what to strip."""

    #: PBS ``install_only[_stripped]``: everything under ``python/``, which is stripped.
    PBS_INSTALL_ONLY = "pbs-install-only"
    #: PBS ``full``: only ``python/install/`` is extracted (build/, licenses/ are skipped).
    PBS_FULL = "pbs-full"
    #: PyPy, GraalPy, and others: one top directory (named after the stem), stripped.
    TOPDIR = "topdir"


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


class Namer:
    """Maps archive member names to paths inside ``dest`` for one layout."""

    def __init__(self, layout: Layout, archive: str) -> None:
        self.layout = layout
        self.archive = archive
        self.top: str | None = None

    def relpath(self, name: str, *, is_dir: bool) -> str | None:
        """The ``/``-joined path under ``dest``; ``None`` for members the layout skips."""
        parts = split_name(name, self.archive)
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
        parts = split_name(member, name)
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


def _first_members(archive: Path, fmt: ArchiveFormat, *, limit: int) -> Iterator[tuple[str, bool]]:
    name = str(archive)
    if fmt is ArchiveFormat.ZIP:
        import zipfile

        try:
            check_member_count(archive, MAX_MEMBERS, name)
            with zipfile.ZipFile(archive) as handle:
                infos = handle.infolist()
        except zip_errors(OSError) as exc:
            raise corrupt(name, exc) from exc
        for info in infos:
            # Not ``info.is_dir()``: an empty name (a NUL-padded one reads back empty) makes
            # it raise IndexError; split_name refuses such a name cleanly.
            yield info.filename, info.filename.endswith("/")
        return
    with open(archive, "rb") as handle:
        blocks = Blocks(DECOMPRESSORS[fmt](RawReader(handle, hashed=False, on_progress=None), name))
        try:
            for count, member in enumerate(tar_members(blocks, name)):
                yield member.name, member.kind == "dir"
                if count + 1 >= limit:
                    return
                if member.kind == "file":
                    blocks.skip(member.size + (-member.size % BLOCK))
        except Truncated:
            raise ArchiveError("truncated archive", archive=name) from None
