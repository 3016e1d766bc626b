"""What most commands share: finding the project, loading the Buildfile, opening the workspace."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from buildgraph.errors import UsageError


def add(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
    description: str = "",
    add_help: bool = True,
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, parents=[common], help=help_text, description=description or help_text, add_help=add_help
    )


def add_targets(parser: argparse.ArgumentParser, verb: str) -> None:
    """The TARGET… positional; its help names the project's `[project] default` when shown."""
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"stages to {verb} (default: {_DEFAULT_TARGETS})"
    )
    parser.add_argument("-h", "--help", action=_HelpNamingDefault, nargs=0, help="show this help and exit")


_DEFAULT_TARGETS = "[project] default, else every stage"


class _HelpNamingDefault(argparse.Action):
    """`-h` whose help names the Buildfile's `[project] default`, so it says what a bare command
    builds. It only marks the request: `-C`/`-f` may come before or after it, and the CLI
    prints the help (`show_help`) once every option is parsed. Needs `add_help=False`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *_: object) -> None:
        namespace.help_of = parser


def show_help(parser: argparse.ArgumentParser, directory: str, file: str) -> None:
    shown = _project_default(Path(directory) / file)
    for action in parser._actions:
        if action.dest == "targets" and action.help:
            action.help = action.help.replace(_DEFAULT_TARGETS, shown)
    parser.print_help()


def _project_default(buildfile: Path) -> str:
    import tomllib

    try:
        default = tomllib.loads(buildfile.read_text(encoding="utf-8")).get("project", {}).get("default")
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_TARGETS
    if isinstance(default, list) and default and all(isinstance(d, str) for d in default):
        return f"{' '.join(default)}, the [project] default of {buildfile.name}"
    return f"every stage ({buildfile.name} has no [project] default)"


def pairs(values: list[str], option: str) -> dict[str, str]:
    """`["a=1", "b=2"]` → `{"a": "1", "b": "2"}`; `--param x` without `=` is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} {item!r}: expected NAME=VALUE", hint=f"for example {option} epochs=3")
        out[name.strip()] = value
    return out


@dataclass
class Project:
    root: Path
    spec: object  # core.spec.Spec
    graph: object  # core.graph.Graph


def load_project(ns: argparse.Namespace) -> Project:
    from buildgraph.buildfile import load_graph

    root = Path(ns.directory).resolve()
    if not root.is_dir():
        raise UsageError(f"-C {ns.directory}: no such directory")
    spec, graph = load_graph(root, ns.file, args=pairs(ns.arg, "--arg"), params=pairs(ns.param, "--param"))
    return Project(root, spec, graph)


def check_targets(project: Project, targets: list[str]) -> list[str]:
    from buildgraph.core.suggest import did_you_mean

    stages = list(project.spec.stages)  # type: ignore[attr-defined]
    for target in targets:
        if target not in stages:
            raise UsageError(
                f"unknown stage '{target}'{did_you_mean(target, stages)}", hint="`bg graph` lists the stages"
            )
    return targets
