"""`bg shell STAGE [-- COMMAND…]`: an interactive shell in a stage's image.

For a run stage: its image, its inputs read-only at /work/<path>, its env, network,
GPUs and shm size, as the invoking user, in a writable scratch /work
(`.bg/shell/<stage>`, so nothing lands in the project by accident). For an image
stage: the image, as the invoking user (`--root` for the image's own user).
Secrets are not mounted. The docker CLI does the TTY handling, so bg `exec`s it.

The image is the newest one bg built for the stage (labels `org.buildgraph.project` and
`org.buildgraph.stage`); `--image REF` names another.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from buildgraph.commands._common import add, check_targets, load_project
from buildgraph.errors import EnvironmentProblem, UsageError

WORKDIR = "/work"
HOME = "/tmp/home"
_DEFAULT_SHELL = "command -v bash >/dev/null && exec bash || exec sh"


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("stage", metavar="STAGE")
    p.add_argument(
        "shell_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="run this instead of a shell"
    )
    p.add_argument("--image", metavar="REF", help="use this image instead of the stage's latest build")
    p.add_argument("--root", action="store_true", help="run as the image's user, not as you")


def run(ns: argparse.Namespace) -> int:
    project = load_project(ns)
    check_targets(project, [ns.stage])
    spec: Any = project.spec
    stage = spec.stages[ns.stage]
    image_stage = stage.image if stage.kind == "run" else stage.name
    if not image_stage:
        raise UsageError(f"stage '{ns.stage}' runs on the host: there is no image to open a shell in")
    image = ns.image or latest_image(spec.name, image_stage)
    command = ns.shell_command[1:] if ns.shell_command[:1] == ["--"] else ns.shell_command
    command = command or ["sh", "-c", _DEFAULT_SHELL]
    scratch = project.root / ".bg" / "shell" / ns.stage
    argv = shell_argv(project.root, stage, image, command, scratch, as_root=ns.root, tty=sys.stdin.isatty())
    cli = shutil.which("docker")
    if cli is None:
        raise EnvironmentProblem("the docker command is not installed", hint="apt-get install docker.io")
    scratch.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    os.execvp(cli, [cli, *argv])


def shell_argv(
    root: Path, stage: Any, image: str, command: list[str], scratch: Path, as_root: bool, tty: bool
) -> list[str]:
    """`docker run …` arguments (without the program name) for a shell in `stage`'s image."""
    argv = ["run", "--rm", "--init", "-it" if tty else "-i", "--label", "org.buildgraph.shell=1"]
    if not as_root:
        uid, gid = os.getuid(), os.getgid()
        argv += ["--user", f"{uid}:{gid}", "--env", f"HOME={HOME}"]
        argv += ["--tmpfs", f"{HOME}:rw,exec,mode=0700,uid={uid},gid={gid}"]
    if stage.kind == "run":
        argv += _run_stage_options(root, stage, scratch)
    return [*argv, image, *command]


def _run_stage_options(root: Path, stage: Any, scratch: Path) -> list[str]:
    argv = ["--workdir", WORKDIR, "--mount", f"type=bind,src={scratch.resolve()},dst={WORKDIR}"]
    for relpath in stage.inputs:
        source = (root / relpath).resolve()
        if source.exists():
            argv += ["--mount", f"type=bind,src={source},dst={WORKDIR}/{relpath},readonly"]
        else:
            sys.stderr.write(f"bg: warning: input {relpath} does not exist yet; not mounted\n")
    for name, value in stage.env:
        argv += ["--env", f"{name}={value}"]
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if not stage.network:
        argv += ["--network", "none"]
    if stage.shm_size:
        argv += ["--shm-size", stage.shm_size]
    gpus = _gpus_flag(stage.gpus)
    return argv + (["--gpus", gpus] if gpus else [])


def _gpus_flag(gpus: None | str | int | tuple[int, ...]) -> str:
    if gpus is None or gpus == 0:
        return ""
    if gpus == "all" or isinstance(gpus, int):
        return str(gpus)
    return '"device=' + ",".join(str(i) for i in gpus) + '"'


def latest_image(project: str, stage: str) -> str:
    """The id of the newest image bg built for `stage` of `project`."""
    from buildgraph.executors.docker import docker_available

    problem = docker_available()
    if problem:
        raise EnvironmentProblem(problem, hint="start the Docker daemon (scripts/ci-docker.sh does it)")
    import docker

    from buildgraph.images.builder import PROJECT_LABEL, STAGE_LABEL

    client = docker.from_env()
    filters = {"label": [f"{PROJECT_LABEL}={project}", f"{STAGE_LABEL}={stage}"]}
    images = sorted(client.images.list(filters=filters), key=lambda i: i.attrs.get("Created", ""))
    if not images:
        raise UsageError(f"the image of stage '{stage}' is not built yet", hint=f"`bg run {stage}` builds it")
    return str(images[-1].id)
