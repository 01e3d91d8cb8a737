"""Parsers for upstream archive file names: python-build-standalone, PyPy, GraalPy, Pyodide (pure).

Every naming era that upstream has used is understood, so a file name alone tells the
version, the build tag (when the name carries one), the platform, the variant, the
flavor and the container format.

>>> p = parse_pbs_filename(
...     "cpython-3.13.9+20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
... )
>>> p.version, p.tag, p.platform.key, str(p.variant), str(p.flavor), str(p.format)
('3.13.9', '20251014', 'linux-x86_64-gnu', 'default', 'install_only_stripped', 'tar.gz')
>>> p = parse_pbs_filename(
...     "cpython-3.13.0rc2+20240909-aarch64-apple-darwin-freethreaded+pgo+lto-full.tar.zst"
... )
>>> p.version, p.platform.key, str(p.variant), str(p.flavor), p.options
('3.13.0rc2', 'macos-aarch64', 'freethreaded', 'full', ('freethreaded', 'pgo', 'lto'))
>>> p = parse_pypy_filename("pypy3.11-v7.3.20-linux64.tar.bz2")
>>> p.python_version, p.release, p.platform.key, str(p.format)
('3.11', '7.3.20', 'linux-x86_64-gnu', 'tar.bz2')
>>> parse_graalpy_filename("graalpy3.12-25.2.4-windows-amd64.zip").platform.key
'windows-x86_64'
>>> parse_pbs_filename("python-3.13.9.tar.xz") is None
True
"""

from __future__ import annotations

import re

import attrs

from pylock.platforms import Platform
from pylock.versions import RELEASE_PATTERN, ArchiveFormat, Flavor, Implementation, Variant

_VERSION = RELEASE_PATTERN
# The patterns below are used with fullmatch: `$` alone also matches before a final line
# break, and a listing's asset "name.tar.gz\n" became a URL no lock reader takes.

_PBS = re.compile(
    rf"""
    ^cpython-(?P<version>{_VERSION})
    (?:\+(?P<tag>[0-9]{{8}}))?
    -(?P<triple>[a-z0-9_]+-(?:unknown-linux-[a-z0-9]+|apple-darwin
       |pc-windows-msvc(?:-shared|-static)?))
    -(?:(?P<options>[a-z0-9]+(?:\+[a-z0-9]+)*)-)??
    (?P<kind>install_only_stripped|install_only|full|(?P<stamp>[0-9]{{8}}T[0-9]{{4}}))
    \.(?P<ext>tar\.gz|tar\.zst)$
    """,
    re.VERBOSE,
)

_PYPY = re.compile(
    rf"""
    ^pypy(?P<python>[0-9]{{1,9}}\.[0-9]{{1,9}})
    -v(?P<release>{_VERSION})
    -(?P<platform>[a-z0-9_]+)
    \.(?P<ext>tar\.bz2|tar\.gz|zip)$
    """,
    re.VERBOSE,
)

_GRAALPY = re.compile(
    r"""
    ^graalpy(?P<python>[0-9]{1,9}\.[0-9]{1,9})?
    -(?P<release>[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9})
    -(?P<platform>(?:linux|macos|windows)-(?:amd64|aarch64))
    \.(?P<ext>tar\.gz|zip)$
    """,
    re.VERBOSE,
)

_PYODIDE = re.compile(rf"^xbuildenv-(?P<pyodide>{_VERSION})\.tar\.(?:bz2|gz)$")

# A full archive is built with one set of optimisations; when upstream offers several
# for the same target, the best-optimised one is the one to lock.
_OPTIMISATION_RANK = {"pgo+lto": 0, "lto": 1, "pgo": 2, "": 3, "noopt": 4}


@attrs.frozen(kw_only=True)
class ParsedPbsName:
    """What a python-build-standalone file name says about its archive."""

    #: CPython version, possibly a pre-release (``3.15.0a7``).
    version: str
    #: Release tag from the name (``20251014``); ``None`` for names before 20220227, which
    #: carry a build timestamp instead (the tag is then only in the download URL).
    tag: str | None
    #: The target triple as written, including an old ``-shared`` suffix.
    triple: str
    #: The platform the triple maps to.
    platform: Platform
    #: The build variant, from the build options.
    variant: Variant
    #: The archive flavor (old timestamped archives are full archives).
    flavor: Flavor
    #: Container format.
    format: ArchiveFormat
    #: Build options, e.g. ``("freethreaded", "pgo", "lto")``; empty for plain install_only.
    options: tuple[str, ...] = ()
    #: The ``YYYYMMDDTHHMM`` build timestamp of pre-2022 names.
    timestamp: str | None = None

    @property
    def optimisation_rank(self) -> int:
        """Lower is better: ``pgo+lto`` first, ``noopt`` last (for choosing among full archives)."""
        return optimisation_rank(self.options)


@attrs.frozen(kw_only=True)
class ParsedReleaseName:
    """What a PyPy or GraalPy file name says about its archive.

    Both name their own release, not the Python version: the release is the build tag.
    """

    #: The Python series it implements, e.g. ``3.11`` (the patch level is not in the name);
    #: ``None`` for GraalPy names before 25.1.3, which carry none.
    python_version: str | None
    #: The PyPy or GraalPy release, e.g. ``7.3.20`` or ``25.2.4``.
    release: str
    #: Target platform.
    platform: Platform
    #: Container format.
    format: ArchiveFormat


