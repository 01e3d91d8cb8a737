"""Tests for version requests and the build vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from pylock.versions import (
    ArchiveFormat,
    Flavor,
    Variant,
    parse_request,
    parse_version,
    request_allows,
)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("3.13", "==3.13.*"),
        ("3", "==3.*"),
        ("3.13.9", "==3.13.9"),
        ("3.15.0a7", "==3.15.0a7"),
        (" 3.12 ", "==3.12.*"),
        (">=3.10.12,<3.11", "<3.11,>=3.10.12"),
        ("~=3.12.1", "~=3.12.1"),
    ],
)
def test_parse_request(text: str, spec: str) -> None:
    assert str(parse_request(text)) == spec


@pytest.mark.parametrize("text", ["3.x", "", "latest", ">=", "3.13,,"])
def test_bad_requests(text: str) -> None:
    with pytest.raises(ValueError, match=r"(invalid|empty) (version )?specifier"):
        parse_request(text)


@pytest.mark.parametrize("text", ["3." + "1" * 4301, ">=" + "9" * 5000, "==3.13.1234567890"])
def test_requests_with_numbers_no_version_has_are_refused_when_read(text: str) -> None:
    # Attack: they passed, and `lock` then died in packaging's int() (4,300-digit limit).
    with pytest.raises(ValueError, match="a number of more than 9 digits") as caught:
        parse_request(text)
    assert len(str(caught.value)) < 150
    assert str(parse_request("3.13.123456789")) == "==3.13.123456789"


def test_parse_version_of_a_part_int_cannot_read() -> None:
    with pytest.raises(ValueError, match="invalid version"):
        parse_version("3." + "1" * 5000)


def test_prereleases_only_when_allowed() -> None:
    spec = parse_request("3.15")
    assert not request_allows(spec, Version("3.15.0a7"), prereleases=False)
    assert request_allows(spec, Version("3.15.0a7"), prereleases=True)
    assert request_allows(parse_request("3.15.0a7"), Version("3.15.0a7"), prereleases=False)
    assert request_allows(spec, Version("3.15.1"), prereleases=False)


def test_bare_series_excludes_neighbours() -> None:
    spec = parse_request("3.1")
    assert not request_allows(spec, Version("3.13.0"), prereleases=False)
    assert request_allows(spec, Version("3.1.4"), prereleases=False)


def test_parse_version() -> None:
    assert parse_version("3.13.0rc2") == Version("3.13.0rc2")
    with pytest.raises(ValueError, match="invalid version"):
        parse_version("three")


def test_variants() -> None:
    assert Variant.parse("") is Variant.DEFAULT
    assert Variant.parse("freethreaded+debug").pbs_abi_suffix == "td"
    assert Variant.FREETHREADED.freethreaded and not Variant.FREETHREADED.debug


def test_flavor_fallbacks() -> None:
    assert Flavor.INSTALL_ONLY_STRIPPED.fallbacks() == (
        Flavor.INSTALL_ONLY_STRIPPED,
        Flavor.INSTALL_ONLY,
        Flavor.FULL,
    )
    assert Flavor.FULL.fallbacks() == (Flavor.FULL,)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.tar.gz", ArchiveFormat.TAR_GZ),
        ("a.TGZ", ArchiveFormat.TAR_GZ),
        ("a.tar.zst", ArchiveFormat.TAR_ZST),
        ("pypy.tar.bz2", ArchiveFormat.TAR_BZ2),
        ("pypy-win64.zip", ArchiveFormat.ZIP),
    ],
)
def test_archive_format(name: str, fmt: ArchiveFormat) -> None:
    assert ArchiveFormat.from_filename(name) is fmt


def test_unknown_archive_format() -> None:
    with pytest.raises(ValueError, match="cannot tell the archive format"):
        ArchiveFormat.from_filename("python.exe")


_versions = st.builds(
    lambda a, b, c: Version(f"3.{a}.{b}{c}"),
    st.integers(0, 20),
    st.integers(0, 30),
    st.sampled_from(["", "a1", "b2", "rc1"]),
)


@given(_versions, _versions)
def test_series_request_agrees_with_ordering(v1: Version, v2: Version) -> None:
    # "3.X" accepts exactly the final releases of series X, whatever else is around.
    spec = parse_request(f"3.{v1.minor}")
    assert request_allows(spec, v2, prereleases=False) == (
        v2.minor == v1.minor and not v2.is_prerelease
    )


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        # Excluding a pre-release is not asking for pre-releases (field report #1).
        (">=3.12,!=3.14.0rc2", False),
        ("!=3.15.0b4", False),
        ("<3.16.0a1", False),
        (">3.15.0a1", False),
        # Inclusive clauses naming a pre-release do ask for them.
        (">=3.15.0a1", True),
        ("<=3.15.0rc1", True),
        ("~=3.15.0b1", True),
        ("==3.15.0rc1", True),
    ],
)
def test_only_inclusive_clauses_naming_a_prerelease_allow_them(text: str, allowed: bool) -> None:
    assert request_allows(parse_request(text), Version("3.15.0rc1"), prereleases=False) is allowed
