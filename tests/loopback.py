"""A base for the test suite's aiohttp servers: one event loop in a thread, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import socketserver
import ssl
import threading
import warnings
from asyncio.trsock import TransportSocket
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web


@dataclass(frozen=True)
class LoggedRequest:
    """One request a loopback server received."""

    method: str
    path: str
    query: str
    host: str
    headers: Mapping[str, str]
    #: The status it was answered with, where the server logs that (else 0).
    status: int = 0

    @classmethod
    def of(cls, request: web.Request, status: int = 0) -> LoggedRequest:
        """What to log of ``request``."""
        fields = (request.method, request.path, request.query_string, request.host)
        return cls(*fields, headers=dict(request.headers), status=status)


class Started:
    """A context manager that calls :meth:`start` on entry and :meth:`stop` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackServer(Started):
    """Serves :meth:`handle` for every path on a random loopback port, from a thread.

    Use it as a context manager; subclasses implement :meth:`handle`.
    """

    #: The HTTP method routed to :meth:`handle` (``"*"`` for all).
    methods = "*"

    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        #: The socket of every connection a request came on, for :meth:`_cleanup`.
        self._sockets: list[TransportSocket] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request."""
        raise NotImplementedError

    def start(self) -> None:
        """Start serving in a background thread; returns once the port is bound."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sock = None if request.transport is None else request.transport.get_extra_info("socket")
        if sock is not None and sock not in self._sockets:
            self._sockets.append(sock)
        return await self.handle(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route(self.methods, "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _cleanup(self, runner: web.AppRunner) -> None:
        """Shut the app down, then end the connections it left closing.

        aiohttp closes a connection gracefully; over TLS that waits for the client's
        close_notify, and a client that never sends one left the socket open past the loop's
        end, to be collected (with a ResourceWarning) during some later test. Shutting the
        socket down ends the wait, and asyncio closes it. Connections that sent no request
        (a client that connected ahead of time, then never asked) are the handlers' still.
        """
        server = runner.server
        for handler in server.connections if server is not None else ():
            sock = None if handler.transport is None else handler.transport.get_extra_info("socket")
            if sock is not None and sock not in self._sockets:
                self._sockets.append(sock)
        await runner.cleanup()
        for sock in self._sockets:
            if sock.fileno() != -1:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        # A connection still in its TLS handshake is no handler's yet, so in no list
        # above: the loop's own map of its transports has it (private, as good as it gets
        # in a test server). Left open, it was collected during a later test (CI, loaded).
        transports = getattr(asyncio.get_running_loop(), "_transports", {})
        for transport in list(transports.values()):
            if not transport.is_closing():
                transport.abort()
        for _ in range(100):
            if all(sock.fileno() == -1 for sock in self._sockets) and all(
                transport.is_closing() for transport in list(transports.values())
            ):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # their connection_lost callbacks

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._cleanup(self._runner), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None
        if self.tls is not None:
            self._collect_handshakes_given_up()

    def _collect_handshakes_given_up(self) -> None:
        """Collect, here and quietly, what asyncio (3.11) leaves of a TLS handshake that a
        client gave up: the server's end of the connection and its two transports, open
        and in no list, which a later test's garbage collection turned into its failure
        (CI, loaded: a client that failed to set up TLS had closed its socket). Quiet are
        this server's own sockets, and transports, whose warnings name no address: a
        client's (pylock's) leaked socket still fails the test it comes from."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=rf"unclosed <socket\.socket [^>]*laddr=\([^)]*, {self.port}\)",
                category=ResourceWarning,
            )
            warnings.filterwarnings(
                "ignore",
                message=r"unclosed transport <(asyncio\._SSLProtocol|_SelectorSocket)Transport",
                category=ResourceWarning,
            )
            gc.collect()


class SocketServer:
    """A threaded TCP server on a random loopback port that hands each connection's socket
    to :meth:`_handle`, for servers that write raw bytes. Use it as a context manager.

    The default :meth:`_handle` reads the request's head, then calls :meth:`_answer`;
    :attr:`released` is set as the server stops, for answers that wait.
    """

    def __init__(self) -> None:
        self.released = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _handle(self, sock: socket.socket) -> None:
        """Serve one connection: its request's head, then :meth:`_answer`."""
        if self.read_head(sock) is not None:
            self._answer(sock)

    def _answer(self, sock: socket.socket) -> None:
        """Answer a request whose head was read."""
        raise NotImplementedError

    @staticmethod
    def read_head(sock: socket.socket) -> bytes | None:
        """Read until the end of a request's head (``CRLF CRLF``); ``None`` if the client
        closed first. What came after the head in the same reads is included."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                return None
            head += data
        return head

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
