"""The TLS context of pylock's HTTP clients: ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured,
made once per trust setting for the whole process.

Loading the CA store costs tens of milliseconds (55 ms for Debian's 144 certificates on
our CI VMs), and OpenSSL does it without holding the interpreter lock. So a sync starts
making the context on a thread of its own as soon as it expects an https download
(:func:`prepare_ssl_context`), and on a second core that load overlaps with what the
process does meanwhile: a cold sync's head start (:mod:`pylock.sync.early`) calls it
before it imports the lock's models. This module imports only the standard library, and
:mod:`ssl` itself on that thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from pylock.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context honouring ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
    import ssl

    cafile = settings.ssl_cert_file
    capath = settings.ssl_cert_dir
    if capath is not None and not os.path.isdir(capath):
        # OpenSSL looks in it only when a certificate is checked, and a missing one then
        # reads as "unknown CA", which sends the user looking at the server.
        from pylock.errors import PylockError

        raise PylockError(
            f"SSL_CERT_DIR={capath} is not a directory",
            hint="point SSL_CERT_DIR at a directory of hashed CA certificates, or unset it",
        )
    if cafile is not None and os.path.exists(cafile) and not os.path.isfile(cafile):
        # OpenSSL reads whatever it is: a FIFO with no writer blocked the run for ever,
        # where not even SIGTERM ended it.
        from pylock.errors import PylockError

        raise PylockError(
            f"SSL_CERT_FILE={cafile} is not a regular file",
            hint="point SSL_CERT_FILE at a PEM bundle (not a pipe, device or directory), "
            "or unset it",
        )
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as error:
        from pylock.errors import PylockError

        raise PylockError(
            f"cannot load CA certificates from SSL_CERT_FILE={cafile or ''} "
            f"SSL_CERT_DIR={capath or ''}: {getattr(error, 'strerror', None) or error}",
            hint="point SSL_CERT_FILE at a PEM bundle, or unset it",
        ) from None
    if cafile is None and capath is None and not context.get_ca_certs():
        # Some Pythons (python.org macOS builds) ship with an empty default store; pylock
        # depends on certifi there. (A store that is a directory, as on Debian, lists no
        # certificates until they are used, so this may load certifi's beside it.)
        with contextlib.suppress(ImportError, OSError):
            import certifi  # type: ignore[import-not-found,unused-ignore]

            context.load_verify_locations(cafile=certifi.where())
    return context


_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
#: Trust settings whose context a thread is making now, and the event it sets when done.
_pending: dict[tuple[str | None, str | None], threading.Event] = {}
#: Guards both dicts; never held while a context is made.
_contexts_lock = threading.Lock()


def shared_ssl_context(settings: Settings) -> ssl.SSLContext:
    """:func:`ssl_context`, made once per trust setting for the whole process. A caller
    that comes while another thread makes it waits for that one; callers for other
    settings do not. A failure is not kept: every caller gets its own error."""
    key = (settings.ssl_cert_file, settings.ssl_cert_dir)
    mine: threading.Event | None = None
    try:
        while mine is None:
            with _contexts_lock:
                context = _contexts.get(key)
                if context is not None:
                    return context
                making = _pending.get(key)
                if making is None:
                    making = mine = _pending[key] = threading.Event()
            # In steps, as every wait Ctrl-C must be able to end.
            while mine is None and not making.wait(0.25):
                pass
        return _make(key, settings)
    finally:
        if mine is not None:  # ended too, however: whoever waits looks again
            _done(key, mine)


def prepare_ssl_context(settings: Settings) -> None:
    """Start making :func:`shared_ssl_context` on a thread of its own, and return at once
    (nothing if it is made, or being made, already). An error is left for the download to
    meet and report."""
    key = (settings.ssl_cert_file, settings.ssl_cert_dir)
    with _contexts_lock:
        if key in _contexts or key in _pending:
            return
        making = _pending[key] = threading.Event()

    def make() -> None:
        # Whatever fails here fails again, the same way, for the download that asks
        # next (nothing is kept), which reports it as a download error.
        try:
            with contextlib.suppress(Exception):
                _make(key, settings)
        finally:
            _done(key, making)

    try:
        threading.Thread(target=make, name="pylock-tls", daemon=True).start()
    except RuntimeError:
        # No thread to be had (a pids limit): the download makes it, when it needs it.
        _done(key, making)
    except BaseException:
        _done(key, making)  # Ctrl-C: nobody makes it, so nobody may wait for it
        raise


def _make(key: tuple[str | None, str | None], settings: Settings) -> ssl.SSLContext:
    """Make the context for ``key`` (its maker registered in ``_pending``), and keep it."""
    context = ssl_context(settings)
    with _contexts_lock:
        _contexts[key] = context
    return context


def _done(key: tuple[str | None, str | None], making: threading.Event) -> None:
    """``making`` has ended (made or not): waiters look again, one of them makes it next."""
    try:
        with _contexts_lock:
            if _pending.get(key) is making:
                del _pending[key]
    finally:
        making.set()
