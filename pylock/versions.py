"""Interpreter versions, version requests, and the vocabulary of builds (pure).

A bare ``3.13`` in ``pythons.toml`` means ``==3.13.*``; ``3.13.9`` means exactly that
version; anything else is a PEP 440 specifier.

>>> str(parse_request("3.13"))
'==3.13.*'
>>> str(parse_request(">=3.10.12,<3.11"))
'<3.11,>=3.10.12'
>>> Variant.parse("freethreaded+debug").pbs_abi_suffix
'td'
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from packaging.version import Version

from pylock.errors import shown

if TYPE_CHECKING:
    # Imported where used: ``sync`` never parses a request, and it costs ~10 ms.
    from packaging.specifiers import SpecifierSet

REQUEST_EXAMPLES = 'e.g. "3.13", "3.12.11" or ">=3.12,<3.14"'

_BARE = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+){0,2}(?:(?:a|b|rc)[0-9]+)?)\s*$", re.ASCII)


class Implementation(enum.StrEnum):
    """An interpreter implementation."""

    CPYTHON = "cpython"
    PYPY = "pypy"
    GRAALPY = "graalpy"


class Variant(enum.StrEnum):
    """A CPython build variant."""

    DEFAULT = "default"
    FREETHREADED = "freethreaded"
    DEBUG = "debug"
    FREETHREADED_DEBUG = "freethreaded+debug"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """Parse a variant name (``None`` and ``""`` mean default)."""
        return cls(text or "default")

    @property
    def freethreaded(self) -> bool:
        """Whether this variant has the GIL disabled (a ``t`` ABI)."""
        return self in (Variant.FREETHREADED, Variant.FREETHREADED_DEBUG)

    @property
    def debug(self) -> bool:
        """Whether this is a debug build (a ``d`` ABI)."""
        return self in (Variant.DEBUG, Variant.FREETHREADED_DEBUG)

    @property
    def pbs_abi_suffix(self) -> str:
        """The ABI letters this variant adds to executable names: ``t``, ``d``, ``td``."""
        return ("t" if self.freethreaded else "") + ("d" if self.debug else "")


class Flavor(enum.StrEnum):
    """How much of a build an archive holds."""

    INSTALL_ONLY_STRIPPED = "install_only_stripped"
    INSTALL_ONLY = "install_only"
    FULL = "full"

    def fallbacks(self) -> tuple[Flavor, ...]:
        """This flavor, then the nearest substitutes, best first.

        ``install_only_stripped`` falls back to ``install_only`` and then to ``full``
        (where debug and some free-threaded builds only exist); an explicit request
        for ``install_only`` or ``full`` is honoured exactly.
        """
        if self is Flavor.INSTALL_ONLY_STRIPPED:
            return (Flavor.INSTALL_ONLY_STRIPPED, Flavor.INSTALL_ONLY, Flavor.FULL)
        if self is Flavor.INSTALL_ONLY:
            return (Flavor.INSTALL_ONLY, Flavor.FULL)
        return (Flavor.FULL,)


class ArchiveFormat(enum.StrEnum):
    """Container formats pylock extracts."""

    TAR_GZ = "tar.gz"
    TAR_ZST = "tar.zst"
    TAR_BZ2 = "tar.bz2"
    ZIP = "zip"

    @classmethod
    def from_filename(cls, name: str) -> ArchiveFormat:
        """Guess the format from a file name; raise ``ValueError`` if it is none of ours."""
        lowered = name.lower()
        for fmt, suffixes in _SUFFIXES.items():
            if lowered.endswith(suffixes):
                return fmt
        raise ValueError(
            f"cannot tell the archive format of {name!r} "
            "(expected .tar.gz, .tgz, .tar.zst, .tar.bz2 or .zip)"
        )


_SUFFIXES = {
    ArchiveFormat.TAR_GZ: (".tar.gz", ".tgz"),
    ArchiveFormat.TAR_ZST: (".tar.zst", ".tzst"),
    ArchiveFormat.TAR_BZ2: (".tar.bz2", ".tbz2"),
    ArchiveFormat.ZIP: (".zip",),
}


def parse_version(text: str) -> Version:
    """Parse an exact interpreter version such as ``3.13.9`` or ``3.15.0a7``."""
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a part too long for int()
        raise ValueError(f'invalid version {shown(text)} (expected e.g. "3.13.9")') from None


#: An interpreter release's version as upstream names one, in its file names too: ASCII
#: digits only (``\d`` takes ``３``, which packaging refuses), at most 9 of them a part
#: (``int()`` refuses 4,300).
RELEASE_PATTERN = r"[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}(?:(?:a|b|rc)[0-9]{1,9})?"
_RELEASE = re.compile(RELEASE_PATTERN)
#: A number longer than any part of a version :data:`RELEASE_PATTERN` accepts.
_LONG_NUMBER = re.compile(r"[0-9]{10}")


def is_release_version(text: object) -> bool:
    """Whether ``text`` is an interpreter release's version as upstream names one:
    ``X.Y.Z``, perhaps with ``aN``, ``bN`` or ``rcN``. Not ``v3.11.9``, ``3.11.9+local``,
    ``3.10.14.dev`` or ``３.13.9``, which packaging may take but no interpreter is.

    >>> [is_release_version(v) for v in ("3.13.9", "3.15.0rc1", "v3.13.9", "3.13.9+x", 3)]
    [True, True, False, False, False]
    """
    return isinstance(text, str) and _RELEASE.fullmatch(text) is not None


_PINNED_BUILD = re.compile(rf"\s*({RELEASE_PATTERN})\+([0-9]{{8}})\s*", re.ASCII)


def parse_request(text: str) -> SpecifierSet:
    """Turn a ``version`` request from ``pythons.toml`` into a specifier set.

    ``3``, ``3.13`` mean any release of that series; ``3.13.9`` means exactly that
    version; anything else must be a PEP 440 specifier set. Raise ``ValueError``
    with an example of what is accepted.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if _LONG_NUMBER.search(text):
        # No version part has ten digits, and packaging's int() of one with thousands
        # raises a ValueError when the specifier is used.
        raise ValueError(f"invalid version {shown(text)}: a number of more than 9 digits")
    bare = _BARE.match(text)
    if bare:
        parts = bare.group(1)
        if parts.count(".") == 2 or re.search(r"(a|b|rc)[0-9]+$", parts):
            return SpecifierSet(f"=={parts}")
        return SpecifierSet(f"=={parts}.*")
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        pinned = _PINNED_BUILD.fullmatch(text)
        if pinned:  # copied from pylock's own output: "cpython 3.13.9+20251014"
            raise ValueError(
                f"invalid version {shown(text)}: the part after '+' is the build; write "
                f'version = "{pinned.group(1)}" and build = "{pinned.group(2)}"'
            ) from None
        raise ValueError(f"invalid specifier {shown(text)} (expected {REQUEST_EXAMPLES})") from None
    if not str(spec):
        raise ValueError(f"empty version specifier (expected {REQUEST_EXAMPLES})")
    for item in spec:
        # `===` takes any text, and would match no interpreter version but that text.
        if item.operator == "===" and not is_release_version(item.version):
            raise ValueError(
                f"invalid version {shown(text)}: '===' needs an exact version such as 3.13.9"
            )
    return spec


