"""Progress and status output: live bars on a terminal, one line per event elsewhere.

Library modules never print; they report through a :class:`Reporter` that the CLI
creates. Docker build logs and CI logs are not terminals, so there every event is a
single plain line and nothing is redrawn. Nor is anything redrawn on a terminal that
cannot move its cursor (``TERM=dumb``: Emacs shells, some IDE consoles).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator
from typing import TextIO

_BAR_WIDTH = 24
#: The narrowest bar still worth drawing; below it only the label and the numbers show.
_MIN_BAR_WIDTH = 8
#: A label is cut down to this many columns before the bar is given up.
_MIN_LABEL_COLUMNS = 16
#: What ``shutil.get_terminal_size`` assumes too when a terminal does not tell.
_FALLBACK_COLUMNS = 80
_FALLBACK_LINES = 24
#: The most bars drawn at once; a terminal with fewer rows gets one fewer than it has.
_MAX_BARS = 8
_REDRAW_SECONDS = 0.1
#: Without bars (a CI or Docker log), a task still going after this many seconds says what
#: it is, then how far it got every :data:`_LOG_EVERY` seconds: a slow download is not
#: silent until it ends, and a fast one adds no line.
_LOG_AFTER = 3.0
_LOG_EVERY = 30.0
#: How often the log's ticker looks at the tasks under way: a download that receives
#: nothing still says so, on time.
_TICK_SECONDS = 1.0


def human_size(size: float) -> str:
    """Format a byte count for people.

    >>> human_size(35_210_000)
    '33.6 MiB'
    >>> human_size(512)
    '512 B'
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Task:
    """One long-running piece of work (a download, an extraction)."""

    def __init__(self, reporter: Reporter, label: str, total: int | None) -> None:
        self._reporter = reporter
        self.label = label
        self.total = total
        self.completed = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        #: When it last had a line in a log (without bars); 0: never.
        self._logged = 0.0
        self._finished = False

    def advance(self, amount: int) -> None:
        """Record ``amount`` more units (bytes, files) of progress."""
        self.completed += amount
        self._reporter._on_advance(self)

    def done(self, message: str | None = None) -> None:
        """Finish the task, printing ``message`` (or a default) as one line."""
        if self._finished:
            return
        self._finished = True
        self._reporter._on_done(self, message)


_WINDOWS = sys.platform == "win32"


#: The values of ``--color``.
COLOR_CHOICES = ("auto", "always", "never")


def warning_line(message: str, color: bool) -> str:
    """How a warning reads: ``pylock: warning: MESSAGE`` (``message`` already printable)."""
    prefix = "\033[33mwarning\033[0m" if color else "warning"
    return f"pylock: {prefix}: {message}"


def want_color(choice: str, no_color: bool) -> bool:
    """Whether to colour stderr: ``--color`` (``auto``, ``always``, ``never``), and for
    ``auto`` whether ``NO_COLOR`` (or a dumb terminal) says no and stderr can show it."""
    if choice == "always":
        if sys.stderr.isatty():
            escapes_work(sys.stderr)  # the classic Windows console obeys them once asked
        return True
    if choice == "never" or no_color:
        return False
    if not sys.stderr.isatty():
        return False
    return escapes_work(sys.stderr)


def escapes_work(stream: TextIO) -> bool:
    """Whether the terminal behind ``stream`` obeys escape sequences (cursor, colour).

    Every terminal does, except the classic Windows console until a program asks for them
    (``ENABLE_VIRTUAL_TERMINAL_PROCESSING``, Windows 10 and later); where that request
    fails, ``←[F←[K`` would be printed as it is.
    """
    if not _WINDOWS:
        return True
    try:  # pragma: no cover - Windows
        import ctypes
        import msvcrt

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
        handle = msvcrt.get_osfhandle(stream.fileno())  # type: ignore[attr-defined,unused-ignore]
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        enable_vt = 0x0004  # ENABLE_VIRTUAL_TERMINAL_PROCESSING
        return bool(mode.value & enable_vt) or bool(
            kernel32.SetConsoleMode(handle, mode.value | enable_vt)
        )
    except (AttributeError, OSError, ValueError):  # pragma: no cover - Windows
        return False


