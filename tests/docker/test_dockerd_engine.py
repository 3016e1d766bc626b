"""buildgraph/dockerd/ against the real engine: the SDK-free GETs, one container policy seen
the same from the executor and from `bg shell`, reaping, and a null run that never imports
the SDK."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import bgcli
import pytest

from buildgraph.dockerd.api import EngineAPI
from buildgraph.dockerd.containers import HOST_LABEL, PID_LABEL, RUN_LABEL, reap_left_over
from buildgraph.dockerd.ping import daemon_problem
from buildgraph.dockerd.policy import run_policy
from buildgraph.executors.base import Job
from buildgraph.executors.docker import DockerExecutor


def api() -> EngineAPI:
    found = EngineAPI.available()
    if found is None:
        pytest.skip("DOCKER_HOST is not a unix socket: the SDK-free path is not used")
    return found


# ---------------------------------------------------------------- Engine API GETs
def test_the_daemon_answers_the_ping(client: Any) -> None:
    assert daemon_problem() is None and api().ping() is None


def test_image_labels_are_the_engines(client: Any, tiny_base: str) -> None:
    assert api().image_labels(tiny_base) == (client.images.get(tiny_base).labels or {})
    assert api().image_labels(f"bg/none/such:{uuid.uuid4().hex}") is None


def test_containers_with_a_label_are_listed_running_or_not(client: Any, tiny_base: str) -> None:
    label = f"org.buildgraph.test-{uuid.uuid4().hex[:12]}"
    container = client.containers.create(tiny_base, ["true"], labels={label: "x"})
    try:
        found = api().containers_with_label(label)
        assert [(c["Id"], c["Labels"][label]) for c in found] == [(container.id, "x")]
    finally:
        container.remove(force=True)
    assert api().containers_with_label(label) == []


# ---------------------------------------------------------------- one policy, two renderings
@pytest.mark.parametrize("gpus", [None, "all", 2, (0, 3)])
def test_sdk_arguments_and_docker_flags_make_the_same_container(
    client: Any, tiny_base: str, tmp_path: Path, gpus: Any
) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (bg shell needs it)")
    (tmp_path / "in").mkdir()
    policy = run_policy(
        user=f"{os.getuid()}:{os.getgid()}",
        workdir="/work",
        root=tmp_path,
        inputs=[("in", tmp_path / "in")],
        env=[("GREETING", "hi")],
        network=False,
        shm_size="64m",
        gpus=gpus,
        labels={"org.buildgraph.test": "policy"},
    )
    by_sdk = client.containers.create(tiny_base, ["true"], **policy.sdk_kwargs())
    made = subprocess.run(["docker", "create", *policy.cli_args(), tiny_base, "true"], capture_output=True)
    assert made.returncode == 0, made.stderr
    by_cli = client.containers.get(made.stdout.decode().strip())
    try:
        assert created(by_cli) == created(by_sdk)
    finally:
        by_sdk.remove(force=True)
        by_cli.remove(force=True)


def created(container: Any) -> dict[str, Any]:
    """What the engine recorded of a container's policy."""
    host, config = container.attrs["HostConfig"], container.attrs["Config"]
    mounts = sorted((m["Target"], m["Source"], bool(m.get("ReadOnly"))) for m in host.get("Mounts") or [])
    fields = ("CapDrop", "SecurityOpt", "NetworkMode", "ShmSize", "Tmpfs", "Init")
    gpus = [  # the CLI sends no device ids as null, the SDK as []: the same request
        {**r, "DeviceIDs": r.get("DeviceIDs") or [], "Options": r.get("Options") or {}}
        for r in host.get("DeviceRequests") or []
    ]
    return {
        "host": {name: host.get(name) for name in fields},
        "gpus": gpus,
        "mounts": mounts,
        "config": {name: config.get(name) for name in ("User", "WorkingDir", "Labels")},
        "env": sorted(config.get("Env") or []),  # the docker CLI sends them in no fixed order
    }


