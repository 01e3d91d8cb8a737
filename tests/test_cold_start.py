"""Issue 15: what a cold sync does before its first request, and the pieces that let it
start sooner.

- :class:`pylock.fsutil.FileLock`, which replaced the filelock package (whose import
  pulls in asyncio): exclusive between processes and between threads, freed when its
  holder dies, bounded waits, no following a planted symlink, a lock file removed
  under a waiter;
- the download tier on plain threads: ``stop`` ends every download under way and
  leaves no partial file; one archive that fails does not stop the others in
  :func:`ensure_each`; the remote cache still runs (on the worker's own event loop);
- the registry client is not imported when no remote cache is configured;
- the console script's garbage-collector settings: off while the CLI is imported, on
  (with the start-up objects frozen) while the command runs and after it returns.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pylock import entry
from pylock.errors import DownloadError, OfflineError
from pylock.fsutil import FileLock, LockTimeout
from pylock.net.stdhttp import Cancelled
from pylock.progress import NullReporter
from pylock.sync.archives import Wanted, ensure_archives, ensure_each
from pylock.sync.cache import Cache
from tests.httpserver import HttpServer, Throttle
from tests.syncproject import Build, Project, signal_when_ready
from tests.test_fetch import fast, payload, want

HOLDER = r"""
import sys, time
from pylock.fsutil import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


# -- FileLock --------------------------------------------------------------------------------


