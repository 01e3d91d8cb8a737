"""Candidate builds and the index that holds them, shared by every upstream source (pure)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs
from packaging.version import Version

from pylock.urls import filename_from_url
from pylock.versions import ArchiveFormat, Flavor, Implementation, Variant


@attrs.frozen(kw_only=True)
class Build:
    """One downloadable upstream archive: an exact build of one interpreter for one platform."""

    #: ``cpython``, ``pypy`` or ``graalpy``.
    implementation: Implementation
    #: The interpreter's Python version, e.g. ``3.13.9`` (for PyPy, the Python it implements).
    version: str
    #: Upstream release tag: PBS date tag (``20251014``), PyPy (``7.3.20``) or GraalPy (``25.0.1``).
    build: str
    #: Platform key.
    platform: str
    #: Build variant.
    variant: Variant
    #: Archive flavor; ``None`` for PyPy and GraalPy.
    flavor: Flavor | None
    #: Container format.
    format: ArchiveFormat
    #: Canonical upstream URL.
    url: str
    #: Lowercase hex sha256; ``None`` where upstream published none (PBS before 20220227).
    sha256: str | None
    #: Size in bytes, when known.
    size: int | None = None

    @property
    def parsed_version(self) -> Version:
        """The version as a :class:`packaging.version.Version`."""
        return version_key(self.version)

    @property
    def filename(self) -> str:
        """The archive's file name, URL escapes decoded."""
        return filename_from_url(self.url)


# A group of the index: one implementation on one platform.
GroupKey = tuple[Implementation, str]

_DATE_TAG = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})$")
_NUMERIC_TAG = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,9})*$")


@functools.lru_cache(maxsize=4096)
def version_key(text: str) -> Version:
    """Parse an interpreter version once; resolution compares the same few hundred often."""
    return Version(text)


def tag_date(tag: str) -> str | None:
    """The date a PBS date tag names, as ``YYYY-MM-DD``; ``None`` for other tags.

    >>> tag_date("20251014"), tag_date("7.3.20")
    ('2025-10-14', None)
    """
    match = _DATE_TAG.match(tag)
    return f"{match[1]}-{match[2]}-{match[3]}" if match else None


#: The :attr:`Index.source` of what ``lock --refresh`` fetched from upstream.
LIVE_SOURCE = "live upstream"


