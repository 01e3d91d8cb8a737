"""Reading uv's downloads JSON (``UV_PYTHON_DOWNLOADS_JSON_URL``) into candidate builds (pure).

The format maps a key such as ``cpython-3.13.7-linux-x86_64-gnu`` to an entry with the
platform (``os``, ``arch``, ``libc``), the version (``major``, ``minor``, ``patch``,
``prerelease``), ``variant``, ``build``, ``url`` and ``sha256``. The archive flavor and
container format are not fields; they come from the file name.

Every build read here may end up in ``pythons.lock``, so an entry whose build tag,
version or URL the lock reader would refuse is skipped, by the lock reader's own rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.version import Version

from pylock.errors import UpstreamError, shown
from pylock.index.model import Build, tag_date
from pylock.index.names import (
    flavor_in_filename,
    parse_graalpy_filename,
    parse_pbs_filename,
    parse_pyodide_filename,
    parse_pypy_filename,
)
from pylock.lockfile import (
    CREDENTIALS_HINT,
    artifact_url_problem,
    build_problem,
    credentials_problem,
    is_sha256,
    version_problem,
)
from pylock.platforms import Platform
from pylock.urls import filename_from_url, url_problem
from pylock.versions import ArchiveFormat, Flavor, Implementation, Variant

_REQUIRED = ("name", "arch", "os", "libc", "major", "minor", "patch", "url")


class _Unfit(Exception):
    """An entry that is well-formed, but holds a value ``pythons.lock`` cannot record."""


class _Entry:
    """Checks one entry, raising :class:`UpstreamError` that names its key."""

    def __init__(self, source: str, key: str, entry: Mapping[str, Any]) -> None:
        self.source = source
        self.key = key
        self.entry = entry

    def fail(self, message: str, *, hint: str | None = None) -> UpstreamError:
        return UpstreamError(f"{self.source}: entry {shown(self.key)}: {message}", hint=hint)

    def text(self, field: str) -> str:
        value = self.entry.get(field)
        if not isinstance(value, str):
            raise self.fail(f"{field!r} must be a string, got {shown(value)}")
        return value

    def optional_text(self, field: str) -> str | None:
        return None if self.entry.get(field) is None else self.text(field)

    def number(self, field: str) -> int:
        value = self.entry.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"{field!r} must be a non-negative integer, got {shown(value)}")
        return value


def parse_uv_json(
    data: Mapping[str, Any],
    *,
    source: str = "downloads JSON",
    unfit: list[str] | None = None,
    local_urls: bool = True,
) -> tuple[list[Build], list[str]]:
    """Turn a downloads JSON document into builds, plus the keys that were skipped.

    Entries for an implementation or platform pylock does not know are skipped (a
    newer uv may list more), and so are entries with a build tag, version or URL
    that ``pythons.lock`` cannot hold (``../x``, a space): their reasons, naming the
    key, are appended to ``unfit`` if given. A malformed entry raises
    :class:`UpstreamError` naming its key and field, and so does a ``file://`` URL in a
    document read over http(s) (``local_urls=False``).
    """
    if not isinstance(data, Mapping):
        raise UpstreamError(f"{source}: expected a JSON object of entries")
    builds: list[tuple[str, Build]] = []
    skipped: list[str] = []
    for key, raw in data.items():
        if not isinstance(raw, Mapping):
            raise UpstreamError(
                f"{source}: entry {shown(key)}: expected an object, got {shown(raw)}"
            )
        try:
            build = _read_entry(_Entry(source, str(key), raw), local_urls=local_urls)
        except _Unfit as exc:
            if unfit is not None:
                unfit.append(f"{source}: entry {shown(str(key))}: {exc}")
            build = None
        if build is None:
            skipped.append(str(key))
        else:
            builds.append((str(key), build))
    return _one_file_per_url(builds, source, skipped, unfit), skipped


def _one_file_per_url(
    builds: list[tuple[str, Build]], source: str, skipped: list[str], unfit: list[str] | None
) -> list[Build]:
    """The builds, less those at a URL that other entries list with another sha256: which
    one is right cannot be told, and the entries' order would decide."""
    # One file, however its URL is spelled (`%2B` and `+` name the same on every server).
    hashes: dict[str, set[str | None]] = {}
    for _, build in builds:
        hashes.setdefault(unquote(build.url), set()).add(build.sha256)
    kept = []
    for key, build in builds:
        if len(hashes[unquote(build.url)] - {None}) > 1:
            skipped.append(key)
            if unfit is not None:
                unfit.append(
                    f"{source}: entry {shown(key)}: other entries list its URL with another sha256"
                )
        else:
            kept.append(build)
    return kept


def newest_tag_date(builds: list[Build]) -> str | None:
    """The date of the newest PBS date tag among ``builds``, as ``YYYY-MM-DD``."""
    dates = [d for d in {tag_date(b.build) for b in builds} if d]
    return max(dates) if dates else None


