"""What a sync has to do, decided from the lock and the install records alone.

Also the questions other commands ask of an install directory without changing it:
the status ``pylock list`` shows, which interpreters are current (for bin-dir links)
and where a locked interpreter's executable is (``pylock which`` and ``pylock run``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pylock.errors import PylockError, UsageError, missing_project_file, some_names
from pylock.fsutil import LOCK_FILENAME, display_path
from pylock.lockfile import Artifact, LockedPython, LockFile

if TYPE_CHECKING:
    from pylock.platforms import Platform
    from pylock.progress import Reporter


@attrs.frozen(kw_only=True)
class Job:
    """One interpreter to install: the lock entry and its artifact for this platform."""

    #: The lock entry.
    python: LockedPython
    #: The artifact for the target platform.
    artifact: Artifact


@attrs.frozen(kw_only=True)
class SyncPlan:
    """What a sync has to do, decided from the lock and the install records alone."""

    #: Interpreters to (re)install.
    jobs: tuple[Job, ...]
    #: Interpreters whose installed tree must not be replaced, each with why (a file
    #: system is mounted in it): they fail without a download.
    refused: tuple[tuple[str, PylockError], ...] = ()
    #: Interpreters already installed from the locked artifact.
    current: tuple[str, ...]
    #: Locked interpreters with no artifact for the target platform.
    unavailable: tuple[str, ...]
    #: Installed interpreters the lock no longer lists (to prune).
    stale: tuple[str, ...]
    #: Every name the lock lists: pruning never touches these.
    keep: frozenset[str]

    @property
    def is_noop(self) -> bool:
        """Whether nothing needs installing or removing."""
        return not self.jobs and not self.stale and not self.refused


def plan_sync(
    lock: LockFile,
    *,
    dest_root: Path,
    platform: Platform,
    only: Collection[str] = (),
    reinstall: bool = False,
    prune: bool = True,
    fixups: bool | None = None,
) -> SyncPlan:
    """Decide what to do; reads only small install-record files (and the mount table, for
    a tree to replace). ``fixups``: whether the sync installs with fix-ups, which a tree
    installed otherwise is not current for."""
    from pylock.sync.install import installed_names, refuse_to_replace
    from pylock.sync.records import installed_state, is_current

    unknown = sorted(set(only) - set(lock.names))
    if unknown:
        raise unknown_names(unknown, lock, LOCK_FILENAME)
    jobs: list[Job] = []
    refused: list[tuple[str, PylockError]] = []
    current: list[str] = []
    unavailable: list[str] = []
    for python in lock.pythons:
        if only and python.name not in only:
            continue
        artifact = python.artifact_for(platform.key)
        if artifact is None:
            if only:
                raise PylockError(
                    f"{python.name} is not locked for {platform.key} "
                    f"(locked for: {', '.join(python.platforms)})",
                    hint=f"add {platform.key!r} to its platforms in pythons.toml "
                    "and run `pylock lock`",
                )
            unavailable.append(python.name)
            continue
        state = installed_state(dest_root, python.name)
        if not reinstall and state is not None and is_current(state, artifact, fixups=fixups):
            current.append(python.name)
        elif (mounted := refuse_to_replace(dest_root / python.name)) is not None:
            # Refused now, not once its archive is downloaded (minutes, on a slow link).
            refused.append((python.name, mounted))
        else:
            jobs.append(Job(python=python, artifact=artifact))
    stale: list[str] = []
    if prune and dest_root.is_dir():
        stale = sorted(set(installed_names(dest_root)) - set(lock.names))
    return SyncPlan(
        jobs=tuple(jobs),
        refused=tuple(refused),
        current=tuple(current),
        unavailable=tuple(unavailable),
        stale=tuple(stale),
        keep=frozenset(lock.names),
    )


def warn_if_config_changed(
    config_path: Path, lock_path: Path, lock: LockFile, reporter: Reporter
) -> bool:
    """Warn when ``pythons.toml`` no longer matches the digest the lock was made from;
    return whether it did."""
    if not config_path.is_file():
        return False
    from pylock.config import digests_of_file

    if lock.config_digest in digests_of_file(config_path):
        return False
    reporter.warn(
        f"{config_path.name} changed since {lock_path.name} was written; installing what "
        "the lock says (run `pylock lock` to update it)"
    )
    return True


def unknown_names(names: Sequence[str], lock: LockFile, lock_name: str) -> UsageError:
    """The error for interpreter names the lock does not have (``which``, ``run``,
    ``sync --only``), worded one way for all."""
    return UsageError(
        f"no interpreter named {', '.join(map(repr, names))} in {lock_name} "
        f"(locked: {some_names(lock.names, names) or 'nothing'})"
    )


def current_names(
    lock: LockFile, dest_root: Path, platform: Platform, *, fixups: bool | None = None
) -> list[str]:
    """The locked interpreters installed in ``dest_root`` from their locked artifact (and
    with fix-ups or without, given ``fixups``)."""
    from pylock.sync.records import installed_state, is_current

    names = []
    for python in lock.pythons:
        artifact = python.artifact_for(platform.key)
        state = installed_state(dest_root, python.name)
        if (
            artifact is not None
            and state is not None
            and is_current(state, artifact, fixups=fixups)
        ):
            names.append(python.name)
    return names


class Standing(enum.StrEnum):
    """Where a locked interpreter stands on this machine: ``pylock list``'s ``state``."""

    INSTALLED = "installed"
    NOT_INSTALLED = "not-installed"
    #: Installed from another artifact than the lock names now (or fixed up elsewhere).
    OUT_OF_DATE = "out-of-date"
    #: The lock has no artifact for this platform.
    NOT_LOCKED = "not-locked"
    #: A tree installed for another platform (``sync --platform``); ``list --platform KEY``
    #: judges it for that one.
    OTHER_PLATFORM = "other-platform"

    @property
    def text(self) -> str:
        """The words ``pylock list`` shows people (its JSON's ``status``)."""
        return _STATE_TEXT[self]


