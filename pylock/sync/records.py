"""The install record: ``DIR/NAME/.pylock/install.json`` and ``DIR/NAME/.pylock/RECORD``.

``install.json`` says what was installed (the artifact, the lock entry, the layout) and is
written last, so a tree that has one is complete; ``RECORD`` lists every file and symlink
with its sha256 or link target, size and executable bit, as the extraction reported them
(:class:`~pylock.archive.writer.RecordEntry`, plain data the archive layer produces).

Reading ``install.json`` (the no-op ``sync`` path) needs only :mod:`json`: the archive
modules are imported only to read or write ``RECORD``.

It also writes and reads the *file digests* of an archive, which the archive cache keeps
beside it (:meth:`~pylock.sync.cache.Cache.put_sidecar`): every regular file an extraction
wrote, with its size and sha256, so that the next install of the same archive need not
hash 100+ MB again. A damaged, truncated or foreign digests file is ignored, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pylock.bounded import json_loads
from pylock.errors import UnreadableRecordError
from pylock.fsutil import is_link, not_world_writable, read_own_file
from pylock.urls import redact_url

if TYPE_CHECKING:
    from pylock.archive.writer import RecordEntry
    from pylock.lockfile import Artifact, LockedPython

_WINDOWS = sys.platform == "win32"
#: A recorded path: relative, ``/``-separated, no empty or ``.`` parts, no NUL or backslash.
_RECORD_PATH = re.compile(r"(?!/)(?:[^/\0\\]+/)*[^/\0\\]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")
_SIZE = re.compile(r"[0-9]{1,20}")

#: The record format this pylock writes; an install with another is reinstalled.
RECORD_VERSION = 1
META_DIR = ".pylock"
INSTALL_JSON = "install.json"
RECORD_FILE = "RECORD"

# The most of a record that is read: a larger (or endless) file counts as damaged. Both
# are far above real sizes: an install.json is under 1 KiB, and the RECORD of a stripped
# CPython (about 2,600 files) some 320 KiB, of a full build with tests a few MiB.
_INSTALL_JSON_MAX_BYTES = 1024 * 1024
_RECORD_MAX_BYTES = 64 * 1024 * 1024

#: The first word of a file-digests sidecar, then its format version and the body's sha256.
_DIGESTS_MAGIC = b"pylock-file-digests"
DIGESTS_VERSION = 1


@attrs.frozen(kw_only=True)
class InstallState:
    """What an install record says about ``DIR/NAME``."""

    #: The interpreter's name (its directory name).
    name: str
    #: The install tree, ``DIR/NAME``.
    path: Path
    #: sha256 of the archive it was installed from.
    sha256: str
    #: The artifact's canonical URL.
    url: str
    #: Platform key of the artifact.
    platform: str
    #: The lock entry it was installed for (``name``, ``implementation``, ``version``...).
    python: dict[str, Any]
    #: The pylock version that installed it.
    pylock_version: str
    #: Format version of the record.
    record_version: int
    #: The final path that fix-ups baked into the tree, if fix-ups ran.
    fixed_up_for: str | None = None
    #: Whether fix-ups ran on it (``sync --no-fixups`` runs none, and none exist for
    #: Windows); ``None`` where a record written before pylock said so cannot tell.
    fixups: bool | None = None


# -- reading (the cheap path) ----------------------------------------------------------------


def read_install_json(tree: str) -> dict[str, Any] | None:
    """``tree``'s ``install.json``, or ``None`` if it is missing, damaged or not pylock's
    (a pipe, a device, a symlink or a huge file among the damaged).

    ``.pylock`` itself must be a real directory: a link to another tree's would lend this
    one that tree's record, and with it pylock's leave to replace or prune it (a user's
    directory was deleted so).
    """
    meta = os.path.join(tree, META_DIR)
    if is_link(meta):
        return None
    path = os.path.join(meta, INSTALL_JSON)
    try:
        data = json_loads(read_own_file(path, _INSTALL_JSON_MAX_BYTES))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("installer") != "pylock":
        return None
    return data


def names_another(data: dict[str, Any], name: str) -> bool:
    """Whether the record ``data`` found in ``DIR/NAME`` is another interpreter's: a copy
    of a tree (``cp -a app backup``), or, on a case-insensitive file system, the tree of
    an interpreter renamed by case. Such a tree is not this one's install."""
    recorded = data.get("name")
    return isinstance(recorded, str) and recorded != name


