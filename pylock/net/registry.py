"""An OCI distribution client: pylock's remote cache of archives in a container registry.

Archives are registry blobs addressed by the sha256 the lock already holds; a tagged OCI 1.1
manifest (``artifactType``, the empty config, one layer) references each pushed blob so that
registry garbage collection keeps it and people can browse it.

Authentication is docker's: credentials from :mod:`pylock.net.dockerauth`, the bearer token
flow on a ``401`` (one token per scope, cached), basic auth where the registry asks for it.
Blob downloads that redirect to another host (object storage) are followed without the
``Authorization`` header: registry credentials go to the registry only.

Every failure is a :class:`~pylock.errors.RegistryError` (with ``status`` and ``operation``),
so that callers can warn once and fall through to the origin; a missing blob is the distinct
:class:`~pylock.errors.RegistryBlobNotFoundError`. Secrets never appear in messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import attrs

from pylock.bounded import json_loads
from pylock.errors import (
    DownloadTooLargeError,
    HashMismatchError,
    PylockError,
    RegistryBlobNotFoundError,
    RegistryError,
    UsageError,
    printable,
)
from pylock.fsutil import replace
from pylock.net import policy
from pylock.net.dockerauth import Credentials, find_credentials, resume_helpers
from pylock.net.policy import SessionOwner
from pylock.settings import Settings
from pylock.urls import is_loopback_host, redact, redact_given, redact_url, url_problem

if TYPE_CHECKING:
    import aiohttp

    from pylock.net.fetch import AiohttpProxy

#: The OCI 1.1 ``artifactType`` of a pylock interpreter archive.
ARTIFACT_TYPE = "application/vnd.pylock.interpreter.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: The OCI empty descriptor: the config of an artifact that has none.
EMPTY_CONFIG_SHA256 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_CONFIG: dict[str, object] = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": f"sha256:{EMPTY_CONFIG_SHA256}",
    "size": 2,
    "data": "e30=",
}
EMPTY_CONFIG_BYTES = b"{}"
#: Annotation keys of a pushed manifest, besides ``org.opencontainers.image.title``.
ANNOTATION_LOCK_NAME = "dev.pylock.lock.name"
ANNOTATION_ORIGIN = "dev.pylock.origin"
ANNOTATION_SHA256 = "dev.pylock.sha256"
ANNOTATION_SIZE = "dev.pylock.size"

#: Registries must accept manifests up to 4 MiB; pylock reads no more than that.
MAX_MANIFEST_BYTES = 4 << 20
#: A token endpoint's answer larger than this is not a token.
MAX_TOKEN_RESPONSE_BYTES = 1 << 20
#: Error bodies and other small answers are read up to this much.
_MAX_SMALL_BODY = 64 << 10
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 16

_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TAG_BAD = re.compile(r"[^A-Za-z0-9._-]")

Debug = Callable[[str], None]


# -- references ------------------------------------------------------------------------------


@attrs.frozen
class RegistryRef:
    """``oci://HOST[:PORT]/REPOSITORY`` (https) or ``oci+http://...`` (plain http)."""

    host: str
    repository: str
    plain_http: bool = False

    @property
    def base(self) -> str:
        """``https://HOST[:PORT]`` (or ``http://``)."""
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    @property
    def hostname(self) -> str:
        """The host without the port."""
        return urlsplit(self.base).hostname or self.host

    def __str__(self) -> str:
        return f"{'oci+http' if self.plain_http else 'oci'}://{self.host}/{self.repository}"


def parse_reference(text: str, origin: str = "--remote-cache") -> RegistryRef:
    """Parse a remote cache reference; a bad one is a :class:`UsageError` that names
    ``origin``, where it was given (the flag or the variable).

    >>> parse_reference("oci://ghcr.io/acme/pythons")
    RegistryRef(host='ghcr.io', repository='acme/pythons', plain_http=False)
    >>> str(parse_reference("oci+http://127.0.0.1:5000/cache"))
    'oci+http://127.0.0.1:5000/cache'
    """
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    hint = "write oci://HOST[:PORT]/REPOSITORY, e.g. oci://ghcr.io/acme/pythons"
    if not sep or scheme not in ("oci", "oci+http"):
        raise UsageError(f"{origin}: not a registry reference: {redact_given(text)!r}", hint=hint)
    host, _, repository = rest.partition("/")
    if "@" in host:
        raise UsageError(
            f"{origin}: registry reference with credentials in it: {redact_given(text)}",
            hint="put registry credentials in the docker config (docker login), not the URL",
        )
    name = host.rpartition(":")[0] if ":" in host.rpartition("]")[2] else host
    too_long = len(name) > 253 or any(len(label) > 63 for label in name.split("."))
    if not _HOST.fullmatch(host) or too_long:
        raise UsageError(f"{origin}: bad registry host in {redact_given(text)!r}", hint=hint)
    port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] else ""
    if port and not 0 < int(port) < 65536:
        raise UsageError(f"{origin}: bad registry port in {redact_given(text)!r}", hint=hint)
    repository = repository.rstrip("/")
    if not repository:
        raise UsageError(
            f"{origin}: {redact_given(text)!r} names no repository on the registry",
            hint=f"write {scheme}://{host}/REPOSITORY, e.g. {scheme}://{host}/acme/pythons",
        )
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise UsageError(
            f"{origin}: bad repository name in {redact_given(text)!r}",
            hint="repository names are lower case: letters, digits and . _ - separated by /",
        )
    return RegistryRef(host.lower(), repository, plain_http=scheme == "oci+http")


def tag_for(*parts: str | None, sha256: str | None = None) -> str:
    """The manifest tag of one archive, within the OCI tag grammar: the non-empty
    ``parts`` joined with ``-``, then the first 12 hex digits of ``sha256``.

    The digest keeps two archives that share everything else (two flavors of one build,
    two direct URLs) from taking each other's tag, which would leave one manifest
    untagged for the registry's garbage collection to delete.

    >>> tag_for("cpython", "3.12.4", "20240713", "x86_64-unknown-linux-gnu", "pgo+lto")
    'cpython-3.12.4-20240713-x86_64-unknown-linux-gnu-pgo_lto'
    >>> tag_for("graalpy", "24.1", "", ".odd/platform")
    'graalpy-24.1-.odd_platform'
    >>> tag_for("cpython", "3.13.1", "x" * 200, sha256="ab" * 32)[-13:]
    '-abababababab'
    """
    suffix = f"-{sha256[:12]}" if sha256 else ""
    tag = _TAG_BAD.sub("_", "-".join(part for part in parts if part))
    if not tag or tag[0] in ".-":
        tag = "_" + tag
    return tag[: 128 - len(suffix)] + suffix


def layer_media_type(filename: str) -> str:
    """The layer media type of an archive, by its file name.

    >>> layer_media_type("cpython-3.12.4.tar.zst")
    'application/vnd.oci.image.layer.v1.tar+zstd'
    """
    name = filename.lower()
    return next(
        (media for suffixes, media in _LAYER_MEDIA_TYPES if name.endswith(suffixes)),
        "application/octet-stream",
    )


