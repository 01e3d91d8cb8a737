"""`pylock mirror`: the layout, SHA256SUMS, uv's downloads JSON, incremental runs, and a real
web server that both pylock and uv install from."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import attrs
import pytest

from pylock.cli import main
from pylock.errors import ArchivesNotFetchedError, MirrorError, OfflineError, PylockError
from pylock.lockfile import Artifact, LockedPython, LockFile, dumps, make_lock
from pylock.mirror import (
    UV_JSON_NAME,
    MirrorReport,
    build_mirror,
    mirror_path,
    parse_sha256sums,
    plan_mirror,
    usage_lines,
    uv_downloads_json,
    uv_key_and_entry,
)
from pylock.net.fetch import FetchOptions
from pylock.platforms import Platform, host
from pylock.progress import NullReporter, Reporter
from pylock.sync.cache import Cache
from pylock.urls import UrlRewrites
from pylock.versions import Flavor, Implementation, Variant
from tests.httpserver import HttpServer
from tests.indexdata import uv_json

PBS = "https://github.com/astral-sh/python-build-standalone/releases/download/"
PYPY = "https://downloads.python.org/pypy/"
GRAAL = "https://github.com/oracle/graalpython/releases/download/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- layout (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (
            PBS + "20251014/cpython-3.13.9%2B20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
            "20251014/cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        ),
        (
            PBS + "20260814/cpython-3.15.0rc1%2B20260814-aarch64-apple-darwin-freethreaded"
            "%2Bdebug-full.tar.zst",
            "20260814/cpython-3.15.0rc1+20260814-aarch64-apple-darwin-freethreaded+debug-full.tar.zst",
        ),
        (PYPY + "pypy3.11-v7.3.20-linux64.tar.bz2", "pypy/pypy3.11-v7.3.20-linux64.tar.bz2"),
        (
            GRAAL + "graal-25.2.4/graalpy3.12-25.2.4-linux-amd64.tar.gz",
            "graalpy/graal-25.2.4/graalpy3.12-25.2.4-linux-amd64.tar.gz",
        ),
        ("https://Art.example/py/c.tar.gz?x=1", "other/art.example/py/c.tar.gz"),
        ("http://127.0.0.1:8080/c.tar.gz", "other/127.0.0.1_8080/c.tar.gz"),
        ("file:///srv/builds/c.tar.gz", "other/localhost/srv/builds/c.tar.gz"),
        (PBS + "20251014/c.tar.gz?raw=1#top", "20251014/c.tar.gz"),
    ],
)
def test_mirror_path(url: str, path: str) -> None:
    assert mirror_path(url) == PurePosixPath(path)


@pytest.mark.parametrize(
    "url",
    [
        PBS + "20251014/../../etc/passwd",
        PBS + "20251014/%2e%2e/x.tar.gz",
        PBS + "20251014/..%2Fx.tar.gz",
        PBS + "20251014//x.tar.gz",
        PBS + "20251014/a%5Cb.tar.gz",
        PBS + "20251014/C%3Ax.tar.gz",
        PBS + "x.tar.gz",  # would land at the top, beside the mirror's own files
        PBS + "20251014/SHA256SUMS",
        PYPY + "%00.tar.gz",
        "https://h.example/",
        # "//" after the prefix: not a host name, but an empty segment.
        PBS + "/tmp/escape/x.tar.gz",
        PBS + "/[::1/x.tar.gz",
        # Control characters: a line break in a file name splits its SHA256SUMS line.
        PBS + "20251014/a%0Ab.tar.gz",
        PBS + "20251014/a\nb.tar.gz",
        PBS + "20251014/a%0Db.tar.gz",
        PBS + "20251014/a%09b.tar.gz",
        PBS + "20251014/a%7Fb.tar.gz",
        PBS + "20251014/a%C2%85b.tar.gz",
        PBS + "20251014/a%E2%80%A8b.tar.gz",
        "https://h.example/a%0Ab/c.tar.gz",
        # URLs Python cannot take apart.
        "https://h:99999/a/b.tar.gz",
        "http://[::1/x.tar.gz",
        # Names a Windows disk or share cannot hold, or opens as a device.
        "https://h.example/py/con.tar.gz",
        "https://h.example/nul/x.tar.gz",
        "https://h.example/py/a%2A%7Cb.tar.gz",
        "https://h.example/py/a%3Cb%3E.tar.gz",
        "https://h.example/py/a%22b.tar.gz",
        "https://h.example/py/x.tar.gz./y.tar.gz",
    ],
)
def test_mirror_path_refuses_hostile_urls(url: str) -> None:
    with pytest.raises(MirrorError, match="cannot mirror") as info:
        mirror_path(url)
    assert info.value.hint is not None and "correct the `url` in pythons.toml" in info.value.hint


def pbs_artifact(
    platform: str, version: str, tag: str, data: bytes, flavor: str = "install_only"
) -> Artifact:
    triple = Platform.parse(platform).pbs_triple
    name = f"cpython-{version}%2B{tag}-{triple}-{flavor}.tar.gz"
    return Artifact(platform=platform, url=f"{PBS}{tag}/{name}", sha256=sha(data), size=len(data))


def locked(name: str, version: str, tag: str, *artifacts: Artifact, **kw: object) -> LockedPython:
    return LockedPython(
        name=name,
        implementation=kw.pop("implementation", Implementation.CPYTHON),  # type: ignore[arg-type]
        version=version,
        build=tag,
        variant=kw.pop("variant", Variant.DEFAULT),  # type: ignore[arg-type]
        flavor=kw.pop("flavor", Flavor.INSTALL_ONLY),  # type: ignore[arg-type]
        artifacts=tuple(artifacts),
    )


def make(*pythons: LockedPython) -> LockFile:
    return make_lock(pythons, config_digest="sha256:" + "2" * 64)


def test_plan_filters_platforms_and_shares_files() -> None:
    linux = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"L")
    mac = pbs_artifact("macos-aarch64", "3.13.9", "20251014", b"M")
    the_lock = make(
        locked("a", "3.13.9", "20251014", linux, mac), locked("b", "3.13.9", "20251014", linux)
    )
    assert [str(e.path.parent) for e in plan_mirror(the_lock, None)] == ["20251014", "20251014"]
    only = plan_mirror(the_lock, ["linux-x86_64-gnu"])
    # One file, although two interpreters lock it.
    assert [(e.python.name, e.artifact.platform) for e in only] == [("a", "linux-x86_64-gnu")]
    assert plan_mirror(the_lock, ["windows-x86_64"]) == []


def test_plan_refuses_two_archives_at_one_url() -> None:
    one = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"one")
    two = Artifact(platform=one.platform, url=one.url, sha256=sha(b"two"))
    the_lock = make(locked("a", "3.13.9", "20251014", one), locked("b", "3.13.9", "20251014", two))
    with pytest.raises(MirrorError, match="a and b lock different archives"):
        plan_mirror(the_lock, None)


def test_parse_sha256sums_tolerates_junk() -> None:
    text = f"{'a' * 64}  x.tar.gz\n{'b' * 64} *y+1.tar.gz\nnot a line\n{'c' * 64}  ../z\n\n"
    assert parse_sha256sums(text) == {"x.tar.gz": "a" * 64, "y+1.tar.gz": "b" * 64}


def test_uv_json_entries_match_uv_upstream_format_exactly() -> None:
    """Every entry of the real uv downloads JSON is reproduced from a lock entry alone."""
    upstream = uv_json()
    checked = 0
    for key, entry in upstream.items():
        platform = Platform.from_uv(
            entry["os"], entry["arch"]["family"], entry["arch"]["variant"], entry["libc"]
        )
        if platform is None or platform.os == "emscripten":
            continue
        version = f"{entry['major']}.{entry['minor']}.{entry['patch']}{entry['prerelease']}"
        python = LockedPython(
            name="x",
            implementation=Implementation(entry["name"]),
            version=version,
            build=entry["build"],
            variant=Variant.parse(entry["variant"] or ""),
            artifacts=(),
        )
        artifact = Artifact(platform=platform.key, url=entry["url"], sha256=entry["sha256"])
        made = uv_key_and_entry(python, artifact)
        assert made == (key, entry), key
        checked += 1
    assert checked > 5000


def test_uv_json_leaves_out_what_uv_cannot_use() -> None:
    direct = Artifact(
        platform="linux-x86_64-gnu", url="https://corp.example/c.tar.gz", sha256="d" * 64
    )
    full = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"F", flavor="pgo+lto-full")
    stripped = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"S")
    the_lock = make(
        locked("a-full", "3.13.9", "20251014", full, flavor=Flavor.FULL),
        locked("b-stripped", "3.13.9", "20251014", stripped),
        locked("corp", "3.12.9", "1", direct),
    )
    document, left_out = uv_downloads_json(plan_mirror(the_lock, None))
    assert list(document) == ["cpython-3.13.9-linux-x86_64-gnu"]
    assert document["cpython-3.13.9-linux-x86_64-gnu"]["sha256"] == full.sha256
    assert left_out == [
        "b-stripped (linux-x86_64-gnu): uv key cpython-3.13.9-linux-x86_64-gnu is already "
        "taken by another archive",
        "corp (linux-x86_64-gnu): not an upstream archive uv can mirror",
    ]


def test_uv_json_hides_a_secret_a_hand_edited_lock_url_carries() -> None:
    """Review: download-metadata.json, which the mirror publishes, took the lock's URL as
    it was, `?X-Amz-Signature=...` and all (install records redact it)."""
    signed = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"S")
    signed = attrs.evolve(signed, url=f"{signed.url}?X-Amz-Signature=SECRET&sv=1")
    document, _ = uv_downloads_json(
        plan_mirror(make(locked("a", "3.13.9", "20251014", signed)), None)
    )
    url = document["cpython-3.13.9-linux-x86_64-gnu"]["url"]
    assert "SECRET" not in url and url.endswith("?X-Amz-Signature=***&sv=1")
    # It names the same file in the tree, so that a later run keeps the entry.
    assert mirror_path(url) == mirror_path(signed.url)


# -- writing a mirror from the cache ------------------------------------------------------------


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    """A file:// stand-in for the upstream hosts, in their own layout."""
    return tmp_path / "upstream"


