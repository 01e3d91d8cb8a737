"""Issue 11 §1, §4, §6: hostile tar headers end at once in a clean ``ArchiveError``.

The archives here are written byte by byte (``tarfile`` refuses to write most of them):
negative base-256 sizes in pax and GNU long-name headers (which once made the reader move
backwards for ever), non-numeric and oversized sizes, truncated headers, bad pax record
lengths, pax mtimes of ``inf``, ``nan`` and ``1e300``, and control characters in names.
Each is fed to the extraction entry point, to layout detection (the direct-URL lock path),
and through the CLI as a user runs it, in a subprocess with a timeout.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout, detect_layout
from pylock.archive.tar import read_tar_member
from pylock.errors import ArchiveError
from pylock.platforms import host
from pylock.versions import ArchiveFormat
from tests import archives
from tests.projects import host_project, run_pylock, write_host_lock

#: Every case must end well within this; before the fix some spun for ever.
PATIENCE = 20

# -- raw tar headers ---------------------------------------------------------------------------


def octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def base256(value: int, width: int = 12) -> bytes:
    """GNU base-256: the first byte's high bit set (0xff for a negative value)."""
    if value < 0:
        return value.to_bytes(width, "big", signed=True)
    return b"\x80" + value.to_bytes(width - 1, "big")


def header(
    name: bytes,
    typeflag: bytes = b"0",
    *,
    size: bytes | int = 0,
    mode: bytes = b"0000644\0",
    mtime: bytes = b"00000000000\0",
    linkname: bytes = b"",
) -> bytes:
    """One 512-byte ustar header with a correct checksum, fields exactly as given."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = mode
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = octal(size, 12) if isinstance(size, int) else size
    block[136:148] = mtime
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def member(name: bytes, data: bytes = b"", **fields: bytes) -> bytes:
    return header(name, size=len(data), **fields) + padded(data)


def pax(records: bytes, typeflag: bytes = b"x", *, size: bytes | None = None) -> bytes:
    field = size if size is not None else octal(len(records), 12)
    return header(b"././@PaxHeader", typeflag, size=field) + padded(records)


def record(key: str, value: str) -> bytes:
    """A well-formed pax record: its length counts itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


END = bytes(1024)
OK = member(b"python/bin/python3", b"#!fake\n", mode=b"0000755\0")


def gz(tar: bytes) -> bytes:
    return gzip.compress(tar, mtime=0)


# -- the cases -----------------------------------------------------------------------------------

