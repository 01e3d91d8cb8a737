"""Tests for the mutants a mutation audit found surviving the suite, and for its limits.

Each test names the mutant it kills ("Mutation audit: ..."): a check that no other test
reached, so that removing or weakening it went unnoticed. The boundary tests pin each
limit exactly: the limit itself passes, one more is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import attrs
import pytest

import pylock.fsutil
from pylock.archive import tar
from pylock.archive.tar import read_tar_member
from pylock.cli import main
from pylock.errors import (
    ArchiveError,
    DownloadTooLargeError,
    HashMismatchError,
    InstallError,
    LockFileError,
)
from pylock.lockfile import (
    MAX_FILENAME,
    Artifact,
    artifact_url_problem,
    dumps,
    loads,
    make_lock,
)
from pylock.net.fetch import FetchOptions, Timeouts
from pylock.net.policy import bound
from pylock.progress import NullReporter
from pylock.sync.archives import Wanted, download_unknown, ensure_archives
from pylock.sync.cache import Cache
from pylock.sync.install import verify
from pylock.sync.records import installed_state
from pylock.urls import UrlRewrites, is_secret_param, redact
from pylock.versions import ArchiveFormat
from tests import archives
from tests.httpserver import HttpServer
from tests.indexdata import locked_python
from tests.loopback import SocketServer
from tests.syncproject import Build, Project
from tests.test_extract_hardening import (
    END,
    OK,
    extract,
    header,
    member,
    padded,
    pax,
    record,
    write,
)
from tests.test_install import do_install, make_archive, v1_installed_v2_ready, version_tree

DIGEST = "sha256:" + "0" * 64
PBS_NAME = "cpython-3.12.7+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz"


def lock_text(url: str = f"https://h.example/{PBS_NAME}") -> str:
    """A valid one-entry lock for ``linux-x86_64-gnu`` whose archive is at ``url``."""
    artifact = Artifact(platform="linux-x86_64-gnu", url=url, sha256="ab" * 32, size=10)
    return dumps(
        make_lock([locked_python("app", "3.12.7", "20990101", [artifact])], config_digest=DIGEST)
    )


# -- tar: members that carry data they must not, sparse files, metadata headers -------------

#: A regular file whose header and data hide in the data of a non-file member: a reader
#: that skips no data for such a member would read it as the next header and install it.
_EVIL = b"pwned\n"
_HIDDEN = header(b"python/bin/evil", size=len(_EVIL), mode=b"0000755\0") + padded(_EVIL)


@pytest.mark.parametrize(
    ("typeflag", "linkname", "kind"),
    [(b"5", b"", "dir"), (b"2", b"python3", "symlink"), (b"1", b"python/bin/python3", "hardlink")],
    ids=["dir", "symlink", "hardlink"],
)
def test_a_non_file_member_with_data_is_refused(
    tmp_path: Path, typeflag: bytes, linkname: bytes, kind: str
) -> None:
    """Mutation audit: tar.py tar_members `if kind != "file" and size:` -> `if False:`."""
    smuggler = header(b"python/lib/x", typeflag, size=len(_HIDDEN), linkname=linkname)
    path = write(tmp_path, kind, OK + smuggler + _HIDDEN + END)
    with pytest.raises(ArchiveError, match=f"{kind} with data"):
        extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest" / "bin" / "evil").exists()
    assert not (tmp_path / "dest" / "lib" / "x").exists()


def test_a_pax_sparse_member_is_refused(tmp_path: Path) -> None:
    """Mutation audit: tar.py `if any(key.startswith("GNU.sparse") ...) or typeflag ==
    ord("S"):` -> `if typeflag == ord("S"):`."""
    sparse = pax(record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0"))
    path = write(tmp_path, "sparse", OK + sparse + member(b"python/lib/f", b"data") + END)
    with pytest.raises(ArchiveError, match="sparse files are not supported"):
        extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest" / "lib" / "f").exists()


@pytest.mark.parametrize("typeflag", [b"L", b"x"], ids=["gnu-longlink", "pax"])
def test_a_2_mib_metadata_header_is_refused(tmp_path: Path, typeflag: bytes) -> None:
    """Mutation audit: tar.py `if size > _MAX_META:` -> `if False:`."""
    data = b"x" * (2 << 20)
    big = header(b"././@LongLink", typeflag, size=len(data)) + padded(data)
    path = write(tmp_path, "big", big + OK + END)
    with pytest.raises(ArchiveError, match="oversized tar metadata header"):
        extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest" / "bin" / "python3").exists()


def test_a_pax_record_without_its_newline_is_refused(tmp_path: Path) -> None:
    """Mutation audit: tar.py _parse_pax drops `or data[end - 1] != 0x0A`."""
    # The length (17) covers the record exactly, but its last byte is "y", not "\n".
    path = write(tmp_path, "no-newline", pax(b"17 path=python/xy") + OK + END)
    with pytest.raises(ArchiveError, match="invalid pax header"):
        extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest" / "x").exists()


def _record_of_length(length: int) -> bytes:
    """One well-formed ``comment`` pax record of exactly ``length`` bytes."""
    for filler in range(length - 30, length):
        made = record("comment", "x" * filler)
        if len(made) == length:
            return made
    raise AssertionError(length)


def test_a_metadata_header_of_exactly_the_limit_passes_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    """Mutation audit (boundary): tar.py `if size > _MAX_META:` -> `> _MAX_META * 2`."""
    limit = tar._MAX_META
    path = write(tmp_path, "at", pax(_record_of_length(limit)) + OK + END)
    extract(path, tmp_path / "at")
    assert (tmp_path / "at" / "bin" / "python3").is_file()
    path = write(tmp_path, "past", pax(_record_of_length(limit + 1)) + OK + END)
    with pytest.raises(ArchiveError, match="oversized tar metadata header"):
        extract(path, tmp_path / "past")


def test_a_pax_header_of_exactly_the_most_records_passes_and_one_more_is_refused(
    tmp_path: Path,
) -> None:
    """Mutation audit (boundary): tar.py `if count > _MAX_PAX_RECORDS:` -> `> ... + 1`."""
    most = tar._MAX_PAX_RECORDS
    records = [record(f"k{i}", "v") for i in range(most + 1)]
    path = write(tmp_path, "at", pax(b"".join(records[:most])) + OK + END)
    extract(path, tmp_path / "at")
    assert (tmp_path / "at" / "bin" / "python3").is_file()
    path = write(tmp_path, "past", pax(b"".join(records)) + OK + END)
    with pytest.raises(ArchiveError, match="invalid pax header"):
        extract(path, tmp_path / "past")


def test_read_tar_member_reads_exactly_max_size_and_refuses_one_byte_more(
    tmp_path: Path,
) -> None:
    """Mutation audit (boundary): tar.py read_tar_member `if size > max_size:` -> `> max_size
    + 1`."""
    data = b'{"version": "8"}' * 8
    path = write(tmp_path, "full", member(b"python/PYTHON.json", data) + END)
    fmt = ArchiveFormat.TAR_GZ
    assert read_tar_member(path, fmt, "python/PYTHON.json", max_size=len(data)) == data
    with pytest.raises(ArchiveError, match=f"larger than {len(data) - 1} bytes"):
        read_tar_member(path, fmt, "python/PYTHON.json", max_size=len(data) - 1)


# -- extraction policy: links that resolve next to the destination ---------------------------


def test_a_symlink_chain_into_a_sibling_named_like_the_destination_is_refused(
    tmp_path: Path,
) -> None:
    """Mutation audit: policy.py check_symlinks `real.startswith(root.rstrip(os.sep) +
    os.sep)` -> `real.startswith(root.rstrip(os.sep))`."""
    sibling = tmp_path / "destd"
    sibling.mkdir()
    (sibling / "secret").write_text("not the archive's")
    entries = [
        archives.file("python/bin/ok", b"fine\n"),
        archives.symlink("python/d/up", ".."),  # the destination itself
        archives.symlink("python/e", "d/up/../destd"),  # lexically inside, really next to it
    ]
    path = archives.write_archive(tmp_path / "chain.tar.gz", entries, ArchiveFormat.TAR_GZ)
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="symlink resolves outside the destination"):
        extract(path, dest)
    assert not os.path.lexists(dest / "e")


# -- lock files ------------------------------------------------------------------------------


def test_a_lock_url_with_an_invisible_character_is_refused() -> None:
    """Mutation audit: lockfile.py artifact_url_problem `if _CONTROL.search(url) or not
    url.isprintable():` -> `if _CONTROL.search(url):`."""
    text = lock_text(f"https://h.example/cpython-3.12.7\u202e{PBS_NAME[14:]}")
    with pytest.raises(LockFileError, match="invisible characters"):
        loads(text)


def test_lock_version_0_is_refused() -> None:
    """Mutation audit: lockfile.py from_document `if version != LOCK_VERSION:` -> `if version >
    LOCK_VERSION:`."""
    text = lock_text()
    loads(text)
    with pytest.raises(LockFileError, match="unsupported lock-version 0") as caught:
        loads(text.replace("lock-version = 1", "lock-version = 0"))
    assert caught.value.hint is not None and "re-create the lock" in caught.value.hint


def test_an_entry_with_no_artifacts_is_refused() -> None:
    """Mutation audit: lockfile.py _read_python `if raw_artifacts == []:` -> `if False:`."""
    text = lock_text()
    head, _, _ = text.partition("[[python.artifacts]]")
    with pytest.raises(LockFileError, match="'app' is locked for no platform"):
        loads(head + "artifacts = []\n")


def test_an_artifact_file_name_of_exactly_max_filename_bytes_passes_and_one_more_is_refused() -> (
    None
):
    """Mutation audit (boundary): lockfile.py `> MAX_FILENAME` -> `> MAX_FILENAME + 1`."""
    stem = "cpython-3.12.7+20990101-x86_64-unknown-linux-gnu-install_only"
    name = stem + "x" * (MAX_FILENAME - len(stem) - len(".tar.gz")) + ".tar.gz"
    assert len(name) == MAX_FILENAME
    assert artifact_url_problem(f"https://h.example/{name}") is None
    assert loads(lock_text(f"https://h.example/{name}")).pythons
    longer = "x" + name
    problem = artifact_url_problem(f"https://h.example/{longer}")
    assert problem is not None and f"a file name longer than {MAX_FILENAME} bytes" in problem
    with pytest.raises(LockFileError, match=f"longer than {MAX_FILENAME} bytes"):
        loads(lock_text(f"https://h.example/{longer}"))


def test_lock_refusing_an_old_entry_with_credentials_points_to_netrc(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutation audit: lockfile.py refuse_unlockable `if credentials_problem(artifact.url) is
    not None:` -> `if False:`."""
    toml = '[python.app]\nversion = "3.13"\nplatforms = ["linux-x86_64-gnu"]\n'
    (project / "pythons.toml").write_text(toml)
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache"), "PYLOCK_OFFLINE": "1"}
    assert main(["--project", str(project), "lock"], environ=environ) == 0
    lock = project / "pythons.lock"
    edited = lock.read_text().replace("https://github.com/", "https://ci:hunter2@github.com/", 1)
    lock.write_text(edited)
    (project / "pythons.toml").write_text(toml + toml.replace("app", "tool").replace("13", "12"))
    capsys.readouterr()
    assert main(["--project", str(project), "lock"], environ=environ) == 1
    err = capsys.readouterr().err
    assert "refusing to write pythons.lock: python 'app'" in err
    assert "~/.netrc" in err and "upgrade-python app" in err
    assert "hunter2" not in err
    assert lock.read_text() == edited