def publish(upstream_dir: Path, artifact: Artifact, data: bytes) -> None:
    target = upstream_dir / mirror_path(artifact.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def rewrites(upstream_dir: Path) -> UrlRewrites:
    return UrlRewrites.from_sources(
        None,
        [
            f"{PBS}={upstream_dir.as_uri()}/",
            f"{PYPY}={upstream_dir.as_uri()}/pypy/",
            f"{GRAAL}={upstream_dir.as_uri()}/graalpy/",
            f"https://corp.example/={upstream_dir.as_uri()}/other/corp.example/",
        ],
    )


@pytest.fixture
def world(tmp_path: Path, upstream_dir: Path) -> tuple[LockFile, dict[str, bytes]]:
    blobs = {
        "linux": b"linux archive" * 100,
        "mac": b"mac archive" * 100,
        "pypy": b"pypy archive",
        "graal": b"graal archive",
        "corp": b"corp archive",
    }
    linux = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", blobs["linux"])
    mac = pbs_artifact("macos-aarch64", "3.13.9", "20251014", blobs["mac"])
    pp = Artifact(
        platform="linux-x86_64-gnu",
        url=PYPY + "pypy3.11-v7.3.20-linux64.tar.bz2",
        sha256=sha(blobs["pypy"]),
        size=len(blobs["pypy"]),
    )
    gp = Artifact(
        platform="linux-x86_64-gnu",
        url=GRAAL + "graal-25.0.1/graalpy-25.0.1-linux-amd64.tar.gz",
        sha256=sha(blobs["graal"]),
    )
    corp = Artifact(
        platform="linux-x86_64-gnu",
        url="https://corp.example/builds/cpython-corp.tar.gz",
        sha256=sha(blobs["corp"]),
    )
    for artifact, key in (
        (linux, "linux"),
        (mac, "mac"),
        (pp, "pypy"),
        (gp, "graal"),
        (corp, "corp"),
    ):
        publish(upstream_dir, artifact, blobs[key])
    the_lock = make(
        locked("app", "3.13.9", "20251014", linux, mac),
        locked("pp", "3.11.13", "7.3.20", pp, implementation=Implementation.PYPY, flavor=None),
        locked("gp", "3.11.7", "25.0.1", gp, implementation=Implementation.GRAALPY, flavor=None),
        LockedPython(
            name="corp", implementation=Implementation.CPYTHON, version="3.12.9", artifacts=(corp,)
        ),
    )
    return the_lock, blobs


def run_mirror(
    the_lock: LockFile,
    out: Path,
    cache: Cache,
    upstream_dir: Path,
    platforms: list[str] | None = None,
    offline: bool = False,
) -> MirrorReport:
    return build_mirror(
        the_lock,
        out,
        platforms=platforms,
        cache=cache,
        options=FetchOptions(rewrites=rewrites(upstream_dir), offline=offline, jobs=2),
        reporter=NullReporter(),
    )


@dataclass(frozen=True)
class Mirroring:
    """The world's lock mirrored into ``tmp_path/mirror``, again and again, through one cache."""

    the_lock: LockFile
    blobs: dict[str, bytes]
    out: Path
    cache: Cache
    upstream_dir: Path

    def run(self, platforms: list[str] | None = None, offline: bool = False) -> MirrorReport:
        return run_mirror(
            self.the_lock, self.out, self.cache, self.upstream_dir, platforms, offline
        )


@pytest.fixture
def mirroring(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]], cache: Cache
) -> Mirroring:
    the_lock, blobs = world
    return Mirroring(the_lock, blobs, tmp_path / "mirror", cache, upstream_dir)


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_full_mirror_layout(mirroring: Mirroring) -> None:
    out, blobs = mirroring.out, mirroring.blobs
    report = mirroring.run()
    files = tree(out)
    assert sorted(files) == [
        "20251014/SHA256SUMS",
        "20251014/cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz",
        "20251014/cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "download-metadata.json",
        "graalpy/graal-25.0.1/SHA256SUMS",
        "graalpy/graal-25.0.1/graalpy-25.0.1-linux-amd64.tar.gz",
        "other/corp.example/builds/SHA256SUMS",
        "other/corp.example/builds/cpython-corp.tar.gz",
        "pypy/SHA256SUMS",
        "pypy/pypy3.11-v7.3.20-linux64.tar.bz2",
    ]
    assert (out / "20251014" / "SHA256SUMS").read_text() == (
        f"{sha(blobs['mac'])}  cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz\n"
        f"{sha(blobs['linux'])}  "
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz\n"
    )
    uv = json.loads((out / UV_JSON_NAME).read_text())
    assert sorted(uv) == [
        "cpython-3.13.9-darwin-aarch64-none",
        "cpython-3.13.9-linux-x86_64-gnu",
        "graalpy-3.11.7-linux-x86_64-gnu",
        "pypy-3.11.13-linux-x86_64-gnu",
    ]
    # Canonical URLs: uv's --mirror maps them onto the tree.
    assert uv["cpython-3.13.9-linux-x86_64-gnu"]["url"].startswith(PBS + "20251014/")
    assert report.archives == 5
    assert report.not_in_uv_json == (
        "corp (linux-x86_64-gnu): not an upstream archive uv can mirror",
    )
    # No temporary files are left behind.
    assert not list(out.rglob(".*"))


