"""``sync --bin-dir``: links named like the interpreters (``python3.13``, ``pypy3.11``).

pylock records the links it made in ``BIN_DIR/.pylock-links.json`` and only ever
replaces or removes those; a file it did not create is never touched. On Windows,
where symlinks need a privilege, it writes ``NAME.cmd`` launchers instead.
"""

from __future__ import annotations

import contextlib
import json
import ntpath
import os
import re
import sys
from collections.abc import Collection, Iterable
from pathlib import Path, PurePath

import attrs

from pylock.bounded import json_loads
from pylock.errors import PylockError
from pylock.fsutil import (
    FileLock,
    atomic_write_text,
    make_dir,
    read_own_file,
    remove_stale_temporaries,
    replace,
)
from pylock.lockfile import LockedPython, LockFile
from pylock.platforms import Platform
from pylock.versions import Implementation

MANIFEST = ".pylock-links.json"
#: Held while the manifest and the links change.
LOCK_FILE = ".pylock-links.lock"

# A constant rather than a `sys.platform` test, which mypy (run on Linux) would take for
# unreachable code and leave unchecked.
_WINDOWS = sys.platform == "win32"
#: How a launcher that must spell out a non-ASCII path is encoded: cmd.exe decodes a
#: batch file with the console's code page, the OEM one (437, 850, 932...) unless someone
#: ran ``chcp``. Python knows that code page only on Windows; elsewhere (tests, or
#: launchers written for a Windows machine) UTF-8 stands in, as before.
_BATCH_ENCODING = "oem" if _WINDOWS else "utf-8"


def link_names(python: LockedPython) -> list[str]:
    """The command names an interpreter gets: ``python3.13t``, ``pypy3.11``, ...

    >>> from pylock.versions import Variant
    >>> p = LockedPython(name="x", implementation=Implementation.CPYTHON, version="3.14.0",
    ...                  variant=Variant.FREETHREADED, default=True)
    >>> link_names(p)
    ['python3.14t', 'python3', 'python']
    """
    parts = python.version.split(".")
    series = ".".join(parts[:2])
    if python.implementation is Implementation.CPYTHON:
        names = [f"python{series}{python.variant.pbs_abi_suffix}"]
    else:
        names = [f"{python.implementation}{series}"]
    if python.default:
        names += ["python3", "python"]
    return names


@attrs.frozen(kw_only=True)
class LinkResult:
    """What linking changed."""

    #: Link names created or re-pointed.
    created: tuple[str, ...]
    #: Link names removed because their interpreter is gone.
    removed: tuple[str, ...]
    #: ``(name, install directory)`` of links another install directory had, now this one's.
    taken: tuple[tuple[str, str], ...] = ()
    #: Names wanted, but left linking another interpreter of this install directory: with
    #: ``trees`` (``sync --only``), the others' links are not this run's to change.
    left: tuple[str, ...] = ()


@attrs.frozen
class _Manifest:
    """What ``.pylock-links.json`` says."""

    #: Name to target (or launcher text) of each link pylock made.
    links: dict[str, str] = attrs.field(factory=dict)
    #: Name to the install directory it was made for (absent before pylock 0.3).
    installs: dict[str, str] = attrs.field(factory=dict)
    #: The links a run was about to make when it stopped (see :func:`_sync_links`), and
    #: the install directory each was for.
    pending: dict[str, str] = attrs.field(factory=dict)
    pending_installs: dict[str, str] = attrs.field(factory=dict)


#: The largest manifest read: a line per link, a few KB for a dozen interpreters.
_MANIFEST_MAX_BYTES = 4 * 1024 * 1024


def _read_manifest(bin_dir: Path) -> _Manifest:
    """The bin dir's manifest; an empty one if it is missing or damaged (a FIFO, a link, a
    file larger than :data:`_MANIFEST_MAX_BYTES` among the damaged: it hung the sync,
    or read ``/dev/zero`` until memory ran out)."""
    try:
        data = json_loads(read_own_file(bin_dir / MANIFEST, _MANIFEST_MAX_BYTES))
    except (OSError, ValueError):
        return _Manifest()
    if not isinstance(data, dict) or not isinstance(data.get("links"), dict):
        return _Manifest()

    def table(key: str, names: Collection[str] | None = None) -> dict[str, str]:
        # Only plain names: a manifest entry is a file in ``bin_dir``, never a path
        # elsewhere (whoever can write the manifest must not make a sync remove a link
        # outside it).
        found = data.get(key)
        if not isinstance(found, dict):
            return {}
        return {
            str(k): str(v)
            for k, v in found.items()
            if _plain_name(str(k)) and "\0" not in str(v) and (names is None or k in names)
        }

    links, pending = table("links"), table("pending")
    return _Manifest(
        links=links,
        installs=table("installs", links),
        pending=pending,
        pending_installs=table("pending-installs", pending),
    )


