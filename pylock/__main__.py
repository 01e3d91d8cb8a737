"""Run pylock as ``python -m pylock``."""

import sys

from pylock.entry import main

sys.exit(main())
