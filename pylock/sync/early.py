"""A cold sync's head start: its downloads begin before the command line is parsed.

On a fresh machine, ``pylock sync`` spends its first tenth of a second importing Python
code (the CLI, the models, the HTTP client) before it sends a request, and at a CI
runner's bandwidth the download is what the user waits for. So the console script calls
:func:`begin` as soon as the no-op fast path has said no. For a plain ``pylock sync``
(only options the fast path understands; no remote cache; online) it reads the lock,
plans the sync for this host exactly as the full sync will (:func:`~pylock.sync.plan.plan_sync`),
and starts downloading the archives the cache lacks, with the download settings, cache and
progress reporter the full sync will have. Then it waits for their responses (at most
:data:`~pylock.sync.downloads.HEAD_START`): with one interpreter lock, a download thread
gains nothing while the main thread goes on importing.

The full sync takes them over (:func:`claim`) when they are exactly the downloads it
would start itself: the same jobs, options, settings, cache and reporter. Otherwise, or if
the sync never gets that far, they are stopped and their partial files removed
(:func:`abandon`); nothing is installed here, and nothing printed but the downloads'
progress. A lock this module cannot read, a leftover of an interrupted sync, or anything
unexpected means no head start: the full sync then meets the problem and says it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pylock.net.options import FetchOptions
    from pylock.progress import Reporter
    from pylock.settings import Settings
    from pylock.sync.cache import Cache
    from pylock.sync.downloads import Downloads
    from pylock.sync.plan import Job

#: Options that rule a head start out: their meaning is the full sync's to work out (a
#: repeated ``--rewrite``), or they change where archives come from.
_NOT_HERE = ("--rewrite", "--remote-cache", "--push", "--no-origin", "--offline")

#: The downloads :func:`begin` started, until the sync claims them (or they are abandoned).
_started: Downloads | None = None


def begin(argv: Sequence[str], settings: Settings) -> None:
    """Start the downloads of ``pylock ARGV`` if it is a plain cold sync (see above)."""
    global _started
    abandon()
    try:
        _started = _start(argv, settings)
    except Exception:  # no head start: the full sync meets the problem, and reports it
        _started = None
        return
    if _started is not None:
        from pylock.sync.downloads import HEAD_START

        _started.wait_started(HEAD_START)


def reporter(verbosity: int, color: bool, dumb_terminal: bool) -> Reporter | None:
    """The reporter the head start's downloads report to, if they have these settings."""
    if _started is None:
        return None
    ours = _started.reporter
    if (ours.verbosity, ours.color, ours.dumb_terminal) != (verbosity, color, dumb_terminal):
        return None
    return ours


def claim(
    jobs: Sequence[Job], cache: Cache, options: FetchOptions, reporter: Reporter
) -> Downloads | None:
    """The head start's downloads, if they are ``jobs`` fetched this way; else ``None``,
    and any head start is stopped.

    Those it began besides ``jobs`` must be in the cache by now: downloads that ended
    before the sync looked (the sync installs them as cache hits). Anything else means
    the sync decided otherwise.
    """
    global _started
    started, _started = _started, None
    if started is None:
        return None
    wanted = set(jobs)
    ended = [job for job in started.jobs if job not in wanted]
    if (
        wanted <= set(started.jobs)
        and all(cache.lookup(j.artifact.sha256, j.artifact.filename) for j in ended)
        and started.cache.root == cache.root
        and started.options == options
        and started.options.settings is options.settings
        and started.reporter is reporter
    ):
        return started
    _stop(started)
    return None


def abandon() -> None:
    """Stop the head start's downloads if no sync claimed them (it failed before).

    Returns once they have removed their partial files. A Ctrl-C or SIGTERM meanwhile does
    not cut that short: it is raised again afterwards.
    """
    global _started
    started, _started = _started, None
    if started is not None:
        _stop(started)


def _stop(started: Downloads) -> None:
    """Stop ``started`` and wait until its partial files are gone, whatever comes between."""
    started.stop_all()


