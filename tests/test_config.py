"""The pythons.toml loader: strict types, TOML-path errors, defaults, and the digest."""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylock.config import (
    KEYS,
    Config,
    PythonRequest,
    config_digest,
    digests_of_file,
    load_config,
    loads_config,
)
from pylock.errors import ConfigError, PylockError
from pylock.platforms import PLATFORM_KEYS, Platform
from pylock.versions import Flavor, Implementation, Variant
from tests.projects import DESIGN_EXAMPLE


def error_lines(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    assert isinstance(info.value, PylockError)
    return str(info.value).splitlines()


# -- valid files ---------------------------------------------------------------------------


def test_design_example_loads() -> None:
    config = loads_config(DESIGN_EXAMPLE)
    assert config.names == ("app", "inhouse", "legacy", "nogil", "pinned", "pypy")
    three = ("linux-x86_64-gnu", "linux-aarch64-gnu", "macos-aarch64")
    assert config.get("app") == PythonRequest(name="app", version="3.13", platforms=three)
    nogil = config.get("nogil")
    assert nogil is not None and nogil.variant is Variant.FREETHREADED
    legacy = config.get("legacy")
    assert legacy is not None and legacy.platforms == ("linux-x86_64-gnu",)
    assert str(legacy.specifier) == "<3.11,>=3.10.12"
    pinned = config.get("pinned")
    assert pinned is not None and pinned.build == "20251007"
    # A default flavor says nothing about PyPy, so PyPy does not inherit it (and no error).
    pypy = config.get("pypy")
    assert pypy is not None
    assert pypy.implementation is Implementation.PYPY
    assert pypy.flavor is Flavor.INSTALL_ONLY_STRIPPED
    assert pypy.platforms == three
    inhouse = config.get("inhouse")
    assert inhouse is not None and inhouse.url is not None
    assert inhouse.version is None and inhouse.sha256 == "ab" * 32
    assert config.default is None
    assert config.digest.startswith("sha256:") and len(config.digest) == 7 + 64


def test_minimal_entry_gets_every_default() -> None:
    config = loads_config('[python.app]\nversion = "3.13"\n')
    assert config.pythons == (PythonRequest(name="app", version="3.13"),)
    request = config.pythons[0]
    assert request.implementation is Implementation.CPYTHON
    assert request.variant is Variant.DEFAULT
    assert request.flavor is Flavor.INSTALL_ONLY_STRIPPED
    assert request.platforms == ("host",)
    assert request.prereleases is False and request.default is False
    assert request.build is None and request.url is None and request.sha256 is None


def test_defaults_merge_and_entries_override() -> None:
    config = loads_config(
        """
        [defaults]
        platforms = ["macos-aarch64", "linux-x86_64-gnu"]
        prereleases = true
        variant = "freethreaded"
        flavor = "full"
        version = "3.14"

        [python.a]

        [python.b]
        version = "3.13"
        platforms = ["windows-x86_64"]
        prereleases = false
        variant = "default"
        """
    )
    a, b = config.get("a"), config.get("b")
    assert a == PythonRequest(
        name="a",
        version="3.14",
        platforms=("macos-aarch64", "linux-x86_64-gnu"),
        prereleases=True,
        variant=Variant.FREETHREADED,
        flavor=Flavor.FULL,
    )
    assert b == PythonRequest(
        name="b",
        version="3.13",
        platforms=("windows-x86_64",),
        prereleases=False,
        variant=Variant.DEFAULT,
        flavor=Flavor.FULL,
    )


def test_url_entry_does_not_inherit_upstream_keys() -> None:
    config = loads_config(
        """
        [defaults]
        version = "3.13"
        build = "20251014"
        prereleases = true

        [python.corp]
        url = "file:///srv/builds/cpython-3.12.9.tar.zst"
        """
    )
    corp = config.get("corp")
    assert corp is not None
    assert (corp.version, corp.build, corp.prereleases) == (None, None, False)


def test_pypy_does_not_inherit_a_default_variant() -> None:
    config = loads_config(
        """
        [defaults]
        variant = "freethreaded"

        [python.ft]
        version = "3.14"

        [python.pp]
        implementation = "pypy"
        version = "3.11"
        """
    )
    assert config.pythons[0].variant is Variant.FREETHREADED
    assert config.pythons[1].variant is Variant.DEFAULT


def test_pythons_are_sorted_by_name_and_default_found() -> None:
    config = loads_config(
        '[python.zeta]\nversion = "3.12"\ndefault = true\n[python.Alpha]\nversion = "3.13"\n'
    )
    assert config.names == ("Alpha", "zeta")
    default = config.default
    assert default is not None and default.name == "zeta"
    assert config.get("nope") is None


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pythons.toml"
    path.write_bytes(b'\xef\xbb\xbf[python.app]\r\nversion = "3.13"\r\n')
    assert load_config(path).names == ("app",)
    assert digests_of_file(path) == load_config(path).digests


def test_dotted_names_are_valid() -> None:
    assert loads_config('[python."py3.12"]\nversion = "3.12"\n').names == ("py3.12",)


# -- exact error messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[python.app]\nverison = "3.13"\n',
            ["pythons.toml: python.app.verison: unknown key (did you mean 'version'?)"],
            id="unknown-key-hint",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nplatform = ["host"]\n',
            ["pythons.toml: python.app.platform: unknown key (did you mean 'platforms'?)"],
            id="platform-vs-platforms",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nfoo = 1\n',
            [
                "pythons.toml: python.app.foo: unknown key (expected one of: "
                + ", ".join(KEYS)
                + ")"
            ],
            id="unknown-key-no-hint",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nprereleases = "false"\n',
            [
                "pythons.toml: python.app.prereleases: expected true or false, "
                "got string 'false' (write it without quotes: false)"
            ],
            id="string-false-for-bool",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\ndefault = 1\n',
            ["pythons.toml: python.app.default: expected true or false, got integer 1"],
            id="int-for-bool",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nbuild = 20251007\n',
            [
                "pythons.toml: python.app.build: expected a string, got integer 20251007 "
                '(put it in quotes: "20251007")'
            ],
            id="int-for-string",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nbuild = 2025-10-07\n',
            [
                "pythons.toml: python.app.build: expected a string, got a date "
                '(put it in quotes as upstream writes its tags: "20251007")'
            ],
            id="date-for-build",
        ),
        pytest.param(
            "[python.app]\nversion = 2025-10-07\n",
            ["pythons.toml: python.app.version: expected a string, got a date"],
            id="date-for-version",
        ),
        pytest.param(
            "[python.app]\nversion = 3.10\n",
            [
                "pythons.toml: python.app.version: expected a string, got float 3.1 "
                "(put it in quotes; unquoted, 3.10 reads as the number 3.1)"
            ],
            id="float-version",
        ),
        pytest.param(
            '[python.app]\nversion = "3.x"\n',
            [
                "pythons.toml: python.app.version: invalid specifier '3.x' "
                '(expected e.g. "3.13", "3.12.11" or ">=3.12,<3.14")'
            ],
            id="bad-specifier",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13.15+20260814"\n',
            [
                "pythons.toml: python.app.version: invalid version '3.13.15+20260814': the "
                'part after \'+\' is the build; write version = "3.13.15" and build = "20260814"'
            ],
            id="version-with-build-copied-from-pylock",
        ),
        pytest.param(
            # `===` compares text: a `url` entry with it ended `lock` in a traceback.
            '[python.app]\nurl = "https://example.com/cpython.tar.gz"\nversion = "===banana"\n',
            [
                "pythons.toml: python.app.version: invalid version '===banana': "
                "'===' needs an exact version such as 3.13.9"
            ],
            id="arbitrary-equality-text",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13.' + "9" * 5000 + '+20251014"\n',
            [
                "pythons.toml: python.app.version: invalid version "
                f"'3.13.{'9' * 52}...': a number of more than 9 digits"
            ],
            id="huge-version-with-build-cut",
        ),
        pytest.param(
            '[python.app]\nversion = "' + "3.13," * 100_000 + '"\n',
            [
                "pythons.toml: python.app.version: invalid specifier "
                f"'{('3.13,' * 12)[:57]}...' "
                '(expected e.g. "3.13", "3.12.11" or ">=3.12,<3.14")'
            ],
            id="huge-value-cut",
        ),
        pytest.param(
            '[python.app]\nplatforms = ["host"]\n',
            [
                "pythons.toml: python.app.version: missing "
                '(expected e.g. "3.13"; only an entry with a url may leave it out)'
            ],
            id="missing-version",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nplatforms = ["macos-aarch46"]\n',
            [
                "pythons.toml: python.app.platforms[0]: unknown platform 'macos-aarch46' "
                "(did you mean 'macos-aarch64' or 'windows-aarch64'?)"
            ],
            id="unknown-platform",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nplatforms = ["host", "macos-aarch64", "host"]\n',
            [
                "pythons.toml: python.app.platforms[2]: 'host' is listed twice "
                "(first as platforms[0])"
            ],
            id="duplicate-platform",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nplatforms = "host"\n',
            [
                "pythons.toml: python.app.platforms: expected an array of platform keys, "
                "got string 'host' (write it as a list: [\"host\"])"
            ],
            id="platforms-not-a-list",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nplatforms = []\n',
            [
                "pythons.toml: python.app.platforms: empty "
                '(expected at least one platform key, e.g. ["host"])'
            ],
            id="platforms-empty",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nvariant = "freethread"\n',
            [
                "pythons.toml: python.app.variant: unknown value 'freethread' "
                "(did you mean 'freethreaded'?)"
            ],
            id="variant-near-miss",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nflavor = "tiny"\n',
            [
                "pythons.toml: python.app.flavor: unknown value 'tiny' "
                "(expected one of: install_only_stripped, install_only, full)"
            ],
            id="flavor-unknown",
        ),
        pytest.param(
            '[python."my app"]\nversion = "3.13"\n',
            [
                "pythons.toml: python.\"my app\": invalid name 'my app' (expected letters, "
                "digits, '.', '_' or '-', starting with a letter or digit)"
            ],
            id="bad-name",
        ),
        pytest.param(
            '[python."-x"]\nversion = "3.13"\n',
            [
                "pythons.toml: python.-x: invalid name '-x' (expected letters, "
                "digits, '.', '_' or '-', starting with a letter or digit)"
            ],
            id="name-starts-with-dash",
        ),
        pytest.param(
            f'[python.{"a" * 130}]\nversion = "3.13"\n',
            [
                f"pythons.toml: python.{'a' * 110}...: invalid name '{'a' * 57}...' "
                "(130 characters; at most 128)"
            ],
            id="name-too-long",
        ),
        pytest.param(
            '[python.NUL]\nversion = "3.13"\n',
            ["pythons.toml: python.NUL: invalid name 'NUL' (a reserved device name on Windows)"],
            id="windows-device-name",
        ),
        pytest.param(
            '[python."app."]\nversion = "3.13"\n',
            [
                "pythons.toml: python.\"app.\": invalid name 'app.' "
                "(Windows drops a trailing '.' from directory names)"
            ],
            id="trailing-dot",
        ),
        pytest.param(
            '[python.App]\nversion = "3.13"\n[python.app]\nversion = "3.12"\n',
            [
                "pythons.toml: python.app: 'app' and 'App' differ only in case; their install "
                "directories would collide on macOS and Windows"
            ],
            id="case-collision",
        ),
        pytest.param(
            '[python.a]\nversion = "3.13"\ndefault = true\n'
            '[python.b]\nversion = "3.12"\ndefault = true\n',
            [
                "pythons.toml: python: more than one interpreter has default = true: "
                "'a', 'b' (at most one may be the default)"
            ],
            id="duplicate-default",
        ),
        pytest.param(
            '[python.x]\nurl = "https://e.example/a.tar.gz"\nbuild = "20251014"\n',
            [
                "pythons.toml: python.x.build: not allowed together with url "
                "(a direct URL is one exact build already)"
            ],
            id="url-and-build",
        ),
        pytest.param(
            "[defaults]\nprereleases = true\n"
            '[python.x]\nurl = "https://e.example/a.tar.gz"\nprereleases = true\n',
            [
                "pythons.toml: python.x.prereleases: not allowed together with url "
                "(a direct URL's version is taken as it is)"
            ],
            id="url-and-prereleases",
        ),
        pytest.param(
            '[python.x]\nurl = "https://e.example/a.tar.gz"\nsha256 = "ABC"\n',
            [
                "pythons.toml: python.x.sha256: invalid sha256 'ABC' "
                "(expected 64 lowercase hex digits)"
            ],
            id="bad-sha256",
        ),
        pytest.param(
            '[python.x]\nurl = "https://e.example/a.tar.gz"\nsha256 = "' + "A" * 64 + '"\n',
            [
                f"pythons.toml: python.x.sha256: invalid sha256 '{'A' * 64}' "
                "(expected 64 lowercase hex digits)"
            ],
            id="uppercase-sha256",
        ),
        pytest.param(
            '[python.x]\nversion = "3.12"\nsha256 = "' + "a" * 64 + '"\n',
            [
                "pythons.toml: python.x.sha256: only allowed together with url "
                "(upstream builds come with their hashes)"
            ],
            id="sha256-without-url",
        ),
        pytest.param(
            '[python.x]\nurl = "ftp://e.example/a.tar.gz"\n',
            [
                "pythons.toml: python.x.url: invalid URL 'ftp://e.example/a.tar.gz' "
                "(expected https://, http:// or file://)"
            ],
            id="url-scheme",
        ),
        pytest.param(
            '[python.x]\nurl = "https:///a.tar.gz"\n',
            [
                "pythons.toml: python.x.url: invalid URL 'https:///a.tar.gz' "
                "(expected https://, http:// or file://)"
            ],
            id="url-without-host",
        ),
        pytest.param(
            '[python.x]\nurl = "file:a.tar.gz"\n',
            [
                "pythons.toml: python.x.url: invalid URL 'file:a.tar.gz' "
                "(a file URL needs an absolute path)"
            ],
            id="url-file-relative",
        ),
        pytest.param(
            '[python.x]\nurl = "https://e.example/python.exe"\n',
            [
                "pythons.toml: python.x.url: cannot tell the archive format of 'python.exe' "
                "(expected .tar.gz, .tgz, .tar.zst, .tar.bz2 or .zip)"
            ],
            id="url-not-an-archive",
        ),
        pytest.param(
            '[defaults]\nplatforms = ["linux-x86_64-gnu", "macos-aarch64"]\n'
            '[python.x]\nurl = "https://e.example/a.tar.gz"\n',
            [
                "pythons.toml: python.x.platforms: a url is one archive for one platform, but "
                "2 platforms are listed (inherited from [defaults]); "
                'set platforms = ["<key>"] on this entry'
            ],
            id="url-several-platforms",
        ),
        pytest.param(
            '[python.pp]\nimplementation = "pypy"\nversion = "3.11"\n'
            'variant = "freethreaded"\nflavor = "full"\n',
            [
                "pythons.toml: python.pp.variant: the 'freethreaded' variant exists only for "
                "cpython, not pypy",
                "pythons.toml: python.pp.flavor: flavor applies only to cpython "
                "(pypy has one archive per platform)",
            ],
            id="cpython-only-keys",
        ),
        pytest.param(
            '[defaults]\nurl = "https://e.example/a.tar.gz"\ndefault = true\n'
            '[python.a]\nversion = "3.13"\n',
            [
                "pythons.toml: defaults.url: not allowed in [defaults] "
                "(it belongs to one [python.NAME] table)",
                "pythons.toml: defaults.default: not allowed in [defaults] "
                "(it belongs to one [python.NAME] table)",
            ],
            id="per-entry-keys-in-defaults",
        ),
        pytest.param(
            'defaults = 3\n[python.a]\nversion = "3.13"\n',
            ["pythons.toml: defaults: expected a table, got integer 3"],
            id="defaults-not-a-table",
        ),
        pytest.param(
            'version = "3.13"\n[pythons.app]\nversion = "3.13"\n',
            [
                "pythons.toml: version: unknown key (interpreter settings go in [defaults] "
                "or [python.NAME])",
                "pythons.toml: pythons: unknown key (did you mean 'python'?)",
                "pythons.toml: no interpreters (expected at least one [python.NAME] table)",
            ],
            id="unknown-top-level",
        ),
        pytest.param(
            '[[python]]\nname = "app"\n',
            [
                "pythons.toml: python: expected tables such as [python.app], got an array "
                "([[python]] is the format of pythons.lock)"
            ],
            id="lock-format",
        ),
        pytest.param(
            'python.app = "3.13"\n',
            [
                "pythons.toml: python.app: expected a table, got string '3.13' "
                '(write [python.app] with version = "3.13")'
            ],
            id="entry-not-a-table",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\n[python.app.extra]\nx = 1\n',
            [
                "pythons.toml: python.app.extra: unknown key (expected one of: "
                + ", ".join(KEYS)
                + ")"
            ],
            id="nested-table",
        ),
        pytest.param(
            '[python.app]\nversion = "3.13"\nversion = "3.12"\n',
            ["pythons.toml: invalid TOML: Cannot overwrite a value (at line 3, column 17)"],
            id="toml-duplicate-key",
        ),
        pytest.param(
            '[python.app]\nversion = 3.13"\n',
            [
                "pythons.toml: invalid TOML: Expected newline or end of document after a "
                "statement (at line 2, column 15)"
            ],
            id="toml-syntax",
        ),
    ],
)
def test_exact_error(text: str, expected: list[str]) -> None:
    assert error_lines(text) == expected


