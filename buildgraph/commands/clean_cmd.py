"""`bg clean [STAGE…]`: remove stage outputs from the workspace (the cache keeps them)."""

from __future__ import annotations

import argparse
import sys

from buildgraph.commands._common import add, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("stages", nargs="*", metavar="STAGE", help="default: every run stage")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session

    project = load_project(ns)
    names = check_targets(project, ns.stages) or list(project.spec.stages)  # type: ignore[attr-defined]
    removed = 0
    with Session(project, ns) as session:
        for name in names:
            for output in getattr(project.spec.stages[name], "outputs", ()):  # type: ignore[attr-defined]
                removed += session.ws.cache.remove_output(project.root / output.path)
    sys.stdout.write(f"removed {removed} output(s); `bg run` restores them from the cache\n")
    return 0
