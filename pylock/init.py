"""``pylock init``: a starter ``pythons.toml`` guessed from what the project already says.

The version comes from the first of these that names one:

1. ``.python-version`` (pyenv, uv): its first line that is not a comment. A full version
   such as ``3.12.4`` becomes the series ``3.12``: the lock pins the exact patch release,
   and ``pylock lock --upgrade`` can then move to the next patch. ``pypy3.10``,
   ``cpython-3.12.4-linux-x86_64-gnu``, ``3.13t`` (free-threaded) and ``3.14.0a7``
   (pre-releases allowed) are understood too.
2. ``requires-python`` in ``pyproject.toml``, taken as written (``">=3.11"``).
3. The series of the Python running pylock.

>>> guess_from_python_version("pypy3.10-7.3.17\\n")
_Guess(implementation='pypy', version='3.10', variant='default', prereleases=False)
>>> guess_from_python_version("# pinned\\n3.13.1t\\n")
_Guess(implementation='cpython', version='3.13', variant='freethreaded', prereleases=False)
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import attrs

from pylock.bounded import toml_loads
from pylock.errors import PylockError
from pylock.fsutil import CONFIG_FILENAME, broken_link, create_file
from pylock.ownfiles import read_project_file
from pylock.versions import parse_request

PYTHON_VERSION_FILE = ".python-version"
PYPROJECT_FILE = "pyproject.toml"
#: The name of the one interpreter in a starter config.
STARTER_NAME = "main"

_VERSION_LINE = re.compile(
    r"""^
    (?:(?P<impl>cpython|python|pypy|graalpy)[-@]?)?
    (?P<series>\d+(?:\.\d+)?)(?P<patch>\.\d+)?(?P<pre>(?:a|b|rc)\d+)?
    (?P<abi>t|d|td)?
    (?P<plus>(?:\+(?:freethreaded|debug))*)
    (?:-.*)?
    $""",
    re.VERBOSE | re.IGNORECASE,
)


@attrs.frozen(kw_only=True)
class _Guess:
    """What a project file says about its interpreter."""

    #: ``cpython``, ``pypy`` or ``graalpy``.
    implementation: str = "cpython"
    #: The version request to write.
    version: str
    #: The variant to write (``default`` is left out of the file).
    variant: str = "default"
    #: Whether the named version was a pre-release.
    prereleases: bool = False


def guess_from_python_version(text: str) -> _Guess | None:
    """Read the interpreter named by a ``.python-version`` file, if pylock understands it."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            break
    else:
        return None
    match = _VERSION_LINE.match(line)
    if not match:
        return None
    implementation = (match["impl"] or "cpython").lower()
    if implementation == "python":
        implementation = "cpython"
    series = match["series"]
    # GraalPy and PyPy releases have their own numbers (graalpy-24.1.0); only the
    # Python version they implement can go into pythons.toml.
    if series.split(".")[0] != "3":
        return None
    try:
        parse_request(series)  # a part of thousands of digits would only fail later
    except ValueError:
        return None
    abi = (match["abi"] or "").lower()
    plus = (match["plus"] or "").lower()
    freethreaded = "t" in abi or "freethreaded" in plus
    debug = "d" in abi or "debug" in plus
    variant = {
        (False, False): "default",
        (True, False): "freethreaded",
        (False, True): "debug",
        (True, True): "freethreaded+debug",
    }[(freethreaded, debug)]
    if variant != "default" and implementation != "cpython":
        return None
    return _Guess(
        implementation=implementation,
        version=series,
        variant=variant,
        prereleases=match["pre"] is not None,
    )


def guess_from_pyproject(text: str) -> _Guess | None:
    """Take ``project.requires-python`` from a ``pyproject.toml``, if it is a valid request."""
    try:
        project = toml_loads(text).get("project")
    except tomllib.TOMLDecodeError:
        return None
    requires = project.get("requires-python") if isinstance(project, dict) else None
    if not isinstance(requires, str):
        return None
    try:
        parse_request(requires)
    except ValueError:
        return None
    return _Guess(version=requires.strip())


def _read(path: Path) -> tuple[str | None, str]:
    """The file's text, or ``None`` and why it is passed over ("" when it is not there)."""
    if path.is_dir():  # Windows says "permission denied" for one
        return None, ""
    try:
        # Bounded, and never a pipe or a device: `/dev/zero` or a FIFO would never end.
        return read_project_file(path).decode("utf-8-sig"), ""
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None, ""
    except OSError as error:
        return None, f"; cannot read {path.name} ({error.strerror or error})"
    except UnicodeDecodeError:
        return None, f"; {path.name} is not UTF-8 text"


