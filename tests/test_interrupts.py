"""An interrupt Python swallows (raised inside a callback it runs for itself) is not lost.

Found in CI: a SIGTERM that arrived while the import system ran a weakref callback was
printed as "Exception ignored in" and the sync ran on to its end, exit 0 instead of 143.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pylock.interrupts import Terminated, raise_lost, sigterm_as_interrupt
from pylock.net.stream import wait_for
from pylock.sync.plan import Job
from pylock.versions import ArchiveFormat
from tests.syncproject import TAG_B, Build, Project

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class _SignalledWhileCollected:
    """Sends SIGTERM to this process from ``__del__`` and waits there for the handler:
    the handler's exception is raised where Python can only report it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.001)  # the handler runs between two of these


def _lose_a_sigterm() -> None:
    _SignalledWhileCollected()  # collected at once: __del__ runs, and swallows Terminated
    gc.collect()


@posix_only
def test_a_swallowed_sigterm_is_raised_at_the_next_wait() -> None:
    done = threading.Event()
    timer = threading.Timer(3, done.set)
    timer.start()
    try:
        with pytest.raises(Terminated), sigterm_as_interrupt():
            _lose_a_sigterm()
            started = time.monotonic()
            wait_for(done)  # would have waited the 3 s out, and gone on
        assert time.monotonic() - started < 1
        assert not done.is_set()
    finally:
        timer.cancel()


@posix_only
def test_a_swallowed_sigterm_is_raised_when_the_block_ends() -> None:
    went_on: list[str] = []
    with pytest.raises(Terminated), sigterm_as_interrupt():
        _lose_a_sigterm()
        went_on.append("work with no wait in it")
    assert went_on  # the block was not cut short where Python swallowed it: it could not


@posix_only
def test_a_sigterm_raised_as_usual_is_raised_once(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    raise_lost()  # nothing was kept: nothing is raised again
    assert "Exception ignored" not in capfd.readouterr().err


@posix_only
def test_a_swallowed_interrupt_is_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Terminated), sigterm_as_interrupt():
        _lose_a_sigterm()
    assert "Exception ignored" not in capfd.readouterr().err


def test_another_swallowed_exception_still_reaches_the_hook_before() -> None:
    seen: list[BaseException | None] = []
    before = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_value)
    try:

        class Broken:
            def __del__(self) -> None:
                raise ValueError("not an interrupt")

        with sigterm_as_interrupt():
            Broken()
            gc.collect()
        assert len(seen) == 1 and isinstance(seen[0], ValueError)
        assert sys.unraisablehook is not before  # ours again, once the block ended
    finally:
        sys.unraisablehook = before


def test_another_thread_leaves_a_swallowed_interrupt_to_the_main_thread() -> None:
    class Lost:
        def __del__(self) -> None:
            raise KeyboardInterrupt  # as Ctrl-C's handler would, inside a callback

    raised: list[BaseException] = []

    def elsewhere() -> None:
        try:
            raise_lost()
        except BaseException as error:  # what it raised is the test
            raised.append(error)

    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        Lost()
        gc.collect()
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert raised == []


# -- after the day's diff attack ----------------------------------------------------------------


@posix_only
def test_a_kept_sigterm_is_said_by_the_cli_with_its_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the day's diff: a command that ended after Python swallowed a SIGTERM made
    `cli.main` raise Terminated (a traceback for its callers), not return 143."""
    from pylock import cli

    def swallowing(ctx: object) -> int:
        _lose_a_sigterm()
        return 0

    monkeypatch.setattr(cli, "_cmd_which", swallowing)
    assert cli.main(["which", "x"], environ={}) == 143
    assert capsys.readouterr().err.count("pylock: terminated") == 1


@posix_only
@pytest.mark.parametrize("then", ["SIGTERM", "SIGINT"])
def test_a_kept_interrupt_and_one_raised_as_usual_are_said_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], then: str, ctrl_c: None
) -> None:
    """Attack on the day's diff: the one raised as usual was said (130 or 143), then the
    kept one at the block's end: "pylock: terminated" twice, and 143 for a Ctrl-C."""
    from pylock import cli

    def swallowing_then_interrupted(ctx: object) -> int:
        _lose_a_sigterm()
        os.kill(os.getpid(), getattr(signal, then))
        time.sleep(5)
        return 0

    monkeypatch.setattr(cli, "_cmd_which", swallowing_then_interrupted)
    expected = (143, "pylock: terminated") if then == "SIGTERM" else (130, "pylock: interrupted")
    assert cli.main(["which", "x"], environ={}) == expected[0]
    err = capsys.readouterr().err
    assert err.count("pylock: ") == 1 and expected[1] in err