def test_several_errors_are_reported_together_in_file_order() -> None:
    text = """
[defaults]
flavor = 3

[python.app]
verison = "3.13"
prereleases = "yes"

[python.b]
version = ">=3.x"
platforms = ["host", "linux-x86_64-gnux"]

[python.c]
version = "3.13"
default = true

[python.d]
version = "3.12"
default = true
"""
    assert error_lines(text) == [
        'pythons.toml: defaults.flavor: expected a string, got integer 3 (put it in quotes: "3")',
        "pythons.toml: python.app.verison: unknown key (did you mean 'version'?)",
        "pythons.toml: python.app.prereleases: expected true or false, got string 'yes'",
        "pythons.toml: python.b.version: invalid specifier '>=3.x' "
        '(expected e.g. "3.13", "3.12.11" or ">=3.12,<3.14")',
        "pythons.toml: python.b.platforms[1]: unknown platform 'linux-x86_64-gnux' "
        "(did you mean 'linux-x86_64-gnu', 'linux-x86_64_v3-gnu' or 'linux-x86_64_v4-gnu'?)",
        "pythons.toml: python: more than one interpreter has default = true: 'c', 'd' "
        "(at most one may be the default)",
    ]


def test_error_carries_file_and_problems_as_attributes() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config('[python.app]\nversion = "3.x"\nbuild = 1\n', filename="proj/pythons.toml")
    error = info.value
    assert error.file == "proj/pythons.toml"
    assert [p.path for p in error.problems] == ["python.app.version", "python.app.build"]
    assert str(error).startswith("proj/pythons.toml: python.app.version: ")


