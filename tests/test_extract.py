"""Tests for pylock.archive: layouts, modes, links, hashes, and hostile archives."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout, detect_layout, layout_for
from pylock.archive.writer import RecordEntry
from pylock.errors import ArchiveError, HashMismatchError
from pylock.versions import ArchiveFormat, Flavor, Implementation
from tests import archives
from tests.archives import Entry

ALL_FORMATS = list(ArchiveFormat)
TAR_FORMATS = [f for f in ArchiveFormat if f is not ArchiveFormat.ZIP]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and symlinks")


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(params=[False, True], ids=["inline", "threaded"])
def threaded(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def build(tmp_path: Path, entries: list[Entry], fmt: ArchiveFormat, **kwargs: int) -> Path:
    return archives.write_archive(
        tmp_path / f"archive{archives.suffix(fmt)}", entries, fmt, **kwargs
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def by_path(entries: list[RecordEntry]) -> dict[str, RecordEntry]:
    return {e.path: e for e in entries}


# -- layouts ---------------------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_pbs_install_only_layout(tmp_path: Path, fmt: ArchiveFormat, threaded: bool) -> None:
    archive = build(tmp_path, archives.pbs_install_only(), fmt)
    dest = tmp_path / "dest"
    if fmt is ArchiveFormat.ZIP:
        # Zip symlinks are refused, so a PBS tree cannot come as a zip.
        with pytest.raises(ArchiveError, match="symlinks in zip"):
            extract_archive(archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
        return
    entries = extract_archive(
        archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, threaded=threaded
    )
    assert os.readlink(dest / "bin/python3") == "python3.12"
    assert os.readlink(dest / "bin/python") == "python3.12"
    assert os.readlink(dest / "lib/libpython3.12.so") == "libpython3.12.so.1.0"
    assert (dest / "bin/python3.12").read_bytes() == b"#!fake python 3.12\n"
    assert (dest / "lib/python3.12/lib-dynload/.empty").read_bytes() == b""
    assert not (dest / "python").exists()
    record = by_path(entries)
    assert record["bin/python3"] == RecordEntry(
        path="bin/python3", sha256=None, size=0, link="python3.12"
    )
    assert record["lib/python3.12/os.py"].sha256 == sha256(b"# os module\n" * 100)
    assert record["lib/python3.12/os.py"].size == len(b"# os module\n" * 100)
    assert record["bin/python3.12"].executable
    assert not record["lib/python3.12/os.py"].executable
    assert sorted(record) == sorted(
        str(p.relative_to(dest)).replace(os.sep, "/")
        for p in dest.rglob("*")
        if p.is_symlink() or p.is_file()
    )


@posix_only
def test_gzip_is_inflated_with_zlib_where_isal_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """isal is a dependency only where it has wheels (not Windows on Arm, 32-bit Windows,
    ppc64le or s390x, nor PyPy): there gzip archives inflate with the standard library."""
    import zlib

    from pylock.archive import codecs

    class Broken:  # an isal whose library cannot be loaded: an OSError, not an ImportError
        @staticmethod
        def find_spec(name: str, *args: object) -> None:
            if name.partition(".")[0] == "isal":
                raise OSError("libisal.so: cannot open shared object file")

    for name in ("isal", "isal.isal_zlib"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken, *sys.meta_path])
    assert codecs._zlib() is zlib
    monkeypatch.setitem(sys.modules, "isal", None)  # `import isal` raises ImportError
    assert codecs._zlib() is zlib
    archive = build(tmp_path, archives.pbs_install_only(), ArchiveFormat.TAR_GZ)
    entries = extract_archive(
        archive, tmp_path / "dest", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
    )
    assert by_path(entries)["lib/python3.12/os.py"].sha256 == sha256(b"# os module\n" * 100)


@posix_only
def test_directories_that_differ_only_in_case_are_refused_where_case_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Portability attack: on macOS, Windows or exFAT, `python/lib/y.py` went into the
    `Lib` directory made for `python/Lib/os.py`: the install succeeded, and verify then
    failed it (the record's `lib/y.py` was not there). Two such files were refused
    already; two such directories are now."""
    entries = [
        archives.directory("python/Lib"),
        archives.file("python/Lib/os.py", b"os"),
        archives.directory("python/lib"),
        archives.file("python/lib/y.py", b"y"),
    ]
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    real_mkdir, real_isdir = os.mkdir, os.path.isdir

    def spelled(path: str) -> str:  # the name the file system keeps for ``path``
        parent, name = os.path.split(path)
        found = [n for n in os.listdir(parent) if n.lower() == name.lower()]
        return os.path.join(parent, found[0]) if found else path

    def mkdir(path: Any, mode: int = 0o777) -> None:
        if spelled(os.fspath(path)) != os.fspath(path):
            raise FileExistsError(17, "File exists", path)
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os.path, "isdir", lambda path: real_isdir(spelled(os.fspath(path))))
    with pytest.raises(ArchiveError, match="differ only in case") as caught:
        extract_archive(
            archive, tmp_path / "dest", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )
    assert caught.value.member == "lib"


