#!/usr/bin/env bash
# Move locked Python interpreters into a network without internet access.
#
#   On a connected machine, in the project (beside pythons.lock):
#       airgap.sh export OUTDIR [PLATFORM ...]
#     writes every locked archive (or those of the given platforms) to OUTDIR, in the
#     upstream layout, with SHA256SUMS files and uv's download-metadata.json.
#     Carry OUTDIR across (tar, removable media, an internal bucket).
#
#   On a disconnected machine, in the project:
#       airgap.sh install MIRROR [INTO]
#     installs the locked interpreters from MIRROR: a directory (used as file://) or the
#     http(s) URL of a web server that serves OUTDIR. INTO defaults to .pythons/.
#     Interpreters locked with `url = ...` sit under OUTDIR/other/HOST/: give each host
#     the rewrite `export` printed, in PYLOCK_URL_REWRITES (with MIRROR in place of its
#     file:// directory), e.g.
#       PYLOCK_URL_REWRITES="https://artifacts.corp/=MIRROR/other/artifacts.corp/"
#
# Set PYLOCK to the command that runs pylock (default: pylock), e.g. PYLOCK="python -m pylock".
# pylock is "pythons-lock" on PyPI: `pip install pythons-lock`; for the disconnected side,
# `pip download pythons-lock -d WHEELS` here, then `pip install --no-index -f WHEELS pythons-lock`.
set -euo pipefail

read -r -a pylock <<< "${PYLOCK:-pylock}"
GRAALPY_UPSTREAM="https://github.com/oracle/graalpython/releases/download/"

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

export_mirror() {
    local out=$1
    shift
    local scope=(--all-platforms)
    if [ "$#" -gt 0 ]; then
        scope=()
        for platform in "$@"; do
            scope+=(--platform "$platform")
        done
    fi
    if [ -f pythons.toml ]; then
        # Ship what pythons.toml asks for, not a stale lock.
        "${pylock[@]}" lock --check
    fi
    "${pylock[@]}" mirror "$out" "${scope[@]}"
    # The mirror re-hashed every file it wrote; SHA256SUMS lets the other side do the same
    # after the copy: `sha256sum --check SHA256SUMS` in each directory. Check the whole
    # tree here too: archives that earlier runs wrote for other locks were not re-hashed.
    # (Not `find -execdir ... \;`: find ignores the exit status of such a command.)
    if command -v sha256sum > /dev/null; then
        # -H: OUTDIR may be a link to the real directory (a mount point's).
        if ! find -H "$out" -name SHA256SUMS -type f -exec sh -c '
            status=0
            for sums in "$@"; do
                # stdin closed: a line naming "-" would read the terminal.
                (cd "${sums%/*}" && sha256sum --check --quiet --strict SHA256SUMS < /dev/null) ||
                    status=1
            done
            exit "$status"' sh {} +; then
            echo "airgap.sh: $out failed its SHA256SUMS check; do not carry it across" >&2
            exit 1
        fi
    fi
}

# The file:// URL of directory $1, percent-encoded as pylock and uv expect (a space, "#",
# "%" or non-ASCII letter in the path would otherwise break or change the URL).
file_url() {
    local path encoded='' char i
    # (set -e does not reach into $(...): test for the directory first.)
    if [ ! -d "$1" ]; then
        echo "airgap.sh: $1: no such mirror directory" >&2
        exit 1
    fi
    path=$(CDPATH='' cd -- "$1" && pwd)
    local LC_ALL=C # one byte at a time
    for ((i = 0; i < ${#path}; i++)); do
        char=${path:i:1}
        case "$char" in
            [A-Za-z0-9/._~-]) encoded+=$char ;;
            *) encoded+=$(printf '%%%02X' "'$char") ;;
        esac
    done
    printf 'file://%s\n' "$encoded"
}

install_from() {
    local mirror=$1
    local into=${2:-}
    case "$mirror" in
        http://* | https://* | file://*) ;;
        *) mirror=$(file_url "$mirror") ;;
    esac
    mirror=${mirror%/}
    local args=(
        --mirror "$mirror/"
        --pypy-mirror "$mirror/pypy/"
        --rewrite "$GRAALPY_UPSTREAM=$mirror/graalpy/"
    )
    if [ -n "$into" ]; then
        args+=(--into "$into")
    fi
    "${pylock[@]}" sync "${args[@]}"
}

[ "$#" -ge 2 ] || usage
command=$1
shift
case "$command" in
    export) export_mirror "$@" ;;
    install) install_from "$@" ;;
    *) usage ;;
esac
