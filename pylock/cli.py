"""The command line: argparse, output, colour and exit codes, in one place.

This is the only module that prints or exits. Known errors (:class:`PylockError`)
become one ``pylock: error: ...`` line per problem, plus a hint, and exit status 1;
usage errors exit 2. Anything else is a bug and keeps its traceback.

Heavy modules are imported inside the handlers that need them, so ``pylock --help``
and a no-op ``pylock sync`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pylock import __version__
from pylock.errors import FileProblemsError, PylockError, UsageError

if TYPE_CHECKING:
    from pylock.cache import Cache
    from pylock.fetch import FetchOptions
    from pylock.lock import LockFile
    from pylock.platforms import Platform
    from pylock.progress import Reporter

CONFIG_FILENAME = "pythons.toml"
LOCK_FILENAME = "pythons.lock"
INSTALL_DIRNAME = ".pythons"


class Context:
    """What every command needs: the project, the environment and the output."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.args = args
        self.environ = environ
        self.project = Path(args.project).absolute() if args.project else Path.cwd()
        self.color = _want_color(args.color, environ)
        self._reporter: Reporter | None = None

    @property
    def reporter(self) -> Reporter:
        """The progress/status reporter on stderr."""
        if self._reporter is None:
            from pylock.progress import Reporter

            self._reporter = Reporter(verbosity=self.args.verbosity, color=self.color)
        return self._reporter

    @property
    def config_path(self) -> Path:
        """``pythons.toml`` of the project."""
        return self.project / CONFIG_FILENAME

    @property
    def lock_path(self) -> Path:
        """``pythons.lock`` of the project."""
        return self.project / LOCK_FILENAME

    def read_lock(self, path: Path | None = None) -> LockFile:
        """Read and validate the lock, or explain how to create it."""
        from pylock.lock import loads

        path = path or self.lock_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PylockError(
                f"no lock file at {path}", hint="create it with `pylock lock`"
            ) from None
        except OSError as exc:
            raise PylockError(f"cannot read {path}: {exc.strerror}") from None
        return loads(text, filename=_display(path))

    def install_dir(self, into: str | None = None) -> Path:
        """``--into``, else ``PYLOCK_INSTALL_DIR``, else ``.pythons/`` beside the lock."""
        chosen = into or self.environ.get("PYLOCK_INSTALL_DIR")
        if chosen:
            return Path(chosen).expanduser().absolute()
        return self.project / INSTALL_DIRNAME

    def platform(self, key: str | None = None) -> Platform:
        """``--platform KEY`` if given, else the host."""
        from pylock.platforms import host, resolve_platform

        try:
            return resolve_platform(key) if key else host()
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def cache(self) -> Cache:
        """The archive cache (``PYLOCK_CACHE_DIR`` or the user cache dir)."""
        from pylock.cache import Cache

        return Cache.from_env(self.environ)

    @property
    def offline(self) -> bool:
        """``--offline`` or ``PYLOCK_OFFLINE=1``."""
        if getattr(self.args, "offline", False):
            return True
        return self.environ.get("PYLOCK_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")

    def jobs(self) -> int:
        """``--jobs``, else ``PYLOCK_CONCURRENCY``, else 4."""
        value = getattr(self.args, "jobs", None)
        if value is None:
            raw = self.environ.get("PYLOCK_CONCURRENCY", "").strip()
            if not raw:
                return 4
            try:
                value = int(raw)
            except ValueError:
                raise UsageError(
                    f"PYLOCK_CONCURRENCY must be a whole number, got {raw!r}"
                ) from None
        if value < 1:
            raise UsageError(f"the number of jobs must be at least 1, got {value}")
        return int(value)

    def fetch_options(self) -> FetchOptions:
        """Download settings from the command line and the environment."""
        from pylock.fetch import FetchOptions
        from pylock.urls import UrlRewrites

        args = self.args
        rewrites = UrlRewrites.from_sources(
            self.environ.get("PYLOCK_URL_REWRITES"),
            getattr(args, "rewrite", None) or (),
            getattr(args, "mirror", None) or self.environ.get("PYLOCK_MIRROR") or None,
            getattr(args, "pypy_mirror", None) or self.environ.get("PYLOCK_PYPY_MIRROR") or None,
        )
        return FetchOptions(rewrites=rewrites, offline=self.offline, jobs=self.jobs())

    def out(self, text: str = "") -> None:
        """Write a result line to stdout."""
        sys.stdout.write(text + "\n")


