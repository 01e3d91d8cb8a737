"""Field test 2 (hostile archives): resource limits, a tar parser differential, fix-ups.

- A ``_sysconfigdata_*.py`` over 512 KiB is left as shipped with a warning: parsing a
  16 MiB one took 8 GB of memory.
- An archive may unpack to at most ``MAX_UNPACKED`` bytes and hold at most ``MAX_MEMBERS``
  members (tar and zip); the tests pass small limits.
- The data of a GNU volume label (``V``) is skipped, as GNU tar and tarfile skip it: it was
  parsed as more headers, which installed a file no listing shows.
- The sysconfig fix-up never deletes through a symlinked ``__pycache__``.
- gzip, bzip2 and zstd streams are read to their end: a missing CRC trailer and data after
  the last stream are refused by all three.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from pylock.archive import extract
from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout
from pylock.errors import ArchiveError
from pylock.platforms import host
from pylock.sync.fixups import apply_fixups
from pylock.versions import ArchiveFormat
from tests import archives
from tests.archives import directory, file, pbs_install_only
from tests.projects import host_project
from tests.syncproject import Build, Project

TAR_FORMATS = [ArchiveFormat.TAR_GZ, ArchiveFormat.TAR_BZ2, ArchiveFormat.TAR_ZST]
ALL_FORMATS = [*TAR_FORMATS, ArchiveFormat.ZIP]


def extracted(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


# -- 1. the sysconfig fix-up's size cap --------------------------------------------------------

DATA = "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"


def sysconfigdata(size: int) -> bytes:
    """A valid module of about ``size`` bytes, shaped like the real one (one key a line)."""
    lines = ["build_time_vars = {'prefix': '/install', 'LIBDIR': '/install/lib',\n"]
    total = len(lines[0])
    i = 0
    while total < size:
        line = f" 'KEY_{i}': '-I/install/include/{'x' * 40}',\n"
        lines.append(line)
        total += len(line)
        i += 1
    return ("".join(lines) + "}\n").encode()


@pytest.mark.skipif(os.name == "nt", reason="fix-ups run on POSIX installs only")
def test_sysconfigdata_over_the_cap_is_left_as_shipped_with_a_warning(tmp_path: Path) -> None:
    data = sysconfigdata(600 << 10)  # valid: only its size is wrong
    (tmp_path / DATA).parent.mkdir(parents=True)
    (tmp_path / DATA).write_bytes(data)
    warnings: list[str] = []
    assert apply_fixups(tmp_path, Path("/opt/python/app"), warnings.append) == []
    assert (tmp_path / DATA).read_bytes() == data
    assert warnings == [
        f"app: left {DATA} as shipped: larger than 512 KiB; "
        "building C extensions may need CC and LDSHARED set"
    ]


@pytest.mark.skipif(os.name == "nt", reason="fix-ups run on POSIX installs only")
def test_sysconfigdata_of_a_real_size_is_still_patched(tmp_path: Path) -> None:
    data = sysconfigdata(60 << 10)  # real ones are 45-55 KB
    (tmp_path / DATA).parent.mkdir(parents=True)
    (tmp_path / DATA).write_bytes(data)
    warnings: list[str] = []
    assert apply_fixups(tmp_path, Path("/opt/python/app"), warnings.append) == [DATA]
    assert warnings == []
    assert "'LIBDIR': '/opt/python/app/lib'" in (tmp_path / DATA).read_text()


# -- 2. and 3. unpacked size and member count --------------------------------------------------


def payload_entries(count: int, size: int) -> list[archives.Entry]:
    return [file(f"python/lib/f{i:03}", bytes([65 + i % 26]) * size) for i in range(count)]


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_unpacked_size_over_the_limit_is_refused_at_the_member(
    tmp_path: Path, fmt: ArchiveFormat
) -> None:
    archive = archives.write_archive(
        tmp_path / f"a{archives.suffix(fmt)}", payload_entries(5, 400), fmt
    )
    with pytest.raises(ArchiveError) as caught:
        extract_archive(
            archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, max_unpacked=1000
        )
    error = caught.value
    assert error.member == "python/lib/f002"  # 1,200 bytes with it
    assert str(error) == (
        f"{archive}: python/lib/f002: unpacks to more than 1,000 bytes (pylock's limit per archive)"
    )
    assert error.hint is not None and "sha256" in error.hint


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_unpacked_size_at_the_limit_is_accepted(tmp_path: Path, fmt: ArchiveFormat) -> None:
    entries = payload_entries(5, 400)
    archive = archives.write_archive(tmp_path / f"a{archives.suffix(fmt)}", entries, fmt)
    limit = 2000
    if fmt is not ArchiveFormat.ZIP:
        # What follows the first end block counts too: the second one and the padding
        # to a whole record, under 10 KB.
        limit += len(archives.tar_bytes(entries)) - 5 * 1024 - 512
    dest = tmp_path / "d"
    extract_archive(archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, max_unpacked=limit)
    assert len(extracted(dest)) == 5


@pytest.mark.parametrize("fmt", TAR_FORMATS, ids=str)
def test_a_bomb_stops_at_the_limit(tmp_path: Path, fmt: ArchiveFormat) -> None:
    """64 MiB of zeros in one member, a 4 MiB limit: refused before it is all written."""
    tar = archives.tar_bytes([file("python/zeros", bytes(64 << 20))])
    archive = tmp_path / f"bomb{archives.suffix(fmt)}"
    archive.write_bytes(archives.compress(tar, fmt))
    with pytest.raises(ArchiveError, match="python/zeros: unpacks to more than 4,194,304 bytes"):
        extract_archive(
            archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, max_unpacked=4 << 20
        )
    assert not (tmp_path / "d/zeros").exists()


def test_data_after_the_tar_end_counts_against_the_limit(tmp_path: Path) -> None:
    tar = archives.tar_bytes(payload_entries(2, 100)) + bytes(8 << 20)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archives.compress(tar, ArchiveFormat.TAR_GZ))
    fmt, layout = ArchiveFormat.TAR_GZ, Layout.PBS_INSTALL_ONLY
    with pytest.raises(ArchiveError, match="after the end of the tar archive"):
        extract_archive(archive, tmp_path / "d", fmt=fmt, layout=layout, max_unpacked=4 << 20)
    extract_archive(archive, tmp_path / "e", fmt=fmt, layout=layout, max_unpacked=16 << 20)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_too_many_members_are_refused(tmp_path: Path, fmt: ArchiveFormat) -> None:
    entries = [directory("python/lib"), *payload_entries(30, 1)]
    archive = archives.write_archive(tmp_path / f"a{archives.suffix(fmt)}", entries, fmt)
    with pytest.raises(ArchiveError) as caught:
        extract_archive(
            archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, max_members=20
        )
    assert str(caught.value) == (
        f"{archive}: python/lib/f019: more than 20 members (pylock's limit per archive)"
    )
    assert caught.value.hint is not None
    dest = tmp_path / "e"
    extract_archive(archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY, max_members=31)
    assert len(extracted(dest)) == 30


@pytest.mark.skipif(os.name == "nt", reason="the CLI test locks a POSIX build")
def test_sync_reports_the_limit_in_one_line_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pylock.cli import main
    from pylock.urls import PBS_DOWNLOAD_PREFIX

    triple = host().pbs_triple
    if triple is None:
        pytest.skip("no python-build-standalone triple for this host")
    monkeypatch.setattr(extract, "MAX_UNPACKED", 4096)
    entries = [*pbs_install_only(), file("python/lib/big", b"x" * 8192)]
    data = archives.compress(archives.tar_bytes(entries), ArchiveFormat.TAR_GZ)
    filename = f"cpython-3.12.7+20990101-{triple}-install_only.tar.gz"
    project = host_project(tmp_path, data, f"{PBS_DOWNLOAD_PREFIX}20990101/{filename}")
    (tmp_path / "mirror/20990101").mkdir(parents=True)
    (tmp_path / "mirror/20990101" / filename).write_bytes(data)
    into = tmp_path / "pythons"
    argv = ["--project", str(project), "sync", "--into", str(into)]
    argv += ["--mirror", (tmp_path / "mirror").as_uri() + "/"]
    code = main(argv, environ={"PYLOCK_CACHE_DIR": str(tmp_path / "cache")})
    err = capsys.readouterr().err
    assert code == 1
    [error, hint, _summary] = [line for line in err.splitlines() if line.startswith("pylock: ")]
    assert error.startswith("pylock: error: ")
    assert error.endswith(
        f"{filename}: python/lib/big: unpacks to more than 4,096 bytes (pylock's limit per archive)"
    )
    assert hint.startswith("pylock: hint: real interpreter archives are far smaller")
    assert not (into / "app").exists()


# -- 4. GNU volume labels ----------------------------------------------------------------------


def raw_member(info: tarfile.TarInfo, data: bytes = b"", *, pax: bool = False) -> bytes:
    """A header written by tarfile, then ``data`` padded to whole blocks."""
    if pax:
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    else:
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    return header + data + bytes(-len(data) % 512)


def regular(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o755
    return raw_member(info, data)


def volume_label_archives() -> dict[str, bytes]:
    """Tars whose ``V`` member's data is a complete member, ``python/bin/hidden``."""
    good = regular("python/bin/python3.12", b"#!fake\n")
    hidden = regular("python/bin/hidden", b"PAYLOAD")
    label = tarfile.TarInfo("label")
    label.type = b"V"
    label.size = len(hidden)
    pax_label = tarfile.TarInfo("label")
    pax_label.type = b"V"
    pax_label.pax_headers = {"size": str(len(hidden))}  # the header itself says 0
    end = bytes(1024)
    return {
        "header-size": good + raw_member(label, hidden) + end,
        "pax-size": good + raw_member(pax_label, pax=True) + hidden + end,
    }


