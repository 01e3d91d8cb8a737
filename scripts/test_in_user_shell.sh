#!/usr/bin/env bash
# Run the test suite the way users' shells differ, one condition after the other, and print
# one table row per condition: its exit status, pytest's summary line and the wall time.
#
#   scripts/test_in_user_shell.sh                      # the fast tests under every condition
#   scripts/test_in_user_shell.sh -m slow              # other pytest arguments instead
#   CONDITIONS="proxy settings" scripts/test_in_user_shell.sh
#   TEST_USER=tester scripts/test_in_user_shell.sh     # the user for `non-root` (default tester)
#   TEST_USER_PYTHON=/usr/bin/python3.12 ...           # the Python of that user's virtualenv
#   KEEP=1 scripts/test_in_user_shell.sh               # keep the logs (the path is printed)
#
# Conditions: as-is (this shell), venv (a virtualenv activated: VIRTUAL_ENV set, its bin
# first on PATH), proxy (a dead proxy in HTTP(S)_PROXY/ALL_PROXY, both cases, NO_PROXY
# empty), settings (the user's own PYLOCK_*, UV_*, token, netrc, CA bundle, colour and XDG
# settings, and a home folder with ~/.netrc, ~/.cache/pylock and ~/.config/uv in it),
# non-root (all of that at once, as an unprivileged user, in their own copy of the checkout
# with their own virtualenv, made with TEST_USER_PYTHON: Debian's /usr/bin/python3 by default).
#
# Run it from an activated virtualenv that has `pip install -e '.[test]'`. The non-root
# condition needs root (to switch user with runuser), an existing user (`useradd -m tester`)
# and PyPI for that user's `pip install -e '.[test]'`. Run as a non-root user, the script
# runs that condition in this virtualenv: every condition is then unprivileged anyway.
# Exit status: 0 if every condition passed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

python=$(command -v python3)
venv=$(dirname "$(dirname "$python")")
if [ ! -f "$venv/pyvenv.cfg" ]; then
    echo "test_in_user_shell: activate the virtualenv that has pylock's test extras first" >&2
    exit 2
