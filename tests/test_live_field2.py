"""Field test 2 of the live listings: hostile listings, damaged caches, odd local files."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pylock.cli import main
from pylock.errors import DownloadError, OfflineError, PylockError, UpstreamError
from pylock.index.live import RefreshNeeds, load_uv_downloads_json, refresh_index
from pylock.index.metadata import (
    CachedDocument,
    MetadataStore,
    rate_limit_hint,
    refusal_hint,
)
from pylock.index.model import Index
from pylock.index.pbs import parse_sha256sums
from pylock.index.pypy import builds_from_versions
from pylock.lockfile import Artifact, LockedPython, make_lock, refuse_unlockable
from pylock.net.fetch import Fetcher, FetchOptions, Timeouts
from pylock.progress import Reporter
from pylock.settings import Settings
from pylock.sync.cache import Cache
from pylock.urls import UrlRewrites
from pylock.versions import Implementation
from tests.httpserver import HttpServer, Status, Throttle
from tests.indexdata import index_of, pbs, uv_entry
from tests.test_live import Recorder
from tests.upstream_server import (
    LINUX,
    UpstreamServer,
    pbs_install_only,
    pbs_name,
    sha256,
)

CPYTHON = frozenset({Implementation.CPYTHON})
PYPY = frozenset({Implementation.PYPY})
PBS_REPO = "astral-sh/python-build-standalone"
API_PATH = f"/api/repos/{PBS_REPO}/releases"
LATEST_PATH = f"/raw/{PBS_REPO}/latest-release/latest-release.json"


def rewrite_pairs(base: str) -> list[str]:
    return [
        f"https://github.com/={base}/gh/",
        f"https://api.github.com/={base}/api/",
        f"https://raw.githubusercontent.com/={base}/raw/",
        f"https://downloads.python.org/={base}/dpo/",
        f"https://pypy.org/={base}/pypyorg/",
    ]


def options(base: str, *, offline: bool = False, **changes: Any) -> FetchOptions:
    rewrites = UrlRewrites.from_sources(None, rewrite_pairs(base), None, None)
    return FetchOptions(rewrites=rewrites, offline=offline, retries=1, backoff=0.01, **changes)


def refresh(
    base: str,
    cache: Cache,
    *,
    need: frozenset[Implementation] = CPYTHON,
    offline: bool = False,
    reporter: Reporter | None = None,
    token: str | None = None,
) -> Index:
    return refresh_index(
        index_of(pbs("3.13.7", "20250918", "linux-x86_64-gnu")),
        fetch_options=options(base, offline=offline),
        metadata_dir=cache.metadata_dir,
        reporter=reporter or Recorder(),
        need=RefreshNeeds(implementations=need),
        settings=Settings.from_environ({"GITHUB_TOKEN": token} if token else {}),
    )


def new_release(upstream: UpstreamServer, tag: str = "20251014") -> bytes:
    body = pbs_install_only("3.13.9")
    release = upstream.add_pbs_release(
        tag, "2025-10-14T18:00:00Z", {pbs_name("3.13.9", tag, LINUX): body}
    )
    return release.sums_text().encode()


def ends_within(seconds: float, work: Callable[[], object], fifo: Path) -> object:
    """Run ``work`` on a thread; if it still blocks after ``seconds``, free it and fail.

    A reader blocked opening ``fifo`` is released by opening its write end.
    """
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"reading {fifo.name} blocked for more than {seconds} s")
    return outcome[0]


# -- 1. PyPy versions.json download_url --------------------------------------------------------

PYPY_NAME = "pypy3.11-v7.3.99-linux64.tar.bz2"
PYPY_GOOD = f"https://downloads.python.org/pypy/{PYPY_NAME}"


def versions_json(*links: str) -> list[dict[str, Any]]:
    files = [
        {"filename": PYPY_NAME, "arch": "x64", "platform": "linux", "download_url": link}
        for link in links
    ]
    return [{"pypy_version": "7.3.99", "python_version": "3.11.99", "stable": True, "files": files}]


BAD_PYPY_LINKS = [
    f"javascript:alert(1)//{PYPY_NAME}",
    f"https://u:hunter2@evil.example/{PYPY_NAME}",
    f"https://downloads.python.org/pypy/{PYPY_NAME}?token=hunter2",
    "https://downloads.python.org/pypy/pypy3.11-v7.3.99 linux64.tar.bz2",
    f"file:///srv/pypy/{PYPY_NAME}",
    "https://downloads.python.org/pypy/pypy3.11-v7.3.98-linux64.tar.bz2",
    f"https://[/{PYPY_NAME}",  # urlsplit raises for it
    f"https://downloads.python.org:99999/pypy/{PYPY_NAME}",
]


@pytest.mark.parametrize("link", BAD_PYPY_LINKS)
def test_pypy_download_url_unfit_for_a_lock_is_skipped(link: str) -> None:
    listing = builds_from_versions(versions_json(link), {PYPY_NAME: "ab" * 32})
    assert listing.builds == ()
    (reason,) = listing.unfit
    assert PYPY_NAME in reason
    assert "hunter2" not in reason


def test_pypy_refresh_warns_and_keeps_only_lockable_files(server: HttpServer, cache: Cache) -> None:
    data = versions_json(BAD_PYPY_LINKS[1])
    data[0]["files"].append(
        {
            "filename": "pypy3.11-v7.3.99-macos_arm64.tar.bz2",
            "arch": "arm64",
            "platform": "darwin",
            "download_url": "https://downloads.python.org/pypy/pypy3.11-v7.3.99-macos_arm64.tar.bz2",
        }
    )
    server.serve("/dpo/pypy/versions.json", json.dumps(data).encode())
    sums = f"<pre>{'ab' * 32}  {PYPY_NAME}\n{'cd' * 32}  pypy3.11-v7.3.99-macos_arm64.tar.bz2\n"
    server.serve("/pypyorg/checksums.html", sums.encode())
    reporter = Recorder()
    index = refresh(server.base_url, cache, need=PYPY, reporter=reporter)
    pypy = [b for b in index.builds if b.implementation is Implementation.PYPY]
    assert [b.filename for b in pypy] == ["pypy3.11-v7.3.99-macos_arm64.tar.bz2"]
    (warning,) = reporter.warnings
    assert "1 file(s)" in warning and "carries credentials" in warning
    assert "hunter2" not in warning


# -- 2. credentials never reach pythons.lock ---------------------------------------------------

SECRET_URLS = [
    "https://user:hunter2@mirror.example/x/"
    "cpython-3.13.7%2B20250918-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
    "https://mirror.example/x/"
    "cpython-3.13.7%2B20250918-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    "?token=hunter2",
]


@pytest.mark.parametrize("url", SECRET_URLS, ids=["userinfo", "token"])
def test_downloads_json_with_credentials_is_refused(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"cpython-3.13.7-linux-x86_64-gnu": uv_entry(url=url)}))
    (project / "pythons.toml").write_text(
        '[python.app]\nversion = "3.13.7"\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    for source in (str(path), path.as_uri()):
        command = ["--project", str(project), "lock", "--python-downloads-json", source]
        assert main(command, environ=environ) == 1
        err = capsys.readouterr().err
        assert f"pylock: error: {source}: entry 'cpython-3.13.7-linux-x86_64-gnu': URL" in err
        assert "carries credentials, which would be written to pythons.lock" in err
        assert "PYLOCK_URL_REWRITES" in err
        assert "hunter2" not in err
        assert not (project / "pythons.lock").exists()


def test_lock_refuses_to_carry_credentials_over_from_an_old_lock(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A hand-edited lock with a token in a URL: a later `lock` kept the entry (minimal
    # change) and wrote the token again.
    (project / "pythons.toml").write_text(
        '[python.app]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache"), "PYLOCK_OFFLINE": "1"}
    assert main(["--project", str(project), "lock"], environ=environ) == 0
    lock = project / "pythons.lock"
    text = lock.read_text(encoding="utf-8")
    edited = text.replace("https://github.com/", "https://ci:hunter2@github.com/", 1)
    assert edited != text
    lock.write_text(edited, encoding="utf-8")
    (project / "pythons.toml").write_text(
        '[python.app]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu"]\n'
        '[python.tool]\nversion = "3.12"\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    capsys.readouterr()
    assert main(["--project", str(project), "lock"], environ=environ) == 1
    err = capsys.readouterr().err
    assert "refusing to write pythons.lock: python 'app'" in err
    assert "hunter2" not in err
    assert lock.read_text(encoding="utf-8") == edited  # not rewritten


@pytest.mark.parametrize("url", SECRET_URLS, ids=["userinfo", "token"])
def test_a_new_lock_with_credentials_is_refused(url: str) -> None:
    artifact = Artifact(platform="linux-x86_64-gnu", url=url, sha256="ab" * 32)
    python = LockedPython(
        name="app", implementation=Implementation.CPYTHON, version="3.13.7", artifacts=(artifact,)
    )
    lock = make_lock([python], config_digest="sha256:" + "0" * 64)
    with pytest.raises(PylockError, match="carries credentials") as caught:
        refuse_unlockable(lock)
    assert "'app'" in str(caught.value) and "hunter2" not in str(caught.value)
    assert caught.value.hint is not None and "upgrade-python app" in caught.value.hint


def test_a_listing_url_no_lock_can_hold_is_refused_before_it_is_written() -> None:
    """Live-listing attack: a GraalPy asset named "....tar.gz\\n" passed the name parser
    (`$` matches before a final line break), and `lock --refresh` wrote a lock whose URL
    its own reader refused; every later `lock` re-resolved everything."""
    from pylock.index.names import parse_graalpy_filename, parse_pbs_filename

    name = "graalpy3.12-25.0.1-linux-amd64.tar.gz"
    assert parse_graalpy_filename(name) is not None
    assert parse_graalpy_filename(name + "\n") is None
    pbs = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz"
    assert parse_pbs_filename(pbs) is not None and parse_pbs_filename(pbs + "\n") is None
    url = f"https://github.com/oracle/graalpython/releases/download/graal-25.0.1/{name}\n"
    artifact = Artifact(platform="linux-x86_64-gnu", url=url, sha256="ab" * 32)
    python = LockedPython(
        name="gp", implementation=Implementation.GRAALPY, version="3.12.8", artifacts=(artifact,)
    )
    with pytest.raises(PylockError, match=r"refusing to write pythons\.lock") as caught:
        refuse_unlockable(make_lock([python], config_digest="sha256:" + "0" * 64))
    assert caught.value.hint is not None and "--refresh" in caught.value.hint


# -- 3. and 4. damaged metadata cache entries ------------------------------------------------

DAMAGE: dict[str, Callable[[dict[str, Any]], object]] = {
    "list": lambda meta: [],
    "infinite-checked-at": lambda meta: {**meta, "checked-at": float("inf")},
    "nan-checked-at": lambda meta: {**meta, "checked-at": float("nan")},
    "int-etag": lambda meta: {**meta, "etag": 5},
    "crlf-etag": lambda meta: {**meta, "etag": '"a"\r\nX-Evil: 1'},
    "crlf-last-modified": lambda meta: {**meta, "last-modified": "x\r\nX-Evil: 1"},
    "int-link": lambda meta: {**meta, "link": 5},
    "string-status": lambda meta: {**meta, "status": "200"},
}


def meta_files(cache: Cache) -> list[Path]:
    return sorted(cache.metadata_dir.glob("*.json"))


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_metadata_record_counts_as_absent(
    tmp_path: Path, damage: Callable[[dict[str, Any]], object]
) -> None:
    store = MetadataStore(tmp_path)
    url = "https://api.github.com/repos/x/y/releases?page=1"
    store.save(CachedDocument(url=url, status=200, body=b"[]", checked_at=1.0, etag='"e"'))
    assert store.load(url) is not None
    (meta_path,) = tmp_path.glob("*.json")
    meta_path.write_text(json.dumps(damage(json.loads(meta_path.read_text()))))
    assert store.load(url) is None


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_cache_is_refetched_online_and_missing_offline(
    upstream: UpstreamServer, cache: Cache, damage: Callable[[dict[str, Any]], object]
) -> None:
    new_release(upstream)
    refresh(upstream.base, cache)
    for path in meta_files(cache):
        path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    with pytest.raises(OfflineError, match="metadata cache has no copy"):
        refresh(upstream.base, cache, offline=True)
    upstream.log.clear()
    assert any(b.build == "20251014" for b in refresh(upstream.base, cache).builds)
    # Fetched without revalidation headers, and overwritten: offline works again.
    assert {r.status for r in upstream.log} == {200}
    assert all("If-None-Match" not in r.headers for r in upstream.log)
    refresh(upstream.base, cache, offline=True)


def test_pipe_in_place_of_a_metadata_record(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    refresh(upstream.base, cache)
    record = next(p for p in meta_files(cache) if "latest-release" in p.name)
    record.unlink()
    os.mkfifo(record)
    outcome = ends_within(10, lambda: refresh(upstream.base, cache, offline=True), record)
    assert isinstance(outcome, OfflineError)


# -- 5. --python-downloads-json reads a bounded regular file ---------------------------------


def test_downloads_json_pipe_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for source in (str(fifo), fifo.as_uri()):
        outcome = ends_within(
            10,
            lambda source=source: load_uv_downloads_json(  # type: ignore[misc]
                source, fetch_options=FetchOptions(), reporter=Recorder()
            ),
            fifo,
        )
        assert isinstance(outcome, PylockError)
        assert "not a regular file" in str(outcome)
        assert outcome.hint is not None and "regular file" in outcome.hint


def test_downloads_json_device_and_huge_file_are_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate(257 * 1024 * 1024)  # sparse: nothing is written
    for source, expected in (("/dev/zero", "not a regular file"), (str(huge), "larger than")):
        with pytest.raises(PylockError, match=expected):
            load_uv_downloads_json(source, fetch_options=FetchOptions(), reporter=Recorder())


def test_downloads_json_file_url_is_read_as_every_file_url(tmp_path: Path) -> None:
    """One reading of ``file://`` URLs everywhere: decoded once (a literal ``%`` in a file
    name is ``%25``), ``localhost`` is this machine, and another host is refused, not read
    from this machine's disk as if the host were not there."""
    (tmp_path / "a%41.json").write_text("{}")
    (tmp_path / "aA.json").write_text('{"not": "this one"}')
    literal = (tmp_path / "a%41.json").as_uri()
    assert literal.endswith("/a%2541.json")
    for source in (literal, literal.replace("file://", "file://localhost", 1)):
        index = load_uv_downloads_json(source, fetch_options=FetchOptions(), reporter=Recorder())
        assert index.builds == ()
    if os.name == "nt":
        return  # there a host is a share's server (see test_portability)
    elsewhere = f"file://fileserver{tmp_path}/a%2541.json"
    with pytest.raises(PylockError, match="unsupported file URL with a host"):
        load_uv_downloads_json(elsewhere, fetch_options=FetchOptions(), reporter=Recorder())