@posix_only
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_link_copied_where_none_can_be_made_never_replaces_a_member_of_another_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Portability attack: Windows without Developer Mode refuses a symlink (and FAT or a
    share a hard link) before it looks at the name, and the copy made instead went over
    `bin/Tool` for the link `bin/tool` where case is ignored: the install went on with
    Tool's bytes replaced. The copy is a new file, as every other member's is."""
    from pylock.archive import writer

    link = (
        archives.symlink("python/bin/tool", "python3.12")
        if kind == "symlink"
        else archives.hardlink("python/bin/tool", "python/bin/python3.12")
    )
    entries = [
        archives.exe("python/bin/python3.12", b"interpreter"),
        archives.file("python/bin/Tool", b"tool"),
        link,
    ]
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError(1314, "A required privilege is not held by the client")

    # A file system that ignores case: every name the writer uses, folded.
    monkeypatch.setattr(
        writer.Writer, "_path", lambda self, rel: os.path.join(self.dest, rel.lower())
    )
    monkeypatch.setattr(writer, "WINDOWS", True)
    monkeypatch.setattr(os, "symlink" if kind == "symlink" else "link", refused)
    with pytest.raises(ArchiveError, match="differ only in case") as caught:
        extract_archive(
            archive, tmp_path / "dest", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )
    assert caught.value.member == "bin/tool"
    assert (tmp_path / "dest/bin/tool").read_bytes() == b"tool"


@posix_only
def test_pbs_full_extracts_only_install(tmp_path: Path, threaded: bool) -> None:
    archive = build(tmp_path, archives.pbs_full(), ArchiveFormat.TAR_ZST)
    dest = tmp_path / "dest"
    entries = extract_archive(
        archive, dest, fmt=ArchiveFormat.TAR_ZST, layout=Layout.PBS_FULL, threaded=threaded
    )
    assert sorted(os.listdir(dest)) == ["bin", "include", "lib", "share"]
    assert os.readlink(dest / "bin/python3") == "python3.12"
    assert not any("PYTHON.json" in e.path or "build" in e.path for e in entries)
    assert "lib/python3.12/os.py" in by_path(entries)


@posix_only
@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_pypy_topdir_layout(tmp_path: Path, fmt: ArchiveFormat, threaded: bool) -> None:
    archive = build(tmp_path, archives.pypy(), fmt)
    dest = tmp_path / "dest"
    entries = extract_archive(archive, dest, fmt=fmt, layout=Layout.TOPDIR, threaded=threaded)
    assert sorted(os.listdir(dest)) == ["LICENSE", "bin", "lib"]
    assert os.readlink(dest / "bin/pypy3") == "pypy3.10"
    assert os.access(dest / "bin/pypy3", os.X_OK)
    assert by_path(entries)["lib/libpypy3.10-c.so"].executable


@posix_only
def test_graalpy_topdir_layout(tmp_path: Path) -> None:
    archive = build(tmp_path, archives.graalpy(), ArchiveFormat.TAR_GZ)
    dest = tmp_path / "dest"
    extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.TOPDIR)
    assert (dest / "bin/graalpy").read_bytes() == b"graalpy launcher\n"
    assert os.readlink(dest / "bin/python3") == "graalpy"


def test_windows_zip_topdir_layout(tmp_path: Path) -> None:
    archive = build(tmp_path, archives.pypy_windows(), ArchiveFormat.ZIP)
    dest = tmp_path / "dest"
    entries = extract_archive(
        archive,
        dest,
        fmt=ArchiveFormat.ZIP,
        layout=Layout.TOPDIR,
        expected_sha256=sha256(archive.read_bytes()),
    )
    assert sorted(os.listdir(dest)) == ["Lib", "pypy3.exe", "python.exe"]
    assert by_path(entries)["Lib/os.py"].sha256 == sha256(b"# os\n")


@pytest.mark.parametrize("method", ["ZIP_BZIP2", "ZIP_LZMA"])
def test_zip_members_compressed_without_a_bound_are_refused(tmp_path: Path, method: str) -> None:
    # zipfile inflates them with no limit on the output: 1 KB of bzip2 took 3 GB.
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("pypy/python.exe", b"launcher", compress_type=zipfile.ZIP_DEFLATED)
        out.writestr("pypy/Lib/big", b"\0" * 100_000, compress_type=getattr(zipfile, method))
    with pytest.raises(ArchiveError, match=r"compression method (12|14) refused") as info:
        extract_archive(archive, tmp_path / "d", fmt=ArchiveFormat.ZIP, layout=Layout.TOPDIR)
    assert info.value.member == "pypy/Lib/big"


def test_topdir_requires_one_top_directory(tmp_path: Path) -> None:
    entries = [*archives.pypy("a"), archives.file("b/evil.py", b"x")]
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    with pytest.raises(ArchiveError, match=r"top directory a/") as info:
        extract_archive(archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.TOPDIR)
    assert info.value.member == "b/evil.py"


def test_install_only_refuses_members_outside_python(tmp_path: Path) -> None:
    archive = build(
        tmp_path, [*archives.pbs_install_only(), archives.file("other/x")], ArchiveFormat.TAR_GZ
    )
    with pytest.raises(ArchiveError, match="outside python/"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )


def test_layout_for() -> None:
    assert layout_for(Implementation.CPYTHON, Flavor.INSTALL_ONLY) is Layout.PBS_INSTALL_ONLY
    assert (
        layout_for(Implementation.CPYTHON, Flavor.INSTALL_ONLY_STRIPPED) is Layout.PBS_INSTALL_ONLY
    )
    assert layout_for(Implementation.CPYTHON, Flavor.FULL) is Layout.PBS_FULL
    assert layout_for(Implementation.PYPY, None) is Layout.TOPDIR
    assert layout_for(Implementation.GRAALPY, None) is Layout.TOPDIR


@pytest.mark.parametrize(
    ("entries", "fmt", "expected"),
    [
        (archives.pbs_install_only(), ArchiveFormat.TAR_GZ, Layout.PBS_INSTALL_ONLY),
        (archives.pbs_full(), ArchiveFormat.TAR_ZST, Layout.PBS_FULL),
        (archives.pypy(), ArchiveFormat.TAR_BZ2, Layout.TOPDIR),
        (archives.graalpy(), ArchiveFormat.TAR_GZ, Layout.TOPDIR),
        (archives.pypy_windows(), ArchiveFormat.ZIP, Layout.TOPDIR),
        ([archives.directory("python"), *archives.pbs_install_only()], ArchiveFormat.TAR_GZ,
         Layout.PBS_INSTALL_ONLY),
    ],
)  # fmt: skip
def test_detect_layout(
    tmp_path: Path, entries: list[Entry], fmt: ArchiveFormat, expected: Layout
) -> None:
    assert detect_layout(build(tmp_path, entries, fmt), fmt) is expected


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([archives.file("a/x"), archives.file("b/y")], r"one top directory, found: a/, b/"),
        ([archives.file("README"), archives.file("a/x")], "a file at the top level"),
        ([], "empty"),
    ],
)
def test_detect_layout_refuses(tmp_path: Path, entries: list[Entry], message: str) -> None:
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    with pytest.raises(ArchiveError, match=message):
        detect_layout(archive, ArchiveFormat.TAR_GZ)


# -- modes, names, links -------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_modes_are_normalized(tmp_path: Path, fmt: ArchiveFormat) -> None:
    entries = [
        archives.file("python/setuid", b"s", mode=0o4755),
        archives.file("python/setgid", b"g", mode=0o2750),
        archives.file("python/sticky-rw", b"t", mode=0o1666),
        archives.file("python/readonly", b"r", mode=0o444),
        archives.file("python/group-writable", b"w", mode=0o664),
        archives.file("python/owner-exec-only", b"x", mode=0o700),
        archives.directory("python/ro-dir", mode=0o555),
        archives.file("python/ro-dir/inner", b"i"),
    ]
    dest = tmp_path / "dest"
    extract_archive(build(tmp_path, entries, fmt), dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in dest.rglob("*")}
    assert modes == {
        "setuid": 0o755,
        "setgid": 0o755,
        "sticky-rw": 0o644,
        "readonly": 0o644,
        "group-writable": 0o644,
        "owner-exec-only": 0o755,
        "ro-dir": 0o755,
        "inner": 0o644,
    }


@posix_only
def test_mtime_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    archive = build(tmp_path, archives.pbs_install_only(), ArchiveFormat.TAR_GZ)
    extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    assert (dest / "lib/python3.12/os.py").stat().st_mtime == archives.PBS_MTIME


@posix_only
@pytest.mark.parametrize(
    "tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]
)
def test_long_names_and_targets(tmp_path: Path, tar_format: int) -> None:
    deep = "/".join(["d" * 40] * 3)  # 122 characters: needs ustar prefix, GNU L or pax
    target = "../" * 3 + "t" * 60 if tar_format != tarfile.USTAR_FORMAT else "short"
    entries = [
        archives.file(f"python/{deep}/file.py", b"long"),
        archives.file("python/" + "t" * 60, b"target"),
        archives.symlink(f"python/{deep}/link", target),
    ]
    if tar_format == tarfile.PAX_FORMAT:
        entries.append(archives.file("python/unicodé/ñame.py", b"utf8"))
    dest = tmp_path / "dest"
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ, tar_format=tar_format)
    records = by_path(
        extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    )
    assert (dest / deep / "file.py").read_bytes() == b"long"
    assert os.readlink(dest / deep / "link") == target
    assert records[f"{deep}/link"].link == target
    if tar_format == tarfile.PAX_FORMAT:
        assert (dest / "unicodé/ñame.py").read_bytes() == b"utf8"


@posix_only
def test_internal_hardlink_is_kept(tmp_path: Path) -> None:
    entries = [
        archives.exe("python/bin/python3.12", b"interpreter"),
        archives.hardlink("python/bin/python3", "python/bin/python3.12"),
    ]
    dest = tmp_path / "dest"
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    records = by_path(
        extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    )
    assert (dest / "bin/python3").read_bytes() == b"interpreter"
    assert (dest / "bin/python3").stat().st_ino == (dest / "bin/python3.12").stat().st_ino
    assert records["bin/python3"].sha256 == sha256(b"interpreter")
    assert records["bin/python3"].executable


def test_large_file_spanning_chunks(tmp_path: Path, threaded: bool) -> None:
    big = os.urandom(3 * 1024 * 1024 + 123)
    entries = [
        archives.file("python/small-before", b"a"),
        archives.file("python/big.bin", big),
        archives.file("python/small-after", b"b"),
    ]
    dest = tmp_path / "dest"
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    records = by_path(
        extract_archive(
            archive,
            dest,
            fmt=ArchiveFormat.TAR_GZ,
            layout=Layout.PBS_INSTALL_ONLY,
            threaded=threaded,
        )
    )
    assert (dest / "big.bin").read_bytes() == big
    assert records["big.bin"].sha256 == sha256(big)
    assert records["big.bin"].size == len(big)
    assert (dest / "small-after").read_bytes() == b"b"


def test_a_second_interrupt_while_the_writer_is_stopped_still_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test (Docker): `timeout` sends SIGTERM twice. The second cut short the wait for
    the writer thread after the first, and the writer, still running, put files into the
    temporary tree the install was removing: a `.pylock-tmp-*` tree stayed behind."""
    import threading

    from pylock.archive import extract, writer

    monkeypatch.setattr(extract, "_BATCH_OPS", 1)  # one batch per member
    entries = [archives.file(f"python/f{i}", b"x") for i in range(8)]
    archive = build(tmp_path, entries, ArchiveFormat.TAR_GZ)
    release = threading.Event()
    real_run, real_submit, real_join = (
        writer.Writer.run,
        writer.ThreadSink.submit,
        threading.Thread.join,
    )

    def slow_run(self: writer.Writer, ops: list[tuple[Any, ...]]) -> None:
        release.wait(10)  # the writer is busy with the first batch
        real_run(self, ops)

    def submit(self: writer.ThreadSink, ops: list[tuple[Any, ...]]) -> None:
        if submitted:
            raise KeyboardInterrupt  # the first Ctrl-C, after one batch went to the writer
        submitted.append(self._thread)
        real_submit(self, ops)

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if self in submitted and not seconds:
            seconds.append(self)
            threading.Timer(0.3, release.set).start()
            raise KeyboardInterrupt  # the second, while the writer is waited for
        real_join(self, timeout)

    submitted: list[threading.Thread] = []
    seconds: list[threading.Thread] = []
    monkeypatch.setattr(writer.Writer, "run", slow_run)
    monkeypatch.setattr(writer.ThreadSink, "submit", submit)
    monkeypatch.setattr(threading.Thread, "join", join)
    try:
        with pytest.raises(KeyboardInterrupt):
            extract_archive(
                archive,
                tmp_path / "dest",
                fmt=ArchiveFormat.TAR_GZ,
                layout=Layout.PBS_INSTALL_ONLY,
                threaded=True,
            )
        assert seconds, "the second interrupt did not come"
        assert not submitted[0].is_alive()  # nothing writes into the tree any more
    finally:
        release.set()