@pytest.mark.parametrize("case", sorted(volume_label_archives()))
def test_volume_label_data_is_skipped_as_tarfile_skips_it(tmp_path: Path, case: str) -> None:
    tar = volume_label_archives()[case]
    with tarfile.open(fileobj=io.BytesIO(tar)) as listing:
        assert listing.getnames() == ["python/bin/python3.12", "label"]
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archives.compress(tar, ArchiveFormat.TAR_GZ))
    dest = tmp_path / "d"
    extract_archive(archive, dest, fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY)
    assert extracted(dest) == {"bin/python3.12"}


def test_volume_label_with_oversized_data_is_refused(tmp_path: Path) -> None:
    label = tarfile.TarInfo("label")
    label.type = b"V"
    label.size = 2 << 20
    tar = regular("python/bin/python3.12", b"#!\n") + raw_member(label, bytes(2 << 20))
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archives.compress(tar + bytes(1024), ArchiveFormat.TAR_GZ))
    with pytest.raises(ArchiveError, match="label: oversized tar volume label"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )


@pytest.mark.parametrize("typeflag", [b"M", b"N", b"X"])
def test_other_types_tarfile_would_list_are_refused(tmp_path: Path, typeflag: bytes) -> None:
    """Not new: kept as the decision (refuse, not skip) that the ``V`` fix did not change."""
    info = tarfile.TarInfo("python/bin/other")
    info.type = typeflag
    info.size = 3
    tar = raw_member(info, b"abc") + bytes(1024)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archives.compress(tar, ArchiveFormat.TAR_GZ))
    with pytest.raises(ArchiveError, match="unsupported tar member type"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )


