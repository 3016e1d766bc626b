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
) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=[common], help=help_text, description=description or help_text)


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
