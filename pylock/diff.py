"""What changed between two lock files, in human terms: the model and its renderers.

:func:`diff_locks` is pure: it compares two :class:`~pylock.lockfile.LockFile` values.
The renderers turn the result into terminal text, a Markdown table for a pull-request
comment, or JSON with a stable schema (``"format-version": 1``). Which two locks to
compare (files, or the lock at a git ref) is :mod:`pylock.review`'s business.

>>> from pylock.lockfile import Artifact, LockedPython, make_lock
>>> from pylock.versions import Implementation
>>> def lock(version, build):
...     art = Artifact(platform="linux-x86_64-gnu", url="https://x.test/a", sha256="a" * 64)
...     app = LockedPython(name="app", implementation=Implementation.CPYTHON,
...                        version=version, build=build, artifacts=(art,))
...     return make_lock([app], config_digest="sha256:" + "0" * 64)
>>> summary_lines(diff_locks(lock("3.13.5", "20250708"), lock("3.13.9", "20251014")))
['app: cpython 3.13.5+20250708 -> 3.13.9+20251014']
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import attrs

# GitError's old home: the git reading moved to pylock.review, the name stays importable.
from pylock.errors import GitError as GitError
from pylock.errors import printable, shorten_middle
from pylock.lockfile import Artifact, LockedPython, LockFile
from pylock.urls import PBS_DOWNLOAD_PREFIX, is_upstream, origin
from pylock.versions import Implementation, Variant

#: Version of the JSON document :func:`render_json` writes.
JSON_FORMAT_VERSION = 1

#: The hidden marker that starts the Markdown output, so a CI job can find and
#: update its own earlier comment instead of adding a new one on every push.
MARKDOWN_MARKER = "<!-- pylock-diff -->"

PBS_RELEASE_PAGE = "https://github.com/astral-sh/python-build-standalone/releases/tag/{tag}"
PYPY_RELEASE_PAGE = "https://pypy.org/download.html"
GRAALPY_RELEASE_PAGE = "https://github.com/oracle/graalpython/releases/tag/graal-{version}"


class Change(enum.StrEnum):
    """How one interpreter entry changed, from a reviewer's point of view."""

    ADDED = "added"
    REMOVED = "removed"
    #: A newer interpreter version.
    UPGRADED = "upgraded"
    #: An older interpreter version.
    DOWNGRADED = "downgraded"
    #: Same version, a newer upstream build tag (an older one is a downgrade).
    REBUILT = "rebuilt"
    #: Same version and build, but an artifact's sha256 changed: upstream replaced a
    #: file under the same name (or someone edited the lock). Always worth a look.
    REPUBLISHED = "republished"
    #: Variant, flavor, platforms or the default flag changed; version and build did not.
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class PlatformChange(enum.StrEnum):
    """How one platform's artifact of an interpreter changed."""

    ADDED = "added"
    REMOVED = "removed"
    #: A different artifact, as expected when the build changed.
    CHANGED = "changed"
    #: A different sha256 for the same version, build, variant and flavor, or at the same
    #: URL: one name, two files.
    REPUBLISHED = "republished"
    UNCHANGED = "unchanged"


@attrs.frozen(kw_only=True)
class PlatformDiff:
    """The artifacts of one interpreter for one platform, before and after."""

    #: Platform key.
    platform: str
    #: How it changed.
    change: PlatformChange
    #: The artifact in the old lock, if the platform was locked there.
    old: Artifact | None
    #: The artifact in the new lock, if the platform is locked there.
    new: Artifact | None

    @property
    def size_delta(self) -> int | None:
        """New size minus old size, when both are known and the artifact changed."""
        if self.old is None or self.new is None:
            return None
        if self.old.size is None or self.new.size is None:
            return None
        return self.new.size - self.old.size


