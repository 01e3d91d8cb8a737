"""Benchmark a cold ``pylock sync`` from the remote cache against the same sync from a mirror.

One real, runnable PBS-style archive (``tests/realpython.py``) is served two ways on loopback:

- by a real OCI registry (Debian's ``docker-registry``, TLS with a CA made here, htpasswd
  auth through a docker ``config.json``), seeded with ``pylock mirror --to oci://...``; the
  sync runs with ``--remote-cache ... --no-origin``;
- by a plain HTTP mirror tree (``bench/throttled.py``); the sync runs with ``--mirror``.

Each run starts from an empty cache and install directory. The two alternate, ``--runs``
times each, and the medians are compared: the target is registry <= 1.1 x mirror.

Run ``python bench/bench_remote_cache.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import throttled  # noqa: E402
from tests import realpython  # noqa: E402
from tests.registry import PASSWORD, USER, RealRegistry, TestPki, registry_binary  # noqa: E402

TARGET = 1.1


def pylock(argv: Sequence[str], env: dict[str, str], log: Path) -> float:
    """Run ``python -m pylock ARGV``; its wall-clock seconds (it must succeed)."""
    command = [sys.executable, "-m", "pylock", *argv]
    with log.open("ab") as out:
        out.write(("$ " + " ".join(command) + "\n").encode())
        out.flush()
        start = time.perf_counter()
        code = subprocess.call(command, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"pylock failed ({code}); see {log}")
    return seconds


def measure(args: argparse.Namespace, work: Path) -> dict[str, object]:
    print("building the archive ...", file=sys.stderr)
    archive = realpython.build_pbs_archive(work / "archives", lean=False, level=args.level)
    print(f"  {archive.filename}: {archive.size / 1e6:.1f} MB", file=sys.stderr)
    mirror_root = realpython.write_mirror_tree(work / "mirror", [archive])
    project = work / "project"
    project.mkdir()
    realpython.write_lock(project, [archive])
    home = work / "home"
    (home / ".docker").mkdir(parents=True)
    pki = TestPki.create(work / "pki")
    log = work / "pylock.log"
    results: dict[str, object] = {"runs": args.runs, "archive_bytes": archive.size}

    with RealRegistry(work / "registry", pki) as registry, throttled.serve(mirror_root) as mirror:
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (home / ".docker" / "config.json").write_text(
            json.dumps({"auths": {registry.host: {"auth": auth}}})
        )
        base_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PYLOCK_") and not key.endswith(("_proxy", "_PROXY"))
        }
        base_env.update(HOME=str(home), SSL_CERT_FILE=str(pki.ca), NO_COLOR="1")
        reference = registry.oci("bench/pythons")
        seed_env = {**base_env, "PYLOCK_CACHE_DIR": str(work / "seed-cache")}
        pylock(
            ["--project", str(project), "mirror", "--to", reference, "--mirror", mirror.base_url],
            seed_env,
            log,
        )
        times: dict[str, list[float]] = {"registry": [], "mirror": []}
        flags = {
            "registry": ["--remote-cache", reference, "--no-origin"],
            "mirror": ["--mirror", mirror.base_url],
        }
        for index in range(args.runs * 2):
            # Alternate, and swap which goes first every other round.
            order = ("registry", "mirror") if index % 4 < 2 else ("mirror", "registry")
            case = order[index % 2]
            run = work / f"run-{index}"
            env = {**base_env, "PYLOCK_CACHE_DIR": str(run / "cache")}
            argv = ["--project", str(project), "sync", "--into", str(run / "pythons")]
            times[case].append(pylock([*argv, *flags[case]], env, log))
            if not (run / "pythons").is_dir():
                raise SystemExit(f"nothing installed by the {case} run; see {log}")
            shutil.rmtree(run)
    medians = {case: statistics.median(values) for case, values in times.items()}
    results["seconds"] = times
    results["median_seconds"] = medians
    results["ratio"] = medians["registry"] / medians["mirror"]
    results["target"] = TARGET
    results["ok"] = results["ratio"] <= TARGET
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", "-n", type=int, default=7, help="runs per case (7)")
    parser.add_argument("--level", type=int, default=6, help="gzip level of the archive (6)")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if registry_binary() is None:
        print("docker-registry is not installed (apt-get install docker-registry)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="pylock-bench-rc-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = measure(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    medians = results["median_seconds"]
    assert isinstance(medians, dict)
    print(
        f"cold sync, median of {args.runs}: registry {medians['registry'] * 1000:.0f} ms, "
        f"mirror {medians['mirror'] * 1000:.0f} ms, ratio {results['ratio']:.3f} "
        f"(target <= {TARGET}) {'OK' if results['ok'] else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