def test_a_lock_held_by_another_process_is_refused_until_that_process_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.lock"
    proc = holder(path)
    try:
        lock = FileLock(path)
        assert not lock.try_acquire()
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            lock.acquire(timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3
        assert info.value.path == str(path)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    # The operating system dropped the dead holder's lock: no stale-lock clean-up needed.
    lock.acquire(timeout=5)
    assert lock.is_locked
    lock.release()
    assert not lock.is_locked


def test_two_locks_on_one_path_exclude_each_other_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first, second = FileLock(path), FileLock(path)
    with first:
        assert not second.try_acquire()
        got = threading.Event()

        def wait() -> None:
            second.acquire(timeout=10)
            got.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        assert not got.is_set()
    waiter.join(timeout=10)
    assert got.is_set()
    second.release()
    second.release()  # releasing a lock not held is harmless


def test_a_lock_object_is_not_reentrant(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock")
    with lock, pytest.raises(RuntimeError, match="already locked"):
        lock.try_acquire()


def test_a_symlink_planted_at_the_lock_path_is_not_followed(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("O_NOFOLLOW is POSIX")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    planted = tmp_path / "x.lock"
    planted.symlink_to(victim)
    with pytest.raises(OSError):
        FileLock(planted).try_acquire()
    assert victim.read_text() == "keep me"


def test_a_lock_file_removed_between_open_and_lock_is_taken_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pylock.fsutil

    path = tmp_path / "x.lock"
    real = pylock.fsutil._lock_fd
    calls: list[int] = []

    def racing(fd: int) -> bool:
        # A clean-up (or the previous holder) removes the file after our open.
        if not calls:
            path.unlink()
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(pylock.fsutil, "_lock_fd", racing)
    lock = FileLock(path)
    assert lock.try_acquire()
    assert len(calls) == 2  # the lock on the unlinked file was dropped, a fresh one taken
    monkeypatch.setattr(pylock.fsutil, "_lock_fd", real)
    # What it holds is the file now at the path: another lock on the path is refused.
    assert path.exists()
    assert not FileLock(path).try_acquire()
    lock.release()


def test_a_lock_in_a_missing_or_unwritable_place_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        FileLock(tmp_path / "missing" / "x.lock").try_acquire()


# -- the download tier on threads -----------------------------------------------------------


def test_stop_ends_every_download_under_way_and_leaves_no_partial(
    server: HttpServer, cache: Cache
) -> None:
    slow = [
        want(server, f"/slow{i}.tar.gz", payload(400_000, seed=i), always=[Throttle(4_000, 0.05)])
        for i in range(3)
    ]
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    paths, errors = ensure_each(slow, cache, fast(jobs=3), NullReporter(), stop=stop)
    # Each would take 5 s; every thread saw the stop within a chunk.
    assert time.monotonic() - started < 3
    assert paths == {}
    # Stopped downloads are not failures to report: the caller asked for it.
    assert errors == {}
    tmp = cache.root / "tmp"
    assert not tmp.is_dir() or list(tmp.glob("*.part")) == []
    assert all(cache.lookup(item.sha256) is None for item in slow)


def test_ensure_each_keeps_going_when_one_archive_cannot_be_had(
    server: HttpServer, cache: Cache
) -> None:
    good = want(server, "/good.tar.gz", payload(50_000, seed=3))
    missing = Wanted(url=server.url("/gone.tar.gz"), sha256="0" * 64, size=10)
    paths, errors = ensure_each([missing, good], cache, fast(jobs=2, retries=0), NullReporter())
    assert list(paths) == [good.sha256]
    assert paths[good.sha256].read_bytes() == payload(50_000, seed=3)
    error = errors[missing.sha256]
    assert isinstance(error, DownloadError) and "404" in error.message


def test_ensure_each_offline_refuses_each_miss_on_its_own(cache: Cache) -> None:
    misses = [Wanted(url=f"https://a.example/{c}.tar.gz", sha256=c * 64) for c in "ab"]
    paths, errors = ensure_each(misses, cache, fast(offline=True), NullReporter())
    assert paths == {}
    assert sorted(errors) == sorted(m.sha256 for m in misses)
    for miss in misses:
        # One archive per message: each interpreter reports its own.
        error = errors[miss.sha256]
        assert isinstance(error, OfflineError)
        assert miss.filename in error.message and "offline" in error.message


def test_a_thread_waiting_for_another_download_of_the_same_archive_gets_its_file(
    server: HttpServer, cache: Cache
) -> None:
    data = payload(200_000, seed=4)
    item = want(server, "/same.tar.gz", data, always=[Throttle(50_000, 0.02)])
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                ensure_archives([item], cache, fast(), NullReporter())[item.sha256]
            )
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 3 and len(set(results)) == 1
    assert results[0].read_bytes() == data
    # One GET: the others waited at the archive's gate, then found it cached.
    assert server.hits("/same.tar.gz") == 1


def test_cancelled_is_what_a_stopped_download_raises(server: HttpServer, tmp_path: Path) -> None:
    from pylock.net.stdhttp import StdDownloader

    item = want(server, "/slow.tar.gz", payload(400_000, seed=5), always=[Throttle(4_000, 0.05)])
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Cancelled):
        StdDownloader(fast()).download(
            item.url, tmp_path / "out.part", sha256=item.sha256, size=item.size, stop=stop
        )


# -- the feed's head start, and Ctrl-C ------------------------------------------------------


def test_a_feed_reports_when_its_download_starts_or_ends(tmp_path: Path) -> None:
    from pylock.net.stream import DownloadFeed

    waiting = DownloadFeed()
    started = time.monotonic()
    assert not waiting.wait_started(0.2)  # nothing yet: the wait is bounded
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, waiting.begin, args=(tmp_path / "x.part",)).start()
    assert waiting.wait_started(10)
    failed = DownloadFeed()
    failed.failed(DownloadError("gone", url="https://a.example/x"))
    assert failed.wait_started(0)  # a download that failed before its first byte ends it


def _interrupt(
    project: Project, argv: list[str], ready: Callable[[subprocess.Popen[str]], None]
) -> tuple[float, int, str]:
    """Run the pylock command ``argv`` with Ctrl-C handled as in a terminal, send SIGINT
    once ``ready`` returns, and give the seconds it took to exit, its code and stderr."""
    import signal

    # Python leaves SIGINT alone when it starts with it ignored, as a background job (and
    # so some CI runners) would hand it down: install the handler a terminal user has.
    wrapper = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['pylock', *sys.argv[1:]]; runpy.run_module('pylock', run_name='__main__')"
    )
    proc = project.popen([argv[0], "-c", wrapper, *argv[3:]])
    return signal_when_ready(proc, ready, signal.SIGINT)


