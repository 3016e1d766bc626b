"""A SIGKILLed `bg` leaves no container behind: its guardian removes them at once, whether the
container was running or only created, and the next `bg run` redoes exactly what was cut off."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg, finished

from buildgraph.dockerd.containers import PID_LABEL, STAGE_LABEL

BUILDFILE = """
[project]
name = "bgkilled"
executor = "docker"

[params]
nap = 0

[stages.base]
from = { debian = "bookworm" }

[stages.first]
image = "base"
command = "echo first > first.txt"
outputs = ["first.txt"]

[stages.slow]
image = "base"
command = "sleep ${params.nap}; cat first.txt > slow.txt"
inputs = ["first.txt"]
outputs = ["slow.txt"]
"""


# The guardian removes containers the moment bg dies (well under the 5 s here); the bound
# is wider so a loaded engine cannot fail CI. The proof that *the guardian* did it, not a later
# reap, is the next run's output, which must not mention a container left by a killed bg.
GONE_WITHIN = 30.0


@pytest.fixture
def project(tmp_path: Path, tiny_base: str) -> Path:
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE)
    return tmp_path


def spawn(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "buildgraph", "-C", str(root), "run", "-j", "1", *args]
    with open(root / "bg.log", "wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )


def statuses(root: Path) -> tuple[dict[str, str], str]:
    out = bg(root, "run", "--json", rc=0)
    return finished(out), out.stdout + out.stderr


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def owned_by(client: Any) -> Iterator[Callable[[int], list[Any]]]:
    """`owned_by(pid)`: the containers, running or not, a bg with that pid started; all removed at the end."""
    import docker.errors

    seen: list[int] = []

    def find(pid: int) -> list[Any]:
        seen.append(pid)
        # sparse: no inspect per container, which would race with the guardian removing it
        return list(client.containers.list(all=True, sparse=True, filters={"label": f"{PID_LABEL}={pid}"}))

    yield find
    for pid in set(seen):  # a failed test must not leave a `sleep 300` behind
        for container in find(pid):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def no_guardian_file(pid: int) -> bool:
    return not glob.glob(os.path.join(tempfile.gettempdir(), f"bg-guard-{pid}-*"))


def test_a_sigkilled_bg_leaves_no_running_container_and_the_next_run_redoes_that_stage(
    project: Path, client: Any, owned_by: Callable[[int], list[Any]]
) -> None:
    bg = spawn(project, "--param", "nap=300")
    try:

        def slow_running() -> bool:
            assert bg.poll() is None, (project / "bg.log").read_text()
            filters = {"label": [f"{PID_LABEL}={bg.pid}", f"{STAGE_LABEL}=slow"], "status": "running"}
            return bool(client.containers.list(sparse=True, filters=filters))

        wait_for(slow_running, 300, "the slow stage's container to run")
    finally:
        bg.send_signal(signal.SIGKILL)
        bg.wait(timeout=30)
    wait_for(lambda: not owned_by(bg.pid), GONE_WITHIN, "the killed bg's container to go")
    wait_for(lambda: no_guardian_file(bg.pid), GONE_WITHIN, "the guardian to remove its list")

    done, output = statuses(project)  # nap back to 0: the same stage, quick now
    assert done == {"base": "skipped", "first": "skipped", "slow": "done"}
    assert "left by a bg that was killed" not in output  # the guardian did it, not the next run's reap
    assert (project / "slow.txt").read_text() == "first\n"


def test_a_bg_killed_before_its_container_started_leaves_nothing(
    project: Path, owned_by: Callable[[int], list[Any]]
) -> None:
    bg = spawn(project, env={"BG_CRASH_AT": "container-created"})
    assert bg.wait(timeout=300) == -signal.SIGKILL, (project / "bg.log").read_text()
    wait_for(lambda: not owned_by(bg.pid), GONE_WITHIN, "the created container to go")
    wait_for(lambda: no_guardian_file(bg.pid), GONE_WITHIN, "the guardian to remove its list")

    done, output = statuses(project)
    assert done == {"base": "skipped", "first": "done", "slow": "done"}
    assert "left by a bg that was killed" not in output
