"""Issue 13, phase 1: the OCI registry client against a real registry, docker-style
credentials, the bearer token flow, redirects to object storage, TLS, and hostile registries.

The real registry is Debian's ``docker-registry`` (distribution 2.8) on loopback, with TLS
from a CA the session makes (fixtures at the end of ``tests/conftest.py``). Hostile
registries are :class:`Hostile` aiohttp handlers, each one stopping on its own after
``_SERVER_LIMIT`` bytes so that a client that does not stop fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import attrs
import pytest
from aiohttp import web

from pylock.errors import (
    DownloadTooLargeError,
    HashMismatchError,
    PylockError,
    RegistryBlobNotFoundError,
    RegistryError,
    UsageError,
)
from pylock.net.dockerauth import Credentials, docker_config_path, find_credentials, run_helper
from pylock.net.registry import (
    ANNOTATION_ORIGIN,
    ARTIFACT_TYPE,
    EMPTY_CONFIG,
    MAX_MANIFEST_BYTES,
    RegistryClient,
    RegistryRef,
    RemoteCache,
    artifact_manifest,
    parse_challenge,
    parse_reference,
    tag_for,
)
from pylock.settings import Settings
from pylock.versions import Flavor
from tests.loopback import LoggedRequest, LoopbackServer, SocketServer
from tests.registry import (
    PASSWORD,
    USER,
    RealRegistry,
    RedirectingFront,
    TestPki,
    TokenServer,
    basic_auth,
    docker_login,
    write_docker_config,
)

T = TypeVar("T")
_SERVER_LIMIT = 64 << 20

#: Settings as the CLI would read them from this environment.
settings_of = Settings.from_environ


def run(coroutine: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coroutine

    return asyncio.run(wrapper())


def blob(label: str, size: int = 50_000) -> tuple[bytes, str]:
    """Bytes no other test pushes (the session registry is shared), and their sha256."""
    data = (label.encode() + secrets.token_bytes(16)) * (size // (len(label) + 16) + 1)
    data = data[:size]
    return data, hashlib.sha256(data).hexdigest()


def client(
    registry: RealRegistry | str,
    repository: str,
    home: Path,
    pki: TestPki | None = None,
    *,
    credentials: Credentials | None = None,
    lookup: bool = False,
    environ: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> RegistryClient:
    reference = registry.oci(repository) if isinstance(registry, RealRegistry) else registry
    env = dict(environ or {})
    if pki is not None:
        env.setdefault("SSL_CERT_FILE", str(pki.ca))
    return RegistryClient(
        parse_reference(reference),
        settings=settings_of(env),
        home=home,
        credentials=credentials,
        lookup_credentials=lookup,
        connect_timeout=5,
        read_timeout=5,
        debug=notes.append if notes is not None else None,
    )


def no_secret(*texts: object, secrets_: tuple[str, ...] = (PASSWORD,)) -> None:
    for text in texts:
        for secret in secrets_:
            assert secret not in str(text), text


PUSHER = Credentials(USER, PASSWORD)


def pusher(
    registry: RealRegistry,
    pki: TestPki,
    home: Path,
    repository: str = "pylock/a",
    notes: list[str] | None = None,
) -> RegistryClient:
    """A client of ``repository`` on ``registry`` that pushes as :data:`PUSHER`."""
    return client(registry, repository, home, pki, credentials=PUSHER, notes=notes)


# -- references, tags, manifests, challenges (pure) ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci://ghcr.io/acme/pythons", RegistryRef("ghcr.io", "acme/pythons")),
        ("oci://Registry.Corp:5000/a/b-c/d", RegistryRef("registry.corp:5000", "a/b-c/d")),
        ("oci+http://127.0.0.1:5000/cache", RegistryRef("127.0.0.1:5000", "cache", True)),
        ("oci://[::1]:5000/cache/", RegistryRef("[::1]:5000", "cache")),
    ],
)
def test_parse_reference(text: str, expected: RegistryRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://ghcr.io/acme/pythons",
        "oci://ghcr.io",
        "oci://ghcr.io/",
        "oci://ghcr.io/Acme/Pythons",
        "oci://ghcr.io:99999/acme",
        "oci://gh cr.io/acme",
        "oci://ghcr.io/acme//x",
        "ghcr.io/acme",
    ],
)
def test_parse_reference_refuses_bad_ones_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(text)
    assert caught.value.hint


def test_parse_reference_refuses_and_redacts_credentials() -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(f"oci://me:{PASSWORD}@ghcr.io/acme")
    no_secret(caught.value, caught.value.hint)
    assert "docker login" in str(caught.value.hint)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("cpython", "3.12.4", "20240713", "x86_64-unknown-linux-gnu", None),
         "cpython-3.12.4-20240713-x86_64-unknown-linux-gnu"),
        (("cpython", "3.13.0", "20241016", "aarch64-apple-darwin", "freethreaded+pgo"),
         "cpython-3.13.0-20241016-aarch64-apple-darwin-freethreaded_pgo"),
        (("pypy", "3.10 /x", "v7.3.17", "win64", None), "pypy-3.10__x-v7.3.17-win64"),
        (("-x", "1", "", "p", None), "_-x-1-p"),
    ],
)  # fmt: skip
def test_tag_for(parts: tuple[str, str, str, str, str | None], expected: str) -> None:
    assert tag_for(*parts) == expected


def test_tag_for_always_fits_the_oci_grammar() -> None:
    import re

    grammar = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
    for parts in [("é" * 300, "1", "2", "p"), (".", ".", ".", "."), ("a", "b", "c", "+" * 200)]:
        assert grammar.fullmatch(tag_for(*parts))


def test_two_flavors_of_one_build_get_their_own_tags() -> None:
    # One tag for both would leave the first manifest untagged, and a registry's
    # garbage collection (--delete-untagged) would delete its blob.
    from pylock.sync.archives import remote_tag
    from tests.syncproject import make_build

    build = make_build("app", "20990101")
    python = build.python()
    artifact = python.artifacts[0]
    stripped = remote_tag(python, artifact)
    other = attrs.evolve(python, flavor=Flavor.INSTALL_ONLY)
    full = remote_tag(other, attrs.evolve(artifact, sha256="cd" * 32))
    assert stripped != full
    assert stripped.endswith(f"-install_only_stripped-{artifact.sha256[:12]}")
    assert full.endswith("-install_only-cdcdcdcdcdcd")
    grammar = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
    long = tag_for("x" * 300, sha256="ef" * 32)
    assert grammar.fullmatch(long) and long.endswith("-efefefefefef")


def test_artifact_manifest_shape() -> None:
    sha = "ab" * 32
    manifest = json.loads(
        artifact_manifest(
            sha256=sha,
            size=1234,
            filename="cpython-3.12.4.tar.zst",
            lock_name="py312",
            origin_url=f"https://me:{PASSWORD}@example.com/x.tar.zst?sig=abc",
        )
    )
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == EMPTY_CONFIG
    config_bytes = base64.b64decode(str(EMPTY_CONFIG["data"]))
    assert EMPTY_CONFIG["digest"] == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    (layer,) = manifest["layers"]
    assert layer["digest"] == f"sha256:{sha}" and layer["size"] == 1234
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.title"] == "cpython-3.12.4.tar.zst"
    assert annotations["dev.pylock.lock.name"] == "py312"
    assert annotations["dev.pylock.sha256"] == sha and annotations["dev.pylock.size"] == "1234"
    assert PASSWORD not in annotations[ANNOTATION_ORIGIN]
    assert "abc" not in annotations[ANNOTATION_ORIGIN]
    with pytest.raises(ValueError, match="sha256"):
        artifact_manifest(sha256="XY", size=1, filename="f", lock_name="n", origin_url="u")


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        'Bearer realm="https://a/token',  # unterminated
        "Bearer ,,,===",
        '"Bearer" realm=x',
        "Bearer " + "a=" * 100_000,
        "Bearer realm=" + "x" * 1_000_000,
    ],
)
def test_parse_challenge_hostile_headers_end_cleanly(header: str) -> None:
    challenge = parse_challenge(header)
    if challenge is not None:
        assert challenge.scheme.isalpha()
        assert len(challenge.params.get("realm", "")) <= 8192


def test_parse_challenge_quotes_and_escapes() -> None:
    challenge = parse_challenge(
        r'Bearer realm="https://auth.example/token",service="reg\"x",scope="repository:a/b:pull,push"'
    )
    assert challenge is not None
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": 'reg"x',
        "scope": "repository:a/b:pull,push",
    }


# -- the real registry: TLS + htpasswd --------------------------------------------------------


def test_builders_pushing_the_same_blob_at_once_all_succeed(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    # A fleet's runners push the same archive (and every manifest the same empty config)
    # at the same moment: whoever loses the race still ends with the blob there, no error.
    async def one(data: bytes, sha: str) -> None:
        async with pusher(htpasswd_registry, registry_pki, tmp_path, "pylock/race") as registry:
            await registry.push_blob(data, sha)

    async def scenario() -> bool:
        for round_ in range(5):
            data, sha = blob(f"race-{round_}", size=500_000)
            await asyncio.gather(*(one(data, sha) for _ in range(4)))
        async with pusher(htpasswd_registry, registry_pki, tmp_path, "pylock/race") as registry:
            return await registry.has_blob(sha)

    assert run(scenario())


def test_push_blob_manifest_and_pull_back(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    data, sha = blob("roundtrip")
    origin = f"https://me:{PASSWORD}@github.example/cpython.tar.gz"
    manifest = artifact_manifest(
        sha256=sha, size=len(data), filename="cpython.tar.gz", lock_name="py", origin_url=origin
    )
    archive = tmp_path / "cpython.tar.gz"
    archive.write_bytes(data)

    async def scenario() -> tuple[bool, bool, str, bytes, bytes]:
        async with pusher(htpasswd_registry, registry_pki, tmp_path) as registry:
            before = await registry.has_blob(sha)
            await registry.push_blob(archive, sha)  # a file: streamed, monolithic
            after = await registry.has_blob(sha)
            digest = await registry.push_manifest("cpython-3.12.4-x", manifest)
            by_tag = await registry.get_manifest("cpython-3.12.4-x")
            by_digest = await registry.get_manifest(digest)
            await registry.download_blob(sha, tmp_path / "back", size=len(data))
            return before, after, digest, by_tag, by_digest

    before, after, digest, by_tag, by_digest = run(scenario())
    assert (before, after) == (False, True)
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert by_tag == by_digest == manifest
    assert json.loads(by_tag)["layers"][0]["digest"] == f"sha256:{sha}"
    assert PASSWORD not in by_tag.decode()
    assert (tmp_path / "back").read_bytes() == data
    assert not list(tmp_path.glob(".back.part-*"))


def test_cross_repository_mount(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    data, sha = blob("mount")
    notes: list[str] = []

    async def scenario() -> tuple[bool, bool]:
        async with pusher(htpasswd_registry, registry_pki, tmp_path, "pylock/source") as source:
            await source.push_blob(data, sha)
        async with pusher(
            htpasswd_registry, registry_pki, tmp_path, "pylock/target", notes=notes
        ) as target:
            before = await target.has_blob(sha)
            await target.push_blob(data[:10], sha, mount_from="pylock/source")
            return before, await target.has_blob(sha)

    # Only a mount can succeed: the bytes given would not match the digest on upload.
    assert run(scenario()) == (False, True)
    assert any("mounted" in note for note in notes)


def test_upload_of_wrong_bytes_is_refused(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    data, sha = blob("wrong-upload")

    async def scenario() -> None:
        async with pusher(htpasswd_registry, registry_pki, tmp_path) as registry:
            await registry.push_blob(data + b"x", sha)

    with pytest.raises(RegistryError) as caught:
        run(scenario())
    assert caught.value.status == 400 and caught.value.operation == "push"
    assert "DIGEST_INVALID" in str(caught.value)


def test_a_missing_blob_is_a_distinct_not_found(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    _, sha = blob("never-pushed")

    async def scenario() -> bool:
        async with pusher(htpasswd_registry, registry_pki, tmp_path) as registry:
            exists = await registry.has_blob(sha)
            await registry.download_blob(sha, tmp_path / "x", size=10)
            return exists

    with pytest.raises(RegistryBlobNotFoundError) as caught:
        run(scenario())
    assert caught.value.status == 404 and caught.value.digest == sha
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.part-*"))


@pytest.mark.parametrize("credentials", [None, Credentials(USER, "not-" + PASSWORD)])
def test_basic_auth_refused_is_a_401_without_secrets(
    htpasswd_registry: RealRegistry,
    registry_pki: TestPki,
    tmp_path: Path,
    credentials: Credentials | None,
) -> None:
    _, sha = blob("denied")

    async def scenario() -> bool:
        async with client(htpasswd_registry, "pylock/a", tmp_path, registry_pki,
                          credentials=credentials) as registry:  # fmt: skip
            return await registry.has_blob(sha)

    with pytest.raises(RegistryError) as caught:
        run(scenario())
    assert caught.value.status == 401
    assert "docker login" in str(caught.value.hint)
    no_secret(caught.value, caught.value.hint, repr(credentials), secrets_=(PASSWORD, "not-"))


def test_tls_needs_the_ca_and_accepts_it_from_ssl_cert_file(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    async def probe(environ: dict[str, str]) -> bool:
        async with client(htpasswd_registry, "pylock/a", tmp_path, None, credentials=PUSHER,
                          environ=environ) as registry:  # fmt: skip
            return await registry.has_blob("00" * 32)

    with pytest.raises(RegistryError) as caught:
        run(probe({}))
    assert caught.value.status is None
    assert "SSL_CERT_FILE" in str(caught.value.hint)
    assert run(probe({"SSL_CERT_FILE": str(registry_pki.ca)})) is False


def test_an_unreachable_registry_is_a_registry_error(registry_pki: TestPki, tmp_path: Path) -> None:
    from tests.registry import free_port

    async def probe() -> bool:
        async with client(f"oci://127.0.0.1:{free_port()}/a", "", tmp_path, registry_pki) as r:
            return await r.has_blob("00" * 32)

    with pytest.raises(RegistryError) as caught:
        run(probe())
    assert caught.value.status is None and caught.value.operation == "a blob check"


# -- the real registry: bearer tokens -----------------------------------------------------------


def test_bearer_flow_anonymous_pull_authenticated_push_and_cached_tokens(
    token_registry: RealRegistry, token_server: TokenServer, registry_pki: TestPki, tmp_path: Path
) -> None:
    data, sha = blob("bearer")
    first_request = len(token_server.requests)

    async def push() -> dict[str, int]:
        async with client(token_registry, "pylock/tok", tmp_path, registry_pki,
                          credentials=PUSHER) as registry:  # fmt: skip
            await registry.push_blob(data, sha)
            manifest = artifact_manifest(
                sha256=sha, size=len(data), filename="a.tar.gz", lock_name="n", origin_url="o"
            )
            await registry.push_manifest("t1", manifest)
            await registry.push_manifest("t2", manifest)
            return dict(registry.token_requests)

    async def pull() -> tuple[dict[str, int], bool]:
        async with client(token_registry, "pylock/tok", tmp_path, registry_pki) as registry:
            for index in range(3):
                await registry.download_blob(sha, tmp_path / f"pulled{index}", size=len(data))
            return dict(registry.token_requests), await registry.has_blob(sha)

    pushed = run(push())
    # One token per scope, however many requests used it.
    assert pushed == {"repository:pylock/tok:pull": 1, "repository:pylock/tok:pull,push": 1}
    pulled, exists = run(pull())
    assert pulled == {"repository:pylock/tok:pull": 1} and exists
    assert (tmp_path / "pulled2").read_bytes() == data
    asked = token_server.requests[first_request:]
    assert len(asked) == 3
    assert ["Authorization" in request.headers for request in asked] == [True, True, False]
    assert unquote(asked[1].query).endswith("scope=repository:pylock/tok:pull,push")


def test_anonymous_push_is_refused_with_a_401(
    token_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    data, sha = blob("anonymous-push")

    async def scenario() -> None:
        async with client(token_registry, "pylock/tok", tmp_path, registry_pki) as registry:
            await registry.push_blob(data, sha)

    with pytest.raises(RegistryError) as caught:
        run(scenario())
    assert (caught.value.status, caught.value.operation) == (401, "push")


def test_wrong_password_at_the_token_endpoint(
    token_registry: RealRegistry, token_server: TokenServer, registry_pki: TestPki, tmp_path: Path
) -> None:
    wrong = "wr0ng-" + PASSWORD

    async def scenario() -> bool:
        async with client(token_registry, "pylock/tok", tmp_path, registry_pki,
                          credentials=Credentials(USER, wrong)) as registry:  # fmt: skip
            return await registry.has_blob("00" * 32)

    with pytest.raises(RegistryError) as caught:
        run(scenario())
    assert (caught.value.status, caught.value.operation) == (401, "token")
    no_secret(caught.value, caught.value.hint, repr(caught.value.__dict__), secrets_=(wrong,))
    no_secret(caught.value, secrets_=tuple(token_server.issued))


# -- redirects to object storage ----------------------------------------------------------------


def test_blob_redirect_drops_the_authorization_header(
    htpasswd_registry: RealRegistry,
    registry_pki: TestPki,
    redirecting_front: RedirectingFront,
    tmp_path: Path,
) -> None:
    proxy, host = redirecting_front, redirecting_front.blob_host
    data, sha = blob("redirected")

    async def scenario() -> None:
        async with pusher(htpasswd_registry, registry_pki, tmp_path) as registry:
            await registry.push_blob(data, sha)
        async with client(f"oci://127.0.0.1:{proxy.port}/pylock/a", "", tmp_path, registry_pki,
                          credentials=PUSHER) as registry:  # fmt: skip
            await registry.download_blob(sha, tmp_path / "blob", size=len(data))

    run(scenario())
    assert (tmp_path / "blob").read_bytes() == data
    assert any("Authorization" in request.headers for request in proxy.requests)
    assert [request.path.startswith("/blobs/") for request in host.requests] == [True]
    assert all("Authorization" not in request.headers for request in host.requests)


# -- docker config and credential helpers ------------------------------------------------------


def test_docker_config_auths_are_used_against_the_real_registry(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    docker_login(home, htpasswd_registry.host)
    data, sha = blob("auths")

    async def scenario() -> bool:
        async with client(htpasswd_registry, "pylock/a", home, registry_pki, lookup=True) as r:
            await r.push_blob(data, sha)
            return await r.has_blob(sha)

    assert run(scenario())


def test_docker_config_env_wins_over_home(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    docker_login(home, "r.example", "home", "a")
    write_docker_config(
        elsewhere, {"auths": {"https://r.example/v1/": {"auth": basic_auth("env", "b")}}}
    )
    environ = {"DOCKER_CONFIG": str(elsewhere)}
    assert docker_config_path(settings_of(environ), home) == elsewhere / "config.json"
    found = find_credentials("r.example", settings=settings_of(environ), home=home)
    assert found is not None and (found.username, found.secret) == ("env", "b")
    found = find_credentials("r.example", settings=settings_of({}), home=home)
    assert found is not None and found.username == "home"
    assert find_credentials("other.example", settings=settings_of({}), home=home) is None


def test_identity_token_and_docker_hub_key(tmp_path: Path) -> None:
    write_docker_config(tmp_path / ".docker", {"auths": {
        "https://index.docker.io/v1/": {"auth": basic_auth("hub", "x")},
        "r.example:5000": {"identitytoken": "refresh-me"},
    }})  # fmt: skip
    hub = find_credentials("registry-1.docker.io", settings=settings_of({}), home=tmp_path)
    assert hub is not None and hub.username == "hub"
    token = find_credentials("r.example:5000", settings=settings_of({}), home=tmp_path)
    assert token is not None and token.identity_token and token.secret == "refresh-me"
    assert "refresh-me" not in repr(token)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b"{" * 100_000,
        b'{"auths": {"r.example": {"auth": "%%%not base64"}}}',
        b'{"auths": {"r.example": {"auth": "' + base64.b64encode(b"no-colon") + b'"}}}',
        b'{"auths": "x", "credHelpers": 3, "credsStore": null}',
        b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    ],
)
def test_hostile_docker_config_means_no_credentials(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_bytes(content)
    notes: list[str] = []
    assert (
        find_credentials("r.example", settings=settings_of({}), home=tmp_path, debug=notes.append)
        is None
    )
    if content.startswith((b"{not", b"[", b"{{", b'{"pad')):
        assert notes


def test_credentials_no_header_can_carry_are_passed_over(tmp_path: Path) -> None:
    # JSON may spell a lone surrogate, and an environment variable with a byte no UTF-8
    # has reads as one: Basic auth then ended the sync in a UnicodeEncodeError.
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_bytes(
        b'{"auths": {"ghcr.io": {"username": "u", "password": "\\ud800"}}}'
    )
    notes: list[str] = []
    environ = {"GITHUB_TOKEN": "ghp_good", "GITHUB_ACTOR": "octocat"}
    found = find_credentials(
        "ghcr.io", settings=settings_of(environ), home=tmp_path, debug=notes.append
    )
    assert found is not None and found.source == "GITHUB_TOKEN"  # the next in line
    assert notes == ["ignoring the credentials from auths: not text"]
    environ["GITHUB_TOKEN"] = "ghp_\udcff"
    assert find_credentials("ghcr.io", settings=settings_of(environ), home=tmp_path) is None


def test_github_token_only_for_ghcr_and_only_as_a_fallback(tmp_path: Path) -> None:
    environ = {"GITHUB_TOKEN": "ghp_secret", "GITHUB_ACTOR": "octocat"}
    found = find_credentials("ghcr.io", settings=settings_of(environ), home=tmp_path)
    assert found is not None and (found.username, found.secret) == ("octocat", "ghp_secret")
    assert (
        find_credentials("GHCR.IO", settings=settings_of({"GITHUB_TOKEN": "t"}), home=tmp_path)
        is not None
    )
    for host in ("ghcr.io.evil.example", "evilghcr.io", "docker.io", "ghcr.io:8443"):
        assert find_credentials(host, settings=settings_of(environ), home=tmp_path) is None, host
    assert find_credentials("ghcr.io", settings=settings_of({}), home=tmp_path) is None
    docker_login(tmp_path, "ghcr.io", "me", "pat")
    configured = find_credentials("ghcr.io", settings=settings_of(environ), home=tmp_path)
    assert configured is not None and configured.secret == "pat"


HELPER = """#!/bin/sh
read server
echo "$server" >> "{log}"
case "$1:$server" in
  get:{host}) printf '%s' '{answer}' ;;
  *) echo "credentials not found in native keychain" >&2; exit 1 ;;
