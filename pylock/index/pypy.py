"""PyPy live listings: ``versions.json`` for the files, pypy.org's checksums page for hashes.

``versions.json`` lists every release and file but no hashes; the hashes are only
published on https://pypy.org/checksums.html. A file with no published hash is left
out (with a warning) rather than hashed on first download: a lock must record a hash
someone other than pylock vouched for.

Every build read here may end up in ``pythons.lock``, so a file whose URL, version or
release the lock cannot hold (another scheme, credentials, spaces, a URL naming another
file than the one whose hash was published) is left out too, with a warning.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from pylock.errors import UpstreamError
from pylock.index.model import Build
from pylock.index.names import parse_pypy_filename
from pylock.lockfile import build_problem, locked_url_problem, version_problem
from pylock.platforms import Platform
from pylock.urls import filename_from_url, redact, redact_given, url_problem
from pylock.versions import (
    ArchiveFormat,
    Implementation,
    Variant,
    is_release_version,
    parse_version,
)

if TYPE_CHECKING:
    from pylock.index.metadata import Documents
    from pylock.progress import Reporter

VERSIONS_URL = "https://downloads.python.org/pypy/versions.json"
CHECKSUMS_URL = "https://pypy.org/checksums.html"

# A hash line on the checksums page: hex, whitespace, a PyPy file name; the page is HTML,
# so the first line of a block may follow a tag and the last may precede one.
_CHECKSUM = re.compile(r"(?<![0-9a-fA-F])([0-9a-fA-F]{64})[ \t]+(pypy[^\s<>\"']+)")


def parse_checksums(page: str) -> dict[str, str]:
    """Map file name to sha256 from the text of pypy.org's checksums page.

    A file listed twice with different hashes is dropped: it cannot be trusted.

    >>> page = "<pre>    " + "AB" * 32 + "  pypy3.9-v7.3.10-linux64.tar.bz2   \\n</pre>"
    >>> parse_checksums(page) == {"pypy3.9-v7.3.10-linux64.tar.bz2": "ab" * 32}
    True
    """
    sums: dict[str, str] = {}
    conflicting: set[str] = set()
    for match in _CHECKSUM.finditer(html.unescape(page)):
        digest, name = match.group(1).lower(), match.group(2)
        if sums.get(name, digest) != digest:
            conflicting.add(name)
        sums[name] = digest
    for name in conflicting:
        del sums[name]
    return sums


@attrs.frozen(kw_only=True)
class PypyListing:
    """PyPy builds from ``versions.json`` joined with published checksums."""

    #: Builds with a published sha256.
    builds: tuple[Build, ...]
    #: ``(pypy version, file name)`` left out because no hash was published for them.
    unhashed: tuple[tuple[str, str], ...]
    #: PyPy version -> release date.
    dates: Mapping[str, str]
    #: Why files were left out that ``pythons.lock`` could not hold (bad URL, version).
    unfit: tuple[str, ...] = ()


def _str(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) else None


def file_problem(
    filename: str, link: str, pypy_version: str, python_version: str, platform: str = ""
) -> str | None:
    """Why one file of ``versions.json`` cannot go into a lock, or ``None``.

    The URL follows the lock reader's rules, is http(s) and free of credentials, and names
    the very file whose hash was published; the file's name agrees with the entry on the
    release, the Python series and the ``platform`` (the key its ``arch`` and ``platform``
    fields make), if given.

    >>> file_problem("pypy3.11-v7.3.20-linux64.tar.bz2",
    ...              "https://downloads.python.org/pypy/pypy3.11-v7.3.20-linux64.tar.bz2",
    ...              "7.3.20", "3.11.13") is None
    True
    >>> file_problem("pypy3.9-v7.3.10-linux64.tar.bz2",
    ...              "https://downloads.python.org/pypy/pypy3.9-v7.3.10-linux64.tar.bz2",
    ...              "7.3.24", "3.11.16")
    'the file is PyPy 7.3.10 for Python 3.9, not 7.3.24 for 3.11.16'
    >>> file_problem("pypy3.11-v7.3.20-win64.zip",
    ...              "https://downloads.python.org/pypy/pypy3.11-v7.3.20-win64.zip",
    ...              "7.3.20", "3.11.13", "macos-x86_64")
    'the file is for windows-x86_64, not macos-x86_64 (as its arch and platform say)'
    >>> file_problem("pypy3.11-v7.3.20-linux64.tar.bz2", "javascript:alert(1)//pypy3.11-v7.3.20-"
    ...              "linux64.tar.bz2", "7.3.20", "3.11.13")
    "invalid URL 'javascript:alert(1)//pypy3.11-v7.3.20-linux64.tar.bz2' (expected https:// or http://)"
    """
    problem = build_problem(pypy_version) or version_problem(python_version)
    if problem is not None:
        return problem
    problem = url_problem(link)  # urlsplit raises for a broken IPv6 literal, say
    if problem is None and urlsplit(link).scheme not in ("https", "http"):
        problem = "expected https:// or http://"
    if problem is not None:
        return f"invalid URL {redact_given(link)!r} ({problem})"
    problem = locked_url_problem(link)
    if problem is not None:
        return problem
    if filename_from_url(link) != filename:
        return f"URL {redact(link)!r} does not name the file {filename!r}"
    named = parse_pypy_filename(filename)
    if named is not None and (
        named.release != pypy_version
        or named.python_version != ".".join(python_version.split(".")[:2])
    ):
        # Another build's file under this entry would be locked as this one.
        return (
            f"the file is PyPy {named.release} for Python {named.python_version}, not "
            f"{pypy_version} for {python_version}"
        )
    if named is not None and platform and named.platform.key != platform:
        # A Windows zip listed as macOS's would be locked, and "installed", for macOS.
        return (
            f"the file is for {named.platform.key}, not {platform} (as its arch and platform say)"
        )
    return None


def builds_from_versions(
    data: Any, checksums: Mapping[str, str], *, url: str = VERSIONS_URL
) -> PypyListing:
    """Turn ``versions.json`` plus checksums into builds (stable releases only)."""
    if not isinstance(data, list):
        raise UpstreamError(f"{url}: expected a JSON list of releases")
    builds: list[Build] = []
    unhashed: list[tuple[str, str]] = []
    unfit: list[str] = []
    dates: dict[str, str] = {}
    for position, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise UpstreamError(f"{url}: entry [{position}] is not an object")
        pypy_version = _str(entry, "pypy_version")
        python_version = _str(entry, "python_version")
        files = entry.get("files")
        if pypy_version is None or python_version is None or not isinstance(files, list):
            raise UpstreamError(
                f"{url}: entry [{position}] lacks pypy_version, python_version or files"
            )
        if entry.get("stable") is not True or pypy_version == "nightly":
            continue
        if not (is_release_version(python_version) and is_release_version(pypy_version)):
            continue  # "v3.11.9", "3.11.9+x", "3.10.14.dev": no interpreter to lock
        date = _str(entry, "date")
        if date:
            dates[pypy_version] = date
        for item in files:
            if not isinstance(item, dict):
                continue
            filename, link = _str(item, "filename"), _str(item, "download_url")
            arch, os_name = _str(item, "arch"), _str(item, "platform")
            if not (filename and link and arch and os_name):
                continue
            platform = Platform.from_pypy_json(arch, os_name)
            try:
                fmt = ArchiveFormat.from_filename(filename)
            except ValueError:
                continue
            if platform is None:
                continue
            problem = file_problem(filename, link, pypy_version, python_version, platform.key)
            if problem is not None:
                unfit.append(f"{filename!r}: {problem}")
                continue
            sha256 = checksums.get(filename)
            if sha256 is None:
                unhashed.append((pypy_version, filename))
                continue
            builds.append(
                Build(
                    implementation=Implementation.PYPY,
                    version=python_version,
                    build=pypy_version,
                    platform=platform.key,
                    variant=Variant.DEFAULT,
                    flavor=None,
                    format=fmt,
                    url=link,
                    sha256=sha256,
                )
            )
    return PypyListing(
        builds=tuple(builds), unhashed=tuple(unhashed), dates=dates, unfit=tuple(unfit)
    )


async def refresh_pypy(docs: Documents, *, reporter: Reporter) -> PypyListing:
    """Fetch ``versions.json`` and the checksums page (both moving pointers)."""
    from pylock.index.metadata import parse_json, parse_text

    as_json = parse_json(VERSIONS_URL)

    def versions_document(body: bytes) -> Any:
        # Validated as it is read (the checksums come later): a document that is JSON but
        # no list of releases is never cached.
        data = as_json(body)
        builds_from_versions(data, {})
        return data

    data = await docs.get(VERSIONS_URL, versions_document)
    page = await docs.get(CHECKSUMS_URL, parse_text(CHECKSUMS_URL))
    listing = builds_from_versions(data, parse_checksums(page or ""))
    if listing.unfit:
        from pylock.net.policy import printable

        more = f" (and {len(listing.unfit) - 1} more)" if len(listing.unfit) > 1 else ""
        reporter.warn(
            f"PyPy: {len(listing.unfit)} file(s) of {VERSIONS_URL} cannot be locked and were "
            f"skipped: {printable(listing.unfit[0])}{more}"
        )
    if listing.unhashed:
        # Old releases missing from the page are routine; the newest one missing is news.
        releases = {v for v, _ in listing.unhashed} | {b.build for b in listing.builds}
        newest = max(releases, key=parse_version)
        recent = [f for v, f in listing.unhashed if v == newest]
        names = [f for _, f in listing.unhashed]
        reporter.detail(f"PyPy files without a published sha256, skipped: {', '.join(names)}")
        if recent:
            reporter.warn(
                f"PyPy: {len(recent)} file(s) of the newest release have no published "
                f"sha256 on {CHECKSUMS_URL} and were skipped: {', '.join(recent)}"
            )
    return listing
