"""URL rewrites, mirror shorthands and the refusal rules (pure; no connections)."""

from __future__ import annotations

import pytest

from pylock.errors import DownloadError, RefusedUrlError, UsageError
from pylock.net.fetch import FetchOptions
from pylock.settings import Settings
from pylock.urls import (
    PBS_DOWNLOAD_PREFIX,
    PYPY_DOWNLOAD_PREFIX,
    UrlRewrites,
    check_url,
    is_loopback_host,
    parse_rewrite,
)

PBS_URL = (
    PBS_DOWNLOAD_PREFIX
    + "20251014/cpython-3.13.9%2B20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
)
PYPY_URL = PYPY_DOWNLOAD_PREFIX + "pypy3.11-v7.3.20-linux64.tar.bz2"


def test_no_rules_leaves_urls_alone() -> None:
    assert UrlRewrites().apply(PBS_URL) == PBS_URL
    assert UrlRewrites.from_sources(None).apply(PBS_URL) == PBS_URL
    assert UrlRewrites.from_sources("   \n ").rules == ()


def test_env_pairs_are_whitespace_separated() -> None:
    rewrites = UrlRewrites.from_sources(
        "https://github.com/=https://art.example/gh/\n\thttps://downloads.python.org/=file:///srv/py/"
    )
    assert (
        rewrites.apply(PBS_URL) == "https://art.example/gh/" + PBS_URL[len("https://github.com/") :]
    )
    assert rewrites.apply(PYPY_URL) == "file:///srv/py/pypy/pypy3.11-v7.3.20-linux64.tar.bz2"
    assert rewrites.apply("https://api.github.com/x") == "https://api.github.com/x"


def test_longest_matching_prefix_wins_regardless_of_order() -> None:
    pairs = [
        "https://github.com/=https://a.example/",
        "https://github.com/astral-sh/=https://b.example/",
        "https://github.com/astral-sh/python-build-standalone/=https://c.example/",
    ]
    for ordered in (pairs, list(reversed(pairs))):
        rewrites = UrlRewrites.from_sources(None, ordered)
        assert rewrites.apply(PBS_URL).startswith("https://c.example/releases/download/20251014/")
        assert rewrites.apply("https://github.com/astral-sh/uv") == "https://b.example/uv"
        assert rewrites.apply("https://github.com/pypy/x") == "https://a.example/pypy/x"


def test_mirror_beats_a_broader_rewrite_and_gets_a_trailing_slash() -> None:
    rewrites = UrlRewrites.from_sources(
        "https://github.com/=https://everything.example/",
        (),
        "https://mirror.example/pbs",
        "http://127.0.0.1:9/pypy",
    )
    assert rewrites.apply(PBS_URL) == (
        "https://mirror.example/pbs/20251014/"
        "cpython-3.13.9%2B20251014-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    )
    assert rewrites.apply(PYPY_URL) == "http://127.0.0.1:9/pypy/pypy3.11-v7.3.20-linux64.tar.bz2"
    # Metadata on github.com that the mirror does not cover still uses the rewrite.
    assert rewrites.apply("https://github.com/x/y") == "https://everything.example/x/y"


def test_same_from_command_line_beats_environment_and_mirror_beats_both() -> None:
    rewrites = UrlRewrites.from_sources(
        f"{PBS_DOWNLOAD_PREFIX}=https://env.example/",
        [f"{PBS_DOWNLOAD_PREFIX}=https://flag.example/"],
    )
    assert rewrites.apply(PBS_URL).startswith("https://flag.example/")
    assert len(rewrites.rules) == 1
    with_mirror = UrlRewrites.from_sources(
        f"{PBS_DOWNLOAD_PREFIX}=https://env.example/",
        [f"{PBS_DOWNLOAD_PREFIX}=https://flag.example/"],
        "https://mirror.example/",
    )
    assert with_mirror.apply(PBS_URL).startswith("https://mirror.example/20251014/")


def test_from_environ_flags_override_variables() -> None:
    env = {
        "PYLOCK_MIRROR": "https://env-mirror.example/",
        "PYLOCK_PYPY_MIRROR": "https://env-pypy.example",
        "PYLOCK_URL_REWRITES": "https://api.github.com/=http://127.0.0.1:1/api/",
    }
    rewrites = FetchOptions.from_settings(Settings.from_environ(env)).rewrites
    assert rewrites.apply(PBS_URL).startswith("https://env-mirror.example/20251014/")
    assert rewrites.apply(PYPY_URL).startswith("https://env-pypy.example/pypy3.11")
    assert rewrites.apply("https://api.github.com/repos") == "http://127.0.0.1:1/api/repos"
    flagged = FetchOptions.from_settings(
        Settings.from_environ(env), mirror="https://flag.example"
    ).rewrites
    assert flagged.apply(PBS_URL).startswith("https://flag.example/20251014/")
    empty = FetchOptions.from_settings(Settings.from_environ({"PYLOCK_MIRROR": ""}))
    assert empty.rewrites.rules == ()


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [
        ("no-equals-sign", "expected FROM=TO"),
        ("=https://x.example/", "expected FROM=TO"),
        ("https://github.com/=", "expected FROM=TO"),
        ("github.com=https://x.example/", "FROM 'github.com'"),
        ("https://github.com/=ftp://x.example/", "TO 'ftp://x.example/'"),
        ("https://github.com/=https://", "TO 'https://'"),
        ("https://github.com/=/srv/mirror", "TO '/srv/mirror'"),
    ],
)
def test_invalid_pairs_name_the_pair(pair: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        UrlRewrites.from_sources(None, [pair])
    assert repr(pair) in str(info.value)
    assert fragment in str(info.value)
    assert str(info.value).startswith("--rewrite: ")
    assert info.value.hint is not None


def test_invalid_env_pair_names_the_variable() -> None:
    with pytest.raises(UsageError, match=r"^PYLOCK_URL_REWRITES: invalid rewrite 'oops'"):
        UrlRewrites.from_sources("https://a.example/=https://b.example/ oops")


def test_invalid_mirror_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"mirror: 'mirror\.example' is not a URL"):
        UrlRewrites.from_sources(None, (), "mirror.example")


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("file:///srv/m/%00", "its path holds a NUL byte (%00), which no file name can"),
        ("file://a%00b/m/", "its path holds a NUL byte (%00), which no file name can"),
        ("file://", "a file URL needs a path (file:///DIRECTORY/)"),
        ("file:", "a file URL needs a path (file:///DIRECTORY/)"),
        ("file:///srv/m?x=1", "a file URL has no query or fragment (? or #)"),
        ("file:///srv/m#top", "a file URL has no query or fragment (? or #)"),
    ],
)
def test_a_file_mirror_no_file_can_be_under_is_a_usage_error(base: str, problem: str) -> None:
    """CLI attack: `--mirror file:///m/%00` gave a traceback (embedded null byte), `file://`
    an error about a host at download time, and `file:///dir?x=1` read the directory."""
    for mirror, pairs in ((base, ()), (None, (f"https://github.com/={base}",))):
        with pytest.raises(UsageError) as info:
            UrlRewrites.from_sources(None, pairs, mirror)
        assert str(info.value).endswith(f": {problem}")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
        "http://localhost/x",
        "file:///srv/mirror/x.tar.gz",
    ],
)
def test_allowed_without_explicit_trust(url: str) -> None:
    check_url(url, explicit=False)