#: name -> raw (uncompressed) tar stream. Every one must raise ArchiveError at once.
HOSTILE: dict[str, bytes] = {
    # §1: negative base-256 sizes in metadata headers (the 117-byte spin).
    "pax-negative-size": pax(b"", size=base256(-512)) + END,
    "global-pax-negative-size": pax(b"", b"g", size=base256(-512)) + END,
    "longname-negative-size": header(b"././@LongLink", b"L", size=base256(-512)) + END,
    "longlink-negative-size": header(b"././@LongLink", b"K", size=base256(-1024)) + END,
    "file-negative-size": OK + header(b"python/x", size=base256(-512)) + END,
    "file-negative-one": OK + header(b"python/x", size=base256(-1)) + END,
    "octal-minus": OK + header(b"python/x", size=b"-0001000000\0") + END,
    "octal-plus": OK + header(b"python/x", size=b"+0000000001\0") + padded(b"x") + END,
    "octal-prefix": OK + header(b"python/x", size=b"0o000000001\0") + padded(b"x") + END,
    "octal-underscore": OK + header(b"python/x", size=b"00000000_01\0") + padded(b"x") + END,
    "size-not-a-number": OK + header(b"python/x", size=b"nonsense!!!\0") + END,
    "size-eight": OK + header(b"python/x", size=b"00000000008\0") + END,
    "size-oversized": OK + header(b"python/x", size=base256(1 << 80)) + END,
    "longname-oversized": header(b"././@LongLink", b"L", size=base256(1 << 40)) + END,
    "mode-not-a-number": OK + header(b"python/x", mode=b"rwxr-xr\0") + END,
    "mtime-not-a-number": OK + header(b"python/x", mtime=b"yesterday!!\0") + END,
    "mtime-base256-huge": OK + header(b"python/x", mtime=base256(1 << 80)) + END,
    "truncated-header": OK + header(b"python/x", size=5)[:300],
    "truncated-data": OK + header(b"python/x", size=5000) + b"abc",
    "truncated-pax": pax(record("path", "python/x"))[:600],
    "no-end-blocks": OK,
    # pax record lengths.
    "pax-length-negative": pax(b"-5 path=python/x\n") + OK + END,
    "pax-length-zero": pax(b"0 path=python/x\n") + OK + END,
    "pax-length-short": pax(b"3 path=python/x\n") + OK + END,
    "pax-length-past-end": pax(b"99 path=python/x\n") + OK + END,
    "pax-length-plus": pax(b"+18 path=python/x\n") + OK + END,
    "pax-length-underscore": pax(b"1_8 path=python/x\n") + OK + END,
    "pax-length-space": pax(b" 18 path=python/x\n") + OK + END,
    "pax-length-huge": pax(b"9" * 40 + b" path=python/x\n") + OK + END,
    "pax-no-space": pax(b"123456789012345678901234567890") + OK + END,
    "pax-no-equals": pax(record("path", "x").replace(b"=", b":")) + OK + END,
    "pax-not-utf8": pax(b"17 path=python/\xff\n") + OK + END,
    # pax values.
    "pax-size-negative": pax(record("size", "-512")) + header(b"python/x") + END,
    "pax-size-float": pax(record("size", "1e3")) + header(b"python/x") + END,
    "pax-size-oversized": pax(record("size", str(1 << 70))) + header(b"python/x") + END,
    "pax-size-unicode-digit": pax(record("size", "\u0661")) + header(b"python/x") + END,
    # §4: mtimes no OS can set.
    "pax-mtime-inf": pax(record("mtime", "inf")) + OK + END,
    "pax-mtime-minus-inf": pax(record("mtime", "-inf")) + OK + END,
    "pax-mtime-nan": pax(record("mtime", "nan")) + OK + END,
    "pax-mtime-1e300": pax(record("mtime", "1e300")) + OK + END,
    "pax-mtime-many-digits": pax(record("mtime", "9" * 400)) + OK + END,
    "pax-mtime-year-30000": pax(record("mtime", str(10**12))) + OK + END,
    # §6: control characters in names, which must never reach a terminal raw.
    "name-escape-sequence": OK + member(b"python/bin/\x1b[2J\x1b]0;pwned\x07") + END,
    "name-newline": OK + member(b"python/lib/app\n") + END,
    "name-c1-csi": OK + member("python/lib/\x9b31m".encode()) + END,
    "name-del": OK + member(b"python/lib/a\x7fb") + END,
    "pax-path-escape": OK + pax(record("path", "python/\x1b[31mred")) + member(b"x") + END,
    "symlink-target-escape": OK
    + header(b"python/bin/link", b"2", linkname=b"python3\x1b[2J")
    + END,
    # Code review: metadata headers were read without limit, and without being counted.
    "pax-headers-in-a-row": pax(record("comment", "x" * 1000)) * 9 + OK + END,
    "global-pax-headers-in-a-row": pax(record("comment", "x"), b"g") * 9 + OK + END,
    "long-names-in-a-row": header(b"././@LongLink", b"L", size=9) * 9 + OK + END,
    "metadata-only": pax(record("comment", "x"), b"g") * 20 + END,
    # A tree a thousand directories deep: shutil.rmtree (3.11) recursed past Python's limit
    # cleaning it up, and every later sync into that directory failed the same way.
    "pax-path-1200-deep": OK
    + pax(record("path", "python/" + "a/" * 1200 + "f"))
    + member(b"x")
    + END,
}


def write(tmp_path: Path, name: str, tar: bytes) -> Path:
    path = tmp_path / f"{name}.tar.gz"
    path.write_bytes(gz(tar))
    return path


def extract(path: Path, dest: Path, *, threaded: bool = False) -> None:
    extract_archive(
        path,
        dest,
        fmt=ArchiveFormat.TAR_GZ,
        layout=Layout.PBS_INSTALL_ONLY,
        expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        threaded=threaded,
    )


@pytest.mark.timeout(PATIENCE)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_raises_archive_error(tmp_path: Path, case: str) -> None:
    path = write(tmp_path, case, HOSTILE[case])
    with pytest.raises(ArchiveError) as info:
        extract(path, tmp_path / "dest")
    message = str(info.value)
    assert message.isprintable(), message
    assert not (tmp_path / "dest" / "x").exists()


