"""Issue 13, phase 2: the OCI registry as pylock's remote cache, wired into sync, fetch and
mirror: lookups go local cache -> registry -> origin; ``--push`` writes back; ``--no-origin``
never contacts the lock's URLs; a failing registry never breaks a build.

The registries are the real ones of ``tests/registry.py`` (Debian's ``docker-registry`` on
loopback with TLS from the session's CA); faults come from :class:`tests.httpserver.HttpServer`
posing as a plain-http registry. The origin is another ``HttpServer``, whose log counts the
archive requests.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web

from pylock.cli import main
from pylock.lockfile import Artifact, dumps, make_lock
from pylock.net.registry import (
    ANNOTATION_LOCK_NAME,
    ANNOTATION_ORIGIN,
    ANNOTATION_SHA256,
    ANNOTATION_SIZE,
    ARTIFACT_TYPE,
    RegistryClient,
    parse_reference,
)
from pylock.platforms import host
from pylock.settings import Settings
from pylock.versions import ArchiveFormat, Flavor
from tests.archives import compress, file, pbs_install_only, tar_bytes
from tests.httpserver import HttpServer, Reset, Status, Throttle, Truncate
from tests.indexdata import locked_python
from tests.loopback import LoggedRequest, LoopbackServer
from tests.registry import (
    PASSWORD,
    RealRegistry,
    RedirectingFront,
    TestPki,
    TokenServer,
    docker_login,
    free_port,
)
from tests.twoclients import AnsweringProxy

OTHER_PLATFORM = "windows-x86_64" if not host().key.startswith("windows") else "linux-x86_64-gnu"


# -- helpers -----------------------------------------------------------------------------------


def archive_bytes(label: str) -> bytes:
    """A small install_only archive that no other test has (the registries are shared)."""
    entries = [*pbs_install_only("3.12"), file("python/unique.txt", secrets.token_bytes(64))]
    entries.append(file("python/label.txt", label.encode()))
    return compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)


class Project:
    """A project whose lock names archives on the origin server, and the runs of pylock in it."""

    def __init__(
        self,
        root: Path,
        origin: HttpServer,
        names: tuple[str, ...] = ("app",),
        *,
        sized: bool = True,
    ) -> None:
        self.root = root
        self.origin = origin
        root.mkdir(parents=True, exist_ok=True)
        self.paths: list[str] = []
        self.data: dict[str, bytes] = {}
        pythons = []
        for index, name in enumerate(names):
            artifacts = []
            for platform in (host().key, OTHER_PLATFORM):
                data = archive_bytes(f"{name}-{platform}")
                filename = f"cpython-3.12.{7 + index}+20990101-{platform}-install_only.tar.gz"
                path = f"/origin/{secrets.token_hex(4)}/{filename}"
                url = origin.serve(path, data)
                self.paths.append(path)
                self.data[platform + name] = data
                artifacts.append(
                    Artifact(
                        platform=platform,
                        url=url,
                        sha256=hashlib.sha256(data).hexdigest(),
                        size=len(data) if sized else None,
                    )
                )
            pythons.append(
                locked_python(
                    name, f"3.12.{7 + index}", "20990101", artifacts, flavor=Flavor.INSTALL_ONLY
                )
            )
        self.lock = make_lock(pythons, config_digest="sha256:" + "0" * 64)
        (root / "pythons.lock").write_text(dumps(self.lock), encoding="utf-8")
        self.runs = 0

    @property
    def origin_requests(self) -> int:
        return sum(self.origin.hits(path) for path in self.paths)

    def host_shas(self) -> list[str]:
        return [p.artifact_for(host().key).sha256 for p in self.lock.pythons]  # type: ignore[union-attr]

    def environ(self, **extra: str) -> dict[str, str]:
        """A fresh cache per run (a new builder), unless ``PYLOCK_CACHE_DIR`` is given."""
        self.runs += 1
        env = {**os.environ, "NO_COLOR": "1"}
        env["PYLOCK_CACHE_DIR"] = str(self.root / f"cache-{self.runs}")
        env.update(extra)
        return env

    def sync(
        self,
        capsys: pytest.CaptureFixture[str],
        *args: str,
        into: str | None = None,
        **environ: str,
    ) -> tuple[int, str, str]:
        target = into or str(self.root / f"pythons-{self.runs + 1}")
        code = main(
            ["--project", str(self.root), "sync", "--into", target, *args], self.environ(**environ)
        )
        out, err = capsys.readouterr()
        return code, out, err

    def run(self, *argv: str, **environ: str) -> int:
        """``pylock --project ROOT ARGV...`` in a fresh environment of its own."""
        return main(["--project", str(self.root), *argv], self.environ(**environ))

    def host_artifact(self) -> Artifact:
        """The first entry's archive for this machine; every test's lock is sized here."""
        artifact = self.lock.pythons[0].artifact_for(host().key)
        assert artifact is not None and artifact.size is not None
        return artifact

    def installed_label(self, name: str = "app") -> str:
        return (self.root / f"pythons-{self.runs}" / name / "label.txt").read_text()


def tls(pki: TestPki) -> dict[str, str]:
    return {"SSL_CERT_FILE": str(pki.ca)}


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning" in line.lower()]


def registry_client(reference: str, home: Path, pki: TestPki | None) -> RegistryClient:
    env = {"HOME": str(home), **(tls(pki) if pki else {})}
    return RegistryClient(
        parse_reference(reference), settings=Settings.from_environ(env), home=home
    )


def blobs_present(reference: str, home: Path, pki: TestPki, shas: list[str]) -> list[bool]:
    async def check() -> list[bool]:
        async with registry_client(reference, home, pki) as client:
            return [await client.has_blob(sha) for sha in shas]

    return asyncio.run(check())


def manifest(reference: str, home: Path, pki: TestPki, tag: str) -> dict[str, object]:
    async def get() -> bytes:
        async with registry_client(reference, home, pki) as client:
            return await client.get_manifest(tag)

    answer = json.loads(asyncio.run(get()))
    assert isinstance(answer, dict)
    return answer


def repository() -> str:
    return f"pylock/rc-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Remote:
    """The htpasswd registry with ``docker login`` done in the test's home, and a fresh
    repository on it."""

    registry: RealRegistry
    pki: TestPki
    home: Path
    reference: str

    @property
    def tls(self) -> dict[str, str]:
        return tls(self.pki)

    def blobs_present(self, shas: list[str], reference: str | None = None) -> list[bool]:
        return blobs_present(reference or self.reference, self.home, self.pki, shas)

    def manifest(self, tag: str, reference: str | None = None) -> dict[str, object]:
        return manifest(reference or self.reference, self.home, self.pki, tag)


@pytest.fixture
def remote(
    htpasswd_registry: RealRegistry, registry_pki: TestPki, _clean_environment: Path
) -> Remote:
    docker_login(_clean_environment, htpasswd_registry.host)
    return Remote(
        htpasswd_registry, registry_pki, _clean_environment, htpasswd_registry.oci(repository())
    )


@pytest.fixture
def cached_project(tmp_path: Path, origin: HttpServer) -> Project:
    """A one-entry project on the origin."""
    return Project(tmp_path / "p", origin)


@pytest.fixture
def two_entries(tmp_path: Path, origin: HttpServer) -> Project:
    """A project with the entries ``a`` and ``b`` on the origin."""
    return Project(tmp_path / "p", origin, ("a", "b"))


def assert_the_origin_served_after_one_warning(project: Project, code: int, err: str) -> None:
    """The registry's blob was refused with one warning; the origin's archive is installed."""
    assert code == 0, err
    assert len(warnings(err)) == 1, err
    assert "Traceback" not in err
    assert "0 from the remote cache, 1 downloaded" in err
    assert project.origin_requests == 1
    assert project.installed_label() == f"app-{host().key}"


def fake_reference(fake_registry: HttpServer) -> str:
    return f"oci+http://127.0.0.1:{fake_registry.port}/pylock/x"


@pytest.fixture
def origin(server: HttpServer) -> HttpServer:
    """Where the projects' locks download from: the suite's loopback server."""
    return server


@pytest.fixture
def fake_registry() -> Iterator[HttpServer]:
    """A plain-http server posing as a registry (``oci+http://``), for faults."""
    with HttpServer() as running:
        yield running


# -- read-through and write-back against the real registry -------------------------------------


def test_miss_then_push_fills_the_registry_and_a_fresh_builder_gets_it_from_there(
    remote: Remote, origin: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(tmp_path / "p", origin, ("app", "tool"))
    reference = remote.reference

    code, _, err = project.sync(capsys, "--remote-cache", reference, "--push", **remote.tls)
    assert code == 0, err
    assert project.origin_requests == 2
    assert "0 from the remote cache, 2 downloaded, 2 pushed" in err
    assert warnings(err) == []
    assert remote.blobs_present(project.host_shas()) == [True, True]
    app = project.lock.get("app")
    assert app is not None
    artifact = app.artifact_for(host().key)
    assert artifact is not None
    assert app.flavor is not None
    tag = f"cpython-3.12.7-20990101-{host().key}-{app.flavor.value}-{artifact.sha256[:12]}"
    pushed = remote.manifest(tag)
    assert pushed["artifactType"] == ARTIFACT_TYPE
    annotations = pushed["annotations"]
    assert isinstance(annotations, dict)
    assert annotations[ANNOTATION_LOCK_NAME] == "app"
    assert annotations[ANNOTATION_ORIGIN] == artifact.url
    assert annotations[ANNOTATION_SHA256] == artifact.sha256
    assert annotations[ANNOTATION_SIZE] == str(artifact.size)

    # A second builder: an empty cache and install dir, the same registry.
    code, _, err = project.sync(capsys, "--remote-cache", reference, **remote.tls)
    assert code == 0, err
    assert project.origin_requests == 2  # nothing more from the origin
    assert "2 from the remote cache, 0 downloaded" in err
    installed = project.root / f"pythons-{project.runs}"
    assert project.installed_label("app") == f"app-{host().key}"
    assert project.installed_label("tool") == f"tool-{host().key}"
    # No secret anywhere a user or a later build could read it.
    for path in [*installed.rglob("*.json"), *(project.root / f"cache-{project.runs}").rglob("*")]:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in err


def test_registry_hit_needs_no_origin_and_no_origin_flag_is_honoured(
    remote: Remote, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cached_project.run(
        "mirror", "--to", remote.reference, "--platform", host().key, **remote.tls
    )
    assert code == 0
    assert cached_project.origin_requests == 1
    capsys.readouterr()
    code, _, err = cached_project.sync(
        capsys, **remote.tls, PYLOCK_REMOTE_CACHE=remote.reference, PYLOCK_NO_ORIGIN="1"
    )
    assert code == 0, err
    assert cached_project.origin_requests == 1
    assert "1 from the remote cache, 0 downloaded" in err


def test_a_lock_without_sizes_is_served_by_the_registry_too(
    remote: Remote, origin: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(tmp_path / "p", origin, sized=False)
    reference = remote.reference
    code, _, err = project.sync(capsys, "--remote-cache", reference, "--push", **remote.tls)
    assert code == 0 and "1 pushed" in err, err
    code, _, err = project.sync(capsys, "--remote-cache", reference, "--no-origin", **remote.tls)
    assert code == 0, err
    assert "1 from the remote cache, 0 downloaded" in err
    assert project.origin_requests == 1


def test_no_origin_miss_names_the_archive_and_the_mirror_command(
    remote: Remote, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = remote.reference
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", reference, "--no-origin", **remote.tls
    )
    assert code == 1
    assert cached_project.origin_requests == 0
    artifact = cached_project.lock.pythons[0].artifact_for(host().key)
    assert artifact is not None
    assert artifact.filename in err
    assert f"pylock mirror --to {reference}" in err
    assert "Traceback" not in err


def test_no_origin_with_an_unreachable_registry_says_so(
    cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = f"oci://127.0.0.1:{free_port()}/pylock/down"
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, "--no-origin")
    assert code == 1
    assert cached_project.origin_requests == 0
    assert "--no-origin forbids the origin" in err and "downloading from the origin" not in err
    assert "could not be had from the remote cache" in err
    # Error-message audit: the hint said to seed the registry (`pylock mirror --to`), which
    # fails the same way against a registry that does not answer.
    hint = err.split("pylock: hint: ")[-1]
    assert hint.startswith("the registry failed: cannot reach ")
    assert "check that it is up and reachable from here" in hint
    assert "pylock mirror --to" not in hint
    assert "connection refused" in hint and "Connect call failed" not in err


@pytest.mark.parametrize("status", [400, 429])
def test_no_origin_with_a_registry_refusing_the_blob_does_not_call_it_missing(
    status: int,
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Field test: a registry answering 400 (plain http to a TLS port) or 429 was warned
    # about, then the error said the archive "is not in" it and to seed it, which fails
    # the same way.
    sha = cached_project.host_shas()[0]
    fake_registry.status(f"/v2/pylock/x/blobs/sha256:{sha}", status)
    reference = fake_reference(fake_registry)
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, "--no-origin")
    assert code == 1
    assert cached_project.origin_requests == 0
    assert "could not be had from the remote cache" in err and "is not in" not in err
    hint = err.split("pylock: hint: ")[-1]
    assert hint.startswith(f"the registry failed: {reference} refused pull: HTTP {status}")
    assert "pylock mirror --to" not in hint


def test_mirror_to_seeds_every_locked_platform_and_platform_narrows(
    remote: Remote, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    shas = [a.sha256 for a in cached_project.lock.pythons[0].artifacts]
    everything = remote.reference
    code = cached_project.run("mirror", "--to", everything, **remote.tls)
    _, err = capsys.readouterr()
    assert code == 0, err
    assert "2 archive(s)" in err and "2 pushed" in err
    assert remote.blobs_present(shas) == [True, True]
    python = cached_project.lock.pythons[0]
    other = python.artifact_for(OTHER_PLATFORM)
    assert other is not None and python.flavor is not None
    tag = f"cpython-3.12.7-20990101-{OTHER_PLATFORM}-{python.flavor.value}-{other.sha256[:12]}"
    assert remote.manifest(tag)["artifactType"] == ARTIFACT_TYPE
    # Again: nothing to upload.
    code = cached_project.run("mirror", "--to", everything, **remote.tls)
    assert code == 0
    assert "0 pushed, 2 already there" in capsys.readouterr().err

    narrow = remote.registry.oci(repository())
    code = cached_project.run("mirror", "--to", narrow, "--platform", OTHER_PLATFORM, **remote.tls)
    assert code == 0
    other = cached_project.lock.pythons[0].artifact_for(OTHER_PLATFORM)
    here = cached_project.lock.pythons[0].artifact_for(host().key)
    assert other is not None and here is not None
    assert remote.blobs_present([other.sha256, here.sha256], narrow) == [True, False]


def test_bearer_flow_anonymous_pull_and_authenticated_push(
    token_registry: RealRegistry,
    token_server: TokenServer,
    registry_pki: TestPki,
    cached_project: Project,
    capsys: pytest.CaptureFixture[str],
    _clean_environment: Path,
) -> None:
    reference = token_registry.oci(repository())
    # Without credentials the push is denied: a warning, and the sync still succeeds.
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", reference, "--push", **tls(registry_pki)
    )
    assert code == 0, err
    assert len(warnings(err)) == 1 and "cannot push to the remote cache" in err
    assert "1 downloaded" in err and "pushed" not in err.split("synced")[-1]
    # With docker login it is pushed ...
    docker_login(_clean_environment, token_registry.host)
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", reference, "--push", **tls(registry_pki)
    )
    assert code == 0, err
    assert "1 pushed" in err
    assert cached_project.origin_requests == 2
    # ... and anyone pulls it anonymously.
    (_clean_environment / ".docker" / "config.json").unlink()
    before = len(token_server.requests)
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, **tls(registry_pki))
    assert code == 0, err
    assert "1 from the remote cache, 0 downloaded" in err
    assert cached_project.origin_requests == 2
    asked = token_server.requests[before:]
    assert asked and all("Authorization" not in r.headers for r in asked)
    for token in token_server.issued:
        assert token not in err


def test_a_sync_asks_for_one_token_per_scope_not_one_per_archive(
    token_registry: RealRegistry,
    token_server: TokenServer,
    registry_pki: TestPki,
    origin: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    _clean_environment: Path,
) -> None:
    # Each archive downloads on a thread (and event loop) of its own; their registry
    # clients share the credentials and the tokens of the run.
    three = Project(tmp_path / "p", origin, ("a", "b", "c"))
    repo = repository()
    reference = token_registry.oci(repo)

    def scopes_asked(since: int) -> list[str]:
        return sorted(
            unquote(request.query).rpartition("scope=")[2]
            for request in token_server.requests[since:]
        )

    docker_login(_clean_environment, token_registry.host)
    before = len(token_server.requests)
    code, _, err = three.sync(capsys, "--remote-cache", reference, "--push", **tls(registry_pki))
    assert code == 0, err
    assert "3 pushed" in err
    scope = f"repository:{repo}"
    assert scopes_asked(before) == [f"{scope}:pull", f"{scope}:pull,push"]
    # A fresh builder, anonymous: three pulls, one token.
    (_clean_environment / ".docker" / "config.json").unlink()
    before = len(token_server.requests)
    code, _, err = three.sync(capsys, "--remote-cache", reference, **tls(registry_pki))
    assert code == 0, err
    assert "3 from the remote cache, 0 downloaded" in err
    assert scopes_asked(before) == [f"{scope}:pull"]


def test_blob_redirect_to_a_second_host_never_carries_authorization(
    htpasswd_registry: RealRegistry,
    registry_pki: TestPki,
    redirecting_front: RedirectingFront,
    origin: HttpServer,
    cached_project: Project,
    capsys: pytest.CaptureFixture[str],
    _clean_environment: Path,
) -> None:
    repo = repository()
    front, blob_host = redirecting_front, redirecting_front.blob_host
    docker_login(_clean_environment, htpasswd_registry.host)
    docker_login_front = f"127.0.0.1:{front.port}"
    config = _clean_environment / ".docker" / "config.json"
    auths = json.loads(config.read_text())
    auths["auths"][docker_login_front] = auths["auths"][htpasswd_registry.host]
    config.write_text(json.dumps(auths))
    seeded = cached_project.run("mirror", "--to", htpasswd_registry.oci(repo), **tls(registry_pki))
    assert seeded == 0
    capsys.readouterr()
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", f"oci://{docker_login_front}/{repo}", **tls(registry_pki)
    )
    assert code == 0, err
    assert "1 from the remote cache, 0 downloaded" in err
    assert [r.path.startswith("/blobs/") for r in blob_host.requests] == [True]
    assert all("Authorization" not in r.headers for r in blob_host.requests)
    assert any("Authorization" in r.headers for r in front.requests)
    assert cached_project.origin_requests == 2  # both platforms for the seed, none for the sync
    # And the origin never sees registry credentials.
    assert all("Authorization" not in r.headers for r in origin.log)


# -- the registry never breaks a build ---------------------------------------------------------


def test_unreachable_registry_is_one_warning_for_the_whole_sync(
    origin: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(tmp_path / "p", origin, ("a", "b", "c"))
    reference = f"oci://127.0.0.1:{free_port()}/pylock/down"
    code, _, err = project.sync(capsys, "--remote-cache", reference, "--push")
    assert code == 0, err
    assert len(warnings(err)) == 1, err
    assert "cannot use the remote cache" in err and "downloading from the origin" in err
    assert "3 downloaded" in err
    assert project.origin_requests == 3


@pytest.mark.parametrize("status", [500, 503, 401, 403])
def test_refusing_registry_falls_through_with_one_warning(
    status: int,
    two_entries: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = two_entries
    for sha in project.host_shas():
        fake_registry.status(f"/v2/pylock/x/blobs/sha256:{sha}", status)
    reference = fake_reference(fake_registry)
    code, _, err = project.sync(capsys, "--remote-cache", reference, "--jobs", "1")
    assert code == 0, err
    assert len(warnings(err)) == 1, err
    assert str(status) in err
    assert "0 from the remote cache, 2 downloaded" in err
    # After the first refusal the registry is not asked again in this sync.
    assert len(fake_registry.log) == 1


def test_missing_blob_is_a_silent_miss(
    two_entries: Project, fake_registry: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    project = two_entries
    code, _, err = project.sync(capsys, "--remote-cache", fake_reference(fake_registry))
    assert code == 0, err
    assert warnings(err) == []
    assert len(fake_registry.log) == 2  # asked for each one; each a 404
    assert project.origin_requests == 2


def serve_bad_blob(fake_registry: HttpServer, project: Project, kind: str) -> None:
    """Have the registry answer the host archive's blob with ``kind`` of bad bytes."""
    artifact = project.host_artifact()
    assert artifact.size is not None
    path = f"/v2/pylock/x/blobs/sha256:{artifact.sha256}"
    good = project.data[host().key + "app"]
    if kind in ("same size", "longer", "shorter"):
        # Another archive's bytes, cut or repeated to the size: refused by hash.
        size = {"same size": artifact.size, "longer": artifact.size * 3, "shorter": 10}[kind]
        evil = archive_bytes("evil")
        fake_registry.serve(path, (evil * (size // len(evil) + 1))[:size])
    elif kind == "endless chunked":
        # No Content-Length, and far more than the lock's size: cut off at the size.
        fake_registry.serve(path, good * 50, chunked=True)
    elif kind == "truncated":
        fake_registry.serve(path, good, always=[Truncate(after=len(good) // 2)])
    elif kind == "reset":
        fake_registry.serve(path, good, always=[Reset(after=len(good) // 3)])
    else:
        # The installer reads the registry's bytes as they arrive: garbage fails its read
        # long before the slow blob ends, and is refused by hash.
        assert kind == "slow garbage"
        garbage = b"\x00not an archive" * (artifact.size // 16 + 1)
        throttle = Throttle(chunk=max(1, artifact.size // 10), delay=0.05)
        fake_registry.serve(path, garbage[: artifact.size], always=[throttle])


@pytest.mark.parametrize(
    "kind",
    ["same size", "longer", "shorter", "endless chunked", "truncated", "reset", "slow garbage"],
)
def test_a_bad_blob_is_refused_with_one_warning_and_the_origin_serves(
    kind: str,
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_bad_blob(fake_registry, cached_project, kind)
    code, _, err = cached_project.sync(capsys, "--remote-cache", fake_reference(fake_registry))
    assert_the_origin_served_after_one_warning(cached_project, code, err)
    if kind in ("same size", "longer", "shorter", "endless chunked"):
        # Registry attack: the warning gave a mirror's advice (re-lock), not the fix.
        assert "is corrupt: delete the blob sha256:" in err and "the registry's copy of" in err
        assert "re-lock" not in err


def test_a_blob_answered_with_a_web_page_is_not_called_corrupt(
    cached_project: Project, fake_registry: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fleet field test: a login page in front of the registry answered the blob with 200
    and HTML. The archive was called corrupt, with the hint to delete the blob in the
    registry, which holds nothing wrong."""
    artifact = cached_project.host_artifact()
    page = b"<!doctype html><title>Sign in</title>" + b" " * 200
    fake_registry.serve(
        f"/v2/pylock/x/blobs/sha256:{artifact.sha256}",
        page,
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    reference = fake_reference(fake_registry)
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, "--no-origin")
    assert code == 1
    assert "with a web page (text/html), not the blob" in err
    assert "a login page" in err
    assert "corrupt" not in err and "delete the blob" not in err, err


_SIGNED = "X-Amz-Signature=signedsecret0123456789"


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
def test_a_storage_answer_that_is_not_the_blob_is_not_called_corrupt(
    chunked: bool,
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Registry attack: the registry's 307 to object storage ended in an XML error page
    with 200 (or a proxy's page), of another length than the blob's. It was refused by
    hash and called the registry's corrupt copy, with the hint to delete a blob the
    registry holds intact."""
    artifact = cached_project.host_artifact()
    storage = f"/storage/{artifact.sha256}"
    fake_registry.redirect(
        f"/v2/pylock/x/blobs/sha256:{artifact.sha256}",
        f"{fake_registry.url(storage)}?{_SIGNED}",
        code=307,
    )
    page = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>"
    fake_registry.serve(storage, page, headers={"Content-Type": "application/xml"}, chunked=chunked)
    code, _, err = cached_project.sync(capsys, "--remote-cache", fake_reference(fake_registry))
    assert_the_origin_served_after_one_warning(cached_project, code, err)
    expected = f"on to http://127.0.0.1:{fake_registry.port}, whose answer is not the blob: "
    assert expected + f"58 bytes, not its {artifact.size}" in err, err
    assert "in front of the registry's storage" in err, err
    assert "corrupt" not in err and "delete the blob" not in err, err
    assert "signedsecret" not in err


@pytest.mark.parametrize("status", [401, 403])
def test_a_storage_refusing_the_signed_url_is_not_a_login_problem(
    status: int,
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Registry attack: object storage refused the registry's signed URL (expired: the
    registry's clock, or its storage settings), and the warning said to `docker login`,
    though the registry had accepted the login."""
    artifact = cached_project.host_artifact()
    storage = f"/storage/{artifact.sha256}"
    # Another host (as object storage is): no challenge of the registry's to answer.
    location = f"http://localhost:{fake_registry.port}{storage}?{_SIGNED}"
    fake_registry.redirect(f"/v2/pylock/x/blobs/sha256:{artifact.sha256}", location, code=307)
    body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    fake_registry.serve(storage, b"", always=[Status(status, body=body)])
    code, _, err = cached_project.sync(capsys, "--remote-cache", fake_reference(fake_registry))
    assert_the_origin_served_after_one_warning(cached_project, code, err)
    refused = f"redirected pull to http://localhost:{fake_registry.port}, which refused it: "
    refused += f"HTTP {status}"
    assert refused + " (AccessDenied)" in err, err
    assert "signed URL" in err and "clock" in err, err
    assert "docker login" not in err and "signedsecret" not in err, err


class LoginPage(LoopbackServer):
    """A single sign-on front that answers every request with its login page (200, HTML),
    or with ``redirect``, a redirect to the sign-on host (``/sso/...`` on itself, where the
    page is); with ``reads``, it lets reads through to a registry that has no blob (a 404),
    and guards writes only."""

    def __init__(self, redirect: str | None = None, *, reads: bool = False) -> None:
        super().__init__()
        self.redirect = redirect
        self.reads = reads
        self.requests: list[LoggedRequest] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(LoggedRequest.of(request))
        await request.read()
        if self.reads and request.method in ("GET", "HEAD"):
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        if self.redirect is not None and not request.path.startswith("/sso/"):
            location = f"http://127.0.0.1:{self.port}{self.redirect}"
            return web.Response(status=302, headers={"Location": location})
        page = b"<!doctype html><title>Sign in</title>" + b" " * 200
        return web.Response(body=page, content_type="text/html", charset="utf-8")


@pytest.mark.parametrize("case", ["page", "page for writes", "redirect"])
def test_mirror_to_a_registry_behind_a_login_page_says_so(
    case: str, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fleet field test: behind a login page that answers 200 and HTML to everything, the
    blob check read "the blob is there", so nothing was uploaded and the push failed at the
    manifest as "refused manifest: HTTP 200"; one that guards only writes was "refused
    push: HTTP 200"; one that redirects to the sign-on host was "refused manifest: HTTP
    302", naming neither the page nor where it sent pylock (now the blob check follows the
    redirect to the page)."""
    redirect = "/sso/login?next=/v2/" if case == "redirect" else None
    with LoginPage(redirect, reads=case == "page for writes") as page:
        reference = f"oci+http://127.0.0.1:{page.port}/pylock/x"
        code = cached_project.run("mirror", "--to", reference, "--platform", host().key)
    _, err = capsys.readouterr()
    assert code == 1
    if case == "page":
        assert "answered the check for blob sha256:" in err
        assert "with a web page (text/html), not the registry's answer" in err
        assert [request.method for request in page.requests] == ["HEAD"]
    elif case == "page for writes":
        assert "refused push: HTTP 200, a web page from something in front of the registry" in err
    else:
        assert "with a web page (text/html) after HTTP 302 to http://127.0.0.1:" in err
        assert [request.method for request in page.requests] == ["HEAD", "GET", "GET"]
    assert "something in front of the registry answers for it (a login page" in err


def test_a_registry_that_trickles_is_given_up_for_the_origin(
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The right bytes, at about 300 bytes a second: without a minimum pace the sync would
    # wait for them as long as every gap stays under the read timeout.
    from pylock.net import policy

    monkeypatch.setattr(policy, "SLOW_BYTES", 4096)
    monkeypatch.setattr(policy, "SLOW_WINDOW", 0.3)
    artifact = cached_project.host_artifact()
    good = cached_project.data[host().key + "app"]
    path = f"/v2/pylock/x/blobs/sha256:{artifact.sha256}"
    fake_registry.serve(path, good, always=[Throttle(chunk=16, delay=0.05)])
    code, _, err = cached_project.sync(capsys, "--remote-cache", fake_reference(fake_registry))
    assert_the_origin_served_after_one_warning(cached_project, code, err)
    assert "too slow" in err


def test_tls_needs_the_ca_and_falls_through_without_it(
    htpasswd_registry: RealRegistry, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", htpasswd_registry.oci("pylock/tls")
    )
    assert code == 0, err
    assert len(warnings(err)) == 1 and "TLS" in err
    assert cached_project.origin_requests == 1


class RefusingProxy(AnsweringProxy):
    """Answers every ``CONNECT`` with one status, as a proxy that denies the host does."""

    def __init__(self, status: bytes) -> None:
        super().__init__("refused", b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")


def _sync_through_a_refusing_proxy(
    project: Project,
    capsys: pytest.CaptureFixture[str],
    reference: str,
    status: bytes,
    variable: str,
) -> str:
    """Sync from ``reference`` alone (no origin) through a :class:`RefusingProxy` that
    answers ``status``, given in ``variable`` with a password in its URL; checks that the
    sync failed there, naming that proxy and variable and not the password. Returns stderr."""
    with RefusingProxy(status) as proxy:
        with_credentials = proxy.address.replace("http://", "http://ci-bot:pr0xy-s3cret@")
        code, _, err = project.sync(
            capsys, "--remote-cache", reference, "--no-origin", **{variable: with_credentials}
        )
    assert code == 1
    assert proxy.seen == ["refused"]
    assert f"the proxy http://***@127.0.0.1:{proxy.port} ({variable}) refused" in err
    assert "pr0xy-s3cret" not in err
    return err


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (b"403 Forbidden", "ask the proxy's administrators whether it allows this host"),
        (b"407 Proxy Authentication Required", "the proxy refused the user name and password"),
    ],
)
def test_a_proxy_refusing_the_registry_is_named_with_its_variable(
    status: bytes, hint: str, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field test: a proxy's 403 or 407 to the registry's CONNECT was "cannot reach
    https://HOST: 403, message='Forbidden', url='http://...'" with the hint to check that the
    registry is up, never naming HTTPS_PROXY."""
    reference = f"oci://127.0.0.1:{free_port()}/pylock/x"
    err = _sync_through_a_refusing_proxy(cached_project, capsys, reference, status, "HTTPS_PROXY")
    assert f"HTTP {status.decode()}" in err
    assert err.split("pylock: hint: ")[-1].split(": ", 1)[0] == "the registry failed"
    assert hint in err and "check that it is up" not in err
    assert "message=" not in err


def test_a_plain_http_proxys_407_to_an_oci_http_registry_names_the_proxy(
    cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fleet field test: behind HTTP_PROXY, an ``oci+http://`` registry is asked through the
    proxy without CONNECT, and the proxy's 407 read "oci+http://... refused pull: HTTP 407"
    with the hint to check that the registry is up, never naming the proxy or HTTP_PROXY."""
    reference = "oci+http://registry.example:5000/pylock/x"
    status = b"407 Proxy Authentication Required"
    err = _sync_through_a_refusing_proxy(cached_project, capsys, reference, status, "HTTP_PROXY")
    assert "refused http://registry.example:5000: HTTP 407" in err
    assert "the proxy refused the user name and password in HTTP_PROXY" in err
    assert "check that it is up" not in err


@pytest.mark.parametrize("case", ["wrong-host", "expired"])
def test_a_registry_certificate_no_ca_bundle_fixes_is_not_blamed_on_ssl_cert_file(
    case: str, cached_project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field test: a registry whose certificate (from the CA in SSL_CERT_FILE) named another
    host was hinted "set SSL_CERT_FILE to a CA bundle that includes the registry's CA"."""
    import ssl

    from tests.pki import TestCa

    ca = TestCa.create("pylock test CA")
    signer = replace(ca, now=ca.now - datetime.timedelta(days=3)) if case == "expired" else ca
    address = "127.0.0.2" if case == "wrong-host" else "127.0.0.1"
    (tmp_path / "tls").mkdir()
    ca_file, cert, key = signer.write_server_pair(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with HttpServer(address, tls=context) as registry:
        reference = f"oci://{address}:{registry.port}/pylock/x"
        code, _, err = cached_project.sync(
            capsys, "--remote-cache", reference, "--no-origin", SSL_CERT_FILE=str(ca_file)
        )
    assert code == 1
    hint = err.split("pylock: hint: ")[-1]
    assert hint.startswith("the registry failed: TLS failure")
    assert "SSL_CERT_FILE" not in hint
    expected = (
        f"the certificate is for another host than {address}: check the host name in the "
        "remote cache reference"
        if case == "wrong-host"
        else f"the certificate of {address} is expired or not yet valid"
    )
    assert expected in hint


def test_failed_fetch_with_remote_cache_counts(
    remote: Remote, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fetch", "--all-platforms", "--remote-cache", remote.reference]
    code = cached_project.run(*args, "--push", **remote.tls)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "0 from the remote cache, 2 downloaded" in err and "2 pushed" in err, err
    code = cached_project.run(*args, **remote.tls)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 from the remote cache, 0 downloaded" in err
    assert cached_project.origin_requests == 2


# -- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "https://ghcr.io/acme/pythons",
        "oci://ghcr.io",
        "oci://user:hunter2secret@ghcr.io/acme/pythons",
        "oci://ghcr.io/Acme",
        "oci://" + "a" * 300 + "/x",
    ],
)
def test_bad_reference_is_a_usage_error(
    reference: str, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cached_project.sync(capsys, "--remote-cache", reference)
    assert code == 2
    assert err.startswith("pylock: error:") and "Traceback" not in err
    assert "hunter2secret" not in err + out
    assert cached_project.origin_requests == 0
    assert cached_project.run("mirror", "--to", reference) == 2


def test_bad_reference_in_the_environment_is_a_usage_error(
    cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cached_project.sync(capsys, PYLOCK_REMOTE_CACHE="ghcr.io/acme")
    assert code == 2
    assert "pylock: error: PYLOCK_REMOTE_CACHE: not a registry reference: 'ghcr.io/acme'" in err


def test_a_reference_without_a_repository_says_so_and_where_it_was_given(
    cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """New-user walk-through: `--remote-cache oci://ghcr.io` was "bad repository name",
    with a hint about lower case, and neither that error nor PYLOCK_REMOTE_CACHE's named
    where the reference came from."""
    code, _, err = cached_project.sync(capsys, "--remote-cache", "oci+http://127.0.0.1:5000/")
    assert code == 2
    assert err.splitlines() == [
        "pylock: error: --remote-cache: 'oci+http://127.0.0.1:5000/' names no repository on "
        "the registry",
        "pylock: hint: write oci+http://127.0.0.1:5000/REPOSITORY, e.g. "
        "oci+http://127.0.0.1:5000/acme/pythons",
    ]
    assert cached_project.run("mirror", "--to", "oci://ghcr.io") == 2
    assert (
        "pylock: error: mirror --to: 'oci://ghcr.io' names no repository" in capsys.readouterr().err
    )


@pytest.mark.parametrize("flag", ["--push", "--no-origin"])
def test_push_or_no_origin_without_a_registry_is_a_usage_error(
    flag: str, cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cached_project.sync(capsys, flag)
    assert code == 2 and "needs a remote cache" in err
    assert cached_project.origin_requests == 0


def test_mirror_needs_outdir_or_to(
    cached_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cached_project.run("mirror") == 2
    assert cached_project.run("mirror", "out", "--to", "oci://h.io/a") == 2


def test_plain_http_only_when_asked_or_loopback() -> None:
    assert parse_reference("oci+http://registry.corp/x").plain_http
    assert not parse_reference("oci://127.0.0.1:5000/x").plain_http


# -- the console script --------------------------------------------------------------------------


def test_console_script_pushes_then_pulls(
    remote: Remote, cached_project: Project, tmp_path: Path, console_script: Path
) -> None:
    script = str(console_script)
    reference = remote.reference

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, "--project", str(cached_project.root), "sync", *args],
            env=cached_project.environ(**remote.tls),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run("--into", str(tmp_path / "one"), "--remote-cache", reference, "--push")
    assert first.returncode == 0, first.stderr
    assert "1 pushed" in first.stderr
    second = run("--into", str(tmp_path / "two"), "--remote-cache", reference, "--no-origin")
    assert second.returncode == 0, second.stderr
    assert "1 from the remote cache" in second.stderr
    assert cached_project.origin_requests == 1
    # Nothing to do: the remote cache flags change nothing and nothing is contacted.
    dead = f"oci://127.0.0.1:{free_port()}/pylock/down"
    third = run("--into", str(tmp_path / "two"), "--remote-cache", dead, "--push", "--no-origin")
    assert third.returncode == 0, third.stderr
    assert "up to date" in third.stderr and "warning" not in third.stderr
    assert PASSWORD not in first.stderr + second.stderr + first.stdout + second.stdout


def test_settings_read_the_remote_cache_variables(tmp_path: Path) -> None:
    from pylock.errors import UsageError
    from pylock.net.registry import RemoteCache

    settings = Settings.from_environ(
        {
            "PYLOCK_REMOTE_CACHE": " oci://registry.corp:5000/team/pythons ",
            "PYLOCK_REMOTE_CACHE_PUSH": "yes",
            "PYLOCK_NO_ORIGIN": "0",
            "HOME": str(tmp_path),
        }
    )
    remote = RemoteCache.from_settings(settings)
    assert remote is not None
    assert str(remote.ref) == "oci://registry.corp:5000/team/pythons"
    assert remote.push and not remote.no_origin
    # The flag wins over the variable; no registry at all is None.
    flagged = RemoteCache.from_settings(settings, reference="oci+http://127.0.0.1:1/x")
    assert flagged is not None and flagged.ref.plain_http
    assert RemoteCache.from_settings(Settings.from_environ({})) is None
    with pytest.raises(UsageError):
        RemoteCache.from_settings(Settings.from_environ({"PYLOCK_NO_ORIGIN": "1"}))


def test_a_corrupt_blob_is_named_so_and_never_counted_as_pushed(
    cached_project: Project, fake_registry: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The registry has "the blob", so an upload would be skipped: a push cannot repair it,
    # and neither can the `mirror --to` the old hint named.
    serve_bad_blob(fake_registry, cached_project, "same size")
    reference = fake_reference(fake_registry)
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, "--no-origin")
    assert code == 1
    assert "is corrupt in the remote cache" in err
    assert "delete the blob sha256:" in err
    code, _, err = cached_project.sync(capsys, "--remote-cache", reference, "--push")
    assert code == 0, err
    assert "holds a corrupt copy" in err and "1 pushed" not in err


def test_a_push_that_fails_unexpectedly_is_still_one_warning(
    cached_project: Project,
    fake_registry: HttpServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registry attack: an error other than a RegistryError in a `sync --push` (an upload
    Location IDNA refused, then) was dropped without a word, and the sync said nothing of
    the push. Injected here, as the registry errors it came from are registry errors now."""
    from pylock.net.registry import RegistryClient

    async def broken_push(self: RegistryClient, path: Path, sha256: str) -> None:
        raise ValueError("injected: no such push")

    monkeypatch.setattr(RegistryClient, "push_blob", broken_push)
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", fake_reference(fake_registry), "--push"
    )
    assert code == 0, err
    (warning,) = warnings(err)
    assert "cannot push to the remote cache" in warning
    assert "failed: ValueError: injected: no such push" in warning
    assert "pushed" not in err.replace("pushing", "")


def test_a_ca_file_that_does_not_load_fails_the_registry_not_a_plain_http_sync(
    cached_project: Project,
    fake_registry: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Registry attack: a bad SSL_CERT_FILE failed every sync with a remote cache, even an
    `oci+http://` one and an http origin that need no TLS at all."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    code, _, err = cached_project.sync(
        capsys, "--remote-cache", fake_reference(fake_registry), SSL_CERT_FILE=str(garbage)
    )
    assert_the_origin_served_after_one_warning(cached_project, code, err)
    assert "SSL_CERT_FILE" in warnings(err)[0]


def test_mirror_to_offline_is_refused_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error-message audit: `mirror --to ... --offline` tried the registry ("cannot reach
    http://127.0.0.1:1"), where the help says --offline never uses the network."""
    from pylock.cli import main

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        reference = f"oci+http://127.0.0.1:{listener.getsockname()[1]}/repo"
        code = main(["--project", str(tmp_path), "mirror", "--to", reference, "--offline"])
        with pytest.raises(TimeoutError):
            listener.accept()
    err = capsys.readouterr().err
    assert code == 1
    assert f"mirror --to {reference} pushes to a registry, which offline" in err
    assert "hint: run it without --offline" in err


def test_mirror_to_fetches_again_what_a_concurrent_clean_removed(
    remote: Remote,
    cached_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Race attack: a `pylock cache clean` that ran after the downloads made `mirror --to`
    fail with "No such file or directory" (no archive was held while it was pushed)."""
    import pylock.mirror
    from pylock.sync.cache import Cache

    real_fetch = pylock.mirror._fetch_into_cache
    removed: list[int] = []

    def fetch(entries: list[Any], cache: Cache, *args: Any) -> dict[str, Path]:
        paths = real_fetch(entries, cache, *args)
        if not removed:
            removed.append(len(Cache(cache.root).clean().removed))  # another process's
        return paths

    monkeypatch.setattr(pylock.mirror, "_fetch_into_cache", fetch)
    code = cached_project.run(
        "mirror", "--to", remote.reference, "--platform", host().key, **remote.tls
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    assert removed == [1]
    assert "1 pushed" in err
    assert remote.blobs_present(cached_project.host_shas()) == [True]
    assert cached_project.origin_requests == 2  # fetched again after the clean
