"""A few read-only Docker Engine API calls over the unix socket, without the docker SDK
(nor http.client, which alone costs ~10 ms to import).

`bg run` with nothing to do must start fast (the SDK and requests cost ~0.1–0.2 s to
import). Deciding needs only "does this tag exist, with which key label?" and "are there
containers left by a killed bg?", which are two GETs; builds and runs still use the SDK.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote

from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.select import docker_socket


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
        """One HTTP/1.0 GET (the daemon then answers without chunking and closes)."""
        chunks = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise EnvironmentProblem(
                f"the Docker daemon at {self.path} does not answer ({exc.strerror or exc})",
                hint="start dockerd (`sudo dockerd &`), or run the stages on the host: --executor local",
            ) from exc
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(body) if body.strip() else None

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
