"""Both download clients under one set of rules (pylock/net/policy.py).

Every test of a client's behaviour runs twice: against the http.client path
(pylock/net/stdhttp.py, what sync uses for origin archives) and the aiohttp path
(pylock/net/fetch.py, what ``lock`` uses for direct URLs), through the same ``downloader()``.

Against the loopback servers: success, retries and give-up, 4xx, redirects (limit,
https->http refusal, credentials dropped on a change of origin), endless and truncated
bodies, wrong hashes, TLS with a private CA, proxies (a CONNECT proxy in this file, plain
http proxying, NO_PROXY), netrc, and secrets kept out of messages.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from pylock.errors import (
    DownloadError,
    DownloadTooLargeError,
    HashMismatchError,
    OfflineError,
    PylockError,
    RefusedUrlError,
)
from pylock.net import policy, tls
from pylock.net.policy import proxy_for
from pylock.net.stdhttp import StdDownloader
from pylock.settings import Settings
from pylock.urls import UrlRewrites, redact
from tests.httpserver import Fault, HttpServer, Redirect, Reset, Status, Truncate
from tests.loopback import SocketServer
from tests.test_net_hardening import CAP, EndlessServer, options
from tests.twoclients import BODY, PATH, SHA, Proxy, downloader, std_only

# Every test runs against both clients (the ``client`` fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("client")

# -- the plain path --------------------------------------------------------------------------


def test_downloads_and_hashes(tmp_path: Path) -> None:
    dest = tmp_path / "a.tar.gz"
    with HttpServer() as server:
        url = server.serve(PATH, BODY)
        assert downloader().download(url, dest, sha256=SHA, size=len(BODY)) == (SHA, len(BODY))
        (request,) = server.requests(PATH)
    assert dest.read_bytes() == BODY
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.headers["User-Agent"].startswith("pylock/")


def test_chunked_body_without_a_stated_size(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY, chunked=True)
        assert downloader().download(url, tmp_path / "a", sha256=None, size=None) == (
            SHA,
            len(BODY),
        )


def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    faults: list[Fault] = [Status(503), Reset(after=1000), Truncate(after=1000), Status(429)]
    with HttpServer() as server:
        url = server.serve(PATH, BODY, faults=faults)
        fetcher = downloader(retries=4)
        assert fetcher.download(url, tmp_path / "a", sha256=SHA, size=len(BODY))[0] == SHA
        assert server.hits(PATH) == 5
    assert len(fetcher.delays) == 4
    assert (tmp_path / "a").read_bytes() == BODY


def test_retry_after_is_honoured(tmp_path: Path, client: str) -> None:
    std_only(client)
    with HttpServer() as server:
        url = server.serve(PATH, BODY, faults=[Status(503, {"Retry-After": "7"})])
        fetcher = downloader(retries=1)
        fetcher.download(url, tmp_path / "a", sha256=SHA, size=len(BODY))
    assert fetcher.delays == [7.0]


@pytest.mark.parametrize("name", ["RETRY-AFTER", "Retry-after"])
def test_retry_after_is_honoured_in_any_case(tmp_path: Path, name: str) -> None:
    """Attack: the http.client path read `Retry-After` and `retry-after` only, from a
    plain dict of the headers as the server spelled them (aiohttp's fold case)."""
    with HttpServer() as server:
        url = server.serve(PATH, BODY, faults=[Status(503, {name: "0.5"})])
        fetcher = downloader(retries=1)
        fetcher.download(url, tmp_path / "a", sha256=SHA, size=len(BODY))
    assert fetcher.delays == [0.5]


@pytest.mark.parametrize(
    ("status", "retries", "attempts", "said"),
    [
        pytest.param(500, 2, 3, "gave up after 3 attempts", id="gives-up-after-the-retries"),
        pytest.param(404, 3, 1, "HTTP 404", id="not-found-fails-at-once"),
    ],
)
def test_a_failing_status(
    tmp_path: Path, status: int, retries: int, attempts: int, said: str
) -> None:
    with HttpServer() as server:
        url = server.status(PATH, status)
        with pytest.raises(DownloadError) as info:
            downloader(retries=retries).download(url, tmp_path / "a", sha256=SHA, size=None)
        assert server.hits(PATH) == attempts
    assert said in info.value.message
    assert info.value.hint is not None


def test_hostile_reason_phrase_is_made_printable(tmp_path: Path) -> None:
    hostile = EndlessServer("length:10", status=b"404 \x1b[31m" + b"x" * 5000)
    with hostile as server, pytest.raises(DownloadError) as info:
        downloader().download(server.url("/a"), tmp_path / "a", sha256=None, size=None)
    assert "\x1b" not in info.value.message
    assert len(info.value.message) < 600


def test_wrong_bytes_fail_the_hash(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY)
        with pytest.raises(HashMismatchError) as info:
            downloader().download(url, tmp_path / "a", sha256="0" * 64, size=None)
    assert info.value.expected == "0" * 64 and info.value.actual == SHA


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/x"


def test_connection_refused_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        downloader(retries=1).download(closed_port_url(), tmp_path / "a", sha256=None, size=None)
    assert "gave up after 2 attempts" in info.value.message


def test_a_host_that_spent_one_downloads_retries_is_not_retried_for_the_next(
    tmp_path: Path, client: str
) -> None:
    # A sync of 150 interpreters from a mirror that is down retried each archive in turn:
    # 5 minutes for a refused port, an hour and more where a firewall drops the packets.
    std_only(client)
    client_ = downloader(retries=2)
    dead = closed_port_url()
    with pytest.raises(DownloadError):
        client_.download(dead, tmp_path / "a", sha256=None, size=None)
    assert len(client_.delays) == 2
    with pytest.raises(DownloadError) as info:
        client_.download(dead + "/other", tmp_path / "b", sha256=None, size=None)
    assert len(client_.delays) == 2  # no attempt, no backoff: it fails at once
    port = dead.split(":")[2].split("/")[0]
    assert info.value.message == (
        f"cannot download {dead}/other: 127.0.0.1:{port} cannot be reached (connection "
        "refused: another download gave up on it after 3 attempts)"
    )
    assert info.value.hint is not None and "check the network or the mirror" in info.value.hint
    with HttpServer() as server:  # another host is tried as before
        url = server.serve(PATH, BODY)
        assert client_.download(url, tmp_path / "c", sha256=SHA, size=None)[0] == SHA


def test_offline_never_connects(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY)
        with pytest.raises(OfflineError):
            downloader(offline=True).download(url, tmp_path / "a", sha256=SHA, size=None)
        assert server.hits(PATH) == 0


def test_file_urls_are_copied(tmp_path: Path) -> None:
    source = tmp_path / "src.tar.gz"
    source.write_bytes(BODY)
    result = downloader().download(source.as_uri(), tmp_path / "a", sha256=SHA, size=None)
    assert result == (SHA, len(BODY))


# -- bounds: endless, too long, truncated ------------------------------------------------------


@pytest.mark.parametrize("mode", ["close", "chunked"])
def test_endless_body_without_size_stops_at_the_cap(tmp_path: Path, mode: str) -> None:
    with EndlessServer(mode) as server, pytest.raises(DownloadTooLargeError) as info:
        downloader().download(server.url("/a"), tmp_path / "a", sha256=None, size=None)
    assert info.value.limit == CAP
    assert (tmp_path / "a").stat().st_size <= CAP


def test_endless_body_stops_at_the_lock_size(tmp_path: Path) -> None:
    with EndlessServer("close") as server, pytest.raises(HashMismatchError) as info:
        downloader().download(server.url("/a"), tmp_path / "a", sha256=SHA, size=1000)
    assert info.value.expected == "1000"
    assert (tmp_path / "a").stat().st_size <= 1000


def test_announced_length_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    announced = EndlessServer(f"length:{10 * CAP}")
    with announced as server, pytest.raises(DownloadTooLargeError) as info:
        downloader().download(server.url("/a"), tmp_path / "a", sha256=None, size=None)
    assert info.value.limit == CAP
    assert not (tmp_path / "a").exists()


def test_body_longer_than_its_length_stops_at_the_length(tmp_path: Path, client: str) -> None:
    # http.client never reads past Content-Length: the extra bytes are not written.
    # (aiohttp parses them as the next response and fails: tests/test_net_hardening.py.)
    std_only(client)
    with EndlessServer("length:5000") as server:
        sha, size = downloader().download(server.url("/a"), tmp_path / "a", sha256=None, size=None)
    assert size == 5000 == (tmp_path / "a").stat().st_size
    assert sha == hashlib.sha256(b"\0" * 5000).hexdigest()


def test_truncated_every_time_gives_up(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY, always=[Truncate(after=100)])
        with pytest.raises(DownloadError) as info:
            downloader(retries=1).download(url, tmp_path / "a", sha256=SHA, size=len(BODY))
    assert "truncated body" in info.value.message


def test_size_mismatch_with_content_length_fails_before_the_body(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY)
        with pytest.raises(HashMismatchError) as info:
            downloader().download(url, tmp_path / "a", sha256=SHA, size=len(BODY) + 1)
    assert info.value.expected == str(len(BODY) + 1)


def test_a_download_of_no_stated_size_shows_the_size_the_server_or_file_states(
    tmp_path: Path,
) -> None:
    """README attack: a slow download of a lock made from the bundled index (no sizes) was
    logged as `Downloading FILE ...`, without the size its Content-Length gave."""
    import io

    from pylock.progress import Reporter

    reporter = Reporter(io.StringIO(), verbosity=0)
    source = tmp_path / "archive"
    source.write_bytes(BODY)
    with HttpServer() as server:
        for n, url in enumerate((server.serve(PATH, BODY), source.as_uri())):
            task = reporter.task("Downloading archive")
            downloader().download(url, tmp_path / f"{n}", sha256=SHA, size=None, task=task)
            assert task.total == len(BODY), url
        # Chunked: nothing states a size, and none is made up.
        url = server.serve(PATH, BODY, chunked=True)
        task = reporter.task("Downloading archive")
        downloader().download(url, tmp_path / "c", sha256=SHA, size=None, task=task)
        assert task.total is None


# -- redirects -------------------------------------------------------------------------------


def test_redirects_are_followed(tmp_path: Path) -> None:
    with HttpServer() as server:
        server.serve(PATH, BODY)
        url = server.serve("/old", b"", always=[Redirect(PATH, 301)])
        assert downloader().download(url, tmp_path / "a", sha256=SHA, size=None)[0] == SHA


def test_a_redirect_alone_is_not_called_a_rewrite(tmp_path: Path) -> None:
    """Attack: a 404 or a wrong hash after a plain redirect (GitHub's to its CDN) named
    the lock's URL as "rewritten from", with no mirror or rewrite configured."""
    with HttpServer() as server:
        server.serve("/real/a.tar.gz", BODY)
        url = server.redirect("/r", "/real/a.tar.gz")
        missing = server.redirect("/m", "/gone.tar.gz")
        with pytest.raises(HashMismatchError) as wrong:
            downloader().download(url, tmp_path / "a", sha256="0" * 64, size=None)
        with pytest.raises(DownloadError) as gone:
            downloader().download(missing, tmp_path / "b", sha256=None, size=None)
    assert f"/real/a.tar.gz (redirected from {url})" in wrong.value.message
    assert f"HTTP 404 Not Found for {server.url('/gone.tar.gz')} (redirected from {missing})" in (
        gone.value.message
    )
    assert "rewritten" not in wrong.value.message + gone.value.message


def test_redirect_loop_ends(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.redirect("/loop", "/loop")
        with pytest.raises(DownloadError) as info:
            downloader().download(url, tmp_path / "a", sha256=SHA, size=None)
        assert server.hits("/loop") == 11
    assert "too many redirects" in info.value.message
    assert info.value.hint == (
        "the server redirects in a loop: try again later, or report it to the server's owner"
    )


def test_a_redirect_to_a_local_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.redirect("/away", "file:///etc/passwd")
        with pytest.raises(RefusedUrlError, match="refusing redirect to a non-http URL") as info:
            downloader().download(url, tmp_path / "a", sha256=SHA, size=None)
    assert info.value.hint is not None and "local file" in info.value.hint


def test_https_to_http_redirect_is_refused(
    tmp_path: Path, tls_server: tuple[HttpServer, Path]
) -> None:
    tls, ca = tls_server
    with HttpServer() as plain:
        plain.serve(PATH, BODY)
        url = tls.redirect("/r", plain.url(PATH))
        with pytest.raises(RefusedUrlError):
            downloader({"SSL_CERT_FILE": str(ca)}).download(
                url, tmp_path / "a", sha256=SHA, size=None
            )
        assert plain.hits(PATH) == 0


# -- TLS -------------------------------------------------------------------------------------


def test_private_ca_needs_ssl_cert_file(
    tmp_path: Path, tls_server: tuple[HttpServer, Path]
) -> None:
    server, ca = tls_server
    url = server.serve(PATH, BODY)
    with pytest.raises(DownloadError) as info:
        downloader(retries=2).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert "not trusted" in info.value.message
    assert info.value.hint is not None and "SSL_CERT_FILE" in info.value.hint
    assert server.hits(PATH) == 0  # not retried, nothing sent
    result = downloader({"SSL_CERT_FILE": str(ca)}).download(
        url, tmp_path / "a", sha256=SHA, size=None
    )
    assert result == (SHA, len(BODY))


def test_the_tls_look_alike_leaves_no_socket_open_when_a_client_never_says_goodbye(
    tmp_path: Path,
) -> None:
    """CI flake: aiohttp closes a TLS connection by waiting for the client's close_notify;
    a client that never sent one left the socket to be collected in a later test, whose
    setup then failed on the ResourceWarning."""
    import gc
    import ssl
    import time
    import warnings

    from tests.pki import https_server

    clients: list[socket.socket] = []
    with https_server(tmp_path / "certs") as (server, ca):
        url = server.serve(PATH, BODY)
        context = ssl.create_default_context(cafile=str(ca))
        # One connection that never asks (a client that connected ahead of time), one kept
        # alive, and one the server closes itself after its answer.
        idle = socket.create_connection(("127.0.0.1", server.port))
        clients.append(context.wrap_socket(idle, server_hostname="127.0.0.1"))
        for connection in ("keep-alive", "close"):
            raw = socket.create_connection(("127.0.0.1", server.port))
            client = context.wrap_socket(raw, server_hostname="127.0.0.1")
            head = f"GET {PATH} HTTP/1.1\r\nHost: {url.split('/')[2]}\r\n"
            client.sendall(f"{head}Connection: {connection}\r\n\r\n".encode())
            assert client.recv(100).startswith(b"HTTP/1.1 200")
            clients.append(client)
        # And one still in its handshake as the server stops: no handler's yet (CI flake).
        halfway = socket.create_connection(("127.0.0.1", server.port))
        halfway.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        clients.append(halfway)
        time.sleep(0.2)  # accepted, and waiting for the rest
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for each in clients:
            each.close()
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_the_tls_look_alike_leaves_nothing_of_a_client_that_gave_up(tmp_path: Path) -> None:
    """CI flake: a client that connected and closed before its handshake (the stdhttp path
    when its TLS context fails) left the server's end of it, and its transports, open in no
    list, to be collected in a later test."""
    import gc
    import warnings

    from tests.pki import https_server

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(10):
            with https_server(tmp_path / f"certs{n}") as (server, _):
                socket.create_connection(("127.0.0.1", server.port)).close()
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_a_tls_context_prepared_in_the_background_is_made_once_and_used(
    tmp_path: Path,
    tls_server: tuple[HttpServer, Path],
    client: str,
    tls_made: list[str],
) -> None:
    std_only(client)  # the context is shared by the thread client's downloads
    server, ca = tls_server
    settings = Settings.from_environ({"SSL_CERT_FILE": str(ca)})
    tls.prepare_ssl_context(settings)
    url = server.serve(PATH, BODY)
    assert downloader({"SSL_CERT_FILE": str(ca)}).download(
        url, tmp_path / "a", sha256=SHA, size=None
    ) == (SHA, len(BODY))
    assert tls_made == ["pylock-tls"]
    tls.prepare_ssl_context(settings)  # made already: no thread, nothing made again
    assert tls_made == ["pylock-tls"]


def test_a_context_being_made_holds_up_no_one_but_those_who_want_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str, tls_made: list[str]
) -> None:
    """Review: the maker held the module's lock through the load, so a second prepare (the
    head start's, then start_downloads') and any other trust setting waited for it."""
    import time

    std_only(client)
    slow, fast = (Settings.from_environ({"SSL_CERT_FILE": str(tmp_path / n)}) for n in "ab")
    loaded = threading.Event()
    real = tls.ssl_context

    def loading(settings: Settings) -> object:
        if settings is slow:
            loaded.wait(10)
        return real(Settings.from_environ({}))

    monkeypatch.setattr(tls, "ssl_context", loading)
    tls.prepare_ssl_context(slow)
    began = time.monotonic()
    tls.prepare_ssl_context(slow)  # being made: returns at once
    tls.shared_ssl_context(fast)  # another trust setting: made at once
    assert time.monotonic() - began < 2
    loaded.set()
    assert tls.shared_ssl_context(slow) is tls.shared_ssl_context(slow)


def test_a_tls_context_that_cannot_be_prepared_fails_the_download_as_before(
    tmp_path: Path,
    tls_server: tuple[HttpServer, Path],
    client: str,
    tls_made: list[str],
) -> None:
    std_only(client)
    # The background thread keeps its error to itself (pytest turns an exception escaping
    # a thread into a failure); the download meets the same problem and reports it.
    server, _ = tls_server
    missing = {"SSL_CERT_FILE": str(tmp_path / "missing.pem")}
    tls.prepare_ssl_context(Settings.from_environ(missing))
    url = server.serve(PATH, BODY)
    with pytest.raises(
        PylockError, match="cannot load CA certificates from SSL_CERT_FILE="
    ) as info:
        downloader(missing).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert server.hits(PATH) == 0
    assert str(info.value).endswith(": No such file or directory")  # no "[Errno 2]"
    # Proxy/TLS attack: a missing SSL_CERT_DIR was taken, and the download then failed
    # with "unknown CA", which points at the server.
    no_dir = {"SSL_CERT_DIR": str(tmp_path / "no-such-dir")}
    with pytest.raises(PylockError, match=r"SSL_CERT_DIR=.* is not a directory"):
        downloader(no_dir).download(url, tmp_path / "b", sha256=SHA, size=None)
    for thread in threading.enumerate():
        if thread.name == "pylock-tls":
            thread.join(5)
    assert tls._contexts == {} and tls._pending == {}


def test_an_ssl_cert_file_that_is_a_pipe_is_refused_not_waited_on(
    tmp_path: Path, tls_server: tuple[HttpServer, Path], client: str
) -> None:
    """Hostile: OpenSSL opened SSL_CERT_FILE whatever it was, and a FIFO with no writer
    blocked the sync for ever (SIGTERM did not end it either)."""
    import os

    server, _ = tls_server
    url = server.serve(PATH, BODY)
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    environ = {"SSL_CERT_FILE": str(fifo)}
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            downloader(environ).download(url, tmp_path / "a", sha256=SHA, size=None)
        except BaseException as error:  # told to the test's thread
            outcome.append(error)

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked open go on
        thread.join(10)
        pytest.fail("waited on the pipe SSL_CERT_FILE names")
    (error,) = outcome
    assert isinstance(error, PylockError)
    assert "is not a regular file" in str(error)
    assert server.hits(PATH) == 0


@pytest.mark.parametrize(
    ("url", "rewrites", "expected"),
    [
        ("https://github.com/a/b.tar.gz", {}, True),
        ("http://example.com/b.tar.gz", {}, False),
        ("https://github.com/a/b.tar.gz", {"https://github.com/": "http://mirror/"}, False),
        ("http://example.com/b.tar.gz", {"http://example.com/": "https://m/"}, True),
        ("ftp://example.com/b.tar.gz", {}, False),  # refused: no handshake ever
    ],
)
def test_needs_tls_looks_at_the_rewritten_target(
    url: str, rewrites: dict[str, str], expected: bool, client: str
) -> None:
    std_only(client)  # not a client's behaviour: once is enough
    pairs = [f"{old}={new}" for old, new in rewrites.items()]
    assert policy.needs_tls(url, UrlRewrites.from_sources(None, pairs)) is expected


# -- proxies ---------------------------------------------------------------------------------


def test_https_through_a_connect_proxy(tmp_path: Path, tls_server: tuple[HttpServer, Path]) -> None:
    server, ca = tls_server
    url = server.serve(PATH, BODY)
    with Proxy() as proxy:
        environ = {
            "SSL_CERT_FILE": str(ca),
            "HTTPS_PROXY": proxy.address.replace("://", "://user:proxy-secret@"),
        }
        assert downloader(environ).download(url, tmp_path / "a", sha256=SHA, size=None)[0] == SHA
    assert proxy.seen == [f"CONNECT 127.0.0.1:{server.port}"]
    assert proxy.auth[0] is not None and proxy.auth[0].startswith("Basic ")
    (request,) = server.requests(PATH)
    assert "Proxy-Authorization" not in request.headers  # stays with the proxy


def test_a_5xx_through_a_connect_tunnel_is_the_servers_not_the_proxys(
    tmp_path: Path, tls_server: tuple[HttpServer, Path]
) -> None:
    """Attack on the day's diff: an https 503 through HTTPS_PROXY was blamed on the proxy
    ("check the proxy ... or bypass it"), which only tunnels and cannot have written it."""
    server, ca = tls_server
    url = server.serve(PATH, BODY, always=[Status(503)])
    with Proxy() as proxy, pytest.raises(DownloadError) as info:
        environ = {"SSL_CERT_FILE": str(ca), "HTTPS_PROXY": proxy.address}
        downloader(environ, retries=1).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert "HTTP 503" in info.value.message
    assert "through the proxy" not in info.value.message
    assert "check the proxy" not in (info.value.hint or "")


def test_plain_http_through_a_proxy_and_no_proxy(tmp_path: Path) -> None:
    with HttpServer() as server, Proxy() as proxy:
        url = server.serve(PATH, BODY)
        environ = {"http_proxy": proxy.address}
        assert downloader(environ).download(url, tmp_path / "a", sha256=SHA, size=None)[0] == SHA
        assert proxy.seen == [f"GET {url}"]
        environ["NO_PROXY"] = "localhost, 127.0.0.1"
        assert downloader(environ).download(url, tmp_path / "b", sha256=SHA, size=None)[0] == SHA
        assert len(proxy.seen) == 1
        assert server.hits(PATH) == 2


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://a.example/x", {}, None),
        ("https://a.example/x", {"HTTP_PROXY": "http://p:1"}, None),
        ("https://a.example/x", {"HTTPS_PROXY": "p:3128"}, "http://p:3128"),
        ("https://a.example/x", {"https_proxy": "http://low", "HTTPS_PROXY": "http://up"}, "http://low"),
        ("http://a.example/x", {"ALL_PROXY": "http://all"}, "http://all"),
        ("https://a.example/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": "example"}, None),
        ("https://a.example/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": ".example"}, None),
        ("https://a.example/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": "*"}, None),
        ("https://a.example/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": "xample"}, "http://p"),
        ("https://a.example:8443/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": "a.example:1"}, "http://p"),
        ("https://a.example:8443/x", {"HTTPS_PROXY": "http://p", "NO_PROXY": "a.example:8443"}, None),  # noqa: E501
    ],
)  # fmt: skip
def test_proxy_for(url: str, environ: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, Settings.from_environ(environ)) == expected


