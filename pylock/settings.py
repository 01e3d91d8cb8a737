"""Every environment variable pylock reads, read once, in one place.

:meth:`Settings.from_environ` takes the environment as a mapping (the console script,
``entry.py``, and ``cli.main`` called alone pass ``os.environ``; tests pass a dict) and
keeps what pylock looks at. Everything else receives a :class:`Settings` or plain values:
outside this module, ``entry.py`` and ``cli.py``, nothing reads ``os.environ``.

Values are kept as written and checked when used, each with one message: a bad
``PYLOCK_CONCURRENCY`` is an error for ``sync`` (even one with nothing to do), not for
``pylock list``.

Standard library only and cheap to import: the no-op ``pylock sync`` fast path uses it
before anything heavy is loaded. Errors (which need attrs) are imported only when a
value is bad.
"""

from __future__ import annotations

import os

# Not `typing.TYPE_CHECKING`: importing typing costs more than this whole module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

#: How many downloads run at once unless ``--jobs`` or ``PYLOCK_CONCURRENCY`` say otherwise.
DEFAULT_JOBS = 4
#: Byte cap for a download whose size nothing states (``PYLOCK_MAX_DOWNLOAD_SIZE``).
DEFAULT_MAX_DOWNLOAD_SIZE = 2 * 1024**3

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

#: Attribute name -> the variable it comes from (strings kept as written, blank = unset).
_VARIABLES = {
    "cache_dir": "PYLOCK_CACHE_DIR",
    "install_dir": "PYLOCK_INSTALL_DIR",
    "bin_dir": "PYLOCK_BIN_DIR",
    "mirror": "PYLOCK_MIRROR",
    "pypy_mirror": "PYLOCK_PYPY_MIRROR",
    "url_rewrites": "PYLOCK_URL_REWRITES",
    "concurrency": "PYLOCK_CONCURRENCY",
    "max_download_size": "PYLOCK_MAX_DOWNLOAD_SIZE",
    "github_token": "GITHUB_TOKEN",
    "ssl_cert_file": "SSL_CERT_FILE",
    "ssl_cert_dir": "SSL_CERT_DIR",
    "netrc": "NETRC",
    "docker_config": "DOCKER_CONFIG",
    "github_actor": "GITHUB_ACTOR",
    "remote_cache": "PYLOCK_REMOTE_CACHE",
}


def flag(value: str | None) -> bool | str:
    """A boolean variable: ``True`` for ``1``, ``true``, ``yes``, ``on``; ``False`` for
    ``0``, ``false``, ``no``, ``off`` or blank (unset); else the text as written, which
    :class:`Settings` rejects when the flag is used. Case and spaces do not matter.

    >>> flag("1"), flag("0"), flag(None), flag(" Yes "), flag(" "), flag("2")
    (True, False, False, True, False, '2')
    """
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if not text or text in _FALSE:
        return False
    return value or ""


def windows_arch(environ: Mapping[str, str], default: str = "") -> str:
    """The machine Windows reports, even to a 32-bit process on a 64-bit system."""
    return environ.get("PROCESSOR_ARCHITEW6432") or environ.get("PROCESSOR_ARCHITECTURE", default)


