"""Tests for rewriting build-machine paths in sysconfig data and pkg-config files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pylock.platforms import Platform
from pylock.sync import fixups
from pylock.sync.fixups import (
    TreeFixups,
    apply_fixups,
    drop_sysroot,
    fix_pkgconfig,
    fixup_for,
    patch_build_time_vars,
    replace_prefix,
    rewrite_tools,
)

PBS_VARS = {
    "prefix": "/install",
    "exec_prefix": "/install",
    "LIBDIR": "/install/lib",
    "INCLUDEPY": "/install/include/python3.13",
    "CC": "/tools/clang-linux64/bin/clang -pthread",
    "CXX": "clang++ -pthread",
    "AR": "/tools/clang-linux64/bin/llvm-ar",
    "LDSHARED": "clang -shared -isysroot /Applications/Xcode.app/SDKs/MacOSX.sdk -L/install/lib",
    "CFLAGS": "-O2 -isysroot /Applications/Xcode.app/SDKs/MacOSX.sdk -I/install/include",
    "CONFIG_ARGS": "'--prefix=/install' '--with-lto'",
    "HOST_GNU_TYPE": "x86_64-pc-linux-gnu",
    "SOABI": "cpython-313-x86_64-linux-gnu",
    "Py_DEBUG": 0,
    "UNRELATED": "/install-not-a-prefix/x",
}


def test_patch_rewrites_known_keys_only() -> None:
    out = patch_build_time_vars(PBS_VARS, final_prefix="/opt/python/app")
    assert out["prefix"] == "/opt/python/app"
    assert out["LIBDIR"] == "/opt/python/app/lib"
    assert out["INCLUDEPY"] == "/opt/python/app/include/python3.13"
    assert out["CC"] == "cc -pthread"
    assert out["CXX"] == "c++ -pthread"
    assert out["AR"] == "ar"
    assert out["LDSHARED"] == "cc -shared -L/opt/python/app/lib"
    assert out["CFLAGS"] == "-O2 -I/opt/python/app/include"
    assert out["CONFIG_ARGS"] == "'--prefix=/opt/python/app' '--with-lto'"
    # Values that are not paths stay as they were, as do unknown keys.
    assert out["HOST_GNU_TYPE"] == "x86_64-pc-linux-gnu"
    assert out["SOABI"] == PBS_VARS["SOABI"]
    assert out["Py_DEBUG"] == 0
    assert out["UNRELATED"] == "/install-not-a-prefix/x"


def test_prefix_is_replaced_only_as_a_whole_path_component() -> None:
    assert replace_prefix("/install/lib /installer", "/install", "/p") == "/p/lib /installer"
    assert replace_prefix("/install", "/install", "/p") == "/p"


def test_tools_and_sysroot() -> None:
    assert rewrite_tools("gcc -pthread") == "cc -pthread"
    assert rewrite_tools("aarch64-linux-gnu-gcc -O2") == "cc -O2"
    assert rewrite_tools("ccache-wrapper -x") == "ccache-wrapper -x"
    assert drop_sysroot("-isysroot/SDK -O2") == "-O2"
    assert drop_sysroot("-O2") == "-O2"


SYSCONFIG_SOURCE = (
    "# system configuration generated and used by the sysconfig module\n"
    "build_time_vars = " + repr(PBS_VARS) + "\n"
    "extra = 1\n"
)


def make_tree(root: Path) -> Path:
    lib = root / "lib" / "python3.13"
    lib.mkdir(parents=True)
    (lib / "_sysconfigdata__linux_x86_64-linux-gnu.py").write_text(SYSCONFIG_SOURCE)
    pkgconfig = root / "lib" / "pkgconfig"
    pkgconfig.mkdir()
    (pkgconfig / "python-3.13.pc").write_text(
        "prefix=/install\nexec_prefix=${prefix}\nlibdir=/install/lib\n"
        "Name: Python\nCflags: -I${prefix}/include/python3.13\n"
    )
    return root


def test_apply_fixups_reports_changed_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    changed = apply_fixups(tree, Path("/opt/python/app"))
    assert changed == [
        "lib/python3.13/_sysconfigdata__linux_x86_64-linux-gnu.py",
        "lib/pkgconfig/python-3.13.pc",
    ]
    source = (tree / changed[0]).read_text()
    module = ast.parse(source)
    variables = ast.literal_eval(module.body[0].value)  # type: ignore[attr-defined]
    assert variables["prefix"] == "/opt/python/app"
    assert source.startswith("# system configuration")
    assert source.endswith("extra = 1\n")
    pc = (tree / changed[1]).read_text()
    assert "prefix=/opt/python/app\n" in pc
    assert "libdir=/opt/python/app/lib\n" in pc
    # Applying again changes nothing.
    assert apply_fixups(tree, Path("/opt/python/app")) == []


def test_pkgconfig_without_prefix_is_left_alone(tmp_path: Path) -> None:
    pc = tmp_path / "x.pc"
    pc.write_text("Name: X\n")
    assert not fix_pkgconfig(pc, "/p")
    assert pc.read_text() == "Name: X\n"


def test_no_fixups_on_windows() -> None:
    assert fixup_for(Platform.parse("windows-x86_64")) is None
    assert fixup_for(Platform.parse("macos-aarch64")) is TreeFixups


DATA = "lib/python3.13/_sysconfigdata__linux_x86_64-linux-gnu.py"


def ignore(warning: str) -> None:
    pass


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the sysconfig texts worked out (parsed and patched) from now on."""
    parsed: list[str] = []
    real = fixups.patched_sysconfigdata

    def patched(source: str, final_prefix: str) -> str | None:
        parsed.append(source)
        return real(source, final_prefix)

    monkeypatch.setattr(fixups, "patched_sysconfigdata", patched)
    return parsed