def test_a_file_with_thousands_of_problems_lists_fifty_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: 100,000 broken tables printed 500,001 error lines into a CI log."""
    from pylock.cli import main

    text = "".join(f'[python.p{i}]\nversion = "3.x"\n' for i in range(3000))
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    assert len(info.value.problems) == 3000  # all found, for whoever reads them
    lines = str(info.value).splitlines()
    assert len(lines) == 51
    assert lines[0].startswith("pythons.toml: python.p0.version: invalid specifier")
    assert lines[-1] == "pythons.toml: and 2950 more problems"
    (tmp_path / "pythons.toml").write_text(text)
    assert main(["--project", str(tmp_path), "lock"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) < 60
    assert err[-1] == f"pylock: error: {tmp_path / 'pythons.toml'}: and 2950 more problems"


def test_empty_config_has_a_hint() -> None:
    for text in ("", "# nothing\n", "[python]\n", "[defaults]\nprereleases = true\n"):
        with pytest.raises(ConfigError) as info:
            loads_config(text)
        assert str(info.value) == (
            "pythons.toml: no interpreters (expected at least one [python.NAME] table)"
        )
        assert info.value.hint is not None and "[python.main]" in info.value.hint


def test_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "pythons.toml")
    assert str(info.value).endswith("pythons.toml: not found")
    assert info.value.hint == "run `pylock init` to write a starter pythons.toml"


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory
    path = tmp_path / "pythons.toml"
    path.write_bytes(b'[python.app]\nversion = "3.13\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not valid UTF-8 (byte 28)" in str(info.value)
    assert digests_of_file(path) == ()


def test_load_config_names_the_file_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    path = tmp_path / "proj" / "pythons.toml"
    path.write_text('[python.app]\nversion = "3.x"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == os.path.join("proj", "pythons.toml")


def test_deeply_nested_toml_is_a_clean_error() -> None:
    text = "[python.app]\nversion = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError):
        loads_config(text)


def test_cattrs_is_not_imported_for_the_digest(tmp_path: Path) -> None:
    path = tmp_path / "pythons.toml"
    path.write_text('[python.app]\nversion = "3.13"\n', encoding="utf-8")
    code = (
        "import sys\nfrom pathlib import Path\nfrom pylock.config import digests_of_file\n"
        f"(digest,) = digests_of_file(Path({str(path)!r}))\n"
        "assert digest and digest.startswith('sha256:'), digest\n"
        "assert 'cattrs' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the digest ------------------------------------------------------------------------------


def digest(text: str) -> str:
    config = loads_config(text)
    assert config.digest == config_digest(tomllib.loads(text))
    return config.digest


def test_digest_ignores_spelling_and_order() -> None:
    base = digest('[python.a]\nversion = "3.13"\n[python.b]\nversion = ">=3.10.12,<3.11"\n')
    assert base == digest(
        '[python.b]\nversion = "<3.11, >=3.10.12"\nplatforms = ["host"]\n'
        '[python.a]\nversion = "==3.13.*"\nimplementation = "cpython"\nvariant = "default"\n'
        'flavor = "install_only_stripped"\nprereleases = false\ndefault = false\n'
    )
    assert base == digest(
        '[defaults]\nplatforms = ["host"]\n[python.a]\nversion = "3.13"\n'
        '[python.b]\nversion = ">=3.10.12,<3.11"\n'
    )


def test_digest_sorts_platforms_and_merges_defaults() -> None:
    one = digest(
        '[python.a]\nversion = "3.13"\nplatforms = ["macos-aarch64", "linux-x86_64-gnu"]\n'
    )
    two = digest(
        '[defaults]\nplatforms = ["linux-x86_64-gnu", "macos-aarch64"]\n'
        '[python.a]\nversion = "3.13"\n'
    )
    assert one == two


@pytest.mark.parametrize(
    "change",
    [
        'version = "3.12"',
        'version = "3.13.9"',
        'implementation = "pypy"',
        'variant = "freethreaded"',
        'flavor = "full"',
        'build = "20251014"',
        "prereleases = true",
        'platforms = ["linux-x86_64-gnu"]',
        "default = true",
    ],
)
def test_digest_changes_with_every_key(change: str) -> None:
    base = digest('[python.a]\nversion = "3.13"\n')
    key = change.split(" ")[0]
    lines = ['version = "3.13"'] if key != "version" else []
    assert digest("[python.a]\n" + "\n".join([*lines, change]) + "\n") != base


def test_digest_changes_with_name_and_url() -> None:
    base = digest('[python.a]\nversion = "3.13"\n')
    assert digest('[python.b]\nversion = "3.13"\n') != base
    url = '[python.a]\nurl = "https://e.example/a.tar.gz"\n'
    sha = 'sha256 = "' + "0" * 64 + '"\n'
    assert digest(url) != digest(url + sha)


def test_digest_is_stable_across_releases() -> None:
    # The digest is recorded in lock files: changing it makes every lock look stale.
    assert digest('[python.app]\nversion = "3.13"\n') == (
        "sha256:565d6c0c6f78c85e5dd49c7e966bcd8091c6467c41fd6c2ebca8791f2c87c4fc"
    )


def test_digests_of_file(tmp_path: Path) -> None:
    path = tmp_path / "pythons.toml"
    assert digests_of_file(path) == ()
    path.write_text('[python.app]\nversion = "3.13"\n', encoding="utf-8")
    assert digests_of_file(path) == load_config(path).digests
    path.write_text("[python.app\n", encoding="utf-8")
    assert digests_of_file(path) == ()
    path.write_text('[python.app]\nversion = "3.x"\n', encoding="utf-8")
    assert digests_of_file(path) == ()
    path.write_text("python = 1\n", encoding="utf-8")
    assert digests_of_file(path) == ()
    assert digests_of_file(tmp_path) == ()


def test_an_invalid_document_never_digests_like_a_valid_one() -> None:
    valid = config_digest({"python": {"a": {"version": "3.13", "prereleases": True}}})
    assert config_digest({"python": {"a": {"version": "3.13", "prereleases": "true"}}}) != valid
    typo = {"python": {"a": {"version": "3.13", "prereleases": True, "verison": "3.12"}}}
    assert config_digest(typo) != valid


# -- property: any TOML document gives a Config or a ConfigError -----------------------------

_KNOWN_STRINGS = [
    "3.13",
    "3",
    "3.12.11",
    ">=3.10,<3.12",
    "==3.13.*",
    "3.x",
    "",
    "host",
    "cpython",
    "pypy",
    "graalpy",
    "freethreaded",
    "debug",
    "freethreaded+debug",
    "full",
    "install_only",
    "install_only_stripped",
    "20251014",
    "https://e.example/a.tar.gz",
    "file:///tmp/x.zip",
    "http://[::1",
    "ab" * 32,
    "٣.١٣",
    *PLATFORM_KEYS[:6],
]
_KEY_NAMES = [*KEYS, "python", "defaults", "app", "App", "con", "x.", "pythons", "verison"]

scalars = st.one_of(
    st.sampled_from(_KNOWN_STRINGS),
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.datetimes(max_value=datetime.datetime(9999, 1, 1)),
    st.dates(),
    st.times(),
)
keys = st.one_of(st.sampled_from(_KEY_NAMES), st.text(max_size=8))
_names = st.one_of(st.sampled_from(["app", "App", "pypy", "x.", "con"]), st.text(max_size=6))


def _values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    )


values = st.recursive(scalars, _values, max_leaves=12)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a plausible value for a key, sometimes anything at all."""
    return st.one_of(good, good, good, values)


