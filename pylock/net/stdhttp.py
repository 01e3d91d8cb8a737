"""Plain archive downloads over ``http.client``, blocking, for a worker thread.

Importing aiohttp costs about 0.2-0.3 s (it builds SSL contexts at import); a cold sync of
one archive needs one GET, which ``http.client`` does at the cost of the ``ssl`` module.
Every rule comes from :mod:`pylock.net.policy`, which :class:`pylock.net.fetch.Fetcher`
uses too: URL rewrites and refusals, the ``SSL_CERT_FILE`` context, redirects, retries
with backoff and ``Retry-After``, size bounds and hash checks, proxies and netrc, printable
server text. What this module adds is the transport (``CONNECT`` tunnels for https over a
proxy) and a ``stop`` event, since a thread cannot be cancelled like a task.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from pylock import __version__
from pylock.errors import DownloadError
from pylock.net import policy
from pylock.net.policy import CHUNK_SIZE, MAX_REDIRECTS, Retryable
from pylock.settings import Settings
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    from pylock.net.fetch import FetchOptions
    from pylock.net.stream import DownloadFeed
    from pylock.progress import Reporter, Task


class Cancelled(Exception):
    """The caller's ``stop`` flag was set: the download ended between two chunks."""


class StdDownloader:
    """GETs archives into files with ``http.client``; one instance per sync, any thread."""

    def __init__(
        self,
        options: FetchOptions,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from pylock.progress import NullReporter

        self.options = options
        self.reporter = reporter if reporter is not None else NullReporter()
        self._settings = settings or options.settings or Settings.current()
        self._sleep = sleep
        self._context: ssl.SSLContext | None = None

    def download(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str | None,
        size: int | None,
        task: Task | None = None,
        feed: DownloadFeed | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[str, int]:
        """Stream ``url`` (canonical; rewritten here) into ``dest``; returns (sha256, size).

        The same contract as :meth:`pylock.net.fetch.Fetcher.download`. A thread cannot be
        cancelled like a task: set ``stop`` and the download raises :class:`Cancelled`
        within a chunk (or a read timeout), and sleeps no more between retries.
        """
        download = policy.Download.of(
            url, dest, self.options, sha256=sha256, size=size, task=task, feed=feed
        )
        target = download.target
        scheme = urlsplit(target).scheme
        if scheme == "file":
            return policy.copy_file(download)
        if scheme not in ("http", "https"):
            raise DownloadError(f"unsupported URL scheme in {target}", url=target)
        attempts = policy.Attempts(target, url, self.options, label=filename_from_url(url))
        while True:
            try:
                return self._download_once(download, stop)
            except Retryable as error:
                delay = attempts.failed(error, self.reporter)
            if stop is not None and stop.wait(delay):
                raise Cancelled from None
            if stop is None:
                self._sleep(delay)

    # -- one attempt -------------------------------------------------------------------

    def _download_once(
        self, download: policy.Download, stop: threading.Event | None = None
    ) -> tuple[str, int]:
        connection, response, url = self._open(download.target, download.canonical)
        try:
            body = download.body(
                url,
                response.status,
                response.reason or "",
                dict(response.headers),
                _content_length(response),
            )
            try:
                with body.open() as writer:
                    # read1: what has arrived, up to a chunk; http.client never reads past
                    # Content-Length, so a longer body shows as a short one being complete.
                    while chunk := response.read1(CHUNK_SIZE):
                        if stop is not None and stop.is_set():
                            raise Cancelled
                        body.add(writer, chunk)
            except (OSError, http.client.HTTPException) as error:
                body.rewind()
                raise Retryable(policy.reason(error)) from None
            return body.result()
        finally:
            response.close()
            connection.close()

    def _open(
        self, target: str, canonical: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """GET ``target``, following redirects by hand so that every hop is checked."""
        current = target
        for _ in range(MAX_REDIRECTS + 1):
            authorization = policy.authorization(current, None, self._settings)
            connection, response = self._request(current, canonical, authorization)
            location = response.getheader("Location")
            if response.status not in policy.REDIRECT_STATUSES or not location:
                return connection, response, current
            response.close()
            connection.close()
            current = policy.follow(
                current, urljoin(current, location), self.options.rewrites, canonical=canonical
            )
        raise policy.too_many_redirects(target, canonical)

    def _request(
        self, url: str, canonical: str, authorization: str | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            raise DownloadError(f"invalid URL {url}: no host", url=url)
        try:
            port = parts.port
        except ValueError:
            raise DownloadError(f"invalid URL {url}: bad port", url=url) from None
        https = parts.scheme == "https"
        port = port or (443 if https else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {
            "User-Agent": f"pylock/{__version__}",
            "Accept-Encoding": "identity",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        proxy = policy.proxy_for(url, self._settings)
        timeouts = self.options.timeouts
        connection: http.client.HTTPConnection | None = None
        try:
            if proxy is None:
                if https:
                    connection = http.client.HTTPSConnection(
                        host, port, timeout=timeouts.connect, context=self._ssl()
                    )
                else:
                    connection = http.client.HTTPConnection(host, port, timeout=timeouts.connect)
            else:
                proxy_parts = urlsplit(proxy)
                proxy_headers = {}
                if proxy_parts.username is not None:
                    proxy_headers["Proxy-Authorization"] = policy.basic(
                        unquote(proxy_parts.username), unquote(proxy_parts.password or "")
                    )
                proxy_host = proxy_parts.hostname or ""
                proxy_port = proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
                if https:
                    connection = http.client.HTTPSConnection(
                        proxy_host, proxy_port, timeout=timeouts.connect, context=self._ssl()
                    )
                    connection.set_tunnel(host, port, headers=proxy_headers)
                else:
                    # Plain http goes to the proxy with the absolute URL as the target.
                    connection = http.client.HTTPConnection(
                        proxy_host, proxy_port, timeout=timeouts.connect
                    )
                    path = url.split("#", 1)[0]
                    headers.update(proxy_headers)
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(timeouts.read)
            connection.request("GET", path, headers=headers)
            return connection, connection.getresponse()
        except ssl.SSLCertVerificationError as error:
            _close(connection)
            raise policy.untrusted(url, canonical, str(error.verify_message or error)) from None
        except (OSError, http.client.HTTPException) as error:
            _close(connection)
            raise Retryable(policy.reason(error)) from None
        except BaseException:
            _close(connection)
            raise

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = _shared_context(self._settings)
        return self._context


_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _shared_context(settings: Settings) -> ssl.SSLContext:
    """One TLS context per trust setting, for every downloader of the process.

    Loading the CA store costs tens of milliseconds; a context is safe to share between
    threads once made.
    """
    key = (settings.ssl_cert_file, settings.ssl_cert_dir)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = policy.ssl_context(settings)
        return context


def _close(connection: http.client.HTTPConnection | None) -> None:
    if connection is not None:
        connection.close()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The Content-Length as http.client understood it (None when absent or chunked)."""
    length = response.length
    return length if isinstance(length, int) and length >= 0 else None
