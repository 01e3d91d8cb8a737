"""The pure parsers behind live refresh, fed real-looking and hostile upstream documents."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pylock.errors import UpstreamError
from pylock.index import pbs, pypy
from pylock.index.graalpy import parse_sha256_file, python_for_release, release_of_tag
from pylock.index.metadata import CachedDocument, MetadataStore, describe_reset, human_age
from pylock.index.snapshot import loads_snapshot
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import UV_KEY, snapshot_script, uv_entry
from tests.upstream_server import UpstreamServer, pbs_install_only, pbs_name, pypy_archive

HEX = "0123456789abcdef" * 4


# -- SHA256SUMS and latest-release.json --------------------------------------------------------


def test_sha256sums_real_shape() -> None:
    text = (
        f"{HEX}  cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz\n"
        f"{HEX.upper()}  cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst\r\n"
        "\n"
    )
    sums = pbs.parse_sha256sums(text)
    assert list(sums.values()) == [HEX, HEX]
    assert "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst" in sums


@pytest.mark.parametrize(
    "text",
    [
        f"{HEX[:-1]}  truncated-hash.tar.gz\n",
        f"{HEX}\n",
        "<html>rate limited</html>\n",
        f"{HEX}  a.tar.gz\n{'f' * 64}  a.tar.gz\n",
        # Live-listing attack: an empty one was cached as immutable, hiding the release's
        # hashes for good.
        "",
        "\n\n",
    ],
)
def test_sha256sums_garbage_is_rejected(text: str) -> None:
    with pytest.raises(UpstreamError):
        pbs.parse_sha256sums(text)


@pytest.mark.parametrize("data", [[], {"tag": 20251014}, {"tag": "latest"}, {"version": 1}, None])
def test_latest_release_json_must_name_a_date_tag(data: Any) -> None:
    with pytest.raises(UpstreamError, match=r"latest-release\.json"):
        pbs.parse_latest_release(data)


def test_releases_page_tolerates_null_digests_and_odd_fields() -> None:
    page = [
        {
            "tag_name": "20250708",
            "published_at": "2025-07-08T12:00:00Z",
            "draft": False,
            "prerelease": False,
            "assets": [
                {"name": "a.tar.gz", "size": 5, "digest": None, "browser_download_url": "u"},
                {"name": "b.tar.gz", "size": True, "digest": f"sha256:{HEX}"},
                {"name": "c.tar.gz", "size": 7, "digest": "md5:abc"},
                # Upstream attack: -5 went into the lock, which then did not read back.
                {"name": "d.tar.gz", "size": -5},
                {"name": "e.tar.gz", "size": 0},
                {"name": "f.tar.gz", "size": 10**29},
            ],
        }
    ]
    [release] = pbs.parse_releases_page(page, url="api")
    assert [(a.name, a.size, a.sha256) for a in release.assets] == [
        ("a.tar.gz", 5, None),
        ("b.tar.gz", None, HEX),
        ("c.tar.gz", 7, None),
        ("d.tar.gz", None, None),
        ("e.tar.gz", None, None),
        ("f.tar.gz", None, None),
    ]


@pytest.mark.parametrize(
    "data", [{"message": "Not Found"}, [{"name": "x"}], [{"tag_name": "t", "assets": {}}]]
)
def test_releases_page_shape_errors(data: Any) -> None:
    with pytest.raises(UpstreamError, match="api"):
        pbs.parse_releases_page(data, url="api")


def test_builds_of_release_across_naming_eras() -> None:
    names = {
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-freethreaded+debug-full.tar.zst": HEX,
        "cpython-3.10.0+20211017-x86_64-pc-windows-msvc-shared-install_only.tar.gz": HEX,
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz.sha256": HEX,
        "SHA256SUMS": HEX,
        "cpython-3.13.9+20251014-sparc-sun-solaris-install_only.tar.gz": HEX,
    }
    found = pbs.builds_of_release("20251014", names)
    by_name = {b.filename: b for b in found.builds}
    full = by_name[
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-freethreaded+debug-full.tar.zst"
    ]
    assert (full.variant, full.flavor) == (Variant.FREETHREADED_DEBUG, Flavor.FULL)
    # A name whose tag is not the release's is not this release's build.
    assert len(by_name) == 1
    assert found.unhashed == ()


def test_a_sha256sums_line_and_an_api_digest_that_disagree_lock_neither() -> None:
    """Live-listing attack: SHA256SUMS won over the API digest, silently, and the lock
    recorded a hash that upstream's own API contradicted."""
    name = "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz"
    other = "cpython-3.13.9+20251014-aarch64-apple-darwin-install_only.tar.gz"
    assets = [
        pbs.ApiAsset(name=name, size=1, url=f"https://x/{name}", sha256="b" * 64),
        pbs.ApiAsset(name=other, size=1, url=f"https://x/{other}", sha256="c" * 64),
    ]
    found = pbs.builds_of_release("20251014", {name: "a" * 64, other: "c" * 64}, assets)
    assert found.conflicting == (name,)
    assert [b.filename for b in found.builds] == [other]
    # An upper-case API digest is a digest (it was taken for none).
    page = [{"tag_name": "20251014", "published_at": "2025-10-14T00:00:00Z", "assets": [
        {"name": name, "size": 1, "browser_download_url": f"https://x/{name}",
         "digest": "sha256:" + "AB" * 32}]}]  # fmt: skip
    (release,) = pbs.parse_releases_page(page, url="api")
    assert release.assets[0].sha256 == "ab" * 32


