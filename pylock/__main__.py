"""Run pylock as ``python -m pylock``."""

from pylock.entry import console

console()
