"""Tests for pylock.resolve: one build per interpreter, flavors, pins, minimal change, errors."""

from __future__ import annotations

import os
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from pylock.config import Config, PythonRequest, loads_config
from pylock.diff import (
    Change,
    diff_locks,
    diff_python,
    empty_lock,
    summary_line,
    summary_lines,
)
from pylock.errors import ResolutionError, UsageError
from pylock.index.model import LIVE_SOURCE, Build, Index
from pylock.index.snapshot import load_bundled
from pylock.lockfile import Artifact, LockedPython, LockFile, dumps, loads
from pylock.platforms import Platform
from pylock.resolve import (
    lock_direct,
    lock_is_fresh,
    resolve,
    satisfies,
)
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import fake_sha, graalpy, index_of, pbs, pypy, uv_json

LINUX = "linux-x86_64-gnu"
PBS_DL = "https://github.com/astral-sh/python-build-standalone/releases/download"
ARM = "linux-aarch64-gnu"
MAC = "macos-aarch64"
WIN = "windows-x86_64"
HOST = Platform.parse(LINUX)
DIGEST = "sha256:" + "0" * 64


def request(name: str = "app", **fields: Any) -> PythonRequest:
    fields.setdefault("version", "3.13")
    fields.setdefault("platforms", (LINUX, MAC))
    return PythonRequest(name=name, **fields)


def config(*requests: PythonRequest, digest: str = DIGEST) -> Config:
    return Config(pythons=tuple(sorted(requests, key=lambda r: r.name)), digest=digest)


def lock_one(index: Index, req: PythonRequest, **kwargs: Any) -> LockedPython:
    kwargs.setdefault("previous", None)
    kwargs.setdefault("upgrade", False)
    kwargs.setdefault("host_platform", HOST)
    entry = resolve(config(req), index, **kwargs).get(req.name)
    assert entry is not None
    return entry


def same_everywhere(version: str, tag: str, *platforms: str, **kw: Any) -> list[Build]:
    return [pbs(version, tag, p, **kw) for p in platforms]


# -- choosing one build ------------------------------------------------------------------


def test_newest_build_common_to_every_platform() -> None:
    index = index_of(
        *same_everywhere("3.13.8", "20251007", LINUX, MAC),
        *same_everywhere("3.13.9", "20251014", LINUX),  # not yet on macOS
        *same_everywhere("3.14.0", "20251014", LINUX, MAC),  # outside the request
        *same_everywhere("3.13.7", "20250918", LINUX, MAC),
    )
    entry = lock_one(index, request())
    assert (entry.version, entry.build, entry.flavor) == (
        "3.13.8",
        "20251007",
        Flavor.INSTALL_ONLY_STRIPPED,
    )
    assert entry.platforms == (LINUX, MAC)
    wanted = {b.platform: b for b in index.builds if b.version == "3.13.8"}
    for artifact in entry.artifacts:
        assert artifact.url == wanted[artifact.platform].url
        assert artifact.sha256 == wanted[artifact.platform].sha256
    # A single platform gets its own newest.
    assert lock_one(index, request(platforms=(LINUX,))).version == "3.13.9"


def test_every_interpreter_that_cannot_be_locked_is_said_at_once() -> None:
    """Scale attack: a pythons.toml of 100 entries that no build fits said the first one
    only, to be fixed and run again, 99 times."""
    index = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    good = request("good")
    bad = [request(f"bad{n:02}", version="3.99") for n in range(30)]
    with pytest.raises(ResolutionError) as info:
        resolve(config(good, *bad), index, previous=None, upgrade=False, host_platform=HOST)
    message = info.value.message
    assert message.startswith("30 interpreters cannot be locked:\n")
    assert all(f"bad{n:02}: no build of cpython ==3.99.*" in message for n in range(5))
    assert "bad05: no build" not in message  # the rest are named, not told in full
    assert message.endswith(
        "25 more cannot be locked either: "
        + ", ".join(f"bad{n:02}" for n in range(5, 25))
        + ", and 5 more"
    )
    assert "good" not in message
    assert info.value.hint is not None and info.value.hint.startswith("change `version`")
    assert ";" not in info.value.hint  # the same hint once, not thirty times
    # One alone is the error it always was.
    with pytest.raises(ResolutionError) as one:
        resolve(config(good, bad[0]), index, previous=None, upgrade=False, host_platform=HOST)
    assert one.value.message.startswith("bad00: no build of cpython ==3.99.*")


def test_the_hints_of_several_interpreters_name_whose_they_are() -> None:
    """UX: a debug entry's "remove the platforms with no ... builds at all (windows-x86_64)"
    and a GraalPy entry's hint were run together in one line, which read as said of the
    GraalPy entry, that Windows does have."""
    index = index_of(
        pbs("3.14.7", "20260814", LINUX, variant=Variant.DEBUG, flavor=Flavor.FULL),
        pbs("3.14.7", "20260814", WIN),
        graalpy("3.12.0", "25.2.4", LINUX),
        graalpy("3.12.0", "25.0.1", WIN),
    )
    dbg = request("dbg", version="3.14", variant=Variant.DEBUG, platforms=(LINUX, WIN))
    graal = request(
        "graal", implementation=Implementation.GRAALPY, version="3.12", platforms=(LINUX, WIN)
    )
    with pytest.raises(ResolutionError) as info:
        resolve(config(dbg, graal), index, previous=None, upgrade=False, host_platform=HOST)
    hint = info.value.hint
    assert hint is not None and hint.startswith("dbg: remove the platforms with no ")
    assert "; graal: " in hint


def test_graalpy_under_different_releases_per_platform_is_pointed_at_refresh() -> None:
    """GraalPy user: 3.12 for Linux and Intel macOS, which the bundled index has as 25.2.4
    and 25.0.1 (its newest per platform), was told to go back to 3.11, where `--refresh`
    reads every release and locks 25.0.1 for both."""
    graal = request(
        "graal", implementation=Implementation.GRAALPY, version="3.12", platforms=(LINUX, MAC)
    )
    builds = [graalpy("3.12.0", "25.2.4", LINUX), graalpy("3.12.0", "25.0.1", MAC)]
    with pytest.raises(ResolutionError) as info:
        lock_one(index_of(*builds), graal)
    assert info.value.hint is not None
    assert info.value.hint.startswith(
        "`pylock lock --refresh` reads every graalpy release upstream, where an older build "
        "of 3.12.0 may have all these platforms; or "
    )
    live = Index(builds=builds, source=f"test + {LIVE_SOURCE}", source_date="2026-01-01")
    with pytest.raises(ResolutionError) as info:
        lock_one(live, graal)  # read upstream already
    assert info.value.hint is not None and "--refresh" not in info.value.hint


@pytest.mark.parametrize("version", ["3.12.8", ">=3.12.1", "==3.12.8"])
def test_a_graalpy_patch_level_is_told_that_builds_go_by_series(version: str) -> None:
    """GraalPy user: `version = "3.12.8"`, what `graalpy --version` prints, matched none of
    the builds, listed as 3.12.0 (as uv lists them), and the hint said only to change
    `version` or `build`."""
    index = index_of(graalpy("3.12.0", "25.2.4", LINUX), graalpy("3.11.0", "24.2.2", LINUX))
    graal = request("g", implementation=Implementation.GRAALPY, version=version, platforms=(LINUX,))
    with pytest.raises(ResolutionError) as info:
        lock_one(index, graal)
    assert info.value.hint == (
        "GraalPy builds are listed by Python series, as 3.12.0 (as uv lists them), not by "
        'the patch level `graalpy --version` reports: set version = "3.12"'
    )
    assert lock_one(index, attrs.evolve(graal, version="3.12")).version == "3.12.0"


