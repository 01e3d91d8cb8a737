"""Tests for the bundled snapshot (pylock.index.snapshot), its generator, and the Index model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import attrs
import pytest

from pylock.errors import UpstreamError
from pylock.index.model import Index, tag_date
from pylock.index.snapshot import (
    BUNDLED_PATH,
    dumps_snapshot,
    load_bundled,
    loads_snapshot,
    read_document,
    snapshot_document,
)
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import (
    UV_KEY,
    graalpy,
    index_of,
    pbs,
    pypy,
    snapshot_script,
    uv_entry,
    uv_json,
    uv_json_path,
)


def _sample() -> Index:
    return Index(
        builds=[
            pbs("3.13.9", "20251014", "linux-x86_64-gnu", size=35_000_000),
            pbs("3.13.9", "20251014", "linux-x86_64-gnu", flavor=Flavor.INSTALL_ONLY),
            pbs("3.13.9", "20251014", "macos-aarch64", variant=Variant.DEBUG, flavor=Flavor.FULL),
            pbs("3.8.2", "20200418", "linux-x86_64-gnu", sha256=None),
            pypy("3.11.13", "7.3.20", "windows-x86_64"),
            graalpy("3.12.0", "25.2.4", "linux-aarch64-gnu"),
        ],
        source="sample",
        source_date="2025-10-14",
        tag_dates={"20250323": "2026-03-23"},
    )


# -- the shipped snapshot ------------------------------------------------------------------


def test_shipped_snapshot_is_what_the_generator_makes_from_the_reference_data() -> None:
    source = uv_json_path()
    script = snapshot_script()
    index = script.index_from_uv_json(source)
    shipped = read_document(BUNDLED_PATH.read_bytes(), filename=str(BUNDLED_PATH))
    # Compared decoded: gzip bytes differ between zlib builds.
    assert shipped == json.loads(json.dumps(snapshot_document(index)))
    assert script.main(["--uv-json", str(source), "--check"]) == 0


def test_shipped_snapshot_covers_every_reference_entry() -> None:
    data = uv_json()
    bundled = load_bundled()
    assert bundled.source == "uv-download-metadata.json"
    assert bundled.source_date == "2026-08-14"
    by_url = {b.url: b for b in bundled.builds}
    assert len(by_url) == len(bundled.builds) == len(data)
    for entry in data.values():
        assert by_url[entry["url"]].sha256 == entry["sha256"]


def test_bundled_snapshot_decodes_groups_lazily() -> None:
    index = loads_snapshot(BUNDLED_PATH.read_bytes())
    assert index._groups == {}
    got = index.candidates(Implementation.CPYTHON, "linux-x86_64-gnu", Variant.DEFAULT)
    assert got and all(b.platform == "linux-x86_64-gnu" for b in got)
    assert list(index._groups) == [(Implementation.CPYTHON, "linux-x86_64-gnu")]
    assert len(index.builds) > 5000
    assert index._pending == {}


def test_round_trip_keeps_every_field() -> None:
    index = _sample()
    data = dumps_snapshot(index)
    assert dumps_snapshot(index) == data
    again = loads_snapshot(data)
    assert again == index
    assert again.tag_dates == {"20250323": "2026-03-23"}
    by_url = {b.url: b for b in again.builds}
    for build in index.builds:
        assert attrs.asdict(by_url[build.url]) == attrs.asdict(build)


def test_plain_json_snapshots_are_read_too() -> None:
    index = _sample()
    assert loads_snapshot(gzip.decompress(dumps_snapshot(index))) == index


def test_rows_share_url_prefixes() -> None:
    document = snapshot_document(_sample())
    assert document["url-prefixes"] == [
        "https://downloads.python.org/pypy/",
        "https://github.com/astral-sh/python-build-standalone/releases/download/",
        "https://github.com/oracle/graalpython/releases/download/",
    ]
    assert document["count"] == 6
    row = document["groups"]["cpython/linux-x86_64-gnu"][0].split("\t")
    assert row[5] == "1" and not row[6].startswith("https://")


def _corrupt(document: dict[str, object]) -> bytes:
    return gzip.compress(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update({"snapshot-version": 99}), "unsupported snapshot-version 99"),
        (lambda d: d.pop("groups"), "malformed snapshot"),
        (lambda d: d.update({"groups": {"jython/linux-x86_64-gnu": []}}), "malformed snapshot"),
    ],
)
def test_malformed_snapshots_fail_on_load(mutate: object, message: str) -> None:
    document = snapshot_document(_sample())
    mutate(document)  # type: ignore[operator]
    with pytest.raises(UpstreamError, match=message):
        loads_snapshot(_corrupt(document), filename="bad.json.gz")


@pytest.mark.parametrize(
    "row",
    [
        "3.13.9\t20251014\tdefault",
        "3.13.9\t20251014\tturbo\tfull\ttar.zst\t1\tx\t\t",
        "3.13.9\t20251014\tdefault\tfull\ttar.zst\t7\tx\t\t",
        "3.13.9\t20251014\tdefault\tfull\ttar.zst\t1\tx\t\tbig",
    ],
)
def test_malformed_rows_fail_when_their_group_is_used(row: str) -> None:
    document = snapshot_document(_sample())
    document["groups"]["cpython/linux-x86_64-gnu"].append(row)
    index = loads_snapshot(_corrupt(document), filename="bad.json.gz")
    with pytest.raises(UpstreamError, match=r"bad\.json\.gz: malformed row 3 of group"):
        index.candidates(Implementation.CPYTHON, "linux-x86_64-gnu", Variant.DEFAULT)


@pytest.mark.parametrize("data", [b"", b"\x1f\x8bnot gzip", b"[1, 2]", b"{not json"])
def test_garbage_is_not_a_snapshot(data: bytes) -> None:
    with pytest.raises(UpstreamError, match=r"x\.gz: "):
        loads_snapshot(data, filename="x.gz")


# -- generator -----------------------------------------------------------------------------


def test_generator_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = snapshot_script()
    source = tmp_path / "downloads.json"
    source.write_text(json.dumps({UV_KEY: uv_entry()}))
    out = tmp_path / "snap.json.gz"
    args = ["--uv-json", str(source), "--output", str(out)]
    assert script.main([*args, "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert script.main(args) == 0
    index = loads_snapshot(out.read_bytes())
    assert (index.source, index.source_date, len(index.builds)) == (
        "downloads.json",
        "2025-09-18",
        1,
    )
    assert script.main([*args, "--check"]) == 0
    assert script.main([*args, "--source-date", "2025-12-01", "--check"]) == 1
    assert script.main([*args, "--source-date", "2025-12-01"]) == 0
    assert loads_snapshot(out.read_bytes()).source_date == "2025-12-01"
    with pytest.raises(SystemExit):
        script.main([*args, "--source-date", "yesterday"])


def test_generator_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = snapshot_script()
    source = tmp_path / "downloads.json"
    source.write_text('{"k": {"name": "cpython"}}')
    out = tmp_path / "snap.json.gz"
    assert script.main(["--uv-json", str(source), "--output", str(out)]) == 1
    assert "build_snapshot: error: downloads.json: entry 'k': missing 'arch'" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    assert script.main(["--uv-json", str(tmp_path / "missing.json"), "--output", str(out)]) == 1


# -- the Index model -----------------------------------------------------------------------


def test_candidates_filter_by_implementation_platform_and_variant() -> None:
    index = _sample()
    linux = index.candidates(Implementation.CPYTHON, "linux-x86_64-gnu", Variant.DEFAULT)
    assert {b.version for b in linux} == {"3.13.9", "3.8.2"}
    assert index.candidates(Implementation.CPYTHON, "macos-aarch64", Variant.DEFAULT) == ()
    assert len(index.candidates(Implementation.CPYTHON, "macos-aarch64", Variant.DEBUG)) == 1
    assert index.candidates(Implementation.PYPY, "linux-x86_64-gnu", Variant.DEFAULT) == ()
    assert index.platforms(Implementation.PYPY) == ("windows-x86_64",)


def test_tags_order_by_publication_date() -> None:
    index = index_of(tag_dates={"20250323": "2026-03-23"})
    tags = ["20251014", "20250323", "20240107", "20260101"]
    assert sorted(tags, key=index.tag_order) == ["20240107", "20251014", "20260101", "20250323"]
    assert sorted(["7.3.9", "7.3.20", "7.3.10"], key=index.tag_order) == [
        "7.3.9",
        "7.3.10",
        "7.3.20",
    ]
    assert tag_date("2025101") is None and tag_date("20251014") == "2025-10-14"


def test_merge_lets_the_later_source_win() -> None:
    old = pbs("3.13.9", "20251014", "linux-x86_64-gnu")
    other = pbs("3.13.8", "20251007", "linux-x86_64-gnu")
    base = Index(builds=[old, other], source="snapshot", source_date="2025-10-14")
    newer = attrs.evolve(old, sha256="cd" * 32, size=123)
    extra = pypy("3.11.13", "7.3.20", "linux-x86_64-gnu")
    live = Index(
        builds=[newer, extra],
        source="live",
        source_date="2026-01-02",
        tag_dates={"20251014": "2025-10-15"},
    )
    merged = base.merge(live)
    assert merged.source == "snapshot + live"
    assert merged.source_date == "2026-01-02"
    assert merged.tag_dates == {"20251014": "2025-10-15"}
    by_url = {b.url: b for b in merged.builds}
    assert len(by_url) == 3
    assert by_url[old.url].sha256 == "cd" * 32 and by_url[old.url].size == 123
    assert by_url[other.url] == other
    assert base.merge(live) == merged
    assert merged != base
