"""Tests that names in code spans of ``pylock diff --format markdown`` render as written.

CommonMark decodes no entities inside a code span, so the cell escaping of
:func:`pylock.diff._md` must not reach one. The rendering tests parse the comment with
markdown-it-py (GFM tables on) when it is installed; the exact-text tests need nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pylock.diff import MARKDOWN_MARKER, _md_code, diff_locks, empty_lock, render_markdown
from pylock.errors import printable
from pylock.lockfile import Artifact, LockedPython, LockFile, make_lock
from pylock.versions import Implementation

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

#: Names a lock can carry once someone edits it by hand, or a hostile upstream names things.
HOSTILE = [
    "my_app",
    "__init__",
    "a*b*c",
    "x`y",
    "``z",
    "`",
    "p|q",
    "a\\|b",
    "a\\",
    "<img src=x onerror=alert(1)>",
    "</code><script>alert(1)</script>",
    "a&amp;b&#95;",
    "[x](javascript:alert(1))",
    "n\nl\r| injected |",
    "\u202eevil",
    " padded ",
]


def python(name: str, platform: str, *, seed: str = "") -> LockedPython:
    artifact = Artifact(
        platform=platform,
        url="https://a.example/c.tar.gz",
        sha256=(seed or "a")[0] * 64,
    )
    return LockedPython(
        name=name,
        implementation=Implementation.CPYTHON,
        version="3.13.9",
        build="20251014",
        artifacts=(artifact,),
    )


def lock(*pythons: LockedPython) -> LockFile:
    return make_lock(pythons, config_digest="sha256:" + "1" * 64)


def republished(name: str, platform: str) -> str:
    """A comment with ``name`` in the warning list and in the table."""
    old = lock(python(name, platform))
    new = lock(python(name, platform, seed="b"))
    return render_markdown(diff_locks(old, new))


# -- exact text ------------------------------------------------------------------------


def test_names_in_code_spans_are_not_entity_escaped() -> None:
    md = republished("my_app", "linux-x86_64-gnu").splitlines()
    assert "> - `my_app` on `linux-x86_64-gnu`: another sha256 under the same build or URL" in md
    row = next(line for line in md if line.startswith("| `"))
    assert row.startswith("| `my_app` | **⚠ republished** |")
    assert "&#" not in row.split("|")[1]


@pytest.mark.parametrize(
    ("text", "in_table", "span"),
    [
        ("my_app", True, "`my_app`"),
        ("a*b_c&d<e>", True, "`a*b_c&d<e>`"),
        ("x`y", False, "``x`y``"),
        ("a``b`", False, "``` a``b` ```"),
        ("`", True, "`` ` ``"),
        ("p|q", True, "`p\\|q`"),
        ("p|q", False, "`p|q`"),
        ("n\nl\r", True, "`n\\nl\\r`"),
        (" padded ", False, "`  padded  `"),
        ("  ", False, "`  `"),
        ("", True, "` `"),
    ],
)
def test_code_span_text(text: str, in_table: bool, span: str) -> None:
    assert _md_code(text, in_table=in_table) == span


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_keep_the_row_and_the_list_item_whole(name: str) -> None:
    md = republished(name, name)
    lines = md.splitlines()
    rows = [line for line in lines if line.startswith("| ") and "republished" in line]
    assert len(rows) == 1
    # Each of the table's 7 pipes is unescaped; a pipe from the name has a backslash.
    assert rows[0].count("|") - rows[0].count("\\|") == 7
    items = [line for line in lines if line.startswith("> - ")]
    assert len(items) == 1
    # No line break in the name reached the comment.
    assert len(lines) == len(republished("app", "linux-x86_64-gnu").splitlines())


# -- rendered --------------------------------------------------------------------------


def gfm() -> MarkdownIt:
    """A parser that renders as GitHub does: CommonMark with HTML, tables and strikethrough."""
    markdown_it = pytest.importorskip("markdown_it")
    parser: MarkdownIt = markdown_it.MarkdownIt("commonmark", {"html": True})
    return parser.enable(["table", "strikethrough"])


def parse(md: str) -> list[Token]:
    return gfm().parse(md)


def render(md: str) -> str:
    return str(gfm().render(md))  # typed Any: a renderer may return anything


def inline_children(tokens: list[Token]) -> list[Token]:
    return [child for token in tokens if token.type == "inline" for child in token.children or ()]


@pytest.mark.parametrize("name", HOSTILE)
def test_code_spans_render_the_literal_name(name: str) -> None:
    tokens = parse(republished(name, name))
    shown = printable(name)  # a line break or a bidi override is shown escaped
    # The warning item, then the table's first cell: each a code span holding the text.
    codes = [t.content for t in inline_children(tokens) if t.type == "code_inline"]
    assert codes == ["pythons.lock", shown, shown, shown]
    # Still one table of one header row and one body row of six cells.
    types = [t.type for t in tokens]
    assert types.count("table_open") == 1
    assert types.count("tr_open") == 2
    assert types.count("td_open") == 6
    # The only raw HTML is pylock's own: the marker, line breaks and subscripts.
    html = {t.content.strip() for t in tokens if t.type == "html_block"}
    html |= {t.content for t in inline_children(tokens) if t.type == "html_inline"}
    assert html <= {MARKDOWN_MARKER, "<br>", "<sub>", "</sub>"}
    links = [t for t in inline_children(tokens) if t.type == "link_open"]
    assert all(str(t.attrGet("href")).startswith("https://") for t in links)


def test_rendered_html_shows_names_not_entities() -> None:
    html = render(republished("my_app", "linux-x86_64-gnu"))
    assert "<code>my_app</code> on <code>linux-x86_64-gnu</code>" in html
    assert "<td><code>my_app</code></td>" in html
    assert "&amp;#95;" not in html and "&#95;" not in html
    hostile = render(republished("<img src=x>|&", "a`b|c"))
    assert "<img" not in hostile
    assert "<code>&lt;img src=x&gt;|&amp;</code>" in hostile
    assert "<code>a`b|c</code>" in hostile


def test_plain_cells_still_decode_their_entities() -> None:
    # Outside code spans _md stays: the platform list and the build labels.
    md = render_markdown(diff_locks(empty_lock(), lock(python("app", "linux_x86*64"))))
    assert "linux&#95;x86&#42;64" in md
    assert "<td>linux_x86*64</td>" in render(md)
