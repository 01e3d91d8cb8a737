"""Rewrite build-machine paths and tools recorded inside a freshly extracted interpreter.

python-build-standalone records its build machine in ``_sysconfigdata_*.py`` (prefix
``/install``, compilers such as ``clang`` or ``/tools/...`` paths, macOS ``-isysroot``
flags) and in ``lib/pkgconfig/*.pc``. Left alone, building a C extension with the
installed interpreter fails. These fix-ups run on the temporary tree before it is
renamed into place, so the tree is bound to its final path from then on.

The sysconfig file is parsed as Python data and only known keys are rewritten. A file
that cannot be read that way (not UTF-8, not valid Python, not a literal, over 512 KiB)
is left as shipped, with a warning. A patched file is written anew and renamed over the
old name, so another name hard-linked to it keeps the archive's bytes (and its recorded
hash).

>>> rewrite_tools("/tools/clang-linux64/bin/clang -pthread -isysroot /Applications/SDK -O2")
'cc -pthread -O2'
>>> replace_prefix("-I/install/include -L/install/lib", "/install", "/opt/python/app")
'-I/opt/python/app/include -L/opt/python/app/lib'
"""

from __future__ import annotations

import ast
import glob
import math
import os
import re
import shlex
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pylock.fsutil import replace
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


#: Larger files are not what they claim to be, and are left as shipped with a warning.
#: Real ``_sysconfigdata`` modules are 45-55 KB (CPython 3.12 and 3.13, PBS and pyenv
#: builds), ``.pc`` files under 1 KB: 512 KiB is 10x the largest. It bounds memory too:
#: :func:`ast.parse` takes about 500 bytes per byte of source made of tiny literals
#: (``[1,1,1,...]``), so 512 KiB costs at most about 280 MB, where 16 MiB took 8 GB.
_MAX_FIXUP_SIZE = 512 << 10


