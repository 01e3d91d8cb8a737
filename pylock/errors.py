"""The exceptions pylock raises for conditions a user can act on.

Every error a person should read derives from :class:`PylockError`. The CLI turns
those into one ``pylock: error: ...`` line (plus an optional hint); anything else
is a bug and keeps its traceback. Details travel as attributes, never parsed back
out of the message text.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

import attrs


class PylockError(Exception):
    """Base class for errors reported to the user without a traceback."""

    #: A second line telling the user what to do about it, if there is one.
    hint: str | None = None
    #: The project file (``pythons.toml``, ``pythons.lock``) whose absence this reports,
    #: so that the CLI can point at a project in a directory above (see
    #: :func:`missing_project_file`).
    missing_project_file: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


_Error = TypeVar("_Error", bound=PylockError)


def missing_project_file(error: _Error, path: os.PathLike[str] | str) -> _Error:
    """``error``, which says that the project file ``path`` does not exist, marked so."""
    error.missing_project_file = os.fspath(path)
    return error


def shorten(text: str, most: int = 60) -> str:
    """``text`` cut to ``most`` characters, ``...`` marking the cut: a 600 KB value from a
    file or a server is not echoed whole.

    >>> shorten("3.13"), shorten("9" * 100, 8)
    ('3.13', '99999...')
    >>> shorten("https://me:" + "s3cr3t" * 20 + "@h.example/x")
    'https://***...'
    """
    if len(text) <= most:
        return text
    return _hide_cut_userinfo(text[: most - 3], text[most - 3 :]) + "..."


def _hide_cut_userinfo(kept: str, cut: str) -> str:
    """``kept``, the start of a text whose rest (``cut``) is not shown, with everything
    after its last ``scheme://`` hidden if the ``@`` that ends a URL's user and password
    is in ``cut``: the redaction a message gets later (:func:`pylock.urls.redact`) finds
    userinfo by that ``@``, and would leave the start of a long password showing.
    """
    scheme = kept.rfind("://")
    if scheme == -1 or "@" in kept[scheme:] or "@" not in cut:
        return kept
    return kept[: scheme + 3] + "***"


def shorten_middle(text: str, most: int = 200) -> str:
    """``text`` cut to ``most`` characters in its middle, ``...`` marking the cut: a path's
    start and end say what it is (``python/lib/.../../x``), and a hostile archive's 1 MB
    member name is not one line of a CI log.

    >>> shorten_middle("python/lib/" + "a" * 50 + "/../x", 30)
    'python/lib/aaaaaaa...aaaa/../x'
    >>> shorten_middle("see https://me:" + "s3cr3t" * 99 + "@h.example/x.tar.gz", 40)
    'see https://***...ple/x.tar.gz'
    """
    if len(text) <= most:
        return text
    tail = (most - 3) // 3
    head, middle = text[: most - 3 - tail], text[most - 3 - tail : len(text) - tail]
    return _hide_cut_userinfo(head, middle) + "..." + text[len(text) - tail :]


#: The most names a message lists: a lock of 150 interpreters made a 1,300-character line.
NAMES_SHOWN = 10


def some_names(names: Sequence[str], asked: Sequence[str] = ()) -> str:
    """``names`` joined for a message about names not among them (``asked``); past
    :data:`NAMES_SHOWN`, those most like the names asked for (else the first), and how
    many more there are.

    >>> some_names(["app", "tool"], ["ap"])
    'app, tool'
    >>> some_names([f"py-{n:03d}" for n in range(150)], ["py-99"])
    'py-099, py-149, py-139 and 147 more'
    >>> some_names([f"py-{n:03d}" for n in range(150)], ["nope"])
    'py-000, py-001, py-002, py-003, py-004, py-005, py-006, py-007, py-008, py-009 and 140 more'
    """
    if len(names) <= NAMES_SHOWN:
        return ", ".join(names)
    import difflib

    near: list[str] = []
    for name in asked:
        near += difflib.get_close_matches(name, names, n=3)
    chosen = list(dict.fromkeys(near))[:NAMES_SHOWN] or list(names[:NAMES_SHOWN])
    return f"{', '.join(chosen)} and {len(names) - len(chosen)} more"


def shared_hints(failed: Sequence[tuple[str, PylockError]]) -> dict[str, list[str]]:
    """The hints that more than one of the ``failed`` share, each with their names: said
    once, not under each error (a mirror that was down gave a sync of 150 interpreters the
    same hint line 150 times).

    >>> down = PylockError("refused", hint="is the mirror up?")
    >>> shared_hints([("a", down), ("b", down), ("c", PylockError("x", hint="other"))])
    {'is the mirror up?': ['a', 'b']}
    """
    names: dict[str, list[str]] = {}
    for name, error in failed:
        if error.hint:
            names.setdefault(error.hint, []).append(name)
    return {hint: named for hint, named in names.items() if len(named) > 1}


def said_once(shared: Mapping[str, Sequence[str]]) -> str | None:
    """The shared hints as one, each naming those it is about when they differ (as
    :func:`pylock.resolve` says those of entries that cannot be locked).

    >>> said_once({"is the mirror up?": ["a", "b"]})
    'is the mirror up?'
    >>> said_once({"is the mirror up?": ["a", "b"], "fix the lock": ["c", "d"]})
    'a, b: is the mirror up?; c, d: fix the lock'
    """
    said = [
        f"{some_names(names)}: {hint}" if len(shared) > 1 else hint
        for hint, names in shared.items()
    ]
    return "; ".join(said) or None


def shown(value: object, most: int = 60) -> str:
    """``value`` as a message quotes it (its ``repr``), cut to ``most`` characters.

    >>> shown("3.13,x"), shown("9" * 100)[-6:], shown([1] * 100)[-6:]
    ("'3.13,x'", "99...'", ' 1,...')
    """
    if isinstance(value, str):
        return repr(shorten(value, most))
    return shorten(repr(value), most)


def describe_toml_value(value: object) -> str:
    """Name a TOML value's type, with the value itself when it is short.

    The one wording of "expected ..., got ..." problems, in pythons.toml and pythons.lock.

    >>> [describe_toml_value(v) for v in (True, 5, 3.1, "x", [], {})]
    ['boolean true', 'integer 5', 'float 3.1', "string 'x'", 'an array', 'a table']
    """
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {shown(value, 40)}"
    if isinstance(value, int):
        return f"integer {shorten(str(value), 40)}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return type(value).__name__


@attrs.frozen
class Problem:
    """One problem found in a file, at a location inside it."""

    #: Location in TOML terms, e.g. ``python.app.version``; empty for the whole file.
    path: str
    #: What is wrong and what was expected.
    message: str

    def __str__(self) -> str:
        # A hostile file's key (a 200 KB one) is not echoed whole.
        return f"{shorten(self.path, 120)}: {self.message}" if self.path else self.message


#: The problems of one file a message lists; the rest are counted. A generated or hostile
#: file with 100,000 broken tables is not half a million lines of a CI log.
MOST_PROBLEMS_SHOWN = 50


class FileProblemsError(PylockError, ValueError):
    """A file that failed to parse or validate, with every problem found in it (the
    message lists the first :data:`MOST_PROBLEMS_SHOWN` and counts the others)."""

    kind = "file"

    def __init__(self, file: str, problems: Sequence[Problem], *, hint: str | None = None) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__("\n".join(self.lines()), hint=hint)

    def lines(self) -> list[str]:
        """The message, a line per problem, each naming the file."""
        lines = [f"{self.file}: {p}" for p in self.problems[:MOST_PROBLEMS_SHOWN]]
        more = len(self.problems) - MOST_PROBLEMS_SHOWN
        if more > 0:
            lines.append(f"{self.file}: and {more} more problem{'s' if more > 1 else ''}")
        return lines


class ConfigError(FileProblemsError):
    """``pythons.toml`` is invalid."""

    kind = "config"


class LockFileError(FileProblemsError):
    """``pythons.lock`` is invalid, or written by a newer pylock."""

    kind = "lock"


class ResolutionError(PylockError):
    """No upstream build satisfies a request."""


class StaleLockError(PylockError):
    """``pythons.lock`` does not match ``pythons.toml`` (``lock --check``)."""


class DownloadError(PylockError):
    """A download failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url


