"""The CI and air-gap examples people copy: every `pylock` command in them must parse with the
real argument parser, the workflow must do what its README says, and the air-gap script
must really move interpreters through a file:// mirror."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest

from pylock.cli import build_parser
from pylock.diff import MARKDOWN_MARKER
from pylock.lockfile import Artifact, LockedPython, dumps, loads, make_lock
from pylock.platforms import host
from pylock.versions import Flavor, Implementation

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKFLOW = EXAMPLES / "github-actions" / "pythons.yml"
UPGRADE = EXAMPLES / "github-actions" / "upgrade.yml"
DOCS = [EXAMPLES / "github-actions" / "README.md", EXAMPLES / "air-gapped" / "README.md"]
SCRIPT = EXAMPLES / "air-gapped" / "airgap.sh"

_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "(", ")"}


def pylock_commands(text: str) -> Iterator[list[str]]:
    """The arguments of every `pylock ...` command in shell text (after `pylock`)."""
    text = _EXPRESSION.sub("EXPR", text).replace("\\\n", " ")
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError as exc:  # unbalanced quotes: not shell we understand
            raise AssertionError(f"cannot tokenize {line!r}: {exc}") from None
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token in _OPERATORS or (set(token) <= set("<>|&;()") and token):
                if command and command[0] == "pylock":
                    yield command[1:]
                command = []
            else:
                command.append(token)


def parse_error(args: list[str]) -> str | None:
    """``None`` if pylock's own parser accepts ``args``, else what it said."""
    parser = build_parser()
    stderr = io.StringIO()
    real = sys.stderr
    sys.stderr = stderr
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        return stderr.getvalue().strip() or f"exit {exc.code}"
    finally:
        sys.stderr = real
    return None


def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict)
    return document


def steps(job: str) -> list[dict[str, Any]]:
    return list(workflow()["jobs"][job]["steps"])


