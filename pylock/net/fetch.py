"""The HTTP client: streaming and hashing downloads, retries, redirects, proxies, file:// too.

It knows nothing of the archive cache; :mod:`pylock.sync.archives` decides what to fetch.

aiohttp (and asyncio) are imported inside the functions that use them: a sync whose
archives are all cached never pays for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import stat
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TypeVar
from urllib.parse import unquote, urlsplit

import attrs

from pylock import __version__
from pylock.errors import (
    DownloadError,
    DownloadTooLargeError,
    HashMismatchError,
    OfflineError,
    PylockError,
    RefusedUrlError,
)
from pylock.progress import NullReporter, Reporter, Task, human_size
from pylock.settings import DEFAULT_JOBS, DEFAULT_MAX_DOWNLOAD_SIZE, Settings
from pylock.urls import UrlRewrites, filename_from_url

if TYPE_CHECKING:
    import ssl

    import aiohttp

    from pylock.net.registry import RemoteCache
    from pylock.net.stream import DownloadFeed

#: Bytes read and hashed per step; large enough that per-chunk overhead does not matter.
CHUNK_SIZE = 256 * 1024
MAX_REDIRECTS = 10
#: Metadata bodies larger than this are refused rather than held in memory.
MAX_METADATA_BYTES = 256 * 1024 * 1024
_MAX_BACKOFF = 30.0
_T = TypeVar("_T")
#: What to do about a download refused offline: fill the cache while online.
OFFLINE_HINT = (
    "run `pylock fetch` with network access first (same PYLOCK_CACHE_DIR) to fill the cache"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({408, 429})


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts, in seconds."""

    #: To establish a connection.
    connect: float = 30.0
    #: Without receiving a single byte, before a transfer counts as stalled and is retried.
    read: float = 60.0


@attrs.frozen(kw_only=True)
class FetchOptions:
    """How to fetch: rewrites, offline mode, parallelism, retries."""

    #: URL rewrites (mirrors) applied to every outgoing URL.
    rewrites: UrlRewrites = attrs.field(factory=UrlRewrites)
    #: Never open a connection; a cache miss is an error.
    offline: bool = False
    #: How many downloads run at once.
    jobs: int = DEFAULT_JOBS
    #: Retries after the first attempt, for transient failures (resets, timeouts, 5xx).
    retries: int = 4
    #: First backoff delay in seconds; it doubles per retry, with jitter.
    backoff: float = 0.5
    #: Network timeouts.
    timeouts: Timeouts = Timeouts()
    #: Byte cap for a download whose size nothing states (``PYLOCK_MAX_DOWNLOAD_SIZE``).
    max_download_size: int = DEFAULT_MAX_DOWNLOAD_SIZE
    #: TLS trust (``SSL_CERT_FILE``, ``SSL_CERT_DIR``) and the netrc file (``NETRC``);
    #: ``None``: this process's environment.
    settings: Settings | None = attrs.field(default=None, eq=False)
    #: The fleet's registry (``--remote-cache``), tried before the origin; ``None``: none.
    remote: RemoteCache | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pairs: Sequence[str] = (),
        mirror: str | None = None,
        pypy_mirror: str | None = None,
        offline: bool = False,
        jobs: int | None = None,
        remote: RemoteCache | None = None,
    ) -> FetchOptions:
        """Options from flags, falling back to what the environment said.

        ``pairs``, ``mirror`` and ``pypy_mirror`` are ``--rewrite``, ``--mirror`` and
        ``--pypy-mirror``; ``offline`` and ``jobs`` are ``--offline`` and ``--jobs``.
        """
        return cls(
            rewrites=UrlRewrites.from_sources(
                settings.url_rewrites,
                pairs,
                mirror or settings.mirror,
                pypy_mirror or settings.pypy_mirror,
            ),
            offline=offline or settings.offline,
            jobs=settings.jobs(jobs),
            max_download_size=settings.max_download_bytes(),
            settings=settings,
            remote=remote,
        )


