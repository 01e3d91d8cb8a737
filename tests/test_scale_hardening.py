"""Large locks: diffing, loading and look-ups by name stay linear (issue 11 §4, two limits).

Two 30,000-entry locks took 65 s to diff, because every entry of one lock was found in the
other by a scan. These tests count name comparisons instead of timing anything: names are
a ``str`` subclass that counts its ``==`` calls, and a linear algorithm makes a few per
entry where a quadratic one makes thousands. ``bench/bench_limits.py`` has the timings.
"""

from __future__ import annotations

from typing import Any

import pytest

from pylock.config import Config, PythonRequest
from pylock.config import from_document as config_from_document
from pylock.diff import Change, diff_locks, render
from pylock.lockfile import Artifact, LockedPython, LockFile, make_lock, to_document
from pylock.lockfile import from_document as lock_from_document
from pylock.resolve import lock_is_fresh
from pylock.versions import Flavor, Implementation

N = 3_000
PLATFORM = "linux-x86_64-gnu"
DIGEST = "sha256:" + "0" * 64


class CountingStr(str):
    """A name that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingStr.comparisons += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        CountingStr.comparisons += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


@pytest.fixture(autouse=True)
def _reset_count() -> None:
    CountingStr.comparisons = 0


def name(i: int) -> str:
    return CountingStr(f"py{i:06d}")


def python(i: int, version: str = "3.13.5", build: str = "20250708") -> LockedPython:
    artifact = Artifact(
        platform=PLATFORM,
        url=f"https://example.test/{build}/cpython-{i}.tar.gz",
        sha256=f"{i:064x}" if build == "20250708" else f"{i + 1:064x}",
    )
    return LockedPython(
        name=name(i),
        implementation=Implementation.CPYTHON,
        version=version,
        build=build,
        flavor=Flavor.INSTALL_ONLY_STRIPPED,
        artifacts=(artifact,),
    )


def big_lock(changed: range = range(0)) -> LockFile:
    pythons = [python(i, "3.13.9", "20251014") if i in changed else python(i) for i in range(N)]
    return make_lock(pythons, config_digest=DIGEST)


def test_diff_compares_each_name_a_few_times() -> None:
    old = big_lock()
    new = big_lock(changed=range(0, N, 3))
    CountingStr.comparisons = 0
    diff = diff_locks(old, new)
    text = render(diff, "text")
    # A scan per look-up would compare names about N * N / 2 = 4.5 million times.
    assert CountingStr.comparisons < 10 * N
    assert diff.counts() == {"added": 0, "removed": 0, "changed": N // 3, "unchanged": 2 * N // 3}
    assert sum(p.change is Change.UPGRADED for p in diff.pythons) == N // 3
    assert f"{N // 3} changed, 0 added, 0 removed, {2 * N // 3} unchanged" in text


def test_diff_of_disjoint_locks_is_linear_too() -> None:
    old = make_lock([python(i) for i in range(N)], config_digest=DIGEST)
    new = make_lock([python(i) for i in range(N, 2 * N)], config_digest=DIGEST)
    CountingStr.comparisons = 0
    counts = diff_locks(old, new).counts()
    assert CountingStr.comparisons < 10 * N
    assert counts == {"added": N, "removed": N, "changed": 0, "unchanged": 0}


def test_lock_get_is_a_lookup_not_a_scan() -> None:
    lock = big_lock()
    CountingStr.comparisons = 0
    found = [lock.get(f"py{i:06d}") for i in reversed(range(N))]
    assert CountingStr.comparisons < 3 * N
    assert [p.name for p in found if p is not None] == [f"py{i:06d}" for i in reversed(range(N))]
    assert lock.get("nope") is None


def test_first_entry_wins_for_a_duplicated_name() -> None:
    first, second = python(1), python(1, "3.13.9", "20251014")
    lock = LockFile(config_digest=DIGEST, pythons=(first, second))
    assert lock.get("py000001") is first


def test_loading_a_lock_compares_each_name_a_few_times() -> None:
    document: dict[str, Any] = to_document(big_lock())
    CountingStr.comparisons = 0
    lock = lock_from_document(document)
    assert CountingStr.comparisons < 10 * N
    assert len(lock.pythons) == N


def test_duplicate_names_are_still_found_when_loading() -> None:
    document: dict[str, Any] = to_document(big_lock())
    document["python"].append(dict(document["python"][7]))
    with pytest.raises(ValueError, match="'py000007' is locked twice"):
        lock_from_document(document)


def _config(count: int) -> Config:
    requests = tuple(
        PythonRequest(name=name(i), version="3.13", platforms=(PLATFORM,)) for i in range(count)
    )
    return Config(pythons=requests, digest=DIGEST)


def test_lock_check_is_linear() -> None:
    config = _config(N)
    lock = big_lock()
    CountingStr.comparisons = 0
    assert lock_is_fresh(config, lock)
    assert CountingStr.comparisons < 10 * N


def test_config_get_is_a_lookup_and_loading_a_config_is_linear() -> None:
    config = _config(N)
    CountingStr.comparisons = 0
    assert all(config.get(f"py{i:06d}") is not None for i in range(N))
    assert CountingStr.comparisons < 3 * N
    count = 500
    document = {"python": {name(i): {"version": "3.13"} for i in range(count)}}
    CountingStr.comparisons = 0
    loaded = config_from_document(document)
    assert len(loaded.pythons) == count
    assert CountingStr.comparisons < 20 * count


def test_relocking_keeps_every_entry_with_one_lookup_each() -> None:
    from pylock.index.model import Index
    from pylock.platforms import Platform
    from pylock.resolve import resolve

    config = _config(N)
    previous = big_lock()
    index = Index(source="empty", source_date="2099-01-01")  # nothing needs resolving
    CountingStr.comparisons = 0
    lock = resolve(
        config,
        index,
        previous=previous,
        upgrade=False,
        host_platform=Platform.parse(PLATFORM),
    )
    assert CountingStr.comparisons < 10 * N
    assert lock.pythons == previous.pythons
