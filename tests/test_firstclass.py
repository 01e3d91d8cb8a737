"""Synced interpreters as first-class Pythons: fix-ups, C extensions, --bin-dir, run, uv.

The interpreters here are real: :mod:`realpython` packages one installed on this machine,
:mod:`sysconfig_fixture` plants python-build-standalone's build-machine paths in it
(``/install``, ``clang``, ``/tools/...``, ``-isysroot``), and ``pylock sync`` installs it
from a loopback mirror, through ``pylock.cli.main`` as a user would run it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from pylock.cli import main
from tests.marks import real_archives
from tests.realpython import (
    RealArchive,
    RealPythonUnavailable,
    build_pbs_archive,
    clean_env,
    host_pythons,
    lock_text,
    serve_directory,
    write_lock,
    write_mirror_tree,
)
from tests.sysconfig_fixture import (
    EXTENSION_MODULE,
    EXTENSION_PROBE,
    PBS_PREFIX,
    TOOLCHAINS,
    pbs_build_vars,
    pbs_style_archive,
    write_extension_sdist,
)

pytestmark = real_archives

#: Build tags of the planted archives: one per toolchain spelling, one for a second version.
TAGS = {"bare": "20990201", "tools": "20990202"}
OTHER_TAG = "20990203"

#: Sysconfig keys a C-extension build reads, directly or through setuptools.
BUILD_KEYS = (
    "prefix",
    "exec_prefix",
    "BINDIR",
    "LIBDIR",
    "LIBPC",
    "LIBDEST",
    "BINLIBDEST",
    "DESTSHARED",
    "INCLUDEPY",
    "CONFINCLUDEPY",
    "CC",
    "CXX",
    "LINKCC",
    "AR",
    "LDSHARED",
    "BLDSHARED",
    "LDCXXSHARED",
    "CFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "CONFIG_ARGS",
)
_PROBE_VARS = (
    "import json, sys, sysconfig; "
    f"print(json.dumps({{'sys.prefix': sys.prefix, **{{k: sysconfig.get_config_var(k) "
    f"for k in {list(BUILD_KEYS)!r}}}}}))"
)


# -- fixtures --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Mirror:
    """A loopback mirror of the planted archives, and the archive cache the tests share."""

    #: ``http://127.0.0.1:PORT/``: what ``--mirror`` gets.
    base: str
    #: The served tree (``<tag>/<filename>``).
    root: Path
    #: ``PYLOCK_CACHE_DIR`` for every sync in this module.
    cache: Path
    #: The PBS-style archives by toolchain spelling (``bare``, ``tools``).
    archives: Mapping[str, RealArchive]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    folder = tmp_path_factory.mktemp("firstclass")
    try:
        real = build_pbs_archive(folder / "real", level=1)
    except RealPythonUnavailable as exc:
        pytest.skip(str(exc))
    archives = {
        toolchain: pbs_style_archive(real, folder / "pbs", tag=tag, toolchain=toolchain)
        for toolchain, tag in TAGS.items()
    }
    root = write_mirror_tree(folder / "mirror", archives.values())
    with serve_directory(root) as base:
        yield Mirror(base=base, root=root, cache=folder / "cache", archives=archives)


@pytest.fixture(scope="module")
def other(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> RealArchive:
    """A planted archive of a second CPython minor version, added to the mirror."""
    taken = mirror.archives["bare"].minor
    for python in host_pythons():
        if python.minor == taken:
            continue
        folder = tmp_path_factory.mktemp("other")
        try:
            real = build_pbs_archive(folder, prefix=python.prefix, level=1)
        except RealPythonUnavailable:
            continue
        archive = pbs_style_archive(real, folder / "pbs", tag=OTHER_TAG)
        write_mirror_tree(mirror.root, [archive])
        return archive
    pytest.skip("needs a second CPython minor version on this machine")


def environ(mirror: Mirror, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLOCK_")}
    env.update(PYLOCK_CACHE_DIR=str(mirror.cache), **extra)
    return env


def pylock(project: Path, mirror: Mirror, *args: str, **env: str) -> int:
    return main(["--project", str(project), *args], environ=environ(mirror, **env))


def sync(project: Path, mirror: Mirror, into: Path, *args: str, **env: str) -> int:
    return pylock(
        project, mirror, "sync", "--mirror", mirror.base, "--into", str(into), *args, **env
    )


def locked_project(
    path: Path,
    archives: Sequence[RealArchive],
    names: Sequence[str],
    default: str | None = None,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_lock(path, archives, names=names, default=default)
    return path


def linking_project(
    mirror: Mirror,
    tmp_path: Path,
    *,
    other: RealArchive | None = None,
    default: str | None = "app",
) -> tuple[Path, Path, Path]:
    """``tmp_path/proj`` locking the bare archive as ``app`` (and ``other`` as ``other``),
    with where it installs and the bin dir it links into: ``(project, into, bin_dir)``.
    """
    archives, names = [mirror.archives["bare"]], ["app"]
    if other is not None:
        archives.append(other)
        names.append("other")
    proj = locked_project(tmp_path / "proj", archives, names, default=default)
    return proj, tmp_path / "pythons", tmp_path / "bin"


def run(argv: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    options: dict[str, object] = {
        "capture_output": True,
        "text": True,
        "env": clean_env(),
        "timeout": 300,
    }
    options.update(kwargs)
    return subprocess.run([str(a) for a in argv], **options)  # type: ignore[call-overload,no-any-return]


def config_vars(python: Path) -> dict[str, object]:
    result = run([python, "-c", _PROBE_VARS])
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def has_build_machine_paths(value: object) -> list[str]:
    """What in a sysconfig value still points at the build machine."""
    if not isinstance(value, str):
        return []
    words = value.replace("'", " ").replace("=", " ").replace(",", " ").split()
    found = [w for w in words if w == PBS_PREFIX or PBS_PREFIX + "/" in w]
    found += [w for w in words if "clang" in w or w.startswith("/tools/clang") or "llvm-ar" in w]
    found += [w for w in words if w.startswith("-isysroot")]
    return found


# -- build environment for C extensions ------------------------------------------------------

_COMPILER_ENV = ("CC", "CXX", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDSHARED", "AR", "ARFLAGS")


def build_env(**extra: str) -> dict[str, str]:
    """No pip configuration, index or compiler override from the machine running the tests."""
    env = {
        k: v for k, v in clean_env().items() if not k.startswith("PIP_") and k not in _COMPILER_ENV
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_ROOT_USER_ACTION="ignore",
        **extra,
    )
    return env


def need_compiler() -> None:
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler (cc)")


def pip_install_sdist(python: Path, sdist: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Bootstrap pip offline (ensurepip), then build and install ``sdist`` with it."""
    bootstrap = run([python, "-m", "ensurepip"], env=build_env(), cwd=cwd)
    if bootstrap.returncode != 0 and (
        "No module named ensurepip" in bootstrap.stderr
        # Debian's, outside a virtual environment (and its wheels are not in the stdlib).
        or "ensurepip is disabled" in bootstrap.stdout
    ):
        pytest.skip("the packaged interpreter's ensurepip cannot install pip (e.g. Debian's)")
    assert bootstrap.returncode == 0, bootstrap.stderr
    return run(
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", sdist],
        env=build_env(),
        cwd=cwd,
    )


