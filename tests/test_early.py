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
from pylock.sync import downloads as downloads_module
from pylock.sync import early
from pylock.sync.downloads import Downloads
from tests.httpserver import HttpServer, Stall, Throttle
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


def test_a_head_start_over_https_makes_its_tls_context_beside_the_download_thread(
    tmp_path: Path,
    tls_server: tuple[HttpServer, Path],
    app_a: Build,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    claims: list[Downloads | None],
    tls_made: list[str],
) -> None:
    import pylock.settings
    from pylock.net import tls

    # The head start's guess asks for it, before the lock is parsed (start_downloads asks
    # again, and finds it under way).
    callers: list[str] = []
    real_prepare = tls.prepare_ssl_context

    def recording(settings: Settings) -> None:
        callers.append(sys._getframe(1).f_code.co_name)
        real_prepare(settings)

    monkeypatch.setattr(tls, "prepare_ssl_context", recording)
    monkeypatch.setattr(pylock.settings, "usable_cpus", lambda: 2)
    server, ca = tls_server
    (tmp_path / "project").mkdir()
    project = Project(tmp_path / "project", server, capsys)
    project.environ["SSL_CERT_FILE"] = str(ca)
    project.lock(app_a)
    project.serve(app_a, always=[Throttle(len(app_a.data) // 20 + 1, 0.02)])
    assert project.mirror.startswith("https://")
    assert console(project, monkeypatch) == 0
    [taken] = claims
    assert taken is not None
    assert (project.into / "app" / ".pylock" / "install.json").is_file()
    # Made once, on its own thread, and used by the download (which made none).
    assert tls_made == ["pylock-tls"]
    assert callers == ["_start", "start_downloads"]


@pytest.mark.parametrize(
    ("data", "mirror", "rewrites", "likely"),
    [
        (b'url = "https://github.com/x.tar.gz"', None, None, True),
        (b'url = "https://github.com/x.tar.gz"', "https://mirror.example/", None, True),
        (b'url = "https://github.com/x.tar.gz"', "http://127.0.0.1:8000/", None, False),
        (b'url = "https://github.com/x.tar.gz"', None, "https://github.com/=http://m/", False),
        (b'url = "http://example.com/x.tar.gz"', None, None, False),
    ],
)
def test_the_head_start_guesses_tls_from_the_lock_bytes(
    data: bytes,
    mirror: str | None,
    rewrites: str | None,
    likely: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pylock.settings

    settings = Settings.from_environ({"PYLOCK_URL_REWRITES": rewrites} if rewrites else {})
    monkeypatch.setattr(pylock.settings, "usable_cpus", lambda: 2)
    assert early._tls_likely(data, mirror, settings) is likely
    # One CPU: loading beside the imports would only delay them (87 ms, measured).
    monkeypatch.setattr(pylock.settings, "usable_cpus", lambda: 1)
    assert early._tls_likely(data, mirror, settings) is False


def test_a_head_start_over_plain_http_makes_no_tls_context(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    claims: list[Downloads | None],
    tls_made: list[str],
) -> None:
    # The lock's URLs are https, but the mirror they are fetched from is not.
    sync_project.lock(app_a)
    sync_project.serve(app_a, always=[Throttle(len(app_a.data) // 20 + 1, 0.02)])
    assert console(sync_project, monkeypatch) == 0
    [taken] = claims
    assert taken is not None
    assert tls_made == []


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
        "into-an-option",
        "bad-colour",
        "bin-dir",
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
    elif case == "into-an-option":
        # argparse: `--into` without a value; the scanner would take `--offline` for it.
        argv += ["--into", "--offline"]
    elif case == "bad-colour":
        argv[1:1] = ["--color", "sometimes"]
    elif case == "bin-dir":
        environ["PYLOCK_BIN_DIR"] = str(sync_project.root / "bin")
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


def test_a_sync_that_fails_before_it_installs_stops_the_head_start_then_says_why(
    sync_project: Project,
    app_a: Build,
    monkeypatch: pytest.MonkeyPatch,
    claims: list[Downloads | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Field test 7: on a terminal, the head start's bars were cleared after the error was
    printed below them, and took the error along."""
    import pylock.lockio
    import pylock.progress
    from pylock.errors import PylockError

    sync_project.lock(app_a)
    sync_project.serve(app_a, always=[Throttle(4_096, 0.05)])

    def unreadable(path: Path) -> object:
        raise PylockError("the lock went away", hint="put it back")

    # The lock is gone by the time the CLI reads it: the head start had begun.
    monkeypatch.setattr(pylock.lockio, "read_lock_and_digest", unreadable)
    # A terminal: live progress bars, cleared with cursor-up and erase-line.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(pylock.progress, "escapes_work", lambda stream: True)
    assert console(sync_project, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "Downloading" in err, "no bar was drawn: the test shows nothing"
    assert "the lock went away" in err.rpartition("\033[K")[2]
    assert "put it back" in err.rpartition("\033[K")[2]
    assert claims == []
    assert sync_project.server.hits(app_a.path) == 1
    assert early._started is None
    assert sync_project.partials() == []
    assert not (sync_project.into / "app").exists()


def _slow_head_start(sync_project: Project, build: Build) -> Downloads:
    """``build`` locked and served slowly, and a head start's download of it under way."""
    sync_project.lock(build)
    sync_project.serve(build, always=[Throttle(4_096, 0.05)])
    argv = ["--project", str(sync_project.root), "sync", "--into", str(sync_project.into)]
    early.begin(
        [*argv, "--mirror", sync_project.mirror], Settings.from_environ(sync_project.environ)
    )
    started = early._started
    assert started is not None
    return started


def test_an_interrupt_while_the_head_start_stops_waits_for_its_clean_up(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test 7: a second signal while the downloads were being stopped ended the
    process with their partial files left."""
    started = _slow_head_start(sync_project, app_a)
    real_wait = Downloads.wait
    waits: list[str] = []

    def interrupted_once(self: Downloads, sha256: str) -> BaseException | None:
        waits.append(sha256)
        if len(waits) == 1:
            raise KeyboardInterrupt
        return real_wait(self, sha256)

    monkeypatch.setattr(Downloads, "wait", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        early.abandon()
    assert len(waits) == 2 and started.stop.is_set()
    assert sync_project.partials() == []
    assert early._started is None


class _InterruptedImport:
    """A second Ctrl-C while the credential helpers' module is imported (the first time,
    about 10 ms): ``KeyboardInterrupt`` from that import, once, as the signal's handler
    would raise it. (Importing the module afresh instead would leave two of it, and the
    later tests' helpers cancelled in one of them.)"""

    def __init__(self) -> None:
        self.raised = 0
        self.real = downloads_module._cancel_helpers

    def __call__(self) -> None:
        if not self.raised:
            self.raised += 1
            raise KeyboardInterrupt
        self.real()


@pytest.fixture
def interrupted_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[_InterruptedImport]:
    """The credential helpers' import, interrupted the first time; the helpers may run
    again afterwards (the stop cancelled them for this process)."""
    from pylock.net.dockerauth import resume_helpers

    interrupted = _InterruptedImport()
    monkeypatch.setattr(downloads_module, "_cancel_helpers", interrupted)
    yield interrupted
    resume_helpers()


def test_a_second_interrupt_while_the_head_start_halts_still_stops_it(
    sync_project: Project, app_a: Build, interrupted_import: _InterruptedImport
) -> None:
    """Signal attack: `halt` imported the credential helpers' module before it told the
    downloads to stop, and outside the clean-up's protection: a second Ctrl-C in those
    10 ms left the download running and its partial file in the cache's tmp/."""
    started = _slow_head_start(sync_project, app_a)
    with pytest.raises(KeyboardInterrupt):
        early.abandon()
    assert interrupted_import.raised == 1
    assert started.stop.is_set()
    assert started.wait(started.jobs[0].artifact.sha256) is not None  # stopped, and ended
    assert sync_project.partials() == []


def test_a_second_interrupt_while_the_installs_halt_stops_every_download(
    sync_project: Project, monkeypatch: pytest.MonkeyPatch, interrupted_import: _InterruptedImport
) -> None:
    """Signal attack: in the thread-pool install loop, a second Ctrl-C while `halt` imported
    the credential helpers' module left the loop before the downloads were told to stop:
    the sync waited for both to finish, installed both, and never said so."""
    import time

    from pylock.sync import execute
    from tests.syncproject import make_build

    builds = [make_build(name, big=800_000) for name in ("app", "tool")]
    sync_project.lock(*builds)
    for build in builds:
        sync_project.serve(build, always=[Throttle(4_096, 0.05)])  # 80 KB/s: 10 s each
    monkeypatch.setattr("pylock.settings.usable_cpus", lambda: 2)  # the pool, on any machine
    real = execute._Installer.install_one
    calls: list[str] = []

    def first_interrupted(self: execute._Installer, job: object) -> bool:
        calls.append("install")
        if len(calls) == 1:
            time.sleep(0.2)  # the downloads are under way
            raise KeyboardInterrupt
        return real(self, job)  # type: ignore[arg-type]

    monkeypatch.setattr(execute._Installer, "install_one", first_interrupted)
    began = time.monotonic()
    assert console(sync_project, monkeypatch, "--jobs", "2") == 130
    assert time.monotonic() - began < 5  # each download alone takes 10 s
    assert interrupted_import.raised == 1
    assert sync_project.partials() == []
    assert not (sync_project.into / "app").exists()
    assert not (sync_project.into / "tool").exists()


def test_a_download_that_ended_before_the_sync_looked_is_not_fetched_again(
    sync_project: Project, app_a: Build, tool: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test 7: one archive stored before the sync claimed the head start made it
    stop the others, and download them again from the start."""
    import time

    from pylock import cli

    sync_project.lock(app_a, tool)
    sync_project.serve(app_a)
    sync_project.serve(tool, always=[Throttle(len(tool.data) // 40 + 1, 0.02)])
    settings = Settings.from_environ(sync_project.environ)
    argv = ["--project", str(sync_project.root), "sync", "--into", str(sync_project.into)]
    argv += ["--mirror", sync_project.mirror]
    early.begin(argv, settings)
    started = early._started
    assert started is not None and len(started.jobs) == 2
    deadline = time.monotonic() + 10
    while not sync_project.archive(app_a).is_file() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sync_project.archive(tool).is_file(), "too fast to show anything"
    taken: list[Downloads | None] = []
    real_claim = early.claim

    def spying(*args: object, **kwargs: object) -> Downloads | None:
        taken.append(real_claim(*args, **kwargs))  # type: ignore[arg-type]
        return taken[-1]

    monkeypatch.setattr(early, "claim", spying)
    try:
        assert cli.main(argv, settings=settings) == 0
    finally:
        early.abandon()
    assert taken == [started]
    assert sync_project.server.hits(app_a.path) == 1
    assert sync_project.server.hits(tool.path) == 1
    for name in ("app", "tool"):
        assert (sync_project.into / name / ".pylock" / "install.json").is_file()


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
    started: list[Downloads] = []

    def wait_started(self: Downloads, timeout: float) -> None:
        started.append(self)
        waiting.set()
        real_wait(self, timeout)

    monkeypatch.setattr(Downloads, "wait_started", wait_started)

    def terminate() -> None:
        if waiting.wait(10):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    assert console(sync_project, monkeypatch) == 143
    assert capsys.readouterr().err.endswith("pylock: terminated\n")
    [downloads] = started
    assert downloads.stop.is_set()
    assert downloads.wait(downloads.jobs[0].artifact.sha256) is not None  # stopped
    assert early._started is None
    assert sync_project.partials() == []
    assert not sync_project.archive(app_a).exists()
    # The handler was put back.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
@pytest.mark.timeout(30)
def test_a_pipe_or_device_as_the_lock_is_refused_at_once(
    sync_project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field test 7: the head start declined a FIFO as ``pythons.lock``, but the full sync
    then blocked on it for ever (reading ``/dev/zero`` in its place would never end)."""
    lock = sync_project.root / "pythons.lock"
    os.mkfifo(lock)
    assert console(sync_project, monkeypatch) == 1
    assert "not a regular file" in capsys.readouterr().err
    lock.unlink()
    lock.symlink_to("/dev/zero")
    assert console(sync_project, monkeypatch) == 1
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["pythons.toml", "pythons.lock"])
def test_lock_refuses_a_pipe_as_its_config_or_old_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """``lock`` reads pythons.toml and the old lock the way ``sync`` reads the lock."""
    from pylock import cli

    if name == "pythons.lock":
        (tmp_path / "pythons.toml").write_text('[python.app]\nversion = "3.12"\n')
    os.mkfifo(tmp_path / name)
    code = cli.main(["--project", str(tmp_path), "lock", "--check"], environ={})
    assert code != 0
    assert "not a regular file" in capsys.readouterr().err
