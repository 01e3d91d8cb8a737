"""One archive GET, in a fresh process, through aiohttp (``Fetcher``) vs ``http.client``.

Measures candidate (a) of issue 15 on its own: the whole process (start, imports, the
download into a file with hashing, exit), alternating the two paths, medians. The archive
is any file you give; it is served by ``bench/throttled.py`` at ``--bandwidth`` MiB/s.

    python bench/bench_fetchpath.py FILE [-n 7] [--bandwidth 20]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import throttled  # noqa: E402

_AIOHTTP = """
import asyncio, sys, time
from pathlib import Path
from pylock.net.fetch import Fetcher, FetchOptions
async def main():
    async with Fetcher(FetchOptions()) as f:
        return await f.download(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3], size=None)
asyncio.run(main())
print(time.time())
"""

_STDHTTP = """
import sys, threading, time
from pathlib import Path
from pylock.net.fetch import FetchOptions
from pylock.net.stdhttp import StdDownloader
d = StdDownloader(FetchOptions())
t = threading.Thread(target=d.download, args=(sys.argv[1], Path(sys.argv[2])),
                     kwargs={"sha256": sys.argv[3], "size": None})
t.start(); t.join()
print(time.time())
"""

_IMPORTS = {
    "aiohttp": "import aiohttp",
    "http.client+ssl": "import http.client, ssl; ssl.create_default_context()",
    "bare": "pass",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("-n", "--runs", type=int, default=7)
    parser.add_argument("--bandwidth", type=float, help="MiB/s (default: loopback speed)")
    args = parser.parse_args()
    sha = hashlib.sha256(args.file.read_bytes()).hexdigest()
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    times: dict[str, list[float]] = {}
    tails: dict[str, list[float]] = {}
    for label, code in _IMPORTS.items():
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-I", "-c", code], check=True)
            times.setdefault(f"import {label}", []).append(time.perf_counter() - start)
    with (
        tempfile.TemporaryDirectory() as tmp,
        throttled.serve(args.file.parent, args.bandwidth) as mirror,
    ):
        url = f"{mirror.base_url}/{args.file.name}"
        for i in range(args.runs):
            order = [("aiohttp", _AIOHTTP), ("stdhttp", _STDHTTP)]
            for label, code in order if i % 2 == 0 else order[::-1]:
                dest = Path(tmp) / f"{label}-{i}"
                mirror.take()
                start = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", code, url, str(dest), sha],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times.setdefault(label, []).append(time.perf_counter() - start)
                (transfer,) = mirror.take()
                tails.setdefault(label, []).append(float(out.stdout) - transfer.last_byte)
                dest.unlink()
    where = f"{args.bandwidth:g} MiB/s" if args.bandwidth else "loopback"
    print(f"medians of {args.runs} ({where}), {args.file.stat().st_size / 2**20:.1f} MiB")
    for label, values in times.items():
        extra = ""
        if label in tails:
            extra = f"  (done - last byte sent: {statistics.median(tails[label]) * 1000:.0f} ms)"
        print(f"  {label:<24}{statistics.median(values) * 1000:8.0f} ms{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
