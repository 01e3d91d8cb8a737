"""URL rewrites (mirrors, ``PYLOCK_URL_REWRITES``) and which URLs pylock may fetch (pure).

Every outgoing URL, for metadata and downloads alike, goes through :meth:`UrlRewrites.apply`
and :meth:`UrlRewrites.check`. The lock keeps canonical upstream URLs; rewrites happen only
at fetch time, so one lock works inside and outside a corporate network.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from urllib.parse import SplitResult, quote, unquote, urlsplit

import attrs

from pylock.errors import RefusedUrlError, UsageError, printable, shorten, shown

#: Where python-build-standalone releases live; ``--mirror`` replaces this prefix.
PBS_DOWNLOAD_PREFIX = "https://github.com/astral-sh/python-build-standalone/releases/download/"
#: Where PyPy releases live; ``--pypy-mirror`` replaces this prefix.
PYPY_DOWNLOAD_PREFIX = "https://downloads.python.org/pypy/"
#: Where GraalPy releases live.
GRAALPY_DOWNLOAD_PREFIX = "https://github.com/oracle/graalpython/releases/download/"
#: Where upstream publishes the archives pylock locks.
UPSTREAM_PREFIXES = (PBS_DOWNLOAD_PREFIX, PYPY_DOWNLOAD_PREFIX, GRAALPY_DOWNLOAD_PREFIX)

_TARGET_SCHEMES = ("http", "https", "file")
_HINT = (
    "write each rewrite as FROM=TO, two URL prefixes, e.g. "
    "https://github.com/=https://artifactory.example/github/"
)


def filename_from_url(url: str) -> str:
    """The last path segment of ``url``, URL escapes decoded: an archive's file name.

    >>> filename_from_url("https://h/d/20251014/cpython-3.13.9%2B20251014-x.tar.gz?sig=1")
    'cpython-3.13.9+20251014-x.tar.gz'
    """
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def is_upstream(url: str) -> bool:
    """Whether ``url`` is where upstream publishes its archives.

    >>> is_upstream(PYPY_DOWNLOAD_PREFIX + "pypy3.11-v7.3.20-linux64.tar.bz2")
    True
    >>> is_upstream("https://github.com/someone/python-build-standalone/releases/download/x")
    False
    """
    return url.startswith(UPSTREAM_PREFIXES)


def origin(url: str) -> str:
    r"""Where ``url`` downloads from, for a reviewer: its host, ASCII (a look-alike
    ``github.cοm`` shows as ``xn--github.cm-...``), with the repository on GitHub (another
    repository there is another origin); ``a local file`` for ``file:``.

    >>> origin("https://github.com/astral-sh/python-build-standalone/releases/download/t/f")
    'github.com/astral-sh/python-build-standalone'
    >>> origin("https://Mirror.Example:8443/python/f"), origin("file:///srv/f")
    ('mirror.example:8443', 'a local file')
    >>> origin("https://github.c\u03bfm/f"), origin("https://github.com/\u0430stral-sh/x")
    ('github.xn--cm-jbc', 'github.com/\\u0430stral-sh/x')
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "a local file"
    host = parts.hostname or ""
    try:
        shown_host = idna_host(host)
    except UnicodeError:
        shown_host = _ascii(host)
    if ":" in shown_host:  # IPv6: `[fd00::1]:8443`, or its last group reads as the port
        shown_host = f"[{shown_host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        shown_host += f":{port}"
    if host == "github.com":
        owner_repo = "/".join(parts.path.split("/")[1:3])
        return f"{shown_host}/{_ascii(owner_repo)}"
    return shown_host


def _ascii(text: str) -> str:
    # A look-alike letter shows as what it is, as a control character does.
    return printable(text).encode("ascii", "backslashreplace").decode("ascii")


# -- secrets -------------------------------------------------------------------------------