class HashMismatchError(DownloadError):
    """Downloaded or cached bytes do not have the locked sha256 (or size)."""

    def __init__(self, *, url: str, expected: str, actual: str, what: str = "sha256") -> None:
        super().__init__(
            f"{what} mismatch for {url}: expected {expected}, got {actual}",
            url=url,
            hint="pylock installs only the bytes the lock names. Either a mirror or proxy "
            "(--mirror, PYLOCK_MIRROR, PYLOCK_URL_REWRITES) serves another file: fix it, or "
            "try without it; or upstream re-published the file: find out why before trusting "
            "it, then re-lock that interpreter (`pylock lock --refresh --upgrade-python NAME`)",
        )
        self.expected = expected
        self.actual = actual


class DownloadTooLargeError(DownloadError):
    """A download grew past its bound: the lock's ``size``, ``Content-Length`` or the cap."""

    def __init__(self, message: str, *, url: str, limit: int, hint: str | None = None) -> None:
        super().__init__(message, url=url, hint=hint)
        self.limit = limit


class RefusedUrlError(DownloadError):
    """A URL (or a redirect to it) that pylock will not fetch, for security reasons."""


class CacheReadOnlyError(PylockError):
    """An archive must be downloaded, but the cache directory cannot be written."""

    def __init__(self, message: str, *, root: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.root = root


class OfflineError(PylockError):
    """An archive or listing is needed but pylock may not use the network."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url


class UpstreamError(PylockError):
    """An upstream listing could not be fetched or parsed."""

    #: The canonical URL of the listing, when one is to blame.
    url: str | None = None
    #: Whether the listing could not be had at all (no answer, 404, 5xx), as opposed
    #: to an answer that made no sense.
    unreachable: bool = False
    #: The HTTP status that refused it, when a server answered (``None``: no answer).
    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        url: str | None = None,
        unreachable: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.unreachable = unreachable
        self.status = status


class RateLimitError(UpstreamError):
    """The GitHub API refused a request because the rate limit ran out."""


class EmptySumsError(UpstreamError):
    """A release's ``SHA256SUMS`` lists no file: no answer to keep; the releases API's
    digests stand in (a warning says so)."""


def printable(text: str) -> str:
    r"""``text`` with every control or other non-printable character escaped.

    Names from an archive reach a terminal only through this: an escape sequence in a
    member name could otherwise rewrite what the user sees.

    >>> printable("python/bin/\x1b[2Jok\u202e")
    'python/bin/\\x1b[2Jok\\u202e'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class ArchiveError(PylockError):
    """An archive is malformed or hostile; nothing was installed from it.

    The message shows member names escaped (see :func:`printable`) and, past 200
    characters, cut in the middle (:func:`shorten_middle`); ``member`` keeps the name as
    it was.
    """

    def __init__(self, message: str, *, archive: str, member: str | None = None) -> None:
        where = f"{archive}: {shorten_middle(member)}: " if member else f"{archive}: "
        super().__init__(printable(where + message))
        self.archive = archive
        self.member = member


class InstallError(PylockError):
    """An interpreter could not be installed, or an install is not in the expected state."""


class UnreadableRecordError(InstallError):
    """An install tree's ``RECORD`` cannot be read, or holds a row pylock never writes."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot read the install record {path}: {reason}",
            hint="run `pylock sync --reinstall` to restore it",
        )
        #: What is wrong with it, without the path.
        self.reason = reason


class UsageError(PylockError):
    """Arguments that make no sense together; exits with status 2."""


class RegistryError(PylockError):
    """An OCI registry (the remote cache) refused or failed a request.

    Callers treat every one of these as "fall through to the origin", with one warning:
    ``status`` is the HTTP status (401, 403, 5xx...) or ``None`` when the registry could
    not be reached or answered nonsense; ``operation`` names what was attempted
    (``"pull"``, ``"push"``, ``"token"``, ``"manifest"``, ...); ``code`` is the first
    error code of the registry's answer (``"BLOB_UNKNOWN"``...), or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        operation: str,
        status: int | None = None,
        hint: str | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.registry = registry
        self.operation = operation
        self.status = status
        self.code = code


class RegistryBlobNotFoundError(RegistryError):
    """The registry does not have the blob (HTTP 404): a cache miss, not a failure."""

    def __init__(self, message: str, *, registry: str, digest: str) -> None:
        super().__init__(message, registry=registry, operation="pull", status=404)
        self.digest = digest


class RemoteCacheMissError(PylockError):
    """``--no-origin``, and the remote cache does not have an archive."""

    def __init__(self, message: str, *, registry: str, digest: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.registry = registry
        self.digest = digest


class MirrorError(PylockError):
    """The lock cannot be laid out as a mirror, or the mirror tree cannot be written."""


class ArchivesNotFetchedError(PylockError):
    """Several archives could not be fetched (by ``mirror`` or ``fetch``), each for a reason
    of its own.

    The message is the closing line (the first few names, and how many more); the CLI says
    each failure under its name before it, and the hints several share once, as its hint.
    """

    def __init__(self, message: str, failed: Sequence[tuple[str, PylockError]]) -> None:
        #: Each archive that failed (its file name) and its error, in the order they were wanted.
        self.failed = list(failed)
        super().__init__(message, hint=said_once(shared_hints(self.failed)))


class GitError(PylockError):
    """git is missing, the directory is no repository, or the ref does not exist."""
