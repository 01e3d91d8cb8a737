"""``pylock mirror``: the locked archives as a static tree in the upstream layout.

A mirror tree can be served by any static web server, S3 bucket or Artifactory, or read
as ``file://``. Each canonical URL maps to one path under the tree:

- ``https://github.com/astral-sh/python-build-standalone/releases/download/<tag>/<file>``
  -> ``<tag>/<file>`` (``%2B`` decoded to a literal ``+``);
- ``https://downloads.python.org/pypy/<file>`` -> ``pypy/<file>``;
- ``https://github.com/oracle/graalpython/releases/download/<tag>/<file>``
  -> ``graalpy/<tag>/<file>``;
- any other ``scheme://host[:port]/<path>`` -> ``other/<host>[_<port>]/<path>``,

so that ``--mirror BASE`` (pylock and uv), ``--pypy-mirror BASE/pypy/`` (pylock and uv),
``--graalpy-mirror BASE/graalpy/`` (uv) or ``--rewrite
https://github.com/oracle/graalpython/releases/download/=BASE/graalpy/`` (pylock) find
every file. Every directory holding archives gets a ``SHA256SUMS`` (``<hex>  <name>``,
sorted, literal ``+``), and the top holds ``download-metadata.json`` in uv's format, with
the canonical URLs, for ``uv python install --python-downloads-json-url``.

Files come from the archive cache (hard-linked where possible, else copied), downloading
misses first. Every file is placed atomically and re-hashed before it gets its final
name; a re-run skips files that are present with the right hash and repairs the rest.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import attrs

from pylock.bounded import json_loads
from pylock.errors import HashMismatchError, MirrorError
from pylock.fsutil import atomic_write_text, sha256_file
from pylock.lockfile import Artifact, LockedPython, LockFile
from pylock.platforms import Platform
from pylock.versions import Implementation, Variant

if TYPE_CHECKING:
    from pylock.net.fetch import FetchOptions
    from pylock.net.registry import RemoteCache
    from pylock.progress import Reporter
    from pylock.sync.cache import Cache

PBS_PREFIX = "https://github.com/astral-sh/python-build-standalone/releases/download/"
PYPY_PREFIX = "https://downloads.python.org/pypy/"
GRAALPY_PREFIX = "https://github.com/oracle/graalpython/releases/download/"

#: Upstream download prefixes and the directory each maps to in a mirror ("" = the top).
UPSTREAM_DIRS: tuple[tuple[str, str], ...] = (
    (PBS_PREFIX, ""),
    (PYPY_PREFIX, "pypy"),
    (GRAALPY_PREFIX, "graalpy"),
)
#: Where archives from any other host go.
OTHER_DIR = "other"
SUMS_NAME = "SHA256SUMS"
UV_JSON_NAME = "download-metadata.json"


@attrs.frozen(kw_only=True)
class MirrorEntry:
    """One archive to place in the mirror."""

    #: The interpreter it belongs to (the first one, if several share the archive).
    python: LockedPython
    #: The locked artifact.
    artifact: Artifact
    #: Where it goes, relative to the mirror's top.
    path: PurePosixPath


@attrs.frozen(kw_only=True)
class MirrorReport:
    """What a mirror run did, by relative path."""

    #: Archives that were not in the mirror before.
    added: tuple[str, ...] = ()
    #: Archives that were present with the right hash and left alone.
    unchanged: tuple[str, ...] = ()
    #: Archives that were present with the wrong content and were replaced.
    repaired: tuple[str, ...] = ()
    #: Interpreters left out of ``download-metadata.json`` (with the reason).
    not_in_uv_json: tuple[str, ...] = ()
    #: The implementations the mirrored archives belong to.
    implementations: frozenset[Implementation] = frozenset()
    #: Whether some archives came from hosts other than the known upstreams.
    other_hosts: bool = False

    @property
    def archives(self) -> int:
        """How many archives the mirror holds for this lock."""
        return len(self.added) + len(self.unchanged) + len(self.repaired)


# -- the layout (pure) ---------------------------------------------------------------------


def _safe_parts(text: str, url: str) -> list[str]:
    parts = unquote(text).split("/")
    for part in parts:
        if (
            part in ("", ".", "..")
            or "\\" in part
            or "\0" in part
            or ":" in part
            or part != part.strip()
        ):
            raise MirrorError(
                f"cannot mirror {url!r}: its path has an unsafe or empty segment {part!r}"
            )
    return parts


def mirror_path(url: str) -> PurePosixPath:
    """Where the archive at canonical ``url`` lives in a mirror tree.

    >>> str(mirror_path(PBS_PREFIX + "20251014/cpython-3.13.9%2B20251014-x.tar.gz"))
    '20251014/cpython-3.13.9+20251014-x.tar.gz'
    >>> str(mirror_path("https://downloads.python.org/pypy/pypy3.11-v7.3.20-linux64.tar.bz2"))
    'pypy/pypy3.11-v7.3.20-linux64.tar.bz2'
    >>> str(mirror_path("https://artifacts.example:8443/py/cpython-corp.tar.gz"))
    'other/artifacts.example_8443/py/cpython-corp.tar.gz'
    """
    path: PurePosixPath
    for prefix, folder in UPSTREAM_DIRS:
        if url.startswith(prefix):
            rest = urlsplit(url[len(prefix) - 1 :]).path.lstrip("/")
            parts = _safe_parts(rest, url)
            path = PurePosixPath(folder, *parts) if folder else PurePosixPath(*parts)
            break
    else:
        split = urlsplit(url)
        host = (split.hostname or "localhost").lower().replace(":", "_")
        if split.port is not None:
            host = f"{host}_{split.port}"
        parts = _safe_parts(split.path.lstrip("/"), url)
        path = PurePosixPath(OTHER_DIR, *_safe_parts(host, url), *parts)
    # The top level holds the mirror's own files; an archive never belongs there.
    if len(path.parts) < 2 or path.name in (SUMS_NAME, UV_JSON_NAME):
        raise MirrorError(f"cannot mirror {url!r}: it does not look like an upstream archive URL")
    return path


def plan_mirror(lock: LockFile, platforms: Collection[str] | None) -> list[MirrorEntry]:
    """The archives of ``lock`` for ``platforms`` (``None``: all), one entry per file.

    Raise :class:`MirrorError` when two different archives would land on one path.
    """
    by_path: dict[PurePosixPath, MirrorEntry] = {}
    for python in lock.pythons:
        for artifact in python.artifacts:
            if platforms is not None and artifact.platform not in platforms:
                continue
            path = mirror_path(artifact.url)
            earlier = by_path.get(path)
            if earlier is None:
                by_path[path] = MirrorEntry(python=python, artifact=artifact, path=path)
            elif earlier.artifact.sha256 != artifact.sha256:
                raise MirrorError(
                    f"{earlier.python.name} and {python.name} lock different archives "
                    f"(sha256 {earlier.artifact.sha256} and {artifact.sha256}) "
                    f"at the same URL {artifact.url}",
                    hint="re-create the lock with `pylock lock --upgrade`",
                )
    return [by_path[p] for p in sorted(by_path)]


def sha256sums_text(sums: Mapping[str, str]) -> str:
    """A ``SHA256SUMS`` body as upstream writes it: sorted by name, two spaces.

    >>> sha256sums_text({"b+1.tar.gz": "22", "a.tar.gz": "11"})
    '11  a.tar.gz\\n22  b+1.tar.gz\\n'
    """
    return "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))


def parse_sha256sums(text: str) -> dict[str, str]:
    """Read a ``SHA256SUMS`` body (also the ``*name`` binary-mode form); skip junk lines."""
    from pylock.lockfile import is_sha256

    result: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.strip().partition(" ")
        name = name.strip().removeprefix("*")
        if sep and is_sha256(digest) and name and "/" not in name:
            result[name] = digest
    return result


def uv_key_and_entry(python: LockedPython, artifact: Artifact) -> tuple[str, dict[str, Any]] | None:
    """The uv downloads-JSON key and entry for one artifact, or ``None`` if uv cannot use it.

    uv only rewrites URLs under the upstream prefixes with ``--mirror``, ``--pypy-mirror``
    and ``--graalpy-mirror``, so direct-URL artifacts are left out, as are versions uv's
    key cannot express.
    """
    from packaging.version import InvalidVersion, Version

    if not any(artifact.url.startswith(prefix) for prefix, _ in UPSTREAM_DIRS):
        return None
    try:
        platform = Platform.parse(artifact.platform)
        version = Version(python.version)
    except (ValueError, InvalidVersion):
        return None
    if platform.os == "emscripten" or len(version.release) != 3:
        return None
    os_name, family, arch_variant, libc = platform.uv_fields
    major, minor, patch = version.release
    pre = "".join(str(p) for p in version.pre) if version.pre else ""
    arch = f"{family}_{arch_variant}" if arch_variant else family
    variant = None if python.variant is Variant.DEFAULT else str(python.variant)
    suffix = f"+{variant}" if variant else ""
    name = str(python.implementation)
    key = f"{name}-{major}.{minor}.{patch}{pre}{suffix}-{os_name}-{arch}-{libc}"
    entry = {
        "name": name,
        "arch": {"family": family, "variant": arch_variant},
        "os": os_name,
        "libc": libc,
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": pre,
        "url": artifact.url,
        "sha256": artifact.sha256,
        "variant": variant,
        "build": python.build,
    }
    return key, entry


def uv_downloads_json(
    entries: Iterable[MirrorEntry],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """uv's downloads JSON for ``entries``, and the interpreters it had to leave out.

    uv's key has no room for the flavor or build, so when two locked interpreters share
    a key (say 3.13.9 ``full`` and ``install_only``), the first by name wins.
    """
    document: dict[str, dict[str, Any]] = {}
    left_out: list[str] = []
    for entry in sorted(entries, key=lambda e: (e.python.name, e.artifact.platform)):
        made = uv_key_and_entry(entry.python, entry.artifact)
        label = f"{entry.python.name} ({entry.artifact.platform})"
        if made is None:
            left_out.append(f"{label}: not an upstream archive uv can mirror")
            continue
        key, value = made
        if key in document and document[key]["sha256"] != value["sha256"]:
            left_out.append(f"{label}: uv key {key} is already taken by another archive")
            continue
        document[key] = value
    return document, left_out


# -- writing the tree ----------------------------------------------------------------------


def _is_intact(path: Path, artifact: Artifact) -> bool | None:
    """``True`` if ``path`` holds the artifact, ``False`` if it holds something else,
    ``None`` if there is no file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if not path.is_file():
        return False
    if artifact.size is not None and size != artifact.size:
        return False
    return sha256_file(path) == artifact.sha256