@attrs.frozen(kw_only=True)
class HttpResponse:
    """A complete (small) HTTP response, for metadata."""

    #: HTTP status; 304 and 4xx are passed through, redirects are followed.
    status: int
    #: Response headers, with lower-case names.
    headers: Mapping[str, str]
    #: The body.
    body: bytes
    #: The URL that answered, after rewrites and redirects.
    url: str


class _Retryable(Exception):
    """A transient failure: worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _describe(url: str, canonical: str) -> str:
    return url if url == canonical else f"{url} (rewritten from {canonical})"


def _mismatch(url: str, canonical: str, expected: str, actual: str, what: str) -> HashMismatchError:
    error = HashMismatchError(url=url, expected=expected, actual=actual, what=what)
    if url != canonical:
        error.message = (
            f"{what} mismatch for {_describe(url, canonical)}: expected {expected}, got {actual}"
        )
        error.args = (error.message,)
    return error


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), _MAX_BACKOFF))
    except ValueError:
        return None  # an HTTP date; the usual backoff will do


def tcp_connector(settings: Settings) -> aiohttp.TCPConnector:
    """The connector of every pylock HTTP session: pylock's TLS trust, no leaked sockets."""
    import sys

    import aiohttp

    # A response left unread (refused, oversized) closes its TLS connection, and before
    # CPython 3.12.8 (3.13.1) asyncio can leave such a close hanging on the peer: aiohttp
    # then aborts those transports when the session closes (it warns if asked needlessly).
    needs_cleanup = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
    return aiohttp.TCPConnector(ssl=ssl_context(settings), enable_cleanup_closed=needs_cleanup)


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context honouring ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
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


def _file_path(url: str) -> Path:
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"unsupported file URL with a host: {url}", url=url)
    return Path(url2pathname(unquote(parts.path)))