#: Archive file-name endings and the layer media type each gets, first match wins.
_LAYER_MEDIA_TYPES: tuple[tuple[tuple[str, ...], str], ...] = (
    ((".tar.gz", ".tgz"), "application/vnd.oci.image.layer.v1.tar+gzip"),
    ((".tar.zst",), "application/vnd.oci.image.layer.v1.tar+zstd"),
    ((".tar",), "application/vnd.oci.image.layer.v1.tar"),
    ((".tar.bz2", ".tbz2"), "application/x-bzip2"),
    ((".tar.xz",), "application/x-xz"),
    ((".zip",), "application/zip"),
)


def artifact_manifest(
    *,
    sha256: str,
    size: int,
    filename: str,
    lock_name: str,
    origin_url: str,
) -> bytes:
    """The OCI 1.1 image manifest that references one archive blob, as canonical bytes."""
    _check_sha256(sha256)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": EMPTY_CONFIG,
        "layers": [
            {
                "mediaType": layer_media_type(filename),
                "digest": f"sha256:{sha256}",
                "size": size,
                "annotations": {"org.opencontainers.image.title": filename},
            }
        ],
        "annotations": {
            "org.opencontainers.image.title": filename,
            ANNOTATION_LOCK_NAME: lock_name,
            ANNOTATION_ORIGIN: redact_url(origin_url),
            ANNOTATION_SHA256: sha256,
            ANNOTATION_SIZE: str(size),
        },
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def _check_sha256(sha256: str) -> None:
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lower-case hex sha256: {sha256!r}")


# -- the remote cache tier's shared state ------------------------------------------------------


class SharedAuth:
    """What the clients of one remote cache share across threads and event loops.

    A sync runs one client per download thread. Shared, the credentials are looked up once
    (a docker credential helper is a process to run), and a token is asked for once per
    scope, not once per archive: the first client to meet a challenge answers it while the
    others wait, then use its answer.
    """

    def __init__(self) -> None:
        #: ``Authorization`` values by scope (space-joined); ``""`` is basic auth.
        self.authorizations: dict[str, str] = {}
        self._lookup = threading.Lock()
        self._answer = threading.Lock()
        self._credentials: Credentials | None = None
        self._looked_up = False
        #: What the look-up passed over (a config that is no JSON, a helper that failed):
        #: the reason a registry that wants credentials got none.
        self.passed_over: list[str] = []

    def credentials(self, lookup: Callable[[], Credentials | None]) -> Credentials | None:
        """The credentials, from ``lookup`` the first time only."""
        with self._lookup:
            if not self._looked_up:
                self._credentials = lookup()
                self._looked_up = True
            return self._credentials

    @asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        """Hold the right to answer a challenge (one client at a time, in any thread).

        Polled rather than blocking, so that a waiting event loop stays responsive to
        cancellation (Ctrl-C stops the downloads).
        """
        import asyncio

        while not self._answer.acquire(blocking=False):
            await asyncio.sleep(0.005)
        try:
            yield
        finally:
            self._answer.release()


class RemoteCache:
    """``--remote-cache`` with ``--push`` and ``--no-origin``, and what one run learnt of it.

    One object serves a whole sync (every event loop and thread of it): it warns once
    however many archives the registry fails, stops asking a registry that is down or
    refusing, and counts what came from it and what was pushed to it.
    """

    def __init__(
        self,
        ref: RegistryRef,
        *,
        settings: Settings,
        home: Path,
        push: bool = False,
        no_origin: bool = False,
    ) -> None:
        self.ref = ref
        self.settings = settings
        self.home = home
        self.push = push
        self.no_origin = no_origin
        self.lock = threading.Lock()
        self._auth = SharedAuth()
        # A new run: an interrupted one's "start no more credential helpers" is over.
        resume_helpers()
        #: Whether a pull failure, and a push failure, was reported (one warning each).
        self._warned: set[bool] = set()
        #: Pulls (or pushes) stopped after a failure that would only repeat.
        self.pull_broken = False
        #: The first failure to pull (why the registry is no help, for --no-origin's error).
        self.pull_failure: RegistryError | None = None
        #: Why the pull of an archive (by sha256) failed, when the registry was asked for
        #: it and did not just lack it: a 400 or 429 that leaves the registry in use.
        self.pull_failures: dict[str, RegistryError] = {}
        self.push_broken = False
        #: sha256 of the archives that came from the registry, and of those pushed to it.
        self.pulled: set[str] = set()
        self.pushed: set[str] = set()
        #: sha256 of the blobs the registry served with other bytes: a push cannot replace
        #: them (the registry has "the blob"), only deleting them in the registry can.
        self.corrupt: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        reference: str | None = None,
        origin: str = "--remote-cache",
        push: bool = False,
        no_origin: bool = False,
    ) -> RemoteCache | None:
        """``reference`` (given as ``origin``), else ``PYLOCK_REMOTE_CACHE``, with ``--push``
        and ``--no-origin`` (else their variables); ``None`` when no registry is set.

        A bad reference is a :class:`UsageError`; so is ``--push`` or ``--no-origin``
        without a registry.
        """
        text = reference or settings.remote_cache
        if text is None:
            # Name what the user actually set: a flag, or a variable they may have forgotten.
            asked = (
                "--push"
                if push
                else "--no-origin"
                if no_origin
                else "PYLOCK_REMOTE_CACHE_PUSH"
                if settings.remote_cache_push
                else "PYLOCK_NO_ORIGIN"
                if settings.no_origin
                else None
            )
            if asked is not None:
                raise UsageError(
                    f"{asked} needs a remote cache",
                    hint="give --remote-cache oci://HOST/REPOSITORY (or set PYLOCK_REMOTE_CACHE)",
                )
            return None
        push = push or settings.remote_cache_push
        no_origin = no_origin or settings.no_origin
        # No home to speak of: a relative one, under which dockerauth reads no config.
        home = Path(settings.home or "~")
        ref = parse_reference(text, origin if reference else "PYLOCK_REMOTE_CACHE")
        return cls(ref, settings=settings, home=home, push=push, no_origin=no_origin)

    def client(self, debug: Debug | None = None) -> RegistryClient:
        """A client for the current event loop (close it: use it as a context manager).

        The clients of one remote cache share their credentials and tokens. ``debug``
        hears why configured credentials were not used (``-v``): a config that is not
        JSON, a helper that did not answer.
        """
        return RegistryClient(
            self.ref, settings=self.settings, home=self.home, shared=self._auth, debug=debug
        )

    def failed(
        self,
        error: RegistryError | HashMismatchError,
        warn: Callable[[str], None],
        *,
        push: bool = False,
    ) -> None:
        """Note a failure: the first failed pull of a run, and the first failed push, are a
        warning each; a registry that is down or refusing is not asked again (a wrong blob
        is only that blob's problem)."""
        with self.lock:
            if isinstance(error, RegistryError) and not push and self.pull_failure is None:
                self.pull_failure = error
            if isinstance(error, RegistryError):
                if error.status is None:
                    # Unreachable (or silent until the timeout): pushing would wait as long.
                    self.pull_broken = self.push_broken = True
                elif push:
                    self.push_broken = True
                elif error.status in (401, 403) or error.status >= 500:
                    self.pull_broken = True
            first = push not in self._warned
            self._warned.add(push)
        if first:
            what = "push to" if push else "use"
            if push:
                then = "the archives stay in the local cache"
            elif self.no_origin:
                then = "--no-origin forbids the origin"
            else:
                then = "downloading from the origin"
            hint = f" ({error.hint})" if error.hint else ""
            warn(f"cannot {what} the remote cache {self.ref}: {error.message}{hint}; {then}")


