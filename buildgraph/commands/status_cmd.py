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
        return show(session.engine().status(targets), ns.json)


_LABEL = {"skip": "up to date", "restore": "restore", "run": "run", "build": "build"}


def show(decisions: list[Any], as_json: bool) -> int:
    if as_json:
        json.dump([d.as_dict() for d in decisions], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max((len(d.stage) for d in decisions), default=5)
    for d in decisions:
        action = _LABEL[d.action] + ("?" if d.tentative else "")
        reasons = "; ".join(r.text() for r in d.reasons)
        sys.stdout.write(f"{d.stage:<{width}}  {action:<10}  {reasons}".rstrip() + "\n")
    todo = sum(1 for d in decisions if d.action != "skip")
    sys.stdout.write(
        f"{todo} of {len(decisions)} stages to run or restore\n" if todo else "everything is up to date\n"
    )
    return 0
