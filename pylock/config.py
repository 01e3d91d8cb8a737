"""The ``pythons.toml`` model, its strict loader, and the digest a lock records (pure).

The loader structures each table with one cattrs converter (strict types, kebab-case
keys, no unknown keys), then checks the rules that span fields and tables, and reports
every problem of the file in one :class:`~pylock.errors.ConfigError`. cattrs is
imported only when a file is actually loaded: a no-op ``pylock sync`` needs nothing
but :func:`digests_of_file`, which is plain :mod:`tomllib` and :mod:`json`.

>>> config = loads_config('[python.app]\\nversion = "3.13"\\n')
>>> config.pythons[0].platforms, str(config.pythons[0].specifier)
(('host',), '==3.13.*')
>>> loads_config('[python.app]\\nverison = "3.13"\\n')
Traceback (most recent call last):
...
pylock.errors.ConfigError: pythons.toml: python.app.verison: unknown key (did you mean 'version'?)
"""

from __future__ import annotations

import datetime
import difflib
import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NewType, TypeVar

import attrs
from packaging.specifiers import SpecifierSet

from pylock.bounded import toml_loads
from pylock.errors import (
    ConfigError,
    Problem,
    describe_toml_value,
    missing_project_file,
    shorten,
    shown,
)
from pylock.fsutil import CONFIG_FILENAME, broken_link, display_path
from pylock.lockfile import (
    URL_SHOWN,
    NamedPythons,
    artifact_url_problem,
    build_problem,
    case_problem,
    find_conflict,
    is_sha256,
    name_problem,
)
from pylock.platforms import HOST, Platform, is_host
from pylock.urls import has_credentials, redact
from pylock.versions import Flavor, Implementation, Variant, parse_request

if TYPE_CHECKING:
    import cattrs


_E = TypeVar("_E", Implementation, Variant, Flavor)


@attrs.frozen(kw_only=True)
class PythonRequest:
    """One ``[python.NAME]`` table, with ``[defaults]`` merged in and defaults filled."""

    #: The table key; also the install directory name.
    name: str
    #: Which implementation to install.
    implementation: Implementation = Implementation.CPYTHON
    #: The version request as written (``"3.13"``), or ``None`` for a direct-URL entry.
    version: str | None = None
    #: Build variant.
    variant: Variant = Variant.DEFAULT
    #: Preferred flavor; the resolver falls back along :meth:`Flavor.fallbacks`.
    flavor: Flavor = Flavor.INSTALL_ONLY_STRIPPED
    #: Pinned upstream build tag, or ``None`` for the newest.
    build: str | None = None
    #: Whether pre-release versions may be chosen.
    prereleases: bool = False
    #: Platform keys as written, possibly including ``"host"``; never empty, no duplicates.
    platforms: tuple[str, ...] = ("host",)
    #: A direct artifact URL instead of an upstream look-up.
    url: str | None = None
    #: The direct artifact's sha256, if the user gave it.
    sha256: str | None = None
    #: Whether this is the default interpreter (``python3`` in ``--bin-dir``).
    default: bool = False

    @property
    def specifier(self) -> SpecifierSet | None:
        """The parsed version request (``3.13`` becomes ``==3.13.*``)."""
        return parse_request(self.version) if self.version is not None else None


@attrs.frozen(kw_only=True)
class Config(NamedPythons[PythonRequest]):
    """A whole ``pythons.toml``."""

    #: Interpreters, sorted by name.
    pythons: tuple[PythonRequest, ...]
    #: ``sha256:<hex>`` over the normalized requests; recorded as the lock's ``config-digest``.
    digest: str
    #: The digest pylock 0.2.0 gave this file, where it differs (a platform spelt by an
    #: alias): a lock it made is just as fresh (see :func:`config_digests`).
    earlier_digest: str | None = None

    @property
    def digests(self) -> tuple[str, ...]:
        """Every ``config-digest`` a fresh lock of this file may carry, the current first."""
        return (self.digest,) if self.earlier_digest is None else (self.digest, self.earlier_digest)

    @property
    def default(self) -> PythonRequest | None:
        """The interpreter marked ``default = true``, if any."""
        for python in self.pythons:
            if python.default:
                return python
        return None


