"""The release: `python -m build` makes an sdist and a wheel that `twine check` accepts, the sdist
carries what the test suite needs, and the wheel installs offline into a fresh virtualenv and
runs there."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import platformdirs
import pytest

import pylock
from pylock.errors import PylockError
from tests.indexdata import snapshot_script

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "pythons-lock"
SNAPSHOT = "pylock/index/snapshot.json.gz"
#: What the sdist must carry besides the package: the suite, its data, and the project files.
SDIST_DIRS = ("tests", "schema", "examples", "scripts", "bench", "data")
#: (The action and the hook: their tests read them.)
SDIST_FILES = (
    "LICENSE",
    "CHANGELOG.md",
    "README.md",
    "pyproject.toml",
    "MANIFEST.in",
    "action.yml",
    ".pre-commit-hooks.yaml",
)
#: Never part of a build: local state, caches and build output.
IGNORED = (".git", ".venv", "build", "dist", "wheelhouse", ".pythons", "__pycache__")
IGNORED_SUFFIXES = (".pyc", ".egg-info")
CACHE_NAMES = (".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")
#: Dependency wheels kept between runs; computed at import, before any fixture changes HOME.
WHEELHOUSES = Path(platformdirs.user_cache_dir("pylock-tests", appauthor=False)) / "wheelhouse"


def _ignored(path: Path) -> bool:
    return any(
        part in IGNORED or part in CACHE_NAMES or part.endswith(IGNORED_SUFFIXES)
        for part in path.parts
    )


def source_files(root: Path) -> list[str]:
    """The files of the checkout a release is built from, relative and in POSIX form."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not _ignored(p.relative_to(root))
    )


def requirements() -> list[str]:
    """pylock's dependencies and its build requirements, as pyproject.toml lists them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted([*project["project"]["dependencies"], *project["build-system"]["requires"]])


def offline_env(*find_links: Path) -> dict[str, str]:
    """The environment for pip with no index at all: only the given directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=" ".join(str(p) for p in find_links),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
    )
    return env


