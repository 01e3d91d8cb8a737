"""Live refresh against a look-alike of the upstream hosts: PBS, PyPy, GraalPy, metadata cache."""

from __future__ import annotations

import time

import pytest

from pylock.errors import OfflineError, RateLimitError, UpstreamError
from pylock.index.live import RefreshNeeds, refresh_index
from pylock.index.model import Build, Index
from pylock.net.fetch import FetchOptions
from pylock.progress import Reporter
from pylock.settings import Settings
from pylock.sync.cache import Cache
from pylock.urls import UrlRewrites
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import index_of, pbs
from tests.upstream_server import (
    LINUX,
    MAC,
    PypyFile,
    PypyRelease,
    UpstreamServer,
    graalpy_archive,
    pbs_full,
    pbs_install_only,
    pbs_name,
    pypy_archive,
    sha256,
)

CPYTHON = frozenset({Implementation.CPYTHON})


class Recorder(Reporter):
    """A reporter that keeps warnings for assertions."""

    def __init__(self) -> None:
        super().__init__(verbosity=-1, live=False)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def options(server: UpstreamServer, *, offline: bool = False) -> FetchOptions:
    rewrites = UrlRewrites.from_sources(None, server.rewrite_pairs(), None, None)
    return FetchOptions(rewrites=rewrites, offline=offline, retries=1, backoff=0.01)


def refresh(
    server: UpstreamServer,
    cache: Cache,
    base: Index,
    *,
    need: RefreshNeeds | None = None,
    offline: bool = False,
    reporter: Reporter | None = None,
    token: str | None = None,
) -> Index:
    return refresh_index(
        base,
        fetch_options=options(server, offline=offline),
        metadata_dir=cache.metadata_dir,
        reporter=reporter or Recorder(),
        need=need or RefreshNeeds(implementations=CPYTHON),
        settings=Settings.from_environ({"GITHUB_TOKEN": token} if token else {}),
    )


def snapshot_base() -> Index:
    """A small stand-in for the bundled snapshot, newest tag 20250918."""
    return index_of(
        pbs("3.13.7", "20250918", "linux-x86_64-gnu"),
        pbs("3.12.11", "20250918", "linux-x86_64-gnu"),
    )


def new_release(
    server: UpstreamServer, tag: str = "20251014", **kwargs: object
) -> dict[str, bytes]:
    assets = {
        pbs_name("3.13.9", tag, LINUX): pbs_install_only("3.13.9"),
        pbs_name("3.13.9", tag, LINUX, "install_only"): pbs_install_only("3.13.9"),
        pbs_name("3.13.9", tag, LINUX, "freethreaded-install_only"): pbs_install_only(
            "3.13.9", freethreaded=True
        ),
        pbs_name("3.13.9", tag, MAC, "pgo+lto-full"): pbs_full("3.13.9", MAC),
        pbs_name("3.14.0", tag, LINUX, "debug-full"): pbs_full("3.14.0"),
    }
    server.add_pbs_release(tag, "2025-10-14T18:00:00Z", assets, **kwargs)  # type: ignore[arg-type]
    return assets


def builds_of(index: Index, tag: str) -> dict[str, Build]:
    return {b.filename: b for b in index.builds if b.build == tag}


# -- PBS -------------------------------------------------------------------------------------


def test_new_release_is_merged_with_hashes_from_sha256sums(
    upstream: UpstreamServer, cache: Cache
) -> None:
    assets = new_release(upstream)
    index = refresh(upstream, cache, snapshot_base())
    found = builds_of(index, "20251014")
    assert set(found) == set(assets)
    for name, body in assets.items():
        assert found[name].sha256 == sha256(body)
        assert found[name].url == upstream.pbs_url("20251014", name)
        assert "%2B" in found[name].url
    stripped = found[pbs_name("3.13.9", "20251014", LINUX)]
    assert (stripped.version, stripped.platform, stripped.flavor) == (
        "3.13.9",
        "linux-x86_64-gnu",
        Flavor.INSTALL_ONLY_STRIPPED,
    )
    # Every flavor and variant is produced; choosing among them is the resolver's job.
    variants = {(b.variant, b.flavor) for b in found.values()}
    assert (Variant.FREETHREADED, Flavor.INSTALL_ONLY) in variants
    assert (Variant.DEBUG, Flavor.FULL) in variants
    # The snapshot's builds survive the merge.
    assert builds_of(index, "20250918")
    # Sizes come from the API listing, consulted to find releases in between.
    assert stripped.size == len(assets[pbs_name("3.13.9", "20251014", LINUX)])
    assert index.publication_date("20251014") == "2025-10-14"


