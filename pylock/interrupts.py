"""SIGTERM taken as Ctrl-C, so that both leave nothing half done.

``timeout``, a cancelled CI job and ``docker stop`` send SIGTERM, whose default action
ends the process on the spot: a partial download would stay in the cache's ``tmp/`` and
a temporary tree in the install directory. While :func:`sigterm_as_interrupt` is in force
the signal raises :class:`Terminated` where Ctrl-C would raise ``KeyboardInterrupt``, so
the same clean-ups run. On Windows, SIGBREAK (Ctrl-Break, or the console window being
closed) is taken the same way. The console script turns it on before a cold sync's
downloads start (:mod:`pylock.sync.early`), the CLI for every command.

Python cannot pass on an exception raised where it runs a callback for its own ends (a
weakref callback of the import system, a ``__del__``): it prints "Exception ignored in"
and goes on, and a signal that arrives there is lost. Inside the block such an interrupt
is kept instead, and raised again at the next wait (:func:`raise_lost`) or when the block
ends: a SIGTERM during an import once let a sync run to its end and exit 0.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be."""


class _Lost:
    """The interrupt Python could not pass on, until it is raised again (main thread)."""

    interrupt: KeyboardInterrupt | None = None


_LOST = _Lost()


def raise_lost() -> None:
    """Raise again the Ctrl-C or SIGTERM that Python swallowed, if one was (once).

    For the places the main thread waits at, and for the end of the block; another
    thread leaves it to the main thread, where the signal came.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    lost, _LOST.interrupt = _LOST.interrupt, None
    if lost is not None:
        raise type(lost)() from None


def unmasked(error: BaseException) -> BaseException:
    """The interrupt that ``error`` stands in for, else ``error``.

    Ctrl-C and a SIGTERM that come together (a CI job cancelled after a Ctrl-C) while the
    main thread waits on a condition (every event and future does): the first ends the
    wait, the second is raised as the wait takes its lock back, before it has, and the
    wait's ``with`` block then releases a lock it does not hold. That raises
    ``RuntimeError("release unlocked lock")``, with the interrupt as its context.
    """
    context = error.__context__
    if isinstance(error, RuntimeError) and isinstance(context, KeyboardInterrupt):
        return context
    return error


def discard_lost() -> None:
    """Forget a kept interrupt: one raised as usual has been dealt with, and is enough."""
    _LOST.interrupt = None


def _terminated(number: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM inside the block (main thread only), and
    keep an interrupt Python swallowed for :func:`raise_lost`."""
    import signal

    previous: dict[int, Any] = {}
    try:
        for number in _terminating(signal):
            # Started to ignore it: it stays ignored, also for `pylock run`'s child.
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, _terminated)
    except ValueError:  # not the main thread
        pass
    with _keeping_lost_interrupts():
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        raise_lost()


def _terminating(signal: Any) -> list[int]:
    """SIGTERM, and Windows' SIGBREAK: Ctrl-Break, and a console window being closed."""
    return [getattr(signal, name) for name in ("SIGTERM", "SIGBREAK") if hasattr(signal, name)]


@contextlib.contextmanager
def _keeping_lost_interrupts() -> Iterator[None]:
    passed_on = sys.unraisablehook

    def keep(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _LOST.interrupt = unraisable.exc_value  # not printed: it is taken as it is
        else:
            passed_on(unraisable)

    sys.unraisablehook = keep
    try:
        yield
    finally:
        if sys.unraisablehook is keep:  # not one someone put in its place meanwhile
            sys.unraisablehook = passed_on
        # Raised already, or another exception ends the block (an interrupt raised as
        # usual is enough): none is left for a later block to raise.
        _LOST.interrupt = None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM (taken as Ctrl-C) until the block has ended, then raise the
    last that came: for a few steps that must not be cut between (a tree renamed away and
    the new one renamed in). Outside the main thread, where no signal is raised, it does
    nothing. Only the handlers that raise (Python's for Ctrl-C, :func:`sigterm_as_interrupt`'s)
    are held: any other (a default, an ignored signal, an application's own, an outer
    block's) is left be.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[KeyboardInterrupt] = []

    def hold(number: int, frame: object) -> None:
        came.append(KeyboardInterrupt() if number == signal.SIGINT else Terminated())

    raising: dict[int, Callable[[int, Any], Any]] = {signal.SIGINT: signal.default_int_handler}
    raising.update((number, _terminated) for number in _terminating(signal))
    previous: dict[int, Callable[[int, Any], Any]] = {}
    try:
        for number, handler in raising.items():
            if signal.getsignal(number) is handler:
                signal.signal(number, hold)
                previous[number] = handler
        yield
    except BaseException as error:
        if came and not isinstance(error, KeyboardInterrupt):
            raise came[-1] from error
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if came:
        raise came[-1]


def finish_through_interrupts(clean_up: Callable[[], object]) -> None:
    """Run ``clean_up`` to its end even if Ctrl-C (or SIGTERM taken as Ctrl-C) arrives
    meanwhile: it is called again until it returns, then the last interrupt is raised.

    For a clean-up after a first interrupt, which a second one a few milliseconds later
    would otherwise cut short (``clean_up`` must be safe to call again).
    """
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            clean_up()
        except KeyboardInterrupt as exc:
            interrupted = exc
            continue
        except BaseException as error:
            # A clean-up that fails after an interrupt: the interrupt is what happened
            # (exit 130, not an install error), with the failure as its cause.
            if interrupted is not None:
                raise interrupted from error
            raise
        break
    if interrupted is not None:
        raise interrupted
