"""A watchdog that kills running jobs' process groups when bg itself dies, even by SIGKILL.

Each job runs in its own session (so a Ctrl-C reaches bg alone, which then stops its jobs
in order). The price is that a SIGKILLed bg would leave its commands running, reparented
to init — a training job holding its GPU. The guardian closes that gap: one `sh` per bg
(started with the first job, in its own session) blocks reading a pipe whose only writer
is bg. The kernel closes that pipe when bg exits, however it exits; the guardian then
kills every process group still listed in its file. bg lists a group from just after its
start until just before reaping its leader, so a listed group id cannot have been reused.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

# Builtins only (read, kill, rm is the one external), so the guardian costs one process.
_SCRIPT = (
    "while read -r _; do :; done; "
    '[ -f "$1" ] && while read -r g; do kill -KILL -"$g" 2>/dev/null; done < "$1"; '
    'rm -f "$1"'
)


class Guardian:
    def __init__(self, folder: Path | None = None) -> None:
        self.file = Path(folder or tempfile.gettempdir()) / f"bg-groups-{os.getpid()}-{id(self):x}"
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def add(self, pgid: int) -> None:
        with self._lock:
            self._start()
            self._groups.add(pgid)
            self._write()

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            self._write()

    def close(self) -> None:
        with self._lock:
            self._groups.clear()
            if self._proc is not None:
                self._write()
                _stop(self._proc)
                self._proc = None
            self.file.unlink(missing_ok=True)

    def _start(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["sh", "-c", _SCRIPT, "bg-guardian", str(self.file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # an executor dropped without close() still ends its guardian cleanly
            weakref.finalize(self, _stop, self._proc)

    def _write(self) -> None:
        # Not fsynced: the guardian reads it from the page cache; a power cut kills jobs anyway.
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_text("".join(f"{g}\n" for g in sorted(self._groups)))
        os.replace(tmp, self.file)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    proc.wait()
