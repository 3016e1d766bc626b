"""Image stages → real Docker images, tagged by key; registry bases → pinned references.

Tags: `bg/<project>/<stage>:<key[:32]>` (names lowercased, characters Docker refuses
replaced by `-`). 32 hex characters (128 bits) keep tags readable and collision-free
in practice; the full key is on the image as the label `org.buildgraph.key`, and
`exists` checks both, so a tag moved by hand is not trusted.

Builds use the engine's classic builder through the SDK (`client.api.build` with our
own deterministic context tar, see `context.py`). A stage with `secrets` or `run` mounts
needs BuildKit's `RUN --mount`, which the SDK cannot drive: it is built with a
`docker` CLI that has BuildKit (`DOCKER_BUILDKIT=1 docker build --secret …`), and the
secret files never enter the context, the image, its history or its labels.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from buildgraph.core.spec import ImageStage
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.images.context import DOCKERFILE_NAME, ContextTar
from buildgraph.images.dockerfile import render_stage
from buildgraph.lines import LineSink

KEY_LABEL = "org.buildgraph.key"
PROJECT_LABEL = "org.buildgraph.project"
STAGE_LABEL = "org.buildgraph.stage"
_BAD_REPO_CHARS = re.compile(r"[^a-z0-9._-]+")
_STEP = re.compile(r"^Step \d+/\d+ : ")
OFFLINE_HINT = (
    "without a registry, build the base offline from Debian: "
    'from = { debian = "bookworm", packages = ["python3"] } (needs mmdebstrap)'
)


class DockerImages:
    """Builds and finds the images of one project's image stages."""

    def __init__(self, client: Any, project: str) -> None:
        self.client = client
        self.project = project

    def tag_for(self, stage: str, key: str) -> str:
        return f"bg/{_repo_part(self.project)}/{_repo_part(stage)}:{key[:32]}"

    def exists(self, stage: str, key: str) -> bool:
        """True when the stage's tag exists and carries this exact key."""
        import docker.errors

        try:
            image = self.client.images.get(self.tag_for(stage, key))
        except docker.errors.ImageNotFound:
            return False
        return bool((image.labels or {}).get(KEY_LABEL) == key)

    def image_id(self, stage: str, key: str) -> str:
        return str(self.client.images.get(self.tag_for(stage, key)).id)

    def build(
        self,
        stage: ImageStage,
        key: str,
        parent_ref: str,
        context: ContextTar,
        args: Mapping[str, str],
        on_line: LineSink | None = None,
        secrets: Mapping[str, Path] | None = None,
    ) -> str:
        """Build `stage` on `parent_ref`, tag it, return its image id (`sha256:…`).

        `args` are the `[args]` the stage uses; its own args are added, declared after FROM as
        Docker does, so each is in the environment of every `run` line (`DEBIAN_FRONTEND`)."""
        args = {**args, **dict(stage.args)}
        labels = {KEY_LABEL: key, PROJECT_LABEL: self.project, STAGE_LABEL: stage.name}
        tag = self.tag_for(stage.name, key)
        if stage.secrets or any(stage.run_mounts):  # RUN --mount needs BuildKit
            if parent_ref.startswith("sha256:"):
                parent_ref = self._tag_image_id(parent_ref)  # BuildKit cannot resolve a bare id
            dockerfile = render_stage(stage, parent_ref, args, labels.items())
            _buildkit_build(stage.name, context, dockerfile, tag, args, secrets or {}, on_line)
            return self.image_id(stage.name, key)
        dockerfile = render_stage(stage, parent_ref, args, labels.items())
        with tempfile.TemporaryFile() as tar:
            context.write(tar, dockerfile)
            tar.seek(0)
            image_id = self._classic_build(stage.name, tar, tag, dict(args), on_line)
        return image_id or self.image_id(stage.name, key)

    def _classic_build(
        self, name: str, tar: Any, tag: str, args: dict[str, str], on_line: LineSink | None
    ) -> str:
        from requests.exceptions import ConnectionError as RequestsConnectionError

        try:
            stream = self.client.api.build(
                fileobj=tar,
                custom_context=True,
                dockerfile=DOCKERFILE_NAME,
                tag=tag,
                buildargs=args,
                decode=True,
                rm=True,
                forcerm=True,
            )
            return _follow_build(name, stream, on_line)
        except RequestsConnectionError as exc:
            raise EnvironmentProblem(f"lost the Docker daemon while building '{name}': {exc}") from exc

    def _tag_image_id(self, image_id: str) -> str:
        tag = f"bg/base:{image_id.removeprefix('sha256:')[:32]}"
        self.client.images.get(image_id).tag(tag)
        return tag

    def resolve_base(self, reference: str, pull: bool = False, on_line: LineSink | None = None) -> str:
        """A registry reference pinned: `repo@sha256:…`, or the local image id when it has no digest.

        Pulls only when the image is absent locally or `pull` is set.
        """
        import docker.errors

        if not pull:
            try:
                return _pinned(self.client.images.get(reference), reference)
            except docker.errors.ImageNotFound:
                pass
        self._pull(reference, on_line)
        return _pinned(self.client.images.get(reference), reference)

    def _pull(self, reference: str, on_line: LineSink | None) -> None:
        import docker.errors
        from docker.utils import parse_repository_tag
        from requests.exceptions import RequestException

        repository, tag = parse_repository_tag(reference)
        error = ""
        try:
            for chunk in self.client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                error = error or str(chunk.get("error", ""))  # read on to the end: frees the connection
                if on_line and chunk.get("status"):
                    on_line(" ".join(str(chunk[k]) for k in ("id", "status", "progress") if chunk.get(k)))
        except (docker.errors.APIError, RequestException) as exc:
            raise _pull_failed(reference, getattr(exc, "explanation", None) or str(exc)) from exc
        if error:
            raise _pull_failed(reference, error)


