"""``sync --bin-dir`` as a field test found it: a failed upgrade, a bin dir shared by
projects that want one name, syncs that link into one bin dir at once, and a manifest
someone else wrote."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pylock.sync.bindir import MANIFEST, sync_links
from tests.syncproject import TAG_B, Build, Project, make_build

posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks, as POSIX makes them")


@posix_only
def test_a_failed_upgrade_keeps_the_links_of_the_tree_still_installed(
    sync_project: Project, app_a: Build, app_b: Build
) -> None:
    bin_dir = sync_project.root / "bin"
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    link = bin_dir / f"python{app_a.minor}"
    assert link.is_symlink()
    # The upgrade's archive is not on the mirror (not filled yet): the sync fails, and the
    # old tree stays, with its links (they were removed before).
    sync_project.lock(app_b)
    failed = sync_project.sync("--bin-dir", str(bin_dir))
    assert failed.code == 1
    assert (sync_project.into / "app").is_dir()
    assert link.is_symlink() and link.resolve().exists()
    assert "removed link" not in failed.err
    # Once it can be installed, the links follow it.
    sync_project.serve(app_b)
    done = sync_project.sync("--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert not link.exists() and not link.is_symlink()
    assert (bin_dir / f"python{app_b.minor}").is_symlink()


@posix_only
def test_a_failed_install_beside_an_upgrade_leaves_no_dangling_link(
    sync_project: Project, app_a: Build, app_b: Build, tool: Build
) -> None:
    """Field test: when one interpreter failed, the links were made without pruning, so
    an upgrade to another minor version in the same run left the old version's link
    pointing into a tree that was gone."""
    bin_dir = sync_project.root / "bin"
    sync_project.install(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    old, kept = bin_dir / f"python{app_a.minor}", bin_dir / f"python{tool.minor}"
    assert old.resolve().exists() and kept.resolve().exists()
    # app goes 3.12 -> 3.13 and is served; tool's new build is not: tool fails.
    tool_b = make_build("tool", TAG_B, minor=tool.minor, big=1_000)
    sync_project.lock(app_b, tool_b)
    sync_project.serve(app_b)
    failed = sync_project.sync("--bin-dir", str(bin_dir))
    assert failed.code == 1
    assert (bin_dir / f"python{app_b.minor}").resolve().exists()
    assert not old.is_symlink(), "the old minor's link dangles"
    assert f"removed link {old}" in failed.err
    # The failed interpreter's tree is still there, and so is its link.
    assert kept.is_symlink() and kept.resolve().exists()
    links = json.loads((bin_dir / MANIFEST).read_text())["links"]
    assert old.name not in links and kept.name in links


@posix_only
def test_a_sync_with_nothing_to_link_writes_nothing_in_the_bin_dir(
    sync_project: Project, app_a: Build, tmpfs: Callable[[str], Path]
) -> None:
    """Fault attack: every no-op `sync --bin-dir` rewrote the bin dir's manifest, so on a
    full disk (no inode left for its temporary) a sync with nothing to do failed with
    "--bin-dir: cannot update ...: No space left on device"."""
    disk = tmpfs("size=8m,nr_inodes=200")
    sync_project.into, bin_dir = disk / "pythons", disk / "bin"
    sync_project.install(app_a)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    manifest = (bin_dir / MANIFEST).stat()
    with contextlib.suppress(OSError):  # fill the inode table
        for n in range(300):
            (disk / f"filler-{n}").touch()
    again = sync_project.sync("--bin-dir", str(bin_dir))
    assert again.code == 0, again.err
    assert "up to date" in again.err
    assert (bin_dir / MANIFEST).stat().st_ino == manifest.st_ino


@posix_only
def test_a_sync_with_nothing_to_link_passes_on_a_read_only_bin_dir(
    sync_project: Project, app_a: Build, tmpfs: Callable[[str], Path]
) -> None:
    """Fault attack: in an image run read-only (`docker run --read-only`), a no-op
    `sync --bin-dir` failed with "cannot write to --bin-dir ...: read-only file system",
    where the same sync without --bin-dir passes: nothing there needed to change."""
    disk = tmpfs("size=8m")
    sync_project.into, bin_dir = disk / "pythons", disk / "bin"
    sync_project.install(app_a)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    again = sync_project.sync("--bin-dir", str(bin_dir))
    assert again.code == 0, again.err
    assert "up to date" in again.err
    # A link that is missing still needs a writable bin dir, and says so.
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    (bin_dir / f"python{app_a.minor}").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    failed = sync_project.sync("--bin-dir", str(bin_dir))
    assert failed.code == 1
    assert f"--bin-dir: cannot update {bin_dir}: Read-only file system" in failed.err


@posix_only
def test_a_name_another_project_had_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    a, b = tmp_path / "a" / ".pythons", tmp_path / "b" / ".pythons"
    first = sync_links(bin_dir, {"python3": a / "app/bin/python3"}, windows=False, install_dir=a)
    assert first.taken == ()
    second = sync_links(bin_dir, {"python3": b / "svc/bin/python3"}, windows=False, install_dir=b)
    assert second.taken == (("python3", str(a)),)
    assert os.readlink(bin_dir / "python3") == str(b / "svc/bin/python3")
    # Again: now B's, so nothing is taken.
    again = sync_links(bin_dir, {"python3": b / "svc/bin/python3"}, windows=False, install_dir=b)
    assert again.taken == ()


@posix_only
def test_links_from_a_manifest_without_owners_are_judged_by_their_targets(
    tmp_path: Path,
) -> None:
    """A bin dir shared with a project an older pylock synced: its manifest names no
    install directories. Another project's sync leaves the links into the other tree
    (it used to prune them as its own), and still prunes its own old ones."""
    bin_dir = tmp_path / "bin"
    a, b = tmp_path / "a" / ".pythons", tmp_path / "b" / ".pythons"
    # "a" holds a tree whose path contains b's: only where a link starts counts.
    a = tmp_path / "x" / b.relative_to(tmp_path)
    links = {"python3": str(a / "app/bin/python3"), "python3.11": str(b / "old/bin/python3")}
    bin_dir.mkdir()
    for name, target in links.items():
        (bin_dir / name).symlink_to(target)
    (bin_dir / MANIFEST).write_text(json.dumps({"links": links}))

    done = sync_links(bin_dir, {"python3.13": b / "svc/bin/python3"}, windows=False, install_dir=b)
    assert done.removed == ("python3.11",)
    assert os.readlink(bin_dir / "python3") == links["python3"]
    # Taking a name over from that project says whose it was.
    taken = sync_links(bin_dir, {"python3": b / "svc/bin/python3"}, windows=False, install_dir=b)
    assert taken.taken == (("python3", links["python3"]),)


def test_the_warning_names_both_install_directories(
    sync_project: Project, app_a: Build, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "shared-bin"
    other = tmp_path / "other" / ".pythons"
    sync_links(bin_dir, {f"python{app_a.minor}": other / "x"}, windows=False, install_dir=other)
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    done = sync_project.sync("--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert f"pylock: warning: --bin-dir: {bin_dir / f'python{app_a.minor}'}" in done.err
    assert str(other) in done.err and str(sync_project.into) in done.err


def test_manifest_names_that_are_paths_are_ignored(tmp_path: Path) -> None:
    # A manifest naming a link outside the bin dir: the sync removed that link before.
    bin_dir, outside = tmp_path / "bin", tmp_path / "elsewhere"
    bin_dir.mkdir()
    outside.mkdir()
    victim = outside / "python-alt"
    victim.symlink_to("/usr/bin/python3")
    names = [str(victim), "../elsewhere/python-alt", "..", "C:python"]
    (bin_dir / MANIFEST).write_text(
        json.dumps({"links": dict.fromkeys(names, "/usr/bin/python3")}), encoding="utf-8"
    )
    result = sync_links(bin_dir, {}, windows=False)
    assert result.removed == ()
    assert victim.is_symlink()
    assert json.loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))["links"] == {}


class _Killed(BaseException):
    """A SIGKILL, as far as the code under test can tell: nothing after it runs."""


@posix_only
@pytest.mark.parametrize("stop", ["link placed", "link being placed"])
def test_links_of_a_run_killed_half_way_are_pylocks_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Killed after placing ``python3.12`` (or with its temporary link made) but before the
    manifest recorded it: the next run knew nothing of it. A lock that no longer wanted it
    left it in place, running another interpreter; one that wanted the name for another
    interpreter refused it as foreign (field test 3)."""
    from pylock.sync import bindir

    bin_dir, install = tmp_path / "bin", tmp_path / "pythons"
    before = {"python3.11": install / "py/bin/python3"}
    sync_links(bin_dir, before, windows=False, install_dir=install)
    upgrade = {"python3.12": install / "py/bin/python3"}
    if stop == "link placed":
        writes = [0]
        write_manifest = bindir._write_manifest

        def killed_before_the_last(*args: Any) -> None:
            writes[0] += 1
            if writes[0] == 2:
                raise _Killed
            write_manifest(*args)

        monkeypatch.setattr(bindir, "_write_manifest", killed_before_the_last)
    else:
        replace = os.replace

        def killed(source: Any, *args: Any) -> None:
            if str(source).endswith(".python3.12.pylock-tmp"):
                raise _Killed  # the temporary link is made, and not renamed yet
            replace(source, *args)

        monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(_Killed):
        sync_links(bin_dir, upgrade, windows=False, install_dir=install)
    monkeypatch.undo()
    assert (bin_dir / "python3.12").is_symlink() == (stop == "link placed")
    assert (bin_dir / ".python3.12.pylock-tmp").is_symlink() == (stop != "link placed")

    # The upgrade is reverted: the link it was making goes, and so does its debris.
    reverted = sync_links(bin_dir, before, windows=False, install_dir=install)
    assert sorted(os.listdir(bin_dir)) == sorted([".pylock-links.lock", MANIFEST, "python3.11"])
    assert reverted.removed == (("python3.12",) if stop == "link placed" else ())
    manifest = json.loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["links"] == {"python3.11": str(install / "py/bin/python3")}
    assert "pending" not in manifest