def _read_entry(e: _Entry, *, local_urls: bool = True) -> Build | None:
    for field in _REQUIRED:
        if field not in e.entry:
            raise e.fail(f"missing {field!r}")
    name = e.text("name")
    try:
        implementation = Implementation(name)
    except ValueError:
        return None
    arch = e.entry["arch"]
    if not isinstance(arch, Mapping) or not isinstance(arch.get("family"), str):
        raise e.fail(f"'arch' must be an object with a 'family' string, got {shown(arch)}")
    arch_variant = arch.get("variant")
    if arch_variant is not None and not isinstance(arch_variant, str):
        raise e.fail(f"'arch.variant' must be a string or null, got {shown(arch_variant)}")
    os_name = e.text("os")
    libc = e.text("libc")
    platform = Platform.from_uv(os_name, arch["family"], arch_variant, libc)
    if platform is None:
        return None

    prerelease = e.optional_text("prerelease") or ""
    version_text = f"{e.number('major')}.{e.number('minor')}.{e.number('patch')}{prerelease}"
    try:
        Version(version_text)
    except ValueError:  # InvalidVersion, or a part too long for int()
        raise e.fail(f"invalid version {shown(version_text)}") from None

    raw_variant = e.optional_text("variant")
    try:
        variant = Variant.parse(raw_variant or "")
    except ValueError:
        raise e.fail(f"unknown variant {shown(raw_variant)}") from None

    url = e.text("url")
    problem = url_problem(url)  # urlsplit raises for a broken IPv6 literal, say
    if problem is not None:
        raise e.fail(f"invalid url {shown(url)}: {problem}")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http", "file") or not parts.path:
        raise e.fail(f"invalid url {shown(url)}")
    if parts.scheme == "file" and not local_urls:
        # A document from a server names no file of the machine that reads it.
        raise e.fail(f"a file URL ({shown(url)}) in a downloads JSON served over http(s)")
    secret = credentials_problem(url)
    if secret is not None:
        # Not skipped: the file's author put them there on purpose, and needs to be told.
        raise e.fail(secret, hint=CREDENTIALS_HINT)
    filename = filename_from_url(url)

    sha256 = e.optional_text("sha256")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not is_sha256(sha256):
            raise e.fail(f"invalid sha256 {shown(sha256)} (expected 64 hex digits)")

    tag = e.optional_text("build")
    flavor, fmt, name_tag = _from_filename(
        e, implementation, filename, version_text, platform, variant
    )
    if tag is None:
        tag = name_tag or _tag_from_url(parts.path)
    if tag is None:
        raise e.fail("missing 'build', and the url names no release tag")
    if name_tag is not None and name_tag != tag:
        raise e.fail(f"'build' is {shown(tag)} but the file name says {shown(name_tag)}")
    # The lock reader's rules, so that `lock` never writes what `sync` refuses to read.
    unfit = build_problem(tag) or version_problem(version_text) or artifact_url_problem(url)
    if unfit is not None:
        raise _Unfit(unfit)

    return Build(
        implementation=implementation,
        version=version_text,
        build=tag,
        platform=platform.key,
        variant=variant,
        flavor=flavor,
        format=fmt,
        url=url,
        sha256=sha256,
    )


def _from_filename(
    e: _Entry,
    implementation: Implementation,
    filename: str,
    version: str,
    platform: Platform,
    variant: Variant,
) -> tuple[Flavor | None, ArchiveFormat, str | None]:
    """Flavor, format and (where the name has one) the tag, checked against the entry."""
    if implementation is Implementation.CPYTHON:
        pbs = parse_pbs_filename(filename)
        if pbs is not None:
            if pbs.version != version:
                raise e.fail(f"version is {version} but the file name says {pbs.version}")
            if pbs.platform != platform:
                raise e.fail(f"platform is {platform} but the file name says {pbs.platform}")
            if pbs.variant is not variant:
                raise e.fail(f"variant is {variant} but the file name says {pbs.variant}")
            return pbs.flavor, pbs.format, pbs.tag
        pyodide = parse_pyodide_filename(filename)
        fmt = _format(e, filename)
        if pyodide is not None:
            # A Pyodide cross-build environment: a plain tarball that unpacks like an
            # install_only archive would be used, so it is locked as one.
            return Flavor.INSTALL_ONLY, fmt, pyodide
        # A self-hosted file under another name: uv lists install_only layouts unless
        # the name says otherwise.
        return flavor_in_filename(filename) or Flavor.INSTALL_ONLY, fmt, None
    if implementation is Implementation.PYPY:
        pypy = parse_pypy_filename(filename)
        if pypy is not None:
            _check_series(e, version, pypy.python_version, pypy.platform, platform)
            return None, pypy.format, pypy.release
        return None, _format(e, filename), None
    graalpy = parse_graalpy_filename(filename)
    if graalpy is not None:
        _check_series(e, version, graalpy.python_version, graalpy.platform, platform)
        return None, graalpy.format, graalpy.release
    return None, _format(e, filename), None


def _check_series(
    e: _Entry, version: str, series: str | None, named: Platform, platform: Platform
) -> None:
    if series is not None and not version.startswith(f"{series}."):
        raise e.fail(f"version is {version} but the file name says Python {series}")
    if named != platform:
        raise e.fail(f"platform is {platform} but the file name says {named}")


def _format(e: _Entry, filename: str) -> ArchiveFormat:
    try:
        return ArchiveFormat.from_filename(filename)
    except ValueError as exc:
        raise e.fail(str(exc)) from None


def _tag_from_url(path: str) -> str | None:
    """The release tag in a GitHub ``.../releases/download/{tag}/{file}`` path."""
    segments = path.split("/")
    if len(segments) >= 3 and segments[-3] == "download":
        tag = unquote(segments[-2])
        # GraalPy tags read ``graal-25.0.1``; the build is the release number.
        return tag.removeprefix("graal-").removeprefix("vm-")
    return None
