"""Issue 12: the archive package split by job, the record module, and the one file-hash helper.

- ``pylock/archive/*`` imports only foundation modules and ``versions``, with no cycles;
- ``pylock.sync.records`` reads ``install.json`` without importing the archive layer, writes
  what ``read_record`` reads back, and refuses a RECORD row pylock never writes (paths
  leaving the tree, bad sizes and digests, oversized fields) with one clean error;
- ``pylock.fsutil.sha256_file`` hashes like :mod:`hashlib`, reports progress, and is what
  the cache, the mirror and ``verify`` use.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pylock
from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout
from pylock.archive.policy import link_target_problem
from pylock.archive.writer import RecordEntry
from pylock.errors import InstallError
from pylock.fsutil import sha256_file
from pylock.lockfile import Artifact
from pylock.sync import records
from pylock.versions import ArchiveFormat
from tests.archives import exe, file, symlink, write_archive
from tests.indexdata import locked_python

ARCHIVE_DIR = Path(pylock.__file__).parent / "archive"
#: What the archive layer may import from pylock, besides itself: foundation modules
#: (settings: how many CPUs it may use) and the archive formats.
ARCHIVE_MAY_IMPORT = {
    "pylock.errors",
    "pylock.fsutil",
    "pylock.interrupts",
    "pylock.bounded",
    "pylock.settings",
    "pylock.versions",
}
HEX = "ab" * 32


# -- the archive package's imports --------------------------------------------------------


def archive_imports() -> dict[str, set[str]]:
    """``pylock.archive.X`` -> the pylock modules it imports (at any level of the file)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ARCHIVE_DIR.glob("*.py")):
        module = f"pylock.archive.{path.stem}".removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[module] = {name for name in found if name.split(".")[0] == "pylock"}
    return graph


def test_archive_modules_are_split_by_job() -> None:
    assert set(archive_imports()) >= {
        f"pylock.archive.{name}"
        for name in ("tar", "zip", "codecs", "policy", "writer", "layout", "extract")
    }


def test_archive_layer_imports_only_foundation_and_itself() -> None:
    for module, imported in archive_imports().items():
        outside = {
            name
            for name in imported
            if not name.startswith("pylock.archive") and name not in ARCHIVE_MAY_IMPORT
        }
        assert not outside, f"{module} imports {sorted(outside)}"


