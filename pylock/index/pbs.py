"""python-build-standalone live listings: latest-release.json, SHA256SUMS and the releases API.

``latest-release.json`` and each tag's ``SHA256SUMS`` are plain downloads that cost
no GitHub API quota; the releases API is consulted only when history is needed
(release tags between the snapshot and the latest one, their publication dates, or
a pinned tag that publishes no ``SHA256SUMS``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs

from pylock.errors import EmptySumsError, RateLimitError, UpstreamError
from pylock.index.model import Build, tag_date
from pylock.index.names import parse_pbs_filename
from pylock.net.policy import printable
from pylock.versions import Implementation

if TYPE_CHECKING:
    from pylock.index.metadata import Documents
    from pylock.progress import Reporter

REPO = "astral-sh/python-build-standalone"
LATEST_RELEASE_URL = f"https://raw.githubusercontent.com/{REPO}/latest-release/latest-release.json"
DOWNLOAD_PREFIX = f"https://github.com/{REPO}/releases/download/"
RELEASES_API = f"https://api.github.com/repos/{REPO}/releases"
#: PBS releases carry ~1000 assets each, so API pages are kept short.
API_PER_PAGE = 10
#: Never page further than this through the releases API in one run.
API_MAX_PAGES = 40

_TAG = re.compile(r"^[0-9]{8}$")
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(\S+)$")
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
#: ``published_at`` as GitHub writes it: an ISO 8601 date and time.
_PUBLISHED = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T")


def download_url(tag: str, filename: str) -> str:
    """The canonical download URL of a release asset (``+`` written ``%2B``).

    >>> download_url("20251014", "cpython-3.13.9+20251014-x.tar.gz").rsplit("/", 2)[1:]
    ['20251014', 'cpython-3.13.9%2B20251014-x.tar.gz']
    """
    return f"{DOWNLOAD_PREFIX}{tag}/{quote(filename, safe='')}"


def sums_url(tag: str) -> str:
    """The URL of a release's ``SHA256SUMS``."""
    return f"{DOWNLOAD_PREFIX}{tag}/SHA256SUMS"


def parse_latest_release(data: Any, *, url: str = LATEST_RELEASE_URL) -> str:
    """The tag ``latest-release.json`` points at.

    >>> parse_latest_release({"version": 1, "tag": "20260814"})
    '20260814'
    """
    tag = data.get("tag") if isinstance(data, dict) else None
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise UpstreamError(f'{url}: expected an object with a date tag such as "20251014"')
    return tag


def _is_archive_size(size: object) -> bool:
    """Whether an API asset's ``size`` can be an archive's: a whole number of bytes, more
    than none and under a TiB. Anything else is left out (locked without a size) rather
    than locked as a size every sync would fail on, or a lock could not read back.

    >>> [_is_archive_size(v) for v in (212, 0, -5, 10**29, True, 1.5)]
    [True, False, False, False, False, False]
    """
    return isinstance(size, int) and not isinstance(size, bool) and 0 < size < 1 << 40


def parse_sha256sums(text: str, *, url: str = "SHA256SUMS") -> dict[str, str]:
    """Map file name to lowercase sha256 from a ``SHA256SUMS`` body.

    Every non-blank line must be ``<64 hex>  <name>``: a truncated or garbled file is
    an error, never a partial listing.

    >>> parse_sha256sums("AB" * 32 + "  cpython-3.13.9+20251014-x.tar.gz\\n") == {
    ...     "cpython-3.13.9+20251014-x.tar.gz": "ab" * 32
    ... }
    True
    """
    sums: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _SUMS_LINE.match(line)
        if not match:
            # The line is the server's text: a garbled file may hold one of megabytes.
            raise UpstreamError(
                f"{url}: line {number} is not '<sha256>  <file name>': {printable(line)!r}"
            )
        digest, name = match.group(1).lower(), match.group(2)
        if sums.get(name, digest) != digest:
            raise UpstreamError(f"{url}: {name} is listed twice with different hashes")
        sums[name] = digest
    if not sums:
        # A release publishes its files' hashes; an empty answer is a broken one (a mirror
        # that served a 0-byte file, say), which kept as immutable would hide the
        # release's hashes for good. Not stored; the API's digests stand in.
        raise EmptySumsError(f"{url} lists no file")
    return sums


