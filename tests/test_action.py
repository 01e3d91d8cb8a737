"""The composite GitHub Action (``action.yml``), run for real, step by step, with bash.

A small runner plays GitHub's part: it evaluates the few ``${{ }}`` expressions the action
uses (and fails on any other, so the action stays this simple), gives each ``run:`` step the
``GITHUB_OUTPUT``/``GITHUB_ENV``/``GITHUB_PATH`` files, and runs it as GitHub does
(``bash --noprofile --norc -eo pipefail``). The two ``uses:`` steps are simulated:
``actions/setup-python`` answers with this Python, and ``actions/cache`` restores and saves
a directory in a store that outlives a "job", as the Actions cache does.

``pip install pythons-lock==VERSION`` runs for real too, offline, from a wheelhouse built
in the test: a wheel of this checkout, and its dependencies repacked from this environment.
The interpreters come from a loopback mirror that counts requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import Distribution, distribution
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from packaging.requirements import Requirement

import pylock
from pylock.config import digests_of_file
from pylock.lockfile import dumps, make_lock
from pylock.platforms import host
from tests.httpserver import HttpServer
from tests.syncproject import Build, speaking_build

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras")

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
HOST = host()

posix_only = pytest.mark.skipif(os.name == "nt", reason="the runner here is POSIX bash")
TestFunction = TypeVar("TestFunction", bound=Callable[..., None])


def action() -> dict[str, Any]:
    document = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


# -- the shape of the action (fast) ----------------------------------------------------------


def test_every_uses_is_pinned_to_a_major_version() -> None:
    steps = action()["runs"]["steps"]
    uses = [step["uses"] for step in steps if "uses" in step]
    assert uses, "the action uses actions/cache"
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", ref), ref
    assert "actions/cache@v4" in uses


def test_run_steps_are_bash_and_take_inputs_through_env() -> None:
    # An input pasted into a script could inject shell code; through env: it cannot.
    document = action()
    assert document["runs"]["using"] == "composite"
    runs = [step for step in document["runs"]["steps"] if "run" in step]
    assert len(runs) >= 3
    for step in runs:
        assert step["shell"] == "bash", step["name"]
        assert "${{" not in step["run"], step["name"]


def test_inputs_and_outputs_are_the_documented_ones() -> None:
    document = action()
    inputs = document["inputs"]
    assert set(inputs) == {"version", "project", "into", "bin-dir", "cache", "check-lock"}
    assert inputs["cache"]["default"] == "true"
    assert inputs["check-lock"]["default"] == "true"
    assert set(document["outputs"]) == {"python", "cache-hit"}


def test_default_version_is_the_packages_version() -> None:
    # The version lives in pylock/__init__.py (pyproject reads it from there); the action's
    # default, the README's pre-commit rev and the Docker example are the copies a release
    # must bump too.
    default = action()["inputs"]["version"]["default"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["dynamic"] == ["version"]
    assert default == pylock.__version__
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"rev: v{default}\n" in readme
    # The Docker example pins the release too (the docs audit found nothing checked it).
    docker = ROOT / "examples" / "docker"
    assert f"ARG PYLOCK_VERSION={default}\n" in (docker / "Dockerfile").read_text("utf-8")
    assert f"| `PYLOCK_VERSION` | `{default}` |" in (docker / "README.md").read_text("utf-8")


def test_readme_and_example_use_the_action() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "uses: pylock-dev/pylock@v0" in readme
    example = ROOT / "examples" / "github-actions" / "with-action.yml"
    workflow = yaml.safe_load(example.read_text(encoding="utf-8"))
    used = [s.get("uses", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert "pylock-dev/pylock@v0" in used


# -- a tiny GitHub Actions runner ------------------------------------------------------------

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_REF = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*")
_COMPARISON = re.compile(r"(\S+)\s*(==|!=)\s*'([^']*)'")


class Unsupported(AssertionError):
    """The action uses an expression this runner does not evaluate."""


def lookup(ref: str, contexts: Mapping[str, Any]) -> str:
    if not _REF.fullmatch(ref):
        raise Unsupported(f"not a plain context reference: {ref!r}")
    value: Any = contexts
    for part in ref.split("."):
        if not isinstance(value, Mapping) or part not in value:
            # GitHub gives '' for a missing step output (e.g. of a skipped step).
            if ref.startswith("steps."):
                return ""
            raise Unsupported(f"unknown context reference: {ref!r}")
        value = value[part]
    return str(value)


def substitute(text: object, contexts: Mapping[str, Any]) -> str:
    # YAML reads `false` as a boolean; GitHub hands actions the string "false".
    text = str(text).lower() if isinstance(text, bool) else str(text)
    return _EXPR.sub(lambda m: lookup(m.group(1), contexts), text)


def condition(expression: str, contexts: Mapping[str, Any]) -> bool:
    expression = _EXPR.sub(lambda m: m.group(1), expression.strip())
    match = _COMPARISON.fullmatch(expression)
    if match is None:
        raise Unsupported(f"not a simple comparison: {expression!r}")
    ref, op, literal = match.groups()
    return (lookup(ref, contexts) == literal) == (op == "==")


def test_the_runner_refuses_what_it_cannot_evaluate() -> None:
    contexts = {"inputs": {"a": "x"}, "steps": {}}
    assert substitute("k-${{ inputs.a }}-${{ steps.s.outputs.o }}", contexts) == "k-x-"
    assert condition("inputs.a == 'x'", contexts)
    assert condition("${{ inputs.a != 'y' }}", contexts)
    for bad in ("${{ hashFiles('x') }}", "${{ inputs.b }}", "${{ github.token }}"):
        with pytest.raises(Unsupported):
            substitute(bad, contexts)
    with pytest.raises(Unsupported):
        condition("inputs.a == 'x' && always()", contexts)


def run_step(script: Path, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """One ``run:`` step's script, with the bash options a runner gives it."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def read_commands(path: Path) -> dict[str, str]:
    """``GITHUB_OUTPUT``/``GITHUB_ENV`` lines: ``k=v`` and ``k<<DELIM`` ... ``DELIM``."""
    values: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines()) if path.exists() else iter(())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            body = []
            for more in lines:
                if more == delimiter:
                    break
                body.append(more)
            values[key] = "\n".join(body)
        elif line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


