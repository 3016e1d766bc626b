"""`bg lint`: Dockerfile best practices for the image stages, each warning with its fix.

Exit 0 whatever it finds (they are advice), or 1 with `--strict` when it found any.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from buildgraph.commands._common import add, load_project


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    p.add_argument("--json", action="store_true", help="print the warnings as a JSON list")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.lint import lint

    project = load_project(ns)
    warnings = lint(project.spec)  # type: ignore[arg-type]
    if ns.json:
        sys.stdout.write(json.dumps([asdict(w) for w in warnings], indent=2) + "\n")
    else:
        for warning in warnings:
            sys.stdout.write(f"{warning.render(ns.file)}\n  fix: {warning.fix}\n")
        count = len(warnings)
        sys.stderr.write(f"bg lint: {count} warning{'s' * (count != 1)}\n")
    return 1 if ns.strict and warnings else 0