# ---------------------------------------------------------------- the executor and `bg shell`
LOOK_AROUND = (
    "id -u; id -g; pwd; echo HOME=$HOME GREETING=$GREETING; cat /proc/1/comm; ls /sys/class/net; "
    "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; df -k /dev/shm | tail -1 | awk '{print $2}'; "
    "awk '$5 ~ \"^/(work|tmp/home)\" {print $5, substr($6, 1, 2)}' /proc/self/mountinfo | sort; "
    "touch data/new 2>/dev/null || echo data is read-only"
)


def test_the_shell_opens_the_container_the_executor_runs(client: Any, tiny_base: str, tmp_path: Path) -> None:
    """The same view from inside: user, HOME, init, network, capabilities, shm, mounts."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (bg shell needs it)")
    root = tmp_path / "project"
    (root / "data/sub").mkdir(parents=True)
    (root / "data/sub/x.txt").write_text("x\n")
    (root / "Buildfile.toml").write_text(
        f'[project]\nname = "shellpolicy"\n\n[stages.img]\nfrom = "{tiny_base}"\n\n'
        '[stages.use]\nimage = "img"\ncommand = "true"\ninputs = ["data/", "data/sub/x.txt"]\n'
        'env = { GREETING = "hi" }\nshm_size = "64m"\noutputs = ["o.txt"]\n'
    )
    shell = subprocess.run(
        [sys.executable, "-m", "buildgraph", "-C", str(root), "shell", "--image", tiny_base, "use"]
        + ["--", "sh", "-c", LOOK_AROUND],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,  # not a TTY: `docker run -i`, plain "\n" line ends
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    job = Job(
        stage="use",
        run_id=f"policy-{uuid.uuid4().hex[:8]}",
        command=LOOK_AROUND,
        inputs=(("data", root / "data"), ("data/sub/x.txt", root / "data/sub/x.txt")),
        outputs=(),
        scratch=scratch,
        log_path=tmp_path / "use.log",
        env=(("GREETING", "hi"),),
        image=tiny_base,
        shm_size="64m",
    )
    result = DockerExecutor(client=client).run(job)
    assert result.ok, result.log_path.read_text()
    seen = result.log_path.read_text().splitlines()
    assert shell.stdout.splitlines() == seen
    assert seen[:4] == [str(os.getuid()), str(os.getgid()), "/work", "HOME=/tmp/home GREETING=hi"]
    assert seen[4:6] == ["docker-init", "lo"] and seen[-1] == "data is read-only"


# ---------------------------------------------------------------- reaping
def test_a_dead_bgs_container_is_reaped(client: Any, tiny_base: str) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    labels = {
        RUN_LABEL: f"dead-{uuid.uuid4().hex[:8]}",
        PID_LABEL: str(gone.pid),
        HOST_LABEL: socket.gethostname(),
    }
    container = client.containers.create(tiny_base, ["sleep", "60"], labels=labels)
    mine = client.containers.create(
        tiny_base, ["sleep", "60"], labels={**labels, PID_LABEL: str(os.getpid())}
    )
    try:
        reap_left_over(lambda: client)  # (a `bg run` elsewhere on this engine may reap it first)
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": RUN_LABEL})}
        assert container.id not in remaining and mine.id in remaining
    finally:
        mine.remove(force=True)


# ---------------------------------------------------------------- the null run
NULL_RUN = """
import sys
from buildgraph.cli import main
status = main(["-C", sys.argv[1], "run", "--executor", "docker"])
print("SDK imported" if "docker" in sys.modules else "no SDK", status, file=sys.stderr)
"""


def test_a_null_run_under_the_docker_executor_does_not_import_the_sdk(
    client: Any, tiny_base: str, tmp_path: Path
) -> None:
    (tmp_path / "Buildfile.toml").write_text(
        f'[project]\nname = "nullrun"\n\n[stages.img]\nfrom = "{tiny_base}"\n\n'
        '[stages.use]\nimage = "img"\ncommand = "echo ran > o.txt"\noutputs = ["o.txt"]\n'
    )
    bgcli.bg(tmp_path, "run", "--executor", "docker", rc=0)
    reap_left_over(lambda: client)  # another test's killed bg would make the null run reap (SDK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BG_")}
    again = subprocess.run(
        [sys.executable, "-c", NULL_RUN, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert again.stderr.splitlines()[-1] == "no SDK 0", again.stdout + again.stderr