@attrs.frozen(kw_only=True)
class PythonDiff:
    """One interpreter name, before and after."""

    #: The interpreter's name in ``pythons.toml``.
    name: str
    #: The overall kind of change.
    change: Change
    #: The entry in the old lock.
    old: LockedPython | None
    #: The entry in the new lock.
    new: LockedPython | None
    #: Every platform locked in either lock, sorted by key.
    platforms: tuple[PlatformDiff, ...] = ()

    def _platforms(self, change: PlatformChange) -> tuple[str, ...]:
        return tuple(p.platform for p in self.platforms if p.change is change)

    @property
    def added_platforms(self) -> tuple[str, ...]:
        """Platforms locked now but not before (for an entry present in both)."""
        return self._platforms(PlatformChange.ADDED) if self.old and self.new else ()

    @property
    def removed_platforms(self) -> tuple[str, ...]:
        """Platforms locked before but not now (for an entry present in both)."""
        return self._platforms(PlatformChange.REMOVED) if self.old and self.new else ()

    @property
    def republished_platforms(self) -> tuple[str, ...]:
        """Platforms whose artifact changed its sha256 without any other change."""
        return self._platforms(PlatformChange.REPUBLISHED)


@attrs.frozen(kw_only=True)
class DiffWarning:
    """Something in a diff a reviewer must not miss."""

    #: The interpreter concerned.
    name: str
    #: The platform concerned.
    platform: str
    #: Machine-readable kind: ``republished`` (another sha256 under the same build or URL),
    #: ``relabelled`` (the same file, now said to be another build) or ``resized`` (the same
    #: sha256 with another size).
    kind: str
    #: One sentence for people.
    message: str


@attrs.frozen(kw_only=True)
class LockDiff:
    """Every interpreter of two locks, compared."""

    #: One entry per name found in either lock, sorted by name.
    pythons: tuple[PythonDiff, ...] = ()

    @property
    def changed(self) -> tuple[PythonDiff, ...]:
        """Entries that differ in any way."""
        return tuple(p for p in self.pythons if p.change is not Change.UNCHANGED)

    @property
    def has_changes(self) -> bool:
        """Whether the two locks differ in any interpreter."""
        return bool(self.changed)

    @property
    def warnings(self) -> tuple[DiffWarning, ...]:
        """What a reviewer must check, one per interpreter and platform: the signs that a
        file was replaced upstream or the lock was edited by hand."""
        found: list[DiffWarning] = []
        # A rename (or a move between entries) must not hide what _warning says of one
        # entry: another sha256 at an old URL, or for an old build and platform.
        by_url: dict[str, tuple[str, Artifact]] = {}
        by_build: dict[tuple[object, ...], tuple[str, Artifact]] = {}
        for python in self.pythons:
            if python.old is None:
                continue
            for artifact in python.old.artifacts:
                by_url.setdefault(artifact.url, (python.name, artifact))
                if python.old.build is not None:  # direct URLs: one version, many files
                    key = _build_key(python.old, artifact.platform)
                    by_build.setdefault(key, (python.name, artifact))
        for python in self.pythons:
            for plat in python.platforms:
                warning = _warning(python, plat)
                if warning is None and plat.new is not None and python.new is not None:
                    before = by_url.get(plat.new.url)
                    why = "at the same URL"
                    if (before is None or before[1].sha256 == plat.new.sha256) and (
                        python.new.build is not None
                    ):
                        before = by_build.get(_build_key(python.new, plat.platform))
                        why = f"for the same build ({python.new.label})"
                    if before is not None and (before[0] != python.name or plat.old is None):
                        warning = _moved(python.name, plat.platform, plat.new, before, why)
                if warning is not None:
                    found.append(warning)
        return tuple(found)

    def counts(self) -> dict[str, int]:
        """How many entries were added, removed, changed (any other way) and unchanged."""
        result = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
        for python in self.pythons:
            if python.change in (Change.ADDED, Change.REMOVED, Change.UNCHANGED):
                result[str(python.change)] += 1
            else:
                result["changed"] += 1
        return result