@attrs.frozen(kw_only=True)
class ApiAsset:
    """One asset of a GitHub release, as the releases API lists it."""

    #: File name.
    name: str
    #: Size in bytes.
    size: int | None
    #: ``browser_download_url``.
    url: str
    #: Lowercase hex sha256 from ``digest``; ``None`` where GitHub has none (older assets).
    sha256: str | None


@attrs.frozen(kw_only=True)
class ApiRelease:
    """One GitHub release, as the releases API lists it."""

    #: The tag, e.g. ``20251014`` or ``graal-25.0.1``.
    tag: str
    #: ``published_at`` (ISO 8601), or ``None`` for a draft.
    published_at: str | None
    #: Whether it is a draft (never used).
    draft: bool
    #: Whether GitHub marks it as a pre-release.
    prerelease: bool
    #: Its assets.
    assets: tuple[ApiAsset, ...]


def parse_releases_page(data: Any, *, url: str) -> list[ApiRelease]:
    """Validate one page of ``GET /repos/{owner}/{repo}/releases``."""
    if not isinstance(data, list):
        raise UpstreamError(f"{url}: expected a JSON list of releases")
    releases = []
    for position, item in enumerate(data):
        where = f"{url}: release [{position}]"
        if not isinstance(item, dict) or not isinstance(item.get("tag_name"), str):
            raise UpstreamError(f"{where}: expected an object with a tag_name")
        published = item.get("published_at")
        raw_assets = item.get("assets", [])
        if not isinstance(raw_assets, list):
            raise UpstreamError(f"{where}: assets must be a list")
        assets = []
        for asset in raw_assets:
            if not isinstance(asset, dict) or not isinstance(asset.get("name"), str):
                raise UpstreamError(f"{where}: an asset has no name")
            size = asset.get("size")
            digest = asset.get("digest")
            match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
            link = asset.get("browser_download_url")
            assets.append(
                ApiAsset(
                    name=asset["name"],
                    size=size if _is_archive_size(size) else None,
                    url=link if isinstance(link, str) else "",
                    sha256=match.group(1).lower() if match else None,
                )
            )
        releases.append(
            ApiRelease(
                tag=item["tag_name"],
                # Only a date: it orders builds, and "zzzz" or a bidi override must not.
                published_at=published
                if isinstance(published, str) and _PUBLISHED.match(published)
                else None,
                draft=bool(item.get("draft", False)),
                prerelease=bool(item.get("prerelease", False)),
                assets=tuple(assets),
            )
        )
    return releases


def _is_archive(name: str) -> bool:
    return name.startswith("cpython-") and name.endswith((".tar.gz", ".tar.zst"))


def build_from_asset(tag: str, filename: str, sha256: str | None, size: int | None) -> Build | None:
    """A :class:`Build` for one PBS asset, or ``None`` for names that are not interpreters."""
    parsed = parse_pbs_filename(filename)
    if parsed is None or (parsed.tag is not None and parsed.tag != tag):
        return None
    return Build(
        implementation=Implementation.CPYTHON,
        version=parsed.version,
        build=tag,
        platform=parsed.platform.key,
        variant=parsed.variant,
        flavor=parsed.flavor,
        format=parsed.format,
        url=download_url(tag, filename),
        sha256=sha256,
        size=size,
    )


@attrs.frozen(kw_only=True)
class ReleaseBuilds:
    """The builds of one release, and the archives left out for want of a hash."""

    #: Interpreter archives of the release.
    builds: tuple[Build, ...]
    #: Archive names with no published sha256 (from a release that should have one).
    unhashed: tuple[str, ...]
    #: Archive names whose ``SHA256SUMS`` line and API digest disagree: left out, for
    #: nothing says which is right (sync would refuse the bytes of one or the other).
    conflicting: tuple[str, ...] = ()


#: The first release that published hashes; older ones legitimately have none.
FIRST_HASHED_TAG = "20220227"


