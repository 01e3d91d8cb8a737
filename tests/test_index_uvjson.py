"""Tests for pylock.index.uvjson: uv's downloads JSON, real and malformed."""

from __future__ import annotations

from typing import Any

import pytest

from pylock.errors import UpstreamError
from pylock.index.uvjson import newest_tag_date, parse_uv_json
from pylock.versions import ArchiveFormat, Flavor, Implementation, Variant
from tests.httpserver import HttpServer
from tests.indexdata import uv_entry, uv_json

SHA = "ab" * 32


def entry(**changes: Any) -> dict[str, Any]:
    return uv_entry(**changes)


def test_reads_a_plain_entry() -> None:
    (build,) = parse_uv_json({"cpython-3.13.7-linux-x86_64-gnu": entry()})[0]
    assert build.implementation is Implementation.CPYTHON
    assert (build.version, build.build, build.platform) == (
        "3.13.7",
        "20250918",
        "linux-x86_64-gnu",
    )
    assert build.variant is Variant.DEFAULT
    assert build.flavor is Flavor.INSTALL_ONLY_STRIPPED
    assert build.format is ArchiveFormat.TAR_GZ
    assert build.sha256 == SHA and build.size is None


def test_reads_every_reference_entry() -> None:
    data = uv_json()
    builds, skipped = parse_uv_json(data)
    assert skipped == []
    assert len(builds) == len(data) == len({b.url for b in builds})
    by_url = {b.url: b for b in builds}
    for value in data.values():
        build = by_url[value["url"]]
        assert build.sha256 == value["sha256"]
        assert build.build == value["build"]
        assert build.variant is Variant.parse(value["variant"] or "")
    assert newest_tag_date(builds) == "2026-08-14"


def test_pyodide_cross_build_environments_are_cpython_on_emscripten() -> None:
    builds = [b for b in parse_uv_json(uv_json())[0] if b.platform == "emscripten-wasm32"]
    assert len(builds) == 5
    for build in builds:
        assert build.implementation is Implementation.CPYTHON
        assert build.flavor is Flavor.INSTALL_ONLY
        assert build.filename == f"xbuildenv-{build.build}.tar.gz"


def test_old_names_take_the_tag_from_the_entry() -> None:
    url = (
        "https://github.com/astral-sh/python-build-standalone/releases/download/20210415/"
        "cpython-3.9.4-x86_64-unknown-linux-gnu-debug-20210414T1515.tar.zst"
    )
    (build,) = parse_uv_json(
        {"k": entry(url=url, major=3, minor=9, patch=4, variant="debug", build="20210415")}
    )[0]
    assert (build.build, build.flavor, build.variant) == ("20210415", Flavor.FULL, Variant.DEBUG)
    # Without a build field, the release tag in the URL path is used.
    (build,) = parse_uv_json(
        {"k": entry(url=url, major=3, minor=9, patch=4, variant="debug", build=None)}
    )[0]
    assert build.build == "20210415"


def test_uppercase_sha256_is_normalised_and_null_allowed() -> None:
    (build,) = parse_uv_json({"k": entry(sha256=SHA.upper())})[0]
    assert build.sha256 == SHA
    (build,) = parse_uv_json({"k": entry(sha256=None)})[0]
    assert build.sha256 is None


def test_unknown_platforms_and_implementations_are_skipped() -> None:
    data = {
        "a": entry(),
        "b": entry(os="freebsd"),
        "c": entry(name="jython"),
        "d": entry(arch={"family": "loongarch64", "variant": None}),
    }
    builds, skipped = parse_uv_json(data)
    assert len(builds) == 1
    assert skipped == ["b", "c", "d"]


def test_custom_mirror_names_are_accepted() -> None:
    (build,) = parse_uv_json(
        {"k": entry(url="https://mirror.corp/python/3.13.7/linux-x64.tar.gz", build="corp1")}
    )[0]
    assert build.flavor is Flavor.INSTALL_ONLY
    assert build.build == "corp1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": None}, "'url' must be a string"),
        ({"url": "ftp://example.com/cpython.tar.gz"}, "invalid url"),
        ({"url": "https://[/cpython.tar.gz"}, "': invalid IPv6 address in the host"),
        ({"url": "https://h:99999/cpython.tar.gz"}, "': port 99999 is out of range"),
        ({"sha256": "xyz"}, "invalid sha256"),
        ({"sha256": 5}, "'sha256' must be a string"),
        ({"major": "3"}, "'major' must be a non-negative integer"),
        ({"patch": True}, "'patch' must be a non-negative integer"),
        ({"prerelease": "-zz"}, "invalid version"),
        ({"prerelease": "a" + "1" * 5000}, "invalid version '3.13.7a1111"),  # int() limit
        ({"variant": "turbo"}, "unknown variant"),
        ({"arch": "x86_64"}, "'arch' must be an object"),
        ({"arch": {"family": "x86_64", "variant": 2}}, "'arch.variant'"),
        ({"patch": 8}, "version is 3.13.8 but the file name says 3.13.7"),
        ({"variant": "freethreaded"}, "variant is freethreaded but the file name says default"),
        ({"libc": "musl"}, "platform is linux-x86_64-musl but the file name says"),
        ({"build": "20250919"}, "'build' is '20250919' but the file name says '20250918'"),
        (
            {"url": "https://example.com/download/cpython-3.13.7.tar.xz", "build": None},
            "cannot tell the archive format",
        ),
        (
            {"url": "https://example.com/cpython-3.13.7.tar.gz", "build": None},
            "missing 'build'",
        ),
    ],
)
def test_malformed_entries_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UpstreamError) as info:
        parse_uv_json({"cpython-3.13.7-linux-x86_64-gnu": entry(**changes)}, source="f.json")[0]
    text = str(info.value)
    assert text.startswith("f.json: entry 'cpython-3.13.7-linux-x86_64-gnu': "), text
    assert message in text


