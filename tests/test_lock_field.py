"""`pylock lock` end to end, for the locking and resolution field report (pre-releases,
unhashed builds, downloads JSON entries a lock cannot hold, newer lock-versions)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pylock.cli import main
from pylock.lockfile import loads
from tests.indexdata import PBS, uv_entry

TOML = '[python.a]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu"]\n'
#: The newest CPython 3.13 for linux-x86_64-gnu in the bundled snapshot.
BUNDLED_313 = "3.13.15+20260814"


def run(project: Path, *args: str) -> int:
    return main(["--project", str(project), *args])


def downloads_json(project: Path, **changes: Any) -> str:
    """A downloads JSON with one CPython 3.13.16+20260901 entry, newer than the snapshot."""
    name = "cpython-3.13.16%2B20260901-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    entry = uv_entry(patch=16, build="20260901", url=f"{PBS}/20260901/{name}")
    entry.update(changes)
    path = project / "downloads.json"
    path.write_text(json.dumps({"cpython-3.13.16-linux-x86_64-gnu": entry}), encoding="utf-8")
    return str(path)


def test_a_newer_build_without_a_hash_is_left_out_with_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    source = downloads_json(project, sha256=None)
    assert run(project, "lock", "--python-downloads-json", source) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"a: added cpython {BUNDLED_313}"
    assert err == (
        "pylock: warning: a: left out cpython 3.13.16+20260901 install_only_stripped "
        "(none for linux-x86_64-gnu), for want of a published sha256; "
        f"locked cpython {BUNDLED_313} install_only_stripped instead\n"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"build": "../../x", "url": "https://artifacts.example/py/cpython-3.13.16-custom.tar.gz"},
        {
            "build": "2026 09 01",
            "url": "https://artifacts.example/my python/cpython-3.13.16-custom.tar.gz",
        },
    ],
)
def test_downloads_json_entries_a_lock_cannot_hold_are_skipped(
    project: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any]
) -> None:
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    source = downloads_json(project, **changes)
    assert run(project, "lock", "--python-downloads-json", source) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"a: added cpython {BUNDLED_313}"
    # What lock wrote, pylock reads back.
    loads((project / "pythons.lock").read_text(encoding="utf-8"))
    assert run(project, "lock", "--check") == 0


def _newer_lock(project: Path, version: str = "2") -> str:
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock") == 0
    lock = project / "pythons.lock"
    text = lock.read_text(encoding="utf-8").replace("lock-version = 1", f"lock-version = {version}")
    lock.write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize(
    "command",
    [("lock",), ("lock", "--dry-run"), ("lock", "--upgrade"), ("lock", "--check"), ("sync",)],
)
@pytest.mark.parametrize(
    ("version", "shown"), [("2", "2"), ("1.1", "1.1"), ("2.0", "2.0"), ('"2"', "'2'")]
)
def test_a_newer_lock_version_is_an_error_for_every_command(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    version: str,
    shown: str,
) -> None:
    """Field report #5: `lock` used to rewrite a lock-version 2 file as version 1. A
    version 1.1, 2.0 or "2" was still "expected an integer", a broken lock that `lock`
    salvaged as version 1, dropping what the newer pylock recorded."""
    text = _newer_lock(project, version)
    capsys.readouterr()
    assert run(project, *command, "--offline") == 1
    assert capsys.readouterr().err == (
        f"pylock: error: pythons.lock: lock-version: unsupported lock-version {shown}\n"
        "pylock: hint: this pylock reads lock-version 1; upgrade pylock to read this lock file\n"
    )
    assert (project / "pythons.lock").read_text(encoding="utf-8") == text


def test_a_conflict_with_a_newer_lock_version_on_one_side_is_not_salvaged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _newer_lock(project)
    old = text.replace("lock-version = 2", "lock-version = 1")
    conflicted = text.replace(
        "lock-version = 2\n",
        "<<<<<<< HEAD\nlock-version = 1\n=======\nlock-version = 2\n>>>>>>> theirs\n",
    )
    assert conflicted != text and old != text
    (project / "pythons.lock").write_text(conflicted, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock") == 1
    assert "upgrade pylock" in capsys.readouterr().err
    assert (project / "pythons.lock").read_text(encoding="utf-8") == conflicted


def test_a_directory_where_the_lock_goes_is_named_in_the_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README field test: the hint said to run where the project directory is writable."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    (project / "pythons.lock").mkdir()
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "pylock: error: cannot read" in err
    assert "pylock: hint: pythons.lock is a directory: move it aside" in err
    assert (project / "pythons.lock").is_dir()


def test_a_read_only_lock_windows_will_not_replace_is_named_in_the_hint(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability attack: Windows refuses to replace a read-only file (a Perforce
    checkout), and the hint sent the user to a writable project directory, which it was."""
    import pylock.fsutil

    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    lock = project / "pythons.lock"
    lock.write_text(lock.read_text(encoding="utf-8").replace('"3.13.', '"3.12.'), encoding="utf-8")
    lock.chmod(0o444)

    def refused(path: Path, text: str) -> None:  # what MoveFileEx says of it
        raise PermissionError(13, "Access is denied", str(path))

    monkeypatch.setattr(pylock.fsutil, "atomic_write_text", refused)
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "pylock: hint: pythons.lock is read-only: make it writable" in err
    assert "project directory is writable" not in err


