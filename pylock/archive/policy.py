"""The safety policy for member names and links: what a refused archive can never do.

Every member name is split into components here, refusing absolute paths, ``..``, drive
letters, backslashes, control characters and (on Windows) names that alias other files.
A symlink target must stay inside the destination, lexically when it is extracted and
again on disk once every link exists (:func:`check_symlinks`). The checks that need the
members extracted before (duplicates, writing through a symlink, hardlinks to earlier
files) live with the extraction in :mod:`pylock.archive.extract`.
"""

from __future__ import annotations

import os
import re
import sys

from pylock.errors import ArchiveError

WINDOWS = sys.platform == "win32"
DRIVE = re.compile(r"^[A-Za-z]:")
#: C0 and C1 control characters and DEL: no real member name has one, and a terminal obeys them.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: The most components a member name may have. A CPython 3.11 install's deepest file is 10
#: deep (``lib/python3.11/lib2to3/tests/data/fixers/myfixes/...``); a tree hundreds deep
#: defeats tools that recurse or keep a directory open per level (``shutil.rmtree``).
MAX_DEPTH = 64
#: Most members an archive may have. A python-build-standalone ``full`` build has about
#: 10,000 and GraalPy tens of thousands; extraction keeps a few hundred bytes per member
#: (and the install record a line), so a million empty files would cost 600 MB and
#: minutes. 200,000 leaves a margin of 5x over the largest real archive.
MAX_MEMBERS = 200_000
#: What to do about an archive past one of the limits.
_LIMIT_HINT = (
    "real interpreter archives are far smaller: check that the URL and sha256 the lock "
    "names for it are the interpreter build you meant"
)


def amount(size: int) -> str:
    """A byte count as a limit's message gives it.

    >>> amount(4 << 30), amount(1000)
    ('4 GiB', '1,000 bytes')
    """
    if size >= 1 << 30 and not size % (1 << 30):
        return f"{size >> 30} GiB"
    return f"{size:,} bytes"


def limit_error(message: str, *, archive: str, member: str | None = None) -> ArchiveError:
    """The error for an archive over one of pylock's limits, with what to do about it."""
    error = ArchiveError(message, archive=archive, member=member)
    error.hint = _LIMIT_HINT
    return error


def split_name(name: str, archive: str) -> list[str]:
    """The components of a member name, refusing every form that could leave ``dest``."""

    def refuse(why: str) -> ArchiveError:
        return ArchiveError(why, archive=archive, member=name)

    if not name or "\0" in name:
        raise refuse("empty member name or NUL in it")
    if not name.isprintable() and CONTROL.search(name):
        raise refuse("control character in member name")
    if "\\" in name:
        # A separator on Windows, where ``..\\..\\x`` escapes; no real archive needs one.
        raise refuse("backslash in member name")
    if name.startswith("/"):
        raise refuse("absolute path")
    if DRIVE.match(name):
        raise refuse("path with a drive letter")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise refuse("'..' in member name")
    if len(parts) > MAX_DEPTH:
        raise refuse(f"member name {len(parts)} levels deep (at most {MAX_DEPTH})")
    if WINDOWS and any(aliased_on_windows(part) for part in parts):
        raise refuse("name that Windows would alias to another file or a device")
    return parts


#: Device names Windows reserves in every directory, with any extension (``NUL.txt``).
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")]
)


def aliased_on_windows(part: str) -> bool:
    """Whether Windows opens something else than the file ``part`` names: a stream
    (``a:b``), a name it trims (``x.``, ``x ``), or a device (``NUL``, ``aux.py``, ``COM1``).

    >>> [aliased_on_windows(n) for n in ("aux.py", "Con", "com1.txt", "auxiliary", "a:b")]
    [True, True, True, False, True]
    """
    if ":" in part or part.endswith((".", " ")):
        return True
    return part.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def unaliased(name: str) -> str:
    """``name``, with a ``_`` in front if Windows would alias it (:func:`aliased_on_windows`):
    for file names pylock makes up from URLs, which a device name must not take over.

    >>> unaliased("nul.tar.gz"), unaliased("aux.example.org_x"), unaliased("python.tar.gz")
    ('_nul.tar.gz', '_aux.example.org_x', 'python.tar.gz')
    """
    return f"_{name}" if aliased_on_windows(name) else name


def join_link(parent: str, target: str) -> str | None:
    """Resolve a relative link target lexically from its directory; ``None`` if it escapes.

    >>> join_link("lib", "libpython3.12.so.1.0"), join_link("bin", "../lib/x")
    ('lib/libpython3.12.so.1.0', 'lib/x')
    >>> join_link("bin", "../../etc/passwd") is None
    True
    """
    parts = parent.split("/") if parent else []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def link_target_problem(rel: str, target: str) -> str | None:
    """Why the symlink ``rel`` may not point at ``target``; ``None`` if it may.

    >>> link_target_problem("bin/python", "python3.12") is None
    True
    >>> link_target_problem("bin/x", "../../etc/passwd")
    'symlink target ../../etc/passwd escapes the destination'
    """
    if not target or "\0" in target:
        return "symlink with an empty target"
    if CONTROL.search(target):
        return "control character in symlink target"
    if target.startswith(("/", "\\")) or DRIVE.match(target):
        return f"symlink to an absolute path {target}"
    if "\\" in target:
        return f"backslash in symlink target {target}"
    if join_link(rel.rpartition("/")[0], target) is None:
        return f"symlink target {target} escapes the destination"
    return None


def check_symlinks(dest: str, symlinks: list[str], archive: str) -> None:
    """Resolve every symlink on disk: chains of links that each look fine can still escape."""
    root = os.path.realpath(dest)
    escaping = []
    for rel in symlinks:
        path = os.path.join(dest, rel)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            escaping.append((rel, path))
    for _, path in escaping:
        # Do not leave a way out behind, even for a caller that forgets to delete ``dest``.
        os.unlink(path)
    if escaping:
        raise ArchiveError(
            "symlink resolves outside the destination (through other links)",
            archive=archive,
            member=escaping[0][0],
        )