@pytest.mark.parametrize("field", ["sha256", "major", "url", "variant"])
def test_a_huge_bad_value_is_not_echoed_whole(field: str) -> None:
    """Upstream attack: a 5 MB "sha256" was echoed whole, 5 MB on stderr."""
    huge = {"cpython-3.13.7-linux-x86_64-gnu": entry(**{field: "z" * 5_000_000})}
    with pytest.raises(UpstreamError) as info:
        parse_uv_json(huge, source="f.json")[0]
    assert len(str(info.value)) < 400
    with pytest.raises(UpstreamError) as info:
        parse_uv_json({"k" * 5_000_000: ["not an object"] * 1000}, source="f.json")[0]
    assert len(str(info.value)) < 400


def test_missing_fields_and_wrong_shapes() -> None:
    partial = entry()
    del partial["os"]
    with pytest.raises(UpstreamError, match="entry 'k': missing 'os'"):
        parse_uv_json({"k": partial})[0]
    with pytest.raises(UpstreamError, match="entry 'k': expected an object"):
        parse_uv_json({"k": ["not", "an", "object"]})[0]
    with pytest.raises(UpstreamError, match="expected a JSON object"):
        parse_uv_json([entry()])[0]  # type: ignore[arg-type]


def test_pypy_and_graalpy_names_are_checked() -> None:
    url = "https://downloads.python.org/pypy/pypy3.11-v7.3.20-linux64.tar.bz2"
    pypy = entry(name="pypy", major=3, minor=11, patch=13, url=url, build="7.3.20")
    (build,) = parse_uv_json({"p": pypy})[0]
    assert (build.flavor, build.format, build.build) == (None, ArchiveFormat.TAR_BZ2, "7.3.20")
    with pytest.raises(UpstreamError, match=r"the file name says Python 3\.11"):
        parse_uv_json({"p": {**pypy, "minor": 10}})[0]
    graal = entry(
        name="graalpy",
        major=3,
        minor=12,
        patch=0,
        os="darwin",
        libc="none",
        arch={"family": "aarch64", "variant": None},
        url="https://github.com/oracle/graalpython/releases/download/graal-25.2.4/"
        "graalpy3.12-25.2.4-macos-aarch64.tar.gz",
        build=None,
    )
    (build,) = parse_uv_json({"g": graal})[0]
    assert (build.platform, build.build) == ("macos-aarch64", "25.2.4")
    with pytest.raises(UpstreamError, match="platform is linux-aarch64-gnu"):
        parse_uv_json({"g": {**graal, "os": "linux", "libc": "gnu"}})[0]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"build": "../../x"}, "invalid build tag '../../x'"),
        ({"build": "2026 09 01"}, "invalid build tag '2026 09 01'"),
        (
            {"url": "https://artifacts.example/my python/cpython-3.13.7-custom.tar.gz"},
            "invalid URL",
        ),
        ({"url": "https:///cpython-3.13.7-custom.tar.gz"}, "invalid URL"),
        ({"prerelease": "rc1 "}, "invalid version '3.13.7rc1 '"),
    ],
)
def test_entries_a_lock_cannot_hold_are_skipped(changes: dict[str, Any], reason: str) -> None:
    # Field report #3: such an entry used to produce a lock that pylock then refused to read.
    custom = {"url": "https://artifacts.example/py/cpython-3.13.7-custom.tar.gz", "build": "corp1"}
    unfit: list[str] = []
    builds, skipped = parse_uv_json(
        {"good": entry(), "bad": entry(**{**custom, **changes})}, source="f.json", unfit=unfit
    )
    assert [b.build for b in builds] == ["20250918"]
    assert skipped == ["bad"]
    assert len(unfit) == 1 and unfit[0].startswith("f.json: entry 'bad': "), unfit
    assert reason in unfit[0]


def test_a_file_url_is_refused_in_a_document_a_server_sent() -> None:
    # A downloads JSON read over http(s) named file:///... archives: `lock` then read this
    # machine's files, and the lock sent every `sync` to them.
    data = {"cpython-3.13.7-linux-x86_64-gnu": entry(url="file:///etc/x.tar.gz")}
    assert parse_uv_json(data)[0]  # a local document may name local archives
    with pytest.raises(UpstreamError, match=r"a file URL \('file:///etc/x.tar.gz'\) in a"):
        parse_uv_json(data, local_urls=False)


def test_a_downloads_json_over_http_may_not_name_local_files(server: HttpServer) -> None:
    import json

    from pylock.index.live import load_uv_downloads_json
    from pylock.net.options import FetchOptions, Timeouts
    from pylock.progress import NullReporter

    body = {"cpython-3.13.7-linux-x86_64-gnu": entry(url="file:///etc/x.tar.gz")}
    url = server.serve("/downloads.json", json.dumps(body).encode())
    options = FetchOptions(timeouts=Timeouts(connect=5.0, read=5.0), retries=0)
    with pytest.raises(UpstreamError, match="in a downloads JSON served over http"):
        load_uv_downloads_json(url, fetch_options=options, reporter=NullReporter())
