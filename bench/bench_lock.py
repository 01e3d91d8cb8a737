"""Time ``pylock lock --upgrade`` on the multi-platform example (bundled snapshot, no network).

Usage::

    python bench/bench_lock.py [--runs N] [--example DIR]

Each run is a fresh ``python -m pylock`` process, as a user or CI job would start it,
on a temporary copy of the example, so the committed lock is never touched. Prints
the median and the fastest wall time against the target (0.3 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3


def time_lock(project: Path, runs: int) -> list[float]:
    """Wall times of ``runs`` fresh ``pylock lock --upgrade`` processes."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "pylock", "--project", str(project), "-q", "lock", "--upgrade"]
    # One untimed run writes .pyc files, as an installed pylock would already have them.
    subprocess.run(command, check=True, env=env, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def time_snapshot_load(runs: int) -> list[float]:
    """Seconds ``load_bundled()`` takes in fresh interpreters (target: well under 0.1 s)."""
    code = (
        "import time; from pylock.index.snapshot import load_bundled; "
        "t = time.perf_counter(); load_bundled(); print(time.perf_counter() - t)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
            ).stdout
        )
        for _ in range(runs)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs (default: %(default)s)")
    parser.add_argument(
        "--example",
        type=Path,
        default=REPO / "examples" / "multi-platform",
        help="project directory with pythons.toml (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(args.example, project)
        times = time_lock(project, args.runs)
    median = statistics.median(times)
    verdict = "ok" if median < TARGET_SECONDS else "SLOWER THAN TARGET"
    print(
        f"pylock lock --upgrade ({args.example.name}, {args.runs} runs, {os.cpu_count()} cpus): "
        f"median {median * 1000:.0f} ms, fastest {min(times) * 1000:.0f} ms "
        f"(target < {TARGET_SECONDS * 1000:.0f} ms: {verdict})"
    )
    loads = time_snapshot_load(args.runs)
    print(
        f"load_bundled() of the bundled snapshot: median {statistics.median(loads) * 1000:.1f} ms "
        f"(target well under 100 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
