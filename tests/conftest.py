"""Suite-wide pytest hooks and the fixtures test files share.

Every test runs in a clean environment (:func:`_clean_environment`): nothing from the shell
that started pytest (an activated virtualenv, a proxy, the user's own ``PYLOCK_*`` and
``UV_*`` settings, tokens, CA bundles, ``~/.netrc``, ``~/.cache/pylock``) reaches pylock, uv,
git or any subprocess a test starts.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest

from pylock.sync.cache import Cache
from pylock.versions import ArchiveFormat
from tests.httpserver import HttpServer
from tests.pki import https_server
from tests.registry import (
    BlobHost,
    RealRegistry,
    RedirectingFront,
    TestPki,
    TokenServer,
    registry_binary,
)
from tests.syncproject import TAG_A, TAG_B, Build, Project, make_build
from tests.upstream_server import UpstreamServer

if TYPE_CHECKING:
    import ssl

    from pylock.settings import Settings
    from tests.realpython import RealArchive

# Hypothesis times each example against a deadline (200 ms) and checks that generating
# data is not too slow: both measure the machine, and failed on a loaded CI runner
# (a round trip took 307 ms once, then 30 ms). The tests bound their own time.
hypothesis.settings.register_profile(
    "pylock", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("pylock")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``network`` tests only when the ``-m`` expression asks for them by name.

    ``addopts`` deselects them by default, but any ``-m`` on the command line replaces
    that default: ``pytest -m "not slow"`` must not start talking to the internet.
    """
    if "network" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="talks to the real internet: select it with -m network")
    for item in items:
        if item.get_closest_marker("network") is not None:
            item.add_marker(skip)


# -- a clean environment for every test ------------------------------------------------------

#: Whole families of settings: pylock's and uv's own, and git's (``GIT_DIR`` and friends
#: would point ``pylock diff``'s git at another repository).
SCRUBBED_PREFIXES = ("PYLOCK_", "UV_", "GIT_")

#: Single variables from a user's shell that change what pylock, uv, git or an interpreter do.
#: Proxies are scrubbed by suffix (every ``*_proxy``, any case), see :func:`scrubbed`.
SCRUBBED = frozenset(
    {
        # An activated virtualenv or conda environment: uv looks there before ``PATH``.
        "VIRTUAL_ENV",
        "VIRTUAL_ENV_PROMPT",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "CONDA_PYTHON_EXE",
        # What redirects or decorates an interpreter a test starts. PYTHONPATH is kept:
        # a run may need it to import pylock and the test helpers.
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONNOUSERSITE",
        "PYTHONWARNINGS",
        "PYTHONSAFEPATH",
        # TLS trust: tests that use TLS bring their own certificate.
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        # Credentials.
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "NETRC",
        # Output.
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
        "LINES",
        # Where caches, configuration and data go by default (``HOME`` is a fresh folder).
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_BIN_HOME",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_DIRS",
    }
)

#: What the suite sets itself after scrubbing: git reads no system-wide configuration (the
#: global one would be in ``HOME``, which is empty), so the tests that commit name an author.
SUITE_SETTINGS = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "pylock tests",
    "GIT_AUTHOR_EMAIL": "tests@pylock.invalid",
    "GIT_COMMITTER_NAME": "pylock tests",
    "GIT_COMMITTER_EMAIL": "tests@pylock.invalid",
}

#: The user's real home, read before any test moves ``HOME``: interpreters installed with
#: pyenv live there, and the real-interpreter tests package them.
_REAL_PYENV_ROOT = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")


def scrubbed(name: str) -> bool:
    """Whether the clean test environment leaves out the variable ``name``."""
    upper = name.upper()
    return upper in SCRUBBED or upper.startswith(SCRUBBED_PREFIXES) or upper.endswith("_PROXY")


@pytest.fixture(scope="session")
def _homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("homes")


