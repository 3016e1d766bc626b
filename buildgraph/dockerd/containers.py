"""Who owns a container, and removing the ones a killed bg left behind.

Every container of a job is labelled with its run id, bg's pid and host, and the stage. A
SIGKILLed bg's guardian removes its containers within a second or so (executors/guardian.py);
where there is no guardian (a TLS or ssh DOCKER_HOST) or it was killed too, the next `bg run`
reaps them: a container whose run is not live and whose bg is gone from this host.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from buildgraph.dockerd.api import EngineAPI

RUN_LABEL = "org.buildgraph.run"
PID_LABEL = "org.buildgraph.pid"
HOST_LABEL = "org.buildgraph.host"
STAGE_LABEL = "org.buildgraph.stage"
SHELL_LABEL = "org.buildgraph.shell"  # `bg shell`'s containers (removed by docker's --rm)


def owner_labels(run_id: str, stage: str) -> dict[str, str]:
    """The labels that let a later bg tell whether this container's owner is gone."""
    return {
        RUN_LABEL: run_id,
        PID_LABEL: str(os.getpid()),
        HOST_LABEL: socket.gethostname(),
        STAGE_LABEL: stage,
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """False only when the bg that made the container, on this host, no longer exists."""
    if labels.get(HOST_LABEL) != socket.gethostname():
        return True  # another machine's bg: we cannot tell, leave it
    try:
        os.kill(int(labels.get(PID_LABEL, "")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def remove(container: Any) -> None:
    """Force-remove a container (an SDK object), running or not, gone already or not."""
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def reap(client: Any, live_run_ids: Iterable[str] = ()) -> list[str]:
    """Remove containers left by a `bg` that died; return their ids.

    A container is left over when its run id is not live and the `bg` process that
    started it (pid label, same host) no longer exists.
    """
    live = set(live_run_ids)
    removed = []
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        labels = container.labels or {}
        if labels.get(RUN_LABEL) in live or owner_alive(labels):
            continue
        remove(container)
        removed.append(container.id)
    return removed


def reap_left_over(client: Callable[[], Any]) -> list[str]:
    """`reap` with no live run, asking for an SDK client only when there is something to reap:
    over a unix socket one GET tells (a null run does not import the SDK)."""
    api = EngineAPI.available()
    if api is not None and all(
        owner_alive(c.get("Labels") or {}) for c in api.containers_with_label(RUN_LABEL)
    ):
        return []
    return reap(client())
