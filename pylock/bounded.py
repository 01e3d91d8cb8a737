"""TOML and JSON parsing with a nesting limit checked before the parser runs (pure).

:mod:`tomllib` recurses once per nested array or inline table, so a few thousand
``[`` make it raise :class:`RecursionError`; and it checks a dotted key in time
quadratic in its number of parts, so a 50,000-part key takes minutes to reject. The
:mod:`json` parser recurses too. Every TOML and JSON document pylock reads goes
through :func:`toml_loads` or :func:`json_loads`, which first measure the document
with a few passes of C-speed string operations (strings and comments blanked out,
then brackets counted) and refuse one nested deeper than :data:`MAX_DEPTH`.

The refusal is the parser's own error type (:class:`tomllib.TOMLDecodeError`,
:class:`json.JSONDecodeError`, both :class:`ValueError`), so every caller that
already turns a syntax error into a clean message handles it too.

>>> toml_loads("a.b.c = 1")
{'a': {'b': {'c': 1}}}
>>> toml_loads("x = " + "[" * 100 + "]" * 100)
Traceback (most recent call last):
...
pylock.bounded.TomlTooDeepError: nested more than 64 levels deep (at line 1, column 69)
>>> json_loads(b'{"a": [1, 2]}')
{'a': [1, 2]}
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from typing import Any

#: The deepest nesting accepted: arrays and tables inside each other, or the parts of
#: one dotted key or table header. pylock's own files need 4; 64 leaves room for any
#: ``pyproject.toml`` while keeping the parsers' recursion and work bounded.
MAX_DEPTH = 64

# TOML strings and comments, which may contain anything; blanked out before counting.
# Multi-line strings may end in up to two extra quotes (`"""a""""` is 'a"'). An
# unterminated string runs to the end of its line, or of the text, as the parser reads
# it. Each alternative is written so that its match cannot fail once it has started (a
# lone trailing backslash is consumed too): were it to fail, the engine would try again
# at every later quote, and `"\"\"\"...` would take quadratic time, and it would try
# every way of splitting a run of plain characters. A match that cannot fail never
# backtracks, so plain characters go in runs (`[^"\\]+`), which scans the bundled
# snapshot's JSON about three times faster than one character at a time. There are no
# possessive quantifiers: CPython 3.11 before 3.11.5 (Debian 12 ships 3.11.2) gets some
# of them wrong.
_TOML_OPAQUE = re.compile(
    r'"""(?:[^"\\]+|\\.|\\\Z|"(?!""))*(?:"{3,5}|\Z)'
    r"|'''.*?(?:'{3,5}|\Z)"
    r'|"(?:[^"\\\n]+|\\[^\n]|\\(?=\n)|\\\Z)*(?:"|(?=\n)|\Z)'
    r"|'[^'\n]*(?:'|(?=\n)|\Z)"
    r"|#[^\n]*",
    re.DOTALL,
)
_JSON_STRING = re.compile(r'"(?:[^"\\]+|\\.|\\\Z)*(?:"|\Z)', re.DOTALL)
# A key part as the scanner sees it after strings became `s`: anything but whitespace,
# dots and TOML punctuation (so non-ASCII bare keys of a later TOML count too).
_PART = r"[^\s.=\[\]{},#]+"
# 64 dots each followed by a part: a key of more than 64 parts. Starting at a dot
# lets the regex engine skip ahead to the next one at C speed.
_LONG_DOTTED_KEY = re.compile(rf"(?:\.[ \t]*{_PART}[ \t]*){{{MAX_DEPTH}}}")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")


class TomlLimitError(tomllib.TOMLDecodeError):
    """A TOML document past one of the limits pylock reads TOML within."""

    def __init__(self, message: str, *, text: str, pos: int) -> None:
        #: 1-based line of the offending key, bracket or number.
        self.lineno = text.count("\n", 0, pos) + 1
        #: 1-based column.
        self.colno = pos - text.rfind("\n", 0, pos)
        if sys.version_info >= (3, 14):
            super().__init__(message, text, pos)
        else:
            super().__init__(f"{message} (at line {self.lineno}, column {self.colno})")


class TomlTooDeepError(TomlLimitError):
    """A TOML document nested deeper, or with a longer dotted key, than :data:`MAX_DEPTH`."""

    def __init__(self, message: str, *, text: str, pos: int) -> None:
        #: The limit that was exceeded.
        self.limit = MAX_DEPTH
        super().__init__(message, text=text, pos=pos)


class JsonTooDeepError(json.JSONDecodeError):
    """A JSON document nested deeper than :data:`MAX_DEPTH`."""

    def __init__(self, text: str, pos: int) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep", text, pos)
        #: The limit that was exceeded.
        self.limit = MAX_DEPTH


def _too_deep(blanked: str) -> bool:
    """Whether brackets in ``blanked`` (strings and comments blanked out) nest too deep.

    Balanced pairs are peeled one level per pass (``str.replace`` runs in C), so a
    document costs as many passes as it is deep, at most :data:`MAX_DEPTH` + 1.
    Unclosed brackets count as nesting too: a parser recurses into them before it
    finds the end of the document.
    """
    if blanked.count("[") + blanked.count("{") <= MAX_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", blanked).translate(_SQUARE)
    levels = 0
    while levels <= MAX_DEPTH:
        peeled = brackets.replace("[]", "")
        if peeled == brackets:
            break
        brackets = peeled
        levels += 1
    # Left over: `]` that close nothing, then `[` that are never closed.
    return levels + brackets.count("[") > MAX_DEPTH


def _first_too_deep(opaque: re.Pattern[str], text: str) -> int:
    """The offset of the bracket that opens level ``MAX_DEPTH + 1`` (else the deepest one)."""
    depth = deepest = where = 0
    for match in re.finditer(opaque.pattern + r"|[\[{]|[\]}]", text, opaque.flags):
        char = match.group()
        if char in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
                if depth > MAX_DEPTH:
                    break
        elif char in ("]", "}"):
            depth = max(0, depth - 1)
    return where


def toml_loads(text: str) -> dict[str, Any]:
    """:func:`tomllib.loads`, refusing documents nested deeper than :data:`MAX_DEPTH` first."""
    blanked = _TOML_OPAQUE.sub("s", text)
    if _too_deep(blanked):
        pos = _first_too_deep(_TOML_OPAQUE, text)
        raise TomlTooDeepError(f"nested more than {MAX_DEPTH} levels deep", text=text, pos=pos)
    if "." in blanked and _LONG_DOTTED_KEY.search(blanked):
        raise TomlTooDeepError(
            f"a dotted key or table name of more than {MAX_DEPTH} parts",
            text=text,
            pos=_long_key_line_start(text),
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError as error:
        # An integer of more decimal digits than ``int()`` converts (4,300 by default):
        # tomllib lets int's plain ValueError through.
        raise TomlLimitError(
            f"an integer of more than {sys.get_int_max_str_digits()} digits",
            text=text,
            pos=_long_integer_start(text),
        ) from error


def _long_integer_start(text: str) -> int:
    """The offset of the first integer too long for ``int()`` (the refusal path only)."""
    kept = _TOML_OPAQUE.sub(lambda m: " " * len(m.group()), text)  # offsets unchanged
    limit = sys.get_int_max_str_digits()
    match = re.search(rf"[+-]?[0-9_]{{{limit + 1},}}", kept) if limit else None
    return match.start() if match is not None else 0


def _long_key_line_start(text: str) -> int:
    """The offset of the line holding the over-long dotted key (the refusal path only)."""
    # Keep line breaks while blanking strings, so that lines still line up.
    blanked = _TOML_OPAQUE.sub(lambda m: "s" + "\n" * m.group().count("\n"), text)
    key = _LONG_DOTTED_KEY.search(blanked)
    line = blanked.count("\n", 0, key.start()) if key is not None else 0
    pos = 0
    for _ in range(line):
        pos = text.index("\n", pos) + 1
    return pos


def json_loads(data: str | bytes) -> Any:
    """:func:`json.loads`, refusing documents nested deeper than :data:`MAX_DEPTH` first."""
    if isinstance(data, bytes | bytearray):
        data = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    if _too_deep(_JSON_STRING.sub("s", data)):
        raise JsonTooDeepError(data, _first_too_deep(_JSON_STRING, data))
    return json.loads(data)