class Reporter:
    """Where status goes: stderr, as bars on a TTY or plain lines otherwise."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = 0,
        live: bool | None = None,
        color: bool = False,
        dumb_terminal: bool = False,
    ) -> None:
        """``live`` forces bars on or off; by default a TTY gets them unless the CLI
        says the terminal is dumb (``TERM=dumb``): the environment is not ours to read.
        """
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity
        self.dumb_terminal = dumb_terminal
        if live is None:
            live = self.stream.isatty() and not dumb_terminal and escapes_work(self.stream)
        self.live = live
        self.color = color
        self._ellipsis = "…" if _can_encode(self.stream, "…") else "..."
        self._lock = threading.Lock()
        #: Whether the stream failed a write (see :meth:`_unless_gone`): nothing more goes.
        self._gone = False
        #: Without bars: the thread that logs long tasks, while there are any, and the lock
        #: that keeps its lines before a task's last one.
        self._ticker: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._active: list[Task] = []
        self._drawn_lines = 0

    # -- messages --------------------------------------------------------------------

    def event(self, message: str) -> None:
        """A line worth showing unless ``-q`` was given."""
        if self.verbosity >= 0:
            self._line(_escaped(message))

    def detail(self, message: str) -> None:
        """A line for ``-v`` only."""
        if self.verbosity > 0:
            self._line(_escaped(message))

    def warn(self, message: str) -> None:
        """A warning, always shown."""
        self._line(warning_line(_escaped(message), self.color))

    # -- tasks -----------------------------------------------------------------------

    def task(self, label: str, total: int | None = None) -> Task:
        """Start a task; on a terminal it gets a live bar until :meth:`Task.done`."""
        task = Task(self, label, total)
        with self._lock:
            self._active.append(task)
        if not self.live and self.verbosity > 0:
            size = f" ({human_size(total)})" if total else ""
            self._line(f"{label}{size} ...")
            task._logged = task.started
        if not self.live and self.verbosity >= 0:
            self._start_ticker()
        return task

    def _start_ticker(self) -> None:
        with self._lock:
            if self._ticker is not None:
                return
            self._ticker = threading.Thread(target=self._tick_while_busy, daemon=True)
        self._ticker.start()

    def _tick_while_busy(self) -> None:
        while True:
            time.sleep(_TICK_SECONDS)
            with self._lock:
                if not self._active:
                    self._ticker = None
                    return
            try:
                self.tick(time.monotonic())
            except (OSError, ValueError):  # the stream closed (a pipe gone): lines end
                return

    def tick(self, now: float) -> None:
        """Without bars (a CI or Docker log), say what a long task is doing: once it has
        taken :data:`_LOG_AFTER` seconds, then every :data:`_LOG_EVERY` seconds, whether
        or not bytes arrive (a stalled download says so). The ticker calls this."""
        if self.live or self.verbosity < 0:
            return
        with self._lock:
            active = list(self._active)
        for task in active:
            self._log_progress(task, now)

    def _on_advance(self, task: Task) -> None:
        if self.verbosity < 0 or not self.live:
            return
        now = time.monotonic()
        if now - task._last_draw < _REDRAW_SECONDS:
            return
        task._last_draw = now
        with self._lock:
            self._redraw()

    def _log_progress(self, task: Task, now: float) -> None:
        with self._log_lock:
            if not task._finished:
                self._log_line(task, now)

    def _log_line(self, task: Task, now: float) -> None:
        if task._logged == 0.0:
            if now - task.started < _LOG_AFTER:
                return
            task._logged = now
            size = f" ({human_size(task.total)})" if task.total else ""
            self._line(f"{task.label}{size} ...")
        elif now - task._logged >= _LOG_EVERY:
            task._logged = now
            done = human_size(max(task.completed, 0))
            if task.total:
                share = min(100, max(0, 100 * task.completed // task.total))
                done = f"{done} of {human_size(task.total)} ({share}%)"
            self._line(f"{task.label}: {done} after {now - task.started:.0f}s")

    def _on_done(self, task: Task, message: str | None) -> None:
        with self._log_lock:  # after a progress line being written, never before it
            pass
        with self._lock:
            if task in self._active:
                self._active.remove(task)
        if message is None:
            elapsed = time.monotonic() - task.started
            message = f"{task.label} done in {elapsed:.1f}s"
        if message:
            self.event(message)
        elif self.live:
            with self._lock:
                self._redraw()

    # -- drawing ---------------------------------------------------------------------

    def _line(self, text: str) -> None:
        from pylock.urls import redact

        text = redact(text)  # every message, warning and progress line passes here
        if self._gone:
            return
        with self._lock, self._unless_gone():
            self._clear()
            self.stream.write(text + "\n")
            if self.live:
                self._redraw()
            self.stream.flush()

    @contextlib.contextmanager
    def _unless_gone(self) -> Iterator[None]:
        """Write to the stream unless it is gone: a closed pipe (``2>&1 | head -1``), a
        full disk or a hung-up terminal. What is said here is diagnostics; the work goes
        on without them, and its outcome decides the exit status, not theirs."""
        try:
            yield
        except (OSError, ValueError):  # ValueError: a stream closed under us
            self._gone = True

    def _clear(self) -> None:
        if self.live and self._drawn_lines:
            self.stream.write("\033[F\033[K" * self._drawn_lines)
            self._drawn_lines = 0

    def _redraw(self) -> None:
        if self._gone:
            return
        with self._unless_gone():
            self._clear()
            # _clear moves up one row per bar, so no bar may wrap. The last column stays
            # empty too: some terminals wrap as soon as it is written. The width is read
            # again at every redraw (one ioctl) so that a resized window is followed.
            # Nor may the bars outgrow the window: a row scrolled off its top cannot be
            # taken back, and the rows moved up over instead are the lines written above.
            columns, lines = terminal_size(self.stream)
            for task in self._active[: min(_MAX_BARS, lines - 1)]:
                self.stream.write(_render(task, columns - 1, self._ellipsis) + "\n")
                self._drawn_lines += 1
            self.stream.flush()


def _escaped(message: str) -> str:
    """``message`` as one line with no control character in it: what a manifest, a record
    or a server put in a name must not move the cursor or forge a line of output."""
    from pylock.errors import printable

    return printable(message)


def terminal_size(stream: TextIO) -> tuple[int, int]:
    """The columns and rows of the terminal behind ``stream`` now; 80 by 24 when it
    cannot say."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor, not a terminal, closed
        return _FALLBACK_COLUMNS, _FALLBACK_LINES
    # A pseudo-terminal nobody has sized reports 0.
    return size.columns or _FALLBACK_COLUMNS, size.lines or _FALLBACK_LINES


