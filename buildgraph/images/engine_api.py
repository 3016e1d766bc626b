"""A few read-only Docker Engine API calls over the unix socket, without the docker SDK.

`bg run` with nothing to do must start fast (the SDK and requests cost ~0.1–0.2 s to
import). Deciding needs only "does this tag exist, with which key label?" and "are there
containers left by a killed bg?", which are two GETs; builds and runs still use the SDK.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

from buildgraph.executors.select import docker_socket


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EngineAPI:
    """GET-only access to the Docker Engine API on a unix socket."""

    def __init__(self, path: str | None = None, timeout: float = 10.0) -> None:
        self.path = path or docker_socket()
        self.timeout = timeout

    @classmethod
    def available(cls) -> EngineAPI | None:
        """An EngineAPI when the daemon is reached by a unix socket (else the SDK is needed)."""
        path = docker_socket()
        return cls(path) if path else None

    def get(self, path: str) -> tuple[int, Any]:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        return response.status, json.loads(body) if body else None

    def image_labels(self, reference: str) -> dict[str, str] | None:
        """The labels of a local image (None when the engine has no such image)."""
        status, body = self.get(f"/images/{quote(reference, safe='')}/json")
        if status == 404:
            return None
        if status != 200:
            raise OSError(f"Docker engine answered {status} for image {reference}")
        return dict((body.get("Config") or {}).get("Labels") or {})

    def containers_with_label(self, label: str) -> list[dict[str, Any]]:
        filters = quote(json.dumps({"label": [label]}))
        status, body = self.get(f"/containers/json?all=1&filters={filters}")
        if status != 200:
            raise OSError(f"Docker engine answered {status} listing containers")
        return list(body or [])
