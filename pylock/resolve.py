"""Resolution: ``pythons.toml`` requests plus candidate builds give ``pythons.lock`` entries (pure).

Rules (the README's "How `lock` picks a build" and "Minimal change", under pythons.toml):

- **One build per interpreter.** All platforms of an entry share one version and one
  build tag: the newest version, then the newest build by publication date, that
  exists on *every* requested platform.
- **One flavor per interpreter.** The flavor is the first of ``flavor.fallbacks()``
  (``install_only_stripped`` -> ``install_only`` -> ``full``) that *every* platform has
  for that build, so the whole entry unpacks the same way. A build with no flavor in
  common across the platforms is passed over for an older one.
- **Variant and build pin are exact**; pre-releases only when asked for.
- **Only hashed builds.** A build with no published sha256 is left out, with a warning
  through ``warn``, and the next-best build is locked.
- **An explicit flavor is honoured, not guessed.** ``install_only`` or ``full`` locks the
  newest build the index has in it, with a warning through ``warn`` when a newer version
  matches in another flavor: the bundled index holds most builds in one flavor only.
- **Minimal change.** An entry of the previous lock that still satisfies its request
  is kept as it is, unless ``--upgrade`` or ``--upgrade-python NAME`` says otherwise,
  or the index lists its archive's URL for that build with another sha256 (a lock edited
  by hand; :func:`published_mismatch`): the build's published archives are locked again.

Nothing here reads the machine: ``host`` is resolved through the ``host_platform``
parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final, Literal

import attrs
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pylock.config import Config, PythonRequest
from pylock.errors import ResolutionError, UsageError
from pylock.index.model import Build, Index, tag_date, version_key
from pylock.index.names import (
    flavor_in_filename,
    parse_graalpy_filename,
    parse_pbs_filename,
    parse_pypy_filename,
    version_in_filename,
)
from pylock.lockfile import Artifact, LockedPython, LockFile, build_label, make_lock
from pylock.platforms import HOST, Platform, unknown_platform_message
from pylock.versions import Flavor, Implementation, Variant, request_allows

#: How many candidate builds per platform an error message lists.
_LISTED = 4

#: Turns a direct-URL request without a ``sha256`` into a locked entry (by downloading
#: the archive once). It receives the request with ``host`` already replaced by a key.
DirectLocker = Callable[[PythonRequest], LockedPython]

#: Receives a warning for the user (resolution itself never prints).
Warn = Callable[[str], None]


def _ignore(message: str) -> None:
    del message


def resolve(
    config: Config,
    index: Index,
    *,
    previous: LockFile | None,
    upgrade: bool | frozenset[str],
    host_platform: Platform,
    direct: DirectLocker | None = None,
    warn: Warn = _ignore,
) -> LockFile:
    """Lock every interpreter of ``config``; the new lock, complete.

    With a ``previous`` lock, entries that still satisfy their request are kept
    unless ``upgrade`` is ``True`` or names them. Raise :class:`ResolutionError`
    when a request has no build on every platform, and :class:`UsageError` when
    ``upgrade`` names an interpreter ``config`` does not have. Newer builds passed
    over for want of a published sha256 are reported through ``warn``.
    """
    if isinstance(upgrade, frozenset):
        unknown = sorted(upgrade - set(config.names))
        if unknown:
            raise UsageError(
                f"--upgrade-python: no interpreter named {', '.join(map(repr, unknown))} "
                "in pythons.toml",
                hint=f"interpreters: {', '.join(config.names) or '(none)'}",
            )
    locked: list[LockedPython] = []
    failed: list[tuple[str, ResolutionError]] = []
    for request in config.pythons:
        try:
            locked.append(
                _lock_one(
                    request, index, previous, upgrade, host_platform, direct=direct, warn=warn
                )
            )
        except ResolutionError as error:
            failed.append((request.name, error))  # and on: each one that fails is said
    if failed:
        raise _all_failed(failed)
    # A fresh lock's digest stays as it is (pylock 0.2.0's, for a platform alias), so that a
    # lock by a teammate on that version is not rewritten for it.
    digest = config.digest
    if previous is not None and previous.config_digest in config.digests:
        digest = previous.config_digest
    return make_lock(locked, config_digest=digest)


def _lock_one(
    request: PythonRequest,
    index: Index,
    previous: LockFile | None,
    upgrade: bool | frozenset[str],
    host_platform: Platform,
    *,
    direct: DirectLocker | None,
    warn: Warn,
) -> LockedPython:
    """:func:`resolve` for one interpreter: its previous entry kept, or resolved afresh."""
    platforms = platform_keys(request, host_platform)
    old = previous.get(request.name) if previous is not None else None
    refresh = upgrade is True or (isinstance(upgrade, frozenset) and request.name in upgrade)
    if old is not None and not refresh and satisfies(request, old, platforms=platforms):
        problem = published_mismatch(old, index)
        if problem is None:
            return attrs.evolve(old, default=request.default)
        # Edited by hand: the build it names, as published (not a newer one), where
        # the index has that build for every platform of the entry.
        try:
            fresh = resolve_python(
                _pinned_to(request, old), index, platforms=platforms, direct=direct, warn=warn
            )
            warn(f"{problem}: locked the published archives of that build again")
        except ResolutionError:
            fresh = resolve_python(request, index, platforms=platforms, direct=direct, warn=warn)
            warn(f"{problem}: locked it again from the index")
        return _keep_known_sizes(fresh, old)
    moved = None if old is None or refresh else _on_other_platforms(request, old, index, platforms)
    if moved is not None:
        return attrs.evolve(moved, default=request.default)
    fresh = resolve_python(request, index, platforms=platforms, direct=direct, warn=warn)
    if not refresh and old is not None:
        _refuse_moving_back(request, old, fresh, index, platforms)
    if refresh and old is not None and _steps_back(old, fresh, request, index, platforms):
        # Locked from a listing newer than this index (`--refresh`, a downloads JSON):
        # an upgrade never moves an entry back.
        given = (
            "--python-downloads-json"
            if index.includes_live
            else ("--refresh or --python-downloads-json")
        )
        warn(
            f"{request.name}: kept {old.label}, newer than anything the index lists "
            f"(its newest is {fresh.label}); to compare with the listing it came from, "
            f"add {given}"
        )
        return attrs.evolve(old, default=request.default)
    return _keep_known_sizes(fresh, old)


#: How many interpreters that cannot be locked are told in full; the rest are named.
_FAILED_TOLD = 5
#: How many of the rest are named; the others are counted.
_FAILED_NAMED = 20


def _all_failed(failed: Sequence[tuple[str, ResolutionError]]) -> ResolutionError:
    """One error for every interpreter (by name) that could not be locked: a lock of 100
    entries said only the first, to be fixed and run again, 99 times. The first few are
    told in full, the rest named."""
    if len(failed) == 1:
        return failed[0][1]
    told, rest = failed[:_FAILED_TOLD], [name for name, _ in failed[_FAILED_TOLD:]]
    lines = [f"{len(failed)} interpreters cannot be locked:"]
    lines += [error.message for _, error in told]
    if rest:
        named = ", ".join(rest[:_FAILED_NAMED])
        more = f", and {len(rest) - _FAILED_NAMED} more" if len(rest) > _FAILED_NAMED else ""
        lines.append(f"{len(rest)} more cannot be locked either: {named}{more}")
    hints: dict[str, list[str]] = {}
    for name, error in told:
        if error.hint:
            hints.setdefault(error.hint, []).append(name)
    # Different hints are told apart by name: run together, one entry's "remove the
    # platforms with no ... builds" read as said of the next one.
    said = [
        f"{', '.join(names)}: {hint}" if len(hints) > 1 else hint for hint, names in hints.items()
    ]
    return ResolutionError("\n".join(lines), hint="; ".join(said) or None)


def _keep_known_sizes(fresh: LockedPython, old: LockedPython | None) -> LockedPython:
    """``fresh`` with the sizes ``old`` had for the very same archives (URL and sha256)
    where the index gave none: sizes come from the GitHub API, which a rate limit leaves
    out, and a lock must not change with the API's quota.
    """
    if old is None or all(artifact.size is not None for artifact in fresh.artifacts):
        return fresh
    # Only a size an archive can have: a lock's 0 is no size to keep (sync would fail on it).
    known = {(a.platform, a.url, a.sha256): a.size for a in old.artifacts if a.size}
    artifacts = tuple(
        attrs.evolve(a, size=known.get((a.platform, a.url, a.sha256))) if a.size is None else a
        for a in fresh.artifacts
    )
    return attrs.evolve(fresh, artifacts=artifacts)


def _steps_back(
    old: LockedPython,
    fresh: LockedPython,
    request: PythonRequest,
    index: Index,
    platforms: Sequence[str],
) -> bool:
    """Whether ``fresh`` is older than ``old``, which still answers the request as it is."""
    if old.implementation is not fresh.implementation or old.build is None or fresh.build is None:
        return False
    if not satisfies(request, old, platforms=platforms) or published_mismatch(old, index):
        return False
    return _newness(old, index.tag_order) > _newness(fresh, index.tag_order)


def _newness(
    entry: LockedPython, order: Callable[[str], tuple[str, tuple[int, ...], str]]
) -> tuple[Version, tuple[str, tuple[int, ...], str]]:
    """How new a locked build is: its version, then its tag in publication ``order``."""
    try:
        version = Version(entry.version)
    except ValueError:  # InvalidVersion, or a part too long for int()
        version = Version("0")
    return (version, order(entry.build or ""))


def _unlisted(entry: LockedPython, index: Index) -> bool:
    """Whether the index lists ``entry``'s build on none of its platforms: it was locked
    from a listing newer than the index (``--refresh``, a downloads JSON)."""
    return entry.build is not None and not any(
        index.tagged(entry.implementation, platform, entry.variant, entry.build)
        for platform in entry.platforms
    )


def _refuse_moving_back(
    request: PythonRequest,
    old: LockedPython,
    fresh: LockedPython,
    index: Index,
    platforms: Sequence[str],
) -> None:
    """Refuse to move an entry whose platforms alone changed back to an older build: its
    build, locked from a listing newer than the index, is one the index cannot find on
    the platforms added, and a pull request that adds a platform must not downgrade."""
    if old.build is None or fresh.build is None or old.implementation is not fresh.implementation:
        return
    if not satisfies(request, old, platforms=old.platforms) or not _unlisted(old, index):
        return
    if published_mismatch(old, index) is not None:
        return  # edited by hand (a build bumped, its old archives left): not a newer listing
    if _newness(old, index.tag_order) <= _newness(fresh, index.tag_order):
        return
    added = ", ".join(sorted(set(platforms) - set(old.platforms)))
    where = f" for {added}" if added else ""
    given = (
        # Refreshed, and still not listed: a listing cut short (a rate limit, warned of).
        "`pylock lock --refresh` again once upstream lists it in full, or with the "
        "--python-downloads-json it was locked from,"
        if index.includes_live
        else "`pylock lock --refresh` (or with the --python-downloads-json it was locked from)"
    )
    raise ResolutionError(
        f"{request.name}: {old.label} is locked from a listing newer than the index, which "
        f"lists no archive of it{where}; locking again here would move the entry back "
        f"to {fresh.label}",
        hint=f"run {given} to keep {old.label} on every platform, or "
        f"`pylock lock --upgrade-python {request.name}` to take {fresh.label}",
    )


def _on_other_platforms(
    request: PythonRequest, old: LockedPython, index: Index, platforms: Sequence[str]
) -> LockedPython | None:
    """``old``'s very build on a changed list of ``platforms``, where the index has it for
    every platform added: a pull request that adds Windows must not also move the build
    (a PyPy 3.9 -> 3.11 slipped in that way). The archives of the platforms kept stay
    as they were locked; ``None`` where that build will not do."""
    if old.build is None or request.url is not None or set(old.platforms) == set(platforms):
        return None
    if not satisfies(request, old, platforms=old.platforms):
        return None
    if published_mismatch(old, index) is not None:
        return None  # edited by hand: the usual way locks it again
    if set(platforms) < set(old.platforms) and _unlisted(old, index):
        # Only platforms removed, from a build the index does not list (locked with
        # `--refresh`): the archives of the others stay, as they were locked.
        return attrs.evolve(
            old, artifacts=tuple(a for a in old.artifacts if a.platform in platforms)
        )
    # The build pinned, not its flavor: the flavor follows the request's fallbacks on the
    # new platform list (a platform added may want install_only where the others had
    # stripped archives; one removed may have been why install_only was taken).
    try:
        fresh = resolve_python(_pinned_to(request, old, flavor=False), index, platforms=platforms)
    except ResolutionError:
        return None
    if fresh.version != old.version or fresh.build != old.build:
        return None
    if fresh.flavor != old.flavor:
        return _keep_known_sizes(fresh, old)  # other files on every platform
    kept = {artifact.platform: artifact for artifact in old.artifacts}
    return attrs.evolve(old, artifacts=tuple(kept.get(a.platform, a) for a in fresh.artifacts))


def _pinned_to(
    request: PythonRequest, entry: LockedPython, *, flavor: bool = True
) -> PythonRequest:
    """``request`` narrowed to ``entry``'s exact version and build, and flavor unless told
    not (for an entry whose archives :func:`published_mismatch` found edited: the index
    has that build)."""
    return attrs.evolve(
        request,
        version=f"=={entry.version}",
        build=entry.build,
        flavor=(entry.flavor if flavor else None) or request.flavor,
        prereleases=True,
    )


def published_mismatch(entry: LockedPython, index: Index) -> str | None:
    """How an entry differs from what upstream published for its exact build, by the index:
    an archive at a URL the index lists for that build with another sha256 (or size), an
    archive at a URL the index lists for another build (a hand-made "upgrade" that left
    the old archives in place), or a version spelled otherwise (``03.13.1``); ``None``
    when they agree.

    Only what the index knows is judged: a direct URL (no build), a build the index does
    not list (locked from a live listing newer than it), and an archive at a URL it does
    not list for the build (a mirror's, or another uv downloads JSON's rebuild) pass; a
    changed host shows in ``pylock diff``, and ``sync`` checks every sha256 it downloads.
    """
    if entry.build is None:
        return None
    try:
        wanted = Version(entry.version)
    except ValueError:
        return None  # not a lock `satisfies` keeps
    for artifact in entry.artifacts:
        listed = index.at_url(entry.implementation, artifact.platform, artifact.url)
        if listed is not None and (
            listed.build != entry.build
            or version_key(listed.version) != wanted
            or listed.variant is not entry.variant
            or listed.flavor is not entry.flavor
        ):
            fields = (listed.implementation, listed.version, listed.build, listed.variant)
            upstream, claimed = build_label(*fields), entry.label
            if upstream == claimed:  # the flavor alone differs: name it
                upstream, claimed = build_label(*fields, listed.flavor), entry.flavored_label
            return (
                f"{entry.name}: {artifact.platform}: the archive is {upstream} upstream, "
                f"not the entry's {claimed}"
            )
        published = [
            build
            for build in index.tagged(
                entry.implementation, artifact.platform, entry.variant, entry.build
            )
            if build.flavor is entry.flavor and version_key(build.version) == wanted
        ]
        if not published:
            continue
        if all(build.version != entry.version for build in published):
            return f"{entry.name}: version {entry.version!r} is {published[0].version!r} upstream"
        here = [build for build in published if build.url == artifact.url]
        label = f"{entry.implementation} {published[0].version}+{entry.build}"
        where = f"{entry.name}: {artifact.platform}"
        hashed = [build for build in here if build.sha256 is not None]
        if hashed and all(build.sha256 != artifact.sha256 for build in hashed):
            return f"{where}: the archive's sha256 is not the one upstream published for {label}"
        sizes = {build.size for build in hashed if build.sha256 == artifact.sha256 and build.size}
        if artifact.size is not None and sizes and artifact.size not in sizes:
            return f"{where}: the archive's size is not the one upstream published for {label}"
    return None


def lock_is_fresh(config: Config, lock: LockFile, *, host_platform: Platform | None = None) -> bool:
    """Whether ``lock`` is up to date with ``config`` (for ``lock --check``).

    The digest must match and every entry must satisfy its request. Without
    ``host_platform``, a ``host`` platform accepts whichever one platform the lock
    was made for, so a lock made on a laptop checks clean in CI.
    """
    if lock.config_digest not in config.digests or set(lock.names) != set(config.names):
        return False
    for request in config.pythons:
        entry = lock.get(request.name)
        if entry is None or entry.default != request.default:
            return False
        if host_platform is not None:
            platforms: Collection[str] = platform_keys(request, host_platform)
        else:
            explicit = {p for p in request.platforms if p != HOST}
            extra = set(entry.platforms) - explicit
            if not explicit <= set(entry.platforms) or (
                len(extra) > (1 if HOST in request.platforms else 0)
            ):
                return False
            platforms = entry.platforms
        if not satisfies(request, entry, platforms=platforms):
            return False
    return True


#: Orders release tags by the date they name alone, for want of an index's publication dates.
_TAGS_ALONE = Index(source="release tags", source_date="")


def pick_recovered(
    config: Config,
    candidates: Iterable[LockedPython],
    *,
    host_platform: Platform | None,
    index: Index | None = None,
) -> tuple[LockedPython, ...]:
    """Of entries salvaged from a broken lock, the newest per interpreter that still fits.

    Candidates may name one interpreter twice (both sides of a merge conflict). Of two
    builds of one version, the later published wins: in ``index``'s tag order, as
    resolution orders them, else by the date a tag names.
    """
    order = (index if index is not None else _TAGS_ALONE).tag_order

    kept: list[LockedPython] = []
    pool = list(candidates)
    for request in config.pythons:
        if host_platform is None and HOST in request.platforms:
            continue
        try:
            platforms = platform_keys(request, host_platform)  # type: ignore[arg-type]
        except ResolutionError:
            continue
        fitting = [
            c for c in pool if c.name == request.name and satisfies(request, c, platforms=platforms)
        ]
        if fitting:
            best = max(fitting, key=lambda entry: _newness(entry, order))
            kept.append(attrs.evolve(best, default=request.default))
    return tuple(kept)


def platform_keys(request: PythonRequest, host_platform: Platform) -> tuple[str, ...]:
    """The request's platform keys with ``host`` replaced, deduplicated and sorted."""
    keys = set()
    for key in request.platforms:
        if key == HOST:
            keys.add(host_platform.key)
            continue
        try:
            keys.add(Platform.parse(key).key)
        except ValueError:
            raise ResolutionError(f"{request.name}: {unknown_platform_message(key)}") from None
    return tuple(sorted(keys))