# -- WWW-Authenticate --------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?'
)


@attrs.frozen
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header; ``None`` if it makes no sense.

    >>> parse_challenge('Bearer realm="https://a/token",service="a",scope="repository:x:pull"').params
    {'realm': 'https://a/token', 'service': 'a', 'scope': 'repository:x:pull'}
    >>> parse_challenge('Basic realm="Registry"').scheme
    'basic'
    """
    header = header.strip()[:8192]
    scheme, _, rest = header.partition(" ")
    if not scheme.isalpha():
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM.match(rest, position)
        if match is None or match.end() == position:
            return None if scheme.lower() == "bearer" else Challenge(scheme.lower(), params)
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return Challenge(scheme.lower(), params)


# -- the client --------------------------------------------------------------------------------


class RegistryClient(SessionOwner):
    """One registry repository, over one aiohttp session. Use it as an async context manager.

    ``settings`` and ``home`` say where credentials and CA certificates come from;
    ``credentials`` overrides the docker config lookup. Clients given one ``shared``
    look the credentials up once and share their tokens.
    """

    def __init__(
        self,
        ref: RegistryRef,
        *,
        settings: Settings,
        home: Path,
        credentials: Credentials | None = None,
        lookup_credentials: bool = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        debug: Debug | None = None,
        shared: SharedAuth | None = None,
    ) -> None:
        self.ref = ref
        self._settings = settings
        self._debug: Debug = debug if debug is not None else _ignore
        self._shared = shared if shared is not None else SharedAuth()
        if credentials is None and lookup_credentials:

            def note(message: str) -> None:
                self._shared.passed_over.append(message)
                self._debug(message)

            credentials = self._shared.credentials(
                lambda: find_credentials(ref.host, settings=settings, home=home, debug=note)
            )
        self._credentials = credentials
        self._timeouts = (connect_timeout, read_timeout)
        self._session: aiohttp.ClientSession | None = None
        # ``Authorization`` values by scope; "" is basic auth (no scopes).
        self._authorizations = self._shared.authorizations
        #: Token requests made, by scope (tests count them; callers may report them).
        self.token_requests: dict[str, int] = {}

    def _login_hint(self) -> str:
        """How to log in; first, what the credentials' look-up passed over, if anything
        (it says so only with -v, and it is why none were sent)."""
        passed_over = self._shared.passed_over
        if not passed_over:
            return _LOGIN_HINT
        more = f" (and {len(passed_over) - 1} more; -v says)" if len(passed_over) > 1 else ""
        return f"no credentials were sent ({passed_over[0]}{more}): fix that, or {_LOGIN_HINT}"

    # -- public operations ---------------------------------------------------------------

    def blob_url(self, sha256: str) -> str:
        """``https://HOST/v2/REPOSITORY/blobs/sha256:<hex>``."""
        _check_sha256(sha256)
        return f"{self.ref.base}/v2/{self.ref.repository}/blobs/sha256:{sha256}"

    async def has_blob(self, sha256: str, *, size: int | None = None) -> bool:
        """Whether the repository has the blob (``HEAD``), of ``size`` bytes when given.

        Registries that keep blobs in object storage answer with a redirect there (for a
        blob they do not have they answer 404), and so does a login page in front of the
        registry, for every request. So a redirect is no answer by itself: the blob is
        there when a ``GET`` of it, redirects followed, answers what a blob's head says
        (no web page, its length, its digest). The ``GET``, not the ``HEAD`` again: the
        storage's signed URL may be good for the method it was signed for only.
        """
        operation = "a blob check"
        url = self.blob_url(sha256)
        async with self._send("HEAD", url, operation=operation) as response:
            if response.status == 404:
                return False
            await self._check(response, operation, expected=(200, *_REDIRECTS))
            via = ""
            if response.status == 200:
                problem = _not_the_blob(response, sha256, size)
            else:
                via = f"HTTP {response.status}"
                with contextlib.suppress(ValueError):
                    location = urljoin(str(response.url), response.headers.get("Location", ""))
                    via += f" to {_origin_text(location)}"
        if not via:
            if problem is not None:
                raise self._not_the_blob_error(sha256, problem, operation)
            return True
        try:
            async with self._send("GET", url, operation=operation, follow=True) as response:
                if response.status == 404:
                    return False
                storage = _storage(response, url)
                await self._check(response, operation, expected=(200,), storage=storage)
                # Released unread: the body is the blob, not needed here.
                problem = _not_the_blob(response, sha256, size)
        except RegistryError as error:
            raise self._error(
                f"{self.ref} answered the check for blob sha256:{sha256} with {via}, "
                f"where the blob could not be read: {error.message}",
                operation,
                error.status,
                hint=error.hint or _NOT_THE_REGISTRY_HINT,
                code=error.code,
            ) from None
        if problem is not None:
            raise self._not_the_blob_error(sha256, f"{problem} after {via}", operation)
        return True

    def _not_the_blob_error(self, sha256: str, problem: str, operation: str) -> RegistryError:
        """The error for an answer to a blob check that is not the blob's. Taken for "the
        blob is there", a push would upload nothing, then fail at the manifest (or leave a
        tag whose blob a pull cannot get)."""
        return self._error(
            f"{self.ref} answered the check for blob sha256:{sha256} with {problem}, "
            "not the registry's answer",
            operation,
            hint=_NOT_THE_REGISTRY_HINT,
        )

    @asynccontextmanager
    async def open_blob(
        self, sha256: str, *, size: int, exact: bool = True
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a blob's bytes, at most ``size`` of them (longer is an error); ``size`` is
        the blob's, or with ``exact=False`` (a lock without sizes) a bound only.

        The caller verifies the sha256 as the chunks arrive (or uses :meth:`download_blob`).
        Redirects to other hosts are followed without the ``Authorization`` header. What a
        redirect target answers must be the blob by its head (no web page; its digest, when
        it gives one; its length, when ``size`` is exact) and by its body's length, or it is
        a :class:`RegistryError` that names the target: an error page of object storage (or
        of a proxy on the way) is no corrupt copy in the registry, to be deleted there.
        """
        url = self.blob_url(sha256)
        async with self._send("GET", url, operation="pull", follow=True) as response:
            if response.status == 404:
                raise RegistryBlobNotFoundError(
                    f"{self.ref} has no blob sha256:{sha256}", registry=str(self.ref), digest=sha256
                )
            storage = _storage(response, url)
            await self._check(response, "pull", expected=(200,), storage=storage)
            if response.content_type == "text/html":
                # No archive is a web page: a login page, or a proxy's, in front of the
                # registry. Refused as corrupt, it was hinted to delete the blob.
                raise self._error(
                    f"{self.ref} answered the pull of blob sha256:{sha256} with a web page "
                    "(text/html), not the blob",
                    "pull",
                    hint=_NOT_THE_REGISTRY_HINT,
                )

            def not_the_blob(problem: str) -> RegistryError:
                return self._error(
                    f"{self.ref} sent the pull of blob sha256:{sha256} on to {storage}, "
                    f"whose answer is not the blob: {problem}",
                    "pull",
                    response.status,  # that blob's problem, as a corrupt one is
                    hint=_NOT_THE_STORAGE_HINT,
                )

            if storage is not None:
                problem = _not_the_blob(response, sha256, size if exact else None)
                if problem is not None:
                    raise not_the_blob(problem)
            announced = response.content_length
            if announced is not None and announced > size:
                raise DownloadTooLargeError(
                    f"{redact(url)} announces {announced} bytes, expected {size}",
                    url=redact(url),
                    limit=size,
                )
            check = not_the_blob if storage is not None and exact else None
            yield self._chunks(response, url, size, not_the_blob=check)

    async def download_blob(self, sha256: str, dest: Path, *, size: int) -> None:
        """Download a blob into ``dest`` (atomically), verifying its size and sha256."""
        digest = hashlib.sha256()
        partial = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        try:
            async with self.open_blob(sha256, size=size) as chunks:
                with partial.open("wb") as stream:
                    async for chunk in chunks:
                        digest.update(chunk)
                        stream.write(chunk)
            got = digest.hexdigest()
            written = partial.stat().st_size
            if got != sha256 or written != size:
                raise HashMismatchError(
                    url=redact(self.blob_url(sha256)),
                    expected=f"{sha256} ({size} bytes)",
                    actual=f"{got} ({written} bytes)",
                )
            replace(partial, dest)  # patiently: a scanner may hold it (Windows)
        finally:
            partial.unlink(missing_ok=True)

    async def push_blob(
        self, source: Path | bytes, sha256: str, *, mount_from: str | None = None
    ) -> None:
        """Upload a blob unless the registry has it: a cross-repository mount from
        ``mount_from`` when given and the registry offers it, else a monolithic upload.
        ``source`` must hash to ``sha256`` (the registry refuses it otherwise).
        """
        _check_sha256(sha256)
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        if await self._blob_present(sha256, size):
            return
        uploads = f"{self.ref.base}/v2/{self.ref.repository}/blobs/uploads/"
        scopes = [self._scope("pull,push")]
        query = ""
        if mount_from is not None and mount_from != self.ref.repository:
            if not _REPOSITORY.fullmatch(mount_from):
                raise ValueError(f"bad repository name {mount_from!r}")
            scopes.append(f"repository:{mount_from}:pull")
            query = "?" + urlencode({"mount": f"sha256:{sha256}", "from": mount_from})
        async with self._send("POST", uploads + query, operation="push", scopes=scopes) as response:
            if response.status == 201 and query:
                self._debug(f"mounted sha256:{sha256} from {mount_from}")
                return
            await self._check(response, "push", expected=(202,))
            location = self._location(response, "push")
        separator = "&" if "?" in location else "?"
        target = f"{location}{separator}digest=sha256%3A{sha256}"
        headers = {"Content-Type": "application/octet-stream"}
        body, body_file = (source, None) if isinstance(source, bytes) else (None, source)
        if body_file is not None:
            headers["Content-Length"] = str(body_file.stat().st_size)
        try:
            async with self._send(
                "PUT",
                target,
                operation="push",
                scopes=scopes,
                body=body,
                body_file=body_file,
                headers=headers,
            ) as response:
                await self._check(response, "push", expected=(201,))
        except RegistryError:
            # Builders of one fleet push the same archives (and every manifest the same
            # empty config) at the same moment; a registry may refuse the second upload
            # of a blob it is still storing. If the blob is there now, the push succeeded.
            if not await self._blob_present(sha256, size):
                raise

    async def _blob_present(self, sha256: str, size: int) -> bool:
        """:meth:`has_blob` for a push, which may race other builders pushing that blob.

        A registry committing the blob for another builder can fail the ``HEAD`` with a
        server error (distribution answers HTTP 500 while the blob's link is half
        written), so a server error is asked again, a few times. A registry that keeps
        failing counts as not having the blob: the push then uploads it, which is
        harmless for content-addressed data, and reports the upload's own error.
        """
        import asyncio

        for attempt in range(1, _BLOB_CHECK_ATTEMPTS + 1):
            try:
                return await self.has_blob(sha256, size=size)
            except RegistryError as error:
                if error.status is None or error.status < 500:
                    raise
                self._debug(f"blob sha256:{sha256}: HTTP {error.status}; asking again")
            if attempt < _BLOB_CHECK_ATTEMPTS:
                await asyncio.sleep(0.1 * attempt)
        return False

    async def push_manifest(self, tag: str, manifest: bytes) -> str:
        """Push an image manifest under ``tag`` (pushing the empty config blob first when
        the manifest uses it); returns the manifest's digest.
        """
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", tag):
            raise ValueError(f"not an OCI tag: {tag!r}")
        if len(manifest) > MAX_MANIFEST_BYTES:
            raise ValueError("manifest larger than registries accept")
        url = f"{self.ref.base}/v2/{self.ref.repository}/manifests/{tag}"
        headers = {"Content-Type": MANIFEST_MEDIA_TYPE}
        for attempt in range(1, _MANIFEST_ATTEMPTS + 1):
            if EMPTY_CONFIG_SHA256.encode() in manifest:
                await self.push_blob(EMPTY_CONFIG_BYTES, EMPTY_CONFIG_SHA256)
            try:
                async with self._send(
                    "PUT",
                    url,
                    operation="manifest",
                    scopes=[self._scope("pull,push")],
                    body=manifest,
                    headers=headers,
                ) as response:
                    await self._check(response, "manifest", expected=(201,))
            except RegistryError as error:
                # Builders pushing at once all upload the one empty config blob; a
                # registry can answer one of them that it does not know a blob another
                # is still committing. Check the blobs again and retry, a few times.
                if error.code not in _BLOB_NOT_YET or attempt == _MANIFEST_ATTEMPTS:
                    raise
                self._debug(f"manifest {tag}: {error.code}; retrying")
                import asyncio

                await asyncio.sleep(0.1 * attempt)
                continue
            break
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    async def get_manifest(self, reference: str) -> bytes:
        """A manifest's bytes by tag or digest (a digest is verified), at most 4 MiB."""
        url = f"{self.ref.base}/v2/{self.ref.repository}/manifests/{quote(reference, safe=':')}"
        headers = {"Accept": MANIFEST_MEDIA_TYPE}
        async with self._send("GET", url, operation="manifest", headers=headers) as response:
            if response.status == 404:
                raise RegistryError(
                    f"{self.ref} has no manifest {reference}",
                    registry=str(self.ref),
                    operation="manifest",
                    status=404,
                )
            await self._check(response, "manifest", expected=(200,))
            data = await self._read_bounded(response, MAX_MANIFEST_BYTES, "manifest")
        if reference.startswith("sha256:"):
            got = "sha256:" + hashlib.sha256(data).hexdigest()
            if got != reference:
                raise RegistryError(
                    f"{self.ref} served manifest {got} for {reference}",
                    registry=str(self.ref),
                    operation="manifest",
                )
        return data

    # -- HTTP ----------------------------------------------------------------------------------

    def _scope(self, actions: str) -> str:
        return f"repository:{self.ref.repository}:{actions}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            from pylock.net.fetch import client_session

            connect, read = self._timeouts
            # Proxies come from the settings, per request.
            try:
                self._session = client_session(self._settings, connect=connect, read=read)
            except PylockError as error:  # an SSL_CERT_FILE that does not load
                # The registry's failure, not the sync's: the origin may not need TLS.
                raise RegistryError(
                    error.message, registry=str(self.ref), operation="connect", hint=error.hint
                ) from None
        return self._session

    async def _request(
        self, method: str, url: str, *, data: Any, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """Send one request (no redirects followed) through the proxy the settings name.
        Connecting and the answer's head, together, get the two timeouts' sum: a registry
        that drips its headers a byte at a time never lets the read timeout expire. An
        upload streamed from a file (a blob push) takes as long as the uplink needs, but
        each of its chunks must leave within the read timeout of the one before, and the
        answer come within it of the last: a registry that stops reading the body (or
        reads a byte now and then) fails the push instead of hanging the sync.

        Bodies come as they are stored: a blob served with ``Content-Encoding: gzip`` (the
        metadata object stores keep on a ``.tar.gz``) is the archive, not to be decoded.
        """
        via = self._proxy(url)
        upload = None
        try:
            async with asyncio.timeout(sum(self._timeouts)) as timer:
                if hasattr(data, "read"):
                    data = upload = _upload(data, timer, self._timeouts[1])
                return await self._client().request(
                    method,
                    url,
                    data=data,
                    headers={"Accept-Encoding": "identity", **headers, **via.request_headers},
                    allow_redirects=False,
                    proxy=via.url,
                    proxy_headers=via.tunnel_headers,
                    auto_decompress=False,
                )
        except TimeoutError:
            if upload is not None and upload.transport is not None:
                # Closing it would wait for the unsent bytes to leave, which they never do.
                upload.transport.abort()
            raise

    def _proxy(self, url: str) -> AiohttpProxy:
        """The proxy for ``url`` as the settings say (``HTTPS_PROXY``, ``NO_PROXY``...)."""
        from pylock.net.fetch import aiohttp_proxy

        return aiohttp_proxy(policy.proxy_for(url, self._settings), url)

    def _error(
        self,
        message: str,
        operation: str,
        status: int | None = None,
        hint: str | None = None,
        code: str = "",
    ) -> RegistryError:
        return RegistryError(
            redact(message),
            registry=str(self.ref),
            operation=operation,
            status=status,
            hint=hint,
            code=code,
        )

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        scopes: list[str] | None = None,
        body: bytes | None = None,
        body_file: Path | None = None,
        headers: Mapping[str, str] | None = None,
        follow: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request with the registry's authorization, answering one challenge.

        With ``follow``, redirects are followed (at most 5); the ``Authorization`` header
        goes only to the registry's own origin.
        """
        import aiohttp

        scopes = scopes if scopes is not None else [self._scope("pull")]
        key = " ".join(scopes)
        answered = False
        redirects = 0
        target = url
        while True:
            request_headers = dict(headers or {})
            same_origin = policy.origin(target) == policy.origin(self.ref.base)
            if same_origin:
                authorization = self._authorization(key)
                if authorization:
                    request_headers["Authorization"] = authorization
            data: Any = body
            stream = body_file.open("rb") if body_file is not None else None
            if stream is not None:
                data = stream
            try:
                response = await self._request(method, target, data=data, headers=request_headers)
            except aiohttp.ClientSSLError as error:
                # As for downloads: no CA bundle fixes a certificate for another host, or
                # an expired one.
                hint = policy.certificate_hint(
                    self.ref.hostname,
                    getattr(getattr(error, "certificate_error", None), "verify_code", None),
                    unknown_ca="set SSL_CERT_FILE to a CA bundle that includes the registry's CA",
                    named_in="remote cache reference",
                )
                # ssl.SSLError's reason: a plain-HTTP answer to a TLS hello.
                if (
                    getattr(getattr(error, "os_error", None), "reason", None)
                    == "WRONG_VERSION_NUMBER"
                ):
                    hint = (
                        "if the registry speaks plain HTTP, write the reference as "
                        f"oci+http://{self.ref.host}/..."
                    )
                raise self._error(
                    f"TLS failure talking to {self.ref.host}: {_reason(error)}",
                    operation,
                    hint=hint,
                ) from None
            except aiohttp.ClientHttpProxyError as error:
                raise self._connect_refused(error, target, operation) from None
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
                raise self._error(
                    f"cannot reach {_origin_text(target)}: {_reason(error)}", operation
                ) from None
            finally:
                if stream is not None:
                    stream.close()
            try:
                if response.status == 401 and same_origin and not answered:
                    challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                    await _drain(response, self._timeouts[1])
                    answered = True
                    async with self._shared.answering():
                        # Another client may have answered while this one waited.
                        if self._authorization(key) == request_headers.get("Authorization"):
                            await self._answer(challenge, scopes, operation)
                    continue
                if follow and response.status in _REDIRECTS:
                    redirects += 1
                    if redirects > _MAX_REDIRECTS:
                        # Named by their hosts: a storage URL's query is its credential.
                        raise self._error(
                            f"too many redirects for {url}, the last to {_origin_text(target)}",
                            operation,
                        )
                    target = self._redirect_target(target, response, operation)
                    await _drain(response, self._timeouts[1])
                    continue
                yield response
                return
            finally:
                response.release()

    def _redirect_target(
        self, current: str, response: aiohttp.ClientResponse, operation: str
    ) -> str:
        location = response.headers.get("Location")
        if not location:
            raise self._error(
                f"redirect without a Location from {_origin_text(current)}",
                operation,
                response.status,
            )
        target = self._join(current, location, operation)
        self._check_url(target, operation)
        return target

    def _join(self, base: str, location: str, operation: str) -> str:
        """``location`` (from the server) resolved against ``base``; a clean error, not a
        ValueError, for one Python cannot join (a broken IPv6). What the joined URL may
        be is :meth:`_check_url`'s to say, which both callers ask next."""
        try:
            target = urljoin(base, location)
        except ValueError:
            raise self._error(
                f"the registry sent an invalid URL: {_without_query(location)}", operation
            ) from None
        return target

    def _check_url(self, url: str, operation: str) -> None:
        """Refuse schemes other than http(s), and plain http except to loopback or when the
        registry itself is plain http (``oci+http://``)."""
        problem = url_problem(url)
        if problem is not None:  # a port out of range, a host name IDNA refuses, ...
            raise self._error(
                f"the registry sent an invalid URL ({problem}): {_without_query(url)}",
                operation,
            )
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            # aiohttp refuses them beside an Authorization header; nothing needs them.
            raise self._error(
                f"the registry sent a URL with credentials in it: {_origin_text(url)}",
                operation,
            )
        scheme = parts.scheme.lower()
        if scheme == "https":
            return
        if scheme == "http" and (self.ref.plain_http or is_loopback_host(parts.hostname)):
            return
        # The host only: a signed storage URL's query is a credential, under names (say
        # Cloudflare's ``verify``) that no redaction can know them all by.
        raise self._error(f"refusing to follow the registry to {_origin_text(url)}", operation)

    def _location(self, response: aiohttp.ClientResponse, operation: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise self._error("upload started without a Location", operation, response.status)
        target = self._join(str(response.url), location, operation)
        self._check_url(target, operation)
        return target

    def _authorization(self, key: str) -> str | None:
        """The ``Authorization`` value for the scopes ``key``: a token, else basic auth."""
        return self._authorizations.get(key) or self._authorizations.get("")

    async def _answer(self, challenge: Challenge | None, scopes: list[str], operation: str) -> None:
        """Get the authorization a ``401`` challenge asks for, for ``scopes``."""
        if challenge is None:
            raise self._error(
                f"{self.ref.host} answered 401 with no usable WWW-Authenticate", operation, 401
            )
        if challenge.scheme == "basic":
            if self._credentials is None or self._credentials.identity_token:
                raise self._error(
                    f"{self.ref.host} wants a user name and password",
                    operation,
                    401,
                    hint=self._login_hint(),
                )
            self._authorizations[""] = self._credentials.basic()
            return
        if challenge.scheme != "bearer" or not challenge.params.get("realm"):
            raise self._error(
                f"{self.ref.host} asks for unsupported authentication", operation, 401
            )
        token = await self._fetch_token(
            challenge.params["realm"], challenge.params.get("service"), scopes, operation
        )
        self._authorizations[" ".join(scopes)] = f"Bearer {token}"

    async def _fetch_token(
        self, realm: str, service: str | None, scopes: list[str], operation: str
    ) -> str:
        import aiohttp

        self._check_url(realm, "token")
        key = " ".join(scopes)
        self.token_requests[key] = self.token_requests.get(key, 0) + 1
        query: list[tuple[str, str]] = [("service", service)] if service else []
        query += [("scope", scope) for scope in scopes]
        credentials = self._credentials
        headers: dict[str, str] = {}
        try:
            form: dict[str, str] | None = None
            if credentials is not None and credentials.identity_token:
                # OAuth2: POST the refresh token as a form.
                method, url = "POST", realm
                form = dict(query)
                form.update(
                    grant_type="refresh_token",
                    refresh_token=credentials.secret,
                    client_id="pylock",
                    scope=" ".join(scopes),
                )
            else:
                if credentials is not None:
                    headers["Authorization"] = credentials.basic()
                separator = "&" if "?" in realm else "?"
                method, url = "GET", realm + (separator + urlencode(query) if query else "")
            response = await self._request(method, url, data=form, headers=headers)
            async with response:
                if (refused := self._proxy_refused(response, "token")) is not None:
                    raise refused
                if response.status != 200:
                    hint = self._login_hint() if response.status in (401, 403) else None
                    raise self._error(
                        f"the token endpoint of {self.ref.host} refused a token for "
                        f"{operation} (HTTP {response.status})",
                        "token",
                        response.status,
                        hint=hint,
                    )
                data = await self._read_bounded(response, MAX_TOKEN_RESPONSE_BYTES, "token")
        except aiohttp.ClientHttpProxyError as error:
            # A realm on another host than the registry's, which the proxy may not allow.
            raise self._connect_refused(error, url, "token") from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            raise self._error(
                f"cannot reach the token endpoint {_origin_text(realm)}: {_reason(error)}", "token"
            ) from None
        try:
            answer = json_loads(data)
        except (ValueError, RecursionError):
            answer = None
        token = None
        if isinstance(answer, dict):
            token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token or not token.isprintable() or len(token) > 65536:
            raise self._error(f"the token endpoint of {self.ref.host} answered no token", "token")
        return token

    async def _read_bounded(
        self, response: aiohttp.ClientResponse, limit: int, operation: str
    ) -> bytes:
        """A small answer (a token, a manifest, an error), at most ``limit`` bytes, whole
        within the read timeout: at the slowest pace a blob may keep, a megabyte of token
        would take ten hours, with every other download waiting for the token."""
        try:
            async with asyncio.timeout(self._timeouts[1]):
                return await self._read_small(response, limit, operation)
        except TimeoutError:
            raise self._error(
                f"the {operation} from {self.ref.host} took more than "
                f"{self._timeouts[1]:g} s to arrive",
                operation,
            ) from None

    async def _read_small(
        self, response: aiohttp.ClientResponse, limit: int, operation: str
    ) -> bytes:
        announced = response.content_length
        if announced is not None and announced > limit:
            raise self._error(
                f"{self.ref.host} answered {announced} bytes for a {operation}, more than {limit}",
                operation,
            )
        data = bytearray()
        pace = policy.Pace(policy.SLOW_BYTES, policy.SLOW_WINDOW)  # as for blobs: no drip
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise self._error(
                        f"{self.ref.host} answered more than {limit} bytes for a {operation}",
                        operation,
                    )
                pace.add(len(chunk))
        except policy.Retryable as slow:
            raise self._error(
                f"the {operation} from {self.ref.host} is {slow.reason}", operation
            ) from None
        return bytes(data)

    async def _chunks(
        self,
        response: aiohttp.ClientResponse,
        url: str,
        size: int,
        *,
        not_the_blob: Callable[[str], RegistryError] | None = None,
    ) -> AsyncIterator[bytes]:
        """The body's chunks, at most ``size`` bytes. With ``not_the_blob`` (a redirect
        target's body, whose length is the blob's exact ``size``), a body of another length
        is its error: one without a ``Content-Length`` says its length only at its end."""
        import aiohttp

        from pylock.net.fetch import body_chunks

        seen = 0
        # The origin's slowest pace: a registry that trickles bytes is given up for the
        # origin, not waited on for hours. Each chunk within the read timeout, as from the
        # origin: aiohttp's restarts with every byte, a chunked body's framing included.
        pace = policy.Pace(policy.SLOW_BYTES, policy.SLOW_WINDOW)
        try:
            async for chunk in body_chunks(response, self._timeouts[1]):
                seen += len(chunk)
                if seen > size and not_the_blob is not None:
                    raise not_the_blob(f"more than its {size} bytes")
                if seen > size:
                    raise DownloadTooLargeError(
                        f"{redact(url)} sent more than the expected {size} bytes",
                        url=redact(url),
                        limit=size,
                    )
                pace.add(len(chunk))
                yield chunk
        except policy.Retryable as slow:
            raise self._error(f"download of {url} is {slow.reason}", "pull") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise self._error(f"download of {url} broke off: {_reason(error)}", "pull") from None
        if seen != size and not_the_blob is not None:
            raise not_the_blob(f"{seen} bytes, not its {size}")

    async def _check(
        self,
        response: aiohttp.ClientResponse,
        operation: str,
        *,
        expected: tuple[int, ...],
        storage: str | None = None,
    ) -> None:
        """Raise the error for an answer not in ``expected``. ``storage`` names the host
        that answered after the registry's redirect (:func:`_storage`): its 401 or 403 is a
        refusal of the signed URL the registry sent there, which no login fixes."""
        if response.status in expected:
            return
        if (refused := self._proxy_refused(response, operation)) is not None:
            raise refused
        code = ""
        if response.status >= 400:
            code = _error_code(await _small_body(response, self._timeouts[1]))
        detail = f" ({code})" if code else ""
        if storage is not None and response.status in (401, 403):
            # The registry took the credentials and signed the URL; only it can fix that
            # its storage refuses the signature (expired, by a clock that runs ahead).
            raise self._error(
                f"{self.ref} redirected {operation} to {storage}, which refused it: "
                f"HTTP {response.status}{detail}",
                operation,
                response.status,
                hint=_STORAGE_REFUSED_HINT,
                code=code,
            )
        hint = self._login_hint() if response.status in (401, 403) else None
        location = response.headers.get("Location")
        if 300 <= response.status < 400 and location:
            # Where to (a login page, http's to https): the status alone says neither.
            with contextlib.suppress(ValueError):
                detail += f" to {_origin_text(urljoin(str(response.url), location))}"
        if response.status < 400 and _web_page(response):
            # No registry answers its API with a web page: a login page or a proxy did
            # (a refusal may be a web server's own, nginx's 401 or 413 in front of it).
            detail += ", a web page from something in front of the registry"
            hint = _NOT_THE_REGISTRY_HINT
        raise self._error(
            f"{self.ref} refused {operation}: HTTP {response.status}{detail}",
            operation,
            response.status,
            hint=hint,
            code=code,
        )

    def _connect_refused(
        self, error: aiohttp.ClientHttpProxyError, url: str, operation: str
    ) -> RegistryError:
        """The proxy's answer to ``CONNECT``, not the registry's: named as on the archive
        downloads' path, with the variable that set the proxy."""
        proxy = policy.proxy_of(url, self._settings)
        return self._refused_by(proxy, url, error.status, error.message, operation)

    def _proxy_refused(
        self, response: aiohttp.ClientResponse, operation: str
    ) -> RegistryError | None:
        """A plain-http proxy's own ``407`` (``oci+http://`` goes through it without a
        ``CONNECT``): named as the ``CONNECT`` refusal is, with the variable that set the
        proxy, not as the registry's answer. ``None`` for any other answer."""
        url = str(response.url)
        proxy = policy.answering_proxy(url, self._settings) if response.status == 407 else None
        if proxy is None:
            return None
        return self._refused_by(proxy, url, response.status, response.reason or "", operation)

    def _refused_by(
        self, proxy: policy.Proxy | None, url: str, status: int, reason: str, operation: str
    ) -> RegistryError:
        """The error for ``proxy``'s refusal to reach ``url``, whichever way it answered."""
        text = printable(redact(f"{status} {reason}".strip()))
        return self._error(
            f"{policy.proxy_named(proxy)} refused {_origin_text(url)}: HTTP {text}",
            operation,
            hint=policy.proxy_refusal_hint(proxy, status),
        )


_LOGIN_HINT = (
    "log in with `docker login HOST` (or a credential helper), or for ghcr.io set GITHUB_TOKEN"
)

#: What to do when something in front of the registry answers for it.
_NOT_THE_REGISTRY_HINT = (
    "something in front of the registry answers for it (a login page, a proxy): check the "
    "reference's host, and that this machine's credentials reach the registry itself"
)


#: What to do when a redirect target (object storage) answers a blob's pull with something else.
_NOT_THE_STORAGE_HINT = (
    "something in front of the registry's storage answers for it (a proxy, the storage's "
    "error page): check the registry's storage configuration, and that this machine "
    "reaches the storage host itself; the registry's copy is not at fault"
)


#: What to do when object storage refuses the signed URL the registry redirected to.
_STORAGE_REFUSED_HINT = (
    "the registry let this machine in, but its storage refused the signed URL the registry "
    "redirected to (expired or badly signed), which no login fixes: check the registry's "
    "storage configuration, and its clock (a skewed one signs URLs already expired)"
)


def _storage(response: aiohttp.ClientResponse, url: str) -> str | None:
    """The scheme and host that answered ``url`` in the registry's place, after its
    redirect (object storage, as a rule), or ``None`` when the registry answered itself."""
    from yarl import URL

    if response.url == URL(url):
        return None
    return _origin_text(str(response.url))


def _web_page(response: aiohttp.ClientResponse) -> bool:
    """Whether ``response`` is a web page (``text/html``, no ``Docker-Content-Digest``),
    which no answer of the registry API is."""
    return response.content_type == "text/html" and "Docker-Content-Digest" not in response.headers


def _not_the_blob(response: aiohttp.ClientResponse, sha256: str, size: int | None) -> str | None:
    """What makes ``response`` to a blob check no answer about the blob (a web page, as a
    login page answers everything; another length; another digest), or ``None``."""
    digest = response.headers.get("Docker-Content-Digest")
    length = response.content_length
    if _web_page(response):
        return "a web page (text/html)"
    if digest is not None and digest.strip() != f"sha256:{sha256}":
        return f"another digest ({printable(digest)[:80]})"
    if size is not None and length is not None and length != size:
        return f"{length} bytes, not its {size}"
    return None


def _ignore(message: str) -> None:
    pass


def _origin_text(url: str) -> str:
    """The scheme, host and port of ``url``, credentials and path left out.

    >>> _origin_text("https://u:p@[::1]:5000/v2/x"), _origin_text("http://r.example/v2/")
    ('https://[::1]:5000', 'http://r.example')
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # Only ever called on URLs checked before; never let a message raise.
        return printable(redact(url))[:200]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, bracketed as a URL writes it
    return redact(f"{parts.scheme}://{host}{':' + str(port) if port else ''}")


def _without_query(url: str) -> str:
    """A URL from the registry that does not parse, for a message: printable, redacted, its
    query and fragment left out (a signed storage URL's query is its credential).

    >>> _without_query("https://[::1/blob?verify=1700-abc#x")
    'https://[::1/blob'
    """
    return printable(redact(re.split(r"[?#]", url, maxsplit=1)[0]))[:200]


def _reason(error: BaseException) -> str:
    """An exception as a short printable reason, secrets hidden.

    >>> class ContentLengthError(Exception): ...
    >>> cut = OSError("Response payload is not completed: <ContentLengthError: 400, ...>")
    >>> cut.__cause__ = ContentLengthError()
    >>> _reason(TimeoutError()), _reason(cut)
    ('no answer in time (TimeoutError)', 'the body ended before its Content-Length')
    """
    text = policy.plain_words(error) or str(error)
    if not text and isinstance(error, TimeoutError):
        text = "no answer in time (TimeoutError)"
    elif type(error.__cause__).__name__ == "ContentLengthError":  # aiohttp's, whose repr
        text = "the body ended before its Content-Length"  # is no words for users
    text = text or type(error).__name__
    return redact("".join(ch if ch.isprintable() else "?" for ch in text))[:300]


async def _drain(response: aiohttp.ClientResponse, within: float) -> None:
    await _small_body(response, within)


async def _small_body(response: aiohttp.ClientResponse, within: float) -> bytes:
    """What of an error body (or a redirect's) comes within ``within`` seconds, at most
    64 KiB; a body whose framing never ends (aiohttp's read timeout restarts with every
    byte of it) is ``b""`` then, not a wait for ever."""
    import aiohttp

    try:
        async with asyncio.timeout(within):
            return await response.content.read(_MAX_SMALL_BODY)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return b""


#: Manifest pushes are tried this many times when a referenced blob is not (yet) known.
_MANIFEST_ATTEMPTS = 3
#: How often a push asks whether a blob is there when the registry answers 5xx.
_BLOB_CHECK_ATTEMPTS = 3
_BLOB_NOT_YET = frozenset({"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID"})


def _error_code(body: bytes) -> str:
    """The first ``errors[].code`` of a distribution error body, or the ``<Code>`` of object
    storage's XML error (S3's, GCS's, Azure's), printable, or ``""``.

    >>> _error_code(b'{"errors": [{"code": "DENIED"}]}'), _error_code(b"<Code>AccessDenied</Code>")
    ('DENIED', 'AccessDenied')
    """
    try:
        answer = json_loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        xml = re.search(rb"<Code>([A-Za-z]{1,64})</Code>", body)
        return xml.group(1).decode() if xml else ""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        if isinstance(code, str) and re.fullmatch(r"[A-Z_]{1,64}", code):
            return code
    return ""


def _upload(stream: Any, timer: asyncio.Timeout, timeout: float) -> Any:
    """``stream``'s bytes as an aiohttp body that pushes ``timer`` back by ``timeout`` with
    each chunk that leaves, and keeps the connection's transport (to abort a stalled one).

    The last chunk is handed over long before it leaves the machine: the system's send
    buffer for one connection grows to megabytes (4 MiB on Linux), which a slow uplink
    takes longer than the read timeout to drain (at 50 KiB/s, 80 s). So the body is done
    only once the bytes still buffered have left, as far as the system tells
    (:func:`_unsent`), each step pushing ``timer`` back: the answer's deadline, and
    aiohttp's read timeout, which starts when the body is done, run from then.
    """
    from aiohttp import payload

    class Upload(payload.Payload):
        transport: asyncio.Transport | None = None

        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            raise TypeError("an upload is bytes")

        async def write(self, writer: Any) -> None:
            self.transport = getattr(writer, "transport", None)
            loop = asyncio.get_running_loop()
            while chunk := stream.read(_CHUNK):
                timer.reschedule(loop.time() + timeout)
                await writer.write(chunk)
            timer.reschedule(loop.time() + timeout)
            if self.transport is not None:
                await _while_draining(self.transport, timer, timeout)

    return Upload(stream, content_type="application/octet-stream")


async def _while_draining(
    transport: asyncio.Transport, timer: asyncio.Timeout, timeout: float
) -> None:
    """Return once no bytes wait to leave through ``transport`` (or that cannot be told),
    pushing ``timer`` back by ``timeout`` each time another chunk's worth has left, as the
    chunks before had to: bytes that stop leaving, or leave a few at a time, let it expire."""
    loop = asyncio.get_running_loop()
    # From 10 ms up: a fast registry drains the buffer in a few, and waits for no more.
    step, longest = 0.01, min(0.5, timeout / 4)
    mark = _unsent(transport)
    while mark:
        await asyncio.sleep(step)
        step = min(step * 2, longest)
        now = _unsent(transport)
        if now is None:
            return
        if now <= mark - _CHUNK or not now:
            try:
                timer.reschedule(loop.time() + timeout)
            except RuntimeError:
                return  # the answer came meanwhile (an early one): its deadline is over
            mark = now


def _unsent(transport: asyncio.Transport) -> int | None:
    """The bytes ``transport`` has yet to see leave: its own buffer's, and those its socket
    holds unacknowledged where the system says (Linux's ``SIOCOUTQ``, macOS's
    ``SO_NWRITE``); ``None`` once the transport is closed."""
    if transport.is_closing():
        return None
    try:
        held = transport.get_write_buffer_size()
    except (AttributeError, NotImplementedError, RuntimeError):
        held = 0
    sock = transport.get_extra_info("socket")
    fileno = sock.fileno() if sock is not None else -1
    if fileno < 0:
        return held
    return held + _socket_unsent(sock, fileno)


def _socket_unsent(sock: Any, fileno: int) -> int:
    """Bytes the system holds for the socket ``fileno`` still to send (or to see
    acknowledged); 0 where it cannot tell (Windows)."""
    import sys

    try:
        if sys.platform == "darwin":
            return int(sock.getsockopt(0xFFFF, 0x1024))  # SOL_SOCKET, SO_NWRITE
        if sys.platform.startswith("linux"):
            import fcntl
            import struct
            import termios

            # SIOCOUTQ is TIOCOUTQ's number on Linux.
            answer = fcntl.ioctl(fileno, termios.TIOCOUTQ, b"\0\0\0\0")
            return max(0, int(struct.unpack("i", answer)[0]))
    except (OSError, ValueError, AttributeError):
        pass
    return 0


__all__ = [
    "ARTIFACT_TYPE",
    "EMPTY_CONFIG",
    "Challenge",
    "RegistryClient",
    "RegistryRef",
    "RemoteCache",
    "artifact_manifest",
    "layer_media_type",
    "parse_challenge",
    "parse_reference",
    "tag_for",
]