def run(*args: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, **options
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Wheels of every dependency and build requirement, for this interpreter and platform.

    Filled once with `pip download` (the only step that uses the network), then reused: its
    name is a digest of what it holds, so a dependency change makes a new one.
    """
    wanted = requirements()
    key = json.dumps([wanted, sys.version_info[:2], sysconfig.get_platform()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    final = WHEELHOUSES / digest
    if (final / "requirements.json").is_file():
        return final
    WHEELHOUSES.mkdir(parents=True, exist_ok=True)
    partial = WHEELHOUSES / f".{digest}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    done = subprocess.run(
        [*download, "--dest", str(partial), *wanted], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.skip(f"cannot fill the wheelhouse from the package index: {done.stderr[-500:]}")
    (partial / "requirements.json").write_text(json.dumps(wanted))
    try:
        partial.rename(final)
    except OSError:  # another run finished first; its copy is as good
        shutil.rmtree(partial, ignore_errors=True)
    return final


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Path]:
    """The sdist and the wheel, built offline from a copy of the checkout."""
    work = tmp_path_factory.mktemp("release")
    source = work / "source"
    for name in source_files(ROOT):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = work / "dist"
    run(sys.executable, "-m", "build", "--outdir", out, source, env=offline_env(wheelhouse))
    yield out


def assert_same_snapshot(made: bytes, shipped: bytes) -> None:
    """Byte for byte; zlib-ng (Fedora, ...) compresses differently, so there only the
    decompressed bytes can be compared."""
    assert gzip.decompress(made) == gzip.decompress(shipped)
    if "zlib-ng" not in zlib.ZLIB_RUNTIME_VERSION:
        assert made == shipped


# -- the snapshot's source data, in the repository --------------------------------------------


def test_the_generator_rebuilds_the_shipped_snapshot_from_the_repository_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = snapshot_script()
    assert Path(script.DEFAULT_UV_JSON) == ROOT / "data" / "uv-download-metadata.json.gz"
    out = tmp_path / "snapshot.json.gz"
    assert script.main(["--output", str(out)]) == 0
    assert_same_snapshot(out.read_bytes(), (ROOT / SNAPSHOT).read_bytes())
    assert script.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_the_source_data_is_stored_deterministically() -> None:
    """gzip with mtime 0 and no file name: re-compressing it changes nothing."""
    data = (ROOT / "data" / "uv-download-metadata.json.gz").read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\x00\x00\x00\x00"
    document = json.loads(gzip.decompress(data))
    assert len(document) > 5000
    assert_same_snapshot(gzip.compress(gzip.decompress(data), compresslevel=9, mtime=0), data)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "Expecting value"),
        (gzip.compress(b'{"k": 1}', mtime=0)[:-9], "damaged gzip data"),
        (b"\x1f\x8b" + b"\x00" * 40, "damaged gzip data"),
        (gzip.compress(b"\xff\xfe not utf-8", mtime=0), "codec can't decode"),
        (gzip.compress(b"[1, 2]", mtime=0), "uv-download-metadata.json"),
        (gzip.compress(b'{"k": {"url": "GITHUB_TOKEN=ghp_secret"}}', mtime=0), "entry 'k'"),
    ],
)
def test_damaged_source_data_gives_one_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    source = tmp_path / "uv-download-metadata.json.gz"
    source.write_bytes(content)
    out = tmp_path / "snapshot.json.gz"
    assert snapshot_script().main(["--uv-json", str(source), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("build_snapshot: error: ") and expected in err, err
    assert "Traceback" not in err and "ghp_secret" not in err
    assert not out.exists()


def test_damaged_gzip_names_how_to_recover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "downloads.json.gz"
    source.write_bytes(gzip.compress(b"{}", mtime=0)[:12])
    assert snapshot_script().main(["--uv-json", str(source), "--output", str(tmp_path / "o")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"build_snapshot: error: {source}: damaged gzip data "
        "(Compressed file ended before the end-of-stream marker was reached)",
        "build_snapshot: hint: fetch the file again",
    ]


def test_endless_source_data_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """A gzip bomb stops at the limit instead of filling memory."""
    source = tmp_path / "bomb.json.gz"
    with gzip.open(source, "wb") as bomb:
        for _ in range(64):
            bomb.write(b" " * (1 << 20))
    script = snapshot_script()
    with pytest.raises(PylockError, match="more than 1048576 bytes") as info:
        script.read_source(source, limit=1 << 20)
    assert info.value.message.startswith(str(source))
    assert script.read_source(source, limit=64 << 20) == b" " * (64 << 20)


# -- the release ------------------------------------------------------------------------------


def _only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_isal_is_required_only_where_it_has_wheels() -> None:
    """Field report: `pip install pythons-lock` failed on Windows on Arm and 32-bit
    Windows, where isal has no wheel and its sources need nasm (an x86 assembler)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (isal,) = [r for r in map(Requirement, project["dependencies"]) if r.name == "isal"]
    assert isal.marker is not None

    def wanted(machine: str, implementation: str = "CPython") -> bool:
        environment = {
            "platform_machine": machine,
            "platform_python_implementation": implementation,
        }
        return isal.marker.evaluate(environment)  # type: ignore[union-attr]

    assert all(map(wanted, ["x86_64", "AMD64", "aarch64", "arm64"]))
    assert not any(map(wanted, ["ARM64", "x86", "i686", "ppc64le", "s390x", "armv7l"]))
    assert not wanted("x86_64", "PyPy")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_build_twine_check_and_contents(dist: Path) -> None:
    version = pylock.__version__
    sdist = _only(dist, "*.tar.gz")
    wheel = _only(dist, "*.whl")
    assert sdist.name == f"pythons_lock-{version}.tar.gz"
    assert wheel.name == f"pythons_lock-{version}-py3-none-any.whl"
    checked = run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    assert checked.stdout.count("PASSED") == 2, checked.stdout

    with tarfile.open(sdist) as tar:
        prefix = f"pythons_lock-{version}/"
        members = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    wanted = [
        name
        for name in source_files(ROOT)
        if name.split("/")[0] in (*SDIST_DIRS, "pylock") or name in SDIST_FILES
    ]
    assert "data/uv-download-metadata.json.gz" in wanted and "tests/conftest.py" in wanted
    assert [name for name in wanted if name not in members] == []
    assert not any(_ignored(Path(name)) for name in members if "egg-info" not in name)

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"pythons_lock-{version}.dist-info/METADATA").decode()
    assert {"pylock/py.typed", "pylock/index/snapshot.json.gz", "pylock/entry.py"} <= names
    assert f"pythons_lock-{version}.dist-info/licenses/LICENSE" in names
    assert not any(name.startswith(("tests/", "data/", "examples/")) for name in names)
    assert f"Name: {DISTRIBUTION}\n" in metadata and f"Version: {version}\n" in metadata
    assert "License-Expression: MIT" in metadata


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_installs_offline_and_runs(dist: Path, wheelhouse: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # Without pip in the venv (Debian's python3 may lack ensurepip): this pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bindir / ("python.exe" if sys.platform == "win32" else "python")
    env = offline_env(dist, wheelhouse)
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python]
    run(*pip, "install", "-q", f"{DISTRIBUTION}=={pylock.__version__}", env=env)

    # Outside the checkout, so nothing can import the source tree by accident.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env["PYLOCK_CACHE_DIR"] = str(tmp_path / "cache")
    where = run(python, "-c", "import pylock; print(pylock.__file__)", cwd=outside, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    pylock_exe = shutil.which("pylock", path=str(bindir))
    assert pylock_exe is not None
    version = run(pylock_exe, "--version", cwd=outside, env=env)
    assert version.stdout.strip() == f"pylock {pylock.__version__}"
    project = tmp_path / "basic"
    shutil.copytree(ROOT / "examples" / "basic", project)
    checked = run(pylock_exe, "--project", project, "lock", "--check", cwd=outside, env=env)
    assert "up to date" in checked.stdout + checked.stderr
    # The check is real: a lock from another pylock config fails it.
    (project / "pythons.toml").write_text('[python.app]\nversion = "3.12"\n')
    stale = subprocess.run(
        [pylock_exe, "--project", str(project), "lock", "--check"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stale.returncode == 1 and "pylock: error:" in stale.stderr, stale


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_unpacked_sdist_runs_the_tests_that_need_its_data(dist: Path, tmp_path: Path) -> None:
    """From the sdist alone: the snapshot rebuilds from the in-tree data, and the tests of the
    snapshot, the examples and the documents pass."""
    with tarfile.open(_only(dist, "*.tar.gz")) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:  # Python < 3.11.4; the archive is our own sdist, just built
            tar.extractall(tmp_path)
    unpacked = _only(tmp_path, "pythons_lock-*")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLOCK_", "PYTHON"))}
    env["PYTHONPATH"] = str(unpacked)
    where = run(
        sys.executable, "-c", "import pylock; print(pylock.__file__)", cwd=unpacked, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(unpacked)
    rebuilt = tmp_path / "snapshot.json.gz"
    run(sys.executable, "scripts/build_snapshot.py", "--output", rebuilt, cwd=unpacked, env=env)
    assert_same_snapshot(rebuilt.read_bytes(), (unpacked / SNAPSHOT).read_bytes())
    tests = [
        "tests/test_snapshot.py",
        "tests/test_examples_ci.py",
        "tests/test_distribution_name.py",
    ]
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    # And the whole suite is there: the sdist collects the very tests the checkout does.
    # The three runs at once: each is seconds of start-up and collection.
    collect = [*pytest_, "--collect-only", "-m", "slow or not slow"]
    with ThreadPoolExecutor(3) as pool:
        testing = pool.submit(run, *pytest_, *tests, cwd=unpacked, env=env)
        sdist = pool.submit(run, *collect, cwd=unpacked, env=env)
        checkout = pool.submit(run, *collect, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
        done, in_sdist, in_checkout = (f.result().stdout for f in (testing, sdist, checkout))
    assert " passed" in done and "skipped" not in done, done
    ids = [line for line in in_sdist.splitlines() if "::" in line]
    assert len(ids) > 900
    assert ids == [line for line in in_checkout.splitlines() if "::" in line]