def satisfies(request: PythonRequest, entry: LockedPython, *, platforms: Collection[str]) -> bool:
    """Whether a locked entry still answers ``request`` on exactly ``platforms``."""
    if entry.implementation is not request.implementation or entry.variant is not request.variant:
        return False
    if set(entry.platforms) != set(platforms) or not entry.artifacts:
        return False
    try:
        version = Version(entry.version)
    except ValueError:  # InvalidVersion, or a part too long for int()
        return False
    spec = request.specifier
    if request.url is not None:
        if entry.build is not None or any(a.url != request.url for a in entry.artifacts):
            return False
        if request.sha256 is not None and any(
            a.sha256 != request.sha256.lower() for a in entry.artifacts
        ):
            return False
        return spec is None or request_allows(spec, version, prereleases=True)
    if entry.build is None or spec is None:
        return False
    if not request_allows(spec, version, prereleases=request.prereleases):
        return False
    if request.build is not None and entry.build != request.build:
        return False
    if request.implementation is Implementation.CPYTHON:
        return entry.flavor in request.flavor.fallbacks()
    return entry.flavor is None


def resolve_python(
    request: PythonRequest,
    index: Index,
    *,
    platforms: Sequence[str],
    direct: DirectLocker | None = None,
    warn: Warn = _ignore,
) -> LockedPython:
    """Lock one request on ``platforms`` (keys, ``host`` already replaced)."""
    if request.url is not None:
        if request.sha256 is None:
            if direct is None:
                raise ResolutionError(
                    f"{request.name}: the url has no sha256, and pylock cannot download "
                    "it to compute one here",
                    hint=f'add sha256 = "..." to [python.{request.name}], or lock online',
                )
            entry = direct(attrs.evolve(request, platforms=tuple(platforms)))
            return attrs.evolve(entry, name=request.name, default=request.default)
        return lock_direct(request, sha256=request.sha256, platforms=platforms)
    return _resolve_upstream(request, index, platforms, warn)


