"""Issue 11 §1: a Hypothesis fuzz of the extractor. Every mutated archive ends, in time.

Small interpreter-shaped ``.tar.gz`` (GNU headers), ``.tar.zst`` (pax headers) and
``.zip`` archives are mutated: bit flips and truncations of the compressed bytes, and
edits of tar header fields (size, mode, mtime, type, name, linkname, checksum, magic,
with or without a fixed-up checksum) or of zip local, central and end-of-directory
fields. Each case must end within ``CASE_SECONDS`` in a clean install or a
``PylockError``: never a hang, never another exception, never a file outside the
temporary destination. Layout detection (the direct-URL lock path) and
``read_tar_member`` get the same archives.

``test_fuzz_quick`` runs a few dozen cases in the fast suite; ``test_fuzz`` (slow) runs
``EXAMPLES`` per format. Cases are derandomized, so CI is reproducible.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import struct
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylock.archive.extract import extract_archive
from pylock.archive.layout import Layout, detect_layout
from pylock.archive.tar import read_tar_member
from pylock.errors import ArchiveError, PylockError
from pylock.versions import ArchiveFormat
from tests import archives
from tests.archives import directory, exe, file, hardlink, symlink

EXAMPLES = 200
QUICK_EXAMPLES = 25
CASE_SECONDS = 10

ENTRIES = [
    exe("python/bin/python3.12", b"\x7fELF fake python\n" * 20),
    symlink("python/bin/python3", "python3.12"),
    directory("python/lib/python3.12/site-packages"),
    file("python/lib/python3.12/os.py", b"# os module\n" * 150),
    hardlink("python/lib/python3.12/os_copy.py", "python/lib/python3.12/os.py"),
    file("python/lib/python3.12/" + "long_module_name_" * 8 + ".py", b"long = True\n"),
    file("python/share/caf\u00e9.txt", b"unicode name\n"),
]


def tar_stream(tar_format: int) -> bytes:
    return archives.tar_bytes(ENTRIES, tar_format=tar_format)


#: The uncompressed tar of each tar format, and where its headers start.
TARS = {
    ArchiveFormat.TAR_GZ: tar_stream(tarfile.GNU_FORMAT),
    ArchiveFormat.TAR_ZST: tar_stream(tarfile.PAX_FORMAT),
}


def header_offsets(tar: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos + 512 <= len(tar) and tar[pos : pos + 512] != bytes(512):
        offsets.append(pos)
        size = int(tar[pos + 124 : pos + 136].split(b"\0")[0].strip() or b"0", 8)
        pos += 512 + size + (-size % 512)
    return offsets


HEADERS = {fmt: header_offsets(tar) for fmt, tar in TARS.items()}
ZIP = archives.zip_bytes([e for e in ENTRIES if e.kind != "symlink"])

#: (offset, width) of the ustar fields worth editing.
TAR_FIELDS = {
    "name": (0, 100),
    "mode": (100, 8),
    "uid": (108, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "checksum": (148, 8),
    "type": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 8),
    "prefix": (345, 155),
}


def base256(value: int, width: int) -> bytes:
    if value < 0:
        return value.to_bytes(width, "big", signed=True)
    return b"\x80" + (value % (1 << (8 * (width - 1)))).to_bytes(width - 1, "big")


def octal(value: int, width: int) -> bytes:
    return (b"%o" % value)[-(width - 1) :].rjust(width - 1, b"0") + b"\0"


def numeric_values(width: int) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.integers(-(1 << 40), 1 << 90).map(lambda v: base256(v, width)),
        st.integers(0, 8**11).map(lambda v: octal(v, width)),
        st.sampled_from([b"-1", b"+7", b"0o7", b"7_7", b"9", b" ", b"\xff" * width]),
        st.binary(min_size=width, max_size=width),
    )


NAMES = [
    b"../../escape",
    b"/tmp/abs",
    b"python/../../escape",
    b"python/bin/python3/through-link",
    b"python/bin/\x1b[2Jx",
    b"python/lib\\..\\..\\x",
    b"C:/x",
    b"python/",
    b"",
    b"python/lib/python3.12/os.py",
    b"python/bin",
]


def text_values(width: int) -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(NAMES), st.binary(max_size=width))


def set_checksum(block: bytearray, start: int) -> None:
    block[start + 148 : start + 156] = b" " * 8
    total = sum(block[start : start + 512])
    block[start + 148 : start + 156] = b"%06o\0 " % total


@st.composite
def tar_edit(draw: st.DrawFn, fmt: ArchiveFormat) -> tuple[str, int, str, bytes, bool]:
    header = draw(st.sampled_from(HEADERS[fmt]))
    field = draw(st.sampled_from(sorted(TAR_FIELDS)))
    width = TAR_FIELDS[field][1]
    if field in ("name", "linkname", "prefix"):
        value = draw(text_values(width))
    elif field == "type":
        value = draw(st.sampled_from(list(b"0125673LKxgSV\0")).map(lambda b: bytes([b])))
    elif field == "magic":
        value = draw(st.sampled_from([b"ustar\x0000", b"ustar  \0", b"\0" * 8, b"garbage!"]))
    else:
        value = draw(numeric_values(width))
    return ("field", header, field, value, draw(st.booleans()))


def byte_edits(size: int) -> st.SearchStrategy[tuple[str, int, int]]:
    return st.one_of(
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(0, 7)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)),
    )


def apply_byte_edit(data: bytearray, edit: tuple[str, int, int]) -> bytearray:
    kind, pos, bit = edit
    if kind == "flip" and pos < len(data):
        data[pos] ^= 1 << bit
    elif kind == "truncate":
        del data[pos:]
    return data


def mutate_tar(fmt: ArchiveFormat, tar_edits: list[object], raw_edits: list[object]) -> bytes:
    tar = bytearray(TARS[fmt])
    for edit in tar_edits:
        if cast(tuple[object, ...], edit)[0] == "field":
            _, header, field, value, fix = cast(tuple[str, int, str, bytes, bool], edit)
            start, width = TAR_FIELDS[field]
            value = (value + bytes(width))[:width]
            tar[header + start : header + start + width] = value
            if fix and field != "checksum":
                set_checksum(tar, header)
        else:
            apply_byte_edit(tar, cast(tuple[str, int, int], edit))
    data = bytearray(archives.compress(bytes(tar), fmt))
    for edit in raw_edits:
        apply_byte_edit(data, cast(tuple[str, int, int], edit))
    return bytes(data)


def zip_structures(data: bytes) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """Offsets of every local header, central entry and the end record, with their fields."""
    local = {
        "flags": (6, 2),
        "method": (8, 2),
        "crc": (14, 4),
        "csize": (18, 4),
        "usize": (22, 4),
        "namelen": (26, 2),
        "extralen": (28, 2),
        "name": (30, 12),
    }
    central = {
        "flags": (8, 2),
        "method": (10, 2),
        "crc": (16, 4),
        "csize": (20, 4),
        "usize": (24, 4),
        "namelen": (28, 2),
        "extralen": (30, 2),
        "commentlen": (32, 2),
        "external": (38, 4),
        "offset": (42, 4),
        "name": (46, 12),
    }
    end = {"entries": (10, 2), "cdsize": (12, 4), "cdoffset": (16, 4), "commentlen": (20, 2)}
    found = []
    for signature, fields in (
        (b"PK\x03\x04", local),
        (b"PK\x01\x02", central),
        (b"PK\x05\x06", end),
    ):
        pos = data.find(signature)
        while pos >= 0:
            found.append((pos, fields))
            pos = data.find(signature, pos + 4)
    return found


ZIP_STRUCTURES = zip_structures(ZIP)


@st.composite
def zip_edit(draw: st.DrawFn) -> tuple[str, int, int, bytes]:
    start, fields = draw(st.sampled_from(ZIP_STRUCTURES))
    field = draw(st.sampled_from(sorted(fields)))
    offset, width = fields[field]
    if field == "name":
        value = draw(st.sampled_from(NAMES).map(lambda n: (n + bytes(width))[:width]))
    else:
        current = int.from_bytes(ZIP[start + offset : start + offset + width], "little")
        top = (1 << (8 * width)) - 1
        number = draw(
            st.one_of(
                st.sampled_from([0, 1, top, current + 1, current - 1, current * 2, 0xA1ED0000]),
                st.integers(0, top),
            )
        )
        value = (number % (top + 1)).to_bytes(width, "little")
    return ("zipfield", start + offset, width, value)


def mutate_zip(edits: list[object]) -> bytes:
    data = bytearray(ZIP)
    for edit in edits:
        if cast(tuple[object, ...], edit)[0] == "zipfield":
            _, pos, width, value = cast(tuple[str, int, int, bytes], edit)
            data[pos : pos + width] = value
        else:
            apply_byte_edit(data, cast(tuple[str, int, int], edit))
    return bytes(data)


# -- running one case --------------------------------------------------------------------------


class Hang(BaseException):
    """A case ran past ``CASE_SECONDS``."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise :class:`Hang` in this thread after ``seconds`` (POSIX; pytest-timeout elsewhere).

    pytest-timeout may have an alarm of its own pending: it is re-armed afterwards with
    whatever time it had left.
    """
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"a case took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    pending, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending > 0:
            left = pending - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


LAYOUTS = {ArchiveFormat.TAR_GZ: "gz", ArchiveFormat.TAR_ZST: "zst", ArchiveFormat.ZIP: "zip"}


def run_case(root: Path, fmt: ArchiveFormat, data: bytes, *, threaded: bool, stream: bool) -> None:
    work = Path(tempfile.mkdtemp(dir=root))
    try:
        archive = work / f"archive.{fmt}"
        archive.write_bytes(data)
        out = work / "out"
        out.mkdir()
        dest = out / "dest"
        with deadline(CASE_SECONDS):
            try:
                with contextlib.ExitStack() as stack:
                    source = stack.enter_context(open(archive, "rb")) if stream else None
                    entries = extract_archive(
                        archive,
                        dest,
                        fmt=fmt,
                        layout=Layout.PBS_INSTALL_ONLY,
                        expected_sha256=hashlib.sha256(data).hexdigest(),
                        threaded=threaded,
                        source=source,
                    )
            except PylockError as exc:
                assert str(exc).isprintable(), str(exc)
                entries = None
            try:
                detect_layout(archive, fmt)
            except ArchiveError as exc:
                assert str(exc).isprintable()
            if fmt is not ArchiveFormat.ZIP:
                with contextlib.suppress(ArchiveError):
                    read_tar_member(archive, fmt, "python/missing")
        # Nothing outside the destination: not next to it, not next to the archive.
        assert sorted(os.listdir(work)) == [archive.name, "out"]
        assert os.listdir(out) in ([], ["dest"])
        assert sorted(os.listdir(root)) == [work.name]
        real = os.path.realpath(dest)
        if entries is not None:
            for entry in entries:
                path = os.path.join(dest, entry.path)
                assert os.path.lexists(path), entry.path
                assert os.path.realpath(path).startswith(real + os.sep), entry.path
    finally:
        shutil.rmtree(work)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,  # each case has its own, above
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def tar_cases(fmt: ArchiveFormat) -> st.SearchStrategy[tuple[bytes, bool, bool]]:
    tar_size = len(TARS[fmt])
    compressed_size = len(archives.compress(TARS[fmt], fmt))
    return st.tuples(
        st.builds(
            mutate_tar,
            st.just(fmt),
            st.lists(st.one_of(tar_edit(fmt), byte_edits(tar_size)), max_size=4),
            st.lists(byte_edits(compressed_size), max_size=2),
        ),
        st.booleans(),
        st.booleans(),
    )


ZIP_CASES = st.tuples(
    st.builds(
        mutate_zip, st.lists(st.one_of(zip_edit(), byte_edits(len(ZIP))), min_size=1, max_size=4)
    ),
    st.booleans(),
    st.just(False),  # zip archives cannot be streamed
)


def fuzz(fmt: ArchiveFormat, examples: int, root: Path) -> None:
    cases = ZIP_CASES if fmt is ArchiveFormat.ZIP else tar_cases(fmt)

    @fuzz_settings(examples)
    @given(cases)
    def check(case: tuple[bytes, bool, bool]) -> None:
        data, threaded, stream = case
        run_case(root, fmt, data, threaded=threaded, stream=stream)

    check()


FORMATS = [ArchiveFormat.TAR_GZ, ArchiveFormat.TAR_ZST, ArchiveFormat.ZIP]


def test_pristine_archives_install(tmp_path: Path) -> None:
    """The fuzz starts from archives that extract cleanly."""
    for fmt in FORMATS:
        data = ZIP if fmt is ArchiveFormat.ZIP else archives.compress(TARS[fmt], fmt)
        dest = tmp_path / str(fmt)
        (tmp_path / f"a.{fmt}").write_bytes(data)
        extract_archive(tmp_path / f"a.{fmt}", dest, fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
        assert (dest / "lib/python3.12/os.py").read_bytes() == b"# os module\n" * 150
    assert len(HEADERS[ArchiveFormat.TAR_GZ]) > len(ENTRIES)  # GNU long-name headers
    assert len(HEADERS[ArchiveFormat.TAR_ZST]) > len(ENTRIES)  # pax headers
    assert len(ZIP_STRUCTURES) == 2 * (len(ENTRIES) - 1) + 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", FORMATS, ids=LAYOUTS.get)
def test_fuzz_quick(tmp_path: Path, fmt: ArchiveFormat) -> None:
    fuzz(fmt, QUICK_EXAMPLES, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", FORMATS, ids=LAYOUTS.get)
def test_fuzz(tmp_path: Path, fmt: ArchiveFormat) -> None:
    fuzz(fmt, EXAMPLES, tmp_path)


def test_deadline_interrupts_a_spinning_case() -> None:
    """The per-case deadline works, so a regression shows up as a failure, not a hung CI."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers")
    with pytest.raises(Hang), deadline(1):
        while True:
            pass