class FixupSkipped(Exception):
    """A file a fix-up would patch cannot be parsed; it is left as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read_text(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(_MAX_FIXUP_SIZE + 1)
    if len(data) > _MAX_FIXUP_SIZE:
        raise FixupSkipped(f"larger than {_MAX_FIXUP_SIZE >> 10} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FixupSkipped(f"not UTF-8 (byte {exc.start})") from None


def _replace(path: Path, text: str) -> None:
    """Write ``text`` as a new file and rename it over ``path``, keeping its mode.

    Never writes into the existing inode: a hard link to it (another name in the tree)
    keeps the bytes the archive gave it.
    """
    mode = path.stat().st_mode & 0o777
    # A random part: a member of the archive may have the name a fixed one would take.
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.pylock-fixup")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)  # Windows: no \n -> \r\n in the text mode it defaults to
    try:
        fd = os.open(tmp, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        os.chmod(tmp, mode)  # the umask may have narrowed it
        replace(tmp, path)  # patiently: a scanner may hold it (Windows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def format_vars(variables: dict[str, Any]) -> str:
    """``build_time_vars`` as Python source: one ``'KEY': value`` per line.

    Its values are flat (strings and numbers), so ``repr`` is the literal; anything
    nested goes through :mod:`pprint`, which is several times slower on ~1,000 items.
    Raises :class:`FixupSkipped` for a value whose ``repr`` is no literal of it: ``1e999``
    reads as ``inf`` (a name error when imported), and ``int`` refuses to write one of
    more than 4,300 digits.
    """
    try:
        if all(type(value) in (str, int, float, bool) for value in variables.values()):
            if any(type(v) is float and not math.isfinite(v) for v in variables.values()):
                raise FixupSkipped("build_time_vars has a value Python cannot write back")
            items = "".join(f" {key!r}: {value!r},\n" for key, value in variables.items())
            return "{\n" + items + "}"
        import pprint

        text = pprint.pformat(variables, width=100)
        if ast.literal_eval(text) != variables:  # nan != nan too: a float it cannot write
            raise FixupSkipped("build_time_vars has a value Python cannot write back")
        return text
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        raise FixupSkipped("build_time_vars has a value Python cannot write back") from None


def fix_sysconfigdata(path: Path, final_prefix: str, early: Early | None = None) -> bool:
    """Rewrite one ``_sysconfigdata_*.py``; return whether it changed.

    The file is parsed, the ``build_time_vars`` dict literal evaluated as data, and
    the file rewritten with everything outside that assignment kept as it was.
    Raises :class:`FixupSkipped` for a file that is not UTF-8, not valid Python, or
    whose ``build_time_vars`` is not a literal. What ``early`` worked out for the very
    same text while the archive was extracted is used instead of parsing it again.
    """
    source = _read_text(path)
    text = early.result(path, source) if early is not None else _NOT_WORKED_OUT
    if text is _NOT_WORKED_OUT:
        text = patched_sysconfigdata(source, final_prefix)
    if text is None:
        return False
    assert isinstance(text, str)
    _replace(path, text)
    return True


def patched_sysconfigdata(source: str, final_prefix: str) -> str | None:
    """The text of a ``_sysconfigdata_*.py`` module for ``final_prefix``; ``None`` if it
    needs no change. Raises :class:`FixupSkipped` (see :func:`fix_sysconfigdata`)."""
    if "\0" in source:
        # Python 3.11 before 3.11.5 (Debian 12) raises ValueError here, later ones SyntaxError.
        raise FixupSkipped("not valid Python (a NUL byte)")
    try:
        with _AST_LOCK:
            tree = ast.parse(source)
        node = _find_assignment(tree)
        if node is None or node.end_lineno is None:
            return None
        variables = ast.literal_eval(node.value)
    except SyntaxError as exc:
        raise FixupSkipped(f"not valid Python (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, TypeError):
        raise FixupSkipped("build_time_vars is not a plain literal") from None
    except (RecursionError, MemoryError):
        raise FixupSkipped("too deeply nested") from None
    if not isinstance(variables, dict):
        return None
    patched = patch_build_time_vars(variables, final_prefix=final_prefix)
    if patched == variables:
        return None
    lines = source.splitlines(keepends=True)
    before = "".join(lines[: node.lineno - 1])
    after = "".join(lines[node.end_lineno :])
    return before + "build_time_vars = " + format_vars(patched) + "\n" + after


def fix_pkgconfig(path: Path, final_prefix: str) -> bool:
    """Point a ``.pc`` file at the final install path.

    The ``prefix=`` variable is set to ``final_prefix``, and the old prefix is
    replaced wherever else it appears as a path (``libdir=``, ``Libs.private:``).
    Raises :class:`FixupSkipped` for a file that is not UTF-8.
    """
    text = _read_text(path)
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
    _replace(path, new_text)
    return True


def _inside(tree: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file reached without passing through any symlink."""
    return path.is_file() and _unlinked(tree, path)


def _unlinked(tree: Path, path: Path) -> bool:
    """Whether ``path`` in ``tree`` is reached without passing through any symlink (and is
    none)."""
    if path.is_symlink():
        return False
    rel = os.path.relpath(path, tree)
    return os.path.realpath(path) == os.path.join(os.path.realpath(tree), rel)


def _stale_caches(tree: Path, data: Path) -> list[Path]:
    """The bytecode caches of ``data`` that a fix-up may delete.

    Only names in a real ``__pycache__`` directory next to ``data``: through a symlinked
    one, the archive would have the fix-up delete whatever other member it points at.
    A cache name that is a directory is left too (the import system falls back to the
    source). A cache name that is itself a symlink is removed, not followed.
    """
    pycache = data.parent / "__pycache__"
    if not (pycache.is_dir() and _unlinked(tree, pycache)):
        return []
    stale = []
    for cached in sorted(pycache.glob(f"{glob.escape(data.stem)}.*.pyc")):
        try:
            mode = cached.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            stale.append(cached)
    return stale


#: What :meth:`Early.result` returns for a text it did not work out.
_NOT_WORKED_OUT: Any = object()
#: The files ``apply_fixups`` finds with ``lib/*/_sysconfigdata_*.py``, as written paths.
_SYSCONFIGDATA = re.compile(r"lib/[^/.][^/]*/_sysconfigdata_[^/]*\.py")