#: Marks a ``flavor`` to be read from the archive's file name.
FROM_FILENAME: Final = "from-filename"


def lock_direct(
    request: PythonRequest,
    *,
    sha256: str,
    size: int | None = None,
    platforms: Sequence[str],
    version: str | None = None,
    flavor: Flavor | Literal["from-filename"] | None = FROM_FILENAME,
) -> LockedPython:
    """The lock entry for a direct-URL request whose archive hash is known.

    ``version`` and ``flavor`` are what the caller found inside the archive, if it
    looked; otherwise the version is the request's exact version, else the one the
    file name shows, and the flavor is the one the file name shows. The same archive
    is locked for every listed platform.
    """
    assert request.url is not None
    filename = Artifact(platform="", url=request.url, sha256=sha256).filename
    check_named_build(request, filename, platforms)
    if version is None:
        version = _direct_version(request, filename)
    chosen: Flavor | None
    if flavor == FROM_FILENAME:
        chosen = (
            flavor_in_filename(filename)
            if request.implementation is Implementation.CPYTHON
            else None
        )
    else:
        chosen = flavor
    return LockedPython(
        name=request.name,
        implementation=request.implementation,
        version=version,
        build=None,
        variant=request.variant,
        flavor=chosen,
        default=request.default,
        artifacts=tuple(
            Artifact(platform=p, url=request.url, sha256=sha256.lower(), size=size)
            for p in sorted(platforms)
        ),
    )