@pytest.mark.timeout(PATIENCE)
@pytest.mark.parametrize(
    "case", [c for c in sorted(HOSTILE) if not c.startswith(("name-", "pax-path", "symlink-"))]
)
def test_hostile_header_ends_layout_detection(tmp_path: Path, case: str) -> None:
    """The direct-URL lock path reads the first members only; it must end too."""
    path = write(tmp_path, case, HOSTILE[case])
    try:
        detect_layout(path, ArchiveFormat.TAR_GZ)
    except ArchiveError as exc:
        assert str(exc).isprintable()
    with pytest.raises(ArchiveError):
        # PYTHON.json is never found, so the whole archive is read.
        read_tar_member(path, ArchiveFormat.TAR_GZ, "python/PYTHON.json")


def test_a_member_64_levels_deep_is_extracted_and_65_refused(tmp_path: Path) -> None:
    deepest = "python/" + "d/" * 62 + "f"  # 64 components
    path = write(tmp_path, "deep", OK + pax(record("path", deepest)) + member(b"x") + END)
    extract(path, tmp_path / "dest")
    assert (tmp_path / "dest" / ("d/" * 62 + "f")).is_file()
    too_deep = "python/" + "d/" * 63 + "f"
    path = write(tmp_path, "deeper", OK + pax(record("path", too_deep)) + member(b"x") + END)
    with pytest.raises(ArchiveError, match="65 levels deep"):
        extract(path, tmp_path / "dest2")


def test_a_hostile_members_name_is_cut_in_the_error(tmp_path: Path) -> None:
    """Scale attack: a 4 KB archive whose member name is 800 KB (".." at its end) made an
    800 KB error line, all of it the name."""
    hostile = "python/lib/" + ("a" * 200 + "/") * 4000 + "../x"
    path = write(tmp_path, "long", OK + pax(record("path", hostile)) + member(b"x") + END)
    with pytest.raises(ArchiveError) as info:
        extract(path, tmp_path / "dest")
    message = str(info.value)
    assert len(message) < 500
    assert "python/lib/aaa" in message and "/../x" in message  # where it is, and what
    assert info.value.member == hostile  # kept whole for a program


