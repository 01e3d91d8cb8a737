"""How to fetch: the options every download and listing takes (rewrites, offline mode,
parallelism, retries, timeouts, size caps), apart from the clients that use them.

A sync whose archives are all cached needs these options but no HTTP client: this module
imports neither :mod:`pylock.net.fetch` nor :mod:`pylock.net.policy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from pylock.settings import DEFAULT_JOBS, DEFAULT_MAX_DOWNLOAD_SIZE, Settings
from pylock.urls import UrlRewrites

if TYPE_CHECKING:
    from pylock.net.registry import RemoteCache

#: The slowest body pylock waits for: fewer than :data:`SLOW_BYTES` in :data:`SLOW_WINDOW`
#: seconds fails the attempt (it is retried). 1 KiB a minute is about 17 bytes/s, far below
#: any link that could finish an archive of tens of MB, so it never cuts off a real slow
#: link; it ends a server or proxy that drips a byte now and then, which the idle timeout
#: (``Timeouts.read``) never catches.
SLOW_BYTES = 1024
SLOW_WINDOW = 60.0


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts, in seconds."""

    #: To establish a connection.
    connect: float = 30.0
    #: Without receiving a single byte, before a transfer counts as stalled and is retried.
    read: float = 60.0
    #: A body (an archive or a listing) slower than ``slow_bytes`` per ``slow_window``
    #: seconds is retried (see :class:`pylock.net.policy.Pace`).
    slow_bytes: int = SLOW_BYTES
    slow_window: float = SLOW_WINDOW


@attrs.frozen(kw_only=True)
class FetchOptions:
    """How to fetch: rewrites, offline mode, parallelism, retries."""

    #: URL rewrites (mirrors) applied to every outgoing URL.
    rewrites: UrlRewrites = attrs.field(factory=UrlRewrites)
    #: Never open a connection; a cache miss is an error.
    offline: bool = False
    #: How many downloads run at once.
    jobs: int = DEFAULT_JOBS
    #: Retries after the first attempt, for transient failures (resets, timeouts, 5xx).
    retries: int = 4
    #: First backoff delay in seconds; it doubles per retry, with jitter.
    backoff: float = 0.5
    #: Network timeouts.
    timeouts: Timeouts = Timeouts()
    #: Byte cap for a download whose size nothing states (``PYLOCK_MAX_DOWNLOAD_SIZE``).
    max_download_size: int = DEFAULT_MAX_DOWNLOAD_SIZE
    #: TLS trust (``SSL_CERT_FILE``, ``SSL_CERT_DIR``) and the netrc file (``NETRC``);
    #: ``None``: this process's environment.
    settings: Settings | None = attrs.field(default=None, eq=False)
    #: The fleet's registry (``--remote-cache``), tried before the origin; ``None``: none.
    remote: RemoteCache | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pairs: Sequence[str] = (),
        mirror: str | None = None,
        pypy_mirror: str | None = None,
        offline: bool = False,
        jobs: int | None = None,
        remote: RemoteCache | None = None,
    ) -> FetchOptions:
        """Options from flags, falling back to what the environment said.

        ``pairs``, ``mirror`` and ``pypy_mirror`` are ``--rewrite``, ``--mirror`` and
        ``--pypy-mirror``; ``offline`` and ``jobs`` are ``--offline`` and ``--jobs``.
        """
        return cls(
            rewrites=UrlRewrites.from_sources(
                settings.url_rewrites,
                pairs,
                mirror or settings.mirror,
                pypy_mirror or settings.pypy_mirror,
                mirror_from="--mirror" if mirror else "PYLOCK_MIRROR",
                pypy_mirror_from="--pypy-mirror" if pypy_mirror else "PYLOCK_PYPY_MIRROR",
            ),
            offline=offline or settings.offline,
            jobs=settings.jobs(jobs),
            max_download_size=settings.max_download_bytes(),
            settings=settings,
            remote=remote,
        )
