"""`bg metrics`: the numbers in each stage's metrics file, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from buildgraph.commands._common import add, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("--json", action="store_true")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import read_metrics

    project = load_project(ns)
    found = {}
    for name, stage in project.spec.stages.items():  # type: ignore[attr-defined]
        path = getattr(stage, "metrics", "")
        if path:
            found[name] = read_metrics(project.root / path)
    if ns.json:
        json.dump(found, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if not found:
        sys.stdout.write("no stage declares `metrics`\n")
    for name, numbers in found.items():
        if not numbers:
            sys.stdout.write(f"{name}: (no metrics yet — run `bg run {name}`)\n")
        for key, value in numbers.items():
            sys.stdout.write(
                f"{name}  {key}  {value:.6g}\n" if isinstance(value, float) else f"{name}  {key}  {value}\n"
            )
    return 0
