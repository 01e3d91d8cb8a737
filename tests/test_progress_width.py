"""Tests that live bars fit the terminal: no wrapped rows, no stale rows, no bars on dumb ones."""

from __future__ import annotations

import io
import os
import re
import struct
import sys
from collections.abc import Iterator

import pytest

from pylock.progress import Reporter, Task, elide, terminal_size, text_columns

LONG = "Downloading cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
MIB = 1024 * 1024
#: Cursor to the start of the previous row, then erase that row: how a bar is taken back.
UP_AND_CLEAR = "\033[F\033[K"

needs_pty = pytest.mark.skipif(
    sys.platform == "win32", reason="sizes a pseudo-terminal with a POSIX ioctl"
)


class FakeTTY(io.StringIO):
    """A terminal that records what is written; its size comes from ``fd``, if given."""

    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self.fd = fd

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.fd is None:
            raise io.UnsupportedOperation("fileno")
        return self.fd


class AsciiTTY(FakeTTY):
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "ascii"


@pytest.fixture
def pty_fd() -> Iterator[int]:
    """A pseudo-terminal's descriptor, to be sized with :func:`set_columns`."""
    master, slave = os.openpty()
    try:
        yield slave
    finally:
        os.close(slave)
        os.close(master)


def set_columns(fd: int, columns: int, lines: int = 24) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))


class Screen:
    """Just enough of a VT100 to replay bars: autowrap, newline, ``ESC[F`` and ``ESC[K``.

    Like xterm, a character written in the last column leaves the cursor there until
    the next printable character, which wraps; a newline in that state starts only one
    row. A line one column too long therefore costs a row, as it does on a terminal.
    """

    def __init__(self, columns: int, lines: int | None = None) -> None:
        self.columns = columns
        #: The window's height: ``ESC[F`` stops at its top row, and what scrolled above
        #: it stays in the scrollback (``rows``) as it was.
        self.lines = lines
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: str) -> None:
        for token in re.findall(r"\033\[[FK]|\n|.", data, flags=re.DOTALL):
            if token == "\033[F":
                top = 0 if self.lines is None else max(len(self.rows) - self.lines, 0)
                self.row = max(self.row - 1, top)
                self.col = 0
            elif token == "\033[K":
                del self.rows[self.row][self.col :]
            elif token == "\n":
                self._next_row()
            else:
                assert token.isprintable(), f"unexpected {token!r} on the terminal"
                width = text_columns(token)
                if self.col + width > self.columns:
                    self._next_row()
                line = self.rows[self.row]
                line.extend(" " * (self.col + width - len(line)))
                # A wide character's second cell holds nothing of its own.
                line[self.col : self.col + width] = [token, *[""] * (width - 1)]
                self.col += width

    def _next_row(self) -> None:
        self.row += 1
        self.col = 0
        if self.row == len(self.rows):
            self.rows.append([])

    @property
    def text(self) -> list[str]:
        """Every non-empty row on the screen and in its scrollback, top to bottom."""
        return [text for row in self.rows if (text := "".join(row).rstrip())]


def advance(task: Task, amount: int) -> None:
    """Advance and redraw now, whatever the clock says."""
    task._last_draw = float("-inf")
    task.advance(amount)


def drawn_rows(output: str) -> list[str]:
    """The bar rows written: every line that is not a permanent message."""
    return [line for line in output.replace(UP_AND_CLEAR, "").split("\n") if " MiB" in line]


def run_download(stream: FakeTTY, *, label: str = LONG, steps: int = 12) -> str:
    reporter = Reporter(stream, verbosity=0)
    assert reporter.live
    reporter.event("Resolving app")
    first = reporter.task(label, 120 * MIB)
    second = reporter.task("Downloading pypy3.11-v7.3.20-linux64.tar.bz2", 30 * MIB)
    for _ in range(steps):
        advance(first, 10 * MIB)
        advance(second, 2 * MIB)
        reporter.detail("hidden")
    second.done("Downloaded pypy")
    first.done("Downloaded cpython")
    return stream.getvalue()


@needs_pty
@pytest.mark.parametrize("columns", [80, 60, 40, 24])
def test_bars_fit_the_terminal_and_leave_no_stale_rows(pty_fd: int, columns: int) -> None:
    set_columns(pty_fd, columns)
    stream = FakeTTY(pty_fd)
    assert terminal_size(stream)[0] == columns
    output = run_download(stream)
    rows = drawn_rows(output)
    assert len(rows) >= 24  # two bars, redrawn at every step
    # The last column stays free: some terminals wrap as soon as it is written.
    assert all(text_columns(row) < columns for row in rows), rows
    # One row up per bar row drawn, so every bar is taken back entirely.
    assert output.count("\033[F") == len(rows)
    screen = Screen(columns)
    screen.feed(output)
    assert screen.text == ["Resolving app", "Downloaded pypy", "Downloaded cpython"]


