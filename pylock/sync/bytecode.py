"""Check the bytecode caches an interpreter wrote into its tree against their sources.

Running Python writes ``__pycache__/NAME.TAG[.opt-N].pyc`` next to every module it
imports. Those files are not the archive's, so the install record cannot hash them; yet
a planted one with a matching header runs instead of its source. ``pylock verify`` has
the tree's own interpreter compile each recorded source that has such a cache and
compare the code objects: a cache is trusted only if it is what that source compiles to.

The checker runs as ``python -I -S -B -X pycache_prefix=EMPTY``: isolated, without
``site``, and with every bytecode cache in the tree ignored, so the modules it needs at
start-up come from their (already verified) sources, never from a cache under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs

#: Runs inside the tree's interpreter. Reads ``LEVEL\0TAG\0PYC\0SOURCE\0`` records on stdin
#: and prints one line per record: ``1`` when the cache holds exactly the code the
#: source compiles to at that optimization level, else ``0``. Imports only built-ins.
_CHECKER = r"""
import sys, marshal
try:
    from _frozen_importlib_external import MAGIC_NUMBER
except ImportError:
    from importlib.util import MAGIC_NUMBER
tag = sys.implementation.cache_tag
fields = sys.stdin.buffer.read().split(b"\0")
for i in range(0, len(fields) - 3, 4):
    ok = False
    try:
        if fields[i + 1].decode() == tag:
            with open(fields[i + 2], "rb") as f:
                data = f.read()
            if data[:4] == MAGIC_NUMBER:
                cached = marshal.loads(data[16:])
                with open(fields[i + 3], "rb") as f:
                    source = f.read()
                path = fields[i + 3].decode("utf-8", "surrogateescape")
                fresh = compile(source, path, "exec", dont_inherit=True, optimize=int(fields[i]))
                # Code equality ignores co_filename; NaN constants compare unequal, so
                # fall back to the serialised form.
                ok = cached == fresh or marshal.dumps(cached) == marshal.dumps(fresh)
    except Exception:
        ok = False
    sys.stdout.write("1\n" if ok else "0\n")
    sys.stdout.flush()
"""

#: The longest a bytecode check may take (a compiled stdlib takes seconds).
_TIMEOUT = 900


@attrs.frozen(kw_only=True)
class CachedBytecode:
    """One ``__pycache__`` file and the source module it claims to cache."""

    #: The cache file, relative to the tree, ``/``-separated.
    path: str
    #: The source it caches (``DIR/NAME.py`` for ``DIR/__pycache__/NAME.TAG.pyc``).
    source: str
    #: The interpreter's cache tag in its name, e.g. ``cpython-312``.
    tag: str
    #: The optimization level in its name (``.opt-1`` -> 1).
    optimize: int


def parse_cache_path(rel: str) -> CachedBytecode | None:
    """What a ``__pycache__`` path caches; ``None`` if its name is not a cache name.

    >>> parse_cache_path("lib/python3.12/json/__pycache__/decoder.cpython-312.opt-1.pyc")
    CachedBytecode(path='lib/python3.12/json/__pycache__/decoder.cpython-312.opt-1.pyc', \
source='lib/python3.12/json/decoder.py', tag='cpython-312', optimize=1)
    >>> parse_cache_path("lib/__pycache__/notes.txt") is None
    True
    """
    directory, _, name = rel.rpartition("/")
    parent, _, cache_dir = directory.rpartition("/")
    if cache_dir != "__pycache__" or not name.endswith(".pyc"):
        return None
    stem = name[: -len(".pyc")]
    optimize = 0
    for level in (1, 2):
        if stem.endswith(f".opt-{level}"):
            optimize = level
            stem = stem[: -len(".opt-1")]
    module, dot, tag = stem.rpartition(".")
    if not dot or not module or not tag:
        return None
    source = f"{parent}/{module}.py" if parent else f"{module}.py"
    return CachedBytecode(path=rel, source=source, tag=tag, optimize=optimize)


def mismatched_bytecode(
    tree: Path, executable: Path, caches: Sequence[CachedBytecode]
) -> list[str]:
    """The ``caches`` that are not exactly what their source compiles to, by path.

    ``executable`` (the tree's interpreter) does the compiling. A cache that cannot be
    checked (the interpreter does not run on this machine, or dies) counts as mismatched.
    """
    if not caches:
        return []
    records = bytearray()
    for cache in caches:
        for field in (
            str(cache.optimize),
            cache.tag,
            os.path.join(tree, cache.path),
            os.path.join(tree, cache.source),
        ):
            records += os.fsencode(field) + b"\0"
    empty = tempfile.mkdtemp(prefix="pylock-verify-")
    try:
        done = subprocess.run(
            [str(executable), "-I", "-S", "-B", "-X", f"pycache_prefix={empty}", "-c", _CHECKER],
            input=bytes(records),
            capture_output=True,
            cwd=empty,
            timeout=_TIMEOUT,
            check=False,
        )
        verdicts = done.stdout.split()
    except (OSError, subprocess.SubprocessError):
        verdicts = []
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    return [
        cache.path
        for index, cache in enumerate(caches)
        if index >= len(verdicts) or verdicts[index] != b"1"
    ]
