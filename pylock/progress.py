"""Progress and status output: live bars on a terminal, one line per event elsewhere.

Library modules never print; they report through a :class:`Reporter` that the CLI
creates. Docker build logs and CI logs are not terminals, so there every event is a
single plain line and nothing is redrawn.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

from pylock.errors import UsageError

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1


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


def parse_size(text: str) -> int:
    """Parse a size such as ``500M``, ``2G``, ``1.5GiB``, ``800MB`` or ``123`` into bytes.

    ``K``, ``M``, ``G``, ``T`` and ``KiB``...``TiB`` are powers of 1024; ``KB``...``TB``
    are powers of 1000; a bare number (or ``B``) is bytes. Case does not matter.

    >>> parse_size("500M"), parse_size("1.5GiB"), parse_size("2gb"), parse_size("0")
    (524288000, 1610612736, 2000000000, 0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", text.lower())
    if not match:
        raise UsageError(
            f"invalid size {text!r}",
            hint='write a size like "500M", "2G", "1.5GiB" or "800MB" (M = MiB, MB = 10^6)',
        )
    number, prefix, binary, byte = match.groups()
    if binary and not (prefix and byte):
        raise UsageError(f"invalid size {text!r}", hint='write e.g. "1.5GiB"')
    power = "kmgt".index(prefix) + 1 if prefix else 0
    base = 1000 if (byte and not binary and prefix) else 1024
    return int(float(number) * base**power)


class Task:
    """One long-running piece of work (a download, an extraction)."""

    def __init__(self, reporter: Reporter, label: str, total: int | None) -> None:
        self._reporter = reporter
        self.label = label
        self.total = total
        self.completed = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
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


class Reporter:
    """Where status goes: stderr, as bars on a TTY or plain lines otherwise."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = 0,
        live: bool | None = None,
        color: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity
        self.live = self.stream.isatty() if live is None else live
        self.color = color
        self._lock = threading.Lock()
        self._active: list[Task] = []
        self._drawn_lines = 0

    # -- messages --------------------------------------------------------------------

    def event(self, message: str) -> None:
        """A line worth showing unless ``-q`` was given."""
        if self.verbosity >= 0:
            self._line(message)

    def detail(self, message: str) -> None:
        """A line for ``-v`` only."""
        if self.verbosity > 0:
            self._line(message)

    def warn(self, message: str) -> None:
        """A warning, always shown."""
        prefix = "\033[33mwarning\033[0m" if self.color else "warning"
        self._line(f"pylock: {prefix}: {message}")

    # -- tasks -----------------------------------------------------------------------

    def task(self, label: str, total: int | None = None) -> Task:
        """Start a task; on a terminal it gets a live bar until :meth:`Task.done`."""
        task = Task(self, label, total)
        with self._lock:
            self._active.append(task)
        if not self.live and self.verbosity > 0:
            size = f" ({human_size(total)})" if total else ""
            self._line(f"{label}{size} ...")
        return task

    def _on_advance(self, task: Task) -> None:
        if not self.live or self.verbosity < 0:
            return
        now = time.monotonic()
        if now - task._last_draw < _REDRAW_SECONDS:
            return
        task._last_draw = now
        with self._lock:
            self._redraw()

    def _on_done(self, task: Task, message: str | None) -> None:
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
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            if self.live:
                self._redraw()
            self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._drawn_lines:
            self.stream.write("\033[F\033[K" * self._drawn_lines)
            self._drawn_lines = 0

    def _redraw(self) -> None:
        self._clear()
        for task in self._active[:8]:
            self.stream.write(_render(task) + "\n")
            self._drawn_lines += 1
        self.stream.flush()


def _render(task: Task) -> str:
    from pylock.urls import redact

    label = redact(task.label)
    if task.total:
        fraction = min(task.completed / task.total, 1.0)
        filled = int(fraction * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        return f"{label} [{bar}] {human_size(task.completed)} / {human_size(task.total)}"
    return f"{label} {human_size(task.completed)}"


class NullReporter(Reporter):
    """A reporter that shows nothing; for library use and tests."""

    def __init__(self) -> None:
        super().__init__(stream=sys.stderr, verbosity=-1, live=False)

    def warn(self, message: str) -> None:
        """Drop warnings too."""
