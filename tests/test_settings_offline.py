"""Boolean ``PYLOCK_*`` variables: a value that is neither true nor false is one clean error
for the commands that use it, never a silent "false" (``PYLOCK_OFFLINE=2``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylock.cli import main
from pylock.errors import UsageError
from pylock.settings import Settings
from tests.syncproject import Build, Project

FLAGS = {
    "PYLOCK_OFFLINE": "offline",
    "PYLOCK_REMOTE_CACHE_PUSH": "remote_cache_push",
    "PYLOCK_NO_ORIGIN": "no_origin",
}
SPELLINGS = "true (1, true, yes, on) or false (0, false, no, off)"


@pytest.mark.parametrize("variable", sorted(FLAGS))
@pytest.mark.parametrize("value", ["2", "-1", "maybe", "enabled", "y", "1.0", "on!", "\x1b[31m"])
def test_an_unrecognised_value_is_an_error_naming_the_variable_and_spellings(
    variable: str, value: str
) -> None:
    settings = Settings.from_environ({variable: value})
    with pytest.raises(UsageError) as info:
        getattr(settings, FLAGS[variable])
    assert str(info.value) == f"{variable} must be {SPELLINGS}, not {value!r}"
    assert info.value.hint is not None and "unset it" in info.value.hint
    # The other flags are unaffected, and reading the settings themselves never fails.
    for other in set(FLAGS.values()) - {FLAGS[variable]}:
        assert getattr(settings, other) is False
    assert repr(settings) and settings == Settings.from_environ({variable: value})


@pytest.mark.parametrize("variable", sorted(FLAGS))
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("0", False),
        ("False", False),
        ("NO", False),
        ("off", False),
        ("", False),  # blank counts as unset, as for every variable
        ("  ", False),
    ],
)
def test_recognised_spellings_and_blank(variable: str, value: str, expected: bool) -> None:
    settings = Settings.from_environ({variable: value})
    assert getattr(settings, FLAGS[variable]) is expected
    if not expected:
        assert settings == Settings.from_environ({})


def test_flags_given_by_hand() -> None:
    settings = Settings(offline=True)
    assert settings.offline and not settings.no_origin and not settings.remote_cache_push
    with pytest.raises(AttributeError):
        settings.offline = False  # type: ignore[misc]
    with pytest.raises(TypeError, match="unknown settings: flags"):
        Settings(flags={})


@pytest.mark.parametrize("variable", sorted(FLAGS))
def test_the_cli_reports_it_once_for_commands_that_use_it(
    variable: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pythons.lock").write_text(
        'lock-version = 1\ncreated-by = "x"\nconfig-digest = "sha256:' + "0" * 64 + '"\n'
    )
    environ = {variable: "2", "PYLOCK_CACHE_DIR": str(tmp_path / "c")}
    assert main(["--project", str(tmp_path), "list"], environ=environ) == 0
    capsys.readouterr()
    assert main(["--project", str(tmp_path), "fetch"], environ=environ) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"pylock: error: {variable} must be {SPELLINGS}, not '2'"
    assert "Traceback" not in err


def test_the_fast_path_leaves_a_bad_flag_to_the_full_sync(
    sync_project: Project, app_a: Build
) -> None:
    sync_project.install(app_a)
    assert sync_project.check(sync_project.sync_command()).code == 0  # the fast path
    done = sync_project.check(sync_project.sync_command(), ("PYLOCK_OFFLINE", "2"))
    assert done.code == 2, done.err
    assert done.err.splitlines()[0] == (
        f"pylock: error: PYLOCK_OFFLINE must be {SPELLINGS}, not '2'"
    )
    assert "Traceback" not in done.err
    # A spelling of false is as good as unset.
    done = sync_project.check(sync_project.sync_command(), ("PYLOCK_OFFLINE", "off"))
    assert done.code == 0 and "up to date" in done.err, done.err