@pytest.mark.parametrize(
    "url", ["http://github.com/x", "http://10.1.2.3/x", "ftp://example.com/x", "x.tar.gz"]
)
def test_refused_without_explicit_trust(url: str) -> None:
    with pytest.raises(RefusedUrlError) as info:
        check_url(url, explicit=False, canonical=PBS_URL)
    assert isinstance(info.value, DownloadError)
    assert info.value.url == url
    assert info.value.hint


def test_plain_http_mirror_given_explicitly_is_allowed() -> None:
    rewrites = UrlRewrites.from_sources(None, (), "http://mirror.corp.example/pbs")
    target = rewrites.apply(PBS_URL)
    assert target.startswith("http://mirror.corp.example/pbs/")
    rewrites.check(target, canonical=PBS_URL)
    # The same host outside the mirror's prefix was not vouched for.
    with pytest.raises(RefusedUrlError):
        rewrites.check("http://mirror.corp.example/other/x")
    # Nor a host that merely starts with the same characters.
    lax = UrlRewrites.from_sources("https://github.com=http://mirror.corp")
    lax.check(lax.apply(PBS_URL))
    with pytest.raises(RefusedUrlError):
        lax.check("http://mirror.corp.evil.example/x")


def test_canonical_http_url_is_refused_and_message_names_both() -> None:
    rewrites = UrlRewrites.from_sources(None, ["https://github.com/=http://gh.corp.example/"])
    rewrites.check(rewrites.apply(PBS_URL), canonical=PBS_URL)
    other = "http://plain.example/file.tar.gz"
    with pytest.raises(RefusedUrlError, match=r"refusing plain http URL http://plain\.example"):
        rewrites.check(other)


def test_redirect_from_https_to_http_is_always_refused() -> None:
    rewrites = UrlRewrites.from_sources(None, [], "http://127.0.0.1:1/")
    with pytest.raises(RefusedUrlError, match="from https to plain http") as info:
        rewrites.check_redirect("https://github.com/a", "http://127.0.0.1:1/a", canonical=PBS_URL)
    assert info.value.url == "http://127.0.0.1:1/a"
    assert PBS_URL in str(info.value)


def test_redirect_rules_for_other_hops() -> None:
    rewrites = UrlRewrites.from_sources(None, [], "http://mirror.corp.example/")
    rewrites.check_redirect("http://127.0.0.1:1/a", "http://127.0.0.1:1/b")
    rewrites.check_redirect("http://127.0.0.1:1/a", "https://cdn.example/b")
    rewrites.check_redirect("https://a.example/", "https://b.example/")
    rewrites.check_redirect("http://mirror.corp.example/a", "http://mirror.corp.example/b")
    with pytest.raises(RefusedUrlError):
        rewrites.check_redirect("http://127.0.0.1:1/a", "http://cdn.example/b")
    with pytest.raises(RefusedUrlError, match="non-http"):
        rewrites.check_redirect("http://127.0.0.1:1/a", "file:///etc/passwd")