def request_allows(spec: SpecifierSet, version: Version, *, prereleases: bool) -> bool:
    """Whether ``version`` satisfies ``spec``.

    Pre-releases match only when asked for, or when an inclusive clause of the
    specifier names one (``==3.15.0a7``, ``>=3.15.0b1``), as PEP 440 prescribes.
    Excluding one (``!=3.14.0rc2``) is not asking for pre-releases.

    >>> request_allows(parse_request(">=3.12,!=3.14.0rc2"), Version("3.15.0rc1"), prereleases=False)
    False
    >>> request_allows(parse_request(">=3.15.0b1"), Version("3.15.0rc1"), prereleases=False)
    True
    """
    if version.is_prerelease and not prereleases and not _names_prerelease(spec):
        return False
    return spec.contains(version, prereleases=True)


# The operators that can *select* the version they name. ``!=``, ``<`` and ``>``
# exclude it, so naming a pre-release there does not ask for one (packaging's rule
# before 22.0, and PEP 440's "explicitly requested").
_INCLUSIVE_OPERATORS = frozenset({"==", "===", ">=", "<=", "~="})


def _names_prerelease(spec: SpecifierSet) -> bool:
    # Decided here rather than by packaging's ``prereleases=None`` rule, whose meaning
    # has shifted between packaging releases.
    for item in spec:
        if item.operator not in _INCLUSIVE_OPERATORS:
            continue
        try:
            if Version(item.version.removesuffix(".*")).is_prerelease:
                return True
        except ValueError:  # InvalidVersion, or a part too long for int()
            continue
    return False