def _owner_by_target(entry: str, mine: str | None, windows: bool, bin_dir: Path) -> str | None:
    """Who owns a link whose manifest names no install directory (made by pylock before
    0.3, or by one since whose manifest an older run rewrote): this run's when it links
    into ``mine``, else another project's, named by the interpreter it links to."""
    if mine is None:
        return None
    if _links_into(entry, mine, windows, bin_dir):
        return mine
    return "another install directory" if windows else entry


def _foreign_hint(path: Path) -> str:
    """The hint for a file of another's in the bin dir, which pylock does not replace.

    In the python:3.x Docker images ``/usr/local/bin/python3.12`` is the Python that runs
    pylock's own venv: "remove it" broke pylock (and the image's Python).
    """
    ours = {sys.executable, getattr(sys, "_base_executable", sys.executable)}
    for executable in ours:
        with contextlib.suppress(OSError, ValueError):
            if executable and os.path.samefile(path, executable):
                return (
                    f"it is the Python that runs pylock ({os.path.realpath(executable)}): "
                    "keep it, and choose another --bin-dir"
                )
    return "remove it, or choose another --bin-dir"


def _refuse_foreign(path: Path) -> None:
    """Refuse to replace ``path``, a link name's file that pylock did not make, if there
    is one."""
    if path.exists() or path.is_symlink():
        raise PylockError(
            f"--bin-dir: {path} exists and was not created by pylock; not replacing it",
            hint=_foreign_hint(path),
        )


def check_links(bin_dir: Path, wanted: dict[str, Path], *, windows: bool) -> None:
    """Refuse, before anything is installed, the links :func:`sync_links` would refuse to
    make afterwards: a file pylock did not make at a wanted name (the user's own
    ``python3``, say). A sync used to download and install everything first."""
    manifest = _read_manifest(bin_dir)
    for name, target in sorted(wanted.items()):
        path = _entry_path(bin_dir, name, windows)
        expected = _launcher(target, bin_dir) if windows else str(target)
        current = _current_target(path, windows)
        if current != _on_disk(expected, windows) and not _ours(manifest, name, current, windows):
            _refuse_foreign(path)


def _ours(manifest: _Manifest, name: str, current: str | bytes | None, windows: bool) -> bool:
    """Whether the link ``name`` holds what pylock wrote there (``current``), as
    ``manifest`` records it: made, or being made by a run that stopped half-way."""
    return any(
        name in table and _is_ours(current, table[name], windows)
        for table in (manifest.links, manifest.pending)
    )


def _links_into(
    entry: str, directory: str | os.PathLike[str], windows: bool, bin_dir: Path
) -> bool:
    """Whether the link or launcher ``entry`` (as the manifest recorded it) runs a program
    under ``directory`` (an install directory, or one interpreter's tree), however each is
    spelled (through a symlink; a launcher's in any case, as Windows spells paths)."""
    prefix = os.path.join(os.fspath(directory), "")
    if windows:
        target = _launched(entry, bin_dir)
        return target is not None and ntpath.normcase(target).startswith(ntpath.normcase(prefix))
    return entry.startswith(prefix) or _real(entry).startswith(os.path.join(_real(prefix), ""))


#: The line of a launcher (:func:`_launcher`) that runs its program: an absolute path, or
#: one relative to the launcher's own directory (``%pylock_dir%``).
_RUNS = re.compile(r'^@"(%pylock_dir%)?((?:[^"%\r\n]|%%)*)" %\*\r?$', re.MULTILINE)


def _launched(entry: str, bin_dir: Path) -> str | None:
    """The absolute path of the program the launcher text ``entry`` in ``bin_dir`` runs
    (``None`` for a text pylock does not write)."""
    found = _RUNS.search(entry)
    if found is None:
        return None
    path = found[2].replace("%%", "%")
    return ntpath.normpath(ntpath.join(str(bin_dir), path)) if found[1] else path


def _same_dir(owner: str, mine: str) -> bool:
    """Whether the install directory ``owner`` (as a manifest recorded it) is ``mine``,
    however each is spelled: through a symlink (``/tmp`` and ``/private/tmp`` on macOS,
    a linked home directory), or as ``--into`` or ``PYLOCK_INSTALL_DIR`` gave it."""
    return owner == mine or _real(owner) == _real(mine)


