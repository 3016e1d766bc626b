"""`bg` command line: the composition root. Parses arguments, hands off to one command.

Each command lives in `buildgraph.commands.<name>_cmd` with `add_parser(sub, common)` and
`run(ns) -> int`, imported only when chosen (start-up speed: `bg status` must not pay
for rich, docker or sqlite-heavy imports it does not use).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms of a null run)
if TYPE_CHECKING:  # argparse, errors (dataclasses, pathlib) load after the up-to-date check
    import argparse
    from collections.abc import Sequence

    from buildgraph.errors import BgError, BuildfileError
    from buildgraph.uptodate import Request

# command name → (module, one-line help). Order is the order `bg --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run_cmd", "run stages (a target runs with everything it needs; none: the [project] default)"),
    "status": ("status_cmd", "what `bg run` would do, and why"),
    "explain": ("explain_cmd", "why one stage would run: old and new keys, digests, values"),
    "graph": ("graph_cmd", "show the stage graph (text, dot, mermaid, json)"),
    "metrics": ("metrics_cmd", "show the metrics stages wrote"),
    "provenance": ("provenance_cmd", "the in-toto/SLSA provenance of a recorded result; sign, verify"),
    "audit": ("audit_cmd", "rerun recorded stages and prove their outputs identical, or say what differs"),
    "gc": ("gc_cmd", "delete cached artefacts nothing references"),
    "clean": ("clean_cmd", "remove stage outputs from the workspace"),
    "verify": ("verify_cmd", "re-hash cache objects and workspace outputs against the records (--repair)"),
    "schema": ("schema_cmd", "print the JSON Schema of Buildfile.toml"),
    "dockerfile": ("dockerfile_cmd", "print an equivalent standalone Dockerfile for an image stage"),
    "import": ("import_cmd", "convert a Dockerfile or a DVC dvc.yaml into a Buildfile.toml"),
    "init": ("init_cmd", "scaffold a Buildfile.toml for this project"),
    "lint": ("lint_cmd", "warn about image-stage practices, each with a fix"),
    "shell": ("shell_cmd", "open an interactive shell in a stage's image"),
    "shell-init": ("shell_init_cmd", "print a `bg` shell function that keeps the shell's job control"),
}


def common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command name (`bg -C d run` and `bg run -C d`)."""
    import argparse

    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("-C", "--directory", metavar="DIR", help="run as if bg was started in DIR")
    common.add_argument("-f", "--file", metavar="FILE", help="the Buildfile (default: Buildfile.toml)")
    common.add_argument("--param", action="append", metavar="K=V", help="override a param (repeatable)")
    common.add_argument("--arg", action="append", metavar="K=V", help="override a build arg (repeatable)")
    common.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    common.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    return common


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`only`) the parser of one command: the others' modules are not
    even imported, which keeps `bg run` with nothing to do fast."""
    import argparse

    from buildgraph import __version__
    from buildgraph.errors import INTERNAL_ERROR

    common = common_options()
    parser = argparse.ArgumentParser(
        prog="bg",
        description="buildgraph: a declarative, content-keyed build graph for ML work in Docker images.",
        parents=[common],
        epilog="exit status: 0 ok, 1 a stage failed, 2 invalid Buildfile or command line, "
        f"3 environment problem, {INTERNAL_ERROR} internal error (a bug in bg), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"bg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is None or name == only:
            _command_module(module).add_parser(sub, common, name, help_text)
    if "shell-init" in sub.choices:  # its function dispatches these names; commands never import the CLI
        sub.choices["shell-init"].set_defaults(command_names=tuple(COMMANDS))
    return parser


def _command_module(module: str):  # type: ignore[no-untyped-def]
    import importlib

    return importlib.import_module(f"buildgraph.commands.{module}")


_TAKES_VALUE = {"-C", "--directory", "-f", "--file", "--param", "--arg"}


def _chosen_command(argv: list[str]) -> str | None:
    """The command named in argv (None for `bg --help`, `bg --version` or no command)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _TAKES_VALUE:
            skip = True
        elif word in ("-h", "--help", "--version"):
            return None
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _defaults(ns: argparse.Namespace) -> argparse.Namespace:
    for name, value in (
        ("directory", "."),
        ("file", "Buildfile.toml"),
        ("param", []),
        ("arg", []),
        ("quiet", False),
        ("debug", False),
    ):
        if not hasattr(ns, name):
            setattr(ns, name, value)
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    """`argv` None: this process's command line, which an up-to-date stamp may answer first
    (`uptodate`: a null run costs start-up and a stat per path). A caller's own argv (tests,
    embedding) always takes the normal path."""
    request: Request | None = None
    if argv is None:
        from buildgraph import uptodate

        request = uptodate.request(sys.argv[1:])
        answered = uptodate.answer(request)
        if answered is not None:
            return answered
    return _main(list(sys.argv[1:] if argv is None else argv), request)


