"""The HTTP client: streaming and hashing downloads, retries, redirects, proxies, file:// too.

It knows nothing of the archive cache; :mod:`pylock.sync.archives` decides what to fetch.

aiohttp (and asyncio) are imported inside the functions that use them: a sync whose
archives are all cached never pays for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import attrs

from pylock import __version__
from pylock.errors import DownloadError, RefusedUrlError
from pylock.net import policy
from pylock.net.options import FetchOptions as FetchOptions
from pylock.net.options import Timeouts as Timeouts
from pylock.net.policy import CHUNK_SIZE, OFFLINE_HINT, Retryable
from pylock.net.tls import ssl_context
from pylock.progress import Task, human_size
from pylock.settings import DEFAULT_JOBS, Settings
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    import aiohttp

    from pylock.net.stream import DownloadFeed

#: Metadata bodies larger than this are refused rather than held in memory.
MAX_METADATA_BYTES = 256 * 1024 * 1024
_T = TypeVar("_T")


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
    #: The reason phrase (``Unauthorized``), as the server sent it.
    reason: str = ""


def tcp_connector(settings: Settings) -> aiohttp.TCPConnector:
    """The connector of every pylock HTTP session: pylock's TLS trust, no leaked sockets."""
    import sys

    import aiohttp

    # A response left unread (refused, oversized) closes its TLS connection, and before
    # CPython 3.12.8 (3.13.1) asyncio can leave such a close hanging on the peer: aiohttp
    # then aborts those transports when the session closes (it warns if asked needlessly).
    needs_cleanup = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
    return aiohttp.TCPConnector(ssl=ssl_context(settings), enable_cleanup_closed=needs_cleanup)


def client_session(settings: Settings, *, connect: float, read: float) -> aiohttp.ClientSession:
    """An aiohttp session with pylock's connector, timeouts and User-Agent.

    Proxies and netrc come from the settings, through net/policy.py, as on the http.client
    path: aiohttp reads no environment of its own (``trust_env=False``).
    """
    import aiohttp

    return aiohttp.ClientSession(
        connector=tcp_connector(settings),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=read
        ),
        trust_env=False,
        headers={"User-Agent": f"pylock/{__version__}"},
    )


