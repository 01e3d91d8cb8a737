"""pylock: lock Python interpreters to exact upstream builds, and install them from a cache."""

__version__ = "0.2.0"