esac
"""


def make_helper(folder: Path, name: str, host: str, answer: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    script = folder / f"docker-credential-{name}"
    script.write_text(HELPER.format(log=log, host=host, answer=answer))
    script.chmod(0o755)
    return log


posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the fake helper is a sh script")


@posix_only
@pytest.mark.parametrize("field", ["credHelpers", "credsStore"])
def test_credential_helpers_against_the_real_registry(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path, field: str
) -> None:
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    answer = json.dumps({"ServerURL": htpasswd_registry.host, "Username": USER, "Secret": PASSWORD})
    log = make_helper(bin_dir, "test", htpasswd_registry.host, answer)
    config: dict[str, Any] = {"credsStore": "test"} if field == "credsStore" else {
        "credHelpers": {htpasswd_registry.host: "test"}}  # fmt: skip
    # A helper wins over auths, as in docker.
    config["auths"] = {htpasswd_registry.host: {"auth": basic_auth(USER, "stale")}}
    write_docker_config(home / ".docker", config)
    data, sha = blob(field)
    environ = {"PATH": str(bin_dir)}

    async def scenario() -> bool:
        async with client(htpasswd_registry, "pylock/a", home, registry_pki, lookup=True,
                          environ=environ) as registry:  # fmt: skip
            await registry.push_blob(data, sha)
            return await registry.has_blob(sha)

    assert run(scenario())
    assert log.read_text().splitlines()[0] == htpasswd_registry.host


@posix_only
@pytest.mark.parametrize(
    ("answer", "exists"),
    [
        ('{"Username": "u", "Secret": "s"}', True),
        ('{"Username": "<token>", "Secret": "idtoken"}', True),
        ("not json", True),
        ('{"Username": "u"}', True),
        ('["u", "s"]', True),
        ("", False),  # missing helper
    ],
)
def test_run_helper_answers(tmp_path: Path, answer: str, exists: bool) -> None:
    if exists:
        make_helper(tmp_path, "t", "r.example", answer)
    notes: list[str] = []
    found = run_helper(
        "t",
        "r.example",
        settings=settings_of({"PATH": str(tmp_path)}),
        debug=notes.append,
    )
    if answer.startswith('{"Username": "u", "Secret"'):
        assert found == Credentials("u", "s", source="credential helper docker-credential-t")
    elif "<token>" in answer:
        assert found is not None and found.identity_token and found.secret == "idtoken"
    else:
        assert found is None and notes
    # A server the helper does not know: exit 1, no credentials, no crash.
    assert run_helper("t", "other.example", settings=settings_of({"PATH": str(tmp_path)})) is None


@posix_only
def test_helper_that_hangs_or_floods_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pylock.net.dockerauth as dockerauth

    script = tmp_path / "docker-credential-flood"
    script.write_text("#!/bin/sh\nhead -c 3000000 /dev/zero\n")
    script.chmod(0o755)
    slow = tmp_path / "docker-credential-slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(dockerauth, "HELPER_TIMEOUT", 0.5)
    environ = {"PATH": str(tmp_path)}
    notes: list[str] = []
    assert (
        run_helper("flood", "r.example", settings=settings_of(environ), debug=notes.append) is None
    )
    assert (
        run_helper("slow", "r.example", settings=settings_of(environ), debug=notes.append) is None
    )
    assert (
        run_helper("../../bin/sh", "r.example", settings=settings_of(environ), debug=notes.append)
        is None
    )
    assert len(notes) == 3


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_directory_as_the_docker_config_means_no_credentials(tmp_path: Path) -> None:
    """Registry attack: a FIFO as ~/.docker/config.json blocked the sync for ever, where
    not even SIGTERM ended it (the config is read as the registry client is made)."""
    import os
    import threading

    (tmp_path / ".docker").mkdir()
    config = tmp_path / ".docker" / "config.json"
    for make in (os.mkfifo, os.mkdir):
        make(config)
        notes: list[str] = []
        found: list[Credentials | None] = []

        def look(notes: list[str] = notes, found: list[Credentials | None] = found) -> None:
            found.append(
                find_credentials(
                    "r.example", settings=settings_of({}), home=tmp_path, debug=notes.append
                )
            )

        reader = threading.Thread(target=look, daemon=True)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "reading the config blocked"
        assert found == [None]
        assert any(f"ignoring {config}: not a regular file" in note for note in notes), notes
        config.unlink() if make is os.mkfifo else config.rmdir()


@posix_only
def test_cancelled_helpers_are_killed_and_no_more_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry attack: SIGTERM waited up to 30 s for a hung credsStore (a download thread
    was waiting for it), and the helper outlived pylock."""
    import os
    import threading
    import time

    import pylock.net.dockerauth as dockerauth

    monkeypatch.setattr(dockerauth, "_cancelled", threading.Event())  # this test's own
    pid_file = tmp_path / "helper.pid"
    slow = tmp_path / "docker-credential-slow"
    slow.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 300\n")
    slow.chmod(0o755)
    settings = settings_of({"PATH": str(tmp_path)})
    answers: list[Credentials | None] = []
    asker = threading.Thread(
        target=lambda: answers.append(run_helper("slow", "r.example", settings=settings)),
        daemon=True,
    )
    asker.start()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the helper never started"
        time.sleep(0.02)
    started = time.monotonic()
    dockerauth.cancel_helpers()
    asker.join(10)
    assert not asker.is_alive() and answers == [None]
    assert time.monotonic() - started < 5  # not the helper's 30 s
    pid = int(pid_file.read_text())
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Once cancelled, no helper starts at all, until a new run's remote cache is made.
    pid_file.unlink()
    assert run_helper("slow", "r.example", settings=settings) is None
    assert not pid_file.exists()
    _remote(tmp_path)
    assert not dockerauth._cancelled.is_set()


