"""The JSON Schemas in schema/ agree with pylock's own readers, and accept the examples."""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from pylock.config import KEYS, loads_config
from pylock.errors import ConfigError, LockFileError
from pylock.lockfile import Artifact, LockedPython, dumps, loads, make_lock
from pylock.platforms import PLATFORM_KEYS
from pylock.versions import Flavor, Implementation, Variant
from tests.projects import DESIGN_EXAMPLE

ROOT = Path(__file__).resolve().parent.parent
CONFIG_SCHEMA = ROOT / "schema" / "pythons.schema.json"
LOCK_SCHEMA = ROOT / "schema" / "pythons-lock.schema.json"


@functools.cache
def validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(path: Path, text: str) -> list[str]:
    return [e.message for e in validator(path).iter_errors(tomllib.loads(text))]


SHA = "0123456789abcdef" * 4

#: The DESIGN.md example with the keys it leaves out (``default``, ``prereleases``) added.
SAMPLE_CONFIG = DESIGN_EXAMPLE.replace(
    '[python.app]\nversion = "3.13"\n', '[python.app]\nversion = "3.13"\ndefault = true\n'
).replace('build = "20251007"\n', 'build = "20251007"\nprereleases = false\n')


def sample_lock() -> str:
    return dumps(
        make_lock(
            [
                LockedPython(
                    name="app",
                    implementation=Implementation.CPYTHON,
                    version="3.13.9",
                    build="20251014",
                    flavor=Flavor.INSTALL_ONLY_STRIPPED,
                    default=True,
                    artifacts=(
                        Artifact(
                            platform="linux-x86_64-gnu",
                            url="https://github.com/astral-sh/python-build-standalone/releases/"
                            "download/20251014/cpython-3.13.9%2B20251014-x86_64-unknown-linux-"
                            "gnu-install_only_stripped.tar.gz",
                            sha256=SHA,
                            size=33810342,
                        ),
                    ),
                ),
                LockedPython(
                    name="pypy",
                    implementation=Implementation.PYPY,
                    version="3.11.13",
                    build="7.3.20",
                    artifacts=(
                        Artifact(
                            platform="macos-aarch64",
                            url="https://downloads.python.org/pypy/pypy3.11-v7.3.20-macos_arm64.tar.bz2",
                            sha256=SHA,
                        ),
                    ),
                ),
            ],
            config_digest="sha256:" + SHA,
        )
    )


# -- the schemas are well-formed and in step with the code -----------------------------------


def test_schemas_are_valid_draft_2020_12() -> None:
    for path in (CONFIG_SCHEMA, LOCK_SCHEMA):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_config_schema_matches_the_loader_vocabulary() -> None:
    schema = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
    table = schema["$defs"]["table"]["properties"]
    assert tuple(table) == KEYS
    assert table["implementation"]["enum"] == [str(m) for m in Implementation]
    assert table["variant"]["enum"] == [str(m) for m in Variant]
    assert table["flavor"]["enum"] == [str(m) for m in Flavor]
    assert schema["$defs"]["platform"]["enum"] == ["host", *PLATFORM_KEYS]
    assert set(schema["properties"]["defaults"]["properties"]) == set(KEYS) - {
        "url",
        "sha256",
        "default",
    }


def test_lock_schema_matches_the_lock_vocabulary() -> None:
    schema = json.loads(LOCK_SCHEMA.read_text(encoding="utf-8"))
    python = schema["$defs"]["python"]["properties"]
    assert python["implementation"]["enum"] == [str(m) for m in Implementation]
    assert python["variant"]["enum"] == [str(m) for m in Variant]
    assert python["flavor"]["enum"] == [str(m) for m in Flavor]
    assert schema["$defs"]["artifact"]["properties"]["platform"]["enum"] == list(PLATFORM_KEYS)
    written = tomllib.loads(sample_lock())
    assert set(written) <= set(schema["properties"])
    for entry in written["python"]:
        assert set(entry) <= set(python)


# -- valid documents: inline samples and every example in the repository -----------------------


def test_inline_samples_validate() -> None:
    assert "default = true" in SAMPLE_CONFIG and "prereleases = false" in SAMPLE_CONFIG
    assert schema_errors(CONFIG_SCHEMA, SAMPLE_CONFIG) == []
    loads_config(SAMPLE_CONFIG)
    lock_text = sample_lock()
    assert schema_errors(LOCK_SCHEMA, lock_text) == []
    loads(lock_text)


EXAMPLE_CONFIGS = sorted((ROOT / "examples").glob("*/pythons.toml"))
EXAMPLE_LOCKS = sorted((ROOT / "examples").glob("*/pythons.lock"))


