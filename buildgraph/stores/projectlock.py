"""One `bg` at a time per project: `flock` on `.bg/lock`.

`flock` belongs to the open file description, so the kernel releases it when the holder
exits, however it dies (SIGKILL included): there is no stale lock to clean up. The descriptor
is close-on-exec, so the commands `bg` starts do not inherit (and hold) it. Commands that only
read (status, explain) take it shared, so they run together but never beside a `bg run`.
The exclusive holder writes its pid into the file, for the message a waiter shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from buildgraph.diskfull import is_no_space
from buildgraph.errors import EnvironmentProblem


class ProjectLock:
    def __init__(
        self, path: Path, shared: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> None:
        self.path = path
        self.shared = shared
        self.on_wait = on_wait
        self._fd: int | None = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; if another process holds it, call `on_wait` once, then block."""
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        fd = self._open()
        if fd is None:
            return  # read-only project: nobody can be writing it
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.on_wait is not None:
                    self.on_wait(self._waiting_message(fd))
                fcntl.flock(fd, mode)  # Ctrl-C interrupts the wait (KeyboardInterrupt)
            if not self.shared:
                _write_pid(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        if not self.shared:
            os.ftruncate(self._fd, 0)  # still held: no waiter reads our pid after we are gone
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def _open(self) -> int | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if self.shared:  # a reader in a project it cannot write: flock works on O_RDONLY
                try:
                    return os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    return None  # and without a lock file nobody can be writing it
                except OSError:
                    pass
            raise EnvironmentProblem(
                f"cannot open the project lock {self.path}: {error.strerror}",
                "check that the project folder is writable by you",
            ) from None

    @staticmethod
    def _waiting_message(fd: int) -> str:
        holder = _live_pid(os.pread(fd, 32, 0))
        who = f" (pid {holder})" if holder else ""
        return f"another bg is running in this project{who}; waiting…"


def _write_pid(fd: int) -> None:
    """Leave our pid in the lock file for a waiter's message. On a full disk the lock is held
    all the same and only that message loses the pid: `bg gc`, which frees space, must run."""
    os.ftruncate(fd, 0)
    try:
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as error:
        if not is_no_space(error):
            raise


def _live_pid(raw: bytes) -> int | None:
    """The pid written by the exclusive holder, if that process still exists."""
    try:
        pid = int(raw.decode().strip())
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # exists, owned by someone else
    except ValueError:
        return None  # empty: a shared holder, or between holders
    return pid
