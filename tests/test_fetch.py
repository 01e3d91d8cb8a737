"""Downloads against a local server: faults, retries, hashes, offline, mirrors, locking, kills."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pylock.errors import (
    DownloadError,
    HashMismatchError,
    OfflineError,
    PylockError,
    RefusedUrlError,
    UsageError,
)
from pylock.net.fetch import (
    Fetcher,
    FetchOptions,
    Timeouts,
)
from pylock.progress import NullReporter, Reporter, Task
from pylock.settings import Settings
from pylock.sync.archives import Wanted, download_unknown, ensure_archives
from pylock.sync.cache import Cache
from pylock.urls import PBS_DOWNLOAD_PREFIX, UrlRewrites
from tests.httpserver import (
    HttpServer,
    Reset,
    Stall,
    Status,
    Throttle,
    Truncate,
    WrongBytes,
)
from tests.indexdata import locked_python

NAME = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"


def payload(size: int = 300_000, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fast(**kwargs: object) -> FetchOptions:
    """Options with a tiny backoff, so that retries cost milliseconds. The read timeout
    leaves a loaded machine's server room: a stall past it is an extra request, which
    tests that count requests would take for a bug (a test of stalls sets its own)."""
    settings: dict[str, object] = {
        "retries": 3,
        "backoff": 0.01,
        "timeouts": Timeouts(connect=5.0, read=5.0),
    }
    settings.update(kwargs)
    return FetchOptions(**settings)  # type: ignore[arg-type]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


class RecordingReporter(Reporter):
    """A quiet reporter that keeps its tasks and lines for assertions."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        super().__init__(stream=self.buffer, verbosity=1, live=False)
        self.tasks: list[Task] = []

    def task(self, label: str, total: int | None = None) -> Task:
        task = super().task(label, total)
        self.tasks.append(task)
        return task

    @property
    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty netrc file that ``NETRC`` names, for a test to fill."""
    path = tmp_path / "netrc"
    path.write_text("")
    monkeypatch.setenv("NETRC", str(path))
    return path


def want(server: HttpServer, path: str, data: bytes, **kwargs: object) -> Wanted:
    url = server.serve(path, data, **kwargs)  # type: ignore[arg-type]
    return Wanted(url=url, sha256=sha(data), size=len(data))


# -- the basic path --------------------------------------------------------------------


def test_miss_is_downloaded_into_the_layout_then_hits_are_free(
    server: HttpServer, cache: Cache
) -> None:
    data = payload()
    wanted = want(server, f"/20251014/{NAME}", data)
    reporter = RecordingReporter()
    paths = ensure_archives([wanted], cache, fast(), reporter)
    path = paths[wanted.sha256]
    assert path == cache.root / "archives" / "sha256" / wanted.sha256 / NAME
    assert path.read_bytes() == data
    assert files_under(cache.tmp_dir) == []
    assert f"Downloaded {NAME}" in reporter.text
    assert reporter.tasks[0].total == len(data)
    assert reporter.tasks[0].completed == len(data)
    again = ensure_archives([wanted, wanted], cache, fast(), NullReporter())
    assert again == paths
    assert server.hits(f"/20251014/{NAME}") == 1


def test_parallel_downloads_respect_jobs(server: HttpServer, cache: Cache) -> None:
    wanted = [
        # 0.4 s each: long enough that three are under way at once on a loaded machine.
        want(server, f"/a/{i}.tar.gz", payload(64_000, seed=i), always=[Throttle(16_000, 0.1)])
        for i in range(6)
    ]
    started = time.monotonic()
    paths = ensure_archives(wanted, cache, fast(jobs=3), NullReporter())
    elapsed = time.monotonic() - started
    assert sorted(paths) == sorted(w.sha256 for w in wanted)
    for item in wanted:
        assert sha(paths[item.sha256].read_bytes()) == item.sha256
    assert server.peak == 3
    assert elapsed < 6 * 0.4  # not one after another (two rounds of three: 0.8 s)


def test_jobs_and_offline_from_the_environment() -> None:
    def jobs(environ: dict[str, str], flag: int | None = None) -> int:
        return Settings.from_environ(environ).jobs(flag)

    assert jobs({}) == 4
    assert jobs({"PYLOCK_CONCURRENCY": "9"}) == 9
    assert jobs({"PYLOCK_CONCURRENCY": "9"}, 2) == 2
    for bad in ("0", "-3", "many"):
        with pytest.raises(UsageError, match="PYLOCK_CONCURRENCY"):
            jobs({"PYLOCK_CONCURRENCY": bad})
    options = FetchOptions.from_settings(
        Settings.from_environ({"PYLOCK_OFFLINE": "1", "PYLOCK_MIRROR": "https://m.example"})
    )
    assert options.offline
    assert options.rewrites.apply(PBS_DOWNLOAD_PREFIX + "x") == "https://m.example/x"
    assert not FetchOptions.from_settings(Settings.from_environ({"PYLOCK_OFFLINE": "0"})).offline


# -- faults that are retried -----------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Reset(after=50_000),
        Truncate(after=70_000),
        Status(500),
        Status(503, {"Retry-After": "0"}),
        Status(429),
        Stall(2.0),
    ],
    ids=["reset", "truncated", "500", "503", "429", "stall"],
)
def test_transient_faults_are_retried(server: HttpServer, cache: Cache, fault: object) -> None:
    data = payload()
    wanted = want(server, "/f.tar.gz", data, faults=[fault])
    reporter = RecordingReporter()
    # A short read timeout for the stall only: elsewhere it would be a loaded server's.
    read = 0.5 if isinstance(fault, Stall) else 5.0
    paths = ensure_archives([wanted], cache, fast(timeouts=Timeouts(read=read)), reporter)
    assert paths[wanted.sha256].read_bytes() == data
    assert server.hits("/f.tar.gz") == 2
    assert "retrying" in reporter.text
    # The bar restarts with the attempt instead of counting the lost bytes twice.
    assert reporter.tasks[0].completed == len(data)
    assert files_under(cache.tmp_dir) == []


def test_truncated_chunked_body_with_known_size_is_retried(
    server: HttpServer, cache: Cache
) -> None:
    data = payload()
    wanted = want(server, "/c.tar.gz", data, chunked=True, faults=[Truncate(after=1000)])
    paths = ensure_archives([wanted], cache, fast(), NullReporter())
    assert paths[wanted.sha256].read_bytes() == data
    assert server.hits("/c.tar.gz") == 2


def test_persistent_5xx_gives_up_after_the_retries(server: HttpServer, cache: Cache) -> None:
    wanted = want(server, "/down.tar.gz", b"x", always=[Status(502)])
    with pytest.raises(DownloadError) as info:
        ensure_archives([wanted], cache, fast(retries=2), NullReporter())
    assert server.hits("/down.tar.gz") == 3
    assert "HTTP 502" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert wanted.url in str(info.value)
    assert files_under(cache.root / "archives") == []
    assert files_under(cache.tmp_dir) == []


# -- faults that are not ---------------------------------------------------------------


@pytest.mark.parametrize("code", [404, 403, 410])
def test_client_errors_fail_fast_without_retries(
    server: HttpServer, cache: Cache, code: int
) -> None:
    url = server.status("/gone.tar.gz", code)
    wanted = Wanted(url=url, sha256="a" * 64, size=10)
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        ensure_archives([wanted], cache, fast(backoff=5.0), NullReporter())
    assert time.monotonic() - started < 2
    assert server.hits("/gone.tar.gz") == 1
    assert f"HTTP {code}" in str(info.value)
    assert url in str(info.value)
    assert info.value.url == url
    assert files_under(cache.root / "archives") == []
    assert files_under(cache.tmp_dir) == []


def test_wrong_bytes_are_a_hash_mismatch_and_leave_nothing(
    server: HttpServer, cache: Cache
) -> None:
    data = payload()
    evil = payload(seed=666)  # same size, other content
    wanted = want(server, "/t.tar.gz", data, always=[WrongBytes(evil)])
    with pytest.raises(HashMismatchError) as info:
        ensure_archives([wanted], cache, fast(), NullReporter())
    error = info.value
    assert error.expected == wanted.sha256
    assert error.actual == sha(evil)
    assert wanted.url in str(error)
    assert wanted.sha256 in str(error) and sha(evil) in str(error)
    assert server.hits("/t.tar.gz") == 1
    assert files_under(cache.root / "archives") == []
    assert files_under(cache.tmp_dir) == []


def test_wrong_size_is_refused_before_reading_the_body(server: HttpServer, cache: Cache) -> None:
    data = payload()
    url = server.serve("/s.tar.gz", data)
    wanted = Wanted(url=url, sha256=sha(data), size=len(data) - 1)
    with pytest.raises(HashMismatchError, match="size mismatch") as info:
        ensure_archives([wanted], cache, fast(), NullReporter())
    assert info.value.expected == str(len(data) - 1)
    assert info.value.actual == str(len(data))
    assert files_under(cache.root / "archives") == []


def test_mismatch_through_a_mirror_names_both_urls(server: HttpServer, cache: Cache) -> None:
    server.serve(f"/mirror/20251014/{NAME}", b"tampered")
    canonical = f"{PBS_DOWNLOAD_PREFIX}20251014/{NAME.replace('+', '%2B')}"
    options = fast(rewrites=UrlRewrites.from_sources(None, (), server.url("/mirror")))
    with pytest.raises(HashMismatchError) as info:
        ensure_archives([Wanted(url=canonical, sha256="b" * 64)], cache, options, NullReporter())
    message = str(info.value)
    assert server.url(f"/mirror/20251014/{NAME}") in message
    assert f"rewritten from {canonical}" in message


def test_one_failure_stops_the_batch_and_cleans_up(server: HttpServer, cache: Cache) -> None:
    slow = want(server, "/slow.tar.gz", payload(200_000), always=[Throttle(10_000, 0.05)])
    broken = Wanted(url=server.status("/404.tar.gz", 404), sha256="c" * 64)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        ensure_archives([slow, broken], cache, fast(jobs=2), NullReporter())
    assert time.monotonic() - started < 1.0  # the slow one was cancelled, not awaited
    # `lock --upgrade` cannot fix a url from pythons.toml: the hint says both cases.
    assert "a `url` given in pythons.toml must be corrected there" in (caught.value.hint or "")
    assert files_under(cache.tmp_dir) == []
    assert files_under(cache.root / "archives") == []


# -- offline ---------------------------------------------------------------------------


def test_offline_miss_names_archive_url_and_cache_path(server: HttpServer, cache: Cache) -> None:
    wanted = want(server, f"/pbs/{NAME}", payload())
    with pytest.raises(OfflineError) as info:
        ensure_archives([wanted], cache, fast(offline=True), NullReporter())
    message = str(info.value)
    assert NAME in message
    assert wanted.url in message
    assert str(cache.archive_path(wanted.sha256, NAME)) in message
    assert info.value.url == wanted.url
    assert info.value.hint is not None and "pylock fetch" in info.value.hint
    assert server.log == []


def test_offline_lists_every_miss_and_hits_still_work(server: HttpServer, cache: Cache) -> None:
    cached = want(server, "/cached.tar.gz", payload(seed=1))
    ensure_archives([cached], cache, fast(), NullReporter())
    misses = [want(server, f"/m{i}.tar.gz", payload(seed=10 + i)) for i in range(2)]
    requests = len(server.log)
    assert ensure_archives([cached], cache, fast(offline=True), NullReporter())
    with pytest.raises(OfflineError, match="2 archives are missing") as info:
        ensure_archives([cached, *misses], cache, fast(offline=True), NullReporter())
    for item in misses:
        assert item.url in str(info.value)
    assert len(server.log) == requests


def test_offline_fetcher_never_connects(server: HttpServer) -> None:
    import asyncio

    async def run() -> None:
        async with Fetcher(fast(offline=True)) as fetcher:
            await fetcher.get(server.url("/x"))

    with pytest.raises(OfflineError):
        asyncio.run(run())
    assert server.log == []


# -- corruption ------------------------------------------------------------------------


def test_corrupt_cached_archive_is_evicted_and_fetched_again(
    server: HttpServer, cache: Cache
) -> None:
    data = payload()
    wanted = want(server, "/r.tar.gz", data)
    path = ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256]
    path.write_bytes(payload(seed=99))  # same size: only a re-hash notices
    assert ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256] == path
    assert server.hits("/r.tar.gz") == 1
    reporter = RecordingReporter()
    fresh = ensure_archives([wanted], cache, fast(), reporter, verify_hits=True)
    assert fresh[wanted.sha256].read_bytes() == data
    assert server.hits("/r.tar.gz") == 2
    assert "corrupt" in reporter.text


def test_truncated_cached_archive_is_caught_by_its_size(server: HttpServer, cache: Cache) -> None:
    data = payload()
    wanted = want(server, "/r.tar.gz", data)
    path = ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256]
    path.write_bytes(data[:100])
    assert ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256].read_bytes() == (
        data
    )
    assert server.hits("/r.tar.gz") == 2


def test_corrupt_archive_offline_is_reported_clearly(server: HttpServer, cache: Cache) -> None:
    wanted = want(server, "/r.tar.gz", payload())
    path = ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256]
    path.write_bytes(b"rot")
    with pytest.raises(OfflineError, match="was corrupt and has been evicted"):
        ensure_archives([wanted], cache, fast(offline=True), NullReporter())


# -- mirrors, rewrites, file:// --------------------------------------------------------


def test_mirror_rewrites_canonical_urls(server: HttpServer, cache: Cache) -> None:
    data = payload()
    server.serve(f"/pbs/20251014/{NAME}", data)
    server.serve(
        f"/everything/astral-sh/python-build-standalone/releases/download/20251014/{NAME}", b""
    )
    canonical = f"{PBS_DOWNLOAD_PREFIX}20251014/{NAME.replace('+', '%2B')}"
    rewrites = UrlRewrites.from_sources(
        f"https://github.com/={server.url('/everything/')}", (), server.url("/pbs")
    )
    wanted = Wanted(url=canonical, sha256=sha(data), size=len(data))
    paths = ensure_archives([wanted], cache, fast(rewrites=rewrites), NullReporter())
    assert paths[wanted.sha256].name == NAME
    assert [r.path for r in server.log] == [f"/pbs/20251014/{NAME}"]


def test_file_mirror_is_copied_and_hashed(tmp_path: Path, cache: Cache) -> None:
    data = payload()
    mirror = tmp_path / "mirror dir"
    (mirror / "20251014").mkdir(parents=True)
    (mirror / "20251014" / NAME).write_bytes(data)
    canonical = f"{PBS_DOWNLOAD_PREFIX}20251014/{NAME.replace('+', '%2B')}"
    options = fast(rewrites=UrlRewrites.from_sources(None, (), mirror.as_uri()))
    wanted = Wanted(url=canonical, sha256=sha(data), size=len(data))
    paths = ensure_archives([wanted], cache, options, NullReporter())
    assert paths[wanted.sha256].read_bytes() == data
    missing = Wanted(url=canonical.replace("20251014", "20990101"), sha256="d" * 64)
    with pytest.raises(DownloadError, match="does not exist"):
        ensure_archives([missing], cache, options, NullReporter())
    (mirror / "20251014" / "other.tar.gz").write_bytes(b"changed")
    bad = Wanted(url=PBS_DOWNLOAD_PREFIX + "20251014/other.tar.gz", sha256="e" * 64)
    with pytest.raises(HashMismatchError):
        ensure_archives([bad], cache, options, NullReporter())
    assert files_under(cache.tmp_dir) == []


def test_plain_http_to_a_remote_host_is_refused_without_connecting(cache: Cache) -> None:
    wanted = Wanted(url="http://pbs.invalid/x.tar.gz", sha256="f" * 64)
    started = time.monotonic()
    with pytest.raises(RefusedUrlError, match="refusing plain http"):
        ensure_archives([wanted], cache, fast(), NullReporter())
    assert time.monotonic() - started < 1


def test_redirects_are_followed_and_each_hop_checked(server: HttpServer, cache: Cache) -> None:
    data = payload()
    server.serve("/real.tar.gz", data)
    server.redirect("/hop1", "/hop2", 301)
    server.redirect("/hop2", server.url("/real.tar.gz"), 307)
    wanted = Wanted(url=server.url("/hop1"), sha256=sha(data), size=len(data))
    assert ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256].exists()
    server.redirect("/away", "http://pbs.invalid/real.tar.gz")
    with pytest.raises(RefusedUrlError, match=r"pbs\.invalid"):
        ensure_archives(
            [Wanted(url=server.url("/away"), sha256="1" * 64)], cache, fast(), NullReporter()
        )
    server.redirect("/loop", "/loop")
    with pytest.raises(DownloadError, match="too many redirects"):
        ensure_archives(
            [Wanted(url=server.url("/loop"), sha256="2" * 64)], cache, fast(), NullReporter()
        )
    assert server.hits("/loop") == 11


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    result = subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {result.stderr!r}")
    return cert, key


def test_https_with_ssl_cert_file_and_no_downgrade_redirect(
    tls_files: tuple[Path, Path],
    server: HttpServer,
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    data = payload()
    with HttpServer(tls=context) as secure:
        url = secure.serve("/a.tar.gz", data)
        assert url.startswith("https://")
        wanted = Wanted(url=url, sha256=sha(data), size=len(data))
        with pytest.raises(DownloadError, match="certificate") as info:
            ensure_archives([wanted], cache, fast(), NullReporter())
        assert info.value.hint is not None and "SSL_CERT_FILE" in info.value.hint
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256].exists()
        target = server.serve("/plain.tar.gz", data)
        down = secure.redirect("/down", target)
        with pytest.raises(RefusedUrlError, match="from https to plain http"):
            ensure_archives([Wanted(url=down, sha256="3" * 64)], cache, fast(), NullReporter())
        assert server.hits("/plain.tar.gz") == 0


def test_netrc_credentials_are_sent(server: HttpServer, cache: Cache, netrc: Path) -> None:
    data = payload()
    wanted = want(server, "/private.tar.gz", data, auth=("ci", "s3cret"))
    with pytest.raises(DownloadError, match="HTTP 401"):
        ensure_archives([wanted], cache, fast(), NullReporter())
    netrc.write_text("machine 127.0.0.1\n  login ci\n  password s3cret\n")
    assert ensure_archives([wanted], cache, fast(), NullReporter())[wanted.sha256].exists()
    assert server.requests("/private.tar.gz")[-1].headers["Authorization"].startswith("Basic ")


def test_netrc_entry_wins_over_a_callers_authorization_header(
    server: HttpServer, netrc: Path
) -> None:
    server.serve("/api/doc", b"{}", auth=("ci", "s3cret"))
    netrc.write_text("machine 127.0.0.1 login ci password s3cret\n")
    response = get(server.url("/api/doc"), headers={"Authorization": "Bearer token"})
    assert response.status == 200  # type: ignore[attr-defined]


def test_http_proxy_from_the_environment(
    server: HttpServer, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload()
    server.serve("/pbs/x.tar.gz", data)
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    # An explicit http mirror on a host that does not exist: only the proxy can answer.
    rewrites = UrlRewrites.from_sources(None, (), "http://mirror.invalid/pbs")
    wanted = Wanted(url=PBS_DOWNLOAD_PREFIX + "x.tar.gz", sha256=sha(data))
    assert ensure_archives([wanted], cache, fast(rewrites=rewrites), NullReporter())
    assert [(r.host, r.path) for r in server.log] == [("mirror.invalid", "/pbs/x.tar.gz")]


# -- Fetcher.get and download_unknown --------------------------------------------------


def get(url: str, options: FetchOptions | None = None, **kwargs: object) -> object:
    import asyncio

    async def run() -> object:
        async with Fetcher(options or fast()) as fetcher:
            return await fetcher.get(url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


def test_get_returns_statuses_for_the_caller(server: HttpServer, tmp_path: Path) -> None:
    url = server.serve("/latest.json", b'{"tag": 1}', headers={"ETag": '"v1"'})
    response = get(url)
    assert response.status == 200  # type: ignore[attr-defined]
    assert response.body == b'{"tag": 1}'  # type: ignore[attr-defined]
    assert response.headers["etag"] == '"v1"'  # type: ignore[attr-defined]
    server.serve("/same", b"", always=[Status(304)])
    assert get(server.url("/same"), headers={"If-None-Match": '"v1"'}).status == 304  # type: ignore[attr-defined]
    assert server.requests("/same")[0].headers["If-None-Match"] == '"v1"'
    assert get(server.url("/nothing")).status == 404  # type: ignore[attr-defined]
    server.serve("/flaky", b"ok", faults=[Status(500), Reset(after=1)])
    assert get(server.url("/flaky")).body == b"ok"  # type: ignore[attr-defined]
    assert server.hits("/flaky") == 3
    (tmp_path / "doc.json").write_text("{}")
    assert get((tmp_path / "doc.json").as_uri()).body == b"{}"  # type: ignore[attr-defined]
    assert get((tmp_path / "missing.json").as_uri()).status == 404  # type: ignore[attr-defined]


def test_a_listing_retried_through_a_mirror_names_the_url_it_asked(server: HttpServer) -> None:
    """Field test: the retry line of a listing named the lock's URL, not the mirror's that
    failed (the final error named both)."""
    import asyncio

    server.serve("/pbs/SHA256SUMS", b"x", faults=[Status(503, {"Retry-After": "0"})])
    stream = io.StringIO()
    rewrites = UrlRewrites.from_sources(None, (), server.url("/pbs"))

    async def run() -> object:
        reporter = Reporter(stream, verbosity=0, live=False)
        async with Fetcher(fast(rewrites=rewrites), reporter) as fetcher:
            return await fetcher.get(PBS_DOWNLOAD_PREFIX + "SHA256SUMS")

    assert asyncio.run(run()).body == b"x"  # type: ignore[attr-defined]
    assert stream.getvalue().splitlines() == [
        f"{server.url('/pbs/SHA256SUMS')}: HTTP 503; retrying in 0.0s (1/3)"
    ]


def test_a_file_listing_that_is_a_directory_is_not_found_on_every_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows cannot open a directory as a file and says PermissionError where Linux says
    IsADirectoryError: either way a listing URL naming a directory is a 404, not an error."""
    import pylock.ownfiles

    (tmp_path / "listing").mkdir()
    assert get((tmp_path / "listing").as_uri()).status == 404  # type: ignore[attr-defined]

    def as_windows(path: Path, *args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pylock.ownfiles, "read_own_file", as_windows)
    assert get((tmp_path / "listing").as_uri()).status == 404  # type: ignore[attr-defined]
    (tmp_path / "locked.json").write_text("{}")
    with pytest.raises(DownloadError, match=r"cannot read .*locked\.json: .*Permission denied"):
        get((tmp_path / "locked.json").as_uri())