@posix_only
def test_sigterm_while_a_credential_helper_hangs_ends_the_sync_and_the_helper(
    sync_project: Any, app_a: Any, tmp_path: Path
) -> None:
    """Registry attack, end to end: `docker stop` on a sync whose credsStore hangs took
    27 s to end it (the helper's timeout), and a SIGKILL then left the helper running."""
    import os
    import signal
    import subprocess
    import time

    from tests.syncproject import signal_when_ready

    sync_project.lock(app_a)
    sync_project.serve(app_a)
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    pid_file = tmp_path / "helper.pid"
    hang = helpers / "docker-credential-hang"
    hang.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 300\n")
    hang.chmod(0o755)
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"credsStore": "hang"}', encoding="utf-8")
    sync_project.environ.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(helpers), os.environ.get("PATH", "")]),
    )
    sync_project.environ.pop("DOCKER_CONFIG", None)
    process = sync_project.popen(
        sync_project.sync_command("--remote-cache", "oci+http://127.0.0.1:9/r")
    )

    def helper_started(process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the helper never started"
            time.sleep(0.02)

    took, code, err = signal_when_ready(process, helper_started, signal.SIGTERM, timeout=20)
    assert code == 143, err
    assert took < 5, err  # not the helper's 30 s
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


# -- hostile registries --------------------------------------------------------------------


Handler = Callable[["Hostile", web.Request], Awaitable[web.StreamResponse]]


class Hostile(LoopbackServer):
    """A registry that answers with ``handler``; logs every request."""

    def __init__(self, handler: Handler, pki: TestPki | None = None) -> None:
        super().__init__(tls=pki.server_context() if pki is not None else None)
        self.handler = handler
        self.requests: list[LoggedRequest] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(LoggedRequest.of(request))
        return await self.handler(self, request)

    def ref(self) -> str:
        scheme = "oci" if self.tls is not None else "oci+http"
        return f"{scheme}://127.0.0.1:{self.port}/pylock/x"


async def endless(request: web.Request, *, length: int | None = None) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": str(length)} if length else {})
    await response.prepare(request)
    sent = 0
    try:
        while sent < _SERVER_LIMIT:
            await response.write(b"\0" * 65536)
            sent += 65536
    except (ConnectionError, RuntimeError):
        pass
    return response


def hostile(handler: Handler) -> Iterator[Hostile]:
    with Hostile(handler) as server:
        yield server


def pull(
    server: Hostile,
    tmp_path: Path,
    sha: str = "00" * 32,
    size: int = 1000,
    *,
    registry: str | None = None,
) -> None:
    reference = registry or server.ref()

    async def scenario() -> None:
        async with client(reference, "", tmp_path, credentials=PUSHER) as registry:
            await registry.download_blob(sha, tmp_path / "out", size=size)

    run(scenario())


@pytest.mark.parametrize("announce", [None, 10**12])
def test_endless_blob_body_is_bounded_by_the_expected_size(
    tmp_path: Path, announce: int | None
) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return await endless(request, length=announce)

    for server in hostile(handler):
        with pytest.raises(DownloadTooLargeError) as caught:
            pull(server, tmp_path, size=100_000)
        assert caught.value.limit == 100_000
    assert not list(tmp_path.iterdir())


def test_a_wrong_blob_is_refused_by_hash_and_leaves_nothing(tmp_path: Path) -> None:
    data, sha = blob("right")

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * len(data))

    for server in hostile(handler):
        with pytest.raises(HashMismatchError):
            pull(server, tmp_path, sha=sha, size=len(data))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("status", [403, 500, 503])
