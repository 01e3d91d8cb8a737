"""Live upstream look-ups: refreshing the index, direct-URL interpreters, uv downloads JSON.

This is the edge where the index meets the network: it opens one fetcher, reads
listings through the metadata cache (:mod:`pylock.index.metadata`) and merges what
upstream has now into the bundled snapshot. The parsers live in
:mod:`pylock.index.pbs`, :mod:`pylock.index.pypy` and :mod:`pylock.index.graalpy`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import attrs

from pylock.bounded import json_loads
from pylock.errors import (
    ArchiveError,
    OfflineError,
    PylockError,
    ResolutionError,
    UpstreamError,
)
from pylock.versions import Implementation

if TYPE_CHECKING:
    from pylock.config import Config, PythonRequest
    from pylock.index.metadata import Documents
    from pylock.index.model import Build, Index
    from pylock.lockfile import LockedPython, LockFile
    from pylock.net.fetch import FetchOptions
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class RefreshNeeds:
    """Which live listings a refresh must read, so that nothing else is fetched."""

    #: Implementations whose listings are wanted.
    implementations: frozenset[Implementation] = frozenset(Implementation)
    #: ``(implementation, build tag)`` pairs pinned with ``build = "..."``.
    pinned: frozenset[tuple[Implementation, str]] = frozenset()

    @classmethod
    def for_config(cls, config: Config) -> RefreshNeeds:
        """What resolving ``config`` needs (direct-URL entries need no listing)."""
        wanted = [p for p in config.pythons if p.url is None]
        return cls(
            implementations=frozenset(p.implementation for p in wanted),
            pinned=frozenset((p.implementation, p.build) for p in wanted if p.build),
        )

    @classmethod
    def for_lock(cls, lock: LockFile) -> RefreshNeeds:
        """What ``pylock outdated`` needs: the listings of every locked implementation."""
        return cls(
            implementations=frozenset(p.implementation for p in lock.pythons if p.build),
        )


def _today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio

    return asyncio.run(factory())


async def _with_documents(
    *,
    fetch_options: FetchOptions,
    cache: Cache,
    reporter: Reporter,
    environ: Mapping[str, str] | None,
    work: Callable[[Documents], Awaitable[T]],
) -> T:
    """Run ``work`` with a :class:`Documents` over the cache (and a fetcher when online)."""
    from pylock.index.metadata import Documents, MetadataStore, github_token

    store = MetadataStore(cache.metadata_dir)
    token = github_token(environ)
    if fetch_options.offline:
        return await work(Documents(store, None, reporter=reporter, github_token=token))
    from pylock.net.fetch import Fetcher

    async with Fetcher(fetch_options, reporter, environ=environ) as fetcher:
        return await work(Documents(store, fetcher, reporter=reporter, github_token=token))


def refresh_index(
    base: Index,
    *,
    fetch_options: FetchOptions,
    cache: Cache,
    reporter: Reporter,
    need: RefreshNeeds,
    environ: Mapping[str, str] | None = None,
) -> Index:
    """``base`` with what upstream lists now merged in (live builds win for the same URL).

    Only the listings ``need`` asks for are read. Offline, cached listings are used
    (with a warning saying how old they are); a cold cache raises :class:`OfflineError`.
    """
    live = _run(
        lambda: _with_documents(
            fetch_options=fetch_options,
            cache=cache,
            reporter=reporter,
            environ=environ,
            work=lambda docs: fetch_live(base, docs, need=need, reporter=reporter),
        )
    )
    added = len({b.url for b in live.builds} - {b.url for b in base.builds})
    reporter.detail(f"refreshed upstream listings: {added} build(s) not in the bundled index")
    return base.merge(live)


async def fetch_live(
    base: Index, docs: Documents, *, need: RefreshNeeds, reporter: Reporter
) -> Index:
    """The live index: what upstream lists beyond ``base``, for the implementations needed."""
    import asyncio

    from pylock.index.model import Index

    builds: list[Build] = []
    tag_dates: dict[str, str] = {}
    today = _today()

    async def pbs() -> None:
        from pylock.index.pbs import refresh_pbs

        known = {b.build for b in base.builds if b.implementation is Implementation.CPYTHON}
        newest = max((base.publication_date(t) for t in known), default=None)
        pinned = {tag for impl, tag in need.pinned if impl is Implementation.CPYTHON}
        found = await refresh_pbs(
            docs,
            known_tags=known,
            newest_known=newest or None,
            pinned=pinned,
            reporter=reporter,
            today=today,
        )
        builds.extend(found.builds)
        tag_dates.update(found.tag_dates)

    async def pypy() -> None:
        from pylock.index.pypy import refresh_pypy

        builds.extend((await refresh_pypy(docs, reporter=reporter)).builds)

    async def graalpy() -> None:
        from pylock.index.graalpy import refresh_graalpy

        builds.extend((await refresh_graalpy(docs, reporter=reporter)).builds)

    jobs = {
        Implementation.CPYTHON: pbs,
        Implementation.PYPY: pypy,
        Implementation.GRAALPY: graalpy,
    }
    await asyncio.gather(*(jobs[impl]() for impl in sorted(need.implementations)))
    return Index(builds=builds, source="live upstream", source_date=today, tag_dates=tag_dates)


# -- uv downloads JSON ---------------------------------------------------------------------


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https", "file") and "://" in text


def load_uv_downloads_json(
    source: str,
    *,
    fetch_options: FetchOptions,
    reporter: Reporter,
) -> Index:
    """The builds listed in a uv-format downloads JSON file (a path or a URL).

    URLs go through the URL rewrites like every other request; ``file://`` URLs and
    paths are read directly, also offline.
    """
    from pylock.index.model import Index
    from pylock.index.uvjson import newest_tag_date, parse_uv_json

    body = _read_source(source, fetch_options=fetch_options)
    try:
        data = json_loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UpstreamError(f"{source}: not valid JSON: {exc}") from None
    builds, skipped = parse_uv_json(data, source=source)
    if skipped:
        reporter.detail(f"{source}: skipped {len(skipped)} entries for unknown platforms")
    reporter.detail(f"{source}: {len(builds)} builds")
    return Index(
        builds=builds,
        source=source,
        source_date=newest_tag_date(builds) or _today(),
    )


def _read_source(source: str, *, fetch_options: FetchOptions) -> bytes:
    parts = urlsplit(source)
    if _is_url(source) and parts.scheme != "file":
        if fetch_options.offline:
            raise OfflineError(
                f"offline, so the downloads JSON at {source} cannot be fetched",
                url=source,
                hint="download it once and pass its local path instead",
            )
        return _run(lambda: _fetch_bytes(source, fetch_options))
    path = Path(unquote(parts.path)) if parts.scheme == "file" else Path(source).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PylockError(f"cannot read downloads JSON {path}: {exc.strerror or exc}") from None


async def _fetch_bytes(url: str, fetch_options: FetchOptions) -> bytes:
    from pylock.net.fetch import Fetcher

    async with Fetcher(fetch_options) as fetcher:
        response = await fetcher.get(url)
    if response.status != 200:
        raise UpstreamError(f"{url}: HTTP {response.status}")
    return response.body


# -- direct-URL interpreters ----------------------------------------------------------------


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
        from pylock.net.fetch import download_unknown

        assert request.url is not None
        sha256, size, path = download_unknown(request.url, cache, fetch_options, reporter)
        return describe_direct(
            request, path=path, sha256=sha256, size=size, host_platform=host_platform
        )

    return direct


def describe_direct(
    request: PythonRequest,
    *,
    path: Path,
    sha256: str,
    size: int | None,
    host_platform: Platform | None = None,
) -> LockedPython:
    """The lock entry for a direct-URL archive already on disk at ``path``."""
    from pylock.archive.layout import Layout, detect_layout
    from pylock.platforms import resolve_platform
    from pylock.resolve import lock_direct
    from pylock.versions import ArchiveFormat, Flavor

    assert request.url is not None
    url = request.url
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    where = f"python.{request.name}.url"
    try:
        fmt = ArchiveFormat.from_filename(filename)
    except ValueError as exc:
        raise ResolutionError(f"{where}: {exc}") from None
    try:
        layout = detect_layout(path, fmt)
    except ArchiveError as exc:
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
    version = direct_version(request, filename=filename, path=path, fmt=fmt, layout=layout)
    try:
        platforms = sorted(
            {resolve_platform(p, host_platform=host_platform).key for p in request.platforms}
        )
    except ValueError as exc:
        raise ResolutionError(f"python.{request.name}.platforms: {exc}") from None
    return lock_direct(
        request, sha256=sha256, size=size, platforms=platforms, version=version, flavor=flavor
    )


def direct_version(
    request: PythonRequest, *, filename: str, path: Path, fmt: Any, layout: Any
) -> str:
    """Which Python version a direct archive holds, checked against the request."""
    from packaging.version import Version

    from pylock.archive.layout import Layout
    from pylock.index.names import version_in_filename
    from pylock.resolve import exact_version
    from pylock.versions import request_allows

    detected: str | None = None
    origin = ""
    if layout is Layout.PBS_FULL:
        detected = read_python_json(path, fmt).get("python_version")
        origin = "its PYTHON.json"
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
        if not isinstance(data, dict) or not isinstance(data.get("python_version"), str):
            raise ResolutionError(f"{path.name}: python/PYTHON.json has no python_version")
        return data

    try:
        # pylock's own tar reader: it ends, with an ArchiveError, on any hostile header.
        raw = read_tar_member(path, fmt, "python/PYTHON.json")
    except ArchiveError as exc:
        raise ResolutionError(f"{path.name}: cannot read the archive: {exc}") from None
    if raw is not None:
        return parse(raw)
    raise ResolutionError(f"{path.name}: a full archive without python/PYTHON.json")


# -- snapshot generation ---------------------------------------------------------------------


def live_snapshot(
    base: Index,
    *,
    fetch_options: FetchOptions,
    cache: Cache,
    reporter: Reporter,
    environ: Mapping[str, str] | None = None,
) -> Index:
    """``base`` (usually the uv seed) refreshed with everything upstream lists now.

    Used by ``scripts/build_snapshot.py --live``.
    """
    return refresh_index(
        base,
        fetch_options=fetch_options,
        cache=cache,
        reporter=reporter,
        need=RefreshNeeds(),
        environ=environ if environ is not None else os.environ,
    )