def test_a_platform_without_the_variant_is_not_said_to_have_no_builds_at_all() -> None:
    """UX: a debug entry for Windows (PBS publishes no debug builds there) was told
    "pylock knows no cpython builds for windows-x86_64", which it does."""
    index = index_of(
        pbs("3.14.7", "20260814", LINUX, variant=Variant.DEBUG, flavor=Flavor.FULL),
        pbs("3.14.7", "20260814", WIN),
    )
    for platforms, hint in [
        (
            (WIN,),
            "pylock knows no cpython debug builds for windows-x86_64: lock for other platforms",
        ),
        (
            (LINUX, WIN),
            "remove the platforms with no cpython debug builds at all (windows-x86_64), "
            "or change `version`, `build` or `flavor`",
        ),
    ]:
        with pytest.raises(ResolutionError) as info:
            lock_one(index, request(version="3.14", variant=Variant.DEBUG, platforms=platforms))
        assert info.value.hint == hint


def test_same_version_in_different_builds_is_not_mixed() -> None:
    index = index_of(
        pbs("3.10.13", "20240224", LINUX),
        pbs("3.10.13", "20230826", MAC),
        *same_everywhere("3.10.12", "20230726", LINUX, MAC),
    )
    entry = lock_one(index, request(version="3.10"))
    assert (entry.version, entry.build) == ("3.10.12", "20230726")


def test_newer_build_of_the_same_version_wins_by_publication_date() -> None:
    builds = [
        *same_everywhere("3.12.9", "20250205", LINUX, MAC),
        *same_everywhere("3.12.9", "20250323", LINUX, MAC),
        *same_everywhere("3.12.9", "20251014", LINUX, MAC),
    ]
    assert lock_one(index_of(*builds), request(version="3.12")).build == "20251014"
    # Tag 20250323 was really published in 2026: it is the newest.
    late = index_of(*builds, tag_dates={"20250323": "2026-03-23"})
    assert lock_one(late, request(version="3.12")).build == "20250323"


def test_one_version_spelled_several_ways_locks_one_spelling_whatever_the_hash_seed() -> None:
    """A listing with ``3.13.99`` also named ``3.13.099`` (an asset name that parses
    oddly): the lock is the same in every process, with the canonical spelling, not one
    picked by the order of a set (string hashing differs per process)."""
    import subprocess
    import sys

    script = (
        "from tests.indexdata import index_of, pbs\n"
        "from tests.test_resolve import lock_one, request, LINUX\n"
        "spellings = ['3.13.099', '3.13.99', '3.13.0099', '3.13.00099']\n"
        "index = index_of(*(pbs(v, '20261120', LINUX) for v in spellings))\n"
        "print(lock_one(index, request(platforms=(LINUX,))).version)\n"
    )
    picked = set()
    for seed in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert done.returncode == 0, done.stderr
        picked.add(done.stdout.strip())
    assert picked == {"3.13.99"}


def test_newer_version_beats_newer_build() -> None:
    index = index_of(
        *same_everywhere("3.12.10", "20250409", LINUX, MAC),
        *same_everywhere("3.12.9", "20251014", LINUX, MAC),
    )
    assert lock_one(index, request(version="3.12")).version == "3.12.10"


def test_build_pin() -> None:
    index = index_of(
        *same_everywhere("3.12.11", "20251007", LINUX, MAC),
        *same_everywhere("3.12.11", "20250723", LINUX, MAC),
        *same_everywhere("3.12.12", "20251014", LINUX, MAC),
    )
    entry = lock_one(index, request(version="3.12.11", build="20250723"))
    assert (entry.version, entry.build) == ("3.12.11", "20250723")
    assert lock_one(index, request(version="3.12", build="20251007")).version == "3.12.11"
    with pytest.raises(ResolutionError, match="build 20240101"):
        lock_one(index, request(version="3.12", build="20240101"))


def test_prereleases_only_when_asked() -> None:
    index = index_of(
        *same_everywhere("3.14.0", "20251014", LINUX, MAC),
        *same_everywhere("3.15.0a7", "20260325", LINUX, MAC),
        *same_everywhere("3.15.0rc1", "20260814", LINUX, MAC),
    )
    assert lock_one(index, request(version=">=3.14")).version == "3.14.0"
    assert lock_one(index, request(version=">=3.14", prereleases=True)).version == "3.15.0rc1"
    # Naming a pre-release asks for it.
    assert lock_one(index, request(version="3.15.0a7")).version == "3.15.0a7"
    with pytest.raises(ResolutionError, match=r"only pre-releases match version '3.15'"):
        lock_one(index, request(version="3.15"))
    assert lock_one(index, request(version="3.15", prereleases=True)).version == "3.15.0rc1"


@pytest.mark.parametrize("version", [">=3.12,!=3.14.0rc2", "!=3.15.0a7", ">=3.14,<3.15.0rc1"])
def test_excluding_a_prerelease_does_not_ask_for_prereleases(version: str) -> None:
    # Field report #1: `!=3.14.0rc2` used to switch every pre-release on.
    index = index_of(
        *same_everywhere("3.14.0", "20251014", LINUX, MAC),
        *same_everywhere("3.15.0a7", "20260325", LINUX, MAC),
        *same_everywhere("3.15.0rc1", "20260814", LINUX, MAC),
    )
    entry = lock_one(index, request(version=version))
    assert entry.version == "3.14.0"
    assert satisfies(request(version=version), entry, platforms=(LINUX, MAC))


def test_variant_is_exact() -> None:
    index = index_of(
        *same_everywhere("3.14.0", "20251014", LINUX, MAC),
        *same_everywhere("3.14.0", "20251014", LINUX, MAC, variant=Variant.FREETHREADED),
        *same_everywhere("3.14.1", "20251120", LINUX, MAC),  # no free-threaded build
    )
    entry = lock_one(index, request(version="3.14", variant=Variant.FREETHREADED))
    assert (entry.version, entry.variant) == ("3.14.0", Variant.FREETHREADED)
    assert all("freethreaded" in a.url for a in entry.artifacts)
    assert lock_one(index, request(version="3.14")).version == "3.14.1"


# -- flavors ------------------------------------------------------------------------------


def test_debug_falls_back_to_full() -> None:
    index = index_of(
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
        *same_everywhere(
            "3.13.9", "20251014", LINUX, MAC, variant=Variant.DEBUG, flavor=Flavor.FULL
        ),
    )
    entry = lock_one(index, request(variant=Variant.DEBUG))
    assert (entry.variant, entry.flavor) == (Variant.DEBUG, Flavor.FULL)
    assert all(a.url.endswith("-debug-full.tar.zst") for a in entry.artifacts)
    # An explicit install_only request still falls back to full...
    assert lock_one(index, request(variant=Variant.DEBUG, flavor=Flavor.INSTALL_ONLY)).flavor is (
        Flavor.FULL
    )


