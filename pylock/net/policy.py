"""The rules every pylock HTTP client follows, in one place.

Both transports use these pieces: the aiohttp :class:`pylock.net.fetch.Fetcher` (listings,
metadata, downloads inside an event loop) and the blocking ``http.client``
:class:`pylock.net.stdhttp.StdDownloader` (archive GETs in a worker thread). What is decided
here is decided once: which URL may be fetched (offline refusal, rewrites, refused schemes
and downgrades), which redirects are followed and how often, what is retried and after how
long, how large a body may get and how slowly it may arrive, whether its hash and size
match, which proxy and which credentials a URL (and each redirect hop) gets, and how
server-chosen text is printed.

The standard library (``netrc``, ``hashlib``) and attrs, which :mod:`pylock.errors` has
loaded already; aiohttp is named in type hints only. Importing it costs nothing measurable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Self
from urllib.parse import quote, unquote, unquote_to_bytes, urldefrag, urljoin, urlsplit

import attrs

from pylock.errors import (
    DownloadError,
    DownloadTooLargeError,
    HashMismatchError,
    OfflineError,
    PylockError,
    shorten,
    shown,
)
from pylock.net.options import SLOW_BYTES as SLOW_BYTES
from pylock.net.options import SLOW_WINDOW as SLOW_WINDOW
from pylock.progress import human_size

if TYPE_CHECKING:
    import aiohttp

    from pylock.net.options import FetchOptions
    from pylock.net.stream import DownloadFeed
    from pylock.progress import Reporter, Task
    from pylock.settings import Settings
    from pylock.urls import UrlRewrites


class SessionOwner:
    """An async context manager that owns one aiohttp session: the subclass makes it on
    first use (so that offline and file:// work never import aiohttp); exit closes it."""

    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Client:
    """What both download clients (``net/fetch.py``'s aiohttp one, ``net/stdhttp.py``'s
    ``http.client`` one) are given, and how they plan a download: from this module alone."""

    def __init__(
        self,
        options: FetchOptions,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        from pylock.progress import NullReporter
        from pylock.settings import Settings

        self.options = options
        self.reporter = reporter if reporter is not None else NullReporter()
        # TLS trust, proxies and the netrc file; a caller that passes none gets this process's.
        self._settings = settings or options.settings or Settings.current()

    @property
    def settings(self) -> Settings:
        """TLS trust, proxies and the netrc file this client follows."""
        return self._settings

    def plan(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str | None,
        size: int | None,
        task: Task | None,
        feed: DownloadFeed | None,
    ) -> Download:
        """The download of canonical ``url`` into ``dest`` (see :meth:`Download.of`)."""
        return Download.of(
            url,
            dest,
            self.options,
            sha256=sha256,
            size=size,
            task=task,
            feed=feed,
            settings=self._settings,
        )


#: Bytes read and hashed per step; large enough that per-chunk overhead does not matter.
CHUNK_SIZE = 256 * 1024
#: Redirect hops followed before giving up.
MAX_REDIRECTS = 10
#: The longest wait between two attempts, whatever ``Retry-After`` says.
MAX_BACKOFF = 30.0
#: Statuses that mean "go there instead".
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: 4xx statuses worth another attempt (5xx always are).
RETRY_STATUSES = frozenset({408, 429})
#: What to do about a download refused offline: fill the cache while online.
OFFLINE_HINT = (
    "run `pylock fetch` with network access first (same PYLOCK_CACHE_DIR) to fill the cache"
)
#: The port a URL without one goes to.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: An error's own text is cut to this: a hostile server can put megabytes of it there.
MAX_REASON = 300


class Retryable(Exception):
    """A transient failure: worth another attempt."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        *,
        proxy: Proxy | None = None,
        via: Proxy | None = None,
        url: str | None = None,
        unreachable: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: ``host:port`` when no connection to it could be made (refused, a name that does
        #: not resolve, no route, a connect that timed out): the server, or the proxy.
        self.unreachable = unreachable
        #: The proxy that failed, when the failure was reaching it (not the server).
        self.proxy = proxy
        #: The proxy the request went through, when the failure may be its or the server's
        #: (a tunnel that closed before the answer).
        self.via = via
        #: The URL asked for when it failed, after any redirects (or :func:`asking`).
        self.url = url


@contextlib.contextmanager
def asking(url: str) -> Iterator[None]:
    """Inside, a :class:`Retryable` failure is ``url``'s (the hop a redirect led to): the
    error once the retries are spent names the proxy that request went through."""
    try:
        yield
    except Retryable as error:
        if error.url is None:
            error.url = url
        raise


# -- URLs ----------------------------------------------------------------------------


def target(url: str, rewrites: UrlRewrites, *, offline: bool) -> str:
    """``url`` rewritten, after checking that pylock may fetch it (offline, schemes, http)."""
    if offline:
        raise OfflineError(
            f"cannot fetch {url}: pylock is offline (--offline or PYLOCK_OFFLINE)",
            url=url,
            hint=OFFLINE_HINT,
        )
    rewritten = rewrites.apply(url)
    rewrites.check(rewritten, canonical=url)
    return rewritten


def follow(current: str, joined: str, rewrites: UrlRewrites, *, canonical: str) -> str:
    """Where a redirect from ``current`` to ``joined`` (absolute) really goes, if allowed.

    The ``user:password@`` of ``current`` goes along to the same origin only (see
    :func:`origin`), whether the ``Location`` was relative or absolute; userinfo the server
    put in ``joined`` itself is dropped. A rewrite that applies to the new URL brings its
    own, as for any URL.
    """
    following = rewrites.apply(without_userinfo(joined))
    if urlsplit(following).username is None and origin(following) == origin(current):
        following = with_userinfo_of(current, following)
    rewrites.check_redirect(current, following, canonical=canonical)
    return following


class Hops:
    """One GET through its redirects, for both clients' redirect loops: where it goes now,
    and which credentials may go there.

    The URL's own ``user:password@`` follows to the same origin only (:func:`follow`). The
    caller's ``Authorization`` (``GITHUB_TOKEN``, meant for the canonical URL's host) goes
    there only: not to a host a rewrite or mirror put in its place, and not after a hop to
    another origin. A netrc ``default`` entry (which names no host) goes to the first origin
    only. A netrc entry for a named host goes to that host wherever the hop came from.
    """

    def __init__(
        self,
        target: str,
        canonical: str,
        rewrites: UrlRewrites,
        settings: Settings,
        given: str | None = None,
    ) -> None:
        self.current = target
        self.canonical = canonical
        self._target = target
        self._rewrites = rewrites
        self._settings = settings
        # A rewrite to another host must not receive a credential for the canonical one.
        self._given = given if origin(target) == origin(canonical) else None
        self._first_origin = True
        self._hops = 0

    def authorization(self) -> str | None:
        """The ``Authorization`` the request to :attr:`current` carries."""
        return authorization(
            self.current, self._given, self._settings, netrc_default=self._first_origin
        )

    def location(self, status: int, values: list[str]) -> str | None:
        """Where a response of ``status`` whose ``Location`` headers are ``values`` sends
        the request, or None (no redirect, or none with a place to go).

        Two different places are a malformed redirect, which fails for good: each client
        read them its own way (http.client joined them into one spliced URL, aiohttp took
        the first). The same place said twice is that place.
        """
        if status not in REDIRECT_STATUSES:
            return None
        places = [v.strip(" \t") for v in values if v.strip(" \t")]
        # One place however written (`/ok`, `https://host/ok`, `/ok#part`).
        joined = {self._joined(place) for place in places}
        if len(joined) > 1:
            shown = ", ".join(printable(redact(place)) for place in dict.fromkeys(places))
            raise DownloadError(
                f"malformed redirect from {describe(self.current, self.canonical, self._target)}"
                f": {len(joined)} different Location headers ({printable(shown)})",
                url=self.current,
                hint="the server or a proxy on the way sends a broken response: report it "
                "to its owner",
            )
        return places[0] if places else None

    def _joined(self, location: str) -> str:
        """``location`` as an absolute URL, or as it is where it is malformed (which
        :meth:`follow` refuses)."""
        try:
            return urldefrag(urljoin(self.current, location)).url
        except ValueError:
            return location

    def follow(self, location: str) -> None:
        """Move on to where a ``Location`` header points, if allowed; at most
        :data:`MAX_REDIRECTS` hops. A malformed one fails for good (no retry can fix it)."""
        self._hops += 1
        if self._hops > MAX_REDIRECTS:
            raise too_many_redirects(self._target, self.canonical)
        # A field value's surrounding white space is not part of it (RFC 9110, 5.5):
        # aiohttp drops it, and http.client kept it (`/f.tar.gz ` became `%20`).
        location = location.strip(" \t")
        try:
            joined = urljoin(self.current, _encoded(_idna_host(location)))
        except ValueError as error:  # e.g. a broken IPv6 literal
            where = describe(self.current, self.canonical, self._target)
            raise DownloadError(
                f"malformed redirect from {where} to {printable(redact(location))}: {error}",
                url=self.current,
            ) from None
        following = follow(self.current, joined, self._rewrites, canonical=self.canonical)
        if origin(following) != origin(self.current):
            # Credentials meant for one host must not follow a redirect to another.
            self._given = None
            self._first_origin = False
        self.current = following


def _idna_host(location: str) -> str:
    """``location`` with a host beyond ASCII in its IDNA form (:func:`wire_host`), which
    percent-encoding would have made a name no DNS knows (``b%C3%BCcher.example``)."""
    parts = urlsplit(location)
    if parts.netloc.isascii():
        return location
    userinfo, at, host_port = parts.netloc.rpartition("@")
    host, colon, port = host_port.partition(":")  # (an IPv6 literal is ASCII)
    return parts._replace(netloc=userinfo + at + wire_host(host, location) + colon + port).geturl()


def too_many_redirects(target: str, canonical: str) -> DownloadError:
    """The error after :data:`MAX_REDIRECTS` hops."""
    return DownloadError(
        f"too many redirects (more than {MAX_REDIRECTS}) for {describe(target, canonical)}",
        url=target,
        hint="the server redirects in a loop"
        + (
            ", perhaps back to the URL the mirror or rewrite replaces: check where it sends"
            if target != canonical
            else ": try again later, or report it to the server's owner"
        ),
    )


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): credentials never cross from one
    origin to another, and userinfo is no part of it.

    >>> origin("https://u:p@Mirror.example/x") == origin("https://mirror.example:443/y")
    True
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
    return (scheme, (parts.hostname or "").lower(), port)


#: What a URL sent (or a Location followed) keeps as it is: URL syntax and escapes. Spaces,
#: control characters and non-ASCII text are %-escaped (UTF-8), as browsers (and yarl,
#: under aiohttp) do, so both clients send the same request line.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


def request_target(path: str, query: str) -> str:
    """The request line's target for a URL's path and query: non-ASCII characters and
    spaces percent-encoded (UTF-8), as aiohttp sends them (``http.client`` refuses them).

    >>> request_target("/caf\u00e9/a b%2B.tar.gz", "x=\u00e9")
    '/caf%C3%A9/a%20b%2B.tar.gz?x=%C3%A9'
    """
    target = _encoded(path or "/")
    return f"{target}?{_encoded(query)}" if query else target


def _encoded(text: str) -> str:
    # surrogateescape: a byte that was no UTF-8 in a header (a Location of `/b\xff`, which
    # both clients read so) goes back out as the byte it was, `%FF`.
    return quote(text, safe=_TARGET_SAFE, errors="surrogateescape")


def without_userinfo(url: str) -> str:
    """``url`` as it may be sent (in a proxy's request line or a ``Host`` header): no
    ``user:password@``, no fragment, its path and query as :func:`request_target` sends
    them. The credentials travel in ``Authorization`` only.

    >>> without_userinfo("http://u:p%40ss@[::1]:8080/a/b?q=1#frag")
    'http://[::1]:8080/a/b?q=1'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    path, query = _encoded(parts.path), _encoded(parts.query)
    return parts._replace(netloc=netloc, path=path, query=query, fragment="").geturl()


def wire_host(host: str, url: str) -> str:
    """``host`` (of ``url``) as a request sends it: in ``CONNECT``, ``Host``, a proxy's
    request line and TLS's server name. A name beyond ASCII goes in its IDNA form
    (``xn--``): both clients take it from here, so they send the same bytes. It is IDNA
    2008, as browsers write it (:func:`~pylock.urls.idna_host`). A name that has no IDNA
    form fails for good: no retry changes it.

    >>> wire_host("b\u00fccher.example", "https://b\u00fccher.example/"), wire_host("::1", "")
    ('xn--bcher-kva.example', '::1')
    """
    if host.isascii():
        return host
    from pylock.urls import idna_host

    try:
        return idna_host(host)
    except UnicodeError as error:
        raise DownloadError(
            f"invalid URL {url}: its host name has no IDNA (xn--) form ({error})",
            url=url,
            hint="check the host name in the URL, mirror or rewrite",
        ) from None


def wire_url(url: str) -> str:
    """``url`` as a request sends it: :func:`without_userinfo`, its host as
    :func:`wire_host` writes it (the target a proxy is asked for, the URL aiohttp is given).

    >>> wire_url("http://u:p@b\u00fccher.example:8080/caf\u00e9")
    'http://xn--bcher-kva.example:8080/caf%C3%A9'
    """
    bare = without_userinfo(url)
    parts = urlsplit(bare)
    if parts.netloc.isascii():
        return bare
    # An IPv6 literal is ASCII: a netloc beyond ASCII is a name, maybe with a port.
    name, colon, port = parts.netloc.partition(":")
    return parts._replace(netloc=wire_host(name, url) + colon + port).geturl()


def with_userinfo_of(source: str, url: str) -> str:
    """``url`` with the ``user:password@`` of ``source`` (if it has one)."""
    userinfo, at, _ = urlsplit(source).netloc.rpartition("@")
    if not at:
        return url
    parts = urlsplit(url)
    return parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}").geturl()


def describe(url: str, canonical: str, target: str | None = None) -> str:
    """A URL as errors show it: with the lock's URL when a rewrite changed it, and where
    redirects came from. ``target``: the URL requested (``canonical``, rewritten), when
    ``url`` may be where redirects led from it; a redirect alone is no rewrite.

    >>> describe("https://m.test/a", "https://gh.test/a")
    'https://m.test/a (rewritten from https://gh.test/a)'
    >>> describe("https://cdn.test/a", "https://gh.test/a", "https://gh.test/a")
    'https://cdn.test/a (redirected from https://gh.test/a)'
    """
    if target is None or url == target:
        return url if url == canonical else f"{url} (rewritten from {canonical})"
    if target == canonical:
        return f"{url} (redirected from {canonical})"
    return f"{url} (redirected from {target}, rewritten from {canonical})"


def file_path(url: str, *, windows: bool = os.name == "nt") -> Path:
    """The local path of a ``file://`` URL: no host, or ``localhost``; on Windows also a
    share's server (``file://server/share/x`` is ``\\\\server\\share\\x``, as
    ``Path.as_uri`` writes it). The path is percent-decoded once: ``%2541`` is ``%41``."""
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if "\0" in unquote(parts.netloc + parts.path):  # a share's server too, on Windows
        raise DownloadError(
            f"the path of {url} holds a NUL byte (%00), which no file name can", url=url
        )
    if parts.netloc in ("", "localhost"):
        if windows:
            return Path(url2pathname(parts.path))
        # The bytes it names, as the file system spells them: `Path.as_uri()` (and so
        # `pylock mirror`'s advice) encodes a path's bytes, where url2pathname decodes
        # UTF-8 whatever the locale, and replaces what is no UTF-8.
        return Path(os.fsdecode(unquote_to_bytes(parts.path)))
    if windows:
        return Path(url2pathname(f"//{parts.netloc}{parts.path}"))
    from pylock.urls import file_host_problem

    raise DownloadError(
        f"unsupported file URL with a host: {url}",
        url=url,
        hint=file_host_problem(url, windows=False),
    )


# -- retries -------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in ``headers``, whatever the case of either: a field
    name is case-insensitive (RFC 9110, 5.1), and a plain dict of http.client's headers
    keeps the case the server chose (``RETRY-AFTER``).

    >>> header({"RETRY-after": "2"}, "Retry-After"), header({}, "Retry-After")
    ('2', None)
    """
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (capped at :data:`MAX_BACKOFF`); None for a date or junk.

    >>> retry_after({"Retry-After": "2"}), retry_after({"retry-after": "-5"})
    (2.0, 0.0)
    >>> retry_after({"Retry-After": "1e9"}), retry_after({"RETRY-AFTER": "nan"})
    (30.0, None)
    """
    value = header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; the usual backoff will do
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_BACKOFF))


