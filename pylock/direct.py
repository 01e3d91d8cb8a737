"""Locking a direct-URL interpreter: a ``url`` entry of ``pythons.toml`` without a ``sha256``.

The use case behind ``pylock lock`` for such entries: download the archive once into the
cache, record its sha256 and size, and tell its layout and Python version from the
archive itself (``PYTHON.json`` of a full archive), its file name, or an exact
``version`` in the request. The pure part, turning what was found into a lock entry,
is :func:`pylock.resolve.lock_direct`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pylock.bounded import json_loads
from pylock.errors import ArchiveError, ResolutionError
from pylock.urls import filename_from_url
from pylock.versions import Implementation

if TYPE_CHECKING:
    from pylock.config import PythonRequest
    from pylock.lockfile import LockedPython
    from pylock.net.options import FetchOptions
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache


def make_direct_resolver(
    *,
    fetch_options: FetchOptions,
    cache: Cache,
    reporter: Reporter,
    host_platform: Platform | None = None,
) -> Callable[[PythonRequest], LockedPython]:
    """The resolver's callback for ``url`` entries without a ``sha256``.

    It downloads the archive once into the cache, records its sha256 and size, and
    tells the layout and the version from the archive itself (``PYTHON.json`` of a
    full archive), its file name, or an exact ``version`` in the request.
    """

    def direct(request: PythonRequest) -> LockedPython:
        from pylock.sync.archives import download_unknown

        assert request.url is not None
        sha256, size, path = download_unknown(request.url, cache, fetch_options, reporter)
        return describe_direct(
            request,
            path=path,
            sha256=sha256,
            size=size,
            host_platform=host_platform,
            # Not kept: the next run downloads it again anyway (it has no sha256 to look
            # it up by), and no lock names it.
            discard=lambda: _discard(cache, sha256),
        )

    return direct


def _discard(cache: Cache, sha256: str) -> None:
    """Evict a download that is no archive pylock can install, if this user may."""
    # The error about the download is the one to report.
    with contextlib.suppress(OSError):
        cache.evict(sha256)


def describe_direct(
    request: PythonRequest,
    *,
    path: Path,
    sha256: str,
    size: int | None,
    host_platform: Platform | None = None,
    discard: Callable[[], object] | None = None,
) -> LockedPython:
    """The lock entry for a direct-URL archive already on disk at ``path``; ``discard`` is
    called first when it is no archive pylock can install (a proxy's login page)."""
    from pylock.archive.layout import Layout, detect_layout
    from pylock.platforms import resolve_platform
    from pylock.resolve import check_named_build, lock_direct
    from pylock.versions import ArchiveFormat, Flavor

    assert request.url is not None
    url = request.url
    filename = filename_from_url(url)
    where = f"python.{request.name}.url"
    try:
        fmt = ArchiveFormat.from_filename(filename)
    except ValueError as exc:
        raise ResolutionError(f"{where}: {exc}") from None
    try:
        layout = detect_layout(path, fmt)
    except ArchiveError as exc:
        page = _looks_like_a_page(path)
        if discard is not None:
            discard()
        if page:
            raise ResolutionError(
                f"{where}: {url} answered with a web page ({size} bytes), not an archive",
                hint="a login page, or a proxy's or a captive portal's: open the URL (after "
                "any PYLOCK_URL_REWRITES) in a browser, and check the rewrites and netrc",
            ) from None
        raise ResolutionError(
            f"{where}: {url} is not an archive pylock can install ({exc})",
            hint="pylock installs python-build-standalone layouts (python/...) and "
            "archives with a single top directory (PyPy, GraalPy)",
        ) from None
    flavor: Flavor | None
    if layout is Layout.PBS_FULL:
        flavor = Flavor.FULL
    elif layout is Layout.PBS_INSTALL_ONLY:
        flavor = (
            Flavor.INSTALL_ONLY_STRIPPED
            if Flavor.INSTALL_ONLY_STRIPPED.value in filename
            else Flavor.INSTALL_ONLY
        )
    else:
        flavor = None
    try:
        platforms = sorted(
            {resolve_platform(p, host_platform=host_platform).key for p in request.platforms}
        )
    except ValueError as exc:
        raise ResolutionError(f"python.{request.name}.platforms: {exc}") from None
    # Before the version is read from a name that may be another implementation's release.
    check_named_build(request, filename, platforms)
    version = direct_version(request, filename=filename, path=path, fmt=fmt, layout=layout)
    return lock_direct(
        request, sha256=sha256, size=size, platforms=platforms, version=version, flavor=flavor
    )


def direct_version(
    request: PythonRequest, *, filename: str, path: Path, fmt: Any, layout: Any
) -> str:
    """Which Python version a direct archive holds, checked against the request."""
    from packaging.version import Version

    from pylock.archive.layout import Layout
    from pylock.errors import printable
    from pylock.index.names import version_in_filename
    from pylock.resolve import exact_version
    from pylock.versions import is_release_version, request_allows

    detected: str | None = None
    origin = ""
    if layout is Layout.PBS_FULL:
        try:
            detected = read_python_json(path, fmt).get("python_version")
        except ResolutionError as exc:
            raise ResolutionError(f"python.{request.name}: {exc.message}", hint=exc.hint) from None
        origin = "its PYTHON.json"
        if detected is not None and not is_release_version(detected):
            raise ResolutionError(
                f"python.{request.name}: {request.url} is not an archive pylock can lock: "
                f"its PYTHON.json names the version {printable(str(detected))[:60]!r}",
                hint="check that the URL names the interpreter build you meant",
            )
    elif request.implementation is Implementation.CPYTHON:
        detected = version_in_filename(filename)
        origin = "its file name"
    exact = exact_version(request.specifier)
    where = f"python.{request.name}"
    if detected is not None and exact is not None and Version(detected) != Version(exact):
        raise ResolutionError(
            f"{where}: version = {request.version!r} but {request.url} holds Python "
            f"{detected} (from {origin})"
        )
    version = detected or exact
    if version is None:
        raise ResolutionError(
            f"{where}: cannot tell which Python version {request.url} holds",
            hint=f'give the exact version in pythons.toml, e.g. version = "3.12.9" '
            f"under [python.{request.name}]",
        )
    spec = request.specifier
    if spec is not None and not request_allows(spec, Version(version), prereleases=True):
        raise ResolutionError(
            f"{where}: {request.url} holds Python {version}, which does not satisfy "
            f"version = {request.version!r}"
        )
    return version


def read_python_json(path: Path, fmt: Any) -> dict[str, Any]:
    """``python/PYTHON.json`` of a full PBS archive (its first member, read by streaming)."""
    from pylock.archive.tar import read_tar_member

    def parse(raw: bytes) -> dict[str, Any]:
        try:
            data = json_loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ResolutionError(f"{path.name}: python/PYTHON.json is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ResolutionError(f"{path.name}: python/PYTHON.json is not a JSON object")
        if not isinstance(data.get("python_version", ""), str):
            raise ResolutionError(f"{path.name}: python/PYTHON.json's python_version is no text")
        return data  # without a python_version, the request's exact version has to do

    try:
        # pylock's own tar reader: it ends, with an ArchiveError, on any hostile header.
        raw = read_tar_member(path, fmt, "python/PYTHON.json")
    except ArchiveError as exc:
        raise ResolutionError(f"{path.name}: cannot read the archive: {exc}") from None
    if raw is not None:
        return parse(raw)
    raise ResolutionError(f"{path.name}: a full archive without python/PYTHON.json")


def _looks_like_a_page(path: Path) -> bool:
    """Whether the file starts as HTML or XML does (``<``, after white space)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return head.lstrip().startswith(b"<")