def test_authorization_does_not_follow_a_redirect_to_another_host(server: HttpServer) -> None:
    server.serve("/asset", b"binary")
    elsewhere = f"http://localhost:{server.port}/asset"
    server.redirect("/api/asset", elsewhere)
    response = get(server.url("/api/asset"), headers={"Authorization": "Bearer token"})
    assert response.body == b"binary"  # type: ignore[attr-defined]
    first, second = server.log
    assert first.headers.get("Authorization") == "Bearer token"
    assert "Authorization" not in second.headers


def test_download_unknown_learns_the_hash_once(server: HttpServer, cache: Cache) -> None:
    data = payload()
    url = server.serve("/corp/cpython-3.12.9-corp.tar.gz", data)
    digest, size, path = download_unknown(url, cache, fast(), NullReporter())
    assert (digest, size) == (sha(data), len(data))
    assert path == cache.archive_path(digest, "cpython-3.12.9-corp.tar.gz")
    assert path.read_bytes() == data
    assert files_under(cache.tmp_dir) == []
    # `sync` later finds it by hash without downloading.
    ensure_archives([Wanted(url=url, sha256=digest, size=size)], cache, fast(), NullReporter())
    assert server.hits("/corp/cpython-3.12.9-corp.tar.gz") == 1
    with pytest.raises(OfflineError):
        download_unknown(url, cache, fast(offline=True), NullReporter())