def test_file_listing_through_a_rewrite_is_read_bounded(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.mkfifo(mirror / "versions.json")
    (mirror / "dir.json").mkdir()
    rewrites = UrlRewrites.from_sources(None, [f"https://h.example/={mirror.as_uri()}/"])

    async def get(name: str) -> object:
        async with Fetcher(FetchOptions(rewrites=rewrites)) as fetcher:
            try:
                return (await fetcher.get(f"https://h.example/{name}")).status
            except DownloadError as exc:
                return exc

    outcome = ends_within(10, lambda: asyncio.run(get("versions.json")), mirror / "versions.json")
    assert isinstance(outcome, DownloadError) and "not a regular file" in str(outcome)
    # A directory still reads as "no such document", as before.
    assert asyncio.run(get("dir.json")) == 404


# -- 6. a listing body that drips ---------------------------------------------------------------


def test_listing_body_too_slow_is_retried_then_fails(server: HttpServer) -> None:
    url = server.serve("/slow.json", b"[" + b" " * 60 + b"]", always=[Throttle(1, 0.05)])
    slow = Timeouts(slow_bytes=1024, slow_window=0.5)
    fetch_options = FetchOptions(retries=1, backoff=0.01, timeouts=slow)

    async def get() -> None:
        async with Fetcher(fetch_options) as fetcher:
            await fetcher.get(url)

    started = time.monotonic()
    with pytest.raises(DownloadError, match="too slow"):
        asyncio.run(get())
    assert server.hits("/slow.json") == 2
    assert time.monotonic() - started < 3


# -- 7. and 8. SHA256SUMS text ------------------------------------------------------------------


def test_garbled_sha256sums_line_is_cut_in_the_error() -> None:
    with pytest.raises(UpstreamError, match="line 1 is not") as caught:
        parse_sha256sums("A" * 10_000_000, url="SHA256SUMS")
    assert len(str(caught.value)) < 500


def test_sha256sums_with_a_byte_order_mark(upstream: UpstreamServer, cache: Cache) -> None:
    sums = new_release(upstream)
    upstream.pbs[-1].sums_body = b"\xef\xbb\xbf" + sums.replace(b"\n", b"\r\n")
    index = refresh(upstream.base, cache)
    assert any(b.build == "20251014" and b.sha256 for b in index.builds)


# -- 9. and 10. the GitHub releases API ---------------------------------------------------------

NEW_TAG = "20261120"


def serve_latest(server: HttpServer) -> None:
    """latest-release.json and its SHA256SUMS: enough for a refresh without the API."""
    server.serve(LATEST_PATH, json.dumps({"version": 1, "tag": NEW_TAG}).encode())
    name = pbs_name("3.13.99", NEW_TAG, LINUX)
    body = pbs_install_only("3.13.99")
    sums = f"{sha256(body)}  {name}\n".encode()
    server.serve(f"/gh/{PBS_REPO}/releases/download/{NEW_TAG}/SHA256SUMS", sums)


@pytest.mark.parametrize(("status", "token"), [(401, "ghp_SECRETTOKEN123"), (403, None)])
def test_api_refusal_by_a_stand_in_asks_for_its_own_credentials(
    server: HttpServer, cache: Cache, status: int, token: str | None
) -> None:
    """The rewrite sends the API to another host, which GITHUB_TOKEN never goes to: the
    hint names that host and how to give it credentials, not GitHub's token."""
    serve_latest(server)
    body = json.dumps({"message": "Bad credentials", "status": str(status)}).encode()
    server.serve(API_PATH, b"", always=[Status(status, {"x-ratelimit-remaining": "59"}, body)])
    reporter = Recorder()
    index = refresh(server.base_url, cache, reporter=reporter, token=token)
    assert any(b.build == NEW_TAG for b in index.builds)
    assert all("Authorization" not in r.headers for r in server.requests(API_PATH))
    (warning,) = reporter.warnings
    assert f"HTTP {status}" in warning and "Bad credentials" in warning
    assert "the answer came from 127.0.0.1, which takes the place of api.github.com" in warning
    assert "GITHUB_TOKEN goes to GitHub only" in warning
    assert "add a netrc entry for 127.0.0.1" in warning
    assert "GitHub refused it" not in warning
    assert f"adding only the latest release {NEW_TAG}" in warning
    assert "SECRETTOKEN" not in warning


API_URL = f"https://api.github.com/repos/{PBS_REPO}/releases"


def refusal(answered: str, token: bool) -> str:
    return refusal_hint(API_URL, answered, token=token)


def rate_limited(answered: str, token: bool) -> str:
    return rate_limit_hint(API_URL, answered, token=token)


@pytest.mark.parametrize(
    ("hint", "token", "says"),
    [
        (refusal, True, "GITHUB_TOKEN is set, and GitHub refused it"),
        (refusal, False, "GitHub refused an anonymous request: set GITHUB_TOKEN"),
        (rate_limited, True, "GITHUB_TOKEN is set but its quota is used up: wait for the"),
        (rate_limited, False, "set GITHUB_TOKEN to a GitHub token (5000 requests an hour"),
    ],
)
def test_an_answer_from_github_itself_names_the_token(
    hint: Callable[[str, bool], str], token: bool, says: str
) -> None:
    assert hint(API_URL, token).startswith(says)
    # A redirect to another origin carried no token either.
    other = hint("https://objects.githubusercontent.com/x", token)
    assert other.startswith("the answer came from objects.githubusercontent.com")


def test_rate_limit_at_a_stand_in_asks_for_its_own_credentials(
    server: HttpServer, cache: Cache
) -> None:
    serve_latest(server)
    limited = Status(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4102444800"})
    server.serve(API_PATH, b"", always=[limited])
    reporter = Recorder()
    refresh(server.base_url, cache, reporter=reporter, token="ghp_SECRETTOKEN123")
    (warning,) = reporter.warnings
    assert "rate limit exhausted" in warning
    assert "add a netrc entry for 127.0.0.1" in warning and "or wait" in warning
    assert "quota is used up" not in warning and "SECRETTOKEN" not in warning


def test_release_history_cut_off_is_reported_once(upstream: UpstreamServer, cache: Cache) -> None:
    # More pages of releases newer than the index than a refresh reads (10 a page):
    # pre-releases, whose SHA256SUMS a refresh does not read.
    for number in range(41 * 10):
        day = time.strftime("%Y%m%d", time.gmtime(1_790_000_000 + number * 86400))
        published = f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z"
        upstream.add_pbs_release(day, published, {}, latest=False).prerelease = True
    upstream.latest_tag = day
    reporter = Recorder()
    refresh(upstream.base, cache, reporter=reporter)
    assert len(upstream.api_requests()) == 40
    cut = [w for w in reporter.warnings if "cut off" in w]
    assert len(cut) == 1
    assert "40 pages" in cut[0]


def test_a_server_that_answers_every_page_with_the_first_is_read_once(
    server: HttpServer, cache: Cache
) -> None:
    """A proxy that drops the query string: page 2 is page 1 again. Reading on spent 40
    requests of the API's 60 an hour, and said the history was cut off."""
    serve_latest(server)
    page = [{"tag_name": "20261119", "published_at": "2026-11-19T00:00:00Z", "assets": []}]
    link = f'<https://api.github.com/repos/{PBS_REPO}/releases?page=2>; rel="next"'
    server.serve(API_PATH, json.dumps(page).encode(), headers={"Link": link})
    reporter = Recorder()
    refresh(server.base_url, cache, reporter=reporter)
    assert server.hits(API_PATH) == 2
    (warning,) = [w for w in reporter.warnings if "page" in w]
    assert "page=2 answered with the releases of page 1 again" in warning
    assert "ignores the `page` parameter" in warning
