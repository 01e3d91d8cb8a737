"""pylock's distribution on PyPI is `pythons-lock`: no document, example or message may install
the bare name `pylock`, which on PyPI is an unrelated project ("Python Distributed Lock")."""

from __future__ import annotations

import importlib.metadata
import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

import pylock

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "pythons-lock"

#: Everything a user reads or copies: documents, examples, scripts, CI, and pylock's own
#: help texts and messages.
SCANNED_FILES = ("README.md", "CHANGELOG.md", "MANIFEST.in", "pyproject.toml", ".ci/run")
SCANNED_DIRS = ("examples", "bench", "scripts", "schema", "pylock", "tests/e2e", ".ci")
TEXT_SUFFIXES = {
    "",
    ".md",
    ".py",
    ".sh",
    ".yml",
    ".yaml",
    ".toml",
    ".txt",
    ".cfg",
    ".in",
    ".json",
    ".lock",
}
SKIPPED_PARTS = {"__pycache__", ".pythons", ".venv", "build", "dist", "wheelhouse"}

#: A command that installs (or fetches) a distribution named in its arguments.
_INSTALL = re.compile(
    r"(?:\b(?:python3?(?:\.\d+)?|py)\s+-m\s+pip|\bpip3?|\bpipx|\buv\s+pip|\buv\s+tool)"
    r"\s+(?P<verb>install|wheel|download|run)\b(?P<args>[^\n;&|#)]*)"
    r"|\buvx\b(?P<uvx>[^\n;&|#)]*)"
)
#: A requirement for the bare name, e.g. `pylock`, `PyLock==0.1.*`, `pylock[x]>=1; ...`.
_BARE_REQUIREMENT = re.compile(
    r"^pylock\s*(?:\[[^\]]*\]\s*)?(?:(?:===?|>=|<=|~=|!=|<|>|@).*)?(?:;.*)?$", re.IGNORECASE
)
#: A quoted requirement string with a version for the bare name, anywhere.
_QUOTED_REQUIREMENT = re.compile(
    r"""["']pylock\s*(?:\[[^\]]*\]\s*)?(?:===?|>=|<=|~=|!=|<|>)""", re.IGNORECASE
)
#: Code that looks the distribution up by the bare name.
_METADATA_LOOKUP = re.compile(
    r"""\b(?:version|distribution|metadata|files|requires)\(\s*["']pylock["']\s*\)"""
)
_SHELL_END = {"&&", "||", ";", "|", "&", ">", ">>", "<", ")", "#"}
#: Options whose value is the package, not a command (uvx/pipx run).
_FROM_OPTIONS = {"--from", "--spec", "--with"}


