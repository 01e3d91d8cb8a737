"""Attacks on one day's portability and usability changes (adversarial review)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pylock.cli import main
from pylock.versions import ArchiveFormat
from tests.syncproject import Build, Project

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals stand in")


@posix_only
def test_ctrl_break_during_run_is_the_childs_to_handle(sync_project: Project) -> None:
    """Windows attack: Ctrl-Break (and a console window's closing) reaches every process of
    the console, `pylock run`'s child too, as Ctrl-C does. Since SIGBREAK is taken as
    SIGTERM, pylock raised Terminated out of its wait for the child and ended at once,
    leaving a child that handles Ctrl-Break (a server's graceful shutdown) without its
    parent and its exit status lost. SIGALRM stands in for SIGBREAK here."""
    from tests.archives import compress, exe, tar_bytes
    from tests.syncproject import TAG_A

    script = (
        b"#!/bin/sh\ntrap 'echo breaking; sleep 0.5; echo done; exit 4' ALRM\necho ready\n"
        b"i=0\nwhile [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
    )
    entries = (exe("python/bin/python3.12", script),)
    data = compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)
    build = Build(
        name="app", tag=TAG_A, minor="3.12", fmt=ArchiveFormat.TAR_GZ, entries=entries, data=data
    )
    sync_project.install(build)
    stand_in = (
        "import runpy, signal, sys; signal.SIGBREAK = signal.SIGALRM; "
        "sys.argv[0] = 'pylock'; runpy.run_module('pylock', run_name='__main__')"
    )
    command = [sys.executable, "-c", stand_in, "--project", str(sync_project.root)]
    command += ["run", "--into", str(sync_project.into), "app", "--"]

    def defaults() -> None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    process = subprocess.Popen(
        command,
        env=sync_project.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
        preexec_fn=defaults,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    os.killpg(process.pid, signal.SIGALRM)  # the whole console group, as Windows sends it
    out, err = process.communicate(timeout=30)
    assert "done" in out.decode(), (out, err)
    assert process.returncode == 4, err.decode()


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


def test_a_file_url_with_a_host_that_a_rewrite_takes_elsewhere_is_not_warned_of(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewrite attack: a lock made on Windows names a share (`file://fileserver/pythons/`),
    and Linux machines reach the same archives through a rewrite. `lock` warned there that
    "`pylock sync` on this machine refuses it", though sync fetches the rewritten URL (the
    plain-http warning beside it looks at the rewrites; this one did not)."""
    url = "file://fileserver/pythons/cpython-3.12.7-x86_64-linux.tar.gz"
    toml = f'[python.x]\nurl = "{url}"\nversion = "3.12.7"\nsha256 = "{"a" * 64}"\n'
    (project / "pythons.toml").write_text(toml, encoding="utf-8")
    capsys.readouterr()
    rewrite = "file://fileserver/pythons/=https://mirror.example/pythons/"
    assert main(["lock", "--offline", "--rewrite", rewrite]) == 0
    err = capsys.readouterr().err
    assert "refuses it" not in err, err
    (project / "pythons.lock").unlink()
    # Without the rewrite, the warning stands.
    assert main(["lock", "--offline"]) == 0
    assert "names the host 'fileserver'" in capsys.readouterr().err


def test_a_netrc_with_a_byte_order_mark_and_a_blank_first_line_gets_the_hint(
    tmp_path: Path,
) -> None:
    """Portability attack: the byte-order-mark hint was given only for a parse error at
    line 1; a file whose first line is blank (`@'<newline>machine ...'@ | Set-Content`)
    fails at line 2 (Python's parser counts the newline that ends the token "\\ufeff"),
    and got "not netrc syntax at line 2" alone."""
    from pylock.errors import DownloadError
    from tests.httpserver import HttpServer
    from tests.twoclients import BODY, PATH, SHA, downloader

    netrc = tmp_path / "netrc"
    netrc.write_text("\ufeff\nmachine 127.0.0.1 login user password s3cret-pw\n", "utf-8")
    netrc.chmod(0o600)
    with HttpServer() as server:
        url = server.serve(PATH, BODY, auth=("user", "s3cret-pw"))
        with pytest.raises(DownloadError) as info:
            downloader({"NETRC": str(netrc)}).download(url, tmp_path / "a", sha256=SHA, size=None)
    assert "starts with a byte-order mark" in (info.value.hint or ""), info.value.hint
    assert "s3cret" not in str(info.value) + (info.value.hint or "")