# -- the raw tables ------------------------------------------------------------------------

# Value types: each has its own structure hook, so a bad value is reported at its field.
VersionText = NewType("VersionText", str)
BuildTag = NewType("BuildTag", str)
PlatformKey = NewType("PlatformKey", str)
Url = NewType("Url", str)
Sha256 = NewType("Sha256", str)


@attrs.frozen(kw_only=True)
class _Table:
    """A ``[python.NAME]`` or ``[defaults]`` table as written; ``None`` means not set."""

    #: ``implementation``.
    implementation: Implementation | None = None
    #: ``version``: a request, validated but kept as written.
    version: VersionText | None = None
    #: ``variant``.
    variant: Variant | None = None
    #: ``flavor``.
    flavor: Flavor | None = None
    #: ``build``: an upstream build tag.
    build: BuildTag | None = None
    #: ``prereleases``.
    prereleases: bool | None = None
    #: ``platforms``: known keys or ``host``, non-empty, no duplicates.
    platforms: tuple[PlatformKey, ...] | None = None
    #: ``url``: a direct artifact.
    url: Url | None = None
    #: ``sha256`` of the direct artifact.
    sha256: Sha256 | None = None
    #: ``default``.
    default: bool | None = None


def _toml_key(field_name: str) -> str:
    """The TOML spelling of a field: ``build_date`` is written ``build-date``."""
    return field_name.replace("_", "-")


#: The keys a ``[python.NAME]`` table accepts, in documentation order.
KEYS: tuple[str, ...] = tuple(_toml_key(a.name) for a in attrs.fields(_Table))
_FIELD_OF_KEY = {_toml_key(a.name): a.name for a in attrs.fields(_Table)}
#: Keys that describe one artifact or one interpreter, so ``[defaults]`` may not set them.
_NOT_IN_DEFAULTS = ("url", "sha256", "default")
#: Keys that mean something only for CPython builds from python-build-standalone.
_CPYTHON_ONLY = ("variant", "flavor")
#: Keys that steer an upstream look-up, which a direct ``url`` entry does not do.
_UPSTREAM_ONLY = ("version", "build", "prereleases")
_TOP_KEYS = ("defaults", "python")
_EMPTY_HINT = 'add an interpreter, e.g. a [python.main] table with version = "3.13"'

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# -- messages ------------------------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    """Append ``key`` to a TOML path, quoting it where TOML would (``python."3.12"``)."""
    shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key)
    return f"{path}.{shown}" if path else shown


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return close[0] if close else None


def _unknown_key(key: str, allowed: tuple[str, ...]) -> str:
    guess = _did_you_mean(key, allowed)
    if guess:
        return f"unknown key (did you mean {shown(guess)}?)"
    return f"unknown key (expected one of: {', '.join(allowed)})"


class _Invalid(ValueError):
    """A value a structure hook rejected; the message is shown to the user as it is."""


def _expected_string(value: object) -> _Invalid:
    text = f"expected a string, got {describe_toml_value(value)}"
    if isinstance(value, int) and not isinstance(value, bool):
        text += f' (put it in quotes: "{shorten(str(value), 40)}")'
    elif isinstance(value, float):
        text += " (put it in quotes; unquoted, 3.10 reads as the number 3.1)"
    return _Invalid(text)


# -- structure hooks -------------------------------------------------------------------------


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise _expected_string(value)
    return value


def _strict_bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    text = f"expected true or false, got {describe_toml_value(value)}"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        text += f" (write it without quotes: {value.strip().lower()})"
    raise _Invalid(text)


