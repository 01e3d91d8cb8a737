"""Benchmark ``pylock sync`` against ``uv python install`` on the same archives.

Both tools install real, runnable PBS-style archives built from interpreters on this machine
(``tests/realpython.py``), served by a loopback HTTP mirror that both reach through their
``--mirror`` flag. Every case runs the tools alternately, N times each, and reports medians:

- cold:   empty cache, fresh install directory (download + verify + extract);
- warm:   archive cached (uv: a pre-filled ``UV_PYTHON_CACHE_DIR``), fresh install directory;
- no-op:  everything already installed;
- three:  three different archives in one warm ``pylock sync`` vs three single syncs;
- peak RSS of the pylock process, and each process's CPU time, from ``wait4`` per run.

Run ``python bench/bench_sync.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import throttled  # noqa: E402
from tests import realpython  # noqa: E402
from tests.realpython import RealArchive  # noqa: E402

#: (label, target, how the measured value is compared)
TARGETS = {
    "cold": 1.1,  # on loopback; 1.05 with --bandwidth (COLD_THROTTLED)
    "warm": 0.8,
    "noop_ms": 40.0,
    "three": 0.75,
    "rss_mib": 64.0,
}
#: The cases besides cold (which always runs: the timeline comes from it).
ALL_CASES = ("warm", "noop", "three")


def _cases(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [case for case in chosen if case not in (*ALL_CASES, "cold")]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown case {unknown[0]!r}: choose from cold, {', '.join(ALL_CASES)}"
        )
    return chosen


#: Cold target when the mirror is throttled: pylock ends within ~0.1 s of the last byte.
COLD_THROTTLED = 1.05


@attrs.frozen
class Run:
    """One timed child process."""

    #: Wall-clock seconds from spawn to exit.
    seconds: float
    #: Peak resident set size of the child, in bytes.
    max_rss: int
    #: CPU seconds (user + system) of the child and its threads: how much of the wall
    #: time was work.
    cpu: float = 0.0
    #: Wall-clock (``time.time()``) spawn and exit, for timelines against the server's log.
    start: float = 0.0
    end: float = 0.0


# The runner spawns every timed command. A child's peak RSS includes the memory of the
# process it was forked from (Linux records the pre-exec high-water mark), so spawning from
# this process, which holds archive data and a server, would inflate pylock's number. The
# runner is a bare interpreter: its own few MiB are below any real command's peak.
_RUNNER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    if job["settle"] and hasattr(os, "sync"):
        os.sync()  # write back the previous run's files and deletions, outside the timing
    with open(job["log"], "ab") as out:
        out.write(("$ " + " ".join(job["argv"]) + "\n").encode())
        out.flush()
        wall_start = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(job["argv"], env=job["env"], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        wall_end = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024
    print(json.dumps({"seconds": seconds, "max_rss": usage.ru_maxrss * scale,
                      "cpu": usage.ru_utime + usage.ru_stime,
                      "returncode": proc.returncode, "start": wall_start, "end": wall_end}),
          flush=True)
"""


