"""The declared build graph: what a Buildfile.toml says, validated and interpolated.

Pure data. `core.parse` produces a `Spec`; everything downstream (graph, keys, plan,
engine, executors) reads it and never mutates it.

Vocabulary: a *stage* is declared here; kind **image** (has `from`) or kind **run**
(has `command`). Paths are POSIX, relative to the project root, never absolute and
never escaping it; a directory path is written with a trailing "/" only in the
Buildfile, here it is normalised away (`Output.is_dir` says what was declared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ParamValue = bool | int | float | str
ExecutorName = Literal["auto", "local", "docker"]


@dataclass(frozen=True)
class Param:
    """A typed run parameter from `[params]`; `--param name=value` overrides `value`."""

    name: str
    value: ParamValue
    type: Literal["bool", "int", "float", "str"]
    choices: tuple[ParamValue, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class DebianBase:
    """`from = { debian = "bookworm", packages = [...] }`: a base image built offline."""

    suite: str
    packages: tuple[str, ...] = ()
    mirror: str = ""  # empty = the host's configured Debian mirror


@dataclass(frozen=True)
class ImageRef:
    """`from = "pytorch/pytorch:2.5.1-…"`: an image from a registry, pinned by digest."""

    reference: str


@dataclass(frozen=True)
class StageRef:
    """`from = "deps"` where `deps` is an image stage of this Buildfile."""

    stage: str


Base = ImageRef | StageRef | DebianBase


@dataclass(frozen=True)
class Copy:
    """One `copy` entry: sources (files, dirs, globs, project-relative) → `dest` in the image."""

    sources: tuple[str, ...]
    dest: str
    chown: str = ""
    # `from = "builder"` (Dockerfile COPY --from): the sources are absolute paths in the image of
    # that image stage, or of an external image (a registry reference, pinned like a base).
    from_stage: str = ""
    from_image: str = ""


@dataclass(frozen=True)
class Mount:
    """One `mounts` entry of a `run` line (Dockerfile RUN --mount): in neither the key nor the image."""

    type: Literal["cache", "secret", "tmpfs"]
    target: str = ""  # a secret's default: /run/secrets/<id>
    id: str = ""  # a cache's id (default: its target); a secret's name, one of bg's secrets
    sharing: str = ""  # cache: shared (default) | private | locked
    required: bool = False  # secret: fail the build when it is not provided


@dataclass(frozen=True)
class Healthcheck:
    """`healthcheck = { test = ..., interval = "30s", ... }` (Dockerfile HEALTHCHECK)."""

    test: tuple[str, ...] = ()  # exec form; one string with `shell`; empty: NONE (disable the base's)
    shell: bool = False
    interval: str = ""
    timeout: str = ""
    start_period: str = ""
    start_interval: str = ""
    retries: int = 0


@dataclass(frozen=True)
class ImageStage:
    name: str
    base: Base
    env: tuple[tuple[str, str], ...] = ()  # ordered as declared
    run: tuple[str, ...] = ()
    # `run` items written as tables `{ command, mounts }`: one tuple of mounts per `run` line, or
    # empty when no line has any.
    run_mounts: tuple[tuple[Mount, ...], ...] = ()
    copy: tuple[Copy, ...] = ()
    ignore: str = ""  # project-relative ignore file (.dockerignore syntax) for `copy`
    workdir: str = ""
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    # `entrypoint` / `cmd` written as a string: Dockerfile shell form (one item), which Docker runs
    # with the image's SHELL at that point — inherited from the parent, so not known here.
    entrypoint_shell: bool = False
    cmd_shell: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    shell: tuple[str, ...] = ()  # Dockerfile SHELL (exec form) for the `run` lines
    expose: tuple[str, ...] = ()  # "8080/tcp"
    volume: tuple[str, ...] = ()
    stopsignal: str = ""
    healthcheck: Healthcheck | None = None
    onbuild: tuple[str, ...] = ()  # Dockerfile instructions, as written
    args_used: tuple[str, ...] = ()  # names of [args] this stage referenced (for its key)
    # The stage's own ARGs (`args = {...}`, Dockerfile ARG after FROM), in order, with their values
    # (defaults interpolated, `--arg` applied): all of them are in the environment of every `run`.
    args: tuple[tuple[str, str], ...] = ()
    # The automatic platform args (TARGETARCH …) the stage referenced, with their values (its key).
    platform_args: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    description: str = ""
    # The stage's Buildfile strings that hold `$`, as written (before interpolation), by
    # location (`from`, `run[0]`, `env.PATH`): `bg dockerfile` keeps their `${NAME}` as
    # Dockerfile references, so `docker build --build-arg NAME=…` works on the export.
    templates: tuple[tuple[str, str], ...] = ()
    kind: Literal["image"] = "image"


@dataclass(frozen=True)
class Output:
    path: str  # normalised, no trailing slash
    is_dir: bool = False  # declared with a trailing "/"


@dataclass(frozen=True)
class RunStage:
    name: str
    command: str  # interpolated; run with `sh -e -c` in the stage's working directory
    image: str = ""  # an image stage name; "" = run on the host
    inputs: tuple[str, ...] = ()  # normalised project paths (files or dirs)
    outputs: tuple[Output, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    params_used: tuple[str, ...] = ()  # names of [params] the stage referenced
    args_used: tuple[str, ...] = ()
    gpus: None | str | int | tuple[int, ...] = None  # None | "all" | N | (ids…)
    network: bool = False
    timeout: float = 0.0  # seconds; 0 = none
    metrics: str = ""  # one of `outputs` (a JSON file of numbers)
    shm_size: str = ""  # e.g. "2g" (containers only)
    secrets: tuple[str, ...] = ()
    description: str = ""
    # `params = { file, keys }`: each listed value as ("params.yaml:train.lr", its canonical JSON).
    # Only these values are keyed, never the file's digest: editing an unlisted key reruns nothing.
    file_params: tuple[tuple[str, str], ...] = ()
    params_files: tuple[str, ...] = ()  # the files they come from: staged for the command, not keyed
    always: bool = False  # runs at every `bg run`, whatever its key
    frozen: bool = False  # never reruns once recorded (restored if its outputs are missing)
    kind: Literal["run"] = "run"

    @property
    def gpu_count(self) -> int | None:
        """GPUs this stage holds while running; None means all of them."""
        if self.gpus is None or self.gpus == 0:
            return 0
        if self.gpus == "all":
            return None
        if isinstance(self.gpus, int):
            return self.gpus
        return len(self.gpus)


Stage = ImageStage | RunStage


@dataclass(frozen=True)
class Spec:
    """A whole, valid Buildfile after interpolation of args and params."""

    name: str
    executor: ExecutorName = "auto"
    link: Literal["auto", "hardlink", "copy"] = "auto"
    keep_runs: int = 5  # `bg gc` keeps the artefacts of the lock and of the last N runs
    default: tuple[str, ...] = ()  # what `bg run` with no target brings up to date (empty: everything)
    args: tuple[tuple[str, str], ...] = ()
    params: tuple[Param, ...] = ()
    stages: dict[str, Stage] = field(default_factory=dict)  # declaration order

    def image_stages(self) -> list[ImageStage]:
        return [s for s in self.stages.values() if isinstance(s, ImageStage)]

    def run_stages(self) -> list[RunStage]:
        return [s for s in self.stages.values() if isinstance(s, RunStage)]

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)
