"""`pylock diff`: comparing locks, the three renderers, and reading old locks from git."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from pylock.cli import main
from pylock.diff import (
    JSON_FORMAT_VERSION,
    MARKDOWN_MARKER,
    Change,
    PlatformChange,
    diff_locks,
    empty_lock,
    render_json,
    render_markdown,
    render_text,
    summary_lines,
)
from pylock.errors import PylockError, UsageError
from pylock.lockfile import Artifact, LockedPython, LockFile, dumps, make_lock
from pylock.review import read_lock_at_ref
from pylock.versions import Flavor, Implementation, Variant
from tests.indexdata import locked_python

PBS = "https://github.com/astral-sh/python-build-standalone/releases/download"
TRIPLES = {
    "linux-x86_64-gnu": "x86_64-unknown-linux-gnu",
    "linux-aarch64-gnu": "aarch64-unknown-linux-gnu",
    "macos-aarch64": "aarch64-apple-darwin",
}
MB = 1024 * 1024


def sha(seed: str) -> str:
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()


def cpython(
    name: str,
    version: str,
    build: str,
    *,
    platforms: tuple[str, ...] = ("linux-x86_64-gnu", "macos-aarch64"),
    sizes: dict[str, int] | None = None,
    variant: Variant = Variant.DEFAULT,
    flavor: Flavor = Flavor.INSTALL_ONLY_STRIPPED,
    seed: str = "",
    default: bool = False,
) -> LockedPython:
    artifacts = []
    for key in platforms:
        kind = flavor if variant is Variant.DEFAULT else f"{variant}-{flavor}"
        filename = f"cpython-{version}%2B{build}-{TRIPLES[key]}-{kind}.tar.gz"
        artifacts.append(
            Artifact(
                platform=key,
                url=f"{PBS}/{build}/{filename}",
                sha256=sha(f"{version}{build}{key}{variant}{flavor}{seed}"),
                size=(sizes or {}).get(key, 30 * MB),
            )
        )
    return locked_python(
        name, version, build, artifacts, variant=variant, flavor=flavor, default=default
    )


def pypy(name: str, version: str, build: str) -> LockedPython:
    url = f"https://downloads.python.org/pypy/pypy{version[:4]}-v{build}-linux64.tar.bz2"
    return LockedPython(
        name=name,
        implementation=Implementation.PYPY,
        version=version,
        build=build,
        artifacts=(Artifact(platform="linux-x86_64-gnu", url=url, sha256=sha(url), size=None),),
    )


def lock(*pythons: LockedPython) -> LockFile:
    return make_lock(pythons, config_digest="sha256:" + "1" * 64)


# -- the model ---------------------------------------------------------------------------------


def test_identical_locks_have_no_changes() -> None:
    a = lock(cpython("app", "3.13.9", "20251014"), pypy("pp", "3.11.13", "7.3.20"))
    diff = diff_locks(a, a)
    assert not diff.has_changes
    assert [p.change for p in diff.pythons] == [Change.UNCHANGED, Change.UNCHANGED]
    assert summary_lines(diff) == []
    assert diff.warnings == ()
    assert render_text(diff) == "No interpreter changes (2 unchanged).\n"


def test_upgrade_added_removed_and_sizes() -> None:
    old = lock(
        cpython("app", "3.13.5", "20250708", sizes={"linux-x86_64-gnu": 30 * MB}),
        cpython("legacy", "3.12.11", "20251007"),
        cpython("same", "3.11.14", "20251007"),
    )
    new = lock(
        cpython(
            "app",
            "3.13.9",
            "20251014",
            sizes={"linux-x86_64-gnu": 30 * MB + 1_258_291, "macos-aarch64": 29 * MB},
        ),
        cpython("nogil", "3.14.0", "20251014", variant=Variant.FREETHREADED),
        cpython("same", "3.11.14", "20251007"),
    )
    diff = diff_locks(old, new)
    by_name = {p.name: p for p in diff.pythons}
    assert {name: p.change for name, p in by_name.items()} == {
        "app": Change.UPGRADED,
        "legacy": Change.REMOVED,
        "nogil": Change.ADDED,
        "same": Change.UNCHANGED,
    }
    deltas = {p.platform: p.size_delta for p in by_name["app"].platforms}
    assert deltas == {"linux-x86_64-gnu": 1_258_291, "macos-aarch64": -MB}
    assert summary_lines(diff) == [
        "app: cpython 3.13.5+20250708 -> 3.13.9+20251014",
        "legacy: removed cpython 3.12.11+20251007",
        "nogil: added cpython 3.14.0+20251014 (freethreaded)",
    ]
    text = render_text(diff)
    assert text.splitlines() == [
        "app: cpython 3.13.5+20250708 -> 3.13.9+20251014 on linux-x86_64-gnu, macos-aarch64 "
        "(linux-x86_64-gnu +1.2 MiB, macos-aarch64 -1.0 MiB)",
        "legacy: removed cpython 3.12.11+20251007",
        "nogil: added cpython 3.14.0+20251014 (freethreaded) on linux-x86_64-gnu, macos-aarch64",
        "1 changed, 1 added, 1 removed, 1 unchanged",
    ]
    assert diff.counts() == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}


def test_downgrade_rebuild_variant_flavor_and_platforms() -> None:
    old = lock(
        cpython("down", "3.13.9", "20251014"),
        cpython("rebuilt", "3.12.11", "20250818"),
        cpython("var", "3.14.0", "20251014"),
        cpython("flav", "3.13.9", "20251014", flavor=Flavor.INSTALL_ONLY),
        cpython("plat", "3.13.9", "20251014", platforms=("linux-x86_64-gnu", "macos-aarch64")),
    )
    new = lock(
        cpython("down", "3.13.5", "20250708"),
        cpython("rebuilt", "3.12.11", "20251007"),
        cpython("var", "3.14.0", "20251014", variant=Variant.FREETHREADED),
        cpython("flav", "3.13.9", "20251014", flavor=Flavor.INSTALL_ONLY_STRIPPED),
        cpython("plat", "3.13.9", "20251014", platforms=("linux-aarch64-gnu", "linux-x86_64-gnu")),
    )
    diff = diff_locks(old, new)
    by_name = {p.name: p for p in diff.pythons}
    assert by_name["plat"].added_platforms == ("linux-aarch64-gnu",)
    assert by_name["plat"].removed_platforms == ("macos-aarch64",)
    assert {name: p.change for name, p in by_name.items()} == {
        "down": Change.DOWNGRADED,
        "rebuilt": Change.REBUILT,
        "var": Change.CHANGED,
        "flav": Change.CHANGED,
        "plat": Change.CHANGED,
    }
    assert summary_lines(diff) == [
        "down: downgraded cpython 3.13.9+20251014 -> 3.13.5+20250708",
        "flav: cpython 3.13.9+20251014, flavor install_only -> install_only_stripped",
        "plat: cpython 3.13.9+20251014, platforms +linux-aarch64-gnu -macos-aarch64",
        "rebuilt: cpython 3.12.11+20250818 -> 3.12.11+20251007",
        "var: cpython 3.14.0+20251014, variant default -> freethreaded",
    ]
    # A changed flavor means different files, not a re-published one.
    assert diff.warnings == ()


def test_implementation_switch_and_default_flag() -> None:
    old = lock(pypy("py", "3.11.13", "7.3.20"), cpython("app", "3.13.9", "20251014"))
    new = lock(
        cpython("py", "3.11.14", "20251014"), cpython("app", "3.13.9", "20251014", default=True)
    )
    assert summary_lines(diff_locks(old, new)) == [
        "app: cpython 3.13.9+20251014, now the default",
        "py: pypy 3.11.13+7.3.20 -> cpython 3.11.14+20251014, platforms +macos-aarch64, "
        "linux-x86_64-gnu now from github.com/astral-sh/python-build-standalone",
    ]


def test_a_switch_to_another_origin_names_its_platforms_once() -> None:
    """Review: `pylock diff` of cpython -> pypy listed the platforms twice ("on A, B, A, B
    now from downloads.python.org"), as if the entry had twice as many."""
    old = lock(cpython("app", "3.11.14", "20251014", platforms=("linux-x86_64-gnu",)))
    new = lock(pypy("app", "3.11.13", "7.3.20"))
    assert render_text(diff_locks(old, new)).splitlines()[0] == (
        "app: cpython 3.11.14+20251014 -> pypy 3.11.13+7.3.20 on linux-x86_64-gnu "
        "now from downloads.python.org"
    )


def test_republished_artifact_is_a_loud_warning() -> None:
    old = lock(cpython("app", "3.13.9", "20251014"))
    new = lock(cpython("app", "3.13.9", "20251014", seed="tampered"))
    diff = diff_locks(old, new)
    (app,) = diff.pythons
    assert app.change is Change.REPUBLISHED
    assert app.republished_platforms == ("linux-x86_64-gnu", "macos-aarch64")
    assert {p.change for p in app.platforms} == {PlatformChange.REPUBLISHED}
    assert [(w.name, w.platform, w.kind) for w in diff.warnings] == [
        ("app", "linux-x86_64-gnu", "republished"),
        ("app", "macos-aarch64", "republished"),
    ]
    text = render_text(diff).splitlines()
    # Warnings come first so that nobody scrolls past them.
    assert text[0].startswith("WARNING: app: the linux-x86_64-gnu artifact changed its sha256")
    assert "check it before merging" in text[0]
    assert text[2] == (
        "app: cpython 3.13.9+20251014, re-published on linux-x86_64-gnu, macos-aarch64"
    )
    md = render_markdown(diff)
    assert "> [!WARNING]" in md
    assert md.index("[!WARNING]") < md.index("| Interpreter |")
    assert "**⚠ republished**" in md
    document = json.loads(render_json(diff))
    assert [w["kind"] for w in document["warnings"]] == ["republished", "republished"]


def test_one_platform_republished_among_changes() -> None:
    base = cpython("app", "3.13.9", "20251014")
    swapped = Artifact(
        platform="macos-aarch64",
        url=base.artifacts[1].url,
        sha256=sha("evil"),
        size=base.artifacts[1].size,
    )
    new = attrs.evolve(base, artifacts=(base.artifacts[0], swapped))
    diff = diff_locks(lock(base), lock(new))
    (app,) = diff.pythons
    assert [p.change for p in app.platforms] == [
        PlatformChange.UNCHANGED,
        PlatformChange.REPUBLISHED,
    ]
    assert [w.platform for w in diff.warnings] == ["macos-aarch64"]


def test_edits_that_a_new_label_used_to_hide_are_warned_about() -> None:
    """Review attack: a hand-made "upgrade" (version and build bumped, the old archives left
    in place), a swapped file at the same URL under a bumped build, a download moved to
    another host along with a new version, and one file given two sizes all read as
    ordinary changes, with no warning."""
    base = cpython("app", "3.13.5", "20250723")
    relabelled = attrs.evolve(base, version="3.13.15", build="20260814")
    diff = diff_locks(lock(base), lock(relabelled))
    assert diff.pythons[0].change is Change.UPGRADED
    assert [(w.platform, w.kind) for w in diff.warnings] == [
        ("linux-x86_64-gnu", "relabelled"),
        ("macos-aarch64", "relabelled"),
    ]
    assert "the entry now says cpython 3.13.15+20260814 where it said cpython 3.13.5+20250723" in (
        diff.warnings[0].message
    )
    assert render_text(diff).startswith("WARNING: app: the linux-x86_64-gnu artifact is the same")

    first = base.artifacts[0]
    swapped = attrs.evolve(first, sha256=sha("evil"))
    rebuilt = attrs.evolve(base, build="20250724", artifacts=(swapped, *base.artifacts[1:]))
    diff = diff_locks(lock(base), lock(rebuilt))
    assert [(w.platform, w.kind) for w in diff.warnings] == [
        ("linux-x86_64-gnu", "republished"),
        ("macos-aarch64", "relabelled"),  # the other platform's file was left as it was
    ]
    assert "at the same URL" in diff.warnings[0].message

    elsewhere = cpython("app", "3.13.99", "20991231")
    hosted = attrs.evolve(
        elsewhere,
        artifacts=tuple(
            attrs.evolve(a, url=a.url.replace("github.com", "evil.example"))
            for a in elsewhere.artifacts
        ),
    )
    diff = diff_locks(lock(base), lock(hosted))
    assert summary_lines(diff) == [
        "app: cpython 3.13.5+20250723 -> 3.13.99+20991231, "
        "linux-x86_64-gnu, macos-aarch64 now from evil.example"
    ]
    md = render_markdown(diff)
    assert "upgraded<br><sub>linux-x86&#95;64-gnu, macos-aarch64 now from evil.example</sub>" in md

    flavored = attrs.evolve(base, flavor=Flavor.INSTALL_ONLY)
    (warning, _) = diff_locks(lock(base), lock(flavored)).warnings
    assert (
        "now says cpython 3.13.5+20250723, install_only where it said cpython "
        "3.13.5+20250723, install_only_stripped:" in warning.message
    )

    resized = attrs.evolve(base, artifacts=(attrs.evolve(first, size=1), *base.artifacts[1:]))
    diff = diff_locks(lock(base), lock(resized))
    assert [(w.platform, w.kind) for w in diff.warnings] == [("linux-x86_64-gnu", "resized")]
    assert f"({first.size} -> 1 bytes)" in diff.warnings[0].message
    assert "the same sha256 with another size" in render_markdown(diff)
    # A size newly known is no second size.
    unsized = attrs.evolve(base, artifacts=(attrs.evolve(first, size=None), *base.artifacts[1:]))
    assert diff_locks(lock(unsized), lock(base)).warnings == ()


def test_markdown_says_what_the_build_cells_cannot_show() -> None:
    """Review attack: a moved host, a changed URL or size, or a new default flag gave a row
    saying "changed" between identical Before and After cells."""
    base = cpython("app", "3.13.9", "20251014")
    default = attrs.evolve(base, default=True)
    first = base.artifacts[0]
    moved = attrs.evolve(
        base, artifacts=(attrs.evolve(first, url=first.url + "?x"), *base.artifacts[1:])
    )
    for new, note in ((default, "now the default"), (moved, "URL changed on linux-x86&#95;64-gnu")):
        md = render_markdown(diff_locks(lock(base), lock(new)))
        assert f"| changed<br><sub>{note}</sub> |" in md


def test_markdown_comparing_line_shows_hostile_labels_escaped() -> None:
    diff = diff_locks(lock(cpython("app", "3.13.9", "20251014")), lock())
    md = render_markdown(diff, old_label="x\u202eabc.lock", new_label="a\nb")
    assert "\u202e" not in md
    assert "Comparing x&#92;u202eabc.lock → a&#92;nb." in md


def test_a_new_build_changes_hashes_without_warning() -> None:
    diff = diff_locks(
        lock(cpython("app", "3.13.9", "20251014")), lock(cpython("app", "3.13.9", "20251015"))
    )
    assert diff.warnings == ()
    assert {p.change for p in diff.pythons[0].platforms} == {PlatformChange.CHANGED}


def test_url_or_size_only_change_is_reported_not_warned() -> None:
    base = cpython("app", "3.13.9", "20251014")
    moved = attrs.evolve(
        base,
        artifacts=tuple(
            attrs.evolve(a, url=a.url.replace("%2B", "+"), size=None) for a in base.artifacts
        ),
    )
    diff = diff_locks(lock(base), lock(moved))
    assert diff.warnings == ()
    platforms = ", ".join(p.platform for p in diff.pythons[0].platforms)
    assert summary_lines(diff) == [f"app: cpython 3.13.9+20251014, URL changed on {platforms}"]
    # The size became unknown: there is no delta to show.
    assert all(p.size_delta is None for p in diff.pythons[0].platforms)
    # Review: a download moved to another host must show, with the platform.
    first = base.artifacts[0]
    hosted = attrs.evolve(first, url=first.url.replace("github.com", "evil.example"))
    elsewhere = attrs.evolve(base, artifacts=(hosted, *base.artifacts[1:]))
    assert summary_lines(diff_locks(lock(base), lock(elsewhere))) == [
        f"app: cpython 3.13.9+20251014, {first.platform} now from evil.example"
    ]
    resized = attrs.evolve(base, artifacts=(attrs.evolve(first, size=1), *base.artifacts[1:]))
    assert summary_lines(diff_locks(lock(base), lock(resized))) == [
        f"app: cpython 3.13.9+20251014, size changed on {first.platform}"
    ]


def test_a_direct_url_entry_whose_flavor_becomes_unnamed_still_says_what_changed() -> None:
    """A url entry locked with and without its sha256 recorded a flavor once and none the
    other time: the line named no change at all ("inhouse: cpython 3.12.9", field test 6)."""
    named = attrs.evolve(cpython("inhouse", "3.12.9", "20250101"), build=None)
    unnamed = attrs.evolve(named, flavor=None)
    for old, new in ((named, unnamed), (unnamed, named)):
        assert summary_lines(diff_locks(lock(old), lock(new))) == [
            "inhouse: cpython 3.12.9, artifact details changed"
        ]


def test_against_an_empty_lock_everything_is_added() -> None:
    new = lock(cpython("a", "3.13.9", "20251014"), pypy("b", "3.11.13", "7.3.20"))
    diff = diff_locks(empty_lock(), new)
    assert [p.change for p in diff.pythons] == [Change.ADDED, Change.ADDED]
    assert diff_locks(new, empty_lock()).counts()["removed"] == 2


def test_unparseable_versions_do_not_crash() -> None:
    old = lock(attrs.evolve(cpython("x", "3.13.9", "1"), version="corp-build"))
    new = lock(attrs.evolve(cpython("x", "3.13.9", "1"), version="corp-build-2"))
    diff = diff_locks(old, new)
    assert diff.pythons[0].change is Change.CHANGED
    assert summary_lines(diff) == ["x: cpython corp-build+1 -> corp-build-2+1"]


# -- markdown ---------------------------------------------------------------------------------


def test_markdown_table_links_upstream_release_pages() -> None:
    old = lock(cpython("app", "3.13.5", "20250708"), pypy("pp", "3.10.16", "7.3.19"))
    graal_old = LockedPython(
        name="graal",
        implementation=Implementation.GRAALPY,
        version="3.11.7",
        build="24.2.1",
        artifacts=(
            Artifact(
                platform="linux-x86_64-gnu",
                url="https://github.com/oracle/graalpython/releases/download/graal-24.2.1/g.tar.gz",
                sha256=sha("g1"),
            ),
        ),
    )
    graal_new = attrs.evolve(
        graal_old,
        version="3.12.0",
        build="25.2.4",
        artifacts=(attrs.evolve(graal_old.artifacts[0], sha256=sha("g2")),),
    )
    new = lock(cpython("app", "3.13.9", "20251014"), pypy("pp", "3.11.13", "7.3.20"), graal_new)
    md = render_markdown(
        diff_locks(lock(*old.pythons, graal_old), new),
        old_label="origin/main:pythons.lock",
        new_label="pythons.lock",
    )
    lines = md.splitlines()
    assert lines[0] == MARKDOWN_MARKER
    assert "Comparing origin/main:pythons.lock → pythons.lock." in md
    header = lines.index("| Interpreter | Change | Before | After | Platforms | Size |")
    rows = lines[header + 2 : header + 5]
    assert rows[0].startswith("| `app` | upgraded | [cpython 3.13.5+20250708<br><sub>")
    assert "(https://github.com/astral-sh/python-build-standalone/releases/tag/20251014)" in rows[0]
    assert "(https://github.com/oracle/graalpython/releases/tag/graal-25.2.4)" in rows[1]
    assert "(https://pypy.org/download.html)" in rows[2]
    assert rows[0].count("|") == 7
    assert lines[-1] == "3 changed, 0 added, 0 removed, 0 unchanged."


def test_markdown_escapes_hostile_lock_values() -> None:
    evil = attrs.evolve(
        cpython("app", "3.13.9", "20251014"),
        version="3.13|<img src=x onerror=alert(1)>\n| injected |",
        build="x](javascript:alert(1))",
    )
    md = render_markdown(diff_locks(empty_lock(), lock(evil)))
    row = next(line for line in md.splitlines() if line.startswith("| `app`"))
    # Exactly the table's own 7 pipes: nothing in the values splits a cell or a row.
    assert row.count("|") == 7
    assert "<img" not in md and "](javascript" not in md
    assert "\n| injected" not in md


def test_markdown_of_a_huge_change_fits_in_a_pull_request_comment() -> None:
    """Review: 750 changed entries made a 277 KB comment, which GitHub refuses (65,536
    characters), so the example workflow's comment step failed."""
    names = [f"app{i:04d}" for i in range(1500)]
    old = lock(*(cpython(n, "3.13.9", "20251014") for n in names))
    new = lock(*(cpython(n, "3.13.10", "20251120") for n in names))
    diff = diff_locks(old, new)
    text = render_markdown(diff)
    assert len(text) <= 65_536
    assert "more changed interpreters, left out" in text
    assert "1500 changed, 0 added, 0 removed, 0 unchanged." in text
    shown = text.count("| `app")
    assert 100 < shown < 1500
    assert f"… and {1500 - shown} more changed interpreters" in text
    # A small change is whole.
    few = render_markdown(diff_locks(lock(cpython("a", "3.13.9", "20251014")), lock()))
    assert "left out" not in few
    # Re-published artifacts are warned about by name, the first fifty of them.
    base = [cpython(n, "3.13.9", "20251014") for n in names[:60]]
    rehashed = [
        attrs.evolve(p, artifacts=tuple(attrs.evolve(a, sha256="e" * 64) for a in p.artifacts))
        for p in base
    ]
    warned = render_markdown(diff_locks(lock(*base), lock(*rehashed)))
    listed = warned.count("> - `app")
    assert listed == 50
    assert f"> - and {len(diff_locks(lock(*base), lock(*rehashed)).warnings) - 50} more" in warned


def test_a_huge_origin_does_not_push_the_other_rows_out_of_the_comment() -> None:
    """Review: a hostile lock moved one entry to a GitHub "owner" of 70,000 characters. Its
    row alone overran the comment's budget, and the table left out every row, the entry
    that moved to another repository among them."""
    old = lock(cpython("aaa", "3.13.9", "20251014"), cpython("app", "3.13.9", "20251014"))
    bloated, moved = (p.artifacts[0].url for p in old.pythons)
    huge = bloated.replace("/astral-sh/", "/" + "x" * 70_000 + "/")
    elsewhere = moved.replace("/astral-sh/", "/someone/")
    new = lock(
        *(
            attrs.evolve(p, artifacts=(attrs.evolve(p.artifacts[0], url=url), *p.artifacts[1:]))
            for p, url in zip(old.pythons, (huge, elsewhere), strict=True)
        )
    )
    diff = diff_locks(old, new)
    md = render_markdown(diff)
    assert "left out" not in md
    assert "| `aaa` |" in md
    assert "now from github.com/someone/python-build-standalone" in md
    assert len(md) < 5_000
    text = render_text(diff)
    assert max(len(line) for line in text.splitlines()) < 500
    assert "now from github.com/xxx" in text and "...xxxx" in text


def test_markdown_with_no_changes() -> None:
    a = lock(cpython("app", "3.13.9", "20251014"))
    md = render_markdown(diff_locks(a, a))
    assert "No interpreter changes (1 unchanged)." in md
    assert "| Interpreter |" not in md


def test_direct_url_builds_get_no_release_link() -> None:
    direct = LockedPython(
        name="corp",
        implementation=Implementation.CPYTHON,
        version="3.12.9",
        artifacts=(
            Artifact(
                platform="linux-x86_64-gnu", url="https://a.example/c.tar.gz", sha256=sha("c")
            ),
        ),
    )
    md = render_markdown(diff_locks(empty_lock(), lock(direct)))
    assert "](http" not in md
    assert "cpython 3.12.9" in md


# -- json -------------------------------------------------------------------------------------


def test_json_schema_is_stable() -> None:
    old = lock(cpython("app", "3.13.5", "20250708"), cpython("gone", "3.12.11", "20251007"))
    new = lock(cpython("app", "3.13.9", "20251014", platforms=("linux-x86_64-gnu",)))
    document = json.loads(render_json(diff_locks(old, new), old_label="HEAD", new_label="w"))
    assert list(document) == [
        "format-version",
        "old-source",
        "new-source",
        "summary",
        "warnings",
        "pythons",
    ]
    assert document["format-version"] == JSON_FORMAT_VERSION == 1
    assert document["old-source"] == "HEAD"
    assert document["summary"] == {"added": 0, "removed": 1, "changed": 1, "unchanged": 0}
    app = document["pythons"][0]
    assert list(app) == ["name", "change", "summary", "old", "new", "platforms"]
    assert app["change"] == "upgraded"
    assert (
        app["summary"]
        == "app: cpython 3.13.5+20250708 -> 3.13.9+20251014, platforms -macos-aarch64"
    )
    assert list(app["new"]) == [
        "implementation",
        "version",
        "build",
        "variant",
        "flavor",
        "default",
        "release-page",
    ]
    assert app["new"]["version"] == "3.13.9"
    linux, mac = app["platforms"]
    assert list(linux) == ["platform", "change", "old", "new", "size-delta"]
    assert linux["change"] == "changed"
    assert linux["size-delta"] == 0
    assert list(linux["new"]) == ["url", "sha256", "size"]
    assert mac == {
        "platform": "macos-aarch64",
        "change": "removed",
        "old": mac["old"],
        "new": None,
        "size-delta": None,
    }
    gone = document["pythons"][1]
    assert gone["change"] == "removed" and gone["new"] is None


# -- the command, with files and git ---------------------------------------------------------


def write(path: Path, the_lock: LockFile) -> Path:
    path.write_text(dumps(the_lock))
    return path


def test_cli_two_files_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.lock", lock(cpython("app", "3.13.5", "20250708")))
    new = write(tmp_path / "new.lock", lock(cpython("app", "3.13.9", "20251014")))
    assert main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "app: cpython 3.13.5+20250708 -> 3.13.9+20251014 on linux-x86_64-gnu, macos-aarch64"
    )
    assert main(["diff", str(old), str(new), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pythons"][0]["change"] == "upgraded"
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith(MARKDOWN_MARKER)


def test_cli_one_file_against_working_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path / "old.lock", lock(cpython("app", "3.13.5", "20250708")))
    write(tmp_path / "pythons.lock", lock(cpython("app", "3.13.9", "20251014")))
    assert main(["--project", str(tmp_path), "diff", str(old)]) == 0
    assert "3.13.5+20250708 -> 3.13.9+20251014" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--base", ""], "--base is empty"),
        (["--base", "  "], "--base is empty"),
        ([""], "OLD is empty"),
        (["old.lock", ""], "NEW is empty"),
    ],
)
def test_cli_empty_ref_or_path_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    # `--base "$BASE"` with BASE unset once compared against HEAD and passed.
    write(tmp_path / "old.lock", lock(cpython("app", "3.13.5", "20250708")))
    write(tmp_path / "pythons.lock", lock(cpython("app", "3.13.9", "20251014")))
    assert main(["--project", str(tmp_path), "diff", *args]) == 2
    captured = capsys.readouterr()
    assert f"pylock: error: {said}" in captured.err
    assert captured.out == ""


