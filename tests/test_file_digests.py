"""The archive cache keeps each archive's file digests, so a warm install hashes nothing twice.

An install writes ``archives/sha256/<hex>/.files-<layout>`` beside the cached archive: the
size and sha256 of every file it extracted. The next install of that archive records
those digests instead of hashing the files again. These tests show that the sidecar is
written, that it is really used (a forged digest reaches the record), and that a damaged,
hostile or unwritable sidecar never breaks an install or its record.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pylock.archive.writer import RecordEntry
from pylock.sync import records
from pylock.sync.cache import Cache
from tests.syncproject import PATIENCE, Build, Project

SIDECAR = ".files-pbs-install-only"
BIG = "lib/python3.12/big.bin"


def sidecar_path(project: Project, build: Build) -> Path:
    return project.archive(build).parent / SIDECAR


def record_bytes(project: Project, name: str) -> bytes:
    return (project.into / name / ".pylock" / "RECORD").read_bytes()


def recorded(project: Project, name: str) -> dict[str, RecordEntry]:
    return {e.path: e for e in records.read_record(project.into / name)}


def reinstall_fresh(project: Project) -> None:
    """Install again from the cache into an empty install directory."""
    shutil.rmtree(project.into)
    result = project.sync("--offline")
    assert result.code == 0, result.err


def forge(entries: dict[str, tuple[int, str]]) -> bytes:
    """A well-formed sidecar (right header and checksum) saying ``entries``."""
    return records.dump_digests(
        RecordEntry(path=path, size=size, sha256=sha256) for path, (size, sha256) in entries.items()
    )


def test_an_install_keeps_the_digests_of_what_it_extracted(
    installed: Project, app_a: Build
) -> None:
    known = records.load_digests(sidecar_path(installed, app_a).read_bytes())
    assert known is not None
    files = {e.path: (e.size, e.sha256) for e in recorded(installed, "app").values() if e.sha256}
    assert known == files
    assert BIG in known
    # The sidecar is no archive: the cache still lists exactly one entry, by its archive.
    entries = Cache(installed.cache).list()
    assert [e.filename for e in entries] == [app_a.filename]


def test_the_next_install_uses_them_and_records_the_same(installed: Project) -> None:
    first = record_bytes(installed, "app")
    reinstall_fresh(installed)
    assert record_bytes(installed, "app") == first
    assert installed.verify().code == 0


def test_the_digests_are_really_used_not_recomputed(installed: Project, app_a: Build) -> None:
    # Proof by forgery: a digest that no file has reaches the record only if trusted.
    known = records.load_digests(sidecar_path(installed, app_a).read_bytes())
    assert known is not None
    size, _ = known[BIG]
    known[BIG] = (size, "f" * 64)
    sidecar_path(installed, app_a).write_bytes(forge(known))
    reinstall_fresh(installed)
    assert recorded(installed, "app")[BIG].sha256 == "f" * 64
    # And verify, which hashes the tree, does not believe it.
    result = installed.verify()
    assert result.code == 1
    assert BIG in result.out + result.err


def test_reinstall_trusts_no_sidecar_and_repairs_it(installed: Project, app_a: Build) -> None:
    # A sidecar that passes every check but lies (a bug elsewhere, or tampering) makes
    # verify fail; `sync --reinstall`, which verify's hint names, must then not take
    # the same digests again.
    first = record_bytes(installed, "app")
    good = sidecar_path(installed, app_a).read_bytes()
    known = records.load_digests(good)
    assert known is not None
    size, _ = known[BIG]
    known[BIG] = (size, "f" * 64)
    sidecar_path(installed, app_a).write_bytes(forge(known))
    reinstall_fresh(installed)
    assert installed.verify().code == 1
    result = installed.sync("--reinstall", "--offline")
    assert result.code == 0, result.err
    assert record_bytes(installed, "app") == first
    assert installed.verify().code == 0
    assert sidecar_path(installed, app_a).read_bytes() == good


def test_a_digest_whose_size_does_not_fit_is_recomputed(installed: Project, app_a: Build) -> None:
    first = record_bytes(installed, "app")
    known = records.load_digests(sidecar_path(installed, app_a).read_bytes())
    assert known is not None
    size, _ = known[BIG]
    known[BIG] = (size + 1, "f" * 64)
    del known["share/zz-build-tag"]  # and a file the sidecar does not name at all
    sidecar_path(installed, app_a).write_bytes(forge(known))
    reinstall_fresh(installed)
    assert record_bytes(installed, "app") == first
    assert installed.verify().code == 0


def _hostile_sidecars(good: bytes) -> dict[str, bytes]:
    header, _, body = good.partition(b"\n")
    files = json.loads(body)
    big = next(i for i, item in enumerate(files) if item[0] == BIG)

    def resigned(text: bytes) -> bytes:
        return records._digests_header(text) + b"\n" + text

    def with_item(value: object) -> bytes:
        changed = list(files)
        changed[big] = value
        return resigned(json.dumps(changed).encode())

    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "no newline": header,
        "body changed, header not": header + b"\n" + body.replace(b'"', b"'", 1),
        "other version": good.replace(b"pylock-file-digests 1 ", b"pylock-file-digests 2 ", 1),
        "not json": resigned(b"\xff\xfe not json"),
        "an object": resigned(b'{"files": []}'),
        "endlessly nested": resigned(b"[" * 200_000 + b"]" * 200_000),
        "negative size": with_item([BIG, -1, "f" * 64]),
        "size as text": with_item([BIG, "1", "f" * 64]),
        "size as bool": with_item([BIG, True, "f" * 64]),
        "float size": with_item([BIG, 1.0, "f" * 64]),
        "short digest": with_item([BIG, 1, "f" * 63]),
        "upper-case digest": with_item([BIG, 1, "F" * 64]),
        "non-hex digest": with_item([BIG, 1, "g" * 64]),
        "digest as number": with_item([BIG, 1, 7]),
        "two values": with_item([BIG, 1]),
        "four values": with_item([BIG, 1, "f" * 64, "x"]),
        "a string item": with_item("abc"),
        "a list as path": with_item([[BIG], 1, "f" * 64]),
        "path twice": resigned(json.dumps([files[big], files[big]]).encode()),
    }


def test_hostile_sidecars_are_refused_by_the_reader(installed: Project, app_a: Build) -> None:
    good = sidecar_path(installed, app_a).read_bytes()
    assert records.load_digests(good) is not None
    for label, data in _hostile_sidecars(good).items():
        assert records.load_digests(data) is None, label


@pytest.mark.parametrize(
    "label",
    ["truncated", "body changed, header not", "endlessly nested", "negative size", "path twice"],
)
def test_an_install_over_a_damaged_sidecar_hashes_everything(
    installed: Project, app_a: Build, label: str
) -> None:
    first = record_bytes(installed, "app")
    path = sidecar_path(installed, app_a)
    path.write_bytes(_hostile_sidecars(path.read_bytes())[label])
    reinstall_fresh(installed)
    assert record_bytes(installed, "app") == first
    assert installed.verify().code == 0


def _endless(path: Path, kind: str) -> None:
    if kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "pipe":
        os.mkfifo(path)  # nobody ever writes to it: a blocking read would hang
    else:
        with open(path, "wb") as handle:
            handle.truncate(17 * 1024 * 1024)  # sparse: over the limit, with no disk used


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("device", marks=pytest.mark.skipif(os.name != "posix", reason="POSIX")),
        pytest.param("pipe", marks=pytest.mark.skipif(os.name != "posix", reason="POSIX")),
        "too big",
    ],
)
def test_a_sidecar_that_never_ends_is_not_read(installed: Project, app_a: Build, kind: str) -> None:
    path = sidecar_path(installed, app_a)
    first = record_bytes(installed, "app")
    path.unlink()
    _endless(path, kind)
    assert Cache(installed.cache).sidecar(app_a.sha256, SIDECAR) is None
    reinstall_fresh(installed)
    assert record_bytes(installed, "app") == first


def test_a_sidecar_that_cannot_be_written_costs_nothing_but_the_shortcut(
    sync_project: Project, app_a: Build
) -> None:
    # Injected fault: a directory where the sidecar goes, so the final rename fails.
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    assert sync_project.run("fetch", "--mirror", sync_project.mirror).code == 0
    sidecar_path(sync_project, app_a).mkdir()
    result = sync_project.sync()
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert sidecar_path(sync_project, app_a).is_dir()
    assert sync_project.verify().code == 0
    assert list((sync_project.cache / "tmp").glob("*.sidecar")) == []


def test_eviction_and_clean_take_the_sidecar_along(installed: Project, app_a: Build) -> None:
    directory = sidecar_path(installed, app_a).parent
    assert Cache(installed.cache).evict(app_a.sha256)
    assert not directory.exists()
    reinstall = installed.sync("--reinstall")
    assert reinstall.code == 0, reinstall.err
    assert sidecar_path(installed, app_a).is_file()
    assert installed.run("cache", "clean").code == 0
    assert not directory.exists()


def test_put_sidecar_only_writes_beside_a_cached_archive(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    sha256 = "a" * 64
    cache.put_sidecar(sha256, ".files-x", b"data")  # no such archive: nothing, no error
    assert not cache.archive_dir(sha256).exists()
    for name in ("files-x", "../.files-x", ".files/x", ".files\\x", ".", ".."):
        with pytest.raises(ValueError, match="not a sidecar name"):
            cache.put_sidecar(sha256, name, b"data")
        with pytest.raises(ValueError, match="not a sidecar name"):
            cache.sidecar(sha256, name)


def test_each_layout_has_its_own_sidecar() -> None:
    assert records.digests_sidecar("pbs-install-only") == SIDECAR
    assert records.digests_sidecar("pbs-full") != records.digests_sidecar("topdir")


def test_installs_racing_to_write_the_sidecar_leave_a_good_one(
    sync_project: Project, app_a: Build
) -> None:
    # Two processes install the same cached archive at once, each into its own directory,
    # and both write the sidecar (each through its own temporary file, then a rename).
    sync_project.lock(app_a)
    sync_project.serve(app_a)
    assert sync_project.run("fetch", "--mirror", sync_project.mirror).code == 0
    commands = [
        sync_project.command("sync", "--into", str(sync_project.root / f"into-{i}"), "--offline")
        for i in range(3)
    ]
    procs = [sync_project.popen(command) for command in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=PATIENCE)
        assert proc.returncode == 0, err
    firsts = {(sync_project.root / f"into-{i}/app/.pylock/RECORD").read_bytes() for i in range(3)}
    assert len(firsts) == 1
    assert records.load_digests(sidecar_path(sync_project, app_a).read_bytes()) is not None
    assert list((sync_project.cache / "tmp").glob("*.sidecar")) == []
    result = sync_project.sync("--offline")
    assert result.code == 0, result.err
    assert {record_bytes(sync_project, "app")} == firsts


def test_the_sidecar_round_trips_any_path() -> None:
    paths = [
        "plain/file.py",
        'a "quoted", comma\tpath',
        "line\nbreak\r",
        "non-ascii é ✓ 😀",
        "undecodable \udcff byte",
        "sha256=" + "0" * 64,
    ]
    entries = [
        RecordEntry(path=path, size=index, sha256=f"{index:064x}")
        for index, path in enumerate(paths)
    ]
    entries.append(RecordEntry(path="a/link", size=0, sha256=None, link="target"))
    data = records.dump_digests(entries)
    data.decode("ascii")  # whatever the paths, the file is plain ASCII
    known = records.load_digests(data)
    assert known == {path: (index, f"{index:064x}") for index, path in enumerate(paths)}