def _display(path: Path) -> str:
    """A path as the user would like to read it: relative to cwd when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _want_color(choice: str, environ: Mapping[str, str]) -> bool:
    if choice == "always":
        return True
    if choice == "never" or environ.get("NO_COLOR"):
        return False
    return sys.stderr.isatty()


# -- arguments -----------------------------------------------------------------------------


def _add_fetch_flags(parser: argparse.ArgumentParser, *, mirror: bool = True) -> None:
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never use the network (also PYLOCK_OFFLINE=1)",
    )
    if mirror:
        parser.add_argument(
            "--mirror",
            metavar="URL",
            help="download python-build-standalone archives from this mirror (also PYLOCK_MIRROR)",
        )
        parser.add_argument(
            "--pypy-mirror",
            metavar="URL",
            help="download PyPy archives from this mirror (also PYLOCK_PYPY_MIRROR)",
        )
    parser.add_argument(
        "--rewrite",
        metavar="FROM=TO",
        action="append",
        default=[],
        help="rewrite URLs starting with FROM to start with TO (repeatable; "
        "also PYLOCK_URL_REWRITES)",
    )


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="parallel downloads and installs (default 4; also PYLOCK_CONCURRENCY)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full ``pylock`` argument parser (also used by tests of the examples)."""
    parser = argparse.ArgumentParser(
        prog="pylock",
        description="Lock Python interpreters to exact upstream builds, and install them "
        "from a content-addressed cache.",
        epilog="Run `pylock COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pylock {__version__}")
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="the directory holding pythons.toml and pythons.lock (default: current directory)",
    )
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        help="print only errors and warnings",
    )
    noise.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="count",
        help="print more detail",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour output (default auto; NO_COLOR is honoured)",
    )
    parser.set_defaults(verbosity=0)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, handler: Callable[[Context], int]) -> Any:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(handler=handler)
        return sub

    command(
        "init",
        "write a starter pythons.toml (from .python-version or requires-python if present)",
        _cmd_init,
    )

    lock = command("lock", "resolve pythons.toml to exact builds and write pythons.lock", _cmd_lock)
    upgrade = lock.add_mutually_exclusive_group()
    upgrade.add_argument(
        "--upgrade", "-U", action="store_true", help="re-resolve every interpreter to the newest"
    )
    upgrade.add_argument(
        "--upgrade-python",
        metavar="NAME",
        action="append",
        default=[],
        help="re-resolve only this interpreter (repeatable)",
    )
    lock.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if pythons.lock is missing or out of date; write nothing",
    )
    lock.add_argument(
        "--dry-run", action="store_true", help="show what would change; write nothing"
    )
    lock.add_argument(
        "--refresh",
        action="store_true",
        help="merge live upstream listings into the bundled index before resolving",
    )
    lock.add_argument(
        "--python-downloads-json",
        metavar="PATH_OR_URL",
        help="also resolve from a uv-format downloads JSON (as given to "
        "UV_PYTHON_DOWNLOADS_JSON_URL)",
    )
    _add_fetch_flags(lock)

    sync = command(
        "sync",
        "install the locked interpreters for this platform (reads only pythons.lock)",
        _cmd_sync,
    )
    sync.add_argument(
        "--into",
        metavar="DIR",
        help="install directory (default: PYLOCK_INSTALL_DIR, else .pythons/ beside the lock)",
    )
    sync.add_argument(
        "--platform", metavar="KEY", help="install for this platform instead of the host"
    )
    sync.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="install only this interpreter (repeatable)",
    )
    sync.add_argument(
        "--reinstall", action="store_true", help="reinstall even if already up to date"
    )
    sync.add_argument(
        "--no-prune",
        action="store_true",
        help="keep interpreters pylock installed that the lock no longer lists",
    )
    sync.add_argument(
        "--bin-dir",
        metavar="DIR",
        help="also link executables (python3.13, pypy3.11, ...) into DIR (also PYLOCK_BIN_DIR)",
    )
    sync.add_argument(
        "--no-fixups",
        action="store_true",
        help="do not rewrite build-machine paths in sysconfig and pkg-config files",
    )
    _add_fetch_flags(sync)
    _add_jobs(sync)

    fetch = command("fetch", "download locked archives into the cache; install nothing", _cmd_fetch)
    where = fetch.add_mutually_exclusive_group()
    where.add_argument("--platform", metavar="KEY", help="fetch for this platform (default: host)")
    where.add_argument("--all-platforms", action="store_true", help="fetch every locked platform")
    _add_fetch_flags(fetch)
    _add_jobs(fetch)

    diff = command("diff", "show how interpreters changed between two lock files", _cmd_diff)
    diff.add_argument("old", nargs="?", metavar="OLD", help="old lock file (default: git HEAD)")
    diff.add_argument(
        "new", nargs="?", metavar="NEW", help="new lock file (default: the working tree's)"
    )
    diff.add_argument(
        "--base",
        metavar="GITREF",
        help="compare pythons.lock at this git ref with the working tree",
    )
    diff.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )

    listing = command("list", "list locked interpreters and their state here", _cmd_list)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--into", metavar="DIR", help="install directory to inspect")

    which = command("which", "print the path of an interpreter's executable", _cmd_which)
    which.add_argument("name", metavar="NAME")
    which.add_argument("--into", metavar="DIR", help="install directory")

    outdated = command(
        "outdated", "show newer versions or builds available upstream", _cmd_outdated
    )
    outdated.add_argument("--format", choices=("text", "json"), default="text")
    _add_fetch_flags(outdated)

    verify = command(
        "verify", "re-hash installed interpreters against their install records", _cmd_verify
    )
    verify.add_argument("--into", metavar="DIR", help="install directory")
    verify.add_argument("names", nargs="*", metavar="NAME", help="only these interpreters")

    cache = command("cache", "inspect and clean the archive cache", _cmd_cache)
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_commands.add_parser("dir", help="print the cache directory")
    cache_commands.add_parser("list", help="list cached archives")
    cache_commands.add_parser("verify", help="re-hash cached archives; evict corrupt ones")
    prune = cache_commands.add_parser(
        "prune", help="evict archives by total size and/or age of last use"
    )
    prune.add_argument(
        "--max-size", metavar="SIZE", help="keep at most SIZE (e.g. 500M, 2G), newest kept first"
    )
    prune.add_argument(
        "--unused-for", metavar="DAYS", type=float, help="evict archives unused for DAYS days"
    )
    cache_commands.add_parser("clean", help="remove everything from the cache")

    mirror = command(
        "mirror", "write the locked archives as a static mirror tree (upstream layout)", _cmd_mirror
    )
    mirror.add_argument("outdir", metavar="OUTDIR")
    scope = mirror.add_mutually_exclusive_group()
    scope.add_argument("--all-platforms", action="store_true", help="mirror every locked platform")
    scope.add_argument(
        "--platform",
        metavar="KEY",
        action="append",
        default=[],
        help="mirror this platform (repeatable; default: host)",
    )
    _add_fetch_flags(mirror)
    _add_jobs(mirror)

    run = command("run", "run a locked interpreter: pylock run NAME -- ARGS...", _cmd_run)
    run.add_argument("name", metavar="NAME")
    run.add_argument("run_args", nargs=argparse.REMAINDER, metavar="ARGS")
    run.add_argument("--into", metavar="DIR", help="install directory")
    return parser


