"""A local aiohttp HTTP server for tests, with per-request fault injection and a request log.

The server runs its own event loop in a background thread, so synchronous tests, async
code under test and subprocesses can all talk to it over loopback::

    with HttpServer() as server:
        url = server.serve("/pbs/cpython.tar.gz", data, faults=[Status(500), Reset(after=1000)])
        ...                                  # 1st request: 500, 2nd: reset mid-body, 3rd: ok
        assert server.hits("/pbs/cpython.tar.gz") == 3

Faults queued with ``faults=`` are used up one per request, in order; ``always=`` applies
to every request once the queue is empty (e.g. ``Throttle`` for a slow download).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from tests.loopback import LoggedRequest, LoopbackServer


@dataclass(frozen=True)
class Reset:
    """Send the headers (true Content-Length), ``after`` body bytes, then reset the connection."""

    after: int


@dataclass(frozen=True)
class Truncate:
    """Announce the full Content-Length but send only ``after`` bytes, then close cleanly."""

    after: int


@dataclass(frozen=True)
class Status:
    """Answer with this status (and headers, body) instead of the file."""

    code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Stall:
    """Wait ``seconds`` before sending anything (a slow or hung server)."""

    seconds: float


@dataclass(frozen=True)
class Throttle:
    """Send the body in ``chunk``-byte pieces with ``delay`` seconds between them."""

    chunk: int
    delay: float


@dataclass(frozen=True)
class WrongBytes:
    """Serve ``body`` instead of the real content (a tampered or changed artifact)."""

    body: bytes


@dataclass(frozen=True)
class Redirect:
    """Redirect to ``location`` (absolute, or relative to this server)."""

    location: str
    code: int = 302


Fault = Reset | Truncate | Status | Stall | Throttle | WrongBytes | Redirect


@dataclass
class Route:
    """What one path serves."""

    body: bytes
    faults: deque[Fault]
    always: tuple[Fault, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    chunked: bool = False


class HttpServer(LoopbackServer):
    """An HTTP server on 127.0.0.1 with a random port; use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(host, tls=tls)
        self.log: list[LoggedRequest] = []
        #: Requests being answered right now, and the most there ever were at once.
        self.active = 0
        self.peak = 0
        self._routes: dict[str, Route] = {}
        self._dirs: dict[str, Path] = {}
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with ``tls``; no trailing slash)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` (a decoded path such as ``/a/cpython-3.13.9+2025.tar.gz``)."""
        return self.base_url + quote(path)

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        faults: Iterable[Fault] = (),
        always: Iterable[Fault] = (),
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        chunked: bool = False,
    ) -> str:
        """Serve ``body`` at ``path`` (replacing any previous route); returns its URL."""
        with self._lock:
            self._routes[path] = Route(
                body=body,
                faults=deque(faults),
                always=tuple(always),
                headers=dict(headers or {}),
                auth=auth,
                chunked=chunked,
            )
        return self.url(path)

    def status(self, path: str, code: int, headers: Mapping[str, str] | None = None) -> str:
        """Answer every request for ``path`` with status ``code``; returns its URL."""
        return self.serve(path, b"", always=[Status(code, headers or {})])

    def redirect(self, path: str, location: str, code: int = 302) -> str:
        """Redirect every request for ``path`` to ``location``; returns its URL."""
        return self.serve(path, b"", always=[Redirect(location, code)])

    def serve_dir(self, prefix: str, directory: Path) -> str:
        """Serve the files under ``directory`` at ``prefix`` (a mirror tree); returns its URL."""
        prefix = prefix.rstrip("/") + "/"
        with self._lock:
            self._dirs[prefix] = directory
        return self.url(prefix)

    def requests(self, path: str) -> list[LoggedRequest]:
        """The logged requests for ``path``."""
        with self._lock:
            return [r for r in self.log if r.path == path]

    def hits(self, path: str) -> int:
        """How many requests ``path`` received."""
        return len(self.requests(path))

    # -- serving ---------------------------------------------------------------------

    def _next(self, path: str) -> tuple[Route | None, tuple[Fault, ...]]:
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return self._dir_route(path), ()
            if route.faults:
                return route, (route.faults.popleft(),)
            return route, route.always

    def _dir_route(self, path: str) -> Route | None:
        for prefix, directory in self._dirs.items():
            if path.startswith(prefix):
                relative = path[len(prefix) :]
                target = (directory / relative).resolve()
                if target.is_file() and target.is_relative_to(directory.resolve()):
                    return Route(body=target.read_bytes(), faults=deque())
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self.active -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.log.append(LoggedRequest.of(request))
        route, faults = self._next(request.path)
        if route is None:
            return web.Response(status=404, text="not found\n")
        if route.auth is not None:
            token = base64.b64encode(":".join(route.auth).encode()).decode()
            if request.headers.get("Authorization") != f"Basic {token}":
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="test"'})
        body = route.body
        throttle: Throttle | None = None
        for fault in faults:
            if isinstance(fault, Stall):
                await asyncio.sleep(fault.seconds)
            elif isinstance(fault, Status):
                return web.Response(status=fault.code, headers=fault.headers, body=fault.body)
            elif isinstance(fault, Redirect):
                return web.Response(status=fault.code, headers={"Location": fault.location})
            elif isinstance(fault, WrongBytes):
                body = fault.body
            elif isinstance(fault, Throttle):
                throttle = fault
        if request.method == "HEAD":
            return web.Response(headers={**route.headers, "Content-Length": str(len(body))})
        response = web.StreamResponse(headers=route.headers)
        if route.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        for fault in faults:
            if isinstance(fault, Reset | Truncate):
                await response.write(body[: fault.after])
                await asyncio.sleep(0.05)  # let the partial body reach the client first
                self._cut(request, reset=isinstance(fault, Reset))
                return response
        step = throttle.chunk if throttle else 1 << 20
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
            if throttle and start + step < len(body):  # between pieces, not after the last
                await asyncio.sleep(throttle.delay)
        await response.write_eof()
        return response

    @staticmethod
    def _cut(request: web.Request, *, reset: bool) -> None:
        transport = request.transport
        if transport is None:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 turns close into an RST instead of an orderly FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
