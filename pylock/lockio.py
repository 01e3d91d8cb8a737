"""``pythons.lock`` on disk: read, validated, and explained when it cannot be.

Every command that reads a lock reads it here: ``sync``, ``list``, ``diff``, ``verify``,
``mirror``, and ``lock`` itself (the lock it builds on). They need nothing of resolving,
which :mod:`pylock.project` does, so a sync does not import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pylock.errors import LockFileError, Problem, PylockError, missing_project_file

if TYPE_CHECKING:
    from pylock.lockfile import LockFile


def read_previous(lock_path: Path) -> tuple[LockFile, str] | None:
    """The existing lock and the text it was parsed from (read once: the file may change);
    ``None`` if there is none."""
    from pylock.lockfile import REPAIR_HINT, loads

    try:
        text = read_lock_text(lock_path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise cannot_read(lock_path, exc) from None
    except UnicodeDecodeError as exc:
        raise LockFileError(
            lock_path.name, [Problem("", unreadable(exc))], hint=REPAIR_HINT
        ) from None
    return loads(text, filename=lock_path.name), text


def read_lock(lock_path: Path) -> LockFile:
    """Read and validate a lock that must exist, or explain how to create or repair it."""
    return read_lock_and_digest(lock_path)[0]


def read_lock_and_digest(lock_path: Path) -> tuple[LockFile, str]:
    """:func:`read_lock`, and the sha256 of the very bytes it parsed (the file may change
    while a sync runs; the fast-path state must name what the sync installed)."""
    import hashlib

    from pylock.fsutil import display_path
    from pylock.lockfile import REPAIR_HINT, loads, lock_text
    from pylock.ownfiles import read_project_file

    shown = display_path(lock_path)
    try:
        data = read_project_file(lock_path)
        text = lock_text(data)
    except FileNotFoundError:
        if os.path.islink(lock_path):
            from pylock.fsutil import missing

            raise PylockError(
                f"{lock_path.parent}: {missing(lock_path)}",
                hint="point the link at a lock, or remove it and run `pylock lock`",
            ) from None
        error = PylockError(f"no lock file at {lock_path}", hint="create it with `pylock lock`")
        raise missing_project_file(error, lock_path) from None
    except OSError as exc:
        raise cannot_read(lock_path, exc) from None
    except UnicodeDecodeError as exc:
        raise LockFileError(shown, [Problem("", unreadable(exc))], hint=REPAIR_HINT) from None
    return loads(text, filename=shown), hashlib.sha256(data).hexdigest()


def read_lock_text(lock_path: Path) -> str:
    """The lock's text, decoded, without validating it (``OSError``, ``UnicodeDecodeError``)."""
    from pylock.lockfile import lock_text
    from pylock.ownfiles import read_project_file

    return lock_text(read_project_file(lock_path))


#: What to do about a lock the OS will not let pylock read (its bytes are not the problem).
UNREADABLE_HINT = (
    "check its permissions and owner (`ls -l`), then run the command again; `pylock lock` "
    "does not replace a lock it cannot read"
)


def cannot_read(lock_path: Path, exc: OSError) -> PylockError:
    """The error for a lock that exists but cannot be read (permissions, I/O, a FIFO)."""
    from pylock.ownfiles import RefusedFileError

    name = lock_path.name
    if os.path.isdir(lock_path):
        hint = f"{name} is a directory: move it aside, then run `pylock lock` again"
    elif isinstance(exc, RefusedFileError):
        hint = f"put a lock file there, or remove {name} and run `pylock lock`"
    else:
        hint = UNREADABLE_HINT
    return PylockError(f"cannot read {lock_path}: {exc.strerror or exc}", hint=hint)


def unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """What is wrong with a lock file that cannot be read, as a problem's words."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {exc.start})"
    return f"cannot read: {exc.strerror or exc}"


def holds_project(directory: Path) -> bool:
    """Whether ``directory`` holds a ``pythons.toml`` or a ``pythons.lock`` (a link too)."""
    from pylock.fsutil import CONFIG_FILENAME, LOCK_FILENAME

    return any(os.path.lexists(directory / name) for name in (CONFIG_FILENAME, LOCK_FILENAME))


def project_above(directory: Path) -> Path | None:
    """The nearest directory above ``directory`` that holds a project (see
    :func:`holds_project`): where a user who ran pylock in a subdirectory of a project
    (``src/``) meant to run it. pylock itself looks in the project directory only."""
    for parent in directory.parents:
        try:
            if holds_project(parent):
                return parent
        except (OSError, ValueError):
            return None
    return None
