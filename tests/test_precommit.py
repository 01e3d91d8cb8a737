"""The pre-commit hooks (``.pre-commit-hooks.yaml``), run by pre-commit itself.

``pre-commit try-repo`` installs this checkout the way a user's pre-commit installs the
published repository (a virtualenv, then ``pip install .``; uncommitted changes included),
so this also proves that ``pip install .`` of the checkout gives a working ``pylock``.
Building that environment needs PyPI, which is why the end-to-end test is marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pylock.cli import main
from pylock.project import check_lock

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras")

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def hooks() -> dict[str, dict[str, object]]:
    document = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(document, list)
    return {hook["id"]: hook for hook in document}


def test_hooks_are_defined_as_documented() -> None:
    defined = hooks()
    assert set(defined) == {"pylock-lock-check", "pylock-lock"}
    for hook in defined.values():
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False
        pattern = re.compile(str(hook["files"]))
        assert pattern.search("pythons.toml") and pattern.search("pythons.lock")
        assert not pattern.search("pythons.toml.bak")
        assert not pattern.search("other/pythons.lock")  # the hook runs at the root
        assert not pattern.search("setup.py")
    assert defined["pylock-lock-check"]["args"] == ["lock", "--check"]
    assert defined["pylock-lock"]["args"] == ["lock", "--offline"]


@pytest.mark.parametrize("hook", ["pylock-lock-check", "pylock-lock"])
def test_hook_commands_parse(hook: str, capsys: pytest.CaptureFixture[str]) -> None:
    # What pre-commit runs, minus the console script: a usage error would exit 2.
    spec = hooks()[hook]
    assert spec["entry"] == "pylock"
    args = [str(a) for a in spec["args"]]  # type: ignore[attr-defined]
    assert main(["--project", "/nonexistent-project", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pylock: error: ")
    assert "Traceback" not in err


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_try_repo_fails_on_a_stale_lock_and_passes_on_a_fresh_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pre_commit = Path(sys.executable).with_name("pre-commit")
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (it is in the test extras)")
    repo = tmp_path / "project"
    repo.mkdir()
    config = repo / "pythons.toml"
    config.write_text('[python.app]\nversion = "3.12"\n', encoding="utf-8")
    assert main(["--project", str(repo), "lock", "--offline"]) == 0
    capsys.readouterr()
    # The suite's clean environment (conftest) already names a git author and committer.
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("VIRTUAL_ENV", None)
    git(repo, "init", "-q")
    git(repo, "add", "pythons.toml", "pythons.lock")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "lock")

    def try_repo(*hook: str) -> subprocess.CompletedProcess[str]:
        # Two runs, not one per case: each installs the checkout in a fresh environment.
        return subprocess.run(
            [str(pre_commit), "try-repo", str(ROOT), *hook, "--all-files", "--color", "never"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    config.write_text('[python.app]\nversion = "3.11"\n', encoding="utf-8")
    stale = try_repo("pylock-lock-check")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "Failed" in stale.stdout
    assert "pylock: error: pythons.lock is out of date with pythons.toml" in stale.stdout
    assert "Traceback" not in stale.stdout + stale.stderr

    # Both hooks, as a project configures them: the fixing one re-locks (offline) and stops
    # the commit so that the new lock is added; the check, run after it, passes.
    before = (repo / "pythons.lock").read_text(encoding="utf-8")
    fixed = try_repo()
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr
    assert re.search(r"re-lock pythons\.lock\.+Failed", fixed.stdout), fixed.stdout
    assert "files were modified by this hook" in fixed.stdout
    assert re.search(r"pythons\.lock is up to date with pythons\.toml\.+Passed", fixed.stdout)
    after = (repo / "pythons.lock").read_text(encoding="utf-8")
    assert after != before and 'version = "3.11.' in after
    assert check_lock(config, repo / "pythons.lock") is None
