"""Tests for platform keys and their upstream names."""

from __future__ import annotations

import pytest

from pylock.platforms import PLATFORM_KEYS, Platform, host, resolve_platform
from pylock.versions import Implementation


def test_every_key_round_trips_through_pbs_triples() -> None:
    for key in PLATFORM_KEYS:
        plat = Platform.parse(key)
        assert plat.key == key
        if plat.pbs_triple is not None:
            assert Platform.from_pbs_triple(plat.pbs_triple) == plat


@pytest.mark.parametrize(
    ("triple", "key"),
    [
        ("x86_64-unknown-linux-gnu", "linux-x86_64-gnu"),
        ("x86_64_v4-unknown-linux-musl", "linux-x86_64_v4-musl"),
        ("armv7-unknown-linux-gnueabihf", "linux-armv7-gnueabihf"),
        ("ppc64le-unknown-linux-gnu", "linux-ppc64le-gnu"),
        ("aarch64-apple-darwin", "macos-aarch64"),
        ("x86_64-pc-windows-msvc-shared", "windows-x86_64"),
        ("i686-pc-windows-msvc", "windows-i686"),
    ],
)
def test_pbs_triples(triple: str, key: str) -> None:
    found = Platform.from_pbs_triple(triple)
    assert found is not None and found.key == key


def test_unknown_triple() -> None:
    assert Platform.from_pbs_triple("sparc-sun-solaris") is None


def test_pypy_and_graalpy_names() -> None:
    pypy, graalpy = Implementation.PYPY, Implementation.GRAALPY
    assert Platform.parse("linux-x86_64-gnu").release_name(pypy) == "linux64"
    assert Platform.from_release_name(pypy, "macos_arm64") == Platform.parse("macos-aarch64")
    assert Platform.from_pypy_json("x64", "win64") == Platform.parse("windows-x86_64")
    assert Platform.parse("linux-x86_64-gnu").release_name(graalpy) == "linux-amd64"
    assert Platform.from_release_name(graalpy, "macos-aarch64") == Platform.parse("macos-aarch64")
    assert Platform.parse("linux-riscv64-gnu").release_name(pypy) is None
    # Each implementation's names are its own, and CPython's are PBS triples.
    assert Platform.from_release_name(graalpy, "linux64") is None
    assert Platform.parse("linux-x86_64-gnu").release_name(Implementation.CPYTHON) is None


def test_uv_fields_round_trip() -> None:
    for key in PLATFORM_KEYS:
        plat = Platform.parse(key)
        assert Platform.from_uv(*plat.uv_fields) == plat


def test_unknown_key_suggests_near_misses() -> None:
    with pytest.raises(
        ValueError, match=r"unknown platform 'macos-aarch46' \(did you mean 'macos-aarch64'"
    ):
        Platform.parse("macos-aarch46")
    with pytest.raises(ValueError, match="expected 'host' or one of"):
        Platform.parse("zzz")


def test_host_is_a_known_platform() -> None:
    assert host().key in PLATFORM_KEYS
    assert resolve_platform("host") == host()
    other = Platform.parse("windows-aarch64")
    assert resolve_platform("host", host_platform=other) is other


@pytest.mark.parametrize(
    ("system", "machine", "libc", "expected"),
    [
        ("linux", "x86_64", ("glibc", "2.36"), "linux-x86_64-gnu"),
        ("linux", "aarch64", ("glibc", "2.36"), "linux-aarch64-gnu"),
        ("linux", "armv7l", ("glibc", "2.36"), "linux-armv7-gnueabihf"),
        ("darwin", "arm64", ("", ""), "macos-aarch64"),
        ("darwin", "x86_64", ("", ""), "macos-x86_64"),
    ],
)
def test_host_detection(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, libc: tuple[str, str], expected: str
) -> None:
    monkeypatch.setattr("pylock.platforms.sys.platform", system)
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: machine)
    monkeypatch.setattr("pylock.platforms._platform.libc_ver", lambda: libc)
    assert host().key == expected


def test_host_detection_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pylock.platforms.sys.platform", "win32")
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: "AMD64")
    monkeypatch.delenv("PROCESSOR_ARCHITEW6432", raising=False)
    monkeypatch.setenv("PROCESSOR_ARCHITECTURE", "ARM64")
    assert host().key == "windows-aarch64"


def test_host_detection_unknown_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pylock.platforms.sys.platform", "sunos5")
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: "sparc")
    with pytest.raises(ValueError, match="not a platform pylock knows"):
        host()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("x86_64", "names the system too (did you mean 'linux-x86_64-gnu', 'linux-x86_64-musl', "),
        ("arm64", "'macos-aarch64' or 'windows-aarch64'?)"),
        ("darwin", "names the architecture too (did you mean 'macos-aarch64' or 'macos-x86_64'?)"),
        ("riscv64", "(did you mean 'linux-riscv64-gnu'?)"),
    ],
)
def test_a_bare_architecture_or_system_gets_every_key_that_has_it(
    typed: str, expected: str
) -> None:
    """`x86_64` was answered with macos-x86_64 or windows-x86_64, not linux-x86_64-gnu."""
    with pytest.raises(ValueError, match="unknown platform") as caught:
        Platform.parse(typed)
    assert expected in str(caught.value)
