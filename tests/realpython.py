"""Real, runnable PBS-style interpreter archives built from interpreters on this machine.

Tests and benchmarks need archives that behave like python-build-standalone's: the same
names, the same member layout and metadata, and an interpreter that runs from wherever it
is unpacked. This module packages an installed CPython (pyenv's, Debian's, the running one)
into exactly that shape, rewriting absolute ELF run paths to ``$ORIGIN``-relative ones so
the tree is relocatable. It also writes the side files the tools read: uv's downloads JSON,
a ``pythons.lock``, and a static mirror tree, and serves a tree over loopback HTTP.

Usage from a test::

    from tests.realpython import build_pbs_archive, host_pythons
    archive = build_pbs_archive(tmp_path)               # the running interpreter
    other = build_pbs_archive(tmp_path, prefix=host_pythons()[1].prefix)

Usage from a shell (prints one JSON object per archive)::

    python tests/realpython.py build OUT [--prefix P] [--tag T] [--full-stdlib]
        [--mirror-tree DIR] [--lock FILE] [--uv-json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import attrs

#: The member mtime PBS uses (2024-01-01T00:00:00Z).
PBS_MTIME = 1704067200
#: Where PBS assets live; ``--mirror`` replaces exactly this prefix.
PBS_DOWNLOAD_PREFIX = "https://github.com/astral-sh/python-build-standalone/releases/download/"
#: Build options in the name of our ``full`` archives.
FULL_OPTIONS = "pgo+lto"

_FLAVORS = ("install_only", "install_only_stripped", "full")
_SOURCE_INFO = r"""
import json, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "release": sys.version_info.releaselevel,
    "serial": sys.version_info.serial,
    "minor": "%d.%d" % sys.version_info[:2],
    "abiflags": getattr(sys, "abiflags", ""),
    "executable": sys.executable,
    "prefix": sys.base_prefix,
    "stdlib": sysconfig.get_path("stdlib"),
    "platstdlib": sysconfig.get_path("platstdlib"),
    "include": sysconfig.get_path("include"),
    "libdir": v("LIBDIR"),
    "ldlibrary": v("LDLIBRARY"),
    "instsoname": v("INSTSONAME"),
    "shared": bool(v("Py_ENABLE_SHARED")),
}))
"""


class RealPythonUnavailable(RuntimeError):
    """No archive can be built here (no such interpreter, no way to fix its run path)."""


@attrs.frozen(kw_only=True)
class HostPython:
    """A CPython installed on this machine that can be packaged."""

    #: Its installation prefix (``sys.base_prefix``).
    prefix: Path
    #: The real interpreter binary.
    executable: Path
    #: Exact version, e.g. ``3.11.7`` (pre-releases as ``3.13.0rc2``).
    version: str
    #: ``3.11``.
    minor: str


@attrs.frozen(kw_only=True)
class RealArchive:
    """A built archive and the facts a lock, a uv JSON or a mirror needs about it."""

    #: The archive file.
    path: Path
    #: Lowercase hex sha256 of the file.
    sha256: str
    #: File size in bytes.
    size: int
    #: Exact interpreter version, e.g. ``3.11.7``.
    version: str
    #: PBS-style build tag, e.g. ``20990101``.
    tag: str
    #: The PBS file name, with a literal ``+``.
    filename: str
    #: Target triple, e.g. ``x86_64-unknown-linux-gnu``.
    triple: str
    #: ``install_only``, ``install_only_stripped`` or ``full``.
    flavor: str = "install_only"
    #: ``3.11``.
    minor: str = ""
    #: The interpreter prefix it was built from.
    source: Path | None = None
    #: How many members (files and symlinks) the archive holds.
    members: int = 0
    #: Sum of the regular files' sizes: the unpacked size, give or take block rounding.
    unpacked_size: int = 0

    @property
    def url(self) -> str:
        """The canonical upstream URL, as a lock records it."""
        return f"{PBS_DOWNLOAD_PREFIX}{self.tag}/{quote(self.filename)}"

    @property
    def executable_relpath(self) -> str:
        """The interpreter inside an install tree (``python/`` stripped): ``bin/python3``."""
        return "bin/python3"


# -- discovering interpreters ----------------------------------------------------------------


@functools.cache
def _describe(executable: str) -> dict[str, object] | None:
    """Ask an interpreter about its own layout; ``None`` if it does not run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        out = subprocess.run(
            [executable, "-I", "-S", "-c", _SOURCE_INFO],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=env,
        ).stdout
        info: dict[str, object] = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return info