def test_archive_modules_have_no_cycles() -> None:
    graph = archive_imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in graph.get(module, ()):
            if target in graph:
                visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_reading_install_json_imports_no_archive_module(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pylock.sync.records import installed_state
        installed_state(Path({str(tmp_path)!r}), "app")
        print(sorted(m for m in sys.modules if m.startswith("pylock.archive")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the policy, now a module of its own ------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "target", "problem"),
    [
        ("bin/python", "python3.12", None),
        ("lib/libpython.so", "../lib/libpython3.12.so.1.0", None),
        ("bin/x", "", "symlink with an empty target"),
        ("bin/x", "a\0b", "symlink with an empty target"),
        ("bin/x", "a\x1b[2Jb", "control character in symlink target"),
        ("bin/x", "/etc/passwd", "symlink to an absolute path /etc/passwd"),
        ("bin/x", "C:/Windows", "symlink to an absolute path C:/Windows"),
        ("bin/x", "..\\..\\x", "backslash in symlink target ..\\..\\x"),
        ("bin/x", "../../etc", "symlink target ../../etc escapes the destination"),
        ("x", "..", "symlink target .. escapes the destination"),
    ],
)
def test_link_target_problem(rel: str, target: str, problem: str | None) -> None:
    assert link_target_problem(rel, target) == problem


# -- records ---------------------------------------------------------------------------------


def write_and_read(tmp_path: Path, entries: list[RecordEntry], url: str) -> Path:
    tree = tmp_path / "app"  # DIR/NAME: a record in another name's directory is not its own
    tree.mkdir(parents=True)
    artifact = Artifact(platform="linux-x86_64-gnu", url=url, sha256=HEX, size=10)
    python = locked_python("app", "3.12.7", "20241016", [artifact])
    records.write_record(tree, entries, python, artifact, "pbs-install-only", None, fixups=True)
    return tree


def test_extraction_entries_round_trip_through_the_record(tmp_path: Path) -> None:
    archive = write_archive(
        tmp_path / "a.tar.gz",
        [
            exe("python/bin/python3.12", b"#!/bin/sh\n"),
            symlink("python/bin/python3", "python3.12"),
            file("python/lib/os.py", b"x = 1\n" * 1000),
            file('python/lib/a,b "quoted".txt', b"commas and quotes\n"),
        ],
        ArchiveFormat.TAR_GZ,
    )
    entries = extract_archive(
        archive, tmp_path / "dest", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
    )
    tree = write_and_read(tmp_path, entries, "https://example.org/a.tar.gz")
    assert sorted(records.read_record(tree), key=lambda e: e.path) == sorted(
        entries, key=lambda e: e.path
    )
    os_py = next(e for e in entries if e.path == "lib/os.py")
    assert os_py.sha256 == hashlib.sha256(b"x = 1\n" * 1000).hexdigest()
    state = records.installed_state(tmp_path, "app")
    assert state is not None
    assert (state.sha256, state.record_version) == (HEX, records.RECORD_VERSION)


#: Paths that need CSV quoting, and ones that look odd but do not.
AWKWARD_PATHS = [
    "lib/plain.py",
    'lib/a,b "quoted".txt',
    "lib/comma,only",
    'lib/"leading quote',
    "lib/line\nbreak",
    "lib/carriage\rreturn",
    " lib/leading and trailing space ",
    "lib/tab\there",
    "lib/ünïcödé ∑.py",
    "lib/#not-a-comment",
    "lib/sha256=lookalike",
    "lib/'single'",
]


def test_the_record_is_what_csv_writes_for_every_path(tmp_path: Path) -> None:
    import csv
    import io

    entries = [
        RecordEntry(path=path, sha256=HEX, size=n, executable=n % 2 == 1)
        for n, path in enumerate(AWKWARD_PATHS)
    ] + [
        RecordEntry(path=f"{path}.link", sha256=None, size=0, link=f"../{path}")
        for path in AWKWARD_PATHS
    ]
    tree = write_and_read(tmp_path, entries, "https://example.org/a.tar.gz")
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    for entry in entries:
        if entry.link is not None:
            writer.writerow([entry.path, f"link={entry.link}", 0, ""])
        else:
            flags = "x" if entry.executable else ""
            writer.writerow([entry.path, f"sha256={entry.sha256}", entry.size, flags])
    record = tree / records.META_DIR / records.RECORD_FILE
    assert record.read_bytes() == expected.getvalue().encode("utf-8")
    # Control characters never reach a record (the archive policy refuses such names), so
    # only the printable ones are read back.
    printable = [e for e in entries if e.path.isprintable()]
    tree = write_and_read(tmp_path / "printable", printable, "https://example.org/a.tar.gz")
    assert records.read_record(tree) == printable


def test_rehash_takes_in_what_the_fixups_report(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    for name in ("kept.py", "removed.py", "changed.py"):
        (tree / "lib" / name).write_text(name)
    entries = [
        RecordEntry(path=f"lib/{name}", sha256=HEX, size=1)
        for name in ("kept.py", "removed.py", "changed.py")
    ]
    (tree / "lib" / "removed.py").unlink()
    (tree / "lib" / "changed.py").write_text("patched")
    (tree / "lib" / "added.py").write_text("new")
    changed = RecordEntry(
        path="lib/changed.py",
        sha256=hashlib.sha256(b"patched").hexdigest(),
        size=7,
        executable=bool(os.stat(tree / "lib/changed.py").st_mode & 0o111),
    )
    added = RecordEntry(
        path="lib/added.py",
        sha256=hashlib.sha256(b"new").hexdigest(),
        size=3,
        executable=bool(os.stat(tree / "lib/added.py").st_mode & 0o111),
    )
    reported = ["lib/changed.py", "/lib/removed.py", "lib\\added.py"]
    assert records.rehash(tree, entries, reported) == [entries[0], changed, added]
    # Only what they report is looked at: the fix-ups report every removal.
    assert records.rehash(tree, entries, ["lib/changed.py"]) == [entries[0], entries[1], changed]


def test_the_record_never_carries_url_credentials(tmp_path: Path) -> None:
    tree = write_and_read(tmp_path, [], "https://user:s3cret-token@example.org/a.tar.gz?x=1")
    text = (tree / records.META_DIR / records.INSTALL_JSON).read_text(encoding="utf-8")
    assert "s3cret-token" not in text
    assert json.loads(text)["artifact"]["sha256"] == HEX


HOSTILE_ROWS = {
    "too few fields": "bin/x,sha256=" + HEX + ",5\n",
    "truncated quote": '"bin/x,sha256=' + HEX + ",5,\n",
    "negative size": f"bin/x,sha256={HEX},-5,\n",
    "signed size": f"bin/x,sha256={HEX},+5,\n",
    "underscore size": f"bin/x,sha256={HEX},5_0,\n",
    "endless size": f"bin/x,sha256={HEX},{'9' * 5000},\n",
    "short digest": f"bin/x,sha256={HEX[:-1]},5,\n",
    "upper-case digest": f"bin/x,sha256={HEX.upper()},5,\n",
    "unknown digest": "bin/x,md5=00,5,\n",
    "empty link": "bin/x,link=,0,\n",
    "absolute path": f"/etc/shadow,sha256={HEX},5,\n",
    "parent path": f"../../home/u/.netrc,sha256={HEX},5,\n",
    "inner parent": f"lib/../../x,sha256={HEX},5,\n",
    "dot part": f"lib/./x,sha256={HEX},5,\n",
    "empty part": f"lib//x,sha256={HEX},5,\n",
    "trailing slash": f"lib/,sha256={HEX},5,\n",
    "backslash path": f"..\\x,sha256={HEX},5,\n",
    "NUL in path": f"a\0b,sha256={HEX},5,\n",
    "empty path": f",sha256={HEX},5,\n",
    "oversized field": f"{'a' * 200_000},sha256={HEX},5,\n",
    "secret-bearing garbage": "https://user:hunter2@example.org/x\n",
}


@pytest.mark.parametrize("body", HOSTILE_ROWS.values(), ids=HOSTILE_ROWS.keys())
def test_hostile_record_rows_are_refused(tmp_path: Path, body: str) -> None:
    meta = tmp_path / records.META_DIR
    meta.mkdir()
    (meta / records.RECORD_FILE).write_text(f"ok/file,sha256={HEX},1,x\n" + body, encoding="utf-8")
    with pytest.raises(InstallError) as caught:
        records.read_record(tmp_path)
    assert caught.value.hint is not None and "--reinstall" in caught.value.hint
    assert "hunter2" not in str(caught.value) and HEX not in str(caught.value)
    assert len(str(caught.value)) < 500 + len(str(tmp_path))


@pytest.mark.parametrize("path", ["C:/Windows/win.ini", "C:x", "lib/a:stream"])
def test_a_record_path_with_a_drive_or_stream_is_refused_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Code review: on Windows, ``D:\\pythons\\app / "C:/Windows/win.ini"`` is
    ``C:\\Windows\\win.ini``: a tampered record sent verify out of the tree."""
    meta = tmp_path / records.META_DIR
    meta.mkdir()
    (meta / records.RECORD_FILE).write_text(f"{path},sha256={HEX},1,\n", encoding="utf-8")
    monkeypatch.setattr(records, "_WINDOWS", True)
    with pytest.raises(InstallError, match="bad path"):
        records.read_record(tmp_path)
    monkeypatch.setattr(records, "_WINDOWS", False)  # a legal file name elsewhere
    assert [entry.path for entry in records.read_record(tmp_path)] == [path]


def test_record_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    meta = tmp_path / records.META_DIR
    meta.mkdir()
    (meta / records.RECORD_FILE).write_bytes(b"\xff\xfe,sha256=00,1,\n")
    with pytest.raises(InstallError):
        records.read_record(tmp_path)


@pytest.mark.parametrize(
    "document",
    [
        "",
        "{",
        "[]",
        '{"installer": "pylock"',
        '{"installer": "pylock", "artifact": [], "python": {}}',
        '{"installer": "pylock", "artifact": {"sha256": 5, "url": "u", "platform": "p"},'
        ' "python": {}}',
        "[" * 100_000,
        '{"installer": "pylock", "artifact": {"sha256": NaN}}',
    ],
)
def test_hostile_install_json_reads_as_not_installed(tmp_path: Path, document: str) -> None:
    meta = tmp_path / "app" / records.META_DIR
    meta.mkdir(parents=True)
    (meta / records.INSTALL_JSON).write_text(document, encoding="utf-8")
    assert records.installed_state(tmp_path, "app") is None


@pytest.mark.skipif(os.name == "nt", reason="POSIX tree and shell launcher")
def test_verify_with_a_tampered_record_is_one_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_verify_hardening import run_verify, sync_tree

    project, tree = sync_tree(tmp_path)
    assert run_verify(project, tree, capsys)[0] == 0
    record = tree / records.META_DIR / records.RECORD_FILE
    record.write_text(
        record.read_text(encoding="utf-8") + f"../../../etc/passwd,sha256={HEX},1,\n",
        encoding="utf-8",
    )
    code, output = run_verify(project, tree, capsys)
    assert code != 0
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("pylock: error:")]
    assert len(errors) == 1 and "differs from the install record" in errors[0]
    found = [line for line in output.splitlines() if line.startswith("  record: ")]
    assert len(found) == 1 and "bad path '../../../etc/passwd'" in found[0]
    assert "line " in found[0]
    assert "pylock sync --reinstall" in output


# -- one file-hash helper -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, (1 << 18) - 1, 1 << 18, (1 << 20) * 3 + 17])
def test_sha256_file_matches_hashlib_and_reports_every_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    seen: list[int] = []
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path), seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == size
    assert all(count > 0 for count in seen)
    if size > 1 << 20:
        assert len(seen) > 1  # read in bounded chunks, not at once


def test_sha256_file_errors_are_oserrors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "missing")
    with pytest.raises(OSError):
        sha256_file(tmp_path)


def test_no_module_hashes_files_by_hand() -> None:
    """Chunked file hashing lives in fsutil only; streams (downloads, extraction) hash as
    they go, which is not this."""
    root = Path(pylock.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "fsutil.py" and "file_digest" in text:
            offenders.append(str(path.relative_to(root)))
    assert not offenders
    from pylock import mirror
    from pylock.net import fetch
    from pylock.sync import cache, install

    for module in (cache, mirror, fetch, install, records):
        assert getattr(module, "sha256_file", sha256_file) is sha256_file
    assert not hasattr(cache, "_HASH_CHUNK") and not hasattr(mirror, "sha256_of")
