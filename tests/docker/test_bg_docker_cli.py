"""`bg` itself with the docker executor: images keyed by content, runs as the invoking user,
secrets that never leak, and the executor choice (auto / docker without a daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import bgcli
import pytest

CANARY = "canary-7f3a-do-not-leak"
BUILDFILE = """
[project]
name = "bgdockercli"
executor = "auto"

[stages.base]
from = { debian = "bookworm" }

[stages.tool]
from = "base"
run = ["echo built > /opt/marker"]

[stages.use]
image = "tool"
command = '''cat /opt/marker > out.txt && id -u >> out.txt \\
  && sha256sum < /run/secrets/TOKEN | cut -c1-64 >> out.txt'''
inputs = ["in.txt"]
outputs = ["out.txt"]
secrets = ["TOKEN"]
"""


def bg(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return bgcli.bg(root, *args, env={"TOKEN": CANARY, **(env or {})})


events = bgcli.finished



@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, client: Any, tiny_base: str) -> Path:
    root = tmp_path_factory.mktemp("bgdocker")
    (root / "Buildfile.toml").write_text(BUILDFILE)
    (root / "in.txt").write_text("hello\n")
    first = bg(root, "run", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    # images are keyed by content: an earlier session may have built them already
    assert events(first)["use"] == "done" and set(events(first).values()) <= {"done", "skipped"}
    return root


def test_run_stage_runs_in_its_image_as_the_invoking_user(project: Path) -> None:
    import hashlib

    out = project / "out.txt"
    marker, uid, secret_digest = out.read_text().split()
    assert marker == "built"
    assert int(uid) == os.getuid()
    assert out.stat().st_uid == os.getuid() and out.stat().st_gid == os.getgid()
    assert secret_digest == hashlib.sha256(CANARY.encode()).hexdigest()


def test_second_run_does_nothing_and_leaves_no_container(project: Path, client: Any) -> None:
    again = bg(project, "run", "--json")
    assert again.returncode == 0
    assert set(events(again).values()) == {"skipped"}, "nothing ran, nothing was even restored"
    # other projects' tests may run containers meanwhile: look at this project's stage only
    assert client.containers.list(all=True, filters={"label": "org.buildgraph.stage=use"}) == []


def test_secret_is_nowhere_bg_writes(project: Path, client: Any) -> None:
    for path in [project / "Buildfile.lock", *(project / ".bg").rglob("*")]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    for image in client.images.list(filters={"label": "org.buildgraph.project=bgdockercli"}):
        assert CANARY not in json.dumps(image.attrs)
        assert CANARY not in json.dumps(image.history())


def test_editing_an_image_stage_rebuilds_it_and_reruns_its_users_not_its_base(project: Path) -> None:
    buildfile = project / "Buildfile.toml"
    original = buildfile.read_text()
    try:
        fresh = f"rebuilt-{uuid.uuid4().hex[:8]}"  # an image no earlier session has built
        buildfile.write_text(original.replace("echo built", f"echo {fresh}"))
        status = bg(project, "status", "--json")
        actions = {
            d["stage"]: (d["action"], [r["kind"] for r in d["reasons"]]) for d in json.loads(status.stdout)
        }
        assert actions["base"][0] == "skip"
        assert actions["tool"] == ("build", ["instructions-changed"])
        assert actions["use"] == ("run", ["image-changed"])
        rerun = bg(project, "run", "--json")
        assert events(rerun)["base"] == "skipped" and events(rerun)["use"] == "done"
        assert events(rerun)["tool"] == "done"
        assert (project / "out.txt").read_text().startswith(fresh)
    finally:
        buildfile.write_text(original)
        back = bg(project, "run")  # restored from the cache: the other tests see the first run's state
        assert back.returncode == 0, back.stderr


def test_docker_executor_without_a_daemon_exits_3(project: Path) -> None:
    out = bg(project, "run", "--executor", "docker", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert out.returncode == 3
    assert out.stderr.startswith(
        "bg: error: the docker executor needs Docker: no Docker socket at /nonexistent/docker.sock"
    )
    assert "bg: hint:" in out.stderr


def test_auto_without_a_daemon_stops_instead_of_moving_to_the_host(tmp_path: Path) -> None:
    """`auto` depends on the Buildfile alone: a key that flipped between image and host with
    the daemon's mood would rerun every stage (the main job's `bg status` once said so)."""
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.replace("cat /opt/marker", "echo host"))
    (tmp_path / "in.txt").write_text("x\n")
    out = bg(tmp_path, "run", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert out.returncode == 3, out.stderr
    assert "(executor auto), which needs Docker: no Docker socket at /nonexistent/docker.sock" in out.stderr
    assert not (tmp_path / "out.txt").exists()
    host = bg(tmp_path, "run", "--executor", "local", "use", env={"DOCKER_HOST": "unix:///nowhere.sock"})
    assert host.returncode == 0, host.stderr  # on the host, asked for explicitly: no image needed
    assert (tmp_path / "out.txt").read_text().startswith("host")
