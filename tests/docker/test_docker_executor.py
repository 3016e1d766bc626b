"""The docker executor on a real engine: user, mounts, isolation, clean-up, reaping, secrets."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from buildgraph.dockerd.containers import HOST_LABEL, PID_LABEL, RUN_LABEL, reap
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.base import Cancel, Job, Result
from buildgraph.executors.docker import DockerExecutor

_ids = itertools.count()
CANARY = "canary-7f3a9c1e5b"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "project/data").mkdir(parents=True)
    (tmp_path / "project/data/x.txt").write_text("input bytes\n")
    (tmp_path / "project/params.json").write_text("{}\n")
    return tmp_path / "project"


def make_job(tmp_path: Path, project: Path, image: str, command: str, **fields: Any) -> Job:
    run_id = f"test-{os.getpid()}-{next(_ids)}"
    scratch = tmp_path / f"scratch-{run_id}"
    scratch.mkdir()
    defaults: dict[str, Any] = dict(
        stage="t",
        run_id=run_id,
        command=command,
        scratch=scratch,
        log_path=scratch.parent / f"{run_id}.log",
        inputs=(("data", project / "data"), ("params.json", project / "params.json")),
        outputs=("out/result.txt",),
        image=image,
    )
    return Job(**{**defaults, **fields})


@pytest.fixture(autouse=True)
def shared_client(client: Any) -> None:
    global CLIENT
    CLIENT = client


CLIENT: Any = None


def executor(user: str | None = None) -> DockerExecutor:
    return DockerExecutor(client=CLIENT, user=user)


def run(job: Job, runner: DockerExecutor | None = None, **kw: Any) -> tuple[Result, list[str]]:
    lines: list[str] = []
    result = (runner or executor()).run(job, on_line=lines.append, **kw)
    return result, lines


def test_runs_as_the_invoking_user_with_inputs_and_outputs(
    tmp_path: Path, project: Path, tiny_base: str
) -> None:
    command = "id -u; id -g; cat data/x.txt; mkdir -p out && cp data/x.txt out/result.txt; pwd; echo $HOME"
    result, lines = run(make_job(tmp_path, project, tiny_base, command))
    assert result.ok, lines
    assert lines == [str(os.getuid()), str(os.getgid()), "input bytes", "/work", "/tmp/home"]
    output = result.output_root / "out/result.txt"
    assert output.read_text() == "input bytes\n"
    assert (output.stat().st_uid, output.stat().st_gid) == (os.getuid(), os.getgid())
    assert result.log_path.read_text().splitlines() == lines
    assert sorted(p.name for p in result.output_root.iterdir()) == ["out"]  # input mount points removed


def test_another_uid_owns_its_outputs_on_the_host(tmp_path: Path, project: Path, tiny_base: str) -> None:
    if os.getuid() != 0:
        pytest.skip("running as another uid needs root to hand it the output directory")
    job = make_job(tmp_path, project, tiny_base, "id -u; touch $HOME/ok && echo > out/result.txt")
    result, lines = run(job, executor(user="1234:1234"))
    assert result.ok, lines
    assert lines == ["1234"]
    st = (result.output_root / "out/result.txt").stat()
    assert (st.st_uid, st.st_gid) == (1234, 1234)


def test_inputs_are_read_only(tmp_path: Path, project: Path, tiny_base: str) -> None:
    command = "echo x > data/new.txt || echo denied; echo y >> params.json || echo denied2"
    result, lines = run(make_job(tmp_path, project, tiny_base, command))
    assert result.ok
    assert "denied" in lines and "denied2" in lines
    assert sorted(os.listdir(project / "data")) == ["x.txt"]
    assert (project / "params.json").read_text() == "{}\n"


def test_no_network_unless_asked_and_no_capabilities(tmp_path: Path, project: Path, tiny_base: str) -> None:
    command = "ls /sys/class/net | tr '\\n' ' '; echo; grep CapEff /proc/self/status"
    isolated, lines = run(make_job(tmp_path, project, tiny_base, command))
    assert isolated.ok and lines[0].split() == ["lo"]
    assert lines[1].split() == ["CapEff:", "0000000000000000"]
    networked, lines = run(make_job(tmp_path, project, tiny_base, command, network=True))
    assert networked.ok and "eth0" in lines[0].split()


def test_container_removed_after_success_failure_and_exception(
    tmp_path: Path, project: Path, tiny_base: str, containers_of: Any
) -> None:
    ok = make_job(tmp_path, project, tiny_base, "echo fine")
    failing = make_job(tmp_path, project, tiny_base, "echo oops; exit 3")
    raising = make_job(tmp_path, project, tiny_base, "echo one; sleep 20")
    assert run(ok)[0].ok
    result, lines = run(failing)
    assert (result.exit_status, result.ok, lines) == (3, False, ["oops"])

    def explode(line: str) -> None:
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError):
        executor().run(raising, on_line=explode)
    assert [containers_of(j.run_id) for j in (ok, failing, raising)] == [[], [], []]


def test_timeout_stops_and_removes_the_container(
    tmp_path: Path, project: Path, tiny_base: str, containers_of: Any
) -> None:
    job = make_job(tmp_path, project, tiny_base, "echo started; sleep 30", timeout=1.0)
    start = time.monotonic()
    result, lines = run(job)
    assert time.monotonic() - start < 15
    assert not result.ok and result.error == "timed out after 1s" and lines == ["started"]
    assert containers_of(job.run_id) == []


def test_cancel_stops_and_removes_the_container(
    tmp_path: Path, project: Path, tiny_base: str, containers_of: Any
) -> None:
    job = make_job(tmp_path, project, tiny_base, "echo started; sleep 30")
    cancel = Cancel()
    threading.Timer(1.0, cancel.set).start()
    start = time.monotonic()
    result, _ = run(job, cancel=cancel)
    assert time.monotonic() - start < 15
    assert result.interrupted and not result.ok
    assert containers_of(job.run_id) == []


def test_gpus_without_a_gpu_runtime_is_a_clear_error(
    tmp_path: Path, project: Path, tiny_base: str, client: Any, containers_of: Any
) -> None:
    if "nvidia" in (client.info().get("Runtimes") or {}):
        pytest.skip("this engine has a GPU runtime")
    job = make_job(tmp_path, project, tiny_base, "true", stage="train", gpus="all")
    with pytest.raises(EnvironmentProblem) as info:
        run(job)
    assert info.value.message == "stage 'train' asks for GPUs but this Docker engine has no GPU runtime"
    assert "nvidia-container-toolkit" in info.value.hint and "gpus = 0" in info.value.hint
    assert containers_of(job.run_id) == []


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_reap_removes_only_containers_of_dead_runs(client: Any, tiny_base: str) -> None:
    host = socket.gethostname()

    def left_over(run_id: str, pid: int) -> Any:
        labels = {RUN_LABEL: run_id, PID_LABEL: str(pid), HOST_LABEL: host}
        return client.containers.create(tiny_base, ["sleep", "60"], labels=labels)

    dead = left_over("dead-run", dead_pid())
    alive = left_over("other-bg", os.getpid())
    live = left_over("live-run", dead_pid())
    try:
        removed = reap(client, live_run_ids=["live-run"])
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": RUN_LABEL})}
        assert dead.id in removed and dead.id not in remaining
        assert {alive.id, live.id} <= remaining and alive.id not in removed
    finally:
        for container in (alive, live):
            container.remove(force=True)


def test_secret_is_mounted_but_never_in_env_labels_or_logs(
    tmp_path: Path, project: Path, tiny_base: str, client: Any
) -> None:
    secret = tmp_path / "token"
    secret.write_text(CANARY)
    command = "sha256sum < /run/secrets/token; sleep 1; echo > out/result.txt"  # the value is not in the job
    job = make_job(tmp_path, project, tiny_base, command, secrets=(("token", secret),))
    seen: list[str] = []

    def inspect_while_running(line: str) -> None:
        seen.append(line)
        for container in client.containers.list(filters={"label": f"{RUN_LABEL}={job.run_id}"}):
            seen.append(json.dumps(container.attrs))

    result = executor().run(job, on_line=inspect_while_running)
    assert result.ok and seen[0] == hashlib.sha256(CANARY.encode()).hexdigest() + "  -"
    assert len(seen) == 2 and '"Env"' in seen[1]  # the container's config was inspected
    assert not [text for text in seen if CANARY in text]
    assert CANARY not in result.log_path.read_text()


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        (None, None),
        (0, None),
        ("all", [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
        (2, [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
        (
            (0, 3),
            [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "3"], "Capabilities": [["gpu"]], "Options": {}}],
        ),
    ],
)
def test_gpu_requests_sent_to_the_engine(gpus: Any, expected: Any) -> None:
    """What `gpus` becomes in the API call (no GPU engine here to run it on)."""
    from buildgraph.dockerd.policy import device_requests as _device_requests

    requests = _device_requests(gpus)
    assert (None if requests is None else [dict(r) for r in requests]) == expected