def test_explicit_full_is_honoured() -> None:
    index = index_of(
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
        *same_everywhere("3.13.9", "20251014", LINUX, MAC, flavor=Flavor.FULL),
    )
    assert lock_one(index, request()).flavor is Flavor.INSTALL_ONLY_STRIPPED
    entry = lock_one(index, request(flavor=Flavor.FULL))
    assert entry.flavor is Flavor.FULL
    assert all(a.url.endswith("-pgo+lto-full.tar.zst") for a in entry.artifacts)


def test_install_only_before_stripped_builds_existed() -> None:
    index = index_of(
        *same_everywhere("3.12.4", "20240713", LINUX, MAC, flavor=Flavor.INSTALL_ONLY),
        *same_everywhere("3.12.4", "20240713", LINUX, MAC, flavor=Flavor.FULL),
    )
    assert lock_one(index, request(version="3.12")).flavor is Flavor.INSTALL_ONLY
    with pytest.raises(ResolutionError):
        # install_only_stripped alone is not a request: it always falls back...
        lock_one(index_of(), request(version="3.12"))


def test_freethreaded_313_only_full_on_some_platforms_locks_full_everywhere() -> None:
    ft = Variant.FREETHREADED
    index = index_of(
        pbs("3.13.9", "20251014", LINUX, variant=ft),
        pbs("3.13.9", "20251014", LINUX, variant=ft, flavor=Flavor.FULL),
        pbs("3.13.9", "20251014", MAC, variant=ft, flavor=Flavor.FULL),
    )
    entry = lock_one(index, request(variant=ft))
    assert entry.flavor is Flavor.FULL
    for artifact in entry.artifacts:
        assert artifact.filename.endswith("-freethreaded+pgo+lto-full.tar.zst")
    # On Linux alone the stripped archive is preferred.
    assert lock_one(index, request(variant=ft, platforms=(LINUX,))).flavor is (
        Flavor.INSTALL_ONLY_STRIPPED
    )


def test_build_with_no_flavor_in_common_is_passed_over() -> None:
    index = index_of(
        pbs("3.13.9", "20251014", LINUX, flavor=Flavor.INSTALL_ONLY_STRIPPED),
        pbs("3.13.9", "20251014", MAC, flavor=Flavor.INSTALL_ONLY),
        *same_everywhere("3.13.8", "20251007", LINUX, MAC),
    )
    assert lock_one(index, request()).version == "3.13.8"
    only = index_of(*index.builds[:1], pbs("3.13.9", "20251014", MAC, flavor=Flavor.INSTALL_ONLY))
    with pytest.raises(ResolutionError, match="in no one flavor they all have"):
        lock_one(only, request())


def test_best_optimised_full_archive_is_chosen() -> None:
    variants = ("noopt", "lto", "pgo+lto", "pgo")
    index = index_of(
        *(pbs("3.13.9", "20251014", LINUX, flavor=Flavor.FULL, options=o) for o in variants)
    )
    entry = lock_one(index, request(platforms=(LINUX,), flavor=Flavor.FULL))
    assert entry.artifacts[0].filename.endswith("-pgo+lto-full.tar.zst")


# -- PyPy, GraalPy, host -----------------------------------------------------------------


def test_pypy_and_graalpy() -> None:
    index = index_of(
        pypy("3.10.14", "7.3.16", LINUX),
        pypy("3.10.14", "7.3.17", LINUX),
        pypy("3.10.14", "7.3.17", WIN),
        pypy("3.11.13", "7.3.20", LINUX),
        pypy("3.10.14", "7.3.9", LINUX),
        graalpy("3.11.7", "24.2.2", LINUX),
        graalpy("3.12.8", "25.2.4", LINUX),
        *same_everywhere("3.10.18", "20251014", LINUX, WIN),
    )
    entry = lock_one(
        index, request(implementation=Implementation.PYPY, version="3.10", platforms=(LINUX, WIN))
    )
    assert (entry.implementation, entry.version, entry.build, entry.flavor) == (
        Implementation.PYPY,
        "3.10.14",
        "7.3.17",
        None,
    )
    assert entry.artifacts[1].url.endswith("-win64.zip")
    single = request(implementation=Implementation.PYPY, version="3.10", platforms=(LINUX,))
    assert lock_one(index, single).build == "7.3.17"  # 7.3.17 > 7.3.16 > 7.3.9 numerically
    graal = lock_one(
        index, request(implementation=Implementation.GRAALPY, version=">=3.11", platforms=(LINUX,))
    )
    assert (graal.version, graal.build) == ("3.12.8", "25.2.4")
    with pytest.raises(ResolutionError, match=r"windows-x86_64\s+no graalpy builds at all") as info:
        lock_one(
            index,
            request(implementation=Implementation.GRAALPY, version="3.12", platforms=(LINUX, WIN)),
        )
    # UX attack: the hints offered `flavor` (an error for PyPy and GraalPy), and did not say
    # that a platform has no builds at all, or that a PyPy release is no `version`.
    assert info.value.hint == (
        "remove the platforms with no graalpy builds at all (windows-x86_64), "
        "or change `version` or `build`"
    )
    with pytest.raises(ResolutionError) as info:
        lock_one(
            index, request(implementation=Implementation.GRAALPY, version="3.12", platforms=(WIN,))
        )
    assert info.value.hint == (
        "pylock knows no graalpy builds for windows-x86_64: lock for other platforms"
    )
    with pytest.raises(ResolutionError) as info:
        lock_one(
            index, request(implementation=Implementation.PYPY, version="7.3", platforms=(LINUX,))
        )
    assert info.value.hint == (
        'for pypy, `version` is the Python version (e.g. "3.11"); the pypy release goes in `build`'
    )
    # GraalPy's releases start with 2 too (24.2, 25): still a release, not a Python version.
    for release in ("24.2", "25"):
        with pytest.raises(ResolutionError) as info:
            lock_one(
                index,
                request(implementation=Implementation.GRAALPY, version=release, platforms=(LINUX,)),
            )
        assert info.value.hint == (
            'for graalpy, `version` is the Python version (e.g. "3.11"); the graalpy release '
            "goes in `build`"
        )
    for python in ("3.9", "2.7"):  # Python versions, not PyPy releases
        with pytest.raises(ResolutionError) as info:
            lock_one(
                index,
                request(implementation=Implementation.PYPY, version=python, platforms=(LINUX,)),
            )
        assert info.value.hint == "change `version` or `build`"


def test_host_is_the_given_platform() -> None:
    index = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    entry = lock_one(index, request(platforms=("host", MAC)), host_platform=Platform.parse(MAC))
    assert entry.platforms == (MAC,)
    entry = lock_one(index, request(platforms=("host",)), host_platform=Platform.parse(LINUX))
    assert entry.platforms == (LINUX,)


def test_default_flag_is_copied() -> None:
    index = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    assert lock_one(index, request(default=True)).default is True
    assert lock_one(index, request()).default is False


# -- errors -------------------------------------------------------------------------------