def answering_proxy(url: str, settings: Settings) -> Proxy | None:
    """The proxy whose own answer a response to ``url`` may be: the one a plain http
    request goes through. Over https a proxy only tunnels: the answer is the server's."""
    return proxy_of(url, settings) if scheme_of(url) == "http" else None


def raise_for_transient(
    status: int, headers: Mapping[str, str], *, via: Proxy | None = None
) -> None:
    """Raise :class:`Retryable` for a 5xx, 408 or 429; ``via``: the proxy the request went
    through, whose answer (a 502) it may be."""
    if status >= 500 or status in RETRY_STATUSES:
        raise Retryable(f"HTTP {status}", retry_after=retry_after(headers), via=via)


def backoff_delay(error: Retryable, failures: int, backoff: float) -> float:
    """Seconds to wait before attempt ``failures + 1``: ``Retry-After``, else doubling + jitter."""
    if error.retry_after is not None:
        return error.retry_after
    import random  # only on a retry: a sync that needs none does without it

    delay = min(backoff * 2.0 ** (failures - 1), MAX_BACKOFF)
    jitter: float = random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
    return delay * jitter


class Attempts:
    """The failed attempts of one request, for both clients' retry loops."""

    def __init__(
        self,
        target: str,
        canonical: str,
        options: FetchOptions,
        *,
        label: str,
        settings: Settings | None = None,
    ) -> None:
        self.target = target
        self.canonical = canonical
        self.retries = options.retries
        self.backoff = options.backoff
        self.label = label
        self.failures = 0
        #: The proxies the requests go through, for the error once the retries are spent.
        self.settings = settings

    def failed(self, error: Retryable, reporter: Reporter) -> float:
        """Count ``error``; the seconds to wait before the next attempt, said on ``reporter``.

        Raises :func:`gave_up`'s error once the retries are spent.
        """
        self.failures += 1
        if self.failures > self.retries:
            raise gave_up(
                error, self.failures, self.target, self.canonical, settings=self.settings
            ) from None
        delay = backoff_delay(error, self.failures, self.backoff)
        # Said unless -q: a server that accepts and never answers is a minute of silence
        # per attempt, and a build log should show why a step was slow.
        reporter.event(
            f"{self.label}: {error.reason}; retrying in {delay:.1f}s "
            f"({self.failures}/{self.retries})"
        )
        return delay


