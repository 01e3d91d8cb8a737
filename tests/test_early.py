"""A cold sync's head start (pylock.sync.early): downloads begun before the CLI is imported.

The console script (``pylock.entry.main``) is run in-process with ``sys.argv`` set, against
the loopback server: the sync must take the head start's downloads over (one GET per
archive), start none where the full sync would not, and stop those it does not take.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylock import entry
from pylock.settings import Settings
from pylock.sync import early
from pylock.sync.downloads import Downloads
from tests.httpserver import Stall, Throttle
from tests.syncproject import Build, Project


@pytest.fixture(autouse=True)
def _collector() -> Iterator[None]:
    """The console script freezes the collector's objects; thaw them after each test."""
    yield
    gc.unfreeze()
    gc.enable()


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[Downloads | None]:
    """What each sync's :func:`early.claim` returned."""
    seen: list[Downloads | None] = []
    real = early.claim

    def spying(*args: object, **kwargs: object) -> Downloads | None:
        taken = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(taken)
        return taken

    monkeypatch.setattr(early, "claim", spying)
    return seen


def console(
    project: Project, monkeypatch: pytest.MonkeyPatch, *argv: str, into: Path | None = None
) -> int:
    """``pylock --project ROOT sync --into INTO --mirror URL ARGV`` as the console script."""
    for name, value in project.environ.items():
        monkeypatch.setenv(name, value)
    command = ["pylock", "--project", str(project.root), "sync"]
    command += ["--into", str(into or project.into), "--mirror", project.mirror, *argv]
    monkeypatch.setattr(sys, "argv", command)
    return entry.main()


def test_a_cold_sync_takes_over_the_downloads_begun_before_the_cli(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    claims: list[Downloads | None],
) -> None:
    sync_project.lock(app_a)
    # Slow enough that the sync looks at the cache before the download ends (one that has
    # ended is a cache hit, installed from the cache: nothing left to take over).
    sync_project.serve(app_a, always=[Throttle(len(app_a.data) // 20 + 1, 0.02)])
    assert console(sync_project, monkeypatch) == 0
    [taken] = claims
    assert taken is not None, "the sync started downloads of its own"
    assert [job.python.name for job in taken.jobs] == ["app"]
    assert sync_project.server.hits(app_a.path) == 1
    assert (sync_project.into / "app" / ".pylock" / "install.json").is_file()
    assert sync_project.archive(app_a).is_file()
    assert sync_project.partials() == []
    # A second sync has nothing to download: no head start, and the fast path answers.
    claims.clear()
    assert console(sync_project, monkeypatch) == 0
    assert claims == [] and sync_project.server.hits(app_a.path) == 1


@pytest.mark.parametrize(
    "case",
    [
        "offline",
        "remote-cache",
        "rewrite",
        "verbose",
        "installed",
        "cached",
        "leftover",
        "bad-lock",
        "into-a-file",
    ],
)
def test_no_head_start_where_the_full_sync_decides_otherwise(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    argv = ["pylock", "--project", str(sync_project.root), "sync"]
    argv += ["--into", str(sync_project.into), "--mirror", sync_project.mirror]
    environ = dict(sync_project.environ)
    if case in ("installed", "cached"):
        assert sync_project.sync().code == 0
        if case == "cached":
            shutil.rmtree(sync_project.into)
    hits = sync_project.server.hits(app_a.path)
    if case == "offline":
        argv.append("--offline")
    elif case == "remote-cache":
        environ["PYLOCK_REMOTE_CACHE"] = "registry.invalid/pylock/cache"
    elif case == "rewrite":
        argv += ["--rewrite", "https://example.invalid/=" + sync_project.mirror]
    elif case == "verbose":
        argv.append("-v")
    elif case == "leftover":
        (sync_project.into / ".pylock-tmp-app-123").mkdir(parents=True)
    elif case == "bad-lock":
        (sync_project.root / "pythons.lock").write_text("[[python]\n", encoding="utf-8")
    elif case == "into-a-file":
        sync_project.into.write_text("")
    early.begin(argv[1:], Settings.from_environ(environ))
    try:
        assert early._started is None
        assert sync_project.server.hits(app_a.path) == hits
    finally:
        early.abandon()


def test_downloads_the_sync_does_not_want_are_stopped(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a, always=[Throttle(4_096, 0.05)])
    argv = ["--project", str(sync_project.root), "sync", "--into", str(sync_project.into)]
    argv += ["--mirror", sync_project.mirror]
    settings = Settings.from_environ(sync_project.environ)
    early.begin(argv, settings)
    started = early._started
    assert started is not None
    [job] = started.jobs
    # Another job list (here: none) is not what was started: stopped, nothing left.
    assert early.claim([], started.cache, started.options, started.reporter) is None
    assert early._started is None
    assert started.wait(job.artifact.sha256) is not None  # cancelled, not finished
    assert sync_project.partials() == []
    assert not sync_project.archive(app_a).exists()


def test_a_sync_that_fails_before_it_installs_stops_the_head_start(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    claims: list[Downloads | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sync_project.lock(app_a)
    sync_project.serve(app_a, always=[Throttle(4_096, 0.05)])
    blocker = sync_project.root / "not-a-dir"
    blocker.write_text("")
    # PYLOCK_BIN_DIR is not the fast path's to check, so the head start begins; the sync
    # then refuses the bin dir before it installs anything.
    monkeypatch.setenv("PYLOCK_BIN_DIR", str(blocker))
    assert console(sync_project, monkeypatch) == 1
    assert "bin" in capsys.readouterr().err
    assert claims == []
    assert sync_project.server.hits(app_a.path) == 1
    assert early._started is None
    assert sync_project.partials() == []
    assert not (sync_project.into / "app").exists()


def test_sigterm_during_the_head_start_stops_its_downloads(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``docker stop`` while the head start waits for its response: exit 143, as the CLI
    would, and the download is stopped before the process ends."""
    import signal
    import threading

    sync_project.lock(app_a)
    sync_project.serve(app_a, always=[Stall(5.0)])
    waiting = threading.Event()
    real_wait = Downloads.wait_started

    def wait_started(self: Downloads, timeout: float) -> None:
        waiting.set()
        real_wait(self, timeout)

    monkeypatch.setattr(Downloads, "wait_started", wait_started)
    stopped: list[Downloads] = []
    real_stop = Downloads.stop_all

    def stop_all(self: Downloads) -> None:
        real_stop(self)
        stopped.append(self)

    monkeypatch.setattr(Downloads, "stop_all", stop_all)

    def terminate() -> None:
        if waiting.wait(10):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    assert console(sync_project, monkeypatch) == 143
    assert capsys.readouterr().err.endswith("pylock: terminated\n")
    assert len(stopped) == 1 and early._started is None
    assert sync_project.partials() == []
    assert not sync_project.archive(app_a).exists()
    # The handler was put back.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