def variant_from_options(options: tuple[str, ...]) -> Variant:
    """The variant a PBS build-option list implies.

    >>> variant_from_options(("freethreaded", "debug"))
    <Variant.FREETHREADED_DEBUG: 'freethreaded+debug'>
    >>> variant_from_options(("pgo", "lto"))
    <Variant.DEFAULT: 'default'>
    """
    freethreaded = "freethreaded" in options
    debug = "debug" in options
    if freethreaded and debug:
        return Variant.FREETHREADED_DEBUG
    if freethreaded:
        return Variant.FREETHREADED
    if debug:
        return Variant.DEBUG
    return Variant.DEFAULT


def optimisation_rank(options: tuple[str, ...]) -> int:
    """Rank a full archive's optimisations, lower is better.

    >>> optimisation_rank(("freethreaded", "pgo", "lto")) < optimisation_rank(("lto",))
    True
    """
    rest = "+".join(o for o in options if o not in ("freethreaded", "debug", "static"))
    return _OPTIMISATION_RANK.get(rest, len(_OPTIMISATION_RANK))


def parse_pbs_filename(name: str) -> ParsedPbsName | None:
    """Parse a python-build-standalone archive name (``+`` literal, not ``%2B``).

    Return ``None`` for names that are not PBS archives, or whose triple names a
    platform pylock does not know (such as the old static Windows builds).

    >>> parse_pbs_filename(
    ...     "cpython-3.8.11-i686-pc-windows-msvc-shared-pgo-20210724T1424.tar.zst"
    ... ).platform.key
    'windows-i686'
    """
    match = _PBS.fullmatch(name)
    if match is None:
        return None
    platform = Platform.from_pbs_triple(match["triple"])
    if platform is None:
        return None
    options = tuple(match["options"].split("+")) if match["options"] else ()
    kind = match["kind"]
    if kind == "full" or match["stamp"]:
        # A full archive always names its build options.
        if not options:
            return None
        flavor = Flavor.FULL
    else:
        flavor = Flavor(kind)
    return ParsedPbsName(
        version=match["version"],
        tag=match["tag"],
        triple=match["triple"],
        platform=platform,
        variant=variant_from_options(options),
        flavor=flavor,
        format=ArchiveFormat(match["ext"]),
        options=options,
        timestamp=match["stamp"],
    )


def parse_pypy_filename(name: str) -> ParsedReleaseName | None:
    """Parse a PyPy archive name; ``None`` if it is not one, or not for a known platform.

    >>> parse_pypy_filename("pypy3.10-v7.3.19-macos_arm64.tar.gz").platform.key
    'macos-aarch64'
    """
    return _parse_release_name(Implementation.PYPY, _PYPY, name)


def parse_graalpy_filename(name: str) -> ParsedReleaseName | None:
    """Parse a GraalPy archive name, old (``graalpy-24.2.2-...``) or new (``graalpy3.12-...``).

    >>> parse_graalpy_filename("graalpy-24.2.2-macos-amd64.tar.gz").python_version is None
    True
    """
    return _parse_release_name(Implementation.GRAALPY, _GRAALPY, name)


def _parse_release_name(
    implementation: Implementation, pattern: re.Pattern[str], name: str
) -> ParsedReleaseName | None:
    match = pattern.fullmatch(name)
    if match is None:
        return None
    platform = Platform.from_release_name(implementation, match["platform"])
    if platform is None:
        return None
    return ParsedReleaseName(
        python_version=match["python"],
        release=match["release"],
        platform=platform,
        format=ArchiveFormat(match["ext"]),
    )


def parse_pyodide_filename(name: str) -> str | None:
    """The Pyodide release of a cross-build environment (``xbuildenv-0.27.7.tar.gz``), if it is one.

    >>> parse_pyodide_filename("xbuildenv-0.27.7.tar.gz")
    '0.27.7'
    """
    match = _PYODIDE.fullmatch(name)
    return match["pyodide"] if match else None


def version_in_filename(name: str) -> str | None:
    """Best-effort interpreter version in any archive name, for direct-URL entries.

    Known upstream names are parsed exactly; anything else yields its first
    ``X.Y.Z`` (with an optional pre-release suffix).

    >>> version_in_filename("cpython-3.12.9-corp-x86_64-linux.tar.gz")
    '3.12.9'
    >>> version_in_filename("python.tar.gz") is None
    True
    """
    pbs = parse_pbs_filename(name)
    if pbs is not None:
        return pbs.version
    match = re.search(rf"(?<![0-9.]){_VERSION}(?!\.?[0-9])", name)
    return match.group(0) if match else None


def flavor_in_filename(name: str) -> Flavor | None:
    """The flavor a CPython archive name announces, if any.

    >>> flavor_in_filename("my-cpython-3.12-install_only.tar.gz")
    <Flavor.INSTALL_ONLY: 'install_only'>
    >>> flavor_in_filename("cpython-3.12.9-corp.tar.gz") is None
    True
    """
    pbs = parse_pbs_filename(name)
    if pbs is not None:
        return pbs.flavor
    for flavor in (Flavor.INSTALL_ONLY_STRIPPED, Flavor.INSTALL_ONLY):
        if flavor.value in name:
            return flavor
    if re.search(r"[-_]full\.", name):
        return Flavor.FULL
    return None
