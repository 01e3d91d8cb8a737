"""Tests for pylock.index.names: every upstream file-name era, checked against real data."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from pylock.index.names import (
    flavor_in_filename,
    optimisation_rank,
    parse_graalpy_filename,
    parse_pbs_filename,
    parse_pyodide_filename,
    parse_pypy_filename,
    variant_from_options,
    version_in_filename,
)
from pylock.platforms import Platform
from pylock.versions import ArchiveFormat, Flavor, Variant
from tests.indexdata import uv_json


def _filename(url: str) -> str:
    return unquote(url.rsplit("/", 1)[-1])


def _platform(entry: dict[str, Any]) -> str:
    arch = entry["arch"]
    plat = Platform.from_uv(entry["os"], arch["family"], arch["variant"], entry["libc"])
    assert plat is not None
    return plat.key


def _version(entry: dict[str, Any]) -> str:
    return f"{entry['major']}.{entry['minor']}.{entry['patch']}{entry['prerelease']}"


def test_every_reference_url_parses_and_agrees_with_its_entry() -> None:
    seen = {"pbs": 0, "pypy": 0, "graalpy": 0, "pyodide": 0}
    for key, entry in uv_json().items():
        name = _filename(entry["url"])
        platform = _platform(entry)
        version = _version(entry)
        if entry["name"] == "cpython" and (parsed := parse_pbs_filename(name)) is not None:
            seen["pbs"] += 1
            assert parsed.version == version, key
            assert parsed.platform.key == platform, key
            assert parsed.variant is Variant.parse(entry["variant"] or ""), key
            # Old names carry a build timestamp instead of the tag; the tag is in the URL.
            assert (parsed.tag or parsed.timestamp) is not None, key
            if parsed.tag is not None:
                assert parsed.tag == entry["build"], key
            assert f"/download/{entry['build']}/" in entry["url"], key
            assert parsed.format is ArchiveFormat.from_filename(name), key
            if parsed.flavor is Flavor.FULL:
                assert parsed.format is ArchiveFormat.TAR_ZST, key
        elif entry["name"] == "cpython":
            seen["pyodide"] += 1
            assert platform == "emscripten-wasm32", key
            assert parse_pyodide_filename(name) == entry["build"], key
        elif entry["name"] == "pypy":
            seen["pypy"] += 1
            pypy = parse_pypy_filename(name)
            assert pypy is not None and pypy.python_version is not None, key
            assert version.startswith(pypy.python_version + "."), key
            assert pypy.release == entry["build"], key
            assert pypy.platform.key == platform, key
        else:
            seen["graalpy"] += 1
            graal = parse_graalpy_filename(name)
            assert graal is not None, key
            assert graal.release == entry["build"], key
            assert graal.platform.key == platform, key
            if graal.python_version is not None:
                assert version.startswith(graal.python_version + "."), key
    assert sum(seen.values()) == len(uv_json())
    assert seen["pbs"] > 5000 and seen["pypy"] > 20 and seen["graalpy"] > 10
    assert seen["pyodide"] == 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
            ("3.13.9", "20251014", "linux-x86_64-gnu", "default", "install_only_stripped"),
        ),
        (
            "cpython-3.12.3+20240415-aarch64-apple-darwin-install_only.tar.gz",
            ("3.12.3", "20240415", "macos-aarch64", "default", "install_only"),
        ),
        (
            "cpython-3.14.0+20251014-x86_64_v3-unknown-linux-musl-freethreaded-install_only.tar.gz",
            ("3.14.0", "20251014", "linux-x86_64_v3-musl", "freethreaded", "install_only"),
        ),
        (
            "cpython-3.15.0a7+20260325-riscv64-unknown-linux-gnu-freethreaded+debug-full.tar.zst",
            ("3.15.0a7", "20260325", "linux-riscv64-gnu", "freethreaded+debug", "full"),
        ),
        (
            "cpython-3.13.0rc2+20240909-armv7-unknown-linux-gnueabihf-freethreaded+lto-full.tar.zst",
            ("3.13.0rc2", "20240909", "linux-armv7-gnueabihf", "freethreaded", "full"),
        ),
        (
            "cpython-3.11.4+20230726-x86_64-unknown-linux-musl-lto+static-full.tar.zst",
            ("3.11.4", "20230726", "linux-x86_64-musl", "default", "full"),
        ),
        (
            "cpython-3.10.9+20230116-x86_64-pc-windows-msvc-shared-install_only.tar.gz",
            ("3.10.9", "20230116", "windows-x86_64", "default", "install_only"),
        ),
        (
            "cpython-3.12.9+20250205-i686-pc-windows-msvc-shared-pgo-full.tar.zst",
            ("3.12.9", "20250205", "windows-i686", "default", "full"),
        ),
        (
            "cpython-3.9.7-x86_64-unknown-linux-gnu-debug-20211017T1616.tar.zst",
            ("3.9.7", None, "linux-x86_64-gnu", "debug", "full"),
        ),
        (
            "cpython-3.8.2-x86_64-pc-windows-msvc-shared-pgo-20200418T2315.tar.zst",
            ("3.8.2", None, "windows-x86_64", "default", "full"),
        ),
        (
            "cpython-3.13.1+20241206-s390x-unknown-linux-gnu-noopt-full.tar.zst",
            ("3.13.1", "20241206", "linux-s390x-gnu", "default", "full"),
        ),
    ],
)
def test_pbs_names_of_every_era(name: str, expected: tuple[str | None, ...]) -> None:
    parsed = parse_pbs_filename(name)
    assert parsed is not None
    got = (parsed.version, parsed.tag, parsed.platform.key, str(parsed.variant), str(parsed.flavor))
    assert got == expected


def test_pbs_old_name_keeps_its_timestamp_and_options() -> None:
    parsed = parse_pbs_filename("cpython-3.9.7-aarch64-apple-darwin-pgo+lto-20211017T1616.tar.zst")
    assert parsed is not None
    assert parsed.timestamp == "20211017T1616"
    assert parsed.options == ("pgo", "lto")
    assert parsed.triple == "aarch64-apple-darwin"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz.sha256",
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.xz",
        "cpython-3.13+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "cpython-3.13.9+2025101-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "cpython-3.13.9+20251014-sparc64-unknown-linux-gnu-install_only.tar.gz",
        "cpython-3.13.9+20251014-x86_64-unknown-freebsd-install_only.tar.gz",
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-full.tar.zst",
        "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu.tar.gz",
        "cpython-3.8.2-x86_64-pc-windows-msvc-static-noopt-20200418T2315.tar.zst",
        "../cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "cpython-3.13.9%2B20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "CPYTHON-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "SHA256SUMS",
        "pypy3.11-v7.3.20-linux64.tar.bz2",
    ],
)
def test_not_pbs_names(name: str) -> None:
    assert parse_pbs_filename(name) is None


def test_pypy_names() -> None:
    old = parse_pypy_filename("pypy3.9-v7.3.10-s390x.tar.bz2")
    assert old is not None
    assert (old.python_version, old.release, old.platform.key, old.format) == (
        "3.9",
        "7.3.10",
        "linux-s390x-gnu",
        ArchiveFormat.TAR_BZ2,
    )
    new = parse_pypy_filename("pypy3.11-v7.3.23-linux32.tar.gz")
    assert new is not None and new.format is ArchiveFormat.TAR_GZ
    assert new.platform.key == "linux-i686-gnu"
    win = parse_pypy_filename("pypy3.10-v7.3.17-win64.zip")
    assert win is not None and win.platform.key == "windows-x86_64"
    for bad in (
        "pypy3.11-v7.3.20-src.tar.bz2",
        "pypy3.11-v7.3.20-linux64.tar.xz",
        "pypy2.7-7.3.20-linux64.tar.bz2",
        "pypy3.11-v7.3.20-freebsd64.tar.bz2",
    ):
        assert parse_pypy_filename(bad) is None, bad


def test_graalpy_names() -> None:
    new = parse_graalpy_filename("graalpy3.12-25.2.4-linux-amd64.tar.gz")
    assert new is not None
    assert (new.python_version, new.release, new.platform.key) == (
        "3.12",
        "25.2.4",
        "linux-x86_64-gnu",
    )
    old = parse_graalpy_filename("graalpy-24.2.2-macos-aarch64.tar.gz")
    assert old is not None and old.python_version is None
    assert old.platform.key == "macos-aarch64"
    win = parse_graalpy_filename("graalpy-24.2.2-windows-amd64.zip")
    assert win is not None and win.format is ArchiveFormat.ZIP
    for bad in (
        "graalpy-community-24.2.2-linux-amd64.tar.gz",
        "graalpy-24.2.2-linux-riscv64.tar.gz",
        "graalpy-24.2-linux-amd64.tar.gz",
    ):
        assert parse_graalpy_filename(bad) is None, bad


def test_variants_and_optimisations() -> None:
    assert variant_from_options(()) is Variant.DEFAULT
    assert variant_from_options(("debug",)) is Variant.DEBUG
    assert variant_from_options(("freethreaded", "lto")) is Variant.FREETHREADED
    assert variant_from_options(("freethreaded", "debug")) is Variant.FREETHREADED_DEBUG
    ranks = [optimisation_rank(tuple(o.split("+"))) for o in ("pgo+lto", "lto", "pgo", "noopt")]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
    assert optimisation_rank(("freethreaded", "pgo", "lto")) == optimisation_rank(("pgo", "lto"))
    assert optimisation_rank(("lto", "static")) == optimisation_rank(("lto",))
    assert optimisation_rank(("weird",)) > optimisation_rank(("noopt",))


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("cpython-3.12.9-corp-x86_64-linux.tar.gz", "3.12.9"),
        ("cpython-3.15.0a7+20260325-x86_64-unknown-linux-gnu-install_only.tar.gz", "3.15.0a7"),
        ("python-3.13.0rc2-custom.zip", "3.13.0rc2"),
        ("build-2024.1.2.3-python.tar.gz", None),
        ("python3.12.tar.gz", None),
        ("", None),
    ],
)
def test_version_in_filename(name: str, version: str | None) -> None:
    assert version_in_filename(name) == version


def test_flavor_in_filename() -> None:
    assert flavor_in_filename("x-install_only_stripped.tar.gz") is Flavor.INSTALL_ONLY_STRIPPED
    assert flavor_in_filename("x-install_only.tar.gz") is Flavor.INSTALL_ONLY
    assert flavor_in_filename("cpython-3.12.9-corp-full.tar.zst") is Flavor.FULL
    assert flavor_in_filename("fullmoon-3.12.9.tar.gz") is None
    assert (
        flavor_in_filename("cpython-3.9.7-x86_64-unknown-linux-gnu-lto-20211017T1616.tar.zst")
        is Flavor.FULL
    )


@pytest.mark.parametrize(
    "name",
    [
        "cpython-3.13.１００+20261122-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz",
        "cpython-3.13.9+２0261122-x86_64-unknown-linux-gnu-install_only.tar.gz",
        "graalpy3.１２-25.0.1-linux-amd64.tar.gz",
        "pypy3.1０-v7.3.17-linux64.tar.bz2",
        f"graalpy-{'9' * 5000}.0.0-linux-amd64.tar.gz",
        f"cpython-3.13.{'9' * 5000}-x86_64-unknown-linux-gnu-install_only.tar.gz",
    ],
)
def test_names_with_digits_no_version_has_are_not_builds(name: str) -> None:
    """Upstream attack: full-width digits passed `\\d` and ended in an InvalidVersion
    traceback (in every later refresh, once cached); a 5,000-digit part in int()'s."""
    assert parse_pbs_filename(name) is None
    assert parse_graalpy_filename(name) is None
    assert parse_pypy_filename(name) is None
    found = version_in_filename(name)  # another X.Y.Z in the name, if any, in ASCII
    assert found is None or (found.isascii() and len(found) < 20)


def test_a_graalpy_tag_too_long_for_a_number_is_no_release() -> None:
    from pylock.index.graalpy import release_of_tag

    assert release_of_tag(f"graal-{'9' * 5000}.0.0") is None
    assert release_of_tag("graal-25.0.1") == "25.0.1"
