"""Builders for candidate builds and indexes, and the location of the reference upstream data."""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from pylock.index.model import Build, Index
from pylock.lockfile import Artifact, LockedPython
from pylock.platforms import Platform
from pylock.versions import ArchiveFormat, Flavor, Implementation, Variant

REPO = Path(__file__).resolve().parent.parent
#: The reference data, uv's downloads JSON that the bundled snapshot is built from, in the repo.
UV_JSON = REPO / "data" / "uv-download-metadata.json.gz"

PBS = "https://github.com/astral-sh/python-build-standalone/releases/download"


def uv_json_path() -> Path:
    """The reference downloads JSON (gzipped); it ships with every checkout and sdist."""
    assert UV_JSON.is_file(), f"reference data missing: {UV_JSON}"
    return UV_JSON


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return data


def uv_json() -> dict[str, Any]:
    """The parsed reference downloads JSON (shared between tests; do not mutate)."""
    return _load(uv_json_path())


#: One entry of uv's downloads JSON, keyed as uv keys it: CPython 3.13.7+20250918 for
#: linux-x86_64-gnu. Use :func:`uv_entry` for a copy to change.
UV_KEY = "cpython-3.13.7-linux-x86_64-gnu"
UV_ENTRY: dict[str, Any] = {
    "name": "cpython",
    "arch": {"family": "x86_64", "variant": None},
    "os": "linux",
    "libc": "gnu",
    "major": 3,
    "minor": 13,
    "patch": 7,
    "prerelease": "",
    "url": f"{PBS}/20250918/"
    "cpython-3.13.7%2B20250918-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
    "sha256": "ab" * 32,
    "variant": None,
    "build": "20250918",
}


def uv_entry(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`UV_ENTRY` with ``changes`` applied."""
    out = copy.deepcopy(UV_ENTRY)
    out.update(changes)
    return out


def snapshot_script() -> ModuleType:
    """``scripts/build_snapshot.py``, loaded as a module."""
    spec = importlib.util.spec_from_file_location(
        "build_snapshot", REPO / "scripts" / "build_snapshot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_sha(*parts: object) -> str:
    """A stable, distinct sha256 for a fake artifact."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def pbs(
    version: str,
    tag: str,
    platform: str,
    *,
    variant: Variant = Variant.DEFAULT,
    flavor: Flavor = Flavor.INSTALL_ONLY_STRIPPED,
    options: str | None = None,
    sha256: str | bool | None = True,
    size: int | None = None,
) -> Build:
    """A PBS build with a realistic URL for its fields."""
    triple = Platform.parse(platform).pbs_triple
    if flavor is Flavor.FULL:
        if options is None:
            options = {
                Variant.DEFAULT: "pgo+lto",
                Variant.DEBUG: "debug",
                Variant.FREETHREADED: "freethreaded+pgo+lto",
                Variant.FREETHREADED_DEBUG: "freethreaded+debug",
            }[variant]
        suffix = f"{options}-full.tar.zst"
    else:
        prefix = "freethreaded-" if variant is Variant.FREETHREADED else ""
        suffix = f"{prefix}{flavor}.tar.gz"
    name = f"cpython-{version}%2B{tag}-{triple}-{suffix}"
    url = f"{PBS}/{tag}/{name}"
    fmt = ArchiveFormat.TAR_ZST if flavor is Flavor.FULL else ArchiveFormat.TAR_GZ
    sha = fake_sha(url) if sha256 is True else (sha256 or None)
    return _build(
        Implementation.CPYTHON, version, tag, platform, url, fmt, sha, variant, flavor, size
    )


def pypy(python: str, release: str, platform: str) -> Build:
    """A PyPy build with a realistic URL."""
    name = Platform.parse(platform).release_name(Implementation.PYPY)
    series = ".".join(python.split(".")[:2])
    ext = "zip" if platform.startswith("windows") else "tar.bz2"
    url = f"https://downloads.python.org/pypy/pypy{series}-v{release}-{name}.{ext}"
    fmt = ArchiveFormat(ext)
    return _build(Implementation.PYPY, python, release, platform, url, fmt, fake_sha(url))


def graalpy(python: str, release: str, platform: str) -> Build:
    """A GraalPy build with a realistic URL."""
    name = Platform.parse(platform).release_name(Implementation.GRAALPY)
    ext = "zip" if platform.startswith("windows") else "tar.gz"
    series = ".".join(python.split(".")[:2])
    url = (
        f"https://github.com/oracle/graalpython/releases/download/graal-{release}/"
        f"graalpy{series}-{release}-{name}.{ext}"
    )
    fmt = ArchiveFormat(ext)
    return _build(Implementation.GRAALPY, python, release, platform, url, fmt, fake_sha(url))


def _build(
    implementation: Implementation,
    version: str,
    tag: str,
    platform: str,
    url: str,
    fmt: ArchiveFormat,
    sha256: str | None,
    variant: Variant = Variant.DEFAULT,
    flavor: Flavor | None = None,
    size: int | None = None,
) -> Build:
    return Build(
        implementation=implementation,
        version=version,
        build=tag,
        platform=platform,
        variant=variant,
        flavor=flavor,
        format=fmt,
        url=url,
        sha256=sha256,
        size=size,
    )


def locked_python(
    name: str, version: str, build: str | None, artifacts: Iterable[Artifact], **fields: Any
) -> LockedPython:
    """A ``pythons.lock`` entry: CPython ``install_only_stripped`` unless ``fields`` say else."""
    fields.setdefault("implementation", Implementation.CPYTHON)
    fields.setdefault("flavor", Flavor.INSTALL_ONLY_STRIPPED)
    return LockedPython(
        name=name, version=version, build=build, artifacts=tuple(artifacts), **fields
    )


def index_of(*builds: Build, tag_dates: dict[str, str] | None = None) -> Index:
    """An index holding exactly ``builds``."""
    return Index(builds=builds, source="test", source_date="2026-01-01", tag_dates=tag_dates)