@posix_only
@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupt_while_a_batch_waits_for_room_is_taken_once_it_is_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test (Docker, `timeout` sends SIGTERM twice): raised inside the queue's
    Condition.wait, the second left the queue's lock released (a traceback: "release
    unlocked lock") or held (the clean-up's put hung for good)."""
    import signal
    import threading
    import time

    from pylock.archive import writer

    release = threading.Event()
    ran: list[tuple[Any, ...]] = []

    def run(self: writer.Writer, ops: list[tuple[Any, ...]]) -> None:
        release.wait(10)
        ran.extend(ops)

    def interrupt() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # while the last batch waits for room
        time.sleep(0.3)
        release.set()

    monkeypatch.setattr(writer.Writer, "run", run)
    sink = writer.ThreadSink(writer.Writer(str(tmp_path), "archive"))
    try:
        for i in range(writer._QUEUE_DEPTH + 1):  # the writer holds one, the queue is full
            sink.submit([("batch", i)])
        threading.Timer(0.2, interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            sink.submit([("last",)])
    finally:
        release.set()
        sink.close(abort=True)
    assert ran[-1] == ("last",)  # queued before the interrupt was taken


def test_multi_member_gzip(tmp_path: Path) -> None:
    tar = archives.tar_bytes(archives.pbs_install_only())
    archive = tmp_path / "multi.tar.gz"
    archive.write_bytes(gzip.compress(tar[:10000]) + gzip.compress(tar[10000:]))
    dest = tmp_path / "dest"
    extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    assert (dest / "lib/python3.12/os.py").read_bytes() == b"# os module\n" * 100


def test_matches_tarfile_on_a_real_tree(tmp_path: Path) -> None:
    """Our reader and tarfile agree on an archive of a real source tree."""
    source = Path(__file__).resolve().parent.parent / "pylock"
    archive = tmp_path / "real.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname="python")
    dest = tmp_path / "dest"
    records = by_path(
        extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    )
    expected = {
        str(p.relative_to(source)).replace(os.sep, "/"): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file()
    }
    assert {path: (dest / path).read_bytes() for path in records} == expected
    assert all(records[path].sha256 == sha256(data) for path, data in expected.items())


def test_progress_counts_every_archive_byte(tmp_path: Path) -> None:
    for fmt in ALL_FORMATS:
        entries = archives.pypy_windows() if fmt is ArchiveFormat.ZIP else archives.pypy()
        archive = build(tmp_path, entries, fmt)
        seen: list[int] = []
        extract_archive(
            archive, tmp_path / f"d-{fmt}", fmt=fmt, layout=Layout.TOPDIR, on_progress=seen.append
        )
        assert sum(seen) == archive.stat().st_size


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    archive = build(tmp_path, archives.pbs_install_only(), ArchiveFormat.TAR_GZ)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "existing").write_text("x")
    with pytest.raises(FileExistsError):
        extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)