def _warning(python: PythonDiff, plat: PlatformDiff) -> DiffWarning | None:
    """The warning one platform's artifacts call for, if any.

    A build's files and their names and sizes go together: another sha256 under the same
    build or at the same URL, the same file said to be another build, or one file with
    two sizes is a replaced upstream file or a hand edit, whatever else changed with it.
    """
    old, new = plat.old, plat.new
    if old is None or new is None or python.old is None or python.new is None:
        return None
    where = f"{python.name}: the {plat.platform} artifact"
    if plat.change is PlatformChange.REPUBLISHED:
        kind = "republished"
        what = f"changed its sha256 ({old.sha256[:12]}... -> {new.sha256[:12]}...)"
        if _same_build(python.old, python.new):
            why = "but not its version or build: upstream re-published the file"
        else:
            why = "at the same URL: upstream replaced the file it names"
    elif old.sha256 != new.sha256:
        return None
    elif not _same_build(python.old, python.new):
        kind = "relabelled"
        what = f"is the same file as before (sha256 {new.sha256[:12]}...)"
        before, after = python.old.label, python.new.label
        if before == after:  # the flavor alone changed: name it
            before, after = python.old.flavored_label, python.new.flavored_label
        why = f"but the entry now says {after} where it said {before}: "
        why += "upstream listed one file as two builds"
    elif old.size is not None and new.size is not None and old.size != new.size:
        kind = "resized"
        what = f"kept its sha256 but its size changed ({old.size} -> {new.size} bytes)"
        why = ": upstream published a wrong size"
    else:
        return None
    sep = "" if why.startswith(":") else " "
    message = f"{where} {what}{sep}{why}, or the lock was edited; check it before merging"
    return DiffWarning(name=python.name, platform=plat.platform, kind=kind, message=message)


def _moved(
    name: str, platform: str, new: Artifact, old: tuple[str, Artifact], why: str
) -> DiffWarning | None:
    """The warning for an artifact whose sha256 another entry's old one had not."""
    old_name, before = old
    if before.sha256 == new.sha256:
        return None
    message = (
        f"{name}: the {platform} artifact has another sha256 than {old_name}'s in the old "
        f"lock {why} ({before.sha256[:12]}... -> {new.sha256[:12]}...): upstream replaced "
        "the file, or the lock was edited; check it before merging"
    )
    return DiffWarning(name=name, platform=platform, kind="republished", message=message)


# -- comparing -----------------------------------------------------------------------------


def _build_key(python: LockedPython, platform: str) -> tuple[object, ...]:
    """What names one upstream file: the build, its variant and flavor, and the platform."""
    return (
        python.implementation,
        python.version,
        python.build,
        python.variant,
        python.flavor,
        platform,
    )


def _same_build(old: LockedPython, new: LockedPython) -> bool:
    return _build_key(old, "") == _build_key(new, "")


def _diff_platforms(old: LockedPython | None, new: LockedPython | None) -> tuple[PlatformDiff, ...]:
    keys = sorted({*(old.platforms if old else ()), *(new.platforms if new else ())})
    same_build = old is not None and new is not None and _same_build(old, new)
    result: list[PlatformDiff] = []
    for key in keys:
        before = old.artifact_for(key) if old else None
        after = new.artifact_for(key) if new else None
        if before is None:
            change = PlatformChange.ADDED
        elif after is None:
            change = PlatformChange.REMOVED
        elif before.sha256 == after.sha256:
            # A moved URL or a newly published size is not a different artifact.
            change = PlatformChange.UNCHANGED
        elif same_build or before.url == after.url:
            change = PlatformChange.REPUBLISHED
        else:
            change = PlatformChange.CHANGED
        result.append(PlatformDiff(platform=key, change=change, old=before, new=after))
    return tuple(result)


def _compare_versions(old: str, new: str) -> int:
    from packaging.version import Version

    try:
        a, b = Version(old), Version(new)
    except ValueError:  # InvalidVersion, or a part too long for int()
        return 0
    return (a > b) - (a < b)