# -- 5. the fix-up and symlinks ----------------------------------------------------------------

CACHE = "_sysconfigdata__linux_x86_64-linux-gnu.cpython-312.pyc"
GOOD_DATA = b"build_time_vars = {'prefix': '/install', 'LIBDIR': '/install/lib'}\n"


@pytest.mark.skipif(os.name == "nt", reason="fix-ups run on POSIX installs only")
def test_fixup_does_not_delete_through_a_symlinked_pycache(tmp_path: Path) -> None:
    (tmp_path / "lib/keep").mkdir(parents=True)
    (tmp_path / "lib/keep" / CACHE).write_bytes(b"shipped member")
    (tmp_path / DATA).parent.mkdir(parents=True)
    (tmp_path / DATA).write_bytes(GOOD_DATA)
    (tmp_path / "lib/python3.12/__pycache__").symlink_to("../keep")
    assert apply_fixups(tmp_path, Path("/opt/python/app")) == [DATA]
    assert (tmp_path / "lib/keep" / CACHE).read_bytes() == b"shipped member"


@pytest.mark.skipif(os.name == "nt", reason="fix-ups run on POSIX installs only")
def test_fixup_removes_stale_caches_but_no_directory_and_follows_no_link(tmp_path: Path) -> None:
    pycache = tmp_path / "lib/python3.12/__pycache__"
    pycache.mkdir(parents=True)
    (tmp_path / DATA).write_bytes(GOOD_DATA)
    (pycache / CACHE).write_bytes(b"stale")
    opt = CACHE.replace(".pyc", ".opt-1.pyc")
    (pycache / opt).symlink_to("../../keep.txt")
    (tmp_path / "lib/keep.txt").write_bytes(b"shipped member")
    odd = CACHE.replace("cpython-312", "cpython-313")
    (pycache / odd).mkdir()
    changed = apply_fixups(tmp_path, Path("/opt/python/app"))
    stem = "lib/python3.12/__pycache__/"
    assert sorted(changed) == sorted([DATA, stem + CACHE, stem + opt])
    assert sorted(os.listdir(pycache)) == [odd]
    assert (tmp_path / "lib/keep.txt").read_bytes() == b"shipped member"


# -- 6. the end of the compressed stream --------------------------------------------------------