def test_error_lists_what_each_platform_has() -> None:
    index = index_of(
        *(pbs(f"3.12.{n}", f"202501{n:02d}", LINUX) for n in range(1, 8)),
        pbs("3.12.1", "20250101", MAC),
        pbs("3.11.9", "20240101", WIN),
    )
    with pytest.raises(ResolutionError) as info:
        lock_one(index, request(version=">=3.12.2", platforms=(LINUX, MAC, WIN, ARM)))
    first, *rest = str(info.value).splitlines()
    assert first == "app: no build of cpython >=3.12.2 exists for every platform"
    lines = {line.split()[0]: line.split()[1:] for line in rest}
    assert list(lines) == sorted(lines)
    assert lines[LINUX] == [
        "3.12.7+20250107,",
        "3.12.6+20250106,",
        "3.12.5+20250105,",
        "3.12.4+20250104,",
        "...",
        "(6",
        "in",
        "all)",
    ]
    assert lines[MAC] == ["none", "matching", "(newest", "there:", "3.12.1+20250101)"]
    assert lines[WIN] == ["none", "matching", "(newest", "there:", "3.11.9+20240101)"]
    assert lines[ARM] == ["no", "cpython", "builds", "at", "all"]
    assert "remove the platforms" in (info.value.hint or "")


def test_nothing_matching_names_the_one_platform_and_a_newest_final_release() -> None:
    # Field report #10: "newest there" showed a pre-release nobody allowed, and "for every
    # platform" was said of one platform.
    index = index_of(pbs("3.14.7", "20260814", LINUX), pbs("3.15.0rc1", "20260814", LINUX))
    with pytest.raises(ResolutionError) as info:
        lock_one(index, request(version="3.16", platforms=(LINUX,)))
    assert str(info.value).splitlines() == [
        "app: no build of cpython ==3.16.* exists for linux-x86_64-gnu",
        "  linux-x86_64-gnu  none matching (newest there: 3.14.7+20260814)",
    ]
    assert info.value.hint is not None and info.value.hint.startswith("change `version`")
    assert ";" not in info.value.hint  # the same hint once, not thirty times
    with pytest.raises(ResolutionError) as info:
        lock_one(index, request(version="3.16", platforms=(LINUX,), prereleases=True))
    assert "(newest there: 3.15.0rc1+20260814)" in str(info.value)


def test_a_pin_to_a_build_the_index_lacks_lists_the_builds_it_has() -> None:
    index = index_of(pbs("3.13.5", "20250723", LINUX), pbs("3.14.7", "20260814", LINUX))
    with pytest.raises(ResolutionError) as info:
        lock_one(index, request(version="3.13.5", build="20250708", platforms=(LINUX,)))
    assert str(info.value).splitlines()[1:] == [
        "  linux-x86_64-gnu  no build 20250708 (there: 3.13.5+20250723)"
    ]
    assert "`pylock lock --refresh`" in (info.value.hint or "")
    # Attack on PyPy and GraalPy: after `lock --refresh`, the hint said to run just that.
    from pylock.index.model import LIVE_SOURCE, Index

    live = index.merge(Index(source=LIVE_SOURCE, source_date="2026-12-02"))
    with pytest.raises(ResolutionError) as info:
        lock_one(live, request(version="3.13.5", build="20250708", platforms=(LINUX,)))
    assert info.value.hint == (
        "upstream lists no build 20250708 of that version either (looked up just now): pin "
        "a build listed above, or check the `build` for a typo"
    )


def test_builds_without_a_published_hash_are_refused() -> None:
    index = index_of(pbs("3.8.2", "20200418", LINUX, sha256=None))
    with pytest.raises(ResolutionError, match="has none for linux-x86_64-gnu") as info:
        lock_one(index, request(version="3.8", platforms=(LINUX,)))
    assert "python-build-standalone published none before 20220227" in str(info.value)


def test_a_build_without_a_hash_is_left_out_with_a_warning() -> None:
    # Field report #2: one unhashed build used to stop the whole lock.
    index = index_of(
        *same_everywhere("3.13.15", "20260814", LINUX, MAC),
        pbs("3.13.16", "20260901", LINUX, sha256=None),
        pbs("3.13.16", "20260901", MAC),
    )
    warnings: list[str] = []
    entry = lock_one(index, request(), warn=warnings.append)
    assert (entry.version, entry.build) == ("3.13.15", "20260814")
    assert warnings == [
        "app: left out cpython 3.13.16+20260901 install_only_stripped (none for "
        "linux-x86_64-gnu), for want of a published sha256; "
        "locked cpython 3.13.15+20260814 install_only_stripped instead"
    ]
    # Nothing to leave out, nothing to say.
    warnings.clear()
    lock_one(index, request(version="3.13.15"), warn=warnings.append)
    assert warnings == []


def test_an_unhashed_flavor_falls_back_to_a_hashed_one_of_the_same_build() -> None:
    index = index_of(
        pbs("3.13.16", "20260901", LINUX, sha256=None),
        pbs("3.13.16", "20260901", LINUX, flavor=Flavor.INSTALL_ONLY),
    )
    warnings: list[str] = []
    entry = lock_one(index, request(platforms=(LINUX,)), warn=warnings.append)
    assert (entry.version, entry.flavor) == ("3.13.16", Flavor.INSTALL_ONLY)
    assert len(warnings) == 1 and "install_only_stripped (none for" in warnings[0]


def test_the_no_hash_error_blames_old_pbs_only_when_that_is_the_cause() -> None:
    index = index_of(pbs("3.13.16", "20260901", LINUX, sha256=None))
    with pytest.raises(ResolutionError) as info:
        lock_one(index, request(platforms=(LINUX,)))
    assert str(info.value) == (
        "app: no build of cpython ==3.13.* with a published sha256 exists for every "
        "platform: the newest match, cpython 3.13.16+20260901 install_only_stripped, "
        "has none for linux-x86_64-gnu"
    )
    assert "20220227" not in str(info.value) and "newer" not in (info.value.hint or "")
    assert "`url` with a `sha256`" in (info.value.hint or "")


def test_emscripten_from_the_bundled_snapshot_explains_the_missing_hashes() -> None:
    with pytest.raises(ResolutionError) as info:
        lock_one(load_bundled(), request(platforms=("emscripten-wasm32",)))
    message = str(info.value)
    assert "has none for emscripten-wasm32" in message
    assert "Pyodide" in message and "20220227" not in message
    assert (
        info.value.hint == "lock it as a direct `url` with a `sha256` you trust (in [python.app])"
    )


def test_missing_version_is_an_error_not_a_crash() -> None:
    index = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    with pytest.raises(ResolutionError, match="app: no version requested"):
        lock_one(index, request(version=None))


def test_unknown_platform_and_upgrade_name() -> None:
    index = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    with pytest.raises(ResolutionError, match="unknown platform 'linux-sparc64'"):
        lock_one(index, request(platforms=("linux-sparc64",)))
    with pytest.raises(UsageError, match="no interpreter named 'nope'"):
        lock_one(index, request(), upgrade=frozenset({"nope"}))


# -- direct URLs --------------------------------------------------------------------------

CORP = "https://artifacts.example/cpython-3.12.9-corp-x86_64-linux.tar.gz"
SHA = "ab" * 32


def test_direct_url_with_sha256_needs_no_network() -> None:
    def forbidden(_: PythonRequest) -> LockedPython:
        raise AssertionError("must not download")

    req = request(version=None, url=CORP, sha256=SHA, platforms=(LINUX,))
    entry = lock_one(index_of(), req, direct=forbidden)
    assert (entry.version, entry.build, entry.flavor) == ("3.12.9", None, None)
    assert entry.artifacts == (Artifact(platform=LINUX, url=CORP, sha256=SHA),)
    # The request's exact version wins over the file name.
    assert lock_one(index_of(), attrs.evolve(req, version="3.12.10")).version == "3.12.10"
    pbs_url = pbs("3.13.9", "20251014", LINUX, flavor=Flavor.FULL).url
    entry = lock_one(index_of(), attrs.evolve(req, url=pbs_url))
    assert (entry.version, entry.flavor) == ("3.13.9", Flavor.FULL)


