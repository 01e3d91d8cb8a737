"""Hostile TOML and JSON: deep nesting and huge dotted keys end at once, with a clean error.

Issue 11 §4: a lock or ``pythons.toml`` nested thousands deep raised ``RecursionError``,
and a 50,000-part dotted key took 70-110 s to reject. Every TOML and JSON document pylock
reads now goes through :mod:`pylock.bounded`. The timeouts below are generous on a loaded
machine and catastrophic for the old behaviour.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylock.bounded import MAX_DEPTH, JsonTooDeepError, TomlTooDeepError, json_loads, toml_loads
from pylock.cli import main

DIGEST = "sha256:" + "0" * 64
LOCK_HEAD = f'lock-version = 1\ncreated-by = "pylock 0.1.0"\nconfig-digest = "{DIGEST}"\n'
HUGE = 50_000

#: Documents that used to hang or crash the TOML parser, by what they do.
HOSTILE_TOML = {
    "deep arrays": "x = " + "[" * HUGE + "]" * HUGE + "\n",
    "deep inline tables": "x = " + "{a = " * HUGE + "1" + "}" * HUGE + "\n",
    "unclosed arrays": "x = " + "[" * HUGE + "\n",
    "mixed": "x = " + "[{a = " * (HUGE // 2) + "\n",
    "dotted key": "a" + ".a" * HUGE + " = 1\n",
    "quoted dotted key": '"a".' * HUGE + '"b" = 1\n',
    "table header": "[a" + ".a" * HUGE + "]\nx = 1\n",
    "array-of-tables header": "[[a" + " . a" * HUGE + "]]\n",
    "inline-table key": "x = {" + "a." * HUGE + "b = 1}\n",
}


def nested_array(depth: int) -> str:
    return "x = " + "[" * depth + "1" + "]" * depth + "\n"


def nested_table(depth: int) -> str:
    return "x = " + "{a = " * depth + "1" + "}" * depth + "\n"


def dotted(parts: int) -> str:
    return ".".join(f"k{i}" for i in range(parts)) + " = 1\n"


# -- the bounded parsers -------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", sorted(HOSTILE_TOML))
def test_hostile_toml_is_refused_as_a_decode_error(case: str) -> None:
    with pytest.raises(TomlTooDeepError) as caught:
        toml_loads(HOSTILE_TOML[case])
    # The parser's own error type: every caller already turns it into a clean message.
    assert isinstance(caught.value, tomllib.TOMLDecodeError)
    assert caught.value.limit == MAX_DEPTH
    assert caught.value.lineno == 1
    assert f"more than {MAX_DEPTH}" in str(caught.value)


def test_nesting_up_to_the_limit_parses() -> None:
    assert toml_loads(nested_array(MAX_DEPTH - 1))["x"] is not None
    table = toml_loads(nested_table(MAX_DEPTH - 1))["x"]
    for _ in range(MAX_DEPTH - 2):
        table = table["a"]
    assert table == {"a": 1}
    with pytest.raises(TomlTooDeepError):
        toml_loads(nested_array(MAX_DEPTH + 1))
    with pytest.raises(TomlTooDeepError):
        toml_loads(nested_table(MAX_DEPTH + 1))


def test_dotted_keys_up_to_the_limit_parse() -> None:
    document = toml_loads(dotted(MAX_DEPTH))
    for i in range(MAX_DEPTH - 1):
        document = document[f"k{i}"]
    assert document == {f"k{MAX_DEPTH - 1}": 1}
    with pytest.raises(TomlTooDeepError, match="dotted key"):
        toml_loads(dotted(MAX_DEPTH + 1))
    with pytest.raises(TomlTooDeepError, match="dotted key"):
        toml_loads("[" + dotted(MAX_DEPTH + 1).split(" ")[0] + "]\n")


def test_error_names_the_line() -> None:
    text = '# a comment\n[python.app]\nversion = "3.13"\n' + dotted(200)
    with pytest.raises(TomlTooDeepError) as caught:
        toml_loads(text)
    assert caught.value.lineno == 4
    assert "(at line 4, column 1)" in str(caught.value)
    text = 'a = """\n[[[[\n"""\nb = ' + "[" * 100 + "]" * 100
    with pytest.raises(TomlTooDeepError) as caught:
        toml_loads(text)
    assert caught.value.lineno == 4


@pytest.mark.parametrize(
    "text",
    [
        # Brackets and dots inside strings and comments are not nesting.
        'x = "' + "[{" * 500 + '"\n',
        "x = '" + "[." * 500 + "'\n",
        'x = """\n' + "[[[[.....\n" * 200 + '"""\n',
        "x = '''\n" + "{{{{.....\n" * 200 + "'''\n",
        'x = """a""""\ny = "' + "[" * 200 + '"\n',
        "x = '''a''''\ny = '" + "[" * 200 + "'\n",
        'x = "esc\\"' + "[" * 200 + '"\n',
        "# " + "[." * 500 + "\nx = 1\n",
        "x = [" + ", ".join(["1.5"] * 500) + "]\n",
        "x = 1979-05-27T07:32:00.999\ny = [" + "2.5, " * 300 + "]\n",
        "[" + "a." * (MAX_DEPTH - 1) + "b]\n" + "[[c]]\n" * 500,
    ],
)
def test_strings_comments_and_floats_do_not_count(text: str) -> None:
    assert toml_loads(text) == tomllib.loads(text)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("loads", "text"),
    [
        # Unterminated strings full of escaped quotes: a scanner that restarted at every
        # quote took minutes over these.
        (toml_loads, "x = " + "[" * 70 + '"' + '\\"' * HUGE),
        (toml_loads, "x = '" + "\\'" * HUGE + "\n" + "[" * 70),
        (toml_loads, 'x = """' + '\\"""' * HUGE + "\n" + "[" * 70),
        (toml_loads, "x = '''" + "''" * HUGE),
        (toml_loads, "#" * HUGE + "\n" + "a." * HUGE),
        (json_loads, "[" * 70 + '"' + '\\"' * HUGE),
        (json_loads, '"\\' * HUGE + "[" * 100),
    ],
)
def test_unterminated_strings_end_fast(loads: Callable[[str], object], text: str) -> None:
    with pytest.raises(ValueError):  # the parsers' decode errors, refused or not
        loads(text)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 100_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        b"[" * 100_000,
    ],
)
def test_deep_json_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(JsonTooDeepError) as caught:
        json_loads(text)
    assert isinstance(caught.value, ValueError)
    assert caught.value.limit == MAX_DEPTH
    assert caught.value.pos == MAX_DEPTH if text[:1] in ("[", b"[") else caught.value.pos > 0


def test_json_strings_do_not_count_and_bytes_decode_like_json() -> None:
    text = json.dumps({"a": "[" * 500 + '\\"{' * 300, "b": [[[1]]]})
    assert json_loads(text) == json.loads(text)
    assert json_loads(text.encode("utf-16")) == json.loads(text)
    assert json_loads(b"\xef\xbb\xbf" + text.encode()) == json.loads(text)
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert json_loads(deep) == json.loads(deep)
    with pytest.raises(JsonTooDeepError):
        json_loads("[" + deep + "]")


def _nested(depth: int) -> object:
    value: object = 1
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


@given(st.integers(min_value=0, max_value=3 * MAX_DEPTH))
def test_json_depth_is_exact(depth: int) -> None:
    text = json.dumps(_nested(depth))
    if depth <= MAX_DEPTH:
        assert json_loads(text) == json.loads(text)
    else:
        with pytest.raises(JsonTooDeepError):
            json_loads(text)


TOML_ALPHABET = st.sampled_from([*"[]{}.,=\"'#\n ax1", '"""', "'''", "\\"])


@settings(max_examples=300)
@given(st.lists(TOML_ALPHABET, max_size=400).map("".join), st.integers(0, 3))
def test_any_text_gives_a_document_or_a_decode_error(body: str, repeat: int) -> None:
    """Never RecursionError or anything but TOMLDecodeError, and never a different result."""
    text = body * (1 + repeat * 200)
    try:
        document = toml_loads(text)
    except tomllib.TOMLDecodeError:
        return
    assert document == tomllib.loads(text)


# -- every reader that parses TOML ---------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["deep arrays", "dotted key", "table header"])
def test_hostile_lock_is_one_clean_error_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    lock = tmp_path / "pythons.lock"
    lock.write_text(LOCK_HEAD + HOSTILE_TOML[case], encoding="utf-8")
    good = tmp_path / "good.lock"
    good.write_text(LOCK_HEAD, encoding="utf-8")
    project = ["--project", str(tmp_path)]
    for argv in (
        ["sync", "--into", str(tmp_path / "into")],
        ["fetch"],
        ["list"],
        ["diff", str(good), str(lock)],
        ["diff", str(lock), str(good)],
        ["mirror", str(tmp_path / "mirror")],
    ):
        assert main([*project, *argv]) == 1, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        first = err.splitlines()[0]
        assert first.startswith("pylock: error: "), err
        assert "pythons.lock: invalid TOML: " in first
        assert f"more than {MAX_DEPTH}" in first
        assert "(at line 4, column" in first


@pytest.mark.parametrize("value", ["9" * 5000, "1_" * 4400 + "1", "-" + "9" * 5000])
def test_an_integer_int_cannot_convert_is_a_decode_error_naming_its_place(value: str) -> None:
    # tomllib lets int()'s plain ValueError (more than 4,300 digits) through.
    text = 'a = "9999"  # 9999\nb = [1,\n  ' + value + "]\n"
    with pytest.raises(tomllib.TOMLDecodeError, match=r"more than 4300 digits") as caught:
        toml_loads(text)
    assert "(line 3, column 3)" in str(caught.value).replace("at line", "line")


@pytest.mark.timeout(30)
def test_a_huge_integer_is_one_clean_error_for_the_lock_and_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pythons.toml").write_text(
        '[python.app]\nversion = "3.13"\nx = ' + "9" * 5000 + "\n", encoding="utf-8"
    )
    lock = tmp_path / "pythons.lock"
    lock.write_text(LOCK_HEAD + "extra = " + "9" * 5000 + "\n", encoding="utf-8")
    for argv, name in (
        (["lock", "--check"], "pythons.toml"),
        (["list"], "pythons.lock"),
        (["sync", "--into", str(tmp_path / "into")], "pythons.lock"),
    ):
        assert main(["--project", str(tmp_path), *argv]) == 1, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        first = err.splitlines()[0]
        assert first.startswith("pylock: error: "), err
        assert f"{name}: invalid TOML: an integer of more than 4300 digits (at line" in first


LONG = "x" * 200_000
ARTIFACT = (
    '[[python.artifacts]]\nplatform = "linux-x86_64-gnu"\n'
    'url = "https://example.com/a.tar.gz"\nsha256 = "' + "0" * 64 + '"\n'
)
PYTHON = (
    '[[python]]\nname = "app"\nimplementation = "cpython"\nversion = "3.13.1"\n'
    'build = "20990101"\nvariant = "default"\nflavor = "install_only"\n'
)
#: Locks and configs each carrying one 200,000-character value (attack: echoed whole, twice
#: for a name) or a size that no arithmetic of the diff can take.
LONG_VALUES = {
    "lock name": ("lock", PYTHON.replace('"app"', f'"{LONG}"') + ARTIFACT),
    "lock version": ("lock", PYTHON.replace('"3.13.1"', f'"{LONG}"') + ARTIFACT),
    "lock url": ("lock", PYTHON + ARTIFACT.replace("a.tar.gz", LONG + ".tar.gz")),
    "lock sha256": ("lock", PYTHON + ARTIFACT.replace("0" * 64, LONG)),
    "lock platform": ("lock", PYTHON + ARTIFACT.replace("linux-x86_64-gnu", LONG)),
    "lock size": ("lock", PYTHON + ARTIFACT + "size = 1" + "0" * 400 + "\n"),
    "lock unknown key": ("lock", PYTHON + ARTIFACT + LONG + " = 1\n"),
    "config name": ("config", f'[python.{LONG}]\nversion = "3.13"\n'),
    "config key": ("config", f'[python.app]\nversion = "3.13"\n{LONG} = 1\n'),
    "config variant": ("config", f'[python.app]\nversion = "3.13"\nvariant = "{LONG}"\n'),
    "config platform": ("config", f'[python.app]\nversion = "3.13"\nplatforms = ["{LONG}"]\n'),
    "config version": ("config", f'[python.app]\nversion = "{LONG}"\n'),
    # Review: integers were printed whole, twice (the "put it in quotes" hint).
    "config integer version": ("config", "[python.app]\nversion = " + "9" * 4000 + "\n"),
    "config url": (
        "config",
        f'[python.app]\nurl = "https://e.com/{LONG}.tar.gz"\nsha256 = "{"0" * 64}"\n',
    ),
}


@pytest.mark.parametrize("case", sorted(LONG_VALUES))
def test_a_long_or_huge_value_is_shown_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    kind, body = LONG_VALUES[case]
    if kind == "lock":
        (tmp_path / "pythons.lock").write_text(LOCK_HEAD + body, encoding="utf-8")
        argv = ["list"]
    else:
        (tmp_path / "pythons.toml").write_text(body, encoding="utf-8")
        argv = ["lock", "--check"]
    assert main(["--project", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pylock: error: "), err[:300]
    assert "Traceback" not in err
    assert len(err) < 1500, err[:1500]
    assert "..." in err or "invalid size 1000" in err, err  # the value itself, cut


def test_a_url_is_quoted_far_enough_to_show_its_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: URLs were cut at 60 characters, before the file name a problem is in."""
    url = "https://artifacts.internal.example.com/python-builds/releases/2026/cpython 3.tar.gz"
    (tmp_path / "pythons.toml").write_text(
        f'[python.app]\nurl = "{url}"\nsha256 = "{"0" * 64}"\n', encoding="utf-8"
    )
    assert main(["--project", str(tmp_path), "lock", "--check"]) == 1
    assert f"invalid URL '{url}' (control, space or invisible characters" in capsys.readouterr().err


def test_diff_of_locks_with_sizes_past_the_bound_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.lock", tmp_path / "new.lock"
    old.write_text(LOCK_HEAD + PYTHON + ARTIFACT + "size = 0\n", encoding="utf-8")
    new.write_text(
        LOCK_HEAD + PYTHON + ARTIFACT.replace("0" * 64, "1" * 64) + "size = 1" + "0" * 400 + "\n",
        encoding="utf-8",
    )
    assert main(["diff", str(old), str(new)]) == 1
    err = capsys.readouterr().err
    assert "invalid size 1000" in err and "(expected a byte count)" in err
    assert len(err) < 500


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["deep inline tables", "quoted dotted key", "unclosed arrays"])
def test_hostile_pythons_toml_is_one_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    (tmp_path / "pythons.toml").write_text(
        '[python.app]\nversion = "3.13"\n' + HOSTILE_TOML[case], encoding="utf-8"
    )
    assert main(["--project", str(tmp_path), "lock"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith("pylock: error: "), err
    assert "pythons.toml: invalid TOML: " in first
    assert "(at line 3, column" in first


@pytest.mark.timeout(30)
def test_sync_beside_a_hostile_pythons_toml_still_installs_what_the_lock_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The staleness check only reads pythons.toml; a broken one means "changed".
    (tmp_path / "pythons.toml").write_text(HOSTILE_TOML["dotted key"], encoding="utf-8")
    (tmp_path / "pythons.lock").write_text(LOCK_HEAD, encoding="utf-8")
    assert main(["--project", str(tmp_path), "sync", "--into", str(tmp_path / "into")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "pythons.toml changed since pythons.lock was written" in err


@pytest.mark.timeout(30)
def test_init_ignores_a_hostile_pyproject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nrequires-python = ">=3.12"\n' + HOSTILE_TOML["deep arrays"], encoding="utf-8"
    )
    assert main(["--project", str(tmp_path), "init"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert tomllib.loads((tmp_path / "pythons.toml").read_text())["python"]


@pytest.mark.timeout(60)
def test_installed_command_rejects_a_huge_dotted_key_at_once(tmp_path: Path) -> None:
    """As a user runs it: the console entry point, a fresh process, the issue's 50,000 parts."""
    (tmp_path / "pythons.lock").write_text(LOCK_HEAD + HOSTILE_TOML["dotted key"])
    command = Path(sys.executable).with_name("pylock")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "pylock"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLOCK_")}
    done = subprocess.run(
        [*argv, "sync", "--into", str(tmp_path / "into")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "pylock: error: pythons.lock: invalid TOML: a dotted key or table name of more than "
        f"{MAX_DEPTH} parts (at line 4, column 1)",
        "pylock: hint: run `pylock lock`: it re-resolves from pythons.toml, keeping the locked "
        "builds that still fit",
    ]


# -- every reader that parses JSON ---------------------------------------------------------

DEEP_JSON = "[" * HUGE + "]" * HUGE


@pytest.mark.timeout(30)
def test_deep_install_record_is_not_a_pylock_install(tmp_path: Path) -> None:
    from pylock.sync.install import installed_names
    from pylock.sync.records import installed_state

    meta = tmp_path / "app" / ".pylock"
    meta.mkdir(parents=True)
    (meta / "install.json").write_text(DEEP_JSON)
    assert installed_state(tmp_path, "app") is None
    assert installed_names(tmp_path) == []


@pytest.mark.timeout(30)
def test_deep_metadata_cache_entry_is_a_miss(tmp_path: Path) -> None:
    from pylock.index.metadata import CachedDocument, MetadataStore

    store = MetadataStore(tmp_path)
    url = "https://api.github.com/repos/x/y/releases"
    store.save(CachedDocument(url=url, status=200, body=b"[]", checked_at=0.0))
    for meta in tmp_path.glob("*.json"):
        meta.write_text(DEEP_JSON)
    assert store.load(url) is None


@pytest.mark.timeout(30)
def test_deep_upstream_json_is_an_upstream_error() -> None:
    from pylock.errors import UpstreamError
    from pylock.index.metadata import parse_json

    parse = parse_json("https://api.github.com/repos/x/y/releases")
    with pytest.raises(UpstreamError, match=r"malformed JSON from https://api\.github\.com/"):
        parse(DEEP_JSON.encode())


@pytest.mark.timeout(30)
def test_deep_uv_downloads_json_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pylock.errors import UpstreamError
    from pylock.index.live import load_uv_downloads_json
    from pylock.net.fetch import FetchOptions
    from pylock.progress import Reporter

    path = tmp_path / "downloads.json"
    path.write_text('{"cpython-3.13.0-linux-x86_64-gnu": ' + DEEP_JSON + "}")
    with pytest.raises(UpstreamError, match="not valid JSON: nested more than"):
        load_uv_downloads_json(
            str(path), fetch_options=FetchOptions(offline=True), reporter=Reporter(verbosity=0)
        )


@pytest.mark.timeout(30)
def test_deep_snapshot_file_is_an_upstream_error() -> None:
    from pylock.errors import UpstreamError
    from pylock.index.snapshot import loads_snapshot

    with pytest.raises(UpstreamError, match="not a pylock index snapshot"):
        loads_snapshot(gzip.compress(DEEP_JSON.encode()), filename="x.json.gz")


@pytest.mark.timeout(30)
def test_deep_bin_dir_manifest_is_ignored(tmp_path: Path) -> None:
    from pylock.sync.bindir import MANIFEST, _Manifest, _read_manifest

    (tmp_path / MANIFEST).write_text('{"links": ' + DEEP_JSON + "}")
    assert _read_manifest(tmp_path) == _Manifest()


@pytest.mark.timeout(30)
def test_hostile_fast_path_state_falls_through(tmp_path: Path) -> None:
    from pylock.fastpath import STATE_FILE, read_state, try_noop_sync
    from pylock.settings import Settings

    (tmp_path / "pythons.lock").write_text(LOCK_HEAD)
    into = tmp_path / "into"
    into.mkdir()
    for text in (
        "pylock-state 1\nrecord app " + "9" * 10_000 + " 1 1\n",
        "pylock-state 1\n" + "[" * HUGE + "\n",
        "pylock-state 1\nrecord app 1 2\n",
        "\x00\xff" * 1000,
    ):
        (into / STATE_FILE).write_text(text, encoding="utf-8", errors="surrogateescape")
        assert read_state(str(into)) is None
        argv = ["--project", str(tmp_path), "sync", "--into", str(into)]
        assert try_noop_sync(argv, Settings.from_environ({})) is None


@pytest.mark.parametrize("name", ["a\x00b", "..", ".", "a/b", "a\\b", ""])
def test_a_state_naming_no_interpreter_directory_falls_through(tmp_path: Path, name: str) -> None:
    # Every header right, and a record whose name no sync writes: a NUL in it ended
    # every later `pylock sync` in a traceback (os.lstat raises ValueError for it).
    from pylock import __version__
    from pylock import fastpath as fp
    from pylock.settings import Settings

    (tmp_path / "pythons.lock").write_text(LOCK_HEAD)
    into = tmp_path / "into"
    into.mkdir()
    argv = ["--project", str(tmp_path), "sync", "--into", str(into)]
    settings = Settings.from_environ({})
    lines = [
        f"pylock-state {fp.STATE_VERSION}",
        f"pylock {__version__}",
        f"host {fp.host_fingerprint()}",
        f"lock-sha256 {fp.file_sha256(str(tmp_path / 'pythons.lock'))}",
        "config-sha256 -",
        f"dest-sha256 {fp.path_digest(str(into))}",
        f"options-key {fp.options_key(argv, settings)}",
    ]
    (into / fp.STATE_FILE).write_text("\n".join([*lines, "record app 1 2 3 4"]) + "\n")
    assert fp.read_state(str(into)) is not None  # the state is right but for its record
    (into / fp.STATE_FILE).write_text("\n".join([*lines, f"record {name} 1 2 3 4"]) + "\n")
    assert fp.read_state(str(into)) is None
    assert fp.try_noop_sync(argv, settings) is None


@pytest.mark.timeout(30)
def test_refusals_never_echo_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "https://user:s3cr3t@example.test/a.tar.gz?token=t0ps3cr3t"
    (tmp_path / "pythons.lock").write_text(
        LOCK_HEAD + f'url = "{secret}"\n' + "x = " + f'["{secret}", ' * HUGE + "\n"
    )
    assert main(["--project", str(tmp_path), "sync", "--into", str(tmp_path / "i")]) == 1
    err = capsys.readouterr().err
    assert "invalid TOML: nested more than" in err
    assert "s3cr3t" not in err
    with pytest.raises(JsonTooDeepError) as caught:
        json_loads(f'{{"url": "{secret}", "x": ' + "[" * HUGE)
    assert "s3cr3t" not in str(caught.value)


def _sample_lock_text() -> str:
    from pylock.lockfile import Artifact, LockedPython, dumps, make_lock
    from pylock.versions import Flavor, Implementation

    pythons = [
        LockedPython(
            name=f"app{i}",
            implementation=Implementation.CPYTHON,
            version="3.13.9",
            build="20251014",
            flavor=Flavor.INSTALL_ONLY_STRIPPED,
            artifacts=(
                Artifact(
                    platform="linux-x86_64-gnu",
                    url=f"https://example.test/20251014/cpython-{i}.tar.gz",
                    sha256=f"{i:064x}",
                    size=1000 + i,
                ),
            ),
        )
        for i in range(3)
    ]
    return dumps(make_lock(pythons, config_digest=DIGEST))


def test_every_truncation_of_a_lock_loads_or_is_a_lock_error() -> None:
    from pylock.errors import LockFileError
    from pylock.lockfile import LockFile, loads

    text = _sample_lock_text()
    outcomes = []
    for end in range(len(text) + 1):
        try:
            outcomes.append(isinstance(loads(text[:end]), LockFile))
        except LockFileError:
            outcomes.append(False)
    assert outcomes[-1] is True
    assert outcomes.count(False) > len(text) // 2


def test_every_truncation_of_an_install_record_reads_as_no_record(tmp_path: Path) -> None:
    from pylock.sync.records import installed_state

    document = {
        "installer": "pylock",
        "record-version": 1,
        "artifact": {"platform": "linux-x86_64-gnu", "url": "https://x.test/a", "sha256": "0"},
        "python": {"name": "app", "implementation": "cpython", "version": "3.13.9"},
    }
    text = json.dumps(document, indent=2)
    meta = tmp_path / "app" / ".pylock"
    meta.mkdir(parents=True)
    for end in range(len(text)):
        (meta / "install.json").write_text(text[:end])
        assert installed_state(tmp_path, "app") is None
    (meta / "install.json").write_text(text)
    assert installed_state(tmp_path, "app") is not None


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="statvfs is POSIX")
@pytest.mark.parametrize(
    ("files", "free_inodes", "free_blocks", "expected"),
    [
        (1000, 0, 5000, "the file system has no free inodes left (see `df -i`): remove files"),
        (1000, 10, 0, "free some disk space"),
        (0, 0, 5000, "free some disk space"),  # a file system that counts no inodes (btrfs)
    ],
)
def test_out_of_space_tells_inodes_from_blocks(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    files: int,
    free_inodes: int,
    free_blocks: int,
    expected: str,
) -> None:
    # Sync attack: a tmpfs out of inodes said "free some disk space" with 199 MB free.
    from types import SimpleNamespace

    from pylock.fsutil import out_of_space_hint

    usage = SimpleNamespace(f_files=files, f_favail=free_inodes, f_bavail=free_blocks)
    monkeypatch.setattr(os, "statvfs", lambda path: usage)
    assert out_of_space_hint(tmp_path, "run it again") == f"{expected}, then run it again"
