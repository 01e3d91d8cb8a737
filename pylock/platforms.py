"""Platform keys, and their names in each upstream's vocabulary.

A platform key is ``{os}-{arch}[-{libc}]``, e.g. ``linux-x86_64-gnu``. Everything in
pylock takes a :class:`Platform` as a parameter; only :func:`host` looks at the
running machine.

>>> Platform.parse("linux-aarch64-gnu").pbs_triple
'aarch64-unknown-linux-gnu'
>>> Platform.from_pbs_triple("x86_64_v3-unknown-linux-musl").key
'linux-x86_64_v3-musl'
"""

from __future__ import annotations

import platform as _platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from pylock.errors import shown
from pylock.settings import host_windows_arch
from pylock.versions import Implementation

#: The special platform name meaning "the machine running pylock".
HOST = "host"


@attrs.frozen(order=True)
class Platform:
    """A target platform, identified by its key."""

    #: ``linux``, ``macos``, ``windows`` or ``emscripten``.
    os: str
    #: Architecture as pylock spells it: ``x86_64``, ``x86_64_v3``, ``aarch64``, ``armv7``...
    arch: str
    #: ``gnu``, ``musl``, ``gnueabi``, ``gnueabihf`` on Linux; ``None`` elsewhere.
    libc: str | None = None

    @property
    def key(self) -> str:
        """The platform key used in ``pythons.toml`` and ``pythons.lock``."""
        parts = [self.os, self.arch] + ([self.libc] if self.libc else [])
        return "-".join(parts)

    def __str__(self) -> str:
        return self.key

    @classmethod
    def parse(cls, key: str) -> Platform:
        """Parse a platform key or a common alias of one; raise ``ValueError`` otherwise.

        >>> [Platform.parse(k).key for k in ("linux-amd64", "darwin-arm64", "win32-x64")]
        ['linux-x86_64-gnu', 'macos-aarch64', 'windows-x86_64']
        """
        if not isinstance(key, str):
            raise ValueError(unknown_platform_message(key))
        found = _BY_KEY.get(key)
        if found is None:
            canonical = canonical_key(key)
            found = _BY_KEY.get(canonical) if canonical else None
        if found is None:
            raise ValueError(unknown_platform_message(key))
        return found

    @property
    def pbs_triple(self) -> str | None:
        """The python-build-standalone target triple, or ``None`` if PBS has no build."""
        return _PBS_TRIPLE.get(self.key)

    @classmethod
    def from_pbs_triple(cls, triple: str) -> Platform | None:
        """Map a PBS triple (including the old ``-shared`` Windows ones) to a platform."""
        if triple.endswith("-shared"):
            triple = triple.removesuffix("-shared")
        return _known(_PBS_TRIPLE_REVERSE.get(triple))

    def release_name(self, implementation: Implementation) -> str | None:
        """The platform as PyPy (``linux64``) or GraalPy (``linux-amd64``) name it in their
        archives' file names, if that implementation builds for it (never for CPython)."""
        return _RELEASE_NAMES.get(implementation, {}).get(self.key)

    @classmethod
    def from_release_name(cls, implementation: Implementation, name: str) -> Platform | None:
        """Map PyPy's or GraalPy's file-name platform (``macos_arm64``) to a platform."""
        return _known(_RELEASE_NAMES_REVERSE.get(implementation, {}).get(name))

    @classmethod
    def from_pypy_json(cls, arch: str, platform: str) -> Platform | None:
        """Map the ``arch``/``platform`` pair of PyPy's ``versions.json`` to a platform."""
        return _known(_PYPY_JSON.get((arch, platform)))

    @classmethod
    def from_uv(cls, os_name: str, family: str, variant: str | None, libc: str) -> Platform | None:
        """Map the platform fields of a uv downloads-JSON entry to a platform."""
        os_key = {"darwin": "macos"}.get(os_name, os_name)
        arch = {"powerpc64le": "ppc64le"}.get(family, family)
        if variant:
            arch = f"{arch}_{variant}"
        if os_key == "linux":
            key = f"linux-{arch}-{libc}"
        elif os_key == "emscripten":
            key = f"emscripten-{arch}"
        else:
            key = f"{os_key}-{arch}"
        return _BY_KEY.get(key)

    @property
    def uv_fields(self) -> tuple[str, str, str | None, str]:
        """The ``(os, arch family, arch variant, libc)`` fields uv's downloads JSON uses."""
        os_name = {"macos": "darwin"}.get(self.os, self.os)
        family, _, variant = self.arch.partition("_v")
        family = {"ppc64le": "powerpc64le"}.get(family, family)
        libc = self.libc or ("musl" if self.os == "emscripten" else "none")
        return os_name, family, (f"v{variant}" if variant else None), libc

    @property
    def is_windows(self) -> bool:
        """Whether executables live at the top of the tree and end in ``.exe``."""
        return self.os == "windows"