def _compare_builds(old: str | None, new: str | None) -> int:
    """Order two build tags: python-build-standalone's dates (``20250708``) as numbers,
    PyPy's and GraalPy's releases as versions; 0 where they cannot be ordered."""
    if old is None or new is None:
        return 0
    if old.isascii() and old.isdigit() and new.isascii() and new.isdigit():
        a, b = (len(old.lstrip("0")), old.lstrip("0")), (len(new.lstrip("0")), new.lstrip("0"))
        return (a > b) - (a < b)  # not int(): a 5,000-digit tag would raise
    return _compare_versions(old.removeprefix("graal-"), new.removeprefix("graal-"))


def _classify(old: LockedPython, new: LockedPython, platforms: Sequence[PlatformDiff]) -> Change:
    if old == new:
        return Change.UNCHANGED
    if old.implementation is new.implementation and old.version != new.version:
        order = _compare_versions(old.version, new.version)
        if order < 0:
            return Change.UPGRADED
        if order > 0:
            return Change.DOWNGRADED
        return Change.CHANGED
    if old.implementation is not new.implementation or old.version != new.version:
        return Change.CHANGED
    if old.build != new.build:
        # A step back in build is one a reviewer must see; and PyPy's and GraalPy's build
        # is their own release (GraalPy's version stays X.Y.0 across releases).
        order = _compare_builds(old.build, new.build)
        if order > 0:
            return Change.DOWNGRADED
        if order < 0 and old.implementation is not Implementation.CPYTHON:
            return Change.UPGRADED
        return Change.REBUILT
    if _same_build(old, new) and any(p.change is PlatformChange.REPUBLISHED for p in platforms):
        return Change.REPUBLISHED
    return Change.CHANGED


def diff_python(old: LockedPython | None, new: LockedPython | None) -> PythonDiff:
    """Compare two entries of the same name (either may be missing)."""
    if old is None and new is None:
        raise ValueError("nothing to compare")
    name = (new or old).name  # type: ignore[union-attr]
    platforms = _diff_platforms(old, new)
    if old is None:
        change = Change.ADDED
    elif new is None:
        change = Change.REMOVED
    else:
        change = _classify(old, new, platforms)
    return PythonDiff(name=name, change=change, old=old, new=new, platforms=platforms)


def diff_locks(old: LockFile, new: LockFile) -> LockDiff:
    """Compare two locks interpreter by interpreter, matching entries by name."""
    names = sorted({*old.names, *new.names})
    return LockDiff(pythons=tuple(diff_python(old.get(n), new.get(n)) for n in names))


def empty_lock() -> LockFile:
    """A lock with no interpreters: the "before" of a lock that did not exist yet."""
    return LockFile(config_digest="sha256:" + "0" * 64, created_by="")


# -- words -----------------------------------------------------------------------------------


def _build_text(python: LockedPython) -> str:
    return f"{python.version}+{python.build}" if python.build else python.version


def _transition(old: LockedPython, new: LockedPython) -> str:
    """``cpython 3.13.5+20250708 -> 3.13.9+20251014``, plus variant/flavor/default changes."""
    before, after = _build_text(old), _build_text(new)
    if old.implementation is not new.implementation:
        head = f"{old.implementation} {before} -> {new.implementation} {after}"
    elif before != after:
        head = f"{old.implementation} {before} -> {after}"
    else:
        head = f"{old.implementation} {after}"
    if old.variant is new.variant and new.variant is not Variant.DEFAULT:
        head += f" ({new.variant})"
    return ", ".join([head, *_transition_extras(old, new)])


def _transition_extras(old: LockedPython, new: LockedPython) -> list[str]:
    """A changed variant, flavor or default flag, in words."""
    extras: list[str] = []
    if old.variant is not new.variant:
        extras.append(f"variant {old.variant} -> {new.variant}")
    # PyPy and GraalPy have no flavor; "none -> install_only" after a switch says nothing.
    if old.flavor != new.flavor and old.flavor is not None and new.flavor is not None:
        extras.append(f"flavor {old.flavor} -> {new.flavor}")
    if old.default != new.default:
        extras.append("now the default" if new.default else "no longer the default")
    return extras


def _platform_words(python: PythonDiff) -> list[str]:
    words = [f"+{p}" for p in python.added_platforms]
    words += [f"-{p}" for p in python.removed_platforms]
    return [f"platforms {' '.join(words)}"] if words else []