# -- commands --------------------------------------------------------------------------


def _cmd_init(ctx: Context) -> int:
    raise PylockError("`pylock init` is not available yet")


def _change_line(change: Any) -> str:
    old, new = change.old, change.new
    if old is None:
        return f"{new.name}: added {new.label}"
    if new is None:
        return f"{old.name}: removed (was {old.label})"
    if old.label != new.label:
        return f"{new.name}: {old.label} -> {new.label}"
    added = sorted(set(new.platforms) - set(old.platforms))
    dropped = sorted(set(old.platforms) - set(new.platforms))
    parts = [f"+{p}" for p in added] + [f"-{p}" for p in dropped]
    detail = f"platforms {' '.join(parts)}" if parts else "artifacts changed"
    return f"{new.name}: {new.label} ({detail})"


def _cmd_lock(ctx: Context) -> int:
    from pylock.errors import StaleLockError
    from pylock.fsutil import atomic_write_text
    from pylock.locking import check_lock, lock_project

    args = ctx.args
    if args.check and not (args.upgrade or args.upgrade_python or args.refresh):
        reason = check_lock(ctx.config_path, ctx.lock_path)
        if reason is not None:
            raise StaleLockError(reason, hint="run `pylock lock` and commit pythons.lock")
        ctx.reporter.event(f"{LOCK_FILENAME} is up to date")
        return 0
    outcome = lock_project(
        ctx.config_path,
        ctx.lock_path,
        upgrade=args.upgrade,
        upgrade_names=args.upgrade_python,
        refresh=args.refresh,
        downloads_json=args.python_downloads_json,
        fetch_options=ctx.fetch_options,
        cache=ctx.cache,
        reporter=ctx.reporter,
    )
    try:
        before = ctx.lock_path.read_text(encoding="utf-8")
    except OSError:
        before = None
    lines = [_change_line(c) for c in outcome.changed]
    if args.check:
        if before != outcome.text:
            raise StaleLockError(
                f"{LOCK_FILENAME} is out of date" + (f": {'; '.join(lines)}" if lines else ""),
                hint="run `pylock lock` with the same options and commit pythons.lock",
            )
        ctx.reporter.event(f"{LOCK_FILENAME} is up to date")
        return 0
    for line in lines:
        ctx.out(line)
    if before == outcome.text:
        ctx.reporter.event(f"{LOCK_FILENAME} is up to date; nothing changed")
        return 0
    if args.dry_run:
        ctx.reporter.event(f"dry run: {LOCK_FILENAME} not written")
        return 0
    if not lines:
        ctx.reporter.event(f"rewrote {LOCK_FILENAME} (no interpreter changed)")
    atomic_write_text(ctx.lock_path, outcome.text)
    ctx.reporter.detail(f"wrote {ctx.lock_path}")
    return 0


