"""The benchmark's timeline pieces: the throttled, logging mirror and the log parsers."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench import throttled
from bench.bench_sync import Run, Runner, import_seconds, timed, timeline, tree_times


def test_throttled_mirror_keeps_its_rate_and_logs_the_transfer(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    body = os.urandom(1 << 20)
    (tmp_path / "d" / "a+b.tar.gz").write_bytes(body)
    with throttled.serve(tmp_path, bandwidth_mib=4) as mirror:
        started = time.time()
        with urllib.request.urlopen(f"{mirror.base_url}/d/a%2Bb.tar.gz") as response:
            assert response.read() == body
        ended = time.time()
        # The server logs the transfer as it starts sending and stamps its last byte just
        # after its last write, which can be a moment after the client has read everything:
        # wait for that stamp (bounded).
        transfers = mirror.take()
        deadline = time.monotonic() + 10
        while (not transfers or not transfers[0].last_byte) and time.monotonic() < deadline:
            time.sleep(0.01)
            transfers += mirror.take()
        logged = time.time()
        (transfer,) = transfers
        assert mirror.take() == []
    assert ended - started >= 0.24  # 1 MiB at 4 MiB/s
    assert started <= transfer.requested <= transfer.first_byte <= transfer.last_byte <= logged
    assert transfer.sent == transfer.size == len(body)
    assert transfer.last_byte - transfer.first_byte >= 0.2


def test_throttled_mirror_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "secret").write_text("x")
    with throttled.serve(tmp_path / "root") as mirror:
        for path in ("/../secret", "/%2e%2e/secret", "/missing"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(mirror.base_url + path)
            assert info.value.code == 404
            info.value.close()
        assert mirror.take() == []


def test_bandwidth_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError), throttled.serve(tmp_path, bandwidth_mib=0):
        pass


def test_import_seconds_sums_top_level_imports_up_to_aiohttp(tmp_path: Path) -> None:
    log = tmp_path / "importtime.log"
    log.write_text(
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        100 | site\n"
        "import time:        50 |         50 |   pylock.errors\n"
        "import time:       200 |       1000 | pylock.cli\n"
        "import time:      3000 |       3000 | aiohttp\n"
        "import time:       500 |        500 | tarfile\n"
        "garbage | not | a number\n"
    )
    assert import_seconds(log) == (4100 / 1e6, 4600 / 1e6)
    log.write_text("import time:       500 |        500 | tarfile\n")
    assert import_seconds(log) == (500 / 1e6, 500 / 1e6)


def test_timeline_from_run_transfers_and_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / ".pylock").mkdir()
    (tree / "bin" / "python3").write_text("x")
    (tree / ".pylock" / "RECORD").write_text("r")
    extracted, record = tree_times(tree)
    assert extracted == (tree / "bin" / "python3").stat().st_ctime
    assert record == (tree / ".pylock" / "RECORD").stat().st_ctime
    start = extracted - 2.0
    run = Run(seconds=3.0, max_rss=0, start=start, end=start + 3.0)
    transfer = throttled.Transfer(
        path="/a", requested=start + 0.5, first_byte=start + 0.6, last_byte=start + 1.5, sent=9
    )
    events = timeline(run, [transfer], tree)
    assert events["request"] == pytest.approx(0.5)
    assert events["last_byte"] == pytest.approx(1.5)
    assert events["extracted"] == pytest.approx(2.0)
    assert events["exit"] == pytest.approx(3.0)
    assert "first_byte" not in timeline(run, [], None)


def test_the_runner_reports_cpu_time_apart_from_wall_time(tmp_path: Path) -> None:
    import sys

    runner = Runner(settle=False)
    try:
        env = dict(os.environ)
        burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
        busy = runner.run([sys.executable, "-c", burn], env, tmp_path / "log")
        idle = runner.run(
            [sys.executable, "-c", "import time; time.sleep(0.3)"], env, tmp_path / "log"
        )
    finally:
        runner.close()
    assert busy.cpu >= 0.3 and busy.seconds >= 0.3
    assert idle.seconds >= 0.3 and idle.cpu < 0.2
    row = timed([busy, idle], [idle])
    assert row["pylock_cpu_ms"] == pytest.approx((busy.cpu + idle.cpu) / 2 * 1000)
    assert row["uv_cpu_ms"] == pytest.approx(idle.cpu * 1000)
    assert row["pylock_ms"] == pytest.approx((busy.seconds + idle.seconds) / 2 * 1000)