def _render(task: Task, columns: int, ellipsis: str = "…") -> str:
    """One bar in at most ``columns`` columns; the label gives way first, the numbers never."""
    from pylock.errors import printable
    from pylock.urls import redact

    # A control character in a file name would move the cursor or start a new row.
    label = printable(redact(task.label))
    if task.total:
        fraction = min(task.completed / task.total, 1.0)
        numbers = f" {human_size(task.completed)} / {human_size(task.total)}"
        # The label is what tells two downloads apart, so the bar shrinks before the
        # label is cut, and is dropped before the label is cut below a readable stub.
        room = columns - text_columns(numbers) - len(" []")
        if room - _MIN_BAR_WIDTH >= min(text_columns(label), _MIN_LABEL_COLUMNS):
            label = elide(label, room - _MIN_BAR_WIDTH, ellipsis)
            width = min(_BAR_WIDTH, room - text_columns(label))
            filled = int(fraction * width)
            return f"{label} [{'#' * filled}{'-' * (width - filled)}]{numbers}"
    else:
        numbers = f" {human_size(task.completed)}"
    if columns >= text_columns(numbers):
        # With no room left for the label, the numbers start the line.
        return (elide(label, columns - text_columns(numbers), ellipsis) + numbers).lstrip()
    # A window narrower than the numbers alone: nothing is readable, but nothing wraps.
    return elide(label + numbers, columns, ellipsis)


# -- columns -------------------------------------------------------------------------


def _char_columns(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_columns(text: str) -> int:
    r"""How many terminal columns printable ``text`` takes (CJK characters take two).

    >>> text_columns("python"), text_columns("パイソン"), text_columns("e\u0301")
    (6, 8, 1)
    """
    if text.isascii():
        return len(text)
    return sum(_char_columns(c) for c in text)


def _take(chars: Iterable[str], columns: int) -> int:
    """How many of ``chars`` fit in ``columns``, taken in order."""
    used = count = 0
    for char in chars:
        used += _char_columns(char)
        if used > columns:
            break
        count += 1
    return count


def elide(text: str, columns: int, ellipsis: str = "…") -> str:
    """``text`` in at most ``columns`` columns, the middle dropped if it must go.

    The start of an archive name says which interpreter and version it is, the end
    which flavor; the platform in the middle is the first thing to lose. The start keeps
    two thirds of the room: with half, an 80-column bar cut the version (``cpython-3.1…``).

    >>> elide("Downloading cpython-3.13.9+20251014-x86_64-unknown-linux-gnu.tar.gz", 40)
    'Downloading cpython-3.13.9…ux-gnu.tar.gz'
    >>> elide("short", 40)
    'short'
    """
    if text_columns(text) <= columns:
        return text
    room = columns - text_columns(ellipsis)
    if room < 2:
        return text[: _take(text, columns)]
    head = _take(text, room * 2 // 3)
    tail = _take(reversed(text), room - text_columns(text[:head]))
    return text[:head] + ellipsis + text[len(text) - tail :]


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class NullReporter(Reporter):
    """A reporter that shows nothing; for library use and tests."""

    def __init__(self) -> None:
        super().__init__(stream=sys.stderr, verbosity=-1, live=False)

    def warn(self, message: str) -> None:
        """Drop warnings too."""
