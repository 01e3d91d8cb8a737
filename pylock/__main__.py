"""Run pylock as ``python -m pylock``."""

import sys

from pylock.cli import main

sys.exit(main())
