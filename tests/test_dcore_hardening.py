"""The pieces that the de-duplication of ``pylock/`` made shared (issue 12).

- ``policy.Attempts`` and ``policy.Download``: one retry counter and one download
  description for both HTTP transports (aiohttp and ``http.client``).
- ``pylock diff`` reads an older lock from git in :mod:`pylock.review`, in the environment
  the settings read once; :mod:`pylock.diff` only compares.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pylock.cli import main
from pylock.errors import (
    DownloadError,
    DownloadTooLargeError,
    GitError,
    HashMismatchError,
)
from pylock.net import policy
from pylock.net.fetch import FetchOptions
from pylock.progress import Reporter, Task
from pylock.review import read_lock_at_ref
from pylock.settings import Settings

ROOT = Path(__file__).resolve().parent.parent / "pylock"


def _download(
    dest: Path, *, target: str = "https://mirror.test/a.tar.gz", **given: Any
) -> policy.Download:
    values: dict[str, Any] = {"sha256": None, "size": None, "cap": 1000, "task": None, "feed": None}
    values.update(given)
    return policy.Download(
        target=target, canonical="https://origin.test/a.tar.gz", dest=dest, **values
    )


# -- retries -------------------------------------------------------------------------------


def test_attempts_wait_as_told_then_give_up_with_the_count() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=1, live=False)
    options = FetchOptions(retries=2, backoff=1.0)
    attempts = policy.Attempts("https://mirror.test/a", "https://origin.test/a", options, label="a")
    told = policy.Retryable("HTTP 503", retry_after=0.25)
    assert attempts.failed(told, reporter) == 0.25
    assert attempts.failed(told, reporter) == 0.25
    assert stream.getvalue().splitlines() == [
        "a: HTTP 503; retrying in 0.2s (1/2)",
        "a: HTTP 503; retrying in 0.2s (2/2)",
    ]
    with pytest.raises(DownloadError) as raised:
        attempts.failed(told, reporter)
    assert "gave up after 3 attempts" in str(raised.value)
    assert raised.value.url == "https://mirror.test/a"
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(("verbosity", "shown"), [(0, True), (-1, False)])
def test_a_retry_is_said_without_verbose_but_not_with_quiet(verbosity: int, shown: bool) -> None:
    """Field test: a listing server that accepts and never answers was five minutes of
    silence (60 s a try) unless -v was given."""
    stream = io.StringIO()
    reporter = Reporter(stream, verbosity=verbosity, live=False)
    options = FetchOptions(retries=2, backoff=1.0)
    attempts = policy.Attempts("https://mirror.test/a", "https://origin.test/a", options, label="a")
    attempts.failed(policy.Retryable("read timed out", retry_after=0.25), reporter)
    lines = ["a: read timed out; retrying in 0.2s (1/2)"] if shown else []
    assert stream.getvalue().splitlines() == lines


def test_attempts_without_retries_fail_on_the_first_error() -> None:
    options = FetchOptions(retries=0)
    attempts = policy.Attempts("https://x.test/a", "https://x.test/a", options, label="a")
    with pytest.raises(DownloadError, match=r"gave up after 1 attempt\)"):
        attempts.failed(policy.Retryable("timed out"), Reporter(io.StringIO(), live=False))


# -- one download, either transport --------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_a_transient_status_is_retried(tmp_path: Path, status: int) -> None:
    with pytest.raises(policy.Retryable) as raised:
        _download(tmp_path / "a").body("https://mirror.test/a", status, "x", {}, None)
    assert raised.value.reason == f"HTTP {status}"
    assert not (tmp_path / "a").exists()


def test_a_final_status_fails_for_good_with_printable_reason(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as raised:
        _download(tmp_path / "a").body("https://mirror.test/a", 404, "Not\x1b[31mFound", {}, None)
    assert raised.value.url == "https://mirror.test/a"
    assert "\x1b" not in str(raised.value)


def test_a_length_that_disagrees_with_the_lock_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(HashMismatchError):
        _download(tmp_path / "a", size=10).body("https://mirror.test/a", 200, "OK", {}, 11)
    assert not (tmp_path / "a").exists()


def test_an_endless_body_stops_at_the_cap(tmp_path: Path) -> None:
    body = _download(tmp_path / "a", cap=100).body("https://mirror.test/a", 200, "OK", {}, None)
    with body.open() as writer, pytest.raises(DownloadTooLargeError) as raised:
        while True:
            body.add(writer, b"x" * 64)
    assert raised.value.limit == 100
    assert (tmp_path / "a").stat().st_size <= 100


def test_a_truncated_body_is_retried(tmp_path: Path) -> None:
    body = _download(tmp_path / "a").body("https://mirror.test/a", 200, "OK", {}, 10)
    with body.open() as writer:
        body.add(writer, b"12345")
    with pytest.raises(policy.Retryable):
        body.result()


def test_a_complete_body_returns_its_hash(tmp_path: Path) -> None:
    import hashlib

    data = b"archive bytes"
    digest = hashlib.sha256(data).hexdigest()
    download = _download(tmp_path / "a", sha256=digest, size=len(data))
    body = download.body("https://mirror.test/a", 200, "OK", {}, len(data))
    with body.open() as writer:
        body.add(writer, data)
    assert body.result() == (digest, len(data))
    assert (tmp_path / "a").read_bytes() == data


class _BrokenFeed:
    def begin(self, path: Path) -> None:
        raise RuntimeError("the reader is gone")


def test_a_feed_that_fails_to_begin_leaves_no_open_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[io.BufferedWriter] = []
    real_create = policy.create

    def create(dest: Path) -> Any:
        handle = real_create(dest)
        opened.append(handle)  # type: ignore[arg-type]
        return handle

    monkeypatch.setattr(policy, "create", create)
    with pytest.raises(RuntimeError):
        policy.start(tmp_path / "a", _BrokenFeed())  # type: ignore[arg-type]
    assert len(opened) == 1 and opened[0].closed


def test_a_download_is_rewritten_refused_and_capped_as_the_options_say(tmp_path: Path) -> None:
    from pylock.errors import OfflineError
    from pylock.urls import UrlRewrites

    rewrites = UrlRewrites.from_sources(None, ["https://origin.test/=https://mirror.test/"])
    options = FetchOptions(rewrites=rewrites, max_download_size=123)
    url = "https://origin.test/a.tar.gz"
    download = policy.Download.of(
        url, tmp_path / "a", options, sha256=None, size=None, task=None, feed=None
    )
    assert (download.target, download.canonical, download.cap) == (
        "https://mirror.test/a.tar.gz",
        url,
        123,
    )
    with pytest.raises(OfflineError):
        policy.Download.of(
            url,
            tmp_path / "a",
            FetchOptions(offline=True),
            sha256=None,
            size=None,
            task=None,
            feed=None,
        )


def test_a_file_url_is_copied_hashed_and_bounded(tmp_path: Path) -> None:
    source = tmp_path / "src.tar.gz"
    source.write_bytes(b"y" * 500)
    download = _download(tmp_path / "a", target=source.as_uri(), cap=100)
    with pytest.raises(DownloadTooLargeError):
        policy.copy_file(download)
    import hashlib

    ok = _download(tmp_path / "b", target=source.as_uri(), cap=1000)
    assert policy.copy_file(ok) == (hashlib.sha256(b"y" * 500).hexdigest(), 500)


def test_a_file_url_with_a_nul_byte_or_no_file_is_a_download_error(tmp_path: Path) -> None:
    """CLI attack: a `%00` in a locked file URL was a traceback (embedded null byte); a
    missing file of the lock's own URL (no mirror) was hinted at a mirror directory."""
    for target in ("file:///srv/%00x.tar.gz", "file://srv%00x/share/a.tar.gz"):
        nul = _download(tmp_path / "a", target=target)
        with pytest.raises(DownloadError, match=r"holds a NUL byte \(%00\)"):
            policy.copy_file(nul)
    missing = (tmp_path / "gone.tar.gz").as_uri()
    direct = policy.Download(
        target=missing, canonical=missing, dest=tmp_path / "b", sha256=None, size=None,
        cap=1000, task=None, feed=None,
    )  # fmt: skip
    with pytest.raises(DownloadError) as info:
        policy.copy_file(direct)
    assert info.value.hint == "check the path in the URL"
    mirrored = _download(tmp_path / "c", target=missing)
    with pytest.raises(DownloadError) as info:
        policy.copy_file(mirrored)
    assert info.value.hint == "check that the mirror directory holds the file asked for"
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_file_url_ends_with_a_clean_error(tmp_path: Path) -> None:
    download = _download(tmp_path / "a", target="file:///dev/zero", cap=4096)
    with pytest.raises(DownloadError, match="is not a regular file"):
        policy.copy_file(download)
    assert not (tmp_path / "a").exists()


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_file_url_naming_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    # Opening it waited for a writer for ever, and SIGTERM could not end the wait.
    fifo = tmp_path / "archive.tar.gz"
    os.mkfifo(fifo)
    download = _download(tmp_path / "a", target=fifo.as_uri())
    with pytest.raises(DownloadError, match="is not a regular file") as info:
        policy.copy_file(download)
    assert info.value.hint is not None and "FIFO" in info.value.hint


