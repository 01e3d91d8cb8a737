"""``pylock completion bash|zsh|fish``: shell completion scripts, generated from the parser.

The scripts are built from the real argparse parser, so commands, flags and flag choices
cannot drift from the CLI. Interpreter names are read from the project's ``pythons.lock``
by the shell itself (``sed`` or fish's ``string``) while completing: completing never starts
Python, and a pylock run that is not completing pays nothing for any of this.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Sequence

import attrs

from pylock.platforms import HOST, PLATFORM_KEYS

SHELLS = ("bash", "zsh", "fish")

#: What a value or a positional completes to.
CHOICES, NAMES, PLATFORMS, DIRS, FILES, NOTHING, REST = (
    "words",
    "names",
    "platforms",
    "dirs",
    "files",
    "none",
    "rest",
)

# The metavars the parser shows tell what a value is; the completion follows the help text.
_BY_METAVAR = {
    "NAME": NAMES,
    "DIR": DIRS,
    "OUTDIR": DIRS,
    "OLD": FILES,
    "NEW": FILES,
    "PATH_OR_URL": FILES,
    "LOCK": FILES,
}
_BY_DEST = {"platform": PLATFORMS}

#: Interpreter names as DESIGN.md allows them; the shell filters the lock's ``name =`` lines
#: with it, so a hostile lock cannot feed anything but plain words to ``compgen -W``.
_NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9._-]*"
_SAFE_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*\Z")


@attrs.frozen(kw_only=True)
class Option:
    """One option of one (sub)command."""

    #: ``("-q", "--quiet")``.
    strings: tuple[str, ...]
    #: The one-line help.
    help: str
    #: ``None`` for a flag, else what its value completes to.
    value: str | None
    #: The choices, when ``value`` is ``CHOICES``.
    choices: tuple[str, ...] = ()
    #: The metavar shown in help.
    metavar: str = ""
    #: Whether it may be given more than once.
    repeats: bool = False
    #: Whether it takes several values at once (``--only app tool``).
    several: bool = False


@attrs.frozen(kw_only=True)
class Positional:
    """One positional argument."""

    #: What it completes to.
    kind: str
    #: The metavar shown in help.
    metavar: str
    #: The choices, when ``kind`` is ``CHOICES``.
    choices: tuple[str, ...] = ()
    #: Whether it takes any number of words (``nargs`` ``*``/``+``).
    repeats: bool = False
    #: Whether it may be left out.
    optional: bool = False


@attrs.frozen(kw_only=True)
class Command:
    """A parser at one command path (``()``, ``("lock",)``, ``("cache", "prune")``)."""

    path: tuple[str, ...]
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    #: Sub-commands and their help, in the parser's order.
    commands: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        return " ".join(self.path)

    @property
    def valued(self) -> list[str]:
        return [s for o in self.options if o.value is not None for s in o.strings]

    @property
    def several(self) -> list[str]:
        return [s for o in self.options if o.several for s in o.strings]

    @property
    def flags(self) -> list[str]:
        return [s for o in self.options for s in o.strings]


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _value_kind(action: argparse.Action) -> str:
    if action.choices is not None:
        return CHOICES
    if action.dest in _BY_DEST:
        return _BY_DEST[action.dest]
    return _BY_METAVAR.get(str(action.metavar or ""), NOTHING)


def _safe(words: Sequence[str]) -> tuple[str, ...]:
    # Everything the scripts embed unquoted must be a plain word.
    for word in words:
        if not _SAFE_WORD.match(word.lstrip("-")):
            raise ValueError(f"cannot embed {word!r} in a completion script")
    return tuple(words)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command of ``parser``, depth first, each with what it accepts."""
    # argparse has no public way to list what a parser accepts; these attributes have been
    # the same since Python 3.2, and the tests compare the result with the parser's behaviour.
    options: list[Option] = []
    positionals: list[Positional] = []
    commands: list[tuple[str, str]] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: _one_line(a.help) for a in action._choices_actions}
            for name, sub in action.choices.items():
                commands.append((_safe([name])[0], helps.get(name, "")))
                children.append((name, sub))
        elif action.option_strings:
            takes_value = action.nargs != 0
            kind = _value_kind(action) if takes_value else None
            options.append(
                Option(
                    strings=_safe(action.option_strings),
                    help=_one_line(action.help),
                    value=kind,
                    choices=_safe([str(c) for c in action.choices or ()]),
                    metavar=str(action.metavar or action.dest.upper()),
                    repeats=isinstance(action, (argparse._AppendAction, argparse._CountAction)),
                    several=action.nargs in ("+", "*"),
                )
            )
        elif action.nargs == argparse.REMAINDER:
            positionals.append(Positional(kind=REST, metavar=str(action.metavar or "ARGS")))
        else:
            positionals.append(
                Positional(
                    kind=_value_kind(action),
                    choices=_safe([str(c) for c in action.choices or ()]),
                    metavar=str(action.metavar or action.dest.upper()),
                    repeats=action.nargs in ("*", "+"),
                    optional=action.nargs in ("?", "*"),
                )
            )
    yield Command(
        path=path,
        options=tuple(options),
        positionals=tuple(positionals),
        commands=tuple(commands),
    )
    for name, sub in children:
        yield from walk(sub, (*path, name))


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    render: dict[str, Callable[[list[Command]], str]] = {
        "bash": _bash,
        "zsh": _zsh,
        "fish": _fish,
    }
    return render[shell](list(walk(parser)))


