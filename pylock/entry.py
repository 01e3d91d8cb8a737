"""The ``pylock`` console script: try the no-op sync fast path, then the full CLI."""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Run pylock on ``sys.argv``; return the exit status."""
    from pylock.fastpath import try_noop_sync
    from pylock.settings import Settings

    line = try_noop_sync(sys.argv[1:], Settings.from_environ(os.environ))
    if line is not None:
        if line:
            sys.stderr.write(line + "\n")
        return 0
    from pylock.cli import main as full_main

    return full_main()
