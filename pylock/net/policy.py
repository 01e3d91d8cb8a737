"""The rules every pylock HTTP client follows, in one place.

Both transports use these pieces: the aiohttp :class:`pylock.net.fetch.Fetcher` (listings,
metadata, downloads inside an event loop) and the blocking ``http.client``
:class:`pylock.net.stdhttp.StdDownloader` (archive GETs in a worker thread). What is decided
here is decided once: which URL may be fetched (offline refusal, rewrites, refused schemes
and downgrades), which redirects are followed and how often, what is retried and after how
long, how large a body may get, whether its hash and size match, which proxy and which
netrc credentials a URL gets, and how server-chosen text is printed.

Standard library only (``netrc``, ``hashlib``): importing it costs nothing measurable.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self
from urllib.parse import unquote, urlsplit

from pylock.errors import (
    DownloadError,
    DownloadTooLargeError,
    HashMismatchError,
    OfflineError,
    PylockError,
)
from pylock.progress import human_size

if TYPE_CHECKING:
    import ssl

    import aiohttp

    from pylock.net.fetch import FetchOptions
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
#: An error's own text is cut to this: a hostile server can put megabytes of it there.
MAX_REASON = 300


class Retryable(Exception):
    """A transient failure: worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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
    """Where a redirect from ``current`` to ``joined`` (absolute) really goes, if allowed."""
    following = rewrites.apply(joined)
    rewrites.check_redirect(current, following, canonical=canonical)
    return following


def too_many_redirects(target: str, canonical: str) -> DownloadError:
    """The error after :data:`MAX_REDIRECTS` hops."""
    return DownloadError(
        f"too many redirects (more than {MAX_REDIRECTS}) for {describe(target, canonical)}",
        url=target,
    )


def origin(url: str) -> tuple[str, str]:
    """Scheme and host:port: credentials never cross from one origin to another."""
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())


def describe(url: str, canonical: str) -> str:
    """A URL as errors show it: with the lock's URL when a rewrite changed it."""
    return url if url == canonical else f"{url} (rewritten from {canonical})"


def file_path(url: str) -> Path:
    """The local path of a ``file://`` URL (no host, or ``localhost``)."""
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"unsupported file URL with a host: {url}", url=url)
    return Path(url2pathname(unquote(parts.path)))


# -- retries -------------------------------------------------------------------------


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (capped at :data:`MAX_BACKOFF`); None for a date or junk.

    >>> retry_after({"Retry-After": "2"}), retry_after({"retry-after": "-5"})
    (2.0, 0.0)
    >>> retry_after({"Retry-After": "1e9"}), retry_after({"Retry-After": "nan"})
    (30.0, None)
    """
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; the usual backoff will do
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_BACKOFF))


def raise_for_transient(status: int, headers: Mapping[str, str]) -> None:
    """Raise :class:`Retryable` for a 5xx, 408 or 429."""
    if status >= 500 or status in RETRY_STATUSES:
        raise Retryable(f"HTTP {status}", retry_after=retry_after(headers))


def backoff_delay(error: Retryable, failures: int, backoff: float) -> float:
    """Seconds to wait before attempt ``failures + 1``: ``Retry-After``, else doubling + jitter."""
    if error.retry_after is not None:
        return error.retry_after
    delay = min(backoff * 2.0 ** (failures - 1), MAX_BACKOFF)
    jitter: float = random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
    return delay * jitter


class Attempts:
    """The failed attempts of one request, for both clients' retry loops."""

    def __init__(self, target: str, canonical: str, options: FetchOptions, *, label: str) -> None:
        self.target = target
        self.canonical = canonical
        self.retries = options.retries
        self.backoff = options.backoff
        self.label = label
        self.failures = 0

    def failed(self, error: Retryable, reporter: Reporter) -> float:
        """Count ``error``; the seconds to wait before the next attempt, said on ``reporter``.

        Raises :func:`gave_up`'s error once the retries are spent.
        """
        self.failures += 1
        if self.failures > self.retries:
            raise gave_up(error, self.failures, self.target, self.canonical) from None
        delay = backoff_delay(error, self.failures, self.backoff)
        reporter.detail(
            f"{self.label}: {error.reason}; retrying in {delay:.1f}s "
            f"({self.failures}/{self.retries})"
        )
        return delay


def gave_up(error: Retryable, failures: int, target: str, canonical: str) -> DownloadError:
    """The error once the retries are spent."""
    return DownloadError(
        f"cannot download {describe(target, canonical)}: {error.reason} "
        f"(gave up after {failures} attempts)",
        url=target,
        hint="check the network, proxy settings (HTTPS_PROXY) or the mirror",
    )


