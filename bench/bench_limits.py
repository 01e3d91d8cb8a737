"""Time loading and diffing two large locks (30,000 entries each by default).

Usage::

    python bench/bench_limits.py [--entries N] [--runs R] [--source DIR ...]

Each ``--source`` is a pylock checkout (default: this one); give the old one too to
compare before and after in one run, e.g. ``--source /tmp/pylock-main --source .``.
For each source, fresh processes time ``loads`` of the old lock, ``diff_locks`` of
the two, and the whole ``pylock diff OLD NEW`` command. Both locks come from this
checkout's writer; a third of the entries change version and build between them.
Target: the command takes a few seconds, and every step grows linearly with N.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_STEPS = """
import sys, time
from pathlib import Path
from pylock.lockfile import loads
from pylock.diff import diff_locks, render
old_text = Path(sys.argv[1]).read_text(encoding="utf-8")
new_text = Path(sys.argv[2]).read_text(encoding="utf-8")
t = time.perf_counter(); old = loads(old_text); load = time.perf_counter() - t
new = loads(new_text)
t = time.perf_counter(); diff = diff_locks(old, new); compare = time.perf_counter() - t
t = time.perf_counter(); render(diff, "text"); text = time.perf_counter() - t
print(load, compare, text)
"""


def write_locks(directory: Path, entries: int) -> tuple[Path, Path]:
    """Two locks of ``entries`` interpreters; every third one changes build in the second."""
    sys.path.insert(0, str(REPO))
    from pylock.lockfile import Artifact, LockedPython, dumps, make_lock
    from pylock.versions import Implementation

    def lock(build: str, changed: bool) -> str:
        pythons = []
        for i in range(entries):
            moved = changed and i % 3 == 0
            tag = build if moved else "20250708"
            digest = hashlib.sha256(f"{i}-{tag}".encode()).hexdigest()
            artifact = Artifact(
                platform="linux-x86_64-gnu",
                url=f"https://example.test/{tag}/cpython-{i}-x86_64-unknown-linux-gnu.tar.gz",
                sha256=digest,
                size=30_000_000 + i,
            )
            pythons.append(
                LockedPython(
                    name=f"py{i:06d}",
                    implementation=Implementation.CPYTHON,
                    version="3.13.9" if moved else "3.13.5",
                    build=tag,
                    artifacts=(artifact,),
                )
            )
        return dumps(make_lock(pythons, config_digest="sha256:" + "0" * 64))

    old, new = directory / "old.lock", directory / "new.lock"
    old.write_text(lock("20250708", changed=False), encoding="utf-8")
    new.write_text(lock("20251014", changed=True), encoding="utf-8")
    return old, new


def measure(source: Path, old: Path, new: Path, runs: int) -> dict[str, float]:
    """Medians in seconds: load, diff_locks, render, and the whole `pylock diff` command."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    steps: list[list[float]] = []
    command: list[float] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _STEPS, str(old), str(new)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            # Not this checkout's directory: `-c` puts the cwd first on sys.path.
            cwd=old.parent,
        ).stdout
        steps.append([float(x) for x in out.split()])
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pylock", "diff", str(old), str(new)],
            env=env,
            check=True,
            capture_output=True,
            cwd=old.parent,
        )
        command.append(time.perf_counter() - started)
    load, compare, text = (statistics.median(column) for column in zip(*steps, strict=True))
    return {"load": load, "diff": compare, "render": text, "command": statistics.median(command)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, action="append", help="pylock checkout(s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old, new = write_locks(Path(tmp), args.entries)
        size = old.stat().st_size / 1e6
        print(f"{args.entries} entries per lock ({size:.1f} MB), median of {args.runs} runs")
        for source in args.source or [REPO]:
            result = measure(source.resolve(), old, new, args.runs)
            print(
                f"{source}: load {result['load']:.2f} s, diff_locks {result['diff']:.2f} s, "
                f"render {result['render']:.2f} s, `pylock diff` {result['command']:.2f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
