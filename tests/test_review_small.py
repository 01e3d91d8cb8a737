"""Small defects a review attack found: an undatable build tag in ``outdated``, and a lock
entry locked for no platform. (The workflow's are in test_examples_ci.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pylock.cli import main
from pylock.errors import LockFileError
from pylock.lockfile import Artifact, LockedPython, dumps, loads, make_lock, salvage
from pylock.outdated import find_outdated, format_text
from pylock.versions import Flavor
from tests.indexdata import index_of, locked_python, pbs

LINUX = "linux-x86_64-gnu"
DIGEST = "sha256:" + "0" * 64


def _artifact(name: str) -> Artifact:
    return Artifact(platform=LINUX, url=f"https://example.invalid/{name}.tar.gz", sha256="ab" * 32)


def _python(name: str, version: str, build: str, *, platforms: bool = True) -> LockedPython:
    artifacts = (_artifact(name),) if platforms else ()
    return locked_python(name, version, build, artifacts, flavor=Flavor.INSTALL_ONLY_STRIPPED)


def _lock_text(*pythons: LockedPython) -> str:
    return dumps(make_lock(pythons, config_digest=DIGEST))


def _pylock(project: Path, *args: str) -> int:
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache")}
    return main(["--project", str(project), *args], environ=environ)


# -- 1. outdated: a build tag pylock cannot date -----------------------------------------------


def test_an_undated_locked_build_is_not_called_older_than_upstreams() -> None:
    index = index_of(pbs("3.13.5", "20250723", LINUX), pbs("3.13.9", "20251014", LINUX))
    lock = make_lock([_python("app", "3.13.5", "corp1")], config_digest=DIGEST)
    [entry] = find_outdated(lock, index)
    assert entry.newer_build is None
    # A newer version needs no tag to compare, and is still offered.
    assert entry.newer_version is not None and entry.newer_version.version == "3.13.9"
    assert format_text([entry]) == ["app: cpython 3.13.5+corp1 -> 3.13.9+20251014 (newer version)"]


def test_an_undated_locked_build_of_the_newest_version_is_up_to_date() -> None:
    index = index_of(pbs("3.13.5", "20250723", LINUX))
    lock = make_lock([_python("app", "3.13.5", "corp1")], config_digest=DIGEST)
    [entry] = find_outdated(lock, index)
    assert entry.up_to_date


def test_a_dated_tag_from_the_index_still_orders_a_custom_build() -> None:
    """The index may know when a custom tag was published: then it is compared as usual."""
    index = index_of(
        pbs("3.13.5", "20250723", LINUX),
        pbs("3.13.5", "corp1", LINUX),
        tag_dates={"corp1": "2025-07-01"},
    )
    lock = make_lock([_python("app", "3.13.5", "corp1")], config_digest=DIGEST)
    [entry] = find_outdated(lock, index)
    assert entry.newer_build is not None and entry.newer_build.build == "20250723"


def test_cli_outdated_offline_does_not_offer_a_build_for_an_undated_tag(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bundled += [pbs("3.13.5", "20250723", LINUX)]
    (project / "pythons.lock").write_text(_lock_text(_python("app", "3.13.5", "corp1")))
    assert _pylock(project, "outdated", "--offline") == 0
    out = capsys.readouterr().out
    assert "newer build" not in out
    assert "app: cpython 3.13.5+corp1: up to date" in out


# -- 2. a lock entry locked for no platform -----------------------------------------------------


def test_the_strict_reader_refuses_an_entry_with_no_artifacts() -> None:
    text = _lock_text(
        _python("app", "3.13.9", "20251014"), _python("zzz", "3.12.1", "20240107", platforms=False)
    )
    assert "artifacts = []" in text
    with pytest.raises(LockFileError) as caught:
        loads(text)
    [problem] = caught.value.problems
    assert problem.path == "python[1].artifacts"
    assert problem.message == (
        "empty: 'zzz' is locked for no platform (expected an artifact per platform)"
    )


def test_an_entry_with_no_artifacts_is_not_salvaged() -> None:
    text = _lock_text(
        _python("app", "3.13.9", "20251014"), _python("zzz", "3.12.1", "20240107", platforms=False)
    )
    assert "artifacts = []" in text
    assert [p.name for p in salvage(text)] == ["app"]


def test_cli_diff_refuses_an_entry_with_no_artifacts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = project / "old.lock"
    old.write_text(_lock_text(_python("app", "3.13.9", "20251014")))
    new = project / "new.lock"
    new.write_text(
        _lock_text(
            _python("app", "3.13.9", "20251014"),
            _python("zzz", "3.12.1", "20240107", platforms=False),
        )
    )
    assert _pylock(project, "diff", str(old), str(new)) == 1
    out, err = capsys.readouterr()
    assert "added" not in out
    assert "new.lock: python[1].artifacts: empty: 'zzz' is locked for no platform" in err
    assert "Traceback" not in err


def test_lock_resolves_an_entry_with_no_artifacts_afresh(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bundled += [pbs("3.13.9", "20251014", LINUX), pbs("3.12.1", "20240107", LINUX)]
    (project / "pythons.toml").write_text(
        f'[python.app]\nversion = "3.13"\nplatforms = ["{LINUX}"]\n'
        f'[python.zzz]\nversion = "3.12"\nplatforms = ["{LINUX}"]\n'
    )
    (project / "pythons.lock").write_text(
        _lock_text(
            _python("app", "3.13.9", "20251014"),
            _python("zzz", "3.12.1", "20240107", platforms=False),
        )
    )
    assert _pylock(project, "lock") == 0
    err = capsys.readouterr().err
    assert "python[1].artifacts: empty: 'zzz' is locked for no platform" in err
    assert "kept app (cpython 3.13.9+20251014)" in err
    zzz = loads((project / "pythons.lock").read_text()).get("zzz")
    assert zzz is not None and zzz.platforms == (LINUX,)
