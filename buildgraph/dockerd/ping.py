"""Does a Docker daemon answer, and if not, why — one line, for an exit-3 message.

Over the unix socket this is `GET /_ping` without the SDK (choosing the docker executor is on
the null run's path); other transports (tcp, ssh, TLS) are the SDK's to speak.
"""

from __future__ import annotations

import os
from typing import Any

from buildgraph.dockerd.address import socket_path
from buildgraph.dockerd.api import EngineAPI


def daemon_problem(timeout: float = 2.0) -> str | None:
    """None when a Docker daemon answers; otherwise why not."""
    path = socket_path()
    if path is None:
        return sdk_problem()
    if not os.path.exists(path):
        return f"no Docker socket at {path}"
    return EngineAPI(path, timeout).ping()


def sdk_problem(timeout: float = 3.0) -> str | None:
    """None when a daemon answers the SDK's ping (at whatever DOCKER_HOST names); else why not."""
    from buildgraph.dockerd.sdk import sdk

    reason = _ping(sdk(), timeout)
    if reason:
        _drop_leaked_sockets()
    return reason


def _ping(docker: Any, timeout: float) -> str | None:
    try:
        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises several unrelated types here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"no Docker daemon answers: {reason}"
    return None


def _drop_leaked_sockets() -> None:
    """The SDK leaks its socket when the daemon is absent (it fails inside `from_env`).

    Collect it now, quietly, rather than as a ResourceWarning at some later moment.
    """
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