def installed_state(dest_root: Path, name: str) -> InstallState | None:
    """The record of ``DIR/NAME``, or ``None`` if pylock did not install anything there.

    A symbolic link ``DIR/NAME`` (to another project's install, say) is none of this
    directory's installs: ``verify`` does not count it, and ``sync`` does not replace it.
    """
    tree = os.path.join(dest_root, name)
    if is_link(tree):
        return None
    data = read_install_json(tree)
    if data is None:
        return None
    artifact = data.get("artifact")
    python = data.get("python")
    if not isinstance(artifact, dict) or not isinstance(python, dict):
        return None
    if names_another(data, name):
        return None
    sha256, url, platform = artifact.get("sha256"), artifact.get("url"), artifact.get("platform")
    version = data.get("record-version")
    if not (isinstance(sha256, str) and isinstance(url, str) and isinstance(platform, str)):
        return None
    fixed = data.get("fixed-up-for")
    fixups = data.get("fixups")
    if not isinstance(fixups, bool):
        fixups = _fixups_of_an_older_record(fixed, python, platform)
    return InstallState(
        name=name,
        path=Path(tree),
        sha256=sha256,
        url=url,
        platform=platform,
        python=python,
        pylock_version=str(data.get("pylock-version", "")),
        record_version=version if isinstance(version, int) else 0,
        fixed_up_for=fixed if isinstance(fixed, str) else None,
        fixups=fixups,
    )


def _fixups_of_an_older_record(fixed: object, python: dict[str, Any], platform: str) -> bool | None:
    """Whether fix-ups ran on a tree whose record (pylock 0.2.0's) does not say.

    Fix-ups always rewrite a CPython tree's sysconfig data outside Windows, and that
    record names the path they wrote in ``fixed-up-for``: without one, the tree was
    installed with ``--no-fixups``. Of other trees (PyPy, GraalPy, Windows builds, where
    they change nothing) the record tells nothing.
    """
    if isinstance(fixed, str):
        return True
    if python.get("implementation") == "cpython" and not platform.startswith("windows"):
        return False
    return None


def is_current(state: InstallState, artifact: Artifact, *, fixups: bool | None = None) -> bool:
    """Whether the install came from this very artifact (and still sits where it was fixed up).

    With ``fixups``, also whether it was installed with fix-ups or without, as asked: a
    ``sync --no-fixups`` reinstalls a fixed-up tree as shipped, and a plain sync fixes up
    a tree installed without them.
    """
    if state.record_version != RECORD_VERSION or state.sha256 != artifact.sha256:
        return False
    if fixups is not None and state.fixups is not None and state.fixups is not fixups:
        return False
    if state.fixed_up_for is not None and state.fixed_up_for != str(state.path):
        # The tree moved since fix-ups wrote its path into sysconfig data: reinstall. The
        # same directory spelled another way (a symlink, a bind mount, another case on
        # macOS and Windows) has not moved.
        if "\0" in state.fixed_up_for:
            return False  # a damaged record: no path has a NUL byte
        try:
            return os.path.samefile(state.fixed_up_for, state.path)
        except UnicodeError:
            # A path this system cannot spell: a damaged record, or one written where the
            # file system encoding was another (a UTF-8 session, read under LANG=C).
            return False
        except (OSError, ValueError):
            return os.path.realpath(state.fixed_up_for) == os.path.realpath(state.path)
    return True


