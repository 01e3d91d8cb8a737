"""``pylock init``: the starter pythons.toml and where its version comes from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pylock.cli import main
from pylock.config import loads_config
from pylock.errors import PylockError
from pylock.init import (
    guess_from_pyproject,
    guess_from_python_version,
    starter_config,
    write_starter,
)
from pylock.versions import Implementation, Variant
from tests.syncproject import Project

HOST_SERIES = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.12\n", ("cpython", "3.12", "default", False)),
        ("3.12.4\n", ("cpython", "3.12", "default", False)),
        ("3\n", ("cpython", "3", "default", False)),
        ("  3.11.2  \r\n3.10\n", ("cpython", "3.11", "default", False)),
        ("# comment\n\n3.13 # trailing\n", ("cpython", "3.13", "default", False)),
        ("3.13t\n", ("cpython", "3.13", "freethreaded", False)),
        ("3.13.1t", ("cpython", "3.13", "freethreaded", False)),
        ("3.13+freethreaded", ("cpython", "3.13", "freethreaded", False)),
        ("3.13d", ("cpython", "3.13", "debug", False)),
        ("3.14td", ("cpython", "3.14", "freethreaded+debug", False)),
        ("3.14.0a7", ("cpython", "3.14", "default", True)),
        ("3.13.0rc2", ("cpython", "3.13", "default", True)),
        ("pypy3.10", ("pypy", "3.10", "default", False)),
        ("pypy3.10-7.3.17", ("pypy", "3.10", "default", False)),
        ("pypy@3.11", ("pypy", "3.11", "default", False)),
        ("cpython-3.12", ("cpython", "3.12", "default", False)),
        ("cpython-3.12.4-linux-x86_64-gnu", ("cpython", "3.12", "default", False)),
        ("cpython@3.12", ("cpython", "3.12", "default", False)),
        ("python3.12", ("cpython", "3.12", "default", False)),
        ("graalpy-3.11", ("graalpy", "3.11", "default", False)),
    ],
)
def test_python_version_file(text: str, expected: tuple[str, str, str, bool]) -> None:
    guess = guess_from_python_version(text)
    assert guess is not None
    assert (guess.implementation, guess.version, guess.variant, guess.prereleases) == expected


@pytest.mark.parametrize(
    "text",
    [
        *("", "# only a comment\n", "system", "graalpy-24.1.0", "2.7.18", "pypy3.10t", "latest"),
        *("3.x", "30.1", "31", "3." + "1" * 5000),  # attack: written, then `lock` failed
    ],
)
def test_python_version_file_pylock_cannot_use(text: str) -> None:
    assert guess_from_python_version(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[project]\nrequires-python = ">=3.11"\n', ">=3.11"),
        ('[project]\nrequires-python = " >=3.10, <3.14 "\n', ">=3.10, <3.14"),
        ('[project]\nrequires-python = "~=3.12"\n', "~=3.12"),
        ('[project]\nrequires-python = ">=3.x"\n', None),
        ("[project]\nrequires-python = 3\n", None),
        ('[project]\nname = "x"\n', None),
        ("project = 1\n", None),
        ("[project\n", None),
    ],
)
def test_pyproject_requires_python(text: str, expected: str | None) -> None:
    guess = guess_from_pyproject(text)
    assert (guess.version if guess else None) == expected


def test_starter_from_python_version(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("3.12.4\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nrequires-python = ">=3.9"\n', encoding="utf-8"
    )
    text, source = starter_config(tmp_path)
    assert source == "version 3.12, from .python-version"
    config = loads_config(text)
    main_python = config.get("main")
    assert main_python is not None
    assert main_python.version == "3.12"
    assert main_python.platforms == ("host",)
    assert main_python.default is True
    assert 'version = "3.12"  # from .python-version\n' in text


def test_starter_for_freethreaded_pypy_and_prerelease(tmp_path: Path) -> None:
    version_file = tmp_path / ".python-version"
    version_file.write_text("3.14t\n", encoding="utf-8")
    text, source = starter_config(tmp_path)
    assert source == "version 3.14 (freethreaded), from .python-version"
    assert loads_config(text).pythons[0].variant is Variant.FREETHREADED

    version_file.write_text("pypy3.11\n", encoding="utf-8")
    text, source = starter_config(tmp_path)
    assert source == "version pypy 3.11, from .python-version"
    assert loads_config(text).pythons[0].implementation is Implementation.PYPY

    version_file.write_text("3.15.0a7\n", encoding="utf-8")
    text, _ = starter_config(tmp_path)
    assert loads_config(text).pythons[0].prereleases is True


def test_starter_from_requires_python(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nrequires-python = ">=3.11"\n', encoding="utf-8"
    )
    text, source = starter_config(tmp_path)
    assert source == "version >=3.11, from requires-python in pyproject.toml"
    config = loads_config(text)
    assert config.pythons[0].version == ">=3.11"


def test_starter_falls_back_to_the_running_python(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("system\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_bytes(b"\xff\xfe not toml")
    text, source = starter_config(tmp_path)
    assert source == (
        f"version {HOST_SERIES}, the series of the Python running pylock; "
        ".python-version names nothing pylock can lock; pyproject.toml is not UTF-8 text"
    )
    assert loads_config(text).pythons[0].version == HOST_SERIES


def test_starter_says_which_files_it_could_not_read(tmp_path: Path) -> None:
    """Field: a .python-version in UTF-16 (as PowerShell's `>` writes it) was passed over
    without a word, as if there were none."""
    (tmp_path / ".python-version").write_bytes("3.12\n".encode("utf-16"))
    (tmp_path / "pyproject.toml").symlink_to(tmp_path / "pyproject.toml")  # a loop
    _, source = starter_config(tmp_path)
    assert source.startswith(
        f"version {HOST_SERIES}, the series of the Python running pylock; "
        ".python-version is not UTF-8 text; cannot read pyproject.toml ("
    )


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_starter_passes_over_a_fifo_and_an_endless_device(tmp_path: Path) -> None:
    # Attack: a FIFO .python-version hung `pylock init`; /dev/zero ate all memory.
    os.mkfifo(tmp_path / ".python-version")
    (tmp_path / "pyproject.toml").symlink_to("/dev/zero")
    _, source = starter_config(tmp_path)
    assert source == (
        f"version {HOST_SERIES}, the series of the Python running pylock; "
        "cannot read .python-version (not a regular file); "
        "cannot read pyproject.toml (not a regular file)"
    )


@pytest.mark.parametrize(
    ("pyproject", "why"),
    [
        ('[project]\nrequires-python = "bogus"\n', "has no requires-python pylock can use"),
        ("[project]\n", "has no requires-python pylock can use"),
        # UX attack: a broken pyproject.toml was said to have no requires-python.
        ("[project\n", "is not valid TOML"),
    ],
)
def test_starter_says_why_pyproject_was_not_used(tmp_path: Path, pyproject: str, why: str) -> None:
    (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    _, source = starter_config(tmp_path)
    assert source == (
        f"version {HOST_SERIES}, the series of the Python running pylock; pyproject.toml {why}"
    )


def test_starter_with_nothing_to_go_on(tmp_path: Path) -> None:
    (tmp_path / ".python-version").mkdir()  # unreadable as a file
    text, source = starter_config(tmp_path)
    assert source == f"version {HOST_SERIES}, the series of the Python running pylock"
    assert loads_config(text).names == ("main",)


def test_commented_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    text, _ = starter_config(tmp_path)
    examples = ("# [python.", "# version", "# variant", "# implementation", "# platforms = ")
    uncommented = []
    for line in text.splitlines():
        if line.startswith(examples):
            uncommented.append(line[2:])
        elif not line.startswith("platforms = "):
            uncommented.append(line)
    config = loads_config("\n".join(uncommented))
    assert config.names == ("main", "nogil", "pypy")
    assert len(config.pythons[0].platforms) == 4


def test_write_starter_never_overwrites(tmp_path: Path) -> None:
    path, _ = write_starter(tmp_path)
    assert path == tmp_path / "pythons.toml"
    path.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(PylockError) as info:
        write_starter(tmp_path)
    assert str(info.value) == f"{path} already exists"
    assert info.value.hint == "edit it, or delete it first to start over"
    assert path.read_text(encoding="utf-8") == "# mine\n"


def test_write_starter_into_a_missing_directory(tmp_path: Path) -> None:
    # It said "is not a directory", with no hint, of a directory that does not exist.
    with pytest.raises(PylockError) as info:
        write_starter(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'} does not exist"
    assert info.value.hint == "create the directory first, or give --project an existing one"
    assert not (tmp_path / "nope").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PylockError, match="is not a directory"):
        write_starter(tmp_path / "file")


def test_cli_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".python-version").write_text("3.13\n", encoding="utf-8")
    assert main(["--project", str(tmp_path), "init"]) == 0
    err = capsys.readouterr().err
    assert "pythons.toml (version 3.13, from .python-version)" in err
    assert "run `pylock lock`" in err
    written = (tmp_path / "pythons.toml").read_text(encoding="utf-8")
    assert loads_config(written).pythons[0].version == "3.13"

    assert main(["--project", str(tmp_path), "init"]) == 1
    err = capsys.readouterr().err
    assert f"pylock: error: {tmp_path / 'pythons.toml'} already exists" in err
    assert "delete it first" in err
    assert (tmp_path / "pythons.toml").read_text(encoding="utf-8") == written


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_dangling_or_looping_project_file_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: a dangling pythons.toml link was "not found; run `pylock init`" to `lock`,
    and "already exists" to `init`; a looping pythons.lock "does not exist" to `--check`."""
    from pylock.cli import main

    (tmp_path / "pythons.toml").symlink_to("nowhere.toml")
    project = ["--project", str(tmp_path)]
    assert main([*project, "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "pythons.toml: a symbolic link to nowhere.toml, which does not exist" in err
    assert main([*project, "init"]) == 1
    err = capsys.readouterr().err
    assert "is a symbolic link to nowhere.toml, which cannot be read" in err
    assert "already exists" not in err
    (tmp_path / "pythons.toml").unlink()
    (tmp_path / "pythons.toml").write_text('[python.app]\nversion = "3.13"\n', encoding="utf-8")
    (tmp_path / "pythons.lock").symlink_to("pythons.lock")
    assert main([*project, "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" not in err
    assert "Too many levels of symbolic links" in err


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_lock_link_to_nowhere_is_named_and_which_goes_by_the_records(
    installed: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: `which` and `run` fell back to the install records without a lock, but read
    a dangling `pythons.lock` link and failed; `lock --check` said "does not exist"."""
    from pylock.cli import main

    lock = installed.root / "pythons.lock"
    lock.unlink()
    lock.symlink_to("gone.lock")
    into = ["--into", str(installed.into)]
    project = ["--project", str(installed.root)]
    assert main([*project, "which", *into, "app"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(str(installed.into / "app" / "bin" / "python"))
    assert "pythons.lock is a symbolic link to gone.lock, which does not exist" in captured.err
    (installed.root / "pythons.toml").write_text('[python.app]\nversion = "3.12"\n', "utf-8")
    assert main([*project, "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "pythons.lock is a symbolic link to gone.lock, which does not exist" in err
    assert main([*project, "sync", *into]) == 1
    assert "symbolic link to gone.lock" in capsys.readouterr().err
    # A hostile target (4 KB, with a terminal's escape) is shown escaped and cut.
    lock.unlink()
    lock.symlink_to("\x1b[2J" + "d/" * 1900 + "gone.lock")
    assert main([*project, "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "symbolic link to \\x1b[2Jd/d/" in err
    assert "d..." in err and "d/gone.lock, which does not exist" in err
    assert len(err) < 1000


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_which_names_a_looping_lock_link_as_such(
    installed: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: `which` took a pythons.lock linked to itself for a missing one."""
    from pylock.cli import main

    lock = installed.root / "pythons.lock"
    lock.unlink()
    lock.symlink_to("pythons.lock")
    code = main(["--project", str(installed.root), "which", "--into", str(installed.into), "app"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Too many levels of symbolic links" in err and "which does not exist" not in err


def test_init_killed_while_writing_leaves_no_part_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupt attack: Ctrl-C (or a kill) between `open("x")` and its close left a
    truncated pythons.toml, which a second `init` called "already exists"."""

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", interrupted)
    assert main(["--project", str(tmp_path), "init"]) == 130
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main(["--project", str(tmp_path), "init"]) == 0
    assert (tmp_path / "pythons.toml").read_text(encoding="utf-8").startswith("# ")


def test_init_where_nothing_can_be_written_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error-message audit: on a read-only mount, the clean-up of the file that was never
    made raised again, and replaced the error with a generic one."""
    import errno

    real_open = os.open

    def read_only(path: object, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    assert main(["--project", str(tmp_path), "init"]) == 1
    err = capsys.readouterr().err
    assert f"pylock: error: cannot write {tmp_path / 'pythons.toml'}: Read-only file system" in err
    assert "hint: run `pylock init` in a directory this user may write" in err
