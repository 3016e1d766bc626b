"""Choosing where run stages execute: `executor = "auto" | "local" | "docker"`."""

from __future__ import annotations

from typing import Any

from buildgraph.errors import EnvironmentProblem


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
    from buildgraph.dockerd.ping import daemon_problem

    problem = daemon_problem()
    if problem is not None:
        raise EnvironmentProblem(
            f"{why}: {problem}",
            hint="start dockerd (`sudo dockerd &`), or run the stages on the host: --executor local "
            '(or `executor = "local"` under [project])',
        )