def _repo_part(name: str) -> str:
    cleaned = _BAD_REPO_CHARS.sub("-", name.lower()).strip("._-")
    return cleaned or "x"


def _follow_build(name: str, stream: Iterable[dict[str, Any]], on_line: LineSink | None) -> str:
    """Stream the daemon's build output line by line; raise with the failing step.

    The stream is read to its end even after an error, so the connection is released.
    """
    step, image_id, error = "", "", ""
    for line, chunk in _lines(stream):
        if chunk is not None:
            error = error or str(chunk.get("error", "")).strip()
            image_id = str(chunk.get("aux", {}).get("ID", image_id))
            continue
        if on_line:
            on_line(line)
        if _STEP.match(line) and not error:
            step = line
    if error:
        raise _build_failed(name, step, error)
    return image_id


def _lines(stream: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Whole lines of `stream` text (chunks may split or join lines), and the other chunks."""
    pending = ""
    for chunk in stream:
        if "stream" not in chunk:
            yield "", chunk
            continue
        pending += str(chunk["stream"])
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line.rstrip("\r"), None
    if pending:
        yield pending, None


def _build_failed(name: str, step: str, error: str) -> StageFailed:
    number, _, instruction = step.removeprefix("Step ").partition(" : ")
    where = f" at step {number} `{instruction}`" if step else ""
    error = error.splitlines()[0] if error else "unknown error"
    return StageFailed(
        f"image stage '{name}' failed{where}: {error}",
        hint=f"the lines above show the build output; `bg dockerfile {name}` writes a Dockerfile to retry it",
    )


def _pull_failed(reference: str, reason: str) -> EnvironmentProblem:
    reason = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    return EnvironmentProblem(f"cannot pull base image '{reference}': {reason}", hint=OFFLINE_HINT)


def _pinned(image: Any, reference: str) -> str:
    digests: list[str] = list(image.attrs.get("RepoDigests") or [])
    wanted = _normal_repo(reference)
    for digest in digests:
        if _normal_repo(digest) == wanted:
            return digest
    return digests[0] if digests else str(image.id)


def _normal_repo(reference: str) -> str:
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


def _buildkit_build(
    name: str,
    context: ContextTar,
    dockerfile: str,
    tag: str,
    args: Mapping[str, str],
    secrets: Mapping[str, Path],
    on_line: LineSink | None,
) -> None:
    cli = buildkit_cli()
    argv = [cli, "build", "--progress=plain", "-f", DOCKERFILE_NAME, "-t", tag]
    argv += [f"--build-arg={k}={v}" for k, v in args.items()]
    argv += [f"--secret=id={n},src={p}" for n, p in secrets.items()]
    missing = [n for n in _declared_secrets(dockerfile) if n not in secrets]
    if missing:
        raise StageFailed(f"image stage '{name}' needs secret '{missing[0]}' but none was provided")
    data = context.to_bytes(dockerfile)
    proc = subprocess.run(
        [*argv, "-"],
        input=data,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_buildkit_env(),
        check=False,
    )
    lines = proc.stdout.decode(errors="replace").splitlines()
    for line in lines:
        if on_line:
            on_line(line)
    if proc.returncode != 0:
        errors = [line for line in lines if "ERROR" in line or "failed to solve" in line]
        raise _build_failed(name, "", (errors or lines or ["docker build failed"])[-1])


def _declared_secrets(dockerfile: str) -> list[str]:
    return sorted(set(re.findall(r"--mount=type=secret,id=([^\s,]+)", dockerfile)))


def buildkit_cli() -> str:
    """A `docker` CLI whose `build` has `--secret` (BuildKit), or EnvironmentProblem."""
    for candidate in dict.fromkeys([shutil.which("docker"), "/usr/bin/docker"]):
        if candidate and Path(candidate).exists():
            help_text = subprocess.run(
                [candidate, "build", "--help"],
                capture_output=True,
                text=True,
                check=False,
                env=_buildkit_env(),
            ).stdout
            if "--secret" in help_text:
                return candidate
    raise EnvironmentProblem(
        "image stages with secrets need BuildKit, and no docker CLI here has it",
        hint="install Debian's docker.io (its docker CLI has BuildKit built in) or docker-buildx",
    )


def _buildkit_env() -> dict[str, str]:
    return dict(os.environ, DOCKER_BUILDKIT="1")