def read_record(tree: Path) -> list[RecordEntry]:
    """The files listed in ``tree/.pylock/RECORD``.

    Every row must be one pylock writes: a relative ``/``-separated path that stays inside
    ``tree``, ``sha256=`` and 64 hex digits with a plain decimal size, or ``link=`` and a
    target. Anything else raises :class:`~pylock.errors.UnreadableRecordError`, so
    ``verify`` never looks outside the tree on a tampered record's say-so; so does a record
    that is not a regular file of a sane size (:func:`~pylock.fsutil.read_own_file`).
    """
    import csv
    import io

    from pylock.archive.writer import RecordEntry

    entries = []
    path = tree / META_DIR / RECORD_FILE
    try:
        text = read_own_file(path, _RECORD_MAX_BYTES).decode("utf-8")
        with io.StringIO(text, newline="") as handle:
            rows = csv.reader(handle)
            for row in rows:
                # Rows are described by line, never echoed: a damaged file may hold anything.
                line = rows.line_num
                if len(row) != 4:
                    raise ValueError(f"line {line}: {len(row)} fields, expected 4")
                rel, digest, size, flags = row
                if (
                    not _RECORD_PATH.fullmatch(rel)
                    or {".", ".."} & set(rel.split("/"))
                    # On Windows `C:/x` or `C:x` is on a drive of its own, out of the tree
                    # (extraction refuses `:` there too).
                    or (_WINDOWS and ":" in rel)
                ):
                    raise ValueError(f"line {line}: bad path {rel[:200]!r}")
                kind, _, value = digest.partition("=")
                if kind == "sha256":
                    if not _SHA256.fullmatch(value) or not _SIZE.fullmatch(size):
                        raise ValueError(f"line {line}: bad sha256 or size")
                    entries.append(
                        RecordEntry(path=rel, sha256=value, size=int(size), executable="x" in flags)
                    )
                elif kind == "link" and value and "\0" not in value:
                    entries.append(RecordEntry(path=rel, sha256=None, size=0, link=value))
                else:
                    raise ValueError(f"line {line}: neither a sha256 nor a link")
    except (OSError, ValueError, csv.Error) as exc:
        raise UnreadableRecordError(str(path), str(exc)) from None
    return entries


def file_entry(tree: Path, rel: str) -> RecordEntry | None:
    from pylock.archive.writer import RecordEntry
    from pylock.fsutil import sha256_file

    path = tree / rel
    if path.is_symlink():
        return RecordEntry(path=rel, sha256=None, size=0, link=os.readlink(path))
    if not path.is_file():
        return None
    digest = sha256_file(path)
    size = path.stat().st_size
    executable = bool(path.stat().st_mode & 0o111) if sys.platform != "win32" else False
    return RecordEntry(path=rel, sha256=digest, size=size, executable=executable)


def rehash(tree: Path, entries: list[RecordEntry], changed: Iterable[str]) -> list[RecordEntry]:
    """Update the record after fix-ups: re-hash what they changed, drop what they removed.

    ``changed`` names every path the fix-ups wrote, added or removed (their stale bytecode
    caches included); nothing else is looked at. Walking the whole tree to find removals
    nobody reported cost 5 ms after the last byte of every download.
    """
    by_path = {e.path: e for e in entries}
    for rel in changed:
        rel = rel.replace("\\", "/").strip("/")
        entry = file_entry(tree, rel)
        if entry is None:
            by_path.pop(rel, None)
        else:
            by_path[rel] = entry
    return list(by_path.values())


def _record_line(entry: RecordEntry) -> str | None:
    """``entry``'s RECORD line, or ``None`` if a field needs CSV quoting.

    Formatting the line directly is several times faster than :mod:`csv` for a tree's
    thousands of entries; the few paths with a comma, a quote or a line break go through
    :mod:`csv`, and the two give the same text for everything else.
    """
    text = entry.path if entry.link is None else entry.path + entry.link
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return None
    if entry.link is not None:
        return f"{entry.path},link={entry.link},0,\n"
    return f"{entry.path},sha256={entry.sha256},{entry.size},{'x' if entry.executable else ''}\n"


