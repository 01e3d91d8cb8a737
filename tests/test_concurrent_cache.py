"""Syncs that share one archive cache while another process evicts or replaces an archive.

Each test injects the other process's move at the exact moment it hurts, in-process:
the eviction ignores holds by design (a corrupt copy is corrupt for every reader).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pylock.sync.install
from pylock.errors import HashMismatchError, InstallError
from pylock.sync.cache import Cache
from tests.syncproject import Build, Project, tree_of


def _warm_cache_only(sync_project: Project, build: Build) -> None:
    """``build`` in the cache and not installed: the next sync installs it from the cache."""
    sync_project.install(build)
    shutil.rmtree(sync_project.into)


def _evicted_by_another_sync(sync_project: Project, build: Build) -> None:
    """What a sync that found the cached copy corrupt does to everyone else's hold."""
    assert Cache(sync_project.cache).evict(build.sha256)


@pytest.mark.parametrize("moment", ["before the size check", "as the install opens it"])
def test_an_archive_evicted_under_a_hold_is_fetched_again(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """Attack: three syncs share a cache whose archive rotted; the first to notice evicts
    it, and the others, which held its path, failed with "No such file or directory"."""
    _warm_cache_only(sync_project, app_a)
    evictions: list[str] = []

    def once() -> None:
        if not evictions:
            evictions.append(moment)
            _evicted_by_another_sync(sync_project, app_a)

    if moment == "before the size check":
        real_hold = Cache.hold

        @contextlib.contextmanager
        def hold(self: Cache, sha256: str, **kw: Any) -> Iterator[Path | None]:
            with real_hold(self, sha256, **kw) as path:
                if path is not None:
                    once()
                yield path

        monkeypatch.setattr(Cache, "hold", hold)
    else:
        real_install = pylock.sync.install.install

        def install(archive: Path, **kw: Any) -> bool:
            once()
            return real_install(archive, **kw)

        monkeypatch.setattr(pylock.sync.install, "install", install)

    result = sync_project.sync("-v")
    assert result.code == 0, result.err
    assert evictions == [moment]
    assert f"{app_a.filename} was removed from the cache meanwhile; fetching it again" in (
        result.err
    )
    assert sync_project.server.hits(app_a.path) == 2
    assert tree_of(sync_project.into / "app") == app_a.tree()
    assert sync_project.leftovers() == []


def test_an_archive_evicted_under_a_hold_offline_is_not_said_to_be_fetched(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output nit: `sync --offline -v` said "fetching it again" of an archive another sync
    evicted, then failed, as offline it must, for not fetching it."""
    _warm_cache_only(sync_project, app_a)
    real_install = pylock.sync.install.install

    def install(archive: Path, **kw: Any) -> bool:
        _evicted_by_another_sync(sync_project, app_a)
        return real_install(archive, **kw)

    monkeypatch.setattr(pylock.sync.install, "install", install)
    result = sync_project.sync("-v", "--offline")
    assert result.code == 1
    assert "removed from the cache meanwhile; offline, it cannot be fetched again" in result.err
    assert "fetching it again" not in result.err
    assert sync_project.server.hits(app_a.path) == 1


def test_a_missing_file_that_is_not_the_archive_still_fails_the_sync(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the archive's own absence is another process's doing: any other missing file
    is this install's failure, reported once rather than fetched around."""
    _warm_cache_only(sync_project, app_a)
    gone = sync_project.into / "gone"

    def install(archive: Path, **kw: Any) -> bool:
        missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(gone))
        raise InstallError(f"cannot install app into {sync_project.into}") from missing

    monkeypatch.setattr(pylock.sync.install, "install", install)
    result = sync_project.sync()
    assert result.code == 1
    assert f"pylock: error: app: cannot install app into {sync_project.into}" in result.err
    assert sync_project.server.hits(app_a.path) == 1
    assert sync_project.archive(app_a).is_file()


def test_a_good_copy_stored_after_the_corrupt_one_was_read_is_not_evicted(
    sync_project: Project, app_a: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a slow sync that read the rotted copy evicted by sha256, and so threw away
    the good copy that a faster sync had evicted the rotted one for and fetched again."""
    _warm_cache_only(sync_project, app_a)
    cached = sync_project.archive(app_a)
    cached.write_bytes(b"X" * len(app_a.data))  # same size, other bytes
    real_install = pylock.sync.install.install
    stored: list[os.stat_result] = []

    def install(archive: Path, **kw: Any) -> bool:
        try:
            return real_install(archive, **kw)
        except HashMismatchError:
            if not stored:
                # Meanwhile, the faster sync: it evicts the copy and stores a fresh one.
                other = Cache(sync_project.cache)
                assert other.evict(app_a.sha256)
                with other.gate(app_a.sha256):
                    fresh = other.new_tmp_path(app_a.sha256)
                    fresh.write_bytes(app_a.data)
                    stored.append(other.store(app_a.sha256, app_a.filename, fresh).stat())
            raise

    monkeypatch.setattr(pylock.sync.install, "install", install)
    result = sync_project.sync("-v")
    assert result.code == 0, result.err
    # Installed from the faster sync's copy, which stays: nothing downloaded again.
    assert sync_project.server.hits(app_a.path) == 1
    [fresh] = stored
    assert os.path.samestat(cached.stat(), fresh)
    assert cached.read_bytes() == app_a.data
    assert "another process has replaced it with a good copy" in result.err
    assert "evicted it and downloading it again" not in result.err
    assert tree_of(sync_project.into / "app") == app_a.tree()
