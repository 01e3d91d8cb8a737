"""Registry credentials the way docker and oras find them.

Looked up in this order for a registry host:

1. ``credHelpers[host]`` in the docker config: ``docker-credential-NAME get``;
2. ``credsStore``: the same protocol with the default store;
3. ``auths[host]``: ``auth`` (base64 ``user:password``) or ``identitytoken``;
4. for ``ghcr.io`` only, ``GITHUB_TOKEN``.

The docker config is ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``. A
helper that is missing or fails, or a config that cannot be read, means "no credentials
from there", with a debug note: credentials never break a build.
"""

from __future__ import annotations

import base64
import binascii
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from pylock.bounded import json_loads
from pylock.fsutil import find_program
from pylock.settings import Settings

#: A docker config or a helper's answer larger than this is not one.
MAX_CONFIG_BYTES = 1 << 20
#: How long a credential helper may take.
HELPER_TIMEOUT = 30.0
# Docker Hub's credentials are filed under this key.
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

Debug = Callable[[str], None]


@attrs.frozen
class Credentials:
    """A user name and a secret (a password or token) for one registry.

    ``identity_token`` marks an OAuth refresh token (docker's ``identitytoken``): it is
    exchanged at the token endpoint, never sent as basic auth. The secret never shows in
    ``repr``.
    """

    username: str
    secret: str = attrs.field(repr=False)
    identity_token: bool = False
    #: Where they came from, for debug notes ("credHelpers (ecr-login)", "GITHUB_TOKEN").
    source: str = ""

    def basic(self) -> str:
        """The ``Authorization`` header value for basic auth."""
        pair = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_config_path(settings: Settings, home: Path) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``HOME/.docker/config.json``."""
    folder = settings.docker_config
    return (Path(folder) if folder else home / ".docker") / "config.json"


def find_credentials(
    host: str,
    *,
    settings: Settings,
    home: Path,
    debug: Debug | None = None,
) -> Credentials | None:
    """The credentials configured for registry ``host`` (``HOST[:PORT]``), or ``None``."""
    note: Debug = debug if debug is not None else _ignore
    for found in _configured(host.lower(), settings, home, note):
        try:
            found.basic()
        except UnicodeEncodeError:
            # A lone surrogate: "\udcff" in config.json, or a byte no UTF-8 has in an
            # environment variable or a helper's answer. No header can carry it.
            note(f"ignoring the credentials from {found.source or 'the docker config'}: not text")
            continue
        return found
    return None


def _configured(host: str, settings: Settings, home: Path, note: Debug) -> Iterator[Credentials]:
    """The credentials configured for ``host``, in the order docker takes them."""
    path = docker_config_path(settings, home)
    if not path.is_absolute() and not settings.docker_config:
        # No home to speak of (HOME relative, or unset for a uid with no passwd entry):
        # not a config.json of whatever directory this runs in, which a project could ship.
        note(f"no docker config: the home directory {str(home)!r} is not an absolute path")
        config: dict[str, Any] = {}
    else:
        config = _read_config(path, note)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _keys(host):
            name = helpers.get(key)
            if isinstance(name, str) and name:
                found = run_helper(name, key, settings=settings, debug=note)
                if found is not None:
                    yield found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        for key in _keys(host):
            found = run_helper(store, key, settings=settings, debug=note)
            if found is not None:
                yield found
    auths = config.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if isinstance(key, str) and _host_of(key) in _keys(host) and isinstance(entry, dict):
                found = _from_auths_entry(entry, note)
                if found is not None:
                    yield found
    if host == "ghcr.io":
        token = settings.github_token
        if token:
            # ghcr.io takes any user name with a token as the password.
            yield Credentials(settings.github_actor or "pylock", token, source="GITHUB_TOKEN")


def run_helper(
    name: str, server: str, *, settings: Settings, debug: Debug | None = None
) -> Credentials | None:
    """Ask ``docker-credential-NAME get`` for ``server``'s credentials (``None``: none).

    The protocol: the server URL on stdin, a JSON object ``{"Username", "Secret"}`` on
    stdout. A user name of ``<token>`` marks an identity token.
    """
    note: Debug = debug if debug is not None else _ignore
    program = f"docker-credential-{name}"
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        note(f"ignoring credential helper with an odd name {name!r}")
        return None
    environment = dict(settings.environment or {})
    executable = find_program(program, environment)
    if executable is None:
        note(f"credential helper {program} is not on PATH")
        return None
    if executable in _UNRESPONSIVE:
        note(f"credential helper {program} did not answer before: not asked again")
        return None
    try:
        answered = _ask(executable, server, environment)
    except OSError as error:
        note(f"credential helper {program} could not run: {type(error).__name__}")
        return None
    if answered is None:
        _UNRESPONSIVE.add(executable)
        note(f"credential helper {program} did not answer within {HELPER_TIMEOUT:g}s")
        return None
    returncode, stdout = answered
    if len(stdout) > MAX_CONFIG_BYTES:  # and was killed for it
        note(f"credential helper {program} answered too much")
        return None
    if returncode != 0:
        note(f"credential helper {program} has no credentials for {server} ({returncode})")
        return None
    try:
        answer = json_loads(stdout)
    except (ValueError, RecursionError):
        note(f"credential helper {program} did not answer JSON")
        return None
    if not isinstance(answer, dict):
        note(f"credential helper {program} did not answer a JSON object")
        return None
    user, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        note(f"credential helper {program} answered without Username and Secret")
        return None
    source = f"credential helper {program}"
    if user == "<token>":
        return Credentials("", secret, identity_token=True, source=source)
    return Credentials(user, secret, source=source)


#: Helpers that ran out of time in this process: a hung credsStore would cost the timeout
#: once per host spelling tried, and again for every registry client.
_UNRESPONSIVE: set[str] = set()


def _ask(executable: str, server: str, environment: dict[str, str]) -> tuple[int, bytes] | None:
    """Run ``executable get`` with ``server`` on stdin: its exit code and at most
    :data:`MAX_CONFIG_BYTES` + 1 bytes of its output, or ``None`` if it did not finish in
    :data:`HELPER_TIMEOUT` seconds. A helper that hangs, or floods, is killed with the
    processes it started (its own process group, where there are groups)."""
    with _running_lock:
        if _cancelled.is_set():
            return None  # the run is stopping: no new helper to wait for
        process = subprocess.Popen(
            [executable, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            start_new_session=_HAS_GROUPS,
        )
        _running.add(process)
    try:
        return _answer(process, server)
    finally:
        with _running_lock:
            _running.discard(process)


#: The helpers running now (on any thread), for :func:`cancel_helpers` to stop.
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()
_cancelled = threading.Event()


def cancel_helpers() -> None:
    """Kill the credential helpers running now, and start no more until
    :func:`resume_helpers`: the run is stopping (Ctrl-C, SIGTERM). A download thread
    waiting for a hung helper would otherwise hold the run for the helper's whole
    timeout, and the helper outlive pylock."""
    with _running_lock:
        _cancelled.set()
        for process in _running:
            _kill(process)


def resume_helpers() -> None:
    """Let credential helpers run again after :func:`cancel_helpers` (a new run in this
    process: pylock used as a library)."""
    _cancelled.clear()


def _answer(process: subprocess.Popen[bytes], server: str) -> tuple[int, bytes] | None:
    assert process.stdin is not None and process.stdout is not None
    output: list[bytes] = []

    def talk() -> None:
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(server.encode())
            process.stdin.close()
        except OSError:
            pass  # it did not read its input: its answer (or exit code) says the rest
        try:
            output.append(process.stdout.read(MAX_CONFIG_BYTES + 1))
        finally:
            # Closed by the reader: closing it on another thread would wait for this read,
            # which a process outside the helper's group can hold open long after.
            process.stdout.close()

    talker = threading.Thread(target=talk, name="pylock-credential-helper", daemon=True)
    talker.start()
    talker.join(HELPER_TIMEOUT)
    finished = not talker.is_alive()
    if not finished or (output and len(output[0]) > MAX_CONFIG_BYTES):
        _kill(process)
    try:
        returncode = process.wait(timeout=HELPER_TIMEOUT if finished else 5)
    except subprocess.TimeoutExpired:
        _kill(process)
        returncode = process.wait()
    # At once, unless a process outside the group (setsid, a daemon) holds the pipe open:
    # then the talker ends, and closes it, when that process does.
    talker.join(1)
    if not finished or _cancelled.is_set():
        return None
    return returncode, output[0] if output else b""


_HAS_GROUPS = hasattr(os, "killpg")


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        if _HAS_GROUPS:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except OSError:
        pass  # gone already


def _ignore(message: str) -> None:
    pass


def _read_config(path: Path, note: Debug) -> dict[str, Any]:
    from pylock.ownfiles import RefusedFileError, read_own_file

    try:
        # A regular file only, and bounded: a FIFO in its place blocked for ever, where
        # not even SIGTERM ended the sync.
        data = read_own_file(path, MAX_CONFIG_BYTES, follow_symlinks=True)
    except FileNotFoundError:
        return {}
    except RefusedFileError as error:
        note(f"ignoring {path}: {error}")
        return {}
    except OSError as error:
        note(f"cannot read {path}: {error.strerror or type(error).__name__}")
        return {}
    try:
        config = json_loads(data)
    except (ValueError, RecursionError):
        note(f"ignoring {path}: not JSON")
        return {}
    if not isinstance(config, dict):
        note(f"ignoring {path}: not a JSON object")
        return {}
    return config


def _keys(host: str) -> tuple[str, ...]:
    """The config keys that may name ``host``."""
    if host in _DOCKER_HUB_HOSTS:
        return (_DOCKER_HUB_KEY, "docker.io", "index.docker.io", "registry-1.docker.io")
    return (host, f"https://{host}", f"http://{host}")


def _host_of(key: str) -> str:
    """The host an ``auths`` key names: ``https://host/v1/`` and ``host`` alike."""
    if key == _DOCKER_HUB_KEY:
        return key
    text = key.lower()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.split("/", 1)[0]


def _from_auths_entry(entry: dict[str, Any], note: Debug) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(str(entry.get("username") or ""), token, True, "auths")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            pair = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            note("ignoring an auths entry whose auth is not base64 user:password")
            return None
        user, colon, secret = pair.partition(":")
        if not colon or not secret:
            note("ignoring an auths entry whose auth is not user:password")
            return None
        return Credentials(user, secret, source="auths")
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str) and password:
        return Credentials(name, password, source="auths")
    return None


__all__ = ["Credentials", "docker_config_path", "find_credentials", "run_helper"]
