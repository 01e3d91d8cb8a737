"""Builders of interpreter-shaped archives (PBS, PyPy, GraalPy) and hostile ones, for tests.

Every archive is written into a directory the test owns (``tmp_path``); nothing binary is
checked in. ``Entry`` lists describe members; ``write_archive`` packs them as tar.gz,
tar.zst, tar.bz2 or zip, the way the real upstream archives are packed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import stat
import tarfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import attrs

from pylock.versions import ArchiveFormat

#: The mtime every PBS member carries (2024-01-01).
PBS_MTIME = 1704067200


@attrs.frozen
class Entry:
    """One archive member."""

    #: The member name exactly as stored.
    name: str
    #: ``file``, ``dir``, ``symlink``, ``hardlink``, ``chardev``, ``blockdev`` or ``fifo``.
    kind: str = "file"
    #: File contents.
    data: bytes = b""
    #: Link target (symlink) or linked member name (hardlink).
    target: str = ""
    #: Permission bits as stored.
    mode: int = 0o644


def file(name: str, data: bytes = b"", mode: int = 0o664) -> Entry:
    """A regular file (PBS stores 0664 and 0775 modes)."""
    return Entry(name, "file", data=data, mode=mode)


def exe(name: str, data: bytes = b"\x7fELF fake executable\n") -> Entry:
    """An executable file."""
    return Entry(name, "file", data=data, mode=0o775)


def directory(name: str, mode: int = 0o755) -> Entry:
    """A directory entry."""
    return Entry(name.rstrip("/") + "/", "dir", mode=mode)


def symlink(name: str, target: str) -> Entry:
    """A symbolic link."""
    return Entry(name, "symlink", target=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    """A hard link to another member (by its archive name)."""
    return Entry(name, "hardlink", target=target)


def device(name: str, kind: str = "chardev") -> Entry:
    """A device node or FIFO."""
    return Entry(name, kind)


# -- interpreter-shaped member lists ---------------------------------------------------------


def pbs_tree(
    prefix: str = "python/", minor: str = "3.12", *, python_link: bool = True
) -> list[Entry]:
    """The members of a PBS install_only archive (no directory entries, as upstream)."""
    entries = [
        exe(f"{prefix}bin/python{minor}", b"#!fake python " + minor.encode() + b"\n"),
        symlink(f"{prefix}bin/python3", f"python{minor}"),
        file(f"{prefix}include/python{minor}/Python.h", b"/* header */\n"),
        symlink(f"{prefix}lib/libpython{minor}.so", f"libpython{minor}.so.1.0"),
        exe(f"{prefix}lib/libpython{minor}.so.1.0", b"\x7fELF shared object\n" * 50),
        file(f"{prefix}lib/python{minor}/lib-dynload/.empty"),
        file(f"{prefix}lib/python{minor}/os.py", b"# os module\n" * 100),
        file(f"{prefix}lib/python{minor}/site-packages/README.txt", b"site\n"),
        file(f"{prefix}share/man/man1/python{minor}.1", b".TH PYTHON\n"),
    ]
    if python_link:
        entries.insert(1, symlink(f"{prefix}bin/python", f"python{minor}"))
    return sorted(entries, key=lambda e: e.name)


def pbs_install_only(minor: str = "3.12", *, python_link: bool = True) -> list[Entry]:
    """A PBS install_only[_stripped] archive: everything under ``python/``."""
    return pbs_tree("python/", minor, python_link=python_link)


def pbs_full(minor: str = "3.12") -> list[Entry]:
    """A PBS full archive: PYTHON.json first, then build/, install/ and licenses/."""
    return [
        file("python/PYTHON.json", b'{"version": "8", "python_exe": "install/bin/python3"}'),
        file("python/build/lib/libpython.a", b"object code\n" * 1000),
        file("python/build/Modules/config.c", b"/* config */\n"),
        *pbs_tree("python/install/", minor),
        file("python/licenses/LICENSE.txt", b"PSF\n"),
    ]


def _launcher_top(stem: str, launcher: str, data: bytes, links: Sequence[str]) -> list[Entry]:
    """The head of a PyPy or GraalPy archive: the top directory ``stem`` (with directory
    entries), ``bin/launcher`` holding ``data`` and the ``links`` to it, then ``lib/``."""
    return [
        directory(stem),
        directory(f"{stem}/bin"),
        exe(f"{stem}/bin/{launcher}", data),
        *(symlink(f"{stem}/bin/{link}", launcher) for link in links),
        directory(f"{stem}/lib"),
    ]


def pypy(stem: str = "pypy3.10-v7.3.17-linux64") -> list[Entry]:
    """A PyPy archive: one top directory named after the stem, with directory entries."""
    return [
        *_launcher_top(stem, "pypy3.10", b"pypy launcher\n", ["pypy3", "python3"]),
        exe(f"{stem}/lib/libpypy3.10-c.so", b"\x7fELF pypy\n" * 100),
        directory(f"{stem}/lib/pypy3.10"),
        file(f"{stem}/lib/pypy3.10/os.py", b"# pypy os\n"),
        file(f"{stem}/LICENSE", b"MIT\n", mode=0o644),
    ]


def pypy_windows(stem: str = "pypy3.10-v7.3.17-win64") -> list[Entry]:
    """A PyPy Windows zip: ``pypy3.exe`` and ``python.exe`` at the top of the stem dir."""
    return [
        directory(stem),
        file(f"{stem}/pypy3.exe", b"MZ pypy\n"),
        file(f"{stem}/python.exe", b"MZ python\n"),
        directory(f"{stem}/Lib"),
        file(f"{stem}/Lib/os.py", b"# os\n"),
    ]


def graalpy(stem: str = "graalpy-24.2.1-linux-amd64") -> list[Entry]:
    """A GraalPy archive: one top directory, launcher ``bin/graalpy``."""
    return [
        *_launcher_top(stem, "graalpy", b"graalpy launcher\n", ["python3"]),
        file(f"{stem}/lib/graalpy24.2/os.py", b"# graal os\n"),
    ]


# -- packing -----------------------------------------------------------------------------------

_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
    "blockdev": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def tar_bytes(entries: Sequence[Entry], *, tar_format: int = tarfile.GNU_FORMAT) -> bytes:
    """An uncompressed tar of ``entries``; names are stored verbatim, hostile ones too."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = _TAR_TYPES[entry.kind]
            info.mode = entry.mode
            info.mtime = PBS_MTIME
            info.uid = info.gid = 0
            if entry.kind in ("symlink", "hardlink"):
                info.linkname = entry.target
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def compress(data: bytes, fmt: ArchiveFormat) -> bytes:
    """Compress a tar stream as ``fmt`` says."""
    if fmt is ArchiveFormat.TAR_GZ:
        return gzip.compress(data, compresslevel=6, mtime=0)
    if fmt is ArchiveFormat.TAR_BZ2:
        return bz2.compress(data)
    if fmt is ArchiveFormat.TAR_ZST:
        import zstandard

        # The zstd CLI, which packs PBS full archives, writes frame checksums.
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    raise ValueError(fmt)


