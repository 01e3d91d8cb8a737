"""The index snapshot bundled with pylock: its compact file format, writer and lazy reader.

The snapshot is gzip-compressed JSON. Builds are grouped by implementation and
platform; each build is one tab-separated row, and URLs share a small table of
prefixes. Groups are decoded on first use, so ``pylock lock`` pays only for the
platforms it resolves::

    {"snapshot-version": 1, "source": "...", "source-date": "2026-08-14",
     "tag-dates": {}, "url-prefixes": ["https://github.com/.../releases/download/", ...],
     "count": 5530,
     "groups": {"cpython/linux-x86_64-gnu": ["3.13.9\\t20251014\\tdefault\\t...", ...]}}

A row reads ``version, build, variant, flavor, format, prefix, url rest, sha256, size``,
with empty strings for a missing flavor, sha256 or size.
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pylock.bounded import json_loads
from pylock.errors import UpstreamError
from pylock.index.model import Build, GroupKey, Index
from pylock.versions import ArchiveFormat, Flavor, Implementation, Variant

#: The snapshot format this pylock reads and writes.
SNAPSHOT_VERSION = 1
#: The snapshot shipped inside the package.
BUNDLED_PATH = Path(__file__).with_name("snapshot.json.gz")

_FIELDS = 9
_IMPLEMENTATIONS = {m.value: m for m in Implementation}
_VARIANTS = {m.value: m for m in Variant}
_FLAVORS: dict[str, Flavor | None] = {"": None, **{m.value: m for m in Flavor}}
_FORMATS = {m.value: m for m in ArchiveFormat}


def _url_prefix(url: str) -> str:
    marker = "/releases/download/"
    at = url.find(marker)
    if at >= 0:
        return url[: at + len(marker)]
    return url[: url.rfind("/") + 1]


def snapshot_document(index: Index) -> dict[str, Any]:
    """The snapshot of ``index`` as JSON-ready data, in a canonical order."""
    builds = sorted(index.builds, key=lambda b: (b.implementation, b.platform, b.url))
    prefixes = sorted({_url_prefix(b.url) for b in builds})
    prefix_index = {p: i for i, p in enumerate(prefixes)}
    groups: dict[str, list[str]] = {}
    for b in builds:
        prefix = _url_prefix(b.url)
        row = (
            b.version,
            b.build,
            str(b.variant),
            str(b.flavor) if b.flavor is not None else "",
            str(b.format),
            str(prefix_index[prefix]),
            b.url[len(prefix) :],
            b.sha256 or "",
            str(b.size) if b.size is not None else "",
        )
        if any("\t" in field for field in row):
            raise ValueError(f"a tab in the snapshot row of {b.url}")
        groups.setdefault(f"{b.implementation}/{b.platform}", []).append("\t".join(row))
    return {
        "snapshot-version": SNAPSHOT_VERSION,
        "source": index.source,
        "source-date": index.source_date,
        "tag-dates": dict(sorted(index.tag_dates.items())),
        "url-prefixes": prefixes,
        "count": len(builds),
        "groups": groups,
    }


def dumps_snapshot(index: Index) -> bytes:
    """Serialize ``index`` as a snapshot file: the same index always gives the same bytes."""
    text = json.dumps(snapshot_document(index), indent=0, ensure_ascii=True) + "\n"
    return gzip.compress(text.encode("ascii"), compresslevel=9, mtime=0)


def read_document(data: bytes, *, filename: str) -> dict[str, Any]:
    """Decompress and parse a snapshot file, checking its header."""
    try:
        # wbits=47 accepts gzip or zlib framing, and plain JSON is tried below.
        text = zlib.decompress(data, wbits=47) if data[:2] == b"\x1f\x8b" else data
        document = json_loads(text)
    except (zlib.error, ValueError) as exc:
        raise UpstreamError(f"{filename}: not a pylock index snapshot ({exc})") from None
    if not isinstance(document, dict):
        raise UpstreamError(f"{filename}: not a pylock index snapshot")
    version = document.get("snapshot-version")
    if version != SNAPSHOT_VERSION:
        raise UpstreamError(
            f"{filename}: unsupported snapshot-version {version!r} "
            f"(this pylock reads {SNAPSHOT_VERSION})"
        )
    return document


def loads_snapshot(data: bytes, *, filename: str = "snapshot.json.gz") -> Index:
    """Read a snapshot file into an :class:`Index` whose groups decode on first use."""
    document = read_document(data, filename=filename)
    try:
        prefixes: list[str] = document["url-prefixes"]
        raw_groups: Mapping[str, list[str]] = document["groups"]
        lazy: dict[GroupKey, Callable[[], Sequence[Build]]] = {}
        for name, rows in raw_groups.items():
            impl_name, _, platform = name.partition("/")
            key = (_IMPLEMENTATIONS[impl_name], platform)
            lazy[key] = functools.partial(_decode_group, filename, name, key, prefixes, rows)
        return Index(
            source=str(document["source"]),
            source_date=str(document["source-date"]),
            tag_dates=dict(document.get("tag-dates", {})),
            lazy_groups=lazy,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise UpstreamError(f"{filename}: malformed snapshot ({exc!r})") from None


def _decode_group(
    filename: str,
    name: str,
    key: GroupKey,
    prefixes: Sequence[str],
    rows: Sequence[str],
) -> list[Build]:
    implementation, platform = key
    builds = []
    for number, row in enumerate(rows):
        fields = row.split("\t")
        try:
            if len(fields) != _FIELDS:
                raise ValueError(f"{len(fields)} fields")
            version, tag, variant, flavor, fmt, prefix, rest, sha256, size = fields
            builds.append(
                Build(
                    implementation=implementation,
                    version=version,
                    build=tag,
                    platform=platform,
                    variant=_VARIANTS[variant],
                    flavor=_FLAVORS[flavor],
                    format=_FORMATS[fmt],
                    url=prefixes[int(prefix)] + rest,
                    sha256=sha256 or None,
                    size=int(size) if size else None,
                )
            )
        except (KeyError, ValueError, IndexError) as exc:
            raise UpstreamError(
                f"{filename}: malformed row {number} of group {name!r} ({exc})"
            ) from None
    return builds


@functools.cache
def load_bundled() -> Index:
    """The index snapshot shipped with pylock (read once per process)."""
    return loads_snapshot(BUNDLED_PATH.read_bytes(), filename=str(BUNDLED_PATH))