def _platforms() -> str:
    return " ".join((HOST, *PLATFORM_KEYS))


# -- bash ------------------------------------------------------------------------------------

_BASH_HEAD = r"""# bash completion for pylock (generated by `pylock completion bash`; do not edit).
# Load it with:  eval "$(pylock completion bash)"   (e.g. in ~/.bashrc)
# or save it as ~/.local/share/bash-completion/completions/pylock

# The interpreter names locked in pythons.lock of --project DIR (default: here).
_pylock_names() {
    local dir=. i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [ "${COMP_WORDS[i]}" = --project ]; then
            if [ "${COMP_WORDS[i+1]}" = "=" ]; then
                dir="${COMP_WORDS[i+2]}"
            else
                dir="${COMP_WORDS[i+1]}"
            fi
        fi
    done
    # The word as typed: quoted ('sp dir', "sp dir") or escaped (sp\ dir).
    case "$dir" in
        \'*\' | \"*\") dir="${dir:1:${#dir}-2}" ;;
        *) dir="${dir//\\/}" ;;
    esac
    case "$dir" in "~" | "~/"*) dir="$HOME${dir#"~"}" ;; esac
    [ -f "$dir/pythons.lock" ] || return 0
    sed -n 's/^name = "\(@NAME@\)"[[:space:]]*$/\1/p' "$dir/pythons.lock" 2>/dev/null
}

_pylock_has() {
    local word="$1" item
    shift
    for item in "$@"; do
        [ "$item" = "$word" ] && return 0
    done
    return 1
}

_pylock_reply() {
    local IFS=$' \t\n' globbing=1
    # The candidates go into the array as they are: unquoted, a file named `[ab].lock` was
    # replaced by what it matches. (`set -f`, not `local -` or mapfile: bash 3.2 has neither.)
    case $- in *f*) globbing=0 ;; esac
    set -f
    case "$1" in
        words) COMPREPLY=($(compgen -W "$2" -- "$cur")) ;;
        names) COMPREPLY=($(compgen -W "$(_pylock_names)" -- "$cur")) ;;
        platforms) COMPREPLY=($(compgen -W "@PLATFORMS@" -- "$cur")) ;;
        dirs | files | rest)
            IFS=$'\n'
            compopt -o filenames 2>/dev/null
            if [ "$1" = dirs ]; then
                COMPREPLY=($(compgen -d -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            ;;
    esac
    [ "$globbing" = 0 ] || set +f
}

# The kind of the Nth positional ($2, from 0) of the command at path $1.
_pylock_kind() {
    local flags valued several commands positionals n="$2" kind
    _pylock_spec "$1"
    for kind in $positionals; do
        case "$kind" in
            *+ | rest) echo "${kind%+}"; return ;;
        esac
        if [ "$n" -eq 0 ]; then
            echo "$kind"
            return
        fi
        n=$((n - 1))
    done
}
"""