def test_error_statuses_carry_status_and_operation(tmp_path: Path, status: int) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        body = {"errors": [{"code": "DENIED", "message": "x" * 100_000}]}
        return web.json_response(body, status=status)

    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert (caught.value.status, caught.value.operation) == (status, "pull")
        assert len(str(caught.value)) < 300


def token_endpoint(answer: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Handler:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            return await answer(request)
        realm = f"http://127.0.0.1:{server.port}/token"
        challenge = f'Bearer realm="{realm}",service="x",scope="repository:pylock/x:pull"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    return handler


def test_a_401_loop_ends_after_one_token(tmp_path: Path) -> None:
    async def good_token(request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": "loop-token-secret"})

    for server in hostile(token_endpoint(good_token)):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert caught.value.status == 401
        no_secret(caught.value, secrets_=("loop-token-secret", PASSWORD))
        assert [r.path for r in server.requests].count("/token") == 1
        assert len(server.requests) == 3
        assert server.requests[2].headers["Authorization"] == "Bearer loop-token-secret"


@pytest.mark.parametrize(
    "answer",
    [
        b"<html>not json</html>",
        b'{"token": 42}',
        b'{"token": ""}',
        b'{"access_token": "a\\nb"}',
        b"[" * 50_000,
        b'{"token": "' + b"t" * (2 << 20) + b'"}',
    ],
)
@pytest.mark.parametrize("announce", [True, False])
def test_token_endpoint_garbage_is_a_clean_error(
    tmp_path: Path, answer: bytes, announce: bool
) -> None:
    async def garbage(request: web.Request) -> web.StreamResponse:
        if announce:
            return web.Response(body=answer)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(answer)
        return response

    for server in hostile(token_endpoint(garbage)):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert caught.value.operation == "token"
        assert len(str(caught.value)) < 300


def test_endless_token_endpoint_is_bounded(tmp_path: Path) -> None:
    async def flood(request: web.Request) -> web.StreamResponse:
        return await endless(request)

    for server in hostile(token_endpoint(flood)):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert caught.value.operation == "token"


@pytest.mark.parametrize(
    "header", ["", "Bearer", 'Bearer realm="unterminated', "Bearer service=x", "Negotiate abc"]
)
def test_malformed_www_authenticate_is_a_401(tmp_path: Path, header: str) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, headers={"WWW-Authenticate": header} if header else {})

    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert caught.value.status == 401
        assert len(server.requests) == 1


@pytest.mark.parametrize("realm", ["http://auth.example/token", "file:///etc/passwd", "ftp://x/"])
def test_a_realm_outside_https_or_loopback_is_refused(
    tmp_path: Path, registry_pki: TestPki, realm: str
) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    with Hostile(handler, registry_pki) as server:

        async def scenario() -> None:
            async with client(server.ref(), "", tmp_path, registry_pki,
                              credentials=PUSHER) as registry:  # fmt: skip
                await registry.has_blob("00" * 32)

        with pytest.raises(RegistryError) as caught:
            run(scenario())
        assert "refusing" in str(caught.value) and caught.value.operation == "token"
        no_secret(caught.value)


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_proxy_refusing_the_token_endpoint_is_named_with_its_variable(
    tmp_path: Path, scheme: str
) -> None:
    """Fleet field test: the registry is reached directly (NO_PROXY), its token realm is on
    another host that goes through the proxy, which refused it with 407. The token request
    read "cannot reach the token endpoint https://auth.example: 407, message='Proxy
    Authentication Required', url='http://127.0.0.1:...'" with no hint; through a
    plain-http proxy, "refused a token (HTTP 407)", as if the token endpoint had."""
    from tests.twoclients import DenyingProxy

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        challenge = f'Bearer realm="{scheme}://auth.example/token",service="x"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    variable = f"{scheme.upper()}_PROXY"
    with DenyingProxy() as proxy, Hostile(handler) as server:
        environ = {
            variable: proxy.address.replace("http://", "http://ci-bot:pr0xy-s3cret@"),
            "NO_PROXY": "127.0.0.1",
        }

        async def scenario() -> None:
            async with client(server.ref(), "", tmp_path, environ=environ) as registry:
                await registry.has_blob("00" * 32)

        with pytest.raises(RegistryError) as caught:
            run(scenario())
    assert proxy.seen == ["denied"]
    assert caught.value.operation == "token"
    assert caught.value.message == (
        f"the proxy http://***@127.0.0.1:{proxy.port} ({variable}) refused "
        f"{scheme}://auth.example: HTTP 407 Proxy Authentication Required"
    )
    assert caught.value.hint == (
        f"the proxy refused the user name and password in {variable}: check them"
    )


@pytest.mark.parametrize("size", [MAX_MANIFEST_BYTES + 1, None])
def test_a_manifest_too_big_is_refused(tmp_path: Path, size: int | None) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if size is not None:
            return web.Response(body=b"{" + b" " * size)
        return await endless(request)

    for server in hostile(handler):

        async def scenario(server: Hostile = server) -> bytes:
            async with client(server.ref(), "", tmp_path, credentials=PUSHER) as registry:
                return await registry.get_manifest("latest")

        with pytest.raises(RegistryError) as caught:
            run(scenario())
        assert caught.value.operation == "manifest"


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("http://203.0.113.9/blob", "refusing"),
        ("ftp://127.0.0.1/blob", "refusing"),
        ("/v2/pylock/x/blobs/sha256:" + "00" * 32, "too many redirects"),
    ],
)
def test_bad_or_endless_redirects_end(
    tmp_path: Path, registry_pki: TestPki, location: str, problem: str
) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": location})

    with Hostile(handler, registry_pki) as server:

        async def scenario() -> None:
            async with client(server.ref(), "", tmp_path, registry_pki) as registry:
                await registry.download_blob("00" * 32, tmp_path / "out", size=10)

        with pytest.raises(RegistryError) as caught:
            run(scenario())
        assert problem in str(caught.value)
        assert len(server.requests) <= 6
    assert not list(tmp_path.iterdir())


