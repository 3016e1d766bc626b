"""A few read-only Docker Engine API calls over the unix socket, without the docker SDK
(nor http.client, which alone costs ~10 ms to import).

`bg run` with nothing to do must start fast (the SDK and requests cost ~0.1–0.2 s to
import). Deciding needs only "does this tag exist, with which key label?" and "are there
containers left by a killed bg?", which are two GETs (and `/_ping` to know a daemon is
there); builds and runs still use the SDK. A daemon that does not answer, or answers
something that is not HTTP, is an environment problem (exit 3), never a traceback.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any
from urllib.parse import quote

from buildgraph.dockerd.address import socket_path
from buildgraph.errors import EnvironmentProblem

_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})(?: |\r\n|$)")
_HINT = "start dockerd (`sudo dockerd &`), or run the stages on the host: --executor local"


class EngineAPI:
    """GET-only access to the Docker Engine API on a unix socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    @classmethod
    def available(cls) -> EngineAPI | None:
        """An EngineAPI when the daemon is reached by a unix socket (else the SDK is needed)."""
        path = socket_path()
        return cls(path) if path is not None else None

    def get(self, path: str) -> tuple[int, Any]:
        """The status and the decoded JSON body (None when empty) of one GET."""
        status, reply = self._exchange(path)
        body = reply.partition(b"\r\n\r\n")[2]
        try:
            return status, json.loads(body) if body.strip() else None
        except ValueError:
            raise self._garbled(reply) from None

    def ping(self) -> str | None:
        """None when the daemon answers `/_ping` with 200; else why not, in one line."""
        try:
            status, reply = self._exchange("/_ping")
        except EnvironmentProblem as exc:
            return exc.message
        return None if status == 200 else self._garbled(reply).message

    def image_labels(self, reference: str) -> dict[str, str] | None:
        """The labels of a local image (None when the engine has no such image)."""
        status, body = self.get(f"/images/{quote(reference, safe='')}/json")
        if status == 404:
            return None
        if status != 200:
            raise self._refused(status, f"for image {reference}", body)
        return dict((body.get("Config") or {}).get("Labels") or {})

    def containers_with_label(self, label: str) -> list[dict[str, Any]]:
        filters = quote(json.dumps({"label": [label]}))
        status, body = self.get(f"/containers/json?all=1&filters={filters}")
        if status != 200:
            raise self._refused(status, "listing containers", body)
        return list(body or [])

    def _exchange(self, path: str) -> tuple[int, bytes]:
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
                f"the Docker daemon at {self.path} does not answer ({exc.strerror or exc})", hint=_HINT
            ) from exc
        reply = b"".join(chunks)
        status = _STATUS_LINE.match(reply)
        if status is None:  # closed without a word, or something that is not an HTTP server
            raise self._garbled(reply)
        return int(status.group(1)), reply

    def _garbled(self, reply: bytes) -> EnvironmentProblem:
        return EnvironmentProblem(f"the Docker daemon at {self.path} answered {reply[:40]!r}", hint=_HINT)

    def _refused(self, status: int, what: str, body: Any) -> EnvironmentProblem:
        said = body.get("message", "") if isinstance(body, dict) else ""
        return EnvironmentProblem(
            f"the Docker daemon at {self.path} answered {status} {what}" + (f": {said}" if said else "")
        )