_BASH_MAIN = r"""
_pylock() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local path="" npos=0 rest=0 ended=0 i w opt multi=""
    local flags valued several commands positionals
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        _pylock_spec "$path"
        # After `--` every word is a positional (`which -- NAME`, `run NAME -- ARGS`).
        [ "$ended" = 1 ] || case "$w" in
            --) ended=1; continue ;;
            -*=*) continue ;;
            -*)
                if _pylock_has "$w" $valued; then
                    if [ "${COMP_WORDS[i+1]}" = "=" ]; then
                        i=$((i + 2))  # `--only=app`: that one value, for argparse
                    else
                        i=$((i + 1))
                        if _pylock_has "$w" $several; then
                            # `--only app tool`: the words up to the next flag are values.
                            while [ $((i + 1)) -lt "$COMP_CWORD" ]; do
                                case "${COMP_WORDS[i+1]}" in -*) break ;; esac
                                i=$((i + 1))
                            done
                            if [ $((i + 1)) -eq "$COMP_CWORD" ]; then multi="$w"; fi
                        fi
                    fi
                fi
                continue
                ;;
        esac
        if [ -n "$commands" ]; then
            path="${path:+$path }$w"
            npos=0
            continue
        fi
        npos=$((npos + 1))
        if [ "$(_pylock_kind "$path" "$npos")" = rest ]; then
            rest=1
            break
        fi
    done
    _pylock_spec "$path"
    if [ "$rest" = 1 ]; then
        _pylock_reply files
        return 0
    fi
    # `--opt VALUE`, `--opt=VALUE` (bash splits at the `=`) and `--opt=` with nothing yet;
    # `--only app VALUE`: another value of an option that takes several.
    opt="$prev"
    if [ -n "$multi" ]; then
        case "$cur" in -*) ;; *) opt="$multi" ;; esac
    fi
    [ "$ended" = 0 ] || opt=""
    if [ "$cur" = "=" ]; then
        cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 3 ]; then
        opt="${COMP_WORDS[COMP_CWORD-2]}"
    fi
    if _pylock_has "$opt" $valued; then
        _pylock_value "$path" "$opt"
        return 0
    fi
    case "$ended$cur" in
        0-*) _pylock_reply words "$flags"; return 0 ;;
    esac
    if [ -n "$commands" ]; then
        # argparse takes no command after `--` (`pylock -- list` is an error).
        [ "$ended" = 1 ] || _pylock_reply words "$commands"
        return 0
    fi
    local kind
    kind="$(_pylock_kind "$path" "$npos")"
    case "$kind" in
        words:*) kind="${kind#words:}"; _pylock_reply words "${kind//,/ }" ;;
        ?*) _pylock_reply "$kind" ;;
    esac
    return 0
}

complete -F _pylock pylock
"""


