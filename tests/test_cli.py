"""CLI behaviour common to every command: exit codes, error lines, help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pylock.cli import build_parser, main


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in (
        "init",
        "lock",
        "sync",
        "fetch",
        "diff",
        "list",
        "which",
        "outdated",
        "verify",
        "cache",
        "mirror",
    ):
        assert command in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("pylock ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_lock_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(tmp_path), "sync"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"pylock: error: no lock file at {tmp_path / 'pythons.lock'}"
    assert "pylock: hint: create it with `pylock lock`" in err
    assert "Traceback" not in err


def test_a_subdirectory_of_a_project_is_pointed_at_the_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """New-user walk-through: in `src/` of a project, `sync` said to create the lock with
    `pylock lock`, and `lock` to run `pylock init`, which wrote a second project (on
    another Python) under the first. The hints now name the project above; a `--project`
    that does not exist is said to be none."""
    (tmp_path / "pythons.toml").write_text('[python.app]\nversion = "3.13"\n')
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    monkeypatch.chdir(src)
    pointed = (
        f"pylock: hint: pylock looks in the current directory only, and the project is in "
        f"{tmp_path}: run pylock there, or pass `--project ../..`"
    )
    # `which`, `run` and `verify` too (they said to "run it in the project", or to
    # sync first).
    for command in (["sync"], ["lock"], ["which", "app"], ["run", "app"], ["verify"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == pointed, command
        assert "pylock init" not in err
    # An install directory given is the user's word: its own hint stands.
    assert main(["verify", "--into", "../../.pythons"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pylock: hint: run `pylock sync` first, or pass --into DIR"
    )
    # Where the project is, or with --project, the usual hints stand.
    monkeypatch.chdir(tmp_path)
    assert main(["sync"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "pylock: hint: create it with `pylock lock`"
    assert main(["--project", "src/pkg", "lock"]) == 1
    assert "run `pylock init`" in capsys.readouterr().err
    assert main(["--project", "nonexist", "sync"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pylock: hint: --project nonexist: no such directory"
    )
    # `init` there starts a second project, and says so.
    monkeypatch.chdir(src)
    assert main(["init"]) == 0
    assert (
        f"pylock: warning: {tmp_path} above holds a project too: this one is another; if you "
        f"meant that one, remove pythons.toml and run pylock in {tmp_path}"
    ) in capsys.readouterr().err


def test_invalid_lock_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pythons.lock").write_text(
        'lock-version = 1\ncreated-by = "x"\nconfig-digest = "nope"\nbogus = 1\n'
    )
    assert main(["--project", str(tmp_path), "sync"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(
        line.endswith("config-digest: invalid digest 'nope' (expected sha256:<64 hex>)")
        for line in err
    )
    assert any("bogus: unknown key" in line for line in err)


def test_bad_jobs_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pythons.lock").write_text(
        'lock-version = 1\ncreated-by = "x"\nconfig-digest = "sha256:' + "0" * 64 + '"\n'
    )
    code = main(
        ["--project", str(tmp_path), "sync", "--into", str(tmp_path / "d")],
        environ={"PYLOCK_CONCURRENCY": "lots"},
    )
    # Nothing is locked, so nothing needs the job count; a sync refuses it all the same, so
    # that the same command does not pass or fail with the state of the install directory.
    assert code == 2
    assert "PYLOCK_CONCURRENCY must be a whole number" in capsys.readouterr().err
    assert main(["--project", str(tmp_path), "sync", "--jobs", "x"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    # Commands that download nothing do not look at it.
    listed = main(["--project", str(tmp_path), "list"], environ={"PYLOCK_CONCURRENCY": "lots"})
    assert listed == 0


def test_parser_is_reusable() -> None:
    args = build_parser().parse_args(
        ["sync", "--into", "/opt/python", "--only", "app", "--only", "b"]
    )
    assert args.into == "/opt/python"
    assert args.only == ["app", "b"]


def test_color_always_and_no_color(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--color", "always", "--project", str(tmp_path), "sync"]) == 1
    assert "pylock: \033[31merror\033[0m: no lock file" in capsys.readouterr().err
    # NO_COLOR wins over auto detection (and stderr is not a terminal here anyway).
    assert main(["--project", str(tmp_path), "sync"], environ={"NO_COLOR": "1"}) == 1
    assert "\033[" not in capsys.readouterr().err


def test_quiet_and_verbose_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "-v", "list"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_quiet_and_verbose_work_after_the_command(tmp_path: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["lock", "-q"]).verbosity == -1
    assert parser.parse_args(["-q", "lock"]).verbosity == -1
    assert parser.parse_args(["lock"]).verbosity == 0
    assert parser.parse_args(["sync", "-v", "-v"]).verbosity == 2
    # A global -v stays in force when the command has none of its own.
    assert parser.parse_args(["-v", "sync", "--into", "x"]).verbosity == 1


def test_every_positional_argument_has_help_and_run_needs_only_a_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """UX attack: `pylock run` alone said NAME and ARGS were required (ARGS are optional),
    and the positionals of which, run and completion had no help text."""
    import argparse

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subparsers.choices.items():
        for action in command._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.metavar}"
    assert main(["run"]) == 2
    assert capsys.readouterr().err.endswith("error: the following arguments are required: NAME\n")


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["-q", "list", "-v"], None),
        (["-v", "list", "-q"], None),
        (["-v", "list", "-v"], 2),
        (["-q", "list", "-q"], -1),
        (["list", "-v"], 1),
        (["-vv", "list"], 2),
    ],
)
def test_quiet_and_verbose_count_together_before_and_after_the_command(
    argv: list[str], verbosity: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UX attack: `pylock -q lock -v` was taken silently (verbose won), where `pylock lock
    -q -v` is a usage error."""
    import pylock.cli as cli

    seen: list[int] = []

    def run(args: argparse.Namespace, ctx: object) -> int:
        seen.append(args.verbosity)
        return 0

    monkeypatch.setattr(cli, "_run", run)
    code = main(argv)
    if verbosity is None:
        assert code == 2 and seen == []
    else:
        assert code == 0 and seen == [verbosity]