def _main(argv: list[str], request: Request | None) -> int:
    from buildgraph.errors import BgError, BuildfileError

    debug = "--debug" in argv or bool(os.environ.get("BG_DEBUG"))
    try:
        return _run_command(argv, request)
    except BuildfileError as exc:
        return _buildfile_error(exc)
    except BgError as exc:
        return _bg_error(exc, debug)
    except KeyboardInterrupt:
        _say("error", "interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line (and the traceback only when asked), always INTERNAL_ERROR
        return _unexpected_error(exc, debug)


def _run_command(argv: list[str], request: Request | None = None) -> int:
    """Parse `argv` and run the command it names; its exit status. `request`: the stamp the
    command may leave when it finds everything up to date."""
    parser = build_parser(_chosen_command(argv))
    ns = _defaults(parser.parse_args(argv))
    ns.uptodate = request
    if not ns.command:
        parser.print_help(sys.stderr)
        return 2
    if getattr(ns, "help_of", None) is not None:  # `-h` of a command naming the project's default
        from buildgraph.commands._common import show_help

        show_help(ns.help_of, ns.directory, ns.file)
        return 0
    module = COMMANDS[ns.command][0]
    return int(_command_module(module).run(ns) or 0)


def _buildfile_error(exc: BuildfileError) -> int:
    """Every problem found in the Buildfile, each with its hint."""
    for problem in exc.problems:
        _say("error", problem.render())
        if problem.hint:
            _say("hint", problem.hint)
    return exc.exit_status


def _bg_error(exc: BgError, debug: bool) -> int:
    """A user-facing error: its message and hint (the traceback after them under --debug)."""
    _say("error", exc.message)
    if exc.hint:
        _say("hint", exc.hint)
    if debug:
        _print_traceback()
    return exc.exit_status


def _unexpected_error(exc: Exception, debug: bool) -> int:
    """Anything else is a bug in bg, except a full disk (the user's, whoever wrote)."""
    from buildgraph.diskfull import is_no_space
    from buildgraph.errors import INTERNAL_ERROR

    if is_no_space(exc):  # a write no `writing(...)` names: still the user's full disk, not a bug
        return _disk_full(exc)
    if debug:
        _print_traceback()
    _say("error", f"internal error: {exc!r}")
    if not debug:
        _say("hint", "rerun with --debug for the traceback, and please report it")
    return INTERNAL_ERROR


def _disk_full(exc: Exception) -> int:
    """A full disk no `diskfull.writing(...)` named: located by the failed call's filename."""
    from buildgraph.diskfull import problem

    where = getattr(exc, "filename", None) or "."
    found = problem(exc, f"'{where}'" if where != "." else "a file", where)
    _say("error", found.message)
    _say("hint", found.hint)
    return found.exit_status


def _print_traceback() -> None:
    """The traceback of the exception being handled (only under --debug)."""
    import traceback

    traceback.print_exc()


def _say(level: str, text: str) -> None:
    sys.stderr.write(f"bg: {level}: {text}\n")
    sys.stderr.flush()