class Index:
    """Candidate builds from one or more upstream sources, grouped for fast look-ups.

    Builds are grouped by (implementation, platform). A group may be given as a
    callable that decodes it on first use, so that loading the bundled snapshot only
    pays for the platforms a resolution actually looks at.
    """

    def __init__(
        self,
        *,
        builds: Iterable[Build] = (),
        source: str,
        source_date: str,
        tag_dates: Mapping[str, str] | None = None,
        lazy_groups: Mapping[GroupKey, Callable[[], Sequence[Build]]] | None = None,
    ) -> None:
        #: Where the builds came from, e.g. ``uv-download-metadata.json`` (sources merged
        #: are joined by `` + ``; :data:`LIVE_SOURCE` names the live listings).
        self.source = source
        #: ``YYYY-MM-DD`` the source data was current on.
        self.source_date = source_date
        #: Release tag -> ``YYYY-MM-DD`` publication date, where it differs from what a
        #: date tag says (tag ``20250323`` was published in 2026) or the tag is no date.
        self.tag_dates: Mapping[str, str] = dict(tag_dates or {})
        self._pending: dict[GroupKey, Callable[[], Sequence[Build]]] = dict(lazy_groups or {})
        self._groups: dict[GroupKey, tuple[Build, ...]] = {}
        self._by_variant: dict[GroupKey, dict[Variant, tuple[Build, ...]]] = {}
        self._by_tag: dict[tuple[GroupKey, Variant], dict[str, tuple[Build, ...]]] = {}
        self._by_url: dict[GroupKey, dict[str, Build]] = {}
        grouped: dict[GroupKey, list[Build]] = {}
        for build in builds:
            grouped.setdefault((build.implementation, build.platform), []).append(build)
        for key, members in grouped.items():
            if key in self._pending:
                raise ValueError(f"group {key} given both eagerly and lazily")
            self._groups[key] = tuple(members)

    @property
    def includes_live(self) -> bool:
        """Whether live upstream listings went into it (``lock --refresh``)."""
        return LIVE_SOURCE in self.source.split(" + ")

    def __repr__(self) -> str:
        return f"Index(source={self.source!r}, source_date={self.source_date!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Index):
            return NotImplemented
        return (
            self.source == other.source
            and self.source_date == other.source_date
            and dict(self.tag_dates) == dict(other.tag_dates)
            and sorted(self.builds, key=_url) == sorted(other.builds, key=_url)
        )

    def _group(self, key: GroupKey) -> tuple[Build, ...]:
        group = self._groups.get(key)
        if group is None:
            decode = self._pending.get(key)
            if decode is None:
                return ()
            group = self._groups[key] = tuple(decode())
            del self._pending[key]
        return group

    @property
    def group_keys(self) -> tuple[GroupKey, ...]:
        """Every (implementation, platform) pair the index has builds for, sorted."""
        return tuple(sorted({*self._groups, *self._pending}))

    @property
    def builds(self) -> tuple[Build, ...]:
        """Every build, grouped by (implementation, platform); decodes every lazy group."""
        return tuple(b for key in self.group_keys for b in self._group(key))

    def __len__(self) -> int:
        return len(self.builds)

    def platforms(self, implementation: Implementation) -> tuple[str, ...]:
        """Platform keys with at least one build of ``implementation``, sorted."""
        return tuple(p for impl, p in self.group_keys if impl is implementation)

    def candidates(
        self, implementation: Implementation, platform: str, variant: Variant
    ) -> tuple[Build, ...]:
        """The builds of one implementation and variant for one platform."""
        key = (implementation, platform)
        by_variant = self._by_variant.get(key)
        if by_variant is None:
            buckets: dict[Variant, list[Build]] = {}
            for build in self._group(key):
                buckets.setdefault(build.variant, []).append(build)
            by_variant = {v: tuple(bs) for v, bs in buckets.items()}
            self._by_variant[key] = by_variant
        return by_variant.get(variant, ())

    def tagged(
        self, implementation: Implementation, platform: str, variant: Variant, tag: str
    ) -> tuple[Build, ...]:
        """The builds of one release tag among :meth:`candidates` (a look-up per entry
        of a lock of thousands)."""
        key = ((implementation, platform), variant)
        by_tag = self._by_tag.get(key)
        if by_tag is None:
            table: dict[str, list[Build]] = {}
            for build in self.candidates(implementation, platform, variant):
                table.setdefault(build.build, []).append(build)
            by_tag = self._by_tag[key] = {t: tuple(builds) for t, builds in table.items()}
        return by_tag.get(tag, ())

    def at_url(self, implementation: Implementation, platform: str, url: str) -> Build | None:
        """The build the index lists at ``url`` for one implementation and platform, if any:
        what upstream published under that name."""
        key = (implementation, platform)
        table = self._by_url.get(key)
        if table is None:
            table = self._by_url[key] = {build.url: build for build in self._group(key)}
        return table.get(url)

    def publication_date(self, tag: str) -> str:
        """When a release tag was published, ``YYYY-MM-DD``, or ``""`` if unknown."""
        return self.tag_dates.get(tag) or tag_date(tag) or ""

    def tag_order(self, tag: str) -> tuple[str, tuple[int, ...], str]:
        """A sort key putting release tags in publication order, oldest first.

        Tags with a known date sort by it; PyPy and GraalPy releases, which carry no
        date here, sort by their release number.
        """
        numbers = tuple(int(n) for n in tag.split(".")) if _NUMERIC_TAG.match(tag) else ()
        return (self.publication_date(tag), numbers, tag)

    def merge(self, other: Index) -> Index:
        """Combine two indexes; for a URL both list, ``other`` (the later source) wins."""
        by_url = {b.url: b for b in self.builds}
        by_url.update((b.url, b) for b in other.builds)
        return Index(
            builds=by_url.values(),
            source=f"{self.source} + {other.source}",
            source_date=max(self.source_date, other.source_date),
            tag_dates={**self.tag_dates, **other.tag_dates},
        )


def _url(build: Build) -> str:
    return build.url
