"""`bg dockerfile STAGE`: print the standalone multi-stage Dockerfile equivalent to an image stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from buildgraph.commands._common import add, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    p = add(
        sub,
        common,
        name,
        help_text,
        "Print a Dockerfile that builds the same image as STAGE without bg "
        "(a run stage: the image it runs in).",
    )
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.images.dockerfile import render_standalone

    project = load_project(ns)
    check_targets(project, [ns.stage])
    text = render_standalone(project.spec, ns.stage)  # type: ignore[arg-type]
    if ns.output:
        Path(project.root, ns.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