def test_rerun_is_incremental_and_repairs(mirroring: Mirroring) -> None:
    out = mirroring.out
    mirroring.run(platforms=["linux-x86_64-gnu"])
    assert not (
        out / "20251014" / "cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz"
    ).exists()
    # Nothing is downloaded again: the upstream may vanish, and offline is fine.
    shutil.rmtree(mirroring.upstream_dir)
    second = mirroring.run(platforms=["linux-x86_64-gnu"], offline=True)
    assert second.added == () and second.repaired == () and len(second.unchanged) == 4

    # Damage a mirrored file (replace, not edit in place: it may share its inode with the cache).
    victim = out / "pypy" / "pypy3.11-v7.3.20-linux64.tar.bz2"
    victim.unlink()
    victim.write_bytes(b"tampered")
    third = mirroring.run(platforms=["linux-x86_64-gnu"], offline=True)
    assert third.repaired == ("pypy/pypy3.11-v7.3.20-linux64.tar.bz2",)
    assert victim.read_bytes() == mirroring.blobs["pypy"]


def test_runs_for_other_platforms_accumulate(mirroring: Mirroring) -> None:
    out, blobs = mirroring.out, mirroring.blobs
    mirroring.run(platforms=["macos-aarch64"])
    mirroring.run(platforms=["linux-x86_64-gnu"])
    sums = parse_sha256sums((out / "20251014" / "SHA256SUMS").read_text())
    assert sorted(sums.values()) == sorted([sha(blobs["mac"]), sha(blobs["linux"])])
    uv = json.loads((out / UV_JSON_NAME).read_text())
    assert "cpython-3.13.9-darwin-aarch64-none" in uv and "cpython-3.13.9-linux-x86_64-gnu" in uv
    # An entry whose archive left the tree is dropped from the JSON and the sums.
    (out / "20251014" / "cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz").unlink()
    mirroring.run(platforms=["linux-x86_64-gnu"])
    assert "cpython-3.13.9-darwin-aarch64-none" not in json.loads((out / UV_JSON_NAME).read_text())
    assert list(parse_sha256sums((out / "20251014" / "SHA256SUMS").read_text())) == [
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz"
    ]


