"""`bg dockerfile` keeps the Buildfile's args as ARGs: `docker build --build-arg` works on the export."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg

BUILDFILE = """
[project]
name = "exportargs"

[args]
BASE = "{base}"
VERSION = "1.2.3"

[stages.base]
from = "${{BASE}}"

[stages.deps]
from = "base"
run = ["echo \\"building ${{VERSION}}\\" > /version.txt"]

[stages.code]
from = "deps"
run = "echo 'code ${{VERSION}}' >> /version.txt"
labels = {{ "org.opencontainers.image.version" = "${{VERSION}}" }}
"""


@pytest.fixture
def exported(tmp_path: Path, tiny_base: str) -> Path:
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.format(base=tiny_base))
    bg(tmp_path, "dockerfile", "code", "-o", "Dockerfile", rc=0)
    return tmp_path


@pytest.fixture
def tags(client: Any) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for tag in made:
        client.images.remove(tag, force=True)


def built_version(client: Any, root: Path, tag: str, **build_args: str) -> tuple[str, str]:
    """/version.txt and the version label of the exported Dockerfile built by the classic builder."""
    image, _ = client.images.build(path=str(root), tag=tag, buildargs=build_args, rm=True, forcerm=True)
    out = client.containers.run(image.id, ["cat", "/version.txt"], remove=True)
    return bytes(out).decode(), image.labels["org.opencontainers.image.version"]


def test_exported_dockerfile_declares_the_args_and_refers_to_them(exported: Path, tiny_base: str) -> None:
    lines = (exported / "Dockerfile").read_text().splitlines()
    assert f"ARG BASE={tiny_base}" in lines[: lines.index("FROM ${BASE} AS base")]
    assert "ARG VERSION=1.2.3" in lines
    assert 'RUN echo "building ${VERSION}" > /version.txt' in lines
    assert "1.2.3" not in "\n".join(line for line in lines if not line.startswith("ARG "))


def test_build_arg_overrides_the_buildfile_value(exported: Path, client: Any, tags: list[str]) -> None:
    tag = f"bgtest/export-{uuid.uuid4().hex[:8]}"
    tags += [f"{tag}:default", f"{tag}:override"]
    assert built_version(client, exported, tags[0]) == ("building 1.2.3\ncode 1.2.3\n", "1.2.3")
    assert built_version(client, exported, tags[1], VERSION="9.9") == ("building 9.9\ncode 9.9\n", "9.9")


def test_bg_import_of_the_export_round_trips(exported: Path) -> None:
    imported = bg(exported, "import", "Dockerfile", "-o", "Imported.toml", rc=0)
    assert "bg: warning" not in imported.stderr and "(0 warnings)" in imported.stderr
    again = bg(exported, "-f", "Imported.toml", "dockerfile", "code", rc=0).stdout
    # the same Dockerfile but for its header, which names the project
    assert again.splitlines()[1:] == (exported / "Dockerfile").read_text().splitlines()[1:]
