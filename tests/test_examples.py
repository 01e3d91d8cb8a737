"""The committed example locks are exactly what `pylock lock --upgrade` produces today."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pylock.cli import main
from pylock.config import load_config
from pylock.lockfile import loads
from pylock.resolve import lock_is_fresh

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["basic", "multi-platform"])
def test_example_relocks_to_identical_bytes(name: str, tmp_path: Path) -> None:
    source = EXAMPLES / name
    project = tmp_path / name
    shutil.copytree(source, project)
    committed = (source / "pythons.lock").read_bytes()
    assert main(["--project", str(project), "-q", "lock", "--upgrade"]) == 0
    assert (project / "pythons.lock").read_bytes() == committed
    assert main(["--project", str(project), "-q", "lock", "--check"]) == 0


def test_multi_platform_example_covers_what_it_promises() -> None:
    project = EXAMPLES / "multi-platform"
    config = load_config(project / "pythons.toml")
    lock = loads((project / "pythons.lock").read_text(encoding="utf-8"))
    assert lock_is_fresh(config, lock)
    assert len(lock.pythons) >= 4
    assert len({a.platform for p in lock.pythons for a in p.artifacts}) >= 5
    kinds = {(str(p.implementation), str(p.variant)) for p in lock.pythons}
    assert ("pypy", "default") in kinds
    nogil = lock.get("nogil")
    assert nogil is not None and nogil.version.startswith("3.14.")
    assert str(nogil.variant) == "freethreaded"
    debug = lock.get("debug")
    assert debug is not None and str(debug.flavor) == "full"


def test_a_lock_edited_by_hand_fails_the_check_and_is_locked_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: another sha256 for a build the bundled index knows passed `lock --check`."""
    import re

    project = tmp_path / "basic"
    shutil.copytree(EXAMPLES / "basic", project)
    committed = (project / "pythons.lock").read_text(encoding="utf-8")
    edited = re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "' + "f" * 64 + '"', committed, count=1)
    (project / "pythons.lock").write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert main(["--project", str(project), "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "pythons.lock does not match the index: " in err
    assert "the archive's sha256 is not the one upstream published for cpython" in err
    assert main(["--project", str(project), "-q", "lock"]) == 0
    assert (project / "pythons.lock").read_text(encoding="utf-8") == committed
    assert main(["--project", str(project), "-q", "lock", "--check"]) == 0