def summary_line(python: PythonDiff, *, where: bool = False) -> str | None:
    """One line for a changed entry (``None`` when unchanged); see :func:`summary_lines`.

    ``where``: name the platforms whose archive another build replaced, or that an added
    entry is locked for (``pylock diff`` does; ``pylock lock`` keeps its lines short).
    """
    old, new = python.old, python.new
    if python.change is Change.UNCHANGED:
        return None
    if old is None:
        assert new is not None
        # An archive from anywhere but upstream is news to a reviewer.
        origins = _detail_words(python)[0]
        keys = ", ".join(p.platform for p in python.platforms)
        if where and len(origins) == 1 and origins[0].startswith(f"{keys} from "):
            return f"{python.name}: added {new.label} on {origins[0]}"  # one origin for all
        on = f" on {keys}" if where else ""
        return "; ".join([f"{python.name}: added {new.label}{on}", *origins])
    if new is None:
        return f"{python.name}: removed {old.label}"
    transition = _transition(old, new)
    if python.change is Change.DOWNGRADED:
        # An arrow reads as an upgrade: a step back must say so, as markdown and JSON do.
        transition = f"downgraded {transition}"
    replaced = [p.platform for p in python.platforms if p.change is PlatformChange.CHANGED]
    notes = _notes(python)
    if where and replaced:
        on = ", ".join(replaced)
        # One new origin for every replaced platform (a switch to PyPy, a mirror): the
        # platforms once, not listed again before "now from".
        moved = [n for n in notes if n.startswith(f"{on} now from ")]
        transition += f" on {moved[0] if moved else on}"
        notes = [n for n in notes if n not in moved[:1]]
    return f"{python.name}: {', '.join([transition, *notes])}"


def _notes(python: PythonDiff) -> list[str]:
    """What an entry's line says besides its builds: platforms added or removed, a
    download moved to another host (whatever else changed), re-published files; and when
    nothing else changed, the URLs or sizes that did, rather than a line that names no
    change at all."""
    hosts, details = _detail_words(python)
    notes = [*_platform_words(python), *hosts]
    if python.change is Change.REPUBLISHED:
        notes.append(f"re-published on {', '.join(python.republished_platforms)}")
    elif _only_details(python):
        notes += details or ([] if hosts else ["artifact details changed"])
    return notes


def _only_details(python: PythonDiff) -> bool:
    """Whether an entry changed in nothing but its archives' URLs or sizes: the same
    build, variant, flavor, default flag and platforms, no file re-published. (Its text
    line and its markdown row then name those details.)"""
    old, new = python.old, python.new
    return (
        old is not None
        and new is not None
        and old.label == new.label
        and not _transition_extras(old, new)
        and not python.added_platforms + python.removed_platforms
        and python.change is not Change.REPUBLISHED
    )


#: The most characters of an origin a diff shows: a host name has at most 253, and GitHub's
#: ``owner/repository`` at most 140.
_ORIGIN_SHOWN = 300


def _detail_words(python: PythonDiff) -> tuple[list[str], list[str]]:
    """Where an entry's archives come from, when that is news: another origin than before
    (``linux-x86_64-gnu now from mirror.example``), or, for a platform or entry new to
    the lock, anywhere but upstream (``linux-aarch64-gnu from github.com/someone/fork``);
    and the changes a new build brings anyway: ``URL changed on ...``, ``size changed on
    ...``."""
    hosts: dict[str, list[str]] = {}
    urls: list[str] = []
    sizes: list[str] = []
    for plat in python.platforms:
        old, new = plat.old, plat.new
        if new is None:
            continue
        # Shown cut to a host's length: a lock is not trusted, and one 70 KB GitHub owner
        # made a markdown row too long for the comment, which then left out every row.
        shown = shorten_middle(origin(new.url), _ORIGIN_SHOWN)
        if old is None:
            if not is_upstream(new.url):
                hosts.setdefault(f"from {shown}", []).append(plat.platform)
        elif old.url != new.url:
            if origin(old.url) != origin(new.url):
                hosts.setdefault(f"now from {shown}", []).append(plat.platform)
            else:
                urls.append(plat.platform)
        elif old.size != new.size:
            sizes.append(plat.platform)
    moved = [f"{', '.join(keys)} {where}" for where, keys in sorted(hosts.items())]
    details = [f"URL changed on {', '.join(urls)}"] if urls else []
    if sizes:
        details.append(f"size changed on {', '.join(sizes)}")
    return moved, details