def check_named_build(request: PythonRequest, filename: str, platforms: Sequence[str]) -> None:
    """Refuse a direct URL whose upstream file name says it is another implementation,
    platform or variant than the entry locks it as: the lock would name a build that is
    not the archive (a macOS archive locked for Linux, a free-threaded one as default, a
    PyPy archive as CPython, whose first ``X.Y.Z`` is the PyPy release)."""
    where = f"[python.{request.name}]"
    pbs = parse_pbs_filename(filename)
    pypy = None if pbs is not None else parse_pypy_filename(filename)
    release = pypy if pbs is not None or pypy is not None else parse_graalpy_filename(filename)
    if pbs is not None:
        implementation, platform, variant = Implementation.CPYTHON, pbs.platform, pbs.variant
    elif release is not None:
        implementation = Implementation.PYPY if pypy is not None else Implementation.GRAALPY
        platform, variant = release.platform, None
    else:
        return  # a name of no upstream's: nothing to go by
    if implementation is not request.implementation:
        example = f'implementation = "{implementation.value}"'
        if release is not None and exact_version(request.specifier) is None:
            # A url entry of PyPy or GraalPy takes the exact version: a series ("3.10")
            # is refused, as the file name shows no X.Y.Z of Python.
            series = release.python_version or "X.Y"
            example += f' and version = "{series}.Z", the exact Python version it holds'
        raise ResolutionError(
            f"python.{request.name}: {filename} is named as a {implementation.value} archive, "
            f"but the entry asks for {request.implementation.value}",
            hint=f"if it is {implementation.value}, say so under {where}: {example}",
        )
    others = [key for key in platforms if not _serves(platform.key, key)]
    if others:
        raise ResolutionError(
            f"{request.name}: {filename} is a build for {platform.key}, not for "
            f"{', '.join(others)}",
            hint=f'set platforms = ["{platform.key}"] in {where} (one url is one platform\'s '
            "build: an interpreter for several platforms takes an entry each)",
        )
    if variant is not None and variant is not request.variant:
        raise ResolutionError(
            f"{request.name}: {filename} is a {variant.value} build, but {where} asks for "
            f"{request.variant.value}",
            hint=f'set variant = "{variant.value}" in {where}',
        )