def test_direct_url_version_problems() -> None:
    nameless = request(version=None, url="https://x.example/python.tar.gz", sha256=SHA)
    with pytest.raises(ResolutionError, match="cannot tell the Python version") as info:
        lock_one(index_of(), nameless)
    assert 'version = "X.Y.Z"' in (info.value.hint or "")
    wrong = request(version="3.13", url=CORP, sha256=SHA)
    with pytest.raises(ResolutionError, match=r"looks like Python 3\.12\.9"):
        lock_one(index_of(), wrong)
    assert lock_one(index_of(), attrs.evolve(wrong, version="3.12")).version == "3.12.9"
    pypy_url = "https://x.example/pypy3.11-v7.3.20-linux64.tar.bz2"
    with pytest.raises(ResolutionError, match="cannot tell"):
        lock_one(
            index_of(),
            request(
                implementation=Implementation.PYPY,
                version=None,
                url=pypy_url,
                sha256=SHA,
                platforms=(LINUX,),
            ),
        )


@pytest.mark.parametrize(
    ("url", "given", "said", "hint"),
    [
        (
            f"{PBS_DL}/20260814/cpython-3.13.15%2B20260814-aarch64-apple-darwin-"
            "install_only_stripped.tar.gz",
            {"platforms": (LINUX,)},
            "is a build for macos-aarch64, not for linux-x86_64-gnu",
            'set platforms = ["macos-aarch64"]',
        ),
        (
            f"{PBS_DL}/20260814/cpython-3.14.7%2B20260814-x86_64-unknown-linux-gnu-"
            "freethreaded-install_only_stripped.tar.gz",
            {"platforms": (LINUX,)},
            "is a freethreaded build, but [python.app] asks for default",
            'set variant = "freethreaded"',
        ),
        (
            "https://downloads.python.org/pypy/pypy3.10-v7.3.19-linux64.tar.bz2",
            {"platforms": (LINUX,)},
            "is named as a pypy archive, but the entry asks for cpython",
            'if it is pypy, say so under [python.app]: implementation = "pypy" and '
            'version = "3.10.Z", the exact Python version it holds',
        ),
    ],
)
def test_a_direct_url_whose_name_says_another_build_is_refused(
    url: str, given: dict[str, Any], said: str, hint: str
) -> None:
    """Lock attack: a macOS archive was locked for Linux, a free-threaded one as the default
    variant, and a PyPy archive as "cpython 7.3.19", each with exit 0 and a passing
    `lock --check`."""
    wrong = request(version=None, url=url, sha256=SHA, **given)
    with pytest.raises(ResolutionError, match=re.escape(said)) as info:
        lock_one(index_of(), wrong)
    assert hint in (info.value.hint or "")


def test_a_direct_url_of_an_x86_64_level_build_may_serve_plain_x86_64() -> None:
    """What the check above must not refuse: a team that knows its machines have x86-64-v3
    locks that build for them (the level is a choice of build, not another machine)."""
    url = (
        f"{PBS_DL}/20251014/cpython-3.13.9%2B20251014-x86_64_v3-unknown-linux-gnu-"
        "install_only_stripped.tar.gz"
    )
    entry = lock_one(index_of(), request(version=None, url=url, sha256=SHA, platforms=(LINUX,)))
    assert [a.platform for a in entry.artifacts] == [LINUX]
    assert entry.version == "3.13.9"
    # And a baseline build runs on every level.
    baseline = url.replace("x86_64_v3-", "x86_64-")
    v3 = "linux-x86_64_v3-gnu"
    entry = lock_one(index_of(), request(version=None, url=baseline, sha256=SHA, platforms=(v3,)))
    assert [a.platform for a in entry.artifacts] == [v3]


def test_direct_url_without_sha256_uses_the_callback() -> None:
    seen: list[PythonRequest] = []

    def download(req: PythonRequest) -> LockedPython:
        seen.append(req)
        return lock_direct(req, sha256="cd" * 32, size=42, platforms=req.platforms)

    req = request(version=None, url=CORP, platforms=("host",), default=True)
    entry = lock_one(index_of(), req, direct=download)
    assert seen[0].platforms == (LINUX,)
    assert entry.artifacts == (Artifact(platform=LINUX, url=CORP, sha256="cd" * 32, size=42),)
    assert entry.default is True
    with pytest.raises(ResolutionError, match="has no sha256") as info:
        lock_one(index_of(), req)
    assert "sha256" in (info.value.hint or "")


# -- minimal change -----------------------------------------------------------------------


def _two_releases() -> tuple[Index, Index]:
    old = index_of(
        *same_everywhere("3.13.8", "20251007", LINUX, MAC),
        *same_everywhere("3.12.11", "20251007", LINUX, MAC),
        pypy("3.11.13", "7.3.20", LINUX),
    )
    new = index_of(
        *old.builds,
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
        *same_everywhere("3.12.12", "20251014", LINUX, MAC),
        pypy("3.11.15", "7.3.23", LINUX),
    )
    return old, new


def _project() -> Config:
    return config(
        request("app"),
        request("legacy", version="3.12"),
        request("pypy", implementation=Implementation.PYPY, version="3.11", platforms=(LINUX,)),
    )


def _lock(cfg: Config, index: Index, **kwargs: Any) -> LockFile:
    kwargs.setdefault("previous", None)
    kwargs.setdefault("upgrade", False)
    return resolve(cfg, index, host_platform=HOST, **kwargs)


def _changes(old: LockFile | None, new: LockFile) -> dict[str, Change]:
    """How each interpreter changed, in the one change model (:mod:`pylock.diff`)."""
    return {p.name: p.change for p in diff_locks(old or empty_lock(), new).pythons}


def test_minimal_change_keeps_entries_that_still_satisfy() -> None:
    old_index, new_index = _two_releases()
    first = _lock(_project(), old_index)
    assert list(_changes(None, first).values()) == [Change.ADDED] * 3
    again = _lock(_project(), new_index, previous=first)
    assert again == first
    assert list(_changes(first, again).values()) == [Change.UNCHANGED] * 3


def test_upgrade_everything_or_one() -> None:
    old_index, new_index = _two_releases()
    first = _lock(_project(), old_index)
    everything = _lock(_project(), new_index, previous=first, upgrade=True)
    versions = {p.name: p.version for p in everything.pythons}
    assert versions == {"app": "3.13.9", "legacy": "3.12.12", "pypy": "3.11.15"}
    assert list(_changes(first, everything).values()) == [Change.UPGRADED] * 3
    assert summary_lines(diff_locks(first, everything))[0] == (
        "app: cpython 3.13.8+20251007 -> 3.13.9+20251014"
    )
    one = _lock(_project(), new_index, previous=first, upgrade=frozenset({"legacy"}))
    versions = {p.name: p.version for p in one.pythons}
    assert versions == {"app": "3.13.8", "legacy": "3.12.12", "pypy": "3.11.13"}
    assert _changes(first, one) == {
        "app": Change.UNCHANGED,
        "legacy": Change.UPGRADED,
        "pypy": Change.UNCHANGED,
    }