@posix_only
def test_a_link_another_projects_killed_run_was_making_stays_its_own(tmp_path: Path) -> None:
    bin_dir, mine, theirs = tmp_path / "bin", tmp_path / "mine", tmp_path / "theirs"
    bin_dir.mkdir()
    (bin_dir / "python3.13").symlink_to(theirs / "x/bin/python3")
    target = str(theirs / "x/bin/python3")
    (bin_dir / MANIFEST).write_text(
        json.dumps(
            {
                "links": {},
                "pending": {"python3.13": target},
                "pending-installs": {"python3.13": str(theirs)},
            }
        )
    )
    sync_links(bin_dir, {"python3.12": mine / "y/bin/python3"}, windows=False, install_dir=mine)
    assert (bin_dir / "python3.13").is_symlink()
    manifest = json.loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["pending"] == {"python3.13": target}
    assert manifest["pending-installs"] == {"python3.13": str(theirs)}
    # Their next run takes it as its own.
    sync_links(bin_dir, {"python3.13": theirs / "x/bin/python3"}, windows=False, install_dir=theirs)
    manifest = json.loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))
    assert "pending" not in manifest
    assert sorted(manifest["links"]) == ["python3.12", "python3.13"]


@posix_only
def test_a_takeover_killed_before_the_link_changed_leaves_the_link_its_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B wanted A's ``python3`` and was killed after recording it as pending, before the
    link changed: the link is still A's, and A's next sync, which no longer wants it,
    removes it (it took it for B's, and left it dangling on PATH)."""
    bin_dir, a, b = tmp_path / "bin", tmp_path / "a", tmp_path / "b"
    sync_links(bin_dir, {"python3": a / "app/bin/python3"}, windows=False, install_dir=a)
    replace = os.replace

    def killed(source: Any, *args: Any) -> None:
        if str(source).endswith(".python3.pylock-tmp"):
            raise _Killed
        replace(source, *args)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(_Killed):
        sync_links(bin_dir, {"python3": b / "svc/bin/python3"}, windows=False, install_dir=b)
    monkeypatch.undo()
    assert os.readlink(bin_dir / "python3") == str(a / "app/bin/python3")
    assert sync_links(bin_dir, {}, windows=False, install_dir=a).removed == ("python3",)
    assert not (bin_dir / "python3").exists()
    # B's next sync makes it, as nothing is in the way.
    sync_links(bin_dir, {"python3": b / "svc/bin/python3"}, windows=False, install_dir=b)
    assert os.readlink(bin_dir / "python3") == str(b / "svc/bin/python3")


@posix_only
def test_syncs_into_one_bin_dir_at_once_keep_every_entry(tmp_path: Path) -> None:
    # Projects with their own names link into one fresh bin dir at the same moment: each
    # read-modify-write of the manifest could drop another's entry (8 rounds in 20 before),
    # leaving a link no sync would ever remove. Threads exclude each other as processes do.
    names = [f"python3.{minor}" for minor in range(8, 16)]
    for attempt in range(6):
        bin_dir = tmp_path / f"bin{attempt}"
        start = threading.Barrier(len(names))
        errors: list[BaseException] = []

        def link(
            name: str,
            bin_dir: Path = bin_dir,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            install = tmp_path / name
            start.wait()
            try:
                sync_links(bin_dir, {name: install / "python"}, windows=False, install_dir=install)
            except BaseException as error:
                errors.append(error)

        workers = [threading.Thread(target=link, args=(name,)) for name in names]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert errors == []
        manifest = json.loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))
        assert sorted(manifest["links"]) == sorted(names), attempt