def _table() -> dict[str, tuple[Platform, str | None]]:
    rows: dict[str, tuple[Platform, str | None]] = {}

    def add(plat: Platform, triple: str | None) -> None:
        rows[plat.key] = (plat, triple)

    for libc in ("gnu", "musl"):
        for level in ("", "_v2", "_v3", "_v4"):
            add(Platform("linux", f"x86_64{level}", libc), f"x86_64{level}-unknown-linux-{libc}")
        add(Platform("linux", "aarch64", libc), f"aarch64-unknown-linux-{libc}")
    for abi in ("gnueabi", "gnueabihf"):
        add(Platform("linux", "armv7", abi), f"armv7-unknown-linux-{abi}")
    for arch in ("ppc64le", "s390x", "riscv64", "i686"):
        add(Platform("linux", arch, "gnu"), f"{arch}-unknown-linux-gnu")
    for arch in ("aarch64", "x86_64"):
        add(Platform("macos", arch), f"{arch}-apple-darwin")
    for arch in ("x86_64", "i686", "aarch64"):
        add(Platform("windows", arch), f"{arch}-pc-windows-msvc")
    # Pyodide cross-build environments: listed in uv's metadata, no PBS triple.
    add(Platform("emscripten", "wasm32"), None)
    return rows


_TABLE = _table()
_BY_KEY: dict[str, Platform] = {key: plat for key, (plat, _) in _TABLE.items()}
_PBS_TRIPLE: dict[str, str] = {key: t for key, (_, t) in _TABLE.items() if t}
_PBS_TRIPLE_REVERSE = {t: key for key, t in _PBS_TRIPLE.items()}

_PYPY_NAME = {
    "linux-x86_64-gnu": "linux64",
    "linux-aarch64-gnu": "aarch64",
    "linux-i686-gnu": "linux32",
    "linux-s390x-gnu": "s390x",
    "macos-x86_64": "macos_x86_64",
    "macos-aarch64": "macos_arm64",
    "windows-x86_64": "win64",
    "windows-i686": "win32",
}
_PYPY_JSON = {
    ("x64", "linux"): "linux-x86_64-gnu",
    ("aarch64", "linux"): "linux-aarch64-gnu",
    ("i686", "linux"): "linux-i686-gnu",
    ("s390x", "linux"): "linux-s390x-gnu",
    ("x64", "darwin"): "macos-x86_64",
    ("arm64", "darwin"): "macos-aarch64",
    ("x64", "win64"): "windows-x86_64",
    ("x86", "win32"): "windows-i686",
}
_GRAALPY_NAME = {
    "linux-x86_64-gnu": "linux-amd64",
    "linux-aarch64-gnu": "linux-aarch64",
    "macos-x86_64": "macos-amd64",
    "macos-aarch64": "macos-aarch64",
    "windows-x86_64": "windows-amd64",
}
_RELEASE_NAMES = {Implementation.PYPY: _PYPY_NAME, Implementation.GRAALPY: _GRAALPY_NAME}
_RELEASE_NAMES_REVERSE = {
    implementation: {name: key for key, name in names.items()}
    for implementation, names in _RELEASE_NAMES.items()
}

#: Every known platform key, in a stable order.
PLATFORM_KEYS: tuple[str, ...] = tuple(sorted(_BY_KEY))


def _known(key: str | None) -> Platform | None:
    """The platform an upstream name table maps to (``None``: the name is not in it)."""
    return _BY_KEY[key] if key else None


def all_platforms() -> tuple[Platform, ...]:
    """Every platform pylock knows, sorted by key."""
    return tuple(_BY_KEY[k] for k in PLATFORM_KEYS)


# Other spellings of the OS and architecture parts of a key, as other tools write them.
_OS_ALIASES = {
    "linux": "linux",
    "macos": "macos",
    "darwin": "macos",
    "osx": "macos",
    "macosx": "macos",
    "mac": "macos",
    "windows": "windows",
    "win": "windows",
    "win32": "windows",
    "win64": "windows",
}
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "i386": "i686",
    "i586": "i686",
    "x86": "i686",
    "powerpc64le": "ppc64le",
    "ppc64el": "ppc64le",
}
# Words of a target triple that name neither the OS, the architecture nor the libc.
_VENDORS = {"unknown", "pc", "apple"}
_LIBCS = {"gnu", "musl", "gnueabi", "gnueabihf"}