def _bash(commands: list[Command]) -> str:
    spec = [
        "# What each command path accepts: all flags, the flags that take a value, its",
        "# sub-commands, and one kind per positional (`+`: repeats; `rest`: everything after).",
        "_pylock_spec() {",
        '    case "$1" in',
    ]
    values = ["_pylock_value() {", '    case "$1|$2" in']
    for command in commands:
        kinds = [
            p.kind + (":" + ",".join(p.choices) if p.choices else "") + ("+" if p.repeats else "")
            for p in command.positionals
        ]
        spec += [
            f'        "{command.key}")',
            f'            flags="{" ".join(command.flags)}"',
            f'            valued="{" ".join(command.valued)}"',
            f'            several="{" ".join(command.several)}"',
            f'            commands="{" ".join(n for n, _ in command.commands)}"',
            f'            positionals="{" ".join(kinds)}"',
            "            ;;",
        ]
        for option in command.options:
            if option.value is None or option.value == NOTHING:
                continue
            pattern = " | ".join(f'"{command.key}|{s}"' for s in option.strings)
            if option.value == CHOICES:
                reply = f'_pylock_reply words "{" ".join(option.choices)}"'
            else:
                reply = f"_pylock_reply {option.value}"
            values.append(f"        {pattern}) {reply} ;;")
    spec += [
        '        *) flags="" valued="" several="" commands="" positionals="" ;;',
        "    esac",
        "}",
    ]
    values += ["    esac", "}"]
    head = _BASH_HEAD.replace("@NAME@", _NAME_PATTERN).replace("@PLATFORMS@", _platforms())
    return head + "\n" + "\n".join(spec) + "\n\n" + "\n".join(values) + "\n" + _BASH_MAIN


# -- zsh -------------------------------------------------------------------------------------

_ZSH_HEAD = r"""#compdef pylock
# zsh completion for pylock (generated by `pylock completion zsh`; do not edit).
# Load it with:  eval "$(pylock completion zsh)"   (after compinit, e.g. in ~/.zshrc)
# or save it as _pylock in a directory on your $fpath.

# The interpreter names locked in pythons.lock of --project DIR (default: here).
_pylock_names() {
    local dir=${_pylock_project:-.}
    dir=${dir/#\~/$HOME}
    [[ -f $dir/pythons.lock ]] || return 1
    local -a names
    local pick='s/^name = "\(@NAME@\)"[[:space:]]*$/\1/p'
    names=(${(f)"$(sed -n $pick $dir/pythons.lock 2>/dev/null)"})
    compadd -a names
}

_pylock_platforms() {
    compadd -- @PLATFORMS@
}

# `--only app tool`: a word after the values of an option that takes several (argv[2,-1])
# is one more of its values, completed by the function $1. `--only=app` takes just one.
_pylock_more() {
    local complete=$1 i=$((CURRENT - 1))
    shift
    while (( i > 1 )) && [[ $words[i] != -* ]]; do (( i-- )); done
    (( i > 1 && ${argv[(Ie)$words[i]]} )) || return 1
    $complete
}
"""


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_help(text: str) -> str:
    for char in "\\[]:":
        text = text.replace(char, "\\" + char)
    return text


def _zsh_action(kind: str, choices: Sequence[str] = ()) -> str:
    return {
        CHOICES: f"({' '.join(choices)})",
        NAMES: "_pylock_names",
        PLATFORMS: "_pylock_platforms",
        DIRS: "_files -/",
        FILES: "_files",
        REST: "_files",
        NOTHING: " ",
    }[kind]


#: The zsh function that completes one more value of an option that takes several.
_MORE = {NAMES: "_pylock_names", PLATFORMS: "_pylock_platforms"}


