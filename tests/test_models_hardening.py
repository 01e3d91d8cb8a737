"""Issue 12, "one model per concept": one definition of each thing, and the edges it keeps.

- every user-facing error class lives in ``pylock.errors``;
- ``pylock.index`` never imports ``pylock.resolve`` (no cycle), and the direct-URL
  locker is the use case ``pylock.direct``;
- one URL-to-file-name helper, one TOML type describer, one pair of file-name constants,
  one change model (``pylock.diff``).
"""

from __future__ import annotations

import ast
import datetime
import hashlib
import importlib
import inspect
import os
import pkgutil
import re
from pathlib import Path

import pytest

import pylock
from pylock import errors
from pylock.config import loads_config
from pylock.errors import ConfigError, LockFileError, PylockError, describe_toml_value
from pylock.fsutil import CONFIG_FILENAME, LOCK_FILENAME
from pylock.lockfile import Artifact, loads
from pylock.platforms import host
from pylock.urls import filename_from_url, redact
from pylock.versions import ArchiveFormat
from tests import archives
from tests.projects import run_pylock

PACKAGE = Path(pylock.__file__).parent
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(pylock.__path__, prefix="pylock.")
    if m.name not in ("pylock.__main__", "pylock.entry")
)
LOCK_HEAD = 'lock-version = 1\ncreated-by = "pylock 0.1.0"\nconfig-digest = "sha256:' + "0" * 64