def zip_bytes(entries: Sequence[Entry]) -> bytes:
    """A zip of ``entries`` with unix modes in ``external_attr`` (symlinks as S_IFLNK)."""
    buffer = io.BytesIO()
    with (
        warnings.catch_warnings(),  # duplicate names are what some hostile cases are about
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        warnings.simplefilter("ignore")
        seen: dict[str, bytes] = {}
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=time.gmtime(PBS_MTIME)[:6])
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            kind_bits = {
                "file": stat.S_IFREG,
                "dir": stat.S_IFDIR,
                "symlink": stat.S_IFLNK,
                "chardev": stat.S_IFCHR,
                "blockdev": stat.S_IFBLK,
                "fifo": stat.S_IFIFO,
            }
            if entry.kind == "hardlink":
                # Zip has no hardlinks; store a copy, as zip tools do.
                data = seen.get(entry.target, b"")
                bits = stat.S_IFREG
            else:
                data = entry.target.encode() if entry.kind == "symlink" else entry.data
                bits = kind_bits[entry.kind]
            info.external_attr = (bits | entry.mode) << 16
            if entry.kind == "dir":
                info.external_attr |= 0x10
            seen[entry.name] = data
            archive.writestr(info, data)
    return buffer.getvalue()


def write_archive(
    path: Path,
    entries: Sequence[Entry],
    fmt: ArchiveFormat,
    *,
    tar_format: int = tarfile.GNU_FORMAT,
) -> Path:
    """Write ``entries`` to ``path`` as ``fmt``; return ``path``."""
    if fmt is ArchiveFormat.ZIP:
        path.write_bytes(zip_bytes(entries))
    else:
        path.write_bytes(compress(tar_bytes(entries, tar_format=tar_format), fmt))
    return path