#: What a secret is shown as.
REDACTED = "***"
# ``scheme://userinfo@``: everything between ``//`` and the last ``@`` before the path,
# as urlsplit reads it (a raw ``@`` in a password must not leave the rest showing).
# A scheme is at most 32 characters, and found anywhere (``foohttps://`` too): with an
# unbounded scheme, text like ``a.a.a.…`` took quadratic time (18 s for 40 KB).
_SCHEME = r"([a-z][a-z0-9+.-]{0,31}://)"
_USERINFO = re.compile(rf"(?i){_SCHEME}[^/\s?#]+@")
# ``scheme://user:pass/word@host``: a password with a raw ``/``, ``?`` or ``#`` in it
# (base64 tokens have ``/``) ends the authority early for urlsplit, which then reads the
# password as a port. Anything between the user's ``:`` and the first ``@`` counts as
# its password (a line break in it too: it must not leave half of it showing), unless it
# is a port (digits) followed by a path, or a line, with an ``@``; an IPv6 host in
# brackets (``https://[::1]:8443/a@b``) has no user. The password stops at
# the next ``://`` and at 512 characters, which keeps the scan linear on hostile text.
# (A password with a space in it cannot be told from prose that follows a URL: where a
# message quotes one URL given by hand, :func:`redact_given` masks it.)
_USERINFO_LOOSE = re.compile(rf"(?i){_SCHEME}([^\s/?#@:\[\]]*):((?:(?!://)[^ \t@]){{0,512}})@")
_PORT = re.compile(r"[0-9]+(?:[/?#\s]|$)")
# ``?name=value`` / ``&name=value`` inside a URL; the value ends where a URL would.
# Up to three quotes, brackets, commas or full stops right before the end are prose around
# the URL, not value (a value is at least one character: ``token=...`` shows two of them).
# Values stop at ``;`` as well, which keeps the scan linear on hostile text. A fragment's
# parameters count too (``#access_token=``: OAuth's implicit flow puts tokens there).
_QUERY_PARAM = re.compile(
    r"([?&;#])([^=&;#\s'\"<>/?]+)=([^&;#\s\"<>]+?)(?=[').,\]]{0,3}(?:[&;#\s\"<>]|$))"
)
_SECRET_NAMES = frozenset(
    {"sig", "signature", "key", "token", "password", "passwd", "pwd", "secret", "auth",
     "authorization", "credential", "credentials", "apikey", "session", "jwt"}
)  # fmt: skip
_SECRET_SUFFIXES = (
    "token", "signature", "secret", "password", "_key", "-key", "apikey", "sessionid"
)  # fmt: skip
_SECRET_PREFIXES = ("x-amz-", "x-goog-")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter named ``name`` carries a credential (case-insensitive).

    >>> [is_secret_param(n) for n in ("sig", "X-Amz-Credential", "access_token", "sv", "se")]
    [True, True, True, False, False]
    >>> [is_secret_param(n) for n in ("jwt", "%74oken", "%2574oken")]
    [True, True, False]
    """
    # Escapes decoded: a server reads `%74oken` as `token`, so a secret hides behind them.
    name = unquote(name).lower()
    return (
        name in _SECRET_NAMES
        or name.endswith(_SECRET_SUFFIXES)
        or name.startswith(_SECRET_PREFIXES)
    )


def _redact_param(match: re.Match[str]) -> str:
    if not is_secret_param(match.group(2)) or not match.group(3):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}={REDACTED}"


def redact(text: str) -> str:
    """``text`` with every URL credential shown as ``***``: user:password and secret params.

    The one redaction used wherever text leaves pylock: errors, hints, progress, diffs,
    install records.

    >>> redact("cannot get http://me:s3cr3t@h/x.tar.gz?sv=1&sig=abc&X-Amz-Date=2 (HTTP 403)")
    'cannot get http://***@h/x.tar.gz?sv=1&sig=***&X-Amz-Date=*** (HTTP 403)'
    """
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO_LOOSE.sub(_redact_loose, _USERINFO.sub(rf"\1{REDACTED}@", text))
    return _QUERY_PARAM.sub(_redact_param, text)


def _redact_loose(match: re.Match[str]) -> str:
    if _PORT.match(match.group(3)):
        return match.group(0)  # `https://host:8443/a@b`: a port, and an @ in the path
    return f"{match.group(1)}{REDACTED}@"


def redact_given(text: str) -> str:
    """``text``, one URL (prefix) given by hand, redacted: its userinfo masked up to the
    last ``@`` before the path, as urlsplit reads it, even with a space in the password
    (``https://u:pass word@h/``) or no scheme (``u:pass@mirror.example/pbs``). :func:`redact`
    cannot do either in running text, where an e-mail address may follow a URL.

    >>> redact_given("u:s3cr3t@m.example/pbs"), redact_given("https://u:s3 cr3t@h/x")
    ('***@m.example/pbs', 'https://***@h/x')
    >>> redact_given("m.example/pbs@2"), redact_given("/srv/a@b"), redact_given("u:a/b@m/pbs")
    ('m.example/pbs@2', '/srv/a@b', '***@m/pbs')
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        # Read as with a scheme: a `/` in the password ends the authority there too
        # (`u:pa/ss@m.example/`), which only :func:`redact`'s reading of one sees.
        return redact_given(f"x://{text}").removeprefix("x://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        text = f"{scheme}{sep}{REDACTED}@{authority.rpartition('@')[2]}{slash}{path}"
    return redact(text)


def redact_given_parts(text: str) -> str:
    """``text``, an argument or setting that holds URLs given by hand between its ``=``
    (``--mirror=URL``, a rewrite's ``FROM=TO``), with each part redacted as one
    (:func:`redact_given`), then the whole as running text: a secret parameter's value,
    split from its name at the ``=``, is found again.

    >>> redact_given_parts("--rewrite=https://github.com/=ci:t0k3n@m.example/?sig=s3cr3t")
    '--rewrite=https://github.com/=***@m.example/?sig=***'
    """
    return redact("=".join(map(redact_given, text.split("="))))


#: A parameter of one whole URL: its value ends only where the next parameter starts.
_URL_PARAM = re.compile(r"([?&;#])([^=&;#/?]+)=([^&;#]*)")


def redact_url(url: str) -> str:
    """One whole URL (a lock's, not running text) with its credentials shown as ``***``.

    Unlike :func:`redact`, which must guess where a URL in prose ends, a secret value
    here ends only at the next parameter: a quote or a ``<`` in it hides the rest too.

    >>> redact_url('https://u:p@h/x.tar.gz?sv=1&token=ab"cd<ef&se=2')
    'https://***@h/x.tar.gz?sv=1&token=***&se=2'
    """
    url = _URL_PARAM.sub(_redact_param, url)
    return redact_given(url)


def conceal(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` (credentials pylock sent) shown as ``***``.

    For text a server words itself: one that echoes a token back (``Bad credentials,
    you sent Bearer ghp_...``) does so in no shape that :func:`redact` can see.

    >>> conceal("Bad credentials, you sent Bearer ghp_x1", ["ghp_x1", None])
    'Bad credentials, you sent Bearer ***'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password, or a secret query parameter.

    >>> has_credentials("https://u:p@h/x"), has_credentials("https://h/x?token=t")
    (True, True)
    >>> has_credentials("https://h/x?sv=2024&se=1")
    False
    """
    return redact(url) != url


# -- validation ------------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a URL at all (a bad port, a broken IPv6 literal), or ``None``.

    >>> url_problem("https://h:99999/x"), url_problem("https://[::1/x")
    ('port 99999 is out of range (1-65535)', 'invalid IPv6 address in the host')
    >>> url_problem("https://[::1]:8443/x") is None
    True
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Python 3.11.2 refuses `[::1]x` here, where later ones read it: the same words.
        netloc = re.split(r"[/?#]", url.partition("//")[2], maxsplit=1)[0].rpartition("@")[2]
        closed = "]" in netloc and _bracket_problem(netloc)
        return closed or "invalid IPv6 address in the host"
    return _parts_problem(parts)


def _bracket_problem(netloc: str) -> str | None:
    """What is wrong with a ``[IPv6]`` host and what follows it, if anything."""
    if not netloc.startswith("["):
        return None
    literal, _, after = netloc[1:].partition("]")
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        return f"invalid IPv6 address [{literal}] in the host"
    if after and not after.startswith(":"):
        return f"invalid host [{literal}]{after[:50]} (only :PORT may follow the address)"
    return None


def _parts_problem(parts: SplitResult) -> str | None:
    if parts.scheme == "file":
        if not parts.netloc and not parts.path:
            return "a file URL needs a path (file:///DIRECTORY/)"
        if any("%00" in part or "\0" in part for part in (parts.netloc, parts.path)):
            return "its path holds a NUL byte (%00), which no file name can"
    netloc = parts.netloc.rpartition("@")[2]
    bracket = _bracket_problem(netloc)
    if bracket is not None:
        return bracket
    try:
        port = parts.port
    except ValueError:
        port_text = netloc.rpartition("]")[2].rpartition(":")[2]
        if port_text.isdigit():
            return f"port {port_text} is out of range (1-65535)"
        if "@" in parts.path + parts.query + parts.fragment:
            # Not echoed: a password with a `/` in it ended the authority early, and reads
            # as the port (`https://user:pass/word@host`).
            return "invalid port (is a `/` in a password? write it as %2F)"
        return f"invalid port {shorten(port_text, 20)!r}"
    if port == 0:
        return "port 0 is out of range (1-65535)"
    host = parts.hostname
    if host and not netloc.startswith("[") and not _resolvable(host):
        return f"invalid host name {host[:100]!r}"
    return None


def _resolvable(host: str) -> bool:
    """Whether the resolver can be given ``host``: it is encoded as IDNA, which refuses an
    empty label (``a..b``) or one over 63 characters with a ``UnicodeError``, a traceback
    from deep in a download.

    >>> _resolvable("mirror.example."), _resolvable("a..b"), _resolvable("bücher.example")
    (True, False, True)
    """
    if host.isascii():  # the codec's whole check for ASCII, without importing it
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        return all(0 < len(label) < 64 for label in labels)
    try:
        idna_host(host)
    except UnicodeError:
        return False
    return True


def idna_host(host: str) -> str:
    """``host`` in its IDNA (``xn--``) form, as browsers, curl and aiohttp's own URLs (yarl)
    write it: IDNA 2008 with UTS 46 mapping, so that ``straße`` keeps its ``ß`` (IDNA
    2003, Python's ``idna`` codec, makes it ``strasse``: another domain, perhaps someone
    else's); IDNA 2003 for a name 2008 refuses, as yarl does. Raises ``UnicodeError`` for
    a name with no form (an empty label, one over 63 characters).

    >>> idna_host("stra\u00dfe.example"), idna_host("B\u00fccher.example."), idna_host("\u2603.net")
    ('xn--strae-oqa.example', 'xn--bcher-kva.example.', 'xn--n3h.net')
    """
    if host.isascii():
        return host.encode("idna").decode("ascii")  # checks the labels' lengths
    import idna

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        return host.encode("idna").decode("ascii")


@attrs.frozen(kw_only=True)
class Rewrite:
    """One ``FROM=TO`` prefix rewrite."""

    #: The prefix of the canonical URL to replace.
    source: str = attrs.field(repr=lambda source: repr(redact_given(source)))
    #: What replaces it; an http, https or ``file://`` URL prefix the user chose (its
    #: password is no part of the repr, which a fetch options repr shows too).
    target: str = attrs.field(repr=lambda target: repr(redact_given(target)))
    #: Where the pair came from, for error messages (``--rewrite``, ``PYLOCK_MIRROR`` ...).
    origin: str


def parse_rewrite(text: str, *, origin: str) -> Rewrite:
    """Parse one ``FROM=TO`` pair.

    >>> parse_rewrite("https://github.com/=http://127.0.0.1:8000/gh/", origin="--rewrite").target
    'http://127.0.0.1:8000/gh/'
    """
    source, sep, target = text.partition("=")
    # Either side may be a URL with its scheme left out and a password in it.
    pair = repr(redact_given(source) + sep + redact_given(target))
    if not sep or not source or not target:
        raise UsageError(f"{origin}: invalid rewrite {pair}: expected FROM=TO", hint=_HINT)
    for part in (source, target):
        problem = url_problem(part) or _space_problem(part) or _prefix_problem(part)
        if problem is not None:
            raise UsageError(f"{origin}: invalid rewrite {pair}: {problem}", hint=_HINT)
    if not _is_url(source, ("http", "https", "file")):
        raise UsageError(
            f"{origin}: invalid rewrite {pair}: FROM {redact_given(source)!r} is not an "
            "http, https or file URL prefix",
            hint=_HINT,
        )
    if not _is_url(target, _TARGET_SCHEMES):
        raise UsageError(
            f"{origin}: invalid rewrite {pair}: TO {redact_given(target)!r} is not an "
            "http, https or file URL prefix",
            hint=_HINT,
        )
    local = file_host_problem(target)
    if local is not None:
        raise UsageError(f"{origin}: invalid rewrite {pair}: TO {local}", hint=_HINT)
    joined = _slash_problem(source, target)
    if joined is not None:
        raise UsageError(f"{origin}: invalid rewrite {pair}: {joined}", hint=_HINT)
    return Rewrite(source=source, target=target, origin=origin)


def _slash_problem(source: str, target: str) -> str | None:
    """A rewrite whose ``source`` ends in ``/`` and ``target`` does not: the rest of each
    URL, which then starts with no ``/``, is joined to ``target`` as it is, so
    ``https://github.com/=https://corp/github`` asks for ``https://corp/githubastral-sh/...``.
    A target with a query (``...?path=``) is a proxy's, and ends as it must. (The other way
    round, each URL gets ``//``, which many servers take as ``/``: left alone.)

    >>> print(_slash_problem("https://github.com/", "https://corp/gh"))
    FROM ends in / and TO does not: each URL would go on right after TO, with no / between
    >>> _slash_problem("https://github.com/", "https://corp/gh/") is None
    True
    """
    if "?" in target or not source.endswith("/") or target.endswith("/"):
        return None
    return "FROM ends in / and TO does not: each URL would go on right after TO, with no / between"


def mirror_rewrite(source: str, base: str, *, origin: str) -> Rewrite:
    """A mirror shorthand: ``source`` -> ``base``, with a trailing slash added to ``base``.

    >>> mirror_rewrite(PYPY_DOWNLOAD_PREFIX, "file:///srv/pypy", origin="--pypy-mirror").target
    'file:///srv/pypy/'
    """
    example = "pypy/" if source == PYPY_DOWNLOAD_PREFIX else "python-build-standalone/"
    hint = f"give the mirror's base URL, e.g. https://mirror.example/{example}"
    if "://" not in base and not base.lower().startswith("file:"):
        # A directory given as a path: the URL the fix asks for, spaces escaped.
        path = quote(base.rstrip("/") + "/") if base.startswith("/") else "/ABSOLUTE/PATH/"
        raise UsageError(
            f"{origin}: {shown(redact_given(base), 300)} is not a URL "
            "(no https://, http:// or file://)",
            hint=f"{hint}, or a directory as a file URL: file://{path}",
        )
    problem = url_problem(base) or _space_problem(base) or _prefix_problem(base)
    if problem is not None:
        raise UsageError(
            f"{origin}: invalid mirror URL {redact_given(base)!r}: {problem}", hint=hint
        )
    if not _is_url(base, _TARGET_SCHEMES):
        raise UsageError(f"{origin}: {base!r} is not an http, https or file URL", hint=hint)
    local = file_host_problem(base)
    if local is not None:
        raise UsageError(f"{origin}: invalid mirror URL: {local}", hint=hint)
    if not base.endswith("/"):
        base += "/"
    return Rewrite(source=source, target=base, origin=origin)


def file_host_problem(url: str, *, windows: bool = os.name == "nt") -> str | None:
    """Why the ``file:`` URL ``url`` names no file on this machine: a host other than
    ``localhost``, which only Windows reads (as a share's server: ``file://server/share/x``).
    Mostly two slashes written for three.

    >>> file_host_problem("file://tmp/m/", windows=False).endswith("write file:///tmp/m/")
    True
    >>> file_host_problem("file:///m/", windows=False) is None
    True
    >>> file_host_problem("file://server/share/", windows=True) is None
    True
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # url_problem says what is wrong with it
    if parts.scheme.lower() != "file" or parts.netloc.lower() in ("", "localhost") or windows:
        return None
    host = parts.netloc.rpartition("@")[2]
    return (
        f"{redact_given(url)} names the host {host!r}, which only Windows reads (as a share's "
        f"server): for the path /{host}{parts.path}, write file:///{host}{parts.path}"
    )


def _prefix_problem(prefix: str) -> str | None:
    """Why a file URL cannot be a prefix that archive paths are appended to: a ``?`` or
    ``#`` (an http prefix may end in a query, ``https://proxy/get?url=...``; a file has
    none, and the archive's name would be lost in it).

    >>> _prefix_problem("file:///srv/m?x=1"), _prefix_problem("https://p/get?url=") is None
    ('a file URL has no query or fragment (? or #)', True)
    """
    if prefix[:5].lower() == "file:" and ("?" in prefix or "#" in prefix):
        return "a file URL has no query or fragment (? or #)"
    return None


def _space_problem(text: str) -> str | None:
    """A space (or other white space) in a URL given by hand, with the fix.

    >>> _space_problem("file:///media/USB stick/pythons/")
    'it contains white space: write a space as %20 (file:///media/USB%20stick/pythons/)'
    """
    if not any(c.isspace() for c in text):
        return None
    fixed = "".join(quote(c) if c.isspace() else c for c in text)
    return f"it contains white space: write a space as %20 ({fixed})"


def _is_url(text: str, schemes: Sequence[str]) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    if parts.scheme not in schemes or any(c.isspace() for c in text):
        return False
    if _parts_problem(parts) is not None:
        return False
    # file: URLs may lack a host (file:///srv); http(s) ones may not.
    return parts.scheme == "file" or bool(parts.netloc)


@attrs.frozen
class UrlRewrites:
    """The rewrite rules in force; the longest matching ``source`` prefix wins."""

    #: The rules; for equal sources, a later rule replaces an earlier one.
    rules: tuple[Rewrite, ...] = ()

    @classmethod
    def from_sources(
        cls,
        env: str | None,
        pairs: Sequence[str] = (),
        mirror: str | None = None,
        pypy_mirror: str | None = None,
        *,
        mirror_from: str = "mirror",
        pypy_mirror_from: str = "pypy mirror",
    ) -> UrlRewrites:
        """Combine ``PYLOCK_URL_REWRITES`` (``env``), ``--rewrite`` pairs and the mirror shorthands.

        For the same ``FROM``, ``--rewrite`` beats the environment and the mirror
        shorthands beat both; otherwise the longest ``FROM`` decides per URL. Errors name
        a mirror by ``mirror_from`` and ``pypy_mirror_from`` (the flag, or the variable).
        """
        rules: list[Rewrite] = []
        for item in (env or "").split():
            rules.append(parse_rewrite(item, origin="PYLOCK_URL_REWRITES"))
        for item in pairs:
            rules.append(parse_rewrite(item, origin="--rewrite"))
        if mirror:
            rules.append(mirror_rewrite(PBS_DOWNLOAD_PREFIX, mirror, origin=mirror_from))
        if pypy_mirror:
            rules.append(mirror_rewrite(PYPY_DOWNLOAD_PREFIX, pypy_mirror, origin=pypy_mirror_from))
        by_source: dict[str, Rewrite] = {}
        for rule in rules:
            by_source.pop(rule.source, None)
            by_source[rule.source] = rule
        return cls(tuple(by_source.values()))

    def match(self, url: str) -> Rewrite | None:
        """The rule that applies to ``url``, if any."""
        best: Rewrite | None = None
        for rule in self.rules:
            if url.startswith(rule.source) and (
                best is None or len(rule.source) > len(best.source)
            ):
                best = rule
        return best

    def apply(self, url: str) -> str:
        """``url`` with the longest matching prefix rewritten.

        >>> rw = UrlRewrites.from_sources("https://a.example/=https://b.example/x/", ())
        >>> rw.apply("https://a.example/f.tar.gz"), rw.apply("https://c.example/f")
        ('https://b.example/x/f.tar.gz', 'https://c.example/f')
        """
        rule = self.match(url)
        return url if rule is None else rule.target + url[len(rule.source) :]

    def is_explicit(self, url: str) -> bool:
        """Whether ``url`` lies under a rewrite target that the user gave explicitly.

        Credentials are no part of the trust: ``http://mirror.lan/pbs/x``, where a redirect
        may point, lies under ``http://ci:TOKEN@mirror.lan/pbs/``.

        >>> rw = UrlRewrites.from_sources("https://a.example/=http://u:p@mirror.lan/pbs/")
        >>> rw.is_explicit("http://mirror.lan/pbs/x"), rw.is_explicit("http://mirror.lan/x")
        (True, False)
        """
        url = _without_userinfo(url)
        origin = _origin(url)
        targets = (_without_userinfo(rule.target) for rule in self.rules)
        return any(url.startswith(target) and _origin(target) == origin for target in targets)

    def check(self, url: str, *, canonical: str | None = None) -> None:
        """Refuse a URL pylock must not fetch; see :func:`check_url`."""
        check_url(url, explicit=self.is_explicit(url), canonical=canonical)

    def check_redirect(self, source: str, target: str, *, canonical: str | None = None) -> None:
        """Refuse a redirect from ``source`` to ``target`` that pylock must not follow.

        A redirect from https to plain http is always refused; otherwise the target
        is held to the same rules as any URL.
        """
        if _scheme(source) == "https" and _scheme(target) == "http":
            raise RefusedUrlError(
                f"refusing redirect from https to plain http: {source} -> {target}"
                + _canonical_note(source, canonical),
                url=target,
                hint="a downgrade to http would let anyone on the path change the download",
            )
        if _scheme(target) not in ("http", "https"):
            raise RefusedUrlError(
                f"refusing redirect to a non-http URL: {source} -> {target}"
                + _canonical_note(source, canonical),
                url=target,
                hint="a server must not send a download to a local file or another scheme: "
                "check the mirror's or rewrite's redirects",
            )
        self.check(target, canonical=canonical)


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _without_userinfo(url: str) -> str:
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return url
    if "@" not in netloc:
        return url
    # The netloc is the first thing after "scheme://": replacing its first occurrence
    # leaves every other character of the URL as it was.
    return url.replace(netloc, netloc.rpartition("@")[2], 1)


def _origin(url: str) -> tuple[str, str]:
    # Comparing origins keeps a target "http://mirror.corp" from vouching for
    # "http://mirror.corp.evil.example/".
    try:
        parts = urlsplit(url)
    except ValueError:
        return ("", "")
    return (parts.scheme.lower(), parts.netloc.lower())


def _canonical_note(url: str, canonical: str | None) -> str:
    return f" (for {canonical})" if canonical and canonical != url else ""


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost``, 127.0.0.0/8 or ``::1``.

    >>> is_loopback_host("127.1.2.3"), is_loopback_host("::1"), is_loopback_host("10.0.0.1")
    (True, True, False)
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, explicit: bool, canonical: str | None = None) -> None:
    """Raise :class:`RefusedUrlError` unless pylock may fetch ``url``.

    https and ``file://`` are fine. Plain http is fine for loopback hosts, and for
    other hosts only when ``explicit`` (the URL lies under a mirror or rewrite target
    the user gave): otherwise anyone on the path could swap a listing, and a listing
    decides which hashes get locked.

    >>> check_url("http://127.0.0.1:8080/x", explicit=False)
    >>> check_url("http://mirror.corp/x", explicit=True)
    >>> check_url("http://mirror.corp/x", explicit=False)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    pylock.errors.RefusedUrlError: refusing plain http URL http://mirror.corp/x
    """
    problem = url_problem(url)
    if problem is not None:
        raise RefusedUrlError(f"invalid URL {url}: {problem}", url=url)
    parts = urlsplit(url)
    host = parts.hostname
    scheme = parts.scheme.lower()
    if scheme in ("https", "file"):
        return
    if scheme == "http":
        if explicit or is_loopback_host(host):
            return
        raise RefusedUrlError(
            f"refusing plain http URL {url}" + _canonical_note(url, canonical),
            url=url,
            hint="use https, or trust this server explicitly with --mirror, "
            "--rewrite FROM=TO or PYLOCK_URL_REWRITES",
        )
    raise RefusedUrlError(
        f"unsupported URL scheme {scheme or '(none)'!r} in {url}" + _canonical_note(url, canonical),
        url=url,
        hint="pylock fetches http(s) and file:// URLs",
    )