def run_scripts() -> list[str]:
    return [s["run"] for job in workflow()["jobs"] for s in steps(job) if "run" in s]


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:sh|bash|shell)\n(.*?)```", markdown, flags=re.S)


# -- the extractor itself ----------------------------------------------------------------------


def test_extractor_finds_commands_in_shell() -> None:
    text = (
        'pylock diff --base "origin/${{ github.base_ref }}" --format markdown > out.md\n'
        "cd x && pylock sync --into .pythons | tee log  # comment pylock bogus\n"
        "pylock mirror /srv \\\n  --all-platforms\n"
        "echo pylock is great\n"
    )
    assert list(pylock_commands(text)) == [
        ["diff", "--base", "origin/EXPR", "--format", "markdown"],
        ["sync", "--into", ".pythons"],
        ["mirror", "/srv", "--all-platforms"],
    ]


@pytest.mark.parametrize(
    "line",
    [
        "pylock sync --intoo .pythons",
        "pylock diff --format html",
        "pylock lock --check --upgrade-python",
        "pylock mirror",
        "pylock frobnicate",
        "pylock mirror out --all-platforms --platform macos-aarch64",
    ],
)
def test_a_wrong_command_is_caught(line: str) -> None:
    (args,) = pylock_commands(line)
    assert parse_error(args) is not None


# -- the GitHub Actions workflow ---------------------------------------------------------------


def test_workflow_has_the_documented_shape() -> None:
    document = workflow()
    assert set(document["jobs"]) == {"check", "review"}
    check = steps("check")
    uses = [s.get("uses", "") for s in check]
    cache_index = next(i for i, u in enumerate(uses) if u.startswith("actions/cache@"))
    cache = check[cache_index]["with"]
    assert cache["path"] == "~/.cache/pylock"
    assert "hashFiles('pythons.lock')" in cache["key"]
    runs = [s.get("run", "") for s in check]
    lock_check = next(i for i, r in enumerate(runs) if "pylock lock --check" in r)
    sync = next(i for i, r in enumerate(runs) if "pylock sync" in r)
    # Fail fast on a stale lock, and restore the cache before installing.
    assert lock_check < cache_index < sync

    review_job = document["jobs"]["review"]
    assert review_job["if"] == "github.event_name == 'pull_request'"
    assert review_job["permissions"]["pull-requests"] == "write"
    review = steps("review")
    checkout = next(s for s in review if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    diffs = [
        args
        for s in review
        if "run" in s
        for args in pylock_commands(s["run"])
        if args[0] == "diff"
    ]
    # The base branch reaches the scripts through env: (checked below).
    assert ["diff", "--base", "origin/$BASE_REF", "--format", "markdown"] in diffs
    comment = next(s for s in review if s.get("uses", "").startswith("actions/github-script@"))
    # The script finds its earlier comment by the marker the Markdown renderer writes.
    assert f'"{MARKDOWN_MARKER}"' in comment["with"]["script"]
    assert "pylock-diff.md" in comment["with"]["script"]


def test_workflow_scripts_take_the_base_branch_through_env() -> None:
    """An expression pasted into `run:` is shell code; the base branch goes through env:."""
    uses_base = 0
    for job in workflow()["jobs"]:
        for step in steps(job):
            assert "${{" not in step.get("run", ""), step.get("name")
            if "$BASE_REF" in step.get("run", ""):
                uses_base += 1
                assert step["env"]["BASE_REF"] == "${{ github.base_ref }}", step.get("name")
    assert uses_base == 2


@pytest.mark.skipif(shutil.which("bash") is None, reason="the workflow's steps are bash")
@pytest.mark.skipif(sys.platform == "win32", reason="the workflow runs on ubuntu-latest")
def test_a_hostile_base_branch_name_runs_nothing(tmp_path: Path) -> None:
    """Run the "did the lock change" step as Actions would, on a base branch whose name is
    shell code: pasted into the script, it ran."""
    hostile = "main$(touch pwned)"
    step = next(s for s in steps("review") if s.get("id") == "changed")

    def expand(text: str) -> str:
        return text.replace("${{ github.base_ref }}", hostile)

    output = tmp_path / "output"
    env = {
        **os.environ,
        **{k: expand(str(v)) for k, v in step.get("env", {}).items()},
        "GITHUB_OUTPUT": str(output),
        # No repository here: git fails, and the step says the lock changed.
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step["run"])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert not (tmp_path / "pwned").exists()
    assert output.read_text() == "lock=true\n"


def comment_script() -> str:
    step = next(
        s for s in steps("review") if s.get("uses", "").startswith("actions/github-script@")
    )
    script = step["with"]["script"]
    assert isinstance(script, str)
    return script


def test_the_comment_step_picks_its_own_bots_comment() -> None:
    script = comment_script()
    assert '"github-actions[bot]"' in script
    assert '"Bot"' in script


@pytest.mark.skipif(shutil.which("node") is None, reason="runs the github-script step in node")
def test_the_comment_step_leaves_a_users_marker_comment_alone(tmp_path: Path) -> None:
    """Run the step's script with stand-ins for github-script's `github` and `context`: a
    user's comment that starts with the marker is not the one to update."""
    comments = [
        {"id": 1, "body": f"{MARKDOWN_MARKER} x", "user": {"login": "mallory", "type": "User"}},
        {"id": 2, "body": "lgtm", "user": {"login": "github-actions[bot]", "type": "Bot"}},
        {"id": 3, "body": MARKDOWN_MARKER, "user": {"login": "github-actions[bot]", "type": "Bot"}},
    ]
    (tmp_path / "pylock-diff.md").write_text(f"{MARKDOWN_MARKER}\nnew table\n")
    harness = f"""
const calls = [];
const github = {{
  paginate: async () => {json.dumps(comments)},
  rest: {{ issues: {{
    listComments: "listComments",
    updateComment: async (args) => calls.push(["update", args.comment_id, args.body]),
    createComment: async (args) => calls.push(["create", args.body]),
  }} }},
}};
const context = {{ repo: {{ owner: "o", repo: "r" }}, issue: {{ number: 7 }} }};
(async () => {{
{comment_script()}
  console.log(JSON.stringify(calls));
}})();
"""
    done = subprocess.run(
        ["node", "-e", harness], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["update", 3, f"{MARKDOWN_MARKER}\nnew table\n"]]


def test_workflow_cache_path_is_pylocks_cache_dir() -> None:
    """The Actions cache must save the directory pylock really uses."""
    env = workflow()["env"]
    assert env["PYLOCK_CACHE_DIR"] == "~/.cache/pylock"
    from pylock.settings import Settings
    from pylock.sync.cache import Cache

    cache = Cache.from_settings(
        # The job's environment: the runner's HOME, and the workflow's variable.
        Settings.from_environ(dict(os.environ, PYLOCK_CACHE_DIR=env["PYLOCK_CACHE_DIR"]))
    )
    assert cache.root == Path.home() / ".cache" / "pylock"


# -- the scheduled upgrade workflow ------------------------------------------------------------


def upgrade_workflow() -> dict[Any, Any]:
    document = yaml.safe_load(UPGRADE.read_text())
    assert isinstance(document, dict)
    return document


def upgrade_steps() -> list[dict[str, Any]]:
    return list(upgrade_workflow()["jobs"]["upgrade"]["steps"])


def test_upgrade_workflow_has_the_documented_shape() -> None:
    document = upgrade_workflow()
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    triggers = document[True]
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert "workflow_dispatch" in triggers
    assert document["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert document["concurrency"]["cancel-in-progress"] is False
    branch = document["env"]["UPGRADE_BRANCH"]
    assert branch and "$" not in branch
    commands = [args for s in upgrade_steps() for args in pylock_commands(s.get("run", ""))]
    assert commands[0] == ["lock", "--refresh", "--upgrade"]
    assert ["diff", "--format", "markdown"] in commands
    for args in commands:
        assert parse_error(args) is None, args
    install = next(s["run"] for s in upgrade_steps() if "pip install" in s.get("run", ""))
    assert '"pythons-lock==' in install


def _fake_tools(bin_dir: Path, log: Path) -> None:
    """`pylock` runs this checkout; `gh` records its calls and plays one pull request."""
    bin_dir.mkdir()
    (bin_dir / "pylock").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pylock "$@"\n')
    gh = f"""#!{sys.executable}
import json, pathlib, sys
args = sys.argv[1:]
log = pathlib.Path({str(log)!r})
state = log.with_suffix(".state")
body = args[args.index("--body-file") + 1] if "--body-file" in args else None
with log.open("a") as out:
    out.write(json.dumps({{"args": args, "body": body and pathlib.Path(body).read_text()}}) + "\\n")
if args[:2] == ["pr", "view"]:
    if not state.exists():
        sys.exit("no pull requests found for branch " + args[2])
    print(state.read_text())
elif args[:2] == ["pr", "create"]:
    state.write_text("OPEN")
"""
    (bin_dir / "gh").write_text(gh)
    for tool in ("pylock", "gh"):
        (bin_dir / tool).chmod(0o755)


def _with_app_at(lock_text: str, version: str, build: str) -> str:
    """``lock_text`` with the interpreter ``app`` moved to another version (and build)."""
    lock = loads(lock_text)
    pythons = [
        attrs.evolve(p, version=version, build=build) if p.name == "app" else p
        for p in lock.pythons
    ]
    return dumps(make_lock(pythons, config_digest=lock.config_digest, created_by=lock.created_by))


@pytest.mark.skipif(shutil.which("git") is None, reason="the workflow needs git")
@pytest.mark.skipif(shutil.which("bash") is None, reason="the workflow's steps are bash")
@pytest.mark.skipif(sys.platform == "win32", reason="the workflow runs on ubuntu-latest")
def test_upgrade_workflow_opens_then_updates_one_pull_request(tmp_path: Path) -> None:
    """Run the workflow's own steps, as Actions would, three times: the first lock change
    opens the pull request, the second updates it, and no change leaves it alone."""
    newest = (EXAMPLES / "basic" / "pythons.lock").read_text()
    older = _with_app_at(newest, "3.13.9", "20251014")
    origin, repo, log, temp = (tmp_path / n for n in ("origin.git", "repo", "gh.log", "temp"))
    temp.mkdir()
    _fake_tools(tmp_path / "bin", log)
    git_env = {
        # git's author and its system-config switch come from the suite's clean environment
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYLOCK_", "GH_"))},
        "GIT_CONFIG_GLOBAL": os.devnull,
        "PYTHONPATH": str(ROOT),
        "PYLOCK_CACHE_DIR": str(tmp_path / "cache"),
    }

    def git(*args: str, cwd: Path = repo) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=git_env, capture_output=True, text=True, check=True
        )
        return done.stdout

    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    git("clone", "-q", str(origin), str(repo), cwd=tmp_path)
    git("switch", "-q", "-c", "main")
    shutil.copy(EXAMPLES / "basic" / "pythons.toml", repo / "pythons.toml")
    (repo / "pythons.lock").write_text(older)
    git("add", "pythons.toml", "pythons.lock")
    git("commit", "-q", "-m", "project")
    git("push", "-q", "origin", "main")

    document = upgrade_workflow()
    context = {"github.token": "fake-token", "github.ref_name": "main"}

    def expand(value: str) -> str:
        return _EXPRESSION.sub(lambda m: context[m.group(0)[3:-2].strip()], value)

    def run_workflow(locked: str) -> dict[str, str]:
        """One scheduled run on a fresh checkout of main, where `lock` writes ``locked``."""
        git("checkout", "-q", "-f", "main")
        git("reset", "-q", "--hard", "origin/main")
        outputs: dict[str, dict[str, str]] = {}
        for step in upgrade_steps():
            if "run" not in step:
                continue
            if "pip install" in step["run"]:
                continue
            condition = step.get("if")
            if condition is not None:
                assert condition == "steps.changed.outputs.lock == 'true'"
                if outputs["changed"].get("lock") != "true":
                    continue
            if step["run"].strip() == "pylock lock --refresh --upgrade":
                # The only step that needs the real upstream: stand in for what it writes.
                (repo / "pythons.lock").write_text(locked)
                continue
            output = tmp_path / "output"
            output.write_text("")
            env = {
                **git_env,
                **{k: expand(str(v)) for k, v in document["env"].items()},
                **{k: expand(str(v)) for k, v in step.get("env", {}).items()},
                "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
                "RUNNER_TEMP": str(temp),
            }
            script = expand(step["run"])
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (step.get("name"), done.stdout, done.stderr)
            lines = output.read_text().splitlines()
            outputs[step.get("id", "")] = dict(line.split("=", 1) for line in lines)
        return outputs["changed"]

    def gh_calls() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    branch = document["env"]["UPGRADE_BRANCH"]

    assert run_workflow(newest) == {"lock": "true"}
    view, create = gh_calls()
    assert view["args"][:3] == ["pr", "view", branch]
    args = create["args"]
    assert args[:2] == ["pr", "create"]
    assert args[args.index("--head") + 1] == branch and args[args.index("--base") + 1] == "main"
    assert create["body"].startswith(MARKDOWN_MARKER)
    assert "3.13.9" in create["body"] and "3.13.15" in create["body"]
    assert git("show", f"origin/{branch}:pythons.lock") == newest
    assert git("show", "origin/main:pythons.lock") == older
    assert create["body"] in (tmp_path / "summary.md").read_text()

    # Upstream moved again before the pull request was merged: the same one is updated.
    newer = _with_app_at(newest, "3.13.16", "20261001")
    assert run_workflow(newer) == {"lock": "true"}
    view, edit = gh_calls()[2:]
    assert view["args"][:2] == ["pr", "view"]
    assert edit["args"][:3] == ["pr", "edit", branch]
    assert "3.13.16" in edit["body"] and "3.13.15" not in edit["body"]
    git("fetch", "-q", "origin")
    assert git("show", f"origin/{branch}:pythons.lock") == newer

    # Nothing new upstream: no commit, no push, no call to gh.
    assert run_workflow(older) == {"lock": "false"}
    assert len(gh_calls()) == 4


# -- every pylock command in the examples -----------------------------------------------------


def all_example_commands() -> list[tuple[str, list[str]]]:
    found = []
    for script in run_scripts():
        found += [(WORKFLOW.name, args) for args in pylock_commands(script)]
    for step in upgrade_steps():
        found += [(UPGRADE.name, args) for args in pylock_commands(step.get("run", ""))]
    for doc in DOCS:
        for block in shell_blocks(doc.read_text()):
            found += [(doc.parent.name + "/" + doc.name, args) for args in pylock_commands(block)]
    return found


def test_every_pylock_command_in_the_examples_parses() -> None:
    commands = all_example_commands()
    problems = [
        f"{where}: pylock {shlex.join(args)}: {error}"
        for where, args in commands
        if (error := parse_error(args)) is not None
    ]
    assert problems == []
    used = {args[0] for _, args in commands}
    assert {"lock", "sync", "diff", "mirror", "list", "verify"} <= used
    assert len(commands) >= 8


def test_script_invocations_parse() -> None:
    """The script builds its pylock commands from arrays; check the ones it can build."""
    text = SCRIPT.read_text()
    assert '"${pylock[@]}" mirror "$out" "${scope[@]}"' in text
    assert '"${pylock[@]}" sync "${args[@]}"' in text
    graal = "https://github.com/oracle/graalpython/releases/download/"
    for args in (
        ["lock", "--check"],
        ["mirror", "OUT", "--all-platforms"],
        ["mirror", "OUT", "--platform", "linux-x86_64-gnu", "--platform", "macos-aarch64"],
        [
            "sync",
            "--mirror",
            "file:///srv/m/",
            "--pypy-mirror",
            "file:///srv/m/pypy/",
            "--rewrite",
            f"{graal}=file:///srv/m/graalpy/",
            "--into",
            "DIR",
        ],
    ):
        assert parse_error(args) is None, args


# -- the air-gap script, end to end through a file:// mirror --------------------------------


def tiny_pbs_archive(path: Path) -> bytes:
    """A small install_only archive in PBS's layout (the interpreter is a shell script)."""
    members = {
        "python/bin/python3.13": b"#!/bin/sh\necho 'Python 3.13.9'\n",
        "python/lib/python3.13/os.py": b"# the os module\n",
        "python/lib/python3.13/lib-dynload/.empty": b"",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o775, 1704067200
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("python/bin/python3")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "python3.13", 1704067200
        tar.addfile(link)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


PBS = "https://github.com/astral-sh/python-build-standalone/releases/download/"
TAG = "20251014"
needs_bash = pytest.mark.skipif(
    shutil.which("bash") is None or sys.platform == "win32",
    reason="the example script is for POSIX shells with bash",
)


@attrs.frozen
class AirGap:
    """A project locking one tiny PBS archive, its file:// upstream, and the script to run."""

    project: Path
    upstream: Path
    artifact: Artifact
    filename: str
    data: bytes

    def script(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLOCK_", "PYTHON"))}
        base_env.update(PYLOCK=f"{sys.executable} -m pylock", PYTHONPATH=str(ROOT))
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            cwd=self.project,
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def export(self, out: Path) -> subprocess.CompletedProcess[str]:
        """The connected side: "upstream" is a file:// tree reached through a rewrite."""
        return self.script(
            "export",
            str(out),
            PYLOCK_CACHE_DIR=str(self.project.parent / "connected-cache"),
            PYLOCK_URL_REWRITES=f"{PBS}={self.upstream.as_uri()}/",
        )


@pytest.fixture
def airgap(tmp_path: Path) -> AirGap:
    platform = host()
    triple = platform.pbs_triple
    if triple is None:
        pytest.skip(f"no PBS builds for {platform.key}")
    filename = f"cpython-3.13.9+{TAG}-{triple}-install_only.tar.gz"
    upstream = tmp_path / "upstream"
    (upstream / TAG).mkdir(parents=True)
    data = tiny_pbs_archive(upstream / TAG / filename)
    artifact = Artifact(
        platform=platform.key,
        url=f"{PBS}{TAG}/{quote(filename)}",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    app = LockedPython(
        name="app",
        implementation=Implementation.CPYTHON,
        version="3.13.9",
        build=TAG,
        flavor=Flavor.INSTALL_ONLY,
        artifacts=(artifact,),
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "pythons.lock").write_text(
        dumps(make_lock([app], config_digest="sha256:" + "3" * 64))
    )
    return AirGap(project, upstream, artifact, filename, data)


@needs_bash
def test_airgap_script_round_trip(tmp_path: Path, airgap: AirGap) -> None:
    out = tmp_path / "usb"
    done = airgap.export(out)
    assert done.returncode == 0, done.stderr
    assert (out / TAG / airgap.filename).read_bytes() == airgap.data
    assert (out / TAG / "SHA256SUMS").read_text() == (
        f"{airgap.artifact.sha256}  {airgap.filename}\n"
    )

    # Disconnected side: an empty cache, no rewrites, nothing but the carried directory.
    shutil.rmtree(airgap.upstream)
    into = tmp_path / "pythons"
    done = airgap.script(
        "install", str(out), str(into), PYLOCK_CACHE_DIR=str(tmp_path / "inside-cache")
    )
    assert done.returncode == 0, done.stderr
    assert (into / "app" / "bin" / "python3.13").read_bytes().startswith(b"#!/bin/sh")
    assert os.readlink(into / "app" / "bin" / "python3") == "python3.13"

    # A usage mistake gets the usage text and status 2.
    done = airgap.script("bogus", "x")
    assert done.returncode == 2
    assert "airgap.sh export OUTDIR" in done.stderr


@needs_bash
def test_airgap_script_installs_from_a_directory_with_awkward_characters(
    tmp_path: Path, airgap: AirGap
) -> None:
    out = tmp_path / "usb #1 100% \u00fc"
    done = airgap.export(out)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(airgap.upstream)
    into = tmp_path / "pythons"
    done = airgap.script(
        "install", str(out), str(into), PYLOCK_CACHE_DIR=str(tmp_path / "inside-cache")
    )
    assert done.returncode == 0, done.stderr
    assert (into / "app" / "bin" / "python3.13").is_file()


@needs_bash
@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="the check needs sha256sum")
@pytest.mark.parametrize("linked", [False, True], ids=["dir", "symlink"])
def test_airgap_export_fails_on_a_damaged_tree(
    tmp_path: Path, airgap: AirGap, linked: bool
) -> None:
    out = tmp_path / "usb"
    if linked:  # attack: `find` did not follow a linked OUTDIR, and checked nothing
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    assert airgap.export(out).returncode == 0
    # An archive an earlier run wrote for another lock, damaged since: this lock's mirror
    # run keeps it, and only the script's check notices.
    (out / TAG / "other.tar.gz").write_bytes(b"damaged")
    with (out / TAG / "SHA256SUMS").open("a") as sums:
        sums.write(f"{hashlib.sha256(b'intact').hexdigest()}  other.tar.gz\n")
    done = airgap.export(out)
    assert done.returncode == 1
    assert "other.tar.gz: FAILED" in done.stdout + done.stderr
    assert "failed its SHA256SUMS check" in done.stderr


@needs_bash
def test_airgap_install_from_a_missing_directory_stops_at_once(airgap: AirGap) -> None:
    """Attack: `cd` failed inside `$(...)`, and pylock ran with `--mirror file:///`."""
    done = airgap.script("install", "/no/such/mirror", "into")
    assert done.returncode == 1
    assert done.stderr.strip() == "airgap.sh: /no/such/mirror: no such mirror directory"