_SIGNED = "verify=1700000000-signedsecret0123456789"


def _to_storage(storage: int | None, location: str) -> Handler:
    """A registry that redirects blob reads to ``/storage/b?verify=...`` on itself (the
    query of Docker Hub's storage URLs, whose name says nothing of a secret), where the
    answer is ``storage`` with ``location`` (``{port}`` filled in), or the blob."""

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith("/storage/"):
            target = f"http://127.0.0.1:{server.port}/storage/b?{_SIGNED}"
            return web.Response(status=307, headers={"Location": target})
        if storage is None:
            return web.Response(body=b"x" * 10)
        headers = {"Location": location.format(port=server.port)} if location else {}
        return web.Response(status=storage, headers=headers)

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        _to_storage(307, f"ftp://storage.example/b?{_SIGNED}"),
        _to_storage(307, f"http://127.0.0.1:{{port}}/storage/b?{_SIGNED}"),
        _to_storage(307, ""),
        _to_storage(307, f"http://[::1/b?{_SIGNED}"),
        _to_storage(307, f"http://a..b/b?{_SIGNED}"),
        _to_storage(307, f"http://u:p@127.0.0.1:{{port}}/b?{_SIGNED}"),
    ],
    ids=["refused-scheme", "endless", "no-location", "unjoinable", "bad-host", "userinfo"],
)
def test_a_signed_storage_url_is_never_printed(tmp_path: Path, handler: Handler) -> None:
    """Registry attack: an error about a redirect printed the storage URL whole, and the
    signed query of a storage URL is a credential by another name than redact knows
    (Cloudflare's `verify`, as Docker Hub's storage uses): now only its scheme and host."""
    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path, size=10)
        assert "signedsecret" not in str(caught.value)
        assert caught.value.operation == "pull"


def test_registry_errors_are_pylock_errors() -> None:
    error = RegistryError("x", registry="oci://r/a", operation="push", status=503)
    assert isinstance(error, PylockError)
    missing = RegistryBlobNotFoundError("y", registry="oci://r/a", digest="ab")
    assert isinstance(missing, RegistryError) and missing.status == 404


def test_identity_token_is_exchanged_by_post_never_sent_as_basic(tmp_path: Path) -> None:
    forms: list[dict[str, str]] = []

    async def exchange(request: web.Request) -> web.StreamResponse:
        forms.append({key: str(value) for key, value in (await request.post()).items()})
        return web.json_response({"access_token": "exchanged"})

    for server in hostile(token_endpoint(exchange)):

        async def scenario(server: Hostile = server) -> None:
            refresh = Credentials("", "refresh-secret", identity_token=True)
            async with client(server.ref(), "", tmp_path, credentials=refresh) as registry:
                await registry.has_blob("00" * 32)

        with pytest.raises(RegistryError) as caught:
            run(scenario())  # the look-alike answers 401 to the bearer as well
        no_secret(caught.value, secrets_=("refresh-secret", "exchanged"))
        token_request = next(r for r in server.requests if r.path == "/token")
        assert token_request.method == "POST" and "Authorization" not in token_request.headers
        assert server.requests[-1].headers["Authorization"] == "Bearer exchanged"
    assert forms == [{"service": "x", "grant_type": "refresh_token",
                      "refresh_token": "refresh-secret", "client_id": "pylock",
                      "scope": "repository:pylock/x:pull"}]  # fmt: skip


def manifest_registry(refusals: list[str]) -> Handler:
    """A registry that has every blob and refuses manifest PUTs with ``refusals`` (codes,
    one per PUT), then accepts them."""

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=200, headers={"Content-Length": "2"})
        if request.method == "PUT" and "/manifests/" in request.path:
            if refusals:
                body = {"errors": [{"code": refusals.pop(0), "message": "blob unknown"}]}
                return web.json_response(body, status=400)
            return web.Response(status=201)
        return web.Response(status=405)

    return handler


def push_one_manifest(server: Hostile, tmp_path: Path) -> None:
    manifest = artifact_manifest(
        sha256="ab" * 32, size=10, filename="a.tar.gz", lock_name="n", origin_url="o"
    )

    async def scenario() -> None:
        async with client(server.ref(), "", tmp_path, credentials=PUSHER) as registry:
            await registry.push_manifest("t1", manifest)

    run(scenario())


def test_a_manifest_refused_for_a_blob_not_yet_known_is_pushed_again(tmp_path: Path) -> None:
    # Builders pushing at once all upload the empty config blob; the registry may answer
    # one of them before another's upload is committed.
    refusals = ["MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID"]
    for server in hostile(manifest_registry(refusals)):
        push_one_manifest(server, tmp_path)
        puts = [r for r in server.requests if r.method == "PUT"]
        assert len(puts) == 3 and refusals == []


def blob_check_registry(head_errors: list[int]) -> Handler:
    """A registry whose blob ``HEAD``s answer each status in ``head_errors`` once, then
    404, and which takes uploads and manifests."""

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            status = head_errors.pop(0) if head_errors else 404
            return web.Response(status=status)
        if request.method == "POST":
            location = "/v2/pylock/x/blobs/uploads/u1"
            return web.Response(status=202, headers={"Location": location})
        if request.method == "PUT":
            return web.Response(status=201)
        return web.Response(status=405)

    return handler


def test_a_blob_check_that_fails_while_another_builder_commits_is_asked_again(
    tmp_path: Path,
) -> None:
    # Debian's docker-registry answered a HEAD with HTTP 500 while four builders pushed
    # one config blob at once; the push must not fail for it.
    statuses = [500, 503]
    for server in hostile(blob_check_registry(statuses)):
        push_one_manifest(server, tmp_path)
        heads = [r for r in server.requests if r.method == "HEAD"]
        assert len(heads) == 3 and statuses == []
        assert len([r for r in server.requests if r.method == "PUT"]) == 2  # blob, manifest


def test_a_blob_check_that_keeps_failing_uploads_anyway(tmp_path: Path) -> None:
    statuses = [500] * 3
    for server in hostile(blob_check_registry(statuses)):
        push_one_manifest(server, tmp_path)
        assert len([r for r in server.requests if r.method == "HEAD"]) == 3
        assert len([r for r in server.requests if r.method == "PUT"]) == 2


def test_a_blob_check_refused_for_good_is_not_asked_again(tmp_path: Path) -> None:
    for server in hostile(blob_check_registry([403] * 5)):
        with pytest.raises(RegistryError) as caught:
            push_one_manifest(server, tmp_path)
        assert caught.value.status == 403
        assert len([r for r in server.requests if r.method == "HEAD"]) == 1


