"""A copied file's mode is part of the image: `chmod +x` rebuilds the image stage that copies it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg, finished

BUILDFILE = """
[project]
name = "{project}"
executor = "docker"

[stages.base]
from = {{ debian = "bookworm" }}

[stages.tool]
from = "base"
copy = [{{ src = ["tool.sh"], dest = "/opt/app/" }}]

[stages.use]
image = "tool"
command = "if [ -x /opt/app/tool.sh ]; then /opt/app/tool.sh; else echo not executable; fi > out.txt"
outputs = ["out.txt"]
"""


@pytest.fixture
def project(tmp_path: Path, client: Any, tiny_base: str) -> Iterator[Path]:
    name = f"modes{uuid.uuid4().hex[:8]}"  # no earlier session has built these images
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.format(project=name))
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho tool ran\n")
    os.chmod(tmp_path / "tool.sh", 0o644)
    yield tmp_path
    built = client.images.list(filters={"label": f"org.buildgraph.project={name}"})
    for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):  # children first
        client.images.remove(image.id, force=True)


def test_chmod_x_of_a_copied_file_rebuilds_the_image(project: Path, client: Any) -> None:
    assert finished(bg(project, "run", "use", "--json"), rc=0)["tool"] == "done"
    assert (project / "out.txt").read_text() == "not executable\n"
    os.chmod(project / "tool.sh", 0o755)

    status = {d["stage"]: d["action"] for d in json.loads(bg(project, "status", "--json").stdout)}
    assert (status["base"], status["tool"], status["use"]) == ("skip", "build", "run")
    assert finished(bg(project, "run", "tool", "--json"), rc=0) == {"base": "skipped", "tool": "done"}
    tag = json.loads((project / "Buildfile.lock").read_text())["stages"]["tool"]["image"]
    mode = client.containers.run(tag, ["stat", "-c", "%a", "/opt/app/tool.sh"], remove=True)
    assert bytes(mode).decode().strip() == "755"

    assert finished(bg(project, "run", "use", "--json"), rc=0)["use"] == "done"
    assert (project / "out.txt").read_text() == "tool ran\n"