def canonical_key(text: str) -> str | None:
    """The platform key that a common alias or target triple means, if it means one.

    Accepts ``{os}-{arch}[-{libc}]`` and ``{arch}-{os}`` in other tools' words
    (``linux-amd64``, ``darwin-arm64``, ``win-x64``, ``osx-x86_64``) and target triples
    (``x86_64-unknown-linux-gnu``, ``aarch64-apple-darwin``, ``x86_64-pc-windows-msvc``).
    Linux without a libc means glibc. Case and ``_``/``-`` between the parts do not matter.

    >>> canonical_key("x86_64-unknown-linux-gnu"), canonical_key("aarch64-apple-darwin")
    ('linux-x86_64-gnu', 'macos-aarch64')
    >>> canonical_key("x86_64-pc-windows-msvc"), canonical_key("linux-arm64-musl")
    ('windows-x86_64', 'linux-aarch64-musl')
    >>> canonical_key("linux-sparc") is None
    True
    """
    lowered = text.strip().lower()
    if lowered in _BY_KEY:
        return lowered
    triple = Platform.from_pbs_triple(lowered)
    if triple is not None:
        return triple.key
    parts = [p for p in lowered.replace("x86-64", "x86_64").split("-") if p]
    # A bare "win32" or "win64" names both the OS and the word size.
    if parts == ["win32"]:
        return "windows-i686"
    if parts == ["win64"]:
        return "windows-x86_64"
    os_name = arch = libc = None
    for part in parts:
        if os_name is None and part in _OS_ALIASES:
            os_name = _OS_ALIASES[part]
        elif arch is None and (part in _ARCH_ALIASES or _is_arch(part)):
            arch = _ARCH_ALIASES.get(part, part)
        elif libc is None and part in _LIBCS:
            libc = part
        elif not (part in _VENDORS or (part == "msvc" and os_name == "windows")):
            return None
    if os_name is None or arch is None:
        return None
    if os_name == "linux":
        libc = libc or ("gnueabihf" if arch == "armv7" else "gnu")
        key = f"linux-{arch}-{libc}"
    elif libc is not None:
        return None
    else:
        key = f"{os_name}-{arch}"
    return key if key in _BY_KEY else None


def _is_arch(word: str) -> bool:
    return any(p.arch == word for p in _BY_KEY.values())


def _either(keys: Sequence[str]) -> str:
    """Keys as a message offers them.

    >>> _either(["a"]), _either(["a", "b", "c"])
    ("'a'", "'a', 'b' or 'c'")
    """
    quoted = [repr(k) for k in keys]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if quoted[1:] else quoted[0]


def is_host(key: str) -> bool:
    """Whether a platform entry means the host: ``host`` in any case, with spaces around,
    as platform keys may be spelled.

    >>> is_host("host"), is_host(" HOST"), is_host("linux-x86_64-gnu")
    (True, True, False)
    """
    return key.strip().lower() == HOST


def unknown_platform_message(key: object) -> str:
    """Explain that ``key`` is not a platform key, suggesting the nearest ones."""
    text = f"unknown platform {shown(key)}"
    if isinstance(key, str):
        import difflib

        # A bare architecture (`x86_64`, `arm64`) or system (`darwin`): every key with it,
        # not the few that happen to spell alike (which left out linux-x86_64-gnu).
        word = key.lower()
        arch = _ARCH_ALIASES.get(word, word)
        os_name = _OS_ALIASES.get(word, word)
        for missing, keys in (
            ("system", [k for k in PLATFORM_KEYS if _BY_KEY[k].arch == arch]),
            ("architecture", [k for k in PLATFORM_KEYS if _BY_KEY[k].os == os_name]),
        ):
            if keys:
                either = _either(keys)
                return f"{text}: a platform key names the {missing} too (did you mean {either}?)"

        close = difflib.get_close_matches(key, [*PLATFORM_KEYS, HOST], n=3, cutoff=0.6)
        if close:
            return f"{text} (did you mean {_either(sorted(close))}?)"
    return f"{text} (expected 'host' or one of: {', '.join(PLATFORM_KEYS)})"


def _linux_libc(machine: str) -> str:
    libc, _ = _platform.libc_ver()
    if libc == "glibc":
        return "gnueabihf" if machine == "armv7" else "gnu"
    # platform.libc_ver() reads the interpreter binary; on musl it finds nothing.
    # The musl loader's presence is the conventional tell.
    for lib in (Path("/lib"), Path("/usr/lib")):
        try:
            if any(p.name.startswith("ld-musl-") for p in lib.iterdir()):
                return "musl"
        except OSError:
            continue
    return "gnueabihf" if machine == "armv7" else "gnu"