_STATE_TEXT = {
    Standing.INSTALLED: "installed",
    Standing.NOT_INSTALLED: "not installed",
    Standing.OUT_OF_DATE: "out of date (run `pylock sync`)",
    Standing.NOT_LOCKED: "not locked for this platform",
    # Never what `list` shows (Status.text names the platform); here so that every state
    # has its words.
    Standing.OTHER_PLATFORM: "installed for another platform",
}


@attrs.frozen(kw_only=True)
class Status:
    """One locked interpreter as ``pylock list`` reports it."""

    python: LockedPython
    #: Where it stands.
    state: Standing
    #: Whether the archive for this platform is in the cache.
    cached: bool
    #: The install tree, if pylock installed something there.
    path: Path | None
    #: The platform key the tree was installed for, when not the one asked about.
    installed_for: str | None = None
    #: The platform key the user asked about (``list --platform``), if named.
    asked: str | None = None

    @property
    def text(self) -> str:
        """The words ``pylock list`` shows people (its JSON's ``status``): the state's,
        naming the platform for a tree installed for another one."""
        words = self.state.text
        if self.state is Standing.NOT_LOCKED and self.asked is not None:
            words = f"not locked for {self.asked}"
        if self.installed_for is None:
            return words
        key = self.installed_for
        tree = f"installed for {key} (check it with `pylock list --platform {key}`)"
        return f"{words}; {tree}" if self.state is Standing.NOT_LOCKED else tree


def tree_platform(recorded: str, platform: Platform) -> Platform | None:
    """The platform a tree was installed for, from its record's key, when not ``platform``
    (``sync --platform``): it has that platform's layout, and its lock entry is that one's.
    ``None`` for this platform's trees (under any spelling of its key), and for a key this
    pylock does not know, which is taken for this platform's too."""
    if recorded == platform.key:
        return None
    from pylock.platforms import Platform

    try:
        parsed = Platform.parse(recorded)
    except ValueError:
        return None
    return parsed if parsed.key != platform.key else None


def install_status(
    lock: LockFile,
    dest_root: Path,
    platform: Platform,
    is_cached: Callable[[Artifact], bool],
    *,
    named: bool = False,
) -> list[Status]:
    """Each locked interpreter's state in ``dest_root`` for ``platform``, in lock order;
    ``named`` when the user named the platform (``list --platform KEY``), whose key the
    words then say instead of "this platform".

    A tree installed for another platform (``sync --platform``) is neither current nor out
    of date for this one, which it may not even run on: it is :attr:`Standing.OTHER_PLATFORM`,
    or :attr:`Standing.NOT_LOCKED` where the lock has nothing for this platform (the state
    answers for the platform asked about; ``installed_for`` names the tree's).
    """
    from pylock.sync.records import installed_state, is_current

    rows = []
    for python in lock.pythons:
        artifact = python.artifact_for(platform.key)
        state = installed_state(dest_root, python.name)
        foreign = tree_platform(state.platform, platform) if state is not None else None
        installed_for = foreign.key if foreign is not None else None
        if artifact is None:
            where = Standing.NOT_LOCKED
        elif foreign is not None:
            where = Standing.OTHER_PLATFORM
        elif state is None:
            where = Standing.NOT_INSTALLED
        elif is_current(state, artifact):
            where = Standing.INSTALLED
        else:
            where = Standing.OUT_OF_DATE
        rows.append(
            Status(
                python=python,
                state=where,
                cached=artifact is not None and is_cached(artifact),
                path=dest_root / python.name if state is not None else None,
                installed_for=installed_for,
                asked=platform.key if named else None,
            )
        )
    return rows


