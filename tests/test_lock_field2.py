"""The locking field report, second round: explicit flavors that the bundled index holds
only for old versions (#6), `outdated` and the request's flavor fallbacks (#7), and which
side of a merge conflict recovery keeps (#8)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from pylock.cli import main
from pylock.config import Config, PythonRequest, loads_config
from pylock.index.snapshot import load_bundled
from pylock.lockfile import Artifact, loads, make_lock
from pylock.outdated import find_outdated
from pylock.platforms import Platform
from pylock.resolve import lock_is_fresh, pick_recovered, resolve, resolve_python
from pylock.versions import Flavor
from tests.indexdata import index_of, locked_python, pbs
from tests.upstream_server import LINUX as LINUX_TRIPLE
from tests.upstream_server import UpstreamServer, pbs_install_only, pbs_name, sha256

LINUX, MAC = "linux-x86_64-gnu", "macos-aarch64"
HOST = Platform.parse(LINUX)


def run(project: Path, *args: str) -> int:
    return main(["--project", str(project), *args])


def write_config(project: Path, *lines: str) -> None:
    body = "\n".join(["[python.a]", *lines, 'platforms = ["linux-x86_64-gnu"]'])
    (project / "pythons.toml").write_text(body + "\n", encoding="utf-8")


# -- #6: an explicit flavor the bundled index holds only for old versions -----------------------

#: What the bundled snapshot has for CPython 3.12 on linux-x86_64-gnu: install_only up to
#: 3.12.3 (older releases), install_only_stripped after it.
OLD_INSTALL_ONLY, NEWEST_312 = "3.12.3+20240415", "3.12.14+20260814"


def test_an_explicit_flavor_that_locks_an_older_version_warns(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, 'version = "3.12"', 'flavor = "install_only"')
    assert run(project, "lock") == 0
    out, err = capsys.readouterr()
    assert out == f"a: added cpython {OLD_INSTALL_ONLY}\n"
    assert err == (
        f"pylock: warning: a: locked cpython {OLD_INSTALL_ONLY} install_only, an older "
        f"version than the index has in another flavor: {NEWEST_312} exists as "
        "install_only_stripped, but the bundled index lists most builds in one flavor only: "
        'to look for it as install_only, set build = "20260814" in [python.a] and run '
        "`pylock lock --refresh` (it reads every flavor of a pinned release), or choose "
        "another flavor\n"
    )
    # No hash is invented: the lock holds the install_only build the index lists.
    entry = loads((project / "pythons.lock").read_text(encoding="utf-8")).pythons[0]
    assert (entry.version, entry.flavor) == ("3.12.3", Flavor.INSTALL_ONLY)


@pytest.mark.parametrize(
    "lines",
    [
        ['version = "3.12"'],  # the default flavor falls back to every other one
        ['version = "3.12.3"', 'flavor = "install_only"'],  # nothing newer matches
    ],
)
def test_no_warning_when_no_newer_version_matches_in_another_flavor(
    project: Path, capsys: pytest.CaptureFixture[str], lines: list[str]
) -> None:
    write_config(project, *lines)
    assert run(project, "lock") == 0
    assert capsys.readouterr().err == ""


def test_the_warning_goes_through_resolutions_warning_channel() -> None:
    index = index_of(
        *(pbs("3.13.5", "20250708", p, flavor=Flavor.FULL) for p in (LINUX, MAC)),
        *(pbs("3.13.9", "20251014", p) for p in (LINUX, MAC)),
        pbs("3.13.10", "20251101", LINUX),  # not on every platform: not lockable
    )
    request = PythonRequest(name="app", version="3.13", flavor=Flavor.FULL, platforms=(LINUX, MAC))
    warnings: list[str] = []
    entry = resolve_python(request, index, platforms=(LINUX, MAC), warn=warnings.append)
    assert (entry.version, entry.flavor) == ("3.13.5", Flavor.FULL)
    [warning] = warnings
    assert warning.startswith(
        "app: locked cpython 3.13.5+20250708 full, an older version than the index has in "
        "another flavor: 3.13.9+20251014 exists as install_only_stripped"
    )


def test_no_build_in_the_flavor_names_the_newest_and_refresh(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, 'version = "3.13"', 'flavor = "install_only"')
    assert run(project, "lock") == 1
    err = capsys.readouterr().err
    assert "comes in flavor 'install_only' or 'full'" in err
    [hint] = [line for line in err.splitlines() if line.startswith("pylock: hint:")]
    assert hint.endswith(
        "; 3.13.15+20260814 exists as install_only_stripped, but the bundled index lists most "
        "builds in one flavor only: to look for it as install_only, set "
        'build = "20260814" in [python.a] and run `pylock lock --refresh` (it reads every '
        "flavor of a pinned release)"
    )


def test_the_suggested_pin_and_refresh_finds_the_flavor(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Upstream publishes every flavor of release 20260814; the snapshot lists one of them.
    body = pbs_install_only("3.12.14")
    name = pbs_name("3.12.14", "20260814", LINUX_TRIPLE, "install_only")
    upstream.add_pbs_release("20260814", "2026-08-14T09:00:00Z", {name: body})
    write_config(project, 'version = "3.12"', 'flavor = "install_only"', 'build = "20260814"')
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache")}
    args = ["--project", str(project), "lock", "--refresh", *upstream.rewrite_args()]
    assert main(args, environ=environ) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("a: added cpython 3.12.14+20260814\n", "")
    entry = loads((project / "pythons.lock").read_text(encoding="utf-8")).pythons[0]
    assert entry.flavor is Flavor.INSTALL_ONLY
    assert entry.artifacts[0].sha256 == sha256(body)


# -- #7: `outdated` counts the flavors the request accepts, as `lock --upgrade` does ------------


def field_text(flavor_line: str, *, old: str, ft: str) -> str:
    """The field report's project: a 3.9 and a free-threaded 3.13, for linux-x86_64-gnu."""
    return (
        f'[defaults]\nplatforms = ["{LINUX}"]\n{flavor_line}\n'
        f'[python.old]\nversion = "{old}"\n'
        f'[python.ft]\nversion = "{ft}"\nvariant = "freethreaded"\n'
    )


