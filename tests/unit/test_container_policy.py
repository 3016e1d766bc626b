"""One container policy (buildgraph/dockerd/policy.py) for the docker executor and `bg shell`:
for the same stage the two build the same `Policy`, only their labels differ."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buildgraph.commands.shell_cmd import container_policy, shell_argv
from buildgraph.core.spec import ImageRef, ImageStage, RunStage
from buildgraph.dockerd.containers import PID_LABEL, RUN_LABEL, SHELL_LABEL, STAGE_LABEL
from buildgraph.dockerd.policy import HOME, Bind, Policy
from buildgraph.executors.base import Job
from buildgraph.executors.docker import job_policy

ME = f"{os.getuid()}:{os.getgid()}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data/sub").mkdir(parents=True)
    (tmp_path / "data/sub/x.txt").write_text("x\n")
    (tmp_path / "params.json").write_text("{}\n")
    return tmp_path.resolve()  # mounts name resolved host paths


def stage(**fields: Any) -> RunStage:
    defaults: dict[str, Any] = dict(
        inputs=("params.json", "data", "data/sub/x.txt"),  # the last is visible through `data`
        env=(("GREETING", "hi"), ("HOME", "/root")),
        network=False,
        shm_size="2g",
        gpus=(0, 3),
    )
    return RunStage("train", "python3 train.py", image="img", **{**defaults, **fields})


def job_of(run: RunStage, root: Path, scratch: Path) -> Job:
    """The job the engine makes of `run` (less the GPU pool's CUDA_VISIBLE_DEVICES)."""
    return Job(
        stage=run.name,
        run_id="run-1",
        command=run.command,
        inputs=tuple((path, root / path) for path in run.inputs),
        outputs=(),
        scratch=scratch,
        log_path=scratch / "log",
        env=run.env,
        gpus=run.gpus,
        network=run.network,
        shm_size=run.shm_size,
    )


@pytest.mark.parametrize(
    "fields",
    [{}, {"gpus": "all"}, {"gpus": 2}, {"gpus": None, "network": True, "shm_size": ""}, {"env": ()}],
)
def test_the_executor_and_the_shell_build_the_same_policy(root: Path, fields: dict[str, Any]) -> None:
    run, out = stage(**fields), root / ".bg/shell/train"
    executors = job_policy(job_of(run, root, out), out, ME)
    shells = container_policy(root, run, out, as_root=False)
    assert replace(executors, labels=()) == replace(shells, labels=())
    assert dict(executors.labels).keys() == {RUN_LABEL, PID_LABEL, STAGE_LABEL, "org.buildgraph.host"}
    assert shells.labels == ((SHELL_LABEL, "1"),)


def test_the_policy_of_a_run_stage(root: Path) -> None:
    out = root / "scratch/out"
    policy = container_policy(root, stage(), out, as_root=False)
    uid, gid = ME.split(":")
    assert policy == Policy(
        user=ME,
        workdir="/work",
        env=(("GREETING", "hi"), ("HOME", HOME)),  # HOME is the container user's tmpfs, always
        binds=(
            Bind("/work", str(out), read_only=False),
            Bind("/work/data", str(root / "data")),
            Bind("/work/params.json", str(root / "params.json")),
        ),
        tmpfs=((HOME, f"rw,exec,mode=0700,uid={uid},gid={gid}"),),
        confined=True,
        network=False,
        shm_size="2g",
        gpus=(0, 3),
        labels=((SHELL_LABEL, "1"),),
    )


def test_secrets_are_the_executors_alone(root: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret")
    run, out = stage(), root / "out"
    job = replace(job_of(run, root, out), secrets=(("TOKEN", token),))
    assert job_policy(job, out, ME).binds[-1] == Bind("/run/secrets/TOKEN", str(token))
    assert not [b for b in container_policy(root, run, out, as_root=False).binds if "secrets" in b.target]


def test_a_shell_as_root_keeps_the_images_user_and_home(root: Path) -> None:
    policy = container_policy(root, stage(), root / "out", as_root=True)
    assert (policy.user, policy.tmpfs) == ("", ())
    assert policy.env == (("GREETING", "hi"), ("HOME", "/root")) and policy.confined


def test_an_image_stage_shell_is_the_image_as_the_user(root: Path) -> None:
    image = ImageStage("img", ImageRef("debian"))
    assert container_policy(root, image, root / "out", as_root=True) == Policy(labels=((SHELL_LABEL, "1"),))
    policy = container_policy(root, image, root / "out", as_root=False)
    assert (policy.user, policy.env, policy.binds, policy.confined) == (ME, (("HOME", HOME),), (), False)


def test_a_missing_input_is_not_mounted_in_the_shell(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = container_policy(root, stage(inputs=("params.json", "later.bin")), root / "out", as_root=False)
    assert [b.target for b in policy.binds] == ["/work", "/work/params.json"]
    assert "bg: warning: input later.bin does not exist yet; not mounted" in capsys.readouterr().err


def test_the_shell_hands_the_policy_to_docker_run(root: Path) -> None:
    out = root / "out"
    argv = shell_argv(root, stage(gpus=(0, 3)), "img:1", ["sh"], out, as_root=False, tty=False)
    uid, gid = ME.split(":")
    assert argv == [
        *("run", "--rm", "-i", "--init", "--user", ME, "--workdir", "/work"),
        *("--env", "GREETING=hi", "--env", f"HOME={HOME}"),
        *("--mount", f"type=bind,src={out},dst=/work"),
        *("--mount", f"type=bind,src={root}/data,dst=/work/data,readonly"),
        *("--mount", f"type=bind,src={root}/params.json,dst=/work/params.json,readonly"),
        *("--tmpfs", f"{HOME}:rw,exec,mode=0700,uid={uid},gid={gid}"),
        *("--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "none"),
        *("--shm-size", "2g", "--gpus", '"device=0,3"', "--label", f"{SHELL_LABEL}=1"),
        *("img:1", "sh"),
    ]


def test_the_executor_hands_the_policy_to_the_sdk(root: Path) -> None:
    out = root / "out"
    kwargs = job_policy(job_of(stage(gpus="all"), root, out), out, ME).sdk_kwargs()
    assert {k: v for k, v in kwargs.items() if k not in ("mounts", "device_requests", "labels")} == {
        "user": ME,
        "working_dir": "/work",
        "environment": {"GREETING": "hi", "HOME": HOME},
        "tmpfs": dict(container_policy(root, stage(), out, as_root=False).tmpfs),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "network_mode": "none",
        "shm_size": "2g",
        "init": True,
    }
    assert [(m["Target"], m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]] == [
        ("/work", str(out), False),
        ("/work/data", str(root / "data"), True),
        ("/work/params.json", str(root / "params.json"), True),
    ]
    assert [dict(r) for r in kwargs["device_requests"]] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