def test_example_files_validate() -> None:
    # One loop rather than parametrize: with no examples yet, nothing is reported as skipped,
    # and the inline samples above still run.
    for path in EXAMPLE_CONFIGS:
        text = path.read_text(encoding="utf-8")
        assert schema_errors(CONFIG_SCHEMA, text) == [], path
        loads_config(text, filename=str(path))
    for path in EXAMPLE_LOCKS:
        text = path.read_text(encoding="utf-8")
        assert schema_errors(LOCK_SCHEMA, text) == [], path
        loads(text, filename=str(path))


def test_every_example_file_is_checked() -> None:
    # A new example directory gets validated without anyone adding it to a list.
    found = {p.parent.name for p in EXAMPLE_CONFIGS} | {p.parent.name for p in EXAMPLE_LOCKS}
    expected = {
        p.parent.name
        for p in (ROOT / "examples").glob("*/*")
        if p.name in ("pythons.toml", "pythons.lock")
    }
    assert found == expected


# -- invalid documents: rejected by the schema and by the loader alike ---------------------------

INVALID_CONFIGS = {
    "unknown-key": '[python.app]\nverison = "3.13"\n',
    "string-bool": '[python.app]\nversion = "3.13"\nprereleases = "false"\n',
    "int-build": '[python.app]\nversion = "3.13"\nbuild = 20251007\n',
    "spaced-build": '[python.app]\nversion = "3.13"\nbuild = "2025 10 07"\n',
    "path-build": '[python.app]\nversion = "3.13"\nbuild = "../x"\n',
    "bad-specifier": '[python.app]\nversion = "3.x"\n',
    "unknown-platform": '[python.app]\nversion = "3.13"\nplatforms = ["macos-m1"]\n',
    "duplicate-platform": '[python.app]\nversion = "3.13"\nplatforms = ["host", "host"]\n',
    "no-platforms": '[python.app]\nversion = "3.13"\nplatforms = []\n',
    "bad-name": '[python."my app"]\nversion = "3.13"\n',
    "url-and-build": (
        '[python.x]\nurl = "https://e.example/a.tar.gz"\nbuild = "1"\nplatforms = ["host"]\n'
    ),
    "url-and-prereleases": (
        '[python.x]\nurl = "https://e.example/a.tar.gz"\nprereleases = true\nplatforms = ["host"]\n'
    ),
    "bad-sha256": '[python.x]\nurl = "https://e.example/a.tar.gz"\nsha256 = "abc"\n',
    "sha256-without-url": f'[python.x]\nversion = "3.13"\nsha256 = "{SHA}"\n',
    "ftp-url": '[python.x]\nurl = "ftp://e.example/a.tar.gz"\n',
    "pypy-flavor": '[python.p]\nimplementation = "pypy"\nversion = "3.11"\nflavor = "full"\n',
    "url-in-defaults": (
        '[defaults]\nurl = "https://e.example/a.tar.gz"\n[python.a]\nversion = "3"\n'
    ),
    "empty": "",
    "no-interpreters": "[python]\n",
    "lock-format": '[[python]]\nname = "app"\n',
    "top-level-typo": '[pythons.app]\nversion = "3.13"\n',
}


@pytest.mark.parametrize("text", INVALID_CONFIGS.values(), ids=INVALID_CONFIGS.keys())
def test_invalid_config_is_rejected_by_schema_and_loader(text: str) -> None:
    assert schema_errors(CONFIG_SCHEMA, text)
    with pytest.raises(ConfigError):
        loads_config(text)


def _lock_variants() -> dict[str, str]:
    good = sample_lock()
    return {
        "bad-digest": good.replace(f'config-digest = "sha256:{SHA}"', 'config-digest = "x"'),
        "future-version": good.replace("lock-version = 1", "lock-version = 2"),
        "unknown-platform": good.replace('platform = "macos-aarch64"', 'platform = "macos-m1"'),
        "bad-sha256": good.replace(f'sha256 = "{SHA}"', 'sha256 = "ABC"', 1),
        "negative-size": good.replace("size = 33810342", "size = -1"),
        "unknown-key": good.replace('name = "app"', 'name = "app"\nextra = 1'),
        "missing-version": good.replace('version = "3.13.9"\n', ""),
    }


@pytest.mark.parametrize("name", list(_lock_variants()))
def test_invalid_lock_is_rejected_by_schema_and_reader(name: str) -> None:
    text = _lock_variants()[name]
    assert text != sample_lock()
    assert schema_errors(LOCK_SCHEMA, text)
    with pytest.raises(LockFileError):
        loads(text)


