"""The ``pythons.toml`` model and its loader (pure).

[THE LOADER IS BEING WRITTEN: only the model below is final.]
"""

from __future__ import annotations

import attrs
from packaging.specifiers import SpecifierSet

from pylock.versions import Flavor, Implementation, Variant, parse_request

CONFIG_FILENAME = "pythons.toml"
LOCK_FILENAME = "pythons.lock"


@attrs.frozen(kw_only=True)
class PythonRequest:
    """One ``[python.NAME]`` table, with ``[defaults]`` merged in and defaults filled."""

    #: The table key; also the install directory name.
    name: str
    #: Which implementation to install.
    implementation: Implementation = Implementation.CPYTHON
    #: The version request as written (``"3.13"``), or ``None`` for a direct-URL entry.
    version: str | None = None
    #: Build variant.
    variant: Variant = Variant.DEFAULT
    #: Preferred flavor; the resolver falls back along :meth:`Flavor.fallbacks`.
    flavor: Flavor = Flavor.INSTALL_ONLY_STRIPPED
    #: Pinned upstream build tag, or ``None`` for the newest.
    build: str | None = None
    #: Whether pre-release versions may be chosen.
    prereleases: bool = False
    #: Platform keys, possibly including ``"host"``.
    platforms: tuple[str, ...] = ("host",)
    #: A direct artifact URL instead of an upstream look-up.
    url: str | None = None
    #: The direct artifact's sha256, if the user gave it.
    sha256: str | None = None
    #: Whether this is the default interpreter (``python3`` in ``--bin-dir``).
    default: bool = False

    @property
    def specifier(self) -> SpecifierSet | None:
        """The parsed version request (``3.13`` becomes ``==3.13.*``)."""
        return parse_request(self.version) if self.version is not None else None


@attrs.frozen(kw_only=True)
class Config:
    """A whole ``pythons.toml``."""

    #: Interpreters, sorted by name.
    pythons: tuple[PythonRequest, ...]
    #: ``sha256:<hex>`` over the normalized requests; recorded as the lock's ``config-digest``.
    digest: str

    def get(self, name: str) -> PythonRequest | None:
        """The request called ``name``, if any."""
        for python in self.pythons:
            if python.name == name:
                return python
        return None
