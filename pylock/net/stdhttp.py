"""Plain archive downloads over ``http.client``, blocking, for a worker thread.

Importing aiohttp costs about 0.2-0.3 s (it builds SSL contexts at import); a cold sync of
one archive needs one GET, which ``http.client`` does at the cost of the ``ssl`` module.
This module keeps the rules of :class:`pylock.net.fetch.Fetcher` by calling the same
pieces: URL rewrites and refusals (``UrlRewrites.apply``/``check``/``check_redirect``),
the ``SSL_CERT_FILE`` context, the redirect limit and the credential stripping on a change
of origin, retries with backoff and ``Retry-After``, size bounds and hash checks, and
printable server text. What it adds is the transport: proxies from ``HTTP(S)_PROXY`` and
``NO_PROXY`` (``CONNECT`` tunnels for https), and netrc credentials, which aiohttp's
``trust_env`` provides on the other path.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from pylock import __version__
from pylock.errors import DownloadError
from pylock.net import fetch
from pylock.net.fetch import (
    _MAX_BACKOFF,
    _REDIRECTS,
    CHUNK_SIZE,
    MAX_REDIRECTS,
    Fetcher,
    FetchOptions,
    _create,
    _describe,
    _origin,
    _printable,
    _retry_after,
    _Retryable,
    _rewind,
    _write,
)
from pylock.settings import Settings
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    from pylock.net.stream import DownloadFeed
    from pylock.progress import Reporter, Task


class Cancelled(Exception):
    """The caller's ``stop`` flag was set: the download ended between two chunks."""