@pytest.mark.parametrize("system", ["posix", "windows"])
def test_a_file_url_naming_a_directory_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: str
) -> None:
    # It said "Is a directory: 5", the descriptor's number, where the path goes; on
    # Windows, whose open(2) refuses a directory, "Permission denied".
    folder = tmp_path / "archive.tar.gz"
    folder.mkdir()
    if system == "windows":
        real_open = os.open

        def windows_open(path: Any, *args: Any, **kwargs: Any) -> int:
            if os.path.isdir(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", windows_open)
    download = _download(tmp_path / "a", target=folder.as_uri())
    with pytest.raises(DownloadError) as info:
        policy.copy_file(download)
    assert str(info.value) == (
        f"{folder.as_uri()} (rewritten from https://origin.test/a.tar.gz) is not a regular file"
    )


def test_a_file_url_that_grows_past_its_bound_ends_with_a_clean_error(tmp_path: Path) -> None:
    source = tmp_path / "growing.tar.gz"
    source.write_bytes(b"x" * 100)

    class Growing(Task):
        def advance(self, amount: int) -> None:  # the writer appends while it is read
            with source.open("ab") as more:
                more.write(b"x" * 8192)

    task = Growing(Reporter(io.StringIO(), verbosity=-1, live=False), "a", None)
    download = _download(tmp_path / "a", target=source.as_uri(), cap=4096, task=task)
    with pytest.raises(DownloadTooLargeError):
        policy.copy_file(download)
    assert (tmp_path / "a").stat().st_size <= 4096  # the caller removes it


# -- diff: git in the use case, in the settings' environment ---------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_diff_only_compares() -> None:
    imported = _imports(ROOT / "diff.py")
    assert not imported & {"subprocess", "os", "pylock.settings", "pylock.review"}
    assert "subprocess" in _imports(ROOT / "review.py")


@pytest.fixture
def git_project(tmp_path: Path) -> Path:
    project = tmp_path / "repo"
    project.mkdir()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q"], cwd=project, env=env, check=True)
    return project


@needs_git
def test_diff_runs_git_in_the_environment_it_was_given(
    git_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--project", str(git_project), "diff"]
    assert main(args, environ=dict(os.environ)) == 0
    assert "No interpreter changes" in capsys.readouterr().out
    # The process's own environment is untouched; only the one main() was given points
    # git elsewhere, and git obeys it.
    assert "GIT_DIR" not in os.environ
    elsewhere = {**os.environ, "GIT_DIR": str(tmp_path / "no-such-git-dir")}
    assert main(args, environ=elsewhere) == 1
    err = capsys.readouterr().err
    assert err.startswith("pylock: error: ")
    assert "is not inside a git work tree" in err
    assert "Traceback" not in err


@needs_git
@pytest.mark.skipif(getattr(os, "geteuid", lambda: 1)() != 0, reason="chown needs root")
def test_a_repository_git_distrusts_is_named_with_the_way_to_trust_it(
    git_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: a CI container's checkout owned by another user gave "is not inside a git
    work tree: fatal: detected dubious ownership..." over four lines, and a hint to pass
    OLD instead of the safe.directory setting git asks for."""
    for path in (git_project, *git_project.rglob("*")):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    environ = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    assert main(["--project", str(git_project), "diff"], environ=environ) == 1
    err = capsys.readouterr().err
    if "not inside a git work tree" in err and "dubious" not in err:
        pytest.skip("this git does not check the repository's owner")
    assert err.splitlines()[0] == (
        f"pylock: error: git refuses the repository of {git_project}: another user owns it"
    )
    assert "safe.directory" in err and len(err.splitlines()) == 2


@needs_git
def test_read_lock_at_ref_uses_the_settings_environment(git_project: Path, tmp_path: Path) -> None:
    assert read_lock_at_ref(git_project, "HEAD") is None
    settings = Settings.from_environ({**os.environ, "GIT_DIR": str(tmp_path / "nowhere")})
    with pytest.raises(GitError, match="not inside a git work tree"):
        read_lock_at_ref(git_project, "HEAD", settings=settings)


def test_git_that_is_missing_is_one_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No git on PATH (an empty directory), in the environment main() was given.
    empty = tmp_path / "empty"
    empty.mkdir()
    environ = {**os.environ, "PATH": str(empty)}
    if sys.platform == "win32":  # pragma: no cover - PATHEXT lookups differ
        pytest.skip("PATH-based lookup of git differs on Windows")
    code = main(["--project", str(tmp_path), "diff"], environ=environ)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("pylock: error: git is not installed")
    assert "pylock: hint: pass the old lock file explicitly" in err
    assert "Traceback" not in err


def test_child_environ_keeps_what_was_read_and_adds_overrides() -> None:
    settings = Settings.from_environ({"PATH": "/only/here", "SECRET_TOKEN": "s3cr3t"})
    env = settings.child_environ(LC_ALL="C")
    assert env == {"PATH": "/only/here", "SECRET_TOKEN": "s3cr3t", "LC_ALL": "C"}
    # A copy: changing it changes nothing in the settings.
    env["PATH"] = "/elsewhere"
    assert settings.child_environ()["PATH"] == "/only/here"
    assert "s3cr3t" not in repr(settings)
