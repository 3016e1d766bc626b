"""ProjectLock: one writer per project, waiting said aloud, released when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from buildgraph.stores.projectlock import ProjectLock

HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from buildgraph.stores.projectlock import ProjectLock\n"
    "with ProjectLock(Path(sys.argv[1]), shared=sys.argv[2] == 'shared'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)

WAITER = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "from buildgraph.stores.projectlock import ProjectLock\n"
    "def said(message):\n"
    "    print(message, flush=True)\n"
    "    os._exit(7)\n"
    "ProjectLock(Path(sys.argv[1]), shared=sys.argv[2] == 'shared', on_wait=said).acquire()\n"
    "print('acquired', flush=True)\n"
)


@contextmanager
def holder(path: Path, mode: str = "exclusive") -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "held\n"
            yield child
        finally:
            child.kill()


def waiter(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WAITER, str(path), mode],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / ".bg" / "lock"


def test_holder_writes_its_pid_and_clears_it(lock_path: Path) -> None:
    with ProjectLock(lock_path) as lock:
        assert lock.held and lock_path.read_text() == f"{os.getpid()}\n"
    assert not lock.held and lock_path.read_text() == ""


def test_waiter_is_told_who_holds_the_lock(lock_path: Path) -> None:
    with ProjectLock(lock_path):
        done = waiter(lock_path, "exclusive")
    assert done.returncode == 7
    assert done.stdout == f"another bg is running in this project (pid {os.getpid()}); waiting…\n"


def test_lock_is_released_when_the_holder_is_killed(lock_path: Path) -> None:
    messages: list[str] = []
    with holder(lock_path) as child:

        def on_wait(message: str) -> None:
            messages.append(message)
            os.kill(child.pid, signal.SIGKILL)  # the kernel releases its flock

        with ProjectLock(lock_path, on_wait=on_wait) as lock:
            assert lock.held
    assert messages == [f"another bg is running in this project (pid {child.pid}); waiting…"]


def test_readers_share_and_keep_writers_out(lock_path: Path) -> None:
    with ProjectLock(lock_path, shared=True), ProjectLock(lock_path, shared=True):
        assert waiter(lock_path, "shared").stdout == "acquired\n"
        done = waiter(lock_path, "exclusive")
    assert done.returncode == 7 and done.stdout == "another bg is running in this project; waiting…\n"
    assert waiter(lock_path, "exclusive").stdout == "acquired\n"


def test_reader_waits_for_a_writer(lock_path: Path) -> None:
    messages: list[str] = []
    with holder(lock_path) as child:

        def on_wait(message: str) -> None:
            messages.append(message)
            os.kill(child.pid, signal.SIGKILL)

        with ProjectLock(lock_path, shared=True, on_wait=on_wait):
            assert len(messages) == 1 and str(child.pid) in messages[0]


def test_acquiring_twice_is_a_bug(lock_path: Path) -> None:
    with ProjectLock(lock_path) as lock, pytest.raises(RuntimeError):
        lock.acquire()


def test_children_do_not_inherit_the_lock(lock_path: Path) -> None:
    with ProjectLock(lock_path):
        sleeper = subprocess.Popen(["sleep", "30"])  # a stage command outliving bg must not hold it
    try:
        assert waiter(lock_path, "exclusive").stdout == "acquired\n"
    finally:
        sleeper.kill()
        sleeper.wait()