def _once_downloading(project: Project) -> Callable[[subprocess.Popen[str]], None]:
    """A ``ready`` for :func:`_interrupt`: the download has written its first bytes."""

    def downloading(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while not project.partials() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert project.partials(), "the download never started"
        time.sleep(0.3)

    return downloading


def _assert_interrupted_cleanly(project: Project, code: int, err: str) -> None:
    assert code == 130, err
    assert "pylock: interrupted" in err
    assert "Traceback" not in err
    assert project.partials() == []
    assert project.leftovers() == []


def test_ctrl_c_stops_a_cold_sync_soon_and_leaves_nothing_half_done(
    sync_project: Project, app_b: Build
) -> None:
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    sync_project.lock(app_b)
    # About 60 s at this rate: only an interrupt ends it early.
    sync_project.serve(app_b, always=[Throttle(8_000, 0.2)])

    downloading = _once_downloading(sync_project)
    took, code, err = _interrupt(sync_project, sync_project.sync_command(), downloading)
    assert took < 10
    _assert_interrupted_cleanly(sync_project, code, err)
    assert not sync_project.archive(app_b).exists()


def test_ctrl_c_ends_a_wait_for_another_process_on_a_worker_thread(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """Field test 8: with two interpreters on two worker threads, Ctrl-C was ignored while
    one of them waited for another process's install of the same name (it took a third
    Ctrl-C, or the other process's end)."""
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    from pylock.sync.install import LOCKS_DIR

    sync_project.lock(app_a, tool)
    sync_project.serve(app_a, tool)
    # Another process is installing `app` into the same directory, and does not finish.
    (sync_project.into / LOCKS_DIR).mkdir(parents=True)
    other = FileLock(sync_project.into / LOCKS_DIR / "app.lock")
    other.acquire(timeout=0)

    def waiting(proc: subprocess.Popen[str]) -> None:
        # `tool` is installed beside the wait (with one usable CPU, `app` waits first
        # and `tool` never starts: the deadline ends this loop).
        deadline = time.monotonic() + 10
        while not (sync_project.into / "tool").is_dir() and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.05)
        time.sleep(1.5)  # `app` has waited over a second: "waiting for another ..."

    try:
        took, code, err = _interrupt(sync_project, sync_project.sync_command("-j", "2"), waiting)
    finally:
        other.release()
    assert took < 5, err
    assert "waiting for another pylock process" in err
    _assert_interrupted_cleanly(sync_project, code, err)
    assert not (sync_project.into / "app").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_says_which_interpreters_were_installed_before_it(
    sync_project: Project, app_a: Build, tool: Build, jobs: str
) -> None:
    """An interpreter installed before the Ctrl-C stays installed, and the user is told:
    "installed app: ..." used to be printed only once every install had ended."""
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    sync_project.lock(app_a, tool)
    sync_project.serve(app_a)
    sync_project.serve(tool, always=[Throttle(8_000, 0.2)])  # about 60 s: only Ctrl-C ends it

    def app_installed(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while not (sync_project.into / "app").is_dir() and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.05)
        assert sync_project.partials(), "the slow download never started"
        time.sleep(0.3)

    took, code, err = _interrupt(sync_project, sync_project.sync_command("-j", jobs), app_installed)
    assert took < 10, err
    _assert_interrupted_cleanly(sync_project, code, err)
    assert f"installed app: {app_a.label}" in err
    assert "installed tool" not in err
    assert err.index("installed app") < err.index("pylock: interrupted")
    assert (
        sync_project.check(sync_project.command("verify", "--into", str(sync_project.into))).code
        == 0
    )
    assert not (sync_project.into / "tool").exists()


def test_ctrl_c_stops_the_fetch_again_of_a_corrupt_archive_on_a_worker_thread(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """Code review: with two installs on worker threads, the fetch again of an archive that
    rotted in the cache did not see the Ctrl-C, and the sync waited for that download to
    end (a minute here) before it exited."""
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    sync_project.install(app_a, tool)
    archive = sync_project.archive(app_a)
    rotted = bytearray(archive.read_bytes())
    rotted[len(rotted) // 2] ^= 0xFF
    archive.write_bytes(bytes(rotted))
    sync_project.serve(app_a, always=[Throttle(2_000, 0.2)])  # about 40 s for its 400 KiB
    downloading = _once_downloading(sync_project)
    took, code, err = _interrupt(
        sync_project, sync_project.sync_command("--reinstall", "-j", "2"), downloading
    )
    assert took < 10, err
    _assert_interrupted_cleanly(sync_project, code, err)
    assert "is corrupt; evicted it" in err


@pytest.mark.parametrize("command", ["fetch", "mirror"])
def test_ctrl_c_stops_fetch_and_mirror_and_leaves_no_partial_download(
    sync_project: Project, app_b: Build, command: str
) -> None:
    """On Python 3.11 an interrupted ``Thread.join`` marks a live thread as stopped, and a
    second ``join`` then returns at once: the process exited before its download thread
    removed the partial file (field test 5, every run with ``-j 1``)."""
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    sync_project.lock(app_b)
    sync_project.serve(app_b, always=[Throttle(8_000, 0.2)])
    extra = [str(sync_project.root / "mirror-out")] if command == "mirror" else []
    argv = sync_project.command(command, *extra, "--mirror", sync_project.mirror, "-j", "1")

    downloading = _once_downloading(sync_project)
    took, code, err = _interrupt(sync_project, argv, downloading)
    assert took < 10
    _assert_interrupted_cleanly(sync_project, code, err)


def test_ctrl_c_during_a_stalled_tls_handshake_exits_soon(
    sync_project: Project, app_b: Build, mute_port: int
) -> None:
    # A mirror that takes the connection and never answers the TLS hello (a middlebox, a
    # wrong port): Ctrl-C waited out the 30 s connect timeout before.
    if os.name != "posix":
        pytest.skip("SIGINT to a child process is POSIX")
    sync_project.lock(app_b)
    argv = sync_project.command(
        "sync", "--into", str(sync_project.into), "--mirror", f"https://127.0.0.1:{mute_port}/"
    )

    def waiting_for_hello(proc: subprocess.Popen[str]) -> None:
        time.sleep(1.5)  # started, imported, connected, and waiting for the server's hello
        assert proc.poll() is None

    took, code, err = _interrupt(sync_project, argv, waiting_for_hello)
    assert took < 3
    _assert_interrupted_cleanly(sync_project, code, err)


@pytest.mark.parametrize("outcome", ["returns", "raises"])
def test_the_console_script_runs_the_command_with_the_collector_on_and_leaves_it_on(
    monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    import pylock.cli

    seen: list[tuple[bool, int]] = []

    def command(*, settings: object) -> int:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        if outcome == "raises":
            raise RuntimeError("a bug in the command")
        return 3

    monkeypatch.setattr(sys, "argv", ["pylock", "list"])
    monkeypatch.setattr(pylock.cli, "main", command)
    try:
        if outcome == "raises":
            with pytest.raises(RuntimeError):
                entry.main()
        else:
            assert entry.main() == 3
        # The command ran with the collector on, the start-up objects already frozen.
        assert seen == [(True, seen[0][1])] and seen[0][1] > 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_console_script_imports_the_cli_with_the_collector_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["pylock", "--version"])
    states: list[bool] = []
    real_import = __import__

    def spying_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "pylock.cli":
            states.append(gc.isenabled())
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("builtins.__import__", spying_import)
    try:
        assert entry.main() == 0
        assert states and not any(states)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_ctrl_c_while_the_console_script_starts_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in the first tenth of a second, before the CLI handles it (field test 3)."""
    import pylock.fastpath

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["pylock", "sync"])
    monkeypatch.setattr(pylock.fastpath, "try_noop_sync", interrupted)
    try:
        assert entry.main() == 130
    finally:
        gc.unfreeze()
        gc.enable()
    assert capsys.readouterr().err == "pylock: interrupted\n"


# -- the quick exit --------------------------------------------------------------------------


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Stream:
    """A stream whose flush fails with ``error``, and which keeps what is written."""

    def __init__(self, error: OSError | None = None) -> None:
        self.error = error
        self.text = ""
        self.flushed = False

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        if self.error is not None:
            raise self.error
        self.flushed = True


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (None, 3, ""),
        (BrokenPipeError(32, "Broken pipe"), 3, ""),  # `pylock list | head`
        (OSError(28, "No space left on device"), 3, "No space left on device"),
    ],
    ids=["flushed", "reader-gone", "disk-full"],
)
def test_the_console_script_flushes_then_ends_with_the_status(
    monkeypatch: pytest.MonkeyPatch, error: OSError | None, status: int, said: str
) -> None:
    stdout, stderr = _Stream(error), _Stream()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    monkeypatch.setattr(entry, "main", lambda: status)

    def exit_now(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(_Exited) as exited:
        entry.console()
    assert exited.value.code == status
    assert stderr.flushed
    assert said in stderr.text and ("cannot write the output" in stderr.text) == bool(said)


def test_a_failed_command_whose_output_is_lost_keeps_its_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdout", _Stream(OSError(28, "No space left on device")))
    monkeypatch.setattr(sys, "stderr", _Stream())
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    monkeypatch.setattr(entry, "main", lambda: 0)
    codes: list[int] = []

    def exit_now(code: int) -> None:
        codes.append(code)
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(_Exited):
        entry.console()
    assert codes == [1]  # a success whose output was lost is not a success


def test_python_m_pylock_prints_everything_before_it_ends(tmp_path: Path) -> None:
    """The quick exit skips the interpreter's teardown, not the output: a long listing
    through a pipe arrives whole."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def python_m_pylock(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pylock", *argv]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )

    done = python_m_pylock("completion", "bash")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 1000 and done.stdout.endswith("\n")
    bad = python_m_pylock("list", "--no-such-flag")
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["sync", "--help"], ["cache", "dir"], ["completion", "bash"]],
)
def test_help_that_cannot_be_written_is_an_error(
    tmp_path: Path, argv: list[str], unbuffered: bool
) -> None:
    """argparse ignores a failed write: with PYTHONUNBUFFERED=1 (common in Dockerfiles),
    `pylock --help > /dev/full` said nothing and exited 0. A reader that goes away
    (`pylock --help | head -1`) is still no error. A command's own output says the same
    (UX attack: `cache dir > /dev/full` hinted at a path's permissions and a rerun)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "pylock", *argv]
    with open("/dev/full", "w") as full:
        lost = subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
        )
    assert lost.returncode == 1
    assert lost.stderr == "pylock: error: cannot write the output: No space left on device\n"
    reader = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # gone before a word is written
    assert reader.wait(timeout=60) == 0
    assert reader.stderr.read() == ""
    reader.stderr.close()


def test_an_install_under_way_when_ctrl_c_comes_is_said_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack: Ctrl-C while the sync waited for app's install (on the pool) let that
    install run to its end, as it must, but never said so: app was upgraded silently."""
    import concurrent.futures
    import threading
    import types

    from pylock import settings
    from pylock.sync import execute

    monkeypatch.setattr(settings, "usable_cpus", lambda: 2)
    release = threading.Event()

    def install_one(job: Any) -> bool:
        release.wait(5)
        return True

    stop = threading.Event()
    installer = types.SimpleNamespace(
        install_one=install_one, downloads=types.SimpleNamespace(stop=stop, halt=stop.set)
    )
    jobs = [types.SimpleNamespace(python=types.SimpleNamespace(name=n)) for n in ("app", "lib")]
    real_wait = concurrent.futures.wait
    calls = [0]

    def wait(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            release.set()
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "wait", wait)
    installed, _, errors = execute._install_all(installer, jobs, 2)  # type: ignore[arg-type]
    assert "app" in installed
    assert installer.downloads.stop.is_set()
    assert any(isinstance(error, KeyboardInterrupt) for _, error in errors)
