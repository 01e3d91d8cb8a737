"""The candidate-build model shared by every upstream source (pure)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import attrs
from packaging.version import Version

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
        return Version(self.version)

    @property
    def filename(self) -> str:
        """The archive's file name, URL escapes decoded."""
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])