def test_a_manifest_refused_for_good_ends_after_three_tries(tmp_path: Path) -> None:
    for server in hostile(manifest_registry(["BLOB_UNKNOWN"] * 10)):
        with pytest.raises(RegistryError) as caught:
            push_one_manifest(server, tmp_path)
        assert (caught.value.status, caught.value.code) == (400, "BLOB_UNKNOWN")
        assert len([r for r in server.requests if r.method == "PUT"]) == 3
    for server in hostile(manifest_registry(["DENIED"] * 10)):
        with pytest.raises(RegistryError) as caught:
            push_one_manifest(server, tmp_path)
        assert caught.value.code == "DENIED"  # not a blob race: not tried again
        assert len([r for r in server.requests if r.method == "PUT"]) == 1


def test_builders_pushing_manifests_that_share_the_config_at_once_all_succeed(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    async def one(index: int, repository: str) -> None:
        data, sha = blob(f"manifest-race-{repository}-{index}", size=2_000)
        async with pusher(htpasswd_registry, registry_pki, tmp_path, repository) as registry:
            await registry.push_blob(data, sha)
            manifest = artifact_manifest(
                sha256=sha, size=len(data), filename=f"{index}.tar.gz", lock_name="n",
                origin_url="o",
            )  # fmt: skip
            await registry.push_manifest(f"t{index}", manifest)

    async def scenario() -> None:
        # A fresh repository each round: its config blob is new, so every builder races.
        for round_ in range(4):
            await asyncio.gather(*(one(i, f"pylock/mrace{round_}") for i in range(4)))

    run(scenario())


# -- URLs from the registry that Python cannot parse ------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["http://[::1", "https://127.0.0.1:99999/x", "http://127.0.0.1:1:2/x", "http://[zz]/x"],
)
def test_a_redirect_python_cannot_parse_is_a_registry_error(tmp_path: Path, location: str) -> None:
    # Found in the field: a ValueError from urljoin/urlsplit escaped as a traceback,
    # although the origin could have served the archive.
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": location})

    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert caught.value.operation == "pull"


@pytest.mark.parametrize("realm", ["http://[::1", "https://127.0.0.1:99999/token"])
def test_a_token_realm_python_cannot_parse_is_a_registry_error(tmp_path: Path, realm: str) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        challenge = f'Bearer realm="{realm}",service="x"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    for server in hostile(handler):
        with pytest.raises(RegistryError):
            pull(server, tmp_path)


def test_an_upload_location_python_cannot_parse_is_a_registry_error(tmp_path: Path) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=404)
        return web.Response(status=202, headers={"Location": "http://[::1"})

    async def scenario(server: Hostile) -> None:
        async with client(server.ref(), "", tmp_path, credentials=PUSHER) as registry:
            await registry.push_blob(b"data", hashlib.sha256(b"data").hexdigest())

    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            run(scenario(server))
        assert caught.value.operation == "push"


# -- how a remote cache takes failures --------------------------------------------------------


def _remote(tmp_path: Path, *, no_origin: bool = False) -> RemoteCache:
    return RemoteCache(
        parse_reference("oci+http://127.0.0.1:9/pylock/x"),
        settings=Settings.from_environ({}),
        home=tmp_path,
        push=True,
        no_origin=no_origin,
    )


def test_why_configured_credentials_were_not_used_is_told_to_the_debug_output(
    tmp_path: Path,
) -> None:
    """Registry attack: with a broken docker config, `-v` said only "log in with docker
    login", for the notes on why the config was ignored were dropped."""
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text("{not json", encoding="utf-8")
    notes: list[str] = []

    async def make() -> None:
        async with _remote(tmp_path).client(notes.append):
            pass

    asyncio.run(make())
    assert notes == [f"ignoring {tmp_path / '.docker' / 'config.json'}: not JSON"]


def test_a_registry_that_does_not_answer_takes_no_pushes_either(tmp_path: Path) -> None:
    remote = _remote(tmp_path)
    warnings: list[str] = []
    remote.failed(RegistryError("cannot reach it", registry="r", operation="pull"), warnings.append)
    assert remote.pull_broken and remote.push_broken
    assert len(warnings) == 1 and "downloading from the origin" in warnings[0]


def test_a_failed_push_is_reported_after_a_failed_pull(tmp_path: Path) -> None:
    remote = _remote(tmp_path)
    warnings: list[str] = []
    denied = RegistryError(
        "HTTP 403", registry="r", operation="pull", status=403, hint="log in first"
    )
    remote.failed(denied, warnings.append)
    remote.failed(
        RegistryError("HTTP 500", registry="r", operation="push", status=500),
        warnings.append,
        push=True,
    )
    remote.failed(
        RegistryError("HTTP 500", registry="r", operation="push", status=500),
        warnings.append,
        push=True,
    )
    assert len(warnings) == 2
    assert "(log in first)" in warnings[0]
    assert warnings[1].startswith("cannot push to the remote cache")


def test_no_origin_warning_reads_as_a_sentence(tmp_path: Path) -> None:
    remote = _remote(tmp_path, no_origin=True)
    warnings: list[str] = []
    remote.failed(
        RegistryError("HTTP 500", registry="r", operation="pull", status=500), warnings.append
    )
    assert warnings[0].endswith("; --no-origin forbids the origin")


# -- registry attack: URLs aiohttp or IDNA refuse, and a head that never ends ---------------


def _redirect_to(location: str) -> Handler:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/elsewhere"):
            return web.Response(body=b"x")
        return web.Response(status=307, headers={"Location": location.format(port=server.port)})

    return handler


def _realm(realm: str) -> Handler:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        challenge = f'Bearer realm="{realm.format(port=server.port)}",service="x"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    return handler


def download_from_loopback(port: int, tmp_path: Path, *, read_timeout: float) -> None:
    """Download a blob from a plain-http registry on loopback ``port``, with short timeouts."""
    registry = RegistryClient(
        parse_reference(f"oci+http://127.0.0.1:{port}/pylock/x"),
        settings=settings_of({}),
        home=tmp_path,
        connect_timeout=0.5,
        read_timeout=read_timeout,
    )

    async def scenario() -> None:
        async with registry:
            await registry.download_blob("00" * 32, tmp_path / "out", size=10)

    run(scenario())


@pytest.mark.parametrize(
    "handler",
    [
        _redirect_to("http://a..b/x"),
        _redirect_to(f"http://{'a' * 64}.example/x"),
        _redirect_to("http://u:p@127.0.0.1:{port}/elsewhere"),
        _realm("http://a..b/token"),
        _realm("http://u:p@127.0.0.1:{port}/token"),
    ],
    ids=[
        "redirect-empty-label",
        "redirect-long-label",
        "redirect-userinfo",
        "realm-idna",
        "realm-userinfo",
    ],
)
def test_urls_the_resolver_or_aiohttp_refuse_are_registry_errors(
    tmp_path: Path, handler: Handler
) -> None:
    """Registry attack: a UnicodeError (IDNA) or aiohttp's ValueError (credentials in the
    URL beside an Authorization header) ended a sync the origin could serve in a traceback."""
    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
        assert "u:p" not in str(caught.value)
        assert "Traceback" not in str(caught.value)