_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "implementation": st.sampled_from(["cpython", "cpython", "pypy", "graalpy", "jython"]),
    "version": st.sampled_from(["3.13", "3", "3.12.11", ">=3.10,<3.12", "3.x", "3.15.0a7"]),
    "variant": st.sampled_from(["default", "freethreaded", "debug", "freethreaded+debug", "t"]),
    "flavor": st.sampled_from(["install_only_stripped", "install_only", "full", "small"]),
    "build": st.sampled_from(["20251014", "7.3.17", ""]),
    "prereleases": st.booleans(),
    "platforms": st.lists(st.sampled_from(["host", *PLATFORM_KEYS[:4], "mac"]), max_size=3),
    "url": st.sampled_from(["https://e.example/a.tar.gz", "file:///a.zip", "ftp://x/a.zip"]),
    "sha256": st.sampled_from(["ab" * 32, "AB" * 32, "sha256:" + "ab" * 32]),
    "default": st.booleans(),
}
plausible_entries = st.fixed_dictionaries(
    {}, optional={key: _mostly(strategy) for key, strategy in _PLAUSIBLE.items()}
)
# Valid more often than not, so that documents also get through to a Config.
likely_entries = st.fixed_dictionaries(
    {"version": _PLAUSIBLE["version"]},
    optional={
        key: _PLAUSIBLE[key]
        for key in ("implementation", "variant", "build", "prereleases", "platforms")
    },
)
entries = st.one_of(
    likely_entries,
    plausible_entries,
    st.dictionaries(keys, values, max_size=4),
)
# Mostly well-shaped documents (so the deep rules get exercised), some arbitrary ones.
documents = st.one_of(
    st.fixed_dictionaries(
        {"python": st.dictionaries(_names, entries, max_size=4)},
        optional={"defaults": entries},
    ),
    st.fixed_dictionaries(
        {"python": st.dictionaries(st.sampled_from(["a", "b.c", "D"]), likely_entries)},
        optional={"defaults": plausible_entries},
    ),
    st.dictionaries(keys, values, max_size=4),
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_toml_document_gives_config_or_config_error(document: dict[str, Any]) -> None:
    text = tomli_w.dumps(document)
    try:
        config = loads_config(text)
    except ConfigError as exc:
        assert exc.problems
        for line in str(exc).splitlines():
            assert line.startswith("pythons.toml: ")
        return
    assert isinstance(config, Config)
    assert config.pythons
    assert config.digest == config_digest(tomllib.loads(text))
    assert sum(p.default for p in config.pythons) <= 1
    for python in config.pythons:
        assert python.platforms and len(set(python.platforms)) == len(python.platforms)
        if python.url is None:
            assert python.version is not None and python.sha256 is None
        else:
            assert python.build is None and len(python.platforms) == 1
        if python.implementation is not Implementation.CPYTHON:
            assert python.variant is Variant.DEFAULT


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_config_or_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        loads_config(text)


@settings(max_examples=120, deadline=None)
@given(documents)
def test_config_digest_never_crashes(document: dict[str, Any]) -> None:
    try:
        result = config_digest(document)
    except ValueError:
        return
    assert result.startswith("sha256:")


def test_a_bad_default_does_not_hide_the_problems_of_entries() -> None:
    text = """
[defaults]
platforms = ["linux-x86_64-gnu", "macos-aarch46"]
implementation = "pypi"

[python.app]
version = "3.13"
variant = "freethreaded"

[python.corp]
url = "https://artifacts.example/cpython-3.12.9-corp.tar.gz"
build = "20251007"

[python.none]
prereleases = true
"""
    assert error_lines(text) == [
        "pythons.toml: defaults.platforms[1]: unknown platform 'macos-aarch46' "
        "(did you mean 'macos-aarch64' or 'windows-aarch64'?)",
        "pythons.toml: defaults.implementation: unknown value 'pypi' (did you mean 'pypy'?)",
        # Whether app is cpython (so may be free-threaded), and which platforms corp
        # inherits, is unknown: those rules are skipped rather than guessed.
        "pythons.toml: python.corp.build: not allowed together with url "
        "(a direct URL is one exact build already)",
        "pythons.toml: python.none.version: missing "
        '(expected e.g. "3.13"; only an entry with a url may leave it out)',
    ]


@pytest.mark.parametrize(
    "alias",
    [
        '"linux-amd64"',
        '"x86_64-unknown-linux-gnu"',
        '"linux-x86_64-gnu "',
        '"LINUX-X86_64-GNU"',
    ],
)
def test_digest_normalises_platform_aliases(alias: str) -> None:
    # Field report #9: an alias made `lock --check` call the lock stale.
    canonical = digest('[python.a]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu", "host"]\n')
    assert canonical == digest(f'[python.a]\nversion = "3.13"\nplatforms = ["host", {alias}]\n')
    assert canonical == digest(
        f'[defaults]\nplatforms = [{alias}, "host"]\n[python.a]\nversion = "3.13"\n'
    )


@pytest.mark.parametrize("spelling", ['"HOST"', '" host"', '"Host "'])
def test_host_is_spelled_as_loosely_as_platform_keys(spelling: str) -> None:
    """UX attack: "Linux-X86_64-GNU" and " linux-x86_64-gnu " were accepted, "HOST" and
    " host" were unknown platforms."""
    config = loads_config(f'[python.a]\nversion = "3.13"\nplatforms = [{spelling}]\n')
    assert config.pythons[0].platforms == ("host",)
    assert digest(f'[python.a]\nversion = "3.13"\nplatforms = [{spelling}]\n') == digest(
        '[python.a]\nversion = "3.13"\nplatforms = ["host"]\n'
    )


def test_digest_of_canonical_platform_keys_is_what_older_pylocks_wrote() -> None:
    # Locks already committed were made from canonical spellings: normalising aliases
    # must leave their digest alone, or every one of them would turn stale. These values
    # were computed by pylock 0.2.0, before aliases were normalised.
    assert digest(
        '[python.a]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu", "macos-aarch64", "host"]\n'
    ) == ("sha256:d79de9277f1c92060edf85a8aabe2f5613e6885decc6104dcb643b17b360d06a")
    assert digest(
        '[defaults]\nplatforms = ["windows-x86_64", "linux-aarch64-musl"]\n'
        '[python.a]\nversion = "3.12"\n'
        '[python.b]\nversion = "3.13"\nplatforms = ["emscripten-wasm32"]\n'
    ) == ("sha256:eeba770c0df2a1ec6db115e2dc7de1143004fbe8bf8639dd3236ecab6219f06e")
    # And so for every canonical key: each one normalises to itself.
    assert [Platform.parse(key).key for key in PLATFORM_KEYS] == list(PLATFORM_KEYS)


def test_a_merge_conflict_in_pythons_toml_is_named_as_one() -> None:
    """Markers a merge left got "invalid TOML: Invalid statement" (field test 6); the
    lock's reader already named them."""
    text = (
        '[python.app]\n<<<<<<< HEAD\nversion = "3.13"\n||||||| base\nversion = "3.12"\n'
        '=======\nversion = "3.14"\n>>>>>>> feature\nplatforms = ["linux-x86_64-gnu"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        loads_config(text)
    assert str(caught.value) == ("pythons.toml: unresolved git merge conflict (line 2: '<<<<<<<')")
    assert caught.value.hint == "resolve the conflict in pythons.toml, then run `pylock lock`"
    # A plain typo is still a TOML error.
    with pytest.raises(ConfigError, match="invalid TOML"):
        loads_config('[python.app]\nversion = "3.13\n')
