"""Two download clients behind one blocking ``downloader()``, for the tests that check
both follow the same rules (pylock/net/policy.py): the http.client path
(pylock/net/stdhttp.py) and the aiohttp path (pylock/net/fetch.py).

The ``client`` fixture in ``conftest.py`` picks the client per test; modules opt in with
``pytestmark = pytest.mark.usefixtures("client")``. Also here: a tiny forward proxy.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
from pathlib import Path
from typing import Any

import pytest

from pylock.net.fetch import Fetcher, FetchOptions
from pylock.net.stdhttp import StdDownloader
from pylock.progress import NullReporter
from pylock.settings import Settings
from tests.loopback import SocketServer
from tests.test_net_hardening import options

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()
PATH = "/d/cpython-3.13.9+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz"


#: Which client ``downloader()`` builds; set per test by the ``client`` fixture (conftest.py).
CLIENT = ["stdhttp"]


def std_only(client: str) -> None:
    """Skip a test of what only the thread client has (an injected sleep, ``stop``)."""
    if client != "stdhttp":
        pytest.skip("only the http.client path has this (stop event, injected sleep)")


class _Delays(NullReporter):
    """Collects the backoff delays a client announces ("retrying in 0.0s")."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self._delays = delays

    def event(self, message: str) -> None:
        if "retrying in " in message:
            self._delays.append(float(message.split("retrying in ")[1].split("s")[0]))


class _AiohttpDownloader:
    """The aiohttp :class:`Fetcher` behind the blocking ``download()`` of the tests."""

    def __init__(self, options: FetchOptions, settings: Settings) -> None:
        self.delays: list[float] = []
        self._options = options
        self._settings = settings

    def download(
        self, url: str, dest: Path, *, sha256: str | None, size: int | None, task: Any = None
    ) -> tuple[str, int]:
        import asyncio

        async def run() -> tuple[str, int]:
            reporter = _Delays(self.delays)
            async with Fetcher(self._options, reporter, settings=self._settings) as fetcher:
                return await fetcher.download(url, dest, sha256=sha256, size=size, task=task)

        return asyncio.run(run())


def downloader(environ: dict[str, str] | None = None, **kwargs: Any) -> Any:
    settings = Settings.from_environ(environ or {})
    if CLIENT[0] == "aiohttp":
        return _AiohttpDownloader(options(**kwargs), settings)
    delays: list[float] = []
    result = StdDownloader(options(**kwargs), _Delays([]), settings=settings, sleep=delays.append)
    result.delays = delays  # type: ignore[attr-defined]
    return result


class Proxy(SocketServer):
    """A tiny forward proxy: CONNECT tunnels, and absolute-form GETs for plain http."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.auth: list[str | None] = []
        super().__init__()
        self.address = f"http://127.0.0.1:{self.port}"

    def _handle(self, client: socket.socket) -> None:
        received = self.read_head(client)
        if received is None:
            return
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        self.seen.append(f"{method} {target}")
        auth = [
            v
            for k, _, v in (x.partition(": ") for x in lines[1:])
            if k.lower() == "proxy-authorization"
        ]
        self.auth.append(auth[0] if auth else None)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            from urllib.parse import urlsplit

            parts = urlsplit(target)
            upstream = socket.create_connection((parts.hostname or "", parts.port or 80))
            kept = [x for x in lines[1:] if not x.lower().startswith("proxy-authorization")]
            first = f"{method} {parts.path or '/'} {version}"
            upstream.sendall("\r\n".join([first, *kept]).encode("latin-1") + b"\r\n\r\n" + rest)
        with upstream:
            _pipe(client, upstream)


class AnsweringProxy(Proxy):
    """Answers every request with ``answer`` whatever it asks (with nothing: hangs up once
    its head is read), as a proxy that refuses does; notes ``note`` in ``seen`` for each
    request, and keeps its head (the lines, without the blank one) in ``heads``."""

    def __init__(self, note: str, answer: bytes) -> None:
        self.note = note
        self.answer = answer
        self.heads: list[bytes] = []
        super().__init__()

    def _handle(self, sock: socket.socket) -> None:
        head = self.read_head(sock)
        if head is None:
            return
        self.heads.append(head.partition(b"\r\n\r\n")[0])
        self.seen.append(self.note)
        if self.answer:
            sock.sendall(self.answer)


class DenyingProxy(AnsweringProxy):
    """Answers every request with ``407 Proxy Authentication Required``."""

    def __init__(self) -> None:
        super().__init__(
            "denied",
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="p"\r\nContent-Length: 0\r\n\r\n',
        )


def _pipe(a: socket.socket, b: socket.socket) -> None:
    while True:
        ready, _, _ = select.select([a, b], [], [], 10)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)
