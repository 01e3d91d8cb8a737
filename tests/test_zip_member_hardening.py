"""A zip whose member cannot be opened or read is one clean ArchiveError naming the member
(both paths build their error in ``archive/zip.py``), and nothing lands under a final name."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout
from pylock.errors import ArchiveError
from pylock.versions import ArchiveFormat

MEMBER = "python/lib/big.txt"


def make_zip(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("python/bin/", "")
        handle.writestr(MEMBER, "pylock " * 50_000)
    return path.read_bytes()


def extract(path: Path, dest: Path) -> None:
    # No expected hash: the damage is in the member, and the zip reader must catch it alone.
    extract_archive(path, dest, fmt=ArchiveFormat.ZIP, layout=Layout.PBS_INSTALL_ONLY)


def test_a_member_with_a_broken_local_header(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    data = bytearray(make_zip(path))
    offset = zipfile.ZipFile(path).getinfo(MEMBER).header_offset
    data[offset : offset + 4] = b"XXXX"  # the local header's magic
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as caught:
        extract(path, tmp_path / "dest")
    assert caught.value.member == MEMBER
    assert "cannot read member (Bad magic number" in str(caught.value)
    assert not (tmp_path / "dest" / "lib" / "big.txt").exists()


def test_a_member_whose_deflate_stream_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    data = bytearray(make_zip(path))
    info = zipfile.ZipFile(path).getinfo(MEMBER)
    start = info.header_offset + 30 + len(MEMBER.encode())
    middle = start + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)  # zeros in the middle of the compressed data
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as caught:
        extract(path, tmp_path / "dest")
    assert caught.value.member == MEMBER
    assert "cannot read member" in str(caught.value)