def test_has_next_page() -> None:
    assert pbs.has_next_page('<x?page=2>; rel="next", <x?page=9>; rel="last"')
    assert not pbs.has_next_page('<x?page=1>; rel="first", <x?page=1>; rel="prev"')


# -- PyPy ----------------------------------------------------------------------------------------


REAL_LOOKING_CHECKSUMS = f"""
<h2>Checksums</h2>
<p>pypy3.10-v7.3.17 sha256:</p>
<pre class="literal-block">{HEX}  pypy3.10-v7.3.17-aarch64.tar.bz2
    {"a" * 64}  pypy3.10-v7.3.17-linux64.tar.bz2   \n    {"b" * 64}  pypy3.10-v7.3.17-win64.zip
</pre>
<p>pypy3.9-v7.3.10 sha256::</p>
<pre>    {"c" * 64}  pypy3.9-v7.3.10-linux64.tar.bz2&#160;
</pre>
"""


def test_checksums_page_parsing() -> None:
    sums = pypy.parse_checksums(REAL_LOOKING_CHECKSUMS)
    assert sums == {
        "pypy3.10-v7.3.17-aarch64.tar.bz2": HEX,
        "pypy3.10-v7.3.17-linux64.tar.bz2": "a" * 64,
        "pypy3.10-v7.3.17-win64.zip": "b" * 64,
        "pypy3.9-v7.3.10-linux64.tar.bz2": "c" * 64,
    }


def test_checksums_conflicting_entries_are_dropped() -> None:
    page = (
        f"{'a' * 64}  pypy3.9-v7.3.10-linux64.tar.bz2\n{'b' * 64}  pypy3.9-v7.3.10-linux64.tar.bz2"
    )
    assert pypy.parse_checksums(page) == {}


def test_versions_json_filters() -> None:
    data = [
        {
            "pypy_version": "7.3.20",
            "python_version": "3.11.13",
            "stable": True,
            "latest_pypy": True,
            "date": "2025-07-04",
            "files": [
                {
                    "filename": "pypy3.11-v7.3.20-linux64.tar.bz2",
                    "arch": "x64",
                    "platform": "linux",
                    "download_url": "https://downloads.python.org/pypy/pypy3.11-v7.3.20-linux64.tar.bz2",
                },
                {
                    "filename": "pypy3.11-v7.3.20-src.tar.bz2",
                    "arch": "src",
                    "platform": "src",
                    "download_url": "https://downloads.python.org/pypy/pypy3.11-v7.3.20-src.tar.bz2",
                },
                "junk",
            ],
        },
        {"pypy_version": "nightly", "python_version": "3.11", "stable": False, "files": []},
    ]
    listing = pypy.builds_from_versions(data, {"pypy3.11-v7.3.20-linux64.tar.bz2": HEX})
    [build] = listing.builds
    assert (build.implementation, build.version, build.build) == (
        Implementation.PYPY,
        "3.11.13",
        "7.3.20",
    )
    assert listing.dates == {"7.3.20": "2025-07-04"}