@attrs.frozen(kw_only=True)
class Located:
    """A locked interpreter found installed."""

    python: LockedPython
    #: Its executable.
    executable: Path
    #: Installed from another artifact than the lock names now.
    out_of_date: bool
    #: The platform the tree was installed for (``sync --platform``), when not this one.
    foreign: Platform | None = None
    #: Installed by pylock, but not in the lock (``sync --no-prune`` kept it, or another
    #: project's lock synced into the same directory).
    unlocked: bool = False


def locate(
    name: str,
    *,
    lock: LockFile | None,
    lock_path: Path,
    dest_root: Path,
    platform: Platform,
    check_executable: bool = True,
    into: str | None = None,
) -> Located:
    """Find interpreter ``name`` in ``dest_root``: the one lookup ``which`` and ``run`` share.

    ``into`` is the ``--into`` the command was given, for the commands its hints name.

    With ``lock`` the name must be locked, or installed by pylock (a tree ``sync
    --no-prune`` kept after the lock dropped it); without one (a slim image holding only
    the install directory) the install record says what it is.
    """
    from pylock.sync.install import executable, python_from_state
    from pylock.sync.records import installed_state, is_current

    shown = display_path(dest_root)
    state = installed_state(dest_root, name)
    locked = lock.get(name) if lock is not None else None
    if locked is not None:
        python = locked
    elif lock is not None and state is None:
        raise unknown_names([name], lock, lock_path.name)
    elif state is not None:
        python = python_from_state(state)
    else:
        from pylock.sync.install import installed_there

        missing = PylockError(
            f"no lock file at {lock_path} and no {name!r} installed in {shown}"
            + installed_there(dest_root, [name]),
            # --into may have been given already: then it named the wrong directory.
            hint="run it in the project (or pass --project DIR), or give the --into DIR "
            "that holds it",
        )
        raise missing_project_file(missing, lock_path)
    # Synced with --platform: the tree has that platform's layout (and may not run here).
    foreign = tree_platform(state.platform, platform) if state is not None else None
    platform = foreign or platform
    artifact = python.artifact_for(platform.key)
    if state is None:
        if lock is not None and artifact is None:
            # `sync` skips it, so "run pylock sync" would send the user in a circle.
            raise PylockError(
                f"{python.name} is not locked for {platform.key} "
                f"(locked for: {', '.join(python.platforms) or 'nothing'})",
                hint=f"add {platform.key!r} to its platforms in pythons.toml and run `pylock lock`",
            )
        raise PylockError(
            f"{python.name} is not installed in {shown}",
            hint=f"run `pylock sync{into_option(into)}` first",
        )
    exe = executable(dest_root, python, platform)
    if check_executable and not exe.is_file():
        raise PylockError(
            f"{python.name} has no executable at {exe}",
            hint=repair_hint(python.name, into),
        )
    if check_executable and foreign is None and os.name != "nt" and not os.access(exe, os.X_OK):
        # What `run` would meet: name it now, not a path that cannot be run.
        if exe.stat().st_mode & 0o111:
            # Executable bits, and still refused: a file system mounted noexec.
            raise PylockError(
                f"{python.name}'s {exe} cannot be run here: its file system does not let "
                "programs run (mounted noexec?)",
                hint="sync into a directory where programs may run (--into DIR)",
            )
        raise PylockError(
            f"{python.name}'s {exe} cannot be run (not executable)",
            hint=repair_hint(python.name, into),
        )
    return Located(
        python=python,
        executable=exe,
        out_of_date=artifact is not None and not is_current(state, artifact),
        foreign=foreign,
        unlocked=lock is not None and locked is None,
    )


def repair_hint(name: str, into: str | None = None) -> str:
    """What to do about an install of ``name`` that does not work as it should, in the
    install directory ``--into`` named (``into``), if it was given."""
    where = into_option(into)
    return (
        f"run `pylock verify{where} {name}` to check the install, "
        f"`pylock sync --reinstall{where}` to repair it"
    )


def into_option(into: str | None) -> str:
    """`` --into DIR`` for a command a hint names, when the command that failed was given
    ``--into DIR``: without it, the command named would act on another directory.

    >>> into_option(None), into_option("/opt/my python")
    ('', " --into '/opt/my python'")
    """
    import shlex

    return f" --into {shlex.quote(into)}" if into else ""
