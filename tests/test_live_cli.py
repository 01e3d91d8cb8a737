"""`pylock lock --refresh`, `pylock outdated` and direct URLs, through `main([...])`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pylock.cli import main
from tests.indexdata import uv_entry
from tests.upstream_server import (
    LINUX,
    MAC,
    UpstreamServer,
    pbs_full,
    pbs_install_only,
    pbs_name,
    pypy_archive,
    sha256,
)

#: Newer than anything in the bundled snapshot (which ends in August 2026).
NEW_TAG = "20261120"
NEW_VERSION = "3.13.99"


def run(
    project: Path,
    server: UpstreamServer,
    *args: str,
    env: dict[str, str] | None = None,
) -> int:
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache"), **(env or {})}
    command, *rest = args
    return main(
        ["--project", str(project), command, *server.rewrite_args(), *rest], environ=environ
    )


def locked(project: Path) -> dict[str, Any]:
    document = tomllib.loads((project / "pythons.lock").read_text())
    return {p["name"]: p for p in document.get("python", [])}


def publish_new_release(server: UpstreamServer) -> str:
    name = pbs_name(NEW_VERSION, NEW_TAG, LINUX)
    body = pbs_install_only(NEW_VERSION)
    server.add_pbs_release(NEW_TAG, "2026-11-20T09:00:00Z", {name: body})
    return sha256(body)


def write_config(project: Path, text: str) -> None:
    (project / "pythons.toml").write_text(text)


def write_direct(project: Path, name: str, filename: str, *keys: str) -> None:
    """``pythons.toml`` with one direct-URL entry ``name``: ``filename`` on artifacts.example
    for linux-x86_64-gnu, and the TOML lines ``keys``.
    """
    url = f"https://artifacts.example/{filename}"
    lines = [f"[python.{name}]", f'url = "{url}"', *keys, 'platforms = ["linux-x86_64-gnu"]']
    write_config(project, "\n".join(lines) + "\n")


def lock_direct(
    project: Path, upstream: UpstreamServer, name: str, filename: str, body: bytes, *keys: str
) -> dict[str, Any]:
    """Lock the one direct-URL entry ``name`` of :func:`write_direct`, whose archive
    ``body`` upstream serves as ``filename``; returns the entry the lock holds."""
    upstream.files[filename] = body
    write_direct(project, name, filename, *keys)
    assert run(project, upstream, "lock") == 0
    entry: dict[str, Any] = locked(project)[name]
    return entry


APP = """
[python.app]
version = "3.13"
platforms = ["linux-x86_64-gnu"]
"""


def test_new_release_reaches_the_lock_only_with_upgrade_and_refresh(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, APP)
    assert run(project, upstream, "lock") == 0
    before = locked(project)["app"]
    assert before["build"] != NEW_TAG
    assert upstream.log == []  # the bundled snapshot needs no network

    digest = publish_new_release(upstream)
    assert run(project, upstream, "lock", "--refresh") == 0
    assert locked(project)["app"] == before  # minimal change: the locked build is kept

    assert run(project, upstream, "outdated") == 0
    out = capsys.readouterr().out
    assert f"app: cpython {before['version']}+{before['build']} -> " in out
    assert f"{NEW_VERSION}+{NEW_TAG} (newer version)" in out

    assert run(project, upstream, "lock", "--upgrade", "--refresh") == 0
    after = locked(project)["app"]
    assert (after["version"], after["build"]) == (NEW_VERSION, NEW_TAG)
    [artifact] = after["artifacts"]
    assert artifact["url"] == upstream.pbs_url(NEW_TAG, pbs_name(NEW_VERSION, NEW_TAG, LINUX))
    assert artifact["sha256"] == digest
    assert artifact["size"] > 0
    out = capsys.readouterr().out
    assert f"app: cpython {before['version']}+{before['build']} -> " in out

    # Without --refresh the snapshot alone cannot see the new release, yet the lock stays.
    assert run(project, upstream, "lock") == 0
    assert locked(project)["app"] == after


def test_a_refreshed_build_is_not_moved_back_when_platforms_change(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A release newer than the bundled snapshot, on both platforms, locked for one.
    upstream.add_pbs_release(
        NEW_TAG,
        "2026-11-20T09:00:00Z",
        {
            pbs_name(NEW_VERSION, NEW_TAG, triple): pbs_install_only(NEW_VERSION)
            for triple in (LINUX, MAC)
        },
    )
    write_config(project, APP)
    assert run(project, upstream, "lock", "--refresh") == 0
    assert locked(project)["app"]["build"] == NEW_TAG
    one_platform = (project / "pythons.lock").read_text()
    capsys.readouterr()

    # A platform added, and a plain lock, which cannot see the build: no silent downgrade.
    both = APP.replace('["linux-x86_64-gnu"]', '["linux-x86_64-gnu", "macos-aarch64"]')
    write_config(project, both)
    assert run(project, upstream, "lock") == 1
    err = capsys.readouterr().err
    assert f"app: cpython {NEW_VERSION}+{NEW_TAG} is locked from a listing newer" in err
    assert "macos-aarch64" in err and "pylock lock --refresh" in err
    assert "Traceback" not in err
    assert (project / "pythons.lock").read_text() == one_platform

    # With --refresh, the build is locked on the platform added too.
    assert run(project, upstream, "lock", "--refresh") == 0
    app = locked(project)["app"]
    assert app["build"] == NEW_TAG
    assert [a["platform"] for a in app["artifacts"]] == ["linux-x86_64-gnu", "macos-aarch64"]

    # A platform removed needs no listing: the build stays, with its archive as locked.
    write_config(project, APP)
    assert run(project, upstream, "lock") == 0
    assert locked(project)["app"]["artifacts"] == app["artifacts"][:1]
    assert locked(project)["app"]["build"] == NEW_TAG


def test_outdated_json_and_offline_fallback(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, APP)
    assert run(project, upstream, "lock") == 0
    capsys.readouterr()
    publish_new_release(upstream)
    # Offline with a cold metadata cache: the bundled snapshot has to do, with a warning.
    assert run(project, upstream, "outdated", "--format", "json", "--offline") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["pythons"][0]["newer-version"] is None
    assert "offline" in captured.err and "bundled index" in captured.err
    assert upstream.log == []

    assert run(project, upstream, "outdated", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    entry = report["pythons"][0]
    assert entry["newer-version"] == {"version": NEW_VERSION, "build": NEW_TAG}
    assert entry["up-to-date"] is False

    # Now the metadata is cached: offline sees the new release, and says how old it is.
    upstream.log.clear()
    assert run(project, upstream, "outdated", "--offline") == 0
    captured = capsys.readouterr()
    assert f"{NEW_VERSION}+{NEW_TAG}" in captured.out
    assert "offline: using https://raw.githubusercontent.com/" in captured.err
    assert upstream.log == []


def test_pinned_build_missing_from_the_snapshot(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tag the snapshot lacks, whose SHA256SUMS is gone: only the releases API knows it.
    tag = "20230113"
    name = pbs_name("3.11.1", tag, LINUX, "install_only")
    body = pbs_install_only("3.11.1")
    upstream.add_pbs_release(tag, "2023-01-16T10:00:00Z", {name: body}, sums=False, latest=False)
    for day in range(1, 12):
        upstream.add_pbs_release(f"202608{day:02d}", f"2026-08-{day:02d}T10:00:00Z", {})
    upstream.latest_tag = "20260814"
    write_config(
        project,
        f"""
