"""The command line: argparse, output, colour and exit codes, in one place.

Each command handler turns its arguments into one use-case call (``project``, ``review``,
``sync.execute.run_sync``, ``sync.plan``, ``mirror``...) and prints the result. This is
the only module that prints or exits (``entry.py`` prints the no-op fast path's line).
The environment is read once, into :class:`pylock.settings.Settings`.

Known errors (:class:`PylockError`) become one ``pylock: error: ...`` line per problem,
plus a hint, and exit status 1; usage errors exit 2. Anything else is a bug and keeps its
traceback.

Heavy modules are imported inside the handlers that need them, so ``pylock --help``
and a no-op ``pylock sync`` stay fast.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pylock import __version__
from pylock.errors import (
    ArchivesNotFetchedError,
    FileProblemsError,
    PylockError,
    UsageError,
    printable,
    said_once,
    shared_hints,
    some_names,
)
from pylock.fsutil import CONFIG_FILENAME, LOCK_FILENAME
from pylock.interrupts import Terminated, discard_lost, raise_lost, unmasked

if TYPE_CHECKING:
    import subprocess

    from _typeshed import SupportsWrite

    from pylock.lockfile import LockFile
    from pylock.net.options import FetchOptions
    from pylock.net.registry import RemoteCache
    from pylock.platforms import Platform
    from pylock.progress import Reporter
    from pylock.settings import Settings
    from pylock.sync.cache import Cache
    from pylock.sync.install import VerifyReport
    from pylock.sync.plan import Located

INSTALL_DIRNAME = ".pythons"


class Context:
    """What every command needs: the project, the environment and the output."""

    def __init__(
        self, args: argparse.Namespace, settings: Settings, argv: Sequence[str] = ()
    ) -> None:
        self.args = args
        #: The arguments as given (the fast path's state is keyed on them).
        self.argv = tuple(argv)
        self.settings = settings
        project = args.project
        self.project = (
            Path(os.path.abspath(settings.expand_home(project, "--project")))
            if project
            else Path.cwd()
        )
        from pylock.progress import want_color

        self.color = want_color(args.color, settings.no_color or settings.dumb_terminal)
        self._reporter: Reporter | None = None
        self._remote: tuple[RemoteCache | None] | None = None
        #: Whether the reader of stdout went away (``pylock verify | head -1``).
        self._stdout_gone = False

    @property
    def reporter(self) -> Reporter:
        """The progress/status reporter on stderr."""
        if self._reporter is None:
            from pylock.progress import Reporter
            from pylock.sync import early

            verbosity, dumb = self.args.verbosity, self.settings.dumb_terminal
            # The one a sync's head start reports its downloads to, if it has these settings.
            self._reporter = early.reporter(verbosity, self.color, dumb) or Reporter(
                verbosity=verbosity, color=self.color, dumb_terminal=dumb
            )
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
        from pylock.lockio import read_lock

        return read_lock(path or self.lock_path)

    def install_dir(self, into: str | None = None) -> Path:
        """``--into``, else ``PYLOCK_INSTALL_DIR``, else ``.pythons/`` beside the lock."""
        chosen = into or self.settings.install_dir
        if chosen:
            # Normalised (no `..`): the fix-ups write this path into the interpreter.
            name = "--into" if into else "PYLOCK_INSTALL_DIR"
            return Path(os.path.abspath(self.settings.expand_home(chosen, name)))
        return self.project / INSTALL_DIRNAME

    def platform(self, key: str | None = None) -> Platform:
        """``--platform KEY`` if given, else the host."""
        from pylock.platforms import host, resolve_platform

        try:
            return resolve_platform(key) if key else host()
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def platform_keys(self, keys: Sequence[str]) -> list[str]:
        """The platforms of a repeatable ``--platform`` (``mirror``, ``fetch``), each once,
        in the order given; the host if none was."""
        if not keys:
            return [self.platform().key]
        return list(dict.fromkeys(self.platform(key).key for key in keys))

    def cache(self) -> Cache:
        """The archive cache (``PYLOCK_CACHE_DIR`` or the user cache dir)."""
        from pylock.sync.cache import Cache

        return Cache.from_settings(self.settings)

    @property
    def offline(self) -> bool:
        """``--offline`` or ``PYLOCK_OFFLINE=1``."""
        return bool(getattr(self.args, "offline", False)) or self.settings.offline

    def fetch_options(self) -> FetchOptions:
        """Download settings from the command line and the environment."""
        from pylock.net.options import FetchOptions

        args = self.args
        return FetchOptions.from_settings(
            self.settings,
            pairs=getattr(args, "rewrite", None) or (),
            mirror=getattr(args, "mirror", None),
            pypy_mirror=getattr(args, "pypy_mirror", None),
            offline=self.offline,
            jobs=getattr(args, "jobs", None),
            remote=self.remote_cache(),
        )

    def remote_cache(self) -> RemoteCache | None:
        """``--remote-cache``/``--push``/``--no-origin`` (or their variables), for the
        commands that have them; a bad reference is a usage error."""
        if not hasattr(self.args, "remote_cache"):
            return None
        if self._remote is None:
            args, settings = self.args, self.settings
            if not (
                args.remote_cache
                or args.push
                or args.no_origin
                or settings.remote_cache
                or settings.remote_cache_push
                or settings.no_origin
            ):
                # Nothing asks for one: leave the registry client (aiohttp) unimported.
                self._remote = (None,)
                return None
            from pylock.net.registry import RemoteCache

            self._remote = (
                RemoteCache.from_settings(
                    settings, reference=args.remote_cache, push=args.push, no_origin=args.no_origin
                ),
            )
        return self._remote[0]

    def out(self, text: str = "") -> None:
        """Write a result line to stdout, URL credentials redacted.

        A reader that went away (``pylock verify | head -1``) has what it wanted: the rest
        is dropped, and the command ends as it would have, with its own exit status.
        """
        from pylock.urls import redact

        if self._stdout_gone:
            return
        try:
            sys.stdout.write(redact(text) + "\n")
        except BrokenPipeError:
            self._stdout_gone = True
        except OSError as exc:  # `> /dev/full`: not a path to fix, nor a command to rerun
            raise _OutputLost() from exc


def _display(path: Path) -> str:
    """A path as the user would like to read it: relative to cwd when inside it."""
    from pylock.fsutil import display_path

    return display_path(path)


# -- arguments -----------------------------------------------------------------------------


def _flag(parser: Any, *names: str, help: str) -> None:
    """An on/off option: ``False`` unless given."""
    parser.add_argument(*names, action="store_true", help=help)


def _repeatable(
    parser: Any, name: str, metavar: str, *, help: str, type: Callable[[str], str] | None = None
) -> None:
    """An option that may be given several times; its values gather in a list."""
    parser.add_argument(name, metavar=metavar, action="append", default=[], help=help, type=type)


def _names(parser: Any, name: str, *, help: str) -> None:
    """An option of interpreter names, each given after it (``--only app tool``, as the
    design writes it) or it repeated (``--only app --only tool``)."""
    parser.add_argument(
        name, metavar="NAME", action="extend", nargs="+", default=[], help=help, type=_given
    )


class _Once(argparse.Action):
    """A value for one thing (``sync --platform``): given twice, it is an error rather than
    the last one silently winning, as ``fetch`` and ``mirror`` take several platforms."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice: this command takes one")
        setattr(namespace, self.dest, values)