def test_known_latest_release_costs_one_request(upstream: UpstreamServer, cache: Cache) -> None:
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {})
    base = snapshot_base()
    index = refresh(upstream, cache, base)
    assert sorted(b.url for b in index.builds) == sorted(b.url for b in base.builds)
    assert [r.path.rsplit("/", 1)[-1] for r in upstream.log] == ["latest-release.json"]


def test_intermediate_releases_found_through_the_api(
    upstream: UpstreamServer, cache: Cache
) -> None:
    # Tag strings lie about order: 20250323 was published after 20251014.
    upstream.add_pbs_release(
        "20251014", "2025-10-14T10:00:00Z", {pbs_name("3.13.9", "20251014", LINUX): b"a"}
    )
    upstream.add_pbs_release(
        "20250323", "2026-03-23T10:00:00Z", {pbs_name("3.13.10", "20250323", LINUX): b"b"}
    )
    upstream.latest_tag = "20250323"
    index = refresh(upstream, cache, snapshot_base())
    assert builds_of(index, "20251014") and builds_of(index, "20250323")
    assert index.tag_order("20250323") > index.tag_order("20251014")
    assert index.publication_date("20250323") == "2026-03-23"


def test_api_pages_are_followed_until_known_releases(
    upstream: UpstreamServer, cache: Cache
) -> None:
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {}, latest=False)
    for day in range(1, 16):
        tag = f"202511{day:02d}"
        upstream.add_pbs_release(
            tag, f"2025-11-{day:02d}T10:00:00Z", {pbs_name("3.13.9", tag, LINUX): tag.encode()}
        )
    index = refresh(upstream, cache, snapshot_base())
    assert len({b.build for b in index.builds} - {"20250918"}) == 15
    pages = [r.query for r in upstream.api_requests()]
    assert pages == ["per_page=10&page=1", "per_page=10&page=2"]


def test_a_prerelease_or_a_publication_date_that_is_no_date_is_not_taken(
    upstream: UpstreamServer, cache: Cache
) -> None:
    """Live-listing attack: a release marked prerelease was locked by `--upgrade`, and a
    `published_at` of "zzzz" put an older build ahead of a newer one."""
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {}, latest=False)
    upstream.add_pbs_release(
        "20251110", "zzzz", {pbs_name("3.13.9", "20251110", LINUX): b"odd date"}, latest=False
    )
    trial = upstream.add_pbs_release(
        "20251120", "2025-11-20T10:00:00Z", {pbs_name("3.13.10", "20251120", LINUX): b"rc"}
    )
    trial.prerelease = True
    upstream.add_pbs_release(
        "20251115", "2025-11-15T10:00:00Z", {pbs_name("3.13.9", "20251115", LINUX): b"ok"}
    )
    index = refresh(upstream, cache, snapshot_base())
    assert not builds_of(index, "20251120")
    assert builds_of(index, "20251115") and builds_of(index, "20251110")
    assert index.publication_date("20251110") == "2025-11-10"  # the tag's own date
    assert index.tag_order("20251115") > index.tag_order("20251110")


def test_sha256sums_missing_an_asset(upstream: UpstreamServer, cache: Cache) -> None:
    tag = "20251014"
    kept, dropped = pbs_name("3.13.9", tag, LINUX), pbs_name("3.13.9", tag, MAC)
    assets = {kept: b"kept", dropped: b"dropped"}
    # An older release: the API has no digests, so nothing else vouches for the asset.
    upstream.add_pbs_release(
        tag, "2025-10-14T10:00:00Z", assets, api_digest=False, omit_from_sums={dropped}
    )
    reporter = Recorder()
    index = refresh(upstream, cache, snapshot_base(), reporter=reporter)
    assert set(builds_of(index, tag)) == {kept}
    assert any(dropped in w and "no published sha256" in w for w in reporter.warnings)


def test_api_digest_covers_an_asset_sha256sums_lacks(
    upstream: UpstreamServer, cache: Cache
) -> None:
    tag = "20251014"
    kept, dropped = pbs_name("3.13.9", tag, LINUX), pbs_name("3.13.9", tag, MAC)
    upstream.add_pbs_release(
        tag, "2025-10-14T10:00:00Z", {kept: b"kept", dropped: b"late"}, omit_from_sums={dropped}
    )
    index = refresh(upstream, cache, snapshot_base())
    assert builds_of(index, tag)[dropped].sha256 == sha256(b"late")