def test_a_registry_that_drips_its_head_is_given_up(tmp_path: Path) -> None:
    """Registry attack: one header byte every 20 s held a sync for good; each byte restarted
    the read timeout. Connecting and the head together get the two timeouts' sum."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            while not stop.wait(0.1):
                try:
                    connection.sendall(b"a")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(RegistryError, match="no answer in time"):
            download_from_loopback(listener.getsockname()[1], tmp_path, read_timeout=0.5)
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 5


def _storage_front(status: int, *, storage: Handler | None = None, page: str = "") -> Handler:
    """A registry that answers blob reads (``HEAD`` and ``GET``) with a ``status`` redirect
    to its own ``/storage/`` (to ``/storage/{page}`` when given, with no body); by default
    in the page type of Go's ``http.Redirect``, as distribution's are. ``storage`` answers
    there; by default it has every blob but ``00...``, each 10 bytes, for a ``GET`` only
    (a signed URL is good for one method)."""

    async def has(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("00" * 32):
            return web.Response(status=404)
        if request.method != "GET":
            return web.Response(status=403, text="<Error>SignatureDoesNotMatch</Error>")
        return web.Response(body=b"x" * 10, content_type="application/octet-stream")

    answer = storage or has

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/storage/"):
            return await answer(server, request)
        if request.path.endswith("00" * 32) and not page:
            return web.Response(status=404)
        location = f"http://127.0.0.1:{server.port}/storage/{page or request.path[-64:]}"
        headers = {"Location": location}
        if not page:
            headers["Content-Type"] = "text/html; charset=utf-8"
        return web.Response(status=status, headers=headers)

    return handler


def check_blobs(server: Hostile, tmp_path: Path, *shas: str, size: int = 10) -> list[bool]:
    async def scenario() -> list[bool]:
        async with client(server.ref(), "", tmp_path) as registry:
            return [await registry.has_blob(sha, size=size) for sha in shas]

    return run(scenario())


@pytest.mark.parametrize("status", [307, 302])
def test_a_blob_check_answered_with_a_redirect_means_the_blob_is_there(
    tmp_path: Path, status: int
) -> None:
    """Registry attack: a registry that sends HEAD requests on to object storage broke
    `mirror --to` and `sync --push` with "refused pull: HTTP 307"; its redirect is a web
    page by type (Go's http.Redirect), and the storage's URL good for a GET only."""
    for server in hostile(_storage_front(status)):
        assert check_blobs(server, tmp_path, "11" * 32, "00" * 32) == [True, False]
        assert [(r.method, r.path.split("/")[1]) for r in server.requests] == [
            ("HEAD", "v2"),
            ("GET", "v2"),
            ("GET", "storage"),
            ("HEAD", "v2"),
        ]


async def push_one_blob(server: Hostile, tmp_path: Path, data: bytes) -> None:
    async with client(server.ref(), "", tmp_path, credentials=PUSHER) as registry:
        await registry.push_blob(data, hashlib.sha256(data).hexdigest())


def _login_page(body: bytes, content_type: str) -> Handler:
    async def page(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return page


@pytest.mark.parametrize(
    "page",
    [
        _login_page(b"<html>Sign in</html>", "text/html; charset=utf-8"),
        _login_page(b'{"login": "required"}', "application/json"),
    ],
    ids=["web-page", "another-length"],
)
def test_a_blob_check_sent_to_a_login_page_is_no_blob(tmp_path: Path, page: Handler) -> None:
    """Registry attack: an SSO front that sends every request to its login page (302, then
    200) counted as "the blob is there": `sync --push` and `mirror --to` uploaded nothing,
    then failed at the manifest (or tagged a blob the registry does not have)."""
    for server in hostile(_storage_front(302, storage=page, page="login")):
        expected = r"after HTTP 302 to http://127\.0\.0\.1:\d+, not the registry's answer"
        with pytest.raises(RegistryError, match=expected) as caught:
            check_blobs(server, tmp_path, "11" * 32)
        assert caught.value.hint is not None and "in front of the registry" in caught.value.hint

        with pytest.raises(RegistryError, match="not the registry's answer"):
            run(push_one_blob(server, tmp_path, b"x" * 10))
        assert "POST" not in [r.method for r in server.requests]


def test_a_blob_check_whose_redirect_cannot_be_read_names_the_redirect(tmp_path: Path) -> None:
    async def refusing(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="<Error>AccessDenied</Error>")

    for server in hostile(_storage_front(307, storage=refusing)):
        with pytest.raises(RegistryError) as caught:
            check_blobs(server, tmp_path, "11" * 32)
        assert f"with HTTP 307 to http://127.0.0.1:{server.port}, where" in caught.value.message
        assert caught.value.status == 403
        assert (
            f"redirected a blob check to http://127.0.0.1:{server.port}, which refused it: HTTP 403"
            in caught.value.message
        )
        # The storage refused the registry's signed URL: no login fixes that.
        hint = caught.value.hint or ""
        assert "refused the signed URL" in hint and "docker login" not in hint


def test_a_blob_check_answered_with_another_digest_is_no_blob(tmp_path: Path) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(headers={"Docker-Content-Digest": "sha256:" + "22" * 32})

    for server in hostile(handler):
        with pytest.raises(RegistryError, match="another digest"):
            check_blobs(server, tmp_path, "11" * 32)


def _storage_answer(headers: dict[str, str], body: bytes) -> Handler:
    async def answer(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers=headers)

    return answer


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_storage_answer({"Docker-Content-Digest": "sha256:" + "22" * 32}, b"x" * 10), "another"),
        (_storage_answer({"Content-Type": "application/xml"}, b"<Error/>" * 3), "24 bytes"),
    ],
    ids=["another-digest", "longer"],
)
def test_a_pull_whose_storage_answers_no_blob_names_the_storage(
    tmp_path: Path, answer: Handler, problem: str
) -> None:
    """Registry attack: what object storage answered after the registry's redirect (an XML
    error page with 200, a proxy's answer) was taken for the blob: refused by hash or size
    (a corrupt copy in the registry, to be deleted there), not as the storage's answer."""
    for server in hostile(_storage_front(307, storage=answer)):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path, sha="11" * 32, size=10)
        expected = f"on to http://127.0.0.1:{server.port}, whose answer is not the blob: {problem}"
        assert expected in caught.value.message
        assert caught.value.hint is not None and "registry's storage" in caught.value.hint
    assert not list(tmp_path.iterdir())


class EndlessFraming(SocketServer):
    """A registry whose answers (``status``) are chunked, the first chunk's extension going
    on for ever: bytes that are no part of the body, until the client hangs up."""

    def __init__(self, status: bytes) -> None:
        super().__init__()
        self.status = status

    def _answer(self, sock: socket.socket) -> None:
        head = b"HTTP/1.1 " + self.status + b"\r\nTransfer-Encoding: chunked\r\n"
        head += b"Content-Type: application/json\r\n\r\n"
        with contextlib.suppress(OSError):  # the client hung up, as it should
            sock.sendall(head + b"19;ext=")
            while not self.released.wait(0.001):
                sock.sendall(b"x" * 4096)


@pytest.mark.parametrize(
    ("status", "error"),
    [(b"200 OK", "no byte of the body came in 0.25 s"), (b"403 Forbidden", "HTTP 403")],
    ids=["blob", "refusal"],
)
def test_a_chunk_extension_that_does_not_end_ends_at_the_read_timeout(
    tmp_path: Path, status: bytes, error: str
) -> None:
    """Registry attack: aiohttp's read timeout restarts with every byte, and a blob body
    (or a refusal's error body) whose chunk extension went on for ever held the sync for
    ever; each chunk must now come within the read timeout."""
    with EndlessFraming(status) as server:
        started = time.monotonic()
        with pytest.raises(RegistryError, match=error):
            download_from_loopback(server.port, tmp_path, read_timeout=0.25)
        assert time.monotonic() - started < 3
    assert not list(tmp_path.iterdir())


def test_a_refused_blob_check_says_so(tmp_path: Path) -> None:
    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    async def scenario(server: Hostile) -> bool:
        async with client(server.ref(), "", tmp_path) as registry:
            return await registry.has_blob("11" * 32)

    for server in hostile(handler):
        with pytest.raises(RegistryError, match="refused a blob check: HTTP 500"):
            run(scenario(server))


@posix_only
def test_a_hung_credential_store_costs_one_timeout_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry attack: a `credsStore` helper that hangs was asked for each spelling of
    the host (3 x 30 s), and its child processes outlived pylock."""
    import os
    import time

    import pylock.net.dockerauth as dockerauth

    pids = tmp_path / "pids"
    script = tmp_path / "docker-credential-hang"
    script.write_text(f"#!/bin/sh\n/bin/sleep 1000 &\necho $! >> {pids}\nwait\n")
    script.chmod(0o755)
    write_docker_config(tmp_path / ".docker", {"credsStore": "hang"})
    monkeypatch.setattr(dockerauth, "HELPER_TIMEOUT", 0.5)
    notes: list[str] = []
    started = time.monotonic()
    settings = settings_of({"PATH": str(tmp_path), "HOME": str(tmp_path)})
    for _ in range(2):  # another registry client in the same run: not asked again
        found = find_credentials(
            "registry.example:5000", settings=settings, home=tmp_path, debug=notes.append
        )
        assert found is None
    assert time.monotonic() - started < 3
    assert [n for n in notes if "did not answer within" in n] == [
        "credential helper docker-credential-hang did not answer within 0.5s"
    ]
    (pid,) = pids.read_text().split()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the helper's child process is still running")


@posix_only
def test_a_flooding_credential_helper_is_read_no_further_than_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    script = tmp_path / "docker-credential-flood"
    script.write_text("#!/bin/sh\nexec /bin/cat /dev/zero\n")
    script.chmod(0o755)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    notes: list[str] = []
    found = run_helper(
        "flood", "r.example", settings=settings_of({"PATH": str(tmp_path)}), debug=notes.append
    )
    assert found is None and notes == [
        "credential helper docker-credential-flood answered too much"
    ]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_tls_to_a_plain_http_registry_suggests_oci_http(tmp_path: Path) -> None:
    """Registry attack: `oci://` at a plain-http port hinted at SSL_CERT_FILE."""

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path, registry=f"oci://127.0.0.1:{server.port}/pylock/x")
        assert caught.value.hint == (
            f"if the registry speaks plain HTTP, write the reference as "
            f"oci+http://127.0.0.1:{server.port}/..."
        )


def _push_to_a_slow_reader(
    tmp_path: Path, data: bytes, *, buffer: int, read: int, read_timeout: float
) -> None:
    """Push ``data`` as a blob to registries that read ``read`` bytes every 1/8 s through a
    receive buffer of ``buffer`` bytes, as a registry across a network has (Linux grows a
    loopback one up to tcp_rmem's 32 MiB, which could take in a whole blob at once)."""
    sha = hashlib.sha256(data).hexdigest()
    archive = tmp_path / "blob"
    archive.write_bytes(data)

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=404)
        if request.method == "POST":
            return web.Response(status=202, headers={"Location": "/v2/pylock/x/blobs/up/1"})
        sock = None if request.transport is None else request.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        received = 0
        while chunk := await request.content.read(read):
            received += len(chunk)
            await asyncio.sleep(0.125)
        return web.Response(status=201 if received == len(data) else 400)

    async def push(reference: str) -> None:
        registry = RegistryClient(
            parse_reference(reference),
            settings=settings_of({}),
            home=tmp_path,
            connect_timeout=0.5,
            read_timeout=read_timeout,
        )
        async with registry:
            await registry.push_blob(archive, sha)

    for server in hostile(handler):
        run(push(server.ref()))


