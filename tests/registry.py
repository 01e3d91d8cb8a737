"""A real OCI registry for the tests: Debian's ``docker-registry`` (distribution 2.8) on loopback.

- :class:`TestPki`: a CA the test makes, a TLS certificate for 127.0.0.1 that it signs, and
  an RSA certificate it signs for the token server's JWT signatures.
- :class:`RealRegistry`: the registry process (TLS; htpasswd basic auth or token auth),
  started and stopped by pid.
- :class:`TokenServer`: the look-alike token endpoint (``auth: token``): anonymous pull,
  push with the right user name and password, JWTs that distribution verifies by ``x5c``.
- :class:`RedirectingFront` + :class:`BlobHost`: a TLS front of a registry that answers
  blob GETs with a 307 to a second loopback host, which logs what it is sent.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.loopback import LoggedRequest, LoopbackServer, Started
from tests.pki import TestCa

USER = "pusher"
PASSWORD = "pa55-w0rd-s3cr3t"
SERVICE = "pylock-test-registry"
ISSUER = "pylock-test-token-issuer"


def registry_binary() -> str | None:
    """The distribution binary Debian's ``docker-registry`` package installs, if any."""
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if os.path.exists("/usr/bin/docker-registry") else None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    """PEM files in one folder: the CA, the TLS pair, the token signing pair."""

    ca: Path
    cert: Path
    key: Path
    signing_cert_der: bytes
    signing_key: Path

    __test__ = False

    @classmethod
    def create(cls, directory: Path) -> TestPki:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        directory.mkdir(parents=True, exist_ok=True)
        ca = TestCa.create("pylock registry test CA")
        ca_path, cert_path, key_path = ca.write_server_pair(directory)
        signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signing_cert = ca.leaf("pylock token signer", signing_key.public_key(), [])
        pki = cls(
            ca=ca_path,
            cert=cert_path,
            key=key_path,
            signing_cert_der=signing_cert.public_bytes(serialization.Encoding.DER),
            signing_key=directory / "signing-key.pem",
        )
        pki.signing_key.write_bytes(
            signing_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pki

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def htpasswd_line(user: str, password: str) -> str:
    """One htpasswd entry with a bcrypt hash (the only kind distribution accepts)."""
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{hashed}\n"


# -- the registry process ---------------------------------------------------------------------


class RealRegistry(Started):
    """``docker-registry serve`` on 127.0.0.1:<free port> with TLS, stopped by pid.

    ``auth`` is ``"htpasswd"`` (basic auth as :data:`USER`/:data:`PASSWORD`) or
    ``"token"`` (bearer tokens from ``realm``, signed by the PKI's signing key).
    """

    def __init__(
        self, root: Path, pki: TestPki, *, auth: str = "htpasswd", realm: str = ""
    ) -> None:
        self.root = root
        self.pki = pki
        self.auth = auth
        self.realm = realm
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def oci(self, repository: str) -> str:
        return f"oci://{self.host}/{repository}"

    def _config(self) -> str:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        if self.auth == "htpasswd":
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(htpasswd_line(USER, PASSWORD))
            auth = f"""auth:
  htpasswd:
    realm: pylock-test
    path: {htpasswd}
"""
        else:
            auth = f"""auth:
  token:
    realm: {self.realm}
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {self.pki.ca}
"""
        return f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: {secrets.token_hex(16)}
  tls:
    certificate: {self.pki.cert}
    key: {self.pki.key}
{auth}"""

    def start(self) -> None:
        binary = registry_binary()
        assert binary is not None
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "registry.log").open("wb")
        for _ in range(5):  # a port taken between probe and bind: try another
            self.port = free_port()
            config = self.root / "config.yml"
            config.write_text(self._config())
            self.process = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
            if self._wait_ready():
                log.close()
                return
            self.stop()
        log.close()
        raise RuntimeError(
            f"docker-registry did not start: {(self.root / 'registry.log').read_text()[-2000:]}"
        )

    def _wait_ready(self) -> bool:
        context = self.pki.client_context()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"https://{self.host}/v2/", context=context, timeout=2)
                return True
            except urllib.error.HTTPError:
                return True  # 401: it is up
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


# -- the token server -----------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer(LoopbackServer):
    """The registry's token endpoint (``GET /token?service=&scope=``), over TLS.

    Anonymous callers get ``pull``; :data:`USER` with :data:`PASSWORD` gets what it asks
    for; a wrong password is a 401. Every request is logged.
    """

    methods = "GET"

    def __init__(self, pki: TestPki) -> None:
        super().__init__(tls=pki.server_context())
        self.pki = pki
        self.requests: list[LoggedRequest] = []
        #: Tokens handed out (to check none of them leaks into output).
        self.issued: list[str] = []

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.port}/token"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(LoggedRequest.of(request))
        authenticated = False
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                return web.json_response({"details": "wrong user name or password"}, status=401)
            authenticated = True
        access = []
        for scope in request.query.getall("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if authenticated else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        token = self._sign(
            {
                "iss": ISSUER,
                "sub": USER if authenticated else "",
                "aud": request.query.get("service", ""),
                "exp": int(time.time()) + 300,
                "nbf": int(time.time()) - 10,
                "iat": int(time.time()),
                "jti": secrets.token_hex(8),
                "access": access,
            }
        )
        self.issued.append(token)
        return web.json_response({"token": token, "expires_in": 300})

    def _sign(self, claims: dict[str, object]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self.pki.signing_cert_der).decode("ascii")],
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        key = serialization.load_pem_private_key(self.pki.signing_key.read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


# -- redirects to a second host ----------------------------------------------------------------


class BlobHost(LoopbackServer):
    """The "object storage": serves ``/blobs/<id>`` bytes it was given; logs every request."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs: dict[str, bytes] = {}
        self.requests: list[LoggedRequest] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(LoggedRequest.of(request))
        data = self.blobs.get(request.path.removeprefix("/blobs/"))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")


class RedirectingFront(LoopbackServer):
    """A TLS front of ``registry`` for reads: blob GETs that the registry answers 200 become
    a 307 to :class:`BlobHost`; everything else is passed through as is.
    """

    methods = "*"

    def __init__(self, registry: RealRegistry, blob_host: BlobHost) -> None:
        super().__init__(tls=registry.pki.server_context())
        self.registry = registry
        self.blob_host = blob_host
        self.requests: list[LoggedRequest] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(LoggedRequest.of(request))
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "accept")
        }
        url = f"https://{self.registry.host}{request.path_qs}"
        connector = aiohttp.TCPConnector(ssl=self.registry.pki.client_context())
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(request.method, url, headers=headers, allow_redirects=False) as answer,
        ):
            body = await answer.read()
            if request.method == "GET" and "/blobs/" in request.path and answer.status == 200:
                key = secrets.token_hex(8)
                self.blob_host.blobs[key] = body
                target = f"http://127.0.0.1:{self.blob_host.port}/blobs/{key}"
                return web.Response(status=307, headers={"Location": target})
            passed = {
                name: value
                for name, value in answer.headers.items()
                if name.lower()
                in ("www-authenticate", "content-type", "docker-content-digest", "location")
            }
            return web.Response(status=answer.status, body=body, headers=passed)


# -- docker's credential store ------------------------------------------------------------------


def basic_auth(user: str, password: str) -> str:
    """The ``auth`` value of a docker config entry: base64 of ``user:password``."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_docker_config(folder: Path, config: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))


def docker_login(home: Path, host: str, user: str = USER, password: str = PASSWORD) -> None:
    """What ``docker login host`` leaves in ``home``: one basic-auth entry in ``auths``."""
    write_docker_config(home / ".docker", {"auths": {host: {"auth": basic_auth(user, password)}}})