def _serves(build: str, platform: str) -> bool:
    """Whether a build for the platform key ``build`` may be locked for ``platform``: the
    same, or the same but for the x86-64 level. A baseline build runs on any level, and a
    level build (x86_64_v3) is a choice for machines known to have it; two levels differ.

    >>> v3, v2, x86 = "linux-x86_64_v3-gnu", "linux-x86_64_v2-gnu", "linux-x86_64-gnu"
    >>> _serves(x86, v3), _serves(v3, x86), _serves(v3, v2), _serves("macos-aarch64", x86)
    (True, True, False, False)
    """
    if build == platform:
        return True
    base = _without_level(build)
    return base == _without_level(platform) and base in (build, platform)


def _without_level(key: str) -> str:
    """A platform key without its x86-64 micro-architecture level.

    >>> _without_level("linux-x86_64_v3-gnu"), _without_level("macos-aarch64")
    ('linux-x86_64-gnu', 'macos-aarch64')
    """
    return re.sub(r"^(\w+-x86_64)_v\d(?=-|$)", r"\1", key)


def _direct_version(request: PythonRequest, filename: str) -> str:
    spec = request.specifier
    exact = exact_version(spec)
    if exact is not None:
        return exact
    found = None
    if request.implementation is Implementation.CPYTHON:
        # PyPy and GraalPy names carry their own release number, not the Python version.
        found = version_in_filename(filename)
    if found is None:
        raise ResolutionError(
            f"{request.name}: cannot tell the Python version of {filename}",
            hint=f'add version = "X.Y.Z" to [python.{request.name}]',
        )
    if spec is not None and not request_allows(spec, Version(found), prereleases=True):
        raise ResolutionError(
            f"{request.name}: {filename} looks like Python {found}, "
            f"which does not satisfy version {spec}",
            hint=f'set version = "X.Y.Z" in [python.{request.name}] to the archive\'s version',
        )
    return found


def _is_python_series(version: str) -> bool:
    """Whether a specifier's version reads as a Python version (2 or 3, then anything),
    not a PyPy or GraalPy release (7.3, 24.2, 25).

    >>> [_is_python_series(v) for v in ("3.11", "3", "2.7.*", "24.2", "25", "7.3.19")]
    [True, True, True, False, False, False]
    """
    return version.split(".", 1)[0] in ("2", "3")


def exact_version(spec: SpecifierSet | None) -> str | None:
    """The one version an ``==X.Y.Z`` specifier pins, else ``None``."""
    if spec is None:
        return None
    specs = list(spec)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


# -- upstream resolution -------------------------------------------------------------------

#: (version, build tag): one exact build.
_Key = tuple[str, str]
#: Sorts exact builds oldest first: by version, then by the tag's publication; of one
#: version spelled two ways by a listing (``3.13.1``, ``3.13.01``), the canonical spelling
#: last, so that the pick never rests on the order of a set.
_Order = tuple[Version, tuple[str, tuple[int, ...], str], bool, str]


def flavor_choices(request: PythonRequest) -> tuple[Flavor | None, ...]:
    """The flavors ``request`` accepts, best first (``None``: PyPy and GraalPy have none)."""
    if request.implementation is Implementation.CPYTHON:
        return request.flavor.fallbacks()
    return (None,)


def _matching(
    request: PythonRequest, spec: SpecifierSet, builds: Iterable[Build], allowed: dict[str, bool]
) -> list[Build]:
    """Builds that satisfy the version, pre-release and build-pin parts of a request.

    ``allowed`` caches the verdict per version across platforms: specifier checks
    are the bulk of resolution time.
    """
    out = []
    for build in builds:
        if request.build is not None and build.build != request.build:
            continue
        ok = allowed.get(build.version)
        if ok is None:
            ok = allowed[build.version] = request_allows(
                spec, version_key(build.version), prereleases=request.prereleases
            )
        if ok:
            out.append(build)
    return out


def _by_key(
    builds: Iterable[Build], flavors: Sequence[Flavor | None]
) -> dict[_Key, dict[Flavor | None, Build]]:
    """Index builds by exact build, then flavor, keeping the best-optimised duplicate."""
    table: dict[_Key, dict[Flavor | None, Build]] = {}
    for build in builds:
        if build.flavor not in flavors:
            continue
        slot = table.setdefault((build.version, build.build), {})
        current = slot.get(build.flavor)
        if current is None or _preference(build) < _preference(current):
            slot[build.flavor] = build
    return table


def _preference(build: Build) -> tuple[int, str]:
    parsed = parse_pbs_filename(build.filename)
    return (parsed.optimisation_rank if parsed is not None else 0, build.url)


