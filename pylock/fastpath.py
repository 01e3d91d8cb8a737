"""The no-op ``pylock sync`` fast path: prove nothing changed using only the standard library.

A Docker build or CI job runs ``pylock sync`` on every build, and most of the time
everything is already installed. Importing the full CLI (argparse, attrs, packaging,
tomllib) costs several times Python's own start-up, so after every complete sync the
slow path leaves a small state file in the install directory, and this module checks
it before anything else is imported:

- the lock file's bytes hash to what the state recorded;
- the machine is the one the state was written on;
- every install record is the very file the state saw (same size, mtime and inode);
- ``pythons.toml`` beside the lock is unchanged, so no staleness warning is owed;
- no pylock-installed interpreter is waiting to be pruned;
- no killed run left a temporary, old or trash tree, which the full sync removes;
- the state was written by this version of pylock, whose full sync may check or fix up
  what an older one did not.

Any doubt at all, including arguments this parser does not understand, returns
``None`` and the full sync runs, which re-checks everything and rewrites the state.
The warnings that sync gave (interpreters not locked for this platform) are in the state,
and a no-op gives them again.
"""

from __future__ import annotations

import hashlib
import os
import sys

from pylock import __version__
from pylock.ownfiles import is_a_copy, is_link, is_temporary_of, read_own_file, read_project_file
from pylock.settings import host_windows_arch

# Not `typing.TYPE_CHECKING`: importing typing alone costs more than this whole check.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pylock.settings import Settings

STATE_FILE = ".pylock-state"
STATE_VERSION = 2
RECORD = os.path.join(".pylock", "install.json")
#: The trees an install or removal works in (``pylock.sync.install``'s prefixes).
LEFTOVER_PREFIXES = (".pylock-tmp-", ".pylock-old-", ".pylock-trash-")

# Options that cannot change the outcome of a sync that has nothing to do. Those it does
# not interpret itself are still checked by the full sync: the state holds a digest of
# their values (see :func:`options_key`), so a value the full sync never saw is not trusted.
_GLOBAL_VALUE = {"--project", "--color"}
_GLOBAL_FLAG = {"-q", "--quiet"}
_SYNC_VALUE = {"--into", "--mirror", "--pypy-mirror", "--rewrite", "--jobs", "-j", "--remote-cache"}
_SYNC_FLAG = {"--offline", "--no-prune", "-q", "--quiet", "--push", "--no-origin"}
#: Short spellings, so that `-j 2` and `--jobs=2` are one option to :func:`options_key`.
_ALIASES = {"-j": "--jobs", "-q": "--quiet"}
#: The options this module interprets; every other one goes into :func:`options_key`.
_INTERPRETED = {"--project", "--into", "--no-prune", "--quiet"}
#: Settings a sync that downloads would check (and reject when malformed).
_CHECKED_SETTINGS = (
    "mirror",
    "pypy_mirror",
    "url_rewrites",
    "concurrency",
    "max_download_size",
    "remote_cache",
    "flags",
)


def host_fingerprint() -> str:
    """A cheap identity of the machine, the interpreter word size and (Linux) the C library:
    everything :func:`pylock.platforms.host` tells platforms by, without importing
    ``platform``. A project mounted into an Alpine container keeps its inodes and times,
    and a state written beside glibc must not answer for musl there."""
    # os.uname is missing on Windows, which names the machine in the environment.
    machine = os.uname().machine if hasattr(os, "uname") else host_windows_arch()
    return f"{sys.platform}/{machine}/{64 if sys.maxsize > 2**32 else 32}/{_libc()}"


