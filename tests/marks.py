"""Skip marks that more than one test file applies."""

from __future__ import annotations

import sys

import pytest

#: For files whose tests build archives of the host's own CPython (:mod:`tests.realpython`).
real_archives = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="real archives are built on Linux only"
)
