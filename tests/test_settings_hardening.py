"""Settings are read once (settings.py), and the CLI only translates (issue 12)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import pylock
from pylock.cli import main
from pylock.errors import PylockError, UsageError
from pylock.fastpath import sync_dirs, try_noop_sync
from pylock.fsutil import display_path
from pylock.net.fetch import FetchOptions
from pylock.net.policy import netrc_authorization
from pylock.platforms import host
from pylock.settings import DEFAULT_JOBS, Settings
from pylock.sync.cache import Cache
from pylock.sync.execute import SyncRequest, run_sync
from pylock.sync.plan import install_status, locate
from tests.projects import imported_after
from tests.syncproject import Build, Project, make_build

PACKAGE = Path(pylock.__file__).parent
#: The modules allowed to look at the process environment.
READERS = {"settings.py", "cli.py", "entry.py"}
HEAVY = ("attrs", "packaging", "cattrs", "aiohttp", "zstandard", "typing")


def _environment_reads(path: Path) -> list[str]:
    """``os.environ``, ``os.environb``, ``getenv``/``putenv`` and ``from os import environ``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in (
            "environ",
            "environb",
            "getenv",
            "getenvb",
            "putenv",
        ):
            if isinstance(node.value, ast.Name) and node.value.id in ("os", "_os", "posix"):
                found.append(f"{path.name}:{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "posix"):
            for alias in node.names:
                if alias.name in ("environ", "environb", "getenv", "getenvb", "putenv"):
                    found.append(f"{path.name}:{node.lineno}: from os import {alias.name}")
        elif (
            isinstance(node, ast.Name)
            and node.id in ("getenv", "environ")
            and isinstance(node.ctx, ast.Load)
        ):
            found.append(f"{path.name}:{node.lineno}: {node.id}")
    return found


def test_only_settings_cli_and_entry_read_the_environment() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in READERS:
            continue
        offenders += _environment_reads(path)
    assert offenders == []


def test_the_environment_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nfrom os import getenv\nx = os.environ.get('A')\ny = os.getenv('B')\n"
    )
    assert len(_environment_reads(bad)) == 3
    assert _environment_reads(PACKAGE / "settings.py")  # the one reader really reads