@pytest.mark.parametrize(
    ("host", "no_proxy"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "bücher.example"),
        ("www.bücher.example", ".xn--bcher-kva.example"),
        ("www.xn--bcher-kva.example", "*.bücher.example"),
        ("straße.example", "xn--strae-oqa.example"),  # IDNA 2008, as requests go
    ],
)
def test_no_proxy_names_a_host_beyond_ascii_either_way(host: str, no_proxy: str) -> None:
    """Attack on the day's diff: `NO_PROXY=xn--bcher-kva.example` did not bypass the proxy
    for `bücher.example`, whose name pylock sends in that very form (and the reverse)."""
    assert policy.bypassed(host, 443, no_proxy)


def test_a_netrc_entry_names_a_host_beyond_ascii_either_way(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine xn--bcher-kva.example login u password p\n", encoding="utf-8")
    settings = Settings.from_environ({"NETRC": str(netrc)})
    assert policy.netrc_authorization("https://bücher.example/a", settings) is not None
    netrc.write_text("machine bücher.example login u password p\n", encoding="utf-8")
    assert policy.netrc_authorization("https://xn--bcher-kva.example/a", settings) is not None


# -- credentials -------------------------------------------------------------------------------


def test_netrc_credentials_are_sent_and_dropped_on_another_origin(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password netrc-secret\n")
    netrc.chmod(0o600)
    with HttpServer() as server, HttpServer("localhost") as other:
        url = server.serve(PATH, BODY, auth=("user", "netrc-secret"))
        environ = {"NETRC": str(netrc)}
        assert downloader(environ).download(url, tmp_path / "a", sha256=SHA, size=None)[0] == SHA
        other.serve(PATH, BODY)
        hop = server.redirect("/hop", other.url(PATH))
        downloader(environ).download(hop, tmp_path / "b", sha256=SHA, size=None)
        (request,) = other.requests(PATH)
    assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    ("netrc_text", "hint"),
    [
        # Mirror field test: a line Python's parser refuses (`port 8080`) was ignored
        # without a word, and the hint said to add the entry the file held. It names the
        # file and line, never a token of it (which may be a password).
        (
            "machine 127.0.0.1 login user password s3cret-pw\nport 8080\n",
            "pylock could not read the netrc file {netrc} (not netrc syntax at line 2): fix it",
        ),
        # Portability attack: Windows PowerShell 5 writes UTF-8 with a byte-order mark,
        # which Python's parser refuses; the hint said no more than "line 1".
        (
            "\ufeffmachine 127.0.0.1 login user password s3cret-pw\n",
            "pylock could not read the netrc file {netrc} (not netrc syntax at line 1: it "
            "starts with a byte-order mark, as Windows PowerShell 5 writes UTF-8 "
            "(`Set-Content -Encoding UTF8`); save it as UTF-8 without one): fix it",
        ),
        # Mirror attack: the entry for the host went along and was refused, and the hint
        # said to add an entry for that host.
        (
            "machine 127.0.0.1 login user password s3cret-WRONG\n",
            "the server refused the netrc entry's user name and password for 127.0.0.1: check them",
        ),
    ],
)
def test_a_401_s_hint_says_what_became_of_the_netrc_entry(
    tmp_path: Path, netrc_text: str, hint: str
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(netrc_text, encoding="utf-8")
    netrc.chmod(0o600)
    with HttpServer() as server:
        url = server.serve(PATH, BODY, auth=("user", "s3cret-pw"))
        with pytest.raises(DownloadError) as info:
            downloader({"NETRC": str(netrc)}).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert info.value.hint == hint.format(netrc=netrc)
    assert "s3cret" not in str(info.value) + (info.value.hint or "")


def test_url_credentials_are_sent_and_redacted_in_errors(tmp_path: Path) -> None:
    with HttpServer() as server:
        url = server.serve(PATH, BODY, auth=("user", "url-secret"))
        with_secret = url.replace("://", "://user:url-secret@")
        assert downloader().download(with_secret, tmp_path / "a", sha256=SHA, size=None)[0] == SHA
        server.status(PATH, 500)
        with pytest.raises(DownloadError) as info:
            downloader().download(with_secret, tmp_path / "a", sha256=SHA, size=None)
    # The CLI prints every error through redact(), as for the aiohttp path.
    assert "url-secret" not in redact(info.value.message)
    assert info.value.hint is None or "url-secret" not in info.value.hint


def test_credentials_in_the_url_that_are_refused_get_their_own_hint(tmp_path: Path) -> None:
    """Mirror field test: with `https://ci-bot:WRONG@host/` the hint said to add
    credentials (a netrc entry, or user:token@ in the URL), as if none had been given."""
    with HttpServer() as server:
        url = server.serve(PATH, BODY, auth=("user", "right"))
        with pytest.raises(DownloadError) as info:
            downloader().download(
                url.replace("://", "://user:WRONG@"), tmp_path / "a", sha256=SHA, size=None
            )
        assert (
            info.value.hint
            == "the server refused the user name and password in the URL: check them"
        )
        with pytest.raises(DownloadError) as info:
            downloader().download(url, tmp_path / "a", sha256=SHA, size=None)
        assert (info.value.hint or "").startswith("the server wants credentials: add a netrc entry")


# -- cancelling from another thread ------------------------------------------------------------


def _stopped(fetcher: StdDownloader, url: str, dest: Path) -> BaseException | None:
    """Start downloading ``url`` in a thread, set its ``stop`` 0.3 s later, and give what
    the download raised; it must end within 2 s of the stop."""
    import time

    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetcher.download(url, dest, sha256=SHA, size=None, stop=stop)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    stop.set()
    started = time.monotonic()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 2
    return errors[0] if errors else None


def test_stop_ends_a_slow_download_within_a_chunk(tmp_path: Path, client: str) -> None:
    std_only(client)
    from pylock.net.stdhttp import Cancelled
    from tests.httpserver import Throttle

    with HttpServer() as server:
        url = server.serve(PATH, BODY, always=[Throttle(chunk=1000, delay=0.05)])
        assert isinstance(_stopped(downloader(), url, tmp_path / "a"), Cancelled)


def test_stop_interrupts_the_backoff(tmp_path: Path, client: str) -> None:
    std_only(client)

    from pylock.net.stdhttp import Cancelled

    stop = threading.Event()
    stop.set()
    with HttpServer() as server:
        url = server.status(PATH, 503)
        fetcher = StdDownloader(
            options(retries=3, backoff=60.0), settings=Settings.from_environ({})
        )
        with pytest.raises(Cancelled):
            fetcher.download(url, tmp_path / "a", sha256=SHA, size=None, stop=stop)
        assert server.hits(PATH) == 1


# -- stopping while connecting -----------------------------------------------------------------


def _stalled_url(request: pytest.FixtureRequest, stage: str) -> str:
    if stage == "connect":
        return f"http://127.0.0.1:{request.getfixturevalue('full_backlog')}{PATH}"
    return f"https://127.0.0.1:{request.getfixturevalue('mute_port')}{PATH}"


@pytest.mark.parametrize("stage", ["connect", "tls"])
def test_stop_ends_a_stalled_connect_or_handshake(
    tmp_path: Path, client: str, stage: str, request: pytest.FixtureRequest
) -> None:
    # Ctrl-C waited out the whole connect timeout (30 s by default) here before.
    std_only(client)
    from pylock.net.fetch import Timeouts
    from pylock.net.stdhttp import Cancelled

    fetcher = downloader(timeouts=Timeouts(connect=30.0, read=30.0))
    error = _stopped(fetcher, _stalled_url(request, stage), tmp_path / "a")
    assert isinstance(error, Cancelled)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("stage", ["connect", "tls"])
def test_a_stalled_connect_or_handshake_still_times_out(
    tmp_path: Path, client: str, stage: str, request: pytest.FixtureRequest
) -> None:
    std_only(client)
    import time

    from pylock.net.fetch import Timeouts

    url = _stalled_url(request, stage)
    fetcher = downloader(timeouts=Timeouts(connect=0.7, read=30.0))
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out") as info:
        fetcher.download(url, tmp_path / "a", sha256=SHA, size=None, stop=threading.Event())
    assert 0.6 < time.monotonic() - started < 5
    assert "Traceback" not in info.value.message


def test_connect_tries_every_address_and_reports_the_last_failure() -> None:
    from pylock.net.stdhttp import connect

    # "localhost" may resolve to ::1 and 127.0.0.1; nothing listens on the port on either.
    with pytest.raises(ConnectionRefusedError):
        connect(("localhost", _closed_port()), 2.0, threading.Event())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_prepare_whose_thread_cannot_start_leaves_no_one_waiting(
    monkeypatch: pytest.MonkeyPatch, client: str, tls_made: list[str]
) -> None:
    """Review: the context was registered as being made before the thread started; when
    it could not start (a pids limit), every later https download waited for ever."""
    std_only(client)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    settings = Settings.from_environ({})
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        tls.prepare_ssl_context(settings)  # no thread: nothing is made, nothing pending
    assert tls._pending == {} and tls_made == []
    made = threading.Event()

    def make() -> None:
        tls.shared_ssl_context(settings)
        made.set()

    threading.Thread(target=make).start()
    assert made.wait(10)


def test_a_url_with_letters_beyond_ascii_is_fetched_percent_encoded(tmp_path: Path) -> None:
    """Error-message audit: a mirror or `url` such as `http://host/café/` passed every
    check, and the sync ended in a traceback (`http.client` sends ASCII only)."""
    path = "/caf\u00e9/a b.tar.gz"
    with HttpServer() as server:
        server.serve(path, BODY)
        url = f"{server.base_url}/caf\u00e9/a%20b.tar.gz?x=\u00e9"
        assert downloader().download(url, tmp_path / "a", sha256=SHA, size=len(BODY)) == (
            SHA,
            len(BODY),
        )
        assert server.hits(path) == 1


def test_what_networks_commonly_do_is_said_in_plain_words(tmp_path: Path) -> None:
    """Error-message audit: `ConnectionRefusedError: [Errno 111] Connection refused`,
    `ClientConnectorError: ... [Connect call failed ('127.0.0.1', 1)]` and a garbage status
    line as aiohttp's invented `400, message="Bad status line..."` reached users."""
    with pytest.raises(DownloadError) as info:
        downloader(retries=0).download(closed_port_url(), tmp_path / "a", sha256=None, size=None)
    assert "connection refused" in info.value.message
    assert "Error" not in info.value.message and "Errno" not in info.value.message
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = listener.getsockname()

        def garbage() -> None:
            with listener.accept()[0] as conn:
                conn.recv(65536)
                conn.sendall(b"\x00\x01garbage\r\n\r\n")

        thread = threading.Thread(target=garbage, daemon=True)
        thread.start()
        with pytest.raises(DownloadError) as info:
            downloader(retries=0).download(
                f"http://127.0.0.1:{address[1]}/x", tmp_path / "b", sha256=None, size=None
            )
        thread.join(5)
    assert "the server did not answer in HTTP" in info.value.message
    # Without the URL: its port may hold a "400".
    message = info.value.message.replace(f"http://127.0.0.1:{address[1]}/x", "URL")
    assert "400" not in message and "b'" not in message


class ClosingServer(SocketServer):
    """Reads the request, then closes the connection cleanly without an answer."""

    def _answer(self, sock: socket.socket) -> None:
        pass


def test_a_clean_close_without_an_answer_is_not_called_a_reset(
    tmp_path: Path, tls_server: tuple[HttpServer, Path]
) -> None:
    """Attack: http.client's RemoteDisconnected is a ConnectionResetError, so a server (or
    a proxy asked for CONNECT) that closed without an answer was "the connection was
    reset", where aiohttp said what happened."""
    tls, ca = tls_server
    url = tls.serve(PATH, BODY)
    with ClosingServer() as server:
        environ = {"SSL_CERT_FILE": str(ca), "HTTPS_PROXY": server.url("")}
        for target, env in ((server.url("/a"), {}), (url, environ)):
            with pytest.raises(DownloadError) as info:
                downloader(env).download(target, tmp_path / "a", sha256=None, size=None)
            assert "closed the connection without an answer" in info.value.message
            assert "reset" not in info.value.message


def test_an_https_url_to_a_plain_http_server_fails_at_once_saying_so(tmp_path: Path) -> None:
    """Error-message audit: `SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number`,
    retried five times, with a hint about networks and proxies."""
    with HttpServer() as server:
        url = server.serve(PATH, BODY).replace("http://", "https://")
        with pytest.raises(DownloadError) as info:
            downloader(retries=3).download(url, tmp_path / "a", sha256=SHA, size=None)
        assert server.hits(PATH) == 0
    assert "the server does not speak TLS there" in info.value.message
    assert "gave up" not in info.value.message
    assert info.value.hint is not None and "write its URL with http://" in info.value.hint


def test_a_netrc_with_a_byte_order_mark_and_a_blank_first_line_gets_the_hint(
    tmp_path: Path,
) -> None:
    """Portability attack: the byte-order-mark hint was given only for a parse error at
    line 1; a file whose first line is blank (`@'<newline>machine ...'@ | Set-Content`)
    fails at line 2 (Python's parser counts the newline that ends the token "\\ufeff"),
    and got "not netrc syntax at line 2" alone."""
    from pylock.errors import DownloadError
    from tests.httpserver import HttpServer
    from tests.twoclients import BODY, PATH, SHA, downloader

    netrc = tmp_path / "netrc"
    netrc.write_text("\ufeff\nmachine 127.0.0.1 login user password s3cret-pw\n", "utf-8")
    netrc.chmod(0o600)
    with HttpServer() as server:
        url = server.serve(PATH, BODY, auth=("user", "s3cret-pw"))
        with pytest.raises(DownloadError) as info:
            downloader({"NETRC": str(netrc)}).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert "starts with a byte-order mark" in (info.value.hint or ""), info.value.hint
    assert "s3cret" not in str(info.value) + (info.value.hint or "")