@attrs.define
class CacheService:
    """The Actions cache: directories saved under a key, outliving every job."""

    root: Path
    saved: list[str] = attrs.field(factory=list)

    def restore(self, path: Path, key: str, restore_keys: list[str]) -> str:
        candidates = [key] if key in self.saved else []
        for prefix in restore_keys:
            candidates += [k for k in reversed(self.saved) if k.startswith(prefix)]
        if not candidates:
            return "false"
        if path.exists():
            shutil.rmtree(path)
        shutil.copytree(self.root / hashlib.sha256(candidates[0].encode()).hexdigest(), path)
        return "true" if candidates[0] == key else "false"

    def save(self, path: Path, key: str) -> None:
        if key in self.saved or not path.is_dir():
            return
        shutil.copytree(path, self.root / hashlib.sha256(key.encode()).hexdigest())
        self.saved.append(key)


@attrs.frozen
class Run:
    """One job's use of the action."""

    code: int
    outputs: dict[str, str]
    env: dict[str, str]
    path: list[str]
    log: str
    ran: list[str]


def run_action(
    workspace: Path,
    runner_temp: Path,
    inputs: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    cache: CacheService,
) -> Run:
    """Run action.yml's steps the way a GitHub runner runs a composite action."""
    document = action()
    given = {name: spec.get("default", "") for name, spec in document["inputs"].items()}
    assert set(inputs) <= set(given), "unknown input"
    given.update(inputs)
    runner_temp.mkdir(parents=True)
    runner = {
        "os": "macOS" if sys.platform == "darwin" else "Linux",
        "arch": "ARM64" if HOST.arch == "aarch64" else "X64",
        "temp": str(runner_temp),
    }
    contexts: dict[str, Any] = {
        "inputs": given,
        "runner": runner,
        "github": {"action_path": str(ROOT), "workspace": str(workspace)},
        "steps": {},
    }
    env = dict(environ)
    env.update(
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_ACTION_PATH=str(ROOT),
        RUNNER_TEMP=str(runner_temp),
        RUNNER_OS=runner["os"],
        RUNNER_ARCH=runner["arch"],
    )
    added_env: dict[str, str] = {}
    added_path: list[str] = []
    log: list[str] = []
    ran: list[str] = []
    post: list[tuple[Path, str]] = []
    code = 0
    for index, step in enumerate(document["runs"]["steps"]):
        if "if" in step and not condition(str(step["if"]), contexts):
            continue
        ran.append(step["name"])
        outputs: dict[str, str] = {}
        if "uses" in step:
            uses, _, version = step["uses"].partition("@")
            with_ = {k: substitute(v, contexts) for k, v in step.get("with", {}).items()}
            if uses == "actions/setup-python":
                assert with_["update-environment"] == "false"
                outputs["python-path"] = sys.executable
            elif uses == "actions/cache":
                restore_keys = with_.get("restore-keys", "").split()
                path, key = Path(with_["path"]), with_["key"]
                outputs["cache-hit"] = cache.restore(path, key, restore_keys)
                if outputs["cache-hit"] != "true":
                    post.append((path, key))
            else:
                raise Unsupported(f"no simulation of {uses}@{version}")
        else:
            files = runner_temp / f"_step{index}"
            files.mkdir()
            script = files / "script.sh"
            script.write_text(step["run"], encoding="utf-8")
            step_env = {**env, **added_env}
            step_env["PATH"] = os.pathsep.join([*reversed(added_path), env["PATH"]])
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH"):
                (files / name).touch()
                step_env[name] = str(files / name)
            step_env.update({k: substitute(v, contexts) for k, v in step.get("env", {}).items()})
            result = run_step(script, workspace, step_env)
            log.append(
                f"## {step['name']} (exit {result.returncode})\n{result.stdout}{result.stderr}"
            )
            outputs = read_commands(files / "GITHUB_OUTPUT")
            added_env.update(read_commands(files / "GITHUB_ENV"))
            added_path += (files / "GITHUB_PATH").read_text(encoding="utf-8").splitlines()
            if result.returncode != 0:
                code = result.returncode
                break
        if "id" in step:
            contexts["steps"][step["id"]] = {"outputs": outputs}
    if code == 0:
        for path, key in post:  # the cache's post-job step saves what the job left
            cache.save(path, key)
    action_outputs = {
        name: substitute(spec["value"], contexts) for name, spec in document["outputs"].items()
    }
    return Run(
        code=code,
        outputs=action_outputs if code == 0 else {},
        env=added_env,
        path=list(reversed(added_path)),
        log="\n".join(log),
        ran=ran,
    )


