"""``sync --bin-dir``: links named like the interpreters (``python3.13``, ``pypy3.11``).

pylock records the links it made in ``BIN_DIR/.pylock-links.json`` and only ever
replaces or removes those; a file it did not create is never touched. On Windows,
where symlinks need a privilege, it writes ``NAME.cmd`` launchers instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from pylock.bounded import json_loads
from pylock.errors import PylockError
from pylock.fsutil import atomic_write_text
from pylock.lockfile import LockedPython, LockFile
from pylock.platforms import Platform
from pylock.versions import Implementation

MANIFEST = ".pylock-links.json"


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


def _read_manifest(bin_dir: Path) -> dict[str, str]:
    try:
        data = json_loads((bin_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    links = data.get("links") if isinstance(data, dict) else None
    if not isinstance(links, dict):
        return {}
    return {str(k): str(v) for k, v in links.items()}


def _entry_path(bin_dir: Path, name: str, windows: bool) -> Path:
    return bin_dir / (f"{name}.cmd" if windows else name)


def _current_target(path: Path, windows: bool) -> str | None:
    try:
        if windows:
            # Bytes, not text: newline translation would turn the launcher's CRLF into
            # something that never compares equal to what was written.
            return path.read_bytes().decode("utf-8", "replace")
        return os.readlink(path)
    except OSError:
        return None


def _launcher(target: Path) -> str:
    return f'@"{target}" %*\r\n'


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


def sync_links(bin_dir: Path, wanted: dict[str, Path], *, windows: bool) -> LinkResult:
    """Make ``bin_dir`` hold exactly the wanted links among those pylock manages."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest(bin_dir)
    created: list[str] = []
    removed: list[str] = []
    changes: list[tuple[str, Path, Path, str]] = []
    # Every conflict is found before anything changes: links made by a run that then
    # failed would be missing from the manifest, and look foreign to the next run.
    for name, target in sorted(wanted.items()):
        path = _entry_path(bin_dir, name, windows)
        expected = _launcher(target) if windows else str(target)
        current = _current_target(path, windows)
        if current == expected:
            continue
        # Ours only while it is still what we wrote: the user may have replaced it since.
        ours = name in previous and current == previous[name]
        if (path.exists() or path.is_symlink()) and not ours:
            raise PylockError(
                f"--bin-dir: {path} exists and was not created by pylock; not replacing it",
                hint="remove it, or choose another --bin-dir",
            )
        changes.append((name, target, path, expected))
    for name, target, path, expected in changes:
        tmp = path.with_name(f".{path.name}.pylock-tmp")
        tmp.unlink(missing_ok=True)
        if windows:
            tmp.write_bytes(expected.encode("utf-8"))
        else:
            tmp.symlink_to(target)
        os.replace(tmp, path)
        created.append(name)
    for name in sorted(set(previous) - set(wanted)):
        path = _entry_path(bin_dir, name, windows)
        # Only remove what still is our link: the user may have replaced it since.
        if _current_target(path, windows) == previous[name]:
            path.unlink()
            removed.append(name)
    manifest = {
        "links": {name: (_launcher(t) if windows else str(t)) for name, t in sorted(wanted.items())}
    }
    atomic_write_text(bin_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return LinkResult(created=tuple(created), removed=tuple(removed))