def test_a_symlinked_lock_is_written_where_it_points(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """UX attack: a lock shared between projects by a symlink was replaced by a regular
    file, and the shared lock silently kept the old builds."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    shared = project.parent / "shared.lock"
    shared.write_text("", encoding="utf-8")
    (project / "pythons.lock").symlink_to(shared)
    assert run(project, "lock") == 0
    assert (project / "pythons.lock").is_symlink()
    assert loads(shared.read_text(encoding="utf-8")).pythons[0].name == "a"
    assert [p.name for p in project.parent.iterdir() if p.name.endswith(".tmp")] == []
    # A write that fails there names that file and its directory, not the project's.
    import pylock.fsutil

    def refused(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pylock.fsutil, "atomic_write_text", refused)
    shared.write_text("", encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock") == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"pylock: error: cannot write {shared}: Permission denied",
        f"pylock: hint: pythons.lock is a symlink to {shared}: that file's directory must be "
        "writable (`pylock lock --check` writes nothing)",
    ]


@pytest.mark.parametrize("damage", ["truncated", "header", "conflict", "empty", "bom"])
def test_a_symlinked_broken_lock_is_mended_where_it_points(
    project: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """Attack on the day's diff: the check that a symlink points at a lock refused a
    broken one, which `lock` mends (a broken lock never blocks `lock`)."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    good = (project / "pythons.lock").read_text(encoding="utf-8")
    shared = project.parent / "shared.lock"
    if damage == "truncated":
        shared.write_text(good[:300], encoding="utf-8")
    elif damage == "header":
        shared.write_text(good[:40], encoding="utf-8")  # the start of its first comment
    elif damage == "bom":
        # Saved with a mark by an editor, then cut short in its header.
        shared.write_bytes(b"\xef\xbb\xbf" + good[:40].encode())
    elif damage == "conflict":
        shared.write_text(f"<<<<<<< HEAD\n{good}=======\n{good}>>>>>>> other\n", encoding="utf-8")
    else:
        shared.write_text("", encoding="utf-8")
    (project / "pythons.lock").unlink()
    (project / "pythons.lock").symlink_to(shared)
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 0, capsys.readouterr().err
    assert (project / "pythons.lock").is_symlink()
    assert shared.read_text(encoding="utf-8-sig") == good  # a mark alone is no change


@pytest.mark.parametrize("points_at", ["fifo", "text", "missing", "directory"])
def test_a_symlinked_lock_is_not_written_where_it_points_at_no_lock(
    project: Path, capsys: pytest.CaptureFixture[str], points_at: str
) -> None:
    """CLI attack: `pythons.lock -> /dev/zero` turned the device into a regular file, and a
    link to any file (one a cloned repository ships) replaced that file with a lock."""
    import os

    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    victim = project.parent / "victim"
    if points_at == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(victim)
    elif points_at == "text":
        victim.write_text("my notes\n", encoding="utf-8")
    elif points_at == "directory":
        victim.mkdir()
    (project / "pythons.lock").symlink_to(victim)
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert f"pylock: error: pythons.lock is a symlink to {victim}, which " in err
    assert "pylock does not replace it" in err
    assert "point the symlink at a pythons.lock (or an empty file), or remove it" in err
    assert "Traceback" not in err
    # New-user walk-through: a salvage warning ("could not be read ...; every entry was
    # resolved afresh") came first, for a file that was never a lock.
    assert "warning" not in err
    if points_at == "fifo":
        assert victim.is_fifo()
    elif points_at == "text":
        assert victim.read_text(encoding="utf-8") == "my notes\n"
    elif points_at == "directory":
        assert victim.is_dir()
    else:
        assert not victim.exists()
    assert (project / "pythons.lock").is_symlink()
    assert [p.name for p in project.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("flags", [[], ["--upgrade"], ["--upgrade-python", "a"], ["--refresh"]])
def test_check_without_a_lock_says_it_does_not_exist_whatever_the_flags(
    project: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    """`lock --check --upgrade` with no lock said "out of date: a: added ...", where a plain
    `--check` says the lock does not exist."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--check", "--offline", *flags) == 1
    assert capsys.readouterr().err.splitlines() == [
        "pylock: error: pythons.lock does not exist",
        "pylock: hint: run `pylock lock` and commit pythons.lock",
    ]
    assert not (project / "pythons.lock").exists()


def test_a_lock_with_a_byte_order_mark_keeps_its_builds_on_lock(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the day's diff: the other readers took a byte-order mark, `lock`'s own
    did not: it warned "could not be read", resolved afresh, and upgraded 3.13.5 to the
    newest 3.13 without --upgrade."""
    toml = project / "pythons.toml"
    toml.write_text(TOML.replace('"3.13"', '"3.13.5"'), encoding="utf-8")
    assert run(project, "lock") == 0
    toml.write_text(TOML, encoding="utf-8")
    assert run(project, "lock") == 0
    lock = project / "pythons.lock"
    assert loads(lock.read_text(encoding="utf-8")).pythons[0].version == "3.13.5"
    capsys.readouterr()
    lock.write_bytes(b"\xef\xbb\xbf" + lock.read_bytes())
    assert run(project, "lock") == 0
    assert "could not be read" not in capsys.readouterr().err
    assert loads(lock.read_text(encoding="utf-8-sig")).pythons[0].version == "3.13.5"


def test_upgrade_python_takes_several_names_after_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Design attack: `--upgrade-python NAME ...`, as the design writes it, was refused
    ("unrecognized arguments: b"); only a repeated flag took several names."""
    pinned = TOML.replace('"3.13"', '"3.13.5"')
    (project / "pythons.toml").write_text(pinned + pinned.replace("python.a", "python.b"))
    assert run(project, "lock", "--offline") == 0
    widened = TOML + TOML.replace("python.a", "python.b")
    (project / "pythons.toml").write_text(widened, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    capsys.readouterr()
    assert run(project, "lock", "--offline", "--upgrade-python", "a", "b") == 0
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert lines == [f"{n}: cpython 3.13.5+20250723 -> {BUNDLED_313}" for n in "ab"]


def test_check_with_an_upgrade_fails_on_a_lock_the_upgrade_would_change(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audit: no test covered `lock --check --upgrade` (or `--upgrade-python`) on a lock
    that the upgrade would change; only a missing lock was."""
    (project / "pythons.toml").write_text(TOML.replace('"3.13"', '"3.13.5"'), encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0  # 3.13.5 still fits: kept
    before = (project / "pythons.lock").read_text(encoding="utf-8")
    assert run(project, "lock", "--offline", "--check") == 0
    capsys.readouterr()
    for flags in (["--upgrade"], ["--upgrade-python", "a"]):
        assert run(project, "lock", "--offline", "--check", *flags) == 1
        err = capsys.readouterr().err
        assert f"pythons.lock is out of date: a: cpython 3.13.5+20250723 -> {BUNDLED_313}" in err
    assert (project / "pythons.lock").read_text(encoding="utf-8") == before


def test_check_names_the_first_ten_changes_and_counts_the_rest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI log: `lock --check --upgrade` on a lock of 200 stale entries put every change
    into one error line of 16,000 characters."""
    entries = [f'[python.a{i:03d}]\nversion = "3.13"\n' for i in range(30)]
    toml = '[defaults]\nplatforms = ["linux-x86_64-gnu"]\n' + "".join(entries)
    (project / "pythons.toml").write_text(toml.replace('"3.13"', '"3.13.5"'), encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    (project / "pythons.toml").write_text(toml, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0  # 3.13.5 still fits: kept
    capsys.readouterr()
    assert run(project, "lock", "--offline", "--check", "--upgrade") == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("pylock: error: pythons.lock is out of date: a000: cpython 3.13.5")
    assert first.count(" -> ") == 10 and "a009: " in first and "a010: " not in first
    assert first.endswith(
        "; and 20 more (`pylock lock --dry-run` with the same options lists them all)"
    )
    assert len(first) < 1000


# -- attack on lock determinism: --check agrees with `lock` --------------------------------


def test_a_plain_check_judges_by_the_downloads_json_lock_used(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON that lists an upstream URL with its own sha256 (its entries win for their
    URLs): the lock `lock` made with it failed every `lock --check` with the same JSON,
    judged by the bundled index alone, whose hint (`run pylock lock`) changed nothing."""
    (project / "pythons.toml").write_text(TOML.replace('"3.13"', '"3.13.15"'), encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    url = loads((project / "pythons.lock").read_text(encoding="utf-8")).pythons[0].artifacts[0].url
    (project / "pythons.lock").unlink()
    source = downloads_json(project, url=url, sha256="9" * 64, patch=15, build="20260814")
    assert run(project, "lock", "--python-downloads-json", source) == 0
    assert "9" * 64 in (project / "pythons.lock").read_text(encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--check", "--python-downloads-json", source) == 0
    assert "does not match" not in capsys.readouterr().err
    # Without the JSON, the bundled index judges that URL, as before.
    assert run(project, "lock", "--check") == 1
    assert "does not match the index" in capsys.readouterr().err


def test_a_plain_check_fails_where_lock_would_rewrite_the_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries reordered by hand: `lock --check` passed while `lock` rewrote the file
    (and `--check --upgrade` failed with no reason)."""
    two = TOML + TOML.replace("python.a", "python.b")
    (project / "pythons.toml").write_text(two, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    text = (project / "pythons.lock").read_text(encoding="utf-8")
    head, a, b = text.split("[[python]]")
    reordered = "[[python]]".join([head, b.rstrip("\n") + "\n\n", a.rstrip("\n") + "\n"])
    (project / "pythons.lock").write_text(reordered, encoding="utf-8")
    capsys.readouterr()
    for flags in ([], ["--upgrade"]):
        assert run(project, "lock", "--check", *flags) == 1
        err = capsys.readouterr().err
        assert "pythons.lock is out of date: no interpreter changes, but `pylock lock` would " in (
            err
        )
    assert (project / "pythons.lock").read_text(encoding="utf-8") == reordered
    assert run(project, "lock") == 0
    assert (project / "pythons.lock").read_text(encoding="utf-8") == text
    assert run(project, "lock", "--check") == 0


def test_a_plain_check_judges_one_reading_of_the_lock(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It read the lock twice, once to compare it with pythons.toml and once to see that it
    is as `lock` writes it: a lock replaced between the two was judged by two files."""
    from pylock import ownfiles

    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    reads: list[str] = []
    real = ownfiles.read_project_file

    def counted(path: str | os.PathLike[str]) -> bytes:
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(ownfiles, "read_project_file", counted)
    assert run(project, "lock", "--check") == 0
    assert reads.count("pythons.lock") == 1


def test_a_lock_that_does_not_change_keeps_the_pylock_that_wrote_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Teammates on two pylock versions flipped `created-by` back and forth: `lock`
    rewrote a lock whose entries it kept, for that line alone."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    lock_path = project / "pythons.lock"
    older = lock_path.read_text(encoding="utf-8").replace(
        f'created-by = "{loads(lock_path.read_text(encoding="utf-8")).created_by}"',
        'created-by = "pylock 0.1.0"',
    )
    assert 'created-by = "pylock 0.1.0"' in older
    lock_path.write_text(older, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 0
    assert "nothing changed" in capsys.readouterr().err
    assert lock_path.read_text(encoding="utf-8") == older
    assert run(project, "lock", "--check") == 0
    # A real change writes the running pylock's name.
    (project / "pythons.toml").write_text(TOML.replace('"3.13"', '"3.12"'), encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    assert "pylock 0.1.0" not in lock_path.read_text(encoding="utf-8")


def test_a_lock_that_cannot_be_read_is_not_replaced_by_a_fresh_one(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack as a user who is not root: a lock root wrote 0640 was read as a broken one,
    and `lock` resolved every entry afresh, losing its pins (3.13.5 became the newest)."""
    import pylock.ownfiles

    (project / "pythons.toml").write_text(TOML.replace('"3.13"', '"3.13.5"'), encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    before = (project / "pythons.lock").read_text(encoding="utf-8")
    real = pylock.ownfiles.read_project_file

    def denied(path: Path, *args: Any, **kwargs: Any) -> bytes:
        if Path(path).name in ("pythons.lock", "shared.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pylock.ownfiles, "read_project_file", denied)
    capsys.readouterr()
    for flags in ([], ["--check"], ["--upgrade"]):
        assert run(project, "lock", "--offline", *flags) == 1
        err = capsys.readouterr().err
        assert f"pylock: error: cannot read {project / 'pythons.lock'}: Permission denied" in err
        assert "`pylock lock` does not replace a lock it cannot read" in err
    assert (project / "pythons.lock").read_text(encoding="utf-8") == before
    # A symlinked one too (attack on the day's diff: "point the symlink at a lock").
    shared = project.parent / "shared.lock"
    (project / "pythons.lock").rename(shared)
    (project / "pythons.lock").symlink_to(shared)
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "`pylock lock` does not replace a lock it cannot read" in err
    assert "point the symlink" not in err


def test_a_plain_http_url_sync_would_refuse_is_a_warning_when_locked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error-message audit: `lock` took a plain-http `url` without a word, and only `sync`
    (in the build) refused it."""
    url = "http://example.com/cpython-3.12.7-x86_64-linux.tar.gz"
    toml = f'[python.x]\nurl = "{url}"\nversion = "3.12.7"\nsha256 = "{"a" * 64}"\n'
    (project / "pythons.toml").write_text(toml, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 0
    err = capsys.readouterr().err
    assert (
        "pylock: warning: x: locked from http://example.com/, plain http, which `pylock sync` "
        "refuses unless a rewrite trusts that server"
    ) in err
    assert run(project, "lock", "--offline", "--upgrade") == 0  # said once, when new
    assert "plain http" not in capsys.readouterr().err
    (project / "pythons.lock").unlink()
    trusted = "http://example.com/=http://example.com/"
    assert run(project, "lock", "--offline", "--rewrite", trusted) == 0
    assert "plain http" not in capsys.readouterr().err
    # One warning per server, naming every entry (attack on the day's diff: one per
    # archive, nine for three entries on three platforms).
    (project / "pythons.lock").unlink()
    second = toml.replace("[python.x]", "[python.y]").replace(".tar.gz", "-b.tar.gz")
    (project / "pythons.toml").write_text(toml + second, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "plain http" in line]
    assert warnings == [
        "pylock: warning: x, y: locked from http://example.com/, plain http, which `pylock "
        "sync` refuses unless a rewrite trusts that server (--rewrite FROM=TO or "
        "PYLOCK_URL_REWRITES); an https URL needs none"
    ]


def test_a_file_url_with_two_slashes_is_caught_before_the_build(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """New-user walk-through: `file://tmp/m/x.tar.gz` (two slashes: the host `tmp`) was
    locked without a word, "from a local file", and every sync on Linux and macOS then
    failed with no hint; as a mirror or a rewrite's target it passed the flag's check and
    failed each download. Only Windows reads a host there (a share's server)."""
    url = "file://tmp/m/cpython-3.12.7-x86_64-linux.tar.gz"
    toml = f'[python.x]\nurl = "{url}"\nversion = "3.12.7"\nsha256 = "{"a" * 64}"\n'
    (project / "pythons.toml").write_text(toml, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 0
    assert (
        "pylock: warning: x: file://tmp/m/cpython-3.12.7-x86_64-linux.tar.gz names the host "
        "'tmp', which only Windows reads (as a share's server): for the path "
        "/tmp/m/cpython-3.12.7-x86_64-linux.tar.gz, write "
        "file:///tmp/m/cpython-3.12.7-x86_64-linux.tar.gz; `pylock sync` on this machine "
        "refuses it"
    ) in capsys.readouterr().err
    for flags in (["--mirror", "file://tmp/m"], ["--rewrite", "https://github.com/=file://tmp/m/"]):
        assert run(project, "lock", "--offline", "--check", *flags) == 2
        err = capsys.readouterr().err
        assert "names the host 'tmp'" in err and "write file:///tmp/m" in err


def test_a_full_disk_under_the_lock_gets_the_out_of_space_hint(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupt attack: `lock` on a full disk said to run where the project directory is
    writable."""
    import errno

    import pylock.fsutil

    def full(path: Path, text: str, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pylock.fsutil, "atomic_write_text", full)
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "No space left on device" in err
    assert "hint: free some disk space, then run `pylock lock` again" in err


def test_a_conflict_whose_sides_lock_one_build_with_different_archives_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lock-determinism attack: recovery kept "ours" (or "theirs", by the merge's
    direction) without a word when both sides locked one build at a mirror URL with
    different sha256s."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    lock_path = project / "pythons.lock"
    ours = lock_path.read_text(encoding="utf-8")
    sha = loads(ours).pythons[0].artifacts[0].sha256
    theirs = ours.replace(sha, "7" * 64)
    head = ours.index("[[python]]")
    conflicted = (
        f"{ours[:head]}<<<<<<< HEAD\n{ours[head:]}=======\n"
        f"{theirs[theirs.index('[[python]]') :]}>>>>>>> other\n"
    )
    lock_path.write_text(conflicted, encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "has merge-conflict markers, and its sides lock a (cpython " in err
    assert f"with different archives (sha256 {sha[:12]}... and 777777777777...)" in err
    assert "hint: keep the right entry for a by hand" in err
    assert lock_path.read_text(encoding="utf-8") == conflicted


def test_a_downloads_json_that_lists_one_url_with_two_hashes_uses_neither(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lock-determinism attack: the entry that came last won, so the lock depended on the
    order of the JSON's keys, without a word."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    name = "cpython-3.13.16%2B20260901-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    url = f"{PBS}/20260901/{name}"
    first = uv_entry(patch=16, build="20260901", url=url, sha256="5" * 64)
    # The same file, its `+` spelled as it is (attack on the day's diff: not noticed).
    second = uv_entry(patch=16, build="20260901", url=url.replace("%2B", "+"), sha256="6" * 64)
    for entries in ((first, second), (second, first)):
        data = {"cpython-3.13.16-linux-x86_64-gnu": entries[0], "also": entries[1]}
        source = project / "downloads.json"
        source.write_text(json.dumps(data), encoding="utf-8")
        (project / "pythons.lock").unlink(missing_ok=True)
        capsys.readouterr()
        assert run(project, "lock", "--python-downloads-json", str(source)) == 0
        out, err = capsys.readouterr()
        assert out.splitlines()[0] == f"a: added cpython {BUNDLED_313}"
        assert "other entries list its URL with another sha256" in err


def test_what_a_killed_lock_left_goes_even_when_the_lock_does_not_change(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Interrupt attack: `.pythons.lock.<hex>.tmp` of a killed `lock` went only when a later
    `lock` rewrote the file, so an unchanged lock kept it, for `git add -A` to commit."""
    import os
    import time

    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    left = project / ".pythons.lock.0123456789ab.tmp"
    fresh = project / ".pythons.lock.ba9876543210.tmp"  # a live writer's, maybe
    for path in (left, fresh):
        path.write_text("half a lock", encoding="utf-8")
    old = time.time() - 7200
    os.utime(left, (old, old))
    for flags in (["--check"], ["--dry-run"]):
        assert run(project, "lock", "--offline", *flags) == 0
        assert left.exists()  # they write nothing
    assert run(project, "lock", "--offline") == 0
    assert "nothing changed" in capsys.readouterr().err
    assert not left.exists() and fresh.exists()


def test_an_upgrade_never_moves_an_entry_back_to_what_the_index_lists(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lock-determinism attack: an entry locked from a downloads JSON (or `--refresh`) newer
    than the bundled index was "downgraded" by `lock --upgrade`."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    source = downloads_json(project)
    assert run(project, "lock", "--python-downloads-json", source) == 0
    before = (project / "pythons.lock").read_text(encoding="utf-8")
    assert loads(before).pythons[0].version == "3.13.16"
    capsys.readouterr()
    assert run(project, "lock", "--upgrade") == 0
    out, err = capsys.readouterr()
    assert "downgraded" not in out
    assert (
        "a: kept cpython 3.13.16+20260901, newer than anything the index lists (its newest "
        f"is cpython {BUNDLED_313})"
    ) in err
    assert (project / "pythons.lock").read_text(encoding="utf-8") == before


def test_a_lock_holding_one_entry_twice_with_different_archives_says_so(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: a lock with `a` twice (one edited), and no conflict marker,
    was said to have merge-conflict markers."""
    import errno

    import pylock.fsutil

    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    assert run(project, "lock", "--offline") == 0
    lock_path = project / "pythons.lock"
    text = lock_path.read_text(encoding="utf-8")
    sha = loads(text).pythons[0].artifacts[0].sha256
    entry = text[text.index("[[python]]") :]
    lock_path.write_text(text + "\n" + entry.replace(sha, "7" * 64), encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 1
    err = capsys.readouterr().err
    assert "pythons.lock holds two entries that lock a (cpython " in err
    assert "merge-conflict" not in err
    # And a quota, like a full disk, gets the disk-space hint.
    lock_path.write_text(text.replace("\n", "\n\n", 1), encoding="utf-8")

    def over_quota(path: Path, text: str, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(pylock.fsutil, "atomic_write_text", over_quota)
    assert run(project, "lock", "--offline") == 1
    assert "hint: free some disk space, then run `pylock lock` again" in capsys.readouterr().err


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


def test_an_empty_lock_is_written_without_a_salvage_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the day's diff: `lock` over an empty pythons.lock (a `touch`, or the empty
    file a symlinked lock may point at) warned that it "could not be read (empty); no
    locked build in it still fits", though nothing was locked in it to lose."""
    (project / "pythons.toml").write_text(TOML, encoding="utf-8")
    (project / "pythons.lock").write_text("\n", encoding="utf-8")
    capsys.readouterr()
    assert run(project, "lock", "--offline") == 0
    assert "warning" not in capsys.readouterr().err
    assert loads((project / "pythons.lock").read_text(encoding="utf-8")).pythons
