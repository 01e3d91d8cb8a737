"""The use cases behind the last thin CLI handlers (issue 12): read_lock, diff, outdated,
verify and cache prune, called directly and through the CLI as a user runs it."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
from pathlib import Path

import pytest

from pylock.cli import main
from pylock.errors import LockFileError, PylockError, UsageError
from pylock.lockio import read_lock
from pylock.net.fetch import FetchOptions
from pylock.progress import Reporter
from pylock.review import find_outdated_now, locks_to_compare, working_tree_lock
from pylock.settings import Settings
from pylock.sync.cache import Cache, prune_as_asked
from pylock.sync.install import VerifyReport, verify_installed

LINUX = "linux-x86_64-gnu"
CONFIG = f'[python.app]\nversion = "3.12"\nplatforms = ["{LINUX}"]\n'


def pylock(project: Path, *args: str) -> int:
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache")}
    return main(["--project", str(project), *args], environ=environ)


def locked_project(project: Path) -> Path:
    (project / "pythons.toml").write_text(CONFIG, encoding="utf-8")
    assert pylock(project, "-q", "lock") == 0
    return project / "pythons.lock"


# -- read_lock -------------------------------------------------------------------------------


def test_read_lock_missing_says_how_to_create_it(project: Path) -> None:
    with pytest.raises(PylockError) as caught:
        read_lock(project / "pythons.lock")
    assert caught.value.hint == "create it with `pylock lock`"
    assert "no lock file at" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe not utf-8", b'[[python]]\nname = "app', b"version = 99999999999999999999\n"],
    ids=["not-utf8", "truncated", "nonsense"],
)
def test_read_lock_hostile_bytes_are_one_clean_error(project: Path, data: bytes) -> None:
    path = project / "pythons.lock"
    path.write_bytes(data)
    with pytest.raises(LockFileError) as caught:
        read_lock(path)
    assert caught.value.file == "pythons.lock"  # shown relative to the working directory
    assert caught.value.problems
    assert caught.value.hint


def test_read_lock_of_a_directory_is_a_clean_error(project: Path) -> None:
    (project / "pythons.lock").mkdir()
    with pytest.raises(PylockError, match="cannot read"):
        read_lock(project / "pythons.lock")


def test_read_lock_reads_a_real_lock(project: Path) -> None:
    lock = read_lock(locked_project(project))
    assert [p.name for p in lock.pythons] == ["app"]


# -- diff: which two locks ------------------------------------------------------------------


def test_diff_refuses_base_and_files_together(project: Path) -> None:
    with pytest.raises(UsageError):
        locks_to_compare(project, project / "pythons.lock", old="a.lock", base="HEAD")


def test_missing_working_tree_lock_is_empty_and_labelled(project: Path) -> None:
    got = working_tree_lock(project / "pythons.lock")
    assert got.lock.pythons == ()
    assert got.label == "pythons.lock (missing)"


def test_diff_old_file_against_working_tree(project: Path) -> None:
    lock_path = locked_project(project)
    (project / "old.lock").write_bytes(lock_path.read_bytes())
    before, after = locks_to_compare(project, lock_path, old="old.lock")
    assert (before.label, after.label) == ("old.lock", "pythons.lock")
    assert before.lock == after.lock
    before, after = locks_to_compare(project, lock_path, old="old.lock", new="old.lock")
    assert after.label == "old.lock"


def test_diff_old_file_with_no_working_tree_lock_says_so(project: Path) -> None:
    """`pylock diff OLD.lock` run outside the project showed every entry "removed" from a
    lock that was not there (field test 6); the git form keeps that for a deleted lock."""
    lock_path = locked_project(project)
    old = project / "old.lock"
    old.write_bytes(lock_path.read_bytes())
    elsewhere = project / "elsewhere" / "pythons.lock"
    with pytest.raises(PylockError, match=f"no pythons.lock at {elsewhere} to compare") as caught:
        locks_to_compare(project, elsewhere, old=str(old))
    assert "pass the NEW lock too" in (caught.value.hint or "")
    before, after = locks_to_compare(project, elsewhere, old=str(old), new=str(lock_path))
    assert before.lock == after.lock


def test_diff_at_a_ref_without_a_lock_is_empty(project: Path) -> None:
    lock_path = locked_project(project)
    git = ["git", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pythons.toml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "config only"], check=True)
    before, after = locks_to_compare(project, lock_path)
    assert before.label == "HEAD (no lock)"
    assert before.lock.pythons == ()
    assert [p.name for p in after.lock.pythons] == ["app"]
    subprocess.run([*git, "add", "pythons.lock"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "lock"], check=True)
    before, _ = locks_to_compare(project, lock_path, base="HEAD")
    assert before.label == "HEAD:pythons.lock"
    assert before.lock == after.lock


def test_cli_diff_with_both_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pylock(project, "diff", "--base", "HEAD", "a.lock") == 2
    assert capsys.readouterr().err.startswith("pylock: error: give either --base")


# -- outdated: offline falls back to the bundled index ----------------------------------------


def test_outdated_offline_without_cached_listings_warns_and_uses_the_snapshot(
    project: Path, tmp_path: Path
) -> None:
    lock = read_lock(locked_project(project))
    stream = io.StringIO()
    report = find_outdated_now(
        lock,
        fetch_options=FetchOptions(offline=True),
        metadata_dir=tmp_path / "no-metadata",
        reporter=Reporter(stream=stream, live=False),
        settings=Settings.from_environ({}),
    )
    assert [e.current.name for e in report.entries] == ["app"]
    assert "comparing with the bundled index of" in stream.getvalue()
    assert str(report.index.source_date) in stream.getvalue()


def test_cli_outdated_offline_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked_project(project)
    capsys.readouterr()
    assert pylock(project, "outdated", "--offline", "--format", "json") == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert [p["name"] for p in document["pythons"]] == ["app"]
    assert "bundled index" in err


# -- verify: the checks before any hashing, and the listing -----------------------------------


def test_verify_nothing_installed(tmp_path: Path) -> None:
    with pytest.raises(PylockError) as caught:
        verify_installed(tmp_path / "empty")
    assert "no interpreters installed by pylock" in str(caught.value)
    assert caught.value.hint == "run `pylock sync` first, or pass --into DIR"


def test_verify_unknown_names_are_named_before_hashing(tmp_path: Path) -> None:
    with pytest.raises(PylockError) as caught:
        verify_installed(tmp_path, ["ghost", "../escape"])
    assert str(caught.value).endswith("ghost, ../escape")


def test_verify_report_lists_every_kind_in_order() -> None:
    report = VerifyReport(
        name="app",
        modified=("a",),
        missing=("b",),
        extra=("c",),
        bytecode=("d.pyc",),
        permissions=(("e", "world-writable"),),
    )
    assert not report.ok
    assert report.problems == [
        ("modified", "a"),
        ("missing", "b"),
        ("extra", "c"),
        ("bytecode", "d.pyc"),
        ("permissions", "e (world-writable)"),
    ]
    assert VerifyReport(name="app").problems == []


def test_cli_verify_with_nothing_installed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pylock(project, "verify", "--into", str(project / "none")) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("pylock: error: no interpreters installed by pylock in")
    assert err[1] == "pylock: hint: run `pylock sync` first, or pass --into DIR"


# -- cache prune: the limits are checked before anything is evicted ---------------------------


@pytest.mark.parametrize("days", [-1.0, math.nan, -math.inf])
def test_prune_refuses_bad_days(tmp_path: Path, days: float) -> None:
    with pytest.raises(UsageError) as caught:
        prune_as_asked(Cache(tmp_path / "c"), unused_for_days=days)
    assert "--unused-for must be a number of days >= 0" in str(caught.value)


@pytest.mark.parametrize("size", ["", "-5M", "lots", "1" * 400, "5Q"])
def test_prune_refuses_bad_sizes(tmp_path: Path, size: str) -> None:
    with pytest.raises(UsageError):
        prune_as_asked(Cache(tmp_path / "c"), max_size=size)


def test_prune_by_size_and_age(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    source = tmp_path / "a.tar.gz"
    source.write_bytes(b"x" * 2000)
    cache.store(hashlib.sha256(source.read_bytes()).hexdigest(), "a.tar.gz", source)
    assert prune_as_asked(cache, unused_for_days=1).removed == ()
    report = prune_as_asked(cache, max_size="1K")
    assert [e.filename for e in report.removed] == ["a.tar.gz"]
    assert cache.list() == []


def test_cli_cache_prune_negative_days_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pylock(project, "cache", "prune", "--unused-for", "-3") == 2
    assert capsys.readouterr().err.startswith("pylock: error: --unused-for must be")


def test_a_size_too_large_for_any_disk_is_refused_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="too large") as caught:
        prune_as_asked(Cache(tmp_path / "c"), max_size="9" * 400 + "T")
    assert len(str(caught.value)) < 80  # the hostile text is cut short


def test_cache_prune_keep_lock_evicts_what_no_named_lock_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pylock.lockfile import Artifact, dumps, make_lock
    from tests.indexdata import locked_python

    cache = Cache(tmp_path / "cache")

    def cached(name: str, platform: str) -> Artifact:
        source = tmp_path / name
        source.write_bytes(name.encode() * 100)
        sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
        cache.store(sha256, name, source)
        return Artifact(platform=platform, url=f"https://example.invalid/{name}", sha256=sha256)

    def lock(path: Path, artifact: Artifact) -> None:
        python = locked_python("app", "3.12.7", "20241016", [artifact])
        path.write_text(dumps(make_lock([python], config_digest="sha256:" + "0" * 64)))

    project = tmp_path / "project"
    project.mkdir()
    lock(project / "pythons.lock", cached("a.tar.gz", "linux-x86_64-gnu"))
    lock(tmp_path / "other.lock", cached("b.tar.gz", "windows-x86_64"))
    cached("c.tar.gz", "linux-x86_64-gnu")
    environ = {"PYLOCK_CACHE_DIR": str(cache.root)}
    prune = ["cache", "prune", "--keep-lock", str(project), "--keep-lock"]

    # A path that is not there is a typo (exit 2), not a lock to create with `pylock lock`;
    # it stops the prune before it evicts anything, as a lock that cannot be read does.
    assert main([*prune, str(tmp_path / "typo.lock")], environ=environ) == 2
    err = capsys.readouterr().err
    assert f"--keep-lock: {tmp_path / 'typo.lock'} does not exist; nothing was pruned" in err
    assert "pylock lock" not in err
    (tmp_path / "empty").mkdir()
    assert main([*prune, str(tmp_path / "empty")], environ=environ) == 2
    assert f"no pythons.lock in {tmp_path / 'empty'}" in capsys.readouterr().err
    (tmp_path / "broken.lock").write_text("lock-version = [")
    (tmp_path / "make.py").write_text("x = 1\n")
    for name in ("broken.lock", "make.py"):
        assert main([*prune, str(tmp_path / name)], environ=environ) == 1
        err = capsys.readouterr().err
        assert f"pylock: error: --keep-lock: {tmp_path / name}: " in err
        assert "nothing was pruned" in err
        # README attack: the hint was `run 'pylock lock'`, for a file that is no lock.
        assert "it re-resolves from pythons.toml" not in err
    assert len(cache.list()) == 3
    # A project directory stands for its pythons.lock; every platform's archive is kept.
    assert main([*prune, str(tmp_path / "other.lock")], environ=environ) == 0
    assert sorted(e.filename for e in cache.list()) == ["a.tar.gz", "b.tar.gz"]
    assert "removed 1 archive(s)" in capsys.readouterr().err


def test_cache_prune_keep_lock_of_a_newer_pylock_says_to_upgrade_pylock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Upgrade test: a shared cache pruned by a CI runner whose pylock is older than the one
    that locked a project said the lock was broken and to mend it with `pylock lock`, which
    refuses a newer pylock's lock too; the fix is to upgrade pylock, as `diff` says."""
    newer = tmp_path / "pythons.lock"
    newer.write_text('lock-version = 2\ncreated-by = "pylock 9.0"\n', encoding="utf-8")
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    assert main(["cache", "prune", "--keep-lock", str(newer)], environ=environ) == 1
    err = capsys.readouterr().err
    assert "unsupported lock-version 2; nothing was pruned" in err
    assert "upgrade pylock to read this lock file" in err
    assert "pylock lock" not in err