def test_deadline_leaves_an_outer_alarm_pending() -> None:
    """pytest-timeout's own alarm survives the per-case deadline."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers")
    outer = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        with deadline(5):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90 < left <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer)


# -- decompression bombs -------------------------------------------------------------------------


def test_zstd_frame_asking_for_a_huge_window_is_refused(tmp_path: Path) -> None:
    import io

    import zstandard

    params = zstandard.ZstdCompressionParameters(
        window_log=31, enable_ldm=True, write_content_size=False
    )
    buffer = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(
        buffer, closefd=False
    ) as writer:
        writer.write(archives.tar_bytes(ENTRIES))
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(ArchiveError, match="corrupt or truncated archive"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_ZST, layout=Layout.PBS_INSTALL_ONLY
        )


@pytest.mark.parametrize("fmt", [ArchiveFormat.TAR_ZST, ArchiveFormat.TAR_GZ], ids=["zst", "gz"])
def test_decompression_bomb_streams_in_bounded_memory(tmp_path: Path, fmt: ArchiveFormat) -> None:
    """64 MiB of zeros packed into a few KiB streams through in chunks, not all at once."""
    import tracemalloc

    zeros = bytes(64 << 20)
    tar = archives.tar_bytes([file("python/zeros", zeros)])
    del zeros
    archive = tmp_path / f"bomb.{fmt}"
    archive.write_bytes(archives.compress(tar, fmt))
    del tar
    assert archive.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        extract_archive(archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "d/zeros").stat().st_size == 64 << 20
    assert peak < 40 << 20, peak


def test_member_claiming_more_than_the_stream_holds_ends(tmp_path: Path) -> None:
    """A header promising 60 GiB over a short stream is a truncated archive, at once."""
    tar = bytearray(archives.tar_bytes([file("python/x", b"x" * 10)]))
    tar[124:136] = base256(60 << 30, 12)
    set_checksum(tar, 0)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archives.compress(bytes(tar), ArchiveFormat.TAR_GZ))
    with deadline(CASE_SECONDS), pytest.raises(ArchiveError, match="truncated"):
        extract_archive(
            archive, tmp_path / "d", fmt=ArchiveFormat.TAR_GZ, layout=Layout.PBS_INSTALL_ONLY
        )


def test_helpers() -> None:
    assert struct.unpack(">q", base256(-512, 8))[0] == -512
    assert octal(8, 12) == b"00000000010\0"


@pytest.mark.parametrize(
    ("fmt", "kind"), [(ArchiveFormat.TAR_GZ, "gzip"), (ArchiveFormat.TAR_BZ2, "bzip2")]
)
def test_an_archive_that_is_no_compressed_data_at_all_says_so(
    tmp_path: Path, fmt: ArchiveFormat, kind: str
) -> None:
    """Error-message audit: a web page saved as `.tar.gz` (its sha256 locked as is) was
    "corrupt or truncated archive (Error -4 Invalid gzip/zlib wrapper found)"."""
    archive = tmp_path / f"a.{fmt.value}"
    archive.write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>\n" * 20)
    with pytest.raises(ArchiveError) as info:
        extract_archive(archive, tmp_path / "d", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
    assert f"not {kind} data, as the file name says: the URL serves something else" in str(
        info.value
    )
    # Damaged after a good start is still what it was.
    good = bytearray(archives.compress(archives.tar_bytes(ENTRIES), fmt))
    good[len(good) // 2 :] = b"\xff" * (len(good) - len(good) // 2)
    archive.write_bytes(bytes(good))
    with pytest.raises(ArchiveError) as info:
        extract_archive(archive, tmp_path / "e", fmt=fmt, layout=Layout.PBS_INSTALL_ONLY)
    assert "as the file name says" not in str(info.value)
