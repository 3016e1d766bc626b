"""The container guardian against a fake Docker engine: a real guardian process outliving a
real SIGKILLed owner, over a unix socket and over tcp, and DOCKER_HOST read as the SDK reads it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buildgraph.executors.guardian import Guardian

OWNER = """
import sys, time
from pathlib import Path
from buildgraph.executors.guardian import Guardian, container_remover
folder, address, *names = sys.argv[1:]
guardian = Guardian(Path(folder), container_remover(address))
for name in names:
    guardian.add(name)
guardian.discard("bg-done-0")  # removed by its owner already: not the guardian's business
print(guardian.file, flush=True)
time.sleep(600)
"""


class FakeEngine:
    """Answers each request with 204, or with the statuses queued for its path; records the request lines."""

    def __init__(self, server: socket.socket, queued: dict[str, list[int]]) -> None:
        self.server, self.queued = server, queued
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed at the end of the test
            with conn:
                line = conn.makefile("rb").readline().decode().strip()
                path = line.split(" ")[1]
                status = (self.queued.get(path) or [204]).pop(0)
                self.requests.append(line)
                conn.sendall(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket's path is limited to ~100 bytes."""
    with tempfile.TemporaryDirectory(prefix="bgg") as folder:
        yield Path(folder)


def serve(server: socket.socket, queued: dict[str, list[int]] | None = None) -> FakeEngine:
    server.listen(8)
    return FakeEngine(server, queued or {})


def kill_owner(folder: Path, address: str, *names: str) -> Path:
    """Start an owner that lists `names` with a guardian, SIGKILL it; return the guardian's file."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(folder), address, *names], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    file = Path(owner.stdout.readline().strip())
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    return file


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def delete(name: str) -> str:
    return f"DELETE /containers/{name}?force=1 HTTP/1.0"


def test_a_killed_owner_s_containers_are_removed_over_the_unix_socket(short_dir: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(short_dir / "d.sock"))
        engine = serve(server)
        file = kill_owner(short_dir, f"unix:{short_dir / 'd.sock'}", "bg-a-1", "bg-b-2", "bg-done-0")
        wait_for(lambda: not file.exists(), "the guardian to finish")
    assert sorted(engine.requests) == [delete("bg-a-1"), delete("bg-b-2")]


def test_a_name_the_engine_does_not_know_yet_is_asked_again_over_tcp(short_dir: Path) -> None:
    """bg may die while its create request is in flight: the container appears just after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        engine = serve(server, {"/containers/bg-late-1?force=1": [404]})
        file = kill_owner(short_dir, f"tcp:127.0.0.1:{server.getsockname()[1]}", "bg-late-1")
        wait_for(lambda: not file.exists(), "the guardian to finish")
    assert engine.requests == [delete("bg-late-1")] * 2


def test_a_closed_guardian_removes_nothing(short_dir: Path) -> None:
    from buildgraph.executors.guardian import Guardian, container_remover

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(short_dir / "d.sock"))
        engine = serve(server)
        guardian = Guardian(short_dir, container_remover(f"unix:{short_dir / 'd.sock'}"))
        guardian.add("bg-a-1")
        guardian.close()  # bg's normal end: it removed its containers itself
    assert engine.requests == []
    assert not guardian.file.exists()


@pytest.mark.parametrize(
    ("env", "address"),
    [
        ({}, "unix:/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "unix:/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2375"}, "tcp:10.0.0.5:2375"),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2375", "DOCKER_TLS_VERIFY": ""}, "tcp:10.0.0.5:2375"),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1"}, None),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_CERT_PATH": "/certs"}, None),
        ({"DOCKER_TLS_VERIFY": "1"}, "unix:/var/run/docker.sock"),  # TLS does not apply to a socket
        ({"DOCKER_HOST": "ssh://me@builder"}, None),
    ],
)
def test_the_guardian_talks_to_the_engine_the_sdk_uses(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], address: str | None
) -> None:
    pytest.importorskip("docker")
    from buildgraph.dockerd.address import engine_address

    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert engine_address() == address


def test_the_guardian_script_imports_the_standard_library_only() -> None:
    import ast

    import buildgraph.executors.remove_containers as script

    tree = ast.parse(Path(script.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


# ---------------------------------------------------------------- the list, rewritten in place
WAIT_ONLY = ("sh", "-c", "while read -r _; do :; done", "guardian")  # lists nothing it acts on


def _listed(file: Path) -> list[str]:
    return [line for line in file.read_text().splitlines() if line]


def test_the_list_is_rewritten_in_place_and_shorter_lists_are_padded(tmp_path: Path) -> None:
    guardian = Guardian(tmp_path, WAIT_ONLY)
    try:
        guardian.add(111)
        inode = guardian.file.stat().st_ino
        guardian.add(2222)
        assert _listed(guardian.file) == ["111", "2222"]
        guardian.discard(2222)
        assert _listed(guardian.file) == ["111"], "no id left behind by the longer list before"
        assert guardian.file.read_bytes() == b"111\n" + b"\n" * 5, "padded over what it held"
        assert guardian.file.stat().st_ino == inode, "in place: no temporary and rename per job"
    finally:
        guardian.close()
    assert not guardian.file.exists()


def test_a_list_longer_than_a_page_is_replaced_whole(tmp_path: Path) -> None:
    guardian = Guardian(tmp_path, WAIT_ONLY)
    try:
        names = [f"bg-{i:04d}-{'x' * 40}" for i in range(120)]  # ~6 KB
        for name in names:
            guardian.add(name)
        assert _listed(guardian.file) == sorted(names)
        inode = guardian.file.stat().st_ino
        for name in names[1:]:
            guardian.discard(name)
        assert _listed(guardian.file) == [names[0]]
        assert guardian.file.stat().st_ino != inode, "replaced by a rename, not torn in place"
        assert guardian.file.stat().st_size <= 4096, "back in place once the list fits a page"
    finally:
        guardian.close()