fi
if [ $# -eq 0 ]; then
    set -- -m "not slow and not docker"
fi
conditions=${CONDITIONS:-as-is venv proxy settings non-root}
test_user=${TEST_USER:-tester}
user_python=${TEST_USER_PYTHON:-/usr/bin/python3}

work=$(mktemp -d "${TMPDIR:-/tmp}/pylock-user-shell.XXXXXX")
chmod 755 "$work"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT  # KEEP=1 keeps the logs and copies

dead=http://127.0.0.1:9
proxy_env=(
    "HTTP_PROXY=$dead" "HTTPS_PROXY=$dead" "ALL_PROXY=$dead"
    "http_proxy=$dead" "https_proxy=$dead" "all_proxy=$dead"
    "NO_PROXY=" "no_proxy="
)
venv_env=("VIRTUAL_ENV=$venv" "PATH=$venv/bin:$PATH")

# A home folder with what a user's holds: credentials for loopback, a pylock cache and a uv
# configuration; and settings that point everything somewhere dead or elsewhere.
home="$work/home"
mkdir -p "$home/.cache/pylock/archives" "$home/.config/uv"
printf 'machine 127.0.0.1 login user password secret-from-netrc\n' >"$home/.netrc"
chmod 600 "$home/.netrc"
printf 'python-downloads = "never"\nnative-tls = true\n' >"$home/.config/uv/uv.toml"
settings_env=(
    "HOME=$home"
    "PYLOCK_CACHE_DIR=$work/user-cache"
    "PYLOCK_OFFLINE=1"
    "PYLOCK_MIRROR=$dead/mirror/"
    "PYLOCK_PYPY_MIRROR=$dead/pypy/"
    "PYLOCK_URL_REWRITES=https://github.com/=$dead/gh/"
    "PYLOCK_CONCURRENCY=1"
    "PYLOCK_INSTALL_DIR=$work/user-pythons"
    "PYLOCK_BIN_DIR=$work/user-bin"
    "UV_PYTHON_INSTALL_DIR=$work/uv-pythons"
    "UV_PYTHON_DOWNLOADS=never"
    "UV_CACHE_DIR=$work/uv-cache"
    "UV_PYTHON_PREFERENCE=only-managed"
    "UV_OFFLINE=1"
    "GITHUB_TOKEN=ghp_from_the_users_shell"
    "NETRC=$home/.netrc"
    "SSL_CERT_FILE=$work/no-such-bundle.pem"
    "NO_COLOR=1"
    "FORCE_COLOR=1"
    "COLUMNS=40"
    "XDG_CACHE_HOME=$work/xdg-cache"
    "PYTHONWARNINGS=default"
)

rows=()
skips=()
status=0

now() { "$python" -c 'import time; print(time.time())'; }

run_condition() {  # NAME COMMAND...
    local name=$1 log="$work/$1.log" start end rc summary
    shift
    echo "== $name: $*" >&2
    start=$(now)
    "$@" >"$log" 2>&1
    rc=$?
    end=$(now)
    summary=$(grep -E '(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -1 | tr -d '=')
    [ -n "$summary" ] || summary="(no pytest summary; see below)"
    rows+=("$(printf '| %-9s | %3s | %-72s | %6.1f s |' "$name" "$rc" "${summary# }" \
        "$("$python" -c "print($end - $start)")")")
    while IFS= read -r line; do skips+=("$name: $line"); done < <(grep '^SKIPPED' "$log")
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -40 "$log" >&2
    fi
}

pytest_args=(-m pytest -q -p no:cacheprovider "$@")
for condition in $conditions; do
    case $condition in
    as-is) run_condition as-is "$python" "${pytest_args[@]}" ;;
    venv) run_condition venv env "${venv_env[@]}" "$python" "${pytest_args[@]}" ;;
    proxy) run_condition proxy env "${proxy_env[@]}" "$python" "${pytest_args[@]}" ;;
    settings) run_condition settings env "${settings_env[@]}" "$python" "${pytest_args[@]}" ;;
    non-root)
        if [ "$(id -u)" != 0 ]; then
            # Already unprivileged: this shell is the condition.
            run_condition non-root env "${venv_env[@]}" "${proxy_env[@]}" "${settings_env[@]}" \
                "$python" "${pytest_args[@]}"
        elif ! id "$test_user" >/dev/null 2>&1; then
            rows+=("| non-root  |   - | not run: no user $test_user (useradd -m $test_user) |")
            status=1
        else
            # The user's own copy of the checkout and their own virtualenv (this one's
            # interpreter may live where they cannot read it, e.g. under /root).
            copy="$work/checkout"
            mkdir "$copy"
            tar -C "$repo" --exclude=./.venv --exclude='*.egg-info' --exclude=__pycache__ \
                --exclude=.hypothesis --exclude=.pytest_cache -cf - . | tar -C "$copy" -xf -
            chown -R "$test_user" "$copy" "$home" "$work"
            as_user=(runuser -u "$test_user" -- env "HOME=$home" "TMPDIR=$work")
            echo "== non-root: a virtualenv for $test_user from $user_python" >&2
            if "${as_user[@]}" "$user_python" -m venv "$copy/.venv" &&
                "${as_user[@]}" "$copy/.venv/bin/python" -m pip install -q -e "$copy[test]" \
                    >"$work/non-root-setup.log" 2>&1; then
                user_venv=("VIRTUAL_ENV=$copy/.venv" "PATH=$copy/.venv/bin:$PATH")
                run_condition non-root runuser -u "$test_user" -- sh -c 'cd "$0" && exec "$@"' \
                    "$copy" env "${user_venv[@]}" "${proxy_env[@]}" "${settings_env[@]}" \
                    "TMPDIR=$work" "$copy/.venv/bin/python" "${pytest_args[@]}"
            else
                tail -20 "$work/non-root-setup.log" >&2
                rows+=("| non-root  |   - | not run: cannot make $test_user's virtualenv (see above) |")
                status=1
            fi
        fi
        ;;
    *)
        echo "test_in_user_shell: unknown condition $condition" >&2
        exit 2
        ;;
    esac
done

echo
[ -z "${KEEP:-}" ] || echo "logs: $work"
echo "pytest ${*}, $(nproc 2>/dev/null || echo ?) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "| condition | rc  | pytest summary                                                           | wall     |"
echo "|-----------|-----|--------------------------------------------------------------------------|----------|"
printf '%s\n' "${rows[@]}"
if [ ${#skips[@]} -gt 0 ]; then
    echo
    echo "Skipped, and why:"
    printf '  %s\n' "${skips[@]}"
fi
exit $status