def _warn_if_config_changed(ctx: Context, lock: LockFile) -> None:
    if not ctx.config_path.is_file():
        return
    from pylock.config import digest_of_file

    digest = digest_of_file(ctx.config_path)
    if digest != lock.config_digest:
        ctx.reporter.warn(
            f"{CONFIG_FILENAME} changed since {LOCK_FILENAME} was written; installing what "
            "the lock says (run `pylock lock` to update it)"
        )


def _cmd_sync(ctx: Context) -> int:
    from pylock.sync import execute_sync, plan_sync

    args = ctx.args
    lock = ctx.read_lock()
    _warn_if_config_changed(ctx, lock)
    platform = ctx.platform(args.platform)
    dest = ctx.install_dir(args.into)
    plan = plan_sync(
        lock,
        dest_root=dest,
        platform=platform,
        only=args.only,
        reinstall=args.reinstall,
        prune=not args.no_prune,
    )
    for name in plan.unavailable:
        ctx.reporter.warn(f"{name} is not locked for {platform.key}; skipped")
    if plan.is_noop:
        ctx.reporter.event(
            f"{len(plan.current)} interpreter{'s' if len(plan.current) != 1 else ''} "
            f"up to date in {_display(dest)}"
        )
        return 0
    fixup = None
    if not args.no_fixups:
        from pylock.fixups import fixup_for

        fixup = fixup_for(platform)
    result = execute_sync(
        plan,
        dest_root=dest,
        platform=platform,
        cache=ctx.cache(),
        options=ctx.fetch_options(),
        reporter=ctx.reporter,
        jobs=ctx.jobs(),
        fixup=fixup,
    )
    for name in result.installed:
        python = lock.get(name)
        label = python.label if python else name
        ctx.reporter.event(f"installed {name}: {label}")
    for name in result.removed:
        ctx.reporter.event(f"removed {name} (no longer in {LOCK_FILENAME})")
    ctx.reporter.event(
        f"synced {len(result.installed) + len(result.current)} interpreter(s) into "
        f"{_display(dest)} ({len(result.installed)} installed, {result.downloaded} downloaded)"
    )
    return 0