def write_record(
    tree: Path,
    entries: list[RecordEntry],
    python: LockedPython,
    artifact: Artifact,
    layout: str,
    fixed_up_for: str | None,
    *,
    fixups: bool,
) -> None:
    import csv
    import io
    import time

    from pylock import __version__

    meta = tree / META_DIR
    # As the tree's own directories and files (see pylock.archive.writer): under umask 0
    # too, no other user may edit the record that says which build the tree is.
    meta.mkdir()
    not_world_writable(meta)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for entry in entries:
        line = _record_line(entry)
        if line is not None:
            buffer.write(line)
        elif entry.link is not None:
            writer.writerow([entry.path, f"link={entry.link}", 0, ""])
        else:
            writer.writerow(
                [entry.path, f"sha256={entry.sha256}", entry.size, "x" if entry.executable else ""]
            )
    text = buffer.getvalue()
    if len(text) > _RECORD_MAX_BYTES // 4 and len(text.encode("utf-8")) > _RECORD_MAX_BYTES:
        # Its reader would refuse it: `verify` could never check the tree, and a reinstall
        # would write the same record again.
        from pylock.errors import InstallError

        raise InstallError(
            f"the archive's file list is too large to record ({len(entries)} files, "
            f"{len(text.encode('utf-8'))} bytes of names and hashes; at most "
            f"{_RECORD_MAX_BYTES})",
            hint="this is no interpreter archive pylock can install: check that the lock "
            "names the archive you meant",
        )
    _write_new(meta / RECORD_FILE, text)
    document = {
        "installer": "pylock",
        "record-version": RECORD_VERSION,
        "pylock-version": __version__,
        "name": python.name,
        "artifact": {
            "platform": artifact.platform,
            # The lock's URL, never a rewritten one; redacted in case a hand-edited lock
            # carries credentials (the record is readable by anyone who can run python);
            # as one whole URL, where a secret value ends only at the next parameter.
            "url": redact_url(artifact.url),
            "sha256": artifact.sha256,
            "size": artifact.size,
        },
        "python": python.summary(),
        "layout": layout,
        "fixed-up-for": fixed_up_for,
        "fixups": fixups,
        "files": len(entries),
        "installed-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # Written last: a tree with an install.json is complete.
    _write_new(meta / INSTALL_JSON, json.dumps(document, indent=2) + "\n")


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (0644 less the umask) holding ``text``, UTF-8, newlines as given."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


# -- the archive's file digests (a cache sidecar) ------------------------------------------


def digests_sidecar(layout: str) -> str:
    """The sidecar's name in the archive's cache directory: extraction paths depend on
    the layout, so each layout has its own."""
    return f".files-{layout}"


def _digests_header(body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest().encode()
    return b"%s %d %s" % (_DIGESTS_MAGIC, DIGESTS_VERSION, digest)


def dump_digests(entries: Iterable[RecordEntry]) -> bytes:
    """The file digests of an extraction (regular files only), as a sidecar's bytes.

    The first line names the format and carries the sha256 of the rest, so that a file
    cut short by a crash, damaged on disk or written by another tool is recognised.
    """
    files = [
        [entry.path, entry.size, entry.sha256]
        for entry in entries
        if entry.link is None and entry.sha256 is not None
    ]
    # ASCII JSON: any path, even one no encoding could write, round-trips.
    body = json.dumps(files, separators=(",", ":")).encode("ascii")
    return _digests_header(body) + b"\n" + body


def load_digests(data: bytes) -> dict[str, tuple[int, str]] | None:
    """``path -> (size, sha256)`` from a sidecar's bytes; ``None`` unless every part checks out."""
    header, newline, body = data.partition(b"\n")
    if not newline or header != _digests_header(body):
        return None
    try:
        # Not the depth-checking reader: this runs before every warm extraction, and the
        # C parser's own limit (RecursionError) suffices for a sidecar that is ignored
        # whenever anything is off.
        files = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if type(files) is not list:
        return None
    # Checked in bulk, not item by item: this is on the path of every warm install.
    try:
        known = {path: (size, sha256) for path, size, sha256 in files}
    except (TypeError, ValueError):  # an item that is not three values, a list as a path
        return None
    if len(known) != len(files) or not all(type(path) is str for path in known):
        return None
    if not all(type(size) is int and size >= 0 for size, _ in known.values()):
        return None
    digests = [sha256 for _, sha256 in known.values()]
    if not all(type(sha256) is str and len(sha256) == 64 for sha256 in digests):
        return None
    if _HEX.fullmatch("".join(digests)) is None:
        return None
    return known
