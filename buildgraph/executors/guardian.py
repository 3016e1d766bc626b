"""A watchdog that ends what bg started when bg itself dies, even by SIGKILL.

Each job runs in its own session (so a Ctrl-C reaches bg alone, which then stops its jobs
in order). The price is that a SIGKILLed bg would leave its commands running, reparented
to init — a training job holding its GPU. The guardian closes that gap: one process per
bg (started with the first job, in its own session) blocks reading a pipe whose only writer
is bg. The kernel closes that pipe when bg exits, however it exits; the guardian then ends
everything still listed in its file. For the local executor it is an `sh` that kills the
listed process groups: bg lists a group from just after its start until just before
reaping its leader, so a listed group id cannot have been reused. For the docker executor
it is `remove_containers.py`, which force-removes the listed containers by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

_IN_PLACE_MAX = 4096  # bytes the list may have to be rewritten in place (one page)

# Builtins only (read, kill, rm is the one external), so the guardian costs one process.
_KILL_GROUPS = (
    "while read -r _; do :; done; "
    '[ -f "$1" ] && while read -r g; do kill -KILL -"$g" 2>/dev/null; done < "$1"; '
    'rm -f "$1"'
)

KILL_GROUPS = ("sh", "-c", _KILL_GROUPS, "bg-guardian")


def container_remover(address: str) -> tuple[str, ...]:
    """The guardian command for containers on the engine at `address` (`unix:PATH`, `tcp:HOST:PORT`).

    bg's own interpreter, isolated (-I: no PYTHON* variables, no user site) and without
    site-packages (-S): the script needs the standard library only (one ~10 MB process).
    """
    script = Path(__file__).with_name("remove_containers.py")
    return (sys.executable, "-I", "-S", str(script), address)


class Guardian:
    """Runs `command FILE` once, with the first item, and keeps FILE listing the live items."""

    def __init__(self, folder: Path | None = None, command: Sequence[str] = KILL_GROUPS) -> None:
        self.file = Path(folder or tempfile.gettempdir()) / f"bg-guard-{os.getpid()}-{id(self):x}"
        self.command = tuple(command)
        self._items: set[str] = set()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None  # FILE, open for writing in place
        self._size = 0  # the most bytes FILE has held

    def add(self, item: int | str) -> None:
        """List a process group id (local) or a container name (docker)."""
        with self._lock:
            self._start()
            self._items.add(str(item))
            self._write()

    def discard(self, item: int | str) -> None:
        with self._lock:
            self._items.discard(str(item))
            self._write()

    def close(self) -> None:
        with self._lock:
            self._items.clear()
            if self._proc is not None:
                self._write()
                _stop(self._proc)
                self._proc = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.file.unlink(missing_ok=True)

    def _start(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [*self.command, str(self.file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # an executor dropped without close() still ends its guardian cleanly
            weakref.finalize(self, _stop, self._proc)

    def _write(self) -> None:
        # Twice per job, so in place: one pwrite over all FILE held (a shorter list padded with
        # blank lines, which the guardian skips), whole whenever bg dies. Past a page a write
        # could be torn, leaving ids of reaped groups: then a temporary and a rename. Not
        # fsynced: the guardian reads it from the page cache; a power cut kills the jobs anyway.
        data = "".join(f"{item}\n" for item in sorted(self._items)).encode()
        if max(len(data), self._size) <= _IN_PLACE_MAX:
            if self._fd is None:
                fresh = 0 if self._size else os.O_TRUNC
                self._fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | fresh, 0o600)
            os.pwrite(self._fd, data.ljust(self._size, b"\n"), 0)
            self._size = max(self._size, len(data))
            return
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.file)
        self._size = len(data)
        if self._fd is not None:
            os.close(self._fd)  # it was open on the file replaced
            self._fd = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    proc.wait()