def _real(path: str) -> str:
    """``path`` with its links resolved; as it is when it cannot be (a NUL byte in what a
    manifest said), which then matches nothing else."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _write_manifest(bin_dir: Path, manifest: _Manifest) -> None:
    data: dict[str, object] = {"links": manifest.links}
    for key, table in (
        ("installs", manifest.installs),
        ("pending", manifest.pending),
        ("pending-installs", manifest.pending_installs),
    ):
        if table:
            data[key] = table
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(OSError):
        if read_own_file(bin_dir / MANIFEST, _MANIFEST_MAX_BYTES) == text.encode():
            return  # a sync with nothing to link writes nothing (on a full disk, say)
    atomic_write_text(bin_dir / MANIFEST, text)


def _plain_name(name: str) -> bool:
    """Whether ``name`` names a file right in the bin dir (no directory part, no ``..``).

    >>> [_plain_name(n) for n in ("python3", "../x", "/usr/bin/python3", "C:x", "..", "")]
    [True, False, False, False, False, False]
    >>> _plain_name("evil\x1b[31m")
    False
    """
    return (
        bool(name)
        and name not in (".", "..")
        and not any(ch in name for ch in "/\\\0:")
        and name.isprintable()  # what is printed of it must not steer the terminal
    )


def _entry_path(bin_dir: Path, name: str, windows: bool) -> Path:
    return bin_dir / (f"{name}.cmd" if windows else name)


def _current_target(path: Path, windows: bool) -> str | bytes | None:
    try:
        if windows:
            # Bytes, not text: they are compared with the bytes written, in the launcher's
            # encoding, CRLF and all (newline translation would never compare equal).
            return path.read_bytes()
        return os.readlink(path)
    except OSError:
        return None


def _on_disk(entry: str, windows: bool) -> str | bytes:
    """What pylock writes for a link whose manifest entry is ``entry``."""
    return entry.encode(_BATCH_ENCODING) if windows else entry


def _is_ours(current: str | bytes | None, entry: str, windows: bool) -> bool:
    """Whether a link or launcher still holds what pylock wrote for ``entry``."""
    if not windows:
        return current == entry
    # Launchers of earlier versions were UTF-8 whatever the path: still pylock's own.
    with contextlib.suppress(UnicodeEncodeError):
        if current == entry.encode(_BATCH_ENCODING):
            return True
    return current == entry.encode("utf-8")


# Extensions on (``call :label`` and ``%~dp0`` need them) and delayed expansion off (it
# would eat a ``!`` in a path or an argument): both can be switched by default in the
# registry.
_LAUNCHER_HEAD = "@setlocal EnableExtensions DisableDelayedExpansion\r\n"


def _launcher(target: PurePath, bin_dir: PurePath) -> str:
    """The ``.cmd`` file in ``bin_dir`` that runs ``target`` with the arguments given.

    cmd.exe expands ``%`` in a batch file (a literal one is written ``%%``), and decodes
    it line by line with the console's code page, so a non-ASCII path needs care:

    - an ASCII path is written as it is: ASCII reads the same in every code page;
    - else the path relative to the launcher's own directory, when that is ASCII (the
      usual case: only the user profile's name is not). ``%~dp0`` gives that directory
      with no decoding at all. It is read in a subroutine, as npm's cmd-shim does: read
      directly, it names the current directory when the launcher was started by a quoted
      name found through ``PATH``. Its limit: ``..`` is resolved by name, so the
      launcher must be started through the bin dir's path as pylock was given it, not
      through a junction or ``subst`` drive that names it otherwise (hence not for an
      ASCII path, which works from anywhere);
    - else (another drive, or non-ASCII names in between) the absolute path in the OEM
      code page, when that can spell it: such a launcher works while the console keeps
      that code page (``chcp 65001`` breaks it). Otherwise :class:`PylockError`.

    Not ``chcp 65001`` inside the launcher: that would change the code page of the
    user's console for the rest of the session (and older cmd.exe stopped reading a
    batch file after it).
    """
    absolute = str(target)
    if absolute.isascii():
        return f'{_LAUNCHER_HEAD}@"{_batch_literal(absolute)}" %*\r\n'
    try:
        relative = ntpath.relpath(absolute, str(bin_dir))
    except ValueError:  # another drive or share: no relative path
        relative = ""
    if relative and relative.isascii():
        return (
            f"{_LAUNCHER_HEAD}@goto run\r\n"
            ":find_dir\r\n"
            '@set "pylock_dir=%~dp0"\r\n'
            "@exit /b\r\n"
            ":run\r\n"
            "@call :find_dir\r\n"
            f'@"%pylock_dir%{_batch_literal(relative)}" %*\r\n'
        )
    text = f'{_LAUNCHER_HEAD}@"{_batch_literal(absolute)}" %*\r\n'
    try:
        text.encode(_BATCH_ENCODING)
    except UnicodeEncodeError:
        raise PylockError(
            f"--bin-dir: cannot write a launcher for {target}: cmd.exe reads .cmd files in "
            "the console's code page, which cannot spell this path",
            hint="use a --bin-dir on the same drive as the install directory, whose path "
            "differs from it only in ASCII names (a bin folder beside it), or an install "
            "directory whose path is ASCII",
        ) from None
    return text


def _batch_literal(path: str) -> str:
    return path.replace("%", "%%")


def link_owners(pythons: Iterable[LockedPython]) -> dict[str, str]:
    """Map each link name to the interpreter that gets it; error on a shared name.

    Cheap enough to run before anything is installed, so a collision fails fast.
    """
    owners: dict[str, str] = {}
    for python in pythons:
        for name in link_names(python):
            if name in owners:
                raise PylockError(
                    f"--bin-dir: {owners[name]!r} and {python.name!r} would both be linked "
                    f"as {name!r}",
                    hint="lock only one interpreter per version and variant, or sync them "
                    "with --only into separate bin dirs",
                )
            owners[name] = python.name
    return owners


def plan_links(
    lock: LockFile, *, dest_root: Path, platform: Platform, installed: Iterable[str]
) -> dict[str, Path]:
    """Map each link name to the executable it should run; error on a shared name."""
    from pylock.sync.install import executable

    installed_names = set(installed)
    pythons = {p.name: p for p in lock.pythons if p.name in installed_names}
    owners = link_owners(pythons.values())
    return {name: executable(dest_root, pythons[owner], platform) for name, owner in owners.items()}


def sync_links(
    bin_dir: Path,
    wanted: dict[str, Path],
    *,
    windows: bool,
    install_dir: Path | None = None,
    prune: bool = True,
    trees: Collection[Path] | None = None,
    kept: Collection[Path] = (),
    gone: Collection[Path] = (),
) -> LinkResult:
    """Make ``bin_dir`` hold exactly the wanted links among those pylock made for
    ``install_dir`` (with ``prune=False``: hold them, and keep the others it made; with
    ``trees``: remove only links into those interpreter trees, ``sync --only``'s; links
    into ``kept`` trees, which ``sync --no-prune`` leaves installed, stay unless wanted).
    Links into ``gone`` trees, which the sync removed, go whatever else is asked.

    A bin dir may be shared by several projects (the GitHub Action's, or ``~/.local/bin``):
    links made for another install directory are left alone, and the manifest keeps them,
    unless this one wants the same name: then it takes the link over, and says so in
    :attr:`LinkResult.taken`. Processes that link into one bin dir at once take turns
    (a lock file beside the manifest), so that none loses the others' entries.
    """
    make_dir(bin_dir)
    # Launcher texts first: one that cannot be written fails the run before any change.
    entries = {
        name: _launcher(target, bin_dir) if windows else str(target)
        for name, target in sorted(wanted.items())
    }
    with FileLock(bin_dir / LOCK_FILE):
        return _sync_links(bin_dir, wanted, entries, windows, install_dir, prune, trees, kept, gone)


def _sync_links(
    bin_dir: Path,
    wanted: dict[str, Path],
    entries: dict[str, str],
    windows: bool,
    install_dir: Path | None,
    prune: bool,
    trees: Collection[Path] | None,
    kept_trees: Collection[Path],
    gone_trees: Collection[Path] = (),
) -> LinkResult:
    manifest = _read_manifest(bin_dir)
    previous, installs, pending = manifest.links, manifest.installs, manifest.pending
    _remove_debris(bin_dir)
    mine = str(install_dir) if install_dir is not None else None

    def making(name: str, current: str | bytes | None) -> bool:
        """Whether the link is what a run that stopped half-way was making."""
        return name in pending and _is_ours(current, pending[name], windows)

    def is_ours(name: str, current: str | bytes | None) -> bool:
        return _ours(manifest, name, current, windows)

    def recorded(name: str) -> str:
        """What the manifest says ``name`` links to (made, or being made)."""
        return previous[name] if name in previous else pending[name]

    def into(name: str, among: Collection[Path]) -> bool:
        """Whether ``name`` links into one of the trees ``among``."""
        return any(_links_into(recorded(name), tree, windows, bin_dir) for tree in among)

    def in_trees(name: str) -> bool:
        """Whether ``name`` links into one of ``trees`` (``sync --only``'s)."""
        assert trees is not None
        return into(name, trees)

    def owner_of(name: str, current: str | bytes | None) -> str | None:
        if making(name, current):
            return manifest.pending_installs.get(name)
        if name in installs or name not in previous:
            return installs.get(name)
        return _owner_by_target(previous[name], mine, windows, bin_dir)

    created: list[str] = []
    removed: list[str] = []
    taken: list[tuple[str, str]] = []
    changes: list[tuple[str, Path, Path, str]] = []
    untouched: list[str] = []
    # Every conflict is found before anything changes: links made by a run that then
    # failed would be missing from the manifest, and look foreign to the next run.
    for name, target in sorted(wanted.items()):
        path = _entry_path(bin_dir, name, windows)
        expected = entries[name]
        current = _current_target(path, windows)
        if current == _on_disk(expected, windows):
            continue
        # Ours only while it is still what we wrote: the user may have replaced it since.
        ours = is_ours(name, current)
        if not ours:
            _refuse_foreign(path)
        owner = owner_of(name, current)
        if (
            trees is not None
            and ours
            and (mine is None or owner is None or _same_dir(owner, mine))
            and not in_trees(name)
        ):
            untouched.append(name)  # another interpreter's of this install directory
            continue
        if ours and mine is not None and owner is not None and not _same_dir(owner, mine):
            taken.append((name, owner))
        changes.append((name, target, path, expected))
    if changes:
        # Recorded before the links change: a run killed among them leaves links that the
        # next run knows as pylock's, to replace or remove, not foreign files it refuses.
        # Who owns each stays as it was until its link has changed.
        to_make = {name: expected for name, _, _, expected in changes}
        owners = {k: v for k, v in manifest.pending_installs.items() if k not in to_make}
        owners |= dict.fromkeys(to_make, mine) if mine is not None else {}
        _write_manifest(
            bin_dir, attrs.evolve(manifest, pending=pending | to_make, pending_installs=owners)
        )
    for name, target, path, expected in changes:
        tmp = path.with_name(f".{path.name}.pylock-tmp")
        tmp.unlink(missing_ok=True)
        if windows:
            tmp.write_bytes(expected.encode(_BATCH_ENCODING))
        else:
            tmp.symlink_to(target)
        replace(tmp, path)  # patiently: a scanner may hold it (Windows)
        created.append(name)
    kept: list[str] = []
    left_pending: dict[str, str] = {}
    for name in sorted((set(previous) | set(pending)) - set(wanted)):
        path = _entry_path(bin_dir, name, windows)
        current = _current_target(path, windows)
        owner = owner_of(name, current)
        others = mine is not None and owner is not None and not _same_dir(owner, mine)
        gone = into(name, gone_trees) and not others
        if not gone and (
            not prune
            or others
            or (trees is not None and not in_trees(name))
            or into(name, kept_trees)
        ):
            # Another project's link, or one left as it was; and what another run was
            # making, still its own until it runs again.
            if name in previous:
                kept.append(name)
            if name in pending and current is not None:
                left_pending[name] = pending[name]
            continue
        # Only remove what still is our link: the user may have replaced it since.
        if is_ours(name, current):
            path.unlink()
            removed.append(name)
    # Left as they were: recorded as they were, not as wanted.
    kept += [name for name in untouched if name in previous]
    left_pending |= {name: pending[name] for name in untouched if name in pending}
    made = {name: entry for name, entry in entries.items() if name not in untouched}
    owners = {name: installs[name] for name in kept if name in installs}
    owners |= dict.fromkeys(made, mine) if mine is not None else {}
    left = _Manifest(
        links={name: previous[name] for name in kept} | made,
        installs=owners,
        pending=left_pending,
        pending_installs={
            name: manifest.pending_installs[name]
            for name in left_pending
            if name in manifest.pending_installs
        },
    )
    _write_manifest(bin_dir, left)
    return LinkResult(
        created=tuple(created), removed=tuple(removed), taken=tuple(taken), left=tuple(untouched)
    )


#: A link a killed run made and had not renamed into place yet.
_LINK_TMP = re.compile(r"\..+\.pylock-tmp")


def _remove_debris(bin_dir: Path) -> None:
    """Remove what killed runs left: temporary links and manifests. Only called under the
    bin dir's lock, which their writers held: none of them is live."""
    remove_stale_temporaries(bin_dir / MANIFEST, older_than=0)
    with contextlib.suppress(OSError), os.scandir(bin_dir) as entries:
        for entry in entries:
            if _LINK_TMP.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