def summary_lines(diff: LockDiff) -> list[str]:
    """One short line per changed interpreter, as ``pylock lock`` prints them.

    ``app: cpython 3.13.5+20250708 -> 3.13.9+20251014``, ``new: added cpython 3.14.0+...``,
    ``old: removed cpython 3.12.11+20251007``.
    """
    return [line for p in diff.pythons if (line := summary_line(p)) is not None]


def format_delta(delta: int) -> str:
    """A signed size change for people.

    >>> format_delta(1_258_291), format_delta(-2048), format_delta(0)
    ('+1.2 MiB', '-2.0 KiB', '+0 B')
    """
    from pylock.progress import human_size

    return ("-" if delta < 0 else "+") + human_size(abs(delta))


def _size_words(python: PythonDiff) -> list[str]:
    words = []
    for plat in python.platforms:
        delta = plat.size_delta
        if delta and plat.change is not PlatformChange.UNCHANGED:
            words.append(f"{plat.platform} {format_delta(delta)}")
    return words


# -- text ------------------------------------------------------------------------------------


def render_text(diff: LockDiff, *, verbose: bool = False) -> str:
    """The terminal form: warnings first, then one line per changed interpreter, then counts."""
    lines = [f"WARNING: {w.message}" for w in diff.warnings]
    for python in diff.pythons:
        line = summary_line(python, where=True)
        if line is None:
            if verbose:
                assert python.new is not None
                lines.append(f"{python.name}: unchanged {python.new.label}")
            continue
        sizes = _size_words(python)
        if sizes:
            line += f" ({', '.join(sizes)})"
        lines.append(line)
    counts = diff.counts()
    if diff.has_changes:
        lines.append(
            f"{counts['changed']} changed, {counts['added']} added, "
            f"{counts['removed']} removed, {counts['unchanged']} unchanged"
        )
    else:
        lines.append(f"No interpreter changes ({counts['unchanged']} unchanged).")
    return "\n".join(lines) + "\n"


