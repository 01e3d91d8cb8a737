"""Rewrite build-machine paths and tools recorded inside a freshly extracted interpreter.

python-build-standalone records its build machine in ``_sysconfigdata_*.py`` (prefix
``/install``, compilers such as ``clang`` or ``/tools/...`` paths, macOS ``-isysroot``
flags) and in ``lib/pkgconfig/*.pc``. Left alone, building a C extension with the
installed interpreter fails. These fix-ups run on the temporary tree before it is
renamed into place, so the tree is bound to its final path from then on.

The sysconfig file is parsed as Python data and only known keys are rewritten.

>>> rewrite_tools("/tools/clang-linux64/bin/clang -pthread -isysroot /Applications/SDK -O2")
'cc -pthread -O2'
>>> replace_prefix("-I/install/include -L/install/lib", "/install", "/opt/python/app")
'-I/opt/python/app/include -L/opt/python/app/lib'
"""

from __future__ import annotations

import ast
import pprint
import re
import shlex
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pylock.platforms import Platform

#: Keys that hold one path (or a ``:`` list) that may start with the build prefix.
PATH_KEYS = frozenset(
    {
        "prefix",
        "exec_prefix",
        "BINDIR",
        "BINLIBDEST",
        "CONFINCLUDEDIR",
        "CONFINCLUDEPY",
        "DATAROOTDIR",
        "DESTLIB",
        "DESTSHARED",
        "INCLUDEDIR",
        "INCLUDEPY",
        "LIBDEST",
        "LIBDIR",
        "LIBPC",
        "LIBPL",
        "MACHDESTLIB",
        "MANDIR",
        "SCRIPTDIR",
        "TZPATH",
        "WHEEL_PKG_DIR",
        "datarootdir",
    }
)

#: Keys that hold shell words (flags, command lines) that may carry the build prefix.
FLAG_KEYS = frozenset(
    {
        "CONFIG_ARGS",
        "DESTDIRS",
        "CFLAGS",
        "CFLAGSFORSHARED",
        "CFLAGS_NODIST",
        "CONFIGURE_CFLAGS",
        "CONFIGURE_CFLAGS_NODIST",
        "CONFIGURE_CPPFLAGS",
        "CONFIGURE_LDFLAGS",
        "CONFIGURE_LDFLAGS_NODIST",
        "CPPFLAGS",
        "LDFLAGS",
        "LDFLAGS_NODIST",
        "LDSHARED",
        "LDCXXSHARED",
        "BLDSHARED",
        "BLDLIBRARY",
        "LIBRARY_DEPS",
        "LINKFORSHARED",
        "PY_CFLAGS",
        "PY_CFLAGS_NODIST",
        "PY_CORE_CFLAGS",
        "PY_CORE_LDFLAGS",
        "PY_CPPFLAGS",
        "PY_LDFLAGS",
        "PY_LDFLAGS_NODIST",
        "PY_LDFLAGS_NOLTO",
        "PY_STDMODULE_CFLAGS",
        "OPENSSL_INCLUDES",
        "OPENSSL_LDFLAGS",
        "OPENSSL_RPATH",
        "INCLDIRSTOMAKE",
        "LIBS",
        "SHLIBS",
    }
)

#: Keys whose values may carry the build prefix, one way or the other.
PREFIX_KEYS = PATH_KEYS | FLAG_KEYS

#: Keys whose first word names a build tool to replace with the platform default.
TOOL_KEYS = frozenset(
    {"CC", "CXX", "CPP", "LDSHARED", "LDCXXSHARED", "BLDSHARED", "LINKCC", "AR", "MAINCC"}
)

#: Keys that may carry ``-isysroot <sdk>``, which points into the build machine's Xcode.
SYSROOT_KEYS = PREFIX_KEYS | TOOL_KEYS

_C_COMPILER = re.compile(r"^(?:.*-)?(?:clang|gcc|cc)(?:-[0-9.]+)?$")
_CXX_COMPILER = re.compile(r"^(?:.*-)?(?:clang\+\+|g\+\+|c\+\+)(?:-[0-9.]+)?$")
_ARCHIVER = re.compile(r"^(?:.*-)?(?:llvm-)?ar$")
_CPP = re.compile(r"^(?:.*-)?cpp$")


def _default_tool(word: str) -> str | None:
    """The platform default for a build-machine tool, if ``word`` names one."""
    name = word.rsplit("/", 1)[-1]
    if _CXX_COMPILER.match(name):
        return "c++"
    if _C_COMPILER.match(name):
        return "cc"
    if _ARCHIVER.match(name):
        return "ar"
    if _CPP.match(name):
        return "cpp"
    return None


