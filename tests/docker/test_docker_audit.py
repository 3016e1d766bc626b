"""`bg audit` of stages that ran in containers: rerun in the very image recorded, or say it is gone;
and when the audit runs elsewhere than the recording, the environments are compared."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg


@pytest.fixture
def project(tmp_path: Path, tiny_base: str) -> Path:
    marker = uuid.uuid4().hex  # a fresh image each test: the engine keeps images between runs
    (tmp_path / "Buildfile.toml").write_text(
        f'[project]\nname = "audit{marker[:8]}"\nexecutor = "docker"\n\n'
        f'[stages.app]\nfrom = "{tiny_base}"\nrun = ["echo {marker} > /marker"]\n\n'
        '[stages.out]\nimage = "app"\ncommand = "cat /marker > out.txt"\noutputs = ["out.txt"]\n'
    )
    bg(tmp_path, "run", "out", rc=0)
    return tmp_path


def audited(root: Path, *args: str, rc: int) -> dict[str, Any]:
    return json.loads(bg(root, "audit", "--json", *args, rc=rc).stdout)


def test_a_container_stage_is_rerun_in_its_recorded_image(project: Path) -> None:
    found = audited(project, rc=0)
    (stage,) = found["stages"]
    assert (stage["stage"], stage["executor"], stage["result"]) == ("out", "docker", "reproduced")
    recorded = stage["environment"]["recorded"]
    assert recorded["image_id"].startswith("sha256:")
    assert stage["environment"]["audited"]["image_id"] == recorded["image_id"]  # the very same image
    assert "environment_differs" not in stage


def test_an_image_gone_from_the_engine_is_said_so(project: Path, client: Any) -> None:
    tag = json.loads((project / "Buildfile.lock").read_text())["stages"]["app"]["image"]
    client.images.remove(tag, force=True)
    done = bg(project, "audit", rc=3)
    assert f"the image it was recorded in ({tag}) is no longer on this Docker engine" in done.stdout
    assert "bg run app" in done.stdout


def test_an_audit_elsewhere_says_how_the_environments_differ(project: Path) -> None:
    """Recorded in the image, audited on the host: the output reproduces, and the audit says the
    result was made elsewhere (a difference could have been the environment's)."""
    text = (project / "Buildfile.toml").read_text().replace("cat /marker > out.txt", "echo same > out.txt")
    (project / "Buildfile.toml").write_text(text)
    bg(project, "run", "out", rc=0)
    found = audited(project, "--executor", "local", rc=0)
    (stage,) = found["stages"]
    assert stage["executor"] == "local" and stage["result"] == "reproduced"
    assert "executor" in stage["environment_differs"] and "in image sha256:" in stage["environment_differs"]
    assert "on the host (local)" in stage["environment_differs"]