def test_pinned_tag_reads_its_sha256sums_without_the_api(
    upstream: UpstreamServer, cache: Cache
) -> None:
    upstream.add_pbs_release(
        "20240814",
        "2024-08-14T10:00:00Z",
        {pbs_name("3.12.5", "20240814", LINUX): b"old"},
        latest=False,
    )
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {})
    need = RefreshNeeds(
        implementations=CPYTHON, pinned=frozenset({(Implementation.CPYTHON, "20240814")})
    )
    index = refresh(upstream, cache, snapshot_base(), need=need)
    assert builds_of(index, "20240814")
    assert upstream.api_requests() == []


def test_pinned_tag_without_sha256sums_resolved_through_the_api(
    upstream: UpstreamServer, cache: Cache
) -> None:
    name = pbs_name("3.12.1", "20231002", LINUX)
    upstream.add_pbs_release("20231002", "2023-10-02T10:00:00Z", {name: b"x" * 99}, sums=False)
    for day in range(1, 13):  # newer releases push it to the second page
        upstream.add_pbs_release(f"202509{day:02d}", f"2025-09-{day:02d}T10:00:00Z", {})
    upstream.latest_tag = "20250918"
    need = RefreshNeeds(
        implementations=CPYTHON, pinned=frozenset({(Implementation.CPYTHON, "20231002")})
    )
    index = refresh(upstream, cache, snapshot_base(), need=need)
    build = builds_of(index, "20231002")[name]
    assert (build.sha256, build.size) == (sha256(b"x" * 99), 99)
    assert len(upstream.api_requests()) == 2


def test_pre_hash_era_builds_parse_and_carry_no_hash(
    upstream: UpstreamServer, cache: Cache
) -> None:
    old = "cpython-3.9.7-x86_64-unknown-linux-gnu-pgo+lto-20211017T1616.tar.zst"
    windows = "cpython-3.9.7-x86_64-pc-windows-msvc-shared-install_only-20211017T1616.tar.gz"
    upstream.add_pbs_release(
        "20211017",
        "2021-10-17T10:00:00Z",
        {old: b"z", windows: b"w"},
        sums=False,
        api_digest=False,
        latest=False,
    )
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {})
    need = RefreshNeeds(
        implementations=CPYTHON, pinned=frozenset({(Implementation.CPYTHON, "20211017")})
    )
    index = refresh(upstream, cache, snapshot_base(), need=need)
    build = builds_of(index, "20211017")[old]
    assert (build.version, build.flavor, build.sha256, build.size) == (
        "3.9.7",
        Flavor.FULL,
        None,
        1,
    )


def test_unknown_pinned_tag_warns(upstream: UpstreamServer, cache: Cache) -> None:
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {})
    reporter = Recorder()
    need = RefreshNeeds(
        implementations=CPYTHON, pinned=frozenset({(Implementation.CPYTHON, "20990101")})
    )
    refresh(upstream, cache, snapshot_base(), need=need, reporter=reporter)
    assert any("no release '20990101'" in w for w in reporter.warnings)


# -- rate limits and tokens ------------------------------------------------------------------


def test_rate_limited_api_still_adds_the_latest_release(
    upstream: UpstreamServer, cache: Cache
) -> None:
    new_release(upstream)
    upstream.api_quota = 0
    reporter = Recorder()
    index = refresh(upstream, cache, snapshot_base(), reporter=reporter)
    assert builds_of(index, "20251014")
    assert any("GitHub API rate limit" in w and "20251014" in w for w in reporter.warnings)


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_needed_for_history_is_a_clear_error(
    upstream: UpstreamServer, cache: Cache, status: int
) -> None:
    upstream.add_pbs_release("20231002", "2023-10-02T10:00:00Z", {}, sums=False, latest=False)
    upstream.add_pbs_release("20250918", "2025-09-18T10:00:00Z", {})
    upstream.api_quota = 0
    upstream.rate_limit_status = status
    upstream.reset_epoch = int(time.time()) + 1500
    need = RefreshNeeds(
        implementations=CPYTHON, pinned=frozenset({(Implementation.CPYTHON, "20231002")})
    )
    with pytest.raises(RateLimitError) as caught:
        refresh(upstream, cache, snapshot_base(), need=need)
    error = caught.value
    assert "GitHub API rate limit exhausted" in str(error)
    assert "resets at" in str(error) and "UTC (in 2" in str(error)
    assert error.hint is not None and "GITHUB_TOKEN" in error.hint


