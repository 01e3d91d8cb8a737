"""Reviewing a lock: ``pylock diff`` (which two locks to compare) and ``pylock outdated``
(which listings to compare the lock with, and what to do when upstream cannot be reached).

The comparisons themselves are pure and live in :mod:`pylock.diff` and
:mod:`pylock.outdated`; this module does the reading and fetching around them, including
asking git for the lock at an older revision. Nothing here prints: warnings go to the
reporter, results go back to the CLI.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pylock.errors import GitError, LockFileError, PylockError, UsageError
from pylock.fsutil import LOCK_FILENAME, find_program

if TYPE_CHECKING:
    from pylock.config import Config
    from pylock.index.model import Index
    from pylock.lockfile import LockFile
    from pylock.net.options import FetchOptions
    from pylock.outdated import OutdatedEntry
    from pylock.progress import Reporter
    from pylock.settings import Settings


@attrs.frozen
class LabelledLock:
    """A lock and how to name it in the output."""

    lock: LockFile
    label: str


def working_tree_lock(lock_path: Path) -> LabelledLock:
    """The project's lock; a missing one is empty, so a deleted lock shows every entry removed."""
    from pylock.diff import empty_lock
    from pylock.lockio import read_lock

    if not lock_path.exists():
        return LabelledLock(empty_lock(), f"{LOCK_FILENAME} (missing)")
    return LabelledLock(read_lock(lock_path), LOCK_FILENAME)


def locks_to_compare(
    project: Path,
    lock_path: Path,
    *,
    old: str | None = None,
    new: str | None = None,
    base: str | None = None,
    settings: Settings | None = None,
) -> tuple[LabelledLock, LabelledLock]:
    """The two locks ``pylock diff`` compares.

    ``OLD [NEW]`` lock files (``NEW`` defaults to the working tree's), else the lock at the
    git ref ``base`` (default ``HEAD``; empty when the ref has none) and the working tree's.
    git runs in ``settings``' environment.
    """
    from pylock.diff import empty_lock

    if base is not None and old is not None:
        raise UsageError("give either --base GITREF or OLD [NEW] lock files, not both")
    if base is not None and not base.strip():
        # Most often an unset variable (`--base "$BASE"`): comparing with HEAD instead
        # would pass a check that was meant to run against another ref.
        raise UsageError(
            "--base is empty", hint="give a git ref, e.g. --base origin/main, or leave it out"
        )
    for given, what in ((old, "OLD"), (new, "NEW")):
        if given is not None and not given.strip():
            raise UsageError(f"{what} is empty", hint="give the path of a pythons.lock file")
    if old is not None:
        before = LabelledLock(_read_given(Path(old)), old)
        if new is None and not lock_path.exists():
            # Not a deleted lock (that is the git form's job): run from elsewhere, OLD
            # would show every entry removed from a lock that is not there.
            raise PylockError(
                f"no {lock_path.name} at {lock_path} to compare {old} with",
                hint="pass the NEW lock too, or run in the project (or with --project DIR)",
            )
        after = (
            LabelledLock(_read_given(Path(new)), new)
            if new is not None
            else working_tree_lock(lock_path)
        )
        return before, after
    ref = "HEAD" if base is None else base
    try:
        at_ref, label = lock_at_ref(project, ref, LOCK_FILENAME, settings=settings)
    except LockFileError as exc:
        from pylock.lockfile import UPGRADE_HINT

        if exc.hint != UPGRADE_HINT:
            # Re-locking the working tree cannot mend what is committed at the ref.
            exc.hint = (
                f"the lock committed at {ref} is broken; compare against another ref "
                "(--base REF), or give both files: `pylock diff OLD NEW`"
            )
        raise
    before = (
        LabelledLock(at_ref, label)
        if at_ref is not None
        else LabelledLock(empty_lock(), f"{ref} (no lock)")
    )
    return before, working_tree_lock(lock_path)


def _read_given(path: Path) -> LockFile:
    """A lock file named on the command line, or a project directory's (as ``cache prune
    --keep-lock`` takes them); its errors say what ``diff`` expects."""
    from pylock.lockfile import UPGRADE_HINT
    from pylock.lockio import read_lock

    if path.is_dir():
        path = path / LOCK_FILENAME
    try:
        return read_lock(path)
    except PylockError as exc:
        if exc.hint != UPGRADE_HINT:  # a newer pylock's lock is a lock file all the same
            exc.hint = (
                "OLD and NEW are pythons.lock files, as `pylock lock` writes them (or "
                "project directories that hold one)"
            )
        raise


# -- the lock at a git ref ------------------------------------------------------------------