def test_lock_removes_what_a_killed_lock_left_beside_the_lock(project: Path) -> None:
    import os
    import time

    (project / "pythons.toml").write_text(CONFIG, encoding="utf-8")
    stale = project / ".pythons.lock.0123456789ab.tmp"
    live = project / ".pythons.lock.ba9876543210.tmp"  # perhaps another lock, writing now
    other = project / ".notes.txt.0123456789ab.tmp"
    for path in (stale, live, other):
        path.write_text("half a lock")
    old = time.time() - 7200
    for path in (stale, other):
        os.utime(path, (old, old))
    assert pylock(project, "-q", "lock") == 0
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_lock_dry_run_says_whether_a_lock_would_be_written(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--dry-run` prints what would change (field test 5: it said only "not written")."""
    lock_path = locked_project(project)
    before = lock_path.read_bytes()
    capsys.readouterr()
    # Only the digest moves: a real run rewrites the lock without changing an interpreter.
    (project / "pythons.toml").write_text(CONFIG.replace('"3.12"', '">=3.12,<3.13"'))
    assert pylock(project, "lock", "--dry-run") == 0
    err = capsys.readouterr().err
    assert "dry run: pythons.lock would be rewritten (no interpreter changed); not written" in err
    # A real change is listed, line by line, as `lock` would print it.
    (project / "pythons.toml").write_text(CONFIG.replace('"3.12"', '"3.13"'))
    assert pylock(project, "lock", "--dry-run") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("app: cpython 3.12.")
    assert "dry run: pythons.lock would change; not written" in captured.err
    assert lock_path.read_bytes() == before
    # No lock yet: it would be created.
    lock_path.unlink()
    assert pylock(project, "lock", "--dry-run") == 0
    assert "dry run: pythons.lock would be created; not written" in capsys.readouterr().err
    assert not lock_path.exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--rewrite", "foo"), "--rewrite: invalid rewrite 'foo'"),
        (("--mirror", "notaurl"), "'notaurl' is not a URL (no https://, http:// or file://)"),
        (("--mirror", "/srv/my mirror"), "a directory as a file URL: file:///srv/my%20mirror/"),
        (("--mirror", "ftp://m/"), "'ftp://m/' is not an http, https or file URL"),
        (("--mirror", "notaurl"), "e.g. https://mirror.example/python-build-standalone/"),
        (("--pypy-mirror", "notaurl"), "e.g. https://mirror.example/pypy/"),
        (("--check", "--rewrite", "foo"), "--rewrite: invalid rewrite 'foo'"),
        # Mirror field test: a path with a space said "not an http, https or file URL".
        (
            ("--mirror", "file:///media/USB stick/pythons/"),
            "it contains white space: write a space as %20 (file:///media/USB%20stick/pythons/)",
        ),
        (
            ("--rewrite", "https://github.com/=file:///media/USB stick/gh/"),
            "it contains white space: write a space as %20 (file:///media/USB%20stick/gh/)",
        ),
    ],
)
def test_lock_refuses_malformed_download_flags_even_when_it_fetches_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], says: str
) -> None:
    """`lock --check --mirror notaurl` passed in CI, and `sync` refused the same flags
    later (field test 6)."""
    locked_project(project)
    capsys.readouterr()
    assert pylock(project, "lock", *flags) == 2
    assert says in capsys.readouterr().err


def test_lock_check_of_host_locked_elsewhere_passes_and_says_sync_installs_nothing(
    project: Path,
) -> None:
    """`platforms = ["host"]` locked on one machine checks clean on another, by design;
    that `sync` there then has nothing to install was left for it to find (field test 6)."""
    from pylock.platforms import Platform, host
    from pylock.project import check_lock
    from tests.test_live import Recorder

    (project / "pythons.toml").write_text('[python.app]\nversion = "3.12"\nplatforms = ["host"]\n')
    assert pylock(project, "-q", "lock") == 0
    here = host().key
    elsewhere = "linux-aarch64-gnu" if here != "linux-aarch64-gnu" else "linux-x86_64-gnu"
    reporter = Recorder()
    config, lock = project / "pythons.toml", project / "pythons.lock"
    assert check_lock(config, lock, reporter, here=Platform.parse(elsewhere)) is None
    (warning,) = reporter.warnings
    assert warning.startswith(f"app: `host` was locked for {here}, not for this machine")
    assert "`pylock sync` here installs nothing for it" in warning
    quiet = Recorder()
    assert check_lock(config, lock, quiet, here=Platform.parse(here)) is None
    assert quiet.warnings == []


def test_lock_check_of_a_host_entry_locked_on_a_laptop_passes_in_ci(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: `lock --check` resolved the lock again to compare its text,
    which re-resolved `host` for the machine it ran on: the laptop's lock failed in CI."""
    from pylock import project as use_case
    from pylock.platforms import Platform

    (project / "pythons.toml").write_text('[python.app]\nversion = "3.12"\nplatforms = ["host"]\n')
    with monkeypatch.context() as laptop:
        laptop.setattr(use_case, "_host_or_none", lambda: Platform.parse("macos-aarch64"))
        assert pylock(project, "-q", "lock") == 0
    assert "macos-aarch64" in (project / "pythons.lock").read_text()
    assert pylock(project, "lock", "--check") == 0