def _cmd_fetch(ctx: Context) -> int:
    raise PylockError("`pylock fetch` is not available yet")


def _cmd_diff(ctx: Context) -> int:
    raise PylockError("`pylock diff` is not available yet")


def _cmd_list(ctx: Context) -> int:
    import json

    from pylock.install import installed_state, is_current

    lock = ctx.read_lock()
    platform = ctx.platform()
    dest = ctx.install_dir(ctx.args.into)
    cache = ctx.cache()
    rows: list[dict[str, Any]] = []
    for python in lock.pythons:
        artifact = python.artifact_for(platform.key)
        state = installed_state(dest, python.name)
        if artifact is None:
            status = "not locked for this platform"
        elif state is None:
            status = "not installed"
        elif is_current(state, artifact):
            status = "installed"
        else:
            status = "out of date (run `pylock sync`)"
        cached = (
            artifact is not None and cache.lookup(artifact.sha256, artifact.filename) is not None
        )
        rows.append(
            {
                "name": python.name,
                "implementation": str(python.implementation),
                "version": python.version,
                "build": python.build,
                "variant": str(python.variant),
                "flavor": str(python.flavor) if python.flavor else None,
                "default": python.default,
                "platforms": list(python.platforms),
                "status": status,
                "cached": cached,
                "path": str(dest / python.name) if state is not None else None,
            }
        )
    if ctx.args.format == "json":
        ctx.out(
            json.dumps(
                {"platform": platform.key, "install-dir": str(dest), "pythons": rows}, indent=2
            )
        )
        return 0
    if not rows:
        ctx.out(f"{LOCK_FILENAME} locks no interpreters")
        return 0
    width = max(len(r["name"]) for r in rows)
    for row, python in zip(rows, lock.pythons, strict=True):
        extra = " (default)" if row["default"] else ""
        cached = ", cached" if row["cached"] and row["status"] != "installed" else ""
        ctx.out(f"{row['name']:<{width}}  {python.label}{extra}  [{row['status']}{cached}]")
    return 0


def _cmd_which(ctx: Context) -> int:
    raise PylockError("`pylock which` is not available yet")


def _cmd_outdated(ctx: Context) -> int:
    raise PylockError("`pylock outdated` is not available yet")


def _cmd_verify(ctx: Context) -> int:
    raise PylockError("`pylock verify` is not available yet")


def _cmd_cache(ctx: Context) -> int:
    raise PylockError("`pylock cache` is not available yet")


def _cmd_mirror(ctx: Context) -> int:
    raise PylockError("`pylock mirror` is not available yet")


def _cmd_run(ctx: Context) -> int:
    raise PylockError("`pylock run` is not available yet")


# -- entry point -----------------------------------------------------------------------


def report_error(error: PylockError, *, color: bool = False) -> None:
    """Print an error the way pylock always does: one line per problem, then a hint."""
    label = "\033[31merror\033[0m" if color else "error"
    if isinstance(error, FileProblemsError):
        lines = [f"{error.file}: {p}" for p in error.problems]
    else:
        lines = str(error).splitlines() or [type(error).__name__]
    for line in lines:
        sys.stderr.write(f"pylock: {label}: {line}\n")
    if error.hint:
        sys.stderr.write(f"pylock: hint: {error.hint}\n")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run pylock with ``argv``; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    ctx = Context(args, os.environ if environ is None else environ)
    try:
        return int(args.handler(ctx))
    except UsageError as exc:
        report_error(exc, color=ctx.color)
        return 2
    except PylockError as exc:
        report_error(exc, color=ctx.color)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("pylock: interrupted\n")
        return 130
    except BrokenPipeError:
        # `pylock list | head`: the reader went away; that is not an error.
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
