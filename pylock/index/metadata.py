"""The metadata cache: upstream listings kept under ``cache/metadata/`` and revalidated.

Two kinds of document come from upstream. *Immutable* ones (a release tag's
``SHA256SUMS``) never change once published, so a cached copy is used forever without
asking the network. *Moving pointers* (``latest-release.json``, GitHub API listings,
PyPy's ``versions.json``) change at any time, so a cached copy is revalidated with
``If-None-Match`` / ``If-Modified-Since``; a ``304`` keeps it. Offline, whatever is
cached is used and its age reported; a cold cache is an :class:`OfflineError`.

A document is parsed before it is stored, so a malformed response never poisons the
cache. A damaged entry (unreadable, not a regular file, fields of the wrong type) counts
as absent and is overwritten by the next successful fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar
from urllib.parse import urlsplit

import attrs

from pylock.archive.policy import unaliased
from pylock.bounded import json_loads
from pylock.errors import (
    DownloadError,
    OfflineError,
    RateLimitError,
    UpstreamError,
    UsageError,
)
from pylock.fsutil import atomic_write_bytes, remove_tree
from pylock.net.fetch import MAX_METADATA_BYTES
from pylock.ownfiles import is_temporary_of, read_own_file

if TYPE_CHECKING:
    from pylock.net.fetch import Fetcher, HttpResponse
    from pylock.progress import Reporter

T = TypeVar("T")

GITHUB_API = "https://api.github.com/"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: What no header value may hold (aiohttp refuses to send one).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The names :meth:`MetadataStore._paths` gives: ``SLUG.DIGEST.body`` and ``.json``.
_STORED = re.compile(r"[A-Za-z0-9._-]*\.[0-9a-f]{16}\.(?:body|json)")


def _is_stored(name: str) -> bool:
    """Whether ``name`` is a file :class:`MetadataStore` writes, or the temporary of an
    atomic write of one (``.NAME.RANDOM.tmp``, whatever spelling of RANDOM a version used).

    >>> _is_stored("h_x.0123456789abcdef.body"), _is_stored(".h_x.0123456789abcdef.json.a_z9.tmp")
    (True, True)
    >>> _is_stored("notes.json"), _is_stored(".notes.json.a_z9.tmp")
    (False, False)
    """
    if _STORED.fullmatch(name):
        return True
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    stored = name[1:-4].rpartition(".")[0]
    return bool(_STORED.fullmatch(stored)) and is_temporary_of(stored, name)


#: The most a metadata record (the ``.json`` beside a body) may hold; a few hundred bytes.
MAX_RECORD_BYTES = 1024 * 1024


@attrs.frozen(kw_only=True)
class CachedDocument:
    """One upstream document as stored in the metadata cache."""

    #: The canonical (un-rewritten) URL it was fetched from.
    url: str
    #: HTTP status it was stored with: 200, or 404 for an immutable document known missing.
    status: int
    #: The body (empty for a 404).
    body: bytes
    #: When it was last fetched or revalidated (seconds since the epoch).
    checked_at: float
    #: The ``ETag`` response header, for revalidation.
    etag: str | None = None
    #: The ``Last-Modified`` response header, for revalidation.
    last_modified: str | None = None
    #: The ``Link`` response header (GitHub API pagination).
    link: str | None = None


class MetadataStore:
    """Documents on disk under one directory, keyed by canonical URL."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, url: str) -> tuple[Path, Path]:
        # Readable prefix for people browsing the cache; the digest makes it unique.
        parts = urlsplit(url)
        # Not `aux.example.org_...` as it is: Windows would open a device.
        slug = unaliased(_UNSAFE.sub("_", f"{parts.netloc}{parts.path}")[-80:].strip("_"))
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        stem = self.root / f"{slug}.{digest}"
        return stem.with_name(stem.name + ".body"), stem.with_name(stem.name + ".json")

    def load(self, url: str) -> CachedDocument | None:
        """The cached document for ``url``, or ``None`` (also for a damaged entry).

        Both files are read bounded and only if they are regular files (a pipe in their
        place would block for ever); every field is checked, because the revalidation
        headers and the ``Link`` go back out in requests and into later decisions.
        """
        body_path, meta_path = self._paths(url)
        try:
            meta = json_loads(read_own_file(meta_path, MAX_RECORD_BYTES))
            if not isinstance(meta, dict) or meta.get("url") != url:
                return None
            status, checked_at = meta.get("status"), meta.get("checked-at")
            etag, modified, link = meta.get("etag"), meta.get("last-modified"), meta.get("link")
            if (
                not isinstance(status, int)
                or isinstance(status, bool)
                or status not in (200, 404)
                or not _is_time(checked_at)
                or not all(_is_header(v) for v in (etag, modified, link))
            ):
                return None
            body = read_own_file(body_path, MAX_METADATA_BYTES)
            if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
                return None
            return CachedDocument(
                url=url,
                status=status,
                body=body,
                checked_at=float(checked_at),
                etag=etag,
                last_modified=modified,
                link=link,
            )
        except (OSError, ValueError):
            return None

    def save(self, doc: CachedDocument) -> None:
        """Store ``doc`` atomically (body first, so the metadata never names a missing body)."""
        body_path, meta_path = self._paths(doc.url)
        meta = {
            "url": doc.url,
            "status": doc.status,
            "checked-at": doc.checked_at,
            "etag": doc.etag,
            "last-modified": doc.last_modified,
            "link": doc.link,
            "sha256": hashlib.sha256(doc.body).hexdigest(),
        }
        for path in (body_path, meta_path):
            # A directory where a document goes (a damaged cache) counts as absent: it
            # would fail every fetch with "Is a directory", naming a temporary file.
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
        atomic_write_bytes(body_path, doc.body)
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode("utf-8"))

    def clear(self) -> None:
        """Remove every document (``pylock cache clean``), and the directory if that
        empties it: only files the store names, for whatever else a mistaken
        ``PYLOCK_CACHE_DIR`` (``$HOME``, say) puts beside them is not pylock's."""
        try:
            paths = [p for p in self.root.iterdir() if _is_stored(p.name)]
        except FileNotFoundError:
            return
        for path in paths:
            # Its own names only, a directory under one of them included (damage).
            remove_tree(path)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # not empty: others' files are left where they are


