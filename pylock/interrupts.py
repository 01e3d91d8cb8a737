"""SIGTERM taken as Ctrl-C, so that both leave nothing half done.

``timeout``, a cancelled CI job and ``docker stop`` send SIGTERM, whose default action
ends the process on the spot: a partial download would stay in the cache's ``tmp/`` and
a temporary tree in the install directory. While :func:`sigterm_as_interrupt` is in force
the signal raises :class:`Terminated` where Ctrl-C would raise ``KeyboardInterrupt``, so
the same clean-ups run. The console script turns it on before a cold sync's downloads
start (:mod:`pylock.sync.early`), the CLI for every command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM inside the block (main thread only)."""
    import signal

    def terminated(number: int, frame: object) -> None:
        raise Terminated

    try:
        # Started to ignore it: it stays ignored, also for `pylock run`'s child.
        ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        previous = None if ignored else signal.signal(signal.SIGTERM, terminated)
    except (AttributeError, ValueError):  # no SIGTERM, or not the main thread
        ignored, previous = True, None
    if ignored:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