def _scrub(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Drop the user's settings from ``os.environ`` and point ``HOME`` at ``home``."""
    for name in list(os.environ):
        if scrubbed(name):
            monkeypatch.delenv(name)
    for name in ("COLUMNS", "LINES"):
        # readline sets these below os.environ, where subprocesses would still inherit them.
        if name not in os.environ and hasattr(os, "unsetenv"):
            os.unsetenv(name)
    monkeypatch.setenv("HOME", str(home))
    if sys.platform == "win32":
        monkeypatch.setenv("USERPROFILE", str(home))
        monkeypatch.setenv("LOCALAPPDATA", str(home / "AppData" / "Local"))
        monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    for name, value in SUITE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    if os.path.isdir(_REAL_PYENV_ROOT):  # False, not PermissionError, for another user's
        monkeypatch.setenv("PYENV_ROOT", _REAL_PYENV_ROOT)


@pytest.fixture(scope="session", autouse=True)
def _clean_session_environment(_homes: Path) -> Iterator[None]:
    """The same clean environment for what session-scoped fixtures start once (registries).

    Without it a server started for the whole session would see the shell's proxies and
    settings, since the per-test fixture below runs only after it.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        _scrub(monkeypatch, Path(tempfile.mkdtemp(prefix="home-session-", dir=_homes)))
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, _homes: Path) -> Iterator[Path]:
    """Give each test ``os.environ`` without the user's settings and an empty home folder.

    What stays: ``PATH`` (an activated virtualenv's ``bin`` stays on it, so the suite's own
    ``pylock``, ``uv`` and ``python`` are found), ``PYTHONPATH``, ``TMPDIR``, the locale and
    the rest of the machine's plumbing. Subprocesses inherit this environment. Yields the
    home folder, which holds nothing: no ``~/.netrc``, ``~/.cache/pylock``, ``~/.gitconfig``
    or ``~/.config/uv``.
    """
    home = Path(tempfile.mkdtemp(prefix="home-", dir=_homes))
    _scrub(monkeypatch, home)
    # What one process learnt of unreadable netrc files (a 401's hint) is each test's own.
    from pylock.net import policy

    monkeypatch.setattr(policy, "netrc_problems", {})
    # So are the netrc files it parsed.
    monkeypatch.setattr(policy, "_netrc_reads", {})
    # So is an interrupted run's "start no more credential helpers".
    import threading

    from pylock.net import dockerauth

    monkeypatch.setattr(dockerauth, "_cancelled", threading.Event())
    yield home


# -- shared fixtures -------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """An empty archive cache in the test's own folder."""
    return Cache(tmp_path / "cache")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """The download look-alike on loopback (:class:`tests.httpserver.HttpServer`)."""
    with HttpServer() as running:
        yield running


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    """The upstream hosts' look-alike on loopback (PBS, PyPy, GraalPy, GitHub API)."""
    with UpstreamServer() as running:
        yield running


# -- OCI registry (issue 13) -----------------------------------------------------------------
# Debian's docker-registry (distribution 2.8) on loopback, started once per session: one with
# htpasswd basic auth, one with token auth behind tests.registry.TokenServer. Both use TLS with
# a CA the session makes (tests.registry.TestPki).


@pytest.fixture(scope="session")
def registry_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """The CA, TLS pair and token signing pair of the test registries."""
    pytest.importorskip("cryptography")
    return TestPki.create(tmp_path_factory.mktemp("registry-pki"))


def _need_registry_binary() -> None:
    if registry_binary() is None:
        reason = "docker-registry is not installed (apt-get install -y docker-registry)"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            pytest.fail(reason + "; .ci/run installs it")
        pytest.skip(reason)
    pytest.importorskip("bcrypt")


@pytest.fixture(scope="session")
def htpasswd_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_pki: TestPki
) -> Iterator[RealRegistry]:
    """A real registry with TLS and htpasswd basic auth (tests.registry.USER/PASSWORD)."""
    _need_registry_binary()
    with RealRegistry(tmp_path_factory.mktemp("registry-basic"), registry_pki) as running:
        yield running


@pytest.fixture(scope="session")
def token_server(registry_pki: TestPki) -> Iterator[TokenServer]:
    """The token endpoint of :func:`token_registry`: anonymous pull, push for USER."""
    with TokenServer(registry_pki) as running:
        yield running


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_pki: TestPki, token_server: TokenServer
) -> Iterator[RealRegistry]:
    """A real registry with TLS and bearer tokens from :func:`token_server`."""
    _need_registry_binary()
    root = tmp_path_factory.mktemp("registry-token")
    with RealRegistry(root, registry_pki, auth="token", realm=token_server.realm) as running:
        yield running


# -- layers: fixtures shared across test files ----------------------------------------------