def test_fastpath_never_prints() -> None:
    tree = ast.parse((PACKAGE / "fastpath.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id != "print", node.lineno
        if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr"):
            pytest.fail(f"fastpath.py:{node.lineno} writes to sys.{node.attr}")


def test_settings_module_is_stdlib_only_and_cheap() -> None:
    # What the interpreter's own start-up loads (a .pth file may import typing) is not ours.
    modules = imported_after("import pylock.settings, pylock.fastpath") - imported_after("")
    assert {m for m in modules if m.split(".")[0] in HEAVY} == set()
    assert "pylock.errors" not in modules  # only imported when a value is bad


# -- Settings.from_environ ---------------------------------------------------------------


def test_from_environ_reads_every_variable_and_treats_blank_as_unset(tmp_path: Path) -> None:
    environ = {
        "PYLOCK_CACHE_DIR": str(tmp_path / "c"),
        "PYLOCK_INSTALL_DIR": "/opt/py",
        "PYLOCK_BIN_DIR": "  ",
        "PYLOCK_OFFLINE": "yes",
        "PYLOCK_MIRROR": "https://m.example/",
        "PYLOCK_PYPY_MIRROR": "",
        "PYLOCK_CONCURRENCY": " 7 ",
        "GITHUB_TOKEN": " tok-secret ",
        "NO_COLOR": "1",
        "SSL_CERT_FILE": "/ca.pem",
        "NETRC": str(tmp_path / "n"),
    }
    settings = Settings.from_environ(environ)
    assert settings.install_dir == "/opt/py"
    assert settings.bin_dir is None and settings.pypy_mirror is None
    assert settings.offline and settings.no_color
    assert settings.jobs() == 7 and settings.jobs(2) == 2
    assert settings.github_token == "tok-secret"
    assert settings.ssl_cert_file == "/ca.pem" and settings.ssl_cert_dir is None
    assert settings.netrc_path() == str(tmp_path / "n")
    assert Cache.from_settings(settings).root == tmp_path / "c"
    assert "tok-secret" not in repr(settings)
    with pytest.raises(AttributeError):
        settings.offline = False  # type: ignore[misc]
    assert Settings.from_environ({}) == Settings.from_environ({"PYLOCK_OFFLINE": "0"})
    assert Settings.from_environ({}).jobs() == DEFAULT_JOBS
    with pytest.raises(TypeError, match="unknown settings"):
        Settings(nonsense=1)


def test_the_repr_hides_the_passwords_of_proxies_mirrors_rewrites_and_the_remote_cache() -> None:
    """Review: the repr hid GITHUB_TOKEN alone; a proxy's, mirror's, rewrite's or remote
    cache's ``user:password@`` (and a rewrite's ``?token=``) showed as given."""
    secret = "PASSXYZ"
    settings = Settings.from_environ(
        {
            "HTTPS_PROXY": f"ci:{secret}@proxy.corp:3128",  # no scheme: http://
            "http_proxy": f"http://ci:a/{secret}@proxy.corp:3128",  # a `/` in the password
            "ALL_PROXY": f"http://ci:{secret}@proxy.corp:3128",
            "PYLOCK_MIRROR": f"https://ci:{secret}@mirror.corp/pbs/",
            "PYLOCK_PYPY_MIRROR": f"https://ci:{secret}@mirror.corp/pypy/",
            "PYLOCK_URL_REWRITES": f"https://github.com/=https://ci:{secret}@a.corp/gh/ "
            f"https://pypy.org/=https://a.corp/get?token={secret}&url=",
            "PYLOCK_REMOTE_CACHE": f"oci://ci:{secret}@registry.corp/pythons",
            "GITHUB_TOKEN": secret,
        }
    )
    shown = repr(settings)
    assert secret not in shown
    assert secret not in repr(FetchOptions.from_settings(settings))  # its rewrites too
    assert "mirror='https://***@mirror.corp/pbs/'" in shown
    assert "https_proxy='***@proxy.corp:3128'" in shown
    assert (
        "url_rewrites='https://github.com/=https://***@a.corp/gh/ "
        "https://pypy.org/=https://a.corp/get?token=***&url='" in shown
    )


@pytest.mark.parametrize(
    "value",
    ["0", "-4", "many", "1e3", "9" * 5000 + "x", "4\x00", "\x1b[31m", "token=secret", "\u0663"],
)
def test_a_bad_concurrency_is_one_clean_error(value: str) -> None:
    settings = Settings.from_environ({"PYLOCK_CONCURRENCY": value})
    with pytest.raises(UsageError) as info:
        settings.jobs()
    message = str(info.value)
    assert message.startswith("PYLOCK_CONCURRENCY must be a whole number of at least 1")
    assert info.value.hint is not None
    # The same message whichever command needs the value.
    with pytest.raises(UsageError) as again:
        FetchOptions.from_settings(settings)
    assert str(again.value) == message
    assert settings.jobs(3) == 3  # --jobs wins over the variable


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.5X", "9" * 400 + "Q", "\x00"])
def test_a_bad_download_cap_is_one_clean_error(value: str) -> None:
    with pytest.raises(UsageError, match="PYLOCK_MAX_DOWNLOAD_SIZE must be a positive size"):
        Settings.from_environ({"PYLOCK_MAX_DOWNLOAD_SIZE": value}).max_download_bytes()


def test_a_bad_value_is_an_error_only_for_commands_that_need_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pythons.lock").write_text(
        'lock-version = 1\ncreated-by = "x"\nconfig-digest = "sha256:' + "0" * 64 + '"\n'
    )
    environ = {"PYLOCK_CONCURRENCY": "lots", "PYLOCK_CACHE_DIR": str(tmp_path / "c")}
    assert main(["--project", str(tmp_path), "list"], environ=environ) == 0
    capsys.readouterr()
    assert main(["--project", str(tmp_path), "fetch"], environ=environ) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "pylock: error: PYLOCK_CONCURRENCY must be a whole number of at least 1, not 'lots'"
    )
    assert "Traceback" not in err


def test_netrc_comes_from_the_settings_not_the_process(tmp_path: Path) -> None:
    given = tmp_path / "given-netrc"
    given.write_text("machine mirror.example login u password p\n")
    os.environ.pop("NETRC", None)
    settings = Settings.from_environ({"NETRC": str(given)})
    assert netrc_authorization("https://mirror.example/x", settings) == "Basic dTpw"
    assert netrc_authorization("https://other.example/x", settings) is None
    empty = Settings.from_environ({"HOME": str(tmp_path)})
    assert netrc_authorization("https://mirror.example/x", empty) is None
    assert netrc_authorization("file:///x", settings) is None


