"""Regenerate pylock's bundled index snapshot, ``pylock/index/snapshot.json.gz``.

Usage::

    python scripts/build_snapshot.py                    # from data/uv-download-metadata.json.gz
    python scripts/build_snapshot.py --uv-json FILE     # from any uv downloads JSON (or .json.gz)
    python scripts/build_snapshot.py --check            # exit 1 if the shipped file is stale

Each input adapter turns one kind of source into an :class:`~pylock.index.model.Index`;
the writer knows nothing about where builds came from. A new source (live upstream
listings) is one more adapter and one more option.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pylock.errors import PylockError  # noqa: E402
from pylock.fsutil import atomic_write_bytes  # noqa: E402
from pylock.index.model import Index  # noqa: E402
from pylock.index.snapshot import (  # noqa: E402
    BUNDLED_PATH,
    dumps_snapshot,
    read_document,
    snapshot_document,
)
from pylock.index.uvjson import newest_tag_date, parse_uv_json  # noqa: E402

#: The snapshot's source data, kept in the repository (and the sdist) gzipped.
DEFAULT_UV_JSON = REPO / "data" / "uv-download-metadata.json.gz"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# -- input adapters ------------------------------------------------------------------------


#: No uv downloads JSON comes near this (3 MB in 2026); a larger input is not one.
MAX_SOURCE_BYTES = 256 * 1024 * 1024


def read_source(path: Path, *, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of ``path``, decompressed if it is gzipped, refusing more than ``limit``."""
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            data = stream.read(limit + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shipped = path.resolve() == DEFAULT_UV_JSON
        raise PylockError(
            f"{path}: damaged gzip data ({exc})",
            hint="restore it: git checkout -- data/" if shipped else "fetch the file again",
        ) from None
    if len(data) > limit:
        raise PylockError(f"{path}: more than {limit} bytes; not a uv downloads JSON file")
    return data


def index_from_uv_json(path: Path, *, source_date: str | None = None) -> Index:
    """An index of every build a uv downloads JSON file lists.

    The source date is the newest PBS tag's date unless given. A ``.gz`` file is read
    decompressed, and named without the suffix, so the snapshot does not depend on how its
    source was stored.
    """
    name = path.name.removesuffix(".gz")
    data = json.loads(read_source(path).decode("utf-8"))
    builds, skipped = parse_uv_json(data, source=name)
    if skipped:
        raise PylockError(
            f"{name}: {len(skipped)} entries for platforms or implementations pylock "
            f"does not know: {', '.join(skipped[:5])}"
        )
    date = source_date or newest_tag_date(builds)
    if date is None:
        raise PylockError(f"{name}: no PBS date tag to date the snapshot; use --source-date")
    return Index(builds=builds, source=name, source_date=date)


# -- live input (helper F: pylock.index.live) -----------------------------------------------


def _add_live_options(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group("live upstream (instead of, or on top of, the uv JSON)")
    live.add_argument(
        "--live",
        action="store_true",
        help="merge what upstream lists now (PBS, PyPy, GraalPy) into the uv JSON seed "
        "(or into the currently bundled snapshot if the uv JSON file does not exist)",
    )
    live.add_argument(
        "--rewrite",
        metavar="FROM=TO",
        action="append",
        default=[],
        help="rewrite upstream URLs (repeatable; also PYLOCK_URL_REWRITES)",
    )
    live.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache for upstream listings (default: PYLOCK_CACHE_DIR or the user cache)",
    )


def index_from_live(args: argparse.Namespace) -> Index:
    """The seed index refreshed from live upstream listings (GITHUB_TOKEN is honoured)."""
    import os

    from pylock.index.live import live_snapshot
    from pylock.index.snapshot import load_bundled
    from pylock.net.fetch import FetchOptions
    from pylock.progress import Reporter
    from pylock.settings import Settings
    from pylock.sync.cache import Cache
    from pylock.urls import UrlRewrites

    if args.uv_json.is_file():
        seed = index_from_uv_json(args.uv_json, source_date=args.source_date)
    else:
        seed = load_bundled()
    settings = Settings.from_environ(os.environ)
    rewrites = UrlRewrites.from_sources(settings.url_rewrites, args.rewrite, None, None)
    cache = Cache(args.cache_dir) if args.cache_dir else Cache.from_settings(settings)
    return live_snapshot(
        seed,
        fetch_options=FetchOptions(rewrites=rewrites),
        metadata_dir=cache.metadata_dir,
        reporter=Reporter(verbosity=1),
        settings=settings,
    )


# -- end of live input ----------------------------------------------------------------------


# -- writer --------------------------------------------------------------------------------


def write_snapshot(index: Index, output: Path) -> int:
    """Write ``index`` to ``output`` atomically; return the number of bytes written."""
    data = dumps_snapshot(index)
    atomic_write_bytes(output, data)
    # Package data must be readable by everyone who installs pylock.
    output.chmod(0o644)
    return len(data)


def is_current(index: Index, output: Path) -> bool:
    """Whether ``output`` already holds exactly ``index`` (compared decoded, not as bytes:
    gzip output differs between zlib builds)."""
    try:
        shipped = read_document(output.read_bytes(), filename=str(output))
    except (OSError, PylockError):
        return False
    expected = json.loads(json.dumps(snapshot_document(index)))
    return bool(shipped == expected)


# -- command line --------------------------------------------------------------------------


def _date(text: str) -> str:
    if not _DATE.match(text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build_snapshot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--uv-json",
        type=Path,
        default=DEFAULT_UV_JSON,
        metavar="FILE",
        help="a uv downloads JSON file (default: %(default)s)",
    )
    parser.add_argument(
        "--source-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="date the source data was current (default: the newest PBS tag's date)",
    )
    parser.add_argument(
        "--output", type=Path, default=BUNDLED_PATH, metavar="FILE", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the output is not what the source gives",
    )
    _add_live_options(parser)
    return parser


def build_index(args: argparse.Namespace) -> Index:
    """Run the input adapter the arguments select."""
    if args.live:
        return index_from_live(args)
    return index_from_uv_json(args.uv_json, source_date=args.source_date)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        index = build_index(args)
    except (OSError, ValueError, PylockError) as exc:
        print(f"build_snapshot: error: {exc}", file=sys.stderr)
        if isinstance(exc, PylockError) and exc.hint:
            print(f"build_snapshot: hint: {exc.hint}", file=sys.stderr)
        return 1
    count = len(index.builds)
    if args.check:
        if is_current(index, args.output):
            print(f"{args.output}: up to date ({count} builds, {index.source_date})")
            return 0
        print(f"{args.output}: stale; run scripts/build_snapshot.py", file=sys.stderr)
        return 1
    size = write_snapshot(index, args.output)
    print(f"{args.output}: {count} builds from {index.source} ({index.source_date}), {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
