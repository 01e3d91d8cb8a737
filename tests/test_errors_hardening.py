"""Errors that lead to the fix (issue 10 §4) and exact validation (issue 11 §6), via the CLI.

Each case runs ``main([...])`` as a user would and checks the message: what went wrong,
and the command or setting that fixes it. None may end in a traceback.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

from pylock import cli
from pylock.cli import main
from pylock.config import loads_config
from pylock.errors import ConfigError
from pylock.lockfile import (
    Artifact,
    LockedPython,
    dumps,
    find_conflict,
    is_sha256,
    loads,
    make_lock,
    salvage,
)
from pylock.platforms import Platform, canonical_key
from pylock.versions import Flavor
from tests.httpserver import HttpServer
from tests.indexdata import index_of, pbs
from tests.upstream_server import UpstreamServer, pbs_install_only, pbs_name, sha256

LINUX = "linux-x86_64-gnu"
MAC = "macos-aarch64"
DIGEST = "sha256:" + "0" * 64


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> int:
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache"), **(env or {})}
    return main(["--project", str(project), *args], environ=environ)


def lock_refused(project: Path, capsys: pytest.CaptureFixture[str], config: str) -> str:
    """Write ``config`` as ``pythons.toml`` and lock: it must fail. Returns stderr."""
    write(project, "pythons.toml", config)
    assert run(project, "lock") == 1
    return capsys.readouterr().err


def write(project: Path, name: str, text: str) -> None:
    (project / name).write_text(text, encoding="utf-8")


def locked(project: Path) -> dict[str, Any]:
    document = tomllib.loads((project / "pythons.lock").read_text(encoding="utf-8"))
    return {p["name"]: p for p in document.get("python", [])}


def errors_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("pylock: error: ")]


# -- reading the lock: one set of rules, whole strings ------------------------------------------

GOOD_LOCK = dumps(
    make_lock(
        [
            LockedPython(
                name="app",
                implementation="cpython",  # type: ignore[arg-type]
                version="3.13.9",
                build="20251014",
                variant="default",  # type: ignore[arg-type]
                flavor="install_only_stripped",  # type: ignore[arg-type]
                artifacts=(
                    Artifact(
                        platform=LINUX,
                        url="https://example.invalid/cpython-3.13.9.tar.gz",
                        sha256="ab" * 32,
                    ),
                ),
            )
        ],
        config_digest=DIGEST,
    )
)


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('version = "3.13.9"', 'version = "banana"', "version", "invalid version 'banana'"),
        ('build = "20251014"', 'build = "../../x"', "build", "invalid build tag '../../x'"),
        ('build = "20251014"', 'build = "2025\\n"', "build", "invalid build tag '2025\\n'"),
        ('name = "app"', 'name = "app\\n"', "name", "invalid name 'app\\n'"),
        ('name = "app"', 'name = "con"', "name", "a reserved device name on Windows"),
        ('name = "app"', 'name = "app."', "name", "Windows drops a trailing '.'"),
        ('name = "app"', 'name = "nul.txt"', "name", "a reserved device name on Windows"),
        (
            'sha256 = "' + "ab" * 32 + '"',
            'sha256 = "' + "ab" * 32 + '\\n"',
            "artifacts[0].sha256",
            "invalid sha256",
        ),
        (
            "cpython-3.13.9.tar.gz",
            "cpython-3.13.9\\u001b[31m.tar.gz",
            "artifacts[0].url",
            "control, space or invisible characters",
        ),
        ("https://example.invalid", "https://example.invalid:99999", "artifacts[0].url", "URL"),
        ("cpython-3.13.9.tar.gz", "cpython-3.13.9.exe", "artifacts[0].url", "archive format"),
        (
            f'platform = "{LINUX}"',
            'platform = "linux-amd64"',
            "artifacts[0].platform",
            "'linux-amd64' is not a canonical platform key (write 'linux-x86_64-gnu')",
        ),
    ],
)
def test_sync_refuses_a_lock_field_pythons_toml_would_refuse(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    where: str,
    message: str,
) -> None:
    assert old in GOOD_LOCK
    write(project, "pythons.lock", GOOD_LOCK.replace(old, new, 1))
    assert run(project, "sync", "--platform", LINUX, "--offline") == 1
    err = capsys.readouterr().err
    [line] = errors_of(err)
    assert line.startswith(f"pylock: error: pythons.lock: python[0].{where}: ")
    assert message in line
    assert "\x1b" not in err  # a control character never reaches the terminal raw
    assert "pylock: hint: run `pylock lock`" in err
    assert "Traceback" not in err


def test_the_unedited_lock_reads() -> None:
    assert loads(GOOD_LOCK).pythons[0].build == "20251014"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[python."app\\n"]\nversion = "3.13"\n', "invalid name 'app\\n'"),
        ('[python."com1"]\nversion = "3.13"\n', "a reserved device name on Windows"),
        ('[python."app."]\nversion = "3.13"\n', "Windows drops a trailing '.'"),
        ('[python.app]\nversion = "3.13"\nbuild = "../../x"\n', "invalid build tag '../../x'"),
        (
            '[python.app]\nurl = "https://h.invalid/a.tar.gz"\nsha256 = "' + "ab" * 32 + '\\n"\n',
            "invalid sha256",
        ),
        (
            '[python.app]\nurl = "https://h.invalid/a\\u0000.tar.gz"\n',
            "control, space or invisible characters",
        ),
    ],
)
def test_pythons_toml_applies_the_same_rules(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(table)
    assert message in str(info.value)


def test_whole_string_matches() -> None:
    assert is_sha256("ab" * 32)
    assert not is_sha256("ab" * 32 + "\n")
    assert loads_config('[python.app]\nversion = "3.13"\nbuild = "20251014"\n').pythons[0].build


# -- platform aliases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "key"),
    [
        ("linux-amd64", "linux-x86_64-gnu"),
        ("linux-x64", "linux-x86_64-gnu"),
        ("linux-x86_64", "linux-x86_64-gnu"),
        ("linux-arm64", "linux-aarch64-gnu"),
        ("linux-arm64-musl", "linux-aarch64-musl"),
        ("darwin-arm64", "macos-aarch64"),
        ("osx-x86_64", "macos-x86_64"),
        ("macos-amd64", "macos-x86_64"),
        ("win-amd64", "windows-x86_64"),
        ("win32-x64", "windows-x86_64"),
        ("windows-arm64", "windows-aarch64"),
        ("win32", "windows-i686"),
        ("x86_64-unknown-linux-gnu", "linux-x86_64-gnu"),
        ("aarch64-unknown-linux-musl", "linux-aarch64-musl"),
        ("aarch64-apple-darwin", "macos-aarch64"),
        ("arm64-apple-darwin", "macos-aarch64"),
        ("x86_64-pc-windows-msvc", "windows-x86_64"),
        ("Linux-AMD64", "linux-x86_64-gnu"),
    ],
)
def test_common_spellings_map_to_the_canonical_key(alias: str, key: str) -> None:
    assert canonical_key(alias) == key
    assert Platform.parse(alias).key == key


@pytest.mark.parametrize("junk", ["linux-sparc", "darwin-amd64-gnu", "windows", "", "x" * 10_000])
def test_non_platforms_stay_unknown(junk: str) -> None:
    assert canonical_key(junk) is None
    with pytest.raises(ValueError, match="unknown platform"):
        Platform.parse(junk)


def test_lock_accepts_aliases_and_writes_canonical_keys(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "pythons.toml",
        '[python.app]\nversion = "3.12"\n'
        'platforms = ["linux-amd64", "darwin-arm64", "x86_64-pc-windows-msvc"]\n',
    )
    assert run(project, "lock") == 0
    platforms = [a["platform"] for a in locked(project)["app"]["artifacts"]]
    assert platforms == ["linux-x86_64-gnu", "macos-aarch64", "windows-x86_64"]
    assert run(project, "lock", "--check") == 0
    capsys.readouterr()
    # sync --platform takes the same spellings; offline with an empty cache it names the
    # archive of the platform it understood.
    assert run(project, "sync", "--platform", "aarch64-apple-darwin", "--offline") == 1
    err = capsys.readouterr().err
    assert "aarch64-apple-darwin-install_only" in err
    assert "unknown platform" not in err


#: The config-digest pylock 0.2.0 (f60e1b2) wrote for ALIASED: it digested aliases as written.
_DIGEST_0_2_0 = "sha256:b9b4beb5890286a8dc2976f5532e7fb5e6d4e2825adf833776dfe9a684be7882"
ALIASED = '[python.app]\nversion = "3.12"\nplatforms = ["linux-amd64", "macos-arm64"]\n'


def test_a_lock_pylock_0_2_0_made_for_an_aliased_platform_stays_fresh(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field test 4: the digest now maps aliases to keys, so 0.2.0's locks of such a file
    turned stale on an upgrade (lock --check failed), and teammates on the two versions
    rewrote its digest line back and forth."""
    from pylock.config import config_digests, digests_of_file, load_config
    from pylock.lockfile import dumps, loads
    from pylock.resolve import lock_is_fresh

    write(project, "pythons.toml", ALIASED)
    assert run(project, "lock") == 0
    lock_path = project / "pythons.lock"
    made_by_0_2_0 = lock_path.read_text().replace(
        loads(lock_path.read_text()).config_digest, _DIGEST_0_2_0
    )
    lock_path.write_text(made_by_0_2_0)
    config = load_config(project / "pythons.toml")
    assert config_digests({"python": {"app": {"version": "3.12", "platforms": [
        "linux-amd64", "macos-arm64"]}}})[1] == _DIGEST_0_2_0  # fmt: skip
    assert lock_is_fresh(config, loads(made_by_0_2_0))
    assert _DIGEST_0_2_0 in digests_of_file(project / "pythons.toml")  # sync's check
    capsys.readouterr()
    assert run(project, "lock", "--check") == 0
    # `lock` leaves it as it is, the digest included: nothing for either version to undo.
    assert run(project, "lock") == 0
    assert lock_path.read_text() == made_by_0_2_0
    assert "changed since" not in capsys.readouterr().err
    # A real change is still a change.
    write(project, "pythons.toml", ALIASED.replace('"3.12"', '"3.13"'))
    assert run(project, "lock", "--check") == 1
    assert dumps(loads(made_by_0_2_0)) == made_by_0_2_0