#: How many bytes to cut so that only the stream's end-of-stream check is lost: gzip's
#: CRC-32 and length, bzip2's end-of-stream marker and CRC, zstd's content checksum.
TRAILER = {ArchiveFormat.TAR_GZ: 8, ArchiveFormat.TAR_BZ2: 5, ArchiveFormat.TAR_ZST: 4}


def small_archive(tmp_path: Path, fmt: ArchiveFormat) -> tuple[Path, bytes]:
    data = archives.compress(archives.tar_bytes(pbs_install_only()), fmt)
    return tmp_path / f"a{archives.suffix(fmt)}", data


#: python-zstandard's stream reader ends quietly where a frame is cut (it has no end-of-frame
#: check to call): a zstd archive cut in its tar padding or checksum still installs. The
#: member data is whole (a cut before the tar end is "truncated archive"), and the lock's
#: sha256 covers every byte.
ZSTD_CUT = pytest.mark.xfail(
    reason="python-zstandard's stream reader does not report a cut frame", strict=True
)


@pytest.mark.parametrize(
    "fmt",
    [
        ArchiveFormat.TAR_GZ,
        ArchiveFormat.TAR_BZ2,
        pytest.param(ArchiveFormat.TAR_ZST, marks=ZSTD_CUT),
    ],
    ids=str,
)
@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "threaded"])
def test_a_stream_without_its_end_is_refused(
    tmp_path: Path, fmt: ArchiveFormat, threaded: bool
) -> None:
    archive, data = small_archive(tmp_path, fmt)
    archive.write_bytes(data[: -TRAILER[fmt]])
    with pytest.raises(ArchiveError, match=r"truncated|corrupt"):
        extract_archive(
            archive,
            tmp_path / "d",
            fmt=fmt,
            layout=Layout.PBS_INSTALL_ONLY,
            # The lock's hash matches: only the codec can tell.
            expected_sha256=hashlib.sha256(data[: -TRAILER[fmt]]).hexdigest(),
            threaded=threaded,
        )


@pytest.mark.parametrize("fmt", TAR_FORMATS, ids=str)
@pytest.mark.parametrize(
    "garbage", [b"garbage after the stream\n", bytes(512)], ids=["text", "zeros"]
)
def test_data_after_the_last_stream_is_refused_by_every_codec(
    tmp_path: Path, fmt: ArchiveFormat, garbage: bytes
) -> None:
    archive, data = small_archive(tmp_path, fmt)
    archive.write_bytes(data + garbage)
    with pytest.raises(ArchiveError, match=r"truncated|corrupt"):
        extract_archive(archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)


@pytest.mark.parametrize("fmt", TAR_FORMATS, ids=str)
def test_concatenated_streams_are_still_read(tmp_path: Path, fmt: ArchiveFormat) -> None:
    """Several streams back to back are one stream (pigz, pbzip2, zstd -T): still accepted,
    including a last one that holds only what follows the tar end."""
    tar = archives.tar_bytes(pbs_install_only())
    archive = tmp_path / f"a{archives.suffix(fmt)}"
    archive.write_bytes(archives.compress(tar[:4096], fmt) + archives.compress(tar[4096:], fmt))
    dest = tmp_path / "d"
    extract_archive(archive, dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
    assert "bin/python3.12" in extracted(dest)


def test_a_path_too_long_for_the_file_system_is_one_short_line(sync_project: Project) -> None:
    # 30 directories of 200 characters: the file system refuses the path. The message
    # quoted all 6,000 characters of it, with no word on what to do.
    from tests.archives import compress, exe, symlink, tar_bytes
    from tests.syncproject import TAG_A

    deep = "/".join(c * 200 for c in "abcdefghijklmnopqrstuvwxyz0123")
    entries = (
        exe("python/bin/python3.12", b"#!/bin/sh\n"),
        symlink("python/bin/python3", "python3.12"),
        file(f"python/lib/{deep}/x.py", b"x = 1\n"),
    )
    data = compress(tar_bytes(entries), ArchiveFormat.TAR_GZ)
    build = Build(
        name="app", tag=TAG_A, minor="3.12", fmt=ArchiveFormat.TAR_GZ, entries=entries, data=data
    )
    sync_project.lock(build)
    sync_project.serve(build)
    done = sync_project.sync()
    assert done.code == 1
    assert "File name too long" in done.err
    # The archive's path, not the temporary tree's name.
    assert "(writing lib/aaaa" in done.err and " of the new tree)" in done.err
    assert ".pylock-tmp-" not in done.err
    assert "shorter --into path" in done.err
    assert max(len(line) for line in done.err.splitlines()) < 600
    assert "Traceback" not in done.err
    assert sync_project.leftovers() == []