def _strict_int(value: object, _: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected an integer, got {describe_toml_value(value)}")


def _enum_value(value: object, enum_type: type[_E]) -> _E:
    if not isinstance(value, str):
        raise _expected_string(value)
    try:
        return enum_type(value)
    except ValueError:
        allowed = [str(member) for member in enum_type]
        guess = _did_you_mean(value, allowed)
        if guess:
            raise _Invalid(f"unknown value {shown(value)} (did you mean {shown(guess)}?)") from None
        raise _Invalid(
            f"unknown value {shown(value)} (expected one of: {', '.join(allowed)})"
        ) from None


def _version_text(value: object, _: object) -> str:
    text = _strict_str(value, None)
    try:
        parse_request(text)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return text


def _build_tag(value: object, _: object) -> str:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        # `build = 2025-10-14`: TOML reads a date. Upstream's tags are the date's digits.
        raise _Invalid(
            f'expected a string, got a date (put it in quotes as upstream writes its tags: "'
            f'{value:%Y%m%d}")'
        )
    text = _strict_str(value, None)
    problem = build_problem(text)
    if problem is not None:
        raise _Invalid(problem)
    return text


def _platform_key(value: object, _: object) -> str:
    text = _strict_str(value, None)
    if is_host(text):
        return HOST
    try:
        # Aliases ("linux-amd64", "aarch64-apple-darwin") become the canonical key here,
        # so the resolver, duplicate checks and the lock only ever see canonical keys.
        return Platform.parse(text).key
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _url(value: object, _: object) -> str:
    text = _strict_str(value, None)
    problem = artifact_url_problem(text)
    if problem is not None:
        raise _Invalid(problem)
    if has_credentials(text):
        # The lock is committed to git: a secret in the URL would be published with it.
        raise _Invalid(
            f"URL {shown(redact(text), URL_SHOWN)} carries credentials, which would be written to "
            "pythons.lock (put them in ~/.netrc, or keep the URL public and map it to the "
            "private one with PYLOCK_URL_REWRITES)"
        )
    return text


def _sha256(value: object, _: object) -> str:
    text = _strict_str(value, None)
    if is_sha256(text):
        return text
    if text.startswith("sha256:"):
        raise _Invalid(
            f"invalid sha256 {shown(text, 80)} (write only the 64 hex digits, no 'sha256:')"
        )
    raise _Invalid(f"invalid sha256 {shown(text, 80)} (expected 64 lowercase hex digits)")


def _platforms_hook(converter: cattrs.Converter) -> Callable[[object, object], tuple[str, ...]]:
    from cattrs.errors import IterableValidationError, IterableValidationNote

    def structure(value: object, type_: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            text = f"expected an array of platform keys, got {describe_toml_value(value)}"
            if isinstance(value, str):
                text += f" (write it as a list: [{json.dumps(value)}])"
            raise _Invalid(text)
        if not value:
            raise _Invalid('empty (expected at least one platform key, e.g. ["host"])')
        errors: list[Exception] = []
        keys: list[str] = []
        first_index: dict[str, int] = {}
        for index, item in enumerate(value):
            try:
                key = converter.structure(item, PlatformKey)
                if key in first_index:
                    raise _Invalid(
                        f"{shown(key)} is listed twice (first as platforms[{first_index[key]}])"
                    )
                first_index[key] = index
                keys.append(key)
            except Exception as exc:
                note = IterableValidationNote(f"platforms @ index {index}", index, PlatformKey)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring platforms", errors, tuple)
        return tuple(keys)

    return structure


@functools.cache
def _converter() -> cattrs.Converter:
    """The one converter for ``pythons.toml``, built on first use (cattrs is slow to import)."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn, override

    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    # The defaults would turn "false" into True and 5 into "5"; a config must say what it means.
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(int, _strict_int)
    for enum_type in (Implementation, Variant, Flavor):
        converter.register_structure_hook(enum_type, _enum_value)
    converter.register_structure_hook(VersionText, _version_text)
    converter.register_structure_hook(BuildTag, _build_tag)
    converter.register_structure_hook(PlatformKey, _platform_key)
    converter.register_structure_hook(Url, _url)
    converter.register_structure_hook(Sha256, _sha256)
    platforms_type = tuple[PlatformKey, ...]
    converter.register_structure_hook_func(
        lambda t: t == platforms_type, _platforms_hook(converter)
    )

    def kebab_case(cls: type) -> Any:
        renames: dict[str, Any] = {
            a.name: override(rename=_toml_key(a.name))
            for a in attrs.fields(cls)
            if _toml_key(a.name) != a.name
        }
        return make_dict_structure_fn(cls, converter, **renames)

    converter.register_structure_hook_factory(attrs.has, kebab_case)
    return converter


def _problems_from(exc: BaseException, path: str, allowed: tuple[str, ...]) -> list[Problem]:
    """Flatten a cattrs error tree into problems at TOML paths (after ``cattrs.transform_error``).

    cattrs names attributes (``build_date``); the user wrote TOML keys (``build-date``).
    """
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

    if isinstance(exc, IterableValidationError):
        problems: list[Problem] = []
        with_notes, without = exc.group_exceptions()
        for sub, item in with_notes:
            problems += _problems_from(sub, f"{path}[{item.index}]", allowed)
        for sub in without:
            problems += _problems_from(sub, path, allowed)
        return problems
    if isinstance(exc, ClassValidationError):
        problems = []
        with_attrs, without = exc.group_exceptions()
        for sub, attribute in with_attrs:
            problems += _problems_from(sub, _key_path(path, _toml_key(attribute.name)), allowed)
        for sub in without:
            problems += _problems_from(sub, path, allowed)
        return problems
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            Problem(_key_path(path, key), _unknown_key(key, allowed))
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, _Invalid):
        return [Problem(path, str(exc))]
    # A hook we do not own failed; still a config problem, not a crash.
    return [Problem(path, f"invalid value ({exc})")]


def _structure(raw: Mapping[str, Any], path: str, problems: list[Problem]) -> _Table | None:
    from cattrs.errors import BaseValidationError

    try:
        return _converter().structure(raw, _Table)
    except (BaseValidationError, _Invalid) as exc:
        found = _problems_from(exc, path, KEYS)
    # cattrs reports in attribute order; a person reads the file top to bottom.
    order = {_key_path(path, key): index for index, key in enumerate(raw)}

    def position(problem: Problem) -> int:
        for prefix, index in order.items():
            if problem.path == prefix or problem.path.startswith((prefix + ".", prefix + "[")):
                return index
        return len(order)

    problems += sorted(found, key=position)
    return None


# -- merging and the digest (cattrs-free) --------------------------------------------------------


def _merge(defaults: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """``[defaults]`` under one ``[python.NAME]``, keeping only what applies to it.

    A default flavor or variant says nothing about a PyPy entry, and a default version
    or build says nothing about a direct ``url``, so those are not inherited; set on the
    entry itself, they are errors instead (but a version, which checks the archive's).
    """
    merged = {**defaults, **table}
    inherited = [key for key in merged if key not in table]
    if merged.get("implementation", "cpython") != "cpython":
        for key in _CPYTHON_ONLY:
            if key in inherited:
                del merged[key]
    if "url" in merged:
        for key in _UPSTREAM_ONLY:
            if key in inherited:
                del merged[key]
    return merged


def _normalized(name: str, merged: Mapping[str, Any], *, aliases: bool = True) -> dict[str, Any]:
    """One request in canonical form: every key present, the version as a specifier set.

    Values are not coerced, so an invalid document cannot digest like a valid one.
    ``aliases=False`` keeps platform keys as written, as pylock 0.2.0 did.
    """
    version = merged.get("version")
    if version is not None:
        if not isinstance(version, str):
            raise ValueError(f"python.{name}.version is not a string")
        version = str(parse_request(version))
    platforms = merged.get("platforms", [HOST])
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        raise ValueError(f"python.{name}.platforms is not an array of strings")
    canonical = {
        "name": name,
        "implementation": merged.get("implementation", str(Implementation.CPYTHON)),
        "version": version,
        "variant": merged.get("variant", str(Variant.DEFAULT)),
        "flavor": merged.get("flavor", str(Flavor.INSTALL_ONLY_STRIPPED)),
        "build": merged.get("build"),
        "prereleases": merged.get("prereleases", False),
        "platforms": sorted(_platform_spelling(p) if aliases else p for p in platforms),
        "url": merged.get("url"),
        "sha256": merged.get("sha256"),
        "default": merged.get("default", False),
    }
    unknown = {k: v for k, v in merged.items() if k not in canonical}
    if unknown:
        canonical["unknown"] = unknown
    return canonical


def _platform_spelling(key: str) -> str:
    """The key a platform alias means (as the loader reads it); other text as it is.

    Canonical keys map to themselves, so locks made before aliases were normalized
    keep their digest. Text that names no platform is kept: it is a config error.
    """
    if is_host(key):
        return HOST
    try:
        return Platform.parse(key).key
    except ValueError:
        return key


def config_digests(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The current :func:`config_digest` of a parsed ``pythons.toml``, then the one pylock
    0.2.0 computed if it differs: it digested platform aliases as written, so its locks of a
    file that spells a platform ``linux-amd64`` must not turn stale on an upgrade (nor
    flip back and forth between teammates on either version). Raise ``ValueError`` as
    :func:`config_digest` does."""
    current = config_digest(document)
    earlier = config_digest(document, aliases=False)
    return (current,) if earlier == current else (current, earlier)


def config_digest(document: Mapping[str, Any], *, aliases: bool = True) -> str:
    """``sha256:<hex>`` of the normalized requests of a parsed ``pythons.toml``.

    Equivalent spellings digest alike: ``"3.13"`` and ``"==3.13.*"``, platforms in any
    order or by any alias (``linux-amd64`` for ``linux-x86_64-gnu``), a key set in
    ``[defaults]`` or on each table. Raise ``ValueError`` for a document too malformed
    to normalize.

    >>> a = config_digest({"python": {"app": {"version": "3.13"}}})
    >>> a == config_digest({"python": {"app": {"version": "==3.13.*", "platforms": ["host"]}}})
    True
    """
    defaults = document.get("defaults", {})
    pythons = document.get("python", {})
    if not isinstance(defaults, dict) or not isinstance(pythons, dict):
        raise ValueError("[defaults] and [python] must be tables")
    requests = []
    for name, table in sorted(pythons.items()):
        if not isinstance(table, dict):
            raise ValueError(f"python.{name} is not a table")
        requests.append(_normalized(name, _merge(defaults, table), aliases=aliases))
    canonical: dict[str, Any] = {"digest-version": 1, "python": requests}
    unknown = {k: v for k, v in document.items() if k not in _TOP_KEYS}
    if unknown:
        canonical["unknown"] = unknown
    try:
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, RecursionError):
        raise ValueError("the document cannot be normalized") from None
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_text(path: Path) -> str:
    from pylock.ownfiles import read_project_file

    data = read_project_file(path)
    # utf-8-sig: Windows editors like to start files with a byte-order mark TOML forbids.
    return data.decode("utf-8-sig")


def digests_of_file(path: Path) -> tuple[str, ...]:
    """:func:`config_digests` of ``pythons.toml`` at ``path``; none if it cannot be read or
    parsed.

    This is the staleness check of ``pylock sync``: no cattrs, no validation.
    """
    try:
        return config_digests(toml_loads(_read_text(path)))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, RecursionError):
        return ()


# -- validation --------------------------------------------------------------------------------


def _check_entry(
    path: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    broken: frozenset[str],
    problems: list[Problem],
) -> None:
    """The rules that span keys of one entry, on the merged (already well-typed) values.

    ``broken`` names the ``[defaults]`` keys that were themselves invalid: what the entry
    would inherit from them is unknown, so the rules that depend on it are skipped.
    """
    merged = _merge(defaults, table)

    def known(key: str) -> bool:
        return key in table or key not in broken

    implementation = merged.get("implementation", "cpython")
    url = merged.get("url")
    if url is None and merged.get("version") is None and known("version"):
        problems.append(
            Problem(
                _key_path(path, "version"),
                'missing (expected e.g. "3.13"; only an entry with a url may leave it out)',
            )
        )
    if url is not None and "build" in table:
        problems.append(
            Problem(
                _key_path(path, "build"),
                "not allowed together with url (a direct URL is one exact build already)",
            )
        )
    if url is not None and "prereleases" in table:
        problems.append(
            Problem(
                _key_path(path, "prereleases"),
                "not allowed together with url (a direct URL's version is taken as it is)",
            )
        )
    if url is None and "sha256" in table:
        problems.append(
            Problem(
                _key_path(path, "sha256"),
                "only allowed together with url (upstream builds come with their hashes)",
            )
        )
    if implementation != "cpython" and known("implementation"):
        variant = table.get("variant", "default")
        if variant != "default":
            problems.append(
                Problem(
                    _key_path(path, "variant"),
                    f"the {shown(variant)} variant exists only for cpython, not {implementation}",
                )
            )
        if "flavor" in table:
            problems.append(
                Problem(
                    _key_path(path, "flavor"),
                    f"flavor applies only to cpython ({implementation} has one archive "
                    "per platform)",
                )
            )
    platforms = merged.get("platforms", [HOST])
    if url is not None and len(platforms) != 1 and known("platforms"):
        where = "" if "platforms" in table else " (inherited from [defaults])"
        problems.append(
            Problem(
                _key_path(path, "platforms"),
                f"a url is one archive for one platform, but {len(platforms)} platforms are "
                f'listed{where}; set platforms = ["<key>"] on this entry',
            )
        )


def _check_document(document: Mapping[str, Any]) -> tuple[list[Problem], bool]:
    """Every problem of the document, and whether it lacks interpreters altogether."""
    problems: list[Problem] = []
    for key in document:
        if key in _TOP_KEYS:
            continue
        message = _unknown_key(key, _TOP_KEYS)
        if key in KEYS:
            message = "unknown key (interpreter settings go in [defaults] or [python.NAME])"
        problems.append(Problem(_key_path("", key), message))

    raw_defaults = document.get("defaults", {})
    # The valid part of [defaults] still applies, so one bad default does not hide the
    # problems of every entry.
    defaults: dict[str, Any] = {}
    if not isinstance(raw_defaults, dict):
        problems.append(
            Problem("defaults", f"expected a table, got {describe_toml_value(raw_defaults)}")
        )
        broken = frozenset(KEYS)
    else:
        for key, value in raw_defaults.items():
            if key in _NOT_IN_DEFAULTS:
                problems.append(
                    Problem(
                        _key_path("defaults", key),
                        "not allowed in [defaults] (it belongs to one [python.NAME] table)",
                    )
                )
            elif _structure({key: value}, "defaults", problems) is not None:
                defaults[key] = value
        broken = frozenset(raw_defaults) - frozenset(defaults)

    raw_pythons = document.get("python")
    if raw_pythons is None or raw_pythons == {}:
        problems.append(Problem("", "no interpreters (expected at least one [python.NAME] table)"))
        return problems, True
    if not isinstance(raw_pythons, dict):
        text = f"expected tables such as [python.app], got {describe_toml_value(raw_pythons)}"
        if isinstance(raw_pythons, list):
            text += " ([[python]] is the format of pythons.lock)"
        problems.append(Problem("python", text))
        return problems, False

    seen: dict[str, str] = {}
    defaults_named: list[str] = []
    for name, raw in raw_pythons.items():
        path = _key_path("python", name)
        bad_name = name_problem(name)
        if bad_name:
            problems.append(Problem(path, bad_name))
        folded = name.casefold()
        if folded in seen:
            problems.append(Problem(path, case_problem(name, seen[folded])))
        seen.setdefault(folded, name)
        if not isinstance(raw, dict):
            text = f"expected a table, got {describe_toml_value(raw)}"
            if isinstance(raw, str):
                text += f" (write [{path}] with version = {json.dumps(raw)})"
            problems.append(Problem(path, text))
            continue
        if raw.get("default") is True:
            defaults_named.append(name)
        if _structure(raw, path, problems) is not None:
            _check_entry(path, raw, defaults, broken, problems)
    if len(defaults_named) > 1:
        problems.append(
            Problem(
                "python",
                "more than one interpreter has default = true: "
                + ", ".join(repr(n) for n in defaults_named)
                + " (at most one may be the default)",
            )
        )
    return problems, False


def _request(name: str, table: _Table) -> PythonRequest:
    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return PythonRequest(
        name=name,
        implementation=pick(table.implementation, Implementation.CPYTHON),
        version=table.version,
        variant=pick(table.variant, Variant.DEFAULT),
        flavor=pick(table.flavor, Flavor.INSTALL_ONLY_STRIPPED),
        build=table.build,
        prereleases=pick(table.prereleases, False),
        platforms=pick(table.platforms, (HOST,)),
        url=table.url,
        sha256=table.sha256,
        default=pick(table.default, False),
    )


def from_document(document: Mapping[str, Any], *, filename: str = CONFIG_FILENAME) -> Config:
    """Validate parsed TOML as a config; raise :class:`ConfigError` listing every problem."""
    problems, empty = _check_document(document)
    if problems:
        raise ConfigError(filename, problems, hint=_EMPTY_HINT if empty else None)
    defaults = document.get("defaults", {})
    requests = []
    for name, raw in document["python"].items():
        # Both halves passed on their own, so their merge structures without error.
        problems_here: list[Problem] = []
        table = _structure(_merge(defaults, raw), _key_path("python", name), problems_here)
        if table is None:
            raise ConfigError(filename, problems_here)
        requests.append(_request(name, table))
    digests = config_digests(document)
    return Config(
        pythons=tuple(sorted(requests, key=lambda p: p.name)),
        digest=digests[0],
        earlier_digest=digests[1] if len(digests) > 1 else None,
    )


def loads_config(text: str, *, filename: str = CONFIG_FILENAME) -> Config:
    """Parse and validate the text of a ``pythons.toml``."""
    try:
        document = toml_loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        conflict = find_conflict(text)
        if conflict is not None:
            # What a merge left is not a TOML typo: say which, as the lock's reader does.
            raise ConfigError(
                filename,
                [Problem("", f"unresolved git merge conflict (line {conflict.line}: '<<<<<<<')")],
                hint=f"resolve the conflict in {filename}, then run `pylock lock`",
            ) from None
        raise ConfigError(filename, [Problem("", f"invalid TOML: {exc}")]) from None
    except RecursionError:
        raise ConfigError(filename, [Problem("", "invalid TOML: nested too deeply")]) from None
    return from_document(document, filename=filename)


def load_config(path: Path) -> Config:
    """Read and validate ``pythons.toml`` at ``path``."""
    filename = display_path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        target = broken_link(path)
        if target is not None:  # `pylock init` would call it one that already exists
            raise ConfigError(
                filename,
                [Problem("", f"a symbolic link to {target}, which does not exist")],
                hint="point it at an existing file, or remove it and run `pylock init`",
            ) from None
        missing = ConfigError(
            filename,
            [Problem("", "not found")],
            hint="run `pylock init` to write a starter pythons.toml",
        )
        raise missing_project_file(missing, path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            filename, [Problem("", f"not valid UTF-8 (byte {exc.start}); TOML files are UTF-8")]
        ) from None
    except OSError as exc:
        raise ConfigError(filename, [Problem("", f"cannot read: {exc.strerror or exc}")]) from None
    return loads_config(text, filename=filename)
