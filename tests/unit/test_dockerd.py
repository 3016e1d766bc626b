"""Talking to the Docker daemon (buildgraph/dockerd/), against daemons started here: a real
unix-socket server per test that answers what the test says — 200, 500, garbage, nothing, or
not at all. DOCKER_HOST forms are checked against the SDK's own parser."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.spec import ImageRef, ImageStage, RunStage, Spec, Stage
from buildgraph.dockerd.address import DEFAULT_SOCKET, engine_address, socket_path
from buildgraph.dockerd.api import EngineAPI
from buildgraph.dockerd.ping import daemon_problem
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.choice import choose_executor

DOCKER_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def http(status: str, body: Any = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return head.encode() + b"\r\n" + payload


class Daemon:
    """A unix-socket server: reads each request, records its request line, sends `reply` and
    closes (`reply=None`: closes without a word; `silent`: keeps the connection, says nothing)."""

    def __init__(self, path: Path, reply: bytes | None, silent: bool = False) -> None:
        self.path, self.reply, self.silent = path, reply, silent
        self.requests: list[str] = []
        self._held: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # stopped
            request = b""
            while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
                request += chunk
            self.requests.append(request.split(b"\r\n", 1)[0].decode())
            if self.silent:
                self._held.append(conn)
                continue
            if self.reply is not None:
                conn.sendall(self.reply)
            conn.close()

    def stop(self) -> None:
        """Stop listening (once); the socket file stays, as a dead daemon's does."""
        if self._server.fileno() == -1:
            return
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self._server.close()
        self._thread.join(timeout=10)
        for conn in self._held:
            conn.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    # a short path: a unix socket's name has ~107 bytes, which pytest's tmp_path may exceed
    path = Path(tempfile.mkdtemp(prefix="bgd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`daemon(reply, silent=False)`: a Daemon that DOCKER_HOST names."""
    started: list[Daemon] = []
    for name in DOCKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def start(reply: bytes | None, silent: bool = False) -> Daemon:
        server = Daemon(folder / f"d{len(started)}.sock", reply, silent)
        started.append(server)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{server.path}")
        return server

    yield start
    for server in started:
        server.stop()


# ---------------------------------------------------------------- DOCKER_HOST
UNIX_FORMS = [
    None,
    "",
    "unix://",
    "  unix://  ",
    "unix:///var/run/docker.sock",
    "unix:///run/user/1000/d.sock",
]
OTHER_FORMS = [
    "tcp://10.0.0.5:2375",
    "tcp://10.0.0.5:2376",
    "ssh://me@builder",
    "http://h:2375",
    "npipe:////./p",
]


def set_env(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> None:
    for name in DOCKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize("host", UNIX_FORMS)
def test_a_unix_docker_host_is_the_socket_the_sdk_would_use(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    from docker.utils import parse_host

    set_env(monkeypatch, DOCKER_HOST=host)
    sdk_url = parse_host(host or None, is_win32=False)
    assert sdk_url.startswith("http+unix://")
    assert socket_path() == sdk_url[len("http+unix://") :]


@pytest.mark.parametrize("host", OTHER_FORMS)
def test_other_transports_are_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_env(monkeypatch, DOCKER_HOST=host)
    assert socket_path() is None
    assert EngineAPI.available() is None


@pytest.mark.parametrize(
    ("env", "address"),
    [
        ({"DOCKER_HOST": "unix://"}, f"unix:{DEFAULT_SOCKET}"),
        ({"DOCKER_HOST": " unix:///tmp/d.sock "}, "unix:/tmp/d.sock"),
        ({"DOCKER_HOST": "unix:///tmp/d.sock", "DOCKER_CERT_PATH": "/certs"}, "unix:/tmp/d.sock"),
        ({"DOCKER_HOST": "http+unix:///tmp/d.sock"}, "unix:/tmp/d.sock"),  # the SDK's own alias
        ({"DOCKER_HOST": "tcp://[::1]:2375"}, "tcp:[::1]:2375"),
        ({"DOCKER_HOST": "http://10.0.0.5:2375"}, "tcp:10.0.0.5:2375"),
        ({"DOCKER_HOST": "https://10.0.0.5:2376"}, None),
    ],
)
def test_the_guardian_address_of_each_form(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], address: str | None
) -> None:
    set_env(monkeypatch, **env)
    assert engine_address() == address


# ---------------------------------------------------------------- ping
@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", None),
        (b"HTTP/1.0 200 OK\r\n\r\nOK", None),
        (
            http("500 Internal Server Error", {"message": "x"}),
            "answered b'HTTP/1.1 500 Internal Server Error",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "answered b'SSH-2.0-OpenSSH_9.2\\r\\n'"),
        (None, "answered b''"),  # accepted, then closed without a word
    ],
)
def test_ping_says_whether_the_daemon_answers_and_why_not(
    daemon: Any, reply: bytes | None, problem: str | None
) -> None:
    server = daemon(reply)
    found = daemon_problem()
    assert server.requests == ["GET /_ping HTTP/1.0"]
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(f"the Docker daemon at {server.path} {problem}")


def test_ping_of_a_daemon_that_never_answers_gives_up(daemon: Any) -> None:
    server = daemon(b"", silent=True)
    assert daemon_problem(timeout=0.2) == f"the Docker daemon at {server.path} does not answer (timed out)"


def test_ping_of_a_dead_daemon_or_none_at_all(
    daemon: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = daemon(http("200 OK"))
    server.stop()  # its socket file stays behind
    assert daemon_problem() == f"the Docker daemon at {server.path} does not answer (Connection refused)"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{folder}/none.sock")
    assert daemon_problem() == f"no Docker socket at {folder}/none.sock"


def test_ping_over_tcp_goes_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    set_env(monkeypatch, DOCKER_HOST=f"tcp://127.0.0.1:{port}")
    problem = daemon_problem()
    assert problem is not None and problem.startswith("no Docker daemon answers: ")


# ---------------------------------------------------------------- Engine API GETs
def test_image_labels_ask_for_the_quoted_reference(daemon: Any) -> None:
    server = daemon(http("200 OK", {"Config": {"Labels": {"org.buildgraph.key": "abc"}}}))
    assert EngineAPI(str(server.path)).image_labels("bg/p/s:abc") == {"org.buildgraph.key": "abc"}
    assert server.requests == ["GET /images/bg%2Fp%2Fs%3Aabc/json HTTP/1.0"]


@pytest.mark.parametrize("config", [{}, {"Config": None}, {"Config": {"Labels": None}}])
def test_an_image_without_labels_has_none(daemon: Any, config: dict[str, Any]) -> None:
    daemon(http("200 OK", config))
    api = EngineAPI.available()  # the daemon DOCKER_HOST names
    assert api is not None and api.image_labels("x") == {}


def test_a_missing_image_is_none(daemon: Any) -> None:
    daemon(http("404 Not Found", {"message": "No such image: x:y"}))
    api = EngineAPI.available()
    assert api is not None and api.image_labels("x:y") is None


def test_containers_with_a_label(daemon: Any) -> None:
    listed = [{"Id": "c1", "Labels": {"org.buildgraph.run": "r"}}]
    server = daemon(http("200 OK", listed))
    assert EngineAPI(str(server.path)).containers_with_label("org.buildgraph.run") == listed
    filters = "%7B%22label%22%3A%20%5B%22org.buildgraph.run%22%5D%7D"
    assert server.requests == [f"GET /containers/json?all=1&filters={filters} HTTP/1.0"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (http("500 Internal Server Error", {"message": "disk I/O"}), "answered 500 for image x: disk I/O"),
        (http("503 Service Unavailable"), "answered 503 for image x"),
        (b'HTTP/1.1 200 OK\r\n\r\n{"Config": {', "answered b'HTTP/1.1 200 OK"),  # cut short
        (b"garbage\r\n\r\n{}", "answered b'garbage"),
        (None, "answered b''"),  # accepted the request, then died
    ],
)
def test_a_daemon_that_fails_or_dies_is_an_environment_problem(
    daemon: Any, reply: bytes | None, message: str
) -> None:
    server = daemon(reply)
    with pytest.raises(EnvironmentProblem) as raised:
        EngineAPI(str(server.path)).image_labels("x")
    assert raised.value.message.startswith(f"the Docker daemon at {server.path} {message}")
    assert raised.value.exit_status == 3


def test_listing_containers_on_a_failing_daemon_is_an_environment_problem(daemon: Any) -> None:
    server = daemon(http("500 Internal Server Error", {"message": "boom"}))
    with pytest.raises(EnvironmentProblem, match="answered 500 listing containers: boom"):
        EngineAPI(str(server.path)).containers_with_label("l")


def test_a_daemon_gone_between_two_gets(daemon: Any) -> None:
    server = daemon(http("404 Not Found"))
    api = EngineAPI(str(server.path))
    assert api.image_labels("x") is None
    server.stop()
    with pytest.raises(EnvironmentProblem, match="does not answer \\(Connection refused\\)") as raised:
        api.image_labels("x")
    assert "--executor local" in raised.value.hint


# ---------------------------------------------------------------- choosing the executor
def spec(*run_stages: RunStage) -> Spec:
    stages: dict[str, Stage] = {
        "img": ImageStage("img", ImageRef("debian")),
        "host": RunStage("host", "true"),
    }
    return Spec("p", stages={**stages, **{s.name: s for s in run_stages}})


def test_local_and_auto_without_images_run_on_the_host_without_asking_docker(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    set_env(monkeypatch, DOCKER_HOST=f"unix://{folder}/none.sock")  # no daemon: never asked
    for name, project in [("auto", spec()), ("local", spec(RunStage("in", "true", image="img")))]:
        executor = choose_executor(name, project)
        try:
            assert executor.name == "local"
        finally:
            executor.close()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("docker", "the docker executor needs Docker"),
        ("auto", "run stages with an `image` execute in containers (executor auto), which needs Docker"),
    ],
)
def test_containers_without_a_daemon_are_an_environment_problem(daemon: Any, name: str, why: str) -> None:
    server = daemon(http("500 Internal Server Error"))
    with pytest.raises(EnvironmentProblem) as raised:
        choose_executor(name, spec(RunStage("in", "true", image="img")))
    assert raised.value.message.startswith(
        f"{why}: the Docker daemon at {server.path} answered b'HTTP/1.1 500"
    )
    assert '`executor = "local"`' in raised.value.hint


def test_containers_with_a_daemon_that_answers(daemon: Any) -> None:
    daemon(http("200 OK"))
    executor = choose_executor("auto", spec(RunStage("in", "true", image="img")))
    try:
        assert executor.name == "docker"
    finally:
        executor.close()