class Fetcher(policy.Client, policy.SessionOwner):
    """One HTTP session with pylock's rules: rewrites, refusals, redirects, retries.

    Use it as an async context manager; it owns one aiohttp session.
    """

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use so that offline and file:// work never import aiohttp.
        if self._session is None:
            timeouts = self.options.timeouts
            self._session = client_session(
                self._settings, connect=timeouts.connect, read=timeouts.read
            )
        return self._session

    def target(self, url: str) -> str:
        """``url`` rewritten, after checking that pylock may fetch it."""
        return policy.target(url, self.options.rewrites, offline=self.options.offline)

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
            lambda: self._get_once(target, url, headers or {}),
            target,
            url,
            label=target,  # the URL asked; the final error adds the lock's, once
        )

    async def _get_file(self, target: str) -> HttpResponse:
        import asyncio

        from pylock.ownfiles import RefusedFileError, read_own_file

        path = policy.file_path(target)
        try:
            # Bounded, and regular files only: a pipe would block and /dev/zero never end.
            body = await asyncio.to_thread(
                read_own_file, path, MAX_METADATA_BYTES, follow_symlinks=True
            )
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return HttpResponse(status=404, headers={}, body=b"", url=target)
        except RefusedFileError as error:
            if path.is_dir():
                return HttpResponse(status=404, headers={}, body=b"", url=target)
            raise DownloadError(
                f"cannot read {target}: {error}",
                url=target,
                hint="a listing must be a regular file of at most "
                f"{human_size(MAX_METADATA_BYTES)}",
            ) from None
        except OSError as error:
            if path.is_dir():
                # Windows opens no directory as a file: PermissionError, not IsADirectory.
                return HttpResponse(status=404, headers={}, body=b"", url=target)
            raise DownloadError(f"cannot read {target}: {error}", url=target) from None
        return HttpResponse(status=200, headers={}, body=body, url=target)

    async def _get_once(
        self, target: str, canonical: str, headers: Mapping[str, str]
    ) -> HttpResponse:
        response, url = await self._open(target, canonical, headers)
        with policy.asking(url):
            async with response:
                # 429 goes back to the caller: GitHub's rate limits need its own message.
                if response.status >= 500:
                    via = policy.answering_proxy(url, self._settings)
                    retry_after = policy.retry_after(response.headers)
                    raise Retryable(f"HTTP {response.status}", retry_after, via=via)
                if response.content_length and response.content_length > MAX_METADATA_BYTES:
                    raise DownloadError(
                        f"response from {policy.describe(url, canonical, target)} is too large "
                        f"({human_size(response.content_length)})",
                        url=url,
                    )
                body = await self._read_body(response, url, canonical, target)
                return HttpResponse(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                    url=url,
                    reason=policy.printable(response.reason or ""),
                )

    async def _read_body(
        self, response: aiohttp.ClientResponse, url: str, canonical: str, target: str
    ) -> bytes:
        """The whole body, bounded, at the pace archive downloads must keep (else retried)."""
        import aiohttp

        timeouts = self.options.timeouts
        # A body that drips a byte now and then never trips the idle timeout.
        pace = policy.Pace(timeouts.slow_bytes, timeouts.slow_window)
        chunks = bytearray()
        try:
            async for chunk in body_chunks(response, timeouts.read):
                pace.add(len(chunk))
                chunks += chunk
                if len(chunks) > MAX_METADATA_BYTES:
                    where = policy.describe(url, canonical, target)
                    raise DownloadError(
                        f"response from {where} is too large",
                        url=url,
                    )
        except (TimeoutError, aiohttp.ClientError) as error:
            raise Retryable(policy.reason(error)) from None
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
        download = self.plan(url, dest, sha256=sha256, size=size, task=task, feed=feed)
        if urlsplit(download.target).scheme == "file":
            import asyncio

            return await asyncio.to_thread(policy.copy_file, download)
        return await self._with_retries(
            lambda: self._download_once(download),
            download.target,
            url,
            label=filename_from_url(url),
        )

    async def _download_once(self, download: policy.Download) -> tuple[str, int]:
        import aiohttp

        # Compressed transfer encodings would change the bytes that get hashed. A server
        # may still label the archive itself "Content-Encoding: gzip" (S3 metadata, an
        # add_header): the file is what it serves, so it is taken as raw bytes, as the
        # http.client path does, and never decoded.
        headers = {"Accept-Encoding": "identity"}
        response, url = await self._open(download.target, download.canonical, headers, raw=True)
        with policy.asking(url):
            async with response:
                body = download.body(
                    url,
                    response.status,
                    response.reason or "",
                    response.headers,
                    response.content_length,
                    via=policy.answering_proxy(url, self._settings),
                )
                try:
                    with body.open() as writer:
                        async for chunk in body_chunks(response, self.options.timeouts.read):
                            body.add(writer, chunk)
                except (TimeoutError, aiohttp.ClientError) as error:
                    body.rewind()
                    # aiohttp reports an early end as a payload error: said as the other
                    # path says it.
                    early = isinstance(error, aiohttp.ClientPayloadError)
                    short = body.truncated() if early else None
                    raise (short or Retryable(policy.reason(error))) from None
                return body.result()

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

        attempts = policy.Attempts(
            target, canonical, self.options, label=label, settings=self._settings
        )
        while True:
            try:
                return await attempt()
            except Retryable as error:
                delay = attempts.failed(error, self.reporter)
            await asyncio.sleep(delay)

    async def _open(
        self, target: str, canonical: str, headers: Mapping[str, str], *, raw: bool = False
    ) -> tuple[aiohttp.ClientResponse, str]:
        """Send a GET, following redirects by hand so that every hop is checked; the
        response, and the URL that answered it as the http.client path names it (the
        response's own has its host in IDNA and its path percent-encoded).

        ``raw``: the body as sent, never decoded (an archive download).
        """
        import asyncio

        import aiohttp
        from yarl import URL

        session = self._client()
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        rest = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        hops = policy.Hops(target, canonical, self.options.rewrites, self._settings, given)
        while True:
            current = hops.current
            sent = dict(rest)
            # The URL's own credentials, else netrc, else the caller's header: the same
            # choice as on the http.client path. The URL goes out without its userinfo.
            authorization = hops.authorization()
            if authorization is not None:
                sent["Authorization"] = authorization
            proxy = policy.proxy_of(current, self._settings)
            via = aiohttp_proxy(None if proxy is None else proxy.url, current)
            sent.update(via.request_headers)
            timeouts = self.options.timeouts
            # Its host in IDNA, as the http.client path sends it: yarl takes an encoded
            # URL's host as it is, and sent a name beyond ASCII as raw UTF-8.
            sent_url = URL(policy.wire_url(current), encoded=True)
            # A Retryable failure is this hop's, after any redirects (see policy.asking).
            with policy.asking(current):
                try:
                    # Connecting and the answer's head, together, as on the http.client path:
                    # a server that drips its headers a byte at a time never lets sock_read
                    # expire.
                    async with asyncio.timeout(timeouts.connect + timeouts.read):
                        response = await session.get(
                            sent_url,
                            headers=sent,
                            allow_redirects=False,
                            proxy=via.url,
                            proxy_headers=via.tunnel_headers,
                            auto_decompress=not raw,
                        )
                except TimeoutError as error:
                    if str(error):
                        raise Retryable(policy.reason(error)) from None
                    raise Retryable(
                        "TimeoutError: the response's status line and headers came too slowly"
                    ) from None
                except aiohttp.ClientConnectorCertificateError as error:
                    code = getattr(error.certificate_error, "verify_code", None)
                    raise policy.untrusted(current, canonical, str(error), code) from None
                except aiohttp.InvalidURL as error:
                    raise DownloadError(
                        f"invalid URL {current}: {policy.reason(error)}", url=current
                    ) from None
                except aiohttp.ClientHttpProxyError as error:
                    raise policy.proxy_answered(
                        current, canonical, proxy, error.status, error.message
                    ) from None
                except aiohttp.ClientProxyConnectionError as error:
                    raise Retryable(policy.reason(error), proxy=proxy) from None
                except aiohttp.ClientError as error:
                    if policy.speaks_no_tls(error):
                        raise policy.no_tls(current, canonical) from None
                    if policy.refuses_head(error):
                        raise policy.head_too_large(current, canonical, target) from None
                    raise Retryable(policy.reason(error), via=proxy) from None
            try:
                location = hops.location(response.status, response.headers.getall("Location", []))
            except BaseException:
                response.release()
                raise
            if location is None:
                return response, current
            response.release()
            hops.follow(location)


