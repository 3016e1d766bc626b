"""`bg import` refuses what is not a Dockerfile Docker would build: exit 2, naming the line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        # YAML given as a Dockerfile (a `.yaml`/`.yml` name is read as a DVC pipeline instead)
        ("Dockerfile.dev", "stages:\n  prepare:\n    cmd: x\n", "Dockerfile.dev:1: unknown instruction"),
        ("Dockerfile", "", "Dockerfile:1: file with no instructions"),
        ("Dockerfile", "# nothing\n", "Dockerfile:1: file with no instructions"),
        ("Dockerfile", "ARG V=1\n", "Dockerfile:1: no FROM"),
        ("Dockerfile", "FROM debian:12\nENV PATH\n", "Dockerfile:2: ENV must have two arguments"),
    ],
)
def test_bg_import_refuses_with_a_located_error(project: Project, name: str, text: str, where: str) -> None:
    project.write(name, text)
    done = project.bg("import", name, check=2)
    assert done.err.startswith(f"bg: error: {where}"), done.err
    assert done.out == ""