def _drop_sysroot(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "-isysroot":
            skip = True
            continue
        if word.startswith("-isysroot"):
            continue
        kept.append(word)
    return kept


def _split(value: str) -> list[str] | None:
    try:
        return shlex.split(value, posix=True)
    except ValueError:
        return None


def rewrite_tools(value: str) -> str:
    """Replace a leading build-machine tool and drop ``-isysroot`` flags."""
    words = _split(value)
    if not words:
        return value
    tool = _default_tool(words[0])
    if tool is not None:
        words[0] = tool
    return shlex.join(_drop_sysroot(words))


def drop_sysroot(value: str) -> str:
    """Remove ``-isysroot <sdk>`` (and ``-isysroot<sdk>``) from a flags string."""
    if "-isysroot" not in value:
        return value
    words = _split(value)
    return value if words is None else shlex.join(_drop_sysroot(words))


def replace_prefix(value: str, old: str, new: str) -> str:
    """Replace ``old`` where it stands as a path prefix (not inside a longer name)."""
    if not old or old == new:
        return value
    pattern = re.compile(re.escape(old.rstrip("/")) + r"(?=/|\s|$|['\":;])")
    return pattern.sub(lambda _: new, value)


def replace_prefix_in_words(value: str, old: str, new: str) -> str:
    """:func:`replace_prefix` in a shell-quoted word list, quoting where ``new`` needs it.

    A path with a space must stay one word for the tools that split these values
    (distutils' ``split_quoted``, ``shlex``).

    >>> replace_prefix_in_words("cc -L/install/lib -O2", "/install", "/my app")
    "cc '-L/my app/lib' -O2"
    """
    if shlex.quote(new) == new:
        return replace_prefix(value, old, new)
    words = _split(value)
    if words is None:
        return replace_prefix(value, old, new)
    replaced = [replace_prefix(word, old, new) for word in words]
    return value if replaced == words else shlex.join(replaced)


def patch_build_time_vars(variables: dict[str, Any], *, final_prefix: str) -> dict[str, Any]:
    """Return the sysconfig variables rewritten for an install at ``final_prefix``."""
    old_prefix = variables.get("prefix")
    patched = dict(variables)
    for key, value in variables.items():
        if not isinstance(value, str):
            continue
        new = value
        if isinstance(old_prefix, str) and key in PATH_KEYS:
            new = replace_prefix(new, old_prefix, final_prefix)
        elif isinstance(old_prefix, str) and key in FLAG_KEYS:
            new = replace_prefix_in_words(new, old_prefix, final_prefix)
        if key in TOOL_KEYS:
            new = rewrite_tools(new)
        elif key in SYSROOT_KEYS:
            new = drop_sysroot(new)
        patched[key] = new
    return patched


#: Serialises :func:`ast.parse`: on Python 3.11 its AST constructor keeps one recursion
#: counter per interpreter, so parallel installs fail with "AST constructor recursion
#: depth mismatch" (CPython gh-106905; 3.12 is not affected).
_AST_LOCK = threading.Lock()


def _find_assignment(tree: ast.Module) -> ast.Assign | None:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "build_time_vars"
        ):
            return node
    return None


def fix_sysconfigdata(path: Path, final_prefix: str) -> bool:
    """Rewrite one ``_sysconfigdata_*.py``; return whether it changed.

    The file is parsed, the ``build_time_vars`` dict literal evaluated as data, and
    the file rewritten with everything outside that assignment kept as it was.
    """
    source = path.read_text(encoding="utf-8")
    with _AST_LOCK:
        tree = ast.parse(source)
    node = _find_assignment(tree)
    if node is None or node.end_lineno is None:
        return False
    variables = ast.literal_eval(node.value)
    if not isinstance(variables, dict):
        return False
    patched = patch_build_time_vars(variables, final_prefix=final_prefix)
    if patched == variables:
        return False
    lines = source.splitlines(keepends=True)
    before = "".join(lines[: node.lineno - 1])
    after = "".join(lines[node.end_lineno :])
    body = "build_time_vars = " + pprint.pformat(patched, width=100) + "\n"
    path.write_text(before + body + after, encoding="utf-8")
    return True


def fix_pkgconfig(path: Path, final_prefix: str) -> bool:
    """Point a ``.pc`` file at the final install path.

    The ``prefix=`` variable is set to ``final_prefix``, and the old prefix is
    replaced wherever else it appears as a path (``libdir=``, ``Libs.private:``).
    """
    text = path.read_text(encoding="utf-8")
    old_prefix = None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "prefix":
            old_prefix = value.strip()
            break
    if old_prefix is None or old_prefix == final_prefix:
        return False
    # pkg-config splits flags at unescaped spaces; a backslash keeps a path whole.
    new_text = replace_prefix(text, old_prefix, final_prefix.replace(" ", "\\ "))
    if new_text == text:
        return False
    path.write_text(new_text, encoding="utf-8")
    return True


def apply_fixups(tree: Path, final_path: Path) -> list[str]:
    """Rewrite sysconfig data and pkg-config files of ``tree`` for ``final_path``.

    Return the POSIX-relative paths of the files that changed, so the install record
    can hash them as patched.
    """
    prefix = str(final_path)
    changed: list[str] = []
    for data in sorted(tree.glob("lib/*/_sysconfigdata_*.py")):
        if not data.is_symlink() and fix_sysconfigdata(data, prefix):
            changed.append(data.relative_to(tree).as_posix())
            # A stale bytecode cache would shadow the patched source.
            for cached in data.parent.glob(f"__pycache__/{data.stem}.*.pyc"):
                cached.unlink()
    for pc in sorted(tree.glob("lib/pkgconfig/*.pc")):
        if not pc.is_symlink() and fix_pkgconfig(pc, prefix):
            changed.append(pc.relative_to(tree).as_posix())
    return changed


def fixup_for(platform: Platform) -> Callable[[Path, Path], Iterable[str]] | None:
    """The fix-up step for installs on ``platform``; ``None`` where there is nothing to fix.

    Windows builds carry no ``_sysconfigdata`` module or ``.pc`` files.
    """
    if platform.is_windows:
        return None
    return apply_fixups