def _is_time(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a finite number of seconds (``checked-at``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_header(value: object) -> bool:
    """Whether ``value`` may go back out as a header value: absent, or one printable line."""
    return value is None or (isinstance(value, str) and value.isascii() and value.isprintable())


def human_age(seconds: float) -> str:
    """How long ago, for people.

    >>> human_age(42), human_age(7200), human_age(3 * 86400)
    ('42 seconds', '2 hours', '3 days')
    """
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def describe_reset(reset: str | None, *, now: float) -> str:
    """The ``x-ratelimit-reset`` epoch as a readable time.

    >>> describe_reset("1700000000", now=1700000000 - 1500)
    'resets at 2023-11-14 22:13 UTC (in 25 minutes)'
    >>> describe_reset(None, now=0), describe_reset("253402300800", now=0)
    ('reset time unknown', 'reset time unknown')
    >>> describe_reset("-5", now=1700000000), describe_reset("9" * 5000, now=0)
    ('reset time unknown', 'reset time unknown')
    """
    text = str(reset).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return "reset time unknown"
    epoch = int(text)
    # Only a time in the next day is a rate limit's reset; anything else is a bad header
    # (and fromtimestamp refuses years past 9999).
    if not now - 60 <= epoch <= now + 86400:
        return "reset time unknown"
    when = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return f"resets at {when:%Y-%m-%d %H:%M} UTC (in {human_age(epoch - now)})"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def token_withheld_hint(canonical: str, answered: str) -> str | None:
    """What to do when a host other than GitHub's answered for it (a rewrite, mirror or
    redirect): ``GITHUB_TOKEN`` only ever goes to the canonical origin, so that host needs
    credentials of its own. ``None`` when GitHub's own origin answered.

    >>> token_withheld_hint("https://api.github.com/x", "https://api.github.com/x") is None
    True
    >>> token_withheld_hint("https://api.github.com/x", "https://gh.corp/api/x")[:41]
    'the answer came from gh.corp, which takes'
    """
    from pylock.net.policy import GIVE_CREDENTIALS, origin

    if origin(answered) == origin(canonical):
        return None
    host = urlsplit(answered).hostname or "the mirror"
    return (
        f"the answer came from {host}, which takes the place of {urlsplit(canonical).hostname}"
        " (a rewrite, mirror or redirect), and GITHUB_TOKEN goes to GitHub only: "
        + GIVE_CREDENTIALS.format(host=host)
    )


def refusal_hint(canonical: str, answered: str, *, token: bool) -> str:
    """What to do about a 401 (or a 403 that is no rate limit) for a GitHub API URL.

    >>> refusal_hint("https://api.github.com/x", "https://api.github.com/x", token=False)
    'GitHub refused an anonymous request: set GITHUB_TOKEN to a valid token'
    """
    withheld = token_withheld_hint(canonical, answered)
    if withheld is not None:
        return withheld
    if token:
        return (
            "GITHUB_TOKEN is set, and GitHub refused it: it may be expired, revoked or "
            "lack access to public repositories; renew it, or unset it to go without"
        )
    return "GitHub refused an anonymous request: set GITHUB_TOKEN to a valid token"


def rate_limit_hint(canonical: str, answered: str, *, token: bool) -> str:
    """What to do about GitHub's rate limit (the error itself says when it resets).

    >>> rate_limit_hint("https://api.github.com/x", "https://api.github.com/x", token=True)
    'GITHUB_TOKEN is set but its quota is used up: wait for the limit to reset'
    """
    withheld = token_withheld_hint(canonical, answered)
    if withheld is not None:
        return f"{withheld}; or wait for the limit to reset"
    if token:
        return "GITHUB_TOKEN is set but its quota is used up: wait for the limit to reset"
    return (
        "set GITHUB_TOKEN to a GitHub token (5000 requests an hour instead of 60), "
        "or wait for the limit to reset"
    )


def github_message(body: bytes) -> str | None:
    """The ``message`` of a GitHub API error body, e.g. ``Bad credentials``, if it has one.

    >>> github_message(b'{"message": "Bad credentials", "status": "401"}'), github_message(b"<")
    ('Bad credentials', None)
    """
    try:
        data = json_loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else None


def is_rate_limit(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a GitHub API 403 or 429 is a rate limit rather than a refusal of the request.

    GitHub marks its primary limit with ``x-ratelimit-remaining: 0`` and its secondary
    limits with ``retry-after`` or a message saying so; a 429 is always one.

    >>> is_rate_limit(403, {"x-ratelimit-remaining": "0"}, b""), is_rate_limit(403, {}, b"")
    (True, False)
    """
    if status == 429 or _header(headers, "x-ratelimit-remaining") == "0":
        return True
    if _header(headers, "retry-after") is not None:
        return True
    return "rate limit" in (github_message(body) or "").lower()


def parse_json(url: str) -> Callable[[bytes], Any]:
    """A parser for :meth:`Documents.get` that decodes JSON or explains what was wrong."""

    def parse(body: bytes) -> Any:
        try:
            return json_loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise UpstreamError(
                f"malformed JSON from {url}: {exc}",
                hint="the listing may be truncated or an error page; try again later, "
                "or check --rewrite/PYLOCK_URL_REWRITES",
            ) from None

    return parse


def parse_text(url: str) -> Callable[[bytes], str]:
    """A parser for :meth:`Documents.get` that decodes UTF-8 text."""

    def parse(body: bytes) -> str:
        try:
            # A byte order mark (Windows tools re-generating a mirror's SHA256SUMS) is no text.
            return body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UpstreamError(f"{url} is not UTF-8 text: {exc}") from None

    return parse


#: How long an immutable document found missing (404) is taken as missing without asking
#: again: a release file a mirror has not caught up with yet is there an hour later.
MISSING_RECHECK_SECONDS = 3600.0


class Documents:
    """Upstream documents through the metadata cache, with revalidation and offline use."""

    def __init__(
        self,
        store: MetadataStore,
        fetcher: Fetcher | None,
        *,
        reporter: Reporter,
        github_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: ``fetcher`` is ``None`` offline.
        self.store = store
        self.fetcher = fetcher
        self.reporter = reporter
        self.github_token = github_token or None
        self.clock = clock
        self._memo: dict[str, asyncio.Future[Any]] = {}
        self._links: dict[str, str | None] = {}
        self._warned: set[str] = set()

    @property
    def offline(self) -> bool:
        """Whether the network may not be used."""
        return self.fetcher is None

    def _keep(self, doc: CachedDocument) -> None:
        """Store ``doc`` for later runs; a cache that cannot take it (full, read-only,
        another user's) costs a fetch next time, not this run's result."""
        try:
            self.store.save(doc)
        except OSError as exc:
            if "unkept" not in self._warned:
                self._warned.add("unkept")
                why = exc.strerror or str(exc)
                self.reporter.warn(
                    f"cannot keep the listings in the metadata cache at {self.store.root} "
                    f"({why}): later runs fetch them again"
                )

    def _request_headers(self, url: str, cached: CachedDocument | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if url.startswith(GITHUB_API):
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
            # The token is for API look-ups only: never sent to download hosts.
            if self.github_token:
                if _CONTROL.search(self.github_token):
                    # aiohttp refuses such a header with a ValueError, which was a
                    # traceback. The token itself is never echoed.
                    raise UsageError(
                        "GITHUB_TOKEN contains a control character (a line break, say)",
                        hint="set GITHUB_TOKEN to the token alone, on one line",
                    )
                headers["Authorization"] = f"Bearer {self.github_token}"
        if cached is not None and cached.status == 200:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        return headers

    def _use_stale(self, cached: CachedDocument, why: str) -> None:
        age = human_age(self.clock() - cached.checked_at)
        self.reporter.warn(f"{why}; using the cached copy of {cached.url} from {age} ago")

    async def get(
        self,
        url: str,
        parse: Callable[[bytes], T],
        *,
        immutable: bool = False,
        missing_ok: bool = False,
    ) -> T | None:
        """Fetch ``url`` (canonical; the fetcher applies rewrites) and parse it.

        Return ``None`` for a 404 when ``missing_ok``. Raise :class:`OfflineError` when
        offline with nothing cached, :class:`RateLimitError` when the GitHub API refuses
        and nothing is cached, :class:`UpstreamError` for other failures.
        """
        # Concurrent requests for one URL share one fetch.
        future = self._memo.get(url)
        if future is None:
            future = asyncio.ensure_future(
                self._get(url, parse, immutable=immutable, missing_ok=missing_ok)
            )
            self._memo[url] = future
        result: T | None = await asyncio.shield(future)
        return result

    def link_of(self, url: str) -> str | None:
        """The ``Link`` header that came with ``url`` (fetched or cached) in this run."""
        return self._links.get(url)

    async def _get(
        self,
        url: str,
        parse: Callable[[bytes], T],
        *,
        immutable: bool,
        missing_ok: bool,
    ) -> T | None:
        cached = self.store.load(url)
        if cached is not None and cached.status == 404 and not missing_ok:
            cached = None
        # Online, a file found missing an hour ago may be there now: ask again, and keep
        # the known 404 should the asking fail.
        recheck = (
            cached is not None
            and cached.status == 404
            and self.fetcher is not None
            and not 0 <= self.clock() - cached.checked_at < MISSING_RECHECK_SECONDS
        )
        if cached is not None and immutable and not recheck:
            try:
                return self._parse_cached(cached, parse)
            except UpstreamError:
                if self.fetcher is None:
                    raise
                # Kept by a pylock that took it (an empty SHA256SUMS, say) where this one
                # does not: an answer that never changes would fail this way for good.
                self.reporter.detail(f"{url}: the cached copy is not usable; fetching it again")
                cached = None
        if self.fetcher is None:
            if cached is None:
                raise OfflineError(
                    f"offline, and the metadata cache has no copy of {url}",
                    url=url,
                    hint="run the same command once without --offline (or PYLOCK_OFFLINE) "
                    "to fill the metadata cache",
                )
            age = human_age(self.clock() - cached.checked_at)
            self.reporter.warn(f"offline: using {url} as cached {age} ago")
            return self._parse_cached(cached, parse)
        try:
            response = await self.fetcher.get(url, headers=self._request_headers(url, cached))
        except DownloadError as exc:
            from pylock.errors import RefusedUrlError

            if isinstance(exc, RefusedUrlError):
                raise
            if cached is not None and (not immutable or recheck):
                self._use_stale(cached, f"cannot reach {url} ({exc})")
                return self._parse_cached(cached, parse)
            raise UpstreamError(
                f"cannot fetch {url}: {exc}", hint=exc.hint, url=url, unreachable=True
            ) from None
        now = self.clock()
        status = response.status
        if status == 304 and cached is not None and cached.status == 200:
            self.reporter.detail(f"{url}: not modified")
            fresh = attrs.evolve(cached, checked_at=now)
            self._keep(fresh)
            return self._parse_cached(fresh, parse)
        if status == 200:
            value = parse(response.body)
            link = _header(response.headers, "Link")
            self._links[url] = link
            self._keep(
                CachedDocument(
                    url=url,
                    status=200,
                    body=response.body,
                    checked_at=now,
                    etag=_header(response.headers, "ETag"),
                    last_modified=_header(response.headers, "Last-Modified"),
                    link=link,
                )
            )
            return value
        if status == 404 and missing_ok:
            if immutable:
                self._keep(CachedDocument(url=url, status=404, body=b"", checked_at=now))
            return None
        if status in (401, 403, 429) and url.startswith(GITHUB_API):
            error: UpstreamError
            if status != 401 and is_rate_limit(status, response.headers, response.body):
                error = self._rate_limit_error(url, response, now)
            else:
                error = self._refused_error(url, response)
            if cached is not None and cached.status == 200:
                self._use_stale(cached, str(error))
                return self._parse_cached(cached, parse)
            raise error
        if recheck and cached is not None:
            return self._parse_cached(cached, parse)  # still missing, as far as is known
        # The words and hint an archive download gets: the URL that answered (a rewrite,
        # a mirror), credentials for 401/403, the proxy's for 407, the mirror for a 404.
        from pylock.net.policy import answering_proxy, http_error, origin

        reason = self._concealed(response.reason)
        # A 407 is the proxy's (a plain-http URL goes through it): the hint names its
        # variable, and checks the credentials it has rather than asking for some.
        via = answering_proxy(response.url, self.fetcher.settings) if status == 407 else None
        refused = http_error(status, reason, response.url, response.url, url, via=via)
        hint = refused.hint
        if status not in (401, 403, 407) and origin(response.url) == origin(url):
            # Upstream itself: not an archive to re-lock (the download's hint) but a listing.
            hint = "upstream may be having trouble: try again later"
        raise UpstreamError(refused.message, url=url, unreachable=True, hint=hint, status=status)

    def _parse_cached(self, cached: CachedDocument, parse: Callable[[bytes], T]) -> T | None:
        self._links[cached.url] = cached.link
        if cached.status == 404:
            return None
        return parse(cached.body)

    def _concealed(self, said: str) -> str:
        """What a server ``said`` in its own words, the token it was sent hidden: it may
        quote it back (``Bad credentials, you sent Bearer ghp_...``). Hidden before the
        text is cut, which could leave a part of the token that no longer matches."""
        from pylock.urls import conceal

        return conceal(said, [self.github_token])

    def _refused_error(self, url: str, response: HttpResponse) -> UpstreamError:
        """A 401, or a 403 that is no rate limit: the token (or its absence) is the likely cause.

        ``response.url`` is the URL that answered: a rewrite, mirror or redirect may have
        put another host in GitHub's place.
        """
        from pylock.net.policy import printable

        said = github_message(response.body)
        status = f"HTTP {response.status} {response.reason}".strip()
        detail = printable(self._concealed(status + (f": {said}" if said else "")))
        return UpstreamError(
            f"GitHub API refused {url} ({detail})",
            hint=refusal_hint(url, response.url, token=self.github_token is not None),
            url=url,
            unreachable=True,
        )

    def warn_once(self, key: str, message: str) -> None:
        """Warn with ``message`` the first time ``key`` comes up in this run only."""
        if key not in self._warned:
            self._warned.add(key)
            self.reporter.warn(message)

    def _rate_limit_error(self, url: str, response: HttpResponse, now: float) -> RateLimitError:
        headers = response.headers
        reset = describe_reset(_header(headers, "x-ratelimit-reset"), now=now)
        remaining = _header(headers, "x-ratelimit-remaining")
        what = "rate limit exhausted" if remaining == "0" else "request refused"
        hint = rate_limit_hint(url, response.url, token=self.github_token is not None)
        return RateLimitError(f"GitHub API {what} for {url} ({reset})", hint=hint)