def test_an_alias_and_its_key_are_one_platform(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = '[python.app]\nversion = "3.12"\nplatforms = ["linux-amd64", "linux-x86_64-gnu"]\n'
    assert "'linux-x86_64-gnu' is listed twice" in lock_refused(project, capsys, config)


# -- resolution messages -------------------------------------------------------------------------


def everywhere(version: str, tag: str, *platforms: str, **kw: Any) -> list[Any]:
    return [pbs(version, tag, p, **kw) for p in platforms]


def test_only_prereleases_match_says_so_and_names_the_setting(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bundled += everywhere("3.14.2", "20260110", LINUX)
    bundled += everywhere("3.15.0a7", "20260325", LINUX)
    bundled += everywhere("3.15.0rc1", "20260814", LINUX)
    err = lock_refused(
        project, capsys, f'[python.app]\nversion = "3.15"\nplatforms = ["{LINUX}"]\n'
    )
    assert errors_of(err) == [
        "pylock: error: app: only pre-releases match version '3.15' (3.15.0rc1, 3.15.0a7); "
        "pre-releases are not chosen unless asked for"
    ]
    assert "pylock: hint: set prereleases = true in [python.app]" in err
    assert "newest there" not in err
    write(
        project,
        "pythons.toml",
        f'[python.app]\nversion = "3.15"\nprereleases = true\nplatforms = ["{LINUX}"]\n',
    )
    assert run(project, "lock") == 0
    assert locked(project)["app"]["version"] == "3.15.0rc1"


def test_no_common_build_names_the_newest_shared_version_not_a_pin(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bundled += [pbs("3.13.9", "20251014", LINUX), pbs("3.13.9", "20251010", MAC)]
    bundled += everywhere("3.13.7", "20250901", LINUX, MAC)
    bundled += everywhere("3.12.11", "20250901", LINUX, MAC)
    err = lock_refused(
        project, capsys, f'[python.app]\nversion = "3.13.9"\nplatforms = ["{LINUX}", "{MAC}"]\n'
    )
    assert errors_of(err) == [
        "pylock: error: app: cpython 3.13.9 exists on every platform, but in no one build "
        "that all of them share:",
        f"pylock: error:   {LINUX}  3.13.9+20251014",
        f"pylock: error:   {MAC}     3.13.9+20251010",
    ]
    [hint] = [line for line in err.splitlines() if line.startswith("pylock: hint:")]
    assert "newest version with one build on all these platforms is 3.13.7" in hint
    assert 'set version = "3.13.7"' in hint
    assert "split the entry" in hint
    assert "build =" not in hint and "`build`" not in hint


def test_a_flavor_nobody_offers_names_the_flavor_and_the_versions_that_have_it(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bundled += everywhere("3.13.9", "20251014", LINUX)
    bundled += everywhere("3.13.8", "20251007", LINUX, flavor=Flavor.FULL)
    bundled += everywhere("3.12.11", "20251007", LINUX, flavor=Flavor.FULL)
    err = lock_refused(
        project,
        capsys,
        f'[python.app]\nversion = "3.13.9"\nflavor = "full"\nplatforms = ["{LINUX}"]\n',
    )
    assert errors_of(err) == [
        f"pylock: error: app: no build of cpython ==3.13.9 for {LINUX} comes in flavor "
        "'full'; versions that do: 3.13.8, 3.12.11"
    ]
    assert "pylock: hint: pick one of those versions, or another flavor" in err


# -- a broken lock does not block `lock` ---------------------------------------------------------

THREE = f"""
[python.app]
version = ">=3.12,<3.14"
platforms = ["{LINUX}"]

[python.web]
version = "3.11"
platforms = ["{LINUX}"]

[python.extra]
version = "3.10"
platforms = ["{LINUX}"]
"""


def conflicted(project: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A lock whose two sides, as git leaves them, lock different builds and entries."""
    index_builds = [
        *everywhere("3.13.9", "20251014", LINUX),
        *everywhere("3.12.11", "20251014", LINUX),
        *everywhere("3.11.14", "20251014", LINUX),
        *everywhere("3.10.18", "20250601", LINUX),
        *everywhere("3.10.19", "20251014", LINUX),
    ]
    from pylock.config import loads_config as parse
    from pylock.platforms import Platform as P
    from pylock.resolve import resolve

    def lock_of(config: str) -> str:
        lock = resolve(
            parse(config),
            index_of(*index_builds),
            previous=None,
            upgrade=True,
            host_platform=P.parse(LINUX),
        )
        return dumps(lock)

    ours = lock_of(THREE.replace('">=3.12,<3.14"', '"3.13"').split("[python.extra]")[0])
    theirs = lock_of(THREE.replace('"3.10"', '"3.10.18"').replace('">=3.12,<3.14"', '"3.12"'))
    head = ours.index("[[python]]")
    text = (
        ours[:head]
        + "<<<<<<< HEAD\n"
        + ours[head:]
        + "||||||| base\nlock-version = 1\n=======\n"
        + theirs[theirs.index("[[python]]") :]
        + ">>>>>>> feature\n"
    )
    write(project, "pythons.lock", text)
    return {p.name: p for p in loads(ours).pythons}, {p.name: p for p in loads(theirs).pythons}


def test_sync_on_a_conflicted_lock_names_pylock_lock(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conflicted(project)
    assert run(project, "sync", "--offline") == 1
    err = capsys.readouterr().err
    assert errors_of(err) == [
        "pylock: error: pythons.lock: unresolved git merge conflict (line 6: '<<<<<<<')"
    ]
    assert "pylock: hint: run `pylock lock`" in err
    write(project, "pythons.toml", THREE)
    assert run(project, "lock", "--check") == 1
    assert "run `pylock lock`" in capsys.readouterr().err


def test_lock_recovers_keeping_fitting_builds_from_both_sides(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = conflicted(project)
    # The index now has newer builds than either side locked: kept entries prove recovery.
    bundled += everywhere("3.13.10", "20251201", LINUX)
    bundled += everywhere("3.11.15", "20251201", LINUX)
    bundled += everywhere("3.10.19", "20251201", LINUX)
    write(project, "pythons.toml", THREE)
    assert run(project, "lock") == 0
    err = capsys.readouterr().err
    after = locked(project)
    # app: ours has 3.13.9, theirs 3.12.11; both fit, the newer one is kept.
    assert (after["app"]["version"], after["app"]["build"]) == ("3.13.9", "20251014")
    # web: both sides lock the same build.
    assert (after["web"]["version"], after["web"]["build"]) == ("3.11.14", "20251014")
    # extra: only theirs has it; its older build still fits "3.10" and is kept.
    assert (after["extra"]["version"], after["extra"]["build"]) == ("3.10.18", "20250601")
    assert after["extra"]["artifacts"][0]["sha256"] == theirs["extra"].artifacts[0].sha256
    assert "<<<<<<<" not in (project / "pythons.lock").read_text()
    assert (
        "pylock: warning: pythons.lock had unresolved git merge-conflict markers (line 6); "
        "kept app (cpython 3.13.9+20251014), extra (cpython 3.10.18+20250601), "
        "web (cpython 3.11.14+20251014) from both sides of the conflict" in err
    )
    assert ours["app"].version == "3.13.9"
    assert run(project, "lock", "--check") == 0


def test_the_kept_interpreters_of_a_large_salvaged_lock_are_named_ten_at_most() -> None:
    """Scale attack: after a merge conflict in a 1,000-entry lock, the warning named every
    kept interpreter, in one line of 40,000 characters."""
    from pylock.project import kept_words
    from tests.indexdata import locked_python

    kept = [locked_python(f"app{n:04}", "3.13.9", "20251014", ()) for n in range(1000)]
    words = kept_words(kept)
    assert words.startswith("app0000 (cpython 3.13.9+20251014), app0001 (")
    assert "app0009" in words and "app0010" not in words
    assert words.endswith(", 990 more")
    assert kept_words(kept[:3]).count("(cpython") == 3 and "more" not in kept_words(kept[:3])


def test_lock_resolves_afresh_what_no_side_fits(
    project: Path, bundled: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    conflicted(project)
    bundled += everywhere("3.14.2", "20260110", LINUX)
    bundled += everywhere("3.11.14", "20251014", LINUX)
    write(
        project,
        "pythons.toml",
        f'[python.app]\nversion = "3.14"\nplatforms = ["{LINUX}"]\n'
        f'[python.web]\nversion = "3.11"\nplatforms = ["{LINUX}"]\n',
    )
    assert run(project, "lock") == 0
    err = capsys.readouterr().err
    after = locked(project)
    assert sorted(after) == ["app", "web"]
    assert after["app"]["version"] == "3.14.2"
    assert "kept web (cpython 3.11.14+20251014)" in err
    assert "resolved the rest from pythons.toml" in err


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"lock-version = 1\n[[python]]\nname = ", id="truncated"),
        pytest.param(b"lock-version = 1\n" + b"[" * 100_000, id="deep"),
        pytest.param(b"<<<<<<< HEAD\nlock-version = 1\n=======\n", id="unterminated-conflict"),
        pytest.param(b"lock-version = 1\n\x00\x01\x02", id="control-bytes"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_corrupt_lock_never_blocks_lock_and_sync_says_how_to_fix_it(
    project: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    (project / "pythons.lock").write_bytes(content)
    write(project, "pythons.toml", f'[python.app]\nversion = "3.12"\nplatforms = ["{LINUX}"]\n')
    assert run(project, "sync", "--offline") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(errors_of(err)) >= 1
    assert "pylock: hint: run `pylock lock`" in err
    assert run(project, "lock") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert locked(project)["app"]["version"].startswith("3.12.")
    if content:
        assert "pylock: warning: pythons.lock" in err


def test_salvage_and_conflict_split_are_pure() -> None:
    assert find_conflict(GOOD_LOCK) is None
    assert salvage("not toml [[[") == []
    assert [p.name for p in salvage(GOOD_LOCK.replace('version = "3.13.9"', 'version = "x"'))] == []
    both = GOOD_LOCK.replace(
        'name = "app"', '<<<<<<< a\nname = "app"\n=======\nname = "web"\n>>>>>>> b'
    )
    assert [p.name for p in salvage(both)] == ["app", "web"]


# -- failures during sync --------------------------------------------------------------------------


def _entry(name: str, path: Path, data: bytes | None, *, build: str | None, sha: str) -> Any:
    if data is not None:
        path.write_bytes(data)
    return LockedPython(
        name=name,
        implementation="cpython",  # type: ignore[arg-type]
        version="3.13.9",
        build=build,
        variant="default",  # type: ignore[arg-type]
        flavor="install_only_stripped",  # type: ignore[arg-type]
        artifacts=(Artifact(platform=LINUX, url=path.as_uri(), sha256=sha),),
    )


def test_one_interpreter_that_cannot_be_had_does_not_stop_the_others(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    good = pbs_install_only("3.13.9")
    name = pbs_name("3.13.9", "20251014", "x86_64-unknown-linux-gnu")
    entries = [
        _entry("good", files / name, good, build="20251014", sha=sha256(good)),
        _entry("gone", files / ("gone-" + name), None, build="20251014", sha="cd" * 32),
        _entry("wrong", files / ("wrong-" + name), good + b"x", build="20251014", sha="ef" * 32),
    ]
    write(project, "pythons.lock", dumps(make_lock(entries, config_digest=DIGEST)))
    assert run(project, "sync", "--platform", LINUX) == 1
    err = capsys.readouterr().err
    assert (project / ".pythons" / "good" / "bin" / "python3.13").is_file(), err
    assert not (project / ".pythons" / "gone").exists()
    assert not (project / ".pythons" / "wrong").exists()
    lines = errors_of(err)
    assert any(line.startswith("pylock: error: gone: ") for line in lines), err
    assert any(line.startswith("pylock: error: wrong: sha256 mismatch") for line in lines), err
    assert lines[-1] == (
        "pylock: error: 2 of 3 interpreter(s) could not be installed: gone, wrong "
        "(1 installed or up to date)"
    )
    assert "Traceback" not in err
    # The fast path must not record a sync that failed: the next run tries again.
    assert run(project, "sync", "--platform", LINUX) == 1
    assert run(project, "verify") == 0


def _mismatch(project: Path, tmp_path: Path, *, build: str | None, **kw: str) -> str:
    data = pbs_install_only("3.13.9")
    path = tmp_path / pbs_name("3.13.9", "20251014", "x86_64-unknown-linux-gnu")
    entry = _entry("app", path, data, build=build, sha=hashlib.sha256(b"other").hexdigest())
    if "url" in kw:
        entry = attrs.evolve(entry, artifacts=(attrs.evolve(entry.artifacts[0], url=kw["url"]),))
    write(project, "pythons.lock", dumps(make_lock([entry], config_digest=DIGEST)))
    return path.as_uri()


def test_hash_mismatch_from_upstream_names_a_command_that_moves_on(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _mismatch(project, tmp_path, build="20251014")
    assert run(project, "sync", "--platform", LINUX) == 1
    err = capsys.readouterr().err
    assert "pylock: error: app: sha256 mismatch for file://" in err
    [hint] = [line for line in err.splitlines() if line.startswith("pylock: hint:")]
    assert "upstream now serves other bytes for cpython 3.13.9+20251014" in hint
    assert "`pylock lock --refresh --upgrade-python app`" in hint
    assert "`pylock lock --upgrade`" not in hint


def test_hash_mismatch_of_a_direct_url_says_relocking_downloads_it_again(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _mismatch(project, tmp_path, build=None)
    assert run(project, "sync", "--platform", LINUX) == 1
    err = capsys.readouterr().err
    assert "changed since it was locked" in err
    assert "`pylock lock --upgrade-python app` downloads it again" in err


def test_hash_mismatch_through_a_mirror_blames_the_mirror(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = _mismatch(
        project,
        tmp_path,
        build="20251014",
        url="https://github.com/astral-sh/python-build-standalone/releases/download/20251014/"
        + pbs_name("3.13.9", "20251014", "x86_64-unknown-linux-gnu").replace("+", "%2B"),
    )
    mirror = served.rsplit("/", 1)[0] + "/"
    prefix = "https://github.com/astral-sh/python-build-standalone/releases/download/20251014/"
    assert run(project, "sync", "--platform", LINUX, "--rewrite", f"{prefix}={mirror}") == 1
    err = capsys.readouterr().err
    assert "pylock: hint: the file came through a mirror or URL rewrite" in err
    assert "`pylock mirror`" in err


# -- outdated without a network, and a missing releases API ----------------------------


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    original = cli.Context.fetch_options

    def fast(self: cli.Context) -> Any:
        return attrs.evolve(original(self), backoff=0.01)

    monkeypatch.setattr(cli.Context, "fetch_options", fast)


def test_outdated_without_network_is_one_error_naming_the_url_once(
    project: Path, capsys: pytest.CaptureFixture[str], quick_retries: None
) -> None:
    write(project, "pythons.toml", f'[python.app]\nversion = "3.12"\nplatforms = ["{LINUX}"]\n')
    assert run(project, "lock") == 0
    capsys.readouterr()
    dead = f"http://127.0.0.1:{_dead_port()}"
    rewrites = [
        f"https://raw.githubusercontent.com/={dead}/raw/",
        f"https://api.github.com/={dead}/api/",
        f"https://github.com/={dead}/gh/",
    ]
    args = [arg for pair in rewrites for arg in ("--rewrite", pair)]
    assert run(project, "outdated", *args) == 1
    err = capsys.readouterr().err
    url = (
        "https://raw.githubusercontent.com/astral-sh/python-build-standalone/"
        "latest-release/latest-release.json"
    )
    # The host contacted is named, not only the URL it stands in for (README attack).
    target = f"{dead}/raw/astral-sh/python-build-standalone/latest-release/latest-release.json"
    assert errors_of(err) == [
        f"pylock: error: cannot reach {target} (rewritten from {url}) to look for newer builds"
    ]
    # Each retry is said, naming the host asked; the lock's URL only in the error.
    retries = [line for line in err.splitlines() if "retrying in " in line]
    assert retries and all(line.startswith(f"{target}: ") for line in retries)
    assert sum("latest-release.json" in line for line in err.splitlines()) == 1 + len(retries)
    assert err.count(url) == 1
    assert "`pylock outdated --offline`" in err
    assert run(project, "outdated", "--offline", *args) == 0
    # Behind a proxy that is down, the hint names it, as sync's error does.
    through = f"https://raw.githubusercontent.com/={dead.replace('http:', 'https:')}/raw/"
    assert run(project, "outdated", "--rewrite", through, env={"HTTPS_PROXY": dead}) == 1
    err = capsys.readouterr().err
    assert "hint: check the proxy in HTTPS_PROXY, or bypass it for this host with NO_PROXY" in err
    assert "`pylock outdated --offline`" in err


def test_a_mirror_that_answers_no_to_a_listing_is_named_with_its_answer_and_hint(
    project: Path, capsys: pytest.CaptureFixture[str], server: HttpServer
) -> None:
    """Mirror field test: `lock --refresh` through a rewrite said "https://raw.githubuser
    content.com/...: HTTP 404 from upstream" (the canonical URL, no hint), and `outdated`
    said it could not reach a server that had answered."""
    write(project, "pythons.toml", f'[python.app]\nversion = "3.12"\nplatforms = ["{LINUX}"]\n')
    assert run(project, "lock") == 0
    capsys.readouterr()
    base = server.base_url
    args = [
        "--rewrite",
        f"https://raw.githubusercontent.com/={base}/raw/",
        "--rewrite",
        f"https://api.github.com/={base}/api/",
        "--rewrite",
        f"https://github.com/={base}/gh/",
    ]
    assert run(project, "lock", "--refresh", *args) == 1
    err = capsys.readouterr().err
    (error,) = errors_of(err)
    assert error.startswith("pylock: error: HTTP 404 Not Found for ")
    assert f"{base}/raw/astral-sh/python-build-standalone/latest-release" in error
    assert "pylock: hint: check that the mirror holds the file asked for" in err
    assert run(project, "outdated", *args) == 1
    err = capsys.readouterr().err
    (error,) = errors_of(err)
    assert error.startswith("pylock: error: cannot look for newer builds: HTTP 404 Not Found for ")
    hint = "check that the mirror holds the file asked for; or run `pylock outdated --offline`"
    assert hint in err


class _NoApi(UpstreamServer):
    """A mirror of downloads only: the GitHub releases API answers with ``api_status``."""

    api_status: int | None = 404
    api_hits = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self.api_hits += 1
            if self.api_status is None:
                assert request.transport is not None
                request.transport.close()  # no answer at all
                return web.Response(status=500)
            return web.Response(status=self.api_status, text="no API here")
        return await super().handle(request)


@pytest.mark.parametrize("status", [404, 502, None], ids=["404", "502", "no-answer"])
def test_missing_releases_api_warns_and_uses_latest_release_and_sums(
    project: Path, capsys: pytest.CaptureFixture[str], quick_retries: None, status: int | None
) -> None:
    with _NoApi() as server:
        server.api_status = status
        body = pbs_install_only("3.13.99")
        name = pbs_name("3.13.99", "20261120", "x86_64-unknown-linux-gnu")
        server.add_pbs_release("20261120", "2026-11-20T09:00:00Z", {name: body})
        write(
            project,
            "pythons.toml",
            f'[python.app]\nversion = "3.13"\nplatforms = ["{LINUX}"]\n',
        )
        args = server.rewrite_args()
        assert run(project, "lock") == 0
        assert run(project, "outdated", *args) == 0
        captured = capsys.readouterr()
        assert "3.13.99+20261120 (newer version)" in captured.out
        assert "pylock: warning: the GitHub releases API did not answer" in captured.err
        assert run(project, "lock", "--refresh", "--upgrade", *args) == 0
        captured = capsys.readouterr()
        assert "adding only the latest release 20261120" in captured.err
        assert locked(project)["app"]["artifacts"][0]["sha256"] == sha256(body)
        assert server.api_hits > 0


# -- the console script, as a user runs it ---------------------------------------------


def test_console_script_reports_a_conflicted_lock_without_a_traceback(project: Path) -> None:
    conflicted(project)
    done = subprocess.run(
        [sys.executable, "-m", "pylock", "--project", str(project), "sync", "--offline"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("pylock: error: pythons.lock: unresolved git merge conflict")
    assert "Traceback" not in done.stderr


# -- archive member names with control characters --------------------------------------


def _tar_gz(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "evil", ["python/bin/x\x1b]0;owned\x07", "python/lib/a\nb.py", "python/lib/\x9bc.py"]
)
def test_member_names_with_control_characters_are_refused_and_shown_escaped(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], evil: str
) -> None:
    data = _tar_gz({"python/bin/python3.13": b"#!/bin/sh\n", evil: b"x"})
    path = tmp_path / pbs_name("3.13.9", "20251014", "x86_64-unknown-linux-gnu")
    entry = _entry("app", path, data, build="20251014", sha=sha256(data))
    write(project, "pythons.lock", dumps(make_lock([entry], config_digest=DIGEST)))
    assert run(project, "sync", "--platform", LINUX) == 1
    err = capsys.readouterr().err
    assert "control character in member name" in err
    assert not any(c in err for c in "\x1b\x07\x9b")
    [line] = [line for line in errors_of(err) if "control character" in line]
    assert ascii(evil)[1:-1] in line  # the whole name, escaped, on the one error line
    assert not (project / ".pythons" / "app").exists()
    assert "Traceback" not in err
