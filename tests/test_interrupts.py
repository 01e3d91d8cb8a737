"""An interrupt Python swallows (raised inside a callback it runs for itself) is not lost.

Found in CI: a SIGTERM that arrived while the import system ran a weakref callback was
printed as "Exception ignored in" and the sync ran on to its end, exit 0 instead of 143.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time

import pytest

from pylock.interrupts import Terminated, raise_lost, sigterm_as_interrupt
from pylock.net.stream import wait_for

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
