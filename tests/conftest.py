"""Suite-wide pytest hooks."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``network`` tests only when the ``-m`` expression asks for them by name.

    ``addopts`` deselects them by default, but any ``-m`` on the command line replaces
    that default: ``pytest -m "not slow"`` must not start talking to the internet.
    """
    if "network" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="talks to the real internet: select it with -m network")
    for item in items:
        if item.get_closest_marker("network") is not None:
            item.add_marker(skip)