def _given(text: str) -> str:
    """The ``type`` of an option whose empty value can only be a mistake, such as
    ``--into "$DIR"`` with ``DIR`` unset: argparse makes it a usage error. (An empty
    ``--mirror``, ``--pypy-mirror``, ``--remote-cache`` or ``--bin-dir`` is the same as
    leaving it out, so that ``--mirror "$MIRROR"`` works with or without a mirror.)"""
    if not text:
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a value")
    return text


def _project_dir(text: str) -> str:
    """``--project``: a directory. Given ``pythons.toml`` itself, say so (it read as
    ``pythons.toml/pythons.toml: Not a directory``)."""
    if text and os.path.isfile(text):
        parent = os.path.dirname(text) or "."
        raise argparse.ArgumentTypeError(
            f"{text} is a file: --project takes the project's directory (here, {parent})"
        )
    return _given(text)


def _add_noise(parser: Any, dest: str = "verbosity", **default: Any) -> None:
    """``-q`` and ``-v``, which exclude each other."""
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        dest=dest,
        action="store_const",
        const=-1,
        help="print only errors and warnings",
        **default,
    )
    noise.add_argument(
        "-v",
        "--verbose",
        dest=dest,
        action="count",
        help="print more detail (repeatable: -vv)",
        **default,
    )


#: ``--into`` for every command that reads or writes an install directory.
_INTO_HELP = "install directory (default: PYLOCK_INSTALL_DIR, else .pythons/ beside the lock)"