@pytest.fixture
def real_archive() -> RealArchive:
    """The shared archive of a real interpreter (:mod:`tests.realpython`); skips the test
    where none can be built.
    """
    from tests.realpython import RealPythonUnavailable, shared_archive

    try:
        return shared_archive()
    except RealPythonUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal: a shell that starts a job in the
    background (CI's, say) starts it with SIGINT ignored, and Python keeps that."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


# -- dtests: fixtures that several test files each defined for themselves -------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, ``tmp_path/project``, made the working directory: messages
    name files relative to it. Tests that need a richer project use a fixture of their
    module under another name (e.g. ``sync_project``): no module redefines this one.
    """
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def redirecting_front(htpasswd_registry: RealRegistry) -> Iterator[RedirectingFront]:
    """A TLS front of :func:`htpasswd_registry` that sends blob reads to its own
    ``blob_host`` on a second port (object storage, as a registry redirects to it).
    """
    with BlobHost() as blob_host, RedirectingFront(htpasswd_registry, blob_host) as running:
        yield running


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A loopback port whose listen queue is full, so that a connect to it waits (Linux
    drops the SYN), as behind a firewall that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(8):
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except OSError:
                probe.close()
                break
            held.append(probe)
        else:
            pytest.skip("this system completes connections past a full listen queue")
        yield port
    finally:
        for probe in held:
            probe.close()
        listener.close()


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A loopback port that takes connections (the kernel completes them) and never says a
    word: a TLS handshake with it waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def tls_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads on which each TLS context of the test is made
    (:mod:`pylock.net.tls`, its process-wide cache emptied first)."""
    import threading

    from pylock.net import tls

    made: list[str] = []
    real = tls.ssl_context

    def counting(settings: Settings) -> ssl.SSLContext:
        made.append(threading.current_thread().name)
        return real(settings)

    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.setattr(tls, "_pending", {})
    monkeypatch.setattr(tls, "ssl_context", counting)
    return made


@pytest.fixture
def bundled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Builds (:func:`tests.indexdata.pbs` and friends) the CLI sees instead of the bundled
    snapshot: add to the list, then run the command."""
    from tests.indexdata import index_of

    builds: list[Any] = []
    monkeypatch.setattr(
        "pylock.index.snapshot.load_bundled", lambda: index_of(*builds), raising=True
    )
    yield builds


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HttpServer, Path]]:
    """The download look-alike over HTTPS, and the file of the private CA that signed it."""
    with https_server(tmp_path / "certs") as pair:
        yield pair


# -- sync: a project synced in-process from the loopback server (tests/syncproject.py) ----


@pytest.fixture
def sync_project(tmp_path: Path, server: HttpServer, capsys: pytest.CaptureFixture[str]) -> Project:
    """A project in ``tmp_path`` whose archives ``server`` serves."""
    return Project(tmp_path, server, capsys)


@pytest.fixture(scope="module")
def app_a() -> Build:
    return make_build("app", TAG_A)


@pytest.fixture
def installed(sync_project: Project, app_a: Build) -> Project:
    """``app`` locked and synced into ``pythons/``, with the state the fast path checks."""
    sync_project.install(app_a)
    assert (sync_project.into / ".pylock-state").is_file()
    return sync_project


@pytest.fixture(scope="module")
def app_b() -> Build:
    # Larger than extraction's 1 MiB write batches, so its first files reach the disk
    # while the rest is still downloading.
    return make_build("app", TAG_B, minor="3.13", fmt=ArchiveFormat.TAR_ZST, big=2_500_000)


@pytest.fixture(scope="module")
def tool() -> Build:
    return make_build("tool", TAG_A, minor="3.11", fmt=ArchiveFormat.TAR_BZ2, big=50_000)


@pytest.fixture
def umask() -> Iterator[Callable[[int], object]]:
    """Set the process's umask for a test (``umask(0o077)``, as often as it likes); the
    one before comes back after it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs with mount(8) OPTIONS (``tmpfs("size=2m")``) in ``tmp_path``; the test
    is skipped where that cannot be done (not root, no mount). Unmounted afterwards."""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"tmpfs-{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def bind_mount(tmp_path: Path) -> Iterator[Callable[[Path, Path], Callable[[], None]]]:
    """``mount --bind SOURCE TARGET`` (``bind_mount(volume, tree / "lib")``), as Docker
    mounts a volume; returns what unmounts it. The test is skipped where that cannot be
    done (not root on Linux). Afterwards every mount left under ``tmp_path`` is unmounted,
    wherever it went (a mount moves with a directory renamed above it)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a bind mount needs root on Linux and mount(8)")

    def mount(source: Path, target: Path) -> Callable[[], None]:
        done = subprocess.run(
            ["mount", "--bind", str(source), str(target)], capture_output=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
        return lambda: _unmount_under(target)

    yield mount
    _unmount_under(tmp_path)


def _unmount_under(root: Path) -> None:
    """Unmount every mount at or under ``root``, the innermost first. Parsed here, not
    with pylock's code: a teardown that a broken pylock failed left the mounts behind."""
    inside = os.path.join(os.path.realpath(root), "")
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            # The fifth field; spaces and the like in it are octal escapes.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split(" ")[4])
            if os.path.join(point, "").startswith(inside):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=True)


@pytest.fixture(params=["stdhttp", "aiohttp"])
def client(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which download client ``tests.twoclients.downloader()`` builds: modules that check
    both clients follow one set of rules use it on every test (``pytestmark``)."""
    from tests import twoclients

    twoclients.CLIENT[0] = request.param
    yield request.param
    twoclients.CLIENT[0] = "stdhttp"


@pytest.fixture
def console_script() -> Path:
    """The ``pylock`` console script installed beside the Python running the tests: this
    checkout's, unlike a ``pylock`` found first on ``PATH`` (another install, a pyenv shim)."""
    script = Path(sys.executable).with_name("pylock.exe" if os.name == "nt" else "pylock")
    if not script.exists():
        pytest.skip("the pylock console script is not installed beside this Python")
    return script