def builds_of_release(
    tag: str, sums: Mapping[str, str] | None, assets: Sequence[ApiAsset] = ()
) -> ReleaseBuilds:
    """Every interpreter archive of one release, hashes from ``SHA256SUMS`` or API digests.

    An archive the API lists but ``SHA256SUMS`` omits uses the API ``digest``; with
    neither it is left out, except in releases from before hashes were published,
    whose builds carry ``sha256=None``.
    """
    by_name = {a.name: a for a in assets}
    names = sorted(
        {n for n in (sums or {}) if _is_archive(n)} | {n for n in by_name if _is_archive(n)}
    )
    builds: list[Build] = []
    unhashed: list[str] = []
    conflicting: list[str] = []
    pre_hash_era = tag < FIRST_HASHED_TAG and sums is None
    for name in names:
        asset = by_name.get(name)
        listed, digest = (sums or {}).get(name), asset.sha256 if asset else None
        if listed is not None and digest is not None and listed != digest:
            conflicting.append(name)
            continue
        sha256 = listed or digest
        if sha256 is None and not pre_hash_era:
            unhashed.append(name)
            continue
        build = build_from_asset(tag, name, sha256, asset.size if asset else None)
        if build is not None:
            builds.append(build)
    return ReleaseBuilds(
        builds=tuple(builds), unhashed=tuple(unhashed), conflicting=tuple(conflicting)
    )


def releases_page_url(page: int, per_page: int = API_PER_PAGE) -> str:
    """URL of one page of the releases API listing."""
    return f"{RELEASES_API}?per_page={per_page}&page={page}"


def has_next_page(link: str | None) -> bool:
    """Whether a ``Link`` header announces a next page.

    >>> has_next_page('<https://api.github.com/repositories/1/releases?page=2>; rel="next"')
    True
    >>> has_next_page(None)
    False
    """
    return bool(link) and re.search(r'rel="?next"?', link or "") is not None


def _releases_page(url: str) -> Callable[[bytes], list[ApiRelease]]:
    """The parser of a releases page at ``url``: validated as it is read, so that a page
    that is JSON but no listing is never cached."""
    from pylock.index.metadata import parse_json

    as_json = parse_json(url)
    return lambda body: parse_releases_page(as_json(body), url=url)


async def iter_api_releases(
    docs: Documents, *, page_url: Callable[[int], str], max_pages: int = API_MAX_PAGES
) -> AsyncIterator[list[ApiRelease]]:
    """Yield pages of a releases listing (newest first) while the ``Link`` header has more.

    A page that lists the very releases of an earlier one ends the listing: a server (or a
    proxy in front of it) that ignores ``page`` answers every page with the first, which
    spent the whole page budget of the API's hourly quota on one answer.
    """

    seen: dict[tuple[str, ...], int] = {}
    for page in range(1, max_pages + 1):
        url = page_url(page)
        releases = await docs.get(url, _releases_page(url))
        assert releases is not None  # not missing_ok: a 404 is an error
        tags = tuple(release.tag for release in releases)
        if tags and tags in seen:
            docs.warn_once(
                f"repeated {page_url(1)}",
                f"{url} answered with the releases of page {seen[tags]} again (a server or "
                "proxy that ignores the `page` parameter?): stopped reading the release "
                "history there (older releases are not considered)",
            )
            return
        seen.setdefault(tags, page)
        yield releases
        if not releases or not has_next_page(docs.link_of(url)):
            return
    first = page_url(1)
    docs.warn_once(
        f"max-pages {first}",
        f"release history cut off: stopped after {max_pages} pages of {first} "
        "(older releases are not considered)",
    )


@attrs.frozen(kw_only=True)
class PbsRefresh:
    """What a PBS refresh found."""

    #: New candidate builds.
    builds: tuple[Build, ...]
    #: Tag -> publication date, for ordering.
    tag_dates: Mapping[str, str]
    #: The tag ``latest-release.json`` named.
    latest: str