def gave_up(
    error: Retryable,
    failures: int,
    target: str,
    canonical: str,
    *,
    settings: Settings | None = None,
) -> DownloadError:
    """The error once the retries are spent; it names the proxy when reaching it failed.

    ``settings``: the proxies the request was sent with; without them, the hint says where
    a proxy would go.
    """
    where = describe(target, canonical)
    tries = f"{failures} attempt" if failures == 1 else f"{failures} attempts"
    proxy = error.proxy
    if proxy is not None:
        return DownloadError(
            f"cannot download {where}: the proxy {redact(proxy.url)} (from {proxy.variable}) "
            f"failed: {error.reason} (gave up after {tries})",
            url=target,
            hint=f"check the proxy in {proxy.variable}, or bypass it for this host with NO_PROXY",
        )
    via = error.via
    if via is not None:
        return DownloadError(
            f"cannot download {where} through the proxy {redact(via.url)} (from "
            f"{via.variable}): {error.reason} (gave up after {tries})",
            url=target,
            hint=f"check the proxy in {via.variable} and the mirror, or bypass the proxy for "
            "this host with NO_PROXY",
        )
    through = None if settings is None else proxy_of(error.url or target, settings)
    if through is not None:
        # The server's own answer, through the tunnel (a 503 over https): it is not the
        # proxy's, but a proxy is set, and saying where one goes would mislead.
        hint = (
            f"check the network or the mirror (the requests went through the proxy "
            f"{redact(through.url)}, from {through.variable})"
        )
    else:
        hint = (
            f"check the network or the mirror (a proxy for {scheme_of(target)} URLs goes "
            f"in {proxy_variable(target)})"
        )
    return DownloadError(
        f"cannot download {where}: {error.reason} (gave up after {tries})", url=target, hint=hint
    )


#: Statuses that say the request lacked (or had wrong) credentials.
AUTH_STATUSES = frozenset({401, 403})
#: How to give ``{host}`` credentials.
GIVE_CREDENTIALS = (
    "add a netrc entry for {host} (~/.netrc, or the file NETRC names), or put user:token@ "
    "in the mirror or rewrite URL"
)
#: What to do about a 401 or 403.
CREDENTIALS_HINT = "the server wants credentials: " + GIVE_CREDENTIALS


def http_error(
    status: int,
    reason: str,
    url: str,
    target: str,
    canonical: str,
    *,
    netrc_sent: bool = False,
    via: Proxy | None = None,
) -> DownloadError:
    """The error for a final non-200 answer to an archive GET (``netrc_sent``: the request
    carried the user's netrc entry for the host; ``via``: the proxy it went through)."""
    text = f"{status} {printable(redact(reason))}".strip()
    # The URL's own user:password went along (the aiohttp path names the URL without).
    sent = urlsplit(url).username is not None or (
        origin(url) == origin(target) and urlsplit(target).username is not None
    )
    if status in AUTH_STATUSES and sent:
        hint = "the server refused the user name and password in the URL: check them"
    elif status in AUTH_STATUSES and netrc_sent:
        host = urlsplit(url).hostname or "the server"
        hint = f"the server refused the netrc entry's user name and password for {host}: check them"
    elif status in AUTH_STATUSES and netrc_problems:
        path, problem = next(iter(netrc_problems.items()))
        hint = f"pylock could not read the netrc file {path} ({problem}): fix it"
    elif status in AUTH_STATUSES:
        hint = CREDENTIALS_HINT.format(host=urlsplit(url).hostname or "the mirror")
    elif status == 407:
        hint = proxy_refusal_hint(via, status)
    elif target != canonical:
        hint = "check that the mirror holds the file asked for"
    else:
        hint = (
            "the artifact may be gone upstream: `pylock lock --upgrade` moves an interpreter "
            "locked from the index to a build that exists; a `url` given in pythons.toml "
            "must be corrected there"
        )
    where = describe(url, canonical, target)
    return DownloadError(f"HTTP {text} for {where}", url=url, hint=hint)


# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) that a CA bundle
# can fix, and those it cannot.
_UNKNOWN_CA = frozenset({2, 18, 19, 20, 21})  # no issuer, self-signed, unable to verify leaf
_EXPIRED = frozenset({9, 10})  # not yet valid, expired
_WRONG_HOST = frozenset({62, 64})  # host name, IP address mismatch


def untrusted(url: str, canonical: str, detail: str, code: int | None) -> DownloadError:
    """The error for a TLS certificate that does not verify; ``code`` is OpenSSL's reason.

    Only an unknown CA gets the ``SSL_CERT_FILE`` hint: no CA bundle fixes a certificate
    for another host or one that has expired.
    """
    hint = certificate_hint(
        urlsplit(url).hostname or "the server",
        code,
        unknown_ca="set SSL_CERT_FILE to a CA bundle that includes your proxy's or mirror's "
        "certificate authority",
    )
    return DownloadError(
        f"TLS certificate of {describe(url, canonical)} not trusted: {printable(redact(detail))}",
        url=url,
        hint=hint,
    )


def certificate_hint(
    host: str, code: int | None, *, unknown_ca: str, named_in: str = "URL, mirror or rewrite"
) -> str:
    """What to do about ``host``'s certificate that failed with OpenSSL's ``code``:
    ``unknown_ca`` (the ``SSL_CERT_FILE`` hint) only if a CA bundle can fix it.

    >>> certificate_hint("r.lan", 62, unknown_ca="-", named_in="reference")
    'the certificate is for another host than r.lan: check the host name in the reference'
    """
    if code in _WRONG_HOST:
        return (
            f"the certificate is for another host than {host}: check the host name in the "
            + named_in
        )
    if code in _EXPIRED:
        return (
            f"the certificate of {host} is expired or not yet valid: renew it on the server, "
            "or check this machine's clock"
        )
    if code is None or code in _UNKNOWN_CA:
        return unknown_ca
    return f"the certificate chain of {host} is invalid: fix the server's certificate"


# -- server text ---------------------------------------------------------------------


def printable(text: str) -> str:
    """Server-chosen text made safe to print: one line, short, no terminal escapes.

    Cutting can split a secret so that :func:`~pylock.urls.redact` no longer sees it:
    text that may hold a URL is redacted *before* it comes here.

    >>> printable("Not\\x1b[31m Found\\n")
    'Not?[31m Found'
    """
    text = " ".join(text.split())
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON] + "..."
    return "".join(c if c.isprintable() else "?" for c in text)


def reason(error: BaseException) -> str:
    """An exception as one printable line, secrets in URLs hidden: plain words for what
    networks commonly do (a refused connection, a name that does not resolve, a server
    that speaks no HTTP), else its type first."""
    words = plain_words(error)
    if words is not None:
        return printable(redact(words))
    text = printable(redact(str(error)))
    name = type(error).__name__
    if isinstance(error, TimeoutError) and "timeout" not in (text + name).lower():
        name += " (timed out)"
    return f"{name}: {text}" if text else name


def plain_words(error: BaseException) -> str | None:
    """What networks commonly do, in words (``None`` for anything else): a refused
    connection, a name that does not resolve, a server that speaks no HTTP or no TLS."""
    import socket

    inner = getattr(error, "os_error", None)  # aiohttp's ClientConnectorError: the OS's own
    if isinstance(inner, OSError) and inner is not error:
        host, port = getattr(error, "host", None), getattr(error, "port", None)
        where = f" to {host}:{port}" if host and port else ""
        return f"cannot connect{where}: {plain_words(inner) or inner.strerror or inner}"
    if speaks_no_tls(error):
        return "the server does not speak TLS there (is it an http:// server?)"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror or error})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    name = type(error).__name__
    # Before the reset: http.client's RemoteDisconnected is a ConnectionResetError, for a
    # clean close that no reset ever was.
    if name in ("RemoteDisconnected", "ServerDisconnectedError"):
        return "the server closed the connection without an answer"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset"
    if name == "BadStatusLine" or "Bad status line" in str(error):
        return "the server did not answer in HTTP"
    cause = error.__cause__
    parsed = getattr(cause, "message", None)
    if name == "ClientResponseError" and type(cause).__name__ == "HttpProcessingError":
        # aiohttp's parser refused the response: its words come as an HTTP 400 the server
        # never sent, with the offending line drawn under them. The first line will do.
        what = str(parsed).split("\n", 1)[0].strip().rstrip(":") if parsed else ""
        return f"{MALFORMED}: {what}" if what else MALFORMED
    return None