def http_error(status: int, reason: str, url: str, target: str, canonical: str) -> DownloadError:
    """The error for a final non-200 answer to an archive GET."""
    text = f"{status} {printable(reason)}".strip()
    return DownloadError(
        f"HTTP {text} for {describe(url, canonical)}",
        url=url,
        hint=(
            "check that the mirror holds this file"
            if target != canonical
            else "the artifact may be gone upstream; try `pylock lock --upgrade`"
        ),
    )


def untrusted(url: str, canonical: str, detail: str) -> DownloadError:
    """The error for a TLS certificate that does not verify."""
    return DownloadError(
        f"TLS certificate of {describe(url, canonical)} not trusted: {printable(detail)}",
        url=url,
        hint="set SSL_CERT_FILE to a CA bundle that includes your proxy's or "
        "mirror's certificate authority",
    )


# -- server text ---------------------------------------------------------------------


def printable(text: str) -> str:
    """Server-chosen text made safe to print: one line, short, no terminal escapes.

    >>> printable("Not\\x1b[31m Found\\n")
    'Not?[31m Found'
    """
    text = " ".join(text.split())
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON] + "..."
    return "".join(c if c.isprintable() else "?" for c in text)


def reason(error: BaseException) -> str:
    """An exception as one printable line, its type first, with secrets in URLs hidden."""
    from pylock.urls import redact

    text = redact(printable(str(error)))
    name = type(error).__name__
    if isinstance(error, TimeoutError) and "timeout" not in (text + name).lower():
        name += " (timed out)"
    return f"{name}: {text}" if text else name


# -- sizes and hashes ----------------------------------------------------------------


def mismatch(url: str, canonical: str, expected: str, actual: str, what: str) -> HashMismatchError:
    """The error for a wrong sha256 or size."""
    error = HashMismatchError(url=url, expected=expected, actual=actual, what=what)
    if url != canonical:
        error.message = (
            f"{what} mismatch for {describe(url, canonical)}: expected {expected}, got {actual}"
        )
        error.args = (error.message,)
    return error


def bound(url: str, canonical: str, size: int | None, length: int | None, cap: int) -> int:
    """How many bytes a body may have: the lock's size, else Content-Length, else ``cap``.

    Raises at once when the two sizes disagree or an unlocked Content-Length is past ``cap``.
    """
    if size is not None and length is not None and length != size:
        raise mismatch(url, canonical, str(size), str(length), "size")
    limit = size if size is not None else length
    if limit is None:
        return cap
    if size is None and limit > cap:
        raise too_large(url, canonical, None, None, limit, cap)
    return limit


def too_large(
    url: str, canonical: str, size: int | None, length: int | None, got: int, cap: int
) -> DownloadError:
    """The error for a body past its bound: the lock's size, Content-Length, or the cap.

    ``got`` is how many bytes arrived, or the announced ``Content-Length``.
    """
    if size is not None:
        return mismatch(url, canonical, str(size), f"more than {size}", "size")
    where = describe(url, canonical)
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


def truncated(received: int, length: int | None, size: int | None) -> Retryable | None:
    """A :class:`Retryable` when the body ended before its stated length."""
    expected = length if length is not None else size
    if expected is not None and received < expected:
        return Retryable(f"truncated body: received {received} of {expected} bytes")
    return None


def check(
    url: str, canonical: str, actual: str, received: int, sha256: str | None, size: int | None
) -> tuple[str, int]:
    """(sha256, size) of a complete body, once both match what the lock says."""
    if size is not None and received != size:
        raise mismatch(url, canonical, str(size), str(received), "size")
    if sha256 is not None and actual != sha256:
        raise mismatch(url, canonical, sha256, actual, "sha256")
    return actual, received


# -- TLS, proxies and credentials ---------------------------------------------------


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context honouring ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
    import contextlib
    import ssl

    cafile = settings.ssl_cert_file
    capath = settings.ssl_cert_dir
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as error:
        raise PylockError(
            f"cannot load CA certificates from SSL_CERT_FILE={cafile or ''} "
            f"SSL_CERT_DIR={capath or ''}: {error}",
            hint="point SSL_CERT_FILE at a PEM bundle, or unset it",
        ) from None
    if cafile is None and capath is None and not context.get_ca_certs():
        # Some Pythons (python.org macOS builds) ship with an empty default store.
        with contextlib.suppress(ImportError, OSError):
            import certifi  # type: ignore[import-not-found,unused-ignore]

            context.load_verify_locations(cafile=certifi.where())
    return context


# -- proxies and credentials ---------------------------------------------------------


