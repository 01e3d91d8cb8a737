"""GraalPy live listings: GitHub releases of oracle/graalpython (tags ``graal-X.Y.Z``).

The hash of an asset is its API ``digest``; older assets have none, and then the
``<asset>.sha256`` file published beside it is read instead (it never changes, so it
is cached forever).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import attrs

from pylock.index.model import Build
from pylock.index.names import parse_graalpy_filename
from pylock.index.pbs import ApiAsset, ApiRelease, iter_api_releases
from pylock.versions import Implementation, Variant

if TYPE_CHECKING:
    from pylock.index.metadata import Documents
    from pylock.progress import Reporter

REPO = "oracle/graalpython"
RELEASES_API = f"https://api.github.com/repos/{REPO}/releases"
DOWNLOAD_PREFIX = f"https://github.com/{REPO}/releases/download/"
API_PER_PAGE = 100

_TAG = re.compile(r"^(?:graal|vm)-([0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9})$")
_HEX = re.compile(r"^\s*([0-9a-fA-F]{64})(?:\s|$)")

# Names before 25.1.3 do not say which Python they implement. These are the versions
# uv's downloads metadata records for those releases; using the same ones keeps a
# refreshed index consistent with the bundled snapshot.
_PYTHON_BY_RELEASE = (
    ((22,), "3.8.5"),
    ((23,), "3.10.0"),
    ((24, 0), "3.10.0"),
    ((24, 1), "3.11.0"),
    ((24, 2), "3.11.0"),
    ((25,), "3.12.0"),
)


def python_for_release(release: str, series: str | None) -> str | None:
    """The Python version a GraalPy release implements, as uv records it.

    >>> python_for_release("25.2.4", "3.12"), python_for_release("24.0.2", None)
    ('3.12.0', '3.10.0')
    >>> python_for_release("99.0.0", None) is None
    True
    """
    if series is not None:
        return f"{series}.0"
    parts = tuple(int(p) for p in release.split("."))
    for prefix, python in _PYTHON_BY_RELEASE:
        if parts[: len(prefix)] == prefix:
            return python
    return None


def release_of_tag(tag: str) -> str | None:
    """The GraalPy release number of a tag (``graal-25.0.1`` -> ``25.0.1``)."""
    match = _TAG.fullmatch(tag)
    return match.group(1) if match else None


class _NoDigest(Exception):
    """A ``.sha256`` file that holds no digest (an error page served as it)."""


def _sha256_file_parser(url: str) -> Callable[[bytes], str]:
    def parse(body: bytes) -> str:
        sha256 = parse_sha256_file(body)
        if sha256 is None:
            raise _NoDigest(url)
        return sha256

    return parse


def parse_sha256_file(body: bytes) -> str | None:
    """The digest in a ``<file>.sha256`` body (hex, optionally followed by a name)."""
    match = _HEX.match(body.decode("ascii", errors="replace"))
    return match.group(1).lower() if match else None


@attrs.frozen(kw_only=True)
class GraalpyListing:
    """GraalPy builds found in the releases."""

    #: Builds with a known sha256.
    builds: tuple[Build, ...]
    #: Asset names left out for want of any hash.
    unhashed: tuple[str, ...]
    #: Release -> publication date (``YYYY-MM-DD``).
    dates: dict[str, str]


async def builds_from_releases(docs: Documents, releases: list[ApiRelease]) -> GraalpyListing:
    """Turn GraalPy releases into builds, reading ``.sha256`` files where digests are null."""
    builds: list[Build] = []
    unhashed: list[str] = []
    dates: dict[str, str] = {}

    async def one(release: str, tag: str, asset: ApiAsset, names: set[str]) -> None:
        parsed = parse_graalpy_filename(asset.name)
        if parsed is None or parsed.release != release:
            return
        python = python_for_release(release, parsed.python_version)
        if python is None:
            return
        url = f"{DOWNLOAD_PREFIX}{tag}/{asset.name}"
        sha256 = asset.sha256
        if sha256 is None and f"{asset.name}.sha256" in names:
            sums_url = f"{url}.sha256"
            # Parsed before it is cached: one that holds no digest (an error page) raises,
            # is not stored as the file's immutable content, and is fetched again next time.
            try:
                sha256 = await docs.get(
                    sums_url, _sha256_file_parser(sums_url), immutable=True, missing_ok=True
                )
            except _NoDigest:
                sha256 = None
        if sha256 is None:
            unhashed.append(asset.name)
            return
        builds.append(
            Build(
                implementation=Implementation.GRAALPY,
                version=python,
                build=release,
                platform=parsed.platform.key,
                variant=Variant.DEFAULT,
                flavor=None,
                format=parsed.format,
                url=url,
                sha256=sha256,
                size=asset.size,
            )
        )

    jobs: list[Coroutine[Any, Any, None]] = []
    for release in releases:
        number = release_of_tag(release.tag)
        if number is None or release.draft or release.prerelease:
            continue
        if release.published_at:
            dates[number] = release.published_at[:10]
        names = {a.name for a in release.assets}
        jobs.extend(one(number, release.tag, asset, names) for asset in release.assets)
    await asyncio.gather(*jobs)
    builds.sort(key=lambda b: b.url)
    return GraalpyListing(builds=tuple(builds), unhashed=tuple(sorted(unhashed)), dates=dates)


def _page_url(page: int) -> str:
    return f"{RELEASES_API}?per_page={API_PER_PAGE}&page={page}"


async def refresh_graalpy(docs: Documents, *, reporter: Reporter) -> GraalpyListing:
    """Every GraalPy release on GitHub (a few pages at most)."""
    releases: list[ApiRelease] = []
    async for page in iter_api_releases(docs, page_url=_page_url):
        releases.extend(page)
    listing = await builds_from_releases(docs, releases)
    if listing.unhashed:
        reporter.warn(
            f"GraalPy: {len(listing.unhashed)} archive(s) have no digest, nor a .sha256 "
            f"file that holds one, and were skipped (e.g. {listing.unhashed[0]})"
        )
    return listing