# -- a damaged install record --------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "removed", "fields"])
def test_a_damaged_record_is_a_verify_failure_and_sync_repairs_it(
    sync_project: Project, app_a: Build, damage: str
) -> None:
    sync_project.install(app_a)
    record = sync_project.into / "app" / ".pylock" / "install.json"
    if damage == "truncated":
        record.write_text(record.read_text(encoding="utf-8")[:20], encoding="utf-8")
    elif damage == "fields":
        # Valid JSON of pylock's, but no artifact: the tree was verified twice.
        record.write_text('{"installer": "pylock"}', encoding="utf-8")
    else:
        record.unlink()
    (sync_project.into / "app" / "bin" / "python3.12").write_text("tampered\n")
    # `verify` skipped the tree and said "ok" for the rest, exit 0.
    verified = sync_project.verify()
    assert verified.code == 1
    assert verified.out.count("app: 1 difference") == 1
    assert "record: .pylock/install.json is missing or damaged" in verified.out
    # `sync` refused to replace the tree ("not installed by pylock"), though every other
    # command said to run it.
    repaired = sync_project.sync()
    assert repaired.code == 0, repaired.err
    assert sync_project.verify().code == 0


# -- attack on the commands that inspect installs -------------------------------------------


@posix_only
def test_a_user_directory_lent_a_record_through_a_symlinked_pylock_is_never_pruned(
    installed: Project, tmp_path: Path
) -> None:
    """Attack: `DIR/mydata/.pylock` linked to an install's `.pylock` made the sync prune the
    user's directory, files and all."""
    mine = installed.into / "mydata"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    (mine / ".pylock").symlink_to(installed.into / "app" / ".pylock")
    copied = installed.into / "userstuff"
    (copied / ".pylock").mkdir(parents=True)  # a real .pylock, holding another tree's record
    (copied / ".pylock" / "install.json").write_bytes(
        (installed.into / "app" / ".pylock" / "install.json").read_bytes()
    )
    assert installed.sync().code == 0
    assert (mine / "notes.txt").read_text() == "precious"
    assert (copied / ".pylock" / "install.json").is_file()
    assert (installed.into / "app").is_dir()