def suffix(fmt: ArchiveFormat) -> str:
    """The file-name suffix for ``fmt``, e.g. ``.tar.gz``."""
    return "." + str(fmt)


# -- hostile archives --------------------------------------------------------------------------


def hostile_cases(outside: Path, prefix: str = "python/") -> dict[str, list[Entry]]:
    """Archives that try to write outside the destination, by name.

    ``outside`` is a directory next to the destination; a broken extractor would create
    ``outside/pwned`` or a link to it. Every case starts with a harmless member, so that
    a refusal has something to clean up.
    """
    ok = file(f"{prefix}bin/ok", b"fine\n")
    out = str(outside / "pwned")
    return {
        "traversal": [ok, file(f"{prefix}../../outside/pwned", b"x")],
        "traversal-deep": [ok, file(f"{prefix}lib/../../../outside/pwned", b"x")],
        "absolute": [ok, file(out, b"x")],
        "drive-letter": [ok, file("C:/outside/pwned", b"x")],
        "backslash": [ok, file(prefix + "..\\..\\outside\\pwned", b"x")],
        "escaping-symlink": [ok, symlink(f"{prefix}lib/escape", "../../outside")],
        "absolute-symlink": [ok, symlink(f"{prefix}lib/escape", str(outside))],
        "symlink-chain": [
            ok,
            symlink(f"{prefix}d/up", ".."),
            symlink(f"{prefix}e", "d/up/.."),
        ],
        "symlink-chain-first": [
            ok,
            symlink(f"{prefix}e", "d/up/.."),
            symlink(f"{prefix}d/up", ".."),
        ],
        "symlink-then-write-through": [
            ok,
            symlink(f"{prefix}lib/inner", "../bin"),
            file(f"{prefix}lib/inner/pwned", b"x"),
        ],
        "escaping-symlink-then-write": [
            ok,
            symlink(f"{prefix}x", "../../outside"),
            file(f"{prefix}x/pwned", b"x"),
        ],
        "duplicate-through-symlink": [
            ok,
            symlink(f"{prefix}bin/link", "ok"),
            file(f"{prefix}bin/link", b"overwrite through the link"),
        ],
        "escaping-hardlink": [ok, hardlink(f"{prefix}bin/hl", "../outside/pwned")],
        "absolute-hardlink": [ok, hardlink(f"{prefix}bin/hl", out)],
        "hardlink-to-missing": [ok, hardlink(f"{prefix}bin/hl", f"{prefix}bin/nothing")],
        "hardlink-to-symlink": [
            ok,
            symlink(f"{prefix}bin/sl", "ok"),
            hardlink(f"{prefix}bin/hl", f"{prefix}bin/sl"),
        ],
        "chardev": [ok, device(f"{prefix}dev/null", "chardev")],
        "blockdev": [ok, device(f"{prefix}dev/sda", "blockdev")],
        "fifo": [ok, device(f"{prefix}dev/fifo", "fifo")],
        "file-then-dir": [ok, file(f"{prefix}bin/ok/pwned", b"x")],
        "outside-layout": [ok, file("elsewhere/pwned", b"x")],
    }


#: Hostile cases that a zip can express (zip has no hardlinks; links are S_IFLNK entries).
ZIP_CASES = (
    "traversal",
    "traversal-deep",
    "absolute",
    "drive-letter",
    "backslash",
    "escaping-symlink",
    "absolute-symlink",
    "symlink-chain",
    "symlink-then-write-through",
    "duplicate-through-symlink",
    "chardev",
    "blockdev",
    "fifo",
    "file-then-dir",
    "outside-layout",
)


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (without following links), to compare before and after."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
