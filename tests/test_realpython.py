"""Tests for the real-interpreter archive builder: PBS shape, relocation, and uv accepting it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from tests import realpython
from tests.indexdata import uv_json
from tests.marks import real_archives
from tests.realpython import (
    PBS_MTIME,
    RealArchive,
    RealPythonUnavailable,
    build_pbs_archive,
    clean_env,
    elf_runpath,
    host_pythons,
    serve_directory,
    set_elf_runpath,
    uv_downloads_json,
    write_lock,
    write_mirror_tree,
    write_uv_downloads_json,
)

pytestmark = real_archives

PROBE = "import sys, ssl, sqlite3, zlib, json; print(sys.prefix)"


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archives")


@pytest.fixture(scope="module")
def current(archive_dir: Path) -> RealArchive:
    return build_pbs_archive(archive_dir, level=1)


@pytest.fixture(scope="module")
def second(archive_dir: Path) -> RealArchive:
    pythons = host_pythons()
    if len(pythons) < 2:
        pytest.skip("only one CPython version on this machine")
    return build_pbs_archive(archive_dir, prefix=pythons[1].prefix, level=1)


def extract(archive: RealArchive, dest: Path) -> Path:
    """Unpack with plain tarfile and move the tree somewhere the builder never saw."""
    # Debian's 3.11.2 has no extraction filters; newer Pythons warn without one.
    options = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
    with tarfile.open(archive.path) as tar:
        tar.extractall(dest / "unpack", **options)  # type: ignore[arg-type]
    moved = dest / "elsewhere" / "my python"
    moved.parent.mkdir(parents=True)
    (dest / "unpack" / "python").rename(moved)
    return moved


def run_probe(executable: Path, code: str = PROBE) -> str:
    return subprocess.run(
        [str(executable), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        timeout=60,
    ).stdout.strip()


# -- fast: helpers that need no archive ------------------------------------------------------


def test_filename_is_pbs_shaped() -> None:
    assert (
        realpython.pbs_filename("3.13.0rc2", "20990101", "aarch64-unknown-linux-gnu", "full", "zst")
        == "cpython-3.13.0rc2+20990101-aarch64-unknown-linux-gnu-pgo+lto-full.tar.zst"
    )


def test_at_least_one_packageable_python() -> None:
    pythons = host_pythons()
    assert pythons, "no CPython found"
    assert pythons[0].executable == Path(os.path.realpath(sys.executable)) or pythons[
        0
    ].prefix == Path(sys.base_prefix)
    assert len({p.version for p in pythons}) == len(pythons)


def _elf_with_runpath() -> Path:
    for python in host_pythons():
        if elf_runpath(python.executable):
            return python.executable
    pytest.skip("no interpreter here carries a RUNPATH")


def test_runpath_rewrite_in_place(tmp_path: Path) -> None:
    source = _elf_with_runpath()
    copy = tmp_path / "python"
    shutil.copyfile(source, copy)
    old = elf_runpath(copy)
    assert old is not None
    set_elf_runpath(copy, "$ORIGIN/../lib")
    assert elf_runpath(copy) == "$ORIGIN/../lib"
    # Only the string changed, nothing moved.
    before, after = source.read_bytes(), copy.read_bytes()
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) <= len(old)
    if shutil.which("readelf"):
        out = subprocess.run(
            ["readelf", "-d", str(copy)], capture_output=True, text=True, check=True
        ).stdout
        assert "[$ORIGIN/../lib]" in out


def test_longer_runpath_without_patchelf_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "python"
    shutil.copyfile(_elf_with_runpath(), copy)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RealPythonUnavailable, match="patchelf"):
        set_elf_runpath(copy, "$ORIGIN/" + "x" * 300)


def test_non_elf_has_no_runpath(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_bytes(b"#!/bin/sh\n" + b"\0" * 100)
    assert elf_runpath(script) is None
    with pytest.raises(RealPythonUnavailable):
        set_elf_runpath(script, "$ORIGIN")


def test_relocated_runpath_keeps_foreign_entries() -> None:
    lib = Path("/opt/py/lib")
    assert (
        realpython._relocated_runpath(
            "/opt/py/lib:/usr/lib", lib, "lib/python3.11/lib-dynload/_ssl.so"
        )
        == "$ORIGIN/../..:/usr/lib"
    )
    assert realpython._relocated_runpath("/opt/py/lib", lib, "lib/libpython3.11.so") == "$ORIGIN"
    assert realpython._relocated_runpath("/usr/lib", lib, "bin/python3") is None


def test_unknown_prefix_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RealPythonUnavailable, match="no runnable CPython"):
        build_pbs_archive(tmp_path, prefix=tmp_path)


# -- slow: real builds -----------------------------------------------------------------------


@pytest.mark.slow
def test_archive_has_pbs_member_conventions(current: RealArchive) -> None:
    assert current.filename == (
        f"cpython-{current.version}+20990101-{current.triple}-install_only.tar.gz"
    )
    assert current.sha256 == hashlib.sha256(current.path.read_bytes()).hexdigest()
    assert current.size == current.path.stat().st_size
    with tarfile.open(current.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert len(names) == len(set(names)) == current.members
    assert all(n.startswith("python/") for n in names)
    assert not any(m.isdir() for m in members)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(PBS_MTIME, 0, 0)}
    assert {m.mode for m in members if m.isfile()} <= {0o664, 0o775}
    minor = current.minor
    links = {m.name: m.linkname for m in members if m.issym()}
    assert links["python/bin/python3"] == f"python{minor}"
    assert links["python/bin/python"] == f"python{minor}"
    assert all(not os.path.isabs(target) for target in links.values())
    files = {m.name: m for m in members if m.isfile()}
    assert files[f"python/bin/python{minor}"].mode == 0o775
    assert f"python/lib/python{minor}/lib-dynload/.empty" in files
    assert f"python/lib/python{minor}/os.py" in files
    assert not any("/site-packages/" in n and not n.endswith("README.txt") for n in names)
    # Lean: no test suites.
    assert not any(f"/python{minor}/test/" in n for n in names)


@pytest.mark.slow
def test_build_is_deterministic(current: RealArchive, tmp_path: Path) -> None:
    realpython._BUILT.clear()
    again = build_pbs_archive(tmp_path, level=1)
    assert again.sha256 == current.sha256
    assert again.path != current.path


@pytest.mark.slow
def test_repeat_builds_are_memoised_and_survive_replacement(
    current: RealArchive, tmp_path: Path
) -> None:
    copy = build_pbs_archive(tmp_path / "a", level=1)
    assert copy.sha256 == current.sha256 and copy.path.parent == tmp_path / "a"
    # Replacing the memoised file under the same name forces a real rebuild.
    copy.path.unlink()
    copy.path.write_bytes(b"not an archive")
    rebuilt = build_pbs_archive(tmp_path / "a", level=1)
    assert rebuilt.sha256 == current.sha256
    assert hashlib.sha256(rebuilt.path.read_bytes()).hexdigest() == current.sha256


@pytest.mark.slow
@pytest.mark.parametrize("which", ["current", "second"])
def test_extracted_interpreter_is_relocatable(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    archive: RealArchive = request.getfixturevalue(which)
    root = extract(archive, tmp_path)
    assert run_probe(root / "bin" / "python3") == str(root)
    version = run_probe(
        root / "bin" / "python", "import platform; print(platform.python_version())"
    )
    assert version == archive.version
    # Nothing in the tree still points at the interpreter it was built from.
    assert archive.source is not None
    leftovers = [
        p
        for p in root.rglob("*")
        if p.is_file() and (elf_runpath(p) or "").find(str(archive.source)) >= 0
    ]
    assert leftovers == []


@pytest.mark.slow
def test_two_versions_differ(current: RealArchive, second: RealArchive) -> None:
    assert current.version != second.version
    assert current.sha256 != second.sha256


@pytest.mark.slow
def test_full_flavor_has_python_json_first(archive_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("zstandard")
    import zstandard

    full = build_pbs_archive(archive_dir, flavor="full", level=1)
    assert full.filename.endswith("-pgo+lto-full.tar.zst")
    with (
        full.path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        first = tar.next()
        assert first is not None and first.name == "python/PYTHON.json"
        meta = json.load(tar.extractfile(first))  # type: ignore[arg-type]
        rest = [m.name for m in tar if m.name != first.name]
    assert meta["python_version"] == full.version
    assert meta["python_exe"] == f"install/bin/python{full.minor}"
    assert all(n.startswith("python/install/") for n in rest)


@pytest.mark.slow
def test_extra_files_change_the_archive(archive_dir: Path, current: RealArchive) -> None:
    marked = build_pbs_archive(
        archive_dir / "marked", level=1, tag="20990102", extra_files={"share/marker": b"2"}
    )
    assert marked.sha256 != current.sha256
    with tarfile.open(marked.path) as tar:
        assert tar.extractfile("python/share/marker").read() == b"2"  # type: ignore[union-attr]


@pytest.mark.slow
def test_lock_and_mirror_tree(current: RealArchive, second: RealArchive, tmp_path: Path) -> None:
    from pylock.lockfile import loads

    lock = loads(write_lock(tmp_path, [current, second]).read_text())
    assert [p.version for p in lock.pythons] == sorted(
        [current.version, second.version], key=lambda v: f"cpython-{v}"
    )
    entry = lock.get(f"cpython-{current.version}")
    assert entry is not None and entry.build == "20990101"
    artifact = entry.artifacts[0]
    assert artifact.url == current.url and "%2B" in artifact.url
    assert artifact.filename == current.filename
    assert (artifact.sha256, artifact.size) == (current.sha256, current.size)

    tree = write_mirror_tree(tmp_path / "mirror", [current, second])
    sums = (tree / "20990101" / "SHA256SUMS").read_text().splitlines()
    by_name = sorted((current, second), key=lambda a: a.filename)
    assert sums == [f"{a.sha256}  {a.filename}" for a in by_name]
    with serve_directory(tree) as base:
        url = current.url.replace(realpython.PBS_DOWNLOAD_PREFIX, base)
        with urllib.request.urlopen(url) as response:
            assert hashlib.sha256(response.read()).hexdigest() == current.sha256


@pytest.mark.slow
def test_uv_json_matches_upstream_fields(current: RealArchive) -> None:
    document = uv_downloads_json([current])
    ((key, entry),) = document.items()
    assert key == f"cpython-{current.version}-linux-x86_64-gnu"
    assert entry["url"] == current.url and entry["build"] == "20990101"
    sample = uv_json()["cpython-3.13.7-linux-x86_64-gnu"]
    assert sorted(entry) == sorted(sample)
    assert entry["arch"] == sample["arch"]
    assert (entry["os"], entry["libc"]) == (sample["os"], sample["libc"])


def _uv() -> list[str]:
    if shutil.which("uv"):
        return ["uv"]
    try:
        import uv
    except ImportError:
        pytest.skip("uv is not installed")
    return [uv.find_uv_bin()]


def uv_python_install(
    downloads: Path, mirror: str, versions: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``uv python install --no-bin`` of ``versions`` from ``downloads`` and ``mirror``."""
    install = ["python", "install", "--no-bin", "--python-downloads-json-url", str(downloads)]
    return subprocess.run(
        [*_uv(), *install, "--mirror", mirror, *versions],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_uv_installs_the_archive_from_a_loopback_mirror(
    current: RealArchive, second: RealArchive, tmp_path: Path
) -> None:
    _uv()  # skips the test without uv
    tree = write_mirror_tree(tmp_path / "mirror", [current, second])
    downloads = write_uv_downloads_json(tmp_path / "downloads.json", [current, second])
    installs = tmp_path / "installs"
    env = clean_env(
        UV_PYTHON_INSTALL_DIR=str(installs),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_BIN_DIR=str(tmp_path / "uv-bin"),
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="automatic",
    )
    with serve_directory(tree) as base:
        versions = [current.version, second.version]
        result = uv_python_install(downloads, base.rstrip("/"), versions, env)
    assert result.returncode == 0, result.stderr
    for archive in (current, second):
        root = installs / f"cpython-{archive.version}-linux-x86_64-gnu"
        assert run_probe(root / "bin" / "python3") == str(root)


@pytest.mark.slow
def test_uv_rejects_a_tampered_archive(current: RealArchive, tmp_path: Path) -> None:
    """The JSON's sha256 is what uv checks: a mirror serving other bytes must fail."""
    _uv()  # skips the test without uv
    tree = write_mirror_tree(tmp_path / "mirror", [current])
    served = tree / current.tag / current.filename
    served.unlink()
    # The same tar compressed again: other bytes of a valid archive, which only the sha256
    # tells apart. A byte flipped in the stream broke the decompression first for some
    # hosts' interpreters (Debian's), and uv said that, not that the hash differed.
    original = current.path.read_bytes()
    data = gzip.compress(gzip.decompress(original), compresslevel=9, mtime=0)
    assert data != original
    served.write_bytes(data)
    downloads = write_uv_downloads_json(tmp_path / "downloads.json", [current])
    env = clean_env(
        UV_PYTHON_INSTALL_DIR=str(tmp_path / "installs"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_NO_CONFIG="1",
    )
    with serve_directory(tree) as base:
        result = uv_python_install(downloads, base, [current.version], env)
    assert result.returncode != 0
    assert "hash" in result.stderr.lower() or "sha256" in result.stderr.lower()