@pytest.mark.parametrize("python", ["v3.11.97", "3.11.96+evil", "3.10.14.dev", "３.11.9"])
def test_versions_json_entries_whose_versions_no_interpreter_has_are_skipped(python: str) -> None:
    """Upstream attack: "v3.11.97" went into the lock as `version = "v3.11.97"`."""
    name = "pypy3.11-v7.3.97-linux64.tar.bz2"
    data = [
        {
            "pypy_version": "7.3.97",
            "python_version": python,
            "stable": True,
            "files": [
                {
                    "filename": name,
                    "arch": "x64",
                    "platform": "linux",
                    "download_url": f"https://downloads.python.org/pypy/{name}",
                }
            ],
        }
    ]
    assert pypy.builds_from_versions(data, {name: HEX}).builds == ()


@pytest.mark.parametrize(
    ("name", "arch", "os_name"),
    [
        ("pypy3.11-v7.3.99-win64.zip", "x64", "darwin"),
        ("pypy3.11-v7.3.99-linux64.tar.bz2", "aarch64", "linux"),
    ],
)
def test_versions_json_files_whose_name_says_another_platform_are_unfit(
    name: str, arch: str, os_name: str
) -> None:
    """Attack on PyPy listings: a Windows zip listed as `darwin` was locked for macOS, and
    `sync` "installed" it there (pypy3.exe, no bin/pypy3)."""
    data = [
        {
            "pypy_version": "7.3.99",
            "python_version": "3.11.13",
            "stable": True,
            "files": [
                {
                    "filename": name,
                    "arch": arch,
                    "platform": os_name,
                    "download_url": f"https://downloads.python.org/pypy/{name}",
                }
            ],
        }
    ]
    listing = pypy.builds_from_versions(data, {name: HEX})
    assert listing.builds == ()
    (unfit,) = listing.unfit
    assert "(as its arch and platform say)" in unfit


@pytest.mark.parametrize("data", [{}, [{"pypy_version": "7.3.20"}], [1]])
def test_versions_json_shape_errors(data: Any) -> None:
    with pytest.raises(UpstreamError, match=r"versions\.json"):
        pypy.builds_from_versions(data, {})


# -- GraalPy -------------------------------------------------------------------------------------


def test_graalpy_helpers() -> None:
    assert release_of_tag("graal-25.0.1") == "25.0.1"
    assert release_of_tag("vm-22.3.1") == "22.3.1"
    assert release_of_tag("25.0.1") is None
    assert python_for_release("24.2.2", None) == "3.11.0"
    assert python_for_release("22.3.1", None) == "3.8.5"
    assert parse_sha256_file(f"{HEX.upper()}  graalpy.tar.gz\n".encode()) == HEX
    assert parse_sha256_file(b"<html>") is None


# -- metadata store ------------------------------------------------------------------------------


def test_metadata_store_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    doc = CachedDocument(
        url="https://example/x.json", status=200, body=b"{}", checked_at=1.0, etag='"e"'
    )
    store.save(doc)
    assert store.load(doc.url) == doc
    assert store.load("https://example/other.json") is None
    [body] = tmp_path.glob("*.body")
    body.write_bytes(b"{tampered}")
    assert store.load(doc.url) is None


def test_human_times() -> None:
    assert human_age(1) == "1 second"
    assert human_age(61) == "1 minute"
    assert describe_reset("not a number", now=time.time()) == "reset time unknown"


@pytest.mark.parametrize(
    "reset", ["253402300800", "-99999999999999", "99999999999999999", "-5", "9" * 5000, "１２"]
)
def test_a_hostile_rate_limit_reset_is_an_unknown_time(reset: str) -> None:
    """Upstream attack: a year past 9999 was a ValueError traceback, 10**17 an OSError
    reported with a hint about file permissions, -5 "resets at 1969"."""
    assert describe_reset(reset, now=time.time()) == "reset time unknown"


# -- the snapshot generator's live mode ----------------------------------------------------------


def test_build_snapshot_live_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = {UV_KEY: uv_entry(sha256=HEX)}
    seed_path = tmp_path / "uv.json"
    seed_path.write_text(json.dumps(seed))
    output = tmp_path / "snapshot.json.gz"
    with UpstreamServer() as server:
        tag = "20251014"
        server.add_pbs_release(
            tag,
            "2025-10-14T10:00:00Z",
            {pbs_name("3.13.9", tag, "x86_64-unknown-linux-gnu"): pbs_install_only("3.13.9")},
        )
        from tests.upstream_server import PypyFile, PypyRelease

        stem = "pypy3.11-v7.3.20-linux64"
        server.pypy = [
            PypyRelease(
                "7.3.20",
                "3.11.13",
                "2025-07-04",
                [PypyFile(f"{stem}.tar.bz2", "x64", "linux", pypy_archive(stem))],
            )
        ]
        rewrites = [a for pair in server.rewrite_pairs() for a in ("--rewrite", pair)]
        code = snapshot_script().main(
            [
                "--live",
                "--uv-json",
                str(seed_path),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--output",
                str(output),
                *rewrites,
            ]
        )
    assert code == 0, capsys.readouterr().err
    index = loads_snapshot(output.read_bytes())
    tags = {(b.implementation, b.build) for b in index.builds}
    assert tags == {
        (Implementation.CPYTHON, "20250918"),
        (Implementation.CPYTHON, "20251014"),
        (Implementation.PYPY, "7.3.20"),
    }
    assert index.publication_date("20251014") == "2025-10-14"