def test_an_upgrade_to_the_same_build_keeps_the_sizes_the_index_now_lacks() -> None:
    """Upstream attack: sizes come from the GitHub API; with the API rate-limited,
    `lock --refresh --upgrade` dropped them ("artifact details changed"), and a CI check
    flapped with the quota."""
    sized = index_of(
        *[attrs.evolve(b, size=4242) for b in same_everywhere("3.13.9", "20251014", LINUX, MAC)]
    )
    unsized = index_of(*same_everywhere("3.13.9", "20251014", LINUX, MAC))
    cfg = config(request("app"))
    first = _lock(cfg, sized)
    assert {a.size for a in first.pythons[0].artifacts} == {4242}
    again = _lock(cfg, unsized, previous=first, upgrade=True)
    assert again == first
    # A lock's size 0 (which the reader takes) is no size to keep.
    zero = attrs.evolve(
        first,
        pythons=tuple(
            attrs.evolve(p, artifacts=tuple(attrs.evolve(a, size=0) for a in p.artifacts))
            for p in first.pythons
        ),
    )
    assert {
        a.size for a in _lock(cfg, unsized, previous=zero, upgrade=True).pythons[0].artifacts
    } == {None}
    # Another build gets no size it does not have.
    newer = index_of(*unsized.builds, *same_everywhere("3.13.10", "20251101", LINUX, MAC))
    upgraded = _lock(cfg, newer, previous=first, upgrade=True)
    assert {a.size for a in upgraded.pythons[0].artifacts} == {None}


def test_changed_requests_are_re_resolved() -> None:
    old_index, new_index = _two_releases()
    first = _lock(_project(), old_index)
    changed = config(
        request("app", platforms=(LINUX,)),  # platform set changed
        request("legacy", version="3.12.11", build="20251007"),  # still satisfied
        request(
            "pypy",
            implementation=Implementation.PYPY,
            version="3.11",
            platforms=(LINUX,),
            default=True,
        ),
        request("new", version="3.12"),
    )
    result = _lock(changed, new_index, previous=first)
    diff = diff_locks(first, result)
    by_name = {p.name: p for p in diff.pythons}
    # A platform dropped: the build stays (the diff's attack: it was upgraded too).
    assert by_name["app"].change is Change.CHANGED
    assert by_name["app"].new is not None and by_name["app"].new.platforms == (LINUX,)
    assert by_name["app"].old is not None
    assert by_name["app"].new.label == by_name["app"].old.label
    assert by_name["legacy"].change is Change.UNCHANGED
    assert by_name["pypy"].change is Change.CHANGED
    assert "pypy: pypy 3.11.13+7.3.20, now the default" in summary_lines(diff)
    assert by_name["new"].change is Change.ADDED
    dropped = _lock(config(request("app")), new_index, previous=first)
    assert _changes(first, dropped) == {
        "app": Change.UNCHANGED,
        "legacy": Change.REMOVED,
        "pypy": Change.REMOVED,
    }
    assert dropped.names == ("app",)


def test_downgrade_when_the_request_narrows() -> None:
    _, index = _two_releases()
    first = _lock(config(request("app")), index)
    narrowed = _lock(config(request("app", version="<3.13.9")), index, previous=first)
    assert _changes(first, narrowed) == {"app": Change.DOWNGRADED}
    assert summary_lines(diff_locks(first, narrowed)) == [
        "app: downgraded cpython 3.13.9+20251014 -> 3.13.8+20251007"
    ]
    swapped = _lock(
        config(request("app", variant=Variant.DEBUG)),
        index_of(
            *same_everywhere(
                "3.13.9", "20251014", LINUX, MAC, variant=Variant.DEBUG, flavor=Flavor.FULL
            )
        ),
        previous=first,
    )
    assert _changes(first, swapped) == {"app": Change.CHANGED}
    assert summary_lines(diff_locks(first, swapped)) == [
        "app: cpython 3.13.9+20251014, variant default -> debug, "
        "flavor install_only_stripped -> full"
    ]


def _entry(**fields: Any) -> LockedPython:
    base: dict[str, Any] = {
        "name": "app",
        "implementation": Implementation.CPYTHON,
        "version": "3.13.9",
        "build": "20251014",
        "variant": Variant.DEFAULT,
        "flavor": Flavor.INSTALL_ONLY,
        "artifacts": (
            Artifact(platform=LINUX, url="https://x.example/a.tar.gz", sha256=fake_sha(1)),
            Artifact(platform=MAC, url="https://x.example/b.tar.gz", sha256=fake_sha(2)),
        ),
    }
    base.update(fields)
    return LockedPython(**base)


@pytest.mark.parametrize(
    ("req", "entry", "ok"),
    [
        (request(), _entry(), True),
        (request(), _entry(flavor=Flavor.FULL), True),
        (request(flavor=Flavor.INSTALL_ONLY), _entry(flavor=Flavor.INSTALL_ONLY_STRIPPED), False),
        (request(flavor=Flavor.FULL), _entry(), False),
        (request(version="3.12"), _entry(), False),
        (request(build="20251007"), _entry(), False),
        (request(build="20251014"), _entry(), True),
        (request(variant=Variant.FREETHREADED), _entry(), False),
        (request(implementation=Implementation.PYPY), _entry(), False),
        (request(), _entry(version="3.13.10a1"), False),
        (request(prereleases=True), _entry(version="3.13.10a1"), True),
        (request(), _entry(build=None), False),
        (request(version=None, url="https://x.example/a.tar.gz"), _entry(), False),
    ],
)
def test_satisfies(req: PythonRequest, entry: LockedPython, ok: bool) -> None:
    assert satisfies(req, entry, platforms=(LINUX, MAC)) is ok
    assert not satisfies(req, entry, platforms=(LINUX,))
    assert not satisfies(req, entry, platforms=(LINUX, MAC, WIN))


def test_satisfies_direct_entries() -> None:
    req = request(version=None, url=CORP, sha256=SHA, platforms=(LINUX,))
    entry = lock_direct(req, sha256=SHA, platforms=(LINUX,))
    assert satisfies(req, entry, platforms=(LINUX,))
    assert not satisfies(attrs.evolve(req, sha256="cd" * 32), entry, platforms=(LINUX,))
    assert not satisfies(attrs.evolve(req, url=CORP + "?v=2"), entry, platforms=(LINUX,))
    assert satisfies(attrs.evolve(req, sha256=None), entry, platforms=(LINUX,))
    assert not satisfies(attrs.evolve(req, version="3.13"), entry, platforms=(LINUX,))


def test_lock_is_fresh() -> None:
    _, index = _two_releases()
    cfg = config(request("app", platforms=("host", MAC)), request("legacy", version="3.12"))
    lock = _lock(cfg, index)
    assert lock_is_fresh(cfg, lock)
    assert lock_is_fresh(cfg, lock, host_platform=HOST)
    # Checked on another machine, "host" no longer means linux.
    assert not lock_is_fresh(cfg, lock, host_platform=Platform.parse(ARM))
    assert not lock_is_fresh(attrs.evolve(cfg, digest="sha256:" + "1" * 64), lock)
    hand_edited = attrs.evolve(
        lock, pythons=(attrs.evolve(lock.pythons[0], version="3.12.1"), lock.pythons[1])
    )
    assert not lock_is_fresh(cfg, hand_edited)
    assert not lock_is_fresh(cfg, attrs.evolve(lock, pythons=lock.pythons[:1]))
    defaulted = config(
        request("app", platforms=("host", MAC), default=True), request("legacy", version="3.12")
    )
    assert not lock_is_fresh(defaulted, attrs.evolve(lock, config_digest=defaulted.digest))