def _long_download(pty_fd: int, steps: list[tuple[int, int]]) -> list[str]:
    """The rows drawn for a 120 MiB download of ``LONG``, advanced by each step's bytes on
    a terminal of that step's width."""
    stream = FakeTTY(pty_fd)
    task = None
    for columns, amount in steps:
        set_columns(pty_fd, columns)
        task = task or Reporter(stream).task(LONG, 120 * MIB)
        advance(task, amount)
    return drawn_rows(stream.getvalue())


@needs_pty
def test_the_size_is_kept_and_the_label_loses_its_middle(pty_fd: int) -> None:
    (row,) = _long_download(pty_fd, [(80, 60 * MIB)])
    # At 80 columns the version is still whole: it tells two downloads apart.
    assert row.startswith("Downloading cpython-3.13.9")
    assert "…" in row
    assert row.endswith("stripped.tar.gz [####----] 60.0 MiB / 120.0 MiB")


@needs_pty
def test_a_resized_window_is_followed_at_the_next_redraw(pty_fd: int) -> None:
    wide, narrow = _long_download(pty_fd, [(200, 10 * MIB), (50, 10 * MIB)])
    assert wide == f"{LONG} [##----------------------] 10.0 MiB / 120.0 MiB"
    assert text_columns(narrow) == 49
    assert narrow.endswith(" 20.0 MiB / 120.0 MiB")


@needs_pty
def test_more_bars_than_the_window_has_rows_keep_every_line_and_leave_no_bar(
    pty_fd: int,
) -> None:
    # A sync with --jobs 8 in a short pane: bars that scroll off the top cannot be taken
    # back, and moving up over them lands on the lines above, which were then lost.
    set_columns(pty_fd, 80, lines=6)
    stream = FakeTTY(pty_fd)
    reporter = Reporter(stream)
    tasks = [reporter.task(f"Downloading build-{n}.tar.gz", 8 * MIB) for n in range(8)]
    for step in range(4):
        for task in tasks:
            advance(task, MIB)
        reporter.event(f"event {step}")
    for n, task in enumerate(tasks):
        task.done(f"Downloaded build-{n}")
    screen = Screen(80, lines=6)
    screen.feed(stream.getvalue())
    events = [f"event {step}" for step in range(4)]
    assert screen.text == events + [f"Downloaded build-{n}" for n in range(8)]


def test_an_unsized_terminal_counts_as_80_columns() -> None:
    stream = FakeTTY()  # no descriptor to ask
    output = run_download(stream, steps=3)
    rows = drawn_rows(output)
    assert rows and all(text_columns(row) < 80 for row in rows)
    screen = Screen(80)
    screen.feed(output)
    assert screen.text == ["Resolving app", "Downloaded pypy", "Downloaded cpython"]


@needs_pty
def test_hostile_and_wide_labels_keep_to_one_row(pty_fd: int) -> None:
    set_columns(pty_fd, 40)
    label = "Downloading \x1b[2J\n\r" + "パイソン" * 10 + ".tar.gz"
    stream = FakeTTY(pty_fd)
    output = run_download(stream, label=label, steps=3)
    assert "\x1b[2J" not in output and "\r" not in output
    rows = drawn_rows(output)
    assert all(text_columns(row) < 40 for row in rows), rows
    assert output.count("\033[F") == len(rows)
    screen = Screen(40)
    screen.feed(output)
    assert screen.text == ["Resolving app", "Downloaded pypy", "Downloaded cpython"]


def test_an_ascii_terminal_gets_an_ascii_ellipsis() -> None:
    stream = AsciiTTY()
    task = Reporter(stream).task(LONG, 120 * MIB)
    advance(task, MIB)
    (row,) = drawn_rows(stream.getvalue())
    assert row.isascii() and "..." in row and len(row) == 79


def test_a_dumb_terminal_gets_plain_lines_like_a_log() -> None:
    outputs = []
    for stream in (FakeTTY(), io.StringIO()):
        reporter = Reporter(stream, verbosity=1, dumb_terminal=True)
        assert not reporter.live
        run = reporter.task(LONG, 120 * MIB)
        advance(run, 60 * MIB)
        run.done("Downloaded cpython")
        outputs.append(stream.getvalue())
    dumb, log = outputs
    assert "\033" not in dumb
    assert dumb == log == f"{LONG} (120.0 MiB) ...\nDownloaded cpython\n"


def test_a_log_keeps_long_labels_whole() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=1)
    reporter.task(LONG, 120 * MIB).done("")
    assert stream.getvalue() == f"{LONG} (120.0 MiB) ...\n"


def test_elide_never_exceeds_the_room() -> None:
    for text in (LONG, "パイソン" * 5, "e\u0301" * 30, "short"):
        for columns in range(60):
            cut = elide(text, columns)
            assert text_columns(cut) <= columns
            if text_columns(text) <= columns:
                assert cut == text
            elif columns >= 3:
                assert "…" in cut
