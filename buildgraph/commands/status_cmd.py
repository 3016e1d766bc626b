"""`bg status [TARGET…]`: what `bg run` would do for each stage, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from buildgraph.commands._common import add, add_targets, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text, add_help=False)
    add_targets(p, "decide")
    p.add_argument("--json", action="store_true", help="print the decisions as JSON")
    p.add_argument("--executor", choices=["auto", "local", "docker"], help="decide as this executor would")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session

    project = load_project(ns)
    targets = check_targets(project, ns.targets)
    ns.quiet = True
    with Session(project, ns, shared=True) as session:
        engine = session.engine()
        decisions = engine.status(targets)
        show(decisions, ns.json)
        from buildgraph.commands.stamp import after_status

        after_status(ns, project, engine, targets, decisions)  # null: the next is a stat per path
    return 0


_LABEL = {"skip": "up to date", "restore": "restore", "run": "run", "build": "build"}


def show(decisions: list[Any], as_json: bool) -> int:
    if as_json:
        json.dump([d.as_dict() for d in decisions], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(decisions))
    return 0


def render(decisions: list[Any]) -> str:
    """The status table and its last line (also what an up-to-date stamp prints)."""
    width = max((len(d.stage) for d in decisions), default=5)
    lines = []
    for d in decisions:
        action = _LABEL[d.action] + ("?" if d.tentative else "")
        reasons = "; ".join(r.text() for r in d.reasons)
        lines.append(f"{d.stage:<{width}}  {action:<10}  {reasons}".rstrip() + "\n")
    todo = sum(1 for d in decisions if d.action != "skip")
    lines.append(
        f"{todo} of {len(decisions)} stages to run or restore\n" if todo else "everything is up to date\n"
    )
    return "".join(lines)
