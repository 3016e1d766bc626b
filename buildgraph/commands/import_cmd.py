"""`bg import [DOCKERFILE | dvc.yaml] [-o FILE]`: a Dockerfile, or a DVC pipeline, as a Buildfile.toml.

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
    p.add_argument(
        "dockerfile", nargs="?", default="Dockerfile", metavar="FILE", help="a Dockerfile, or a DVC dvc.yaml"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the Buildfile to FILE (e.g. Buildfile.toml)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def run(ns: argparse.Namespace) -> int:
    root = Path(ns.directory)
    source = root / ns.dockerfile
    if source.name.endswith((".yaml", ".yml")):  # dvc.yaml: no Dockerfile is named so
        text, warnings = convert_dvc(root, source, project_name(root))
    else:
        text, warnings = convert(source, project_name(root))
    for warning in warnings:
        sys.stderr.write(f"bg: warning: {warning}\n")
    if not ns.output:
        sys.stdout.write(text)
        return 0
    target = root / ns.output
    if target.exists() and not ns.force:
        raise UsageError(f"{ns.output} exists; not overwriting it", hint="pass --force, or -o another file")
    from buildgraph.uptodate import remove_all

    remove_all(root / ".bg")  # a new Buildfile: no up-to-date stamp vouches for the old one
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


def convert_dvc(root: Path, source: Path, project: str) -> tuple[str, list[str]]:
    """A DVC pipeline; its paths, params files and dvc.lock are relative to its own directory."""
    from buildgraph.importers.dvc import Workspace, import_dvc

    try:
        text = source.read_text(encoding="utf-8")
        base = source.parent.resolve().relative_to(root.resolve()).as_posix()
    except FileNotFoundError:
        raise UsageError(f"no such file: {source}") from None
    except ValueError:
        hint = "run bg -C in its directory"
        raise UsageError(f"{source} is outside the project {root}", hint=hint) from None
    workspace = Workspace(read=lambda rel: _read(root / rel), is_dir=lambda rel: _is_dir(root / rel))
    return import_dvc(text, file=source.name, project=project, base=base, workspace=workspace)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _is_dir(path: Path) -> bool | None:
    return path.is_dir() if path.exists() else None
