"""The ``pylock`` console script: try the no-op sync fast path, then the full CLI."""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Run pylock on ``sys.argv``; return the exit status."""
    from pylock.fastpath import try_noop_sync

    code = try_noop_sync(sys.argv[1:], os.environ)
    if code is not None:
        return code
    from pylock.cli import main as full_main

    return full_main()