def _start(argv: Sequence[str], settings: Settings) -> Downloads | None:
    from pylock.fastpath import LEFTOVER_PREFIXES, sync_dirs, sync_options

    options = sync_options(argv)
    if options is None or any(name in options for name in _NOT_HERE):
        return None
    # argparse reads `--into --offline` as a missing value, and refuses an unknown colour:
    # the full sync will stop with a usage error, so nothing is downloaded for it.
    if any(isinstance(v, str) and v.startswith("-") for v in options.values()):
        return None
    from pylock.progress import COLOR_CHOICES

    if options.get("--color", "auto") not in COLOR_CHOICES:
        return None
    if settings.offline or settings.remote_cache or settings.remote_cache_push:
        return None
    if settings.no_origin or settings.bin_dir:
        return None  # the bin dir's checks are the full sync's (as for the fast path)
    dirs = sync_dirs(options, settings)
    if dirs is None:
        return None  # a `~` no home answers: the full sync says so
    project, dest = dirs
    if os.path.lexists(dest) and not os.path.isdir(dest):
        return None  # the full sync refuses it: nothing to download for
    if os.path.isdir(dest) and any(e.startswith(LEFTOVER_PREFIXES) for e in os.listdir(dest)):
        return None  # the full sync recovers an interrupted one first, then plans again
    from pylock.fsutil import LOCK_FILENAME
    from pylock.ownfiles import read_project_file

    # As the full sync reads it (pylock.lockio.read_lock_and_digest).
    data = read_project_file(os.path.join(project, LOCK_FILENAME))
    mirror = _text(options.get("--mirror")) or settings.mirror
    if _tls_likely(data, mirror, settings):
        from pylock.net.tls import prepare_ssl_context

        # Before the models are imported: the CA store loads beside that (see net.tls).
        prepare_ssl_context(settings)
    from pylock.lockfile import loads, lock_text

    lock = loads(lock_text(data), filename=LOCK_FILENAME)
    from pylock.net.options import FetchOptions
    from pylock.platforms import host
    from pylock.progress import Reporter, want_color
    from pylock.sync.cache import Cache
    from pylock.sync.downloads import cache_misses, start_downloads
    from pylock.sync.plan import plan_sync

    plan = plan_sync(lock, dest_root=Path(dest), platform=host())
    cache = Cache.from_settings(settings)
    misses = cache_misses(plan.jobs, cache)[1]
    if not misses:
        return None
    jobs = options.get("--jobs")
    fetch = FetchOptions.from_settings(
        settings,
        mirror=_text(options.get("--mirror")),
        pypy_mirror=_text(options.get("--pypy-mirror")),
        jobs=int(str(jobs)) if jobs is not None else None,
    )
    no_color = settings.no_color or settings.dumb_terminal
    color = want_color(str(options.get("--color") or "auto"), no_color)
    report = Reporter(
        verbosity=-1 if options.get("--quiet") else 0,
        color=color,
        dumb_terminal=settings.dumb_terminal,
    )
    return start_downloads(misses, cache, fetch, report)


def _tls_likely(data: bytes, mirror: str | None, settings: Settings) -> bool:
    """Whether to load the CA store now, beside the imports to come: the lock ``data`` will
    likely be downloaded over https, and there is a second CPU to load it on.

    A guess from the bytes, made before the models that give the exact answer (which
    :func:`~pylock.sync.downloads.start_downloads` acts on) are imported. The load delays
    those imports by about 12 ms on two CPUs (``import ssl`` wants the interpreter lock)
    and hides 55 ms; on one CPU it would delay them by all of it. A guess that is wrong
    (every archive cached) costs those 12 ms.
    """
    from pylock.settings import usable_cpus

    if settings.url_rewrites or b"https://" not in data:
        return False
    if mirror is not None and not mirror.startswith("https://"):
        return False
    return usable_cpus() > 1


def _text(value: str | bool | None) -> str | None:
    return value if isinstance(value, str) else None