def test_the_token_goes_to_no_host_a_rewrite_put_in_the_apis_place(
    upstream: UpstreamServer, cache: Cache
) -> None:
    # The look-alike is api.github.com rewritten to loopback: a host the token is not for.
    new_release(upstream)
    refresh(upstream, cache, snapshot_base(), token="t0ken")
    assert any(request.path.startswith("/api/") for request in upstream.log)
    assert [r.path for r in upstream.log if r.headers.get("Authorization")] == []


@pytest.mark.parametrize(
    ("target", "location", "expected"),
    [
        # Not rewritten: the API gets the token, and keeps it on a hop within its origin.
        (None, "/repos/x/releases?page=2", ["Bearer t0ken", "Bearer t0ken"]),
        (None, "https://objects.example/blob", ["Bearer t0ken", None]),
        # Rewritten to another host (a mirror, a proxy of the API): never.
        ("https://mirror.example/gh-api/repos/x/releases", "/next", [None, None]),
    ],
)
def test_the_callers_authorization_goes_to_the_canonical_origin_only(
    target: str | None, location: str, expected: list[str | None]
) -> None:
    from pylock.net.policy import Hops

    canonical = "https://api.github.com/repos/x/releases"
    hops = Hops(target or canonical, canonical, UrlRewrites(), Settings(), "Bearer t0ken")
    seen = [hops.authorization()]
    hops.follow(location)
    seen.append(hops.authorization())
    assert seen == expected


# -- malformed documents ---------------------------------------------------------------------


@pytest.mark.parametrize("document", ["latest", "pbs-api"])
def test_malformed_json_is_an_upstream_error_and_not_cached(
    upstream: UpstreamServer, cache: Cache, document: str
) -> None:
    new_release(upstream)
    upstream.malformed.add(document)
    with pytest.raises(UpstreamError, match="malformed JSON from https://"):
        refresh(upstream, cache, snapshot_base())
    upstream.malformed.clear()
    assert builds_of(refresh(upstream, cache, snapshot_base()), "20251014")


@pytest.mark.parametrize("document", ["latest", "versions"])
def test_a_json_document_that_is_no_listing_is_not_cached(
    upstream: UpstreamServer, cache: Cache, document: str
) -> None:
    """Bin-dir attack: a latest-release.json that parsed as JSON but named no date tag was
    cached before it was checked, and every later --offline run failed on that copy."""
    need: RefreshNeeds | None = None
    if document == "latest":
        new_release(upstream)
        upstream.latest_tag = "2099123"  # no date tag
    else:
        pypy_release(upstream)
        upstream.versions_override = b'{"not": "a list"}'
        need = RefreshNeeds(implementations=frozenset({Implementation.PYPY}))
    with pytest.raises(UpstreamError):
        refresh(upstream, cache, snapshot_base(), need=need)
    # Nothing was kept: offline, there is no copy to use (the caller falls back to the
    # bundled index), not the bad one again.
    with pytest.raises(OfflineError, match="metadata cache has no copy"):
        refresh(upstream, cache, snapshot_base(), need=need, offline=True)


def test_truncated_sha256sums_is_rejected(upstream: UpstreamServer, cache: Cache) -> None:
    release = upstream.add_pbs_release(
        "20251014", "2025-10-14T10:00:00Z", {pbs_name("3.13.9", "20251014", LINUX): b"a"}
    )
    release.sums_body = release.sums_text().encode()[:40]
    with pytest.raises(UpstreamError, match="SHA256SUMS: line 1 is not"):
        refresh(upstream, cache, snapshot_base())
    # Upstream attack: the garbled file was cached as the release's immutable SHA256SUMS,
    # and every later refresh failed on it. Refused before it is stored, it is asked again.
    release.sums_body = None
    assert builds_of(refresh(upstream, cache, snapshot_base()), "20251014")