def field_config(flavor_line: str, *, old: str, ft: str) -> Config:
    return loads_config(field_text(flavor_line, old=old, ft=ft))


@pytest.mark.parametrize("flavor_line", ["", 'flavor = "install_only"', 'flavor = "full"'])
def test_outdated_reports_what_lock_upgrade_would_pick(flavor_line: str) -> None:
    index = load_bundled()
    # Locked as `full`, the one flavor the bundled index has these old builds in.
    pinned = field_config(flavor_line, old="3.9.0", ft="3.13.5")
    lock = resolve(pinned, index, previous=None, upgrade=False, host_platform=HOST)
    assert {p.name: (p.label, p.flavor) for p in lock.pythons} == {
        "old": ("cpython 3.9.0+20201020", Flavor.FULL),
        "ft": ("cpython 3.13.5+20250723 (freethreaded)", Flavor.FULL),
    }
    # Widened, the same lock still fits; --upgrade moves it, and outdated must say where.
    widened = field_config(flavor_line, old="3.9", ft="3.13")
    assert lock_is_fresh(attrs.evolve(widened, digest=lock.config_digest), lock)
    upgraded = resolve(widened, index, previous=lock, upgrade=True, host_platform=HOST)
    reported = {e.current.name: e.newer_version for e in find_outdated(lock, index, widened)}
    for python in upgraded.pythons:
        newer = reported[python.name]
        assert newer is not None, python.name
        assert (newer.version, newer.build) == (python.version, python.build)
    if not flavor_line:  # the field report's case: every flavor counts
        assert {n: f"{c.version}+{c.build}" for n, c in reported.items() if c} == {
            "old": "3.9.25+20251031",
            "ft": "3.13.15+20260814",
        }


def test_outdated_without_pythons_toml_keeps_the_locked_flavors_family() -> None:
    index = index_of(
        pbs("3.9.0", "20201020", LINUX, flavor=Flavor.FULL),
        pbs("3.9.7", "20211017", LINUX, flavor=Flavor.FULL),
        pbs("3.9.25", "20251031", LINUX),
    )
    artifact = Artifact(platform=LINUX, url="https://x/old.tar.zst", sha256="ab" * 32)
    entry = locked_python("old", "3.9.0", "20201020", [artifact], flavor=Flavor.FULL)
    lock = make_lock([entry], config_digest="sha256:" + "0" * 64)
    [alone] = find_outdated(lock, index)
    assert alone.newer_version is not None and alone.newer_version.version == "3.9.7"
    [requested] = find_outdated(lock, index, field_config("", old="3.9", ft="3.13"))
    assert requested.newer_version is not None and requested.newer_version.version == "3.9.25"