class Runner:
    """A small process that runs commands for us and reports time and peak RSS of each."""

    def __init__(self, *, settle: bool = True) -> None:
        self.settle = settle
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RUNNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: Sequence[str], env: dict[str, str], log: Path) -> Run:
        """Run a command to completion; fail the benchmark if it fails."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        job = {"argv": list(argv), "env": env, "log": str(log), "settle": self.settle}
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline())
        if reply["returncode"] != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise SystemExit(
                f"bench: command failed with exit {reply['returncode']}: {' '.join(argv)}\n  "
                + "\n  ".join(tail)
            )
        return Run(
            seconds=reply["seconds"],
            max_rss=reply["max_rss"],
            cpu=reply["cpu"],
            start=reply["start"],
            end=reply["end"],
        )

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait()
        self._proc.stdout.close()


class Bench:
    """Holds the archives, the mirror, the tools' command lines and fresh directories."""

    def __init__(
        self,
        runner: Runner,
        work: Path,
        base_url: str,
        uv_bin: str,
        downloads_json: Path,
        pylock_cmd: Sequence[str],
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.runner = runner
        #: Set for both tools (``SSL_CERT_FILE`` with ``--tls``).
        self.extra_env = dict(extra_env or {})
        self.pylock_cmd = list(pylock_cmd)
        self.work = work
        self.base_url = base_url
        self.uv_bin = uv_bin
        self.downloads_json = downloads_json
        self.log = work / "commands.log"
        self._counter = 0
        self._trash: list[Path] = []

    def fresh(self, label: str) -> Path:
        self._counter += 1
        path = self.work / "runs" / f"{self._counter:04d}-{label}"
        path.mkdir(parents=True)
        return path

    def pylock(
        self,
        project: Path,
        into: Path,
        cache: Path,
        *,
        log: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Run:
        env = realpython.clean_env(
            PYLOCK_CACHE_DIR=str(cache), NO_COLOR="1", **self.extra_env, **(extra_env or {})
        )
        if self.pylock_cmd[1:3] == ["-m", "pylock"]:
            env["PYTHONPATH"] = str(REPO)
        for name in ("PYLOCK_MIRROR", "PYLOCK_URL_REWRITES", "PYLOCK_OFFLINE"):
            env.pop(name, None)
        argv = [
            *self.pylock_cmd,
            "--project",
            str(project),
            "sync",
            "--into",
            str(into),
            "--mirror",
            self.base_url,
        ]
        return self.runner.run(argv, env, log or self.log)

    def uv(self, versions: Sequence[str], install_dir: Path, python_cache: Path | None) -> Run:
        env = realpython.clean_env(
            UV_PYTHON_INSTALL_DIR=str(install_dir),
            UV_CACHE_DIR=str(install_dir.parent / "uv-cache"),
            UV_PYTHON_BIN_DIR=str(install_dir.parent / "uv-bin"),
            UV_NO_CONFIG="1",
            UV_NO_PROGRESS="1",
            **self.extra_env,
        )
        env.pop("UV_PYTHON_CACHE_DIR", None)
        if python_cache is not None:
            env["UV_PYTHON_CACHE_DIR"] = str(python_cache)
        argv = [
            self.uv_bin,
            "python",
            "install",
            "--no-bin",
            "--python-downloads-json-url",
            str(self.downloads_json),
            "--mirror",
            self.base_url,
            *versions,
        ]
        return self.runner.run(argv, env, self.log)

    def cleanup(self, *paths: Path) -> None:
        """Remove a run's trees, but only at the end (:meth:`empty_trash`).

        Deleting 100+ MB of files just before the next timed run slows that run's file
        creation by a factor of two or more on our VMs (the file system is still
        freeing, and discarding, the blocks): a fresh CI runner never pays that.
        """
        self._trash.extend(paths)

    def empty_trash(self) -> None:
        for path in self._trash:
            shutil.rmtree(path, ignore_errors=True)
        self._trash.clear()


def alternate(
    n: int, first: Callable[[], Run], second: Callable[[], Run]
) -> tuple[list[Run], list[Run]]:
    """Run two measurements alternately, swapping which goes first each round."""
    a: list[Run] = []
    b: list[Run] = []
    for i in range(n):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def median_ms(runs: Sequence[Run]) -> float:
    return statistics.median(r.seconds for r in runs) * 1000


def median_cpu_ms(runs: Sequence[Run]) -> float:
    return statistics.median(r.cpu for r in runs) * 1000


def timed(pylock: Sequence[Run], uv: Sequence[Run]) -> dict[str, float]:
    """A case's medians: wall time (what the targets compare) and CPU time, for both tools."""
    return {
        "pylock_ms": median_ms(pylock),
        "uv_ms": median_ms(uv),
        "pylock_cpu_ms": median_cpu_ms(pylock),
        "uv_cpu_ms": median_cpu_ms(uv),
    }


#: Timeline events in order, with their labels; each is an offset from process spawn.
EVENTS = {
    "imports": "imports done (-X importtime, up to the HTTP client)",
    "request": "first request received by the server",
    "first_byte": "first body byte sent",
    "last_byte": "last body byte sent",
    "extracted": "extraction done (newest inode change in the tree)",
    "records": "fix-ups and records done (.pylock/RECORD)",
    "exit": "exit",
}


def tree_times(tree: Path) -> tuple[float, float]:
    """Newest inode change among a tree's files outside ``.pylock/``, and RECORD's.

    ctime, not mtime: extraction sets mtimes from the archive, but every write, chmod or
    utime changes the ctime to now. Fix-ups touch a few files after extraction, so the
    first number is "extraction and fix-ups of files done"; RECORD is written last.
    """
    newest = 0.0
    record = 0.0
    for dirpath, dirnames, filenames in os.walk(tree):
        if Path(dirpath) == tree and ".pylock" in dirnames:
            dirnames.remove(".pylock")
            with contextlib.suppress(OSError):
                record = (tree / ".pylock" / "RECORD").stat().st_ctime
        for name in filenames:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_ctime)
    return newest, record


def timeline(
    run: Run, transfers: Sequence[throttled.Transfer], tree: Path | None
) -> dict[str, float]:
    """One run's events as seconds after spawn (missing events are left out)."""
    events: dict[str, float] = {"exit": run.end - run.start}
    body = [t for t in transfers if t.sent]
    if body:
        events["request"] = min(t.requested for t in body) - run.start
        events["first_byte"] = min(t.first_byte for t in body) - run.start
        events["last_byte"] = max(t.last_byte for t in body) - run.start
    if tree is not None:
        extracted, record = tree_times(tree)
        if extracted:
            events["extracted"] = extracted - run.start
        if record:
            events["records"] = record - run.start
    return events


def median_timeline(lines: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = {k for line in lines for k in line}
    return {k: statistics.median(line[k] for line in lines if k in line) for k in keys}


#: The modules whose import marks "imports done": the first HTTP client a sync loads.
CLIENT_MODULES = ("pylock.net.stdhttp", "aiohttp")


def import_seconds(log: Path) -> tuple[float, float]:
    """From a ``-X importtime`` log: (imports up to and including the HTTP client's, all).

    Top-level lines (one space before the name) are imports run by code, lazy ones
    included, in the order they ran; their cumulative times add up. The HTTP client
    (``pylock.net.stdhttp`` for archives, ``aiohttp`` where it is used) is imported right
    before the first download, so the first number approximates "imports done" as an
    offset from spawn (interpreter start-up imports included).
    """
    total_us = 0
    before_us: int | None = None
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  "):
            with contextlib.suppress(ValueError):
                total_us += int(cumulative.strip())
            if before_us is None and name.strip() in CLIENT_MODULES:
                before_us = total_us
    return (total_us if before_us is None else before_us) / 1e6, total_us / 1e6


def build_archives(out: Path, level: int, count: int) -> list[RealArchive]:
    """The reference archive (running interpreter, full stdlib) and up to two others.

    Distinct versions make distinct archives for both tools; with fewer interpreters here,
    same-version archives under other tags carry a marker file so their hashes differ.
    """
    pythons = list(realpython.host_pythons())
    archives = [realpython.build_pbs_archive(out, lean=False, level=level)]
    others = [p for p in pythons if p.version != archives[0].version]
    for i in range(1, count):
        if others:
            python = others.pop(0)
            archives.append(
                realpython.build_pbs_archive(out, prefix=python.prefix, lean=False, level=level)
            )
        else:
            tag = f"2099010{i + 1}"
            archives.append(
                realpython.build_pbs_archive(
                    out, tag=tag, lean=False, level=level, extra_files={"share/bench": tag.encode()}
                )
            )
    return archives


def check_installed(root: Path) -> None:
    """Prove an install runs (outside the timings): its prefix is where it was put."""
    out = subprocess.run(
        [str(root / "bin" / "python3"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        env=realpython.clean_env(),
        check=False,
    )
    if out.returncode != 0 or out.stdout.strip() != str(root):
        raise SystemExit(f"bench: {root} does not run: {out.stdout}{out.stderr}")


def find_uv() -> str:
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("bench: uv is not installed (pip install uv)")
    return found


def pylock_sync_available() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "pylock", "sync", "--help"],
        capture_output=True,
        env=realpython.clean_env(PYTHONPATH=str(REPO)),
        check=False,
    )
    return result.returncode == 0


def install_pylock(venv: Path, uv_bin: str) -> list[str]:
    """Install this checkout into a fresh venv and return its ``pylock`` command.

    A clean environment is what users run. The interpreter running this script may carry
    many site-packages with ``.pth`` files whose start-up cost (tens of ms here) would
    swamp the no-op number without being pylock's.
    """
    print(f"installing this checkout into {venv} ...", file=sys.stderr)
    env = realpython.clean_env(UV_NO_CONFIG="1")
    subprocess.run(
        [uv_bin, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True
    )
    # Compiled at install, as pip does by default: the first timed run must not pay for
    # writing every module's bytecode (uv pip leaves that to the first import).
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv_bin, "pip", "install", "-q", "--compile-bytecode", "--python", python, str(REPO)],
        env=env,
        check=True,
    )
    return [str(venv / "bin" / "pylock")]


def tls_setup(directory: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A server context for 127.0.0.1 from a new CA, and the environment both tools trust it
    by: ``SSL_CERT_FILE`` naming this system's default CA bundle with the new CA added, so
    that each loads as many certificates as it would against a public server."""
    from tests.pki import TestCa

    directory.mkdir(parents=True)
    ca, cert, key = TestCa.create("pylock bench CA").write_server_pair(directory)
    paths = ssl.get_default_verify_paths()
    system = next(
        (p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)), None
    )
    if system is None:
        # A store that is a directory only: the bundle would hold the test CA alone, and
        # the bench would time a one-certificate load against uv's.
        raise SystemExit("bench: --tls needs this system's CA bundle file (none found)")
    bundle = directory / "bundle.pem"
    bundle.write_bytes(Path(system).read_bytes() + b"\n" + ca.read_bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, {"SSL_CERT_FILE": str(bundle)}


def measure(args: argparse.Namespace, work: Path, runner: Runner) -> dict[str, Any]:
    n = args.runs
    print(f"building archives in {work / 'archives'} ...", file=sys.stderr)
    archives = build_archives(work / "archives", args.level, 3)
    ref = archives[0]
    for a in archives:
        print(
            f"  {a.filename}: {a.size / 1e6:.1f} MB, {a.unpacked_size / 1e6:.1f} MB in "
            f"{a.members} files unpacked",
            file=sys.stderr,
        )
    mirror_root = realpython.write_mirror_tree(work / "mirror", archives)
    distinct = len({a.version for a in archives}) == len(archives)
    downloads_json = realpython.write_uv_downloads_json(work / "downloads.json", archives)
    names = realpython.default_names(archives)
    projects = work / "projects"
    single = []
    for name, archive in zip(names, archives, strict=True):
        project = projects / name
        project.mkdir(parents=True)
        realpython.write_lock(project, [archive], names=[name])
        single.append(project)
    three = projects / "three"
    three.mkdir()
    realpython.write_lock(three, archives, names=names)

    results: dict[str, Any] = {
        "runs": n,
        "archive": {
            "filename": ref.filename,
            "size": ref.size,
            "unpacked": ref.unpacked_size,
            "files": ref.members,
        },
    }
    rss: dict[str, list[int]] = {}

    tls, tls_env = tls_setup(work / "tls") if args.tls else (None, {})
    with throttled.serve(mirror_root, args.bandwidth, tls) as mirror:
        base = mirror.base_url
        uv_bin = find_uv()
        if args.pylock:
            pylock_cmd = shlex.split(args.pylock)
        elif args.in_place:
            pylock_cmd = [sys.executable, "-m", "pylock"]
        else:
            pylock_cmd = install_pylock(work / "venv", uv_bin)
        results["pylock_command"] = " ".join(pylock_cmd)
        bench = Bench(runner, work, base.rstrip("/"), uv_bin, downloads_json, pylock_cmd, tls_env)

        # -- cold -----------------------------------------------------------------------
        lines: dict[str, list[dict[str, float]]] = {"pylock": [], "uv": []}

        def pylock_cold() -> Run:
            root = bench.fresh("pylock-cold")
            mirror.take()
            run = bench.pylock(single[0], root / "into", root / "cache")
            lines["pylock"].append(timeline(run, mirror.take(), root / "into" / names[0]))
            check_installed(root / "into" / names[0])
            bench.cleanup(root)
            rss.setdefault("cold", []).append(run.max_rss)
            return run

        def uv_cold() -> Run:
            root = bench.fresh("uv-cold")
            mirror.take()
            run = bench.uv([ref.version], root / "installs", None)
            trees = [p for p in (root / "installs").iterdir() if p.is_dir() and "-" in p.name]
            lines["uv"].append(timeline(run, mirror.take(), trees[0] if trees else None))
            bench.cleanup(root)
            return run

        cases = args.cases

        print("cold ...", file=sys.stderr)
        p, u = alternate(n, pylock_cold, uv_cold)
        results["cold"] = timed(p, u)
        # Imports, from a separate untimed run: -X importtime slows what it measures.
        root = bench.fresh("pylock-importtime")
        log = root / "importtime.log"
        bench.pylock(
            single[0],
            root / "into",
            root / "cache",
            log=log,
            extra_env={"PYTHONPROFILEIMPORTTIME": "1"},
        )
        results["timeline"] = {
            "bandwidth_mib": args.bandwidth,
            "tls": args.tls,
            "pylock": median_timeline(lines["pylock"]),
            "uv": median_timeline(lines["uv"]),
        }
        imports, all_imports = import_seconds(log)
        results["timeline"]["pylock"]["imports"] = imports
        results["timeline"]["pylock_all_imports"] = all_imports
        bench.cleanup(root)

        # -- warm -----------------------------------------------------------------------
        pylock_cache = work / "warm" / "pylock-cache"
        uv_cache = work / "warm" / "uv-python-cache"
        if set(cases) - {"cold"}:
            bench.pylock(three, work / "warm" / "prefill-pylock", pylock_cache)
            bench.uv(
                [a.version for a in archives] if distinct else [ref.version],
                work / "warm" / "prefill-uv",
                uv_cache,
            )

        def pylock_warm() -> Run:
            root = bench.fresh("pylock-warm")
            run = bench.pylock(single[0], root / "into", pylock_cache)
            check_installed(root / "into" / names[0])
            bench.cleanup(root)
            rss.setdefault("warm", []).append(run.max_rss)
            return run

        def uv_warm() -> Run:
            root = bench.fresh("uv-warm")
            run = bench.uv([ref.version], root / "installs", uv_cache)
            bench.cleanup(root)
            return run

        if "warm" in cases:
            print("warm ...", file=sys.stderr)
            p, u = alternate(n, pylock_warm, uv_warm)
            results["warm"] = timed(p, u)

        # -- no-op ----------------------------------------------------------------------
        noop_pylock = work / "noop" / "pylock"
        noop_uv = work / "noop" / "uv"
        if "noop" in cases:
            bench.pylock(single[0], noop_pylock, pylock_cache)
            bench.uv([ref.version], noop_uv, uv_cache)

        def pylock_noop() -> Run:
            run = bench.pylock(single[0], noop_pylock, pylock_cache)
            rss.setdefault("noop", []).append(run.max_rss)
            return run

        if "noop" in cases:
            print("no-op ...", file=sys.stderr)
            p, u = alternate(
                n,
                pylock_noop,
                lambda: bench.uv([ref.version], noop_uv, uv_cache),
            )
            results["noop"] = timed(p, u)

        # -- three archives vs three single syncs ---------------------------------------
        def pylock_three() -> Run:
            root = bench.fresh("pylock-three")
            run = bench.pylock(three, root / "into", pylock_cache)
            for name in names:
                check_installed(root / "into" / name)
            bench.cleanup(root)
            rss.setdefault("three", []).append(run.max_rss)
            return run

        def pylock_singles() -> Run:
            root = bench.fresh("pylock-singles")
            # Separate directories: a sync prunes what its lock does not list.
            parts = [
                bench.pylock(project, root / f"into-{i}", pylock_cache)
                for i, project in enumerate(single)
            ]
            bench.cleanup(root)
            rss.setdefault("single", []).extend(r.max_rss for r in parts)
            return Run(
                seconds=sum(r.seconds for r in parts),
                max_rss=max(r.max_rss for r in parts),
                cpu=sum(r.cpu for r in parts),
            )

        if "three" in cases:
            print("three ...", file=sys.stderr)
            p, s = alternate(n, pylock_three, pylock_singles)
            results["three"] = {
                "pylock_ms": median_ms(p),
                "sum_of_singles_ms": median_ms(s),
                "pylock_cpu_ms": median_cpu_ms(p),
                "sum_of_singles_cpu_ms": median_cpu_ms(s),
            }
        if "three" in cases and distinct:

            def uv_three() -> Run:
                root = bench.fresh("uv-three")
                run = bench.uv([a.version for a in archives], root / "installs", uv_cache)
                bench.cleanup(root)
                return run

            results["three"]["uv_ms"] = median_ms([uv_three() for _ in range(n)])
        bench.empty_trash()

    results["rss"] = {
        "pylock_peak_mib": max(max(v) for v in rss.values()) / 2**20,
        "per_case_mib": {case: max(v) / 2**20 for case, v in rss.items()},
    }
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The table, one line per target; returns the names of missed targets."""
    missed = []
    arch = results["archive"]
    print(
        f"\nreference archive: {arch['filename']}\n"
        f"  {arch['size'] / 1e6:.1f} MB compressed, {arch['unpacked'] / 1e6:.1f} MB in "
        f"{arch['files']} files unpacked; medians of {results['runs']} alternating runs\n"
        f"pylock command: {results['pylock_command']}\n"
    )
    header = f"{'case':<32}{'pylock':>11}{'uv / base':>12}{'ratio':>8}   target    "
    print(header)
    print("-" * len(header))

    def line(case: str, ours: str, theirs: str, value: str, target: str, ok: bool) -> None:
        print(
            f"{case:<32}{ours:>11}{theirs:>12}{value:>8}   {target:<10}{'ok' if ok else 'MISSED'}"
        )

    bandwidth = results["timeline"]["bandwidth_mib"]
    cold_label = f"cold at {bandwidth:g} MiB/s" if bandwidth else "cold (download+verify+extract)"
    for key, label in (
        ("cold", cold_label),
        ("warm", "warm (cached archive)"),
    ):
        if key not in results:
            continue
        row = results[key]
        ratio = row["pylock_ms"] / row["uv_ms"]
        target = COLD_THROTTLED if key == "cold" and bandwidth else TARGETS[key]
        ok = ratio <= target
        line(
            label,
            f"{row['pylock_ms']:.0f} ms",
            f"{row['uv_ms']:.0f} ms",
            f"{ratio:.2f}x",
            f"<= {target:.2f}x",
            ok,
        )
        print(f"  (CPU: pylock {row['pylock_cpu_ms']:.0f} ms, uv {row['uv_cpu_ms']:.0f} ms)")
        if not ok:
            missed.append(key)
    if "noop" in results:
        row = results["noop"]
        ok = row["pylock_ms"] <= TARGETS["noop_ms"]
        line(
            "no-op (all installed)",
            f"{row['pylock_ms']:.1f} ms",
            f"{row['uv_ms']:.1f} ms",
            "",
            f"<= {TARGETS['noop_ms']:.0f} ms",
            ok,
        )
        if not ok:
            missed.append("noop")
    if "three" in results:
        row = results["three"]
        ratio = row["pylock_ms"] / row["sum_of_singles_ms"]
        ok = ratio <= TARGETS["three"]
        line(
            "three archives vs 3 singles",
            f"{row['pylock_ms']:.0f} ms",
            f"{row['sum_of_singles_ms']:.0f} ms",
            f"{ratio:.2f}x",
            f"<= {TARGETS['three']:.2f}x",
            ok,
        )
        print(
            f"  (CPU: pylock {row['pylock_cpu_ms']:.0f} ms, "
            f"3 singles {row['sum_of_singles_cpu_ms']:.0f} ms)"
        )
        if not ok:
            missed.append("three")
        if "uv_ms" in row:
            print(f"{'  (uv, three at once, warm)':<32}{'':>11}{row['uv_ms']:.0f} ms".rstrip())
    peak = results["rss"]["pylock_peak_mib"]
    ok = peak <= TARGETS["rss_mib"]
    line("peak RSS of pylock", f"{peak:.1f} MiB", "", "", f"<= {TARGETS['rss_mib']:.0f} MiB", ok)
    per_case = ", ".join(f"{c} {m:.1f}" for c, m in results["rss"]["per_case_mib"].items())
    print(f"  (peak RSS per case, MiB: {per_case})")
    if not ok:
        missed.append("rss")
    print_timeline(results["timeline"])
    return missed


def print_timeline(data: dict[str, Any]) -> None:
    """One cold sync, event by event, seconds after spawn (medians over the cold runs)."""
    where = f"at {data['bandwidth_mib']:g} MiB/s" if data["bandwidth_mib"] else "on loopback"
    if data.get("tls"):
        where += ", over https"
    print(f"\ntimeline of one cold sync {where} (s after spawn; medians of the cold runs)")
    print(f"{'event':<52}{'pylock':>9}{'uv':>9}")
    for key, label in EVENTS.items():
        cells = [
            f"{side[key]:.3f}" if key in side else "-" for side in (data["pylock"], data["uv"])
        ]
        print(f"{label:<52}{cells[0]:>9}{cells[1]:>9}")
    if "pylock_all_imports" in data:
        print(f"  pylock: all imports, lazy ones included: {data['pylock_all_imports']:.3f} s")
    for name in ("pylock", "uv"):
        side = data[name]
        if "last_byte" in side:
            print(f"  {name}: exit - last byte = {side['exit'] - side['last_byte']:.3f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", "-n", type=int, default=5, help="runs per tool and case (5)")
    parser.add_argument("--level", type=int, default=6, help="gzip level of the archives (6)")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--bandwidth",
        type=float,
        metavar="MiB/s",
        help="serve the mirror at this many MiB/s (default: loopback speed)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve the mirror over https, with a CA added to this system's bundle "
        "(SSL_CERT_FILE) for both tools",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--pylock",
        metavar="CMD",
        help="the pylock command to time (default: this checkout, installed into a fresh venv)",
    )
    how.add_argument(
        "--in-place",
        action="store_true",
        help="time `python -m pylock` with this interpreter and checkout (no venv)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (default: report)"
    )
    parser.add_argument(
        "--cases",
        type=_cases,
        default=ALL_CASES,
        metavar="LIST",
        help=f"comma-separated cases to run besides cold (default: {','.join(ALL_CASES)})",
    )
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="start from an empty page cache (Linux, root): a nearly full one makes file "
        "creation slow and noisy on some VMs",
    )
    parser.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="do not write back dirty pages (sync(2)) before each timed command",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.bandwidth is not None and not args.bandwidth > 0:
        parser.error("--bandwidth must be a positive number of MiB/s")
    if not sys.platform.startswith("linux"):
        print("bench: the archives are built from Linux interpreters; run it on Linux")
        return 1
    if not pylock_sync_available():
        print("bench: `python -m pylock sync` is not available in this checkout yet")
        return 1
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        if any(args.work.iterdir()):
            parser.error(f"--work {args.work} must be empty")
        work = args.work
    else:
        work = Path(tempfile.mkdtemp(prefix="pylock-bench-"))
    if args.drop_caches:
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
        except OSError as error:
            parser.error(f"--drop-caches: {error.strerror or error} (it needs root on Linux)")
    runner = Runner(settle=args.settle)
    try:
        results = measure(args, work, runner)
    finally:
        runner.close()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    missed = report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
