"""Upstream sources turned into candidate builds: the bundled snapshot and live listings."""