def _zsh_function(command: Command) -> list[str]:
    name = "_pylock" + "".join(f"_{part}" for part in command.path).replace("-", "_")
    specs = []
    for option in command.options:
        for string in option.strings:
            spec = ("*" if option.repeats else "") + string
            if option.value is not None:
                spec += "=" if string.startswith("--") else "+"
            spec += f"[{_zsh_help(option.help)}]"
            if option.value is not None:
                meta = _zsh_help(option.metavar)
                spec += f":{meta}:{_zsh_action(option.value, option.choices)}"
            specs.append(_zsh_quote(spec))
    for index, positional in enumerate(command.positionals, start=1):
        meta = _zsh_help(positional.metavar)
        action = _zsh_action(positional.kind, positional.choices)
        if positional.kind == REST:
            specs.append(_zsh_quote(f"*::{meta}:{action}"))
        elif positional.repeats:
            specs.append(_zsh_quote(f"*:{meta}:{action}"))
        else:
            colon = "::" if positional.optional else ":"
            specs.append(_zsh_quote(f"{index}{colon}{meta}:{action}"))
    lines = [
        f"{name}() {{",
        '    local curcontext="$curcontext" state line ret=1',
        "    typeset -A opt_args",
    ]
    if command.commands:
        specs += [_zsh_quote("1: :->command"), _zsh_quote("*:: :->args")]
    more = [s for o in command.options if o.several for s in o.strings]
    if not more:
        lines.append("    _arguments -C \\")
        lines += [f"        {spec} \\" for spec in specs]
        lines.append("        && ret=0")
    else:
        # `--only app tool`: the words after the option's first value are more of them.
        # Such commands take no positionals, so those words can be nothing else. Where
        # they are not (after another option), the command is completed again without
        # that spec, so that options are offered as zsh offers them where no argument is.
        kinds = {o.value for o in command.options if o.several}
        assert not command.positionals and len(kinds) == 1, command.key
        complete = _MORE[kinds.pop() or ""]
        lines += ["    local -a specs=(", *(f"        {spec}" for spec in specs), "    )"]
        lines += [
            "    _arguments -C $specs '*: :->more' && ret=0",
            "    if [[ $state = more ]]; then",
            f"        _pylock_more {complete} {' '.join(more)} && return 0",
            "        _arguments $specs && ret=0",
            "    fi",
        ]
    if not command.path:
        # (Q): the word as typed may be quoted or escaped ('sp dir', sp\ dir).
        lines.append("    typeset -g _pylock_project=${(Q)${opt_args[--project]:-.}}")
    if command.commands:
        described = " ".join(
            _zsh_quote(f"{sub}:{_one_line(text)}") for sub, text in command.commands
        )
        lines += [
            "    case $state in",
            "        command)",
            f"            local -a subcommands=({described})",
            "            _describe -t commands 'pylock command' subcommands && ret=0",
            "            ;;",
            "        args)",
            "            case $words[1] in",
        ]
        for sub, _ in command.commands:
            lines.append(f"                {sub}) {name}_{sub.replace('-', '_')} && ret=0 ;;")
        lines += ["            esac", "            ;;", "    esac"]
    lines += ["    return ret", "}"]
    return lines


def _zsh(commands: list[Command]) -> str:
    head = _ZSH_HEAD.replace("@NAME@", _NAME_PATTERN).replace("@PLATFORMS@", _platforms())
    body: list[str] = []
    for command in commands:
        body += [*_zsh_function(command), ""]
    tail = [
        'if [[ "$funcstack[1]" = _pylock ]]; then',
        '    _pylock "$@"',
        "else",
        "    compdef _pylock pylock",
        "fi",
    ]
    return head + "\n" + "\n".join(body + tail) + "\n"


# -- fish ------------------------------------------------------------------------------------