class StdDownloader:
    """GETs archives into files with ``http.client``; one instance per sync, any thread.

    The rules come from a :class:`Fetcher` that is never entered (no aiohttp session is
    made): its options, reporter, target checks, size and hash checks.
    """

    def __init__(
        self,
        options: FetchOptions,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings or options.settings or Settings.current()
        self._rules = Fetcher(options, reporter, settings=self._settings)
        # Proxies and NETRC as the settings saw them (the environment is read only there).
        self._variables: Mapping[str, str] = self._settings.environment or {}
        self._sleep = sleep
        self._context: ssl.SSLContext | None = None

    @property
    def options(self) -> FetchOptions:
        return self._rules.options

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

        The same contract as :meth:`Fetcher.download`. A thread cannot be cancelled like
        a task: set ``stop`` and the download raises :class:`Cancelled` within a chunk
        (or a read timeout), and sleeps no more between retries.
        """
        target = self._rules.target(url)
        scheme = urlsplit(target).scheme
        if scheme == "file":
            return self._rules._copy_file(target, url, dest, sha256, size, task, feed)
        if scheme not in ("http", "https"):
            raise DownloadError(f"unsupported URL scheme in {target}", url=target)
        failures = 0
        while True:
            try:
                return self._download_once(target, url, dest, sha256, size, task, feed, stop)
            except _Retryable as error:
                failures += 1
                if failures > self.options.retries:
                    raise DownloadError(
                        f"cannot download {_describe(target, url)}: {error.reason} "
                        f"(gave up after {failures} attempts)",
                        url=target,
                        hint="check the network, proxy settings (HTTPS_PROXY) or the mirror",
                    ) from None
                delay = error.retry_after
                if delay is None:
                    delay = min(self.options.backoff * 2 ** (failures - 1), _MAX_BACKOFF)
                    delay *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                self._rules.reporter.detail(
                    f"{filename_from_url(url)}: {error.reason}; retrying in {delay:.1f}s "
                    f"({failures}/{self.options.retries})"
                )
                if stop is not None and stop.wait(delay):
                    raise Cancelled from None
                if stop is None:
                    self._sleep(delay)

    # -- one attempt -------------------------------------------------------------------

    def _download_once(
        self,
        target: str,
        canonical: str,
        dest: Path,
        sha256: str | None,
        size: int | None,
        task: Task | None,
        feed: DownloadFeed | None,
        stop: threading.Event | None = None,
    ) -> tuple[str, int]:
        connection, response, url = self._open(target, canonical)
        advanced = 0
        try:
            where = _describe(url, canonical)
            if response.status >= 500 or response.status in (408, 429):
                raise _Retryable(f"HTTP {response.status}", _retry_after(dict(response.headers)))
            if response.status != 200:
                status = f"{response.status} {_printable(response.reason or '')}".strip()
                raise DownloadError(
                    f"HTTP {status} for {where}",
                    url=url,
                    hint=(
                        "check that the mirror holds this file"
                        if target != canonical
                        else "the artifact may be gone upstream; try `pylock lock --upgrade`"
                    ),
                )
            length = _content_length(response)
            if size is not None and length is not None and length != size:
                raise fetch._mismatch(url, canonical, str(size), str(length), "size")
            limit = size if size is not None else length
            if limit is None:
                limit = self.options.max_download_size
            elif size is None and limit > self.options.max_download_size:
                raise self._rules._too_large(url, canonical, None, None, limit)
            digest = hashlib.sha256()
            received = 0
            try:
                with _create(dest) as writer:
                    if feed is not None:
                        feed.begin(dest)
                    # read1: what has arrived, up to a chunk; http.client never reads past
                    # Content-Length, so a longer body shows as a short one being complete.
                    while chunk := response.read1(CHUNK_SIZE):
                        if stop is not None and stop.is_set():
                            raise Cancelled
                        received += len(chunk)
                        if received > limit:
                            raise self._rules._too_large(url, canonical, size, length, received)
                        digest.update(chunk)
                        _write(writer, chunk, dest, feed, received)
                        if task is not None:
                            task.advance(len(chunk))
                            advanced += len(chunk)
            except (OSError, http.client.HTTPException) as error:
                _rewind(task, advanced)
                raise _Retryable(fetch._reason(error)) from None
            if (length is not None and received < length) or (
                length is None and size is not None and received < size
            ):
                _rewind(task, advanced)
                expected = length if length is not None else size
                raise _Retryable(f"truncated body: received {received} of {expected} bytes")
            return Fetcher._check(url, canonical, digest.hexdigest(), received, sha256, size)
        finally:
            response.close()
            connection.close()

    def _open(
        self, target: str, canonical: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """GET ``target``, following redirects by hand so that every hop is checked."""
        rewrites = self.options.rewrites
        current = target
        authorization = self._netrc_authorization(current)
        for _ in range(MAX_REDIRECTS + 1):
            connection, response = self._request(current, canonical, authorization)
            location = response.getheader("Location")
            if response.status not in _REDIRECTS or not location:
                return connection, response, current
            response.close()
            connection.close()
            following = rewrites.apply(urljoin(current, location))
            rewrites.check_redirect(current, following, canonical=canonical)
            if _origin(following) != _origin(current):
                # Credentials meant for one host must not follow a redirect to another.
                authorization = self._netrc_authorization(following)
            current = following
        raise DownloadError(
            f"too many redirects (more than {MAX_REDIRECTS}) for {_describe(target, canonical)}",
            url=target,
        )

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
        if parts.username is not None:
            # As aiohttp does: credentials in the URL become Basic auth, over netrc's.
            authorization = _basic(unquote(parts.username), unquote(parts.password or ""))
        if authorization is not None:
            headers["Authorization"] = authorization
        proxy = proxy_for(url, self._variables)
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
                    proxy_headers["Proxy-Authorization"] = _basic(
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
            raise DownloadError(
                f"TLS certificate of {_describe(url, canonical)} not trusted: "
                f"{_printable(str(error.verify_message or error))}",
                url=url,
                hint="set SSL_CERT_FILE to a CA bundle that includes your proxy's or "
                "mirror's certificate authority",
            ) from None
        except (OSError, http.client.HTTPException) as error:
            _close(connection)
            raise _Retryable(fetch._reason(error)) from None
        except BaseException:
            _close(connection)
            raise

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = fetch.ssl_context(self._settings)
        return self._context

    def _netrc_authorization(self, url: str) -> str | None:
        """Basic credentials for the URL's host from netrc (``NETRC``, else ``~/.netrc``)."""
        import netrc

        host = urlsplit(url).hostname
        if not host:
            return None
        path = self._variables.get("NETRC")
        if path is None:
            path = str(Path.home() / ("_netrc" if os.name == "nt" else ".netrc"))
        if not os.path.isfile(path):
            return None
        try:
            entry = netrc.netrc(path).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            return None
        if entry is None:
            return None
        login, _, password = entry
        return _basic(login, password or "")


def proxy_for(url: str, variables: Mapping[str, str]) -> str | None:
    """The proxy URL for ``url`` from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``, or None.

    Lower-case names win over upper-case ones, as in curl and urllib.

    >>> proxy_for("https://a.example/x", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "b"})
    'http://p:3128'
    >>> proxy_for("https://b.example/x", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example"})
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()

    def get(name: str) -> str:
        return (variables.get(name.lower()) or variables.get(name.upper()) or "").strip()

    proxy = get(f"{scheme}_proxy") or get("all_proxy")
    if not proxy:
        return None
    if _bypassed(parts.hostname or "", parts.port, get("no_proxy")):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
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


def _close(connection: http.client.HTTPConnection | None) -> None:
    if connection is not None:
        connection.close()


def _basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The Content-Length as http.client understood it (None when absent or chunked)."""
    length = response.length
    return length if isinstance(length, int) and length >= 0 else None
