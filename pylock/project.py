"""``pylock lock``: read ``pythons.toml`` and the old lock, resolve, produce the new lock text.

:func:`update_lock` writes the new lock when it changed (atomically, through a symlinked
lock to its target), unless ``--check`` or ``--dry-run`` says not to; nothing here prints:
the CLI shows the outcome, and warnings go to the reporter. Also ``cache prune
--keep-lock`` (:func:`prune_cache`), which reads other projects' locks (through
:mod:`pylock.lockio`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pylock.errors import LockFileError, PylockError, UsageError, some_names
from pylock.lockio import (
    cannot_read,
    read_lock,
    read_lock_text,
    read_previous,
    unreadable,
)

if TYPE_CHECKING:
    from pylock.config import Config
    from pylock.index.model import Index
    from pylock.lockfile import LockedPython, LockFile
    from pylock.net.options import FetchOptions
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.settings import Settings
    from pylock.sync.cache import Cache, PruneReport


@attrs.frozen(kw_only=True)
class LockOutcome:
    """The result of resolving a project."""

    #: The new lock.
    lock: LockFile
    #: Its serialized text, as it would be written.
    text: str
    #: The lock that was on disk before, if any (and readable).
    previous: LockFile | None
    #: What was wrong with a lock that could not be read, and what ``lock`` did about it.
    recovered: str | None = None


def prune_cache(
    cache: Cache,
    *,
    max_size: str | None = None,
    unused_for_days: float | None = None,
    keep_locks: Sequence[Path] = (),
) -> PruneReport:
    """``pylock cache prune``: with ``keep_locks`` (``--keep-lock``: lock files, or project
    directories holding one), every archive none of those locks names, on any platform,
    is evicted too.

    Every lock is read before anything is evicted: one that cannot be read stops the
    prune, so that a typo never empties a cache.
    """
    from pylock.fsutil import LOCK_FILENAME
    from pylock.sync.cache import prune_as_asked

    keep = None
    if keep_locks:
        keep = {
            artifact.sha256
            for path in keep_locks
            for python in _read_kept(_kept_lock(path, LOCK_FILENAME)).pythons
            for artifact in python.artifacts
        }
    return prune_as_asked(cache, max_size=max_size, unused_for_days=unused_for_days, keep=keep)


def _read_kept(path: Path) -> LockFile:
    """The lock ``--keep-lock`` names, or why it is none: a file given by mistake (a script,
    a config) is no lock to re-resolve, as the reader's own hint would say."""
    from pylock.lockfile import UPGRADE_HINT

    try:
        return read_lock(path)
    except LockFileError as exc:
        raise PylockError(
            f"--keep-lock: {exc}; nothing was pruned",
            # A newer pylock's lock is a lock all the same, which `pylock lock` refuses too.
            hint=exc.hint
            if exc.hint == UPGRADE_HINT
            else "give a pythons.lock, or a project directory that holds one; a broken lock "
            "of a project is mended with `pylock lock` there",
        ) from None


def _kept_lock(path: Path, lock_filename: str) -> Path:
    """The lock ``--keep-lock PATH`` names: PATH, or the lock in the project directory PATH.
    A path that is not there is a typo, not a lock to create: nothing is pruned."""
    lock = path / lock_filename if path.is_dir() else path
    if not lock.exists():
        where = f"no {lock_filename} in {path}" if path.is_dir() else f"{path} does not exist"
        raise UsageError(
            f"--keep-lock: {where}; nothing was pruned",
            hint="give a lock file, or a project directory that holds one",
        )
    return lock