def test_import_does_not_load_aiohttp() -> None:
    code = (
        "import sys, pylock.net.fetch, pylock.sync.archives, pylock.sync.cache, pylock.urls; "
        "print(sorted(m for m in ('aiohttp', 'asyncio', 'filelock') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_cached_sync_imports_no_http_client() -> None:
    """Everything a sync of cached archives runs, without the clients and their rules:
    its options live in pylock.net.options (a few milliseconds of every warm start)."""
    code = (
        "import sys, pylock.cli, pylock.sync.execute, pylock.sync.archives, "
        "pylock.sync.install, pylock.archive.extract; "
        "print(sorted(m for m in ('pylock.net.fetch', 'pylock.net.policy', "
        "'pylock.net.stdhttp', 'http.client', 'secrets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unwritable_cache_is_a_clean_error(server: HttpServer, tmp_path: Path) -> None:
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("needs a non-root POSIX user for permission checks")
    cache = Cache(tmp_path / "ro")
    cache.tmp_dir.mkdir(parents=True)
    cache.tmp_dir.chmod(0o500)
    try:
        with pytest.raises(PylockError):
            ensure_archives([want(server, "/x", b"x")], cache, fast(), NullReporter())
    finally:
        cache.tmp_dir.chmod(0o700)


# -- several processes -----------------------------------------------------------------

FETCH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pylock.sync.cache import Cache
    from pylock.net.fetch import FetchOptions
    from pylock.sync.archives import Wanted, ensure_archives
    from pylock.progress import NullReporter

    cache = Cache(Path(sys.argv[1]))
    wanted = Wanted(url=sys.argv[2], sha256=sys.argv[3], size=int(sys.argv[4]))
    print(ensure_archives([wanted], cache, FetchOptions(), NullReporter())[wanted.sha256])
    """
)


def throttled(server: HttpServer, size: int) -> tuple[bytes, Wanted]:
    """An archive the server sends at about 500 kB/s, so that a test can act mid-download."""
    data = payload(size)
    return data, want(server, f"/{NAME}", data, always=[Throttle(50_000, 0.1)])


def spawn(cache: Cache, wanted: Wanted) -> subprocess.Popen[str]:
    """A process that fetches ``wanted`` into ``cache`` (in the test's clean environment)."""
    args = [str(cache.root), wanted.url, wanted.sha256, str(wanted.size)]
    return subprocess.Popen(
        [sys.executable, "-c", FETCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_download_one_archive_once(server: HttpServer, cache: Cache) -> None:
    data, wanted = throttled(server, 400_000)
    children = [spawn(cache, wanted) for _ in range(2)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    expected = str(cache.archive_path(wanted.sha256, NAME))
    assert outputs == [expected, expected]
    assert server.hits(f"/{NAME}") == 1
    assert Path(expected).read_bytes() == data


@pytest.mark.slow
def test_kill_mid_download_leaves_no_archive_and_a_rerun_completes(
    server: HttpServer, cache: Cache
) -> None:
    data, wanted = throttled(server, 1_000_000)
    with spawn(cache, wanted) as child:
        deadline = time.monotonic() + 30
        while not files_under(cache.tmp_dir) or files_under(cache.tmp_dir)[0].stat().st_size == 0:
            assert time.monotonic() < deadline, "the child never started downloading"
            time.sleep(0.05)
        child.kill()
        child.wait(30)
    partial = files_under(cache.tmp_dir)
    assert len(partial) == 1 and partial[0].name.startswith(wanted.sha256)
    assert 0 < partial[0].stat().st_size < len(data)
    assert files_under(cache.root / "archives") == []
    assert cache.lookup(wanted.sha256) is None
    server.serve(f"/{NAME}", data)
    paths = ensure_archives([wanted], cache, fast(), NullReporter())
    assert paths[wanted.sha256].read_bytes() == data
    assert files_under(cache.tmp_dir) == []


# -- the `pylock fetch` command --------------------------------------------------------


def write_lock(project: Path, artifacts: list[tuple[str, str, bytes]]) -> None:
    from pylock.lockfile import Artifact, dumps, make_lock

    python = locked_python(
        "app",
        "3.13.9",
        "20251014",
        [
            Artifact(platform=key, url=url, sha256=sha(data), size=len(data))
            for key, url, data in artifacts
        ],
    )
    lock = make_lock([python], config_digest="sha256:" + "0" * 64)
    project.mkdir(parents=True, exist_ok=True)
    (project / "pythons.lock").write_text(dumps(lock), encoding="utf-8")


def test_fetch_command_fills_the_cache_for_the_host_or_all_platforms(
    server: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pylock.cli import main
    from pylock.platforms import host

    linux = payload(seed=1)
    mac = payload(seed=2)
    other = "macos-aarch64" if host().key != "macos-aarch64" else "linux-x86_64-gnu"
    server.serve("/pbs/20251014/host.tar.gz", linux)
    server.serve("/pbs/20251014/other.tar.gz", mac)
    write_lock(
        tmp_path / "p",
        [
            (host().key, PBS_DOWNLOAD_PREFIX + "20251014/host.tar.gz", linux),
            (other, PBS_DOWNLOAD_PREFIX + "20251014/other.tar.gz", mac),
        ],
    )
    env = {**os.environ, "PYLOCK_CACHE_DIR": str(tmp_path / "c")}
    project = ["--project", str(tmp_path / "p")]
    assert main([*project, "fetch", "--offline"], env) == 1
    err = capsys.readouterr().err
    assert "pylock: error: offline, and archive host.tar.gz" in err
    assert "pylock fetch" in err
    assert server.log == []
    mirror = ["--mirror", server.url("/pbs")]
    assert main([*project, "fetch", *mirror], env) == 0
    assert "1 downloaded" in capsys.readouterr().err
    assert [r.path for r in server.log] == ["/pbs/20251014/host.tar.gz"]
    env["PYLOCK_MIRROR"] = server.url("/pbs")
    assert main([*project, "fetch", "--all-platforms"], env) == 0
    assert "1 downloaded" in capsys.readouterr().err
    assert server.hits("/pbs/20251014/other.tar.gz") == 1
    cache = Cache(tmp_path / "c")
    assert sorted(e.sha256 for e in cache.list()) == sorted([sha(linux), sha(mac)])
    assert main([*project, "fetch", "--all-platforms", "--offline"], env) == 0
    assert "0 downloaded" in capsys.readouterr().err
    assert main([*project, "fetch", "--rewrite", "nonsense"], env) == 2
    assert "invalid rewrite 'nonsense'" in capsys.readouterr().err


def test_fetch_command_fetches_every_archive_it_can_and_names_each_that_failed(
    server: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scale test, as for `mirror`: the first archive that failed stopped a fetch, and was
    the only one named (one run per broken file, from a mirror that lacked 150)."""
    from pylock.cli import main
    from pylock.lockfile import Artifact, dumps, make_lock
    from pylock.platforms import host

    good = payload(1000, seed=99)
    server.serve("/pbs/20251014/good.tar.gz", good)
    pythons = [
        locked_python(
            f"py-{n:02d}",
            f"3.13.{n}",
            "20251014",
            [
                Artifact(
                    platform=host().key,
                    url=f"{PBS_DOWNLOAD_PREFIX}20251014/{n:02d}.tar.gz",
                    sha256=sha(b"%d" % n),
                )
            ],
        )
        for n in range(12)
    ]
    good_one = Artifact(
        platform=host().key, url=f"{PBS_DOWNLOAD_PREFIX}20251014/good.tar.gz", sha256=sha(good)
    )
    pythons.append(locked_python("good", "3.13.99", "20251014", [good_one]))
    (tmp_path / "p").mkdir()
    lock = make_lock(pythons, config_digest="sha256:" + "0" * 64)
    (tmp_path / "p" / "pythons.lock").write_text(dumps(lock), encoding="utf-8")
    env = {**os.environ, "PYLOCK_CACHE_DIR": str(tmp_path / "c")}
    args = ["--project", str(tmp_path / "p"), "fetch", "--mirror", server.url("/pbs")]
    assert main(args, env) == 1
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if line.startswith("pylock: ")]
    names = [f"{n:02d}.tar.gz" for n in range(12)]
    # Each under its name, in its own error line; then the first 10 and how many more ...
    assert [line.split(": ")[2] for line in errors[:12]] == names
    assert errors[12] == (
        "pylock: error: 12 of 13 archives could not be fetched: "
        + ", ".join(names[:10])
        + " and 2 more"
    )
    # ... and the hint they share, once.
    assert errors[13:] == ["pylock: hint: check that the mirror holds the file asked for"]
    # The good one was fetched all the same.
    assert [e.sha256 for e in Cache(tmp_path / "c").list()] == [sha(good)]