class Fetcher:
    """One HTTP session with pylock's rules: rewrites, refusals, redirects, retries.

    Use it as an async context manager; it owns one aiohttp session.
    """

    def __init__(
        self,
        options: FetchOptions,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.options = options
        self.reporter = reporter if reporter is not None else NullReporter()
        # TLS trust and the netrc file; a caller that passes none gets this process's.
        self._settings = settings or options.settings or Settings.current()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
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

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use so that offline and file:// work never import aiohttp.
        if self._session is None:
            import aiohttp

            timeouts = self.options.timeouts
            self._session = aiohttp.ClientSession(
                connector=tcp_connector(self._settings),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.connect,
                    sock_connect=timeouts.connect,
                    sock_read=timeouts.read,
                ),
                # Proxies (HTTP(S)_PROXY, NO_PROXY) and netrc credentials.
                trust_env=True,
                headers={"User-Agent": f"pylock/{__version__}"},
            )
        return self._session

    def target(self, url: str) -> str:
        """``url`` rewritten, after checking that pylock may fetch it."""
        if self.options.offline:
            raise OfflineError(
                f"cannot fetch {url}: pylock is offline (--offline or PYLOCK_OFFLINE)",
                url=url,
                hint=OFFLINE_HINT,
            )
        target = self.options.rewrites.apply(url)
        self.options.rewrites.check(target, canonical=url)
        return target

    # -- metadata ----------------------------------------------------------------------

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET a small document, e.g. an upstream listing.

        Any status but a redirect or 5xx is returned (304 and 4xx included); transient
        failures are retried; a ``file://`` target answers 200 or 404.
        """
        target = self.target(url)
        if urlsplit(target).scheme == "file":
            return await self._get_file(target)
        return await self._with_retries(
            lambda: self._get_once(target, url, headers or {}), target, url, label=url
        )

    async def _get_file(self, target: str) -> HttpResponse:
        import asyncio

        path = _file_path(target)
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return HttpResponse(status=404, headers={}, body=b"", url=target)
        except OSError as error:
            raise DownloadError(f"cannot read {target}: {error}", url=target) from None
        return HttpResponse(status=200, headers={}, body=body, url=target)

    async def _get_once(
        self, target: str, canonical: str, headers: Mapping[str, str]
    ) -> HttpResponse:
        response = await self._open(target, canonical, headers)
        async with response:
            # 429 goes back to the caller: GitHub's rate limits need its own message.
            if response.status >= 500:
                raise _Retryable(f"HTTP {response.status}", _retry_after(response.headers))
            if response.content_length and response.content_length > MAX_METADATA_BYTES:
                raise DownloadError(
                    f"response from {_describe(str(response.url), canonical)} is too large "
                    f"({human_size(response.content_length)})",
                    url=str(response.url),
                )
            body = await self._read_body(response, canonical)
            return HttpResponse(
                status=response.status,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=body,
                url=str(response.url),
            )

    async def _read_body(self, response: aiohttp.ClientResponse, canonical: str) -> bytes:

        import aiohttp

        chunks = bytearray()
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                chunks += chunk
                if len(chunks) > MAX_METADATA_BYTES:
                    raise DownloadError(
                        f"response from {_describe(str(response.url), canonical)} is too large",
                        url=str(response.url),
                    )
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _Retryable(_reason(error)) from None
        return bytes(chunks)

    # -- downloads -------------------------------------------------------------------

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str | None,
        size: int | None,
        task: Task | None = None,
        feed: DownloadFeed | None = None,
    ) -> tuple[str, int]:
        """Stream ``url`` (canonical; rewritten here) into ``dest``; returns (sha256, size).

        Transient failures are retried from the start. A wrong hash or size, a 4xx,
        or a refused URL fails at once. ``dest`` may hold a partial file on failure.
        Nothing past ``size``, else ``Content-Length``, else the options'
        ``max_download_size`` is ever written.
        """
        target = self.target(url)
        if urlsplit(target).scheme == "file":
            import asyncio

            return await asyncio.to_thread(
                self._copy_file, target, url, dest, sha256, size, task, feed
            )
        return await self._with_retries(
            lambda: self._download_once(target, url, dest, sha256, size, task, feed),
            target,
            url,
            label=filename_from_url(url),
        )

    def _copy_file(
        self,
        target: str,
        canonical: str,
        dest: Path,
        sha256: str | None,
        size: int | None,
        task: Task | None,
        feed: DownloadFeed | None,
    ) -> tuple[str, int]:
        source = _file_path(target)
        digest = hashlib.sha256()
        received = 0
        limit = size if size is not None else self.options.max_download_size
        try:
            with source.open("rb") as reader:
                info = os.fstat(reader.fileno())
                if size is None and stat.S_ISREG(info.st_mode) and info.st_size > limit:
                    # A regular file states its size: no need to read it to refuse it.
                    raise self._too_large(target, canonical, None, None, info.st_size)
                with _create(dest) as writer:
                    if feed is not None:
                        feed.begin(dest)
                    # At most one byte past the bound: /dev/zero or a FIFO never ends.
                    while chunk := reader.read(min(CHUNK_SIZE, limit + 1 - received)):
                        received += len(chunk)
                        if received > limit:
                            raise self._too_large(target, canonical, size, None, received)
                        digest.update(chunk)
                        _write(writer, chunk, dest, feed, received)
                        if task is not None:
                            task.advance(len(chunk))
        except FileNotFoundError:
            raise DownloadError(
                f"{_describe(target, canonical)} does not exist",
                url=target,
                hint="check that the mirror directory holds this file",
            ) from None
        except OSError as error:
            raise DownloadError(
                f"cannot read {_describe(target, canonical)}: {error}", url=target
            ) from None
        return self._check(target, canonical, digest.hexdigest(), received, sha256, size)

    async def _download_once(
        self,
        target: str,
        canonical: str,
        dest: Path,
        sha256: str | None,
        size: int | None,
        task: Task | None,
        feed: DownloadFeed | None,
    ) -> tuple[str, int]:
        import aiohttp

        # Compressed transfer encodings would change the bytes that get hashed.
        response = await self._open(target, canonical, {"Accept-Encoding": "identity"})
        advanced = 0
        async with response:
            where = _describe(str(response.url), canonical)
            self._raise_for_transient(response.status, response.headers)
            if response.status != 200:
                status = f"{response.status} {_printable(response.reason or '')}".strip()
                raise DownloadError(
                    f"HTTP {status} for {where}",
                    url=str(response.url),
                    hint=(
                        "check that the mirror holds this file"
                        if target != canonical
                        else "the artifact may be gone upstream; try `pylock lock --upgrade`"
                    ),
                )
            length = response.content_length
            if size is not None and length is not None and length != size:
                raise _mismatch(str(response.url), canonical, str(size), str(length), "size")
            # The lock's size, else Content-Length, else the cap bounds what is written.
            limit = size if size is not None else length
            if limit is None:
                limit = self.options.max_download_size
            elif size is None and limit > self.options.max_download_size:
                raise self._too_large(str(response.url), canonical, None, None, limit)
            digest = hashlib.sha256()
            received = 0
            try:
                with _create(dest) as writer:
                    if feed is not None:
                        feed.begin(dest)
                    async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                        received += len(chunk)
                        if received > limit:
                            raise self._too_large(
                                str(response.url), canonical, size, length, received
                            )
                        digest.update(chunk)
                        _write(writer, chunk, dest, feed, received)
                        if task is not None:
                            task.advance(len(chunk))
                            advanced += len(chunk)
            except (TimeoutError, aiohttp.ClientError) as error:
                _rewind(task, advanced)
                raise _Retryable(_reason(error)) from None
            truncated = (length is not None and received < length) or (
                length is None and size is not None and received < size
            )
            if truncated:
                _rewind(task, advanced)
                expected = length if length is not None else size
                raise _Retryable(f"truncated body: received {received} of {expected} bytes")
            return self._check(
                str(response.url), canonical, digest.hexdigest(), received, sha256, size
            )

    def _too_large(
        self, url: str, canonical: str, size: int | None, length: int | None, got: int
    ) -> DownloadError:
        """The error for a body past its bound: the lock's size, Content-Length, or the cap.

        ``got`` is how many bytes arrived, or the announced ``Content-Length``.
        """
        if size is not None:
            return _mismatch(url, canonical, str(size), f"more than {size}", "size")
        where = _describe(url, canonical)
        if length is not None and got > length:
            return DownloadTooLargeError(
                f"download of {where} stopped: the body is longer than its "
                f"Content-Length ({length} bytes)",
                url=url,
                limit=length,
                hint="the server or a proxy on the way sends a broken response",
            )
        cap = self.options.max_download_size
        return DownloadTooLargeError(
            f"download of {where} stopped: it is larger than PYLOCK_MAX_DOWNLOAD_SIZE "
            f"({cap} bytes, {human_size(cap)}), and nothing states its size",
            url=url,
            limit=cap,
            hint="if the archive really is this large, raise PYLOCK_MAX_DOWNLOAD_SIZE "
            '(e.g. "4G"); otherwise the server sends a wrong or endless body',
        )

    @staticmethod
    def _check(
        url: str, canonical: str, actual: str, received: int, sha256: str | None, size: int | None
    ) -> tuple[str, int]:
        if size is not None and received != size:
            raise _mismatch(url, canonical, str(size), str(received), "size")
        if sha256 is not None and actual != sha256:
            raise _mismatch(url, canonical, sha256, actual, "sha256")
        return actual, received

    # -- plumbing --------------------------------------------------------------------

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[_T]],
        target: str,
        canonical: str,
        *,
        label: str,
    ) -> _T:
        import asyncio

        failures = 0
        while True:
            try:
                return await attempt()
            except _Retryable as error:
                failures += 1
                if failures > self.options.retries:
                    raise DownloadError(
                        f"cannot download {_describe(target, canonical)}: {error.reason} "
                        f"(gave up after {failures} attempts)",
                        url=target,
                        hint="check the network, proxy settings (HTTPS_PROXY) or the mirror",
                    ) from None
                delay = error.retry_after
                if delay is None:
                    delay = min(self.options.backoff * 2 ** (failures - 1), _MAX_BACKOFF)
                    delay *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                self.reporter.detail(
                    f"{label}: {error.reason}; retrying in {delay:.1f}s "
                    f"({failures}/{self.options.retries})"
                )
                await asyncio.sleep(delay)

    async def _open(
        self, target: str, canonical: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """Send a GET, following redirects by hand so that every hop is checked."""

        import aiohttp
        from yarl import URL

        session = self._client()
        current = target
        sent = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            host = urlsplit(current).hostname
            if _has_authorization(sent) and _netrc_covers(host, self._settings):
                # aiohttp refuses a request with both; the user's netrc entry wins.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            try:
                response = await session.get(
                    URL(current, encoded=True), headers=sent, allow_redirects=False
                )
            except aiohttp.ClientConnectorCertificateError as error:
                raise DownloadError(
                    f"TLS certificate of {_describe(current, canonical)} not trusted: {error}",
                    url=current,
                    hint="set SSL_CERT_FILE to a CA bundle that includes your proxy's or "
                    "mirror's certificate authority",
                ) from None
            except aiohttp.InvalidURL as error:
                raise DownloadError(f"invalid URL {current}: {error}", url=current) from None
            except (TimeoutError, aiohttp.ClientError) as error:
                raise _Retryable(_reason(error)) from None
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            response.release()
            following = self.options.rewrites.apply(str(response.url.join(URL(location))))
            self.options.rewrites.check_redirect(current, following, canonical=canonical)
            if _origin(following) != _origin(current):
                # Credentials meant for one host must not follow a redirect to another.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            current = following
        raise DownloadError(
            f"too many redirects (more than {MAX_REDIRECTS}) for {_describe(target, canonical)}",
            url=target,
        )

    @staticmethod
    def _raise_for_transient(status: int, headers: Mapping[str, str]) -> None:
        if status >= 500 or status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status}", retry_after=_retry_after(headers))


def _has_authorization(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "authorization" for k in headers)


def _netrc_covers(host: str | None, settings: Settings) -> bool:
    import netrc

    if not host:
        return False
    path = settings.netrc_path()
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())


#: An error's own text is cut to this: a hostile server can put megabytes of it there.
_MAX_REASON = 300


def _printable(text: str) -> str:
    """Server-chosen text made safe to print: one line, short, no terminal escapes."""
    text = " ".join(text.split())
    if len(text) > _MAX_REASON:
        text = text[:_MAX_REASON] + "..."
    return "".join(c if c.isprintable() else "?" for c in text)


def _reason(error: BaseException) -> str:
    text = _printable(str(error))
    name = type(error).__name__
    if isinstance(error, TimeoutError) and "timeout" not in (text + name).lower():
        name += " (timed out)"
    return f"{name}: {text}" if text else name


def _rewind(task: Task | None, amount: int) -> None:
    # The next attempt starts from byte 0, so the bar does too.
    if task is not None and amount:
        task.advance(-amount)


def _create(dest: Path) -> BinaryIO:
    try:
        return dest.open("wb")
    except OSError as error:
        raise _cache_write_error(dest, error) from None


def _write(
    handle: BinaryIO, data: bytes, dest: Path, feed: DownloadFeed | None, total: int
) -> None:
    # Only the disk writes: network errors are OSErrors too, and those are retried.
    try:
        handle.write(data)
        if feed is not None:
            # A reader of the file sees only what left Python's buffer.
            handle.flush()
            feed.wrote(total)
    except OSError as error:
        raise _cache_write_error(dest, error) from None


def _cache_write_error(dest: Path, error: OSError) -> PylockError:
    return PylockError(
        f"cannot write to the cache at {dest.parent}: {error}",
        hint="free some space (`pylock cache prune --max-size ...`) or set PYLOCK_CACHE_DIR",
    )


__all__ = [
    "DEFAULT_JOBS",
    "OFFLINE_HINT",
    "FetchOptions",
    "Fetcher",
    "HttpResponse",
    "RefusedUrlError",
    "Timeouts",
    "ssl_context",
]