# -- an offline wheelhouse for `pip install pythons-lock==VERSION` ---------------------------


def _record(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> None:
    lines = [_record(name, data) for name, data in files.items()]
    files = {
        **files,
        f"{dist_info}/RECORD": ("\n".join([*lines, f"{dist_info}/RECORD,,"]) + "\n").encode(),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def repack(dist: Distribution, wheelhouse: Path) -> None:
    """A wheel of an installed distribution, from the files its RECORD lists."""
    files: dict[str, bytes] = {}
    dist_info = ""
    for entry in dist.files or ():
        name = entry.as_posix()
        if name.startswith("..") or "__pycache__" in name:
            continue
        if name.endswith(".dist-info/METADATA"):
            dist_info = name.rsplit("/", 1)[0]
        if name.rsplit("/", 1)[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            continue
        files[name] = Path(str(entry.locate())).read_bytes()
    wheel_meta = files[f"{dist_info}/WHEEL"].decode()
    tag = re.search(r"^Tag: (\S+)$", wheel_meta, re.MULTILINE)
    assert dist_info and tag, dist.metadata["Name"]
    write_wheel(
        wheelhouse / f"{dist_info.removesuffix('.dist-info')}-{tag.group(1)}.whl", files, dist_info
    )


def build_pythons_lock_wheel(wheelhouse: Path) -> None:
    """A wheel of this checkout, named as PyPI knows it (DESIGN.md §10): pythons-lock."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version = pylock.__version__
    dist_info = f"pythons_lock-{version}.dist-info"
    files: dict[str, bytes] = {}
    package = ROOT / "pylock"
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        wanted = (
            path.suffix == ".py"
            or path.name == "py.typed"
            or (path.parent.name == "index" and path.name.endswith((".json", ".json.gz")))
        )
        if path.is_file() and wanted and "__pycache__" not in rel:
            files[rel] = path.read_bytes()
    metadata = [
        "Metadata-Version: 2.1",
        "Name: pythons-lock",
        f"Version: {version}",
        f"Requires-Python: {project['requires-python']}",
        *(f"Requires-Dist: {req}" for req in project["dependencies"]),
    ]
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: pylock-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = "".join(f"{k} = {v}\n" for k, v in project["scripts"].items())
    files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    write_wheel(wheelhouse / f"pythons_lock-{version}-py3-none-any.whl", files, dist_info)


def dependency_closure(requirements: list[str]) -> Iterator[Distribution]:
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        dist = distribution(req.name)
        yield dist
        todo += [Requirement(r) for r in dist.requires or ()]


@pytest.fixture(scope="module")
def pip_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("wheelhouse")
    build_pythons_lock_wheel(house)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dist in dependency_closure(project["dependencies"]):
        repack(dist, house)
    return house


# -- a project whose lock points at loopback archives ----------------------------------------


def app_and_tool(server: HttpServer | None = None) -> tuple[Build, Build]:
    """The two interpreters the action tests lock, served by ``server`` when one is given."""
    app = speaking_build("app", "20990101")
    tool = speaking_build("tool", "20990101", minor="3.11")
    if server is not None:
        for build in (app, tool):
            server.serve(build.path, build.data)
    return app, tool


def write_project(root: Path, app: Build, tool: Build) -> None:
    """pythons.toml asking for app (default) and tool, and a fresh lock of ``app``/``tool``."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "pythons.toml"
    config.write_text(
        f'[python.{app.name}]\nversion = "{app.minor}"\ndefault = true\n\n'
        f'[python.{tool.name}]\nversion = "{tool.minor}"\n',
        encoding="utf-8",
    )
    (digest,) = digests_of_file(config)
    lock = make_lock([app.python(default=True), tool.python(default=False)], config_digest=digest)
    (root / "pythons.lock").write_text(dumps(lock), encoding="utf-8")


@pytest.fixture
def environ(pip_wheelhouse: Path, server: HttpServer, tmp_path: Path) -> dict[str, str]:
    """A runner's environment: no pylock on PATH, pip offline, the job's mirror setting."""
    venv_bin = str(Path(sys.executable).parent)
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYLOCK_", "PIP_", "VIRTUAL_ENV", "GITHUB_", "RUNNER_"))
        and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    }
    keep["PATH"] = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    home = tmp_path / "home"
    home.mkdir()
    keep.update(
        HOME=str(home),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(pip_wheelhouse),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYLOCK_MIRROR=server.base_url + "/",
    )
    return keep


def downloads(server: HttpServer) -> list[str]:
    return [r.path for r in server.log]


needs_pbs_host = pytest.mark.skipif(HOST.pbs_triple is None, reason="no PBS triple for this host")


def runs_the_action(test: TestFunction) -> TestFunction:
    """The marks of a test that runs the action's steps: slow, POSIX bash, a PBS host."""
    marked: TestFunction = pytest.mark.slow(posix_only(needs_pbs_host(test)))
    return marked


# -- running the action ----------------------------------------------------------------------


@runs_the_action
def test_action_installs_caches_and_a_second_job_downloads_nothing(
    tmp_path: Path, server: HttpServer, environ: dict[str, str]
) -> None:
    app, tool = app_and_tool(server)
    cache = CacheService(tmp_path / "actions-cache")
    cache.root.mkdir()

    def job(number: int) -> tuple[Run, Path]:
        workspace = tmp_path / f"job{number}" / "workspace"
        write_project(workspace, app, tool)
        run = run_action(
            workspace, tmp_path / f"job{number}" / "temp", {}, environ=environ, cache=cache
        )
        assert run.code == 0, run.log
        return run, workspace

    first, workspace = job(1)
    assert sorted(downloads(server)) == sorted([app.path, tool.path])
    assert first.outputs["cache-hit"] == "false"
    python = Path(first.outputs["python"])
    assert python == workspace / ".pythons" / "app" / "bin" / "python3"
    assert "Check that pythons.lock is up to date" in first.ran

    # The next steps of the job see pylock and the interpreters on PATH, and the cache dir.
    temp = tmp_path / "job1" / "temp"
    bin_dir = temp / "pylock-action" / "bin"
    assert first.path[:2] == [str(bin_dir), str(temp / "pylock-action" / "tool")]
    assert first.env["PYLOCK_CACHE_DIR"] == str(temp / "pylock-action" / "cache")
    assert first.env["PYLOCK_BIN_DIR"] == str(bin_dir)
    assert "PYLOCK_INSTALL_DIR" not in first.env
    path = os.pathsep.join([*first.path, environ["PATH"]])
    for command, expected in [
        ("python3.12", "fake cpython 3.12.7+20990101 (app)"),
        ("python", "fake cpython 3.12.7+20990101 (app)"),
        ("python3.11", "fake cpython 3.11.7+20990101 (tool)"),
    ]:
        out = subprocess.run(
            ["bash", "-c", command], env={**environ, "PATH": path}, capture_output=True, text=True
        )
        assert out.stdout.strip() == expected, out.stderr
    which = shutil.which("pylock", path=path)
    assert which == str(temp / "pylock-action" / "tool" / "pylock")
    version = subprocess.run([which, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"pylock {pylock.__version__}"

    # A second job: a fresh runner whose cache is restored by key downloads nothing.
    server.log.clear()
    second, workspace2 = job(2)
    assert downloads(server) == []
    assert second.outputs["cache-hit"] == "true"
    assert Path(second.outputs["python"]) == workspace2 / ".pythons" / "app" / "bin" / "python3"
    assert Path(second.outputs["python"]).is_file()

    # A new lock (app moved to a new build): the restore key brings the old archives, and
    # only the changed interpreter is downloaded.
    app = speaking_build("app", "20990202")
    server.serve(app.path, app.data)
    server.log.clear()
    third, _ = job(3)
    assert downloads(server) == [app.path]
    assert third.outputs["cache-hit"] == "false"
    assert len(cache.saved) == 2
    # What it saved holds this lock's archives only: the old build's was pruned.
    saved = cache.root / hashlib.sha256(cache.saved[-1].encode()).hexdigest()
    archives = sorted(path.name for path in saved.rglob("*.tar.*") if path.is_file())
    assert archives == sorted([app.filename, tool.filename])
    assert "removed 1 archive(s)" in third.log


@runs_the_action
def test_action_inputs_into_bin_dir_and_no_cache(
    tmp_path: Path, server: HttpServer, environ: dict[str, str]
) -> None:
    app, tool = app_and_tool(server)
    workspace = tmp_path / "workspace"
    write_project(workspace / "sub dir", app, tool)
    cache = CacheService(tmp_path / "actions-cache")
    inputs = {"project": "sub dir", "into": "opt/py", "bin-dir": "bin", "cache": "false"}
    run = run_action(workspace, tmp_path / "temp", inputs, environ=environ, cache=cache)
    assert run.code == 0, run.log
    assert "Restore pylock's archive cache" not in run.ran
    assert run.outputs["cache-hit"] == ""
    assert cache.saved == []
    assert run.outputs["python"] == str(workspace / "opt" / "py" / "app" / "bin" / "python3")
    assert run.env["PYLOCK_INSTALL_DIR"] == str(workspace / "opt" / "py")
    assert run.path[0] == str(workspace / "bin")
    assert (workspace / "bin" / "python3.11").is_symlink()
    assert sorted(downloads(server)) == sorted([app.path, tool.path])


@runs_the_action
def test_a_stale_lock_fails_the_job_before_anything_is_installed(
    tmp_path: Path, server: HttpServer, environ: dict[str, str]
) -> None:
    app, tool = app_and_tool()
    workspace = tmp_path / "workspace"
    write_project(workspace, app, tool)
    config = workspace / "pythons.toml"
    config.write_text(config.read_text().replace('"3.12"', '"3.13"'))
    cache = CacheService(tmp_path / "actions-cache")
    run = run_action(workspace, tmp_path / "temp", {}, environ=environ, cache=cache)
    assert run.code == 1
    assert run.ran[-1] == "Check that pythons.lock is up to date"
    assert "pylock: error: pythons.lock is out of date with pythons.toml" in run.log
    assert "Traceback" not in run.log
    assert not (workspace / ".pythons").exists()
    assert downloads(server) == []


@pytest.mark.slow
@posix_only
def test_a_hostile_input_is_data_not_code(
    tmp_path: Path, server: HttpServer, environ: dict[str, str]
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    cache = CacheService(tmp_path / "actions-cache")
    inputs = {"project": '"; touch pwned; echo "$(touch pwned2)', "bin-dir": "`touch pwned3`"}
    run = run_action(workspace, tmp_path / "temp", inputs, environ=environ, cache=cache)
    assert run.code == 1
    assert "::error title=pylock::no pythons.lock in" in run.log
    assert sorted(p.name for p in workspace.iterdir()) == []


def test_readme_and_example_pass_the_python_output_through_the_environment() -> None:
    # Pasted into a script, a path with a space (`into: "py dir"`) split into two words.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = ROOT / "examples" / "github-actions" / "with-action.yml"
    workflow = yaml.safe_load(example.read_text(encoding="utf-8"))
    runs = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if "run" in s]
    assert not [run for run in runs if "${{" in run]
    assert '"$PYTHON" -m venv .venv' in "\n".join(runs)
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert all(s.get("shell") == "bash" for s in steps if "$PYTHON" in s.get("run", ""))
    assert "run: ${{" not in readme
    assert "PYTHON: ${{ steps.pythons.outputs.python }}" in readme


def test_example_workflow_commands_parse() -> None:
    from tests.test_examples_ci import parse_error, pylock_commands

    example = ROOT / "examples" / "github-actions" / "with-action.yml"
    workflow = yaml.safe_load(example.read_text(encoding="utf-8"))
    commands = [
        args
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for args in pylock_commands(step["run"])
    ]
    assert commands, "the example runs pylock after the action"
    for args in commands:
        assert parse_error(args) is None, args


@posix_only
@pytest.mark.parametrize("name", ["project", "into", "bin-dir", "version"])
def test_an_input_with_a_newline_is_refused_before_anything_runs(name: str, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    cache = CacheService(tmp_path / "actions-cache")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    inputs = {name: "x\nPYLOCK_OFFLINE=1\nLD_PRELOAD=/tmp/evil.so"}
    run = run_action(workspace, tmp_path / "temp", inputs, environ=environ, cache=cache)
    assert run.code == 1
    assert "::error title=pylock::the version, project, into and bin-dir inputs" in run.log
    assert run.env == {} and run.path == []
    assert not (tmp_path / "temp" / "pylock-action").exists()


def step_with_tool(
    tmp_path: Path, step_id: str, tool: Path, text: str, names: tuple[str, ...]
) -> tuple[Path, dict[str, Path]]:
    """The ``run:`` script of step ``step_id`` in ``tmp_path``, the stand-in executable
    ``tool`` holding ``text``, and the paths of the files ``names`` (GITHUB_OUTPUT...)."""
    (step,) = [s for s in action()["runs"]["steps"] if s.get("id") == step_id]
    tool.write_text(text, encoding="utf-8")
    tool.chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    return script, {name: tmp_path / name for name in names}


def sync_step_env(
    tmp_path: Path, shim: Path, files: dict[str, Path], **extra: str
) -> dict[str, str]:
    """The sync step's environment in ``tmp_path``, with ``shim`` as pylock and an empty
    lock, as the action's earlier steps leave it."""
    (tmp_path / "pythons.lock").write_text("", encoding="utf-8")
    return {
        "PATH": os.environ["PATH"],
        "PROJECT": str(tmp_path),
        "INTO": str(tmp_path / ".pythons"),
        "INPUT_VERSION": "0.2.0",
        "LOCK": str(tmp_path / "pythons.lock"),
        "ROOT": str(tmp_path),
        "PYLOCK": str(shim),
        "PYLOCK_PYTHON": sys.executable,
        "PYLOCK_BIN_DIR": str(tmp_path / "bin"),
        "GITHUB_OUTPUT": str(files["GITHUB_OUTPUT"]),
        "GITHUB_PATH": str(files["GITHUB_PATH"]),
        **extra,
    }


# A pythons-lock release older than the action (the version input): no `cache prune
# --keep-lock` (argparse refuses it, exit 2) and no "state" in `list --format json`.
_OLDER_PYLOCK = """#!/bin/sh
echo "$*" >> "$SHIM_LOG"
case "$*" in
  *"cache prune --help"*) echo "usage: pylock cache prune [--max-size SIZE] [--unused-for DAYS]" ;;
  *--keep-lock*) echo "pylock: error: unrecognized arguments: --keep-lock" >&2; exit 2 ;;
  *"list --format json"*) echo '{"platform": "x", "install-dir": "d", "pythons": [
    {"name": "tool", "default": false, "status": "not installed"},
    {"name": "app", "default": true, "status": "installed"}]}' ;;
  *"which --into "*" app"*) echo /installed/app/bin/python3 ;;
esac
"""


@posix_only
def test_the_sync_step_does_without_what_an_older_pylock_lacks(tmp_path: Path) -> None:
    shim = tmp_path / "pylock"
    script, files = step_with_tool(
        tmp_path, "sync", shim, _OLDER_PYLOCK, ("GITHUB_OUTPUT", "GITHUB_PATH", "shim.log")
    )
    env = sync_step_env(tmp_path, shim, files, CACHE_ON="true", SHIM_LOG=str(files["shim.log"]))
    result = run_step(script, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "has no cache prune --keep-lock (pythons-lock 0.2.0 is older" in result.stdout
    assert "--keep-lock" not in files["shim.log"].read_text(encoding="utf-8")
    assert read_commands(files["GITHUB_OUTPUT"])["python"] == "/installed/app/bin/python3"


_LISTING_PYLOCK = """#!/bin/sh
case "$*" in
  *"cache prune --help"*) echo "usage: pylock cache prune [--keep-lock LOCK]" ;;
  *"list --format json"*) cat "$LISTING" ;;
  *"which --into "*) for last; do :; done; echo "/installed/$last/bin/python3" ;;
esac
"""


@posix_only
@pytest.mark.parametrize(
    ("rows", "python"),
    [
        # The default is locked for other platforms only: not the one that was installed.
        ([("tool", False, "installed"), ("app", True, "not-locked")], ""),
        ([("tool", False, "installed"), ("app", False, "not-locked")], ""),
        ([("tool", False, "installed"), ("app", True, "installed")], "/installed/app/bin/python3"),
        ([("tool", False, "installed")], "/installed/tool/bin/python3"),
    ],
)
def test_the_python_output_is_the_default_or_the_only_one_the_lock_has(
    tmp_path: Path, rows: list[tuple[str, bool, str]], python: str
) -> None:
    shim = tmp_path / "pylock"
    script, files = step_with_tool(
        tmp_path, "sync", shim, _LISTING_PYLOCK, ("GITHUB_OUTPUT", "GITHUB_PATH")
    )
    listing = [{"name": n, "default": d, "state": state} for n, d, state in rows]
    (tmp_path / "listing.json").write_text(json.dumps({"pythons": listing}), encoding="utf-8")
    env = sync_step_env(
        tmp_path, shim, files, CACHE_ON="false", LISTING=str(tmp_path / "listing.json")
    )
    result = run_step(script, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_commands(files["GITHUB_OUTPUT"])["python"] == python


# -- the install step's inputs, with a stand-in for setup-python's interpreter ------------

#: Stands in for setup-python's interpreter: `-m venv --without-pip DIR` makes a venv whose
#: python is the real interpreter and whose pylock exists; `-m pip` installs nothing.
_BASE_PYTHON = """#!/bin/sh
if [ "$1 $2 $3" = "-m venv --without-pip" ]; then
  mkdir -p "$4/bin"
  printf '#!/bin/sh\\nexec "%s" "$@"\\n' "$REAL_PYTHON" > "$4/bin/python"
  printf '#!/bin/sh\\nexit 0\\n' > "$4/bin/pylock"
  chmod +x "$4/bin/python" "$4/bin/pylock"
  exit 0
fi
[ "$1 $2" = "-m pip" ] && exit 0
exec "$REAL_PYTHON" "$@"
"""


def run_install_step(
    tmp_path: Path, inputs: Mapping[str, str], environ: Mapping[str, str] = {}
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], dict[str, str]]:
    """The install step with ``inputs`` (the action's defaults for the rest): its result,
    and what it wrote to GITHUB_ENV and GITHUB_OUTPUT."""
    defaults = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()}
    values = defaults | dict(inputs)
    base = tmp_path / "base-python"
    script, files = step_with_tool(
        tmp_path, "install", base, _BASE_PYTHON, ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH")
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RUNNER_TEMP": str(tmp_path / "temp"),
        "REAL_PYTHON": sys.executable,
        "BASE_PYTHON": str(base),
        **{f"INPUT_{k.upper().replace('-', '_')}": v for k, v in values.items()},
        **{k: str(v) for k, v in files.items()},
        **environ,
    }
    for written in files.values():
        written.unlink(missing_ok=True)  # this run's commands only
    result = run_step(script, tmp_path / "workspace", env)
    return result, read_commands(files["GITHUB_ENV"]), read_commands(files["GITHUB_OUTPUT"])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for project in ("workspace", "workspace/sub"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "pythons.lock").write_text("", encoding="utf-8")
    return tmp_path / "workspace"


@posix_only
def test_a_second_use_installs_beside_its_own_lock(tmp_path: Path, workspace: Path) -> None:
    """Attack: a first use with `into: shared` exported PYLOCK_INSTALL_DIR; a second use
    with `into` left empty installed into `shared` and pruned the first's interpreters."""
    result, env, outputs = run_install_step(tmp_path, {"into": "shared"})
    assert result.returncode == 0, result.stderr
    assert outputs["into"] == env["PYLOCK_INSTALL_DIR"] == str(workspace / "shared")
    # The second use sees what the first exported, and does not take it.
    inherited = {"PYLOCK_INSTALL_DIR": env["PYLOCK_INSTALL_DIR"]}
    result, env, outputs = run_install_step(tmp_path, {"project": "sub"}, inherited)
    assert result.returncode == 0, result.stderr
    assert outputs["into"] == str(workspace / "sub" / ".pythons")
    assert "PYLOCK_INSTALL_DIR" not in env
    # One the job set itself is the default, as pylock's own default is.
    own = {"PYLOCK_INSTALL_DIR": str(tmp_path / "opt-py"), "RUNNER_TEMP": str(tmp_path / "job2")}
    result, env, outputs = run_install_step(tmp_path, {"project": "sub"}, own)
    assert outputs["into"] == own["PYLOCK_INSTALL_DIR"], result.stderr


@posix_only
@pytest.mark.parametrize(
    ("inputs", "project"),
    [({"project": ""}, "."), ({"project": "-p"}, "-p"), ({"project": "sub"}, "sub")],
)
def test_the_project_is_passed_on_as_an_absolute_path(
    tmp_path: Path, workspace: Path, inputs: dict[str, str], project: str
) -> None:
    """Attack: an empty project passed the first step and failed the next (`--project ""`);
    one starting with `-` was read as an option."""
    (workspace / "-p").mkdir()
    (workspace / "-p" / "pythons.lock").write_text("", encoding="utf-8")
    result, _, outputs = run_install_step(tmp_path, inputs)
    assert result.returncode == 0, result.stderr
    assert outputs["project"] == os.path.normpath(workspace / project)


@posix_only
@pytest.mark.parametrize(
    ("cache", "expected"), [("true", "true"), ("True", "true"), ("false", "false")]
)
def test_the_cache_input_is_read_as_github_reads_it(
    tmp_path: Path, workspace: Path, cache: str, expected: str
) -> None:
    """Attack: `cache: True` restored and saved the cache (GitHub's `==` ignores case) but
    skipped the prune; `cache: false` still replaced the job's own PYLOCK_CACHE_DIR."""
    own = {"PYLOCK_CACHE_DIR": str(tmp_path / "mine")}
    result, env, outputs = run_install_step(tmp_path, {"cache": cache}, own)
    assert result.returncode == 0, result.stderr
    assert outputs["cache-on"] == expected
    if expected == "true":
        assert env["PYLOCK_CACHE_DIR"] == outputs["cache-dir"] != own["PYLOCK_CACHE_DIR"]
    else:
        assert "PYLOCK_CACHE_DIR" not in env
        assert outputs["cache-dir"] == own["PYLOCK_CACHE_DIR"]


@posix_only
@pytest.mark.parametrize(
    "version", ['0.2.0; python_version<"3"', "0.2.0,!=0.2.0", "", "latest", "0.2.0 "]
)
def test_a_version_that_is_no_release_is_refused(
    tmp_path: Path, workspace: Path, version: str
) -> None:
    result, env, outputs = run_install_step(tmp_path, {"version": version})
    assert result.returncode == 1
    assert "::error title=pylock::version must be a release such as 0.2.0" in result.stdout
    assert env == {} and outputs == {}