def _config_verdicts(table: dict[str, Any], name: str = "a") -> tuple[bool, list[str]]:
    """Whether the loader takes ``[python.NAME]`` with ``table``, and the schema's errors."""
    text = tomli_w.dumps({"python": {name: table}})
    try:
        loads_config(text)
    except ConfigError:
        return False, schema_errors(CONFIG_SCHEMA, text)
    return True, schema_errors(CONFIG_SCHEMA, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.,<>=!~* \t\x0b\x0c\x1c\x85\xa0\u3000vVabrc+-x", max_size=24))
def test_the_schema_takes_every_version_request_the_loader_takes(version: str) -> None:
    # `>=3.12,` is taken (packaging drops empty clauses), and the schema refused it.
    taken, errors = _config_verdicts({"version": version})
    if taken:
        assert errors == [], version


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aAcCoOnN019._-", min_size=1, max_size=12))
def test_the_schema_takes_every_name_the_loader_takes(name: str) -> None:
    taken, errors = _config_verdicts({"version": "3.13"}, name)
    if taken:
        assert errors == [], name


@pytest.mark.parametrize(
    ("table", "taken"),
    [
        ({"version": ">=3.12,"}, True),
        ({"version": ">=3.12,,<3.14"}, True),
        ({"version": ">=3.12 <3.14"}, False),
        ({"version": ">=banana"}, False),
        ({"version": "3.1234567890"}, False),
        ({"version": ">=3.12\x0b"}, True),  # str.strip() takes it, and \x1c too
        ({"version": "\x0c3.13"}, True),
        ({"version": "\x1c>=3.12"}, True),
        ({"version": "\xa03.13"}, False),  # a bare version takes ASCII white space only
        ({"version": "\x1c3.13"}, False),
        ({"url": "HTTPS://e.example/a.tar.gz"}, True),
        ({"url": "https://e.example/A.TAR.GZ"}, True),
        ({"url": "https://e.example/a%2Etar%2Egz"}, True),
        ({"url": "file:/srv/a.tar.gz"}, True),
    ],
)
def test_the_schema_and_the_loader_agree_where_they_used_to_differ(
    table: dict[str, Any], taken: bool
) -> None:
    by_loader, errors = _config_verdicts({"platforms": ["linux-x86_64-gnu"], **table})
    assert by_loader is taken
    assert (errors == []) is taken, errors


@pytest.mark.parametrize("name", ["con", "Aux.1", "app.", "a" * 129])
def test_the_schemas_refuse_names_the_readers_refuse(name: str) -> None:
    assert _config_verdicts({"version": "3.13"}, name)[0] is False
    assert _config_verdicts({"version": "3.13"}, name)[1] != []
    text = sample_lock().replace('name = "app"', f'name = "{name}"', 1)
    with pytest.raises(LockFileError):
        loads(text)
    assert schema_errors(LOCK_SCHEMA, text) != []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version = "3.13.9"', 'version = "banana"'),
        ('version = "3.13.9"', 'version = "3.13.9\\u00a0"'),  # packaging strips it
        ("size = ", "size = 1152921504606846976 # "),
    ],
)
def test_the_lock_schema_refuses_what_the_reader_refuses(old: str, new: str) -> None:
    text = sample_lock().replace(old, new, 1)
    assert text != sample_lock()
    with pytest.raises(LockFileError):
        loads(text)
    assert schema_errors(LOCK_SCHEMA, text) != []


def test_schema_accepts_what_the_loader_accepts() -> None:
    # The schema must never be stricter than pylock: an editor would flag a valid file.
    documents: list[dict[str, Any]] = [
        {"python": {"a": {"version": " >= 3.11 "}}},
        {"python": {"a.b_c-d": {"version": "==3.13.*", "variant": "freethreaded+debug"}}},
        {"python": {"x": {"url": "file:///srv/cpython.tar.zst", "platforms": ["host"]}}},
        {"python": {"x": {"url": "http://mirror.local/cpython.tgz", "version": "3.12"}}},
        {"python": {"x": {"url": "https://x.example/a-3.12.1.tar.gz?x=1", "version": "3.12"}}},
        {"python": {"g": {"implementation": "graalpy", "version": "3.11", "build": "24.2.1"}}},
        {"defaults": {"platforms": ["windows-x86_64"]}, "python": {"p": {"version": "3.15.0a7"}}},
    ]
    for document in documents:
        text = tomli_w.dumps(document)
        loads_config(text)
        assert schema_errors(CONFIG_SCHEMA, text) == []