def test_tiny_files_between_skipped_megabytes_pin_a_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: each one-byte file's data was a view into a decompressed megabyte the rest
    of which was a skipped member (a GNU volume label); a batch counted one byte a file
    and held 512 of them, 1 GB of memory for a 2 MB download."""
    from pylock.archive import writer

    label = (1 << 20) - 512
    tar = OK
    for i in range(16):
        tar += header(b"vol", b"V", size=label) + bytes(label)
        tar += member(f"python/f/{i}".encode(), b"x")
    path = write(tmp_path, "pinned", tar + END)
    held: list[int] = []
    real = writer.ThreadSink.submit

    def measuring(self: writer.ThreadSink, ops: list[tuple[object, ...]]) -> None:
        chunks = {id(v.obj): len(v.obj) for op in ops for v in _views(op)}  # type: ignore[arg-type]
        held.append(sum(chunks.values()))
        real(self, ops)

    monkeypatch.setattr(writer.ThreadSink, "submit", measuring)
    extract(path, tmp_path / "dest", threaded=True)
    assert (tmp_path / "dest" / "f" / "15").read_bytes() == b"x"
    assert held and max(held) <= 3 << 20, max(held)


def _views(op: tuple[object, ...]) -> list[memoryview]:
    from pylock.archive.writer import DATA, FILE

    found = op[4] if op[0] == FILE else [op[1]] if op[0] == DATA else []
    assert isinstance(found, list) and all(isinstance(v, memoryview) for v in found)
    return found


def test_the_117_byte_archive(tmp_path: Path) -> None:
    """The archive of the report: a pax header whose base-256 size is -512."""
    data = gz(HOSTILE["pax-negative-size"])
    assert len(data) < 120
    path = tmp_path / "spin.tar.gz"
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match="invalid member size -512"):
        extract(path, tmp_path / "dest")


def test_control_characters_are_escaped_in_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "esc", HOSTILE["name-escape-sequence"])
    with pytest.raises(ArchiveError) as info:
        extract(path, tmp_path / "dest")
    assert info.value.member == "python/bin/\x1b[2J\x1b]0;pwned\x07"  # raw, for code
    assert "\x1b" not in str(info.value)
    assert "python/bin/\\x1b[2J\\x1b]0;pwned\\x07: control character" in str(info.value)


def test_unicode_names_are_still_accepted(tmp_path: Path) -> None:
    """Only control characters are refused: non-ASCII names are fine."""
    tar = OK + member("python/lib/café/ünïcødé.py".encode(), b"ok\n") + END
    path = write(tmp_path, "unicode", tar)
    extract(path, tmp_path / "dest")
    assert (tmp_path / "dest/lib/café/ünïcødé.py").read_bytes() == b"ok\n"


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [("1704067200", 1704067200), ("1704067200.5", 1704067200.5), ("-86400", -86400)],
)
def test_valid_pax_mtimes_are_kept(tmp_path: Path, mtime: str, expected: float) -> None:
    tar = pax(record("mtime", mtime)) + OK + END
    path = write(tmp_path, "mtime", tar)
    extract(path, tmp_path / "dest")
    assert os.stat(tmp_path / "dest/bin/python3").st_mtime == expected


def test_an_empty_pax_value_falls_back_to_the_header(tmp_path: Path) -> None:
    """POSIX: a record with an empty value deletes the keyword (a global header's too), so
    the ustar header's own name and link apply. It read as an empty name, and was refused."""
    tar = (
        pax(record("mtime", "1704067200"), b"g")
        + OK
        + pax(record("path", "") + record("mtime", ""))
        + member(b"python/lib/kept.py", b"ok\n")
        + pax(record("linkpath", ""))
        + header(b"python/bin/link", b"2", linkname=b"python3")
        + END
    )
    path = write(tmp_path, "empty-values", tar)
    extract(path, tmp_path / "dest")
    assert os.stat(tmp_path / "dest/bin/python3").st_mtime == 1704067200
    assert (tmp_path / "dest/lib/kept.py").read_bytes() == b"ok\n"
    assert os.stat(tmp_path / "dest/lib/kept.py").st_mtime == 0
    assert os.readlink(tmp_path / "dest/bin/link") == "python3"


def test_large_base256_size_of_a_real_member_is_read(tmp_path: Path) -> None:
    """Base-256 itself stays supported (GNU tar writes it for files over 8 GiB)."""
    tar = OK + header(b"python/big", size=base256(1000)) + padded(b"b" * 1000) + END
    path = write(tmp_path, "b256", tar)
    extract(path, tmp_path / "dest")
    assert (tmp_path / "dest/big").read_bytes() == b"b" * 1000


def test_helpers_write_what_tarfile_reads(tmp_path: Path) -> None:
    """The raw builder is right: tarfile reads a well-formed stream of it back."""
    tar = pax(record("mtime", "1704067200")) + OK + END
    path = tmp_path / "ok.tar"
    path.write_bytes(tar)
    with tarfile.open(path) as handle:
        [info] = handle.getmembers()
    assert (info.name, info.size, info.mtime) == ("python/bin/python3", 7, 1704067200)


# -- through the CLI, as a user runs it ------------------------------------------------------

HOST = host()


CLI_CASES = [
    "pax-negative-size",
    "longname-negative-size",
    "file-negative-size",
    "pax-mtime-nan",
    "name-escape-sequence",
    "pax-path-1200-deep",
]

Check = Callable[[subprocess.CompletedProcess[str]], None]


def clean_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stderr
    assert "pylock: error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX install layout")
@pytest.mark.parametrize("direct", [False, True], ids=["pbs", "direct-url"])
@pytest.mark.parametrize("case", CLI_CASES)
def test_sync_ends_with_one_error_line(tmp_path: Path, case: str, direct: bool) -> None:
    project = tmp_path / "project"
    project.mkdir()
    archive = write(tmp_path, case, HOSTILE[case])
    write_host_lock(project, archive.read_bytes(), archive.as_uri(), direct=direct)
    before = sorted(os.listdir(tmp_path))
    result = run_pylock(project, "sync", "--into", str(tmp_path / "pythons"), timeout=PATIENCE)
    clean_error(result)
    assert not (tmp_path / "pythons" / "app").exists()
    assert [p for p in os.listdir(tmp_path / "pythons") if not p.startswith(".pylock-locks")] == []
    assert sorted(set(os.listdir(tmp_path)) - {"pythons"}) == before