[python.old]
version = "3.11.1"
build = "{tag}"
platforms = ["linux-x86_64-gnu"]
""",
    )
    assert run(project, upstream, "lock") == 1
    assert "pylock: error:" in capsys.readouterr().err
    assert run(project, upstream, "lock", "--refresh") == 0
    entry = locked(project)["old"]
    assert (entry["version"], entry["build"], entry["flavor"]) == ("3.11.1", tag, "install_only")
    assert entry["artifacts"][0]["sha256"] == sha256(body)
    assert entry["artifacts"][0]["size"] == len(body)
    assert upstream.api_requests()


def test_rate_limited_history_lookup_names_github_token(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.add_pbs_release("20230116", "2023-01-16T10:00:00Z", {}, sums=False, latest=False)
    upstream.add_pbs_release("20260814", "2026-08-14T10:00:00Z", {})
    upstream.api_quota = 0
    write_config(
        project,
        """
[python.old]
version = "3.11.1"
build = "20230116"
platforms = ["linux-x86_64-gnu"]
""",
    )
    assert run(project, upstream, "lock", "--refresh") == 1
    err = capsys.readouterr().err
    assert "pylock: error: GitHub API rate limit exhausted" in err
    # The look-alike stands in for api.github.com, which GITHUB_TOKEN never leaves.
    assert "pylock: hint: the answer came from 127.0.0.1" in err
    assert "GITHUB_TOKEN goes to GitHub only" in err
    assert "resets at" in err


def test_downloads_json_flag_merges_builds(
    project: Path, upstream: UpstreamServer, tmp_path: Path
) -> None:
    url = upstream.pbs_url(NEW_TAG, pbs_name(NEW_VERSION, NEW_TAG, LINUX))
    entry = uv_entry(patch=99, url=url, build=NEW_TAG)
    path = tmp_path / "downloads.json"
    path.write_text(json.dumps({"cpython-3.13.99-linux-x86_64-gnu": entry}))
    write_config(project, APP)
    assert run(project, upstream, "lock", "--python-downloads-json", str(path)) == 0
    assert locked(project)["app"]["artifacts"][0]["sha256"] == "ab" * 32
    assert upstream.log == []


def test_downloads_json_from_a_url_and_offline(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.files["downloads.json"] = b"{}"
    write_config(project, APP)
    url = "https://artifacts.example/downloads.json"
    assert run(project, upstream, "lock", "--python-downloads-json", url) == 0
    assert len(upstream.requests_to("downloads.json")) == 1
    assert run(project, upstream, "lock", "--offline", "--python-downloads-json", url) == 1
    assert f"pylock: error: offline, so the downloads JSON at {url}" in capsys.readouterr().err
    upstream.files["downloads.json"] = b"{not json"
    assert run(project, upstream, "lock", "--python-downloads-json", url) == 1
    assert "not valid JSON" in capsys.readouterr().err


# -- direct URLs -------------------------------------------------------------------------------


def test_direct_url_without_sha256_is_downloaded_once_and_recorded(
    project: Path, upstream: UpstreamServer
) -> None:
    body = pbs_install_only("3.12.9")
    entry = lock_direct(
        project, upstream, "inhouse", "cpython-3.12.9-corp-x86_64-linux.tar.gz", body
    )
    assert (entry["version"], entry["flavor"], entry.get("build")) == (
        "3.12.9",
        "install_only",
        None,
    )
    [artifact] = entry["artifacts"]
    assert artifact["url"] == "https://artifacts.example/cpython-3.12.9-corp-x86_64-linux.tar.gz"
    assert (artifact["sha256"], artifact["size"]) == (sha256(body), len(body))
    assert len(upstream.requests_to("/files/")) == 1
    # Locking again keeps the entry and downloads nothing.
    assert run(project, upstream, "lock") == 0
    assert len(upstream.requests_to("/files/")) == 1


def test_direct_url_with_sha256_is_not_downloaded(project: Path, upstream: UpstreamServer) -> None:
    write_direct(
        project, "inhouse", "cpython-3.12.9-corp-x86_64-linux.tar.gz", f'sha256 = "{"cd" * 32}"'
    )
    assert run(project, upstream, "lock") == 0
    assert locked(project)["inhouse"]["artifacts"][0]["sha256"] == "cd" * 32
    assert upstream.log == []


def test_direct_full_archive_version_comes_from_python_json(
    project: Path, upstream: UpstreamServer
) -> None:
    body = pbs_full("3.12.7")
    entry = lock_direct(
        project, upstream, "corp", "corp-python-full.tar.zst", body, 'version = "3.12"'
    )
    assert (entry["version"], entry["flavor"]) == ("3.12.7", "full")


def test_a_full_archive_whose_python_json_states_no_version_takes_the_exact_one(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the variants: such an archive failed with "python/PYTHON.json has no
    python_version" even with `version = "3.12.9"` given, where the README says the exact
    version is taken when the archive does not say."""
    body = pbs_full("3.12.9", states_version=False)
    entry = lock_direct(
        project, upstream, "corp", "corp-python-full.tar.zst", body, 'version = "3.12.9"'
    )
    assert entry["version"] == "3.12.9"
    (project / "pythons.lock").unlink()
    write_direct(project, "corp", "corp-python-full.tar.zst", 'version = "3.12"')
    capsys.readouterr()
    assert run(project, upstream, "lock") == 1
    err = capsys.readouterr().err
    assert "python.corp: cannot tell which Python version" in err
    assert 'hint: give the exact version in pythons.toml, e.g. version = "3.12.9"' in err