def test_cli_usage_and_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(tmp_path), "diff", "a.lock", "--base", "HEAD"]) == 2
    assert "either --base GITREF or OLD" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "missing.lock"), str(tmp_path / "x")]) == 1
    assert "no lock file at" in capsys.readouterr().err
    bad = tmp_path / "bad.lock"
    bad.write_text("lock-version = 99\n")
    assert main(["diff", str(bad), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unsupported lock-version 99" in err
    assert "Traceback" not in err


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    # The suite's clean environment names the author and turns off the system config.
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "sub" / "project").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    return root


@needs_git
def test_git_head_and_base(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = repo / "sub" / "project"
    # No commits yet: HEAD is unborn, so everything counts as added.
    write(project / "pythons.lock", lock(cpython("app", "3.13.5", "20250708")))
    assert main(["--project", str(project), "diff"]) == 0
    assert capsys.readouterr().out.startswith(
        "app: added cpython 3.13.5+20250708 on linux-x86_64-gnu, macos-aarch64"
    )

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    git(repo, "branch", "base")
    write(
        project / "pythons.lock",
        lock(cpython("app", "3.13.9", "20251014"), cpython("new", "3.14.0", "20251014")),
    )
    assert main(["--project", str(project), "diff"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "app: cpython 3.13.5+20250708 -> 3.13.9+20251014 on linux-x86_64-gnu, macos-aarch64",
        "new: added cpython 3.14.0+20251014 on linux-x86_64-gnu, macos-aarch64",
    ]
    git(repo, "commit", "-qam", "second")
    # HEAD now equals the working tree; the base branch still has the old lock.
    assert main(["--project", str(project), "diff"]) == 0
    assert capsys.readouterr().out.startswith("No interpreter changes (2 unchanged).")
    assert main(["--project", str(project), "diff", "--base", "base", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    # From the repository's top, as git spells it: the project is in sub/project.
    assert document["old-source"] == "base:sub/project/pythons.lock"
    assert [p["change"] for p in document["pythons"]] == ["upgraded", "added"]


@needs_git
def test_a_committed_symlinked_lock_is_followed_within_the_tree(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLI attack: a committed `pythons.lock -> ../shared.lock` (which `pylock lock` keeps)
    was read as its link text, "invalid TOML", with no word of the symlink."""
    project = repo / "sub" / "project"
    shared = repo / "sub" / "shared.lock"
    write(shared, lock(cpython("app", "3.13.5", "20250708")))
    (project / "pythons.lock").symlink_to("../shared.lock")
    (repo / "sub" / "loop.lock").symlink_to("loop.lock")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "shared lock")
    write(shared, lock(cpython("app", "3.13.9", "20251014")))
    assert main(["--project", str(project), "diff"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("app: cpython 3.13.5+20250708 -> 3.13.9+20251014")
    for target, said in [
        ("/etc/passwd", "is a symlink to /etc/passwd, outside what git keeps"),
        ("../loop.lock", "is a chain of more than 8 symlinks at HEAD"),
        ("../gone.lock", "is a symlink to ../gone.lock, which is not a file at HEAD"),
    ]:
        (project / "pythons.lock").unlink()
        (project / "pythons.lock").symlink_to(target)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", target)
        (project / "pythons.lock").unlink()
        write(project / "pythons.lock", lock(cpython("app", "3.13.9", "20251014")))
        assert main(["--project", str(project), "diff"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"pylock: error: HEAD:sub/project/pythons.lock {said}"), err
        assert "Traceback" not in err
        git(repo, "checkout", "-q", "--", ".")


@needs_git
def test_git_ref_without_the_lock_is_an_empty_lock(repo: Path) -> None:
    (repo / "README").write_text("x")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "no lock yet")
    assert read_lock_at_ref(repo / "sub" / "project", "HEAD") is None


@needs_git
def test_git_errors(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "README").write_text("x")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "c")
    project = repo / "sub" / "project"
    assert main(["--project", str(project), "diff", "--base", "origin/nope"]) == 1
    err = capsys.readouterr().err
    assert "pylock: error: unknown git ref 'origin/nope'" in err
    assert "fetch-depth: 0" in err
    with pytest.raises(UsageError, match="invalid git ref"):  # exit 2, as for --base ''
        read_lock_at_ref(project, "--output=/tmp/x")
    assert main(["--project", str(project), "diff", "--base=-x"]) == 2
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    with pytest.raises(PylockError, match="not inside a git work tree"):
        read_lock_at_ref(outside, "HEAD")


@needs_git
def test_git_lock_that_is_invalid_at_the_ref(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo / "sub" / "project"
    (project / "pythons.lock").write_text("lock-version = 1\nnot toml [\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "broken")
    write(project / "pythons.lock", lock(cpython("app", "3.13.9", "20251014")))
    assert main(["--project", str(project), "diff"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pylock: error: HEAD:sub/project/pythons.lock: invalid TOML")
    # Review: the hint said to run `pylock lock`, which cannot mend the committed side.
    assert "pylock: hint: the lock committed at HEAD is broken" in err
    assert "run `pylock lock`" not in err


@needs_git
def test_deleted_working_tree_lock_shows_removals(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo / "sub" / "project"
    write(project / "pythons.lock", lock(cpython("app", "3.13.9", "20251014")))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c")
    (project / "pythons.lock").unlink()
    assert main(["--project", str(project), "diff"]) == 0
    assert capsys.readouterr().out.startswith("app: removed cpython 3.13.9+20251014")


@needs_git
def test_a_project_outside_the_work_tree_git_is_told_of_is_an_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Environment attack: with GIT_WORK_TREE exported (elsewhere), git found the lock
    nowhere at HEAD and `diff` showed every interpreter "added", exit 0."""
    project = repo / "sub" / "project"
    write(project / "pythons.lock", lock(cpython("app", "3.13.5", "20250708")))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environ = {**os.environ, "GIT_WORK_TREE": str(elsewhere)}
    assert main(["--project", str(project), "diff"], environ=environ) == 1
    err = capsys.readouterr().err
    assert "is not inside the work tree of its git repository (GIT_WORK_TREE is set)" in err
    assert main(["--project", str(project), "diff"]) == 0
    assert "No interpreter changes" in capsys.readouterr().out


@needs_git
def test_git_dir_without_a_work_tree_is_an_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack on the day's diff: with GIT_DIR alone, git took the project directory for the
    top of the work tree, and every interpreter looked "added"."""
    project = repo / "sub" / "project"
    write(project / "pythons.lock", lock(cpython("app", "3.13.5", "20250708")))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    environ = {**os.environ, "GIT_DIR": str(repo / ".git")}
    assert main(["--project", str(project), "diff"], environ=environ) == 1
    assert "GIT_DIR is set without GIT_WORK_TREE" in capsys.readouterr().err
    both = {**environ, "GIT_WORK_TREE": str(repo)}
    assert main(["--project", str(project), "diff"], environ=both) == 0
    assert "No interpreter changes" in capsys.readouterr().out


# -- where archives come from, and renames (attack on lock determinism and review) ----------


def _moved_to(
    python: LockedPython, url: str, *, platform: str = "linux-x86_64-gnu"
) -> LockedPython:
    artifacts = tuple(
        attrs.evolve(a, url=url, sha256=sha(url)) if a.platform == platform else a
        for a in python.artifacts
    )
    return attrs.evolve(python, artifacts=artifacts)


def test_an_added_entry_names_an_origin_other_than_upstream() -> None:
    """A new entry whose archive sat on any host passed with `added ... on PLATFORM`: the
    README's promise that a changed host shows in `pylock diff` did not hold for it."""
    upstream = cpython("tool", "3.12.11", "20251007")
    evil = _moved_to(upstream, "https://evil.example/astral-sh/cpython.tar.gz")
    assert render_text(diff_locks(lock(), lock(upstream))).splitlines()[0] == (
        "tool: added cpython 3.12.11+20251007 on linux-x86_64-gnu, macos-aarch64"
    )
    diff = diff_locks(lock(), lock(evil))
    assert render_text(diff).splitlines()[0] == (
        "tool: added cpython 3.12.11+20251007 on linux-x86_64-gnu, macos-aarch64; "
        "linux-x86_64-gnu from evil.example"
    )
    assert summary_lines(diff) == [
        "tool: added cpython 3.12.11+20251007; linux-x86_64-gnu from evil.example"
    ]
    # One origin for every platform: named once (attack on the day's diff: the platforms
    # were listed twice).
    mirrored = attrs.evolve(
        upstream,
        artifacts=tuple(
            attrs.evolve(a, url=f"https://mirror.example/{a.platform}.tar.gz")
            for a in upstream.artifacts
        ),
    )
    assert render_text(diff_locks(lock(), lock(mirrored))).splitlines()[0] == (
        "tool: added cpython 3.12.11+20251007 on linux-x86_64-gnu, macos-aarch64 from "
        "mirror.example"
    )
    assert "linux-x86&#95;64-gnu from evil.example</sub>" in render_markdown(diff)


def test_an_added_platform_from_a_fork_and_a_look_alike_host_are_named() -> None:
    before = cpython("app", "3.13.9", "20251014", platforms=("macos-aarch64",))
    fork = f"{PBS.replace('astral-sh', 'evil-fork')}/20251014/cpython.tar.gz"
    after = _moved_to(cpython("app", "3.13.9", "20251014"), fork)
    assert summary_lines(diff_locks(lock(before), lock(after))) == [
        "app: cpython 3.13.9+20251014, platforms +linux-x86_64-gnu, "
        "linux-x86_64-gnu from github.com/evil-fork/python-build-standalone"
    ]
    old = cpython("app", "3.13.9", "20251014")
    look_alike = _moved_to(cpython("app", "3.13.10", "20251101"), "https://github.c\u03bfm/a/b/c")
    (line,) = summary_lines(diff_locks(lock(old), lock(look_alike)))
    assert line.endswith("linux-x86_64-gnu now from github.xn--cm-jbc")
    # An upgrade that stays upstream says nothing of where it comes from.
    assert summary_lines(diff_locks(lock(old), lock(cpython("app", "3.13.10", "20251101")))) == [
        "app: cpython 3.13.9+20251014 -> 3.13.10+20251101"
    ]


def test_a_rename_does_not_hide_another_sha256_at_the_same_url() -> None:
    """Renaming an entry and editing its sha256 showed as `removed` plus `added`, with no
    warning; without the rename the same edit is a warning."""
    old = cpython("app", "3.13.9", "20251014")
    first, second = old.artifacts
    edited = attrs.evolve(
        old, name="main", artifacts=(attrs.evolve(first, sha256="e" * 64), second)
    )
    (warning,) = diff_locks(lock(old), lock(edited)).warnings
    assert warning.kind == "republished"
    assert warning.name == "main" and warning.platform == first.platform
    assert warning.message.startswith(
        f"main: the {first.platform} artifact has another sha256 than app's in the old lock "
        f"at the same URL ({first.sha256[:12]}... -> eeeeeeeeeeee...)"
    )
    # Another URL, the same build: still one file with two sha256s.
    moved = _moved_to(attrs.evolve(old, name="main"), "https://mirror.example/cpython.tar.gz")
    (warning,) = diff_locks(lock(old), lock(moved)).warnings
    assert "for the same build (cpython 3.13.9+20251014)" in warning.message
    # A plain rename is no warning.
    assert diff_locks(lock(old), lock(attrs.evolve(old, name="main"))).warnings == ()
    # Direct URLs name no build: two in-house archives of one version are two files
    # (attack on the day's diff: "another sha256 than corp's ... for the same build").
    corp = attrs.evolve(old, name="corp", build=None)
    corp2 = _moved_to(attrs.evolve(old, name="corp2", build=None), "https://in.example/b.tgz")
    assert diff_locks(lock(corp), lock(corp, corp2)).warnings == ()


def test_a_step_back_in_build_is_a_downgrade_and_a_pypy_release_an_upgrade() -> None:
    """Attack on PyPy and GraalPy: GraalPy 99.0.1 -> 25.2.4 (its version stays 3.12.0) and
    a python-build-standalone tag moved back both read as `rebuilt`."""
    newer, older = cpython("app", "3.13.9", "20251014"), cpython("app", "3.13.9", "20250708")
    (back,) = diff_locks(lock(newer), lock(older)).pythons
    assert back.change is Change.DOWNGRADED
    assert summary_lines(diff_locks(lock(newer), lock(older))) == [
        "app: downgraded cpython 3.13.9+20251014 -> 3.13.9+20250708"
    ]
    (ahead,) = diff_locks(lock(older), lock(newer)).pythons
    assert ahead.change is Change.REBUILT
    (released,) = diff_locks(
        lock(pypy("pp", "3.11.13", "7.3.20")), lock(pypy("pp", "3.11.13", "7.3.21"))
    ).pythons
    assert released.change is Change.UPGRADED
    (graal_back,) = diff_locks(
        lock(pypy("g", "3.12.0", "99.0.1")), lock(pypy("g", "3.12.0", "25.2.4"))
    ).pythons
    assert graal_back.change is Change.DOWNGRADED
    huge = cpython("app", "3.13.9", "9" * 5000)
    assert diff_locks(lock(huge), lock(older)).pythons[0].change is Change.DOWNGRADED


# -- field test: a lock in git history larger than pylock reads from disk --------------------


@needs_git
def test_a_committed_lock_larger_than_the_file_limit_is_refused_unread(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 300 MB blob committed as pythons.lock took 47 s and 900 MB of memory to refuse
    as "lock-version: missing"; the same file on disk is refused at once as larger than
    256 MiB. git says a blob's size without reading it."""
    from pylock import ownfiles

    project = repo / "sub" / "project"
    the_lock = dumps(lock(cpython("app", "3.13.5", "20250708")))
    (project / "pythons.lock").write_text(the_lock + "#" * 4096 + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    (project / "pythons.lock").write_text(the_lock)
    limit = len(the_lock.encode()) + 1024
    monkeypatch.setattr(ownfiles, "PROJECT_FILE_LIMIT", limit)
    assert main(["--project", str(project), "diff"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"pylock: error: HEAD:sub/project/pythons.lock is larger than {limit} bytes"
    ), err
    assert "Traceback" not in err


# -- field test: credentials in a lock's URLs, in JSON ----------------------------------------


@pytest.mark.parametrize("value", ['ab"SECRET', "ab<SECRET", 'a"b"c<SECRET'])
def test_json_redacts_a_secret_query_value_whole_and_stays_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Redacting the rendered JSON text ended a secret at a quote (`\\"` in JSON) or a `<`:
    the rest of the secret showed, and the backslash of `\\"` went with the redacted part,
    which left `pylock diff --format json` invalid JSON for a lock a pull request edited."""
    url = f"https://mirror.example/cpython-3.13.5.tar.gz?token={value}"
    old = cpython("app", "3.13.5", "20250708", platforms=("linux-x86_64-gnu",))
    [artifact] = old.artifacts
    new = attrs.evolve(old, artifacts=(attrs.evolve(artifact, url=url, sha256=sha(url)),))
    old_path = write(tmp_path / "old.lock", lock(old))
    new_path = write(tmp_path / "new.lock", lock(new))
    assert main(["diff", str(old_path), str(new_path), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "SECRET" not in out
    document = json.loads(out)
    [platform] = document["pythons"][0]["platforms"]
    assert platform["new"]["url"] == "https://mirror.example/cpython-3.13.5.tar.gz?token=***"


def test_an_ipv6_origin_keeps_its_brackets_so_its_port_reads_as_one() -> None:
    """`now from ::1:8443` read as the IPv6 address ::1:8443, on no port given."""
    old = cpython("app", "3.13.5", "20250708", platforms=("linux-x86_64-gnu",))
    moved = _moved_to(old, "https://[fd00::1]:8443/pbs/cpython-3.13.5.tar.gz")
    [line] = summary_lines(diff_locks(lock(old), lock(moved)))
    assert "linux-x86_64-gnu now from [fd00::1]:8443," in line, line
