"""A look-alike of the upstream hosts pylock reads, served on loopback for tests.

It reproduces the real path shapes and formats (see docs UPSTREAM.md):

- ``https://github.com/astral-sh/python-build-standalone/releases/download/<tag>/<file>``
  and ``.../<tag>/SHA256SUMS``                                     -> ``/gh/...``
- ``https://api.github.com/repos/astral-sh/python-build-standalone/releases?per_page=&page=``
  (Link pagination, ``published_at``, assets with ``digest`` or null, rate limits) -> ``/api/...``
- ``https://raw.githubusercontent.com/astral-sh/python-build-standalone/latest-release/
  latest-release.json``                                            -> ``/raw/...``
- ``https://downloads.python.org/pypy/versions.json`` and archives  -> ``/dpo/...``
- ``https://pypy.org/checksums.html``                              -> ``/pypyorg/...``
- ``https://api.github.com/repos/oracle/graalpython/releases`` and downloads.
- ``https://artifacts.example/<name>``: self-hosted archives for direct-URL entries.

Point pylock at it with :meth:`UpstreamServer.rewrite_args` (``--rewrite`` pairs) or
:meth:`UpstreamServer.rewrites_env` (``PYLOCK_URL_REWRITES``). Knobs: ETag/304 on or
off, an API quota (403 or 429 when used up), malformed JSON, SHA256SUMS omissions, and
a request log.
"""

from __future__ import annotations

import bz2
import email.utils
import gzip
import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web

from tests.loopback import LoggedRequest, LoopbackServer

PBS_REPO = "astral-sh/python-build-standalone"
PBS_REPO_ID = 162334160
GRAALPY_REPO = "oracle/graalpython"
GRAALPY_REPO_ID = 127520052
PBS_DOWNLOAD = f"https://github.com/{PBS_REPO}/releases/download/"

#: The target triples of the two hosts the look-alike releases cover.
LINUX = "x86_64-unknown-linux-gnu"
MAC = "aarch64-apple-darwin"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- tiny archives in the upstream layouts --------------------------------------------------


