"""The container policy of a job, written once for the docker executor and `bg shell`.

A run stage's container runs as the invoking user (outputs never root-owned) with HOME on a
private tmpfs, every capability dropped and `no-new-privileges`, no network unless the stage
asks, under docker's init (signals reach the command), its project root writable and its
inputs and secrets bind-mounted read-only on top. `bg shell` must open exactly the
environment the stage's command meets, so both build a `Policy` with `run_policy` and render
it: SDK keyword arguments for `containers.create` (the executor), `docker run` flags (the
shell, which hands the TTY to the docker CLI). The docker SDK is imported only to render.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

HOME = "/tmp/home"
Gpus = None | str | int | tuple[int, ...]


@dataclass(frozen=True)
class Bind:
    target: str  # path in the container
    source: str  # absolute path on the host
    read_only: bool = True


@dataclass(frozen=True)
class Policy:
    user: str = ""  # "uid:gid"; "" keeps the image's user
    workdir: str = ""  # "" keeps the image's
    env: tuple[tuple[str, str], ...] = ()
    binds: tuple[Bind, ...] = ()
    tmpfs: tuple[tuple[str, str], ...] = ()  # (mount point, options)
    confined: bool = False  # every capability dropped, no-new-privileges
    network: bool = True
    shm_size: str = ""
    gpus: Gpus = None
    labels: tuple[tuple[str, str], ...] = ()

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SDK's `containers.create` (besides image, command, name)."""
        from docker.types import Mount

        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        if self.workdir:
            kwargs["working_dir"] = self.workdir
        if self.confined:
            kwargs.update(cap_drop=["ALL"], security_opt=["no-new-privileges"])
        return kwargs | {
            "environment": dict(self.env),
            "mounts": [Mount(b.target, b.source, type="bind", read_only=b.read_only) for b in self.binds],
            "tmpfs": dict(self.tmpfs),
            "network_mode": "bridge" if self.network else "none",
            "shm_size": self.shm_size or None,
            "device_requests": device_requests(self.gpus),
            "labels": dict(self.labels),
            "init": True,
        }

    def cli_args(self) -> list[str]:
        """The same policy as `docker run`/`docker create` flags (before the image)."""
        argv = ["--init", *_opt("--user", self.user), *_opt("--workdir", self.workdir)]
        argv += _each("--env", [f"{name}={value}" for name, value in self.env])
        argv += _each("--mount", [_mount_flag(b) for b in self.binds])
        argv += _each("--tmpfs", [f"{point}:{options}" for point, options in self.tmpfs])
        if self.confined:
            argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        if not self.network:
            argv += ["--network", "none"]
        argv += [*_opt("--shm-size", self.shm_size), *_opt("--gpus", gpus_flag(self.gpus))]
        return argv + _each("--label", [f"{name}={value}" for name, value in self.labels])


def as_user(user: str, env: Iterable[tuple[str, str]] = ()) -> Policy:
    """Only the user: `user` ("uid:gid") with HOME on a tmpfs it owns ("" = the image's user)."""
    if not user:
        return Policy(env=tuple(env))
    uid, _, gid = user.partition(":")
    home = f"rw,exec,mode=0700,uid={uid},gid={gid or uid}"
    env = [(name, value) for name, value in env if name != "HOME"]  # HOME is the tmpfs, always
    return Policy(user=user, env=(*env, ("HOME", HOME)), tmpfs=((HOME, home),))


def run_policy(
    *,
    user: str,
    workdir: str,
    root: Path,
    inputs: Iterable[tuple[str, Path]],
    env: Iterable[tuple[str, str]],
    network: bool,
    shm_size: str,
    gpus: Gpus,
    secrets: Iterable[tuple[str, Path]] = (),
    labels: dict[str, str] | None = None,
) -> Policy:
    """A run stage's container: `root` writable at `workdir`, inputs (project-relative path,
    host path) and secrets read-only on top, confined, as `user` (see the module docstring)."""
    base = PurePosixPath(workdir)
    binds = [Bind(str(base), str(root.resolve()), read_only=False)]
    binds += [Bind(str(base / rel), str(src.resolve())) for rel, src in outermost(inputs)]
    binds += [Bind(f"/run/secrets/{name}", str(path.resolve())) for name, path in secrets]
    person = as_user(user, env)
    return Policy(
        user=person.user,
        workdir=workdir,
        env=person.env,
        binds=tuple(binds),
        tmpfs=person.tmpfs,
        confined=True,
        network=network,
        shm_size=shm_size,
        gpus=gpus,
        labels=tuple(sorted((labels or {}).items())),
    )


def outermost(inputs: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Inputs not inside another input (those are visible through the outer mount already)."""
    ordered = sorted(inputs, key=lambda i: PurePosixPath(i[0]).parts)
    kept: list[tuple[str, Path]] = []
    for relpath, source in ordered:
        parts = PurePosixPath(relpath).parts
        if not any(parts[: len(PurePosixPath(k).parts)] == PurePosixPath(k).parts for k, _ in kept):
            kept.append((relpath, source))
    return kept


def device_requests(gpus: Gpus) -> list[Any] | None:
    """`gpus` as the SDK's device requests: "all" → count −1, N → count N, ids → device ids."""
    from docker.types import DeviceRequest

    if gpus is None or gpus == 0:
        return None
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if isinstance(gpus, int):
        return [DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])]


def gpus_flag(gpus: Gpus) -> str:
    """`gpus` as the docker CLI's `--gpus` value ("" for none); ids are quoted, the CLI reads CSV."""
    if gpus is None or gpus == 0:
        return ""
    if gpus == "all" or isinstance(gpus, int):
        return str(gpus)
    return '"device=' + ",".join(str(i) for i in gpus) + '"'


def _mount_flag(bind: Bind) -> str:
    return f"type=bind,src={bind.source},dst={bind.target}" + (",readonly" if bind.read_only else "")


def _each(flag: str, values: Sequence[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


def _opt(flag: str, value: str) -> list[str]:
    return [flag, value] if value else []