class Early:
    """The sysconfig fix-ups of one tree, worked out while its archive is still extracted.

    The extraction tells :meth:`written` of every file it writes (on its writer thread).
    A ``_sysconfigdata_*.py`` is parsed and patched there and then, in memory: a download
    usually has seconds to go at that point, and after its last byte only the rename of
    the patched file is left. The tree itself does not change until :func:`apply_fixups`
    runs, which uses a result only for a file whose text is still the one it was worked
    out from.
    """

    def __init__(self, tree: Path, final_path: Path) -> None:
        self.tree = tree
        self.prefix = str(final_path)
        #: Path -> (the text seen, the patched text or ``None`` or why it was skipped).
        self._results: dict[str, tuple[str, str | FixupSkipped | None]] = {}

    def written(self, rel: str) -> None:
        """The file ``rel`` (``/``-separated) of the tree has been written."""
        if not _SYSCONFIGDATA.fullmatch(rel):
            return
        path = os.path.join(self.tree, rel)
        result: str | FixupSkipped | None
        try:
            source = _read_text(Path(path))
            try:
                result = patched_sysconfigdata(source, self.prefix)
            except FixupSkipped as exc:
                result = exc
        except Exception:
            return  # only a head start: apply_fixups meets the problem again, and says it
        self._results[path] = (source, result)

    def result(self, path: Path, source: str) -> Any:
        """What :func:`patched_sysconfigdata` gave for ``source`` at ``path``, raised again
        if it raised; ``_NOT_WORKED_OUT`` if it was not worked out for that very text."""
        seen = self._results.get(os.fspath(path))
        if seen is None or seen[0] != source:
            return _NOT_WORKED_OUT
        if isinstance(seen[1], FixupSkipped):
            raise FixupSkipped(seen[1].reason)
        return seen[1]


class TreeFixups:
    """The fix-ups of one tree about to be installed at ``final_path``: worked out as its
    files are written (:meth:`written`), done once it is complete (:meth:`apply`)."""

    def __init__(self, tree: Path, final_path: Path, warn: Callable[[str], None]) -> None:
        self.tree = tree
        self.final_path = final_path
        self.warn = warn
        self._early = Early(tree, final_path)

    def written(self, rel: str) -> None:
        """The extraction wrote the file ``rel``; called on its writer thread."""
        self._early.written(rel)

    def apply(self) -> list[str]:
        """Apply the fix-ups (see :func:`apply_fixups`)."""
        return apply_fixups(self.tree, self.final_path, self.warn, early=self._early)


def apply_fixups(
    tree: Path,
    final_path: Path,
    warn: Callable[[str], None] | None = None,
    *,
    early: Early | None = None,
) -> list[str]:
    """Rewrite sysconfig data and pkg-config files of ``tree`` for ``final_path``.

    Return the POSIX-relative paths of the files that changed or were removed, so the
    install record can hash them as patched (or drop them). A file that cannot be parsed
    is left as it is, and ``warn`` is told why; the install goes on. ``early`` holds what
    was worked out while the tree was extracted (see :class:`Early`).
    """
    prefix = str(final_path)
    changed: list[str] = []

    def fix_data(path: Path, prefix: str) -> bool:
        return fix_sysconfigdata(path, prefix, early)

    def attempt(path: Path, fix: Callable[[Path, str], bool], consequence: str) -> bool:
        if not _inside(tree, path):
            return False
        try:
            return fix(path, prefix)
        except FixupSkipped as exc:
            if warn is not None:
                rel = path.relative_to(tree).as_posix()
                warn(f"{final_path.name}: left {rel} as shipped: {exc.reason}; {consequence}")
            return False

    for data in sorted(tree.glob("lib/*/_sysconfigdata_*.py")):
        if attempt(data, fix_data, "building C extensions may need CC and LDSHARED set"):
            changed.append(data.relative_to(tree).as_posix())
            # A stale bytecode cache would shadow the patched source.
            for cached in _stale_caches(tree, data):
                cached.unlink()
                changed.append(cached.relative_to(tree).as_posix())
    for pc in sorted(tree.glob("lib/pkgconfig/*.pc")):
        if attempt(pc, fix_pkgconfig, "pkg-config will report the build prefix"):
            changed.append(pc.relative_to(tree).as_posix())
    return changed


def fixup_for(platform: Platform) -> type[TreeFixups] | None:
    """The fix-ups of installs on ``platform``, one :class:`TreeFixups` per tree; ``None``
    where there is nothing to fix.

    Windows builds carry no ``_sysconfigdata`` module or ``.pc`` files.
    """
    if platform.is_windows:
        return None
    return TreeFixups