def told_of(tree: Path, *written: str) -> TreeFixups:
    """The fix-ups of ``tree``, told that these files were written."""
    run = TreeFixups(tree, Path("/opt/python/app"), ignore)
    for rel in written:
        run.written(rel)
    return run


def test_sysconfig_is_worked_out_as_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "tree")
    parsed = counting_parses(monkeypatch)
    run = told_of(tree, "bin/python3", "lib/pkgconfig/python-3.13.pc", DATA)
    # Worked out in memory only: the tree is as extracted until apply().
    assert parsed == [SYSCONFIG_SOURCE]
    assert (tree / DATA).read_text() == SYSCONFIG_SOURCE
    assert run.apply() == [DATA, "lib/pkgconfig/python-3.13.pc"]
    assert parsed == [SYSCONFIG_SOURCE]  # not parsed again
    expected = make_tree(tmp_path / "expected")
    apply_fixups(expected, Path("/opt/python/app"))
    assert (tree / DATA).read_text() == (expected / DATA).read_text()


def test_a_text_that_changed_since_it_was_worked_out_is_worked_out_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "tree")
    parsed = counting_parses(monkeypatch)
    run = told_of(tree, DATA)
    other = SYSCONFIG_SOURCE.replace("extra = 1", "extra = 2")
    (tree / DATA).write_text(other)
    assert run.apply() == [DATA, "lib/pkgconfig/python-3.13.pc"]
    assert parsed == [SYSCONFIG_SOURCE, other]
    source = (tree / DATA).read_text()
    assert source.endswith("extra = 2\n")
    variables = ast.literal_eval(ast.parse(source).body[0].value)  # type: ignore[attr-defined]
    assert variables["prefix"] == "/opt/python/app"


def test_a_file_skipped_early_is_skipped_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / DATA).write_text("build_time_vars = {'prefix': f()}\n")
    parsed = counting_parses(monkeypatch)
    warnings: list[str] = []
    run = TreeFixups(tree, Path("/opt/python/app"), warnings.append)
    run.written(DATA)
    assert run.apply() == ["lib/pkgconfig/python-3.13.pc"]
    assert len(parsed) == 1
    assert len(warnings) == 1 and "build_time_vars is not a plain literal" in warnings[0]


def test_a_file_that_cannot_be_read_early_is_left_to_apply(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / DATA).write_bytes(b"\xff\xfe not UTF-8")
    warnings: list[str] = []
    run = TreeFixups(tree, Path("/opt/python/app"), warnings.append)
    run.written(DATA)
    run.written("lib/python3.13/_sysconfigdata_missing.py")  # never written: no error
    assert run.apply() == ["lib/pkgconfig/python-3.13.pc"]
    assert len(warnings) == 1 and "not UTF-8" in warnings[0]
