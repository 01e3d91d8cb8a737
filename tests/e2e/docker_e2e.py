"""End-to-end proof of the Docker promise: real BuildKit builds of examples/docker/Dockerfile.

The script sets everything up itself, because CI starts from a fresh machine (see
shared/docs/DOCKER.md for the recipe it follows):

- installs ``docker.io``, ``debootstrap`` and ``patchelf`` with apt when they are missing;
- starts its own ``dockerd`` (no iptables, no bridge, state under ``/tmp``, its own socket)
  and stops it by its pid at the end;
- imports a Debian 12 base image made with debootstrap, once, and reuses it later;
- builds a wheelhouse of pylock and its dependencies (plus uv) for the build context;
- builds real, relocatable interpreter archives in python-build-standalone layout and
  naming (``tests/realpython.py``) and serves them from a loopback stand-in for the upstream
  download host that logs every request;
- builds the project's Dockerfile four times (first build, application change, lock change,
  return to an archive downloaded before), then the same scenario with ``uv python install``,
  without and with ``UV_PYTHON_CACHE_DIR`` on a cache mount;
- builds an image ``FROM`` one whose ``/opt/python`` pylock synced in a lower layer, and
  syncs a lock there that upgrades one interpreter and drops the other (overlayfs: EXDEV).

Every claim is checked from the build log and the server's request log, and the numbers are
printed as a table. ``--report FILE`` also writes them as JSON (the pytest wrapper reads it).

    python tests/e2e/docker_e2e.py [--report FILE] [--bandwidth MIB_S] [--only SCENARIO]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "docker"
#: Where state that may outlive one run lives (the daemon's data root with the base image,
#: built archives, downloaded wheels). Each run starts by pruning the build cache, so nothing
#: in it changes what a run proves.
WORK = Path(os.environ.get("PYLOCK_E2E_DIR", "/tmp/pylock-e2e"))
#: The docker.io package's 20.10 client: a newer docker earlier on PATH may lack buildx and
#: fall back to the legacy builder, which has no ``RUN --mount``.
DOCKER = "/usr/bin/docker"
BASE_IMAGE = "local/bookworm-python:latest"
IMAGE_PREFIX = "pylock-e2e"
APT_PACKAGES = ("docker.io", "debootstrap", "patchelf", "docker-registry")
DEBIAN_MIRROR = os.environ.get("PYLOCK_E2E_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.zst", ".tar.bz2", ".tar.xz", ".tgz")
UV_JSON_PATH = "/uv/python-downloads.json"
#: Every archive-like file on the image's root filesystem.
FIND_ARCHIVES = [
    "find", "/", "-xdev", "-type", "f", "(",
    *" -o ".join(f"-name *{suffix}" for suffix in ARCHIVE_SUFFIXES).split(), ")",
]  # fmt: skip

sys.path.insert(0, str(REPO))


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class SetupError(RuntimeError):
    """The machine could not be prepared (no daemon, no base image, no wheelhouse)."""


def skip_reason() -> str | None:
    """Why this machine cannot run the scenario at all, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return "docker e2e needs Linux (it starts its own dockerd)"
    if os.geteuid() != 0:
        return "docker e2e needs root (it installs packages and starts dockerd)"
    have_tools = all(shutil.which(t) for t in ("dockerd", "debootstrap", "patchelf"))
    if not (have_tools and Path(DOCKER).exists()) and shutil.which("apt-get") is None:
        return "docker e2e needs apt-get to install docker.io, debootstrap and patchelf"
    return None


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing stdout and stderr together as text."""
    proc = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise SetupError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{tail}")
    return proc


# -- machine setup ---------------------------------------------------------------------------


def ensure_packages() -> None:
    tools = ("dockerd", "debootstrap", "patchelf", "docker-registry")
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing and Path(DOCKER).exists():
        return
    log(f"installing {' '.join(APT_PACKAGES)} (missing: {', '.join(missing) or DOCKER})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env, timeout=600)
    run(["apt-get", "install", "-y", "-q", *APT_PACKAGES], env=env, timeout=900)


def _mounts_under(root: Path) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                points.append(point)
    return points


def unmount_under(root: Path) -> None:
    """Unmount what a daemon left mounted below ``root`` (deepest first)."""
    for point in sorted(_mounts_under(root), key=len, reverse=True):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(c) for c in text)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Daemon:
    """A dockerd of our own on a private socket, stopped by its pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = root / "client-config"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DOCKER_HOST=self.host,
            DOCKER_BUILDKIT="1",
            # Keeps a user's ~/.docker (credential helpers, contexts) out of the picture.
            DOCKER_CONFIG=str(self.config),
        )
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return run([DOCKER, *args], env=self.env(), check=check, timeout=timeout)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.mkdir(exist_ok=True)
        # A daemon killed hard in an earlier run can leave its mounts behind.
        unmount_under(self.root / "exec")
        self.socket.unlink(missing_ok=True)
        (self.root / "exec").mkdir(exist_ok=True)
        logfile = (self.root / "dockerd.log").open("ab")
        argv = [
            "dockerd",
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "-H", self.host,
        ]  # fmt: skip
        log(f"starting dockerd ({self.host})")
        self.proc = subprocess.Popen(
            argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        logfile.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                log(f"dockerd is up (pid {self.proc.pid})")
                return
            time.sleep(0.5)
        tail = (self.root / "dockerd.log").read_text(errors="replace").splitlines()[-20:]
        self.stop()
        raise SetupError("dockerd did not come up:\n" + "\n".join(tail))

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self.proc.pid
        helpers = _children(pid)  # its containerd, which it normally stops itself
        if self.proc.poll() is None:
            log(f"stopping dockerd (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for child in helpers:
            if _alive(child):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
        self.proc = None
        unmount_under(self.root)


def ensure_base_image(daemon: Daemon) -> float:
    """Import the debootstrap base image unless it is there; return the seconds spent."""
    if daemon.docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        log(f"base image {BASE_IMAGE} already present")
        return 0.0
    started = time.monotonic()
    rootfs = WORK / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    log("debootstrap bookworm (minbase + python3, python3-venv, ca-certificates)")
    run(
        ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
         "bookworm", str(rootfs), DEBIAN_MIRROR],
        timeout=900,
    )  # fmt: skip
    # Two steps rather than a pipe, so a failure of either side is reported.
    tarball = WORK / "rootfs.tar"
    run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=600)
    daemon.docker("import", str(tarball), BASE_IMAGE, timeout=600)
    tarball.unlink()
    shutil.rmtree(rootfs)
    seconds = time.monotonic() - started
    log(f"base image imported in {seconds:.0f} s")
    return seconds