_MACHINE_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "aarch64_be": "aarch64",
    "armv7l": "armv7",
    "armv8l": "armv7",
    "i386": "i686",
    "i586": "i686",
    "x86": "i686",
    "ppc64le": "ppc64le",
}


#: ``IMAGE_FILE_MACHINE_*`` values that ``IsWow64Process2`` reports, as pylock spells them.
_WINDOWS_MACHINES = {0x8664: "x86_64", 0xAA64: "aarch64", 0x014C: "i686"}


def _rosetta_translated(libc: Any = None) -> bool:
    """Whether macOS runs this process translated by Rosetta 2: an x86_64 Python on Apple
    silicon, to which ``platform.machine()`` says ``x86_64``.

    Asked of ``sysctlbyname("sysctl.proc_translated")``, Apple's documented test, through
    ctypes rather than the ``sysctl`` command: no process to start, no ``PATH`` to trust.
    Only asked for an x86_64 process on macOS, so everyone else pays nothing. ``libc``
    stands in for libSystem in tests.
    """
    try:
        import ctypes

        if libc is None:
            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
        sysctlbyname = libc.sysctlbyname
        sysctlbyname.argtypes = [
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        sysctlbyname.restype = ctypes.c_int
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        status = sysctlbyname(
            b"sysctl.proc_translated", ctypes.pointer(value), ctypes.pointer(size), None, 0
        )
    except (ImportError, OSError, AttributeError):
        return False
    # An Intel Mac has no such sysctl (-1, ENOENT): not translated.
    return bool(status == 0 and value.value == 1)


def _windows_native_machine(kernel32: Any = None) -> str | None:
    """The architecture of the Windows machine itself, as ``IsWow64Process2`` reports it
    (Windows 10 1709 and later); ``None`` if it cannot tell.

    The environment cannot: an x64 process emulated on Windows on Arm is not a WOW64 one,
    so it sees ``PROCESSOR_ARCHITECTURE=AMD64`` and no ``PROCESSOR_ARCHITEW6432``.
    ``kernel32`` stands in for the DLL in tests.
    """
    try:
        import ctypes

        if kernel32 is None:
            win_dll = getattr(ctypes, "WinDLL", None)  # Windows only
            if win_dll is None:
                return None
            kernel32 = win_dll("kernel32")
        is_wow64_process2 = kernel32.IsWow64Process2
        is_wow64_process2.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_ushort),
            ctypes.POINTER(ctypes.c_ushort),
        ]
        is_wow64_process2.restype = ctypes.c_int
        process_machine = ctypes.c_ushort(0)
        native_machine = ctypes.c_ushort(0)
        # -1 is the pseudo handle GetCurrentProcess() returns for the calling process.
        ok = is_wow64_process2(
            ctypes.c_void_p(-1), ctypes.pointer(process_machine), ctypes.pointer(native_machine)
        )
    except (ImportError, OSError, AttributeError):  # no ctypes, or a Windows without it
        return None
    return _WINDOWS_MACHINES.get(native_machine.value) if ok else None


def host() -> Platform:
    """Detect the platform of the running machine: OS, architecture and libc.

    This is the only function in pylock that reads the machine it runs on (with the two
    helpers it asks whether this process runs emulated).
    Raise ``ValueError`` on a machine no upstream builds for.
    """
    system = sys.platform
    machine = _platform.machine().lower()
    arch = _MACHINE_ALIASES.get(machine, machine)
    if system.startswith("linux"):
        if arch == "x86_64" and sys.maxsize <= 2**32:
            arch = "i686"
        key = f"linux-{arch}-{_linux_libc(arch)}"
    elif system == "darwin":
        # The native builds, not those of the emulated machine: they are the ones
        # teammates on Apple silicon lock, and they run without Rosetta.
        if arch == "x86_64" and _rosetta_translated():
            arch = "aarch64"
        key = f"macos-{arch}"
    elif system in ("win32", "cygwin"):
        # A 32-bit Python on 64-bit Windows still reports AMD64; trust the pointer size.
        env_arch = host_windows_arch(machine)
        arch = _MACHINE_ALIASES.get(env_arch.lower(), arch)
        # An x64 Python on Windows on Arm: the native machine, as on macOS.
        if arch == "x86_64":
            arch = _windows_native_machine() or arch
        key = f"windows-{arch}"
    else:
        key = f"{system}-{arch}"
    if key not in _BY_KEY:
        raise ValueError(f"this machine ({system}, {machine}) is not a platform pylock knows")
    return _BY_KEY[key]


def resolve_platform(key: str, *, host_platform: Platform | None = None) -> Platform:
    """Parse a key, mapping ``host`` to the detected (or given) host platform."""
    if is_host(key):
        return host_platform if host_platform is not None else host()
    return Platform.parse(key)
