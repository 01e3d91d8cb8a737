"""A loopback mirror that serves a directory at a set bandwidth and logs when it sent what.

The server is the outside witness of a download: it knows when a request arrived, when
it sent the first byte of the body and when it sent the last one. ``bench_sync.py`` lines
those times up with the process's spawn and exit and with the install tree's inode times
to draw a timeline of one cold sync, without changing the program being timed.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import attrs

#: Bytes written per ``send``; the throttle sleeps between chunks.
CHUNK = 64 * 1024


@attrs.define
class Transfer:
    """One GET as the server saw it; times are ``time.time()``."""

    path: str
    requested: float
    first_byte: float = 0.0
    last_byte: float = 0.0
    size: int = 0
    sent: int = 0


@attrs.define
class Mirror:
    """The running server: its base URL and the transfers it has served."""

    base_url: str
    bandwidth: float | None
    transfers: list[Transfer] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def take(self) -> list[Transfer]:
        """The transfers since the last call (and forget them)."""
        with self.lock:
            taken, self.transfers = self.transfers, []
        return taken


def _handler(root: Path, mirror: Mirror) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            transfer = Transfer(path=self.path, requested=time.time())
            rel = unquote(self.path.split("?", 1)[0]).lstrip("/")
            target = (root / rel).resolve()
            if root not in target.parents or not target.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = target.stat().st_size
            transfer.size = size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if not body:
                return
            with mirror.lock:
                mirror.transfers.append(transfer)
            rate = mirror.bandwidth
            with target.open("rb") as f:
                began = time.perf_counter()
                while chunk := f.read(CHUNK):
                    if rate is not None:
                        # Token bucket from the start: never ahead of rate * elapsed.
                        due = began + (transfer.sent + len(chunk)) / rate
                        delay = due - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        return
                    if not transfer.sent:
                        transfer.first_byte = time.time()
                    transfer.sent += len(chunk)
                self.wfile.flush()
                transfer.last_byte = time.time()

    return Handler


@contextlib.contextmanager
def serve(
    root: Path, bandwidth_mib: float | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[Mirror]:
    """Serve ``root`` on 127.0.0.1 at ``bandwidth_mib`` MiB/s (unlimited when None), over
    TLS with the server context ``tls`` if given (each handshake on the accepting thread:
    fine for one client at a time, as the benchmarks run)."""
    if bandwidth_mib is not None and bandwidth_mib <= 0:
        raise ValueError("bandwidth must be positive")
    root = Path(os.path.realpath(root))
    rate = None if bandwidth_mib is None else bandwidth_mib * 2**20
    mirror = Mirror(base_url="", bandwidth=rate)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, mirror))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "http" if tls is None else "https"
    mirror.base_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