# -- wheelhouse ------------------------------------------------------------------------------


def _pip_platform_args() -> list[str]:
    # Wheels for the image's Python (Debian 12: CPython 3.11, glibc 2.36), whatever Python
    # runs this script.
    machine = platform.machine()
    args = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    for abi in ("cp311", "abi3", "none"):
        args += ["--abi", abi]
    for tag in ("manylinux_2_36", "manylinux_2_34", "manylinux_2_28", "manylinux_2_17",
                "manylinux2014", "manylinux_2_5", "manylinux1"):  # fmt: skip
        args += ["--platform", f"{tag}_{machine}"]
    return [*args, "--platform", "any"]


#: pylock's wheel file names start with this (the distribution is ``pythons-lock``).
WHEEL_PREFIX = "pythons_lock-"


def build_wheelhouse(dest: Path) -> dict[str, Any]:
    """pylock's wheel, its dependencies and uv, for ``pip install --no-index``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = WORK / "run" / "pylock-src"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(
        REPO / "pylock", source / "pylock", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    if not (source / "README.md").exists():
        (source / "README.md").write_text("pylock\n")
    log("pip wheel pythons-lock")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(dest)])
    # The distribution is pythons-lock, so the wheel is pythons_lock-<version>-....whl.
    wheels = sorted(dest.glob(f"{WHEEL_PREFIX}*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"expected one pythons-lock wheel in {dest}, found {wheels}")
    wheel = wheels[0]
    # Package data must travel in the wheel: the bundled index snapshot above all.
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    data_files = sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "pylock").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )
    missing = [f for f in data_files if f not in in_wheel]
    cache = WORK / "wheel-cache"
    cache.mkdir(parents=True, exist_ok=True)
    log("pip download the dependencies and uv (cp311, manylinux)")
    run(
        [sys.executable, "-m", "pip", "download", "-q", *_pip_platform_args(), "-d", str(cache),
         str(wheel), "uv"],
        timeout=600,
    )  # fmt: skip
    for path in cache.glob("*.whl"):
        if not path.name.startswith(WHEEL_PREFIX):
            shutil.copy2(path, dest / path.name)
    for stale in cache.glob(f"{WHEEL_PREFIX}*.whl"):
        stale.unlink()
    return {
        "wheel": wheel.name,
        "package_data": data_files,
        "package_data_missing": missing,
        "wheels": sorted(p.name for p in dest.glob("*.whl")),
    }


# -- interpreter archives --------------------------------------------------------------------


def pick_sources() -> list[Any]:
    """Two host CPythons of different minor versions, newest first (pyenv's preferred)."""
    from tests.realpython import host_pythons

    pythons = sorted(
        host_pythons(min_minor=10),
        key=lambda p: (not str(p.prefix).startswith("/usr"), tuple(map(int, p.minor.split(".")))),
        reverse=True,
    )
    chosen: dict[str, Any] = {}
    for python in pythons:
        chosen.setdefault(python.minor, python)
    if len(chosen) < 2:
        raise SetupError(f"need two CPython minors >= 3.10 on this machine, found {pythons}")
    return sorted(list(chosen.values())[:2], key=lambda p: tuple(map(int, p.minor.split("."))))


def build_archives(sources: Sequence[Any]) -> list[Any]:
    """Real PBS-style archives of ``sources``, reused from earlier runs when unchanged."""
    import attrs

    from tests import realpython

    recipe = hashlib.sha256(Path(realpython.__file__).read_bytes()).hexdigest()[:16]
    archives = []
    for python in sources:
        key = hashlib.sha256(f"{recipe}:{python.prefix}:{python.version}".encode()).hexdigest()
        folder = WORK / "archives" / key[:16]
        meta = folder / "archive.json"
        if meta.is_file():
            fields = json.loads(meta.read_text())
            fields["path"] = Path(fields["path"])
            fields["source"] = Path(fields["source"])
            archive = realpython.RealArchive(**fields)
            if archive.path.is_file() and archive.path.stat().st_size == archive.size:
                log(f"reusing archive {archive.filename}")
                archives.append(archive)
                continue
        started = time.monotonic()
        archive = realpython.build_pbs_archive(folder, prefix=python.prefix)
        log(f"built {archive.filename} ({archive.size >> 20} MiB) in "
            f"{time.monotonic() - started:.0f} s")  # fmt: skip
        fields = attrs.asdict(archive)
        fields.update(path=str(archive.path), source=str(archive.source))
        meta.write_text(json.dumps(fields))
        archives.append(archive)
    return archives


# -- the stand-in download host --------------------------------------------------------------


class MirrorServer:
    """Serves ``root`` on 127.0.0.1 in the upstream layout and logs every request."""

    def __init__(self, root: Path, logfile: Path, *, bandwidth: float = 0) -> None:
        self.root = root.resolve()
        #: Bytes per second per response (0: as fast as loopback goes). A real download host
        #: is slower than loopback; a limit makes the seconds in the table mean something.
        self.bandwidth = bandwidth
        self.logfile = logfile
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve(body=True)

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def _serve(self, *, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                target = (server.root / path.lstrip("/")).resolve()
                inside = server.root in target.parents
                if not inside or not target.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    server.record(self.command, path, 404, 0)
                    return
                size = target.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                sent = 0
                if body:
                    started = time.monotonic()
                    with target.open("rb") as f:
                        while block := f.read(1 << 18):
                            self.wfile.write(block)
                            sent += len(block)
                            if server.bandwidth:
                                ahead = sent / server.bandwidth - (time.monotonic() - started)
                                if ahead > 0:
                                    time.sleep(ahead)
                server.record(self.command, path, 200, sent)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def record(self, method: str, path: str, status: int, sent: int) -> None:
        entry = {"method": method, "path": path, "status": status, "bytes": sent}
        with self._lock:
            self.requests.append(entry)
            with self.logfile.open("a") as f:
                f.write(f"{time.time():.3f} {method} {path} {status} {sent}\n")

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests[mark:])

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def archive_downloads(requests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """File name -> number of GET requests, for archive files only."""
    counts = Counter(
        r["path"].rsplit("/", 1)[-1]
        for r in requests
        if r["method"] == "GET" and r["path"].endswith(ARCHIVE_SUFFIXES)
    )
    return dict(sorted(counts.items()))


# -- builds ----------------------------------------------------------------------------------

_STEP = re.compile(r"^#(\d+) (.*)$")


def parse_steps(output: str) -> dict[str, dict[str, Any]]:
    """BuildKit ``--progress=plain`` output -> step name -> {status, seconds, lines}."""
    names: dict[str, str] = {}
    steps: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        match = _STEP.match(line)
        if not match:
            continue
        number, text = match.groups()
        if number not in names:
            if not text.startswith("["):
                continue
            names[number] = text
            steps[text] = {"status": "STARTED", "seconds": None, "lines": []}
            continue
        step = steps[names[number]]
        if text == "CACHED":
            step["status"] = "CACHED"
        elif done := re.match(r"^DONE (\d+(?:\.\d+)?)s$", text):
            step["status"] = "DONE"
            step["seconds"] = float(done.group(1))
        elif text.startswith("ERROR"):
            step["status"] = "ERROR"
        elif re.match(r"^\d+\.\d+ ", text):
            step["lines"].append(text.split(" ", 1)[1])
    return steps


def find_step(steps: Mapping[str, Mapping[str, Any]], needle: str) -> dict[str, Any]:
    for name, step in steps.items():
        if needle in name:
            return {"name": name, **step}
    return {"name": None, "status": "MISSING", "seconds": None, "lines": []}


class Scenario:
    """One set-up (pylock, uv, uv with a cache) built step by step in one context."""

    def __init__(
        self,
        *,
        label: str,
        daemon: Daemon,
        server: MirrorServer,
        context: Path,
        build_args: Mapping[str, str],
        sync_needle: str,
    ) -> None:
        self.label = label
        self.daemon = daemon
        self.server = server
        self.context = context
        self.build_args = dict(build_args)
        self.sync_needle = sync_needle
        self.steps: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        #: Further evidence for the report (the installed-tree comparison).
        self.extras: dict[str, Any] = {}

    def image(self, step: str) -> str:
        return f"{IMAGE_PREFIX}/{self.label}:{step}"

    def build(self, step: str, description: str) -> dict[str, Any]:
        mark = self.server.mark()
        args = [DOCKER, "build", "--progress=plain", "--network=host", "-t", self.image(step)]
        for key, value in self.build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        args.append(str(self.context))
        log(f"{self.label}: build '{step}' ({description})")
        started = time.monotonic()
        proc = run(args, env=self.daemon.env(), check=False, timeout=600)
        seconds = time.monotonic() - started
        # Downloads finish before the step does; a short grace covers a lagging log write.
        time.sleep(0.2)
        requests = self.server.since(mark)
        steps = parse_steps(proc.stdout)
        sync = find_step(steps, self.sync_needle)
        result = {
            "step": step,
            "description": description,
            "returncode": proc.returncode,
            "build_seconds": round(seconds, 2),
            "sync_status": sync["status"],
            "sync_seconds": sync["seconds"],
            "sync_output": sync["lines"][-30:],
            "requests": requests,
            "downloads": archive_downloads(requests),
        }
        (self.context.parent / f"{self.label}-{step}.log").write_text(proc.stdout)
        self.steps.append(result)
        log(
            f"{self.label}: '{step}' exit {proc.returncode} in {seconds:.1f} s; sync step "
            f"{sync['status']} {sync['seconds'] or ''}; downloads {result['downloads']}; "
            f"{len(requests)} requests"
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-25:])
            log(f"{self.label}: build failed:\n{tail}")
        return result

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        log(f"{self.label}: {'ok  ' if ok else 'FAIL'} {name}{'' if ok else f': {detail}'}")
        return ok

    def in_image(self, step: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.daemon.docker(
            "run", "--rm", "--network=none", self.image(step), *argv, check=False, timeout=300
        )

    def report(self) -> dict[str, Any]:
        return {"label": self.label, "steps": self.steps, "checks": self.checks, **self.extras}


def _versions_by_name(archives: Mapping[str, Any]) -> dict[str, str]:
    return {name: archive.version for name, archive in archives.items()}


_PROBE = "import sys, ssl, sqlite3, zlib, lzma, bz2, ctypes; print(sys.version)"


def check_interpreters(scenario: Scenario, step: str, expected: Mapping[str, str]) -> None:
    """Each locked interpreter runs in the final image and reports its locked version."""
    for name, version in expected.items():
        proc = scenario.in_image(step, f"/opt/python/{name}/bin/python3", "-c", _PROBE)
        first = proc.stdout.strip().splitlines()[:1]
        scenario.check(
            f"{step}: /opt/python/{name}/bin/python3 runs and is {version}",
            proc.returncode == 0 and bool(first) and first[0].split()[0] == version,
            proc.stdout.strip()[-400:],
        )


def check_installed_tree(scenario: Scenario, step: str, names: Sequence[str]) -> dict[str, Any]:
    """Proof 4: no archive anywhere in the image; /opt/python holds the installs and no more."""
    image = scenario.image(step)
    found = scenario.in_image(step, *FIND_ARCHIVES)
    base = scenario.daemon.docker(
        "run", "--rm", "--network=none", BASE_IMAGE, *FIND_ARCHIVES, check=False
    )
    new_archives = sorted(set(found.stdout.split()) - set(base.stdout.split()))
    scenario.check(
        f"{step}: the final image holds no archive (find / -name '*.tar.*')",
        found.returncode == 0 and not new_archives,
        new_archives or found.stdout[-300:],
    )
    cache_dirs = scenario.in_image(step, "sh", "-c", "ls -d /root/.cache/* 2>/dev/null || true")
    scenario.check(
        f"{step}: no download cache in the final image",
        cache_dirs.stdout.strip() == "",
        cache_dirs.stdout.strip(),
    )
    du = scenario.in_image(step, "du", "-s", "-B1", "--apparent-size", "/opt/python")
    walk = scenario.in_image(
        step, f"/opt/python/{names[0]}/bin/python3", "-I", "-B", "-c", _MANIFEST, "/opt/python"
    )
    manifest = json.loads(walk.stdout) if walk.returncode == 0 else None
    history = scenario.daemon.docker(
        "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image, check=False
    )
    layer = next(
        (line for line in history.stdout.splitlines() if "/opt/python /opt/python" in line), ""
    )
    return {
        "du_apparent_bytes": int(du.stdout.split()[0]) if du.returncode == 0 else None,
        "manifest": manifest,
        "totals": totals(manifest) if manifest is not None else walk.stdout[-500:],
        "copy_layer": layer.split("\t")[0],
    }


#: Lists a tree as {relative path: "f <size>" | "l <target>"}. The same text runs on the host
#: and, with the installed interpreter, in the image (a slim image may have no other Python);
#: always with -B, or the walk would find the bytecode its own imports just wrote.
_MANIFEST = r"""
import json, os, sys
root = sys.argv[1]
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in filenames + dirnames:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        if os.path.islink(path):
            out[rel] = "l " + os.readlink(path)
        elif os.path.isfile(path):
            out[rel] = "f %d" % os.lstat(path).st_size
print(json.dumps(out, sort_keys=True))
"""


def totals(manifest: Mapping[str, str]) -> dict[str, int]:
    """Files, symlinks and bytes of regular files in a manifest."""
    sizes = [int(v[2:]) for v in manifest.values() if v.startswith("f ")]
    return {"files": len(sizes), "symlinks": len(manifest) - len(sizes), "bytes": sum(sizes)}


def manifest_diff(image: Mapping[str, str], host: Mapping[str, str]) -> list[str]:
    """Entries that differ between two manifests (at most 20, for a readable failure)."""
    out = []
    for key in sorted(set(image) | set(host)):
        if image.get(key) != host.get(key):
            out.append(f"{key}: image {image.get(key)!r}, host {host.get(key)!r}")
    return out[:20]


def same_length_dir(model: str) -> Path:
    """A fresh directory whose path is as long as ``model``.

    Installs are bound to their final path (sysconfig fix-ups write it into files), so a
    host sync compares byte for byte with the image's /opt/python only at an equally long
    path.
    """
    parent = Path("/tmp")
    room = len(model) - len(str(parent)) - 1
    for _ in range(100):
        candidate = parent / ("k" + os.urandom(8).hex())[:room]
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise SetupError(f"could not make a directory as long as {model}")


# -- the scenarios ---------------------------------------------------------------------------


def prepare_context(
    context: Path, wheelhouse: Path, dockerfile_text: str, extra: Mapping[str, str]
) -> None:
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile_text)
    for name in ("app.py", ".dockerignore"):
        shutil.copy2(EXAMPLE / name, context / name)
    shutil.copytree(wheelhouse, context / "wheelhouse")
    for name, text in extra.items():
        (context / name).write_text(text)


def pylock_build_args(server: MirrorServer, **extra: str) -> dict[str, str]:
    """The example Dockerfile's build arguments: both stages on BASE_IMAGE, pylock from the
    context's wheelhouse, archives from ``server``; then ``extra``.
    """
    return {
        "BUILDER_IMAGE": BASE_IMAGE,
        "BASE_IMAGE": BASE_IMAGE,
        "PYLOCK_FROM": "wheelhouse",
        "PYLOCK_MIRROR": server.url,
        **extra,
    }


def pylock_scenario(
    label: str, daemon: Daemon, server: MirrorServer, context: Path, **extra: str
) -> Scenario:
    """A scenario that builds the example Dockerfile (:func:`pylock_build_args`, with
    ``extra``) and finds its ``pylock sync`` step."""
    return Scenario(
        label=label,
        daemon=daemon,
        server=server,
        context=context,
        build_args=pylock_build_args(server, **extra),
        sync_needle="pylock sync",
    )


def check_sync_reran(scenario: Scenario, step: str, result: Mapping[str, Any]) -> None:
    """A lock change: the build succeeds and its sync step runs again (not CACHED)."""
    scenario.check(f"{step}: build succeeds", result["returncode"] == 0, result["sync_output"])
    scenario.check(
        f"{step}: sync step re-ran", result["sync_status"] == "DONE", result["sync_status"]
    )


def touch_app(context: Path) -> None:
    """An application change that leaves the lock alone."""
    app = context / "app.py"
    app.write_text(app.read_text() + 'print("application changed")\n')


def run_pylock(
    daemon: Daemon, server: MirrorServer, wheelhouse: Path, archives: Sequence[Any]
) -> Scenario:
    """Build the project's own Dockerfile through the four steps and check every claim."""
    from tests.realpython import lock_text

    old, new = archives
    locks = {
        "first": {"app": old},
        "both": {"app": old, "tool": new},
        "switch": {"app": new},
    }
    context = WORK / "run" / "ctx-pylock"
    texts = {k: lock_text(list(v.values()), names=list(v)) for k, v in locks.items()}
    prepare_context(
        context, wheelhouse, (EXAMPLE / "Dockerfile").read_text(), {"pythons.lock": texts["first"]}
    )
    scenario = pylock_scenario("pylock", daemon, server, context)

    # (1) A first build syncs the lock: each locked archive is downloaded exactly once.
    first = scenario.build("first", f"lock: app={old.version}")
    if not scenario.check("first: build succeeds", first["returncode"] == 0, first["sync_output"]):
        return scenario
    scenario.check("first: sync step ran", first["sync_status"] == "DONE", first["sync_status"])
    scenario.check(
        "first: each locked archive downloaded exactly once, nothing else fetched",
        first["downloads"] == {old.filename: 1}
        and all(r["path"].endswith(old.filename) for r in first["requests"]),
        first["requests"],
    )
    scenario.check(
        "first: sync prints plain lines in the build log (no cursor control, no colour)",
        first["sync_output"] != []
        and not any("\r" in line or "\x1b[" in line for line in first["sync_output"]),
        first["sync_output"],
    )
    check_interpreters(scenario, "first", _versions_by_name(locks["first"]))
    app = scenario.in_image("first")
    scenario.check(
        "first: the image's default command runs the app on the locked interpreter",
        app.returncode == 0 and f"app running on CPython {old.version}" in app.stdout,
        app.stdout[-300:],
    )
    # The archives are the host's own builds, linked against Debian's libraries (real PBS
    # builds bundle theirs). Tk is the one the minbase image lacks, and no server needs it.
    ldd = scenario.in_image(
        "first", "sh", "-c", "ldd /opt/python/app/bin/python3; find /opt/python -name '*.so*' "
        "-type f ! -name '_tkinter*' -exec ldd {} +",
    )  # fmt: skip
    scenario.check(
        "first: ldd finds every shared library the interpreter needs in the base image",
        "libpython" in ldd.stdout and "not found" not in ldd.stdout,
        [line for line in ldd.stdout.splitlines() if "not found" in line][:10] or ldd.stdout,
    )
    # Images should not run as root; the installed tree must be usable by any user.
    nobody = scenario.daemon.docker(
        "run", "--rm", "--network=none", "--user", "65534:65534", scenario.image("first"),
        "/opt/python/app/bin/python3", "-c", _PROBE, check=False,
    )  # fmt: skip
    scenario.check(
        "first: the interpreter runs as an unprivileged user (USER 65534)",
        nobody.returncode == 0 and nobody.stdout.startswith(old.version),
        nobody.stdout.strip()[-300:],
    )

    # (2) An application change leaves the sync layer cached and the server untouched.
    touch_app(context)
    second = scenario.build("app-change", "app.py edited, lock unchanged")
    scenario.check("app-change: build succeeds", second["returncode"] == 0)
    scenario.check(
        "app-change: sync step CACHED", second["sync_status"] == "CACHED", second["sync_status"]
    )
    scenario.check(
        "app-change: zero requests to the download host",
        second["requests"] == [],
        second["requests"],
    )
    app = scenario.in_image("app-change")
    scenario.check(
        "app-change: the image carries the changed app",
        "application changed" in app.stdout,
        app.stdout[-300:],
    )

    # (3) A lock change re-runs the sync; only the archive never downloaded before is fetched.
    (context / "pythons.lock").write_text(texts["both"])
    third = scenario.build("add-python", f"lock: app={old.version}, tool={new.version}")
    check_sync_reran(scenario, "add-python", third)
    scenario.check(
        "add-python: only the new archive is downloaded (the cached one is not)",
        third["downloads"] == {new.filename: 1}
        and all(r["path"].endswith(new.filename) for r in third["requests"]),
        third["requests"],
    )
    check_interpreters(scenario, "add-python", _versions_by_name(locks["both"]))

    # (4) The final image holds the interpreters and no archive.
    tree = check_installed_tree(scenario, "add-python", ["app", "tool"])
    host = host_sync(server, texts["both"], WORK / "run" / "host-sync")
    scenario.extras["host"] = {k: v for k, v in host.items() if k != "manifest"}
    scenario.extras["tree"] = {k: v for k, v in tree.items() if k != "manifest"}
    if scenario.check(
        "add-python: a host sync of the same lock succeeds", "manifest" in host, host
    ):
        diff = manifest_diff(tree["manifest"] or {}, host["manifest"])
        scenario.check(
            "add-python: /opt/python holds exactly the files, sizes and links of a host sync",
            tree["manifest"] is not None and not diff,
            diff or tree["totals"],
        )
        scenario.check(
            "add-python: du of /opt/python equals the installed size of a host sync",
            tree["totals"] == host["totals"]
            and tree["du_apparent_bytes"] == host["du_apparent_bytes"],
            {
                "image": [tree["totals"], tree["du_apparent_bytes"]],
                "host": [host["totals"], host["du_apparent_bytes"]],
            },
        )
    # (3b) Switching to an interpreter the cache mount already holds downloads nothing at all,
    # although the sync layer is rebuilt.
    (context / "pythons.lock").write_text(texts["switch"])
    fourth = scenario.build("switch", f"lock: app={new.version} (cached before)")
    check_sync_reran(scenario, "switch", fourth)
    scenario.check(
        "switch: zero downloads, the archive comes from the cache mount",
        fourth["requests"] == [],
        fourth["requests"],
    )
    check_interpreters(scenario, "switch", _versions_by_name(locks["switch"]))
    gone = scenario.in_image("switch", "ls", "/opt/python")
    scenario.check(
        "switch: /opt/python lists only the locked interpreter",
        gone.stdout.split() == ["app"],
        gone.stdout,
    )
    return scenario


DERIVED_DOCKERFILE = """\
# An image derived from one whose /opt/python pylock synced in a lower layer. Docker's
# overlayfs (redirect_dir off) cannot rename a directory from a lower layer (EXDEV), so
# this sync must upgrade and prune those trees without moving them.
FROM {base}
COPY pythons.lock ./
ARG PYLOCK_MIRROR
RUN --mount=type=cache,target=/root/.cache/pylock \\
    /opt/pylock/bin/pylock sync --into /opt/python
"""


def run_derived(
    daemon: Daemon, server: MirrorServer, wheelhouse: Path, archives: Sequence[Any]
) -> Scenario:
    """A derived image re-syncs what its ``FROM`` image holds (field test, bug 1): the base
    is the example Dockerfile's builder stage with app=old and tool=new; the derived image's
    lock has app=new and no tool, so its sync both upgrades and prunes a lower-layer tree."""
    from tests.realpython import lock_text

    old, new = archives
    locks = {"base": {"app": old, "tool": new}, "derived": {"app": new}}
    texts = {k: lock_text(list(v.values()), names=list(v)) for k, v in locks.items()}
    context = WORK / "run" / "ctx-derived"
    # The example's builder stage is the base image: it has pylock and the synced tree.
    dockerfile = (EXAMPLE / "Dockerfile").read_text()
    final_stage = "\nFROM ${BASE_IMAGE}\n"
    assert final_stage in dockerfile
    dockerfile = dockerfile[: dockerfile.index(final_stage) + 1]
    prepare_context(context, wheelhouse, dockerfile, {"pythons.lock": texts["base"]})
    scenario = pylock_scenario("derived", daemon, server, context)
    base = scenario.build("base", f"builder stage; lock: app={old.version}, tool={new.version}")
    if not scenario.check("base: build succeeds", base["returncode"] == 0, base["sync_output"]):
        return scenario
    check_interpreters(scenario, "base", _versions_by_name(locks["base"]))

    (context / "Dockerfile").write_text(DERIVED_DOCKERFILE.format(base=scenario.image("base")))
    (context / "pythons.lock").write_text(texts["derived"])
    derived = scenario.build("derived", f"FROM base; lock: app={new.version}, no tool")
    if not scenario.check(
        "derived: build succeeds (upgrade and prune of lower-layer trees)",
        derived["returncode"] == 0,
        derived["sync_output"],
    ):
        return scenario
    scenario.check(
        "derived: sync step ran in the later layer",
        derived["sync_status"] == "DONE",
        derived["sync_status"],
    )
    check_interpreters(scenario, "derived", _versions_by_name(locks["derived"]))
    listing = scenario.in_image("derived", "ls", "/opt/python")
    scenario.check(
        "derived: the pruned tool is gone, /opt/python lists only app",
        listing.returncode == 0 and listing.stdout.split() == ["app"],
        listing.stdout,
    )
    return scenario


class PlainRegistry:
    """``docker-registry serve`` on 127.0.0.1 over plain http, without auth, stopped by pid:
    the remote cache the fleet scenario's builders share (``oci+http://`` on loopback)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PlainRegistry:
        from tests.registry import free_port

        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: {os.urandom(16).hex()}\n"
        )
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        with (self.root / "registry.log").open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.status("/v2/") == 200:
                return self
            time.sleep(0.05)
        self.__exit__()
        raise SetupError("docker-registry did not start")

    def status(self, path: str, method: str = "GET") -> int:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def run_fleet(
    daemon: Daemon, server: MirrorServer, wheelhouse: Path, archives: Sequence[Any]
) -> Scenario:
    """Two builders that share nothing but a registry (issue 13): builder A downloads from
    the origin and pushes; the build cache (with its cache mount) is then pruned; builder B
    gets the archive from the registry. The origin sees exactly one archive request."""
    from tests.realpython import lock_text

    archive = archives[0]
    context = WORK / "run" / "ctx-fleet"
    dockerfile = (EXAMPLE / "Dockerfile").read_text()
    # The build arguments become the environment of the sync step, as PYLOCK_MIRROR does.
    needle = "RUN --mount=type=cache,target=/root/.cache/pylock"
    assert needle in dockerfile
    dockerfile = dockerfile.replace(
        needle, "ARG PYLOCK_REMOTE_CACHE\nARG PYLOCK_REMOTE_CACHE_PUSH\n" + needle
    )
    prepare_context(
        context, wheelhouse, dockerfile, {"pythons.lock": lock_text([archive], names=["app"])}
    )
    # Earlier scenarios filled the shared cache mount: builder A starts from nothing too.
    forget_builds(daemon)
    with PlainRegistry(WORK / "run" / "registry") as registry:
        reference = f"oci+http://127.0.0.1:{registry.port}/fleet/pythons"
        scenario = pylock_scenario(
            "fleet",
            daemon,
            server,
            context,
            PYLOCK_REMOTE_CACHE=reference,
            PYLOCK_REMOTE_CACHE_PUSH="1",
        )
        scenario.extras["registry"] = reference
        a = scenario.build("builder-a", "empty registry, empty cache mount; pushes")
        if not scenario.check("builder-a: build succeeds", a["returncode"] == 0, a["sync_output"]):
            return scenario
        scenario.check(
            "builder-a: the archive is downloaded from the origin once",
            a["downloads"] == {archive.filename: 1},
            a["requests"],
        )
        scenario.check(
            "builder-a: the sync reports it pushed",
            any("1 pushed" in line for line in a["sync_output"]),
            a["sync_output"],
        )
        blob = f"/v2/fleet/pythons/blobs/sha256:{archive.sha256}"
        scenario.check(
            "builder-a: the registry holds the blob", registry.status(blob, "HEAD") == 200
        )
        # Builder B shares nothing with A but the registry: no layer cache, no cache mount.
        forget_builds(daemon)
        b = scenario.build("builder-b", "pruned build cache; the registry has the archive")
        if not scenario.check("builder-b: build succeeds", b["returncode"] == 0, b["sync_output"]):
            return scenario
        scenario.check("builder-b: the sync step ran (nothing cached)", b["sync_status"] == "DONE")
        scenario.check("builder-b: zero requests to the origin", b["requests"] == [], b["requests"])
        scenario.check(
            "builder-b: the archive came from the remote cache",
            any("1 from the remote cache, 0 downloaded" in line for line in b["sync_output"]),
            b["sync_output"],
        )
        check_interpreters(scenario, "builder-b", {"app": archive.version})
        total = sum(archive_downloads(step["requests"]).get(archive.filename, 0) for step in (a, b))
        scenario.extras["origin_archive_requests"] = total
        scenario.check(
            "fleet: the origin saw exactly 1 archive request in total", total == 1, total
        )
        scenario.extras["timings"] = {
            "builder_a": {"build_seconds": a["build_seconds"], "sync_seconds": a["sync_seconds"]},
            "builder_b": {"build_seconds": b["build_seconds"], "sync_seconds": b["sync_seconds"]},
        }
    return scenario


def host_sync(server: MirrorServer, lock: str, root: Path) -> dict[str, Any]:
    """``pylock sync`` of the same lock on the host, for the installed-size comparison."""
    if root.exists():
        shutil.rmtree(root)
    project = root / "project"
    project.mkdir(parents=True)
    (project / "pythons.lock").write_text(lock)
    into = same_length_dir("/opt/python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLOCK_", "PYTHON"))}
    env.update(PYLOCK_CACHE_DIR=str(root / "cache"), PYLOCK_MIRROR=server.url)
    env["PYTHONPATH"] = str(REPO)
    try:
        proc = run(
            [
                sys.executable,
                "-m",
                "pylock",
                "--project",
                str(project),
                "sync",
                "--into",
                str(into),
            ],
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            return {"returncode": proc.returncode, "output": proc.stdout[-1500:]}
        walk = run([sys.executable, "-I", "-B", "-c", _MANIFEST, str(into)], env=env)
        du = run(["du", "-s", "-B1", "--apparent-size", str(into)], env=env)
        manifest = json.loads(walk.stdout)
        return {
            "returncode": 0,
            "into": str(into),
            "manifest": manifest,
            "totals": totals(manifest),
            "du_apparent_bytes": int(du.stdout.split()[0]),
            "output": proc.stdout[-1500:],
        }
    finally:
        shutil.rmtree(into, ignore_errors=True)


UV_DOCKERFILE = """\
# The uv counterpart of examples/docker/Dockerfile, for the README comparison.
ARG BUILDER_IMAGE
ARG BASE_IMAGE

FROM ${{BUILDER_IMAGE}} AS builder
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \\
    python3 -m venv /opt/uv \\
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check \\
        --no-index --find-links /wheelhouse uv
WORKDIR /src
COPY .python-versions ./
ARG UV_MIRROR
ARG UV_DOWNLOADS_JSON
RUN {mount}/opt/uv/bin/uv python install --install-dir /opt/python --no-bin \\
        --mirror "$UV_MIRROR" --python-downloads-json-url "$UV_DOWNLOADS_JSON"

FROM ${{BASE_IMAGE}}
COPY --from=builder /opt/python /opt/python
WORKDIR /app
COPY app.py ./
"""
UV_CACHE_MOUNT = (
    "--mount=type=cache,target=/root/.cache/uv-python \\\n"
    "    UV_PYTHON_CACHE_DIR=/root/.cache/uv-python "
)


def run_uv(
    daemon: Daemon,
    server: MirrorServer,
    wheelhouse: Path,
    archives: Sequence[Any],
    *,
    cache: bool,
) -> Scenario:
    """The same four steps with ``uv python install`` (for numbers, not for pylock's claims)."""
    old, new = archives
    label = "uv-cache" if cache else "uv"
    context = WORK / "run" / f"ctx-{label}"
    dockerfile = UV_DOCKERFILE.format(mount=UV_CACHE_MOUNT if cache else "")
    prepare_context(context, wheelhouse, dockerfile, {".python-versions": f"{old.version}\n"})
    scenario = Scenario(
        label=label,
        daemon=daemon,
        server=server,
        context=context,
        build_args={
            "BUILDER_IMAGE": BASE_IMAGE,
            "BASE_IMAGE": BASE_IMAGE,
            "UV_MIRROR": server.url,
            "UV_DOWNLOADS_JSON": server.url.rstrip("/") + UV_JSON_PATH,
        },
        sync_needle="uv python install",
    )
    first = scenario.build("first", f"{old.version}")
    scenario.check("first: build succeeds", first["returncode"] == 0, first["sync_output"])
    check_uv_interpreters(scenario, "first", [old.version])
    touch_app(context)
    second = scenario.build("app-change", "app.py edited")
    scenario.check("app-change: install step CACHED", second["sync_status"] == "CACHED")
    (context / ".python-versions").write_text(f"{old.version}\n{new.version}\n")
    third = scenario.build("add-python", f"{old.version} + {new.version}")
    scenario.check("add-python: build succeeds", third["returncode"] == 0, third["sync_output"])
    check_uv_interpreters(scenario, "add-python", [old.version, new.version])
    (context / ".python-versions").write_text(f"{new.version}\n")
    fourth = scenario.build("switch", f"{new.version}")
    scenario.check("switch: build succeeds", fourth["returncode"] == 0, fourth["sync_output"])
    check_uv_interpreters(scenario, "switch", [new.version])
    return scenario


def check_uv_interpreters(scenario: Scenario, step: str, versions: Sequence[str]) -> None:
    """uv's installs run too: otherwise its timings would compare with nothing."""
    proc = scenario.in_image(
        step, "sh", "-c",
        f"for p in /opt/python/cpython-*/bin/python3; do $p -c '{_PROBE}' || exit 1; done",
    )  # fmt: skip
    # uv adds a minor-version alias (cpython-3.12-...) beside each install: count each once.
    found = sorted({line.split()[0] for line in proc.stdout.splitlines() if line[:1].isdigit()})
    scenario.check(
        f"{step}: uv's interpreters run: {', '.join(versions)}",
        proc.returncode == 0 and found == sorted(versions),
        proc.stdout[-400:],
    )


# -- driver ----------------------------------------------------------------------------------


def table(scenarios: Sequence[Scenario]) -> str:
    rows = [
        ("set-up", "build", "install step", "archives fetched", "MiB fetched", "other requests",
         "build s", "step s"),
    ]  # fmt: skip
    for scenario in scenarios:
        for step in scenario.steps:
            fetched = sum(step["downloads"].values())
            status = {"DONE": "ran", "CACHED": "CACHED"}.get(
                step["sync_status"], step["sync_status"]
            )
            if step["returncode"] != 0:
                status = f"FAILED ({status})"
            step_s = step["sync_seconds"]
            rows.append(
                (
                    scenario.label,
                    f"{step['step']}: {step['description']}",
                    status,
                    str(fetched),
                    f"{sum(r['bytes'] for r in step['requests']) / 2**20:.1f}",
                    str(len(step["requests"]) - fetched),
                    f"{step['build_seconds']:.1f}",
                    "-" if step_s is None else f"{step_s:.1f}",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def forget_builds(daemon: Daemon) -> None:
    """Drop the build cache (with its cache mounts) and our images; keep the base image."""
    images = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{IMAGE_PREFIX}/*")
    for image in images.stdout.split():
        daemon.docker("rmi", "-f", image, check=False)
    daemon.docker("builder", "prune", "-af", timeout=300)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One run at a time on a machine: they share the daemon's state directory."""
    import fcntl  # POSIX only; this module must still import anywhere for the skip

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_all(
    *, keep_daemon: bool = False, only: Sequence[str] = (), bandwidth_mib: float = 0
) -> dict[str, Any]:
    """Set up, run every scenario, tear down; return the report."""
    started = time.monotonic()
    report: dict[str, Any] = {"setup": {}, "scenarios": [], "failures": []}
    ensure_packages()
    rundir = WORK / "run"
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    daemon = Daemon(WORK / "dockerd")
    daemon.start()
    try:
        report["setup"]["base_image_seconds"] = round(ensure_base_image(daemon), 1)
        # Cache mounts live in the build cache: pruning it makes the first build a first build.
        forget_builds(daemon)
        probe = daemon.docker(
            "run", "--rm", "--network=none", BASE_IMAGE, "python3", "-c",
            "import sys, tarfile; print(sys.version.split()[0], hasattr(tarfile, 'data_filter'))",
        )  # fmt: skip
        version, has_filter = probe.stdout.split()
        report["setup"]["builder_python"] = {"version": version, "data_filter": has_filter}
        log(f"builder stage Python: {version}, tarfile.data_filter: {has_filter}")

        wheelhouse = rundir / "wheelhouse"
        report["setup"]["wheelhouse"] = build_wheelhouse(wheelhouse)
        missing = report["setup"]["wheelhouse"]["package_data_missing"]
        if missing:
            report["failures"].append(f"pylock wheel lacks package data: {missing}")

        from tests import realpython

        archives = build_archives(pick_sources())
        report["archives"] = [
            {"version": a.version, "filename": a.filename, "sha256": a.sha256, "size": a.size}
            for a in archives
        ]
        mirror = rundir / "mirror"
        realpython.write_mirror_tree(mirror, archives)
        (mirror / UV_JSON_PATH.strip("/")).parent.mkdir(parents=True, exist_ok=True)
        realpython.write_uv_downloads_json(mirror / UV_JSON_PATH.strip("/"), archives)
        report["setup"]["seconds"] = round(time.monotonic() - started, 1)

        report["setup"]["bandwidth_mib_s"] = bandwidth_mib or None
        server = MirrorServer(mirror, rundir / "server.log", bandwidth=bandwidth_mib * 2**20)
        with server:
            plans: list[tuple[str, Callable[[], Scenario]]] = [
                ("pylock", lambda: run_pylock(daemon, server, wheelhouse, archives)),
                ("derived", lambda: run_derived(daemon, server, wheelhouse, archives)),
                ("uv", lambda: run_uv(daemon, server, wheelhouse, archives, cache=False)),
                ("uv-cache", lambda: run_uv(daemon, server, wheelhouse, archives, cache=True)),
                ("fleet", lambda: run_fleet(daemon, server, wheelhouse, archives)),
            ]
            scenarios = []
            for label, plan in plans:
                if only and label not in only:
                    continue
                scenario = plan()
                scenarios.append(scenario)
                report["scenarios"].append(scenario.report())
                report["failures"] += [
                    f"{label}: {c['name']}: {c['detail']}" for c in scenario.checks if not c["ok"]
                ]
        report["table"] = table(scenarios)
    finally:
        if not keep_daemon:
            with contextlib.suppress(SetupError, subprocess.SubprocessError):
                forget_builds(daemon)
            daemon.stop()
        report["seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep-daemon", action="store_true", help="leave dockerd running")
    parser.add_argument(
        "--only", action="append", default=[],
        choices=("pylock", "derived", "uv", "uv-cache", "fleet"),
        help="run only this scenario (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--bandwidth", type=float, default=0, metavar="MIB_S",
        help="limit the download host to this many MiB/s per download (default: no limit)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason:
        print(f"docker e2e skipped: {reason}")
        return 0
    with exclusive(WORK / "lock"):
        try:
            report = run_all(
                keep_daemon=args.keep_daemon, only=args.only, bandwidth_mib=args.bandwidth
            )
        except SetupError as exc:
            report = {"failures": [f"setup: {exc}"], "scenarios": [], "table": ""}
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(report.get("table", ""))
    if report["failures"]:
        print("\nFAILED:")
        for failure in report["failures"]:
            print(f"  - {str(failure)[:600]}")
        return 1
    print(f"\nall checks passed in {report.get('seconds', 0):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