async def body_chunks(response: aiohttp.ClientResponse, idle: float) -> AsyncIterator[bytes]:
    """``response``'s body, a chunk at a time, each within ``idle`` seconds.

    aiohttp's read timeout restarts with every byte, also one that is no part of the body:
    a chunked body's framing (a chunk extension that never ends) kept a download going for
    ever, its bytes counted by nothing.
    """
    import asyncio

    chunks = response.content.iter_chunked(CHUNK_SIZE).__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise TimeoutError(f"no byte of the body came in {idle:g} s") from None
        yield chunk


@attrs.frozen
class AiohttpProxy:
    """A proxy as aiohttp takes it for one URL, and where its credentials go."""

    #: The proxy's URL, credentials left out; ``None`` for a direct connection.
    url: str | None = None
    #: aiohttp's ``proxy_headers``, which it sends on the ``CONNECT`` of an https URL only.
    tunnel_headers: dict[str, str] | None = None
    #: Headers for the request itself, which goes to the proxy for a plain http URL.
    request_headers: dict[str, str] = attrs.field(factory=dict)


def aiohttp_proxy(proxy: str | None, url: str) -> AiohttpProxy:
    """``proxy`` (a URL, maybe with credentials) as aiohttp takes it for fetching ``url``.

    The credentials go as ``Proxy-Authorization`` to the proxy alone, as on the
    http.client path: on the ``CONNECT`` that opens an https URL's tunnel (never inside
    it, to the server), and on the request itself for a plain http URL, which the proxy
    is asked for (aiohttp sends ``proxy_headers`` on ``CONNECT`` only, so a plain http
    download went without them).

    >>> aiohttp_proxy("http://u:p%40ss@proxy:3128", "http://mirror.lan/x").request_headers
    {'Proxy-Authorization': 'Basic dTpwQHNz'}
    >>> https = aiohttp_proxy("http://u:p%40ss@proxy:3128", "https://h/x")
    >>> https.url, https.tunnel_headers, https.request_headers
    ('http://proxy:3128', {'Proxy-Authorization': 'Basic dTpwQHNz'}, {})
    """
    if proxy is None:
        return AiohttpProxy()
    header = policy.proxy_authorization(proxy)
    if not header:
        return AiohttpProxy(proxy)
    bare = policy.without_userinfo(proxy)
    if policy.scheme_of(url) == "https":
        return AiohttpProxy(bare, tunnel_headers=header)
    return AiohttpProxy(bare, request_headers=header)


__all__ = [
    "DEFAULT_JOBS",
    "OFFLINE_HINT",
    "AiohttpProxy",
    "FetchOptions",
    "Fetcher",
    "HttpResponse",
    "RefusedUrlError",
    "Timeouts",
    "aiohttp_proxy",
    "ssl_context",
]
