"""No junk left behind (issue 11 §5): the next sync removes what a killed sync left.

A sync killed while it removed an old tree left ``.pylock-trash-NAME-*`` (up to 80 MB),
and one killed while extracting left ``.pylock-tmp-NAME-*``; when the next sync had
nothing to install, nothing removed them. Now every sync removes leftovers whose
interpreter lock is free (their process is dead), even a no-op one, and the no-op fast
path hands over to the full sync when it sees any. Leftovers of a live process, whose
lock it holds, are never touched.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pylock.fastpath
import pylock.sync.install
from pylock.cli import main
from pylock.lockfile import Artifact, LockedPython, dumps, make_lock
from pylock.platforms import host
from pylock.urls import PBS_DOWNLOAD_PREFIX
from pylock.versions import Flavor, Implementation
from tests.archives import exe, file, pbs_install_only, symlink, tar_bytes

HOST = host()
DIGEST = "sha256:" + "0" * 64
PATIENCE = 60.0

pytestmark = [
    pytest.mark.skipif(HOST.pbs_triple is None, reason="no python-build-standalone triple"),
    pytest.mark.skipif(os.name == "nt", reason="POSIX signals and layout"),
]

# Runs the CLI in a subprocess that kills itself with SIGKILL at one chosen moment.
KILLER = r"""
import os, signal, sys
import pylock.fsutil, pylock.sync.install, pylock.sync.records

def die():
    os.kill(os.getpid(), signal.SIGKILL)