def test_direct_pypy_archive_takes_the_requested_version(
    project: Path, upstream: UpstreamServer
) -> None:
    entry = lock_direct(
        project,
        upstream,
        "pp",
        "pypy3.11-v7.3.20-linux64.tar.bz2",
        pypy_archive("pypy3.11-v7.3.20-linux64"),
        'implementation = "pypy"',
        'version = "3.11.13"',
    )
    assert (entry["implementation"], entry["version"], entry.get("flavor")) == (
        "pypy",
        "3.11.13",
        None,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('version = "3.11"', "holds Python 3.12.7, which does not satisfy"),
        ('version = "3.12.8"', "version = '3.12.8' but"),
    ],
)
def test_direct_archive_contradicting_the_request(
    project: Path,
    upstream: UpstreamServer,
    capsys: pytest.CaptureFixture[str],
    config: str,
    message: str,
) -> None:
    upstream.files["corp-python-full.tar.zst"] = pbs_full("3.12.7")
    write_direct(project, "corp", "corp-python-full.tar.zst", config)
    assert run(project, upstream, "lock") == 1
    assert message in capsys.readouterr().err


def test_direct_archive_of_unknown_layout_is_a_clear_error(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("python3")
        archive.addfile(info, io.BytesIO(b""))
    upstream.files["loose-3.12.9.tar.gz"] = gzip.compress(buffer.getvalue())
    write_direct(project, "loose", "loose-3.12.9.tar.gz")
    assert run(project, upstream, "lock") == 1
    err = capsys.readouterr().err
    assert (
        "python.loose.url: https://artifacts.example/loose-3.12.9.tar.gz is not an archive" in err
    )
    assert "top level" in err


def test_a_web_page_where_a_direct_archive_should_be_is_said_and_not_cached(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: a captive portal's `200 text/html` login page went into the archive cache
    under the archive's name, and the error spoke of archive layouts."""
    page = b"<!DOCTYPE html>\n<html><body>Please log in</body></html>\n"
    upstream.files["cpython-3.12.9-corp-x86_64-linux.tar.gz"] = page
    write_direct(project, "inhouse", "cpython-3.12.9-corp-x86_64-linux.tar.gz")
    assert run(project, upstream, "lock") == 1
    err = capsys.readouterr().err
    assert f"answered with a web page ({len(page)} bytes), not an archive" in err
    assert "captive portal" in err
    cached = project.parent / "cache" / "archives" / "sha256"
    assert not cached.exists() or list(cached.iterdir()) == []


def test_direct_url_offline_without_sha256(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_direct(project, "inhouse", "cpython-3.12.9-corp-x86_64-linux.tar.gz")
    assert run(project, upstream, "lock", "--offline") == 1
    assert "offline" in capsys.readouterr().err
    assert upstream.log == []