def test_an_empty_sha256sums_is_not_kept_and_the_api_digests_stand_in(
    upstream: UpstreamServer, cache: Cache
) -> None:
    """Live-listing attack: an empty SHA256SUMS was cached as immutable and hid the
    release's hashes for good; attack on the day's diff: refusing it failed every refresh
    although the API's digests vouch for every archive."""
    name = pbs_name("3.13.9", "20251014", LINUX)
    release = upstream.add_pbs_release("20251014", "2025-10-14T10:00:00Z", {name: b"a"})
    release.sums_body = b""
    recorder = Recorder()
    found = builds_of(refresh(upstream, cache, snapshot_base(), reporter=recorder), "20251014")
    assert found[name].sha256 == sha256(b"a")
    assert any("lists no file" in warning for warning in recorder.warnings)
    release.sums_body = None  # mended: asked again, not the empty answer kept
    refresh(upstream, cache, snapshot_base())
    assert len(upstream.requests_to("20251014/SHA256SUMS")) == 2


def test_an_empty_sha256sums_an_older_pylock_kept_is_asked_again(
    upstream: UpstreamServer, cache: Cache
) -> None:
    """Formats attack: pylock 0.2.0 kept an empty SHA256SUMS as the release's immutable
    answer. This pylock refuses to keep one, but read the kept one for good: the release
    could never be locked from that cache, whatever upstream served since."""
    from pylock.index.metadata import CachedDocument, MetadataStore
    from pylock.urls import PBS_DOWNLOAD_PREFIX

    name = pbs_name("3.13.9", "20251014", LINUX)
    release = upstream.add_pbs_release("20251014", "2025-10-14T10:00:00Z", {name: b"a"})
    url = f"{PBS_DOWNLOAD_PREFIX}20251014/SHA256SUMS"
    MetadataStore(cache.metadata_dir).save(
        CachedDocument(url=url, status=200, body=b"", checked_at=time.time())
    )
    recorder = Recorder()
    found = builds_of(refresh(upstream, cache, snapshot_base(), reporter=recorder), "20251014")
    assert found[name].sha256 == sha256(b"a")
    assert len(upstream.requests_to("20251014/SHA256SUMS")) == 1
    assert not any("lists no file" in warning for warning in recorder.warnings)
    assert release.sums


