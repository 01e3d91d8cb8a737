"""Run the doctests that pure modules carry as examples."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pylock

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(pylock.__path__, prefix="pylock.")
    if m.name != "pylock.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