def _count_netrc_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the standard library's netrc parser is given from now on."""
    import netrc

    parses: list[str] = []
    real = netrc.netrc

    def counting(file: str | None = None) -> netrc.netrc:
        parses.append(str(file))
        return real(file)

    monkeypatch.setattr(netrc, "netrc", counting)
    return parses


def test_a_netrc_file_is_parsed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request asked netrc for its host's entry, and each parsed the whole file again:
    a netrc of 100,000 machines (7 MB, 4 s a parse) made a sync of 150 take 14 minutes."""
    parses = _count_netrc_parses(monkeypatch)
    given = tmp_path / "netrc"
    given.write_text("machine mirror.example login u password p\ndefault login d password e\n")
    settings = Settings.from_environ({"NETRC": str(given)})
    assert netrc_authorization("https://mirror.example/x", settings) == "Basic dTpw"
    assert netrc_authorization("https://MIRROR.example./y", settings) == "Basic dTpw"
    assert netrc_authorization("https://other.example/x", settings) == "Basic ZDpl"
    assert netrc_authorization("https://other.example/x", settings, default=False) is None
    assert parses == [str(given)]
    # Another settings object naming the same file reads the same parse.
    assert (
        netrc_authorization(
            "https://mirror.example/x", Settings.from_environ({"NETRC": str(given)})
        )
        == "Basic dTpw"
    )
    assert len(parses) == 1

    # Edited (one more byte) or replaced, it is read again.
    given.write_text("machine mirror.example login uu password p\n")
    assert netrc_authorization("https://mirror.example/x", settings) == "Basic dXU6cA=="
    assert netrc_authorization("https://other.example/x", settings) is None
    replacement = tmp_path / "replacement"
    replacement.write_text("machine mirror.example login v password q\n")
    replacement.replace(given)
    assert netrc_authorization("https://mirror.example/x", settings) == "Basic djpx"
    assert len(parses) == 3


def test_a_netrc_file_that_cannot_be_read_is_parsed_once_and_still_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pylock.net import policy

    parses = _count_netrc_parses(monkeypatch)
    broken = tmp_path / "netrc"
    broken.write_text("machine\n")
    settings = Settings.from_environ({"NETRC": str(broken)})
    assert netrc_authorization("https://mirror.example/x", settings) is None
    problem = policy.netrc_problems.pop(str(broken))
    assert problem.startswith("not netrc syntax at line")
    # The next request's 401 still has the problem to name, from the same parse.
    assert netrc_authorization("https://mirror.example/y", settings) is None
    assert policy.netrc_problems == {str(broken): problem}
    assert len(parses) == 1
    broken.write_text("machine mirror.example login u password p\n")
    assert netrc_authorization("https://mirror.example/x", settings) == "Basic dTpw"
    assert len(parses) == 2


def test_a_sync_of_many_interpreters_parses_the_netrc_once(
    sync_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = _count_netrc_parses(monkeypatch)
    netrc_file = sync_project.root / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login u password p\n")
    builds = [make_build(f"py{i}", f"2099010{i}", big=1000) for i in range(4)]
    sync_project.lock(*builds)
    sync_project.serve(*builds)
    sync_project.environ["NETRC"] = str(netrc_file)
    result = sync_project.sync()
    assert result.code == 0, result.err
    for build in builds:
        assert [
            r.headers.get("Authorization") for r in sync_project.server.requests(build.path)
        ] == ["Basic dTpw"]
    assert parses == [str(netrc_file)]


def test_the_home_is_read_once_with_the_rest_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `~` was expanded with this process's HOME at each use, not the environment the
    settings were read from: `main(argv, environ)` put `PYLOCK_CACHE_DIR=~/c` under the
    process's home (while its netrc came from the environment's), and a HOME changed
    after the read moved the cache, the install dir and the fast path's view of both."""
    read, later = str(tmp_path / "read"), str(tmp_path / "later")
    environ = {"HOME": read, "USERPROFILE": read, "PYLOCK_CACHE_DIR": "~/c"}
    assert main(["cache", "dir"], environ) == 0
    assert capsys.readouterr().out.strip() == os.path.join(read, "c")
    settings = Settings.from_environ(environ)
    monkeypatch.setenv("HOME", later)
    monkeypatch.setenv("USERPROFILE", later)
    assert settings.cache_root() == Path(read, "c")
    assert settings.expand_home("~/py", "--into") == os.path.join(read, "py")
    assert settings.netrc_path(windows=False) == os.path.join(read, ".netrc")
    project = os.path.abspath(".")
    dirs = (project, os.path.join(read, "py"))
    assert sync_dirs({"--into": "~/py"}, settings) == dirs
    assert Settings.from_environ({"HOME": "", "USERPROFILE": ""}).home is None


