"""The ``pylock`` console script: try the no-op sync fast path, then the full CLI.

It also tunes the garbage collector for a short-lived process. Importing what a sync needs
creates some twenty thousand long-lived container objects (modules, classes, the methods
attrs generates), and the cyclic collector would walk them again and again: while they
are created, during an extraction that allocates many small objects, and as the
interpreter exits. So the collector is off while the CLI is imported, then those objects
are frozen (:func:`gc.freeze`, which keeps them out of every later collection) and the
collector runs as usual for the command itself. Everything is frozen again at the end,
which makes the interpreter's final collection almost free. A warm ``sync`` is about
30 ms faster for it, and ``lock`` about 45 ms (alternating runs; see the README's
benchmark section).
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from pylock.settings import Settings


def console() -> NoReturn:
    """The ``pylock`` command (and ``python -m pylock``): :func:`main`, then a quick exit.

    When ``main`` returns, everything pylock wrote is closed and the work it started
    (downloads, installs) has ended. The interpreter's own teardown would only free
    memory the system frees anyway: it took 7 ms after the last byte of a cold sync. So
    the output is flushed and the process ends there, with ``main``'s status, unless a
    coverage tracer waits for the normal exit to save its data.
    """
    code = main()
    if "coverage" in sys.modules:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            pass  # `pylock list | head`: the reader went away; that is not an error
        except (OSError, ValueError) as exc:
            # A full disk behind `> out.txt`: the output is incomplete, and says so.
            if stream is sys.stdout:
                code = code or 1
                try:
                    why = (exc.strerror if isinstance(exc, OSError) else None) or exc
                    sys.stderr.write(f"pylock: error: cannot write the output: {why}\n")
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
    os._exit(code)


def main() -> int:
    """Run pylock on ``sys.argv``; return the exit status."""
    gc.disable()
    try:
        return _run()
    except KeyboardInterrupt:
        # Ctrl-C before the CLI took over (it says this itself later): no traceback.
        if sys.stderr is not None:
            sys.stderr.write("pylock: interrupted\n")
        return 130
    finally:
        # Garbage still reachable only through cycles is not collected at exit: every file
        # pylock writes is closed explicitly, and the streams are flushed by the exit.
        gc.freeze()
        gc.enable()


class _ClosedOutput:
    """What a closed stdout (``>&-``; Python sets it to ``None``) becomes: a stream whose
    writes fail as the closed descriptor's would. A command whose result is its output
    (``pylock which app >&-``) then says it could not write it and exits 1, as ``ls`` and
    ``cat`` do; one that writes nothing there (``sync``, ``run``) is not affected."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _open_closed_streams() -> None:
    """Give a closed stdout (see :class:`_ClosedOutput`) or stderr (``2>&-``: the null
    device, so that messages are dropped) a stream instead of ``None``, which would crash
    the first write."""
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def _warn(warnings: Sequence[str], color: str, settings: Settings) -> None:
    """Give the full sync's warnings again, as it gave them (the fast path checked that
    each is one printable line: the Reporter, and its imports, are not needed)."""
    from pylock.progress import want_color, warning_line

    colored = want_color(color, settings.no_color or settings.dumb_terminal)
    _say("".join(warning_line(warning, colored) + "\n" for warning in warnings))


def _say(text: str) -> None:
    """Write to stderr if it can be written, as the CLI does: a full disk or a closed pipe
    there changes neither the outcome nor the exit status."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _run() -> int:
    from pylock.fastpath import try_noop_sync

    _open_closed_streams()
    from pylock.settings import Settings

    settings = Settings.from_environ(os.environ)
    noop = try_noop_sync(sys.argv[1:], settings)
    if noop is not None:
        if noop.warnings:
            _warn(noop.warnings, noop.color, settings)
        if noop.line:
            _say(noop.line + "\n")
        return 0
    from pylock.interrupts import Terminated, sigterm_as_interrupt
    from pylock.sync import early

    try:
        # From here on downloads may be under way: SIGTERM must stop them as Ctrl-C does,
        # until they have (abandon, for a sync that never took them over).
        with sigterm_as_interrupt():
            try:
                # A cold sync's downloads start now, before the CLI is imported (see early).
                early.begin(sys.argv[1:], settings)
                from pylock.cli import main as full_main

                gc.freeze()
                gc.enable()
                return full_main(settings=settings)
            finally:
                early.abandon()
    except Terminated:
        # Before the CLI took over, or while the head start stopped (the CLI says it
        # itself otherwise).
        sys.stderr.write("pylock: terminated\n")
        return 143