def test_a_secret_in_a_fragment_or_a_path_parameter_is_redacted_and_kept_out_of_a_lock() -> None:
    """Review: `#access_token=` and `;jsessionid=` went into the lock and error messages."""
    from pylock.lockfile import credentials_problem
    from pylock.urls import has_credentials, redact

    fragment = "https://h/x.tar.gz#access_token=hunter2"
    assert redact(fragment) == "https://h/x.tar.gz#access_token=***"
    assert has_credentials("https://h/a;jsessionid=ABC/x.tar.gz")
    assert credentials_problem(fragment) is not None
    # pip's hash fragment is no secret.
    assert not has_credentials("https://h/x.tar.gz#sha256=abc")


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u00a0", "\u2028"])
def test_invisible_characters_in_an_artifact_url_are_refused(char: str) -> None:
    """Review: U+202E in a URL reversed how its line of the lock reads in a pull request."""
    from pylock.lockfile import artifact_url_problem

    problem = artifact_url_problem(f"https://h/{char}exe.tar.gz/cpython-3.12.9-x.tar.gz")
    assert problem is not None and "invisible characters" in problem
    assert char not in problem
    assert artifact_url_problem("https://h/caf\u00e9/cpython-3.12.9-x.tar.gz") is None


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("http://u:s3cr3t+PW/abc=@proxy.corp:3128", "http://***@proxy.corp:3128"),
        ("https://ci:TOKEN123/x@127.0.0.1:9/", "https://***@127.0.0.1:9/"),
        ("https://u:pa?ss#w@host/x", "https://***@host/x"),
        ("http://u:pa\nss/x@proxy:1", "http://***@proxy:1"),
        # A port, then an @ in the path or on the next line, is no password.
        ("https://host:8443/a@b", "https://host:8443/a@b"),
        ("at http://host:8080\nmail admin@corp", "at http://host:8080\nmail admin@corp"),
        # An IPv6 host has no user (review: these were refused as credentials).
        ("https://[::1]:8443/path@x", "https://[::1]:8443/path@x"),
        ("http://[fd00::5]:8080/dl/@scope/a.tar.gz", "http://[fd00::5]:8080/dl/@scope/a.tar.gz"),
        ("https://u:p@[::1]:80/x", "https://***@[::1]:80/x"),
        ("foohttps://u:p@h/", "foohttps://***@h/"),
    ],
)
def test_a_password_with_a_slash_or_a_line_break_is_redacted_whole(
    text: str, redacted: str
) -> None:
    """Attack: urlsplit reads `user:pass/word@host` as host `user`, port `pass`: the
    password was shown in full, as the port and in the URL."""
    from pylock.urls import redact, url_problem

    assert redact(text) == redacted
    problem = url_problem("https://ci:TOKEN123/x@127.0.0.1:9/")
    assert problem is not None and "TOKEN123" not in problem


def test_redaction_stays_linear_on_hostile_text() -> None:
    import time

    from pylock.urls import redact

    # CPU time, not the clock's: on a loaded CI runner the wall time of this second of work
    # was 3.4-7.5 s (flake hunt).
    started = time.process_time()
    for hostile in ("a://b:" * 200_000, "a." * 200_000, "x" * 400_000):
        assert redact(hostile + "@") is not None
    # Review: an unbounded scheme made `a.a.a....@` quadratic (18 s for 40 KB).
    assert time.process_time() - started < 5


@pytest.mark.parametrize(
    ("pair", "problem"),
    [
        (
            "https://github.com/=https://artifactory.corp/github",
            "FROM ends in / and TO does not: each URL would go on right after TO, with no / "
            "between",
        ),
    ],
)
def test_a_rewrite_with_a_slash_at_one_end_only_is_refused(pair: str, problem: str) -> None:
    """New-user walk-through: the README's Artifactory rewrite, one slash short, asked for
    `https://artifactory.corp/githubastral-sh/...` (a 404, or `port 876520990101 is out of
    range` for a mirror on a port), and nothing said the rewrite was the cause."""
    with pytest.raises(UsageError) as info:
        parse_rewrite(pair, origin="PYLOCK_URL_REWRITES")
    assert info.value.message == f"PYLOCK_URL_REWRITES: invalid rewrite {pair!r}: {problem}"
    assert (
        info.value.hint is not None
        and "github.com/=https://artifactory.example/github/" in info.value.hint
    )
    # Both ends alike, and a proxy's query target, are as meant.
    for fine in [
        "https://github.com/=https://artifactory.corp/github/",
        "https://github.com=https://artifactory.corp/github",
        "https://github.com/=https://proxy.corp/get?path=",
        # `//` after TO, which many servers (nginx) take as `/`: setups that work stay.
        "https://github.com=https://artifactory.corp/github/",
    ]:
        parse_rewrite(fine, origin="--rewrite")