def _version_text(info: Mapping[str, object]) -> str:
    version = str(info["version"])
    letter = {"alpha": "a", "beta": "b", "candidate": "rc"}.get(str(info["release"]))
    return f"{version}{letter}{info['serial']}" if letter else version


def describe_python(executable: Path) -> HostPython | None:
    """Describe the CPython at ``executable``; ``None`` if it is not a usable CPython 3."""
    info = _describe(str(executable))
    if info is None or not str(info["minor"]).startswith("3."):
        return None
    return HostPython(
        prefix=Path(str(info["prefix"])),
        executable=Path(os.path.realpath(str(info["executable"]))),
        version=_version_text(info),
        minor=str(info["minor"]),
    )


def _candidate_executables() -> Iterator[Path]:
    yield Path(sys.executable)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if os.path.isdir(pyenv_root):  # Path.is_dir raises on an unreadable parent before 3.12
        for prefix in sorted(pyenv_root.iterdir(), reverse=True):
            yield from sorted(prefix.glob("bin/python3.[0-9]*[0-9]"), reverse=True)
    yield from sorted(Path("/usr/bin").glob("python3.[0-9]*[0-9]"), reverse=True)
    yield from sorted(Path("/usr/local/bin").glob("python3.[0-9]*[0-9]"), reverse=True)


@functools.cache
def host_pythons(min_minor: int = 9) -> tuple[HostPython, ...]:
    """Packageable CPythons here, one per exact version, the running interpreter first.

    Only Linux is supported: that is where the archives are used (tests, bench, Docker).
    """
    if not sys.platform.startswith("linux"):
        return ()
    found: dict[str, HostPython] = {}
    for executable in _candidate_executables():
        if not executable.exists():
            continue
        python = describe_python(executable)
        if python is None or python.version in found:
            continue
        if int(python.minor.split(".")[1]) < min_minor:
            continue
        found[python.version] = python
    return tuple(found.values())


def host_triple() -> str:
    """The PBS triple of this machine, e.g. ``x86_64-unknown-linux-gnu``."""
    from pylock.platforms import host

    triple = host().pbs_triple
    if triple is None:
        raise RealPythonUnavailable(f"PBS has no build for {host().key}")
    return triple


def pbs_filename(version: str, tag: str, triple: str, flavor: str, compress: str) -> str:
    """The PBS asset name for these facts.

    >>> pbs_filename("3.11.7", "20990101", "x86_64-unknown-linux-gnu", "install_only", "gz")
    'cpython-3.11.7+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz'
    """
    kind = f"{FULL_OPTIONS}-full" if flavor == "full" else flavor
    return f"cpython-{version}+{tag}-{triple}-{kind}.tar.{compress}"


# -- ELF run paths ---------------------------------------------------------------------------

_DT_NULL, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 5, 15, 29
_PT_LOAD, _PT_DYNAMIC = 1, 2


