"""`bg shell-init SHELL`: print a `bg` shell function for sh, bash, zsh or fish.

Every POSIX shell has a job-control builtin called `bg`, and a builtin wins over the `bg` on
PATH, so `bg run` never reaches this tool; `buildgraph` always does. The function printed
here takes the name back without losing job control: its first word decides. One of
buildgraph's commands (the CLI's own table, handed over as `ns.command_names`: a new command
is covered without editing this file, and no command imports the CLI) or any option
(`-C dir`, `--version`, `--help`: the builtin takes none) goes to `buildgraph`; anything
else — `bg`, `bg %1`, `bg --` — goes to the builtin.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterable

from buildgraph.errors import UsageError

SHELLS = ("sh", "bash", "zsh", "fish")

DESCRIPTION = """\
Print a `bg` shell function. The shell's job-control builtin `bg` hides the `bg` on your
PATH (`buildgraph` always works); with this function, `bg run`, `bg status`, `bg -C DIR run`,
`bg --version` … reach buildgraph, while `bg`, `bg %1` still resume jobs.

  ~/.bashrc                   eval "$(buildgraph shell-init bash)"
  ~/.zshrc                    eval "$(buildgraph shell-init zsh)"
  the file $ENV names (dash)  eval "$(buildgraph shell-init sh)"
  ~/.config/fish/config.fish  buildgraph shell-init fish | source
"""

# How each shell reaches its own `bg` from inside a function of that name: dash has no
# `builtin`, and zsh's `command` skips builtins (it would find bg on PATH, i.e. this tool).
_BUILTIN = {"sh": "command bg", "bash": "builtin bg", "zsh": "builtin bg"}

_POSIX = """\
# bg: buildgraph's commands and options go to buildgraph, the rest (bg, bg %1) to the
# job-control builtin. Load with: eval "$(buildgraph shell-init {shell})"
bg() {{
  case "${{1-}}" in
    --) {builtin} "$@" ;;
    -*|{patterns}) command buildgraph "$@" ;;
    *) {builtin} "$@" ;;
  esac
}}
"""

# fish's builtin takes only pids: its own `bg` function (share/config.fish) turns `%1` into
# pids with __fish_expand_pid_args, which this function replaces and so must do as well.
_FISH = """\
# bg: buildgraph's commands and options go to buildgraph, the rest (bg, bg %1) to the
# job-control builtin. Load with: buildgraph shell-init fish | source
function bg --description 'buildgraph commands and options, else the job-control builtin'
    switch "$argv[1]"
        case --
            # end of options: the builtin's
        case '-*' {patterns}
            command buildgraph $argv
            return
    end
    if functions -q __fish_expand_pid_args
        builtin bg (__fish_expand_pid_args $argv)
    else
        builtin bg $argv
    end
end
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    p = sub.add_parser(
        name,
        parents=[common],
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the table's lines
    )
    p.add_argument("shell", nargs="?", metavar="SHELL", help=" | ".join(SHELLS))


def run(ns: argparse.Namespace) -> int:
    sys.stdout.write(function_text(_checked(ns.shell), ns.command_names))
    return 0


def _checked(shell: str | None) -> str:
    """The shell name, or a one-line usage error (argparse's own would add a usage line)."""
    if shell and shell in SHELLS:
        return shell
    given = f"unknown shell '{shell}'" if shell else "no shell given"
    raise UsageError(f"shell-init: {given}; expected one of {', '.join(SHELLS)}")


def function_text(shell: str, commands: Iterable[str]) -> str:
    """The `bg` function in `shell`'s syntax, dispatching `commands` to buildgraph."""
    names = [shlex.quote(name) for name in commands]  # quoted: matched literally by case/switch
    if shell == "fish":
        return _FISH.format(patterns=" ".join(names))
    return _POSIX.format(shell=shell, builtin=_BUILTIN[shell], patterns="|".join(names))