def _resolve_upstream(
    request: PythonRequest, index: Index, platforms: Sequence[str], warn: Warn
) -> LockedPython:
    flavors = flavor_choices(request)
    spec = request.specifier
    if spec is None:
        raise ResolutionError(
            f"{request.name}: no version requested",
            hint=f'add version = "3.13" (for example) to [python.{request.name}]',
        )
    allowed: dict[str, bool] = {}
    tables = {
        p: _by_key(
            _matching(
                request,
                spec,
                index.candidates(request.implementation, p, request.variant),
                allowed,
            ),
            flavors,
        )
        for p in platforms
    }
    common = set.intersection(*(set(t) for t in tables.values())) if tables else set()

    def order(key: _Key) -> _Order:
        version = version_key(key[0])
        return (version, index.tag_order(key[1]), str(version) == key[0], key[0])

    # Builds that would have won but have no published sha256, newest first: they are
    # left out (the README's "Upstream sources"), and the next-best build is locked.
    unhashed: list[dict[str, Build]] = []
    for key in sorted(common, key=order, reverse=True):
        shared = [f for f in flavors if all(f in tables[p][key] for p in platforms)]
        hashed = [f for f in shared if all(tables[p][key][f].sha256 for p in platforms)]
        if shared and shared[0] not in hashed:
            unhashed.append({p: tables[p][key][shared[0]] for p in platforms})
        if not hashed:
            continue
        flavor = hashed[0]
        chosen = {p: tables[p][key][flavor] for p in platforms}
        if unhashed:
            warn(_left_out_message(request, unhashed, locked=chosen))
        newer = _in_any_flavor(request, index, platforms)
        if newer is not None and version_key(newer.version) > version_key(key[0]):
            warn(_newer_elsewhere_message(request, newer, locked=chosen))
        return LockedPython(
            name=request.name,
            implementation=request.implementation,
            version=key[0],
            build=key[1],
            variant=request.variant,
            flavor=flavor,
            default=request.default,
            artifacts=tuple(_artifact(p, b) for p, b in sorted(chosen.items())),
        )
    if unhashed:
        raise _no_hash_error(request, unhashed)
    raise _no_build_error(_Search(request, index, platforms, tables, common, order))


def _in_any_flavor(
    request: PythonRequest, index: Index, platforms: Sequence[str]
) -> LockedPython | None:
    """What ``request`` would lock with its flavor left out, when an explicit
    ``install_only`` or ``full`` narrows the fallbacks; else ``None``.

    The bundled index (from uv's downloads list) holds most builds in one flavor only,
    so the newest version in an explicit flavor can be years older than the newest one.
    """
    if (
        request.implementation is not Implementation.CPYTHON
        or request.flavor is Flavor.INSTALL_ONLY_STRIPPED  # its fallbacks are every flavor
    ):
        return None
    try:
        return _resolve_upstream(
            attrs.evolve(request, flavor=Flavor.INSTALL_ONLY_STRIPPED), index, platforms, _ignore
        )
    except ResolutionError:
        return None


def _pin_and_refresh(request: PythonRequest, other: LockedPython) -> str:
    """Where ``other``, locked in another flavor, came from, and how to look for it in the
    flavor ``request`` asks for."""
    return (
        f"{other.version}+{other.build} exists as {other.flavor}, but the bundled index lists "
        f"most builds in one flavor only: to look for it as {request.flavor}, set "
        f'build = "{other.build}" in [python.{request.name}] and run `pylock lock --refresh` '
        "(it reads every flavor of a pinned release)"
    )


def _newer_elsewhere_message(
    request: PythonRequest, newer: LockedPython, *, locked: dict[str, Build]
) -> str:
    first = next(iter(locked.values()))
    return (
        f"{request.name}: locked {_label(first)} {first.flavor}, an older version than the "
        f"index has in another flavor: {_pin_and_refresh(request, newer)}, or choose another "
        "flavor"
    )


def _artifact(platform: str, build: Build) -> Artifact:
    assert build.sha256 is not None  # builds without one were left out
    return Artifact(platform=platform, url=build.url, sha256=build.sha256, size=build.size)


def _lacking_hash(builds: dict[str, Build]) -> tuple[Build, list[str]]:
    """One of a build's archives, and the platforms whose archive has no sha256."""
    missing = sorted(p for p, b in builds.items() if b.sha256 is None)
    return builds[missing[0]], missing


def _label(build: Build) -> str:
    return f"{build.implementation} {build.version}+{build.build}"


def _describe_unhashed(builds: dict[str, Build]) -> str:
    build, missing = _lacking_hash(builds)
    flavor = f" {build.flavor}" if build.flavor is not None else ""
    return f"{_label(build)}{flavor} (none for {', '.join(missing)})"


def _left_out_message(
    request: PythonRequest, unhashed: Sequence[dict[str, Build]], *, locked: dict[str, Build]
) -> str:
    shown = "; ".join(_describe_unhashed(b) for b in unhashed[:_LISTED])
    more = f"; and {len(unhashed) - _LISTED} more" if len(unhashed) > _LISTED else ""
    first = next(iter(locked.values()))
    flavor = f" {first.flavor}" if first.flavor is not None else ""
    return (
        f"{request.name}: left out {shown}{more}, for want of a published sha256; "
        f"locked {_label(first)}{flavor} instead"
    )


#: The first python-build-standalone release that published sha256 sums.
_FIRST_HASHED_PBS_TAG = "20220227"


def _no_hash_error(request: PythonRequest, unhashed: Sequence[dict[str, Build]]) -> ResolutionError:
    """Builds match on every platform, but none of them has a published sha256."""
    build, missing = _lacking_hash(unhashed[0])
    flavor = f" {build.flavor}" if build.flavor is not None else ""
    older = f" (nor do {len(unhashed) - 1} older matches)" if len(unhashed) > 1 else ""
    why = ""
    instead = "lock it as a direct `url` with a `sha256` you trust"
    if build.platform == "emscripten-wasm32":
        why = "; the index lists no sha256 for any Pyodide cross-build environment"
    else:
        instead += ", or ask for a version whose builds have a published sha256"
        if (
            build.implementation is Implementation.CPYTHON
            and tag_date(build.build) is not None
            and build.build < _FIRST_HASHED_PBS_TAG
        ):
            why = f"; python-build-standalone published none before {_FIRST_HASHED_PBS_TAG}"
    return ResolutionError(
        f"{request.name}: no build of {_describe_request(request)} with a published sha256 "
        f"exists for every platform: the newest match, {_label(build)}{flavor}, has none for "
        f"{', '.join(missing)}{older}{why}",
        hint=f"{instead} (in [python.{request.name}])",
    )