# -- markdown -------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Escape text for a Markdown table cell (lock values are not trusted to be tame).

    Not for code spans: CommonMark shows ``&#95;`` there as it is; see :func:`_md_code`.
    """
    out = []
    for char in text:
        if char in "\\`*_[]<>|#!~&":
            out.append(f"&#{ord(char)};")
        elif char in "\r\n":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _md_code(text: str, *, in_table: bool) -> str:
    r"""``text`` as a Markdown code span that shows exactly ``text``, whatever it holds.

    Nothing is escaped inside a code span, entities included, so only the fence can
    end it: one backtick longer than any run of them in the text (CommonMark). A GFM
    table splits its row at a pipe before it looks for code spans, though; there a
    pipe is written ``\|``, and the table drops that backslash again.

    >>> _md_code("my_app", in_table=False), _md_code("a`b", in_table=False)
    ('`my_app`', '``a`b``')
    >>> print(_md_code("`x|y&z", in_table=True))
    `` `x\|y&z ``
    """
    # A line break would end the row or the list item, a bidi override would disguise
    # the name: both are shown escaped (`\n`, `\u202e`).
    text = printable(text)
    if in_table:
        text = text.replace("|", "\\|")
    if not text.strip(" "):
        # CommonMark strips nothing from spaces alone; two backticks alone are no span.
        return f"`{text or ' '}`"
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    if text[0] in "` " or text[-1] in "` ":
        # A backtick at an end would join the fence; CommonMark strips one space each side.
        text = f" {text} "
    return f"{fence}{text}{fence}"


def release_page(python: LockedPython) -> str | None:
    """The upstream page announcing this build, if there is one to link to."""
    if python.build is None:
        return None
    tag = quote(python.build, safe="")
    if python.implementation is Implementation.CPYTHON:
        if all(a.url.startswith(PBS_DOWNLOAD_PREFIX) for a in python.artifacts):
            return PBS_RELEASE_PAGE.format(tag=tag)
        return None
    if python.implementation is Implementation.PYPY:
        return PYPY_RELEASE_PAGE
    # GraalPy: tags are `graal-X.Y.Z`; the lock may carry the bare release or the tag.
    return GRAALPY_RELEASE_PAGE.format(version=tag.removeprefix("graal-"))


def _md_build(python: LockedPython | None) -> str:
    if python is None:
        return "—"
    text = _md(python.label)
    if python.flavor is not None:
        text += f"<br><sub>{_md(str(python.flavor))}</sub>"
    page = release_page(python)
    return f"[{text}]({page})" if page else text


def _md_notes(python: PythonDiff) -> list[str]:
    """What the Before and After cells do not show: a new host, a changed variant, flavor
    or default flag, or (when nothing else changed) the URLs or sizes that did. Platforms
    added or removed have their own marks, re-published ones theirs."""
    if python.new is None:
        return []
    hosts, details = _detail_words(python)
    if python.old is None:
        return hosts
    extras = _transition_extras(python.old, python.new)
    return [*extras, *hosts, *(details if _only_details(python) else [])]


def _md_platforms(python: PythonDiff) -> str:
    cells = []
    for plat in python.platforms:
        name = _md(plat.platform)
        if plat.change is PlatformChange.ADDED and python.old is not None:
            cells.append(f"**+{name}**")
        elif plat.change is PlatformChange.REMOVED and python.new is not None:
            cells.append(f"~~{name}~~")
        elif plat.change is PlatformChange.REPUBLISHED:
            cells.append(f"**{name} ⚠**")
        else:
            cells.append(name)
    return "<br>".join(cells) or "—"


def _md_sizes(python: PythonDiff) -> str:
    return "<br>".join(_md(w) for w in _size_words(python)) or "—"


#: Characters the markdown table may take: GitHub refuses a comment longer than 65,536,
#: and the heading, the warnings and the totals need a few thousand of their own.
MARKDOWN_BUDGET = 58_000
#: Warnings the markdown lists one by one.
_MARKDOWN_WARNINGS = 50
#: A warning's kind, in the markdown's list.
_WARNING_WORDS = {
    "republished": "another sha256 under the same build or URL",
    "relabelled": "the same file, now said to be another build",
    "resized": "the same sha256 with another size",
}


def render_markdown(
    diff: LockDiff, *, old_label: str | None = None, new_label: str | None = None
) -> str:
    """A pull-request comment: warnings as a GitHub alert, then a table of the changes."""
    lines = [MARKDOWN_MARKER, "### Python interpreters (`pythons.lock`)", ""]
    if old_label or new_label:
        # A label is a path or a ref name: shown escaped (`\u202e`), as names are.
        before, after = (printable(label) for label in (old_label or "old", new_label or "new"))
        lines += [f"Comparing {_md(before)} → {_md(after)}.", ""]
    if diff.warnings:
        lines.append("> [!WARNING]")
        lines.append(
            "> **Artifacts to check**: a sha256 changed under the same build or URL, the same "
            "file is said to be another build, or one file has two sizes."
        )
        lines.append(
            "> Upstream replaced a file, or the lock was edited by hand. Verify before merging."
        )
        lines.append(">")
        for warning in diff.warnings[:_MARKDOWN_WARNINGS]:
            name = _md_code(warning.name, in_table=False)
            where = _md_code(warning.platform, in_table=False)
            lines.append(f"> - {name} on {where}: {_WARNING_WORDS[warning.kind]}")
        if len(diff.warnings) > _MARKDOWN_WARNINGS:
            more = len(diff.warnings) - _MARKDOWN_WARNINGS
            lines.append(f"> - and {more} more (`pylock diff` lists them all)")
        lines.append("")
    counts = diff.counts()
    if not diff.has_changes:
        lines.append(f"No interpreter changes ({counts['unchanged']} unchanged).")
        return "\n".join(lines) + "\n"
    lines += [
        "| Interpreter | Change | Before | After | Platforms | Size |",
        "|---|---|---|---|---|---|",
    ]
    used = sum(len(line) + 1 for line in lines)
    shown = 0
    for python in diff.changed:
        change = str(python.change)
        if python.change is Change.REPUBLISHED:
            change = "**⚠ republished**"
        notes = [_md(note) for note in _md_notes(python)]
        if notes:
            change += f"<br><sub>{'; '.join(notes)}</sub>"
        row = (
            f"| {_md_code(python.name, in_table=True)} | {change} | {_md_build(python.old)} "
            f"| {_md_build(python.new)} | {_md_platforms(python)} | {_md_sizes(python)} |"
        )
        used += len(row) + 1
        if used > MARKDOWN_BUDGET:
            break
        lines.append(row)
        shown += 1
    if shown < len(diff.changed):
        lines += [
            "",
            f"… and {len(diff.changed) - shown} more changed interpreters, left out to keep "
            "this comment within GitHub's 65,536 characters: `pylock diff` lists them all.",
        ]
    lines += [
        "",
        f"{counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
        f"{counts['unchanged']} unchanged.",
    ]
    return "\n".join(lines) + "\n"


# -- json ------------------------------------------------------------------------------------


def _json_python(python: LockedPython | None) -> dict[str, Any] | None:
    if python is None:
        return None
    return {
        "implementation": str(python.implementation),
        "version": python.version,
        "build": python.build,
        "variant": str(python.variant),
        "flavor": str(python.flavor) if python.flavor is not None else None,
        "default": python.default,
        "release-page": release_page(python),
    }


def _json_artifact(artifact: Artifact | None) -> dict[str, Any] | None:
    if artifact is None:
        return None
    from pylock.urls import redact_url

    # Redacted here, as one URL: the text of the whole document cannot tell where it ends.
    return {"url": redact_url(artifact.url), "sha256": artifact.sha256, "size": artifact.size}


def to_json_document(
    diff: LockDiff, *, old_label: str | None = None, new_label: str | None = None
) -> dict[str, Any]:
    """The diff as plain data; the schema is documented in the README (format-version 1)."""
    return {
        "format-version": JSON_FORMAT_VERSION,
        "old-source": old_label,
        "new-source": new_label,
        "summary": diff.counts(),
        "warnings": [
            {"name": w.name, "platform": w.platform, "kind": w.kind, "message": w.message}
            for w in diff.warnings
        ],
        "pythons": [
            {
                "name": p.name,
                "change": str(p.change),
                "summary": summary_line(p),
                "old": _json_python(p.old),
                "new": _json_python(p.new),
                "platforms": [
                    {
                        "platform": plat.platform,
                        "change": str(plat.change),
                        "old": _json_artifact(plat.old),
                        "new": _json_artifact(plat.new),
                        "size-delta": plat.size_delta,
                    }
                    for plat in p.platforms
                ],
            }
            for p in diff.pythons
        ],
    }


def render_json(
    diff: LockDiff, *, old_label: str | None = None, new_label: str | None = None
) -> str:
    """The JSON form, indented, keys in a fixed order."""
    document = to_json_document(diff, old_label=old_label, new_label=new_label)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(
    diff: LockDiff,
    fmt: str,
    *,
    old_label: str | None = None,
    new_label: str | None = None,
    verbose: bool = False,
) -> str:
    """Render in ``text``, ``markdown`` or ``json``, URL credentials redacted."""
    from pylock.urls import redact

    if fmt == "text":
        return redact(render_text(diff, verbose=verbose))
    if fmt == "markdown":
        return redact(render_markdown(diff, old_label=old_label, new_label=new_label))
    if fmt == "json":
        return redact(render_json(diff, old_label=old_label, new_label=new_label))
    raise ValueError(f"unknown diff format {fmt!r}")