moment = sys.argv[1]
if moment == "trash":
    original = pylock.fsutil.remove_tree
    def remove_tree(path):
        if path.name.startswith(".pylock-trash-"):
            # Half-way through deleting the old tree.
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for p in files[: len(files) // 2]:
                p.unlink()
            die()
        original(path)
    pylock.fsutil.remove_tree = remove_tree
elif moment == "record":
    # The new tree is extracted in .pylock-tmp-*, its record not yet written.
    pylock.sync.records.write_record = lambda *args, **kwargs: die()
elif moment.startswith("pause:"):
    # Stop at the same point until the test says go: a live sync mid-install.
    import pathlib, time
    signals = pathlib.Path(moment.removeprefix("pause:"))
    original_write = pylock.sync.records.write_record
    def write_record(*args, **kwargs):
        (signals / "paused").touch()
        while not (signals / "go").exists():
            time.sleep(0.01)
        original_write(*args, **kwargs)
    pylock.sync.records.write_record = write_record
from pylock.cli import main
sys.exit(main(sys.argv[2:]))
"""

# Holds one interpreter's install lock, as a sync busy installing it does, until killed.
HOLDER = r"""
import sys, time
from pylock.fsutil import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


class Project:
    """A project synced from a ``file://`` mirror in the upstream layout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirror = root / "mirror"
        self.into = root / "into"
        self.env = {"PYLOCK_CACHE_DIR": str(root / "cache")}

    def build(self, tag: str, *, files: int = 0, minor: str = "3.12") -> LockedPython:
        entries = [*pbs_install_only(minor)]
        entries += [file(f"python/lib/python{minor}/m/f{i}.py", b"x" * 64) for i in range(files)]
        entries += [
            exe(f"python/bin/tag-{tag}", tag.encode()),
            symlink("python/bin/pytag", f"tag-{tag}"),
        ]
        filename = f"cpython-{minor}.7+{tag}-{HOST.pbs_triple}-install_only_stripped.tar.gz"
        data = tar_bytes(sorted(entries, key=lambda e: e.name))
        data = gzip.compress(data, mtime=0)
        (self.mirror / tag).mkdir(parents=True, exist_ok=True)
        (self.mirror / tag / filename).write_bytes(data)
        artifact = Artifact(
            platform=HOST.key,
            url=f"{PBS_DOWNLOAD_PREFIX}{tag}/{filename.replace('+', '%2B')}",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
        return LockedPython(
            name="app",
            implementation=Implementation.CPYTHON,
            version=f"{minor}.7",
            build=tag,
            flavor=Flavor.INSTALL_ONLY_STRIPPED,
            artifacts=(artifact,),
        )

    def lock(self, *pythons: LockedPython) -> None:
        text = dumps(make_lock(pythons, config_digest=DIGEST))
        (self.root / "pythons.lock").write_text(text, encoding="utf-8")

    def sync(self, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(
            ["--project", str(self.root), "-v", "sync", "--into", str(self.into), *extra],
            environ={**self.env, "PYLOCK_MIRROR": self.mirror.as_uri() + "/"},
        )
        return code, capsys.readouterr().err

    def subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYLOCK_")}
        env.update(self.env, PYLOCK_MIRROR=self.mirror.as_uri() + "/")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def killer_argv(self, moment: str, *extra: str) -> list[str]:
        argv = ["--project", str(self.root), "sync", "--into", str(self.into), *extra]
        return [sys.executable, "-c", KILLER, moment, *argv]

    def killed(self, moment: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.killer_argv(moment, *extra),
            env=self.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )

    def leftovers(self) -> list[str]:
        return sorted(
            p.name
            for p in self.into.iterdir()
            if p.name.startswith(pylock.fastpath.LEFTOVER_PREFIXES)
        )

    def verify(self, capsys: pytest.CaptureFixture[str]) -> int:
        capsys.readouterr()
        return main(["--project", str(self.root), "verify", "--into", str(self.into)])


@pytest.fixture
def junk_project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def tag_of(tree: Path) -> str:
    return os.readlink(tree / "bin" / "pytag").removeprefix("tag-")


def plant_junk(into: Path) -> list[Path]:
    """Leftovers as killed runs make them: partly deleted trees with and without records."""
    planted = []
    for kind, token in (("trash", "0badc0de"), ("tmp", "deadbeef"), ("old", "5ca1ab1e")):
        tree = into / f".pylock-{kind}-app-{token}"
        (tree / "lib").mkdir(parents=True)
        (tree / "lib" / "big.bin").write_bytes(b"\0" * 100_000)
        (tree / "lib" / "ro").mkdir()
        (tree / "lib" / "ro" / "x.py").write_text("x")
        (tree / "lib" / "ro").chmod(0o555)  # extracted trees can hold read-only directories
        planted.append(tree)
    return planted


# -- the cases of the issue ------------------------------------------------------------------


def test_prefixes_known_to_the_fast_path_are_the_installs() -> None:
    assert pylock.fastpath.LEFTOVER_PREFIXES == (
        pylock.sync.install.TMP_PREFIX,
        pylock.sync.install.OLD_PREFIX,
        pylock.sync.install.TRASH_PREFIX,
    )


@pytest.mark.parametrize(
    ("moment", "how"),
    [
        ("trash", "upgrade"),  # killed deleting the old tree after an upgrade
        ("trash", "prune"),  # killed deleting a pruned interpreter
        ("record", "reinstall"),  # killed before the new tree was complete
    ],
)
def test_next_noop_sync_removes_what_a_kill_9_left(
    junk_project: Project, capsys: pytest.CaptureFixture[str], moment: str, how: str
) -> None:
    old = junk_project.build("20990101", files=300)
    new = junk_project.build("20990202")
    junk_project.lock(old)
    assert junk_project.sync(capsys)[0] == 0
    if how == "upgrade":
        junk_project.lock(new)
        killed = junk_project.killed(moment)
    elif how == "prune":
        junk_project.lock()
        killed = junk_project.killed(moment)
    else:
        killed = junk_project.killed(moment, "--reinstall")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    junk = junk_project.leftovers()
    expected = ".pylock-tmp-app-" if moment == "record" else ".pylock-trash-app-"
    assert len(junk) == 1 and junk[0].startswith(expected), junk

    # The next sync has nothing to install, and still cleans up.
    code, err = junk_project.sync(capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"removed {junk[0]}, left by an interrupted pylock run" in err
    assert "0 installed" not in err  # a true no-op: the up-to-date branch
    assert junk_project.leftovers() == []
    if how == "prune":
        assert not (junk_project.into / "app").exists()
    else:
        assert tag_of(junk_project.into / "app") == ("20990202" if how == "upgrade" else "20990101")
        assert junk_project.verify(capsys) == 0


def test_noop_sync_removes_planted_leftovers_and_keeps_the_install(
    junk_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    junk_project.lock(junk_project.build("20990101"))
    assert junk_project.sync(capsys)[0] == 0
    planted = plant_junk(junk_project.into)
    code, err = junk_project.sync(capsys)
    assert code == 0, err
    assert "1 interpreter up to date" in err
    assert not any(p.exists() for p in planted)
    assert junk_project.leftovers() == []
    assert junk_project.verify(capsys) == 0


def make_deep_tree(top: Path, depth: int) -> Path:
    """``top/d/d/.../d`` ``depth`` levels deep (``os.makedirs`` recurses as deep); the
    deepest directory."""
    path = str(top)
    os.mkdir(path)
    for _ in range(depth):
        path = os.path.join(path, "d")
        os.mkdir(path)
    return Path(path)


def test_a_leftover_a_thousand_levels_deep_is_removed_by_the_next_sync(
    junk_project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Left by an earlier pylock that extracted such an archive: shutil.rmtree (Python
    # 3.11 and 3.12) recursed past the interpreter's limit, and every sync failed on it.
    junk_project.lock(junk_project.build("20990101"))
    assert junk_project.sync(capsys)[0] == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    deepest = make_deep_tree(junk_project.into / ".pylock-tmp-app-deadbeef", 1200)
    (deepest / "file").write_text("x")
    (deepest / "link").symlink_to(outside, target_is_directory=True)
    code, err = junk_project.sync(capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert junk_project.leftovers() == []
    assert (outside / "keep").read_text() == "x"  # the link was removed, not followed


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_NOFILE is POSIX")
def test_a_deep_tree_is_removed_with_few_file_descriptors_left(tmp_path: Path) -> None:
    """Review: rmtree keeps a descriptor per level open, so with macOS's default of 256 (or
    on Python 3.13, which no longer recurses) it failed with EMFILE, not RecursionError."""
    deepest = make_deep_tree(tmp_path / "tree", 300)
    (deepest / "file").write_text("x")
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "from pylock.fsutil import remove_tree\n"
        "remove_tree(Path(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "tree")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "tree").exists()


def test_no_prune_still_cleans_junk(
    junk_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    junk_project.lock(junk_project.build("20990101"))
    assert junk_project.sync(capsys)[0] == 0
    plant_junk(junk_project.into)
    assert junk_project.sync(capsys, "--no-prune")[0] == 0
    assert junk_project.leftovers() == []


def test_a_killed_writers_temporary_stamped_in_the_future_is_removed(tmp_path: Path) -> None:
    """Time attack: a `.pylock-state` temporary a killed sync stamped before the clock was
    set back stayed until the clock caught up, and every no-op sync took the slow path
    meanwhile (the fast path hands any such file to the full sync, which kept it)."""
    from pylock.fsutil import remove_stale_temporaries

    state = tmp_path / ".pylock-state"
    ahead = tmp_path / "..pylock-state.0123456789ab.tmp"
    fresh, skewed = tmp_path / "..pylock-state.1.tmp", tmp_path / "..pylock-state.2.tmp"
    for path, when in ((ahead, 2 * 86400), (fresh, 0), (skewed, 3600)):
        path.touch()
        os.utime(path, (time.time() + when, time.time() + when))
    remove_stale_temporaries(state, 60)
    assert not ahead.exists()
    assert fresh.exists()  # a live writer's, maybe
    assert skewed.exists()  # another host's live one, on NFS with a clock ahead of ours


def test_a_caller_under_the_writers_lock_removes_every_temporary(tmp_path: Path) -> None:
    """Attack on the day's diff: the bin dir's cleanup, which holds the lock every writer of
    its manifest takes (so none of its temporaries is live), kept those stamped ahead."""
    from pylock.fsutil import remove_stale_temporaries

    manifest = tmp_path / ".pylock-links.json"
    temporaries = [
        tmp_path / "..pylock-links.json.ab3600.tmp",
        tmp_path / "..pylock-links.json.5.tmp",
    ]
    for path, ahead in zip(temporaries, (3600, 0), strict=True):
        path.touch()
        os.utime(path, (time.time() + ahead, time.time() + ahead))
    remove_stale_temporaries(manifest, 0)
    assert not any(path.exists() for path in temporaries)


def test_foreign_and_odd_names_are_left_alone(
    junk_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    junk_project.lock(junk_project.build("20990101"))
    assert junk_project.sync(capsys)[0] == 0
    keep = [
        junk_project.into / "mine",  # the user's own directory
        junk_project.into / ".pylock-tmp-",  # no name at all
        junk_project.into / ".pylock-trash-..-x",  # not an interpreter name
    ]
    for path in keep:
        path.mkdir()
    assert junk_project.sync(capsys)[0] == 0
    assert all(p.is_dir() for p in keep)


# -- the fast path -----------------------------------------------------------------------------


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_fast_path_hands_junk_to_the_full_sync_then_is_fast_again(junk_project: Project) -> None:
    junk_project.lock(junk_project.build("20990101"))
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "pylock",
        "--project",
        str(junk_project.root),
        "sync",
        "--into",
        str(junk_project.into),
    ]

    def run() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command,
            env=junk_project.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )
        assert done.returncode == 0, done.stderr
        return done

    run()  # installs and records the fast path's state
    assert "pylock.cli" not in _imported(run().stderr)  # the fast path
    planted = plant_junk(junk_project.into)
    cleaning = run()
    assert "pylock.cli" in _imported(cleaning.stderr)  # the full sync
    assert "1 interpreter up to date" in cleaning.stderr
    assert not any(p.exists() for p in planted)
    assert "pylock.cli" not in _imported(run().stderr)  # and fast again


# -- concurrency -------------------------------------------------------------------------------


def test_leftovers_of_a_live_process_stay_until_it_dies(
    junk_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    junk_project.lock(junk_project.build("20990101"))
    assert junk_project.sync(capsys)[0] == 0
    busy = junk_project.into / ".pylock-tmp-app-feedface"
    (busy / "bin").mkdir(parents=True)
    (busy / "bin" / "python3.12").write_text("half-extracted")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(junk_project.into / ".pylock-locks" / "app.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        code, err = junk_project.sync(capsys)
        assert code == 0, err
        # Neither waits for the other process, nor touches its work.
        assert time.monotonic() - started < PATIENCE / 2
        assert (busy / "bin" / "python3.12").read_text() == "half-extracted"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=PATIENCE)
    # kill -9 released its lock: its tree is now junk, and the next sync removes it.
    code, err = junk_project.sync(capsys)
    assert code == 0, err
    assert not busy.exists()
    assert junk_project.verify(capsys) == 0


def test_a_concurrent_noop_sync_leaves_a_live_install_alone(
    junk_project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A real second sync, paused with its new tree extracted and its record unwritten."""
    junk_project.lock(junk_project.build("20990101", files=50))
    assert junk_project.sync(capsys)[0] == 0
    signals = tmp_path / "signals"
    signals.mkdir()
    busy = subprocess.Popen(
        junk_project.killer_argv(f"pause:{signals}", "--reinstall"),
        env=junk_project.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + PATIENCE
        while not (signals / "paused").exists():
            assert busy.poll() is None, busy.communicate()
            assert time.monotonic() < deadline, "the reinstall never reached its record"
            time.sleep(0.01)
        in_progress = junk_project.leftovers()
        assert len(in_progress) == 1 and in_progress[0].startswith(".pylock-tmp-app-")
        code, err = junk_project.sync(capsys)  # a no-op for this process
        assert code == 0, err
        assert junk_project.leftovers() == in_progress
    finally:
        (signals / "go").touch()
        _, err = busy.communicate(timeout=PATIENCE)
    assert busy.returncode == 0, err
    assert junk_project.leftovers() == []
    assert junk_project.verify(capsys) == 0