async def refresh_pbs(
    docs: Documents,
    *,
    known_tags: Iterable[str],
    newest_known: str | None,
    pinned: Iterable[str] = (),
    reporter: Reporter,
    today: str,
) -> PbsRefresh:
    """Find PBS builds the snapshot lacks: newer releases, and pinned tags.

    ``known_tags`` are the tags the snapshot has builds from, ``newest_known`` the
    publication date (``YYYY-MM-DD``) of the newest of them. Pinned tags always
    have their ``SHA256SUMS`` read (cached forever), because the snapshot keeps only
    the newest build per version and may hold a tag only in part.
    """
    from pylock.index.metadata import parse_json

    known = set(known_tags)
    as_json = parse_json(LATEST_RELEASE_URL)
    # Validated as it is read: a pointer that is JSON but names no tag is never cached.
    latest = await docs.get(LATEST_RELEASE_URL, lambda body: parse_latest_release(as_json(body)))
    assert latest is not None  # not missing_ok: a 404 is an error
    tag_dates: dict[str, str] = {}
    assets: dict[str, tuple[ApiAsset, ...]] = {}
    wanted: set[str] = set(pinned)
    if latest not in known:
        wanted.add(latest)
        try:
            async for page in iter_api_releases(docs, page_url=releases_page_url):
                for release in page:
                    # A prerelease is not for locking, as GraalPy's are not (a tag pinned
                    # in pythons.toml is fetched all the same).
                    if release.draft or release.prerelease or not _TAG.fullmatch(release.tag):
                        continue
                    if release.published_at:
                        tag_dates[release.tag] = release.published_at[:10]
                    if release.tag not in known:
                        wanted.add(release.tag)
                        assets[release.tag] = release.assets
                if any(r.tag in known for r in page) or (
                    newest_known is not None
                    and page
                    and all((r.published_at or "")[:10] < newest_known for r in page)
                ):
                    break
        except RateLimitError as exc:
            # What to do (a token, or credentials for a stand-in) is in the hint.
            hint = f"; {exc.hint}" if exc.hint else ""
            reporter.warn(
                f"{exc}; adding only the latest release {latest} (releases in between are "
                f"unknown){hint}"
            )
        except UpstreamError as exc:
            if not exc.unreachable:
                raise
            # A mirror of the downloads alone has no releases API; latest-release.json
            # and SHA256SUMS still name the newest release and its hashes.
            reporter.warn(
                _api_missing(
                    exc,
                    f"adding only the latest release {latest} (releases in between are unknown)",
                )
            )
        # The latest release is, by definition, the newest one published; without the
        # API's date, make sure it does not sort before a tag published later than named.
        if latest not in tag_dates and (tag_date(latest) or "") < (newest_known or ""):
            tag_dates[latest] = today
    builds: list[Build] = []
    missing: list[str] = []

    async def one(tag: str) -> None:
        from pylock.index.metadata import parse_text

        url = sums_url(tag)
        as_text = parse_text(url)
        # Parsed whole before it is cached (as immutable): a garbled SHA256SUMS raises,
        # is not stored, and is fetched again by the next refresh.
        try:
            sums = await docs.get(
                url,
                lambda body: parse_sha256sums(as_text(body), url=url),
                immutable=True,
                missing_ok=True,
            )
        except EmptySumsError as exc:
            reporter.warn(f"{exc}; taking the releases API's digests for {tag}")
            sums = None
        release_assets = assets.get(tag)
        if sums is None and release_assets is None:
            try:
                release_assets = await _find_release(docs, tag, tag_dates)
            except UpstreamError as exc:
                if isinstance(exc, RateLimitError) or not exc.unreachable:
                    raise
                reporter.warn(
                    _api_missing(exc, f"release {tag} has no SHA256SUMS either, so it is skipped")
                )
                return
            if release_assets is None:
                missing.append(tag)
                return
        found = builds_of_release(tag, sums, release_assets or ())
        if found.unhashed:
            reporter.warn(
                f"python-build-standalone {tag}: {len(found.unhashed)} archive(s) have no "
                f"published sha256 and were skipped (e.g. {found.unhashed[0]})"
            )
        if found.conflicting:
            reporter.warn(
                f"python-build-standalone {tag}: {len(found.conflicting)} archive(s) have a "
                "SHA256SUMS line and an API digest that disagree, and were skipped (e.g. "
                f"{found.conflicting[0]})"
            )
        builds.extend(found.builds)

    await asyncio.gather(*(one(tag) for tag in sorted(wanted)))
    for tag in sorted(missing):
        reporter.warn(f"python-build-standalone has no release {tag!r}")
    return PbsRefresh(builds=tuple(builds), tag_dates=tag_dates, latest=latest)


def _api_missing(exc: UpstreamError, consequence: str) -> str:
    # The error says what happened (no answer, HTTP 404, 401 Bad credentials) and its hint
    # what to do (GITHUB_TOKEN): a warning has no hint line of its own.
    hint = f"; {exc.hint}" if exc.hint else ""
    return f"the GitHub releases API did not answer with releases ({exc}); {consequence}{hint}"


async def _find_release(
    docs: Documents, tag: str, tag_dates: dict[str, str]
) -> tuple[ApiAsset, ...] | None:
    """Page through the releases API for one tag (history without ``SHA256SUMS``)."""
    async for page in iter_api_releases(docs, page_url=releases_page_url):
        for release in page:
            if release.published_at:
                tag_dates.setdefault(release.tag, release.published_at[:10])
            if release.tag == tag and not release.draft:
                return release.assets
    return None
