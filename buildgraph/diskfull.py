"""A full disk is an environment problem, not a crash.

Every write of bg's state (cache objects, manifests, the journal, Buildfile.lock, the stat
caches, logs, staged inputs, restored outputs) runs inside `writing(what, where, needed)`,
which turns ENOSPC / EDQUOT (and SQLite's SQLITE_FULL) into `NoSpace`: exit 3, one line
naming what was being written, how much it needed and how much is free on which
filesystem, and a hint to free space. Turning the error into words is all this module does;
the code inside must leave nothing half-written (temporaries removed, no record of bytes that
did not land), so that the next run, once space is freed, reruns or restores the step.

The first shortage wins: a write failing while an earlier bg error propagates (the clean-up
of a command stopped by a full disk: the journal fold, the stat-cache flush) raises that
earlier error again, because it names the write that found the disk full.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Union

from buildgraph.errors import BgError, EnvironmentProblem

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # the primary result code; extended codes carry it in their low byte
_SQLITE_IOERR_SHMSIZE = 4874  # opening in WAL mode on a full disk: its -shm file cannot grow
StrPath = Union[str, "os.PathLike[str]"]
Needed = int | Callable[[], int | None] | None  # bytes, or computed only on failure


class NoSpace(EnvironmentProblem):
    """The filesystem (or the user's quota) is full; `what` names what was being written."""

    def __init__(self, what: str, where: StrPath, needed: int | None = None, quota: bool = False) -> None:
        mount = mount_point(where)
        amounts = [f"{human(needed)} needed"] if needed is not None else []
        if quota:  # the filesystem's free space says nothing about the quota
            message, amounts = "disk quota exceeded", [*amounts, f"on {mount}"]
        else:
            message = "no space left on device"
            amounts.append(f"{human(free_bytes(where))} free on {mount}")
        super().__init__(
            f"{message} writing {what} ({', '.join(amounts)})",
            hint=f"free space on {mount} (`bg gc` deletes cached artefacts nothing uses) and run the "
            "command again; completed stages are kept",
        )


def is_no_space(error: BaseException) -> bool:
    """ENOSPC or EDQUOT from the OS; from sqlite3, SQLITE_FULL ("database or disk is full") or
    SQLITE_IOERR_SHMSIZE (a "disk I/O error" opening a WAL database with no room for its -shm file)."""
    if isinstance(error, OSError):
        return error.errno in _NO_SPACE
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF == _SQLITE_FULL or code == _SQLITE_IOERR_SHMSIZE)


def problem(error: BaseException, what: str, where: StrPath, needed: Needed = None) -> BgError:
    """What to raise for `error`, a shortage (see `is_no_space`) found writing `what` to `where`."""
    earlier = _stopping_already(error)
    if earlier is not None:
        return earlier
    count = needed() if callable(needed) else needed
    return NoSpace(what, where, count, quota=isinstance(error, OSError) and error.errno == errno.EDQUOT)


@contextmanager
def writing(what: str, where: StrPath, needed: Needed = None) -> Iterator[None]:
    """Report a full disk met inside the block as `NoSpace` (other errors pass unchanged).

    `what` reads after "writing": "cache object for stage 'big' output 'out.bin'"; `where` is
    a path on the filesystem written (it need not exist yet); `needed` the bytes the block
    wanted, or a function computing them (called only on failure, after the block cleaned up).
    """
    try:
        yield
    except OSError as error:
        if not is_no_space(error):
            raise
        raise problem(error, what, where, needed) from None


def _stopping_already(error: BaseException) -> BgError | None:
    """The bg error that was propagating when `error` happened (clean-up after it), if any."""
    seen: set[int] = set()
    cause = error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, BgError):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def tree_bytes(path: StrPath) -> int | None:
    """Bytes of the regular files at or below `path` (None when it is gone): what storing it needs."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            return os.lstat(path).st_size
        return sum(
            os.lstat(os.path.join(folder, name)).st_size
            for folder, _, names in os.walk(path)
            for name in names
        )
    except OSError:
        return None


def free_bytes(where: StrPath) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding `where`."""
    st = os.statvfs(_existing(where))
    return st.f_bavail * st.f_frsize


def mount_point(where: StrPath) -> str:
    """The mount point of the filesystem holding `where` (its nearest existing ancestor)."""
    path = _existing(where)
    device = os.stat(path).st_dev
    while path != os.path.dirname(path):
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != device:
            break
        path = parent
    return path


def _existing(where: StrPath) -> str:
    path = os.path.abspath(where)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def human(count: int | None) -> str:
    """Decimal units, as `df -H` prints them: 3000000 → "3.0 MB"."""
    if count is None:
        return "?"
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            break
    return f"{value:.1f} {unit}"