def speaks_no_tls(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered something else (plain
    HTTP on an https:// URL): no retry changes that."""
    import ssl

    causes = (error, getattr(error, "os_error", None), error.__cause__)
    return any(
        isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in _NOT_TLS
        for cause in causes
    )


#: OpenSSL's words for a handshake answered by something that is no TLS server.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


def no_tls(url: str, canonical: str) -> DownloadError:
    """The error for an https:// URL whose server speaks no TLS."""
    return DownloadError(
        f"cannot download {describe(url, canonical)}: the server does not speak TLS there",
        url=url,
        hint="if it is a plain-http server, write its URL with http:// (a mirror on a "
        "loopback address or one trusted with --mirror/--rewrite may be plain http); "
        "else check the port",
    )


def redact(text: str) -> str:
    """:func:`pylock.urls.redact`, imported when first needed (it compiles regexes)."""
    from pylock.urls import redact

    return redact(text)


# -- sizes and hashes ----------------------------------------------------------------


def mismatch(
    url: str, canonical: str, expected: str, actual: str, what: str, target: str | None = None
) -> HashMismatchError:
    """The error for a wrong sha256 or size (``target``: as :func:`describe` takes it)."""
    error = HashMismatchError(url=url, expected=expected, actual=actual, what=what)
    if url != canonical:
        where = describe(url, canonical, target)
        error.message = f"{what} mismatch for {where}: expected {expected}, got {actual}"
        error.args = (error.message,)
    return error


def bound(
    url: str,
    canonical: str,
    size: int | None,
    length: int | None,
    cap: int,
    target: str | None = None,
) -> int:
    """How many bytes a body may have: the lock's size, else Content-Length, else ``cap``.

    Raises at once when the two sizes disagree or an unlocked Content-Length is past ``cap``.
    """
    if size is not None and length is not None and length != size:
        raise mismatch(url, canonical, str(size), str(length), "size", target)
    limit = size if size is not None else length
    if limit is None:
        return cap
    if size is None and limit > cap:
        raise stated_too_large(url, canonical, limit, cap, target)
    return limit


def stated_too_large(
    url: str, canonical: str, stated: int, cap: int, target: str | None = None
) -> DownloadTooLargeError:
    """The error for a body whose stated size (its ``Content-Length``, or a file's size) is
    past ``cap`` and that the lock gives no size: refused before it is read."""
    return DownloadTooLargeError(
        f"download of {describe(url, canonical, target)} refused: it is {stated} bytes "
        f"({human_size(stated)}) by its Content-Length or file size, more than "
        f"PYLOCK_MAX_DOWNLOAD_SIZE ({cap} bytes, {human_size(cap)}), and the lock states "
        "no size for it",
        url=url,
        limit=cap,
        hint="if the archive really is this large, raise PYLOCK_MAX_DOWNLOAD_SIZE "
        '(e.g. "4G"); a lock with the archive\'s size needs no cap',
    )


def too_large(
    url: str,
    canonical: str,
    size: int | None,
    length: int | None,
    got: int,
    cap: int,
    target: str | None = None,
) -> DownloadError:
    """The error for a body past its bound: the lock's size, Content-Length, or the cap.

    ``got`` is how many bytes arrived, or the announced ``Content-Length``.
    """
    if size is not None:
        return mismatch(url, canonical, str(size), f"more than {size}", "size", target)
    where = describe(url, canonical, target)
    if length is not None and got > length:
        return DownloadTooLargeError(
            f"download of {where} stopped: the body is longer than its "
            f"Content-Length ({length} bytes)",
            url=url,
            limit=length,
            hint="the server or a proxy on the way sends a broken response",
        )
    return DownloadTooLargeError(
        f"download of {where} stopped: it is larger than PYLOCK_MAX_DOWNLOAD_SIZE "
        f"({cap} bytes, {human_size(cap)}), and nothing states its size",
        url=url,
        limit=cap,
        hint="if the archive really is this large, raise PYLOCK_MAX_DOWNLOAD_SIZE "
        '(e.g. "4G"); otherwise the server sends a wrong or endless body',
    )


#: How both clients say that a response broke HTTP's rules.
MALFORMED = "the server sent a malformed response"


def malformed(problem: str) -> Retryable:
    """The failure of a response the server (or a proxy on the way) framed wrongly: retried,
    as any broken transfer is, and never taken for another file (a hash mismatch)."""
    return Retryable(f"{MALFORMED}: {problem}")


def check_framing(lengths: list[str], encodings: list[str]) -> None:
    """Raise :func:`malformed` unless the http.client path reads a response's body as it is
    framed: its ``Content-Length`` headers (``lengths``) say one number, in ASCII digits,
    and its ``Transfer-Encoding`` headers (``encodings``) are ``chunked`` alone, or only
    ``identity`` (obsolete: it frames nothing), and never ``chunked`` beside a length
    (RFC 9112, 6.3).

    http.client took the first of two lengths, read ``+25`` and ``2_5`` as 25, ignored a
    length beside ``chunked``, and read a body as chunked only for a header of exactly
    ``chunked``: ``gzip, chunked`` went into the archive with its chunk sizes, and failed
    its hash as another file would. aiohttp's parser refuses the rest as well. The same
    length twice is one length (RFC 9110, 8.6).

    >>> check_framing(["25"], []), check_framing([], ["chunked"]), check_framing(["5", "5"], [])
    (None, None, None)
    >>> check_framing(["2_5"], [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pylock.net.policy.Retryable: ...: Content-Length '2_5' is not a number
    >>> check_framing(["9" * 400], [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pylock.net.policy.Retryable: ...: Content-Length 99999999999999999999... is too large
    >>> check_framing([], ["gzip, chunked"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pylock.net.policy.Retryable: ...: Transfer-Encoding 'gzip, chunked' is not read
    """
    codings = [c.strip(" \t").lower() for e in encodings for c in e.split(",") if c.strip(" \t")]
    if any(coding != "identity" for coding in codings):
        if lengths:
            raise malformed("both Content-Length and Transfer-Encoding")
        if len(encodings) != 1 or encodings[0].lower() != "chunked":
            shown = printable(", ".join(encodings))
            raise malformed(f"Transfer-Encoding {shown!r} is not read")
    values = {length.strip(" \t") for length in lengths}
    if len(values) > 1:
        raise malformed(f"{len(values)} different Content-Length headers")
    for value in values:
        if not (value.isascii() and value.isdigit()):
            raise malformed(f"Content-Length {printable(value)!r} is not a number")
        digits = value.lstrip("0")
        if len(digits) > 20 or int(digits or "0") >= 1 << 64:
            # aiohttp's parser refuses one past 64 bits ("Content-Length overflow"); read
            # here, one past a float's range ended the sync in an OverflowError.
            raise malformed(f"Content-Length {shorten(value, 23)} is too large")


def refuses_head(error: BaseException) -> bool:
    """Whether a client's parser refused a response's head as too large: a line too long
    (http.client's and aiohttp's ``LineTooLong``, which aiohttp wraps twice), or too many
    header lines (http.client's ``got more than 100 headers``: a bare ``HTTPException``,
    which only its text tells from the others)."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return False
        kind = type(seen)
        if kind.__name__ == "LineTooLong":
            return True
        if (kind.__module__, kind.__name__) == ("http.client", "HTTPException"):
            text = str(seen)
            return text.startswith("got more than") and text.endswith(" headers")
        seen = seen.__cause__ or seen.__context__
    return False


def head_too_large(url: str, canonical: str, target: str | None = None) -> DownloadError:
    """The error for a response whose headers are too many or too long for the client to
    read: the same answer every time, so it is not retried (``target``: as
    :func:`describe` takes it)."""
    return DownloadError(
        f"cannot download {describe(url, canonical, target)}: the response's headers are too "
        "large to read",
        url=url,
        hint="the server or a proxy on the way sends a broken response: report it to its owner",
    )


def truncated(received: int, length: int | None, size: int | None) -> Retryable | None:
    """A :class:`Retryable` when the body ended before its stated length."""
    expected = length if length is not None else size
    if expected is not None and received < expected:
        return Retryable(f"truncated body: received {received} of {expected} bytes")
    return None


def check(
    url: str,
    canonical: str,
    actual: str,
    received: int,
    sha256: str | None,
    size: int | None,
    target: str | None = None,
) -> tuple[str, int]:
    """(sha256, size) of a complete body, once both match what the lock says (``target``:
    as :func:`describe` takes it)."""
    if size is not None and received != size:
        raise mismatch(url, canonical, str(size), str(received), "size", target)
    if sha256 is not None and actual != sha256:
        raise mismatch(url, canonical, sha256, actual, "sha256", target)
    return actual, received


# -- TLS (the context: pylock.net.tls), proxies and credentials ----------------------


def needs_tls(url: str, rewrites: UrlRewrites) -> bool:
    """Whether fetching canonical ``url`` starts with a TLS handshake (its rewritten
    target is ``https``). A URL that cannot be fetched at all needs none."""
    try:
        return urlsplit(target(url, rewrites, offline=False)).scheme == "https"
    except (PylockError, ValueError):
        return False


# -- proxies and credentials ---------------------------------------------------------


class Proxy(NamedTuple):
    """The proxy a URL goes through, and the variable that named it (for messages)."""

    #: The proxy's URL, ``http://`` added when the variable gave none.
    url: str
    #: ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY`` (either case).
    variable: str


#: Proxy schemes both clients speak: the proxy is reached over plain TCP and asked for the
#: URL (http) or a ``CONNECT`` tunnel (https, encrypted end to end through it). An
#: ``https://`` proxy, reached over TLS, is refused: ``http.client`` would speak plain TCP
#: to it (its credentials in clear text) where aiohttp speaks TLS.
PROXY_SCHEMES = ("http",)


def proxy_answered(
    url: str, canonical: str, proxy: Proxy | None, status: int, reason: str
) -> Exception:
    """What a proxy's non-200 answer to ``CONNECT`` becomes: :class:`Retryable` for a 5xx,
    408 or 429; a :class:`DownloadError` for any other (407 stays 407 however often it is
    asked)."""
    text = printable(redact(f"{status} {reason}".strip()))
    if status >= 500 or status in RETRY_STATUSES:
        return Retryable(f"proxy answered HTTP {text}", proxy=proxy)
    return DownloadError(
        f"{proxy_named(proxy)} refused {describe(url, canonical)}: HTTP {text}",
        url=url,
        hint=proxy_refusal_hint(proxy, status),
    )


def proxy_named(proxy: Proxy | None) -> str:
    """The proxy as messages name it: its URL (credentials redacted) and its variable."""
    return "the proxy" if proxy is None else f"the proxy {redact(proxy.url)} ({proxy.variable})"


def proxy_refusal_hint(proxy: Proxy | None, status: int) -> str:
    """What to do about a proxy's refusal: for a 407, check the credentials its URL gave,
    or give some; for another, ask whether it allows the host.

    >>> proxy_refusal_hint(Proxy("http://u:p@proxy:3128", "HTTPS_PROXY"), 407)
    'the proxy refused the user name and password in HTTPS_PROXY: check them'
    """
    if status != 407:
        return "ask the proxy's administrators whether it allows this host"
    if proxy is not None and urlsplit(proxy.url).username is not None:
        return f"the proxy refused the user name and password in {proxy.variable}: check them"
    return "the proxy wants credentials: put user:password@ in the proxy URL"


def scheme_of(url: str) -> str:
    """The lower-case scheme of ``url``."""
    return urlsplit(url).scheme.lower()


def proxy_variable(url: str) -> str:
    """The variable that names a proxy for ``url``'s scheme (``ALL_PROXY`` is the fallback)."""
    return "HTTP_PROXY" if scheme_of(url) == "http" else "HTTPS_PROXY"


def proxy_of(url: str, settings: Settings) -> Proxy | None:
    """The proxy for ``url`` from ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, or None.

    A proxy of another scheme (``socks5://``...) is an error, not an HTTP proxy.

    >>> from pylock.settings import Settings
    >>> s = Settings.from_environ({"HTTPS_PROXY": "p:3128", "NO_PROXY": ".b.example"})
    >>> proxy_of("https://a.example/x", s), proxy_of("https://c.b.example/x", s)
    (Proxy(url='http://p:3128', variable='HTTPS_PROXY'), None)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        proxy, setting = settings.https_proxy, "https_proxy"
    elif scheme == "http":
        proxy, setting = settings.http_proxy, "http_proxy"
    else:
        return None
    if not proxy:
        proxy, setting = settings.all_proxy, "all_proxy"
    if not proxy:
        return None
    # As the user wrote it (`http_proxy` and `HTTP_PROXY` are both read).
    variable = (settings.proxy_variables or {}).get(setting) or setting.upper()
    try:
        port = parts.port
    except ValueError:
        port = None
    if bypassed(parts.hostname or "", port or DEFAULT_PORTS[scheme], settings.no_proxy or ""):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    from pylock.urls import redact_given, url_problem

    problem = url_problem(proxy)
    if problem is None and (not proxy.isprintable() or " " in proxy):
        problem = "spaces or control characters"
    if problem is None and not urlsplit(proxy).hostname:
        problem = "no host"
    if problem is not None:
        # Left to the clients, a broken one was a ValueError traceback deep in a download.
        raise PylockError(
            f"{variable} is not a usable proxy URL: {problem} ({shown(redact_given(proxy), 300)})",
            hint=f"set {variable} to http://HOST:PORT, or unset it",
        )
    proxy_scheme = scheme_of(proxy)
    if proxy_scheme == "https":
        raise PylockError(
            f"{variable} names an https:// proxy ({redact(proxy)}): pylock reaches proxies "
            "over plain HTTP only, and does not send them credentials in the clear",
            hint=f"if the proxy also takes plain HTTP, set {variable} to "
            f"http://{redact(proxy).split('://', 1)[1]} (https downloads stay "
            "encrypted end to end through its CONNECT tunnel), or unset it",
        )
    if proxy_scheme not in PROXY_SCHEMES:
        # Sent plain HTTP, a SOCKS proxy answers garbage that fails only after every retry.
        raise PylockError(
            f"unsupported proxy scheme {proxy_scheme!r} in {variable} "
            "(pylock supports http:// proxies)",
            hint=f"set {variable} to an http:// proxy, or unset it",
        )
    return Proxy(proxy, variable)


def proxy_for(url: str, settings: Settings) -> str | None:
    """The URL of :func:`proxy_of` ``url``, or None.

    >>> from pylock.settings import Settings
    >>> proxy_for("http://a.example/x", Settings.from_environ({"ALL_PROXY": "http://p:1"}))
    'http://p:1'
    """
    proxy = proxy_of(url, settings)
    return None if proxy is None else proxy.url


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host``: a suffix match, ``*`` for every host, an IP
    network (``10.0.0.0/8``), an IPv6 literal with or without brackets; an entry with a
    port matches that port only (``port`` is the URL's, its scheme's default filled in).

    >>> bypassed("a.internal", None, "localhost,.internal"), bypassed("x.org", 80, "x.org:81")
    (True, False)
    >>> bypassed("10.1.2.3", 443, "10.0.0.0/8"), bypassed("::1", 8080, "[::1]:8080")
    (True, True)
    >>> bypassed("mirror.corp", 443, "mirror.corp:8443"), bypassed("::1", 80, "::1")
    (False, True)
    """
    rules = _no_proxy_rules(no_proxy)
    if rules.every:
        return True
    if not rules.names and not rules.networks:
        return False
    host = _canonical_host(host.lower().strip("[]"))

    def at_port(entry_port: str) -> bool:
        return not entry_port or port is None or entry_port == str(port)

    for network, entry_port in rules.networks:
        if at_port(entry_port) and _in_network(host, network):
            return True
    # The host itself and each name it ends in (`a.corp.example`: `corp.example`, `example`).
    suffix, dot = host, -1
    while True:
        if any(at_port(entry_port) for entry_port in rules.names.get(suffix, ())):
            return True
        dot = host.find(".", dot + 1)
        if dot == -1:
            return False
        suffix = host[dot + 1 :]


class _NoProxyRules(NamedTuple):
    """``NO_PROXY``, as :func:`bypassed` looks hosts up in it."""

    #: It has a ``*`` entry: every host goes around the proxy.
    every: bool
    #: Canonical host names (:func:`_canonical_host`), each with the ports its entries
    #: name (``""``: every port).
    names: Mapping[str, frozenset[str]]
    #: IP networks (``10.0.0.0/8``), each with the port its entry names (``""``: every port).
    networks: tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=8)
def _no_proxy_rules(no_proxy: str) -> _NoProxyRules:
    """``NO_PROXY`` read once per value, its names looked up rather than scanned: every
    request asks whether it goes around the proxy, and one of 5,000 entries (109 KB)
    added 2 s to a sync of 150 interpreters."""
    every = False
    names: dict[str, set[str]] = {}
    networks: list[tuple[str, str]] = []
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            every = True
            continue
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        else:  # a name, or an IPv6 literal without brackets (and so without a port)
            name, entry_port = entry, ""
        if "/" in name:
            networks.append((name, entry_port))
            continue
        name = name.lstrip(".")
        name = _canonical_host(name[2:] if name.startswith("*.") else name)
        names.setdefault(name, set()).add(entry_port)
    frozen = {name: frozenset(ports) for name, ports in names.items()}
    return _NoProxyRules(every, frozen, tuple(networks))


def _starts_with_bom(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


def _canonical_host(name: str) -> str:
    """A host as NO_PROXY and netrc compare it: an IP address in its one spelling
    (``0:0::1`` is ``::1``), a name without the trailing dot of a fully qualified one, and
    in its IDNA form (``bücher.example`` is ``xn--bcher-kva.example``, the name requests
    send: :func:`wire_host`), whichever way either was written.

    >>> _canonical_host("Bücher.example."), _canonical_host("0:0::1")
    ('xn--bcher-kva.example', '::1')
    """
    import ipaddress

    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        name = name.rstrip(".") or name
    if name.isascii():
        return name.lower()
    from pylock.urls import idna_host

    try:
        return idna_host(name)
    except UnicodeError:
        return name.lower()


def _in_network(host: str, network: str) -> bool:
    """Whether ``host`` is an IP address inside ``network`` (CIDR); False for a name."""
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


#: netrc files that could not be read in this process, and why (for a 401's hint).
netrc_problems: dict[str, str] = {}

#: A netrc entry: (login, account, password).
_NetrcEntry = tuple[str, str | None, str | None]


class _NetrcEntries(NamedTuple):
    """A netrc file's entries."""

    #: Each ``machine``'s, by its canonical host name (:func:`_canonical_host`).
    hosts: Mapping[str, _NetrcEntry]
    #: The ``default`` entry, if there is one.
    default: _NetrcEntry | None


class _ParsedNetrc(NamedTuple):
    """One read of a netrc file, and which version of the file it was."""

    #: (device, inode, size, mtime and ctime in ns) of the file read.
    version: tuple[int, ...]
    #: Its entries, or why it could not be read (see :data:`netrc_problems`).
    entries: _NetrcEntries | str


#: Each netrc file's last read in this process, by path: every request asks for its host's
#: entry, and a netrc of 100,000 machines took 4 s to parse (a sync of 150 took 14 minutes).
_netrc_reads: dict[str, _ParsedNetrc] = {}
#: One parse at a time: the download threads all ask at once when a sync starts.
_netrc_lock = threading.Lock()


def _netrc_entries(path: str, version: tuple[int, ...]) -> _NetrcEntries | str:
    """The entries of the netrc file at ``path``, parsed once per version of the file."""
    with _netrc_lock:
        read = _netrc_reads.get(path)
        if read is None or read.version != version:
            read = _ParsedNetrc(version, _parse_netrc(path))
            _netrc_reads[path] = read
    return read.entries


def _parse_netrc(path: str) -> _NetrcEntries | str:
    import netrc

    try:
        parsed = netrc.netrc(path)
    except (OSError, ValueError, netrc.NetrcParseError) as error:
        # Unreadable, not text (UnicodeDecodeError), or not netrc: as if there were none,
        # and said in the hint of a 401 or 403 that its credentials might have answered.
        # Never the parser's own words: they may quote a token, which may be a password.
        if isinstance(error, netrc.NetrcParseError):
            problem = f"not netrc syntax at line {error.lineno}"
            # The mark is the first token's start, whatever line the parser counts it on
            # (line 2 when a newline ends it).
            if _starts_with_bom(path):
                problem += (
                    ": it starts with a byte-order mark, as Windows PowerShell 5 writes "
                    "UTF-8 (`Set-Content -Encoding UTF8`); save it as UTF-8 without one"
                )
            return problem
        if isinstance(error, OSError):
            return error.strerror or type(error).__name__
        return "not text"
    # Host names are case-insensitive (`machine Mirror.Example` is mirror.example's), and
    # one beyond ASCII may be written either way (`bücher.example`, `xn--bcher-kva...`).
    hosts = {_canonical_host(name): value for name, value in parsed.hosts.items()}
    return _NetrcEntries(hosts, parsed.hosts.get("default"))


def netrc_authorization(url: str, settings: Settings, *, default: bool = True) -> str | None:
    """``Basic`` credentials for the URL's host from netrc (``NETRC``, else ``~/.netrc``;
    on Windows ``~/.netrc`` or ``~/_netrc``, see :meth:`Settings.netrc_path`).

    The ``default`` entry counts only when ``default`` is true. The file is parsed once
    per process, and again only once it has changed.
    """
    host = urlsplit(url).hostname
    if not host:
        return None
    path = settings.netrc_path()
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        status = None
    if status is None or not stat.S_ISREG(status.st_mode):
        if settings.netrc is not None:
            # NETRC names it: a typo is said in the hint of the 401 it leads to.
            netrc_problems[path] = "no such file" if status is None else "not a file"
        return None
    # A changed file (rewritten, replaced, or its permissions mended) is read again.
    version = (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )
    entries = _netrc_entries(path, version)
    if isinstance(entries, str):
        netrc_problems[path] = entries
        return None
    entry = entries.hosts.get(_canonical_host(host))
    if entry is None and default:
        entry = entries.default
    if entry is None:
        return None
    login, _, password = entry
    if not login and not password:
        return None  # `machine h login` with nothing after it: no credentials to send
    return basic(login, password or "")


def authorization(
    url: str, given: str | None, settings: Settings, *, netrc_default: bool = True
) -> str | None:
    """The ``Authorization`` a request to ``url`` carries.

    Credentials in the URL win, then the user's netrc entry for the host (its ``default``
    entry only when ``netrc_default``), then ``given``.
    """
    parts = urlsplit(url)
    if parts.username is not None:
        return basic(unquote(parts.username), unquote(parts.password or ""))
    return netrc_authorization(url, settings, default=netrc_default) or given


def basic(user: str, password: str) -> str:
    """A ``Basic`` Authorization value."""
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def proxy_authorization(proxy: str) -> dict[str, str]:
    """The ``Proxy-Authorization`` header for a proxy URL's ``user:password@`` (none
    without): both clients send it to the proxy alone, on the ``CONNECT`` of an https
    URL's tunnel or with a plain http request, which goes to the proxy."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    return {"Proxy-Authorization": basic(unquote(parts.username), unquote(parts.password or ""))}


# -- writing the body ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Download:
    """One archive GET, as both clients make it: from where, into what, and what it must be."""

    #: The URL requested: the canonical one, rewritten.
    target: str
    #: The lock's URL, as errors name it.
    canonical: str
    #: The file the body goes into.
    dest: Path
    #: The sha256 the body must have, when known.
    sha256: str | None
    #: The size the body must have, when known.
    size: int | None
    #: The most bytes written, whatever the server says.
    cap: int
    #: The progress task that counts the bytes.
    task: Task | None
    #: Where a streaming install reads the bytes as they arrive.
    feed: DownloadFeed | None
    #: The slowest pace waited for (see :class:`Pace`): this many bytes in ...
    slow_bytes: int = SLOW_BYTES
    #: ... this many seconds.
    slow_window: float = SLOW_WINDOW
    #: Where the netrc file is (for an error's hint), when known.
    settings: Settings | None = None

    @classmethod
    def of(
        cls,
        url: str,
        dest: Path,
        options: FetchOptions,
        *,
        sha256: str | None,
        size: int | None,
        task: Task | None,
        feed: DownloadFeed | None,
        settings: Settings | None = None,
    ) -> Download:
        """Canonical ``url`` as ``options`` fetch it: rewritten (or refused, see :func:`target`),
        bounded by their ``max_download_size``, at their slowest pace (:class:`Pace`).
        ``settings``: the client's, else the options'."""
        timeouts = options.timeouts
        return cls(
            target=target(url, options.rewrites, offline=options.offline),
            canonical=url,
            dest=dest,
            sha256=sha256,
            size=size,
            cap=options.max_download_size,
            task=task,
            feed=feed,
            slow_bytes=timeouts.slow_bytes,
            slow_window=timeouts.slow_window,
            settings=settings or options.settings,
        )

    def body(
        self,
        url: str,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        length: int | None,
        *,
        via: Proxy | None = None,
    ) -> Body:
        """The body of one attempt's response from ``url``, if its status says it has one.

        A 5xx, 408 or 429 raises :class:`Retryable` (``via``: the proxy the request went
        through); any other status but 200 fails for good.
        """
        raise_for_transient(status, headers, via=via)
        if status != 200:
            # Whether Hops sent the netrc entry: a `default` one goes to the first origin only.
            netrc_sent = (
                status in AUTH_STATUSES
                and self.settings is not None
                and netrc_authorization(
                    url, self.settings, default=origin(url) == origin(self.target)
                )
                is not None
            )
            raise http_error(
                status, reason, url, self.target, self.canonical, netrc_sent=netrc_sent, via=via
            )
        return Body(self, url, length)


class Body:
    """One attempt's body as it arrives, for both clients' chunk loops: bounded (see
    :func:`bound`), hashed, written to ``dest`` (and told to ``feed``), counted on ``task``."""

    def __init__(self, download: Download, url: str, length: int | None) -> None:
        self.download = download
        self.url = url
        self.length = length
        self.limit = bound(
            url, download.canonical, download.size, length, download.cap, download.target
        )
        learn_total(download.task, length)
        self.digest = hashlib.sha256()
        self.received = 0
        self.advanced = 0
        self.pace = Pace(download.slow_bytes, download.slow_window)

    def open(self) -> BinaryIO:
        """Create ``dest`` for this attempt (see :func:`start`)."""
        return start(self.download.dest, self.download.feed)

    def add(self, writer: BinaryIO, chunk: bytes) -> None:
        """Take one chunk; past the limit raises at once, before anything is written.

        A body that arrives too slowly raises :class:`Retryable` (see :class:`Pace`).
        """
        download = self.download
        try:
            self.pace.add(len(chunk))
        except Retryable:
            self.rewind()
            raise
        self.received += len(chunk)
        if self.received > self.limit:
            raise too_large(
                self.url,
                download.canonical,
                download.size,
                self.length,
                self.received,
                download.cap,
                download.target,
            )
        self.digest.update(chunk)
        write(writer, chunk, download.dest, download.feed, self.received)
        if download.task is not None:
            download.task.advance(len(chunk))
            self.advanced += len(chunk)

    def rewind(self) -> None:
        """Take back the progress this attempt showed (it is retried or failed)."""
        rewind(self.download.task, self.advanced)

    def truncated(self) -> Retryable | None:
        return truncated(self.received, self.length, self.download.size)

    def result(self) -> tuple[str, int]:
        """(sha256, size) once the body ended complete and matches the lock."""
        short = self.truncated()
        if short is not None:
            self.rewind()
            raise short
        download = self.download
        actual = self.digest.hexdigest()
        return check(
            self.url,
            download.canonical,
            actual,
            self.received,
            download.sha256,
            download.size,
            download.target,
        )


class Pace:
    """Fails an attempt whose body brings fewer than ``minimum`` bytes in a ``window`` of
    seconds (:data:`SLOW_BYTES`, :data:`SLOW_WINDOW`).

    Windows follow one another from the first chunk on; a window is judged when a chunk
    arrives after its end. A body that stops altogether is the idle timeout's job.
    """

    def __init__(
        self, minimum: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.minimum = minimum
        self.window = window
        self._clock = clock
        self._start = clock()
        self._bytes = 0

    def add(self, received: int) -> None:
        """Count ``received`` more bytes; raise :class:`Retryable` if a window was too slow."""
        self._bytes += received
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self.window:
            return
        if self._bytes < self.minimum:
            raise Retryable(
                f"too slow: {self._bytes} bytes in {elapsed:.1f}s (pylock needs at least "
                f"{self.minimum} bytes every {self.window:g}s)"
            )
        self._start = now
        self._bytes = 0


def learn_total(task: Task | None, stated: int | None) -> None:
    """Give a task the size the server (or the file) states where the lock gave none (a
    lock from the bundled index has no sizes): the progress shows it, and a log's
    ``Downloading FILE (SIZE) ...`` line too."""
    if task is not None and task.total is None and stated is not None:
        task.total = stated


def rewind(task: Task | None, amount: int) -> None:
    """The next attempt starts from byte 0, so the progress bar does too."""
    if task is not None and amount:
        task.advance(-amount)


def create(dest: Path) -> BinaryIO:
    """Open ``dest`` for the body; a failure is the cache's, not the network's."""
    try:
        return dest.open("wb")
    except OSError as error:
        raise cache_write_error(dest, error) from None


def start(dest: Path, feed: DownloadFeed | None) -> BinaryIO:
    """:func:`create` ``dest``, then tell ``feed`` the file is there to be read."""
    handle = create(dest)
    if feed is not None:
        try:
            feed.begin(dest)
        except BaseException:
            handle.close()
            raise
    return handle


def write(handle: BinaryIO, data: bytes, dest: Path, feed: DownloadFeed | None, total: int) -> None:
    """Write one chunk, and tell the feed once it left Python's buffer."""
    # Only the disk writes: network errors are OSErrors too, and those are retried.
    try:
        handle.write(data)
        if feed is not None:
            handle.flush()
            feed.wrote(total)
    except OSError as error:
        raise cache_write_error(dest, error) from None


def cache_write_error(dest: Path, error: OSError) -> PylockError:
    """The error for a cache that cannot be written."""
    return PylockError(
        f"cannot write to the cache at {dest.parent}: {error}",
        hint="free some space (`pylock cache prune --max-size ...`) or set PYLOCK_CACHE_DIR",
    )


#: How a ``file://`` source is opened (``O_NONBLOCK`` is POSIX; Windows has no FIFOs to
#: wait on, and wants ``O_BINARY``).
_READ_ONLY = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def not_a_regular_file(target: str, canonical: str) -> DownloadError:
    """The error for a ``file://`` source that is a directory, a FIFO or a device."""
    return DownloadError(
        f"{describe(target, canonical)} is not a regular file",
        url=target,
        hint="point the URL at the archive itself (a directory, a FIFO or a device is none)",
    )


def copy_file(download: Download) -> tuple[str, int]:
    """A ``file://`` download: copy, hash and bound like any other; returns (sha256, size)."""
    target, canonical, dest = download.target, download.canonical, download.dest
    sha256, size, cap = download.sha256, download.size, download.cap
    task, feed = download.task, download.feed
    source = file_path(target)
    digest = hashlib.sha256()
    received = 0
    limit = size if size is not None else cap
    try:
        if os.path.isdir(source):  # Windows refuses to open one ("Permission denied")
            raise not_a_regular_file(target, canonical)
        # Not blocking: opening a FIFO would wait for a writer for ever, past any Ctrl-C.
        descriptor = os.open(source, _READ_ONLY)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise not_a_regular_file(target, canonical)
            reader = open(descriptor, "rb")  # noqa: SIM115 - closed by the `with` below
        except BaseException:
            os.close(descriptor)
            raise
        with reader:
            learn_total(task, info.st_size)
            if size is None and info.st_size > limit:
                # A regular file states its size: no need to read it to refuse it.
                raise stated_too_large(target, canonical, info.st_size, cap)
            with start(dest, feed) as writer:
                # At most one byte past the bound: a file may grow while it is read.
                while chunk := reader.read(min(CHUNK_SIZE, limit + 1 - received)):
                    received += len(chunk)
                    if received > limit:
                        raise too_large(target, canonical, size, None, received, cap)
                    digest.update(chunk)
                    write(writer, chunk, dest, feed, received)
                    if task is not None:
                        task.advance(len(chunk))
    except FileNotFoundError:
        raise DownloadError(
            f"{describe(target, canonical)} does not exist",
            url=target,
            hint="check that the mirror directory holds the file asked for"
            if target != canonical
            else "check the path in the URL",
        ) from None
    except OSError as error:
        raise DownloadError(
            f"cannot read {describe(target, canonical)}: {error}", url=target
        ) from None
    return check(target, canonical, digest.hexdigest(), received, sha256, size)
