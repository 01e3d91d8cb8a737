"""``pylock outdated``'s core: newer versions and builds for each locked interpreter."""

from __future__ import annotations

import json

import pytest

from pylock.config import loads_config
from pylock.lockfile import Artifact, LockedPython, make_lock
from pylock.outdated import find_outdated, format_text, to_json
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import index_of, locked_python, pbs, pypy

LINUX, MAC = "linux-x86_64-gnu", "macos-aarch64"


def locked(
    name: str,
    version: str,
    build: str | None,
    platforms: tuple[str, ...] = (LINUX, MAC),
    *,
    implementation: Implementation = Implementation.CPYTHON,
    variant: Variant = Variant.DEFAULT,
    flavor: Flavor | None = Flavor.INSTALL_ONLY_STRIPPED,
) -> LockedPython:
    artifacts = [
        Artifact(platform=p, url=f"https://x/{name}/{p}.tar.gz", sha256="ab" * 32)
        for p in platforms
    ]
    fields = {"implementation": implementation, "variant": variant, "flavor": flavor}
    return locked_python(name, version, build, artifacts, **fields)


def lock_of(*pythons: LockedPython):  # type: ignore[no-untyped-def]
    return make_lock(pythons, config_digest="sha256:" + "0" * 64)


def both(version: str, tag: str, **kwargs: object) -> list:  # type: ignore[type-arg]
    return [pbs(version, tag, LINUX, **kwargs), pbs(version, tag, MAC, **kwargs)]  # type: ignore[arg-type]


def test_newer_patch_and_newer_build() -> None:
    index = index_of(
        *both("3.13.5", "20250708"),
        *both("3.13.5", "20250815"),
        *both("3.13.9", "20251014"),
        *both("3.14.0", "20251014"),  # another series: not an upgrade of 3.13
        pbs("3.13.10", "20251101", LINUX),  # not on every locked platform
        *both("3.13.11rc1", "20251101"),  # pre-release
        *both("3.13.12", "20251201", variant=Variant.FREETHREADED),  # another variant
    )
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index)
    assert entry.newer_version is not None and entry.newer_build is not None
    assert (entry.newer_version.version, entry.newer_version.build) == ("3.13.9", "20251014")
    assert (entry.newer_build.version, entry.newer_build.build) == ("3.13.5", "20250815")
    assert format_text([entry]) == [
        "app: cpython 3.13.5+20250708 -> 3.13.9+20251014 (newer version), "
        "3.13.5+20250815 (newer build)"
    ]


@pytest.mark.parametrize(
    ("toml", "held"),
    [
        ('version = "3.13"', ()),
        ('version = "3.13.5"', ("version",)),
        ('version = "3.13.5"\nbuild = "20250708"', ("version", "build")),
    ],
)
def test_offers_the_request_holds_back_say_so(toml: str, held: tuple[str, ...]) -> None:
    """UX attack: an entry pinned to `version = "3.12.11"`, `build = "20251007"` was shown
    "-> 3.12.14 (newer version)", which `lock --upgrade --refresh` cannot take."""
    index = index_of(
        *both("3.13.5", "20250708"), *both("3.13.5", "20250815"), *both("3.13.9", "20251014")
    )
    config = loads_config(f'[python.app]\n{toml}\nplatforms = ["{LINUX}", "{MAC}"]\n')
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index, config)
    assert entry.held == held
    tag = {
        kind: ", held back by pythons.toml" if kind in held else "" for kind in ("version", "build")
    }
    assert format_text([entry]) == [
        f"app: cpython 3.13.5+20250708 -> 3.13.9+20251014 (newer version{tag['version']}), "
        f"3.13.5+20250815 (newer build{tag['build']})"
    ]


def test_publication_order_not_tag_strings() -> None:
    index = index_of(
        *both("3.13.5", "20250708"),
        *both("3.13.5", "20250323"),
        tag_dates={"20250323": "2026-03-23"},
    )
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index)
    assert entry.newer_build is not None and entry.newer_build.build == "20250323"
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250323")), index)
    assert entry.up_to_date