def test_a_missing_sha256sums_is_asked_again_an_hour_later(
    upstream: UpstreamServer, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream attack: a 404 for an immutable SHA256SUMS (a mirror not caught up yet)
    was cached for good; the file published since was never read."""
    import pylock.index.metadata as metadata

    release = upstream.add_pbs_release(
        "20251014", "2025-10-14T10:00:00Z", {pbs_name("3.13.9", "20251014", LINUX): b"a"}
    )
    release.sums = False
    refresh(upstream, cache, snapshot_base())
    release.sums = True
    upstream.log.clear()
    refresh(upstream, cache, snapshot_base())
    assert upstream.requests_to("SHA256SUMS") == []  # within the hour: known missing
    monkeypatch.setattr(metadata, "MISSING_RECHECK_SECONDS", 0.0)
    refresh(upstream, cache, snapshot_base())
    assert [r.status for r in upstream.requests_to("SHA256SUMS")] == [200]
    upstream.log.clear()
    monkeypatch.setattr(metadata, "MISSING_RECHECK_SECONDS", 3600.0)
    refresh(upstream, cache, snapshot_base())  # found: immutable from now on
    assert upstream.requests_to("SHA256SUMS") == []


# -- the metadata cache ----------------------------------------------------------------------


def test_revalidation_uses_etags_and_immutable_sums_are_not_refetched(
    upstream: UpstreamServer, cache: Cache
) -> None:
    new_release(upstream)
    first = refresh(upstream, cache, snapshot_base())
    upstream.log.clear()
    second = refresh(upstream, cache, snapshot_base())
    assert first == second
    statuses = {r.path.rsplit("/", 1)[-1]: r.status for r in upstream.log}
    assert statuses == {"latest-release.json": 304, "releases": 304}
    assert all("If-None-Match" in r.headers for r in upstream.log)


def test_changed_pointer_is_fetched_again(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    refresh(upstream, cache, snapshot_base())
    upstream.add_pbs_release(
        "20251021", "2025-10-21T10:00:00Z", {pbs_name("3.13.10", "20251021", LINUX): b"n"}
    )
    index = refresh(upstream, cache, snapshot_base())
    assert builds_of(index, "20251021") and builds_of(index, "20251014")


def test_offline_with_a_warm_cache(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    online = refresh(upstream, cache, snapshot_base())
    upstream.log.clear()
    reporter = Recorder()
    offline = refresh(upstream, cache, snapshot_base(), offline=True, reporter=reporter)
    assert offline == online
    assert upstream.log == []
    assert any(
        w.startswith("offline: using https://raw.githubusercontent.com/") and "seconds ago" in w
        for w in reporter.warnings
    )


def test_offline_with_a_cold_cache(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    with pytest.raises(OfflineError) as caught:
        refresh(upstream, cache, snapshot_base(), offline=True)
    assert caught.value.url.endswith("latest-release/latest-release.json")
    assert "metadata cache has no copy" in str(caught.value)
    assert upstream.log == []


def test_damaged_cache_entry_is_refetched(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    refresh(upstream, cache, snapshot_base())
    for body in cache.metadata_dir.glob("*.body"):
        body.write_bytes(b"garbage")
    upstream.log.clear()
    assert builds_of(refresh(upstream, cache, snapshot_base()), "20251014")
    assert {r.status for r in upstream.log} == {200}


def test_unreachable_upstream_falls_back_to_the_cached_pointer(
    upstream: UpstreamServer, cache: Cache
) -> None:
    new_release(upstream)
    refresh(upstream, cache, snapshot_base())
    base = upstream.base
    upstream.stop()
    reporter = Recorder()
    rewrites = [p.replace(base, "http://127.0.0.1:9") for p in upstream.rewrite_pairs()]
    index = refresh_index(
        snapshot_base(),
        fetch_options=FetchOptions(
            rewrites=UrlRewrites.from_sources(None, rewrites, None, None), retries=0
        ),
        metadata_dir=cache.metadata_dir,
        reporter=reporter,
        need=RefreshNeeds(implementations=CPYTHON),
        settings=Settings.from_environ({}),
    )
    assert builds_of(index, "20251014")
    assert any("using the cached copy" in w for w in reporter.warnings)


# -- PyPy ------------------------------------------------------------------------------------


def pypy_release(server: UpstreamServer) -> dict[str, bytes]:
    files = {
        "pypy3.11-v7.3.24-linux64.tar.bz2": ("x64", "linux"),
        "pypy3.11-v7.3.24-macos_arm64.tar.bz2": ("arm64", "darwin"),
        "pypy3.11-v7.3.24-win64.zip": ("x64", "win64"),
    }
    bodies = {name: pypy_archive(name.split(".tar")[0]) for name in files}
    server.pypy = [
        PypyRelease(
            "7.3.24",
            "3.11.14",
            "2026-10-01",
            [PypyFile(n, *files[n], bodies[n], published_hash="win64" not in n) for n in files],
            latest_pypy=True,
        ),
        PypyRelease(
            "nightly",
            "3.12.0",
            "2026-11-01",
            [PypyFile("pypy-c-jit-latest-linux64.tar.bz2", "x64", "linux", b"n")],
            stable=False,
        ),
        PypyRelease(
            "7.3.25rc1",
            "3.11.14",
            "2026-11-02",
            [PypyFile("pypy3.11-v7.3.25rc1-linux64.tar.bz2", "x64", "linux", b"r")],
            stable=False,
        ),
    ]
    return bodies


def test_pypy_versions_json_with_published_checksums(
    upstream: UpstreamServer, cache: Cache
) -> None:
    bodies = pypy_release(upstream)
    reporter = Recorder()
    need = RefreshNeeds(implementations=frozenset({Implementation.PYPY}))
    index = refresh(upstream, cache, index_of(), need=need, reporter=reporter)
    found = {b.filename: b for b in index.builds}
    assert set(found) == {
        "pypy3.11-v7.3.24-linux64.tar.bz2",
        "pypy3.11-v7.3.24-macos_arm64.tar.bz2",
    }
    linux = found["pypy3.11-v7.3.24-linux64.tar.bz2"]
    assert (linux.version, linux.build, linux.platform, linux.flavor) == (
        "3.11.14",
        "7.3.24",
        "linux-x86_64-gnu",
        None,
    )
    assert linux.sha256 == sha256(bodies[linux.filename])
    assert linux.url == "https://downloads.python.org/pypy/pypy3.11-v7.3.24-linux64.tar.bz2"
    assert any("win64.zip" in w and "no published sha256" in w for w in reporter.warnings)
    # Only what was needed was fetched.
    assert {r.path for r in upstream.log} == {"/dpo/pypy/versions.json", "/pypyorg/checksums.html"}


def test_malformed_versions_json(upstream: UpstreamServer, cache: Cache) -> None:
    pypy_release(upstream)
    upstream.malformed.add("versions")
    with pytest.raises(UpstreamError, match=r"versions\.json"):
        refresh(
            upstream,
            cache,
            index_of(),
            need=RefreshNeeds(implementations=frozenset({Implementation.PYPY})),
        )


# -- GraalPy ---------------------------------------------------------------------------------


def test_graalpy_releases_with_digests_and_sha256_files(
    upstream: UpstreamServer, cache: Cache
) -> None:
    new = {
        "graalpy3.12-25.2.4-linux-amd64.tar.gz": graalpy_archive("graalpy3.12-25.2.4-linux-amd64"),
        "graalpy-community-25.2.4-linux-amd64.tar.gz": b"not ours",
    }
    old = {"graalpy-24.0.2-macos-aarch64.tar.gz": graalpy_archive("graalpy-24.0.2-macos-aarch64")}
    upstream.add_graalpy_release("25.2.4", "2026-01-20T10:00:00Z", new)
    upstream.add_graalpy_release("24.0.2", "2024-07-16T10:00:00Z", old, api_digest=False)
    need = RefreshNeeds(implementations=frozenset({Implementation.GRAALPY}))
    index = refresh(upstream, cache, index_of(), need=need)
    found = {b.filename: b for b in index.builds}
    assert set(found) == {
        "graalpy3.12-25.2.4-linux-amd64.tar.gz",
        "graalpy-24.0.2-macos-aarch64.tar.gz",
    }
    fresh = found["graalpy3.12-25.2.4-linux-amd64.tar.gz"]
    assert (fresh.version, fresh.build, fresh.platform) == ("3.12.0", "25.2.4", "linux-x86_64-gnu")
    assert fresh.url == (
        "https://github.com/oracle/graalpython/releases/download/graal-25.2.4/"
        "graalpy3.12-25.2.4-linux-amd64.tar.gz"
    )
    legacy = found["graalpy-24.0.2-macos-aarch64.tar.gz"]
    assert legacy.version == "3.10.0"
    assert legacy.sha256 == sha256(old["graalpy-24.0.2-macos-aarch64.tar.gz"])
    assert upstream.requests_to("graalpy-24.0.2-macos-aarch64.tar.gz.sha256")


def test_a_graalpy_sha256_file_that_holds_no_digest_is_not_cached(
    upstream: UpstreamServer, cache: Cache
) -> None:
    """Upstream attack: an error page served as `<asset>.sha256` was cached as the file's
    immutable content (its archive skipped for good), and the warning said there was no
    .sha256 file at all."""
    name = "graalpy-24.0.2-macos-aarch64.tar.gz"
    release = upstream.add_graalpy_release(
        "24.0.2", "2024-07-16T10:00:00Z", {name: graalpy_archive(name[:-7])}, api_digest=False
    )
    (sums,) = [a for a in release.assets if a.name.endswith(".sha256")]
    good, sums.body = sums.body, b"<html>503 Service Unavailable</html>\n"
    need = RefreshNeeds(implementations=frozenset({Implementation.GRAALPY}))
    recorder = Recorder()
    index = refresh(upstream, cache, index_of(), need=need, reporter=recorder)
    assert [b.filename for b in index.builds] == []
    assert recorder.warnings == [
        "GraalPy: 1 archive(s) have no digest, nor a .sha256 file that holds one, and were "
        f"skipped (e.g. {name})"
    ]
    sums.body = good
    index = refresh(upstream, cache, index_of(), need=need)
    assert [b.filename for b in index.builds] == [name]


def test_only_needed_listings_are_fetched(upstream: UpstreamServer, cache: Cache) -> None:
    new_release(upstream)
    pypy_release(upstream)
    refresh(upstream, cache, snapshot_base())
    assert not [r for r in upstream.log if "pypy" in r.path or "graal" in r.path]


def test_refresh_needs_for_config() -> None:
    from pylock.config import loads_config

    config = loads_config(
        """
[python.a]
version = "3.13"
[python.b]
version = "3.12.5"
build = "20240814"
[python.c]
implementation = "pypy"
version = "3.11"
[python.d]
url = "https://artifacts.example/cpython-3.12.9-corp.tar.gz"
implementation = "graalpy"
"""
    )
    need = RefreshNeeds.for_config(config)
    assert need.implementations == {Implementation.CPYTHON, Implementation.PYPY}
    assert need.pinned == {(Implementation.CPYTHON, "20240814")}