@posix_only
def test_clearing_a_read_only_directory_never_chmods_what_a_link_in_it_points_at(
    tmp_path: Path,
) -> None:
    """Attack: removing a tree as its non-root owner made a file outside it 0700, through a
    link in a read-only directory of the tree (chmod follows links)."""
    from pylock.fsutil import _retry_writable

    outside = tmp_path / "outside"
    outside.write_text("cfg")
    outside.chmod(0o644)
    tree = tmp_path / "tree"
    (tree / "ro").mkdir(parents=True)
    link = tree / "ro" / "link"
    link.symlink_to(outside)
    removed: list[str] = []
    retry = _retry_writable(str(tree))
    retry(removed.append, str(link), PermissionError(13, "Permission denied"))
    assert removed == [str(link)]
    assert outside.stat().st_mode & 0o777 == 0o644


@posix_only
@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_manifest_that_is_no_file_pylock_wrote_is_an_empty_one(
    sync_project: Project, app_a: Build, kind: str
) -> None:
    """Attack: a FIFO manifest hung the sync (holding the bin dir's lock); /dev/zero read
    until memory ran out."""
    bin_dir = sync_project.root / "bin"
    bin_dir.mkdir()
    manifest = bin_dir / MANIFEST
    if kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "device":
        manifest.symlink_to("/dev/zero")
    else:
        manifest.write_text(json.dumps({"links": {f"n{i}": "x" * 64 for i in range(80_000)}}))
    sync_project.install(app_a)
    done = sync_project.sync("--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert (bin_dir / f"python{app_a.minor}").is_symlink()


@posix_only
def test_one_install_dir_spelled_two_ways_owns_its_links(tmp_path: Path) -> None:
    """Attack: the same install dir through a symlink was "another project": warnings that
    it took its own links, and a pruned interpreter's link kept, dangling, on PATH."""
    real = tmp_path / "real" / ".pythons"
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    alias = tmp_path / "alias" / ".pythons"
    bin_dir = tmp_path / "bin"
    wanted = {"python3": real / "app/bin/python3", "python3.11": real / "old/bin/python3"}
    sync_links(bin_dir, wanted, windows=False, install_dir=alias)
    again = sync_links(bin_dir, wanted, windows=False, install_dir=real)
    assert again.taken == ()
    pruned = sync_links(bin_dir, {"python3": wanted["python3"]}, windows=False, install_dir=alias)
    assert pruned.removed == ("python3.11",)
    assert not os.path.lexists(bin_dir / "python3.11")


@posix_only
def test_manifest_names_with_control_characters_are_not_pylock_links(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    evil = "evil\x1b[31mRED\nfake line"
    (bin_dir / evil).symlink_to("/etc/passwd")
    mine = tmp_path / ".pythons"
    manifest = {"links": {evil: "/etc/passwd"}, "installs": {evil: str(mine)}}
    (bin_dir / MANIFEST).write_text(json.dumps(manifest))
    done = sync_links(bin_dir, {}, windows=False, install_dir=mine)
    assert done.removed == ()
    assert os.path.lexists(bin_dir / evil)  # not pylock's: left alone


@posix_only
def test_an_alias_link_in_the_install_dir_is_not_an_interpreter(
    installed: Project,
) -> None:
    """Attack: `DIR/current -> app` failed `verify` for good, with a hint that could not fix it."""
    (installed.into / "current").symlink_to("app")
    (installed.into / "ctrl\x1bname" / ".pylock").mkdir(parents=True)
    done = installed.verify()
    assert done.code == 0, done.out + done.err
    assert "current" not in done.out and "\x1b" not in done.out + done.err


@posix_only
def test_a_symlinked_locks_directory_is_refused(installed: Project, tmp_path: Path) -> None:
    """Attack: `DIR/.pylock-locks` linked elsewhere made the sync write its lock files there."""
    import shutil

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(installed.into / ".pylock-locks")
    (installed.into / ".pylock-locks").symlink_to(elsewhere)
    done = installed.sync("--reinstall")
    assert done.code == 1
    assert ".pylock-locks is a link (a symlink or junction)" in done.err
    assert list(elsewhere.iterdir()) == []


@posix_only
def test_a_bin_dir_inside_an_interpreter_tree_is_refused(installed: Project) -> None:
    """Attack: `--bin-dir DIR/app/lib` left its lock file there, and `verify` then failed."""
    done = installed.sync("--bin-dir", str(installed.into / "app" / "lib"))
    assert done.code == 2
    assert "is inside the tree of app" in done.err
    assert installed.verify().code == 0


@pytest.mark.parametrize("inside", ["app", "app/lib"])
def test_an_install_dir_inside_an_interpreter_tree_is_refused(
    installed: Project, inside: str
) -> None:
    """Attack: `--into DIR/app` (as if it named the interpreter's directory) installed a
    second interpreter inside the first: `verify` failed, and the next upgrade of `app`
    deleted the nested one."""
    nested = installed.into / inside
    done = installed.run("sync", "--into", str(nested), "--mirror", installed.mirror)
    assert done.code == 2, done.err
    assert f"is inside the tree of app in {installed.into}" in done.err
    assert f"--into {installed.into}" in done.err
    assert not (nested / "app").exists() and not (installed.into / "app" / ".pylock-locks").exists()
    assert installed.verify().code == 0


@posix_only
def test_a_bin_dir_in_a_tree_spelled_in_another_case_is_refused_where_case_does_not_count(
    installed: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: on macOS and Windows `DIR/APP/bin` is inside `DIR/app`; the check compared
    names as spelled. (Here on Linux, folding is switched on to check the comparison.)"""
    from pylock.sync import execute

    spelled = installed.into.parent / installed.into.name.upper() / "APP" / "Lib"
    assert installed.sync("--bin-dir", str(spelled)).code == 0  # Linux: another directory
    monkeypatch.setattr(execute, "_FOLDED_NAMES", True)
    done = installed.sync("--bin-dir", str(spelled))
    assert done.code == 2
    assert "is inside the tree of APP" in done.err


@posix_only
def test_a_copy_of_a_tree_is_left_alone_by_prune_and_verify_alike(installed: Project) -> None:
    """Review: prune kept `cp -a app backup` (its record names `app`) while `verify` called
    it a damaged install of pylock's for good, with a hint that could not fix it."""
    import shutil

    shutil.copytree(installed.into / "app", installed.into / "backup", symlinks=True)
    assert installed.sync().code == 0
    assert (installed.into / "backup" / ".pylock" / "install.json").is_file()
    done = installed.verify()
    assert done.code == 0, done.out + done.err
    assert "backup" not in done.out


@posix_only
@pytest.mark.parametrize(
    "manifest",
    [
        {"links": {"python3": "/x"}, "installs": {"python3": "/x\u0000y"}},
        {"links": {"python9": "/a\u0000b"}},
    ],
)
def test_a_manifest_value_with_a_nul_is_no_traceback(
    tmp_path: Path, manifest: dict[str, Any]
) -> None:
    """Review: resolving the install dirs a manifest named raised ValueError on a NUL."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / MANIFEST).write_text(json.dumps(manifest))
    mine = tmp_path / ".pythons"
    done = sync_links(
        bin_dir, {"python3": mine / "app/bin/python3"}, windows=False, install_dir=mine
    )
    assert done.created == ("python3",)


def _lock_with_default(project: Project, default: Build, *others: Build) -> None:
    from pylock.lockfile import dumps, make_lock
    from tests.syncproject import DIGEST

    pythons = [default.python(default=True), *(b.python() for b in others)]
    lock = make_lock(pythons, config_digest=DIGEST)
    (project.root / "pythons.lock").write_text(dumps(lock), encoding="utf-8")


@posix_only
def test_sync_only_leaves_the_links_of_the_interpreters_it_does_not_sync(
    sync_project: Project, app_a: Build, app_b: Build, tool: Build
) -> None:
    """Bin-dir attack: `sync --only tool --bin-dir B` removed python, python3 and
    python3.12, the links of `app`, still installed (and still locked, out of date)."""
    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    app_links = ["python", "python3", f"python{app_a.minor}"]
    before = {name: os.readlink(bin_dir / name) for name in app_links}
    # app is re-locked to a build not synced yet; tool alone is synced.
    _lock_with_default(sync_project, app_b, tool)
    done = sync_project.sync("--only", "tool", "--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert "removed link" not in done.err
    assert {name: os.readlink(bin_dir / name) for name in app_links} == before
    assert (bin_dir / f"python{tool.minor}").resolve().is_file()
    # A sync of the whole lock moves app's links to its new tree, as before.
    sync_project.serve(app_b)
    whole = sync_project.sync("--bin-dir", str(bin_dir))
    assert whole.code == 0, whole.err
    assert f"removed link {bin_dir / f'python{app_a.minor}'}" in whole.err
    assert (bin_dir / f"python{app_b.minor}").resolve().is_file()


@posix_only
def test_sync_only_removes_the_links_of_a_tree_it_prunes(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """Sync attack: `sync --only app --bin-dir B` removed `tool`, which the lock dropped,
    and left B/python3.11 pointing into the removed tree."""
    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    link = bin_dir / f"python{tool.minor}"
    assert link.resolve().is_file()
    _lock_with_default(sync_project, app_a)
    done = sync_project.sync("--only", "app", "--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert not (sync_project.into / "tool").exists()
    assert f"removed link {link}" in done.err
    assert not link.is_symlink()
    assert (bin_dir / f"python{app_a.minor}").resolve().is_file()


@posix_only
def test_a_failed_sync_still_removes_the_links_of_a_tree_it_pruned(
    sync_project: Project, app_a: Build, app_b: Build, tool: Build
) -> None:
    """Diff attack: with an install failing, links are only added, never removed, and
    the link into the tree the same sync pruned stayed, dangling, for good."""
    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    link = bin_dir / f"python{tool.minor}"
    app_links = {p.name: os.readlink(p) for p in bin_dir.iterdir() if p.is_symlink() and p != link}
    _lock_with_default(sync_project, app_b)  # tool dropped; app_b is not served: it fails
    done = sync_project.sync("--only", "app", "--bin-dir", str(bin_dir))
    assert done.code == 1
    assert not (sync_project.into / "tool").exists()
    assert not link.is_symlink()
    # app's install failed: it is still installed as it was, and keeps its links.
    assert {p.name: os.readlink(p) for p in bin_dir.iterdir() if p.is_symlink()} == app_links


@posix_only
def test_the_linked_line_names_a_few_links_and_counts_the_rest(
    sync_project: Project, app_a: Build, tool: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scale attack: 300 interpreters gave one "linked ..." line of 3,952 characters."""
    import pylock.sync.execute

    monkeypatch.setattr(pylock.sync.execute, "_LINKS_SHOWN", 2)
    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    done = sync_project.sync("--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    created = sorted(p.name for p in bin_dir.iterdir() if p.is_symlink())
    assert len(created) > 2
    (line,) = [x for x in done.err.splitlines() if x.startswith("linked ")]
    assert line.endswith(f" and {len(created) - 2} more into {bin_dir}")
    verbose = sync_project.sync("--bin-dir", str(sync_project.root / "bin2"), "-v")
    assert any(all(name in x for name in created) for x in verbose.err.splitlines())


def test_a_full_disk_under_the_bin_dir_gets_a_hint_about_space(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync attack: ENOSPC in the bin dir said "make it writable"."""
    import errno

    import pylock.sync.bindir

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    sync_project.lock(app_a)
    sync_project.serve(app_a)
    monkeypatch.setattr(pylock.sync.bindir, "sync_links", full)
    done = sync_project.sync("--bin-dir", str(sync_project.root / "bin"))
    assert done.code == 1
    assert "No space left on device" in done.err
    assert "hint: free some disk space, then run the sync again" in done.err


@posix_only
def test_no_prune_keeps_the_links_of_the_interpreters_it_keeps(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """README attack: `sync --no-prune --bin-dir B` kept `tool` installed, unlocked, but
    removed its link from B: the interpreter stayed, its command went off PATH."""
    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    link = bin_dir / f"python{tool.minor}"
    target = os.readlink(link)
    _lock_with_default(sync_project, app_a)
    kept = sync_project.sync("--no-prune", "--bin-dir", str(bin_dir))
    assert kept.code == 0, kept.err
    assert (sync_project.into / "tool").is_dir()
    assert "removed link" not in kept.err
    assert os.readlink(link) == target and link.resolve().is_file()
    # A sync that prunes removes the interpreter and its link together.
    pruned = sync_project.sync("--bin-dir", str(bin_dir))
    assert pruned.code == 0, pruned.err
    assert f"removed link {link}" in pruned.err
    assert not (sync_project.into / "tool").exists() and not link.is_symlink()


@posix_only
def test_two_builds_of_one_version_link_with_only_into_separate_bin_dirs(
    sync_project: Project, app_a: Build
) -> None:
    """Bin-dir attack: the collision's hint ("sync them with --only into separate bin
    dirs") failed with the same collision, for every interpreter of the lock was checked."""
    from tests.syncproject import TAG_B, make_build

    other = make_build("app2", TAG_B, minor=app_a.minor)
    _lock_with_default(sync_project, app_a, other)
    sync_project.serve(app_a, other)
    collided = sync_project.sync("--bin-dir", str(sync_project.root / "both"))
    assert collided.code == 1
    assert f"'app' and 'app2' would both be linked as 'python{app_a.minor}'" in collided.err
    for name in ("app", "app2"):
        bin_dir = sync_project.root / f"bin-{name}"
        done = sync_project.sync("--only", name, "--bin-dir", str(bin_dir))
        assert done.code == 0, done.err
        link = bin_dir / f"python{app_a.minor}"
        assert link.resolve().is_relative_to((sync_project.into / name).resolve())
    # app2's sync left app's bin dir alone, and the other way round.
    assert os.readlink(sync_project.root / "bin-app" / "python").startswith(
        str(sync_project.into / "app")
    )
    assert not (sync_project.root / "bin-app2" / "python").exists()


@pytest.mark.parametrize("mount", ["read-only", "read-write"])
def test_a_bin_dir_that_cannot_be_written_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mount: str
) -> None:
    """Bin-dir attack: a bin dir on a read-only mount was reported as "permission
    denied", which sends the user to chmod, where no permission change helps."""
    import types

    from pylock.errors import PylockError
    from pylock.sync.execute import usable_dir

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == bin_dir else real_access(p, mode)
    )
    flags = getattr(os, "ST_RDONLY", 1) if mount == "read-only" else 0
    monkeypatch.setattr(os, "statvfs", lambda p: types.SimpleNamespace(f_flag=flags), raising=False)
    with pytest.raises(PylockError) as info:
        usable_dir(bin_dir, "--bin-dir", "make it writable")
    why = "read-only file system" if mount == "read-only" else "permission denied"
    assert str(info.value) == f"cannot write to --bin-dir {bin_dir}: {why}"


@posix_only
def test_sync_only_never_takes_a_link_another_interpreter_has(
    sync_project: Project, app_a: Build, tool: Build
) -> None:
    """Attack on the day's diff: re-locked to tool's version, `sync --only app --bin-dir`
    silently re-pointed tool's python3.11 at app; a full sync then failed on the name."""
    from tests.syncproject import TAG_B, make_build

    bin_dir = sync_project.root / "bin"
    _lock_with_default(sync_project, app_a, tool)
    sync_project.serve(app_a, tool)
    assert sync_project.sync("--bin-dir", str(bin_dir)).code == 0
    tools = os.readlink(bin_dir / f"python{tool.minor}")
    # app moves to tool's minor version: both want python3.11.
    moved = make_build("app", TAG_B, minor=tool.minor)
    sync_project.serve(moved)
    _lock_with_default(sync_project, moved, tool)
    done = sync_project.sync("--only", "app", "--bin-dir", str(bin_dir))
    assert done.code == 0, done.err
    assert os.readlink(bin_dir / f"python{tool.minor}") == tools
    assert (
        f"--bin-dir: {bin_dir / f'python{tool.minor}'} links another interpreter of "
        f"{sync_project.into}; left as it is (a sync without --only moves it)"
    ) in done.err
    # The manifest still says what the link is: the next sync sees it as pylock's own.
    again = sync_project.sync("--only", "tool", "--bin-dir", str(bin_dir))
    assert again.code == 0, again.err
    assert os.readlink(bin_dir / f"python{tool.minor}") == tools


@posix_only
def test_sync_only_prunes_its_own_links_however_the_install_dir_is_spelled(
    sync_project: Project, app_a: Build, app_b: Build
) -> None:
    """Attack on the day's diff: linked through a symlinked install directory, the --only
    interpreter's old python3.12 link was kept after it moved to 3.13 (a text match)."""
    real = sync_project.into
    alias = sync_project.root / "alias"
    real.mkdir(parents=True, exist_ok=True)
    alias.symlink_to(real)
    bin_dir = sync_project.root / "bin"
    sync_project.lock(app_a)
    sync_project.serve(app_a, app_b)
    base = ["sync", "--mirror", sync_project.mirror, "--bin-dir", str(bin_dir)]
    assert sync_project.run(*base, "--into", str(alias)).code == 0
    assert (bin_dir / f"python{app_a.minor}").is_symlink()
    sync_project.lock(app_b)
    done = sync_project.run(*base, "--into", str(real), "--only", "app")
    assert done.code == 0, done.err
    assert not os.path.lexists(bin_dir / f"python{app_a.minor}")
    assert (bin_dir / f"python{app_b.minor}").resolve().is_file()


def test_a_bin_dir_for_another_platforms_kind_of_machine_is_refused(
    sync_project: Project, app_a: Build
) -> None:
    """Cross-platform attack: `sync --platform windows-x86_64 --bin-dir B` on Linux wrote
    .cmd launchers naming POSIX paths (they run nowhere), and a bin dir shared with the
    host's syncs lost track of one kind of link or the other."""
    other = "linux-x86_64-gnu" if sys.platform == "win32" else "windows-x86_64"
    sync_project.lock(app_a, platform=other)
    bin_dir = sync_project.root / "bin"
    done = sync_project.sync("--platform", other, "--bin-dir", str(bin_dir))
    assert done.code == 2
    assert f"--bin-dir links interpreters to run on this machine, not {other}'s" in done.err
    assert not bin_dir.exists()
    assert not (sync_project.into / "app").exists()


@posix_only
def test_a_bin_dir_out_of_inodes_names_the_link_not_its_target(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupt attack: `--bin-dir: cannot update BIN: No space left on device
    (INTO/app/bin/python3)` named the link's target, on a disk with room."""
    import errno

    bin_dir = sync_project.root / "bin"
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    real = os.symlink

    def full(target: Any, link: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(link).startswith(os.fspath(bin_dir)):
            raise OSError(
                errno.ENOSPC, "No space left on device", os.fspath(target), None, os.fspath(link)
            )
        real(target, link, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", full)
    failed = sync_project.sync("--bin-dir", str(bin_dir))
    assert failed.code == 1
    assert f"--bin-dir: cannot update {bin_dir}: No space left on device ({bin_dir}/" in failed.err
    assert str(sync_project.into) not in failed.err.split("(", 1)[1].split(")")[0]