def _place(source: Path, target: Path, artifact: Artifact) -> None:
    """Put ``source`` at ``target`` atomically: link (or copy) to a temporary name, hash, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            os.link(source, tmp)
        except OSError:
            # Another filesystem, or one without hard links (FAT, some network shares).
            shutil.copyfile(source, tmp)
        actual = sha256_file(tmp)
        if actual != artifact.sha256:
            raise HashMismatchError(url=str(source), expected=artifact.sha256, actual=actual)
        if target.is_dir() and not target.is_symlink():
            raise MirrorError(f"cannot write {target}: a directory is in the way")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fetch_into_cache(
    entries: list[MirrorEntry],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> dict[str, Path]:
    from pylock.sync.archives import Wanted, ensure_archives

    # Hits are not re-hashed here: every file is hashed anyway as it is placed.
    wanted = [Wanted.from_artifact(e.artifact, python=e.python) for e in entries]
    return ensure_archives(wanted, cache, options, reporter)


def _write_sums(outdir: Path, entries: list[MirrorEntry]) -> None:
    by_dir: dict[PurePosixPath, dict[str, str]] = {}
    for entry in entries:
        by_dir.setdefault(entry.path.parent, {})[entry.path.name] = entry.artifact.sha256
    for folder, ours in by_dir.items():
        path = outdir.joinpath(folder, SUMS_NAME)
        try:
            known = parse_sha256sums(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            known = {}
        # Keep what earlier runs (other locks, other platforms) put here and still exists.
        sums = {n: d for n, d in known.items() if path.with_name(n).is_file()}
        sums.update(ours)
        text = sha256sums_text(sums)
        if known != sums or not path.is_file():
            atomic_write_text(path, text)


def _write_uv_json(outdir: Path, entries: list[MirrorEntry], reporter: Reporter) -> list[str]:
    document, left_out = uv_downloads_json(entries)
    path = outdir / UV_JSON_NAME
    merged: dict[str, Any] = {}
    try:
        existing = json_loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        existing = {}
    except (OSError, ValueError):
        reporter.warn(f"{path} is not valid JSON; writing it afresh")
        existing = {}
    if isinstance(existing, dict):
        for key, value in existing.items():
            url = value.get("url") if isinstance(value, dict) else None
            # Keep entries of earlier runs whose archive is still in the tree.
            try:
                present = isinstance(url, str) and outdir.joinpath(mirror_path(url)).is_file()
            except MirrorError:
                present = False
            if present:
                merged[key] = value
    merged.update(document)
    text = json.dumps(dict(sorted(merged.items())), indent=2) + "\n"
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        current = None
    if current != text:
        atomic_write_text(path, text)
    return left_out


def build_mirror(
    lock: LockFile,
    outdir: Path,
    *,
    platforms: Collection[str] | None,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> MirrorReport:
    """Write (or bring up to date) a mirror of ``lock``'s archives for ``platforms`` in ``outdir``.

    ``platforms=None`` mirrors every locked platform. Archives missing from the cache
    are downloaded through it (honouring ``options``' rewrites and ``--offline``).
    """
    entries = plan_mirror(lock, platforms)
    if not entries:
        covered = sorted({a.platform for p in lock.pythons for a in p.artifacts})
        wanted = ", ".join(sorted(platforms)) if platforms is not None else "any platform"
        raise MirrorError(
            f"nothing to mirror: the lock has no archives for {wanted}",
            hint=f"the lock covers {', '.join(covered)}; use --platform KEY or --all-platforms"
            if covered
            else "add interpreters to pythons.toml and run `pylock lock`",
        )
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MirrorError(f"cannot create {outdir}: {exc.strerror}") from None

    added: list[str] = []
    unchanged: list[str] = []
    repaired: list[str] = []
    todo: list[MirrorEntry] = []
    for entry in entries:
        state = _is_intact(outdir.joinpath(entry.path), entry.artifact)
        if state is True:
            unchanged.append(str(entry.path))
            reporter.detail(f"{entry.path}: present and verified")
        else:
            if state is False:
                reporter.warn(f"{entry.path}: wrong content in the mirror; replacing it")
                repaired.append(str(entry.path))
            else:
                added.append(str(entry.path))
            todo.append(entry)

    if todo:
        _copy_from_cache(outdir, todo, cache, options, reporter)

    _write_sums(outdir, entries)
    left_out = _write_uv_json(outdir, entries, reporter)
    for reason in left_out:
        reporter.detail(f"{UV_JSON_NAME}: left out {reason}")
    return MirrorReport(
        added=tuple(added),
        unchanged=tuple(unchanged),
        repaired=tuple(repaired),
        not_in_uv_json=tuple(left_out),
        implementations=frozenset(e.python.implementation for e in entries),
        other_hosts=any(e.path.parts[0] == OTHER_DIR for e in entries),
    )


def _copy_from_cache(
    outdir: Path,
    todo: list[MirrorEntry],
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> None:
    paths = _fetch_into_cache(todo, cache, options, reporter)
    for entry in todo:
        target = outdir.joinpath(entry.path)
        sha256 = entry.artifact.sha256
        for attempt in (1, 2):
            try:
                # Held, so that a concurrent `pylock cache prune` leaves it alone meanwhile.
                with cache.hold(sha256) as held:
                    source = held or paths.get(sha256)
                    if source is None:
                        raise MirrorError(f"the cache did not provide {entry.artifact.url}")
                    _place(source, target, entry.artifact)
            except HashMismatchError:
                if attempt == 2:
                    raise
                # A cache file that rotted since it was verified: evict it, fetch it again.
                reporter.warn(f"cached {entry.artifact.filename} is corrupt; downloading it again")
                cache.evict(sha256)
                paths.update(_fetch_into_cache([entry], cache, options, reporter))
                continue
            except OSError as exc:
                raise MirrorError(f"cannot write {target}: {exc.strerror or exc}") from None
            break
        reporter.detail(f"{entry.path}: written")


@attrs.frozen(kw_only=True)
class SeedReport:
    """What ``pylock mirror --to oci://...`` did, by archive file name."""

    #: Blobs uploaded now, and blobs the registry already had (their tags are refreshed).
    pushed: tuple[str, ...] = ()
    present: tuple[str, ...] = ()


def seed_registry(
    lock: LockFile,
    remote: RemoteCache,
    *,
    platforms: Collection[str] | None,
    cache: Cache,
    options: FetchOptions,
    reporter: Reporter,
) -> SeedReport:
    """Fill the remote cache with ``lock``'s archives for ``platforms`` (``None``: all).

    Archives come through the local cache (downloaded from the origin on a miss) and are
    verified there; each is pushed as a blob (skipped when the registry has it) and a
    tagged manifest. Unlike a sync's write-back, a failure here is an error.
    """
    import asyncio

    from pylock.net.registry import artifact_manifest
    from pylock.sync.archives import remote_tag

    entries = plan_mirror(lock, platforms)
    if not entries:
        wanted = ", ".join(sorted(platforms)) if platforms is not None else "any platform"
        raise MirrorError(
            f"nothing to push: the lock has no archives for {wanted}",
            hint="check --platform, or run `pylock lock`",
        )
    paths = _fetch_into_cache(entries, cache, attrs.evolve(options, remote=None), reporter)

    async def push_all() -> SeedReport:
        pushed: list[str] = []
        present: list[str] = []
        async with remote.client() as client:
            for entry in entries:
                artifact = entry.artifact
                path = paths[artifact.sha256]
                if sha256_file(path) != artifact.sha256:
                    raise HashMismatchError(
                        url=str(path), expected=artifact.sha256, actual=sha256_file(path)
                    )
                if await client.has_blob(artifact.sha256):
                    present.append(artifact.filename)
                else:
                    await client.push_blob(path, artifact.sha256)
                    pushed.append(artifact.filename)
                tag = remote_tag(entry.python, artifact)
                manifest = artifact_manifest(
                    sha256=artifact.sha256,
                    size=path.stat().st_size,
                    filename=artifact.filename,
                    lock_name=entry.python.name,
                    origin_url=artifact.url,
                )
                await client.push_manifest(tag, manifest)
                reporter.detail(f"{artifact.filename}: in {remote.ref} as {tag}")
        return SeedReport(pushed=tuple(pushed), present=tuple(present))

    return asyncio.run(push_all())


def usage_lines(base: str, report: MirrorReport) -> list[str]:
    """How to point pylock and uv at a mirror served at ``base``, for what it holds."""
    base = base.rstrip("/")
    pylock_flags: list[str] = []
    uv_flags: list[str] = []
    if Implementation.CPYTHON in report.implementations:
        pylock_flags.append(f"--mirror {base}/")
        uv_flags.append(f"--mirror {base}/")
    if Implementation.PYPY in report.implementations:
        pylock_flags.append(f"--pypy-mirror {base}/pypy/")
        uv_flags.append(f"--pypy-mirror {base}/pypy/")
    if Implementation.GRAALPY in report.implementations:
        pylock_flags.append(f"--rewrite {GRAALPY_PREFIX}={base}/graalpy/")
        uv_flags.append(f"--graalpy-mirror {base}/graalpy/")
    lines = [f"  pylock sync {' '.join(pylock_flags)}"] if pylock_flags else []
    if report.other_hosts:
        lines.append(
            "  archives from other hosts are under other/<host>/: add "
            f"--rewrite https://<host>/={base}/{OTHER_DIR}/<host>/ for each"
        )
    if uv_flags:
        lines.append(
            f"  uv python install {' '.join(uv_flags)} "
            f"--python-downloads-json-url {base}/{UV_JSON_NAME}"
        )
    return lines