def _toml_string(text: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes, except the surrogate pairs
    # json emits for characters beyond the BMP; ensure_ascii=False never emits those.
    return json.dumps(text, ensure_ascii=False)


def _is_toml(text: str) -> bool:
    try:
        toml_loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return False
    return True


def _guess(project_dir: Path) -> tuple[_Guess, str]:
    skipped = ""
    # (file, how to read it, where the guess came from, what to say when it names nothing)
    sources: tuple[tuple[str, Callable[[str], _Guess | None], str, str], ...] = (
        (
            PYTHON_VERSION_FILE,
            guess_from_python_version,
            f"from {PYTHON_VERSION_FILE}",
            f"; {PYTHON_VERSION_FILE} names nothing pylock can lock",
        ),
        (
            PYPROJECT_FILE,
            guess_from_pyproject,
            f"from requires-python in {PYPROJECT_FILE}",
            f"; {PYPROJECT_FILE} has no requires-python pylock can use",
        ),
    )
    for filename, guesser, source, unusable in sources:
        text, why_not = _read(project_dir / filename)
        if text is None:
            skipped += why_not
            continue
        guess = guesser(text)
        if guess is not None:
            return guess, source + skipped
        if filename == PYPROJECT_FILE and not _is_toml(text):
            unusable = f"; {PYPROJECT_FILE} is not valid TOML"
        skipped += unusable
    series = f"{sys.version_info.major}.{sys.version_info.minor}"
    return _Guess(version=series), f"the series of the Python running pylock{skipped}"


def starter_config(project_dir: Path) -> tuple[str, str]:
    """The text of a starter ``pythons.toml``, and a line saying where its version came from."""
    guess, source = _guess(project_dir)
    entry = [f"version = {_toml_string(guess.version)}  # {source.split(';')[0]}"]
    if guess.implementation != "cpython":
        entry.insert(0, f"implementation = {_toml_string(guess.implementation)}")
    if guess.variant != "default":
        entry.append(f"variant = {_toml_string(guess.variant)}")
    if guess.prereleases:
        entry.append("prereleases = true")
    entry.append("default = true  # linked as python3 by `pylock sync --bin-dir`")
    text = "\n".join(
        [
            "# The Python interpreters this project needs.",
            "# `pylock lock` resolves them to exact builds in pythons.lock;",
            "# `pylock sync` installs what the lock says.",
            "",
            "[defaults]",
            '# Platforms to lock for; "host" is the machine running `pylock lock`.',
            "# List explicit keys so one lock serves CI, Docker and every developer, e.g.",
            '# platforms = ["linux-x86_64-gnu", "linux-aarch64-gnu", "macos-aarch64", '
            '"windows-x86_64"]',
            'platforms = ["host"]',
            "",
            f"[python.{STARTER_NAME}]",
            *entry,
            "",
            "# Each interpreter gets a table; its key is the name and the install directory.",
            "#",
            "# [python.nogil]",
            '# version = "3.14"',
            '# variant = "freethreaded"',
            "#",
            "# [python.pypy]",
            '# implementation = "pypy"',
            '# version = "3.11"',
            "",
        ]
    )
    version = guess.version
    if guess.implementation != "cpython":
        version = f"{guess.implementation} {version}"
    if guess.variant != "default":
        version += f" ({guess.variant})"
    return text, f"version {version}, {source}"


def write_starter(project_dir: Path) -> tuple[Path, str]:
    """Create ``pythons.toml`` in ``project_dir``; never replace an existing one.

    Return the path written and where its version came from.
    """
    path = project_dir / CONFIG_FILENAME
    target = broken_link(path)
    if target is not None:
        # Not "already exists": `lock` calls it missing and names `init`, a circle.
        raise PylockError(
            f"{path} is a symbolic link to {target}, which cannot be read",
            hint="point it at an existing file, or remove it and run `pylock init` again",
        )
    if path.exists():
        raise PylockError(
            f"{path} already exists",
            hint="edit it, or delete it first to start over",
        )
    if not project_dir.is_dir():
        missing = not os.path.lexists(project_dir)
        raise PylockError(
            f"{project_dir} {'does not exist' if missing else 'is not a directory'}",
            hint="create the directory first, or give --project an existing one"
            if missing
            else "give --project the project's directory",
        )
    text, source = starter_config(project_dir)
    try:
        # Whole or not at all (no half-written file to be mistaken for the user's own),
        # and never over a file that appeared since the check above.
        create_file(path, text.encode("utf-8"))
    except FileExistsError:
        raise PylockError(
            f"{path} already exists", hint="edit it, or delete it first to start over"
        ) from None
    except OSError as exc:
        raise PylockError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="run `pylock init` in a directory this user may write (and with room)",
        ) from None
    return path, source
