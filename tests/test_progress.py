"""Tests for status output: plain lines for logs, live bars on terminals."""

from __future__ import annotations

import io

import pytest

import pylock.progress
from pylock.progress import NullReporter, Reporter, human_size


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_is_one_line_per_event() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=0)
    assert not reporter.live
    task = reporter.task("Downloading x.tar.gz", 3 * 1024 * 1024)
    for _ in range(3):
        task.advance(1024 * 1024)
    task.done("Downloaded x.tar.gz (3.0 MiB) in 0.1s")
    reporter.event("installed app: cpython 3.13.9+20251014")
    reporter.warn("something odd")
    reporter.detail("only with -v")
    # No carriage returns or escape codes: Docker build logs show exactly these lines.
    assert stream.getvalue() == (
        "Downloaded x.tar.gz (3.0 MiB) in 0.1s\n"
        "installed app: cpython 3.13.9+20251014\n"
        "pylock: warning: something odd\n"
    )


def test_verbose_plain_output_announces_tasks() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=1)
    reporter.task("Downloading x.tar.gz", 2048).done("")
    reporter.detail("details")
    assert stream.getvalue() == "Downloading x.tar.gz (2.0 KiB) ...\ndetails\n"


def test_quiet_keeps_only_warnings() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=-1)
    reporter.event("hidden")
    reporter.task("t", 10).done("hidden too")
    reporter.warn("shown")
    assert stream.getvalue() == "pylock: warning: shown\n"


def test_terminal_output_draws_and_clears_a_bar() -> None:
    stream = FakeTTY()
    reporter = Reporter(stream, verbosity=0)
    assert reporter.live
    task = reporter.task("Downloading big", 100)
    task._last_draw = -1.0  # draw on the next advance, whatever the clock says
    task.advance(50)
    assert "[############------------] 50 B / 100 B" in stream.getvalue()
    task.done("finished")
    # The bar is erased (cursor up + clear line) before the final line is printed.
    assert stream.getvalue().endswith("\033[F\033[Kfinished\n")


def test_color_warning() -> None:
    stream = io.StringIO()
    Reporter(stream, color=True).warn("w")
    assert stream.getvalue() == "pylock: \033[33mwarning\033[0m: w\n"


def test_messages_reach_the_terminal_with_their_control_characters_escaped() -> None:
    # Attack: a bin-dir manifest's names and install dirs went out raw: an escape sequence
    # recoloured the terminal, a newline forged a line of output.
    stream = io.StringIO()
    reporter = Reporter(stream=stream, verbosity=1, color=True, live=False)
    reporter.warn("took evil\x1b[31mRED\nfake line")
    reporter.event("removed \u202elink")
    reporter.detail("tab\there")
    assert stream.getvalue().splitlines() == [
        "pylock: \x1b[33mwarning\x1b[0m: took evil\\x1b[31mRED\\nfake line",
        "removed \\u202elink",
        "tab\\there",
    ]


def test_null_reporter_is_silent(capsys) -> None:  # type: ignore[no-untyped-def]
    reporter = NullReporter()
    reporter.event("x")
    reporter.warn("y")
    reporter.task("z", 1).done("done")
    assert capsys.readouterr() == ("", "")


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"


def test_a_long_task_in_a_log_says_what_it_is_and_how_far_it_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without bars, a slow download was silent until it ended (field test 5): after a few
    seconds it says what it is, then how far it got every half minute, whether or not
    bytes arrive; a fast one adds no line."""
    import time

    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(pylock.progress, "_TICK_SECONDS", 3600.0)  # the test ticks
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=0)
    fast = reporter.task("Downloading fast.tar.gz", 1024)
    fast.advance(1024)
    fast.done("")
    slow = reporter.task("Downloading slow.tar.gz", 4 * 1024 * 1024)
    for step in range(1, 70):
        clock[0] += 1
        if step < 40:  # then it stalls: the lines go on
            slow.advance(32 * 1024)
        reporter.tick(clock[0])
        if step == 2:
            assert stream.getvalue() == ""
    slow.done("Downloaded slow.tar.gz")
    reporter.tick(clock[0] + 100)  # a finished task says nothing more
    assert stream.getvalue().splitlines() == [
        "Downloading slow.tar.gz (4.0 MiB) ...",
        "Downloading slow.tar.gz: 1.0 MiB of 4.0 MiB (25%) after 33s",
        "Downloading slow.tar.gz: 1.2 MiB of 4.0 MiB (30%) after 63s",
        "Downloaded slow.tar.gz",
    ]
    # -q keeps it quiet, as every other line.
    quiet = io.StringIO()
    muted = Reporter(quiet, verbosity=-1)
    muted.task("Downloading q.tar.gz", 10)
    muted.tick(clock[0] + 100)
    assert quiet.getvalue() == ""


def test_the_log_ticker_reports_a_stalled_task_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """No byte, no advance(): the ticker thread still says what is under way, and ends
    with the last task."""
    import time

    monkeypatch.setattr(pylock.progress, "_TICK_SECONDS", 0.01)
    monkeypatch.setattr(pylock.progress, "_LOG_AFTER", 0.0)
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=0)
    task = reporter.task("Downloading stalled.tar.gz", 2048)
    deadline = time.monotonic() + 10
    while "stalled" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    task.done("")
    assert stream.getvalue() == "Downloading stalled.tar.gz (2.0 KiB) ...\n"
    ticker = reporter._ticker
    if ticker is not None:
        ticker.join(10)
    assert reporter._ticker is None


def test_color_always_asks_a_console_to_obey_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Portability review: `--color always` skipped the request that makes the classic
    Windows console obey escape sequences, and printed them raw (←[31m)."""
    import io
    import sys

    import pylock.progress as progress

    class Console(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[object] = []

    def escapes_work(stream: object) -> bool:
        asked.append(stream)
        return False

    monkeypatch.setattr(progress, "escapes_work", escapes_work)
    monkeypatch.setattr(sys, "stderr", Console())
    assert progress.want_color("always", no_color=True)
    assert asked == [sys.stderr]
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a console: nothing to ask
    assert progress.want_color("always", no_color=False)
    assert asked == [asked[0]]
