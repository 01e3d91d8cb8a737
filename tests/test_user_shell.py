"""The suite ignores the shell that runs it: the clean environment from ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import SUITE_SETTINGS, scrubbed
from tests.indexdata import REPO

DEAD = "http://127.0.0.1:9"

#: What a user's shell may hold: an activated virtualenv, a dead corporate proxy, their own
#: pylock and uv settings, a token, a CA bundle that does not exist, colour and cache settings.
HOSTILE = {
    "VIRTUAL_ENV": sys.prefix,
    "CONDA_PREFIX": sys.prefix,
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), DEAD),
    **dict.fromkeys(("http_proxy", "https_proxy", "all_proxy"), DEAD),
    "NO_PROXY": "",
    "no_proxy": "",
    "PYLOCK_OFFLINE": "1",
    "PYLOCK_MIRROR": f"{DEAD}/mirror/",
    "PYLOCK_URL_REWRITES": f"https://github.com/={DEAD}/gh/",
    "PYLOCK_CONCURRENCY": "1",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_OFFLINE": "1",
    "GITHUB_TOKEN": "ghp_from_the_users_shell",
    "SSL_CERT_FILE": "/nonexistent/ca.pem",
    "NO_COLOR": "1",
    "FORCE_COLOR": "1",
    "XDG_CACHE_HOME": "/nonexistent/cache",
    "GIT_DIR": "/nonexistent/.git",
}

_SHOW_ENV = (
    "import json, os, pathlib; print(json.dumps([dict(os.environ), str(pathlib.Path.home())]))"
)


def test_a_test_sees_none_of_the_users_settings() -> None:
    leaked = sorted(name for name in os.environ if scrubbed(name))
    assert leaked == sorted(SUITE_SETTINGS)
    assert all(os.environ[name] == value for name, value in SUITE_SETTINGS.items())
    home = Path.home()
    assert str(home) == os.environ["HOME"]
    assert home.is_dir() and list(home.iterdir()) == []
    # PATH and PYTHONPATH are the machine's plumbing: kept.
    assert os.environ["PATH"]


def test_scrubbed_covers_proxies_in_any_case_and_keeps_plumbing() -> None:
    for name in (*HOSTILE, "ftp_proxy", "Https_Proxy", "PYLOCK_ANYTHING", "UV_ANYTHING"):
        assert scrubbed(name), name
    for name in ("PATH", "PYTHONPATH", "TMPDIR", "LANG", "PYENV_ROOT", "PIP_FIND_LINKS"):
        assert not scrubbed(name), name


@pytest.mark.parametrize("turn", ["first", "second"])
def test_every_test_gets_its_own_empty_home(turn: str) -> None:
    home = Path.home()
    # What the other turn left in its home is not in this one.
    assert list(home.iterdir()) == []
    (home / ".netrc").write_text(f"machine 127.0.0.1 login {turn} password secret\n")
    (home / ".cache" / "pylock").mkdir(parents=True)


def test_subprocesses_inherit_the_clean_environment() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SHOW_ENV], capture_output=True, text=True, check=True
    ).stdout
    environ, home = json.loads(out)
    assert sorted(name for name in environ if scrubbed(name)) == sorted(SUITE_SETTINGS)
    assert home == os.environ["HOME"]


def test_the_suite_passes_in_a_hostile_shell() -> None:
    """Tests that failed in such a shell before the clean environment existed now pass."""
    selection = [
        # Went through the dead proxy (37 tests in test_live*.py did).
        "tests/test_live.py::test_new_release_is_merged_with_hashes_from_sha256sums",
        "tests/test_live_cli.py::test_downloads_json_flag_merges_builds",
        # Read PYLOCK_OFFLINE, PYLOCK_MIRROR and the proxies from the shell.
        "tests/test_sync.py::test_cold_sync_streams_the_download_into_the_install",
        "tests/test_fetch.py::test_redirects_are_followed_and_each_hop_checked",
        # This file's own checks, run inside the hostile shell.
        "tests/test_user_shell.py::test_a_test_sees_none_of_the_users_settings",
        "tests/test_user_shell.py::test_subprocesses_inherit_the_clean_environment",
    ]
    env = {**os.environ, **HOSTILE}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{len(selection)} passed" in result.stdout, result.stdout[-2000:]


def _pylock_into(
    project: Path, args: list[str], *, stdout: int | IO[Any], stderr: int | IO[Any]
) -> subprocess.CompletedProcess[bytes]:
    from tests.projects import pylock_command, pylock_env

    return subprocess.run(
        pylock_command(project, *args),
        stdout=stdout,
        stderr=stderr,
        env=pylock_env(project),
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="/dev/full and POSIX pipes")
def test_output_that_cannot_be_written_changes_neither_the_work_nor_its_status(
    sync_project: Any, app_a: Any
) -> None:
    """Environment attack: `pylock sync 2>&1 | head -1` stopped at its first warning once
    the reader had gone and exited 0 with nothing installed; `2>/dev/full` failed the
    sync; `pylock verify | head -1` of a damaged tree exited 0."""
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    (sync_project.root / "pythons.toml").write_text("# changed since the lock\n")
    sync = ["sync", "--into", str(sync_project.into), "--mirror", sync_project.mirror]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = _pylock_into(sync_project.root, sync, stdout=write, stderr=write)
    finally:
        os.close(write)
    assert done.returncode == 0
    assert (sync_project.into / "app" / ".pylock" / "install.json").is_file()
    with open(os.devnull, "w") as null, open("/dev/full", "w") as full:
        again = _pylock_into(sync_project.root, [*sync, "--reinstall"], stdout=null, stderr=full)
        assert again.returncode == 0
        missing = _pylock_into(sync_project.root, ["which", "nope"], stdout=null, stderr=full)
        assert missing.returncode == 2
    (sync_project.into / "app" / "share" / "zz-build-tag").write_text("tampered\n")
    read, write = os.pipe()
    os.close(read)
    try:
        checked = _pylock_into(
            sync_project.root,
            ["verify", "--into", str(sync_project.into)],
            stdout=write,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write)
    assert checked.returncode == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX bytes paths")
def test_results_the_output_encoding_cannot_write_are_written_not_a_traceback(
    tmp_path: Path,
) -> None:
    """Environment attack: a cache path with a byte that is no UTF-8, under a strict UTF-8
    stdout, or a `→` on a Latin-1 terminal, ended in a UnicodeEncodeError traceback."""
    cache = os.fsencode(tmp_path) + b"/c\xff"
    env = {**os.environ, "PYLOCK_CACHE_DIR": os.fsdecode(cache), "NO_COLOR": "1"}
    shown = subprocess.run(
        [sys.executable, "-m", "pylock", "cache", "dir"],
        capture_output=True,
        env={**env, "PYTHONIOENCODING": "utf-8:strict"},
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == cache + b"\n"  # the very bytes: `$(pylock cache dir)` works
    lock = tmp_path / "pythons.lock"
    (tmp_path / "pythons.toml").write_text(
        '[python.app]\nversion = "3.12"\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    assert (
        subprocess.run(
            [sys.executable, "-m", "pylock", "--project", str(tmp_path), "-q", "lock", "--offline"],
            env=env,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )
    diff = subprocess.run(
        [sys.executable, "-m", "pylock", "diff", "--format", "markdown", str(lock), str(lock)],
        capture_output=True,
        env={**env, "PYTHONIOENCODING": "latin-1:strict"},
        timeout=60,
        check=False,
    )
    assert diff.returncode == 0, diff.stderr
    assert b"Traceback" not in diff.stderr
    # On a Latin-1 terminal (no redirection to make UTF-8 of): the arrow escaped, a path's
    # byte as it was.
    import codecs

    from pylock import cli

    codecs.register_error(cli._OUTPUT_ERRORS, cli._output_errors)
    assert "a → \udcff".encode("latin-1", cli._OUTPUT_ERRORS) == b"a \\u2192 \xff"


@pytest.mark.skipif(sys.platform == "win32", reason="/dev/full")
def test_the_no_op_answer_to_a_full_stderr_is_still_success(sync_project: Any, app_a: Any) -> None:
    """Attack on the day's diff: the fast path wrote its line without the CLI's care, and
    `pylock sync 2>/dev/full` with nothing to do exited 1 with a traceback."""
    sync_project.install(app_a)
    sync = ["sync", "--into", str(sync_project.into), "--mirror", sync_project.mirror]
    with open(os.devnull, "w") as null, open("/dev/full", "w") as full:
        done = _pylock_into(sync_project.root, sync, stdout=null, stderr=full)
    assert done.returncode == 0