def proxy_for(url: str, settings: Settings) -> str | None:
    """The proxy for ``url`` from ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, or None.

    >>> from pylock.settings import Settings
    >>> s = Settings.from_environ({"HTTPS_PROXY": "p:3128", "NO_PROXY": ".b.example"})
    >>> proxy_for("https://a.example/x", s), proxy_for("https://c.b.example/x", s)
    ('http://p:3128', None)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        proxy = settings.https_proxy or settings.all_proxy
    elif scheme == "http":
        proxy = settings.http_proxy or settings.all_proxy
    else:
        return None
    if not proxy:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    if bypassed(parts.hostname or "", port, settings.no_proxy or ""):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host`` (a suffix match, ``*`` for every host).

    >>> bypassed("a.internal", None, "localhost,.internal"), bypassed("x.org", 80, "x.org:81")
    (True, False)
    """
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if name.startswith("*."):
            name = name[2:]
        if host == name or host.endswith("." + name):
            return True
    return False


def netrc_authorization(url: str, settings: Settings) -> str | None:
    """``Basic`` credentials for the URL's host from netrc (``NETRC``, else ``~/.netrc``)."""
    import netrc

    host = urlsplit(url).hostname
    if not host:
        return None
    path = settings.netrc_path()
    if not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, ValueError, netrc.NetrcParseError):
        # Unreadable, not text (UnicodeDecodeError), or not netrc: as if there were none.
        return None
    if entry is None:
        return None
    login, _, password = entry
    return basic(login, password or "")


def authorization(url: str, given: str | None, settings: Settings) -> str | None:
    """The ``Authorization`` a request to ``url`` carries.

    Credentials in the URL win, then the user's netrc entry for the host, then ``given``.
    """
    parts = urlsplit(url)
    if parts.username is not None:
        return basic(unquote(parts.username), unquote(parts.password or ""))
    return netrc_authorization(url, settings) or given


def basic(user: str, password: str) -> str:
    """A ``Basic`` Authorization value."""
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


# -- writing the body ----------------------------------------------------------------


class Download:
    """One archive GET, as both clients make it: from where, into what, and what it must be."""

    def __init__(
        self,
        target: str,
        canonical: str,
        dest: Path,
        *,
        sha256: str | None,
        size: int | None,
        cap: int,
        task: Task | None,
        feed: DownloadFeed | None,
    ) -> None:
        self.target = target
        self.canonical = canonical
        self.dest = dest
        self.sha256 = sha256
        self.size = size
        self.cap = cap
        self.task = task
        self.feed = feed

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
    ) -> Download:
        """Canonical ``url`` as ``options`` fetch it: rewritten (or refused, see :func:`target`),
        and bounded by their ``max_download_size``."""
        return cls(
            target(url, options.rewrites, offline=options.offline),
            url,
            dest,
            sha256=sha256,
            size=size,
            cap=options.max_download_size,
            task=task,
            feed=feed,
        )

    def body(
        self, url: str, status: int, reason: str, headers: Mapping[str, str], length: int | None
    ) -> Body:
        """The body of one attempt's response from ``url``, if its status says it has one.

        A 5xx, 408 or 429 raises :class:`Retryable`; any other status but 200 fails for good.
        """
        raise_for_transient(status, headers)
        if status != 200:
            raise http_error(status, reason, url, self.target, self.canonical)
        return Body(self, url, length)


class Body:
    """One attempt's body as it arrives, for both clients' chunk loops: bounded (see
    :func:`bound`), hashed, written to ``dest`` (and told to ``feed``), counted on ``task``."""

    def __init__(self, download: Download, url: str, length: int | None) -> None:
        self.download = download
        self.url = url
        self.length = length
        self.limit = bound(url, download.canonical, download.size, length, download.cap)
        self.digest = hashlib.sha256()
        self.received = 0
        self.advanced = 0

    def open(self) -> BinaryIO:
        """Create ``dest`` for this attempt (see :func:`start`)."""
        return start(self.download.dest, self.download.feed)

    def add(self, writer: BinaryIO, chunk: bytes) -> None:
        """Take one chunk; past the limit raises at once, before anything is written."""
        download = self.download
        self.received += len(chunk)
        if self.received > self.limit:
            raise too_large(
                self.url,
                download.canonical,
                download.size,
                self.length,
                self.received,
                download.cap,
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
            self.url, download.canonical, actual, self.received, download.sha256, download.size
        )


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
        with source.open("rb") as reader:
            info = os.fstat(reader.fileno())
            if size is None and stat.S_ISREG(info.st_mode) and info.st_size > limit:
                # A regular file states its size: no need to read it to refuse it.
                raise too_large(target, canonical, None, None, info.st_size, cap)
            with start(dest, feed) as writer:
                # At most one byte past the bound: /dev/zero or a FIFO never ends.
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
            hint="check that the mirror directory holds this file",
        ) from None
    except OSError as error:
        raise DownloadError(
            f"cannot read {describe(target, canonical)}: {error}", url=target
        ) from None
    return check(target, canonical, digest.hexdigest(), received, sha256, size)