def _tar(members: list[tuple[str, bytes | None, int]], *, mtime: int = 1704067200) -> bytes:
    """An uncompressed tar; ``None`` content means a directory entry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content, mode in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = mode
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _launcher(version: str) -> bytes:
    return f"#!/bin/sh\necho 'Python {version}'\n".encode()


def pbs_install_only(version: str, *, freethreaded: bool = False) -> bytes:
    """A tiny ``install_only`` archive: everything under ``python/``, no directory entries."""
    minor = ".".join(version.split(".")[:2])
    exe = f"python{minor}{'t' if freethreaded else ''}"
    members = [
        (f"python/bin/{exe}", _launcher(version), 0o775),
        (f"python/lib/python{minor}/lib-dynload/.empty", b"", 0o664),
        (f"python/lib/python{minor}/os.py", b"# os\n", 0o664),
    ]
    return gzip.compress(_tar(sorted(members)), mtime=0)


def pbs_full(version: str, triple: str = LINUX, *, states_version: bool = True) -> bytes:
    """A tiny ``full`` archive (.tar.zst): ``python/PYTHON.json`` first, ``python/install/``
    (with ``states_version=False``, a PYTHON.json without ``python_version``)."""
    import zstandard

    minor = ".".join(version.split(".")[:2])
    info: dict[str, str] = {
        "version": "8",
        "target_triple": triple,
        "python_version": version,
        "python_tag": "cp" + minor.replace(".", ""),
        "python_abi_tag": "",
        "python_exe": f"install/bin/python{minor}",
    }
    if not states_version:
        del info["python_version"]
    members: list[tuple[str, bytes | None, int]] = [
        ("python/PYTHON.json", json.dumps(info).encode(), 0o664),
        (f"python/install/bin/python{minor}", _launcher(version), 0o775),
        (f"python/install/lib/python{minor}/os.py", b"# os\n", 0o664),
        ("python/build/objs.o", b"\0" * 64, 0o664),
    ]
    return zstandard.ZstdCompressor().compress(_tar(members))


def pypy_archive(stem: str, version: str = "3.11.13") -> bytes:
    """A tiny PyPy archive (.tar.bz2): one top directory named after the stem, with dirs."""
    members: list[tuple[str, bytes | None, int]] = [
        (f"{stem}/", None, 0o755),
        (f"{stem}/bin/", None, 0o755),
        (f"{stem}/bin/pypy3", _launcher(version), 0o755),
        (f"{stem}/lib/", None, 0o755),
        (f"{stem}/lib/pypy3.11/os.py", b"# os\n", 0o644),
    ]
    return bz2.compress(_tar(members))


def graalpy_archive(stem: str) -> bytes:
    """A tiny GraalPy archive (.tar.gz) with ``<stem>/bin/graalpy``."""
    members: list[tuple[str, bytes | None, int]] = [
        (f"{stem}/", None, 0o755),
        (f"{stem}/bin/graalpy", _launcher("3.12.0"), 0o755),
    ]
    return gzip.compress(_tar(members), mtime=0)


def pbs_name(version: str, tag: str, triple: str, flavor: str = "install_only_stripped") -> str:
    """A current-era PBS asset name."""
    ext = "tar.zst" if flavor.endswith("full") else "tar.gz"
    return f"cpython-{version}+{tag}-{triple}-{flavor}.{ext}"


# -- the model the server serves ------------------------------------------------------------


@dataclass
class Asset:
    """One release asset."""

    name: str
    body: bytes
    #: Whether the API lists a ``digest`` (null for assets older than mid-2025).
    api_digest: bool = True


@dataclass
class Release:
    """One GitHub release."""

    tag: str
    published_at: str
    assets: list[Asset] = field(default_factory=list)
    #: Publish a ``SHA256SUMS`` asset (PBS since 20220227).
    sums: bool = True
    #: Archive names left out of ``SHA256SUMS`` (a broken release).
    omit_from_sums: set[str] = field(default_factory=set)
    #: Serve this instead of the computed ``SHA256SUMS`` (garbled or truncated files).
    sums_body: bytes | None = None
    #: Marked a prerelease on GitHub.
    prerelease: bool = False

    def asset(self, name: str) -> Asset | None:
        for asset in self.assets:
            if asset.name == name:
                return asset
        return None

    def sums_text(self) -> str:
        lines = [
            f"{sha256(a.body)}  {a.name}\n"
            for a in sorted(self.assets, key=lambda a: a.name)
            if a.name not in self.omit_from_sums and not a.name.endswith(".sha256")
        ]
        return "".join(lines)


@dataclass
class PypyFile:
    filename: str
    arch: str
    platform: str
    body: bytes
    #: Whether pypy.org's checksums page lists it.
    published_hash: bool = True


@dataclass
class PypyRelease:
    pypy_version: str
    python_version: str
    date: str
    files: list[PypyFile]
    stable: bool = True
    latest_pypy: bool = False


class UpstreamServer(LoopbackServer):
    """The look-alike, running its own event loop in a background thread."""

    methods = "GET"

    def __init__(self) -> None:
        super().__init__()
        self.pbs: list[Release] = []
        self.graalpy: list[Release] = []
        self.pypy: list[PypyRelease] = []
        self.latest_tag: str | None = None
        #: Answer conditional requests with 304 when the ETag matches.
        self.etag = True
        #: Remaining API requests; ``None`` means unlimited.
        self.api_quota: int | None = None
        #: Status used once the quota is gone: 403 (primary limit) or 429.
        self.rate_limit_status = 403
        #: Logical documents to serve as truncated JSON: ``latest``, ``pbs-api``,
        #: ``graalpy-api``, ``versions``.
        self.malformed: set[str] = set()
        #: A body to serve as PyPy's versions.json instead of the releases' (valid JSON
        #: that is no listing, say).
        self.versions_override: bytes | None = None
        #: Self-hosted files served at ``https://artifacts.example/<name>``.
        self.files: dict[str, bytes] = {}
        self.log: list[LoggedRequest] = []
        self.reset_epoch = int(time.time()) + 1800

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rewrite_pairs(self) -> list[str]:
        """``FROM=TO`` pairs sending every upstream host here."""
        return [
            f"https://github.com/={self.base}/gh/",
            f"https://api.github.com/={self.base}/api/",
            f"https://raw.githubusercontent.com/={self.base}/raw/",
            f"https://downloads.python.org/={self.base}/dpo/",
            f"https://pypy.org/={self.base}/pypyorg/",
            f"https://artifacts.example/={self.base}/files/",
        ]

    def rewrite_args(self) -> list[str]:
        """The pairs as ``--rewrite`` arguments."""
        return [arg for pair in self.rewrite_pairs() for arg in ("--rewrite", pair)]

    def rewrites_env(self) -> str:
        """The pairs as a ``PYLOCK_URL_REWRITES`` value."""
        return " ".join(self.rewrite_pairs())

    # -- populating --------------------------------------------------------------------------

    def add_pbs_release(
        self,
        tag: str,
        published_at: str,
        assets: dict[str, bytes],
        *,
        api_digest: bool = True,
        sums: bool = True,
        omit_from_sums: set[str] | None = None,
        latest: bool = True,
    ) -> Release:
        release = Release(
            tag=tag,
            published_at=published_at,
            assets=[Asset(n, b, api_digest) for n, b in assets.items()],
            sums=sums,
            omit_from_sums=omit_from_sums or set(),
        )
        self.pbs.append(release)
        if latest:
            self.latest_tag = tag
        return release

    def add_graalpy_release(
        self, version: str, published_at: str, assets: dict[str, bytes], *, api_digest: bool = True
    ) -> Release:
        items = [Asset(n, b, api_digest) for n, b in assets.items()]
        if not api_digest:
            # Older GraalPy releases publish a .sha256 file beside each archive.
            items += [
                Asset(f"{n}.sha256", f"{sha256(b)}\n".encode(), False) for n, b in assets.items()
            ]
        release = Release(tag=f"graal-{version}", published_at=published_at, assets=items)
        self.graalpy.append(release)
        return release

    def pbs_url(self, tag: str, name: str) -> str:
        """The canonical (upstream) URL of a PBS asset."""
        return f"{PBS_DOWNLOAD}{tag}/{quote(name, safe='')}"

    def requests_to(self, fragment: str) -> list[LoggedRequest]:
        return [r for r in self.log if fragment in r.path]

    def api_requests(self) -> list[LoggedRequest]:
        return [r for r in self.log if r.path.startswith("/api/")]

    # -- serving -----------------------------------------------------------------------------

    def _moving(self, request: web.Request, body: bytes, content_type: str) -> web.Response:
        """A document that changes over time: ETag and Last-Modified, 304 when unchanged."""
        tag = f'"{sha256(body)[:20]}"'
        headers = {
            "Content-Type": content_type,
            "Last-Modified": email.utils.formatdate(1_700_000_000, usegmt=True),
        }
        if self.etag:
            headers["ETag"] = tag
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers={"ETag": tag})
        return web.Response(body=body, headers=headers)

    def _release_json(self, repo: str, release: Release) -> dict[str, object]:
        download = f"https://github.com/{repo}/releases/download/{release.tag}/"
        assets = []
        all_assets = list(release.assets)
        if release.sums and repo == PBS_REPO:
            all_assets.append(Asset("SHA256SUMS", release.sums_text().encode(), True))
        for number, asset in enumerate(all_assets):
            assets.append(
                {
                    "url": f"https://api.github.com/repos/{repo}/releases/assets/{number}",
                    "id": number,
                    "node_id": f"RA_{number}",
                    "name": asset.name,
                    "label": "",
                    "uploader": {"login": "github-actions[bot]", "type": "Bot"},
                    "content_type": "application/octet-stream",
                    "state": "uploaded",
                    "size": len(asset.body),
                    "digest": f"sha256:{sha256(asset.body)}" if asset.api_digest else None,
                    "download_count": 7,
                    "created_at": release.published_at,
                    "updated_at": release.published_at,
                    "browser_download_url": download + quote(asset.name, safe=""),
                }
            )
        return {
            "url": f"https://api.github.com/repos/{repo}/releases/1",
            "html_url": f"https://github.com/{repo}/releases/tag/{release.tag}",
            "id": 1,
            "tag_name": release.tag,
            "target_commitish": "main",
            "name": release.tag,
            "draft": False,
            "prerelease": release.prerelease,
            "created_at": release.published_at,
            "published_at": release.published_at,
            "assets": assets,
            "tarball_url": f"https://api.github.com/repos/{repo}/tarball/{release.tag}",
            "zipball_url": f"https://api.github.com/repos/{repo}/zipball/{release.tag}",
            "body": "",
        }

    def _api(
        self, request: web.Request, repo: str, repo_id: int, releases: list[Release], key: str
    ) -> web.Response:
        headers = {
            "x-ratelimit-limit": "60",
            "x-ratelimit-reset": str(self.reset_epoch),
            "x-ratelimit-resource": "core",
        }
        if self.api_quota is not None and self.api_quota <= 0:
            headers["x-ratelimit-remaining"] = "0"
            message = {
                "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: "
                "Authenticated requests get a higher rate limit. Check out the documentation "
                "for more details.)",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            }
            return web.json_response(message, status=self.rate_limit_status, headers=headers)
        try:
            per_page = min(int(request.query.get("per_page", "30")), 100)
            page = max(int(request.query.get("page", "1")), 1)
        except ValueError:
            return web.json_response({"message": "Bad request"}, status=400)
        ordered = sorted(releases, key=lambda r: r.published_at, reverse=True)
        chunk = ordered[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(ordered) // per_page))
        links = []

        def link(number: int, rel: str) -> str:
            return (
                f"<https://api.github.com/repositories/{repo_id}/releases?"
                f'per_page={per_page}&page={number}>; rel="{rel}"'
            )

        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        if links:
            headers["Link"] = ", ".join(links)
        body = json.dumps([self._release_json(repo, r) for r in chunk], indent=1).encode()
        if key in self.malformed:
            body = body[: len(body) // 2]
        response = self._moving(request, body, "application/json; charset=utf-8")
        if response.status != 304 and self.api_quota is not None:
            self.api_quota -= 1  # conditional requests answered 304 are free, as on GitHub
        remaining = "60" if self.api_quota is None else str(self.api_quota)
        response.headers.update(headers)
        response.headers["x-ratelimit-remaining"] = remaining
        return response

    def _download(self, releases: list[Release], tag: str, name: str) -> web.Response:
        for release in releases:
            if release.tag != tag:
                continue
            if name == "SHA256SUMS" and release.sums and releases is self.pbs:
                body = release.sums_body
                return web.Response(body=release.sums_text().encode() if body is None else body)
            asset = release.asset(name)
            if asset is not None:
                return web.Response(body=asset.body, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    def _versions_json(self) -> bytes:
        entries = []
        for release in self.pypy:
            entries.append(
                {
                    "pypy_version": release.pypy_version,
                    "python_version": release.python_version,
                    "stable": release.stable,
                    "latest_pypy": release.latest_pypy,
                    "date": release.date,
                    "files": [
                        {
                            "filename": f.filename,
                            "arch": f.arch,
                            "platform": f.platform,
                            "download_url": f"https://downloads.python.org/pypy/{f.filename}",
                        }
                        for f in release.files
                    ],
                }
            )
        body = json.dumps(entries, indent=2).encode()
        if self.versions_override is not None:
            return self.versions_override
        return body[: len(body) // 2] if "versions" in self.malformed else body

    def _checksums_html(self) -> str:
        parts = [
            "<!DOCTYPE html>\n<html><head><title>Checksums | PyPy</title></head><body>",
            '<div class="entry-content">',
        ]
        for release in self.pypy:
            series = ".".join(release.python_version.split(".")[:2])
            parts.append(f"<p>pypy{series}-v{release.pypy_version} sha256:</p>")
            lines = [
                f"    {sha256(f.body)}  {f.filename}   " for f in release.files if f.published_hash
            ]
            parts.append('<pre class="literal-block">\n' + "\n".join(lines) + "\n</pre>")
        parts.append("</div></body></html>\n")
        return "\n".join(parts)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = self._route(request)
        self.log.append(LoggedRequest.of(request, response.status))
        return response

    def _route(self, request: web.Request) -> web.Response:
        path = request.path
        pbs_dl = f"/gh/{PBS_REPO}/releases/download/"
        graal_dl = f"/gh/{GRAALPY_REPO}/releases/download/"
        if path == f"/raw/{PBS_REPO}/latest-release/latest-release.json":
            if self.latest_tag is None:
                return web.Response(status=404, text="404: Not Found")
            document = {
                "version": 1,
                "tag": self.latest_tag,
                "release_url": f"https://github.com/{PBS_REPO}/releases/tag/{self.latest_tag}",
                "asset_url_prefix": f"{PBS_DOWNLOAD}{self.latest_tag}",
            }
            body = json.dumps(document).encode()
            if "latest" in self.malformed:
                body = body[:20]
            return self._moving(request, body, "text/plain; charset=utf-8")
        if path.startswith(pbs_dl):
            tag, _, name = path[len(pbs_dl) :].partition("/")
            return self._download(self.pbs, tag, name)
        if path.startswith(graal_dl):
            tag, _, name = path[len(graal_dl) :].partition("/")
            return self._download(self.graalpy, tag, name)
        if path == f"/api/repos/{PBS_REPO}/releases":
            return self._api(request, PBS_REPO, PBS_REPO_ID, self.pbs, "pbs-api")
        if path == f"/api/repos/{GRAALPY_REPO}/releases":
            return self._api(request, GRAALPY_REPO, GRAALPY_REPO_ID, self.graalpy, "graalpy-api")
        if path == "/dpo/pypy/versions.json":
            return self._moving(request, self._versions_json(), "application/json")
        if path.startswith("/dpo/pypy/"):
            name = path.rsplit("/", 1)[-1]
            for release in self.pypy:
                for item in release.files:
                    if item.filename == name:
                        return web.Response(body=item.body)
            return web.Response(status=404, text="Not Found")
        if path.startswith("/files/") and path[len("/files/") :] in self.files:
            return web.Response(body=self.files[path[len("/files/") :]])
        if path == "/pypyorg/checksums.html":
            return self._moving(request, self._checksums_html().encode(), "text/html")
        return web.Response(status=404, text="Not Found")
