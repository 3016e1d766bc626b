"""`bg schema`: print the JSON Schema of Buildfile.toml (for editors and CI validation).

The schema is made from the parser's own key tables each time (`core.schema`), so it always
describes the format this bg reads; no copy of it is kept that could fall behind."""

from __future__ import annotations

import argparse
import sys

from buildgraph.commands._common import add


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    add(sub, common, name, help_text)


def run(ns: argparse.Namespace) -> int:
    from buildgraph.core.schema import schema_text  # the parser's tables: only for this command

    sys.stdout.write(schema_text())
    return 0