def imports_of(path: Path) -> set[str]:
    """Every ``pylock...`` module a source file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] == "pylock"}


# -- one place for errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_every_user_facing_error_is_defined_in_errors(name: str) -> None:
    module = importlib.import_module(name)
    strays = [
        cls.__name__
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, PylockError) and cls.__module__ != "pylock.errors"
    ]
    assert strays == []


def test_the_moved_errors_are_pylock_errors_with_their_attributes() -> None:
    refused = errors.RefusedUrlError("refusing plain http URL", url="http://x/a")
    assert isinstance(refused, errors.DownloadError) and refused.url == "http://x/a"
    assert issubclass(errors.MirrorError, PylockError)
    assert issubclass(errors.GitError, PylockError)
    for old_home, name in (("pylock.mirror", "MirrorError"), ("pylock.diff", "GitError")):
        assert getattr(importlib.import_module(old_home), name) is getattr(errors, name)


# -- no cycle between index and resolve; the direct-URL locker is a use case ---------------


def test_index_never_imports_resolve_or_the_use_cases() -> None:
    upper = ("pylock.resolve", "pylock.direct", "pylock.project", "pylock.cli")
    for path in sorted((PACKAGE / "index").glob("*.py")):
        bad = {m for m in imports_of(path) if m.startswith(upper)}
        assert bad == set(), path.name


def test_resolve_imports_only_the_pure_parts_of_index() -> None:
    index_imports = {m for m in imports_of(PACKAGE / "resolve.py") if m.startswith("pylock.index")}
    assert index_imports
    assert {m.split(".")[2] for m in index_imports} <= {"model", "names"}


def test_live_keeps_no_direct_url_locker() -> None:
    live = importlib.import_module("pylock.index.live")
    direct = importlib.import_module("pylock.direct")
    for name in ("make_direct_resolver", "describe_direct", "direct_version", "read_python_json"):
        assert not hasattr(live, name)
        assert callable(getattr(direct, name))


def test_resolve_has_one_change_model_left_in_diff() -> None:
    resolve = importlib.import_module("pylock.resolve")
    for name in ("Change", "Resolution", "diff_locks"):
        assert not hasattr(resolve, name)


# -- one URL-to-file-name helper -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://h/d/20251014/cpython-3.13.9%2B20251014-x.tar.gz",
            "cpython-3.13.9+20251014-x.tar.gz",
        ),
        ("https://h/a.tar.gz?sig=SECRET&X-Amz-Credential=k", "a.tar.gz"),
        ("https://user:pw@h/a.zip#frag", "a.zip"),
        ("file:///srv/mirror/pypy3.11-v7.3.20-linux64.tar.bz2", "pypy3.11-v7.3.20-linux64.tar.bz2"),
        ("https://h/dir/", ""),
        ("https://h", ""),
        ("", ""),
        ("https://h/a%2Fb.tar.gz", "a/b.tar.gz"),  # decoded once, as every caller did
        ("https://h/" + "x" * 100_000 + ".tar.gz", "x" * 100_000 + ".tar.gz"),
    ],
)
def test_filename_from_url(url: str, expected: str) -> None:
    assert filename_from_url(url) == expected


def test_artifact_filename_and_lock_validation_use_the_one_helper() -> None:
    url = "https://h/d/cpython-3.13.9%2B20251014-x.tar.gz?token=SECRET"
    artifact = Artifact(platform="linux-x86_64-gnu", url=url, sha256="a" * 64)
    assert artifact.filename == filename_from_url(url) == "cpython-3.13.9+20251014-x.tar.gz"
    # A lock whose URL names no archive says so, and never shows the secret.
    text = (
        LOCK_HEAD + '"\n\n[[python]]\nname = "app"\nimplementation = "cpython"\n'
        'version = "3.13.9"\nvariant = "default"\n\n[[python.artifacts]]\n'
        'platform = "linux-x86_64-gnu"\nurl = "https://h/d/?token=SECRET"\n'
        f'sha256 = "{"a" * 64}"\n'
    )
    with pytest.raises(LockFileError) as info:
        loads(text)
    assert "SECRET" not in str(info.value)
    assert any(p.path == "python[0].artifacts[0].url" for p in info.value.problems)


# -- one TOML type describer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean true"),
        (False, "boolean false"),
        (5, "integer 5"),
        (-1, "integer -1"),
        (3.1, "float 3.1"),
        (float("nan"), "float nan"),
        ("x", "string 'x'"),
        ("y" * 1000, "string '" + "y" * 37 + "...'"),
        ([1], "an array"),
        ({}, "a table"),
        (datetime.datetime(2025, 1, 1, 0, 0), "a date-time"),
        (datetime.date(2025, 1, 1), "a date"),
        (datetime.time(1, 2), "a time"),
    ],
)
def test_describe_toml_value(value: object, expected: str) -> None:
    assert describe_toml_value(value) == expected


def test_config_and_lock_word_a_wrong_type_alike() -> None:
    with pytest.raises(ConfigError) as config_info:
        loads_config("[python.app]\nversion = 5\n")
    lock_text = LOCK_HEAD + '"\n\n[[python]]\nname = 5\n'
    with pytest.raises(LockFileError) as lock_info:
        loads(lock_text)
    config_problem = {p.path: p.message for p in config_info.value.problems}["python.app.version"]
    lock_problem = {p.path: p.message for p in lock_info.value.problems}["python[0].name"]
    assert config_problem.startswith("expected a string, got integer 5")
    assert lock_problem == "expected a string, got integer 5"


def test_long_secrets_in_a_wrong_type_are_cut_not_echoed_whole() -> None:
    secret = "https://user:hunter2@h/" + "z" * 200
    with pytest.raises(ConfigError) as info:
        loads_config(f'[python.app]\nversion = "3.13"\nprereleases = "{secret}"\n')
    assert "hunter2" not in redact(str(info.value))
    assert "z" * 100 not in str(info.value)


# -- the file names, defined once ------------------------------------------------------------


def test_project_file_names_are_defined_once() -> None:
    assert (CONFIG_FILENAME, LOCK_FILENAME) == ("pythons.toml", "pythons.lock")
    definitions = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("CONFIG_FILENAME", "LOCK_FILENAME")
                for t in node.targets
            ):
                definitions.append(path.name)
    assert definitions == ["fsutil.py", "fsutil.py"]


# -- the direct-URL locker, run as a user runs it --------------------------------------------


def direct_url_project(tmp_path: Path, archive_name: str) -> tuple[Path, Path]:
    """A project whose one entry is the ``file://`` URL of a PBS-style archive, and the archive."""
    project = tmp_path / "project"
    project.mkdir()
    archive = archives.write_archive(
        tmp_path / archive_name, archives.pbs_install_only("3.12"), ArchiveFormat.TAR_GZ
    )
    (project / CONFIG_FILENAME).write_text(
        f'[python.app]\nurl = "{archive.as_uri()}"\nplatforms = ["host"]\n', encoding="utf-8"
    )
    return project, archive


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
def test_lock_of_a_direct_url_records_its_hash_size_and_version(tmp_path: Path) -> None:
    project, archive = direct_url_project(
        tmp_path, "cpython-3.12.9+corp-x86_64-unknown-linux-gnu-install_only.tar.gz"
    )
    result = run_pylock(project, "lock")
    assert result.returncode == 0, result.stderr
    lock = loads((project / LOCK_FILENAME).read_text(encoding="utf-8"))
    (entry,) = lock.pythons
    (artifact,) = entry.artifacts
    data = archive.read_bytes()
    assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert artifact.size == len(data)
    assert artifact.platform == host().key
    assert entry.version == "3.12.9"


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
def test_lock_of_a_direct_url_without_a_version_ends_with_one_error_line(tmp_path: Path) -> None:
    project, _ = direct_url_project(tmp_path, "corp-python-install_only.tar.gz")
    result = run_pylock(project, "lock")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "pylock: error: python.app: cannot tell which Python version" in result.stderr
    assert 'version = "3.12.9"' in result.stderr  # the hint says what to write
    assert not (project / LOCK_FILENAME).exists()


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
@pytest.mark.parametrize(
    ("name", "example"),
    [
        ("pypy3.10-v7.3.17-linux64.tar.gz", 'implementation = "pypy" and version = "3.10.Z"'),
        ("graalpy-24.1.1-linux-amd64.tar.gz", 'implementation = "graalpy"'),
    ],
)
def test_a_direct_url_named_as_another_implementation_is_not_locked_as_cpython(
    tmp_path: Path, name: str, example: str
) -> None:
    """UX attack: a PyPy archive's URL without `implementation` locked as "cpython 7.3.17",
    the PyPy release taken for CPython's version."""
    project, _ = direct_url_project(tmp_path, name)
    result = run_pylock(project, "lock")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"pylock: error: python.app: {name} is named as a" in result.stderr
    assert example in result.stderr
    assert not (project / LOCK_FILENAME).exists()


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
def test_the_hint_for_a_pypy_url_locked_as_cpython_leads_to_a_lock(tmp_path: Path) -> None:
    """UX: the hint said `version = "3.10"`, which a url entry then refuses (it takes the
    exact version). Followed as written, the hint must lead to a lock."""
    stem = "pypy3.10-v7.3.17-linux64"
    project, archive = direct_url_project(tmp_path, f"{stem}.tar.gz")
    archives.write_archive(archive, archives.pypy(stem), ArchiveFormat.TAR_GZ)
    first = run_pylock(project, "lock")
    assert first.returncode == 1, first.stderr
    suggested = re.search(r'implementation = "pypy" and version = "([^"]+)"', first.stderr)
    assert suggested is not None, first.stderr
    config = project / CONFIG_FILENAME
    text = config.read_text(encoding="utf-8")
    version = suggested[1].replace("Z", "16")
    config.write_text(f'{text}implementation = "pypy"\nversion = "{version}"\n', encoding="utf-8")
    second = run_pylock(project, "lock")
    assert second.returncode == 0, second.stderr
    assert 'version = "3.10.16"' in (project / LOCK_FILENAME).read_text(encoding="utf-8")


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
@pytest.mark.parametrize(
    ("version", "pinned"), [("banana", None), ("3.13.9+evil", None), ("banana", "3.13.9")]
)
def test_a_full_archive_whose_python_json_names_no_release_is_refused(
    tmp_path: Path, version: str, pinned: str | None
) -> None:
    """Upstream attack: PYTHON.json's "python_version": "banana" was an InvalidVersion
    traceback with `version` in pythons.toml, and without it a lock pylock could not read
    back ("run `pylock lock`", which wrote it again)."""
    import json

    project = tmp_path / "project"
    project.mkdir()
    entries = archives.pbs_full()
    entries[0] = archives.file(
        "python/PYTHON.json", json.dumps({"version": "8", "python_version": version}).encode()
    )
    archive = archives.write_archive(
        tmp_path / "corp-python-full.tar.zst", entries, ArchiveFormat.TAR_ZST
    )
    extra = f'version = "{pinned}"\n' if pinned else ""
    (project / CONFIG_FILENAME).write_text(
        f'[python.app]\nurl = "{archive.as_uri()}"\nplatforms = ["host"]\n{extra}', encoding="utf-8"
    )
    result = run_pylock(project, "lock")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"its PYTHON.json names the version {version!r}" in result.stderr
    assert not (project / LOCK_FILENAME).exists()


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_an_empty_lock_is_said_to_be_empty(text: str) -> None:
    """New-user walk-through: an empty pythons.lock (a `touch`, a truncation) was reported
    as `lock-version: missing`, as if one key were missing from a lock."""
    with pytest.raises(LockFileError) as info:
        loads(text)
    assert info.value.message == "pythons.lock: empty"
    assert info.value.hint is not None and "pylock lock" in info.value.hint