# -- fast: the fixture itself ----------------------------------------------------------------


def test_fixture_plants_pbs_build_paths() -> None:
    """Guard against a vacuous fixture: the planted values are what PBS ships."""
    source = {
        "prefix": "/root/.pyenv/versions/3.11.7",
        "VERSION": "3.11",
        "ABIFLAGS": "",
        "LIBS": "-ldl -L/root/.pyenv/versions/3.11.7/lib",
        "SOABI": "cpython-311-x86_64-linux-gnu",
    }
    planted = pbs_build_vars(source, toolchain="tools")
    assert planted["prefix"] == "/install"
    assert planted["LIBDIR"] == "/install/lib"
    assert planted["INCLUDEPY"] == "/install/include/python3.11"
    assert planted["LIBS"] == "-ldl -L/install/lib"
    assert str(planted["CC"]).startswith(TOOLCHAINS["tools"]["cc"] + " ")
    assert planted["AR"] == "/tools/llvm/bin/llvm-ar"
    assert "-isysroot" in str(planted["CFLAGS"]) and "-isysroot" in str(planted["LDSHARED"])
    assert planted["SOABI"] == source["SOABI"]
    assert has_build_machine_paths(planted["LDSHARED"])
    assert not has_build_machine_paths("cc -pthread -shared -L/opt/python/app/lib")