@pytest.mark.parametrize("answer", ["unreachable", 503, 404, 200])
def test_a_known_missing_document_asked_again_keeps_its_404_if_the_asking_fails(
    tmp_path: Path, answer: int | str
) -> None:
    """Attack on the day's diff: the hourly re-check of a cached 404 threw the 404 away
    before asking, so with the network down a refresh that had worked now failed."""
    import asyncio

    from pylock.errors import DownloadError
    from pylock.index.metadata import Documents, parse_text
    from pylock.net.fetch import HttpResponse
    from pylock.progress import NullReporter

    url = "https://github.com/astral-sh/python-build-standalone/releases/download/x/SHA256SUMS"
    store = MetadataStore(tmp_path)
    store.save(CachedDocument(url=url, status=404, body=b"", checked_at=1000.0))

    class Fetcher:
        async def get(self, url: str, headers: dict[str, str]) -> HttpResponse:
            if answer == "unreachable":
                raise DownloadError("connection refused", url=url)
            assert isinstance(answer, int)
            return HttpResponse(status=answer, headers={}, body=b"text", url=url)

    docs = Documents(store, Fetcher(), reporter=NullReporter(), clock=lambda: 1000.0 + 7200)  # type: ignore[arg-type]
    got = asyncio.run(docs.get(url, parse_text(url), immutable=True, missing_ok=True))
    assert got == ("text" if answer == 200 else None)


def test_upstreams_own_refusal_of_a_listing_gets_a_listings_hint(tmp_path: Path) -> None:
    """Attack on the day's diff: upstream's own 404 for latest-release.json got the hint
    of an archive that is gone ("`pylock lock --upgrade` moves an interpreter...")."""
    import asyncio

    from pylock.index.metadata import Documents, parse_text
    from pylock.net.fetch import HttpResponse
    from pylock.progress import NullReporter

    url = "https://raw.githubusercontent.com/astral-sh/python-build-standalone/latest-release/latest-release.json"

    class Fetcher:
        async def get(self, url: str, headers: dict[str, str]) -> HttpResponse:
            return HttpResponse(status=404, headers={}, body=b"", url=url, reason="Not Found")

    docs = Documents(MetadataStore(tmp_path), Fetcher(), reporter=NullReporter())  # type: ignore[arg-type]
    with pytest.raises(UpstreamError) as info:
        asyncio.run(docs.get(url, parse_text(url)))
    assert info.value.hint == "upstream may be having trouble: try again later"
    assert str(info.value) == f"HTTP 404 Not Found for {url}"


def test_a_metadata_cache_that_cannot_keep_a_listing_costs_a_warning_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupt and non-root attacks: `lock --refresh` and `outdated` failed with "No
    space left on device" (or "Read-only file system") and a generic hint, after the
    listings had been fetched, because the metadata cache could not store them."""
    import asyncio
    import errno
    import io

    from pylock.index.metadata import Documents, parse_text
    from pylock.net.fetch import HttpResponse
    from pylock.progress import Reporter

    url = "https://github.com/astral-sh/python-build-standalone/releases/download/x/SHA256SUMS"
    store = MetadataStore(tmp_path / "metadata")

    def full(doc: CachedDocument) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save", full)

    class Fetcher:
        async def get(self, url: str, headers: dict[str, str]) -> HttpResponse:
            return HttpResponse(status=200, headers={}, body=b"text", url=url)

    stream = io.StringIO()
    docs = Documents(store, Fetcher(), reporter=Reporter(stream, live=False))  # type: ignore[arg-type]
    for other in ("a", "b"):
        assert asyncio.run(docs.get(url + other, parse_text(url + other))) == "text"
    assert stream.getvalue() == (
        f"pylock: warning: cannot keep the listings in the metadata cache at {store.root} "
        "(No space left on device): later runs fetch them again\n"
    )