_FISH_HEAD = r"""# fish completion for pylock (generated by `pylock completion fish`; do not edit).
# Load it with:  pylock completion fish | source
# or save it as ~/.config/fish/completions/pylock.fish

# The interpreter names locked in pythons.lock of --project DIR (default: here).
function __pylock_names
    set -l dir .
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens))
        if test "$tokens[$i]" = --project; and test $i -lt (count $tokens)
            set dir $tokens[(math $i + 1)]
        else if string match -q -- '--project=*' $tokens[$i]
            set dir (string replace -- --project= '' $tokens[$i])
        end
    end
    set dir (string replace -r -- '^~(?=/|$)' $HOME $dir)
    test -f "$dir/pythons.lock"; or return 0
    string replace -rf -- '^name = "(@NAME@)"\s*$' '$1' <"$dir/pythons.lock"
end

# The command path being completed ("", "lock", "cache prune", ...).
# The command line so far, parsed: the command path ("", "lock", "cache prune", ...) on the
# first line, then the words given after it (option values left out; "--" kept).
function __pylock_parse
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path ""
    set -l words
    set -l skip 0
    for token in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        if test "$token" = --
            set -a words --
            continue
        end
        switch $token
            case '--*=*'
                continue
            case '-*'
                contains -- $token (__pylock_valued $path | string split " "); and set skip 1
                continue
        end
        if contains -- $token (__pylock_commands $path)
            set path (string trim -- "$path $token")
        else
            set -a words $token
        end
    end
    printf '%s\n' $path $words
end

function __pylock_path
    set -l parsed (__pylock_parse)
    echo $parsed[1]
end

function __pylock_at
    test "$(__pylock_path)" = "$argv[1]"
end

# `--only app tool`: true when the words since the last option are values of one of argv
# (`--only=app` takes just one).
function __pylock_more
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens) -1 2)
        if string match -q -- '-*' $tokens[$i]
            contains -- $tokens[$i] $argv
            return
        end
    end
    return 1
end

function __pylock_args
    set -l parsed (__pylock_parse)
    set -e parsed[1]
    for word in $parsed
        echo -- $word
    end
end
"""


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(commands: list[Command]) -> str:
    valued = ["function __pylock_valued", "    switch $argv[1]"]
    subs = ["function __pylock_commands", "    switch $argv[1]"]
    for command in commands:
        valued += [
            f"        case {_fish_quote(command.key)}",
            f"            echo {' '.join(command.valued) or ''}",
        ]
        if command.commands:
            subs += [
                f"        case {_fish_quote(command.key)}",
                f"            string join \\n -- {' '.join(n for n, _ in command.commands)}",
            ]
    valued += ["    end", "end"]
    subs += ["    end", "end"]
    lines = ["complete -c pylock -f"]
    for command in commands:
        at_command = f"__pylock_at {_fish_quote(command.key)}"
        where = f"-n {_fish_quote(at_command)}"
        for sub, text in command.commands:
            lines.append(f"complete -c pylock {where} -a {sub} -d {_fish_quote(text)}")
        for option in command.options:
            parts = ["complete -c pylock", where]
            for string in option.strings:
                parts.append(f"-l {string[2:]}" if string.startswith("--") else f"-s {string[1:]}")
            values = {
                CHOICES: _fish_quote(" ".join(option.choices)),
                NAMES: "'(__pylock_names)'",
                PLATFORMS: _fish_quote(_platforms()),
            }.get(option.value or "")
            if option.value in (DIRS, FILES):
                parts.append("-r -F")
            elif values is not None:
                parts.append(f"-x -a {values}")
            elif option.value == NOTHING:
                parts.append("-x")
            parts.append(f"-d {_fish_quote(option.help)}")
            lines.append(" ".join(parts))
            if option.several and values is not None:
                # `--only app tool`: the words after the first value are more of them.
                more = " ".join(_fish_quote(s) for s in option.strings)
                at = _fish_quote(f"{at_command}; and __pylock_more {more}")
                lines.append(f"complete -c pylock -n {at} -a {values}")
        for index, positional in enumerate(command.positionals):
            if positional.kind == CHOICES:
                choices = _fish_quote(" ".join(positional.choices))
                lines.append(f"complete -c pylock {where} -a {choices}")
            elif positional.kind == NAMES:
                # One NAME (which, run) is offered only while none is given yet.
                first = "" if positional.repeats else "; and test (count (__pylock_args)) -eq 0"
                at = _fish_quote(f"__pylock_at {_fish_quote(command.key)}{first}")
                lines.append(f"complete -c pylock -n {at} -a '(__pylock_names)'")
            elif positional.kind in (DIRS, FILES, REST):
                earlier = {p.kind for p in command.positionals[:index]}
                if earlier & {NAMES, CHOICES}:
                    # `run NAME ARGS`: files only once the NAME is given.
                    after = f"; and test (count (__pylock_args)) -ge {index}"
                    at = _fish_quote(f"__pylock_at {_fish_quote(command.key)}{after}")
                    lines.append(f"complete -c pylock -n {at} -F")
                else:
                    lines.append(f"complete -c pylock {where} -F")
    head = _FISH_HEAD.replace("@NAME@", _NAME_PATTERN)
    return head + "\n" + "\n".join([*valued, "", *subs, "", *lines]) + "\n"
