"""`bg shell STAGE [-- COMMAND…]`: an interactive shell in a stage's image.

For a run stage: the container its command gets from the docker executor (one policy,
`dockerd/policy.py`): its image, its inputs read-only at /work/<path>, its env, network,
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from buildgraph.commands._common import add, check_targets, load_project
from buildgraph.dockerd.containers import SHELL_LABEL
from buildgraph.dockerd.policy import Policy, as_user, run_policy
from buildgraph.errors import EnvironmentProblem, UsageError

WORKDIR = "/work"
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
    policy = container_policy(root, stage, scratch, as_root)
    return ["run", "--rm", "-it" if tty else "-i", *policy.cli_args(), image, *command]


def container_policy(root: Path, stage: Any, scratch: Path, as_root: bool) -> Policy:
    """A run stage's shell gets its command's container (`run_policy`, as the docker executor
    builds it) with `scratch` as the writable /work; an image stage's, the image and the user."""
    user = "" if as_root else f"{os.getuid()}:{os.getgid()}"
    labels = {SHELL_LABEL: "1"}
    if stage.kind != "run":
        return replace(as_user(user), labels=tuple(labels.items()))
    return run_policy(
        user=user,
        workdir=WORKDIR,
        root=scratch,
        inputs=_existing_inputs(root, stage.inputs),
        env=stage.env,
        network=stage.network,
        shm_size=stage.shm_size,
        gpus=stage.gpus,
        labels=labels,
    )


def _existing_inputs(root: Path, inputs: list[str]) -> list[tuple[str, Path]]:
    found = []
    for relpath in inputs:
        if (root / relpath).exists():
            found.append((relpath, root / relpath))
        else:
            sys.stderr.write(f"bg: warning: input {relpath} does not exist yet; not mounted\n")
    return found


def latest_image(project: str, stage: str) -> str:
    """The id of the newest image bg built for `stage` of `project`."""
    from buildgraph.dockerd.ping import sdk_problem
    from buildgraph.dockerd.sdk import sdk

    problem = sdk_problem()
    if problem:
        raise EnvironmentProblem(problem, hint="start the Docker daemon (scripts/ci-docker.sh does it)")
    from buildgraph.images.builder import PROJECT_LABEL, STAGE_LABEL

    client = sdk().from_env()
    filters = {"label": [f"{PROJECT_LABEL}={project}", f"{STAGE_LABEL}={stage}"]}
    images = sorted(client.images.list(filters=filters), key=lambda i: i.attrs.get("Created", ""))
    if not images:
        raise UsageError(f"the image of stage '{stage}' is not built yet", hint=f"`bg run {stage}` builds it")
    return str(images[-1].id)
