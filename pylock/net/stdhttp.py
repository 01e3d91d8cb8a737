"""Plain archive downloads over ``http.client``, blocking, for a worker thread.

Importing aiohttp costs about 0.2-0.3 s (it builds SSL contexts at import); a cold sync of
one archive needs one GET, which ``http.client`` does at the cost of the ``ssl`` module.
Every rule comes from :mod:`pylock.net.policy`, which :class:`pylock.net.fetch.Fetcher`
uses too: URL rewrites and refusals, redirects, retries with backoff and ``Retry-After``,
size bounds and hash checks, proxies and netrc, printable server text; and the
``SSL_CERT_FILE`` context from :mod:`pylock.net.tls`, which it shares. What this module
adds is the transport (``CONNECT`` tunnels for https over a proxy) and a ``stop`` event,
since a thread cannot be cancelled like a task.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pylock import __version__
from pylock.errors import DownloadError
from pylock.net import policy
from pylock.net.policy import CHUNK_SIZE, Retryable
from pylock.net.tls import shared_ssl_context
from pylock.settings import Settings
from pylock.urls import filename_from_url

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from pylock.net.options import FetchOptions
    from pylock.net.stream import DownloadFeed
    from pylock.progress import Reporter, Task


#: The longest a blocked read waits before it looks at ``stop`` again (and the longest a
#: Ctrl-C waits for a stalled server).
STOP_TICK = 0.5


class Cancelled(Exception):
    """The caller's ``stop`` flag was set: the download ended between two chunks, or while
    it waited for one (within :data:`STOP_TICK`)."""


class StdDownloader(policy.Client):
    """GETs archives into files with ``http.client``; one instance per sync, any thread."""

    def __init__(
        self,
        options: FetchOptions,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(options, reporter, settings=settings)
        self._sleep = sleep
        self._context: ssl.SSLContext | None = None
        #: ``host:port`` -> why, after how many attempts, and the hint, of a download that
        #: spent its retries failing to connect there. The sync's other downloads from it
        #: fail at once: 150 archives from a mirror that is down took 5 minutes of retries
        #: (an hour and more where a firewall drops the packets), each as long as the first.
        self._unreachable: dict[str, tuple[str, int, str | None]] = {}
        self._unreachable_lock = threading.Lock()

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
        within a chunk, or within :data:`STOP_TICK` while it waits for the server (not while
        it connects), and sleeps no more between retries.
        """
        download = self.plan(url, dest, sha256=sha256, size=size, task=task, feed=feed)
        target = download.target
        scheme = urlsplit(target).scheme
        if scheme == "file":
            return policy.copy_file(download)
        if scheme not in ("http", "https"):
            raise DownloadError(f"unsupported URL scheme in {target}", url=target)
        attempts = policy.Attempts(
            target, url, self.options, label=filename_from_url(url), settings=self._settings
        )
        while True:
            try:
                return self._download_once(download, stop)
            except Retryable as error:
                try:
                    delay = attempts.failed(error, self.reporter)
                except DownloadError as spent:
                    if error.unreachable is not None:
                        with self._unreachable_lock:
                            why = (error.reason, attempts.failures, spent.hint)
                            self._unreachable.setdefault(error.unreachable, why)
                    raise
            if stop is not None and stop.wait(delay):
                raise Cancelled from None
            if stop is None:
                self._sleep(delay)

    # -- one attempt -------------------------------------------------------------------

    def _download_once(
        self, download: policy.Download, stop: threading.Event | None = None
    ) -> tuple[str, int]:
        connection, response, url = self._open(download.target, download.canonical, stop)
        with policy.asking(url):
            try:
                body = download.body(
                    url,
                    response.status,
                    response.reason or "",
                    dict(response.headers),
                    _content_length(response),
                    via=policy.answering_proxy(url, self._settings),
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
        self, target: str, canonical: str, stop: threading.Event | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """GET ``target``, following redirects by hand so that every hop is checked."""
        hops = policy.Hops(target, canonical, self.options.rewrites, self._settings)
        while True:
            current = hops.current
            with policy.asking(current):
                connection, response = self._request(
                    current, canonical, hops.authorization(), stop, target=target
                )
            # Every Location, not getheader()'s: it joins two into one with ", ".
            values = [_utf8_header(v) for v in response.headers.get_all("Location") or []]
            try:
                location = hops.location(response.status, values)
            except BaseException:
                response.close()
                connection.close()
                raise
            if location is None:
                return connection, response, current
            response.close()
            connection.close()
            hops.follow(location)

    def _request(
        self,
        url: str,
        canonical: str,
        authorization: str | None,
        stop: threading.Event | None = None,
        *,
        target: str | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """One GET of ``url`` (``target``, the URL first asked for, is for errors: where
        redirects led from)."""
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            raise DownloadError(f"invalid URL {url}: no host", url=url)
        # IDNA for a name beyond ASCII: the CONNECT line, Host and TLS's server name.
        host = policy.wire_host(host, url)
        try:
            port = parts.port
        except ValueError:
            raise DownloadError(f"invalid URL {url}: bad port", url=url) from None
        https = parts.scheme == "https"
        port = port or (443 if https else 80)
        path = policy.request_target(parts.path, parts.query)
        headers = {
            "User-Agent": f"pylock/{__version__}",
            "Accept-Encoding": "identity",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        proxy = policy.proxy_of(url, self._settings)
        timeouts = self.options.timeouts
        # Connecting (and a proxy's tunnel, and TLS) and the answer's head, together.
        head_by = time.monotonic() + timeouts.connect + timeouts.read
        responses = _responses(stop, timeouts.read, head_by)
        connection: http.client.HTTPConnection | None = None
        try:
            if proxy is None:
                where = policy.describe(url, canonical, target)
                if https:
                    # Connected first: a context still being made (see pylock.net.tls) is
                    # waited for while the name lookup and the TCP handshake are under way.
                    sock = self._connect((host, port), url, where, stop)
                    connection = self._tls(sock, host, port, stop)
                else:
                    connection = http.client.HTTPConnection(host, port, timeout=timeouts.connect)
                    connection.sock = self._connect((host, port), url, where, stop)
            else:
                proxy_parts = urlsplit(proxy.url)
                proxy_headers = policy.proxy_authorization(proxy.url)
                proxy_host = proxy_parts.hostname or ""
                proxy_port = proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
                if https:
                    tunnel = self._tunnel(
                        url,
                        canonical,
                        proxy,
                        (proxy_host, proxy_port),
                        (host, port),
                        proxy_headers,
                        responses,
                        stop,
                    )
                    connection = self._tls(tunnel, host, port, stop)
                else:
                    # Plain http goes to the proxy with the absolute URL as the target:
                    # without userinfo, which would end up in the proxy's access log and, as
                    # http.client takes Host from that URL, in the Host header.
                    connection = http.client.HTTPConnection(
                        proxy_host, proxy_port, timeout=timeouts.connect
                    )
                    path = policy.wire_url(url)
                    headers.update(proxy_headers)
                    connection.sock = self._connect(
                        (proxy_host, proxy_port),
                        url,
                        policy.describe(url, canonical, target),
                        stop,
                        proxy=proxy,
                    )
            if connection.sock is not None:
                connection.sock.settimeout(timeouts.read)
            connection.response_class = responses
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            # What http.client would read other than it is framed (two lengths, `+25`, a
            # length beside `chunked`, `gzip, chunked`) is refused, as aiohttp refuses it.
            headers_of = response.headers.get_all
            try:
                policy.check_framing(
                    headers_of("Content-Length") or [], headers_of("Transfer-Encoding") or []
                )
            except Retryable:
                response.close()
                raise
            return connection, response
        except ssl.SSLCertVerificationError as error:
            _close(connection)
            detail = str(error.verify_message or error)
            raise policy.untrusted(url, canonical, detail, error.verify_code) from None
        except http.client.InvalidURL as error:
            # A character http.client will not send: no retry changes that.
            _close(connection)
            raise DownloadError(f"invalid URL {url}: {policy.reason(error)}", url=url) from None
        except (OSError, http.client.HTTPException) as error:
            _close(connection)
            if policy.speaks_no_tls(error):
                raise policy.no_tls(url, canonical) from None
            if policy.refuses_head(error):
                raise policy.head_too_large(url, canonical, target) from None
            raise Retryable(policy.reason(error), via=proxy) from None
        except BaseException:
            _close(connection)
            raise

    def _tunnel(
        self,
        url: str,
        canonical: str,
        proxy: policy.Proxy,
        address: tuple[str, int],
        target: tuple[str, int],
        headers: dict[str, str],
        responses: type[http.client.HTTPResponse],
        stop: threading.Event | None,
    ) -> socket.socket:
        """A ``CONNECT`` tunnel through ``proxy`` (at ``address``) to ``target``.

        Made here rather than by http.client's ``set_tunnel``, which turns every answer of
        the proxy into one ``OSError``: a 407 must fail at once, a 503 be retried, and a
        failure name the proxy rather than the server.
        """
        host, port = target
        authority = _authority(host, port)
        where = policy.describe(url, canonical)
        sock = self._connect(address, url, where, stop, proxy=proxy)
        try:
            lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            answer = responses(sock, method="CONNECT")
            try:
                answer.begin()
            finally:
                answer.close()
            if answer.status != 200:
                raise policy.proxy_answered(url, canonical, proxy, answer.status, answer.reason)
        except (OSError, http.client.HTTPException) as error:
            sock.close()
            raise Retryable(policy.reason(error), proxy=proxy) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect(
        self,
        address: tuple[str, int],
        url: str,
        where: str,
        stop: threading.Event | None,
        *,
        proxy: policy.Proxy | None = None,
    ) -> socket.socket:
        """:func:`connect` to ``address`` (the server, or ``proxy``), unless another download
        of this sync already spent its retries failing to: then it fails at once, saying so."""
        authority = _authority(*address)
        with self._unreachable_lock:
            spent = self._unreachable.get(authority)
        if spent is not None:
            why, failures, hint = spent
            raise DownloadError(
                f"cannot download {where}: {authority} cannot be reached ({why}: another "
                f"download gave up on it after {failures} attempts)",
                url=url,
                hint=hint,
            )
        try:
            return connect(address, self.options.timeouts.connect, stop)
        except OSError as error:
            raise Retryable(policy.reason(error), proxy=proxy, unreachable=authority) from None

    def _tls(
        self, sock: socket.socket, host: str, port: int, stop: threading.Event | None
    ) -> http.client.HTTPSConnection:
        """An https connection over the connected ``sock``, its TLS handshake done; ``sock``
        is closed if there is none."""
        timeout = self.options.timeouts.connect
        try:
            context = self._ssl()
            # InvalidURL for a host http.client will not send (a space in it).
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        except BaseException:
            sock.close()
            raise
        connection.sock = handshake(sock, context, host, timeout, stop)
        return connection

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = shared_ssl_context(self._settings)
        return self._context


#: What a non-blocking ``connect_ex`` answers while the connection is under way.
_CONNECTING = frozenset(
    code
    for code in (
        errno.EINPROGRESS,
        errno.EWOULDBLOCK,
        errno.EAGAIN,
        getattr(errno, "WSAEWOULDBLOCK", None),  # Windows
    )
    if code is not None
)


def connect(
    address: tuple[str, int], timeout: float, stop: threading.Event | None = None
) -> socket.socket:
    """``socket.create_connection``, but a set ``stop`` ends the wait within
    :data:`STOP_TICK` (a firewall that drops packets leaves a connect waiting for
    ``timeout``). Each address the name resolves to gets ``timeout``, as in the standard
    library; the name lookup itself cannot be stopped."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            _connect_one(sock, sockaddr, timeout, stop)
        except OSError as error:
            sock.close()
            last = error
            continue
        except BaseException:
            sock.close()
            raise
        # As http.client does; not every system has it.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        return sock
    raise last if last is not None else OSError(f"no address found for {host}")


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def socket_error(code: int) -> OSError:
    """The error for a socket error code, in words: the C library has none for Winsock's
    (``WSAECONNREFUSED`` read "Unknown error" on Windows); :data:`socket.errorTab` has."""
    words = getattr(socket, "errorTab", {}).get(code)  # Windows only
    return OSError(code, words or os.strerror(code))


def _connect_one(
    sock: socket.socket, sockaddr: Any, timeout: float, stop: threading.Event | None
) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(sockaddr)
    if code == 0:
        return
    if code not in _CONNECTING:
        raise socket_error(code)
    deadline = time.monotonic() + timeout
    # Windows reports a failed connect as an exception, which its selector counts as
    # writable: SO_ERROR tells the two apart everywhere.
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        while not selector.select(min(STOP_TICK, max(0.0, deadline - time.monotonic()))):
            if stop is not None and stop.is_set():
                raise Cancelled
            if time.monotonic() >= deadline:
                raise TimeoutError("timed out")
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise socket_error(code)


def handshake(
    sock: socket.socket,
    context: ssl.SSLContext,
    host: str,
    timeout: float,
    stop: threading.Event | None = None,
) -> ssl.SSLSocket:
    """``sock`` wrapped in TLS for ``host``, the handshake done within ``timeout``; a set
    ``stop`` ends the wait within :data:`STOP_TICK`. ``sock`` is closed on failure."""
    try:
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    deadline = time.monotonic() + timeout
    try:
        tls.settimeout(min(STOP_TICK, timeout))
        while True:
            try:
                # A timed-out handshake keeps its state: calling again goes on from there.
                tls.do_handshake()
                break
            except TimeoutError:
                if stop is not None and stop.is_set():
                    raise Cancelled from None
                if time.monotonic() >= deadline:
                    raise TimeoutError("the TLS handshake timed out") from None
        tls.settimeout(timeout)
    except BaseException:
        tls.close()
        raise
    return tls


class _Patient(io.RawIOBase):
    """The socket under one response, read a :data:`STOP_TICK` at a time: a read still
    waits up to ``idle`` seconds for its first byte, but ``stop`` ends it within a tick.

    A timed-out ``recv_into`` consumed nothing (a TLS socket keeps a partial record for the
    next call), so retrying it loses no byte. http.client's own socket file cannot be
    retried so: it refuses every read after one timeout.
    """

    def __init__(
        self,
        sock: socket.socket,
        held: io.BufferedReader,
        stop: threading.Event | None,
        idle: float,
        head_by: float | None = None,
    ) -> None:
        super().__init__()
        self._sock = sock
        self._held = held
        self._stop = stop
        self._idle = idle
        #: When the status line and headers must have come (``time.monotonic()``), until
        #: they have: a server that drips them a byte at a time never lets ``idle`` expire.
        self.head_by = head_by
        # Once, not per read: each settimeout() is a system call. The request has been
        # sent by now; only reads follow.
        sock.settimeout(min(STOP_TICK, idle))

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer: WriteableBuffer) -> int:
        now = time.monotonic()
        deadline = now + self._idle
        if self.head_by is not None:
            if now >= self.head_by:
                raise TimeoutError("the response's status line and headers came too slowly")
            deadline = min(deadline, self.head_by)
        while True:
            try:
                return self._sock.recv_into(buffer)
            except TimeoutError:
                if self._stop is not None and self._stop.is_set():
                    raise Cancelled from None
                if time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        if not self.closed:
            self._held.close()
        super().close()


def _responses(
    stop: threading.Event | None, idle: float, head_by: float | None = None
) -> type[http.client.HTTPResponse]:
    """An ``HTTPResponse`` class whose reads honour ``stop`` and the ``idle`` timeout, and
    whose status line and headers (a proxy's answer to ``CONNECT`` too) must all have come
    by ``head_by`` (``time.monotonic()``)."""

    class Response(http.client.HTTPResponse):
        def __init__(
            self,
            sock: socket.socket,
            debuglevel: int = 0,
            method: str | None = None,
            url: str | None = None,
        ) -> None:
            super().__init__(sock, debuglevel, method, url)
            # http.client's own reader is kept, not read: like every socket file it holds
            # the socket open while the body is read, even once the connection closed it
            # (``Connection: close``).
            self._patient = _Patient(sock, self.fp, stop, idle, head_by)
            self.fp = io.BufferedReader(self._patient)

        def begin(self) -> None:
            super().begin()
            # http.client reads past `100 Continue` only; aiohttp past every 1xx but 101.
            # However many come, the head's deadline holds (the reads check it).
            while 100 < self.status < 200 and self.status != 101:
                self.headers = self.msg = None  # type: ignore[assignment]
                super().begin()
            self._patient.head_by = None

        def _read_and_discard_trailer(self) -> None:
            # http.client reads trailer lines until the blank one, however many come: a
            # server that streams them for ever held the download for ever, every byte of
            # them past the body's bounds. As many as a head may have (aiohttp refuses
            # more too: "Too many headers received").
            for _ in range(http.client._MAXHEADERS + 1):  # type: ignore[attr-defined]
                line = self.fp.readline(http.client._MAXLINE + 1)  # type: ignore[attr-defined]
                if len(line) > http.client._MAXLINE:  # type: ignore[attr-defined]
                    raise http.client.LineTooLong("trailer line")
                if line in (b"\r\n", b"\n", b""):
                    return
            raise http.client.HTTPException(
                f"got more than {http.client._MAXHEADERS} trailer lines"  # type: ignore[attr-defined]
            )

    return Response


def _utf8_header(value: str) -> str:
    """A header's text as aiohttp reads it: http.client decodes every header as latin-1,
    which turns a ``Location`` of raw UTF-8 (``/fiénal/``) into mojibake. A byte that is
    no UTF-8 stays that byte (a surrogate escape), which a URL writes as ``%FF`` (read as
    latin-1 it was ``ÿ``, and sent as ``%C3%BF``).

    >>> _utf8_header("/fi\u00c3\u00a9nal/"), _utf8_header("/b\u00ff/")
    ('/fiénal/', '/b\\udcff/')
    """
    try:
        return value.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeError:  # not bytes http.client could have read
        return value


def _close(connection: http.client.HTTPConnection | None) -> None:
    if connection is not None:
        connection.close()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The Content-Length as http.client understood it (None when absent or chunked)."""
    length = response.length
    return length if isinstance(length, int) and length >= 0 else None