def recover_previous(
    lock_path: Path, config: Config, host_platform: Platform | None, index: Index | None = None
) -> tuple[LockFile | None, str | None]:
    """The previous lock for ``lock`` to build on, even from a broken or conflicted file.

    A lock that loads is used as it is. Otherwise every well-formed entry either side
    of a merge conflict holds is a candidate; per interpreter, the newest candidate that
    still satisfies ``pythons.toml`` is kept (builds in ``index``'s publication order),
    and the rest are resolved afresh. The second value says what was wrong and what was
    done, for the user.
    """
    from pylock.lockfile import (
        find_conflict,
        loads,
        lock_text,
        make_lock,
        refuse_newer,
        salvage,
    )
    from pylock.ownfiles import read_project_file
    from pylock.resolve import pick_recovered

    try:
        data = read_project_file(lock_path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        # Not a broken lock to salvage: its pins would be lost to a fresh resolution.
        if lock_path.is_symlink() and not isinstance(exc, PermissionError):
            _write_target(lock_path)  # a link to no lock (a FIFO, a directory) says so
        raise cannot_read(lock_path, exc) from None
    if not data.strip():
        # Empty (`touch pythons.lock`, or a link to an empty file that is to be the lock):
        # nothing was locked, so nothing is lost, and there is nothing to warn of.
        return None, None
    try:
        # As every reader of the lock takes it: a byte-order mark, CRLF.
        return loads(lock_text(data), filename=lock_path.name), None
    except UnicodeDecodeError as exc:
        what = f"is {unreadable(exc)}"
        text = lock_text(data.decode("utf-8", errors="replace").encode())
    except LockFileError as exc:
        # A lock from a newer pylock is not broken: salvaging it would downgrade it.
        refuse_newer(lock_text(data), filename=lock_path.name)
        conflict = find_conflict(lock_text(data))
        what = (
            f"had unresolved git merge-conflict markers (line {conflict.line})"
            if conflict is not None
            else f"could not be read ({exc.problems[0]}"
            + (f", and {len(exc.problems) - 1} more problem(s)" if len(exc.problems) > 1 else "")
            + ")"
        )
        text = lock_text(data)
    if lock_path.is_symlink():
        # A link to something that is no lock at all (`/etc/passwd`) has nothing to
        # salvage, and `lock` will not replace it: said now, not after a salvage warning.
        _write_target(lock_path)
    salvaged = salvage(text)
    kept = pick_recovered(config, salvaged, host_platform=host_platform, index=index)
    _refuse_disagreement(lock_path, kept, salvaged, conflicted=find_conflict(text) is not None)
    if kept:
        sides = "both sides of the conflict" if find_conflict(text) else "it"
        done = f"kept {kept_words(kept)} from {sides}, and resolved the rest from pythons.toml"
    else:
        done = "no locked build in it still fits pythons.toml, so every entry was resolved afresh"
    previous = make_lock(kept, config_digest="sha256:" + "0" * 64) if kept else None
    return previous, f"{lock_path.name} {what}; {done}"


def _refuse_disagreement(
    lock_path: Path,
    kept: Iterable[LockedPython],
    salvaged: Iterable[LockedPython],
    *,
    conflicted: bool,
) -> None:
    """Refuse to pick a side where the two sides of a conflict lock one build with
    different archives: which sha256 is right is not pylock's to guess (the pick would
    depend on the merge's direction)."""
    others = list(salvaged)
    for entry in kept:
        for other in others:
            if other.name != entry.name or other.flavored_label != entry.flavored_label:
                continue
            for artifact in entry.artifacts:
                theirs = other.artifact_for(artifact.platform)
                if theirs is not None and theirs.sha256 != artifact.sha256:
                    where = (
                        "has merge-conflict markers, and its sides lock"
                        if conflicted
                        else "holds two entries that lock"
                    )
                    raise PylockError(
                        f"{lock_path.name} {where} {entry.name} ({entry.flavored_label}) on "
                        f"{artifact.platform} with different archives (sha256 "
                        f"{artifact.sha256[:12]}... and {theirs.sha256[:12]}...)",
                        hint=f"keep the right entry for {entry.name} by hand (one of them was "
                        "edited, or upstream replaced the file), then run `pylock lock` again",
                    )


def _host_or_none() -> Platform | None:
    from pylock.platforms import host

    try:
        return host()
    except ValueError:
        return None


def _needs_host(config: Config) -> bool:
    return any("host" in p.platforms for p in config.pythons)


@attrs.frozen(kw_only=True)
class LockRequest:
    """What ``pylock lock`` is asked to do, and the means to do it."""

    #: ``pythons.toml`` and ``pythons.lock`` of the project.
    config_path: Path
    lock_path: Path
    #: ``--upgrade``; ``--upgrade-python NAME...``.
    upgrade: bool = False
    upgrade_names: Sequence[str] = ()
    #: ``--refresh``: merge live listings into the bundled index.
    refresh: bool = False
    #: ``--python-downloads-json``: a path or URL.
    downloads_json: str | None = None
    #: Called only when the network or the cache is needed.
    fetch_options: Callable[[], FetchOptions]
    cache: Callable[[], Cache]
    reporter: Reporter
    settings: Settings | None = None


def load_index(config: Config, request: LockRequest) -> Index:
    """The bundled snapshot, plus live listings and a uv downloads JSON when asked for."""
    from pylock.index.snapshot import load_bundled

    fetch_options, reporter = request.fetch_options, request.reporter
    downloads_json = request.downloads_json

    index = load_bundled()
    if downloads_json:
        from pylock.index.live import load_uv_downloads_json

        index = index.merge(
            load_uv_downloads_json(downloads_json, fetch_options=fetch_options(), reporter=reporter)
        )
    if request.refresh:
        from pylock.index.live import RefreshNeeds, refresh_index

        index = refresh_index(
            index,
            fetch_options=fetch_options(),
            metadata_dir=request.cache().metadata_dir,
            reporter=reporter,
            need=RefreshNeeds.for_config(config),
            settings=request.settings,
        )
    return index


def lock_project(request: LockRequest) -> LockOutcome:
    """Resolve the project's ``pythons.toml`` against the index and the previous lock."""
    from pylock.config import load_config
    from pylock.lockfile import dumps, refuse_unlockable
    from pylock.resolve import resolve

    config_path, upgrade_names = request.config_path, request.upgrade_names

    config = load_config(config_path)
    unknown = sorted(set(upgrade_names) - {p.name for p in config.pythons})
    if unknown:
        raise UsageError(
            f"--upgrade-python: {', '.join(repr(n) for n in unknown)} not in {config_path.name} "
            f"(defined: {some_names([p.name for p in config.pythons], unknown)})"
        )
    host_platform = _host_or_none()
    if host_platform is None and _needs_host(config):
        raise PylockError(
            "this machine is not a platform pylock knows, so `host` cannot be resolved",
            hint="list explicit platform keys in pythons.toml",
        )
    index = load_index(config, request)
    previous, recovered = recover_previous(request.lock_path, config, host_platform, index)
    direct = None
    if any(p.url and not p.sha256 for p in config.pythons):
        from pylock.direct import make_direct_resolver

        direct = make_direct_resolver(
            fetch_options=request.fetch_options(), cache=request.cache(), reporter=request.reporter
        )
    lock = resolve(
        config,
        index,
        previous=previous,
        upgrade=True if request.upgrade else frozenset(upgrade_names),
        host_platform=host_platform,  # type: ignore[arg-type]
        direct=direct,
        warn=request.reporter.warn,
    )
    refuse_unlockable(lock)  # whatever listing (or old lock) named the build
    _warn_unfetchable(lock, previous, request)
    if previous is not None and attrs.evolve(lock, created_by=previous.created_by) == previous:
        # Nothing changed: the lock keeps the pylock that wrote it, so that teammates on
        # other pylock versions do not flip its `created-by` back and forth.
        lock = previous
    return LockOutcome(
        lock=lock,
        text=dumps(lock),
        previous=previous,
        recovered=recovered,
    )


def _warn_unfetchable(lock: LockFile, previous: LockFile | None, request: LockRequest) -> None:
    """Warn of an archive new to the lock that `sync` would refuse to fetch as things are
    (plain http to a host nobody trusted with a rewrite, a file URL with a host, which only
    Windows reads): better now than in the build."""
    from urllib.parse import urlsplit

    from pylock.errors import RefusedUrlError
    from pylock.urls import file_host_problem

    known = {a.url for p in previous.pythons for a in p.artifacts} if previous else set()
    rewrites = None
    refused: dict[str, list[str]] = {}  # by server: the entries
    for python in lock.pythons:
        for artifact in python.artifacts:
            if artifact.url in known:
                continue
            elsewhere = file_host_problem(artifact.url)
            if elsewhere is not None:
                rewrites = rewrites or request.fetch_options().rewrites
                if rewrites.match(artifact.url) is not None:
                    elsewhere = None  # sync fetches what a rewrite makes of it (no such URL)
            if elsewhere is not None:
                # A lock Windows alone can sync (a share's path), or two slashes for three.
                request.reporter.warn(
                    f"{python.name}: {elsewhere}; `pylock sync` on this machine refuses it"
                )
            if not artifact.url.lower().startswith("http:"):
                continue
            rewrites = rewrites or request.fetch_options().rewrites
            try:
                rewrites.check(rewrites.apply(artifact.url), canonical=artifact.url)
            except RefusedUrlError:
                names = refused.setdefault(urlsplit(artifact.url).netloc.rpartition("@")[2], [])
                if python.name not in names:
                    names.append(python.name)
    for server, names in refused.items():
        request.reporter.warn(
            f"{', '.join(names)}: locked from http://{server}/, plain http, which `pylock "
            "sync` refuses unless a rewrite trusts that server (--rewrite FROM=TO or "
            "PYLOCK_URL_REWRITES); an https URL needs none"
        )


def check_lock(
    config_path: Path,
    lock_path: Path,
    reporter: Reporter | None = None,
    *,
    here: Platform | None = None,
    index: Callable[[Config], Index] | None = None,
) -> str | None:
    """Why the lock is stale against ``pythons.toml``, or ``None`` if it is fresh.

    A ``host`` platform is fresh locked for any one platform, so that a lock made on a
    laptop checks clean in CI. Where that one is not ``here`` (by default this machine),
    ``reporter`` is warned: a sync here would install nothing for that interpreter.
    With ``index``, an entry whose archive is not the one upstream published for its
    build (by that index: the bundled one, say) is stale too (a lock edited by hand).
    """
    from pylock.config import load_config
    from pylock.fsutil import missing
    from pylock.platforms import HOST
    from pylock.resolve import lock_is_fresh, published_mismatch

    config = load_config(config_path)
    found = read_previous(lock_path)
    if found is None:
        return missing(lock_path)
    previous, text = found
    if not lock_is_fresh(config, previous):
        return f"{lock_path.name} is out of date with {config_path.name}"
    if index is not None:
        known = index(config)
        for python in previous.pythons:
            problem = published_mismatch(python, known)
            if problem is not None:
                return f"{lock_path.name} does not match the index: {problem}"
    machine = here or _host_or_none()
    if reporter is not None and machine is not None:
        key = machine.key
        for request in config.pythons:
            entry = previous.get(request.name)
            if HOST in request.platforms and entry is not None and key not in entry.platforms:
                reporter.warn(
                    f"{request.name}: `host` was locked for {', '.join(entry.platforms)}, "
                    f"not for this machine ({key}): `pylock sync` here installs nothing for "
                    f"it. List the platforms your team uses in {config_path.name} instead"
                )
    # Fresh: then it passes if it is as `lock` writes it (entries in their order, its
    # format). Told from the lock itself: resolving would re-resolve a `host` entry locked
    # on a laptop for this machine, and load the index again.
    if not _as_written(previous, text):
        return f"{lock_path.name} is out of date: {_REWRITE}"
    return None


@attrs.frozen(kw_only=True)
class LockUpdate:
    """What ``pylock lock`` did to ``pythons.lock``."""

    #: The interpreter changes, one line each (empty for ``--check``'s fast path).
    lines: tuple[str, ...] = ()
    #: The new text differs from the file.
    changed: bool = False
    #: The file was rewritten.
    written: bool = False


#: What every pythons.lock holds, broken or not (its header, `lock-version`, a `[[python]]`
#: table, a merge-conflict marker): a file with none of them is no lock, not pylock's to write.
_LOCK_WORDS = re.compile(
    rb"^(?:\xef\xbb\xbf)?(?:\s*lock-version\s*=|\s*\[\[\s*python\s*\]\]|<{7} "
    rb"|# This file is generated by `pylock)",
    re.M,
)


def _write_target(lock_path: Path) -> Path:
    """Where ``pylock lock`` writes: the lock itself, or, for a symlink, the file it points
    at (a lock shared by a symlink stays shared). That file must be a lock already, if a
    broken one (which ``lock`` mends, as it does a lock that is no symlink), or empty: a
    link that a cloned repository ships could point at anything, ``/dev/zero`` or a file
    of the user's, which is not pylock's to replace."""
    if not lock_path.is_symlink():
        return lock_path
    from pylock.ownfiles import read_project_file

    target = Path(os.path.realpath(lock_path))
    try:
        data = read_project_file(target)
    except FileNotFoundError:
        why = "which does not exist"
    except OSError as exc:
        why = f"which is not a lock ({unreadable(exc)})"
    else:
        if not data.strip() or _LOCK_WORDS.search(data):
            return target
        why = "which is not a lock"
    raise PylockError(
        f"{lock_path.name} is a symlink to {target}, {why}: pylock does not replace it",
        hint=f"point the symlink at a {lock_path.name} (or an empty file), or remove it; "
        "then run `pylock lock` again",
    )


#: How many interpreters kept from a salvaged lock are named; the rest are counted.
_KEPT_NAMED = 10


def kept_words(kept: Sequence[LockedPython]) -> str:
    """The interpreters kept from a salvaged lock, for the warning: the first ten by name
    (a 1,000-entry lock made one line of 40,000 characters), the rest counted."""
    named = [f"{p.name} ({p.label})" for p in kept[:_KEPT_NAMED]]
    if len(kept) > _KEPT_NAMED:
        named.append(f"{len(kept) - _KEPT_NAMED} more")
    return ", ".join(named)


#: Why a lock whose interpreters are current is out of date all the same.
_REWRITE = (
    "no interpreter changes, but `pylock lock` would rewrite it (entries reordered, or the "
    "file edited by hand or written by another pylock)"
)


def _read_only(path: Path) -> bool:
    """Whether ``path`` is a file its mode (on Windows, its read-only attribute) keeps from
    being written, in a directory that is writable."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not mode & stat.S_IWUSR and os.access(path.parent, os.W_OK)


def _as_written(lock: LockFile, text: str) -> bool:
    """Whether ``text``, which loads as ``lock``, is the text `pylock lock` writes for it."""
    from pylock.lockfile import dumps, make_lock

    canonical = make_lock(
        lock.pythons, config_digest=lock.config_digest, created_by=lock.created_by
    )
    return dumps(canonical) == text


def update_lock(request: LockRequest, *, check: bool = False, dry_run: bool = False) -> LockUpdate:
    """``pylock lock``: resolve, then write ``pythons.lock`` if it changed.

    With ``check`` nothing is written: a lock that is out of date raises
    :class:`StaleLockError`. A plain ``--check`` compares digests without resolving.
    """
    from pylock.errors import StaleLockError
    from pylock.fsutil import atomic_write_text, remove_stale_temporaries, undo_0600

    lock_path = request.lock_path
    name = lock_path.name
    if check and not lock_path.exists() and not os.path.islink(lock_path):
        # Whatever the flags: no lock is never up to date, and says so without resolving
        # (but after pythons.toml's own problems, as a plain --check does).
        from pylock.config import load_config

        load_config(request.config_path)
        raise StaleLockError(f"{name} does not exist", hint=f"run `pylock lock` and commit {name}")
    if check and not (request.upgrade or request.upgrade_names or request.refresh):
        reason = check_lock(
            request.config_path,
            lock_path,
            request.reporter,
            # The bundled index (offline, as a plain check is), and the uv downloads JSON
            # given, whose entries win for their URLs as they did when `lock` used it.
            index=lambda config: load_index(config, request),
        )
        if reason is not None:
            raise StaleLockError(reason, hint=f"run `pylock lock` and commit {name}")
        return LockUpdate()
    outcome = lock_project(request)
    if outcome.recovered:
        request.reporter.warn(outcome.recovered)
    try:
        before = read_lock_text(lock_path)
    except (OSError, UnicodeDecodeError):
        before = None
    from pylock.diff import diff_locks, empty_lock, summary_lines

    lines = tuple(summary_lines(diff_locks(outcome.previous or empty_lock(), outcome.lock)))
    changed = before != outcome.text
    if check and changed:
        # Named as the salvage warning names what it kept: the first ten, the rest counted
        # (200 upgraded entries made one error line of 16,000 characters in a CI log).
        why = "; ".join(lines[:_KEPT_NAMED]) or _REWRITE
        if len(lines) > _KEPT_NAMED:
            why += (
                f"; and {len(lines) - _KEPT_NAMED} more (`pylock lock --dry-run` with the same "
                "options lists them all)"
            )
        raise StaleLockError(
            f"{name} is out of date: {why}",
            hint=f"run `pylock lock` with the same options and commit {name}",
        )
    written = changed and not check and not dry_run
    if not (check or dry_run):
        # What a `pylock lock` killed while writing left beside the lock (an hour: surely
        # not live), which `git add -A` would commit: whether or not this run writes.
        remove_stale_temporaries(Path(os.path.realpath(lock_path)), 3600)
    if not (check or dry_run) and not changed:
        undo_0600(lock_path)  # the same lock, made readable to others
    if written:
        target = _write_target(lock_path)
        try:
            atomic_write_text(target, outcome.text)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                from pylock.fsutil import out_of_space_hint

                hint = out_of_space_hint(target.parent, "run `pylock lock` again")
            elif lock_path.is_dir():
                hint = f"{name} is a directory: move it aside, then run `pylock lock` again"
            elif target != lock_path:
                hint = (
                    f"{name} is a symlink to {target}: that file's directory must be "
                    "writable (`pylock lock --check` writes nothing)"
                )
            elif _read_only(target):
                # Windows will not replace a read-only file (a Perforce checkout, the
                # read-only attribute), where POSIX systems replace it in a writable folder.
                hint = (
                    f"{name} is read-only: make it writable (check it out, or clear its "
                    "read-only attribute), then run `pylock lock` again"
                )
            else:
                hint = (
                    "run `pylock lock` where the project directory is writable "
                    "(`pylock lock --check` writes nothing)"
                )
            raise PylockError(f"cannot write {target}: {exc.strerror or exc}", hint=hint) from None
    return LockUpdate(lines=lines, changed=changed, written=written)