def _describe_request(request: PythonRequest) -> str:
    parts = [f"{request.implementation} {request.specifier}"]
    if request.variant.value != "default":
        parts.append(f"variant {request.variant}")
    if request.build is not None:
        parts.append(f"build {request.build}")
    if (
        request.implementation is Implementation.CPYTHON
        and request.flavor is not Flavor.INSTALL_ONLY_STRIPPED
    ):
        parts.append(f"flavor {request.flavor}")
    if request.prereleases:
        parts.append("pre-releases allowed")
    return ", ".join(parts)


@attrs.frozen
class _Search:
    """What a failed search for one entry looked at, for the error that explains it."""

    request: PythonRequest
    index: Index
    platforms: Sequence[str]
    #: Per platform: (version, build) -> flavor -> build, of the matching candidates.
    tables: dict[str, dict[_Key, dict[Flavor | None, Build]]]
    #: The (version, build) keys every platform has.
    common: set[_Key]
    order: Callable[[_Key], _Order]


def _no_build_error(search: _Search) -> ResolutionError:
    """Why nothing fits, in the terms of the mistake most likely behind it."""
    request, index, platforms = search.request, search.index, search.platforms
    tables, common, order = search.tables, search.common, search.order
    candidates = {
        p: index.candidates(request.implementation, p, request.variant) for p in platforms
    }
    return (
        _only_prereleases(request, candidates)
        or _flavor_missing(request, index, candidates, tables)
        or (None if common else _no_common_build(request, index, candidates, tables, order))
        or _lacking_platforms(search)
    )


def _only_prereleases(
    request: PythonRequest, candidates: dict[str, tuple[Build, ...]]
) -> ResolutionError | None:
    """Nothing final matches anywhere, but pre-releases would."""
    spec = request.specifier
    if request.prereleases or spec is None:
        return None
    final: set[str] = set()
    pre: set[str] = set()
    for builds in candidates.values():
        for build in builds:
            if request.build is not None and build.build != request.build:
                continue
            version = version_key(build.version)
            if request_allows(spec, version, prereleases=False):
                final.add(build.version)
            elif request_allows(spec, version, prereleases=True):
                pre.add(build.version)
    if final or not pre:
        return None
    shown = sorted(pre, key=version_key, reverse=True)[:_LISTED]
    return ResolutionError(
        f"{request.name}: only pre-releases match version {request.version!r} "
        f"({', '.join(shown)}); pre-releases are not chosen unless asked for",
        hint=f"set prereleases = true in [python.{request.name}] to allow them, "
        "or ask for a released version",
    )


def _flavor_missing(
    request: PythonRequest,
    index: Index,
    candidates: dict[str, tuple[Build, ...]],
    tables: dict[str, dict[_Key, dict[Flavor | None, Build]]],
) -> ResolutionError | None:
    """The version exists on a platform, but in none of the flavors asked for."""
    if request.implementation is not Implementation.CPYTHON or request.specifier is None:
        return None
    flavors = flavor_choices(request)
    lacking = [
        p
        for p, builds in candidates.items()
        if not tables[p] and _matching(request, request.specifier, builds, {})
    ]
    if not lacking:
        return None
    having: set[str] = set()
    for build in candidates[lacking[0]]:
        if build.flavor in flavors and (
            request.prereleases or not version_key(build.version).is_prerelease
        ):
            having.add(build.version)
    names = " or ".join(repr(str(f)) for f in flavors)
    found = sorted(having, key=version_key, reverse=True)
    shown = ", ".join(found[:_LISTED]) + (f", ... ({len(found)} in all)" if len(found) > 4 else "")
    hint = (
        f"pick one of those versions, or another flavor in [python.{request.name}] "
        f"(or leave flavor out for the default, {Flavor.INSTALL_ONLY_STRIPPED})"
    )
    other = _in_any_flavor(request, index, tuple(candidates))
    if other is not None:
        hint += f"; {_pin_and_refresh(request, other)}"
    else:
        hint += (
            "; the bundled index lists most builds in one flavor only: with a `build` pin, "
            "`pylock lock --refresh` reads every flavor of that release"
        )
    return ResolutionError(
        f"{request.name}: no build of {request.implementation} {request.specifier} for "
        f"{', '.join(lacking)} comes in flavor {names}; "
        + (f"versions that do: {shown}" if found else "no version there does"),
        hint=hint,
    )


def _no_common_build(
    request: PythonRequest,
    index: Index,
    candidates: dict[str, tuple[Build, ...]],
    tables: dict[str, dict[_Key, dict[Flavor | None, Build]]],
    order: Callable[[_Key], _Order],
) -> ResolutionError | None:
    """Each platform has the version, but under different build tags: no pin can help."""
    if len(tables) < 2 or not all(tables.values()):
        return None
    versions = set.intersection(*({v for v, _ in t} for t in tables.values()))
    if not versions:
        return None
    version = max(versions, key=version_key)
    tags = {
        p: sorted((b for v, b in t if v == version), key=index.tag_order, reverse=True)
        for p, t in tables.items()
    }
    width = max(len(p) for p in tags)
    lines = [
        f"{request.name}: {request.implementation} {version} exists on every platform, but "
        "in no one build that all of them share:",
        *(f"  {p:<{width}}  {version}+{', '.join(t[:_LISTED])}" for p, t in sorted(tags.items())),
    ]
    newest = _newest_shared(request, candidates, order)
    if newest is not None:
        hint = (
            f"the newest version with one build on all these platforms is {newest[0]} "
            f'(build {newest[1]}): set version = "{newest[0]}" in [python.{request.name}], '
            "or split the entry into one [python.NAME] per group of platforms"
        )
    else:
        hint = (
            f"no version has one build on all these platforms: split [python.{request.name}] "
            "into one [python.NAME] per group of platforms"
        )
    if request.implementation is not Implementation.CPYTHON and not index.includes_live:
        # A PyPy or GraalPy version spans releases (GraalPy's 3.12.0: 25.0 to 25.2), and
        # the bundled index keeps its newest build per platform only: `--refresh` reads
        # every release, and an older one may have them all (the hint said to go back to
        # 3.11 where GraalPy 25.0.1 has 3.12.0 for macos-x86_64 and the rest).
        hint = (
            f"`pylock lock --refresh` reads every {request.implementation} release upstream, "
            f"where an older build of {version} may have all these platforms; or {hint}"
        )
    return ResolutionError("\n".join(lines), hint=hint)