#: A uv JSON that a mirror run finds in the tree and must replace: broken, or (from a field
#: test) holding URLs that cannot be parsed and entries that are not uv's at all.
_EXISTING_UV_JSON = {
    "broken": "{not json",
    "unparsable-urls": json.dumps(
        {
            "port": {"url": "https://h:99999/a/b.tar.gz"},
            "ipv6": {"url": "http://[::1/x.tar.gz"},
            "nul": {"url": PBS + "20251014/%00.tar.gz"},
            "surrogate": {"url": "https://h.example/\ud800/x.tar.gz"},
            "no-url": {"name": "cpython"},
            "not-a-dict": 5,
        }
    ),
}


@pytest.mark.parametrize("existing", list(_EXISTING_UV_JSON.values()), ids=list(_EXISTING_UV_JSON))
def test_an_existing_uv_json_is_rewritten_with_only_what_it_mirrors(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]], existing: str
) -> None:
    the_lock, _ = world
    out = tmp_path / "mirror"
    out.mkdir()
    (out / UV_JSON_NAME).write_text(existing)
    run_mirror(the_lock, out, Cache(tmp_path / "cache"), upstream_dir, platforms=["macos-aarch64"])
    assert list(json.loads((out / UV_JSON_NAME).read_text())) == [
        "cpython-3.13.9-darwin-aarch64-none"
    ]