def _arguments(text: str) -> list[str]:
    """Shell words up to the end of the command (quotes removed where they balance)."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = text.split()
    out = []
    for word in words:
        if word in _SHELL_END or word.startswith("#"):
            break
        out.append(word.strip("\"'`"))
    return out


def _bare(word: str) -> bool:
    return bool(_BARE_REQUIREMENT.match(word.strip()))


def bare_installs(text: str) -> Iterator[str]:
    """Every place in ``text`` that installs, or requires, the bare distribution `pylock`."""
    text = re.sub(r"\\\r?\n", " ", text)
    for match in _INSTALL.finditer(text):
        run = match["verb"] == "run" or match["uvx"] is not None
        words = _arguments(match["args"] if match["uvx"] is None else match["uvx"])
        if run:
            # `uvx pylock`, `pipx run pylock`: the package is --from's value, else the command.
            values = [b for a, b in itertools.pairwise(words) if a in _FROM_OPTIONS]
            values += [w.partition("=")[2] for w in words if w.partition("=")[0] in _FROM_OPTIONS]
            positional = [w for w in words if not w.startswith("-") and w not in values]
            candidates = values or positional[:1]
        else:
            candidates = [w for w in words if not w.startswith("-")]
        if any(_bare(word) for word in candidates):
            yield match[0].strip()
    for line in text.splitlines():
        if _QUOTED_REQUIREMENT.search(line) or _METADATA_LOOKUP.search(line):
            yield line.strip()


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for directory in SCANNED_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            if path.is_file() and path.suffix in TEXT_SUFFIXES and not parts & SKIPPED_PARTS:
                files.append(path)
    return files


# -- the checker itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "pip install pylock",
        "pip3 install -U pylock",
        'python -m pip install "pylock==0.1.*"',
        "python3 -m pip install --no-cache-dir 'pylock>=0.1'",
        "/opt/pylock/bin/pip install --no-cache-dir \\\n    --disable-pip-version-check pylock",
        "pip install --no-index --find-links /wheelhouse pylock",
        "pip wheel pylock -w wheelhouse",
        "pip download PyLock",
        "pipx install pylock",
        "uv tool install pylock",
        "uv pip install --system pylock[fast]",
        "uvx pylock lock",
        "pipx run pylock --version",
        "uvx --from pylock pylock lock",
        "RUN pip install x && pip install pylock",
        'dependencies = ["pylock==0.2.*"]',
        "version = importlib.metadata.version('pylock')",
    ],
)
def test_a_bare_install_is_found(line: str) -> None:
    assert list(bare_installs(line)) != []


@pytest.mark.parametrize(
    "line",
    [
        "pip install pythons-lock",
        'python -m pip install "pythons-lock==0.2.*"',
        "/opt/pylock/bin/pip install --no-cache-dir pythons-lock",
        "pip install --no-index --find-links /opt/pylock pythons-lock",
        "pip install -e '.[test]' && pylock lock",
        "pip install . && pylock --project examples/basic lock",
        "uv pip install --python /opt/pylock/bin/python -r requirements.txt",
        "uvx --from pythons-lock pylock lock",
        "pipx install pythons-lock  # the command is pylock",
        "pip install requests  # then run pylock sync",
        "pylock sync --into /opt/pylock",
        'version=f"pylock {__version__}"',
        "`pip install` of any sdist with a C extension needs pylock's fix-ups",
    ],
)
def test_the_right_name_passes(line: str) -> None:
    assert list(bare_installs(line)) == []


def test_a_hostile_line_ends_cleanly() -> None:
    """Unbalanced quotes and endless lines are still scanned, in linear time."""
    assert list(bare_installs('pip install "pylock')) != []
    huge = "pip install " + "x " * 200_000 + "pylock"
    assert list(bare_installs(huge)) != []
    assert list(bare_installs("'pylock" + " " * 100_000 + "x")) == []


# -- the repository ----------------------------------------------------------------------------


def test_no_document_or_example_installs_the_bare_name() -> None:
    files = scanned_files()
    names = {path.relative_to(ROOT).as_posix() for path in files}
    # The scan covers what users copy from; a rename must not silently empty it.
    assert {
        "README.md",
        "CHANGELOG.md",
        "examples/docker/Dockerfile",
        "examples/github-actions/pythons.yml",
        "examples/github-actions/upgrade.yml",
        "examples/air-gapped/airgap.sh",
        "bench/README.md",
        "pylock/cli.py",
        "tests/e2e/docker_e2e.py",
    } <= names
    problems = [
        f"{path.relative_to(ROOT).as_posix()}: {found}"
        for path in files
        for found in bare_installs(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert problems == []


def test_the_examples_install_the_distribution_by_its_name() -> None:
    for name in ("docker/Dockerfile", "github-actions/pythons.yml", "github-actions/upgrade.yml"):
        assert DISTRIBUTION in (ROOT / "examples" / name).read_text(), name
    readme = (ROOT / "README.md").read_text()
    assert f"pip install {DISTRIBUTION}" in readme


def test_the_installed_distribution_is_pythons_lock() -> None:
    """The checkout under test is installed (editable) as pythons-lock, at pylock's version."""
    assert importlib.metadata.version(DISTRIBUTION) == pylock.__version__
    scripts = importlib.metadata.distribution(DISTRIBUTION).entry_points
    assert [(e.name, e.value) for e in scripts if e.group == "console_scripts"] == [
        ("pylock", "pylock.entry:console")
    ]


def test_example_pins_follow_the_version() -> None:
    """The examples pin this release series; bumping `__version__` must bump them too."""
    major_minor = ".".join(pylock.__version__.split(".")[:2])
    dockerfile = (ROOT / "examples" / "docker" / "Dockerfile").read_text()
    assert f"ARG PYLOCK_VERSION={pylock.__version__}\n" in dockerfile
    docker_readme = (ROOT / "examples" / "docker" / "README.md").read_text()
    assert f"| `PYLOCK_VERSION` | `{pylock.__version__}` |" in docker_readme
    for name in ("examples/github-actions/pythons.yml", "examples/github-actions/upgrade.yml"):
        pins = re.findall(r"pythons-lock==([0-9.*]+)", (ROOT / name).read_text())
        assert pins and set(pins) == {f"{major_minor}.*"}, (name, pins)
    readme_pins = re.findall(r"pythons-lock==([0-9.*]+)", (ROOT / "README.md").read_text())
    assert readme_pins and set(readme_pins) == {f"{major_minor}.*"}
