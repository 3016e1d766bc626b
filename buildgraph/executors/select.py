"""Choosing where run stages execute: `executor = "auto" | "local" | "docker"`."""

from __future__ import annotations

import os
from typing import Any

from buildgraph.errors import EnvironmentProblem


def docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://") :]
    return "" if host else "/var/run/docker.sock"


def daemon_answers(timeout: float = 2.0) -> str | None:
    """None when a Docker daemon answers `/_ping`, else why not — without importing the SDK."""
    if os.environ.get("DOCKER_HOST", "").startswith(("tcp://", "ssh://")):
        from buildgraph.executors.docker import docker_available

        return docker_available()
    path = docker_socket()
    if not os.path.exists(path):
        return f"no Docker socket at {path}"
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(256)
    except OSError as exc:
        return f"the Docker daemon at {path} does not answer ({exc.strerror or exc})"
    if b" 200 " not in reply.split(b"\r\n", 1)[0] + b" ":
        return f"the Docker daemon at {path} answered {reply[:40]!r}"
    return None


def choose_executor(name: str, spec: Any) -> Any:
    """The executor of run stages. `auto` depends on the Buildfile alone, never on whether a
    daemon happens to answer today: a key that flipped between host and image with the
    daemon's mood would make every stage rerun."""
    from buildgraph.executors.local import LocalExecutor

    uses_images = any(getattr(s, "image", "") for s in spec.run_stages())
    if name == "local" or (name == "auto" and not uses_images):
        return LocalExecutor(link=spec.link)
    require_daemon(
        "the docker executor needs Docker"
        if name == "docker"
        else "run stages with an `image` execute in containers (executor auto), which needs Docker"
    )
    from buildgraph.executors.docker import DockerExecutor

    return DockerExecutor()


def require_daemon(why: str) -> None:
    """EnvironmentProblem (exit 3) saying `why` Docker is needed, unless a daemon answers."""
    problem = daemon_answers()
    if problem is not None:
        raise EnvironmentProblem(
            f"{why}: {problem}",
            hint="start dockerd (`sudo dockerd &`), or run the stages on the host: --executor local "
            '(or `executor = "local"` under [project])',
        )