# -- properties ---------------------------------------------------------------------------

_VERSIONS = st.builds(
    lambda minor, patch, pre: f"3.{minor}.{patch}{pre}",
    st.integers(10, 15),
    st.integers(0, 20),
    st.sampled_from(["", "", "", "a1", "b2", "rc1"]),
)
_TAGS = st.dates(date(2019, 1, 1), date(2030, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(_VERSIONS, _TAGS, st.booleans()), min_size=1, max_size=25),
    st.sampled_from(["3.12", ">=3.11", "<3.14", ">=3.10,!=3.13.*", "3.15"]),
    st.booleans(),
)
def test_the_newest_common_version_is_chosen(
    rows: list[tuple[str, str, bool]], spec: str, prereleases: bool
) -> None:
    builds = []
    for version, tag, everywhere in rows:
        builds.append(pbs(version, tag, LINUX))
        if everywhere:
            builds.append(pbs(version, tag, MAC))
    index = index_of(*builds)
    req = request(version=spec, prereleases=prereleases)
    common = {(v, t) for v, t, everywhere in rows if everywhere}
    allowed = [
        (v, t)
        for v, t in common
        if req.specifier is not None
        and req.specifier.contains(Version(v), prereleases=True)
        and (prereleases or not Version(v).is_prerelease)
    ]
    if not allowed:
        with pytest.raises(ResolutionError):
            lock_one(index, req)
        return
    entry = lock_one(index, req)
    assert (entry.version, entry.build) == max(allowed, key=lambda vt: (Version(vt[0]), vt[1]))


# -- the real data ------------------------------------------------------------------------

FOUR = (LINUX, ARM, MAC, WIN)


def test_acceptance_newest_312_on_four_platforms_from_the_reference_data() -> None:
    data = uv_json()
    entry = lock_one(load_bundled(), request(version="3.12", platforms=FOUR))
    keys = {
        LINUX: ("linux", "x86_64", "gnu"),
        ARM: ("linux", "aarch64", "gnu"),
        MAC: ("darwin", "aarch64", "none"),
        WIN: ("windows", "x86_64", "none"),
    }
    per: dict[str, dict[tuple[int, str], tuple[str, str]]] = {}
    for value in data.values():
        if value["name"] != "cpython" or value["variant"] or value["prerelease"]:
            continue
        if (value["major"], value["minor"]) != (3, 12) or value["arch"]["variant"]:
            continue
        for plat, (os_name, family, libc) in keys.items():
            if (value["os"], value["arch"]["family"], value["libc"]) == (os_name, family, libc):
                per.setdefault(plat, {})[(value["patch"], value["build"])] = (
                    value["url"],
                    value["sha256"],
                )
    newest = max(set.intersection(*(set(p) for p in per.values())))
    assert (entry.version, entry.build) == (f"3.12.{newest[0]}", newest[1])
    for artifact in entry.artifacts:
        assert (artifact.url, artifact.sha256) == per[artifact.platform][newest]


def test_real_project_resolves_quickly_and_round_trips() -> None:
    cfg = loads_config(
        """
        [defaults]
        platforms = ["linux-x86_64-gnu", "linux-aarch64-gnu", "linux-x86_64-musl",
                     "macos-aarch64", "macos-x86_64", "windows-x86_64"]
        [python.app]
        version = "3.13"
        [python.nogil]
        version = "3.14"
        variant = "freethreaded"
        [python.debug]
        version = "3.13"
        variant = "debug"
        platforms = ["linux-x86_64-gnu", "linux-aarch64-gnu", "linux-x86_64-musl",
                     "macos-aarch64", "macos-x86_64", "linux-riscv64-gnu"]
        [python.legacy]
        version = ">=3.10.12,<3.11"
        [python.next]
        version = "3.15"
        prereleases = true
        """
    )
    index = load_bundled()
    resolve(cfg, index, previous=None, upgrade=True, host_platform=HOST)  # warm the groups
    started = time.perf_counter()
    lock = resolve(cfg, index, previous=None, upgrade=True, host_platform=HOST)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.25, elapsed  # a few ms in practice; generous for slow CI
    assert loads(dumps(lock)) == lock
    flavors = {p.name: p.flavor for p in lock.pythons}
    assert flavors["debug"] is Flavor.FULL
    assert flavors["app"] is Flavor.INSTALL_ONLY_STRIPPED
    assert all(len(p.artifacts) == 6 for p in lock.pythons)


def test_change_lines_for_added_removed_unchanged_and_moved() -> None:
    entry = _entry()
    assert summary_line(diff_python(None, entry)) == (
        "app: added cpython 3.13.9+20251014; linux-x86_64-gnu, macos-aarch64 from x.example"
    )
    assert summary_line(diff_python(entry, None)) == "app: removed cpython 3.13.9+20251014"
    assert summary_line(diff_python(entry, entry)) is None
    moved = attrs.evolve(entry, artifacts=entry.artifacts[:1], flavor=Flavor.FULL)
    assert summary_line(diff_python(entry, moved)) == (
        "app: cpython 3.13.9+20251014, flavor install_only -> full, platforms -macos-aarch64"
    )


# -- a locked entry against what upstream published ---------------------------------------


def test_a_kept_entry_whose_archive_upstream_did_not_publish_is_locked_again() -> None:
    """Review: a lock edited by hand (another sha256, a version spelled `03.13.1`) passed
    `lock --check` and `lock` kept it; only `diff` showed it."""
    from pylock.resolve import published_mismatch

    index = index_of(*same_everywhere("3.13.1", "20250101", LINUX, MAC, size=123))
    good = lock_one(index, request())
    assert published_mismatch(good, index) is None
    linux, mac = good.artifacts
    tampered = {
        "sha256": attrs.evolve(good, artifacts=(attrs.evolve(linux, sha256="f" * 64), mac)),
        "version": attrs.evolve(good, version="03.13.1"),
        "size": attrs.evolve(good, artifacts=(linux, attrs.evolve(mac, size=0))),
    }
    reasons = {what: published_mismatch(entry, index) for what, entry in tampered.items()}
    assert reasons == {
        "sha256": f"app: {LINUX}: the archive's sha256 is not the one upstream published "
        "for cpython 3.13.1+20250101",
        "version": "app: version '03.13.1' is '3.13.1' upstream",
        "size": f"app: {MAC}: the archive's size is not the one upstream published for "
        "cpython 3.13.1+20250101",
    }
    for entry in tampered.values():
        warnings: list[str] = []
        relocked = lock_one(index, request(), previous=make_lock_of(entry), warn=warnings.append)
        assert relocked == good
        assert warnings[0].endswith(": locked the published archives of that build again")
    # An archive at a URL the index does not list for the build is not judged: a mirror's
    # copy, or a uv downloads JSON's rebuild (review: those were locked back to GitHub).
    moved = tuple(
        attrs.evolve(a, url=f"https://mirror.example/{a.filename}", sha256="c" * 64)
        for a in good.artifacts
    )
    mirrored = attrs.evolve(good, artifacts=moved)
    assert published_mismatch(mirrored, index) is None
    assert lock_one(index, request(), previous=make_lock_of(mirrored)) == mirrored
    # An entry edited by hand is locked again at its own build, not the newest (review).
    newer = index_of(
        *same_everywhere("3.13.1", "20250101", LINUX, MAC, size=123),
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
    )
    assert lock_one(newer, request(), previous=make_lock_of(tampered["sha256"])) == good
    # ... unless the index lacks that build on one of its platforms: then as any request.
    partial = index_of(
        pbs("3.13.1", "20250101", LINUX, size=123),
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
    )
    warned: list[str] = []
    relocked = lock_one(
        partial, request(), previous=make_lock_of(tampered["sha256"]), warn=warned.append
    )
    assert (relocked.version, relocked.build) == ("3.13.9", "20251014")
    assert warned[0].endswith(": locked it again from the index")
    # What the index does not know is not judged: another build at URLs it does not list
    # (one newer than the index), or a direct URL.
    unlisted = tuple(
        attrs.evolve(a, url=a.url.replace("20250101", "20250202")) for a in good.artifacts
    )
    later = attrs.evolve(good, build="20250202", artifacts=unlisted)
    assert published_mismatch(later, index) is None
    assert published_mismatch(attrs.evolve(tampered["sha256"], build=None), index) is None