@pytest.mark.parametrize(
    ("argv", "usage", "said"),
    [
        (["sync", "--ino", "x"], "usage: pylock sync ", "--ino x (did you mean --into?)"),
        (
            ["sync", "--project", "app"],
            "usage: pylock sync ",
            "--project app (--project goes before the command: pylock --project ... sync ...)",
        ),
        (["cache", "clean", "--dry-runn"], "usage: pylock cache clean ", "--dry-runn"),
        (["lock", "extra"], "usage: pylock lock ", "extra"),
        # Not "--version goes before the command", which prints pylock's version.
        (["init", "--version", "pypy3.11"], "usage: pylock init ", "--version pypy3.11"),
    ],
)
def test_an_unknown_argument_gets_its_commands_usage_and_a_suggestion(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, said: str
) -> None:
    """New-user walk-through: `pylock sync --ino x` printed the top-level usage (no
    `--into` in it) and no hint, and `pylock sync --project app` did not say that
    `--project` goes before the command."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert (
        err.splitlines()[-1]
        == f"pylock {' '.join(usage.split()[2:])}: error: unrecognized arguments: {said}"
    )


def test_a_subproject_without_its_lock_is_not_pointed_at_the_project_above(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monorepo attack: `pylock sync` in `services/api`, a project of its own (it has a
    pythons.toml) not locked yet, under a repository root that is a project too, was told
    that "pylock looks in the current directory only, and the project is in" the root: the
    current directory is the project, and needs `pylock lock`."""
    toml = '[python.app]\nversion = "3.13"\n'
    (tmp_path / "pythons.toml").write_text(toml)
    sub = tmp_path / "services" / "api"
    sub.mkdir(parents=True)
    (sub / "pythons.toml").write_text(toml)
    monkeypatch.chdir(sub)
    assert main(["sync"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "pylock: hint: create it with `pylock lock`", err
