"""Live upstream look-ups: refreshing the index and reading uv's downloads JSON.

This is the edge where the index meets the network: it opens one fetcher, reads
listings through the metadata cache (:mod:`pylock.index.metadata`) and merges what
upstream has now into the bundled snapshot. The parsers live in
:mod:`pylock.index.pbs`, :mod:`pylock.index.pypy` and :mod:`pylock.index.graalpy`.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import attrs

from pylock.bounded import json_loads
from pylock.errors import (
    OfflineError,
    PylockError,
    UpstreamError,
    UsageError,
)
from pylock.settings import Settings
from pylock.versions import Implementation

if TYPE_CHECKING:
    from pylock.config import Config
    from pylock.index.metadata import Documents
    from pylock.index.model import Build, Index
    from pylock.lockfile import LockFile
    from pylock.net.options import FetchOptions
    from pylock.progress import Reporter

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
    metadata_dir: Path,
    reporter: Reporter,
    settings: Settings | None,
    work: Callable[[Documents], Awaitable[T]],
) -> T:
    """Run ``work`` with a :class:`Documents` over ``metadata_dir`` (and a fetcher when online)."""
    from pylock.index.metadata import Documents, MetadataStore

    store = MetadataStore(metadata_dir)
    if settings is None:
        settings = Settings.current()
    token = settings.github_token
    if fetch_options.offline:
        return await work(Documents(store, None, reporter=reporter, github_token=token))
    from pylock.net.fetch import Fetcher

    async with Fetcher(fetch_options, reporter, settings=settings) as fetcher:
        return await work(Documents(store, fetcher, reporter=reporter, github_token=token))


def refresh_index(
    base: Index,
    *,
    fetch_options: FetchOptions,
    metadata_dir: Path,
    reporter: Reporter,
    need: RefreshNeeds,
    settings: Settings | None = None,
) -> Index:
    """``base`` with what upstream lists now merged in (live builds win for the same URL).

    Only the listings ``need`` asks for are read. Offline, cached listings are used
    (with a warning saying how old they are); a cold cache raises :class:`OfflineError`.
    """
    live = _run(
        lambda: _with_documents(
            fetch_options=fetch_options,
            metadata_dir=metadata_dir,
            reporter=reporter,
            settings=settings,
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

    from pylock.index.model import LIVE_SOURCE, Index

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
    return Index(builds=builds, source=LIVE_SOURCE, source_date=today, tag_dates=tag_dates)


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
    remote = _is_url(source) and urlsplit(source).scheme != "file"
    unfit: list[str] = []
    builds, skipped = parse_uv_json(data, source=source, local_urls=not remote, unfit=unfit)
    if unfit:
        # Its author put them there on purpose (not entries for a newer uv's platforms).
        more = f" (and {len(unfit) - 1} more; -v lists them)" if len(unfit) > 1 else ""
        reporter.warn(f"left out {unfit[0]}{more}")
        for reason in unfit[1:]:
            reporter.detail(f"left out {reason}")
    if len(skipped) > len(unfit):
        reporter.detail(
            f"{source}: skipped {len(skipped) - len(unfit)} entries for unknown platforms"
        )
    reporter.detail(f"{source}: {len(builds)} builds")
    return Index(
        builds=builds,
        source=source,
        source_date=newest_tag_date(builds) or _today(),
    )


def _read_source(source: str, *, fetch_options: FetchOptions) -> bytes:
    from pylock.urls import redact_given

    parts = urlsplit(source)
    userinfo, at, _ = source.partition("://")[2].partition("/")[0].rpartition("@")
    if at and any(c.isspace() for c in userinfo):
        # A password with a space in it: every message that quoted the URL showed it.
        raise UsageError(
            f"--python-downloads-json: invalid URL {redact_given(source)!r}: its user name "
            "or password contains white space",
            hint="write a space in it as %20",
        )
    if _is_url(source) and parts.scheme != "file":
        if fetch_options.offline:
            raise OfflineError(
                f"offline, so the downloads JSON at {source} cannot be fetched",
                url=source,
                hint="download it once and pass its local path instead",
            )
        return _run(lambda: _fetch_bytes(source, fetch_options))
    if "://" in source and parts.scheme != "file":
        # An unsupported scheme (ftp://...) is not a relative path with a colon in it.
        raise UsageError(
            f"--python-downloads-json: unsupported URL {redact_given(source)!r}",
            hint="give an http://, https:// or file:// URL, or a local path",
        )
    from pylock.net.fetch import MAX_METADATA_BYTES
    from pylock.net.policy import file_path
    from pylock.ownfiles import RefusedFileError, read_own_file

    if parts.scheme == "file":
        path = file_path(source)
    else:
        settings = fetch_options.settings or Settings.current()
        path = Path(settings.expand_home(source, "--python-downloads-json"))
    try:
        # Bounded, and regular files only: a pipe would block for ever, /dev/zero never end.
        return read_own_file(path, MAX_METADATA_BYTES, follow_symlinks=True)
    except RefusedFileError as exc:
        raise PylockError(
            f"cannot read downloads JSON {path}: {exc}",
            hint="give a regular file (not a pipe or device) of at most "
            f"{MAX_METADATA_BYTES >> 20} MiB",
        ) from None
    except OSError as exc:
        raise PylockError(f"cannot read downloads JSON {path}: {exc.strerror or exc}") from None


async def _fetch_bytes(url: str, fetch_options: FetchOptions) -> bytes:
    from pylock.net.fetch import Fetcher

    async with Fetcher(fetch_options) as fetcher:
        response = await fetcher.get(url)
    if response.status != 200:
        raise UpstreamError(f"{url}: HTTP {response.status}")
    return response.body


# -- snapshot generation ---------------------------------------------------------------------


def live_snapshot(
    base: Index,
    *,
    fetch_options: FetchOptions,
    metadata_dir: Path,
    reporter: Reporter,
    settings: Settings | None = None,
) -> Index:
    """``base`` (usually the uv seed) refreshed with everything upstream lists now.

    Used by ``scripts/build_snapshot.py --live``.
    """
    return refresh_index(
        base,
        fetch_options=fetch_options,
        metadata_dir=metadata_dir,
        reporter=reporter,
        need=RefreshNeeds(),
        settings=settings if settings is not None else Settings.current(),
    )