# -- fix-ups: sysconfig and pkg-config bound to the install path ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("toolchain", sorted(TAGS))
def test_sync_binds_sysconfig_and_pkgconfig_to_the_install_path(
    mirror: Mirror, tmp_path: Path, toolchain: str, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = mirror.archives[toolchain]
    proj = locked_project(tmp_path / "proj", [archive], ["app"])
    dest = tmp_path / "pythons"
    assert sync(proj, mirror, dest) == 0
    tree = dest / "app"

    values = config_vars(tree / "bin" / "python3")
    assert values["sys.prefix"] == str(tree)
    assert values["prefix"] == values["exec_prefix"] == str(tree)
    assert values["LIBDIR"] == f"{tree}/lib"
    assert values["INCLUDEPY"] == f"{tree}/include/python{archive.minor}"
    assert (Path(str(values["INCLUDEPY"])) / "Python.h").is_file()
    assert values["CC"] == "cc -pthread"
    assert values["CXX"] == "c++ -pthread"
    assert values["LINKCC"] == "cc"
    assert values["AR"] == "ar"
    assert str(values["LDSHARED"]).startswith("cc -pthread -shared ")
    assert f"-L{tree}/lib" in str(values["LDSHARED"])
    # CONFIG_ARGS records how configure ran (CC=clang included); only its paths matter.
    leftovers = {k: has_build_machine_paths(values[k]) for k in BUILD_KEYS if k != "CONFIG_ARGS"}
    assert {k: v for k, v in leftovers.items() if v} == {}
    assert f"'--prefix={tree}'" in str(values["CONFIG_ARGS"])

    pc = (tree / "lib" / "pkgconfig" / f"python-{archive.minor}.pc").read_text()
    assert f"prefix={tree}\n" in pc
    assert f"-L{tree}/lib" in pc and f"{PBS_PREFIX}/" not in pc
    assert (tree / "lib" / "pkgconfig" / "python3.pc").is_symlink()
    if shutil.which("pkg-config"):
        cflags = run(
            ["pkg-config", "--cflags", "python3"],
            env=clean_env(PKG_CONFIG_PATH=str(tree / "lib" / "pkgconfig")),
        )
        assert cflags.stdout.split() == [f"-I{tree}/include/python{archive.minor}"]

    # The record hashes the patched files: verify is clean, and a re-sync is a no-op.
    capsys.readouterr()
    assert pylock(proj, mirror, "verify", "--into", str(dest)) == 0
    assert "app: ok" in capsys.readouterr().out
    assert sync(proj, mirror, dest) == 0
    assert "up to date" in capsys.readouterr().err
    record = json.loads((tree / ".pylock" / "install.json").read_text())
    assert record["artifact"]["sha256"] == archive.sha256

    # And verify still notices an edit to a patched file.
    # A file, not a link to one (Debian's `_sysconfigdata__linux_*.py`): verify names the
    # file an edit through the link changes.
    stdlib = tree / "lib" / f"python{archive.minor}"
    data = next(p for p in sorted(stdlib.glob("_sysconfigdata_*.py")) if not p.is_symlink())
    data.write_text(data.read_text() + "\n# edited\n")
    assert pylock(proj, mirror, "verify", "--into", str(dest)) == 1
    out = capsys.readouterr().out
    assert f"modified: {data.relative_to(tree).as_posix()}" in out


@pytest.mark.slow
def test_relative_into_is_fixed_up_with_the_absolute_path(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = locked_project(tmp_path / "proj", [mirror.archives["bare"]], ["app"])
    monkeypatch.chdir(tmp_path)
    assert sync(proj, mirror, Path("rel") / "pythons") == 0
    tree = tmp_path / "rel" / "pythons" / "app"
    values = config_vars(tree / "bin" / "python3")
    assert values["LIBDIR"] == f"{tree}/lib"
    assert values["prefix"] == str(tree)


@pytest.mark.slow
def test_a_moved_install_is_fixed_up_again_for_its_new_path(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fix-ups bind a tree to its path, so a moved tree is not "up to date"."""
    proj = locked_project(tmp_path / "proj", [mirror.archives["bare"]], ["app"])
    assert sync(proj, mirror, tmp_path / "old") == 0
    (tmp_path / "old").rename(tmp_path / "new")
    capsys.readouterr()
    assert sync(proj, mirror, tmp_path / "new") == 0
    err = capsys.readouterr().err
    assert "installed app" in err and "0 downloaded" in err
    values = config_vars(tmp_path / "new" / "app" / "bin" / "python3")
    assert values["LIBDIR"] == f"{tmp_path / 'new' / 'app'}/lib"


@pytest.mark.slow
def test_no_fixups_leaves_the_build_machine_paths(mirror: Mirror, tmp_path: Path) -> None:
    proj = locked_project(tmp_path / "proj", [mirror.archives["tools"]], ["app"])
    dest = tmp_path / "pythons"
    assert sync(proj, mirror, dest, "--no-fixups") == 0
    tree = dest / "app"
    values = config_vars(tree / "bin" / "python3")
    assert values["prefix"] == PBS_PREFIX
    assert values["LIBDIR"] == f"{PBS_PREFIX}/lib"
    assert str(values["CC"]).startswith(TOOLCHAINS["tools"]["cc"])
    pc = (tree / "lib" / "pkgconfig" / f"python-{mirror.archives['tools'].minor}.pc").read_text()
    assert f"prefix={PBS_PREFIX}\n" in pc
    assert pylock(proj, mirror, "verify", "--into", str(dest)) == 0


# -- C extensions: the reason the fix-ups exist ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("toolchain", "dirname"), [("bare", "pythons"), ("tools", "my pythons")], ids=["bare", "tools"]
)
def test_pip_builds_a_c_extension_with_the_synced_interpreter(
    mirror: Mirror, tmp_path: Path, toolchain: str, dirname: str
) -> None:
    need_compiler()
    proj = locked_project(tmp_path / "proj", [mirror.archives[toolchain]], ["app"])
    dest = tmp_path / dirname
    assert sync(proj, mirror, dest) == 0
    python = dest / "app" / "bin" / "python3"
    sdist = write_extension_sdist(tmp_path / "sdist")

    result = pip_install_sdist(python, sdist, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    probe = run([python, "-c", EXTENSION_PROBE])
    assert probe.returncode == 0, probe.stderr
    answer, location = probe.stdout.split(maxsplit=1)
    assert answer == "42"
    assert Path(location.strip()).is_relative_to(dest / "app" / "lib")


@pytest.mark.slow
def test_without_fixups_the_same_build_fails(mirror: Mirror, tmp_path: Path) -> None:
    """The control experiment: the same archive and sdist, only ``--no-fixups`` differs."""
    need_compiler()
    archive = mirror.archives["bare"]
    proj = locked_project(tmp_path / "proj", [archive], ["app"])
    dest = tmp_path / "pythons"
    assert sync(proj, mirror, dest, "--no-fixups") == 0
    python = dest / "app" / "bin" / "python3"
    sdist = write_extension_sdist(tmp_path / "sdist")

    result = pip_install_sdist(python, sdist, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    if shutil.which("clang") is None:
        # distutils: "command 'clang' failed: No such file or directory".
        assert "'clang'" in output, output
    else:  # clang exists here, but the /install headers and the -isysroot SDK do not
        assert "Python.h" in output or "stdio.h" in output, output
    probe = run([python, "-c", f"import {EXTENSION_MODULE}"])
    assert probe.returncode != 0


# -- --bin-dir -------------------------------------------------------------------------------


def prefix_of(executable: Path) -> str:
    result = run([executable, "-c", "import sys; print(sys.prefix)"])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.slow
def test_bin_dir_links_each_interpreter_and_the_default(
    mirror: Mirror, other: RealArchive, tmp_path: Path
) -> None:
    app = mirror.archives["bare"]
    proj, dest, bin_dir = linking_project(mirror, tmp_path, other=other)
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0

    assert prefix_of(bin_dir / f"python{app.minor}") == str(dest / "app")
    assert prefix_of(bin_dir / f"python{other.minor}") == str(dest / "other")
    assert prefix_of(bin_dir / "python3") == str(dest / "app")
    assert prefix_of(bin_dir / "python") == str(dest / "app")
    names = sorted(p.name for p in bin_dir.iterdir())
    assert names == sorted(
        [
            ".pylock-links.json",
            ".pylock-links.lock",
            "python",
            "python3",
            f"python{app.minor}",
            f"python{other.minor}",
        ]
    )
    assert all((bin_dir / n).is_symlink() for n in names if n.startswith("python"))

    # PYLOCK_BIN_DIR does the same, also on the no-op path of an up-to-date sync.
    second = tmp_path / "bin2"
    assert sync(proj, mirror, dest, PYLOCK_BIN_DIR=str(second)) == 0
    assert prefix_of(second / f"python{other.minor}") == str(dest / "other")
    assert prefix_of(second / "python") == str(dest / "app")


@pytest.mark.slow
def test_bin_dir_prunes_links_of_removed_interpreters_only(
    mirror: Mirror, other: RealArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = mirror.archives["bare"]
    proj, dest, bin_dir = linking_project(mirror, tmp_path, other=other)
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0
    # The user replaced one of pylock's links with their own wrapper since.
    (bin_dir / "python").unlink()
    (bin_dir / "python").write_text('#!/bin/sh\nexec mine "$@"\n')

    # "other" leaves the lock, and "app" is no longer the default.
    write_lock(proj, [app], names=["app"])
    capsys.readouterr()
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0
    err = capsys.readouterr().err
    assert not (dest / "other").exists()
    assert not os.path.lexists(bin_dir / f"python{other.minor}")
    assert not os.path.lexists(bin_dir / "python3")
    assert f"removed link {bin_dir / f'python{other.minor}'}" in err
    assert (bin_dir / "python").read_text() == '#!/bin/sh\nexec mine "$@"\n'
    assert prefix_of(bin_dir / f"python{app.minor}") == str(dest / "app")
    manifest = json.loads((bin_dir / ".pylock-links.json").read_text())
    assert sorted(manifest["links"]) == [f"python{app.minor}"]


@pytest.mark.slow
def test_bin_dir_collision_is_an_error_naming_both(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two builds of one version and variant would both be ``python3.X``."""
    first, second = mirror.archives["bare"], mirror.archives["tools"]
    assert first.version == second.version
    proj = locked_project(tmp_path / "proj", [first, second], ["app", "app2"])
    dest, bin_dir = tmp_path / "pythons", tmp_path / "bin"
    capsys.readouterr()
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 1
    err = capsys.readouterr().err
    assert f"'app' and 'app2' would both be linked as 'python{first.minor}'" in err
    assert not os.path.lexists(bin_dir / f"python{first.minor}")
    # The collision is found before anything is downloaded or installed.
    assert not dest.exists() or not any((dest / name).exists() for name in ("app", "app2"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_bin_dir_never_replaces_a_foreign_file(
    mirror: Mirror, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = mirror.archives["bare"]
    proj, dest, bin_dir = linking_project(mirror, tmp_path, default=None)
    bin_dir.mkdir()
    foreign = bin_dir / f"python{app.minor}"
    if kind == "file":
        foreign.write_text("#!/bin/sh\necho mine\n")
    else:
        foreign.symlink_to("/usr/bin/env")
    capsys.readouterr()
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 1
    err = capsys.readouterr().err
    assert f"{foreign} exists and was not created by pylock" in err
    if kind == "file":
        assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    else:
        assert os.readlink(foreign) == "/usr/bin/env"
    # Refused before anything was downloaded or installed (it used to be after: a sync
    # of large interpreters spent minutes, then failed on the user's file).
    assert not (dest / "app").exists()
    # A later sync into a free bin dir installs and links it.
    assert sync(proj, mirror, dest, "--bin-dir", str(tmp_path / "bin2")) == 0
    assert prefix_of(tmp_path / "bin2" / f"python{app.minor}") == str(dest / "app")


@pytest.mark.slow
def test_bin_dir_refusal_leaves_nothing_half_linked(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One foreign name blocks all links; once it is gone, the next sync links everything."""
    app = mirror.archives["bare"]
    proj, dest, bin_dir = linking_project(mirror, tmp_path)
    bin_dir.mkdir()
    foreign = bin_dir / f"python{app.minor}"
    foreign.write_text("mine\n")
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 1
    # Nothing but the foreign file.
    assert sorted(p.name for p in bin_dir.iterdir()) == [foreign.name]
    foreign.unlink()
    capsys.readouterr()
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0, capsys.readouterr().err
    for name in ("python", "python3", f"python{app.minor}"):
        assert prefix_of(bin_dir / name) == str(dest / "app")


@pytest.mark.slow
def test_bin_dir_keeps_a_users_replacement_of_a_managed_link(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj, dest, bin_dir = linking_project(mirror, tmp_path)
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0
    # The user swaps pylock's python3 for their own wrapper; a later sync must keep it.
    (bin_dir / "python3").unlink()
    (bin_dir / "python3").write_text("#!/bin/sh\nexec mine\n")
    capsys.readouterr()
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 1
    assert f"{bin_dir / 'python3'} exists and was not created by pylock" in capsys.readouterr().err
    assert (bin_dir / "python3").read_text() == "#!/bin/sh\nexec mine\n"


# -- pylock run ------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_passes_arguments_and_the_exit_code(
    mirror: Mirror, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    proj = locked_project(tmp_path / "proj", [mirror.archives["bare"]], ["app"])
    dest = tmp_path / "pythons"
    assert sync(proj, mirror, dest) == 0
    code = "import sys; print(sys.argv[1:], sys.prefix); sys.exit(7)"
    capfd.readouterr()
    assert (
        pylock(proj, mirror, "run", "--into", str(dest), "app", "--", "-c", code, "a b", "-x") == 7
    )
    out = capfd.readouterr().out
    assert out == f"{['a b', '-x']} {dest / 'app'}\n"
    # The install dir can come from the environment; a zero exit passes through too.
    assert (
        pylock(
            proj,
            mirror,
            "run",
            "app",
            "--",
            "-c",
            "import sys; sys.exit(0)",
            PYLOCK_INSTALL_DIR=str(dest),
        )
        == 0
    )


def test_run_unknown_or_uninstalled_name_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = RealArchive(
        path=tmp_path / "unused.tar.gz",
        sha256="0" * 64,
        size=1,
        version="3.12.4",
        tag="20990101",
        filename="cpython-3.12.4+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        triple="x86_64-unknown-linux-gnu",
        minor="3.12",
    )
    (tmp_path / "pythons.lock").write_text(lock_text([fake], names=["app"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLOCK_")}
    into = str(tmp_path / "nowhere")
    assert main(["--project", str(tmp_path), "run", "--into", into, "nope"], environ=env) == 2
    err = capsys.readouterr().err
    assert "pylock: error: no interpreter named 'nope' in pythons.lock (locked: app)" in err
    assert "Traceback" not in err
    assert main(["--project", str(tmp_path), "run", "--into", into, "app"], environ=env) == 1
    err = capsys.readouterr().err
    assert "pylock: error: app is not installed in" in err
    assert f"pylock: hint: run `pylock sync --into {shlex.quote(into)}` first" in err


# -- uv --------------------------------------------------------------------------------------


def uv_binary() -> str:
    try:
        import uv
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            pytest.skip("uv is not installed")
        return found
    return str(uv.find_uv_bin())


def uv_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in build_env().items() if not k.startswith("UV_")}
    env.update(
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_INSTALL_DIR=str(tmp_path / "uv-pythons"),
        UV_NO_CONFIG="1",
        UV_OFFLINE="1",
        **extra,
    )
    return env


@pytest.mark.slow
def test_uv_venv_on_the_synced_interpreter_builds_c_extensions(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uv = uv_binary()
    proj = locked_project(tmp_path / "proj", [mirror.archives["tools"]], ["app"])
    dest = tmp_path / "pythons"
    assert sync(proj, mirror, dest) == 0
    capsys.readouterr()
    assert pylock(proj, mirror, "which", "app", "--into", str(dest)) == 0
    which = Path(capsys.readouterr().out.strip())
    assert which.is_relative_to(dest / "app")

    venv = tmp_path / "venv"
    created = run([uv, "venv", "--python", which, venv], env=uv_env(tmp_path))
    assert created.returncode == 0, created.stderr
    info = run([venv / "bin" / "python", "-c", "import sys; print(sys.prefix, sys.base_prefix)"])
    assert info.stdout.split() == [str(venv), str(dest / "app")]

    # A venv builds extensions with its base interpreter's sysconfig: fixed up, it works.
    if shutil.which("cc") is None:
        return
    sdist = write_extension_sdist(tmp_path / "sdist")
    installed = run(
        [uv, "pip", "install", "--python", venv / "bin" / "python", "--no-index", sdist],
        env=uv_env(tmp_path),
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    probe = run([venv / "bin" / "python", "-c", EXTENSION_PROBE])
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[0] == "42"


@pytest.mark.slow
def test_uv_finds_bin_dir_links_on_path(mirror: Mirror, tmp_path: Path) -> None:
    uv = uv_binary()
    app = mirror.archives["bare"]
    proj, dest, bin_dir = linking_project(mirror, tmp_path)
    assert sync(proj, mirror, dest, "--bin-dir", str(bin_dir)) == 0
    env = uv_env(tmp_path, PATH=str(bin_dir), UV_PYTHON_PREFERENCE="only-system")
    # From a folder with no .venv above it: uv prefers a virtualenv it finds from its working
    # directory (the checkout's own .venv, when the suite runs from one) to anything on PATH.
    found = run([uv, "python", "find", app.version], env=env, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).parent == bin_dir
    assert prefix_of(Path(found.stdout.strip())) == str(dest / "app")


# -- fix-up edge cases the integration tests found --------------------------------------------


def _planted_tree(root: Path) -> Path:
    from tests.sysconfig_fixture import pkgconfig_files

    source = {"prefix": "/build/py", "VERSION": "3.12", "ABIFLAGS": "", "LIBS": "-L/build/py/lib"}
    variables = pbs_build_vars(source, toolchain="tools")
    lib = root / "lib" / "python3.12"
    lib.mkdir(parents=True)
    (lib / "_sysconfigdata__linux_x86_64-linux-gnu.py").write_text(
        "# generated\nbuild_time_vars = " + repr(variables) + "\n"
    )
    (root / "lib" / "pkgconfig").mkdir()
    for name, text in pkgconfig_files("3.12").items():
        (root / "lib" / "pkgconfig" / name).write_text(text)
    return root


def test_fixups_keep_an_install_path_with_spaces_one_word(tmp_path: Path) -> None:
    import ast
    import shlex

    from pylock.sync.fixups import apply_fixups

    tree = _planted_tree(tmp_path / "tree")
    final = "/opt/my pythons/app"
    assert len(apply_fixups(tree, Path(final))) == 3
    data = next((tree / "lib" / "python3.12").glob("_sysconfigdata_*.py")).read_text()
    variables = ast.literal_eval(data.split("build_time_vars = ", 1)[1])
    # Single paths stay raw; word lists quote the path so splitting keeps it whole.
    assert variables["LIBDIR"] == f"{final}/lib"
    assert variables["INCLUDEPY"] == f"{final}/include/python3.12"
    assert f"-L{final}/lib" in shlex.split(variables["LDSHARED"])
    assert shlex.split(variables["LDSHARED"])[0] == "cc"
    assert f"-L{final}/lib" in shlex.split(variables["LIBS"])
    assert f"--prefix={final}" in shlex.split(variables["CONFIG_ARGS"])
    pc = (tree / "lib" / "pkgconfig" / "python-3.12.pc").read_text()
    assert "prefix=/opt/my\\ pythons/app\n" in pc
    if shutil.which("pkg-config"):
        cflags = run(
            ["pkg-config", "--cflags", "python-3.12"],
            env=clean_env(PKG_CONFIG_PATH=str(tree / "lib" / "pkgconfig")),
        )
        assert cflags.stdout.split() == ["-I/opt/my\\", "pythons/app/include/python3.12"]
    # Idempotent: a second pass finds nothing to change.
    assert apply_fixups(tree, Path(final)) == []


class _Finalized:
    """Garbage whose finalizer runs Python code, so the GC hands the GIL to other threads."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        sum(range(50))


@pytest.mark.slow
def test_fixups_survive_parallel_installs(tmp_path: Path) -> None:
    """sync installs in threads; Python 3.11's ast.parse is not thread-safe (gh-106905)."""
    import importlib
    import pprint
    import sysconfig
    import threading

    from pylock.sync.fixups import fix_sysconfigdata

    name = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    variables = dict(importlib.import_module(name).build_time_vars)
    variables["prefix"] = PBS_PREFIX
    source = "build_time_vars = " + pprint.pformat(variables) + "\n"
    errors: list[BaseException] = []

    def work(index: int) -> None:
        path = tmp_path / f"_sysconfigdata_{index}.py"
        for round_ in range(30):
            path.write_text(source)
            junk = [_Finalized() for _ in range(100)]
            del junk
            try:
                assert fix_sysconfigdata(path, f"/opt/python/t{index}-{round_}")
            except BaseException as exc:  # collected for the main thread
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- sync_links on its own (fast) -------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_bin_dir_holding_the_python_that_runs_pylock_is_not_told_to_remove_it(
    tmp_path: Path,
) -> None:
    """Field test (Docker): in a python:3.12 builder image, `--bin-dir /usr/local/bin`
    met the image's own python3, and the hint said to remove it: that breaks the venv
    pylock runs from, and the image's Python."""
    from pylock.errors import PylockError
    from pylock.sync.bindir import sync_links

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    with pytest.raises(PylockError, match="was not created by pylock") as caught:
        sync_links(bin_dir, {"python3": tmp_path / "a" / "python3"}, windows=False)
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("it is the Python that runs pylock (")
    assert "remove it" not in caught.value.hint
    assert os.readlink(bin_dir / "python3") == sys.executable


@pytest.mark.parametrize("windows", [False, True], ids=["symlinks", "launchers"])
def test_sync_links_is_idempotent_and_all_or_nothing(tmp_path: Path, windows: bool) -> None:
    from pylock.errors import PylockError
    from pylock.sync.bindir import sync_links

    bin_dir = tmp_path / "bin"
    wanted = {"python3.12": tmp_path / "a" / "python3", "python3": tmp_path / "a" / "python3"}
    first = sync_links(bin_dir, wanted, windows=windows)
    assert sorted(first.created) == ["python3", "python3.12"]
    again = sync_links(bin_dir, wanted, windows=windows)
    assert (again.created, again.removed) == ((), ())
    # A new name next to a foreign file: nothing at all changes.
    suffix = ".cmd" if windows else ""
    (bin_dir / f"python3.13{suffix}").write_text("mine")
    more = {**wanted, "python3.13": tmp_path / "b" / "python3", "python": tmp_path / "b" / "x"}
    with pytest.raises(PylockError, match="was not created by pylock"):
        sync_links(bin_dir, more, windows=windows)
    assert not (bin_dir / f"python{suffix}").exists()
    assert (bin_dir / f"python3.13{suffix}").read_text() == "mine"
    # Re-pointing our own links is fine; removing one keeps a user's replacement.
    (bin_dir / f"python3{suffix}").unlink()
    (bin_dir / f"python3{suffix}").write_text("user")
    result = sync_links(bin_dir, {"python3.12": tmp_path / "c" / "python3"}, windows=windows)
    assert (result.created, result.removed) == (("python3.12",), ())
    assert (bin_dir / f"python3{suffix}").read_text() == "user"