def host_windows_arch(default: str = "") -> str:
    """:func:`windows_arch` of this process (what host detection on Windows needs)."""
    return windows_arch(os.environ, default)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity set where the system keeps one
    (``taskset``, a container's cpuset; Linux), else every CPU it has, capped by a
    cgroup CPU quota (:func:`cgroup_cpu_limit`); at least 1.

    ``os.cpu_count()`` counts the machine's: under ``taskset -c 0`` on two cores a sync
    ran two installs side by side on the one core it had.
    """
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13
    if counter is not None:
        cpus = counter() or 1
    else:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # macOS and Windows have no affinity call here
            cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, cpus if limit is None else min(cpus, limit))


#: Which control groups this process is in (Linux), and where their files are mounted.
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_cpu_limit(proc_cgroup: str = PROC_CGROUP, root: str = CGROUP_ROOT) -> int | None:
    """The CPUs a cgroup CPU quota lets this process use, rounded up: ``docker run
    --cpus 1.5`` gives 2, on however many cores the host has. ``None`` where no quota
    applies or none can be read (not Linux, no cpu controller, unreadable files).

    A quota is the tightest along the process's group and its ancestors. Inside a
    container the path ``proc_cgroup`` names may not exist under ``root`` (the container
    sees its own group as the root): the walk up then ends at ``root`` itself. Both cgroup
    v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``) are read.
    """
    text = _small_text(proc_cgroup)
    if text is None:
        return None
    limits: list[int] = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and not controllers:
            mount = root  # cgroup v2: one hierarchy, mounted at the top
        elif "cpu" in controllers.split(","):
            mount = os.path.join(root, controllers)  # v1: e.g. /sys/fs/cgroup/cpu,cpuacct
        else:
            continue
        parts = [part for part in group.split("/") if part not in ("", ".")]
        if ".." in parts:
            continue
        for depth in range(len(parts), -1, -1):
            limit = _quota_in(os.path.join(mount, *parts[:depth]))
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def _quota_in(group: str) -> int | None:
    """The CPU quota set on one group's directory, in CPUs rounded up, if any."""
    v2 = _small_text(os.path.join(group, "cpu.max"))
    if v2 is not None:
        quota, _, period = v2.strip().partition(" ")
    else:
        quota = _small_text(os.path.join(group, "cpu.cfs_quota_us")) or ""
        period = _small_text(os.path.join(group, "cpu.cfs_period_us")) or ""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max" (no quota), or files that are not what they should be
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 writes -1 for no quota
        return None
    return -(-quota_us // period_us)


def _small_text(path: str) -> str | None:
    """A small kernel file's text, or ``None`` if it cannot be read. A FIFO in its place
    reads as empty: the open does not wait for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as file:
            data = file.read(1 << 16)  # None: a FIFO whose writer has written nothing yet
        return None if data is None else data.decode("ascii", "replace")
    except OSError:  # missing, a directory, permission denied, a FIFO with no data yet
        return None


def parse_size(text: str) -> int:
    """Parse a size such as ``500M``, ``2G``, ``1.5GiB``, ``800MB`` or ``123`` into bytes.

    ``K``, ``M``, ``G``, ``T`` and ``KiB``...``TiB`` are powers of 1024; ``KB``...``TB``
    are powers of 1000; a bare number (or ``B``) is bytes. Case does not matter.

    >>> parse_size("500M"), parse_size("1.5GiB"), parse_size("2gb"), parse_size("0")
    (524288000, 1610612736, 2000000000, 0)
    """
    import re

    from pylock.errors import UsageError, shown

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", text.lower())
    if not match:
        raise UsageError(
            f"invalid size {shown(text)}",
            hint='write a size like "500M", "2G", "1.5GiB" or "800MB" (M = MiB, MB = 10^6)',
        )
    number, prefix, binary, byte = match.groups()
    if binary and not (prefix and byte):
        raise UsageError(f"invalid size {shown(text)}", hint='write e.g. "1.5GiB"')
    power = "kmgt".index(prefix) + 1 if prefix else 0
    base = 1000 if (byte and not binary and prefix) else 1024
    size = float(number) * base**power
    if size > 2**63:  # also an overflow to infinity, which int() cannot take
        raise UsageError(f"invalid size {shown(text, 40)}: too large", hint='write e.g. "500G"')
    return int(size)


_FLAGS = ("no_color", "dumb_terminal")

#: Attributes whose values are URLs that may carry a password or a token.
_URL_SETTINGS = frozenset(
    {"mirror", "pypy_mirror", "url_rewrites", "remote_cache", "http_proxy", "https_proxy",
     "all_proxy"}
)  # fmt: skip

#: Attribute -> the boolean variable it comes from (through :func:`flag`).
_FLAG_VARIABLES = {
    "offline": "PYLOCK_OFFLINE",
    "remote_cache_push": "PYLOCK_REMOTE_CACHE_PUSH",
    "no_origin": "PYLOCK_NO_ORIGIN",
}


class Settings:
    """What the environment says, frozen. Build it with :meth:`from_environ`."""

    __slots__ = (
        "all_proxy",
        "bin_dir",
        "cache_dir",
        "concurrency",
        "docker_config",
        "dumb_terminal",
        "environment",
        "flags",
        "github_actor",
        "github_token",
        "home",
        "http_proxy",
        "https_proxy",
        "install_dir",
        "max_download_size",
        "mirror",
        "netrc",
        "no_color",
        "no_proxy",
        "proxy_variables",
        "pypy_mirror",
        "remote_cache",
        "ssl_cert_dir",
        "ssl_cert_file",
        "url_rewrites",
    )

    cache_dir: str | None
    install_dir: str | None
    bin_dir: str | None
    mirror: str | None
    pypy_mirror: str | None
    url_rewrites: str | None
    concurrency: str | None
    max_download_size: str | None
    github_token: str | None
    ssl_cert_file: str | None
    ssl_cert_dir: str | None
    netrc: str | None
    #: ``DOCKER_CONFIG``: the folder of docker's ``config.json`` (registry credentials).
    docker_config: str | None
    #: ``GITHUB_ACTOR``: the user name that goes with ``GITHUB_TOKEN`` on ghcr.io.
    github_actor: str | None
    #: ``PYLOCK_REMOTE_CACHE``: ``oci://HOST[:PORT]/REPOSITORY``, the fleet's shared registry.
    remote_cache: str | None
    #: The boolean variables (:data:`_FLAG_VARIABLES`), by attribute: ``True``, ``False``,
    #: or the text as written when it is neither, an error when the flag is used (read them
    #: through :attr:`offline`, :attr:`remote_cache_push` and :attr:`no_origin`).
    flags: Mapping[str, bool | str]
    #: The whole environment, for child processes only (git, docker credential helpers).
    environment: Mapping[str, str] | None
    #: ``NO_COLOR`` is set and not empty.
    no_color: bool
    #: ``TERM=dumb`` (Emacs shells, some IDE consoles): a terminal that cannot move its
    #: cursor, so no live progress bars and no colour unless asked for.
    dumb_terminal: bool
    #: This user's home directory, absolute, as the environment gave it when read (for
    #: ``~`` and the default netrc file); ``None`` where there is none to speak of (see
    #: :func:`home_of`).
    home: str | None
    #: ``http_proxy``/``HTTP_PROXY``, ``https_proxy``/``HTTPS_PROXY``, ``all_proxy``/
    #: ``ALL_PROXY`` and ``no_proxy``/``NO_PROXY``; the lower-case name wins, as in curl.
    http_proxy: str | None
    https_proxy: str | None
    all_proxy: str | None
    no_proxy: str | None
    #: Which of the two spellings each proxy setting came from, by attribute
    #: (``{"http_proxy": "http_proxy"}``), for messages that name it.
    proxy_variables: Mapping[str, str] | None

    def __init__(self, **values: object) -> None:
        flags = {name: values.pop(name, False) for name in _FLAG_VARIABLES}
        unknown = set(values) - (set(self.__slots__) - {"flags"})
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            default: object = False if name in _FLAGS else None
            object.__setattr__(self, name, values.get(name, default))
        object.__setattr__(self, "flags", flags)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are frozen; cannot set {name}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={self._shown(n)}" for n in self.__slots__ if n != "environment")
        return f"Settings({shown})"

    def _shown(self, name: str) -> str:
        """An attribute as :meth:`__repr__` shows it: the token hidden, and the password in
        a proxy, mirror, rewrite or remote cache URL hidden as in pylock's messages."""
        value = getattr(self, name)
        if name == "github_token" and value:
            return "***"
        if name in _URL_SETTINGS and isinstance(value, str):
            from pylock.urls import redact_given, redact_given_parts

            if name == "url_rewrites":  # FROM=TO pairs, either side a URL
                value = " ".join(map(redact_given_parts, value.split()))
            else:
                value = redact_given(value)
        return repr(value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__ if n != "environment"
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def offline(self) -> bool:
        """``PYLOCK_OFFLINE`` holds a true value."""
        return self._flag("offline")

    @property
    def remote_cache_push(self) -> bool:
        """``PYLOCK_REMOTE_CACHE_PUSH`` holds a true value: push origin downloads to the
        registry."""
        return self._flag("remote_cache_push")

    @property
    def no_origin(self) -> bool:
        """``PYLOCK_NO_ORIGIN`` holds a true value: never download from the lock's URLs."""
        return self._flag("no_origin")

    def _flag(self, name: str) -> bool:
        value = self.flags[name]
        if isinstance(value, bool):
            return value
        from pylock.errors import UsageError, shown

        raise UsageError(
            f"{_FLAG_VARIABLES[name]} must be true ({', '.join(_TRUE)}) or false "
            f"({', '.join(_FALSE)}), not {shown(value)}",
            hint="unset it (or leave it empty), or set it to one of those; case does not matter",
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read every variable pylock uses from ``environ`` (blank counts as unset)."""
        values: dict[str, object] = {}
        for name, variable in _VARIABLES.items():
            raw = environ.get(variable)
            values[name] = raw.strip() if raw and raw.strip() else None
        # NETRC is a path: kept as written (spaces and all); blank counts as unset too.
        values["netrc"] = environ.get("NETRC") or None
        values["offline"] = flag(environ.get("PYLOCK_OFFLINE"))
        values["no_color"] = bool(environ.get("NO_COLOR"))
        values["dumb_terminal"] = environ.get("TERM") == "dumb"
        values["remote_cache_push"] = flag(environ.get("PYLOCK_REMOTE_CACHE_PUSH"))
        values["no_origin"] = flag(environ.get("PYLOCK_NO_ORIGIN"))
        values["home"] = home_of(environ)
        spelled = {}
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            variable = name if environ.get(name) else name.upper()
            values[name] = (environ.get(variable) or "").strip() or None
            spelled[name] = variable
        values["proxy_variables"] = spelled
        values["environment"] = dict(environ)
        return cls(**values)

    @classmethod
    def current(cls) -> Settings:
        """The settings of this process, for library callers that were given none."""
        return cls.from_environ(os.environ)

    def child_environ(self, **overrides: str) -> dict[str, str]:
        """The environment for a child process (``git``): the one read, with ``overrides``.

        Settings built by hand, without an environment, pass this process's on.
        """
        env = dict(os.environ if self.environment is None else self.environment)
        env.update(overrides)
        return env

    # -- values checked when used --------------------------------------------------

    def jobs(self, flag: int | None = None) -> int:
        """``--jobs``, else ``PYLOCK_CONCURRENCY``, else :data:`DEFAULT_JOBS`."""
        from pylock.errors import UsageError

        if flag is not None:
            if flag < 1:
                raise UsageError(f"--jobs must be at least 1, not {flag}")
            return flag
        if self.concurrency is None:
            return DEFAULT_JOBS
        return _at_least_one("PYLOCK_CONCURRENCY", self.concurrency)

    def max_download_bytes(self) -> int:
        """``PYLOCK_MAX_DOWNLOAD_SIZE`` (e.g. ``500M``, ``4G``), else the default cap."""
        if self.max_download_size is None:
            return DEFAULT_MAX_DOWNLOAD_SIZE
        return _at_least_one("PYLOCK_MAX_DOWNLOAD_SIZE", self.max_download_size)

    def cache_root(self) -> Path:
        """``PYLOCK_CACHE_DIR``, else the platform's user cache directory."""
        from pathlib import Path

        if self.cache_dir:
            return Path(self.expand_home(self.cache_dir, "PYLOCK_CACHE_DIR")).absolute()
        import platformdirs

        try:
            found = platformdirs.user_cache_dir("pylock", appauthor=False)
        except RuntimeError as exc:  # no HOME, and a uid with no passwd entry (OpenShift)
            why = str(exc)
        else:
            if os.path.isabs(found):
                return Path(found)
            # platformdirs before 4 gives `~/.cache/pylock` as it is: a cache in `./~`.
            why = f"the user cache directory would be {found!r}, which is no absolute path"
        from pylock.errors import PylockError

        raise PylockError(
            f"cannot tell where the cache goes: {why}",
            hint="set PYLOCK_CACHE_DIR to a directory (or HOME to an absolute one)",
        )

    def netrc_path(self, *, windows: bool = os.name == "nt") -> str:
        """``NETRC``, else ``~/.netrc``; on Windows ``~/.netrc`` if it exists, else
        ``~/_netrc``.

        The order curl, requests and pip follow on Windows, where either name is common.
        """
        if self.netrc is not None:
            return self.netrc
        home = self.home
        if home is None or not os.path.isabs(home):
            # No home to speak of: not a .netrc of whatever directory this runs in, which a
            # project could ship, nor one at the root.
            return ""
        dotted = os.path.join(home, ".netrc")
        if not windows or os.path.isfile(dotted):
            return dotted
        return os.path.join(home, "_netrc")

    def expanded(self, path: str) -> str | None:
        """``path`` with a leading ``~`` (:attr:`home`) or ``~user`` (the user database)
        expanded, as a shell does; ``None`` where there is no such home."""
        if not path.startswith("~"):
            return path
        head, sep, rest = _home_parts(path)
        home = self.home if not head else os.path.expanduser(f"~{head}")
        if home is None or not os.path.isabs(home):
            return None
        return os.path.join(home, rest) if sep else home

    def expand_home(self, path: str, what: str) -> str:
        """:meth:`expanded`, or an error naming ``what`` (a variable or flag) where there is
        no such home. A ``~`` left as it is would make a directory named ``~`` where the
        command runs (pathlib raised instead), and an empty HOME would put it under ``/``."""
        result = self.expanded(path)
        if result is None:
            from pylock.errors import PylockError

            head = _home_parts(path)[0]
            whose = (
                f"no user {head!r} is known here"
                if head
                else "this user has no home here (HOME is unset, empty or relative, and no "
                "entry in the user database answers)"
            )
            raise PylockError(
                f"{what} is {path!r}, but {whose}", hint=f"give {what} an absolute path"
            )
        return result


def home_of(environ: Mapping[str, str]) -> str | None:
    """The home directory ``environ`` gives this user, where ``os.path.expanduser`` looks
    for it: ``USERPROFILE`` on Windows (else ``HOMEDRIVE`` and ``HOMEPATH``), elsewhere
    ``HOME``, else the user database. ``None`` where there is none to speak of: an empty or
    relative one (``os.path.expanduser`` makes ``/`` of an empty HOME), or none at all for a
    uid with no entry in the user database.

    >>> home_of({"HOME": "", "USERPROFILE": ""}), home_of({"HOME": ".", "USERPROFILE": "."})
    (None, None)
    """
    if os.name == "nt":
        home = environ.get("USERPROFILE")
        if home is None and "HOMEPATH" in environ:
            home = os.path.join(environ.get("HOMEDRIVE", ""), environ["HOMEPATH"])
    else:
        home = environ.get("HOME")
        if home is None:
            try:
                import pwd

                home = pwd.getpwuid(os.getuid()).pw_dir
            except (ImportError, KeyError):
                return None
        elif not home:
            return None
        home = home.rstrip("/") or "/"
    return home if home and os.path.isabs(home) else None


def _home_parts(path: str) -> tuple[str, str, str]:
    """``~USER/REST`` as ``(USER, "/", REST)``; on Windows ``\\`` separates them too."""
    head, sep, rest = path[1:].partition("/")
    if os.name == "nt" and not sep:
        head, sep, rest = path[1:].partition("\\")
    return head, sep, rest


#: Variables that hold a number >= 1: how to parse one, what it must be, what to do.
_AT_LEAST_ONE: dict[str, tuple[Callable[[str], int], str, str]] = {
    "PYLOCK_CONCURRENCY": (
        lambda text: int(text) if text.strip().isascii() else 0,  # not int("٣"): 3
        "a whole number of at least 1",
        "unset it, or set it to the number of downloads to run at once",
    ),
    "PYLOCK_MAX_DOWNLOAD_SIZE": (
        parse_size,
        "a positive size",
        'write a size like "500M", "4G" or "800MB" (M = MiB, MB = 10^6)',
    ),
}


def _at_least_one(name: str, text: str) -> int:
    """``text``, the value of the variable ``name``, as a number >= 1; else one error."""
    from pylock.errors import UsageError, shown

    parse, must, hint = _AT_LEAST_ONE[name]
    try:
        value = parse(text)
    except (ValueError, UsageError):
        value = 0
    if value < 1:
        raise UsageError(f"{name} must be {must}, not {shown(text)}", hint=hint)
    return value
