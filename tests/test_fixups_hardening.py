"""Issue 11 §4 and §7: fix-ups warn and go on, and never write through a hard link.

A ``_sysconfigdata_*.py`` that is not valid Python, not a literal or not UTF-8, and a
``.pc`` that is not UTF-8, are left byte for byte as shipped with one warning; the install
goes on. A fix-up replaces the file it patches (new inode), so a name hard-linked to it
keeps the archive's bytes, and a fresh install always verifies, ``--reinstall`` too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylock.platforms import host
from pylock.sync.fixups import apply_fixups
from pylock.versions import ArchiveFormat
from tests.archives import Entry, exe, file, hardlink, symlink, write_archive
from tests.projects import host_project, run_pylock

pytestmark = pytest.mark.skipif(os.name == "nt", reason="fix-ups run on POSIX installs only")

HOST = host()
DATA = "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"
PC = "lib/pkgconfig/python-3.12.pc"
GOOD_DATA = (
    "# system configuration generated and used by the sysconfig module\n"
    "build_time_vars = {'prefix': '/install', 'LIBDIR': '/install/lib', "
    "'CC': '/tools/clang-linux64/bin/clang -pthread'}\n"
)
GOOD_PC = "prefix=/install\nlibdir=${prefix}/lib\nName: Python\n"

#: Broken sysconfig data modules, each left alone with a warning naming the reason.
BROKEN_DATA = {
    "syntax-error": (b"build_time_vars = {'prefix': '/install',\n", "not valid Python"),
    "non-literal": (b"import os\nbuild_time_vars = {'prefix': os.getcwd()}\n", "not a plain"),
    "call-in-dict": (b"build_time_vars = dict(prefix='/install')\n", "not a plain"),
    "unhashable-key": (b"build_time_vars = {['prefix']: '/install'}\n", "not a plain"),
    "not-utf8": (b"build_time_vars = {'prefix': '/install\xff\xfe'}\n", "not UTF-8"),
    "nul-byte": (b"build_time_vars = {'prefix': '/install'}\0\n", "not valid Python"),
    "deeply-nested": (
        b"build_time_vars = {'prefix': " + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        "",
    ),
    # Attack: repr() of the first raised (4,300 digits); the others were written back as
    # `inf` and `nan`, names an import of sysconfig then failed on.
    "huge-integer": (
        b"build_time_vars = {'prefix': '/install', 'X': 0x" + b"f" * 5000 + b"}\n",
        "cannot write back",
    ),
    "huge-integer-nested": (
        b"build_time_vars = {'prefix': '/install', 'X': [0x" + b"f" * 5000 + b"]}\n",
        "cannot write back",
    ),
    "infinite-float": (b"build_time_vars = {'prefix': '/install', 'X': 1e999}\n", "write back"),
    "infinite-float-nested": (
        b"build_time_vars = {'prefix': '/install', 'X': [1e999]}\n",
        "cannot write back",
    ),
}


def make_tree(root: Path, data: bytes, pc: bytes = GOOD_PC.encode()) -> Path:
    (root / DATA).parent.mkdir(parents=True)
    (root / DATA).write_bytes(data)
    (root / PC).parent.mkdir(parents=True)
    (root / PC).write_bytes(pc)
    return root


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BROKEN_DATA))
def test_broken_sysconfigdata_is_left_as_shipped_with_a_warning(tmp_path: Path, case: str) -> None:
    data, reason = BROKEN_DATA[case]
    tree = make_tree(tmp_path / "tree", data)
    warnings: list[str] = []
    changed = apply_fixups(tree, Path("/opt/python/app"), warnings.append)
    assert changed == [PC]  # the .pc is still fixed
    assert (tree / DATA).read_bytes() == data
    [warning] = warnings
    assert warning.startswith(f"app: left {DATA} as shipped: ")
    assert reason in warning
    assert "\n" not in warning


def test_a_fixup_leaves_an_archive_member_named_like_its_temporary_file_alone(
    tmp_path: Path,
) -> None:
    # Attack: the fixed name `.NAME.pylock-fixup` was taken, the install failed as a file
    # system error, after the member had been unlinked.
    tree = make_tree(tmp_path / "tree", GOOD_DATA.encode())
    squatter = (tree / DATA).with_name(f".{(tree / DATA).name}.pylock-fixup")
    squatter.write_bytes(b"member")
    assert DATA in apply_fixups(tree, Path("/opt/python/app"), print)
    assert squatter.read_bytes() == b"member"
    assert not [
        p for p in squatter.parent.iterdir() if p.name.endswith(".pylock-fixup") and p != squatter
    ]


def test_stale_caches_of_a_name_with_glob_characters_are_its_own(tmp_path: Path) -> None:
    from pylock.sync.fixups import _stale_caches

    data = tmp_path / "lib" / "_sysconfigdata_[x].py"
    pycache = data.parent / "__pycache__"
    pycache.mkdir(parents=True)
    data.write_text(GOOD_DATA)
    own, other = (
        pycache / "_sysconfigdata_[x].cpython-312.pyc",
        pycache / "_sysconfigdata_x.cpython-312.pyc",
    )
    own.write_bytes(b""), other.write_bytes(b"")
    assert _stale_caches(tmp_path, data) == [own]


def test_non_utf8_pc_file_is_left_as_shipped_with_a_warning(tmp_path: Path) -> None:
    pc = b"prefix=/install\nDescription: caf\xe9\n"
    tree = make_tree(tmp_path / "tree", GOOD_DATA.encode(), pc)
    warnings: list[str] = []
    assert apply_fixups(tree, Path("/opt/python/app"), warnings.append) == [DATA]
    assert (tree / PC).read_bytes() == pc
    assert warnings == [
        f"app: left {PC} as shipped: not UTF-8 (byte 32); pkg-config will report the build prefix"
    ]


def test_fixup_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", GOOD_DATA.encode())
    os.chmod(tree / DATA, 0o640)
    before = os.stat(tree / DATA).st_ino
    other = tree / "lib/python3.12/copy_of_sysconfig.py"
    os.link(tree / DATA, other)
    assert apply_fixups(tree, Path("/opt/python/app")) == [DATA, PC]
    assert os.stat(tree / DATA).st_ino != before
    assert os.stat(tree / DATA).st_mode & 0o777 == 0o640
    assert "'/opt/python/app'" in (tree / DATA).read_text()
    assert other.read_text() == GOOD_DATA  # the other name keeps the shipped bytes
    assert os.stat(other).st_nlink == 1
    assert sorted(os.listdir(tree / "lib/python3.12")) == sorted(
        ["_sysconfigdata__linux_x86_64-linux-gnu.py", "copy_of_sysconfig.py"]
    )


def test_crlf_line_endings_outside_the_assignment_are_kept(tmp_path: Path) -> None:
    data = "# generated\r\nbuild_time_vars = {'prefix': '/install'}\r\nx = 1\r\n"
    tree = make_tree(tmp_path / "tree", data.encode())
    apply_fixups(tree, Path("/p"))
    text = (tree / DATA).read_bytes()
    assert text.startswith(b"# generated\r\n") and text.endswith(b"x = 1\r\n")


def test_files_reached_through_a_symlinked_directory_are_not_patched(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "share/pc").mkdir(parents=True)
    (tree / "share/pc/python-3.12.pc").write_text(GOOD_PC)
    (tree / "lib").mkdir()
    os.symlink("../share/pc", tree / "lib/pkgconfig")
    assert apply_fixups(tree, Path("/p")) == []
    assert (tree / "share/pc/python-3.12.pc").read_text() == GOOD_PC


# -- sync and verify, as a user runs them ------------------------------------------------


def locked_project(tmp_path: Path, entries: list[Entry]) -> Path:
    archive = write_archive(tmp_path / "python.tar.gz", entries, ArchiveFormat.TAR_GZ)
    return host_project(tmp_path, archive.read_bytes(), archive.as_uri())


def interpreter(*extra: Entry) -> list[Entry]:
    return [
        exe("python/bin/python3.12", b"#!fake\n"),
        symlink("python/bin/python3", "python3.12"),
        file(f"python/{DATA}", GOOD_DATA.encode()),
        file(f"python/{PC}", GOOD_PC.encode()),
        *extra,
    ]


def test_hard_linked_sysconfigdata_installs_and_verifies(tmp_path: Path) -> None:
    """The archive of the report: a second name hard-linked to the sysconfig data."""
    project = locked_project(
        tmp_path,
        interpreter(
            hardlink("python/lib/python3.12/copy_of_sysconfig.py", f"python/{DATA}"),
            hardlink("python/lib/pkgconfig/python3.pc", f"python/{PC}"),
        ),
    )
    into = tmp_path / "pythons"
    for args in (["sync"], ["sync", "--reinstall"]):
        result = run_pylock(project, *args, "--into", str(into))
        assert result.returncode == 0, result.stderr
        tree = into / "app"
        assert f"'{tree}'" in (tree / DATA).read_text()
        assert (tree / "lib/python3.12/copy_of_sysconfig.py").read_text() == GOOD_DATA
        assert (tree / "lib/pkgconfig/python3.pc").read_text() != GOOD_PC  # patched on its own
        verified = run_pylock(project, "verify", "--into", str(into))
        assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("case", ["syntax-error", "non-literal", "not-utf8"])
def test_sync_warns_about_a_broken_sysconfigdata_and_installs(tmp_path: Path, case: str) -> None:
    data, reason = BROKEN_DATA[case]
    entries = interpreter()
    entries[2] = file(f"python/{DATA}", data)
    entries[3] = file(f"python/{PC}", b"prefix=/install\nName: \xff\n")
    project = locked_project(tmp_path, entries)
    into = tmp_path / "pythons"
    result = run_pylock(project, "sync", "--into", str(into))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith(f"pylock: warning: app: left {DATA} as shipped: ")
    assert reason in warnings[0]
    assert warnings[1].startswith(f"pylock: warning: app: left {PC} as shipped: not UTF-8")
    assert (into / "app" / DATA).read_bytes() == data
    verified = run_pylock(project, "verify", "--into", str(into))
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize(
    "variables",
    [
        {"CC": "gcc -pthread", "Py_DEBUG": 0, "VERSION": "3.12", "PI": 3.5, "FLAG": True},
        {"QUOTES": 'it\'s "quoted"', "NL": "a\nb\\c", "NUL": "\0", "U": "ünïcode \u2028"},
        {"NESTED": {"a": [1, 2]}, "T": (1, "x")},  # not flat: pprint's way
        {},
    ],
)
def test_patched_vars_are_written_as_the_same_literal(variables: dict[str, object]) -> None:
    import ast

    from pylock.sync.fixups import format_vars

    text = format_vars(variables)
    assert ast.literal_eval(text) == variables
    if variables and "NESTED" not in variables:
        assert text.count("\n") == len(variables) + 1  # one key per line