def _merge_noise(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``-q``/``-v`` given before the command and after it count together; given one before
    and the other after, they are the usage error they are side by side."""
    after = vars(args).pop("verbosity_after", None)
    if after is None:
        return
    before = args.verbosity or 0
    if min(before, after) < 0 < max(before, after):
        parser.error("argument -q/--quiet: not allowed with argument -v/--verbose")
    args.verbosity = -1 if after < 0 else before + after


def _add_fetch_flags(parser: argparse.ArgumentParser, *, mirror: bool = True) -> None:
    _flag(parser, "--offline", help="never use the network (also PYLOCK_OFFLINE=1)")
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
    _repeatable(
        parser,
        "--rewrite",
        "FROM=TO",
        help="rewrite URLs starting with FROM to start with TO (repeatable; "
        "also PYLOCK_URL_REWRITES)",
    )


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote-cache",
        metavar="oci://HOST[:PORT]/REPOSITORY",
        help="look archives up in this OCI registry before the origin (oci+http:// for a "
        "plain-http one; also PYLOCK_REMOTE_CACHE)",
    )
    _flag(
        parser,
        "--push",
        help="push archives downloaded from the origin to the remote cache "
        "(also PYLOCK_REMOTE_CACHE_PUSH=1)",
    )
    _flag(
        parser,
        "--no-origin",
        help="never download from the lock's URLs: the remote cache only (also PYLOCK_NO_ORIGIN=1)",
    )


def _add_jobs(parser: argparse.ArgumentParser, work: str = "downloads") -> None:
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help=f"parallel {work} (default 4; also PYLOCK_CONCURRENCY)",
    )


class _OutputLost(Exception):
    """Output that could not be written to stdout (its cause says why)."""

    def report(self) -> int:
        """Say so on stderr; the exit status."""
        cause = self.__cause__
        why = (cause.strerror if isinstance(cause, OSError) else None) or cause
        sys.stderr.write(f"pylock: error: cannot write the output: {why}\n")
        return 1


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors first end a sync's head start (see
    :mod:`pylock.sync.early`): its progress bars, cleared when it stops, would take the
    message printed below them along. Help and version text that cannot be written is
    an error, where argparse ignores it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The commands' parsers, by name (``sync``, ``cache clean``): the top parser's.
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, rest = self.parse_known_args(args, namespace)
        if rest:
            self._unrecognized(parsed, rest)
        return parsed

    def _unrecognized(self, parsed: argparse.Namespace, rest: list[str]) -> NoReturn:
        """Refuse ``rest`` with the usage of the command they were given to (``pylock sync
        --ino x`` is ``sync``'s mistake), and say what was likely meant: an option of the
        top parser goes before the command; a near miss is spelt out."""
        import difflib

        from pylock.urls import redact_given_parts

        name = " ".join(filter(None, (parsed.command, getattr(parsed, "cache_command", None))))
        command = self.commands.get(name, self)
        # Each part between an argument's `=` (`--opt=URL`, a rewrite's `FROM=TO`) as a URL
        # given by hand: redact() alone misses a space in the password or a missing scheme.
        message = f"unrecognized arguments: {' '.join(map(redact_given_parts, rest))}"
        first = next((arg.partition("=")[0] for arg in rest if arg.startswith("--")), None)
        if first is not None and first in self._option_string_actions:
            # Not --version, which there prints pylock's own: `pylock init --version 3.12`
            # means a Python version, and neither that hint nor "--verbose?" helps.
            if self._option_string_actions[first].dest != "version":
                message += f" ({first} goes before the command: pylock {first} ... {name} ...)"
        elif first is not None:
            options = [o for o in command._option_string_actions if o.startswith("--")]
            near = difflib.get_close_matches(first, options, n=1)
            if near:
                message += f" (did you mean {near[0]}?)"
        command.error(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        if "verbosity" in vars(parsed):  # the top parser, once the command's are done
            _merge_noise(self, parsed)
        return parsed, rest

    def error(self, message: str) -> NoReturn:
        # argparse quotes the arguments it rejects (`unrecognized arguments: --mirorr
        # https://u:pass@m/`), and prints its errors itself, not through report_error().
        from pylock.urls import redact

        _end_head_start()
        super().error(redact(message))

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops a failed write: `pylock --help > /dev/full` said nothing and
        # exited 0. A reader that went away (`| head`) is no error, as everywhere.
        stream = file or sys.stderr
        try:
            if message:
                stream.write(message)
        except BrokenPipeError:
            pass
        except OSError as exc:
            if stream is sys.stdout:
                raise _OutputLost() from exc


def _end_head_start() -> None:
    """Stop a sync's head start that the sync did not take over, before an error is
    printed: bars cleared afterwards would erase it."""
    from pylock.sync import early

    early.abandon()


def build_parser() -> argparse.ArgumentParser:
    """The full ``pylock`` argument parser (also used by tests of the examples)."""
    parser = _Parser(
        prog="pylock",
        description="Lock Python interpreters to exact upstream builds, and install them "
        "from a content-addressed cache.",
        epilog="Run `pylock COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pylock {__version__}")
    parser.add_argument(
        "--project",
        metavar="DIR",
        type=_project_dir,
        help="the directory holding pythons.toml and pythons.lock (default: current directory)",
    )
    _add_noise(parser)
    from pylock.progress import COLOR_CHOICES

    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        help="colour output (default auto; NO_COLOR is honoured)",
    )
    parser.set_defaults(verbosity=0)
    # -q and -v also work after the command (`pylock sync -q`); SUPPRESS keeps a global
    # one in force when the command's own is not given.
    after = _Parser(add_help=False)
    _add_noise(after, dest="verbosity_after", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, handler: Callable[[Context], int]) -> Any:
        sub = commands.add_parser(name, help=summary, description=summary, parents=[after])
        sub.set_defaults(handler=handler)
        parser.commands[name] = sub
        return sub

    command(
        "init",
        "write a starter pythons.toml (from .python-version or requires-python if present)",
        _cmd_init,
    )

    lock = command("lock", "resolve pythons.toml to exact builds and write pythons.lock", _cmd_lock)
    upgrade = lock.add_mutually_exclusive_group()
    _flag(upgrade, "--upgrade", "-U", help="re-resolve every interpreter to the newest that fits")
    _names(upgrade, "--upgrade-python", help="re-resolve only these interpreters (repeatable)")
    _flag(
        lock,
        "--check",
        help="exit 1 if pythons.lock is missing, out of date or edited by hand; write nothing",
    )
    _flag(lock, "--dry-run", help="show what would change; write nothing")
    _flag(
        lock,
        "--refresh",
        help="merge live upstream listings into the bundled index before resolving",
    )
    lock.add_argument(
        "--python-downloads-json",
        metavar="PATH_OR_URL",
        type=_given,
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
        type=_given,
        help=_INTO_HELP,
    )
    sync.add_argument(
        "--platform",
        metavar="KEY",
        type=_given,
        action=_Once,
        help="install for this platform instead of the host",
    )
    _names(sync, "--only", help="install only these interpreters (repeatable)")
    _flag(sync, "--reinstall", help="reinstall even if already up to date")
    _flag(
        sync, "--no-prune", help="keep interpreters pylock installed that the lock no longer lists"
    )
    sync.add_argument(
        "--bin-dir",
        metavar="DIR",
        help="also link executables (python3.13, pypy3.11, ...) into DIR (also PYLOCK_BIN_DIR)",
    )
    _flag(
        sync,
        "--no-fixups",
        help="do not rewrite build-machine paths in sysconfig and pkg-config files",
    )
    _add_fetch_flags(sync)
    _add_remote_flags(sync)
    _add_jobs(sync, "downloads and installs")

    fetch = command("fetch", "download locked archives into the cache; install nothing", _cmd_fetch)
    where = fetch.add_mutually_exclusive_group()
    _repeatable(
        where,
        "--platform",
        "KEY",
        help="fetch for this platform (repeatable; default: host)",
        type=_given,
    )
    _flag(where, "--all-platforms", help="fetch every locked platform")
    _add_fetch_flags(fetch)
    _add_remote_flags(fetch)
    _add_jobs(fetch)

    diff = command("diff", "show how interpreters changed between two lock files", _cmd_diff)
    diff.add_argument(
        "old",
        nargs="?",
        metavar="OLD",
        help="old lock file or project directory (default: git HEAD)",
    )
    diff.add_argument(
        "new",
        nargs="?",
        metavar="NEW",
        help="new lock file or project directory (default: the working tree's)",
    )
    diff.add_argument(
        "--base",
        metavar="GITREF",
        help="compare pythons.lock at this git ref with the working tree",
    )
    diff.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="output format (default: text)",
    )

    listing = command("list", "list locked interpreters and their state here", _cmd_list)
    listing.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    listing.add_argument("--into", metavar="DIR", type=_given, help=_INTO_HELP)
    listing.add_argument(
        "--platform",
        metavar="KEY",
        type=_given,
        action=_Once,
        help="judge the installs for this platform, as sync --platform made them (default: host)",
    )

    which = command("which", "print the path of an interpreter's executable", _cmd_which)
    which.add_argument("name", metavar="NAME", help="the interpreter's name in pythons.lock")
    which.add_argument("--into", metavar="DIR", type=_given, help=_INTO_HELP)

    outdated = command(
        "outdated", "show newer versions or builds available upstream", _cmd_outdated
    )
    outdated.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    _add_fetch_flags(outdated)

    verify = command(
        "verify", "re-hash installed interpreters against their install records", _cmd_verify
    )
    verify.add_argument("--into", metavar="DIR", type=_given, help=_INTO_HELP)
    verify.add_argument(
        "names", nargs="*", metavar="NAME", type=_given, help="only these interpreters"
    )

    cache = command("cache", "inspect and clean the archive cache", _cmd_cache)
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = cache_commands.add_parser(
            name, help=summary, description=summary, parents=[after]
        )
        parser.commands[f"cache {name}"] = sub
        return sub

    action("dir", "print the cache directory")
    action("list", "list cached archives")
    action("verify", "re-hash cached archives; evict corrupt ones")
    prune = action(
        "prune",
        "evict archives by total size, age of last use or the locks that name them; "
        "remove what killed runs left",
    )
    prune.add_argument(
        "--max-size",
        metavar="SIZE",
        help="keep at most SIZE (e.g. 500M, 2G), evicting the least recently used first",
    )
    prune.add_argument(
        "--unused-for", metavar="DAYS", type=float, help="evict archives unused for DAYS days"
    )
    _repeatable(
        prune,
        "--keep-lock",
        "LOCK",
        help="evict archives this pythons.lock (or a project directory's) does not name "
        "(repeatable: keep what any of them names)",
        type=_given,
    )
    action(
        "clean",
        "remove every archive, the download metadata and what killed runs left (partial "
        "downloads) from the cache",
    )

    mirror = command(
        "mirror", "write the locked archives as a static mirror tree (upstream layout)", _cmd_mirror
    )
    target = mirror.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "outdir", metavar="OUTDIR", nargs="?", help="the directory to write the mirror into"
    )
    target.add_argument(
        "--to",
        metavar="oci://HOST[:PORT]/REPOSITORY",
        type=_given,
        help="seed this OCI registry (the remote cache) instead of writing OUTDIR",
    )
    scope = mirror.add_mutually_exclusive_group()
    _flag(scope, "--all-platforms", help="mirror every locked platform")
    _repeatable(
        scope,
        "--platform",
        "KEY",
        help="mirror this platform (repeatable; default: host, or all with --to)",
        type=_given,
    )
    _add_fetch_flags(mirror)
    _add_jobs(mirror)

    run = command("run", "run a locked interpreter: pylock run NAME -- ARGS...", _cmd_run)
    run.add_argument("name", metavar="NAME", help="the interpreter's name in pythons.lock")
    rest = run.add_argument(
        "run_args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="arguments for the interpreter (optional; after --, taken as they are)",
    )
    rest.required = False  # argparse makes a REMAINDER positional required
    run.add_argument("--into", metavar="DIR", type=_given, help=_INTO_HELP)

    completion = command(
        "completion",
        "print a shell completion script: pylock completion bash|zsh|fish",
        _cmd_completion,
    )
    completion.add_argument(
        "shell", choices=("bash", "zsh", "fish"), metavar="SHELL", help="bash, zsh or fish"
    )
    return parser


# -- commands --------------------------------------------------------------------------


def _cmd_init(ctx: Context) -> int:
    from pylock.init import write_starter

    path, source = write_starter(ctx.project)
    ctx.reporter.event(f"wrote {_display(path)} ({source})")
    if not ctx.args.project:
        from pylock.lockio import project_above

        above = project_above(ctx.project)
        if above is not None:
            # A monorepo's second project, or `init` in `src/` of the first (the hints of
            # lock and sync there point at it, and once said to run `pylock init`).
            ctx.reporter.warn(
                f"{above} above holds a project too: this one is another; if you meant that "
                f"one, remove {_display(path)} and run pylock in {above}"
            )
    ctx.reporter.event("next: edit it if needed, then run `pylock lock`")
    return 0


def _cmd_lock(ctx: Context) -> int:
    from pylock.project import LockRequest, update_lock

    args = ctx.args
    if args.python_downloads_json == "":
        raise UsageError(
            "--python-downloads-json needs a path or URL",
            hint="e.g. --python-downloads-json ./download-metadata.json",
        )
    # Malformed --rewrite/--mirror flags are usage errors even when nothing is fetched:
    # a `lock --check` in CI must not pass with flags that `sync` then refuses.
    ctx.fetch_options()
    request = LockRequest(
        config_path=ctx.config_path,
        lock_path=ctx.lock_path,
        upgrade=args.upgrade,
        upgrade_names=args.upgrade_python,
        refresh=args.refresh,
        downloads_json=args.python_downloads_json,
        fetch_options=ctx.fetch_options,
        cache=ctx.cache,
        reporter=ctx.reporter,
        settings=ctx.settings,
    )
    update = update_lock(request, check=args.check, dry_run=args.dry_run)
    if args.check:
        ctx.reporter.event(f"{LOCK_FILENAME} is up to date")
        return 0
    for line in update.lines:
        ctx.out(line)
    if not update.changed:
        ctx.reporter.event(f"{LOCK_FILENAME} is up to date; nothing changed")
    elif not update.written:
        # Whether a real run would write, and what kind of change it would be.
        if not ctx.lock_path.exists():
            would = "would be created"
        elif update.lines:
            would = "would change"
        else:
            would = "would be rewritten (no interpreter changed)"
        ctx.reporter.event(f"dry run: {LOCK_FILENAME} {would}; not written")
    else:
        if not update.lines:
            ctx.reporter.event(f"rewrote {LOCK_FILENAME} (no interpreter changed)")
        ctx.reporter.detail(f"wrote {ctx.lock_path}")
    return 0


def _warn_if_config_changed(ctx: Context, lock: LockFile) -> None:
    from pylock.sync.plan import warn_if_config_changed

    warn_if_config_changed(ctx.config_path, ctx.lock_path, lock, ctx.reporter)


def _cmd_sync(ctx: Context) -> int:
    from pylock.fastpath import options_key
    from pylock.lockio import read_lock_and_digest
    from pylock.sync.execute import SyncRequest, run_sync

    args = ctx.args
    bin_dir = args.bin_dir or ctx.settings.bin_dir
    bin_dir_from = "--bin-dir" if args.bin_dir else "PYLOCK_BIN_DIR"
    dest = ctx.install_dir(args.into)
    lock, lock_sha256 = read_lock_and_digest(ctx.lock_path)
    request = SyncRequest(
        lock=lock,
        lock_sha256=lock_sha256,
        lock_path=ctx.lock_path,
        config_path=ctx.config_path,
        dest_root=dest,
        platform=ctx.platform(args.platform),
        only=tuple(args.only or ()),
        reinstall=args.reinstall,
        prune=not args.no_prune,
        fixups=not args.no_fixups,
        bin_dir=Path(ctx.settings.expand_home(bin_dir, bin_dir_from)) if bin_dir else None,
        remember=not args.only and not args.platform,
        options_key=options_key(ctx.argv, ctx.settings),
    )
    # Bad download settings are usage errors even when nothing is to do: the fast path
    # trusts only options this check has passed (see pylock.fastpath.options_key).
    options = ctx.fetch_options()
    outcome = run_sync(request, cache=ctx.cache, options=lambda: options, reporter=ctx.reporter)
    result = outcome.result
    if outcome.noop or result.changed_nothing:
        count = len(outcome.current)
        ctx.reporter.event(
            f"{count} interpreter{'s' if count != 1 else ''} up to date in {_display(dest)}"
        )
        return 0
    if result.unpruned is not None and not result.failed:
        raise result.unpruned  # what else the sync did is done, and was said
    if result.failed:
        # Every failure is reported, each under its interpreter's name; what could be
        # installed was installed.
        shared = shared_hints(result.failed)
        _report_each(result.failed, shared, color=ctx.color)
        if result.unpruned is not None:
            report_error(result.unpruned, color=ctx.color)
        total = len(result.failed) + len(outcome.current)
        # Each is named above: the first few are enough here.
        raise PylockError(
            f"{len(result.failed)} of {total} interpreter(s) could not be installed: "
            + some_names([name for name, _ in result.failed])
            + f" ({len(outcome.current)} installed or up to date)",
            hint=said_once(shared),
        )
    remote, pushed = _registry_words(ctx, result.from_registry, result.pushed)
    ctx.reporter.event(
        f"synced {len(outcome.current)} interpreter(s) into {_display(dest)} "
        f"({len(result.installed)} installed, {remote}{result.downloaded} downloaded{pushed})"
    )
    return 0


def _registry_words(ctx: Context, pulled: int, pushed: int) -> tuple[str, str]:
    """The remote cache's part of a sync or fetch summary: what came from it (when one is
    in use) and what was pushed to it (when anything was)."""
    remote = f"{pulled} from the remote cache, " if ctx.remote_cache() is not None else ""
    return remote, f", {pushed} pushed" if pushed else ""


def _cmd_fetch(ctx: Context) -> int:
    from pylock.progress import human_size
    from pylock.sync.execute import fill_cache

    args = ctx.args
    lock = ctx.read_lock()
    _warn_if_config_changed(ctx, lock)
    keys = None if args.all_platforms else ctx.platform_keys(args.platform)
    cache = ctx.cache()
    outcome = fill_cache(
        lock,
        platform_keys=keys,
        cache=cache,
        options=ctx.fetch_options(),
        reporter=ctx.reporter,
    )
    total, downloaded = len(outcome.paths), len(outcome.downloaded)
    pulled = len(outcome.from_registry)
    remote, pushed = _registry_words(ctx, pulled, len(outcome.pushed))
    ctx.reporter.event(
        f"{total} archive(s) in {_display(cache.root)}: {remote}{downloaded} downloaded"
        f" ({human_size(outcome.downloaded_bytes)} fetched in all),"
        f" {total - downloaded - pulled} already cached{pushed}"
    )
    return 0


def _cmd_diff(ctx: Context) -> int:
    # A reviewer's tool, not a check: it exits 0 whether or not anything changed.
    from pylock.diff import diff_locks, render
    from pylock.review import locks_to_compare

    args = ctx.args
    old, new = locks_to_compare(
        ctx.project,
        ctx.lock_path,
        old=args.old,
        new=args.new,
        base=args.base,
        settings=ctx.settings,
    )
    text = render(
        diff_locks(old.lock, new.lock),
        args.format,
        old_label=old.label,
        new_label=new.label,
        verbose=args.verbosity > 0,
    )
    ctx.out(text.rstrip("\n"))
    return 0


def _cmd_list(ctx: Context) -> int:
    import json

    from pylock.sync.plan import install_status

    lock = ctx.read_lock()
    platform = ctx.platform(ctx.args.platform)
    dest = ctx.install_dir(ctx.args.into)
    if os.path.lexists(dest) and not dest.is_dir():
        # As `sync` says of it: "not installed" there would send the user to a sync that fails.
        raise PylockError(
            f"the install directory {dest} is not a directory",
            hint="pass the directory `pylock sync --into` installed into",
        )
    cache = ctx.cache()
    statuses = install_status(
        lock,
        dest,
        platform,
        lambda a: cache.lookup(a.sha256, a.filename, use=False) is not None,
        named=ctx.args.platform is not None,
    )
    rows: list[dict[str, Any]] = [
        {
            **s.python.summary(),
            "platforms": list(s.python.platforms),
            "state": str(s.state),
            "status": s.text,
            "cached": s.cached,
            "path": str(s.path) if s.path is not None else None,
            "installed-for": s.installed_for,
        }
        for s in statuses
    ]
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
        # This platform's archive: said where a sync would use it.
        wanted = row["state"] in ("not-installed", "out-of-date")
        note = ", cached" if row["cached"] and wanted else ""
        ctx.out(f"{row['name']:<{width}}  {python.label}{extra}  [{row['status']}{note}]")
    return 0


def _lock_if_any(ctx: Context) -> LockFile | None:
    """The project's lock for ``which`` and ``run``, or ``None`` without one (a slim image
    holding only the install directory): the install records know enough. A lock that
    is there but cannot be read is an error; a link to a lock that is gone, a warning."""
    try:
        os.stat(ctx.lock_path)
    except FileNotFoundError:
        if os.path.islink(ctx.lock_path):
            from pylock.fsutil import missing

            ctx.reporter.warn(f"{missing(ctx.lock_path)}; going by the install records")
        return None
    except OSError:
        pass  # a link loop, a permission: reading it says what is wrong
    return ctx.read_lock()


def _cmd_which(ctx: Context) -> int:
    # No lock here (e.g. a slim image holding only the install dir): the record knows.
    found = _locate(ctx, _lock_if_any(ctx))
    _warn_if_out_of_date(ctx, found)
    if found.foreign is not None:
        ctx.reporter.warn(_foreign(found))
    ctx.out(str(found.executable))
    return 0


def _warn_if_out_of_date(ctx: Context, found: Located) -> None:
    """Say so when the tree ``which`` names or ``run`` starts is not the one locked now, or
    not locked at all.

    Said if it can be: a stderr that cannot be written (``2>/dev/full``) must not keep the
    interpreter from running, nor ``which`` from printing its path.
    """
    from pylock.sync.plan import into_option

    dest = ctx.install_dir(ctx.args.into)
    if found.unlocked:
        with contextlib.suppress(OSError, ValueError):
            ctx.reporter.warn(
                f"{found.python.name} in {_display(dest)} is not in {LOCK_FILENAME}: pylock "
                "installed it from an earlier lock (kept by `sync --no-prune`) or another one"
            )
    elif found.out_of_date:
        with contextlib.suppress(OSError, ValueError):
            ctx.reporter.warn(
                f"{found.python.name} in {_display(dest)} is out of date; "
                f"run `pylock sync{into_option(ctx.args.into)}`"
            )


def _foreign(found: Located) -> str:
    assert found.foreign is not None
    return (
        f"{found.python.name} was installed for {found.foreign.key} "
        "(`pylock sync --platform`), not for this machine"
    )


def _run_here_hint(found: Located, lock: LockFile | None) -> str:
    """What to do about a tree synced for another platform that ``run`` cannot start: a
    sync for this machine, if the lock has a build for it; else locking one."""
    from pylock.platforms import host

    here = host().key
    locked = lock.get(found.python.name) if lock is not None else None
    if locked is not None and locked.artifact_for(here) is None:
        return (
            f"{_foreign(found)}, and {LOCK_FILENAME} has no build of it for this machine: add "
            f"{here!r} to its platforms in pythons.toml and run `pylock lock`"
        )
    return f"{_foreign(found)}; sync it without --platform to run it here"


def _locate(ctx: Context, lock: LockFile | None, *, check_executable: bool = True) -> Located:
    """``NAME`` in ``--into`` (or the default install directory), for ``which`` and ``run``."""
    from pylock.sync.plan import locate

    return locate(
        ctx.args.name,
        lock=lock,
        lock_path=ctx.lock_path,
        dest_root=ctx.install_dir(ctx.args.into),
        platform=ctx.platform(),
        check_executable=check_executable,
        into=ctx.args.into,
    )


def _cmd_outdated(ctx: Context) -> int:
    import json

    from pylock.outdated import format_text, to_json
    from pylock.review import find_outdated_now

    report = find_outdated_now(
        ctx.read_lock(),
        fetch_options=ctx.fetch_options(),
        metadata_dir=ctx.cache().metadata_dir,
        reporter=ctx.reporter,
        settings=ctx.settings,
        config_path=ctx.config_path,
    )
    if ctx.args.format == "json":
        ctx.out(json.dumps(to_json(report.entries, index=report.index), indent=2))
    else:
        for line in format_text(report.entries) or [f"{LOCK_FILENAME} locks no interpreters"]:
            ctx.out(line)
    return 0


def _cmd_verify(ctx: Context) -> int:
    from collections import Counter

    from pylock.errors import MOST_PROBLEMS_SHOWN
    from pylock.sync.plan import into_option

    failed: list[str] = []
    newer: list[str] = []
    names = list(dict.fromkeys(ctx.args.names))  # `verify app app` checks it once
    for report in _verify_reports(ctx, names):
        if report.ok:
            ctx.out(f"{report.name}: ok ({report.checked} files)")
            continue
        (newer if report.newer_record else failed).append(report.name)
        problems = report.problems
        noun = "difference" if len(problems) == 1 else "differences"
        ctx.out(f"{report.name}: {len(problems)} {noun} from its {report.checked} recorded files")
        # Packages pip-installed into the interpreter show up as extra files too: a tree
        # with thousands is not thousands of lines, unless -v asks for them.
        shown = problems if ctx.args.verbosity > 0 else problems[:MOST_PROBLEMS_SHOWN]
        for kind, path in shown:
            ctx.out(f"  {kind}: {printable(path)}")
        if len(shown) < len(problems):
            kinds = Counter(kind for kind, _ in problems[len(shown) :])
            ctx.out(
                f"  and {len(problems) - len(shown)} more: "
                + ", ".join(f"{count} {kind}" for kind, count in kinds.items())
                + " (-v lists them all)"
            )
        if report.unchecked_bytecode:
            ctx.out(
                f"  ({report.unchecked_bytecode} bytecode caches not checked: "
                "the tree differs from its record)"
            )
    if failed:
        raise PylockError(
            f"{some_names(failed)} differ{'s' if len(failed) == 1 else ''} from the install record",
            hint=f"run `pylock sync --reinstall{into_option(ctx.args.into)}` to restore "
            + ("it" if len(failed) == 1 else "them")
            + (f"; upgrade pylock to verify {some_names(newer)}" if newer else ""),
        )
    if newer:
        # Not damage: a reinstall would only replace a newer pylock's tree with this one's.
        raise PylockError(
            f"{some_names(newer)} {'was' if len(newer) == 1 else 'were'} installed by a newer "
            "pylock, which this one cannot verify",
            hint="upgrade pylock to verify " + ("it" if len(newer) == 1 else "them"),
        )
    return 0


def _verify_reports(ctx: Context, names: list[str]) -> Iterator[VerifyReport]:
    """``verify_installed``'s reports; where nothing is installed because the default
    install directory is missing, the error says so as a missing project file would (run
    in a subdirectory of the project, it points at the project)."""
    from pylock.errors import missing_project_file
    from pylock.sync.install import verify_installed

    dest = ctx.install_dir(ctx.args.into)
    try:
        yield from verify_installed(dest, names, ctx.reporter)
    except PylockError as error:
        if not (ctx.args.into or ctx.settings.install_dir) and not os.path.lexists(dest):
            missing_project_file(error, dest)
        raise


def _cmd_cache(ctx: Context) -> int:
    import time

    from pylock.errors import printable
    from pylock.progress import human_size
    from pylock.project import prune_cache
    from pylock.sync.cache import PruneReport

    args = ctx.args
    cache = ctx.cache()
    action = args.cache_command
    if action == "dir":
        ctx.out(str(cache.root))
        return 0
    if action == "list":
        cache.require_readable("list")
        entries = cache.list()
        for entry in entries:
            try:
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            except (OverflowError, OSError, ValueError):
                # A stamp no calendar here holds (a file system lets anyone set one).
                used = f"{'?':<16}"
            name = printable(entry.filename)  # a shared or planted cache may name anything
            ctx.out(f"{entry.sha256[:16]}  {human_size(entry.size):>10}  {used}  {name}")
        total = human_size(sum(e.size for e in entries))
        ctx.reporter.event(f"{len(entries)} archive(s), {total}, in {cache.root}")
        return 0
    if action == "verify":
        cache.require_readable("verify")
        verified = cache.verify()
        writable = cache.writable()
        for bad in verified.corrupt:
            refusal = bad.refusal
            fate = (
                "evicted"
                if bad.evicted
                else "kept: the cache is read-only"
                if not writable
                else f"kept: cannot remove {printable(refusal.path)}: {refusal.reason}"
                if refusal is not None
                else "kept: another process is using it"
            )
            ctx.out(
                f"corrupt: {printable(bad.entry.filename)} (expected sha256 {bad.entry.sha256}, "
                f"got {bad.actual}); {fate}"
            )
        ctx.reporter.event(
            f"{len(verified.ok)} archive(s) OK, {len(verified.corrupt)} corrupt in {cache.root}"
        )
        if verified.corrupt:
            kept = [bad for bad in verified.corrupt if not bad.evicted]
            refused = [bad for bad in kept if bad.refusal is not None]
            raise PylockError(
                f"{len(verified.corrupt)} cached archive(s) were corrupt",
                hint="evicted archives are downloaded again by the next `pylock sync` or `fetch`"
                if not kept
                else _REFUSED_HINT
                if refused and writable
                else "archives kept (in use, or a read-only cache) are evicted by the next "
                "`pylock cache verify` where the cache is writable and unused",
            )
        return 0
    report: PruneReport
    if action == "prune":
        report = prune_cache(
            cache,
            max_size=args.max_size,
            unused_for_days=args.unused_for,
            keep_locks=[
                Path(ctx.settings.expand_home(path, "--keep-lock")) for path in args.keep_lock
            ],
        )
    else:
        report = cache.clean()
    for entry in report.removed:
        ctx.reporter.detail(f"removed {printable(entry.filename)} ({human_size(entry.size)})")
    for entry in report.held:
        ctx.reporter.detail(f"kept {printable(entry.filename)}: another process is using it")
    held = f"; {len(report.held)} kept because in use" if report.held else ""
    if report.refused:
        held += f"; {len(report.refused)} could not be removed"
    left = f" and {human_size(report.leftovers)} killed runs left" if report.leftovers else ""
    ctx.reporter.event(
        f"removed {len(report.removed)} archive(s){left}, freed {human_size(report.freed)}"
        f"{held}; "
        f"{human_size(cache.size())} left in {cache.root}"
    )
    if report.refused:
        raise PylockError(
            "\n".join(
                [
                    f"cannot remove {len(report.refused)} archive(s) from the cache at "
                    f"{cache.root}:",
                    *(f"  {printable(r.path)}: {r.reason}" for r in report.refused),
                ]
            ),
            hint=_REFUSED_HINT,
        )
    return 0


#: What to do about archives the file system would not let this user remove.
_REFUSED_HINT = (
    "they are another user's, or in directories this user may not change: remove them as "
    "their owner (or make the cache writable to every user who shares it), or point "
    "PYLOCK_CACHE_DIR at a cache of your own"
)


def _cmd_mirror(ctx: Context) -> int:
    from pylock.mirror import build_mirror, usage_lines

    args = ctx.args
    if args.to is not None:
        return _seed_registry(ctx)
    lock = ctx.read_lock()
    # Default: the host only; `--platform host` is accepted too.
    platforms = None if args.all_platforms else ctx.platform_keys(args.platform)
    if not args.outdir.strip():
        raise UsageError("mirror: OUTDIR is empty", hint="e.g. `pylock mirror ./mirror`")
    # Normalised: the commands printed below are copied to other machines.
    outdir = Path(os.path.abspath(ctx.settings.expand_home(args.outdir, "OUTDIR")))
    report = build_mirror(
        lock,
        outdir,
        platforms=platforms,
        cache=ctx.cache(),
        options=ctx.fetch_options(),
        reporter=ctx.reporter,
    )
    parts = [f"{len(report.added)} added", f"{len(report.unchanged)} already present"]
    if report.repaired:
        parts.append(f"{len(report.repaired)} repaired")
    ctx.reporter.event(f"Mirrored {report.archives} archive(s) into {outdir} ({', '.join(parts)})")
    if report.not_in_uv_json:
        # Said once, whatever the verbosity: a user of uv may count on every archive.
        ctx.reporter.event(
            f"{len(report.not_in_uv_json)} of them are not in download-metadata.json: uv "
            "cannot name or use them (-v says why, for each)"
        )
    ctx.out(f"Serve {outdir} over HTTP(S), or use it as {outdir.as_uri()}, then:")
    for line in usage_lines(outdir.as_uri(), report):
        ctx.out(line)
    return 0


def _seed_registry(ctx: Context) -> int:
    from pylock.mirror import seed_registry
    from pylock.net.registry import RemoteCache
    from pylock.urls import redact_given

    args = ctx.args
    if ctx.offline:
        # Pushing is the network; a sync's --offline passes a remote cache by, this cannot.
        raise PylockError(
            f"mirror --to {redact_given(args.to)} pushes to a registry, which offline "
            "(--offline or PYLOCK_OFFLINE) forbids",
            hint="run it without --offline (and with PYLOCK_OFFLINE unset)",
        )
    remote = RemoteCache.from_settings(ctx.settings, reference=args.to, origin="mirror --to")
    assert remote is not None
    lock = ctx.read_lock()
    platforms = [ctx.platform(key).key for key in args.platform] if args.platform else None
    report = seed_registry(
        lock,
        remote,
        platforms=platforms,
        cache=ctx.cache(),
        options=ctx.fetch_options(),
        reporter=ctx.reporter,
    )
    total = len(report.pushed) + len(report.present)
    ctx.reporter.event(
        f"{total} archive(s) in {remote.ref} ({len(report.pushed)} pushed, "
        f"{len(report.present)} already there)"
    )
    return 0


#: The error for a command run in a directory that was removed meanwhile.
_NO_CWD = PylockError(
    "the current directory no longer exists",
    hint="cd to an existing directory, or give absolute paths (--project DIR, "
    "PYLOCK_CACHE_DIR, --into DIR)",
)


def _cwd_is_gone() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def _cmd_run(ctx: Context) -> int:
    import subprocess

    from pylock.fsutil import mounted_noexec
    from pylock.sync.plan import repair_hint

    # No lock needed, as for `which`: the install record knows.
    lock = _lock_if_any(ctx)
    found = _locate(ctx, lock, check_executable=False)
    _warn_if_out_of_date(ctx, found)  # on stderr, before the child writes anything
    exe = found.executable
    run_args = _child_args(ctx.argv, ctx.args.name, ctx.args.run_args)
    if sys.stdout is not None:
        sys.stdout.flush()
    with _signals_for_the_child() as started:
        try:
            process = subprocess.Popen([str(exe), *run_args])
        except OSError as exc:
            if found.foreign is not None:
                hint = _run_here_hint(found, lock)
            elif isinstance(exc, PermissionError) and mounted_noexec(exe):
                hint = (
                    "the install directory is on a file system mounted noexec: sync to a "
                    "directory on another one (--into DIR)"
                )
            else:
                hint = repair_hint(found.python.name, ctx.args.into)
            raise PylockError(f"cannot run {exe}: {exc.strerror or exc}", hint=hint) from None
        started(process)
        return child_exit_status(process.wait())


def child_exit_status(code: int) -> int:
    """The exit status pylock passes on for a child's ``Popen.wait()`` result.

    Killed by a signal (POSIX), it is reported as a shell would: 128 + the signal's
    number. On Windows the code is unsigned 32-bit (0xC000013A after Ctrl-C); it is
    passed on as the signed int ``os._exit`` takes, which Windows reports the same.

    >>> child_exit_status(7), child_exit_status(-9), child_exit_status(0xC000013A)
    (7, 137, -1073741510)
    """
    if code < 0:
        return 128 - code
    return code - (1 << 32) if code >= 1 << 31 else code


def _child_args(argv: Sequence[str], name: str, rest: Sequence[str]) -> list[str]:
    """What ``pylock run NAME [--] ARGS...`` passes on: ``rest`` (argparse's remainder) as
    given, but for the one ``--`` right after NAME that separates pylock's arguments from
    the child's. A ``--`` further on belongs to the child (``run app script.py -- x``).

    argparse drops that separator itself in the versions tested; one that kept it would
    leave it first in ``rest``, right after NAME in ``argv``.
    """
    args = list(rest)
    if args and args[0] == "--" and len(argv) > len(args) and argv[-len(args) - 1] == name:
        del args[0]
    return args


#: What ``pylock run`` passes on to its child (see :func:`_signals_for_the_child`).
_FORWARDED_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextlib.contextmanager
def _signals_for_the_child() -> Iterator[Callable[[subprocess.Popen[bytes]], None]]:
    """While ``pylock run``'s child lives, signals are the child's to handle.

    Ctrl-C reaches the child too (the terminal sends it to the whole job), and the child
    decides whether to end: a REPL does not. So this process lets it pass, from before the
    child starts until it has ended (subprocess.call would kill the child): with a handler
    that does nothing, not SIG_IGN, which the child would inherit. A Ctrl-C this process was
    started to ignore (a background job) stays ignored, for the child too. SIGTERM
    (``docker stop``), SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, which a supervisor may send to
    this process alone, are passed on to the child, so that it reacts as it would if run
    directly (rather than be left without its parent); this process waits for it. A SIGINT
    sent to this process alone is not: nothing tells it from the terminal's. Windows'
    SIGBREAK (Ctrl-Break, a console closed) reaches the whole console, as Ctrl-C does.
    """
    import signal

    child: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(number: int, frame: object) -> None:
        if child:
            child[0].send_signal(number)
        else:
            pending.append(number)  # before Popen returned: sent once it has

    def started(process: subprocess.Popen[bytes]) -> None:
        child.append(process)
        for number in pending:
            process.send_signal(number)

    saved: dict[int, Any] = {}
    # Ctrl-Break and a console window's closing (SIGBREAK, Windows) reach the child too, as
    # Ctrl-C does: not taken as SIGTERM here, which would end this process first.
    reaching_the_child: list[int] = [signal.SIGINT]
    if hasattr(signal, "SIGBREAK"):
        reaching_the_child.append(getattr(signal, "SIGBREAK"))  # noqa: B009 (Windows only)
    try:
        for caught in reaching_the_child:
            if signal.getsignal(caught) is not signal.SIG_IGN:
                saved[caught] = signal.signal(caught, lambda number, frame: None)
        for name in _FORWARDED_SIGNALS:
            number = getattr(signal, name, None)  # Windows has SIGTERM alone of these
            if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
                saved[number] = signal.signal(number, forward)
    except ValueError:  # not the main thread (pylock used as a library): nothing to do
        pass
    try:
        yield started
    finally:
        for number, previous in saved.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)


def _report_each(
    failed: Sequence[tuple[str, PylockError]], shared: Mapping[str, object], *, color: bool
) -> None:
    """Report each of the ``failed`` under its name; a hint in ``shared`` is left out, to
    be said once after them all."""
    for name, error in failed:
        report_error(_prefixed(name, error, hint=error.hint not in shared), color=color)


def _prefixed(name: str, error: PylockError, *, hint: bool = True) -> PylockError:
    """The error with its first line naming the interpreter (or archive) it is about (and
    its hint, unless ``hint`` is false)."""
    lines = _error_lines(error)
    return PylockError(
        "\n".join([f"{name}: {lines[0]}", *lines[1:]]), hint=error.hint if hint else None
    )


def _cmd_completion(ctx: Context) -> int:
    # Only here, never at start-up: a run that is not completing pays nothing for this.
    from pylock.completion import script

    ctx.out(script(ctx.args.shell, build_parser()).rstrip("\n"))
    return 0


# -- entry point -----------------------------------------------------------------------


def report_error(error: PylockError, *, color: bool = False) -> None:
    """Print an error the way pylock always does: one line per problem, then a hint.

    URL credentials are redacted here, the one place every error passes through.
    """
    from pylock.urls import redact

    if isinstance(error, ArchivesNotFetchedError):
        # Each failure first, under its name; this error is their closing line.
        _report_each(error.failed, shared_hints(error.failed), color=color)
    label = "\033[31merror\033[0m" if color else "error"
    lines = [f"pylock: {label}: {printable(redact(line))}\n" for line in _error_lines(error)]
    if error.hint:
        lines.append(f"pylock: hint: {printable(redact(error.hint))}\n")
    _say("".join(lines))


def _say(text: str) -> None:
    """Write ``text`` to stderr if it can be written: a closed pipe or a full disk there
    must not turn the exit status of what failed into that of the failed write."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text)
        sys.stderr.flush()


def _error_lines(error: PylockError) -> list[str]:
    """What an error says, a line per problem (a file's problems each name the file)."""
    from pylock.urls import redact

    if isinstance(error, FileProblemsError):
        return error.lines()
    # Redacted before it is split: a URL with a line break in its password must not leave
    # half of the password on each line.
    return redact(str(error)).splitlines() or [type(error).__name__]


def _utf8_when_redirected(stream: Any, *, windows: bool = os.name == "nt") -> None:
    """Results redirected to a file (``pylock diff --format markdown > comment.md``) are
    UTF-8 on Windows: it would use its ANSI code page, which has no ``→`` or ``⚠``, and
    fail. Elsewhere the locale's encoding is the file system's, which paths must be
    written in: under a Latin-1 locale, UTF-8 made ``$(pylock which app)`` name a file
    that does not exist. Whatever the encoding, what it cannot write is written as
    :func:`_output_errors` says."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    with contextlib.suppress(AttributeError, OSError, ValueError):
        if windows and encoding not in ("utf8", "") and not stream.isatty():
            stream.reconfigure(encoding="utf-8", errors=_OUTPUT_ERRORS)
        else:
            stream.reconfigure(errors=_OUTPUT_ERRORS)


#: The codec error handler of pylock's stdout and stderr (see :func:`_output_errors`).
_OUTPUT_ERRORS = "pylock-output"


def _output_errors(error: UnicodeError) -> tuple[str | bytes, int]:
    """Write what the output's encoding cannot: bytes of a path that are no UTF-8 (read as
    lone surrogates, ``surrogateescape``) as those very bytes, so that ``$(pylock which
    app)`` names the file; a character the terminal lacks (``→`` in Latin-1) escaped. A
    result is never lost to a ``UnicodeEncodeError`` traceback."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    lone = all("\udc80" <= char <= "\udcff" for char in text)
    return codecs.lookup_error("surrogateescape" if lone else "backslashreplace")(error)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    settings: Settings | None = None,
) -> int:
    """Run pylock with ``argv``; return the exit status. ``settings`` are those the console
    script read already from ``environ`` (by default ``os.environ``)."""
    codecs.register_error(_OUTPUT_ERRORS, _output_errors)
    _utf8_when_redirected(sys.stdout)
    _utf8_when_redirected(sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    except _OutputLost as lost:
        return lost.report()
    from pylock.settings import Settings

    if settings is None:
        settings = Settings.from_environ(os.environ if environ is None else environ)
    try:
        ctx = Context(args, settings, sys.argv[1:] if argv is None else argv)
    except FileNotFoundError:  # Path.cwd(): the directory the shell is in was removed
        report_error(_NO_CWD, color=False)
        return 1
    from pylock.interrupts import sigterm_as_interrupt

    with sigterm_as_interrupt():
        return _run(args, ctx)


def _pointed_at_the_project(error: PylockError, ctx: Context) -> PylockError:
    """``error``, which may say a project file is missing, with a hint at the project the
    user meant: a ``--project`` directory that does not exist, or (none given) the project
    in a directory above this one."""
    if error.missing_project_file is None:
        return error
    if ctx.args.project:
        if not ctx.project.is_dir():
            error.hint = f"--project {ctx.args.project}: no such directory"
        return error
    from pylock.lockio import holds_project, project_above

    if holds_project(ctx.project):
        return error  # a project of its own (a monorepo's), not locked yet: the hint stands
    above = project_above(ctx.project)
    if above is not None:
        error.hint = (
            f"pylock looks in the current directory only, and the project is in {above}: "
            f"run pylock there, or pass `--project {os.path.relpath(above, ctx.project)}`"
        )
    return error


def _run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        try:
            status = int(args.handler(ctx))
            # One Python swallowed during the command (see pylock.interrupts), said here as
            # any other: not raised again past this handler, as a traceback (attack).
            raise_lost()
            return status
        except BaseException as exc:
            _end_head_start()  # before anything is said below its progress bars
            interrupt = unmasked(exc)
            if interrupt is not exc:
                raise interrupt from None  # a wait cut short: Ctrl-C, not a lock's error
            raise
    except UsageError as exc:
        report_error(exc, color=ctx.color)
        return 2
    except PylockError as exc:
        report_error(_pointed_at_the_project(exc, ctx), color=ctx.color)
        return 1
    except _OutputLost as lost:
        return lost.report()
    except OSError as exc:
        # The file system refused something no command expected to fail (a directory
        # turned read-only, a disk that filled up): say what, without a traceback.
        if isinstance(exc, BrokenPipeError):
            return 0  # `pylock list | head`: the reader went away; that is not an error.
        if isinstance(exc, FileNotFoundError) and not exc.filename and _cwd_is_gone():
            # A relative path (PYLOCK_CACHE_DIR=cache, --into py) made absolute too late.
            report_error(_NO_CWD, color=ctx.color)
            return 1
        where = f": {exc.filename}" if exc.filename else ""
        if getattr(args, "verbosity", 0) > 0:
            import traceback

            traceback.print_exc()  # -v: the details, for a bug report
        report_error(
            PylockError(
                f"{exc.strerror or exc}{where}",
                hint="check the path's permissions and free space, then run the command again",
            ),
            color=ctx.color,
        )
        return 1
    except Terminated:
        discard_lost()  # said once: one kept besides is not said again (attack)
        _say("pylock: terminated\n")
        return 143
    except KeyboardInterrupt:
        discard_lost()
        _say("pylock: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
