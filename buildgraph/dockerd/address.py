"""Where the Docker daemon is, read from DOCKER_HOST as the docker SDK reads it.

Two readers need it: the SDK-free fast path (a null run asks the daemon two questions over its
unix socket, `api.py`) and the guardian (`executors/remove_containers.py`, standard library
only), which removes a killed bg's containers at the address it is handed. Both read it here,
so they cannot disagree about which engine they talk to — nor with the SDK, which runs the
containers: a unix socket is read the way the SDK's `parse_host` reads it (unset, empty or
`unix://` mean the default socket; TLS settings do not apply to a socket), and every other
transport is left to the SDK's own parser.
"""

from __future__ import annotations

import os

DEFAULT_SOCKET = "/var/run/docker.sock"
_UNIX = "unix://"


def socket_path() -> str | None:
    """The daemon's unix socket, or None when DOCKER_HOST names another transport (tcp, ssh …)."""
    host = (os.environ.get("DOCKER_HOST") or "").strip()
    if host in ("", _UNIX):
        return DEFAULT_SOCKET
    return host[len(_UNIX) :] if host.startswith(_UNIX) else None


def engine_address() -> str | None:
    """The engine the SDK uses, as the guardian's `unix:PATH` or `tcp:HOST:PORT`.

    None for a TLS or ssh DOCKER_HOST, which the stdlib-only guardian cannot speak. A tcp host
    is parsed by the SDK's `parse_host`, with TLS read as its `kwargs_from_env` reads it
    (without its check that the TLS files exist); called only once a container is being made,
    when the SDK is loaded anyway.
    """
    path = socket_path()
    if path is not None:
        return f"unix:{path}"
    from buildgraph.dockerd.sdk import sdk

    tls = bool(os.environ.get("DOCKER_CERT_PATH")) or os.environ.get("DOCKER_TLS_VERIFY", "") != ""
    url = str(sdk().utils.parse_host(os.environ.get("DOCKER_HOST"), is_win32=False, tls=tls))
    for scheme, kind in (("http+unix://", "unix:"), ("http://", "tcp:")):  # the SDK's own aliases too
        if url.startswith(scheme):
            return kind + url[len(scheme) :]
    return None