# -- hashes and corruption ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_hash_checked_while_streaming(tmp_path: Path, fmt: ArchiveFormat, threaded: bool) -> None:
    # Threaded, the writer thread hashes the archive; the bytes after the tar's end are
    # hashed on the reading thread once the writer is done.
    archive = build(tmp_path, archives.pypy_windows(), fmt)
    extract = functools.partial(
        extract_archive, archive, fmt=fmt, layout=Layout.TOPDIR, threaded=threaded
    )
    good = sha256(archive.read_bytes())
    extract(tmp_path / "ok", expected_sha256=good)
    wrong = "0" * 64
    with pytest.raises(HashMismatchError) as info:
        extract(tmp_path / "bad", expected_sha256=wrong)
    assert (info.value.expected, info.value.actual) == (wrong, good)
    assert info.value.url == str(archive)
    if fmt is ArchiveFormat.ZIP:
        # Read out of order, a zip is hashed whole first: nothing of it is written (audit:
        # no test held the check that comes before the writing).
        assert list((tmp_path / "bad").rglob("*")) == []


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_corrupt_archive_is_a_hash_mismatch_when_hash_known(
    tmp_path: Path, fmt: ArchiveFormat, threaded: bool
) -> None:
    # Threaded, the hash updates queued for the writer are dropped when the extraction
    # fails: the file is hashed again to tell a corrupt download from a bad archive.
    entries = [archives.file("top/big", os.urandom(200_000)), archives.file("top/b", b"x")]
    archive = build(tmp_path, entries, fmt)
    good = sha256(archive.read_bytes())
    data = bytearray(archive.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0x5A
    archive.write_bytes(bytes(data))
    extract = functools.partial(
        extract_archive, archive, fmt=fmt, layout=Layout.TOPDIR, threaded=threaded
    )
    with pytest.raises(HashMismatchError) as info:
        extract(tmp_path / "a", expected_sha256=good)
    assert info.value.actual == sha256(bytes(data))
    with pytest.raises(ArchiveError):
        extract(tmp_path / "b")


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_truncated_archive(tmp_path: Path, fmt: ArchiveFormat) -> None:
    entries = [archives.file("top/big", os.urandom(100_000))]
    archive = build(tmp_path, entries, fmt)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="truncated"):
        extract_archive(archive, tmp_path / "d", fmt=fmt, layout=Layout.TOPDIR)