# -- resolve: lock --check -------------------------------------------------------------------


def test_a_lock_with_one_platform_more_than_the_explicit_list_is_stale(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutation audit: resolve.py lock_is_fresh `len(extra) > (1 if HOST in request.platforms
    else 0)` -> `len(extra) > 1`."""
    environ = {"PYLOCK_CACHE_DIR": str(tmp_path / "cache"), "PYLOCK_OFFLINE": "1"}
    run = ["--project", str(project), "lock"]
    one = '[python.app]\nversion = "3.12"\nplatforms = ["linux-x86_64-gnu"]\n'
    two = one.replace('"]', '", "macos-aarch64"]')
    lock = project / "pythons.lock"
    (project / "pythons.toml").write_text(one)
    assert main(run, environ=environ) == 0
    assert main([*run, "--check"], environ=environ) == 0
    digest_of_one = loads(lock.read_text()).config_digest
    (project / "pythons.toml").write_text(two)
    assert main(run, environ=environ) == 0
    # The two-platform lock, claiming to be made from the one-platform file.
    wider = lock.read_text().replace(loads(lock.read_text()).config_digest, digest_of_one)
    lock.write_text(wider)
    (project / "pythons.toml").write_text(one)
    capsys.readouterr()
    assert main([*run, "--check"], environ=environ) == 1
    assert "pythons.lock is out of date with pythons.toml" in capsys.readouterr().err


# -- urls: redaction and explicit rewrite targets --------------------------------------------


@pytest.mark.parametrize(
    "name", ["db_password", "client_secret", "api-key", "x_sessionid", "X-Goog-Signature"]
)
def test_secret_query_parameters_are_masked(name: str) -> None:
    """Mutation audit: urls.py _SECRET_SUFFIXES loses "password"."""
    assert is_secret_param(name)
    url = f"https://h.example/x.tar.gz?sv=1&{name}=hunter2"
    assert redact(url) == f"https://h.example/x.tar.gz?sv=1&{name}=***"
    assert redact(f"cannot get {url} (HTTP 403)").count("hunter2") == 0


def test_a_rewrite_target_with_credentials_vouches_for_its_own_rewritten_urls() -> None:
    """Mutation audit: urls.py UrlRewrites.is_explicit drops `url = _without_userinfo(url)`."""
    rewrites = UrlRewrites.from_sources("https://github.com/=http://ci:tok@mirror.lan/pbs/")
    rewritten = rewrites.apply(f"https://github.com/astral-sh/x/{PBS_NAME}")
    assert rewritten == f"http://ci:tok@mirror.lan/pbs/astral-sh/x/{PBS_NAME}"
    rewrites.check(rewritten)  # plain http, allowed: the user named this mirror
    assert rewrites.is_explicit(rewritten)
    assert not rewrites.is_explicit("http://ci:tok@elsewhere.lan/pbs/x.tar.gz")


# -- sync: install records -------------------------------------------------------------------


def test_an_install_record_never_holds_the_password_of_the_lock_url(
    sync_project: Project, app_a: Build, server: HttpServer
) -> None:
    """Mutation audit: records.py write_record `"url": redact(artifact.url)` -> `"url":
    artifact.url`."""
    secret = "SECRETPW"
    server.serve(app_a.path, app_a.data, auth=("u", secret))
    url = server.url(app_a.path).replace("://", f"://u:{secret}@", 1)
    python = app_a.python()
    python = attrs.evolve(python, artifacts=(attrs.evolve(python.artifacts[0], url=url),))
    (sync_project.root / "pythons.lock").write_text(
        dumps(make_lock([python], config_digest=DIGEST))
    )
    result = sync_project.sync()
    assert result.code == 0, result.err
    record = (sync_project.into / "app" / ".pylock" / "install.json").read_text()
    assert secret not in record
    assert json.loads(record)["artifact"]["url"] == url.replace(f"u:{secret}@", "***@")


def test_a_tree_recorded_by_another_record_version_is_reinstalled(installed: Project) -> None:
    """Mutation audit: records.py is_current drops `state.record_version != RECORD_VERSION
    or`."""
    tree = installed.into / "app"
    record = tree / ".pylock" / "install.json"
    document = json.loads(record.read_text())
    assert document["record-version"] == 1
    document["record-version"] = 2
    replacement = record.with_name("install.json.new")
    replacement.write_text(json.dumps(document))
    os.replace(replacement, record)  # a new file: the no-op fast path must not trust it
    (tree / "stray").write_text("left by the other version")
    result = installed.sync()
    assert result.code == 0, result.err
    assert json.loads(record.read_text())["record-version"] == 1
    assert not (tree / "stray").exists()
    assert installed.verify().code == 0


def test_a_pylock_dir_linked_to_another_trees_is_no_record(tmp_path: Path) -> None:
    """Mutation audit: records.py read_install_json `if os.path.islink(meta): return None` ->
    `if False:`."""
    archive, artifact = make_archive(tmp_path, "v1", version_tree("v1"))
    real_root = tmp_path / "d"
    do_install(archive, artifact, real_root)
    assert installed_state(real_root, "app") is not None
    other_root = tmp_path / "d2"
    (other_root / "app").mkdir(parents=True)
    (other_root / "app" / ".pylock").symlink_to(real_root / "app" / ".pylock")
    assert installed_state(other_root, "app") is None


# -- install: the old tree stays when it cannot be moved aside --------------------------------


def test_an_upgrade_whose_old_tree_cannot_be_renamed_aside_fails_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation audit: install.py _swap_in `if exc.errno != errno.EXDEV: raise` -> `if False:
    raise`."""
    dest_root, a2, art2 = v1_installed_v2_ready(tmp_path)
    real_rename = pylock.fsutil.rename

    def refused(source: Any, target: Any, **how: Any) -> None:
        if os.path.basename(os.fspath(target)).startswith(".pylock-old-"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(source))
        real_rename(source, target, **how)

    monkeypatch.setattr(pylock.fsutil, "rename", refused)
    with pytest.raises(InstallError, match=r"cannot install app into .*: Permission denied"):
        do_install(a2, art2, dest_root)
    monkeypatch.setattr(pylock.fsutil, "rename", real_rename)
    assert (dest_root / "app" / "VERSION").read_text() == "v1"
    assert (dest_root / "app" / ".pylock" / "install.json").is_file()
    assert verify(dest_root, "app").ok
    assert [
        n for n in os.listdir(dest_root) if n.startswith((".pylock-tmp-", ".pylock-old-"))
    ] == []


# -- downloads: the size bounds, exactly -----------------------------------------------------

CAP = 4096


def options(cap: int = CAP) -> FetchOptions:
    return FetchOptions(
        retries=0, backoff=0.01, timeouts=Timeouts(connect=5.0, read=5.0), max_download_size=cap
    )


class ChunkedBody(SocketServer):
    """Answers every GET with ``body``, chunked: no Content-Length states its size."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        super().__init__()

    def _answer(self, sock: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        chunk = b"%x\r\n" % len(self.body) + self.body + b"\r\n"
        with contextlib.suppress(OSError):  # the client hung up at its bound
            sock.sendall(head + chunk + b"0\r\n\r\n")


def test_bound_takes_a_content_length_of_exactly_the_cap_and_refuses_one_more() -> None:
    """Mutation audit (boundary): net/policy.py bound `limit > cap` -> `limit > cap + 1`."""
    url = "https://h.example/a.tar.gz"
    assert bound(url, url, None, CAP, CAP) == CAP
    with pytest.raises(DownloadTooLargeError, match="by its Content-Length or file size"):
        bound(url, url, None, CAP + 1, CAP)


def test_a_download_whose_content_length_is_the_cap_passes_and_one_more_is_refused(
    tmp_path: Path, server: HttpServer
) -> None:
    """Mutation audit (boundary): net/policy.py bound `limit > cap` -> `limit > cap + 1`,
    seen from a download."""
    cache = Cache(tmp_path / "cache")
    server.serve("/at.tar.gz", b"a" * CAP)
    server.serve("/past.tar.gz", b"p" * (CAP + 1))
    assert download_unknown(server.url("/at.tar.gz"), cache, options(), NullReporter())[1] == CAP
    with pytest.raises(DownloadTooLargeError, match=f"it is {CAP + 1} bytes"):
        download_unknown(server.url("/past.tar.gz"), cache, options(), NullReporter())


@pytest.mark.parametrize("extra", [0, 1], ids=["at-cap", "past-cap"])
def test_a_body_without_a_size_is_taken_up_to_the_cap_and_refused_past_it(
    tmp_path: Path, extra: int
) -> None:
    """Mutation audit (boundary): net/policy.py Body.add `self.received > self.limit` ->
    `> self.limit + 1`."""
    cache = Cache(tmp_path / "cache")
    body = b"z" * (CAP + extra)
    with ChunkedBody(body) as source:
        url = source.url("/x.tar.gz")
        if extra:
            with pytest.raises(DownloadTooLargeError, match="larger than PYLOCK_MAX_DOWNLOAD"):
                download_unknown(url, cache, options(), NullReporter())
            assert cache.list() == []
        else:
            sha256, size, path = download_unknown(url, cache, options(), NullReporter())
            assert (size, sha256) == (CAP, hashlib.sha256(body).hexdigest())
            assert path.read_bytes() == body


def test_a_file_url_of_the_locked_size_is_copied_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    """Mutation audit (boundary): net/policy.py copy_file `received > limit` -> `> limit + 1`.

    Only the lock's size is tested: without one, a file past the cap is refused by its
    stated size before a byte is read; reaching the loop's check then needs a file that
    grows while it is read.
    """
    data = b"q" * CAP
    source = tmp_path / "x.tar.gz"
    source.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    cache = Cache(tmp_path / "cache")
    wanted = Wanted(url=source.as_uri(), sha256=sha256, size=CAP)
    assert ensure_archives([wanted], cache, options(), NullReporter())[sha256].read_bytes() == data
    source.write_bytes(data + b"q")
    other = Cache(tmp_path / "other")
    with pytest.raises(HashMismatchError) as caught:
        ensure_archives([wanted], other, options(), NullReporter())
    assert caught.value.actual == f"more than {CAP}"
    assert other.list() == []