def direct_url_project(tmp_path: Path, archive: Path) -> Path:
    """A project whose ``pythons.toml`` names ``archive`` as ``app``, by direct URL."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.toml").write_text(
        f'[python.app]\nurl = "{archive.as_uri()}"\nplatforms = ["{HOST.key}"]\n',
        encoding="utf-8",
    )
    return project


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
@pytest.mark.parametrize("case", ["pax-negative-size", "longname-negative-size", "size-oversized"])
def test_lock_of_a_direct_url_ends_with_one_error_line(tmp_path: Path, case: str) -> None:
    project = direct_url_project(tmp_path, write(tmp_path, case, HOSTILE[case]))
    result = run_pylock(project, "lock", timeout=PATIENCE)
    clean_error(result)
    assert "not an archive pylock can install" in result.stderr
    assert not (project / "pythons.lock").exists()


@pytest.mark.skipif(os.name == "nt", reason="file URL of a POSIX path")
def test_lock_of_a_hostile_full_archive_ends(tmp_path: Path) -> None:
    """A full archive's PYTHON.json is read with pylock's reader, not tarfile."""
    tar = member(b"python/install/bin/python3", b"x") + pax(b"", size=base256(-512)) + END
    archive = tmp_path / "corp-python-full.tar.zst"
    archive.write_bytes(archives.compress(tar, ArchiveFormat.TAR_ZST))
    project = direct_url_project(tmp_path, archive)
    result = run_pylock(project, "lock", timeout=PATIENCE)
    clean_error(result)
    assert "invalid member size -512" in result.stderr


@pytest.mark.skipif(os.name == "nt", reason="streamed installs are POSIX-only")
@pytest.mark.parametrize("case", ["pax-negative-size", "longname-negative-size", "pax-mtime-inf"])
def test_streamed_install_from_a_mirror_ends(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The install that reads a download while it arrives (pylock.net.stream) ends too."""
    import pylock.net.stream
    from pylock.cli import main
    from pylock.urls import PBS_DOWNLOAD_PREFIX
    from tests.httpserver import HttpServer

    streamed: list[int] = []
    original = pylock.net.stream.FeedReader.read

    def read(reader: pylock.net.stream.FeedReader, size: int = -1) -> bytes:
        data = original(reader, size)
        streamed.append(len(data))
        return data

    monkeypatch.setattr(pylock.net.stream.FeedReader, "read", read)

    data = gz(HOSTILE[case])
    triple = HOST.pbs_triple
    if triple is None:
        pytest.skip("no python-build-standalone triple for this host")
    filename = f"cpython-3.12.7+20990101-{triple}-install_only.tar.gz"
    project = host_project(tmp_path, data, f"{PBS_DOWNLOAD_PREFIX}20990101/{filename}")
    into = tmp_path / "pythons"
    with HttpServer() as server:
        server.serve(f"/20990101/{filename}", data)
        argv = ["--project", str(project), "sync", "--into", str(into)]
        argv += ["--mirror", server.base_url + "/"]
        code = main(argv, environ={"PYLOCK_CACHE_DIR": str(tmp_path / "cache")})
    err = capsys.readouterr().err
    assert code == 1
    assert sum(streamed) > 0  # the install read the download as it arrived
    assert "pylock: error:" in err and "Traceback" not in err
    assert not (into / "app").exists()
    assert [p for p in os.listdir(into) if p != ".pylock-locks"] == []


def test_a_zip_member_with_an_empty_name_is_refused(tmp_path: Path) -> None:
    """Found by the fuzz test: ``ZipInfo.is_dir()`` raises IndexError on an empty name."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/bin/python3", b"#!/bin/sh\n")
        archive.writestr(zipfile.ZipInfo("python/lib/x"), b"x")
    data = buffer.getvalue().replace(b"python/lib/x", b"\0" * 12)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    # The NUL-padded name reads back empty in some zipfile versions, "\0..." in others:
    # either way it is one clean ArchiveError, never an IndexError.
    with pytest.raises(ArchiveError, match=r"empty member name or NUL|NUL byte in the member name"):
        extract_archive(
            path, tmp_path / "dest", fmt=ArchiveFormat.ZIP, layout=Layout.PBS_INSTALL_ONLY
        )
    # Direct-URL layout detection reads the same names: it skips the empty one (the
    # extraction refuses it) instead of failing with IndexError.
    assert detect_layout(path, ArchiveFormat.ZIP) is Layout.PBS_INSTALL_ONLY


def test_a_zip_member_name_cut_at_a_nul_is_refused(tmp_path: Path) -> None:
    """zipfile cuts a name at its first NUL: ``lib/x.py\\0.exe`` would be written as
    ``lib/x.py``, a file the archive does not name."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/bin/python3", b"#!/bin/sh\n")
        archive.writestr("python/lib/x.pyZexe", b"x")
    path = tmp_path / "a.zip"
    path.write_bytes(buffer.getvalue().replace(b"x.pyZexe", b"x.py\0exe"))
    with pytest.raises(ArchiveError, match="NUL") as caught:
        extract_archive(
            path, tmp_path / "dest", fmt=ArchiveFormat.ZIP, layout=Layout.PBS_INSTALL_ONLY
        )
    assert "x.py\\x00exe" in str(caught.value)
    assert not (tmp_path / "dest" / "lib" / "x.py").exists()


