"""`bg init`: scaffold a commented Buildfile.toml (from ./Dockerfile when there is one).

Never overwrites an existing Buildfile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from buildgraph.commands._common import add
from buildgraph.errors import UsageError

TEMPLATE = """\
# Buildfile.toml: the stages of this project, for `bg run`. See docs/buildfile.md.
# An image stage has `from` (a Docker image); a run stage has `command` (run in an
# image stage's image, or on the host without `image`), reading declared inputs and
# writing declared outputs. `bg status` says what would run and why.

[project]
name = "{name}"

# [args]                # build args, used as ${{NAME}}; override with --arg NAME=VALUE
# PYTHON = "3.12"

[params]                # run parameters, used as ${{params.name}}; override with --param name=value
greeting = "hello"

# An image built offline from Debian packages (no registry needed); or a registry
# image such as from = "python:3.12-slim".
[stages.env]
from = {{ debian = "bookworm", packages = ["python3"] }}
# run = ["pip install --no-cache-dir numpy"]
# copy = [{{ src = ["src/"], dest = "/opt/app/src/" }}]
user = "1000:1000"

# A run stage: its command runs in the image of `env`, as you, without network.
[stages.hello]
image = "env"
command = "python3 -c 'print(\\"${{params.greeting}}\\")' > hello.txt"
outputs = ["hello.txt"]
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    add(sub, common, name, help_text, "Write a commented Buildfile.toml; imports ./Dockerfile when present.")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.import_cmd import convert, project_name

    root = Path(ns.directory)
    target = root / ns.file
    if target.exists():
        raise UsageError(f"{ns.file} already exists; not overwriting it", hint="edit it, or remove it first")
    dockerfile = root / "Dockerfile"
    if dockerfile.is_file():
        text, warnings = convert(dockerfile, project_name(root))
        for warning in warnings:
            sys.stderr.write(f"bg: warning: {warning}\n")
    else:
        text = TEMPLATE.format(name=project_name(root))
    target.write_text(text, encoding="utf-8")
    origin = " from Dockerfile" if dockerfile.is_file() else ""
    sys.stderr.write(f"bg: wrote {ns.file}{origin}; `bg status` shows what would run\n")
    return 0
