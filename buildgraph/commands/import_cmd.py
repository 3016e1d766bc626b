"""`bg import [DOCKERFILE] [-o FILE]`: convert a Dockerfile into a Buildfile.toml.

The Buildfile goes to standard output (or FILE, never overwritten without --force);
every instruction that could not be mapped is a warning on standard error.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from buildgraph.commands._common import add
from buildgraph.errors import UsageError


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("dockerfile", nargs="?", default="Dockerfile", metavar="DOCKERFILE")
    p.add_argument("-o", "--output", metavar="FILE", help="write the Buildfile to FILE (e.g. Buildfile.toml)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def run(ns: argparse.Namespace) -> int:
    root = Path(ns.directory)
    source = root / ns.dockerfile
    text, warnings = convert(source, project_name(root))
    for warning in warnings:
        sys.stderr.write(f"bg: warning: {warning}\n")
    if not ns.output:
        sys.stdout.write(text)
        return 0
    target = root / ns.output
    if target.exists() and not ns.force:
        raise UsageError(f"{ns.output} exists; not overwriting it", hint="pass --force, or -o another file")
    target.write_text(text, encoding="utf-8")
    sys.stderr.write(f"bg: wrote {ns.output} ({len(warnings)} warning{'s' * (len(warnings) != 1)})\n")
    return 0


def convert(source: Path, project: str) -> tuple[str, list[str]]:
    from buildgraph.images.importer import import_dockerfile

    try:
        dockerfile = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such Dockerfile: {source}") from None
    return import_dockerfile(dockerfile, file=source.name, project=project)


def project_name(root: Path) -> str:
    """The directory's name, made a valid project name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.resolve().name).strip("-._")
    return name if name[:1].isalnum() else "project"