def test_a_slow_upload_is_not_cut_by_the_heads_deadline(tmp_path: Path) -> None:
    """Attack on the day's diff: the deadline for the answer's head (connect + read, 3.5 s
    here) covered a blob upload too, which aiohttp sends before the head can come: a
    100 MB push failed below about 11 Mbit/s."""
    import time

    started = time.monotonic()
    # More than loopback's socket buffers hold, at 8 MiB a second.
    _push_to_a_slow_reader(
        tmp_path, b"z" * (32 << 20), buffer=256 << 10, read=1 << 20, read_timeout=3
    )
    assert time.monotonic() - started > 3.5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ, as Linux has it")
def test_the_answers_deadline_waits_for_the_buffered_bytes_to_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test on a slow uplink: the answer's deadline ran from when the last chunk
    went into the socket's send buffer (4 MiB on Linux), not from when it left: at
    50 KiB/s the buffer alone takes 80 s to drain, past the 60 s read timeout, and every
    large push failed with "no answer in time". Here the registry reads 2 MiB a second
    through a small receive buffer, so the last 4 MiB leave 2 s after the hand-over,
    against a read timeout of 1 s."""
    import pylock.net.registry

    buffered: list[int] = []
    original = pylock.net.registry._unsent

    def unsent(transport: asyncio.Transport) -> int | None:
        found = original(transport)
        buffered.append(found or 0)
        return found

    monkeypatch.setattr(pylock.net.registry, "_unsent", unsent)
    data = secrets.token_bytes(10 << 20)
    _push_to_a_slow_reader(tmp_path, data, buffer=64 << 10, read=256 << 10, read_timeout=1)
    # The test means what it says: megabytes were still to leave after the hand-over.
    assert buffered and buffered[0] > 2 << 20, buffered


@pytest.mark.parametrize(("pace", "ends"), [(64 << 10, True), (1 << 10, False), (0, False)])
def test_buffered_bytes_must_leave_a_chunk_at_a_time_within_the_read_timeout(
    monkeypatch: pytest.MonkeyPatch, pace: int, ends: bool
) -> None:
    """Attack on the wait above: a registry that took the last megabytes a kilobyte at a
    time would keep a push waiting for an hour if every byte that left pushed the deadline
    back. A chunk's worth (64 KiB) must leave within the read timeout, as before the
    hand-over; bytes that stop leaving let it expire."""
    import pylock.net.registry

    left = [1 << 20]

    def unsent(transport: object) -> int:
        left[0] = max(0, left[0] - pace)
        return left[0]

    monkeypatch.setattr(pylock.net.registry, "_unsent", unsent)

    async def wait() -> None:
        async with asyncio.timeout(0.4) as timer:
            await pylock.net.registry._while_draining(None, timer, 0.4)  # type: ignore[arg-type]

    started = time.monotonic()
    if ends:
        run(wait())
        assert left == [0]
    else:
        with pytest.raises(TimeoutError):
            run(wait())
        assert left[0] > 0 and time.monotonic() - started < 5


@posix_only
def test_a_helper_whose_child_escapes_its_group_does_not_hold_pylock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack on the day's diff: a helper that starts a child in its own session (setsid)
    keeps the output pipe open after the helper is killed; closing the pipe then waited
    for that child (25 s here), as the reading thread held it."""
    import shutil
    import time

    import pylock.net.dockerauth as dockerauth

    setsid, sleep = shutil.which("setsid"), shutil.which("sleep")
    if setsid is None or sleep is None:
        pytest.skip("needs setsid and sleep")
    script = tmp_path / "docker-credential-escape"
    script.write_text(f"#!/bin/sh\n{setsid} {sleep} 8 &\nexec {sleep} 1000\n")
    script.chmod(0o755)
    monkeypatch.setattr(dockerauth, "HELPER_TIMEOUT", 0.5)
    started = time.monotonic()
    found = run_helper("escape", "r.example", settings=settings_of({"PATH": str(tmp_path)}))
    assert found is None
    assert time.monotonic() - started < 5


def test_a_token_endpoint_that_drips_its_answer_ends_at_the_read_timeout(tmp_path: Path) -> None:
    """Registry attack: `[` at 30 bytes a second kept every download of the sync waiting
    for hours (the blob pace, 1 KiB a minute, let it through; a megabyte is its bound)."""
    import time

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(6000):
                await response.write(b"[" * 30)
                await asyncio.sleep(0.1)
        return response

    started = time.monotonic()
    for server in hostile(token_endpoint(drip)):
        with pytest.raises(RegistryError) as caught:
            pull(server, tmp_path)
    assert caught.value.operation == "token"
    assert "took more than 5 s to arrive" in str(caught.value)
    assert time.monotonic() - started < 30


def test_a_push_the_registry_stops_reading_fails_instead_of_hanging(tmp_path: Path) -> None:
    """Registry attack: a registry that took the PUT's head and never read its body hung
    the sync after its install (an upload streamed from a file had no deadline)."""
    import os
    import time

    source = tmp_path / "big.tar.gz"
    source.write_bytes(os.urandom(24 << 20))  # more than the sockets' buffers take
    sha = hashlib.sha256(source.read_bytes()).hexdigest()

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=404)
        if request.method == "POST":
            location = "/v2/pylock/x/blobs/uploads/u1?state=1"
            return web.Response(status=202, headers={"Location": location})
        # PUT: the head is read, the body never is.
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.1)
        return web.Response(status=201)

    async def scenario(reference: str) -> None:
        async with client(reference, "", tmp_path, credentials=PUSHER) as registry:
            await registry.push_blob(source, sha)

    started = time.monotonic()
    for server in hostile(handler):
        with pytest.raises(RegistryError) as caught:
            run(scenario(server.ref()))
        assert caught.value.operation == "push"
    assert time.monotonic() - started < 60


def test_a_blob_served_with_content_encoding_gzip_is_taken_as_it_is(tmp_path: Path) -> None:
    """Registry attack: an archive stored with `Content-Encoding: gzip` metadata (object
    stores keep it on a .tar.gz) was decoded, then refused as the registry's corrupt copy."""
    import gzip

    data = gzip.compress(b"archive " * 10_000)
    sha = hashlib.sha256(data).hexdigest()

    async def handler(server: Hostile, request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, headers={"Content-Encoding": "gzip"})

    for server in hostile(handler):
        pull(server, tmp_path, sha=sha, size=len(data))
        assert server.requests[0].headers.get("Accept-Encoding") == "identity"
    assert (tmp_path / "out").read_bytes() == data


def test_a_home_that_is_no_absolute_path_reads_no_docker_config_of_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack as a user with no home (HOME relative, or unset for a uid with no passwd
    entry): `~/.docker/config.json` of the directory pylock ran in, which a project could
    ship (with a credential helper to run), was read as the user's."""
    monkeypatch.chdir(tmp_path)
    docker_login(tmp_path / "~", "r.example", "planted", "a")
    docker_login(tmp_path / "rel", "r.example", "planted", "a")
    for home in ("~", "rel"):
        assert find_credentials("r.example", settings=settings_of({}), home=Path(home)) is None
    # DOCKER_CONFIG given, relative or not, is the user's word.
    environ = {"DOCKER_CONFIG": "rel/.docker"}
    found = find_credentials("r.example", settings=settings_of(environ), home=Path("~"))
    assert found is not None and found.username == "planted"


def test_a_refusal_says_why_configured_credentials_were_not_sent(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, tmp_path: Path
) -> None:
    """Error-message audit: with a broken docker config, the registry's refusal said "log
    in with docker login", and why the login there was not used only with -v."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    config = home / ".docker" / "config.json"
    config.write_text("{not json", encoding="utf-8")
    data, sha = blob("broken-config")

    async def scenario() -> None:
        async with client(htpasswd_registry, "pylock/a", home, registry_pki, lookup=True) as r:
            await r.push_blob(data, sha)

    with pytest.raises(RegistryError) as info:
        run(scenario())
    assert info.value.hint is not None
    assert info.value.hint.startswith(
        f"no credentials were sent (ignoring {config}: not JSON): fix that, or log in with "
    )