def test_up_to_date_direct_and_pypy() -> None:
    index = index_of(
        *both("3.12.11", "20250918"),
        pypy("3.11.13", "7.3.20", LINUX),
        pypy("3.11.15", "7.3.23", LINUX),
    )
    lock = lock_of(
        locked("a", "3.12.11", "20250918"),
        locked("direct", "3.12.9", None),
        locked(
            "pp",
            "3.11.13",
            "7.3.20",
            (LINUX,),
            implementation=Implementation.PYPY,
            flavor=None,
        ),
    )
    entries = find_outdated(lock, index)
    assert format_text(entries) == [
        "a: cpython 3.12.11+20250918: up to date",
        "direct: cpython 3.12.9: direct URL; not tracked upstream",
        "pp: pypy 3.11.13+7.3.20 -> 3.11.15+7.3.23 (newer version)",
    ]
    report = to_json(entries, index=index)
    json.dumps(report)
    assert [p["up-to-date"] for p in report["pythons"]] == [True, False, False]
    assert report["pythons"][2]["newer-version"] == {"version": "3.11.15", "build": "7.3.23"}


def test_flavor_family_and_unhashed_builds() -> None:
    index = index_of(
        *both("3.13.5", "20250708", flavor=Flavor.INSTALL_ONLY),
        *both("3.13.6", "20250801", flavor=Flavor.INSTALL_ONLY),
        *both("3.13.7", "20250901", flavor=Flavor.FULL),
        *both("3.13.8", "20251001", sha256=None),
    )
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index)
    assert entry.newer_version is not None and entry.newer_version.version == "3.13.6"


def test_a_build_whose_platforms_share_no_flavor_is_not_offered() -> None:
    """CI review: 3.13.9 only as install_only_stripped on Linux and only as install_only
    on macOS was offered as a newer version. A lock entry has one flavor for all its
    platforms, so `lock --upgrade --refresh`, which the offer says to run, passed it over
    and changed nothing."""
    from pylock.resolve import resolve_python

    index = index_of(
        *both("3.13.5", "20250708"),
        pbs("3.13.9", "20251014", LINUX),
        pbs("3.13.9", "20251014", MAC, flavor=Flavor.INSTALL_ONLY),
        pbs("3.13.5", "20250815", LINUX, flavor=Flavor.FULL),
        pbs("3.13.5", "20250815", MAC),
    )
    config = loads_config(f'[python.app]\nversion = "3.13"\nplatforms = ["{LINUX}", "{MAC}"]\n')
    for requests in (config, None):
        [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index, requests)
        assert entry.up_to_date, entry
    upgraded = resolve_python(config.pythons[0], index, platforms=[LINUX, MAC])
    assert (upgraded.version, upgraded.build) == ("3.13.5", "20250708")
    # One flavor they share is enough, even one the locked entry does not have.
    index = index_of(*both("3.13.5", "20250708"), *both("3.13.9", "20251014", flavor=Flavor.FULL))
    [entry] = find_outdated(lock_of(locked("app", "3.13.5", "20250708")), index, config)
    assert entry.newer_version is not None and entry.newer_version.version == "3.13.9"


def test_entries_alike_share_their_look_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale attack: 1,000 entries on 18 platforms took 10 s, each scanning the index for
    every platform again. Entries alike (implementation, variant, series, flavors) share
    one scan a platform, with the same answers as one by one."""
    from pylock.index.model import Index

    index = index_of(
        *both("3.13.5", "20250708"), *both("3.13.5", "20250815"), *both("3.13.9", "20251014")
    )
    entries = [locked(f"app{n:03}", "3.13.5", "20250708") for n in range(100)]
    entries.append(locked("other", "3.12.1", "20250708"))
    scans: list[str] = []
    real = Index.candidates

    def counting(self: Index, *args: object, **kwargs: object) -> object:
        scans.append(str(args[1]))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Index, "candidates", counting)
    report = find_outdated(lock_of(*entries), index)
    assert len(scans) == 4  # two platforms, for two kinds of entry
    assert {entry.newer_build for entry in report[:100]} == {report[0].newer_build}
    assert report[0].newer_build is not None and report[0].newer_build.build == "20250815"
    assert report[0].newer_version is not None and report[0].newer_version.version == "3.13.9"
    [alone] = find_outdated(lock_of(entries[0]), index)
    assert alone == report[0]