def test_metadata_headers_count_against_the_unpacked_size(tmp_path: Path) -> None:
    """Code review: 200 pax headers of half a MiB each, one per member, unpacked 100 MB
    past a limit of 1 MiB (a small archive could make pylock inflate any amount)."""
    big = pax(record("comment", "x" * (512 << 10)))
    tar = b"".join(big + member(b"python/lib/f%d" % i) for i in range(200)) + OK + END
    path = write(tmp_path, "meta", tar)
    with pytest.raises(ArchiveError, match=r"python/lib/f1: unpacks to more than 1,048,576 bytes"):
        extract_archive(
            path,
            tmp_path / "dest",
            fmt=ArchiveFormat.TAR_GZ,
            layout=Layout.PBS_INSTALL_ONLY,
            expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            max_unpacked=1 << 20,
        )


@pytest.mark.timeout(PATIENCE)
def test_a_huge_global_pax_header_is_not_copied_for_every_member(tmp_path: Path) -> None:
    """Code review: one global header of 70,000 short records before 2,000 empty files took
    19 s (every member copied every record); only the keys pylock reads are kept."""
    records = b"".join(record(f"k{i}", "v") for i in range(1_000))
    members = b"".join(member(b"python/lib/f%d" % i) for i in range(2_000))
    path = write(tmp_path, "global", pax(records, b"g") + OK + members + END)
    started = time.monotonic()
    extract(path, tmp_path / "dest")
    assert time.monotonic() - started < 5
    assert (tmp_path / "dest" / "lib" / "f1999").is_file()
    # More records than any real header has (70,000 in under 1 MiB) are refused at once,
    # and so is more metadata in all than any real archive has.
    many = b"".join(record(f"k{i}", "v") for i in range(70_000))
    path = write(tmp_path, "many", pax(many, b"g") + OK + END)
    with pytest.raises(ArchiveError, match="invalid pax header"):
        extract(path, tmp_path / "dest-many")
    same = record("comment", "x") * 70_000  # one key, many times
    path = write(tmp_path, "same", pax(same) + OK + END)
    with pytest.raises(ArchiveError, match="invalid pax header"):
        extract(path, tmp_path / "dest-same")


@pytest.mark.timeout(PATIENCE)
def test_metadata_past_64_mib_in_all_is_refused(tmp_path: Path) -> None:
    """Attack on the day's changes: pax records parse at a few microseconds each, and the
    4 GiB unpacked limit allowed minutes of them."""
    big = pax(record("comment", "x" * ((1 << 20) - 100)))
    tar = b"".join(big + member(b"python/lib/f%d" % i) for i in range(70)) + OK + END
    path = write(tmp_path, "meta", tar)
    with pytest.raises(ArchiveError, match="more than 64 MiB of tar metadata headers"):
        extract(path, tmp_path / "dest")


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([archives.file("/python/bin/x")], "absolute path"),
        (
            [archives.symlink("python/lib/link", "."), archives.file("python/lib/link/x")],
            "would write through the symlink lib/link",
        ),
        (
            [archives.symlink("python/lib/Link", "."), archives.file("python/lib/link")],
            "would overwrite the symlink lib/link",
        ),
    ],
    ids=["absolute", "through-a-link", "over-a-link-by-case"],
)
def test_each_extraction_rule_refuses_on_its_own(
    tmp_path: Path, members: list[archives.Entry], reason: str
) -> None:
    """Audit: these rules were only ever met by archives another rule refused first (an
    absolute path outside python/, two members on one path), so removing one failed no
    test. Each archive here breaks that rule alone, and is refused for it."""
    entries = [archives.file("python/bin/python3", b"x"), *members]
    archive = archives.write_archive(tmp_path / "a.tar.gz", entries, ArchiveFormat.TAR_GZ)
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError) as info:
        extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    assert reason in str(info.value)