def test_an_entry_relabelled_by_hand_is_judged_by_its_archives_urls() -> None:
    """Review attack: version and build bumped by hand, the archives left as they were,
    passed `lock --check` ("up to date"), and `lock` kept it: the index was asked only
    about the build the entry claims, whose URLs the entry does not use."""
    from pylock.resolve import published_mismatch

    index = index_of(
        *same_everywhere("3.13.1", "20250101", LINUX, MAC),
        *same_everywhere("3.13.9", "20251014", LINUX, MAC),
    )
    old = lock_one(index, request())
    assert (old.version, old.build) == ("3.13.9", "20251014")
    pinned = lock_one(index, request(version="==3.13.1"))
    relabelled = (
        attrs.evolve(pinned, version="3.13.9", build="20251014"),
        attrs.evolve(pinned, build="20251014"),
    )
    for fake in relabelled:
        assert published_mismatch(fake, index) == (
            f"app: {LINUX}: the archive is cpython 3.13.1+20250101 upstream, not the entry's "
            f"{fake.label}"
        )
    # A flavor or variant changed alone is named (attack on the day's diff: the message
    # gave the same label twice).
    flavored = attrs.evolve(pinned, flavor=Flavor.FULL)
    assert published_mismatch(flavored, index) == (
        f"app: {LINUX}: the archive is cpython 3.13.1+20250101, install_only_stripped upstream, "
        "not the entry's cpython 3.13.1+20250101, full"
    )
    threaded = attrs.evolve(pinned, variant=Variant.FREETHREADED)
    assert published_mismatch(threaded, index) == (
        f"app: {LINUX}: the archive is cpython 3.13.1+20250101 upstream, not the entry's "
        "cpython 3.13.1+20250101 (freethreaded)"
    )
    fake = attrs.evolve(pinned, version="3.13.9", build="20251014")
    warnings: list[str] = []
    relocked = lock_one(index, request(), previous=make_lock_of(fake), warn=warnings.append)
    assert relocked == old  # the build the entry claims, as published
    assert warnings[0].endswith(": locked the published archives of that build again")


def make_lock_of(entry: LockedPython) -> LockFile:
    from pylock.lockfile import make_lock

    return make_lock([entry], config_digest=DIGEST)


def test_a_platform_added_keeps_the_locked_build_where_the_index_has_it_there() -> None:
    """Lock-determinism attack: adding a platform re-resolved the entry, so an "add macOS"
    pull request also moved app 3.13.8 -> 3.13.9 (and PyPy 3.9 -> 3.11)."""
    old_index, new_index = _two_releases()
    first = _lock(config(request("app", platforms=(LINUX,))), old_index)
    widened = _lock(config(request("app", platforms=(LINUX, MAC))), new_index, previous=first)
    (entry,) = widened.pythons
    assert (entry.version, entry.platforms) == ("3.13.8", (LINUX, MAC))
    assert entry.artifact_for(LINUX) == first.pythons[0].artifact_for(LINUX)
    assert summary_lines(diff_locks(first, widened)) == [
        "app: cpython 3.13.8+20251007, platforms +macos-aarch64"
    ]
    # Where the index has no such build for the platform added, the entry is resolved
    # again, as before; and --upgrade still moves it.
    only_new = index_of(
        *[b for b in new_index.builds if b.build != "20251007" or b.platform == LINUX]
    )
    moved = _lock(config(request("app", platforms=(LINUX, MAC))), only_new, previous=first)
    assert moved.pythons[0].version == "3.13.9"
    upgraded = _lock(
        config(request("app", platforms=(LINUX, MAC))), new_index, previous=first, upgrade=True
    )
    assert upgraded.pythons[0].version == "3.13.9"


def test_a_platform_change_keeps_the_build_whatever_flavor_the_new_list_takes() -> None:
    """Attack on the day's diff: Windows with only `install_only` archives of the locked
    build moved the entry to a newer version; and removing Windows kept the fallback
    flavor it had forced, where stripped archives of that build exist."""
    io = Flavor.INSTALL_ONLY
    index = index_of(
        pbs("3.13.8", "20251007", LINUX),
        pbs("3.13.8", "20251007", LINUX, flavor=io),
        pbs("3.13.8", "20251007", WIN, flavor=io),
        pbs("3.13.9", "20251014", LINUX),
        pbs("3.13.9", "20251014", WIN),
    )
    older = index_of(*[b for b in index.builds if b.build == "20251007"])
    linux = _lock(config(request("app", platforms=(LINUX,))), older)
    assert linux.pythons[0].flavor is Flavor.INSTALL_ONLY_STRIPPED
    both = _lock(config(request("app", platforms=(LINUX, WIN))), index, previous=linux)
    (entry,) = both.pythons
    assert (entry.version, entry.flavor) == ("3.13.8", io)
    back = _lock(config(request("app", platforms=(LINUX,))), index, previous=both)
    (entry,) = back.pythons
    assert (entry.version, entry.flavor) == ("3.13.8", Flavor.INSTALL_ONLY_STRIPPED)


def test_an_upgrade_that_keeps_a_newer_entry_names_the_flag_not_given() -> None:
    """Round-two attack: after `lock --refresh --upgrade`, the warning said to add
    --refresh."""
    from pylock.index.model import LIVE_SOURCE

    newer = index_of(pbs("3.13.9", "20251014", LINUX))
    first = _lock(config(request("app", platforms=(LINUX,))), newer)
    bundled = index_of(pbs("3.13.8", "20251007", LINUX))
    for index, named in (
        (bundled, "add --refresh or --python-downloads-json"),
        (bundled.merge(Index(source=LIVE_SOURCE, source_date="2026-12-02")), "add --python-"),
    ):
        said: list[str] = []
        again = _lock(
            config(request("app", platforms=(LINUX,))),
            index,
            previous=first,
            upgrade=True,
            warn=said.append,
        )
        assert again.pythons[0].version == "3.13.9"
        (warning,) = said
        assert warning.endswith(named if named.endswith("json") else named + "downloads-json")