def _newest_shared(
    request: PythonRequest,
    candidates: dict[str, tuple[Build, ...]],
    order: Callable[[_Key], _Order],
) -> _Key | None:
    """The newest (version, build) any flavor of which every platform has, whatever the spec."""
    flavors = flavor_choices(request)
    per_platform = []
    for builds in candidates.values():
        keys: dict[_Key, set[Flavor | None]] = {}
        for build in builds:
            if build.flavor in flavors and (
                request.prereleases or not version_key(build.version).is_prerelease
            ):
                keys.setdefault((build.version, build.build), set()).add(build.flavor)
        per_platform.append(keys)
    shared = set.intersection(*(set(k) for k in per_platform)) if per_platform else set()
    usable = [k for k in shared if set.intersection(*(keys[k] for keys in per_platform))]
    return max(usable, key=order) if usable else None


def _lacking_platforms(search: _Search) -> ResolutionError:
    request, index, platforms = search.request, search.index, search.platforms
    tables, order = search.tables, search.order
    where = "every platform" if len(platforms) > 1 else ", ".join(platforms)
    lines = [f"{request.name}: no build of {_describe_request(request)} exists for {where}"]
    width = max(len(p) for p in platforms) if platforms else 0
    # The variant too: "no cpython builds for windows-x86_64" of a debug entry is untrue.
    kind = request.implementation.value
    if request.variant is not Variant.DEFAULT:
        kind += f" {request.variant}"
    pin_missing = False
    bare_platforms: list[str] = []
    for p in platforms:
        keys = sorted(tables[p], key=order, reverse=True)
        if keys:
            shown = ", ".join(f"{v}+{b}" for v, b in keys[:_LISTED])
            more = f", ... ({len(keys)} in all)" if len(keys) > _LISTED else ""
            lines.append(f"  {p:<{width}}  {shown}{more}")
            continue
        anything = index.candidates(request.implementation, p, request.variant)
        if not anything:
            lines.append(f"  {p:<{width}}  no {kind} builds at all")
            bare_platforms.append(p)
            continue
        unpinned = _unpinned_matches(request, anything)
        if unpinned:
            pin_missing = True
            found = sorted({(b.version, b.build) for b in unpinned}, key=order, reverse=True)
            shown = ", ".join(f"{v}+{b}" for v, b in found[:_LISTED])
            more = f", ... ({len(found)} in all)" if len(found) > _LISTED else ""
            lines.append(f"  {p:<{width}}  no build {request.build} (there: {shown}{more})")
            continue
        newest = _newest_allowed(request, anything, index)
        lines.append(
            f"  {p:<{width}}  none matching (newest there: {newest.version}+{newest.build})"
        )
    if search.common:
        lines.append("  (builds common to all platforms exist, but in no one flavor they all have)")
    to_change = "`version`, `build` or `flavor`"
    if request.implementation is not Implementation.CPYTHON:
        to_change = "`version` or `build`"  # PyPy and GraalPy have no flavors
    hint = f"change {to_change}" + (
        ", or remove the platforms that lack it" if len(platforms) > 1 else ""
    )
    release_for_version = (
        request.implementation is not Implementation.CPYTHON
        and request.specifier is not None
        # A Python version is 2.x or 3.x; PyPy's and GraalPy's releases are 7.3, 24.1, 25...
        and not any(_is_python_series(str(s.version)) for s in request.specifier)
    )
    series = _graalpy_series_asked(request)
    if release_for_version:
        hint = (
            f'for {request.implementation}, `version` is the Python version (e.g. "3.11"); '
            f"the {request.implementation} release goes in `build`"
        )
    elif series is not None:
        hint = (
            f"GraalPy builds are listed by Python series, as {series}.0 (as uv lists them), "
            f'not by the patch level `graalpy --version` reports: set version = "{series}"'
        )
    elif bare_platforms:
        listed = ", ".join(bare_platforms)
        hint = (
            f"pylock knows no {kind} builds for {listed}: lock for other platforms"
            if len(bare_platforms) == len(platforms)
            else f"remove the platforms with no {kind} builds at all ({listed}), "
            f"or change {to_change}"
        )
    if pin_missing and index.includes_live:
        hint = (
            f"upstream lists no build {request.build} of that version either (looked up just "
            "now): pin a build listed above, or check the `build` for a typo"
        )
    elif pin_missing:
        hint = (
            f"the index (as of {index.source_date}) lists no build {request.build} of that "
            "version: `pylock lock --refresh` looks it up upstream; or pin a build listed above"
        )
    return ResolutionError("\n".join(lines), hint=hint)


def _graalpy_series_asked(request: PythonRequest) -> str | None:
    """The series of a GraalPy request that names a patch level (``3.12.8``), which no
    GraalPy build has: they are listed as ``X.Y.0``."""
    if request.implementation is not Implementation.GRAALPY or request.specifier is None:
        return None
    for spec in request.specifier:
        parts = str(spec.version).split(".")
        if len(parts) == 3 and _is_python_series(parts[0]) and parts[2] not in ("0", "*"):
            return ".".join(parts[:2])
    return None


def _unpinned_matches(request: PythonRequest, builds: Iterable[Build]) -> list[Build]:
    """With a build pin, the builds that would match but for the pin."""
    if request.build is None or request.specifier is None:
        return []
    return _matching(attrs.evolve(request, build=None), request.specifier, builds, {})


def _newest_allowed(request: PythonRequest, builds: Sequence[Build], index: Index) -> Build:
    """The newest build, a final release unless pre-releases are allowed (if there is one)."""
    finals = [b for b in builds if request.prereleases or not version_key(b.version).is_prerelease]
    return max(finals or builds, key=lambda b: (version_key(b.version), index.tag_order(b.build)))
