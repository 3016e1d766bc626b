"""`bg schema`: print the JSON Schema of Buildfile.toml (for editors and CI validation)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from buildgraph.commands._common import add


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    add(sub, common, name, help_text)


def run(ns: argparse.Namespace) -> int:
    sys.stdout.write(
        resources.files("buildgraph").joinpath("schema/buildfile.schema.json").read_text("utf-8")
    )
    return 0