# -- #8: merge-conflict recovery keeps the later published build ----------------------------------


def test_recovery_orders_builds_by_publication_as_resolution_does() -> None:
    # Release 20250323 was published after 20260901 (the field report's out-of-order tags).
    index = index_of(
        pbs("3.13.16", "20260901", LINUX),
        pbs("3.13.16", "20250323", LINUX),
        tag_dates={"20260901": "2026-09-01", "20250323": "2026-09-05"},
    )
    config = loads_config(f'[python.app]\nversion = "3.13"\nplatforms = ["{LINUX}"]\n')
    resolved = resolve(config, index, previous=None, upgrade=True, host_platform=HOST)
    [newest] = resolved.pythons
    assert newest.build == "20250323"
    older = resolve_python(
        attrs.evolve(config.pythons[0], build="20260901"), index, platforms=(LINUX,)
    )
    for sides in ([older, newest], [newest, older]):  # ours/theirs in either order
        [kept] = pick_recovered(config, sides, host_platform=HOST, index=index)
        assert kept.build == "20250323"
    # Without an index, the date a tag names is all there is to go by.
    [kept] = pick_recovered(config, [newest, older], host_platform=HOST)
    assert kept.build == "20260901"


def test_lock_recovers_the_later_published_build_from_a_conflict(
    project: Path, upstream: UpstreamServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The field report's repro: release 20250323 is published after 20260901 (and latest).
    for tag, published in (("20260901", "2026-09-01"), ("20250323", "2026-09-05")):
        name = pbs_name("3.13.16", tag, LINUX_TRIPLE)
        upstream.add_pbs_release(tag, f"{published}T09:00:00Z", {name: pbs_install_only("3.13.16")})
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache")}
    lock_path = project / "pythons.lock"

    def lock(*args: str) -> str:
        command = ["--project", str(project), "lock", "--refresh", *upstream.rewrite_args()]
        assert main([*command, *args], environ=environ) == 0
        return lock_path.read_text(encoding="utf-8")

    write_config(project, 'version = "3.13"', 'build = "20260901"')
    ours = lock()
    write_config(project, 'version = "3.13"')
    theirs = lock("--upgrade")
    assert loads(theirs).pythons[0].build == "20250323"  # resolution's newest build
    head = ours.index("[[python]]")
    lock_path.write_text(
        f"{ours[:head]}<<<<<<< HEAD\n{ours[head:]}=======\n"
        f"{theirs[theirs.index('[[python]]') :]}>>>>>>> other\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    after = lock()
    assert loads(after).pythons[0].build == "20250323"
    assert "kept a (cpython 3.13.16+20250323) from both sides" in capsys.readouterr().err


def test_cli_outdated_counts_the_requests_flavors(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"PYLOCK_CACHE_DIR": str(project.parent / "cache")}
    config = project / "pythons.toml"
    config.write_text(field_text("", old="3.9.0", ft="3.13.5"), encoding="utf-8")
    assert main(["--project", str(project), "lock"], environ=environ) == 0
    config.write_text(field_text("", old="3.9", ft="3.13"), encoding="utf-8")
    capsys.readouterr()
    assert main(["--project", str(project), "outdated", "--offline"], environ=environ) == 0
    assert capsys.readouterr().out == (
        "ft: cpython 3.13.5+20250723 (freethreaded) -> 3.13.15+20260814 (newer version)\n"
        "old: cpython 3.9.0+20201020 -> 3.9.25+20251031 (newer version)\n"
    )
    # A project that ships only its lock: the locked flavor's family, as before.
    config.unlink()
    assert main(["--project", str(project), "outdated", "--offline"], environ=environ) == 0
    assert "old: cpython 3.9.0+20201020 -> 3.9.7+20211017" in capsys.readouterr().out
    # A pythons.toml that does not read (being edited): a warning, and the same as above.
    config.write_text("[python.old]\nversion = 3.9\n", encoding="utf-8")
    assert main(["--project", str(project), "outdated", "--offline"], environ=environ) == 0
    captured = capsys.readouterr()
    assert "old: cpython 3.9.0+20201020 -> 3.9.7+20211017" in captured.out
    assert "pylock: warning: pythons.toml cannot be read" in captured.err
    assert "Traceback" not in captured.err