def test_fetch_options_carry_the_settings_they_came_from() -> None:
    settings = Settings.from_environ({"SSL_CERT_FILE": "/x.pem", "PYLOCK_OFFLINE": "1"})
    options = FetchOptions.from_settings(settings, jobs=2)
    assert options.settings is settings and options.offline and options.jobs == 2


def test_windows_host_reads_the_architecture_through_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setattr("pylock.platforms.sys.platform", "win32")
    monkeypatch.setattr("pylock.platforms._platform.machine", lambda: "AMD64")
    monkeypatch.setenv("PROCESSOR_ARCHITECTURE", "x86")
    monkeypatch.setenv("PROCESSOR_ARCHITEW6432", "ARM64")  # a 32-bit process on ARM64
    assert host().key == "windows-aarch64"


# -- the fast path returns its line ---------------------------------------------------------


def test_fast_path_returns_its_line_and_prints_nothing(
    sync_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    build = make_build("app", "20250101")
    sync_project.install(build)
    # The options the install was checked with (sync_project.sync passes the mirror).
    mirror = ["--mirror", sync_project.mirror]
    argv = ["--project", str(sync_project.root), "sync", "--into", str(sync_project.into), *mirror]
    settings = Settings.from_environ({})
    capsys.readouterr()
    noop = try_noop_sync(argv, settings)
    # As the full sync shows it: relative to the working directory when inside it (pytest
    # may run from anywhere, /tmp included).
    assert noop is not None and noop.warnings == () and noop.color == "auto"
    assert noop.line == f"1 interpreter up to date in {display_path(sync_project.into)}"
    quiet = try_noop_sync([*argv, "-q"], settings)
    assert quiet is not None and quiet.line == ""
    assert capsys.readouterr() == ("", "")
    # PYLOCK_BIN_DIR needs the full sync (links are checked there).
    assert try_noop_sync(argv, Settings.from_environ({"PYLOCK_BIN_DIR": "/b"})) is None
    # PYLOCK_INSTALL_DIR comes from the settings too.
    moved = Settings.from_environ({"PYLOCK_INSTALL_DIR": str(sync_project.into)})
    again = try_noop_sync(["--project", str(sync_project.root), "sync", *mirror], moved)
    assert again is not None and again.line == noop.line


def test_console_script_prints_the_fast_path_line(sync_project: Project) -> None:
    build = make_build("app", "20250101")
    sync_project.install(build)
    done = sync_project.check(sync_project.sync_command())
    assert done.code == 0
    assert done.err == "1 interpreter up to date in pythons\n"
    quiet = sync_project.check(sync_project.sync_command("-q"))
    assert quiet.code == 0 and quiet.err == ""


# -- sync/, status and lookup, without the CLI ----------------------------------------------


def _request(sync_project: Project, **changes: object) -> SyncRequest:
    from pylock.lockio import read_lock_and_digest

    lock, lock_sha256 = read_lock_and_digest(sync_project.root / "pythons.lock")
    values: dict[str, object] = {
        "lock": lock,
        "lock_sha256": lock_sha256,  # what the CLI passes: the digest of the bytes it read
        "lock_path": sync_project.root / "pythons.lock",
        "config_path": sync_project.root / "pythons.toml",
        "dest_root": sync_project.into,
        "platform": host(),
        "options_key": "salt:digest",  # what the CLI passes (the fast path's key)
    }
    values.update(changes)
    return SyncRequest(**values)  # type: ignore[arg-type]


def test_run_sync_is_the_whole_use_case(sync_project: Project) -> None:
    from pylock.fastpath import STATE_FILE
    from pylock.progress import NullReporter
    from pylock.urls import UrlRewrites

    build = make_build("app", "20250101")
    sync_project.lock(build)
    sync_project.serve(build)
    cache = Cache(sync_project.cache)
    options = FetchOptions(rewrites=UrlRewrites.from_sources(None, (), sync_project.mirror, None))
    calls: list[str] = []

    def get_cache() -> Cache:
        calls.append("cache")
        return cache

    def get_options() -> FetchOptions:
        calls.append("options")
        return options

    bin_dir = sync_project.root / "bin"
    first = run_sync(
        _request(sync_project, bin_dir=bin_dir),
        cache=get_cache,
        options=get_options,
        reporter=NullReporter(),
    )
    assert not first.noop and first.result.installed == ("app",) and first.current == ("app",)
    assert (sync_project.into / STATE_FILE).is_file()
    assert sorted(calls) == ["cache", "options"]
    assert any(p.name.startswith("python") for p in bin_dir.iterdir())

    calls.clear()
    second = run_sync(
        _request(sync_project), cache=get_cache, options=get_options, reporter=NullReporter()
    )
    assert second.noop and second.current == ("app",)
    assert calls == []  # a no-op never opens the cache or checks download settings

    # A partial sync leaves no fast-path state: the next whole sync must re-check.
    (sync_project.into / STATE_FILE).unlink()
    partial = run_sync(
        _request(sync_project, only=("app",), remember=False),
        cache=get_cache,
        options=get_options,
        reporter=NullReporter(),
    )
    assert partial.noop and not (sync_project.into / STATE_FILE).exists()


def test_status_and_locate(sync_project: Project) -> None:
    from pylock.lockfile import loads

    old, new = make_build("app", "20250101"), make_build("app", "20250202")
    sync_project.lock(old)
    sync_project.serve(old, new)
    assert sync_project.sync().code == 0
    lock_path = sync_project.root / "pythons.lock"
    platform = host()

    lock = loads(lock_path.read_text(encoding="utf-8"))
    [row] = install_status(lock, sync_project.into, platform, lambda a: True)
    assert (row.state, row.cached, row.path) == ("installed", True, sync_project.into / "app")
    found = locate(
        "app", lock=lock, lock_path=lock_path, dest_root=sync_project.into, platform=platform
    )
    assert found.executable.exists() and not found.out_of_date
    # Without a lock, the install record says what is there.
    bare = locate(
        "app", lock=None, lock_path=lock_path, dest_root=sync_project.into, platform=platform
    )
    assert bare.executable == found.executable

    sync_project.lock(new)
    lock = loads(lock_path.read_text(encoding="utf-8"))
    [row] = install_status(lock, sync_project.into, platform, lambda a: False)
    assert row.state == "out-of-date" and not row.cached
    assert locate(
        "app", lock=lock, lock_path=lock_path, dest_root=sync_project.into, platform=platform
    ).out_of_date
    with pytest.raises(UsageError, match="no interpreter named 'nope'"):
        locate(
            "nope", lock=lock, lock_path=lock_path, dest_root=sync_project.into, platform=platform
        )
    with pytest.raises(PylockError, match="no lock file at"):
        locate(
            "nope", lock=None, lock_path=lock_path, dest_root=sync_project.into, platform=platform
        )
    with pytest.raises(PylockError, match="not installed"):
        locate(
            "app", lock=lock, lock_path=lock_path, dest_root=sync_project.root, platform=platform
        )


def test_which_and_run_agree_through_the_cli(sync_project: Project) -> None:
    build: Build = make_build("app", "20250101")
    sync_project.install(build)
    which = sync_project.run("which", "--into", str(sync_project.into), "nope")
    run = sync_project.run("run", "--into", str(sync_project.into), "nope")
    assert which.code == run.code == 2
    assert which.err == run.err
    assert which.err.startswith("pylock: error: no interpreter named 'nope' in pythons.lock")


@pytest.mark.parametrize(
    ("variable", "flag"), [("PYLOCK_MIRROR", "--mirror"), ("PYLOCK_PYPY_MIRROR", "--pypy-mirror")]
)
def test_a_bad_mirror_is_named_by_where_it_was_given(variable: str, flag: str) -> None:
    """README attack: `PYLOCK_MIRROR=notaurl pylock sync` said "mirror: 'notaurl' is not a
    URL", which reads as a flag the user never gave; other settings name their variable."""
    settings = Settings.from_environ({variable: "notaurl"})
    with pytest.raises(UsageError, match=rf"^{variable}: 'notaurl' is not a URL"):
        FetchOptions.from_settings(settings)
    with pytest.raises(UsageError, match=rf"^{flag}: 'notaurl' is not a URL"):
        if flag == "--mirror":
            FetchOptions.from_settings(settings, mirror="notaurl")
        else:
            FetchOptions.from_settings(settings, pypy_mirror="notaurl")