def test_not_a_tar(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(gzip.compress(b"hello world, not a tar" * 100))
    with pytest.raises(ArchiveError, match="not a tar archive"):
        extract_archive(archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.TOPDIR)


# -- hostile archives ---------------------------------------------------------------------

HOSTILE = sorted(archives.hostile_cases(Path("/x")))


def _hostile_params() -> list[object]:
    params: list[object] = []
    for fmt in ALL_FORMATS:
        for case in HOSTILE:
            if fmt is ArchiveFormat.ZIP and case not in archives.ZIP_CASES:
                continue
            params.append(pytest.param(fmt, case, id=f"{fmt}-{case}"))
    return params


@pytest.mark.parametrize(("fmt", "case"), _hostile_params())
def test_hostile_archive_is_refused(tmp_path: Path, fmt: ArchiveFormat, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("untouched")
    work = tmp_path / "work"
    work.mkdir()
    archive = archives.write_archive(
        work / f"hostile{archives.suffix(fmt)}",
        archives.hostile_cases(outside)[case],
        fmt,
    )
    dest = work / "dest"
    before = archives.snapshot(tmp_path)
    with pytest.raises(ArchiveError) as info:
        extract_archive(archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
    assert info.value.archive == str(archive)
    after = archives.snapshot(tmp_path)
    # Only paths under dest may have appeared; the caller deletes dest.
    assert {p for p in after - before if not p.startswith(str(Path("work/dest")))} == set()
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "untouched"
    for path in dest.rglob("*"):
        if path.is_symlink():
            resolved = os.path.realpath(path)
            assert resolved.startswith(os.path.realpath(dest)), (path, resolved)


def test_hostile_error_names_the_member(tmp_path: Path) -> None:
    archive = build(
        tmp_path, [archives.file("python/../../etc/passwd", b"x")], ArchiveFormat.TAR_GZ
    )
    with pytest.raises(ArchiveError) as info:
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )
    assert info.value.member == "python/../../etc/passwd"
    assert str(info.value) == f"{archive}: python/../../etc/passwd: '..' in member name"


def test_hostile_archive_with_correct_hash_is_still_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    archive = build(
        tmp_path, archives.hostile_cases(outside)["escaping-symlink"], ArchiveFormat.TAR_GZ
    )
    with pytest.raises(ArchiveError, match="escapes"):
        extract_archive(
            archive,
            tmp_path / "d",
            fmt=ArchiveFormat.TAR_GZ,
            layout=Layout.PBS_INSTALL_ONLY,
            expected_sha256=sha256(archive.read_bytes()),
        )


def test_compression_bomb_stays_bounded(tmp_path: Path) -> None:
    """A 64 MiB file of zeros (a 64 KiB gzip) streams through in bounded chunks."""
    import tracemalloc

    zeros = bytes(64 * 1024 * 1024)
    archive = build(tmp_path, [archives.file("python/zeros", zeros)], ArchiveFormat.TAR_GZ)
    del zeros
    tracemalloc.start()
    try:
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "d/zeros").stat().st_size == 64 * 1024 * 1024
    assert peak < 40 * 1024 * 1024, peak


def _zip_of(path: Path, count: int, *, prefix: bytes = b"") -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as out:
        for i in range(count):
            out.writestr(f"pypy/Lib/m{i}.py", b"")
    if prefix:  # bytes before the archive, as a self-extractor has: zipfile reads it still
        path.write_bytes(prefix + path.read_bytes())
    return path


@pytest.mark.parametrize("prefix", [b"", b"#!stub\n" * 100])
def test_a_zip_of_more_members_than_the_limit_is_refused_before_zipfile_reads_it(
    tmp_path: Path, prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: zipfile builds an object per central-directory record before pylock could
    count them (a million empty members: 580 MB and 20 s to refuse)."""
    import zipfile

    from pylock.archive.zip import check_member_count

    archive = _zip_of(tmp_path / "a.zip", 12, prefix=prefix)
    check_member_count(archive, 12, "a.zip")
    with pytest.raises(ArchiveError, match="more than 11 members"):
        check_member_count(archive, 11, "a.zip")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile read the archive")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", never)
    with pytest.raises(ArchiveError, match="more than 11 members"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.ZIP, layout=Layout.TOPDIR, max_members=11
        )


def _as_zip64(path: Path) -> Path:
    """``path``'s end record rewritten the zip64 way (a zip64 end record and its locator
    before a classic one whose fields say "see zip64"), as past 65,535 members."""
    import struct

    data = path.read_bytes()
    at = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HII", data, at + 10)
    record = at  # where the zip64 end record goes: in place of the classic one
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, record, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(data[:at] + zip64 + locator + end)
    return path


def test_the_member_count_of_a_zip64_archive_is_its_records(tmp_path: Path) -> None:
    import zipfile

    from pylock.archive.zip import check_member_count

    archive = _as_zip64(_zip_of(tmp_path / "big.zip", 12))
    with zipfile.ZipFile(archive) as handle:  # as zipfile reads it
        assert len(handle.infolist()) == 12
    check_member_count(archive, 12, "big.zip")
    with pytest.raises(ArchiveError, match="more than 11 members"):
        check_member_count(archive, 11, "big.zip")


def test_an_end_record_whose_counts_spell_its_signature_is_still_found(tmp_path: Path) -> None:
    """Review: the last signature in the tail was taken for the end record; one forged into
    the record's own count fields made the count skip, and zipfile read every member."""
    import zipfile

    from pylock.archive.zip import check_member_count

    archive = _zip_of(tmp_path / "forged.zip", 12)
    data = bytearray(archive.read_bytes())
    data[-22 + 8 : -22 + 12] = b"PK\x05\x06"  # counts zipfile does not use
    archive.write_bytes(bytes(data))
    with zipfile.ZipFile(archive) as handle:
        assert len(handle.infolist()) == 12
    with pytest.raises(ArchiveError, match="more than 11 members"):
        check_member_count(archive, 11, "forged.zip")