def _elf_runpath_slot(data: bytes) -> tuple[int, bytes] | None:
    """Find the RUNPATH (or RPATH) string of a little-endian ELF64 file: (offset, value)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None
    strtab = path_off = None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == _DT_NULL:
            break
        if tag == _DT_STRTAB:
            strtab = value
        elif tag in (_DT_RPATH, _DT_RUNPATH):
            path_off = value
    if strtab is None or path_off is None:
        return None
    for vaddr, offset, size in loads:
        if vaddr <= strtab < vaddr + size:
            start = strtab - vaddr + offset + path_off
            return start, data[start : data.index(b"\0", start)]
    return None


def elf_runpath(path: Path) -> str | None:
    """The RUNPATH/RPATH of an ELF file, or ``None`` (not ELF64-LE, or none set)."""
    slot = _elf_runpath_slot(path.read_bytes())
    return slot[1].decode() if slot else None


def set_elf_runpath(path: Path, value: str) -> None:
    """Rewrite an ELF file's run path in place.

    A shorter value is written over the old string with NUL padding, which needs no tool
    and changes nothing else in the file. A longer one needs ``patchelf``.
    """
    data = bytearray(path.read_bytes())
    slot = _elf_runpath_slot(bytes(data))
    if slot is None:
        raise RealPythonUnavailable(f"{path}: no RUNPATH/RPATH to rewrite")
    start, old = slot
    new = value.encode()
    if len(new) <= len(old):
        data[start : start + len(old)] = new + b"\0" * (len(old) - len(new))
        path.write_bytes(bytes(data))
        return
    patchelf = shutil.which("patchelf")
    if patchelf is None:
        raise RealPythonUnavailable(
            f"{path}: run path {value!r} is longer than {old.decode()!r}; "
            "install patchelf (apt-get install -y patchelf) to rewrite it"
        )
    subprocess.run([patchelf, "--set-rpath", value, str(path)], check=True)


def _relocated_runpath(old: str, source_lib: Path, member: str) -> str | None:
    """The ``$ORIGIN``-relative run path for a file at ``member`` (under ``python/``)."""
    parts: list[str] = []
    changed = False
    origin = Path(member).parent
    for entry in old.split(":"):
        resolved = Path(entry)
        if resolved.is_absolute() and (resolved == source_lib or source_lib in resolved.parents):
            inside = Path("lib") / resolved.relative_to(source_lib)
            entry = "$ORIGIN/" + os.path.relpath(inside, origin)
            entry = entry.removesuffix("/.")
            changed = True
        parts.append(entry)
    return ":".join(parts) if changed else None


# -- collecting the tree ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Member:
    #: Path inside the install tree (without the ``python/`` or ``python/install/`` top).
    name: str
    #: Source file; ``None`` for symlinks and generated files.
    source: Path | None = None
    #: Symlink target, for symlinks.
    link: str | None = None
    #: Generated content.
    data: bytes | None = None
    #: Whether the file is executable.
    executable: bool = False


_LEAN_DROP_DIRS = frozenset({"test", "tests", "idle_test", "__pycache__", "site-packages"})
_FULL_DROP_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages"})


def _walk_stdlib(root: Path, lean: bool) -> Iterator[tuple[str, Path]]:
    drop = _LEAN_DROP_DIRS | _FULL_DROP_DIRS if lean else _FULL_DROP_DIRS
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in drop)
        if lean and here.name.startswith("config-"):
            # Static libraries and build leftovers: megabytes nobody runs.
            filenames = [f for f in filenames if not f.endswith((".a", ".o"))]
        for filename in sorted(filenames):
            # EXTERNALLY-MANAGED: Debian's mark (PEP 668) that its Python's packages are
            # apt's. No upstream build has one, and uv deletes it from what it installs.
            if filename.endswith((".pyc", ".pyo")) or filename == "EXTERNALLY-MANAGED":
                continue
            yield here.relative_to(root).joinpath(filename).as_posix(), here / filename


def _collect(python: HostPython, info: Mapping[str, object], lean: bool) -> list[_Member]:
    minor = python.minor
    exe = f"python{minor}{info['abiflags']}"
    members = [
        _Member(name=f"bin/{exe}", source=python.executable, executable=True),
        _Member(name="bin/python3", link=exe),
        _Member(name="bin/python", link=exe),
    ]
    if exe != f"python{minor}":
        members.append(_Member(name=f"bin/python{minor}", link=exe))
    libdir = Path(str(info["libdir"]))
    if info["shared"]:
        soname = str(info["instsoname"] or info["ldlibrary"])
        members.append(_Member(name=f"lib/{soname}", source=libdir / soname, executable=True))
        ldlibrary = str(info["ldlibrary"])
        if ldlibrary != soname:
            members.append(_Member(name=f"lib/{ldlibrary}", link=soname))
        if (libdir / "libpython3.so").is_file():
            members.append(
                _Member(name="lib/libpython3.so", source=libdir / "libpython3.so", executable=True)
            )
    stdlib = Path(str(info["stdlib"]))
    seen: set[str] = set()
    for root, top in ((stdlib, f"lib/python{minor}"), (Path(str(info["platstdlib"])), None)):
        if top is None:
            # Debian keeps lib-dynload beside the stdlib; elsewhere it is inside it.
            dynload = root / "lib-dynload"
            if not dynload.is_dir() or dynload.resolve().parent == stdlib.resolve():
                continue
            root, top = dynload, f"lib/python{minor}/lib-dynload"
        for rel, path in _walk_stdlib(root, lean):
            name = f"{top}/{rel}"
            if name in seen or not path.exists():
                continue
            seen.add(name)
            if path.is_symlink():
                target = os.readlink(path)
                resolved = (path.parent / target).resolve()
                if not os.path.isabs(target) and root.resolve() in resolved.parents:
                    members.append(_Member(name=name, link=target))
                    continue
                path = resolved
            mode = path.stat().st_mode
            members.append(_Member(name=name, source=path, executable=bool(mode & stat.S_IXUSR)))
    readme = f"lib/python{minor}/site-packages/README.txt"
    members.append(
        _Member(
            name=readme,
            data=b"This directory exists so that 3rd party packages can be "
            b"installed here.  Read the source for site.py for more details.\n",
        )
    )
    if not any(m.name.startswith(f"lib/python{minor}/lib-dynload/") for m in members):
        raise RealPythonUnavailable(f"{python.prefix}: no lib-dynload directory found")
    members.append(_Member(name=f"lib/python{minor}/lib-dynload/.empty", data=b""))
    include = Path(str(info["include"]))
    if include.is_dir():
        for rel, path in _walk_stdlib(include, lean=False):
            members.append(
                _Member(name=f"include/python{minor}{info['abiflags']}/{rel}", source=path)
            )
    unique = {m.name: m for m in members}
    return [unique[name] for name in sorted(unique)]


def _python_json(python: HostPython, info: Mapping[str, object], triple: str) -> bytes:
    document = {
        "version": "8",
        "target_triple": triple,
        "python_version": python.version,
        "python_major_minor_version": python.minor,
        "python_tag": "cp" + python.minor.replace(".", ""),
        "python_abi_tag": str(info["abiflags"]),
        "python_exe": f"install/bin/python{python.minor}{info['abiflags']}",
        "python_stdlib": f"install/lib/python{python.minor}",
        "build_options": FULL_OPTIONS,
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


# -- writing the archive ---------------------------------------------------------------------


def _file_bytes(member: _Member, source_lib: Path, strip: bool, staging: Path) -> bytes:
    assert member.source is not None
    data = member.source.read_bytes()
    if data[:4] != b"\x7fELF":
        return data
    work = staging / "elf"
    work.write_bytes(data)
    work.chmod(0o755)
    if strip and shutil.which("strip"):
        subprocess.run(["strip", "--strip-unneeded", str(work)], check=True)
    old = elf_runpath(work)
    if old is not None:
        new = _relocated_runpath(old, source_lib, member.name)
        if new is not None:
            set_elf_runpath(work, new)
    return work.read_bytes()


def _tarinfo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = PBS_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@contextlib.contextmanager
def _compressed(path: Path, compress: str, level: int) -> Iterator[io.RawIOBase]:
    with path.open("wb") as raw:
        if compress == "gz":
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0
            ) as stream:
                yield stream  # type: ignore[misc]
        elif compress == "zst":
            import zstandard

            compressor = zstandard.ZstdCompressor(level=level)
            with compressor.stream_writer(raw, closefd=False) as stream:
                yield stream  # type: ignore[misc]
        else:
            raise ValueError(f"unknown compression {compress!r} (expected gz or zst)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Archives built by this process, with the stat signature of the file as built.
_BUILT: dict[tuple[object, ...], tuple[RealArchive, tuple[int, int]]] = {}


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def build_pbs_archive(
    out_dir: Path,
    *,
    prefix: Path | None = None,
    tag: str = "20990101",
    flavor: str = "install_only",
    compress: str | None = None,
    level: int | None = None,
    lean: bool = True,
    extra_files: Mapping[str, bytes] | None = None,
) -> RealArchive:
    """Package the CPython at ``prefix`` (default: the running one) as a PBS archive.

    The archive lands in ``out_dir`` under its PBS name. ``lean`` drops the stdlib test
    suites and static libraries (about 15 MB compressed); ``lean=False`` keeps them for a
    realistically sized archive (about 40 MB, 125 MB and 2000+ files unpacked).
    ``extra_files`` adds members under the install tree (``{"share/marker": b"..."}``), to
    make archives of the same interpreter differ. Builds are memoised for the process: a
    repeat call copies (hard-links) the earlier file into ``out_dir``.
    """
    if flavor not in _FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r} (expected one of {', '.join(_FLAVORS)})")
    compress = compress or ("zst" if flavor == "full" else "gz")
    level = level if level is not None else (3 if compress == "zst" else 6)
    source = prefix or Path(sys.base_prefix)
    python = _python_at(source)
    triple = host_triple()
    filename = pbs_filename(python.version, tag, triple, flavor, compress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    extras = tuple(sorted((extra_files or {}).items()))
    key = (str(source), tag, flavor, compress, level, lean, extras)
    earlier, signature = _BUILT.get(key, (None, None))
    # The file may have been replaced since (same name, other options): then rebuild.
    if earlier is not None and _signature(earlier.path) == signature:
        if earlier.path != target:
            target.unlink(missing_ok=True)
            try:
                os.link(earlier.path, target)
            except OSError:
                shutil.copyfile(earlier.path, target)
        return attrs.evolve(earlier, path=target)

    info = _describe(str(python.executable))
    assert info is not None
    members = _collect(python, info, lean)
    for name, data in extras:
        members.append(_Member(name=name, data=data))
    members.sort(key=lambda m: m.name)
    top = "python/install/" if flavor == "full" else "python/"
    source_lib = Path(str(info["libdir"]))
    unpacked = 0
    with tempfile.TemporaryDirectory(prefix="realpython-") as scratch:
        partial = Path(scratch) / filename
        with (
            _compressed(partial, compress, level) as stream,
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar,
        ):
            if flavor == "full":
                data = _python_json(python, info, triple)
                entry = _tarinfo("python/PYTHON.json")
                entry.mode, entry.size = 0o664, len(data)
                tar.addfile(entry, io.BytesIO(data))
            for member in members:
                entry = _tarinfo(top + member.name)
                if member.link is not None:
                    entry.type, entry.linkname, entry.mode = tarfile.SYMTYPE, member.link, 0o777
                    tar.addfile(entry)
                    continue
                if member.data is not None:
                    data = member.data
                else:
                    strip = flavor == "install_only_stripped"
                    data = _file_bytes(member, source_lib, strip, Path(scratch))
                entry.mode = 0o775 if member.executable else 0o664
                entry.size = len(data)
                unpacked += len(data)
                tar.addfile(entry, io.BytesIO(data))
        target.unlink(missing_ok=True)
        shutil.move(partial, target)
    archive = RealArchive(
        path=target,
        sha256=_sha256(target),
        size=target.stat().st_size,
        version=python.version,
        tag=tag,
        filename=filename,
        triple=triple,
        flavor=flavor,
        minor=python.minor,
        source=source,
        members=len(members) + (flavor == "full"),
        unpacked_size=unpacked,
    )
    _BUILT[key] = archive, (archive.size, target.stat().st_mtime_ns)
    return archive


_SHARED_DIR: list[Path] = []


def shared_archive(**options: object) -> RealArchive:
    """:func:`build_pbs_archive` into one process-wide temporary directory.

    For fixtures that want an archive without caring where it lives; built once per
    process for each set of options, and removed at exit.
    """
    if not _SHARED_DIR:
        import atexit

        folder = Path(tempfile.mkdtemp(prefix="realpython-archives-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SHARED_DIR.append(folder)
    # One folder per option set: a lean and a full build of one version share a file name.
    folder = (
        _SHARED_DIR[0] / hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:16]
    )
    return build_pbs_archive(folder, **options)  # type: ignore[arg-type]


def _python_at(prefix: Path) -> HostPython:
    for known in host_pythons(min_minor=0):
        if prefix in (known.prefix, known.executable):
            return known
    for pattern in ("bin/python3.[0-9]*[0-9]", "bin/python3"):
        for executable in sorted(prefix.glob(pattern)):
            python = describe_python(executable)
            if python is not None:
                return python
    raise RealPythonUnavailable(f"no runnable CPython 3 under {prefix}")


# -- side files: uv's downloads JSON, pythons.lock, mirror tree ---------------------------


def _uv_key(archive: RealArchive) -> tuple[str, dict[str, object]]:
    from packaging.version import Version

    from pylock.platforms import Platform

    platform = Platform.from_pbs_triple(archive.triple)
    assert platform is not None
    os_name, family, variant, libc = platform.uv_fields
    version = Version(archive.version)
    pre = "".join(str(p) for p in version.pre) if version.pre else ""
    major, minor, patch = version.release
    key = f"cpython-{major}.{minor}.{patch}{pre}-{os_name}-{family}-{libc}"
    return key, {
        "name": "cpython",
        "arch": {"family": family, "variant": variant},
        "os": os_name,
        "libc": libc,
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": pre,
        "url": archive.url,
        "sha256": archive.sha256,
        "variant": None,
        "build": archive.tag,
    }


def uv_downloads_json(
    archives: Iterable[RealArchive], mirror_base: str | None = None
) -> dict[str, dict[str, object]]:
    """uv's downloads-JSON document for ``archives``.

    URLs are the canonical upstream ones, so ``uv python install --mirror`` rewrites them
    as it would for real PBS assets; with ``mirror_base`` they point at ``{base}/{tag}/...``
    directly. One entry per (version, platform): a later archive of the same version wins.
    """
    document: dict[str, dict[str, object]] = {}
    for archive in archives:
        key, entry = _uv_key(archive)
        if mirror_base is not None:
            entry["url"] = f"{mirror_base.rstrip('/')}/{archive.tag}/{quote(archive.filename)}"
        document[key] = entry
    return document


def write_uv_downloads_json(
    path: Path, archives: Iterable[RealArchive], mirror_base: str | None = None
) -> Path:
    """Write :func:`uv_downloads_json` to ``path`` (for ``--python-downloads-json-url``)."""
    path.write_text(json.dumps(uv_downloads_json(archives, mirror_base), indent=2) + "\n")
    return path


def default_names(archives: Sequence[RealArchive]) -> list[str]:
    """Interpreter names for a lock: ``cpython-3.11.7``, plus ``-{tag}`` where needed."""
    versions = [a.version for a in archives]
    return [
        f"cpython-{a.version}" + (f"-{a.tag}" if versions.count(a.version) > 1 else "")
        for a in archives
    ]


def lock_text(
    archives: Sequence[RealArchive],
    *,
    names: Sequence[str] | None = None,
    default: str | None = None,
) -> str:
    """A ``pythons.lock`` locking each archive (for the host platform) under a name."""
    from pylock.lockfile import Artifact, LockedPython, dumps, make_lock
    from pylock.platforms import Platform
    from pylock.versions import Flavor, Implementation, Variant

    names = list(names) if names is not None else default_names(archives)
    if len(names) != len(archives) or len(set(names)) != len(names):
        raise ValueError("need one distinct name per archive")
    pythons = []
    for name, archive in zip(names, archives, strict=True):
        platform = Platform.from_pbs_triple(archive.triple)
        assert platform is not None
        artifact = Artifact(
            platform=platform.key, url=archive.url, sha256=archive.sha256, size=archive.size
        )
        pythons.append(
            LockedPython(
                name=name,
                implementation=Implementation.CPYTHON,
                version=archive.version,
                build=archive.tag,
                variant=Variant.DEFAULT,
                flavor=Flavor(archive.flavor),
                default=name == default,
                artifacts=(artifact,),
            )
        )
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()
    return dumps(make_lock(pythons, config_digest=f"sha256:{digest}"))


def write_lock(
    path: Path,
    archives: Sequence[RealArchive],
    *,
    names: Sequence[str] | None = None,
    default: str | None = None,
) -> Path:
    """Write :func:`lock_text` to ``path`` (a ``pythons.lock`` or a project directory)."""
    if path.is_dir():
        path = path / "pythons.lock"
    path.write_text(lock_text(archives, names=names, default=default))
    return path


def write_mirror_tree(root: Path, archives: Iterable[RealArchive]) -> Path:
    """Lay archives out as upstream does: ``root/<tag>/<filename>`` plus ``SHA256SUMS``.

    Both ``pylock --mirror`` and ``uv python install --mirror`` read this tree.
    """
    by_tag: dict[str, list[RealArchive]] = {}
    for archive in archives:
        by_tag.setdefault(archive.tag, []).append(archive)
    for tag, group in by_tag.items():
        folder = root / tag
        folder.mkdir(parents=True, exist_ok=True)
        for archive in group:
            target = folder / archive.filename
            if target.exists() and target.stat().st_size == archive.size:
                continue
            target.unlink(missing_ok=True)
            try:
                os.link(archive.path, target)
            except OSError:
                shutil.copyfile(archive.path, target)
        sums = folder / "SHA256SUMS"
        lines = dict(
            line.split("  ", 1)[::-1]
            for line in (sums.read_text().splitlines() if sums.exists() else [])
        )
        lines.update({a.filename: a.sha256 for a in group})
        sums.write_text("".join(f"{lines[n]}  {n}\n" for n in sorted(lines)))
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def mirrored_project(root: Path, archive: RealArchive) -> tuple[Path, Path]:
    """``root/project`` locking ``archive`` as ``app``, and ``root/mirror`` serving it as
    upstream lays it out; returns (project, mirror).
    """
    mirror = write_mirror_tree(root / "mirror", [archive])
    project = root / "project"
    project.mkdir()
    write_lock(project, [archive], names=["app"])
    return project, mirror


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` read-only on 127.0.0.1 from a thread; yield the base URL (``/`` ends it)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus ``PYTHON*`` variables, which would redirect an interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


# -- command line ----------------------------------------------------------------------------


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="realpython", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the interpreters that can be packaged")
    build = sub.add_parser("build", help="build archives into OUT")
    build.add_argument("out", type=Path)
    build.add_argument("--prefix", type=Path, action="append", help="repeatable")
    build.add_argument("--tag", default="20990101")
    build.add_argument("--flavor", default="install_only", choices=_FLAVORS)
    build.add_argument("--full-stdlib", action="store_true", help="keep tests (lean=False)")
    build.add_argument("--mirror-tree", type=Path, help="also lay out <tag>/<file> here")
    build.add_argument("--lock", type=Path, help="also write a pythons.lock here")
    build.add_argument("--uv-json", type=Path, help="also write uv's downloads JSON here")
    args = parser.parse_args(argv)
    if args.command == "list":
        for python in host_pythons():
            print(f"{python.version}\t{python.prefix}")
        return 0
    archives = [
        build_pbs_archive(
            args.out, prefix=prefix, tag=args.tag, flavor=args.flavor, lean=not args.full_stdlib
        )
        for prefix in (args.prefix or [None])
    ]
    if args.mirror_tree:
        write_mirror_tree(args.mirror_tree, archives)
    if args.lock:
        write_lock(args.lock, archives)
    if args.uv_json:
        write_uv_downloads_json(args.uv_json, archives)
    for archive in archives:
        row = attrs.asdict(archive)
        row.update(path=str(archive.path), source=str(archive.source), url=archive.url)
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(_main())
