"""``pylock outdated``: newer versions and builds upstream has for each locked interpreter (pure).

For every locked interpreter it reports the newest version of the same series
(``3.13.5`` -> ``3.13.9``) and the newest build of the locked version (a newer
release tag of ``3.13.5``), counting only builds of the same implementation and
variant that exist for every platform the entry is locked for, in a flavor the entry's
request accepts (:func:`pylock.resolve.flavor_choices`, as ``lock --upgrade`` uses it).
Builds are ordered by publication date (:meth:`pylock.index.model.Index.tag_order`); a
locked tag with no known date or release number is not claimed older than any.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from packaging.version import Version

from pylock.config import Config, PythonRequest
from pylock.index.model import Index
from pylock.lockfile import LockedPython, LockFile
from pylock.resolve import flavor_choices
from pylock.versions import Flavor, request_allows

# Without the entry's request (no pythons.toml): install_only and install_only_stripped
# are interchangeable for "is there something newer".
_FLAVOR_FAMILY = {
    Flavor.INSTALL_ONLY_STRIPPED: frozenset({Flavor.INSTALL_ONLY_STRIPPED, Flavor.INSTALL_ONLY}),
    Flavor.INSTALL_ONLY: frozenset({Flavor.INSTALL_ONLY_STRIPPED, Flavor.INSTALL_ONLY}),
    Flavor.FULL: frozenset({Flavor.FULL}),
}


@attrs.frozen(kw_only=True)
class Candidate:
    """A version and build available for every locked platform."""

    #: Interpreter version.
    version: str
    #: Upstream build tag.
    build: str


@attrs.frozen(kw_only=True)
class OutdatedEntry:
    """What is newer than one locked interpreter."""

    #: The locked interpreter.
    current: LockedPython
    #: The newest version of the same series, if newer than the locked one.
    newer_version: Candidate | None = None
    #: The newest build of the locked version, if newer than the locked build.
    newer_build: Candidate | None = None
    #: Why nothing could be checked (direct-URL entries), if so.
    unchecked: str | None = None
    #: Which of the offers the entry's request in pythons.toml holds back (``version``,
    #: ``build``): ``lock --upgrade`` does not take them until the request changes.
    held: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        """Whether nothing newer was found (and the entry could be checked)."""
        return self.unchecked is None and self.newer_version is None and self.newer_build is None


def _series(version: Version) -> tuple[int, int]:
    return (version.major, version.minor)


def _flavors(python: LockedPython, request: PythonRequest | None) -> frozenset[Flavor | None]:
    """The flavors a newer build may come in: those the request accepts, when known.

    An entry locked as ``full`` because its version existed only so is compared with
    every flavor its request falls back through, as ``lock --upgrade`` would be.
    """
    if (
        request is not None
        and request.url is None
        and request.implementation is python.implementation
    ):
        return frozenset(flavor_choices(request))
    if python.flavor is None:
        return frozenset({None})
    return _FLAVOR_FAMILY[python.flavor]


def find_outdated(
    lock: LockFile, index: Index, config: Config | None = None
) -> tuple[OutdatedEntry, ...]:
    """Per locked interpreter, what newer version and build ``index`` offers.

    ``config`` (``pythons.toml``, if there is one) gives each entry's request, whose
    flavor fallbacks say which flavors count.
    """
    memo: _Available = {}  # entries alike share their look-ups (1,000 entries took 10 s)
    return tuple(
        check_python(
            python, index, config.get(python.name) if config is not None else None, memo=memo
        )
        for python in lock.pythons
    )


#: A version, a build tag and a flavor, as an index offers them on one platform.
_Offer = tuple[str, str, Flavor | None]
#: What an index offers on one platform for one kind of entry (see :func:`_available`).
_Available = dict[tuple[object, ...], frozenset[_Offer]]


def _available(
    index: Index,
    python: LockedPython,
    platform: str,
    flavors: frozenset[Flavor | None],
    current: Version,
    memo: _Available,
) -> frozenset[_Offer]:
    """The (version, build, flavor) offers with a published sha256 that ``index`` has on
    ``platform`` for an entry like ``python``: its implementation and variant, one of
    ``flavors``, its series, and no pre-release unless it is one."""
    key = (
        python.implementation,
        platform,
        python.variant,
        flavors,
        _series(current),
        current.is_prerelease,
    )
    found = memo.get(key)
    if found is None:
        here = set()
        for build in index.candidates(python.implementation, platform, python.variant):
            if build.flavor not in flavors or build.sha256 is None:
                continue
            version = build.parsed_version
            if _series(version) != _series(current):
                continue
            if version.is_prerelease and not current.is_prerelease:
                continue
            here.add((build.version, build.build, build.flavor))
        memo[key] = found = frozenset(here)
    return found


def check_python(
    python: LockedPython,
    index: Index,
    request: PythonRequest | None = None,
    *,
    memo: _Available | None = None,
) -> OutdatedEntry:
    """Compare one locked interpreter with the index (in the flavors ``request`` accepts).

    A locked build whose tag the index can neither date nor number (a custom build's
    ``corp1``) gets no newer-build offer: pylock cannot tell which is newer. Newer
    versions are offered as usual.
    """
    if python.build is None:
        return OutdatedEntry(current=python, unchecked="direct URL; not tracked upstream")
    if not python.platforms:
        return OutdatedEntry(current=python, unchecked="locked for no platform")
    current = Version(python.version)
    flavors = _flavors(python, request)
    # Offers available on each platform; keep those on all of them in one flavor, as a
    # lock entry has one flavor for all its platforms: a build whose platforms share none
    # is passed over by `lock --upgrade`, and was offered here all the same.
    memo = {} if memo is None else memo
    common: frozenset[_Offer] | None = None
    for platform in python.platforms:
        here = _available(index, python, platform, flavors, current, memo)
        common = here if common is None else common & here
    pairs = frozenset((version, build) for version, build, _ in common or ())

    def order(pair: tuple[str, str]) -> tuple[Version, Any]:
        return (Version(pair[0]), index.tag_order(pair[1]))

    newer_version = None
    newest = max((p for p in pairs if Version(p[0]) > current), key=order, default=None)
    if newest is not None:
        newer_version = Candidate(version=newest[0], build=newest[1])
    newer_build = None
    locked_order = index.tag_order(python.build)
    same = []
    if not _undated(locked_order):
        same = [
            p for p in pairs if Version(p[0]) == current and index.tag_order(p[1]) > locked_order
        ]
    if same:
        best = max(same, key=order)
        newer_build = Candidate(version=best[0], build=best[1])
    held = tuple(
        kind
        for kind, offer in (("version", newer_version), ("build", newer_build))
        if offer is not None and request is not None and not _admits(request, offer)
    )
    return OutdatedEntry(
        current=python, newer_version=newer_version, newer_build=newer_build, held=held
    )


def _undated(order: tuple[str, tuple[int, ...], str]) -> bool:
    """Whether a :meth:`~pylock.index.model.Index.tag_order` key places its tag nowhere:
    neither a publication date nor a release number.

    Such a tag (``corp1``, from a ``--python-downloads-json`` of one's own builds) sorts
    before every dated one, which says nothing about when it was built: calling upstream's
    builds of the same version newer would be a guess, so none is offered. A newer
    *version* still is, as that comparison does not need the tag.

    >>> _undated(("", (), "corp1")), _undated(("2025-07-23", (), "20250723"))
    (True, False)
    >>> _undated(("", (7, 3, 20), "7.3.20"))
    False
    """
    date, numbers, _ = order
    return not date and not numbers


def _admits(request: PythonRequest, offer: Candidate) -> bool:
    """Whether ``lock --upgrade`` could take ``offer`` for ``request`` (its version range
    and build pin; a direct-URL request takes nothing from the index)."""
    if request.url is not None or request.build not in (None, offer.build):
        return False
    spec = request.specifier
    return spec is None or request_allows(
        spec, Version(offer.version), prereleases=request.prereleases
    )


def _label(python: LockedPython, candidate: Candidate) -> str:
    return f"{candidate.version}+{candidate.build}"


def format_text(entries: Sequence[OutdatedEntry]) -> list[str]:
    """One line per interpreter, e.g. ``app: cpython 3.13.5+20250708 -> 3.13.9+20251014``."""
    lines = []
    for entry in entries:
        python = entry.current
        head = f"{python.name}: {python.label}"
        if entry.unchecked:
            lines.append(f"{head}: {entry.unchecked}")
            continue
        if entry.up_to_date:
            lines.append(f"{head}: up to date")
            continue
        offers = []
        for kind, offer in (("version", entry.newer_version), ("build", entry.newer_build)):
            if offer is not None:
                held = ", held back by pythons.toml" if kind in entry.held else ""
                offers.append(f"{_label(python, offer)} (newer {kind}{held})")
        lines.append(f"{head} -> {', '.join(offers)}")
    return lines


def _candidate_json(candidate: Candidate | None) -> dict[str, str] | None:
    if candidate is None:
        return None
    return {"version": candidate.version, "build": candidate.build}


def to_json(entries: Sequence[OutdatedEntry], *, index: Index) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "index": {"source": index.source, "date": index.source_date},
        "pythons": [
            {
                "name": e.current.name,
                "implementation": str(e.current.implementation),
                "variant": str(e.current.variant),
                "version": e.current.version,
                "build": e.current.build,
                "platforms": list(e.current.platforms),
                "up-to-date": e.up_to_date,
                "newer-version": _candidate_json(e.newer_version),
                "newer-build": _candidate_json(e.newer_build),
                "unchecked": e.unchecked,
                "held-back": list(e.held),
            }
            for e in entries
        ],
    }