def read_lock_at_ref(
    project: Path, ref: str, filename: str = LOCK_FILENAME, *, settings: Settings | None = None
) -> LockFile | None:
    """``project/filename`` as committed at ``ref``, or ``None`` if it did not exist there.

    ``ref`` is anything git understands (``HEAD``, ``origin/main``, a sha). A ref that
    does not exist, or a project outside a git work tree, raises :class:`GitError`.
    An unborn ``HEAD`` (a repository without commits) counts as "no lock yet". git runs
    in ``settings``' environment (default: this process's).
    """
    return lock_at_ref(project, ref, filename, settings=settings)[0]


#: How many committed symlinks :func:`lock_at_ref` follows from the lock (a loop ends).
_MAX_LINKS = 8


def lock_at_ref(
    project: Path, ref: str, filename: str = LOCK_FILENAME, *, settings: Settings | None = None
) -> tuple[LockFile | None, str]:
    """:func:`read_lock_at_ref`, and how to name what it read: ``REF:PATH``, the path from
    the repository's top, as git spells it (``HEAD:sub/pythons.lock``). Committed
    symlinks are followed within the tree at ``ref`` (at most :data:`_MAX_LINKS`)."""
    from pylock.lockfile import loads, lock_text
    from pylock.settings import Settings

    if ref.startswith("-"):  # git would read it as an option
        raise UsageError(
            f"invalid git ref {ref!r}", hint="give a branch, tag or commit, e.g. origin/main"
        )
    # Never wait on a credential prompt or a pager in CI.
    env = (settings or Settings.current()).child_environ(
        GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", LC_ALL="C"
    )
    # And where the project sits in it (`sub/`), to name the lock as git spells it.
    code, out, err = _git(project, env, "rev-parse", "--is-inside-work-tree", "--show-prefix")
    if code != 0:
        if "dubious ownership" in err or "safe.directory" in err:
            # A CI container checking out as another user than the one running git.
            raise GitError(
                f"git refuses the repository of {project}: another user owns it",
                hint="trust it with `git config --global --add safe.directory <its top>` "
                "(or pass the old lock file explicitly: `pylock diff OLD [NEW]`)",
            )
        first = next((line for line in err.splitlines() if line.strip()), "")
        raise GitError(
            f"{project} is not inside a git work tree: {first}"
            if first
            else f"{project} is not inside a git work tree",
            hint="pass the old lock file explicitly: `pylock diff OLD [NEW]`",
        )
    inside, *prefix = out.decode("utf-8", "replace").split("\n")[:2]
    if "GIT_DIR" in env and "GIT_WORK_TREE" not in env:
        # git then takes the current directory (the project) for the top of the work tree,
        # and looks for the lock there at the ref: everything would look "added".
        raise GitError(
            "GIT_DIR is set without GIT_WORK_TREE: git would take the project directory for "
            "the top of the repository's work tree",
            hint="unset GIT_DIR (or set GIT_WORK_TREE too), or pass the old lock file "
            "explicitly: `pylock diff OLD [NEW]`",
        )
    if inside.strip() != "true":
        # In a repository, outside the work tree git was told of (GIT_WORK_TREE, or a
        # bare repository): every path would be missing at the ref, all "added".
        raise GitError(
            f"{project} is not inside the work tree of its git repository"
            + (" (GIT_WORK_TREE is set)" if "GIT_WORK_TREE" in env else ""),
            hint="run where git finds the project in its work tree, or pass the old lock "
            "file explicitly: `pylock diff OLD [NEW]`",
        )
    where = f"{ref}:{''.join(prefix).strip()}{filename}"
    code, _, _ = _git(project, env, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if code != 0:
        if ref == "HEAD":
            return None, where
        raise GitError(
            f"unknown git ref {ref!r}",
            hint="in CI, fetch the base branch first (e.g. `actions/checkout` with "
            "`fetch-depth: 0`)",
        )
    # Paths are relative to the current directory, i.e. the project (`REF:./path` too).
    path, target = filename, ""
    for _ in range(_MAX_LINKS):
        code, listed, _ = _git(project, env, "ls-tree", ref, "--", path)
        if code == 0 and not listed and not target:
            return None, where  # not committed at this ref
        if code != 0 or listed.startswith(b"100"):  # a file, 100644 or 100755
            break
        if not listed.startswith(b"120000 "):
            raise GitError(
                f"{where} is not a file at {ref}"
                if not target
                else f"{where} is a symlink to {target}, which is not a file at {ref}",
                hint="pass the old lock file explicitly: `pylock diff OLD [NEW]`",
            )
        code, link, _ = _git(project, env, "cat-file", "blob", f"{ref}:./{path}")
        target = link.decode("utf-8", "replace")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if target.startswith("/") or "\n" in target:
            raise GitError(
                f"{where} is a symlink to {target}, outside what git keeps",
                hint="pass the old lock file explicitly: `pylock diff OLD [NEW]`",
            )
    else:
        raise GitError(f"{where} is a chain of more than {_MAX_LINKS} symlinks at {ref}")
    spec = f"{ref}:./{path}"
    # Sized first, as a lock on disk is: a huge blob would be read whole into memory.
    from pylock import ownfiles

    code, size, _ = _git(project, env, "cat-file", "-s", spec)
    if code == 0 and size.strip().isdigit() and int(size) > ownfiles.PROJECT_FILE_LIMIT:
        raise GitError(
            f"{where} is {ownfiles.too_large(where, ownfiles.PROJECT_FILE_LIMIT)}",
            hint="compare against another ref (--base REF)",
        )
    code, data, err = _git(project, env, "cat-file", "blob", spec)
    if code != 0:
        raise GitError(f"git could not read {spec}: {err}")
    try:
        text = lock_text(data)
    except UnicodeDecodeError:
        raise GitError(f"{where} is not UTF-8 text") from None
    return loads(text, filename=where), where


def _git(project: Path, env: Mapping[str, str], *args: str) -> tuple[int, bytes, str]:
    import subprocess

    if not project.is_dir():
        # subprocess says FileNotFoundError for a missing working directory too.
        raise GitError(f"the project directory {project} does not exist")
    no_git = GitError(
        "git is not installed, so `pylock diff` cannot read an older pythons.lock",
        hint="pass the old lock file explicitly: `pylock diff OLD [NEW]`",
    )
    # By its absolute path: given a bare name, Windows looks in the project first.
    git = find_program("git", env)
    if git is None:
        raise no_git
    try:
        done = subprocess.run([git, *args], cwd=project, capture_output=True, check=False, env=env)
    except FileNotFoundError:
        raise no_git from None
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace").strip()


# -- outdated --------------------------------------------------------------------------------


@attrs.frozen
class OutdatedReport:
    """What ``pylock outdated`` found, and the index it compared with."""

    entries: tuple[OutdatedEntry, ...]
    index: Index


def _requests(config_path: Path | None, reporter: Reporter) -> Config | None:
    """``pythons.toml`` for ``outdated``, if it is there and reads; else ``None``."""
    from pylock.config import load_config
    from pylock.errors import ConfigError

    if config_path is None or not config_path.is_file():
        return None  # a project that ships only its lock
    try:
        return load_config(config_path)
    except ConfigError as exc:
        # A pythons.toml being edited does not stop a question about the lock.
        reporter.warn(
            f"{exc.file} cannot be read ({len(exc.problems)} problem(s); "
            "`pylock lock --check` shows them): comparing within the locked flavors"
        )
        return None


def find_outdated_now(
    lock: LockFile,
    *,
    fetch_options: FetchOptions,
    metadata_dir: Path,
    reporter: Reporter,
    settings: Settings,
    config_path: Path | None = None,
) -> OutdatedReport:
    """Compare the lock with live upstream listings (merged into the bundled index).

    ``config_path`` (``pythons.toml``, when the project has one) says which flavors each
    entry's request accepts, so that a newer build counts as ``lock --upgrade`` would.
    Without one, or when it does not read (with a warning: the question is about the
    lock), the locked flavors count.

    ``outdated`` is a question about upstream now, so listings are fetched. Offline,
    cached listings are used; with none cached, the bundled snapshot has to do (with a
    warning). Upstream out of reach while online is one error naming what could not be
    reached and the way out.
    """
    from pylock.errors import OfflineError, RateLimitError, UpstreamError
    from pylock.index.live import RefreshNeeds, refresh_index
    from pylock.index.snapshot import load_bundled
    from pylock.net.policy import describe
    from pylock.outdated import find_outdated

    config = _requests(config_path, reporter)
    index = load_bundled()
    need = RefreshNeeds.for_lock(lock)
    if need.implementations:
        try:
            index = refresh_index(
                index,
                fetch_options=fetch_options,
                metadata_dir=metadata_dir,
                reporter=reporter,
                need=need,
                settings=settings,
            )
        except OfflineError as exc:
            if not fetch_options.offline:
                raise
            reporter.warn(f"{exc}; comparing with the bundled index of {index.source_date} only")
        except UpstreamError as exc:
            if not exc.unreachable or isinstance(exc, RateLimitError):
                raise
            reporter.detail(str(exc))
            # The download's own hint says what failed (a proxy it names, a mirror's 404,
            # credentials), and a server that answered is named with its answer.
            first = exc.hint or "check the network and the proxy settings"
            where = "upstream"
            if exc.url:  # the host contacted: a rewrite's target, if one applied
                target = fetch_options.rewrites.apply(exc.url)
                where = describe(target, exc.url)
            message = f"cannot reach {where} to look for newer builds"
            if exc.status is not None:  # it answered: 404 from a mirror, 407, ...
                message = f"cannot look for newer builds: {exc}"
            raise UpstreamError(
                message,
                url=exc.url,
                unreachable=True,
                hint=f"{first}; or run `pylock outdated --offline` to compare with cached "
                f"listings and the bundled index of {index.source_date}",
            ) from None
    return OutdatedReport(find_outdated(lock, index, config), index)
