"""Issue 15: the cold sync's download path (http.client in a thread) and its shared policy.

- a cold ``pylock sync`` from a loopback mirror never imports aiohttp (``-X importtime``);
- a download that another one's failure cancels stops its thread and leaves no partial file;
- the policy's hostile-input edges: ``Retry-After``, secrets in error text, proxies that
  carry a secret, ``NO_PROXY`` spellings.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pylock.errors import DownloadError
from pylock.net import policy
from pylock.progress import NullReporter
from pylock.settings import Settings
from pylock.sync.archives import ensure_archives
from pylock.sync.cache import Cache
from tests.httpserver import HttpServer, Throttle
from tests.syncproject import Build, Project
from tests.test_fetch import fast, payload, want


def imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_importtime_parser_sees_aiohttp_when_it_is_imported() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import aiohttp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "aiohttp" in imported_modules(done.stderr)


def test_cold_sync_from_a_loopback_mirror_imports_no_event_loop_and_no_aiohttp(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    argv = sync_project.sync_command()
    result = sync_project.check([argv[0], "-X", "importtime", *argv[1:]])
    assert result.code == 0, result.err
    assert sync_project.archive(app_a).read_bytes() == app_a.data
    assert sync_project.server.hits(app_a.path) == 1
    modules = imported_modules(result.err)
    assert "pylock.net.stdhttp" in modules  # the download really happened in this process
    # The download runs on a plain thread: no event loop, no aiohttp, no registry
    # client (no remote cache is set), no third-party lock module.
    heavy = {"aiohttp", "asyncio", "filelock", "pylock.net.registry"}
    assert not {m for m in modules if m in heavy or m.split(".")[0] in heavy}
    assert sync_project.verify().code == 0


def test_a_failure_stops_the_other_download_threads_and_leaves_no_partial(
    server: HttpServer, cache: Cache
) -> None:
    slow = want(server, "/slow.tar.gz", payload(400_000, seed=2), always=[Throttle(4_000, 0.05)])
    gone = server.url("/gone.tar.gz")
    from pylock.sync.archives import Wanted

    missing = Wanted(url=gone, sha256="0" * 64, size=10)
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        ensure_archives([slow, missing], cache, fast(jobs=2, retries=0), NullReporter())
    # The slow one would take 5 s; its thread saw the stop event within a chunk.
    assert time.monotonic() - started < 3
    assert "404" in info.value.message
    tmp = cache.root / "tmp"
    assert not tmp.is_dir() or list(tmp.glob("*.part")) == []
    assert cache.lookup(slow.sha256) is None


# -- policy edges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("-1", 0.0), ("1e308", policy.MAX_BACKOFF), ("inf", policy.MAX_BACKOFF),
     ("nan", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("", None),
     ("9" * 5000, policy.MAX_BACKOFF)],
)  # fmt: skip
def test_retry_after_is_bounded_whatever_the_server_says(
    value: str, expected: float | None
) -> None:
    assert policy.retry_after({"Retry-After": value}) == expected


def test_backoff_delay_doubles_with_jitter_and_is_capped() -> None:
    error = policy.Retryable("HTTP 503")
    first = policy.backoff_delay(error, 1, 1.0)
    assert 0.5 <= first <= 1.5
    assert policy.backoff_delay(error, 40, 1.0) <= policy.MAX_BACKOFF * 1.5
    told = policy.Retryable("HTTP 429", retry_after=2.0)
    assert policy.backoff_delay(told, 3, 1.0) == 2.0


def test_error_text_never_carries_a_proxy_or_url_secret() -> None:
    error = OSError("cannot connect to proxy http://me:pr0xy-s3cret@10.0.0.1:3128\x1b[2J")
    text = policy.reason(error)
    assert "pr0xy-s3cret" not in text and "\x1b" not in text
    assert text.startswith("OSError: ")
    huge = policy.reason(OSError("x" * 10_000_000))
    assert len(huge) < 400


def test_proxy_selection_reads_only_the_settings() -> None:
    settings = Settings.from_environ(
        {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2", "no_proxy": ""}
    )
    assert policy.proxy_for("https://a.example/x", settings) == "http://low:1"
    assert policy.proxy_for("file:///x", settings) is None
    assert policy.proxy_for("https://a.example:bad/x", settings) == "http://low:1"
    blank = Settings.from_environ({"HTTPS_PROXY": "   "})
    assert blank.https_proxy is None and policy.proxy_for("https://a.example/", blank) is None


def test_netrc_that_is_garbage_or_a_directory_gives_no_credentials(tmp_path: Path) -> None:
    garbage = tmp_path / "netrc"
    garbage.write_bytes(b"machine\0\xff\xfe login")
    for path in (garbage, tmp_path):
        settings = Settings.from_environ({"NETRC": str(path)})
        assert policy.netrc_authorization("https://a.example/x", settings) is None


def test_bench_imports_done_is_marked_by_the_http_client_the_sync_loads(tmp_path: Path) -> None:
    from bench.bench_sync import import_seconds

    log = tmp_path / "importtime.log"
    log.write_text(
        "import time:       100 |        100 | site\n"
        "import time:       200 |       1000 | pylock.cli\n"
        "import time:       900 |        900 | pylock.net.stdhttp\n"
        "import time:       500 |        500 | tarfile\n"
    )
    assert import_seconds(log) == (2000 / 1e6, 2500 / 1e6)