@posix_only
def test_a_sigterm_swallowed_as_the_only_install_starts_stops_it(
    sync_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: one interpreter installs on the main thread, whose waits
    (the download feed's) did not raise a kept interrupt: the sync ran to its end."""
    from pylock.sync import execute
    from tests.httpserver import Throttle
    from tests.syncproject import make_build

    build = make_build("app", big=2_000_000)
    sync_project.lock(build)
    sync_project.serve(build, always=[Throttle(65_536, 0.05)])  # 1.5 s
    real = execute._Installer.install_one

    def swallowing(self: execute._Installer, job: Job) -> bool:
        _lose_a_sigterm()
        return real(self, job)

    monkeypatch.setattr(execute._Installer, "install_one", swallowing)
    assert sync_project.sync().code == 143
    assert not (sync_project.into / "app").exists()
    assert sync_project.partials() == []


@posix_only
def test_held_leaves_a_handler_that_raises_nothing_be() -> None:
    """Attack on the day's diff: `held` took an application's own handler for one that
    raises, and raised KeyboardInterrupt where that handler was to be called."""
    from pylock.interrupts import held

    calls: list[int] = []
    before = signal.signal(signal.SIGINT, lambda number, frame: calls.append(number))
    try:
        with held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)


@posix_only
def test_held_within_held_raises_once_the_outer_block_ends(ctrl_c: None) -> None:
    from pylock.interrupts import held

    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), held():
        with held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("inner")
        steps.append("outer")
    assert steps == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_hook_put_in_place_during_the_block_stays() -> None:
    """Attack on the day's diff: the block's end put the hook before it back over one
    installed meanwhile."""
    before = sys.unraisablehook

    def theirs(unraisable: sys.UnraisableHookArgs) -> None:
        pass

    try:
        with sigterm_as_interrupt():
            sys.unraisablehook = theirs
        assert sys.unraisablehook is theirs
    finally:
        sys.unraisablehook = before


@posix_only
def test_windows_ctrl_break_is_taken_as_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Portability review: on Windows, Ctrl-Break (and closing the console window) sends
    SIGBREAK, whose default ends the process on the spot: a partial download stayed in the
    cache's `tmp/`, a temporary tree in the install directory. It is taken as SIGTERM is,
    in `sigterm_as_interrupt` and `held`. Simulated with SIGUSR1 in SIGBREAK's place."""
    from pylock.interrupts import held

    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    steps: list[str] = []
    with pytest.raises(Terminated), sigterm_as_interrupt():
        with pytest.raises(Terminated), held():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.05)
            steps.append("held to the end")
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.5)
        steps.append("not stopped")
    assert steps == ["held to the end"]
    assert signal.getsignal(signal.SIGUSR1) is before


@posix_only
def test_ctrl_break_during_run_is_the_childs_to_handle(sync_project: Project) -> None:
    """Windows attack: Ctrl-Break (and a console window's closing) reaches every process of
    the console, `pylock run`'s child too, as Ctrl-C does. Since SIGBREAK is taken as
    SIGTERM, pylock raised Terminated out of its wait for the child and ended at once,
    leaving a child that handles Ctrl-Break (a server's graceful shutdown) without its
    parent and its exit status lost. SIGALRM stands in for SIGBREAK here."""
    from tests.archives import compress, exe, tar_bytes
    from tests.syncproject import TAG_A

    script = (
        b"#!/bin/sh\ntrap 'echo breaking; sleep 0.5; echo done; exit 4' ALRM\necho ready\n"
        b"i=0\nwhile [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
    )
    entries = (exe("python/bin/python3.12", script),)
    data = compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)
    build = Build(
        name="app", tag=TAG_A, minor="3.12", fmt=ArchiveFormat.TAR_GZ, entries=entries, data=data
    )
    sync_project.install(build)
    stand_in = (
        "import runpy, signal, sys; signal.SIGBREAK = signal.SIGALRM; "
        "sys.argv[0] = 'pylock'; runpy.run_module('pylock', run_name='__main__')"
    )
    command = [sys.executable, "-c", stand_in, "--project", str(sync_project.root)]
    command += ["run", "--into", str(sync_project.into), "app", "--"]

    def defaults() -> None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    process = subprocess.Popen(
        command,
        env=sync_project.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
        preexec_fn=defaults,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    os.killpg(process.pid, signal.SIGALRM)  # the whole console group, as Windows sends it
    out, err = process.communicate(timeout=30)
    assert "done" in out.decode(), (out, err)
    assert process.returncode == 4, err.decode()


@posix_only
def test_ctrl_c_and_sigterm_together_while_the_installs_are_waited_for_stop_the_sync(
    sync_project: Project, monkeypatch: pytest.MonkeyPatch, ctrl_c: None
) -> None:
    """Ctrl-C and a SIGTERM that came with it (a CI job cancelled, `timeout` after a Ctrl-C)
    while the sync waited for its installs: the second was raised as the wait took its
    lock back, and the wait's lock then raised "release unlocked lock". The sync ran on,
    installed everything and ended with that RuntimeError's traceback, exit 1."""
    from tests.httpserver import Throttle
    from tests.syncproject import make_build

    monkeypatch.setattr("pylock.settings.usable_cpus", lambda: 2)  # the pool, on any machine
    builds = [make_build("app", big=2_000_000), make_build("tool", TAG_B, big=2_000_000)]
    sync_project.lock(*builds)
    sync_project.serve(*builds, always=[Throttle(65_536, 0.05)])  # 1.5 s each

    def both() -> None:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # pending together: both raised in one wait

    threading.Thread(target=both, daemon=True).start()
    result = sync_project.sync()
    assert result.code == 143, result.err
    assert "Traceback" not in result.err and "RuntimeError" not in result.err
    assert result.err.count("pylock: terminated") == 1
    assert not (sync_project.into / "app").exists() and not (sync_project.into / "tool").exists()
    assert sync_project.partials() == []