def test_corrupt_cache_entry_is_fetched_again(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    the_lock, blobs = world
    cache = Cache(tmp_path / "cache")
    app = the_lock.pythons[0]
    mac = app.artifact_for("macos-aarch64")
    assert mac is not None
    # Same size, different bytes: only a hash check notices.
    rotten = cache.archive_path(mac.sha256, mac.filename)
    rotten.parent.mkdir(parents=True)
    rotten.write_bytes(b"X" * len(blobs["mac"]))
    out = tmp_path / "mirror"
    run_mirror(the_lock, out, cache, upstream_dir, platforms=["macos-aarch64"])
    assert (out / mirror_path(mac.url)).read_bytes() == blobs["mac"]


def test_offline_miss_names_the_archive(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    the_lock, _ = world
    with pytest.raises(OfflineError, match=r"aarch64-apple-darwin"):
        run_mirror(
            the_lock, tmp_path / "m", Cache(tmp_path / "c"), upstream_dir, ["macos-aarch64"], True
        )
    # A first run that failed leaves no empty mirror behind (README field test).
    assert not (tmp_path / "m").exists()
    # One that existed before stays, and so does what it holds.
    (tmp_path / "m" / "keep").mkdir(parents=True)
    with pytest.raises(OfflineError):
        run_mirror(
            the_lock, tmp_path / "m", Cache(tmp_path / "c"), upstream_dir, ["macos-aarch64"], True
        )
    assert (tmp_path / "m" / "keep").is_dir()


def test_offline_misses_are_one_error_naming_them_all(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    """Output at scale: an offline mirror of many archives missing from the cache gave an
    error per archive, each naming it twice, then a line naming them all; `fetch` gives
    one error that lists them."""
    the_lock, _ = world
    artifacts = [a for p in the_lock.pythons for a in p.artifacts]
    assert len(artifacts) > 1
    with pytest.raises(OfflineError) as caught:
        run_mirror(the_lock, tmp_path / "m", Cache(tmp_path / "c"), upstream_dir, None, True)
    message = str(caught.value)
    assert f"offline, and {len(artifacts)} archives are missing from" in message
    lines = message.splitlines()[1:]
    assert len(lines) == len(artifacts)  # a line each, in one error
    for artifact in artifacts:
        assert any(line.startswith(f"  {artifact.filename} (sha256 ") for line in lines)


def test_upstream_serving_wrong_bytes_fails_and_leaves_nothing(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    the_lock, _ = world
    mac = the_lock.pythons[0].artifact_for("macos-aarch64")
    assert mac is not None
    (upstream_dir / mirror_path(mac.url)).write_bytes(b"evil" * 275)
    out = tmp_path / "m"
    with pytest.raises(PylockError, match="mismatch"):
        run_mirror(the_lock, out, Cache(tmp_path / "c"), upstream_dir, ["macos-aarch64"])
    assert not out.exists()


def test_every_archive_that_cannot_be_fetched_is_named_and_the_others_are_cached(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    """Mirror field test: the first archive that failed stopped the run, cancelled the
    good ones under way, and was the only one named: one rerun per broken file."""
    the_lock, _ = world
    artifacts = [a for python in the_lock.pythons for a in python.artifacts]
    broken = artifacts[:2]
    for artifact in broken:
        (upstream_dir / mirror_path(artifact.url)).write_bytes(b"evil" * 275)
    cache = Cache(tmp_path / "c")
    with pytest.raises(ArchivesNotFetchedError) as info:
        run_mirror(the_lock, tmp_path / "m", cache, upstream_dir, None)
    assert str(info.value) == (
        f"2 of {len({a.sha256 for a in artifacts})} archives could not be fetched: "
        + ", ".join(sorted(a.filename for a in broken))
    )
    assert sorted(name for name, _ in info.value.failed) == sorted(a.filename for a in broken)
    assert all("mismatch" in str(error) for _, error in info.value.failed)
    # The hint both share is said once, for the two.
    assert info.value.hint is not None and "bytes the lock names" in info.value.hint
    assert {e.sha256 for e in cache.list()} == {a.sha256 for a in artifacts[2:]}


def test_nothing_to_mirror(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    the_lock, _ = world
    with pytest.raises(MirrorError, match="no archives for windows-x86_64") as info:
        run_mirror(
            the_lock, tmp_path / "m", Cache(tmp_path / "c"), upstream_dir, ["windows-x86_64"]
        )
    assert info.value.hint is not None and "linux-x86_64-gnu, macos-aarch64" in info.value.hint


# -- the command -------------------------------------------------------------------------------


def test_cli_mirror_platform_choices(
    tmp_path: Path,
    upstream_dir: Path,
    world: tuple[LockFile, dict[str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    the_lock, _ = world
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.lock").write_text(dumps(the_lock))
    env = {
        "PYLOCK_CACHE_DIR": str(tmp_path / "cache"),
        "PYLOCK_URL_REWRITES": " ".join(
            r.source + "=" + r.target for r in rewrites(upstream_dir).rules
        ),
    }
    base = ["--project", str(project), "mirror"]
    out = tmp_path / "m1"
    # Given with a `..`: the commands it prints, for other machines, name the plain path.
    assert main([*base, str(project / ".." / "m1"), "--platform", "macos-aarch64"], env) == 0
    stdout = capsys.readouterr().out
    assert ".." not in stdout
    assert f"pylock sync --mirror {out.as_uri()}/" in stdout
    assert f"--python-downloads-json-url {out.as_uri()}/{UV_JSON_NAME}" in stdout
    assert sorted(p.name for p in out.rglob("*.tar.gz")) == [
        "cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz"
    ]
    out = tmp_path / "m2"
    assert main([*base, str(out), "--all-platforms"], env) == 0
    stdout, stderr = capsys.readouterr()
    # Scale attack: only -v said what the JSON left out (corp's direct URL, here).
    assert "1 of them are not in download-metadata.json: uv cannot name or use them" in stderr
    assert f"--pypy-mirror {out.as_uri()}/pypy/" in stdout
    assert f"--graalpy-mirror {out.as_uri()}/graalpy/" in stdout
    assert len(list(out.rglob("*.tar.*"))) == 5
    assert main([*base, str(out), "--platform", "linux-x86_64-gnux"], env) == 2
    assert "did you mean 'linux-x86_64-gnu'" in capsys.readouterr().err
    assert main([*base, str(out), "--all-platforms", "--platform", "macos-aarch64"], env) == 2
    # Default: the host platform.
    out = tmp_path / "m3"
    code = main([*base, str(out)], env)
    if host().key in ("linux-x86_64-gnu", "macos-aarch64"):
        assert code == 0
        assert {a.platform for a in the_lock.pythons[0].artifacts} >= {host().key}
    else:
        assert code == 1
        assert "nothing to mirror" in capsys.readouterr().err


# -- from a field test ------------------------------------------------------------------------


def test_temporary_files_of_interrupted_runs_are_removed(
    mirroring: Mirroring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed by SIGTERM leaves its temporary files; a later run removes them."""
    import pylock.mirror

    out = mirroring.out
    mirroring.run()
    archive = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz"
    stale = [
        out / "20251014" / f".{archive}.0123456789ab.tmp",
        out / "pypy" / ".SHA256SUMS.k3j_9xq2.tmp",
        out / ".download-metadata.json.abcdefgh.tmp",
    ]
    kept = [
        out / "20251014" / ".keep",
        out / "20251014" / ".notes.tmp",
        out / "20251014" / f".{archive}.0123456789AB.tmp",
        # Not a directory this run writes to.
        out / "20990101" / f".{archive}.0123456789ab.tmp",
    ]
    for path in [*stale, *kept]:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"partial")
        # Old content: a hard link keeps the cached file's mtime, the change time is now.
        os.utime(path, (1, 1))
    a_dir = out / "20251014" / ".dir.0123456789ab.tmp"
    a_dir.mkdir()
    a_link = out / "20251014" / ".link.0123456789ab.tmp"
    a_link.symlink_to(out / "20251014" / archive)
    kept += [a_dir, a_link]

    # Just changed: maybe a concurrent run's, about to be renamed into place.
    mirroring.run(offline=True)
    assert all(p.exists() for p in stale)

    monkeypatch.setattr(pylock.mirror, "STALE_TEMP_SECONDS", 0)
    mirroring.run(offline=True)
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists() and not p.is_symlink()] == []


def test_a_temporary_left_while_the_clock_ran_ahead_is_removed(
    mirroring: Mirroring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a mirror run was killed while the clock was a month ahead (a VM that booted
    with a wrong clock until NTP stepped it back). Its temporary file, modified and changed
    "in the future", looked young to every later run and stayed in the served tree until
    the clock caught up, unlike every other temporary pylock cleans (``fsutil.is_stale``)."""
    out = mirroring.out
    mirroring.run()
    archive = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz"
    stale = out / "20251014" / f".{archive}.0123456789ab.tmp"
    stale.write_bytes(b"partial")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 30 * 86400)
    mirroring.run(offline=True)
    assert not stale.exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_a_private_cache_gives_a_tree_readable_as_the_umask_says(
    mirroring: Mirroring, umask: Callable[[int], object]
) -> None:
    # Hard links carried a cache's 0600 (made under umask 077) into a tree made to be
    # served: a web server running as another user answered 404 for every archive.
    umask(0o077)
    mirroring.run()  # fills the cache, privately, and a first tree
    umask(0o022)
    shutil.rmtree(mirroring.out)
    mirroring.run(offline=True)
    archives = [p for p in mirroring.out.rglob("*.tar.*") if p.is_file()]
    assert archives
    for archive in archives:
        assert stat.S_IMODE(archive.stat().st_mode) == 0o644, archive
        cached = mirroring.cache.lookup(sha(archive.read_bytes()))
        assert cached is not None and stat.S_IMODE(cached.stat().st_mode) == 0o600
    # A cache as readable as the tree is linked, as before.
    umask(0o077)
    shutil.rmtree(mirroring.out)
    mirroring.run(offline=True)
    assert all(p.stat().st_nlink > 1 for p in mirroring.out.rglob("*.tar.*") if p.is_file())


def test_a_file_where_a_directory_of_the_tree_goes_is_named(mirroring: Mirroring) -> None:
    # It said "Not a directory: OUTDIR/20251014/ARCHIVE", with a permissions hint.
    mirroring.out.mkdir()
    (mirroring.out / "20251014").write_text("in the way")
    with pytest.raises(MirrorError) as info:
        mirroring.run()
    assert f"{mirroring.out / '20251014'} is a file, not a directory" in str(info.value)
    assert info.value.hint == "move that file out of the mirror tree, or give another OUTDIR"


def test_printed_commands_cover_the_whole_tree(mirroring: Mirroring) -> None:
    out = mirroring.out
    base = out.as_uri()
    mirroring.run()
    app = mirroring.the_lock.pythons[0]
    # A later run for a lock of CPython only: the JSON still lists PyPy and GraalPy.
    report = run_mirror(make(app), out, mirroring.cache, mirroring.upstream_dir, offline=True)
    assert report.implementations == {
        Implementation.CPYTHON,
        Implementation.PYPY,
        Implementation.GRAALPY,
    }
    uv_line = usage_lines(base, report)[-1]
    assert uv_line == (
        f"  uv python install --mirror {base}/ --pypy-mirror {base}/pypy/ "
        f"--graalpy-mirror {base}/graalpy/ --python-downloads-json-url {base}/{UV_JSON_NAME}"
    )
    # Once their archives have left the tree, their flags go too.
    shutil.rmtree(out / "pypy")
    report = run_mirror(make(app), out, mirroring.cache, mirroring.upstream_dir, offline=True)
    assert report.implementations == {Implementation.CPYTHON, Implementation.GRAALPY}


def test_printed_commands_name_other_hosts_folders_earlier_runs_wrote(
    mirroring: Mirroring,
) -> None:
    # The tree keeps no record of the URL an `other/` folder stands for: a later run's
    # commands left it out, and said they covered the whole tree.
    out = mirroring.out
    base = out.as_uri()
    assert mirroring.run().earlier_other == ()
    app = mirroring.the_lock.pythons[0]
    report = run_mirror(make(app), out, mirroring.cache, mirroring.upstream_dir, offline=True)
    assert report.earlier_other == ("corp.example",)
    assert (
        "  earlier runs put archives of other hosts under other/corp.example/: add the "
        f"--rewrite those runs printed (https://<host>/={base}/other/<folder>/) for each"
    ) in usage_lines(base, report)


def test_printed_rewrites_for_other_hosts_find_the_files(mirroring: Mirroring) -> None:
    out = mirroring.out
    base = out.as_uri()
    report = mirroring.run()
    assert report.other_rewrites == (("https://corp.example/", "other/corp.example"),)
    pylock_line = usage_lines(base, report)[0]
    flag = f"--rewrite https://corp.example/={base}/other/corp.example/"
    assert pylock_line.endswith(" " + flag)
    corp = next(p for p in mirroring.the_lock.pythons if p.name == "corp").artifacts[0]
    target = UrlRewrites.from_sources(None, [flag.split()[1]]).apply(corp.url)
    assert Path(url2pathname(urlsplit(target).path)).read_bytes() == mirroring.blobs["corp"]


def test_printed_commands_quote_what_a_shell_would_read_otherwise() -> None:
    # `--rewrite https://[::1]:8443/=...` unquoted: zsh said "no matches found".
    report = MirrorReport(
        implementations=frozenset({Implementation.CPYTHON}),
        other_rewrites=(("https://[::1]:8443/", "other/__1_8443"),),
    )
    pylock_line = usage_lines("file:///srv/m", report)[0]
    assert pylock_line == (
        "  pylock sync --mirror file:///srv/m/ "
        "--rewrite 'https://[::1]:8443/=file:///srv/m/other/__1_8443/'"
    )
    words = shlex.split(pylock_line)
    assert words[-1] == "https://[::1]:8443/=file:///srv/m/other/__1_8443/"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_in_place_of_the_mirrors_own_files_does_not_hang(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]]
) -> None:
    the_lock, blobs = world
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.lock").write_text(dumps(the_lock))
    out = tmp_path / "mirror"
    (out / "20251014").mkdir(parents=True)
    os.mkfifo(out / UV_JSON_NAME)
    os.mkfifo(out / "20251014" / "SHA256SUMS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLOCK_")}
    env.update(
        PYLOCK_CACHE_DIR=str(tmp_path / "cache"),
        PYLOCK_URL_REWRITES=" ".join(
            r.source + "=" + r.target for r in rewrites(upstream_dir).rules
        ),
    )
    command = [sys.executable, "-m", "pylock", "--project", str(project), "mirror", str(out)]
    done = subprocess.run(
        [*command, "--platform", "macos-aarch64"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert f"{out / UV_JSON_NAME}: not a regular file; writing it afresh" in done.stderr
    assert list(json.loads((out / UV_JSON_NAME).read_text())) == [
        "cpython-3.13.9-darwin-aarch64-none"
    ]
    sums = parse_sha256sums((out / "20251014" / "SHA256SUMS").read_text())
    assert list(sums.values()) == [sha(blobs["mac"])]


def _mirror_fails(
    the_lock: LockFile, out: Path, tmp_path: Path, upstream_dir: Path, stream: io.StringIO
) -> MirrorError:
    """The error of mirroring the lock's macOS archive into ``out``."""
    with pytest.raises(MirrorError) as info:
        build_mirror(
            the_lock,
            out,
            platforms=["macos-aarch64"],
            cache=Cache(tmp_path / "cache"),
            options=FetchOptions(rewrites=rewrites(upstream_dir), jobs=1),
            reporter=Reporter(stream, live=False),
        )
    return info.value


@pytest.mark.parametrize("what", ["file", "device", "dangling"])
def test_an_outdir_that_is_not_a_directory_is_named_as_such(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]], what: str
) -> None:
    """CLI attack: `pylock mirror /dev/null` said "cannot create /dev/null: File exists"."""
    the_lock, _ = world
    out = tmp_path / "out.txt"
    if what == "file":
        out.write_text("mine", encoding="utf-8")
    elif what == "dangling":
        out.symlink_to(tmp_path / "gone")
    else:
        if not os.path.exists(os.devnull) or os.name == "nt":
            pytest.skip("no null device to point at")
        out = Path(os.devnull)
    error = _mirror_fails(the_lock, out, tmp_path, upstream_dir, io.StringIO())
    assert str(error) == (
        f"{out} is a symlink to {tmp_path / 'gone'}, which does not exist"
        if what == "dangling"
        else f"{out} is not a directory"
    )
    assert error.hint == "give a directory (or a new path) as OUTDIR"
    if what == "file":
        assert out.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("where", [UV_JSON_NAME, "20251014/SHA256SUMS"])
def test_a_directory_in_place_of_the_mirrors_own_files_is_named(
    tmp_path: Path, upstream_dir: Path, world: tuple[LockFile, dict[str, bytes]], where: str
) -> None:
    the_lock, _ = world
    out = tmp_path / "mirror"
    (out / where).mkdir(parents=True)
    stream = io.StringIO()
    error = _mirror_fails(the_lock, out, tmp_path, upstream_dir, stream)
    assert str(error) == f"cannot write {out / where}: a directory is in the way"
    assert error.hint == "move that directory out of the mirror tree, or give another OUTDIR"
    assert "warning" not in stream.getvalue()


def test_two_urls_for_one_path_are_both_named() -> None:
    one = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", b"one")
    two = Artifact(platform=one.platform, url=one.url.replace("%2B", "+"), sha256=sha(b"two"))
    the_lock = make(locked("a", "3.13.9", "20251014", one), locked("b", "3.13.9", "20251014", two))
    with pytest.raises(MirrorError) as info:
        plan_mirror(the_lock, None)
    message = str(info.value)
    assert f"at {one.url} and {two.url}, which both map to {mirror_path(one.url)}" in message


def test_two_urls_whose_paths_differ_only_in_case_are_both_named() -> None:
    """Portability review: on macOS and Windows the second archive replaced the first in
    the mirror, and every run "repaired" one with the other."""
    one = Artifact(
        platform="linux-x86_64-gnu",
        url="https://artifacts.example/py/Cpython-corp.tar.gz",
        sha256=sha(b"one"),
    )
    two = Artifact(
        platform=one.platform, url=one.url.replace("Cpython", "cpython"), sha256=sha(b"two")
    )
    the_lock = make(locked("a", "3.13.9", "20251014", one), locked("b", "3.13.9", "20251014", two))
    with pytest.raises(MirrorError) as info:
        plan_mirror(the_lock, None)
    assert (
        f"which both map to {mirror_path(one.url)} and {mirror_path(two.url)}, one file where "
        "case does not count"
    ) in str(info.value)
    # The same bytes under both spellings: one file serves both where case does not
    # count, and both are written where it does (each URL is served).
    same = attrs.evolve(two, sha256=one.sha256)
    the_lock = make(locked("a", "3.13.9", "20251014", one), locked("b", "3.13.9", "20251014", same))
    assert [e.path for e in plan_mirror(the_lock, None)] == sorted(
        [mirror_path(one.url), mirror_path(two.url)]
    )


# -- a real web server, pylock sync and uv ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Debian's nginx serving a directory on loopback; yields (root, base URL)."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx; .ci/run does this)")
    root = tmp_path / "www"
    root.mkdir()
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    port = free_port()
    user = "user root root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log {prefix}/logs/access.log;\n"
        f"  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; "
        f"scgi_temp_path {prefix}/scgi;\n"
        "  default_type application/octet-stream;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }}\n"
        "}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-e", str(prefix / "logs" / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"nginx did not start: {err}")
                time.sleep(0.05)
        yield root, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def installed_files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    result = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        if path.is_symlink():
            result[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            result[rel] = sha(path.read_bytes())
    return result


@pytest.mark.slow
def test_pylock_and_uv_install_identically_from_nginx(
    tmp_path: Path, nginx: tuple[Path, str]
) -> None:
    from tests import realpython

    # The test extra's uv is beside this interpreter, which need not be on PATH (a venv
    # that is not activated): found through its package, as the other uv tests find it.
    try:
        import uv
    except ImportError:
        uv_bin = shutil.which("uv")
        if uv_bin is None:
            pytest.skip("uv is not installed")
    else:
        uv_bin = uv.find_uv_bin()
    try:
        archive = realpython.build_pbs_archive(tmp_path / "built")
    except realpython.RealPythonUnavailable as exc:
        pytest.skip(f"no real archive can be built here: {exc}")
    www, base = nginx
    project = tmp_path / "project"
    project.mkdir()
    realpython.write_lock(project, [archive], names=["app"])
    upstream = tmp_path / "upstream"
    realpython.write_mirror_tree(upstream, [archive])

    def pylock(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pylock", "--project", str(project), *args],
            env=realpython.clean_env(**env),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).parents[1],
        )

    # The connected side: fill a cache from "upstream" and lay out the mirror in nginx's root.
    done = pylock(
        "mirror", str(www), "--mirror", upstream.as_uri(), PYLOCK_CACHE_DIR=str(tmp_path / "c1")
    )
    assert done.returncode == 0, done.stderr
    assert (www / archive.tag / archive.filename).is_file()

    # pylock, with an empty cache, from the web server.
    into = tmp_path / "pylock-pythons"
    done = pylock(
        "sync",
        "--into",
        str(into),
        "--mirror",
        base + "/",
        "--no-fixups",
        PYLOCK_CACHE_DIR=str(tmp_path / "c2"),
    )
    assert done.returncode == 0, done.stderr
    access = (tmp_path / "nginx" / "logs" / "access.log").read_text()
    assert f"GET /{archive.tag}/" in access

    # uv, from the same server, with the downloads JSON the mirror wrote.
    uv_dir = tmp_path / "uv-pythons"
    done = subprocess.run(
        [
            uv_bin,
            "python",
            "install",
            archive.version,
            "--no-bin",
            "--no-config",
            "--mirror",
            base + "/",
            "--python-downloads-json-url",
            f"{base}/{UV_JSON_NAME}",
        ],
        env={
            k: v
            for k, v in realpython.clean_env(
                UV_PYTHON_INSTALL_DIR=str(uv_dir), UV_CACHE_DIR=str(tmp_path / "uv-cache")
            ).items()
            if not k.startswith("UV_") or k in ("UV_PYTHON_INSTALL_DIR", "UV_CACHE_DIR")
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    uv_tree = uv_dir / f"cpython-{archive.version}-{host().key}"
    assert uv_tree.is_dir() and not uv_tree.is_symlink(), sorted(os.listdir(uv_dir))
    ours = installed_files(into / "app")
    theirs = installed_files(uv_tree)
    # Each tool adds its own bookkeeping: uv a BUILD file and an EXTERNALLY-MANAGED marker,
    # pylock its install record. Everything that came out of the archive must be shared.
    only_uv = {k for k in set(theirs) - set(ours) if not _uv_own(k)}
    only_pylock = {k for k in set(ours) - set(theirs) if not k.split("/")[0].startswith(".pylock")}
    assert (only_uv, only_pylock) == (set(), set())
    # Both rewrite build-machine paths in the sysconfig data (each in its own way); every
    # other file is byte for byte the same.
    differing = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
    assert [k for k in differing if not _patched_by_installers(k)] == []
    assert len(set(ours) & set(theirs)) > 100


def _uv_own(path: str) -> bool:
    return path == "BUILD" or (
        path.startswith("lib/python") and path.endswith("/EXTERNALLY-MANAGED")
    )


def _patched_by_installers(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return (
        name.startswith("_sysconfigdata_")
        or name.endswith(".pc")
        or (path.startswith("bin/") and name.endswith("-config"))
        or name in ("Makefile", "_sysconfig_vars.json")
    )


def test_placing_an_archive_already_linked_there_leaves_no_temporary_name(
    tmp_path: Path,
) -> None:
    """Two mirror runs placed one cached archive: the second rename was between two links
    to one file, which rename(2) leaves alone, and the temporary name stayed (field test 3)."""
    from pylock.mirror import _place

    data = b"archive" * 100
    artifact = pbs_artifact("linux-x86_64-gnu", "3.13.9", "20251014", data)
    source = tmp_path / "cached.tar.gz"
    source.write_bytes(data)
    target = tmp_path / "mirror" / "20251014" / "a.tar.gz"
    _place(source, target, artifact)
    _place(source, target, artifact)
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.tar.gz"]
    assert target.read_bytes() == data


@pytest.mark.parametrize("moment", ["after the downloads", "under the hold"])
def test_an_archive_removed_from_the_cache_meanwhile_is_fetched_again(
    mirroring: Mirroring, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """Race attack: a `pylock cache clean` that ran after the downloads made the mirror fail
    with "cannot write OUTDIR/...: No such file or directory" (the archive was not held
    until it was placed); so did a sync that evicted a held archive as corrupt."""
    import pylock.mirror

    other = Cache(mirroring.cache.root)  # another process's view of the same cache
    removed: list[int] = []
    if moment == "after the downloads":
        real_fetch = pylock.mirror._fetch_into_cache

        def fetch(entries: list[Any], *args: Any) -> dict[str, Path]:
            paths = real_fetch(entries, *args)
            if not removed:
                removed.append(len(other.clean().removed))
            return paths

        monkeypatch.setattr(pylock.mirror, "_fetch_into_cache", fetch)
    else:
        real_place = pylock.mirror._place

        def place(source: Path, target: Path, artifact: Artifact) -> None:
            if not removed:
                # A held archive stays through a clean; an eviction ignores holds.
                assert other.clean().removed == ()
                removed.append(int(other.evict(artifact.sha256)))
            real_place(source, target, artifact)

        monkeypatch.setattr(pylock.mirror, "_place", place)
    report = mirroring.run(["macos-aarch64"])
    assert removed == [1]
    assert report.added == (
        "20251014/cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz",
    )
    assert tree(mirroring.out)[report.added[0]] == sha(mirroring.blobs["mac"])
    assert [e.sha256 for e in mirroring.cache.list()] == [sha(mirroring.blobs["mac"])]


def test_many_archives_that_cannot_be_fetched_are_each_named_and_their_hints_said_once(
    tmp_path: Path, server: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scale test (30 here): a mirror of 150 archives from a mirror that lacked them listed 150
    in its closing error, and said no hint at all when two hints differed."""
    artifacts = [
        pbs_artifact("linux-x86_64-gnu", f"3.13.{n}", "20251014", b"%d" % n) for n in range(30)
    ]
    the_lock = make(
        *(locked(f"py-{n}", f"3.13.{n}", "20251014", a) for n, a in enumerate(artifacts))
    )
    for artifact in artifacts[:2]:  # served, but not the bytes the lock names
        server.serve("/" + str(mirror_path(artifact.url)), b"evil")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.lock").write_text(dumps(the_lock))
    env = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache")}
    args = ["--project", str(project), "mirror", str(tmp_path / "m"), "--all-platforms"]
    assert main([*args, "--mirror", server.url("/")], env) == 1
    lines = capsys.readouterr().err.splitlines()
    names = sorted(a.filename for a in artifacts)
    # Each under its name, in its own error line ...
    assert [line.split(": ")[2] for line in lines[:30]] == names
    # ... then the first 10 and how many more ...
    assert lines[30] == (
        "pylock: error: 30 of 30 archives could not be fetched: "
        + ", ".join(names[:10])
        + " and 20 more"
    )
    # ... then each hint several share, once, naming those it is about when they differ.
    assert len(lines) == 32 and lines[31].startswith("pylock: hint: ")
    bad = ", ".join(sorted(a.filename for a in artifacts[:2]))
    assert lines[31].startswith(f"pylock: hint: {bad}: pylock installs only the bytes")
    assert lines[31].endswith(" and 18 more: check that the mirror holds the file asked for")