def _libc() -> str:
    """``glibc`` where the C library is glibc (what ``platform.libc_ver`` asks first), else
    empty: musl, and every system but Linux."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or not glibc
        return ""
    return version.split()[0] if version else ""


def file_sha256(path: str) -> str | None:
    """The sha256 of a project file (the lock, the config), or ``None`` if it cannot be
    read as one: a pipe in its place must not hang a sync."""
    try:
        data = read_project_file(path)
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest()


def record_stamp(path: str) -> list[int] | None:
    """What identifies one version of an install record on disk: ``None`` for one that is
    no regular file in a real ``.pylock/`` (a symlink to either, which the full sync
    refuses). The change time too: an edit in place that put the old mtime back changes it."""
    import stat

    try:
        meta = os.path.dirname(path)
        # .pylock/ or DIR/NAME itself a link: no install of DIR's (see records.installed_state).
        if is_link(meta) or is_link(os.path.dirname(meta)):
            return None
        st = os.lstat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def path_digest(path: str) -> str:
    """The sha256 of an absolute, normalised path: where a state was written for."""
    return hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogatepass")).hexdigest()


def options_key(argv: Sequence[str], settings: Settings, salt: str | None = None) -> str | None:
    """``SALT:SHA256`` of the options and settings the full sync checks, or ``None`` when
    this module would not understand ``argv`` anyway.

    The full sync stores the key of the invocation it checked; this module trusts its state
    only for an invocation with the same key. So ``--jobs abc`` or a malformed mirror is
    refused by the full sync the first time, even when nothing is to do, and never
    waved through here. The salt keeps a state file from confirming a guessed secret (a
    mirror URL's password).
    """
    options = sync_options(argv)
    if options is None:
        return None
    salt = salt or os.urandom(16).hex()
    digest = hashlib.sha256(salt.encode("utf-8", "surrogatepass"))
    words = [f"{k}={v}" for k, v in sorted(options.items()) if k not in _INTERPRETED]
    words += [f"{name}={getattr(settings, name)!r}" for name in _CHECKED_SETTINGS]
    for word in words:
        digest.update(word.encode("utf-8", "surrogatepass") + b"\0")
    return f"{salt}:{digest.hexdigest()}"


def sync_options(argv: Sequence[str]) -> dict[str, str | bool] | None:
    """Understand ``[globals] sync [options]``, or give up (``None``): the options by
    their long names, a flag's value ``True``.

    It gives up where argparse might decide otherwise than a plain reading: an option
    with a value given twice (argparse checks each value, and keeps all of a ``--rewrite``),
    and a separate value that starts with ``-`` (argparse may take it for a missing one).
    """
    options: dict[str, str | bool] = {}
    args = list(argv)
    seen_sync = False
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if not seen_sync and arg == "sync":
            seen_sync = True
            continue
        values = _SYNC_VALUE if seen_sync else _GLOBAL_VALUE
        flags = _SYNC_FLAG if seen_sync else _GLOBAL_FLAG
        if name in values:
            if eq:
                value = inline
            elif args and not args[0].startswith("-"):
                value = args.pop(0)
            else:
                return None
            if not value and name in _INTERPRETED:
                return None  # `--into ""`: the full CLI's usage error
            key = _ALIASES.get(name, name)
            if key in options:
                return None
            options[key] = value
        elif arg in flags:
            options[_ALIASES.get(arg, arg)] = True
        else:
            return None
    return options if seen_sync else None


def sync_dirs(options: Mapping[str, str | bool], settings: Settings) -> tuple[str, str] | None:
    """The project directory and the install directory of a sync with ``options`` (from
    :func:`sync_options`), absolute, as the CLI works them out: ``--into``, else
    ``PYLOCK_INSTALL_DIR``, else ``.pythons/`` beside the lock. ``None`` for a ``~`` no
    home answers (the full sync says so)."""
    project = settings.expanded(str(options.get("--project") or os.getcwd()))
    into = options.get("--into") or settings.install_dir
    dest = settings.expanded(str(into)) if into else None
    if project is None or (into and dest is None):
        return None
    project = os.path.abspath(project)
    if dest is not None:
        return project, os.path.abspath(dest)
    return project, os.path.join(project, ".pythons")


class Noop:
    """What a sync with nothing to do tells the user (see :func:`try_noop_sync`)."""

    __slots__ = ("color", "line", "warnings")

    def __init__(self, line: str, warnings: Sequence[str], color: str) -> None:
        #: The summary line; empty under ``--quiet``.
        self.line = line
        #: The warnings the full sync gave, given again (``NAME is not locked for ...``).
        self.warnings = tuple(warnings)
        #: The ``--color`` choice they are shown with.
        self.color = color


def try_noop_sync(argv: Sequence[str], settings: Settings) -> Noop | None:
    """If ``argv`` is a sync with provably nothing to do, what to tell the user.

    ``None`` means "not provably a no-op": run the full sync. This module prints
    nothing; its caller does.
    """
    options = sync_options(argv)
    if options is None or settings.bin_dir:
        return None
    try:
        dirs = sync_dirs(options, settings)
        cwd = os.getcwd()
    except OSError:  # the working directory was removed: the full sync says so
        return None
    if dirs is None:
        return None
    project, dest = dirs
    state = read_state(dest)
    if state is None or state.get("host") != host_fingerprint():
        return None
    if state.get("pylock") != __version__:
        return None
    # A moved install directory is reinstalled by the full sync (its fix-ups name the path).
    if state.get("dest-sha256") != path_digest(dest):
        return None
    key = state.get("options-key")
    if not isinstance(key, str) or options_key(argv, settings, key.partition(":")[0]) != key:
        return None
    lock_sha = state.get("lock-sha256")
    if lock_sha is None or file_sha256(os.path.join(project, "pythons.lock")) != lock_sha:
        return None  # (no state is ever written without a lock: a forged one)
    if config_sha256(project) != state.get("config-sha256"):
        return None
    records: dict[str, list[int]] = state["records"]  # type: ignore[assignment]
    for name, stamp in records.items():
        if record_stamp(os.path.join(dest, name, RECORD)) != stamp:
            return None
    try:
        entries = os.listdir(dest)
    except OSError:
        return None
    for entry in entries:
        # A killed run's trees, or its half-written state: the full sync removes them.
        if entry.startswith(LEFTOVER_PREFIXES) or is_temporary_of(STATE_FILE, entry):
            return None
        if (
            entry not in records
            and not options.get("--no-prune")
            and _to_prune(os.path.join(dest, entry), entry)
        ):
            return None
    warnings: list[str] = state["warnings"]  # type: ignore[assignment]
    if not all(warning.isprintable() for warning in warnings):
        return None  # the full sync shows them escaped
    color = str(options.get("--color") or "auto")
    if options.get("--quiet"):
        return Noop("", warnings, color)
    count = len(records)
    inside = dest == cwd or dest.startswith(os.path.join(cwd, ""))
    shown = os.path.relpath(dest, cwd) if inside else dest
    if not shown.isprintable():
        return None  # the full sync shows it escaped
    line = f"{count} interpreter{'s' if count != 1 else ''} up to date in {shown}"
    return Noop(line, warnings, color)


def _to_prune(tree: str, name: str) -> bool:
    """Whether the full sync may prune ``tree`` (``DIR/NAME``, which the lock does not
    list): it has an install record, and is neither a link (an alias, ``current -> app``)
    nor a copy of another interpreter's tree (``cp -a app backup``), which prune leaves
    alone, and whose record would otherwise send every sync down the full path."""
    record = os.path.join(tree, RECORD)
    if not os.path.exists(record):
        return False
    if is_link(tree) or is_link(os.path.dirname(record)):
        return False
    import json  # only here: it costs more than the rest of the check

    try:
        data = json.loads(read_own_file(record, 1024 * 1024))
    except (OSError, ValueError, RecursionError):
        return True  # the full sync decides
    return not is_a_copy(data, name)


def _plain_name(name: str) -> bool:
    """Whether ``name`` can be an interpreter's directory in the install directory."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def read_state(dest: str) -> dict[str, object] | None:
    """Parse the state file: ``key value`` lines, ``record NAME SIZE MTIME INODE`` lines,
    and ``warning MESSAGE`` lines (the full sync's warnings, which a no-op repeats).

    A line format rather than JSON, because importing :mod:`json` (and with it
    :mod:`re`) would cost more than the rest of the check.

    Read with :func:`~pylock.ownfiles.read_own_file`: a pipe, a device, a symlink or a
    huge file is no state.
    """
    try:
        # One line of under 100 bytes per interpreter: room for some 150,000 of them.
        data = read_own_file(os.path.join(dest, STATE_FILE), 16 * 1024 * 1024)
        lines = data.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != f"pylock-state {STATE_VERSION}":
        return None
    state: dict[str, object] = {}
    records: dict[str, list[int]] = {}
    warnings: list[str] = []
    for line in lines[1:]:
        if line.startswith("warning "):
            warnings.append(line[len("warning ") :])
            continue
        words = line.split(" ")
        if words[0] == "record" and len(words) == 6:
            if not _plain_name(words[1]):
                return None  # no name a sync writes: a damaged or forged state
            try:
                records[words[1]] = [int(w) for w in words[2:]]
            except ValueError:
                return None
        elif len(words) == 2:
            state[words[0]] = None if words[1] == "-" else words[1]
        else:
            return None
    state["records"] = records
    state["warnings"] = warnings
    return state


def config_sha256(project: str) -> str | None:
    """The sha256 of ``pythons.toml`` beside the lock, ``None`` if there is none; ``"?"``
    (which no state holds) if there is one that cannot be read as one, about which the
    full sync warns."""
    config = os.path.join(project, "pythons.toml")
    if not os.path.lexists(config):
        return None
    return file_sha256(config) or "?"


def write_state(
    *,
    dest: str,
    lock_sha: str | None,
    config_sha: str | None,
    names: Sequence[str],
    key: str | None,
    warnings: Sequence[str] = (),
    still_current: Callable[[], bool] = lambda: True,
) -> None:
    """Remember that ``dest`` matches the project's lock (called after a full sync).

    ``lock_sha`` is the sha256 of the lock's bytes as the sync read them, and ``config_sha``
    of ``pythons.toml`` when the sync checked it (:func:`config_sha256`): not the files as
    they are now, which may have changed while the sync ran. ``key`` is the
    :func:`options_key` of the invocation the full sync checked. Without a key or the
    lock's digest, no state is written (this module could not use it). ``warnings`` are
    the sync's warnings, which :func:`try_noop_sync` gives again; one that is not a
    single line of text means no state.

    ``still_current`` is asked once the records' stamps are taken, before anything is
    written: whether those trees are still what the lock names. Another sync into
    ``dest`` may have replaced one since the full sync checked it; a replacement after
    the question changes a stamp, which :func:`try_noop_sync` notices.
    """
    from pathlib import Path

    from pylock.fsutil import atomic_write_text

    lines = [f"pylock-state {STATE_VERSION}", f"pylock {__version__}"]
    lines.append(f"host {host_fingerprint()}")
    if lock_sha is None or key is None:
        return
    lines += [f"lock-sha256 {lock_sha}", f"config-sha256 {config_sha or '-'}"]
    lines += [f"dest-sha256 {path_digest(dest)}", f"options-key {key}"]
    if any(not warning.isprintable() for warning in warnings):
        return
    lines += [f"warning {warning}" for warning in warnings]
    for name in sorted(names):
        stamp = record_stamp(os.path.join(dest, name, RECORD))
        if stamp is None:
            return
        lines.append(f"record {name} {' '.join(str(n) for n in stamp)}")
    if not still_current():
        forget_state(dest)
        return
    atomic_write_text(Path(dest) / STATE_FILE, "\n".join(lines) + "\n")


def forget_state(dest: str) -> None:
    """Drop the state file before changing an install directory."""
    import contextlib

    with contextlib.suppress(OSError):
        os.unlink(os.path.join(dest, STATE_FILE))
