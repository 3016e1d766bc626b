"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync dir.

A reader sees the old bytes or the new bytes, never a mix; a process killed at any
point leaves at most a stray `*.tmp-*` file, which `bg gc` removes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildgraph import faults


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's bytes to disk (before renaming it to a name that promises them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data` atomically; `durable` also fsyncs file and directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_aside(path, data, mode, durable)
    try:
        os.replace(tmp, path)  # can fail too (ENOSPC growing a directory on ext4)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_aside(path: Path, data: bytes, mode: int = 0o644, durable: bool = False) -> Path:
    """Write `data` to a new hidden temporary beside `path` (its folder must exist) and return
    it, for the caller to rename over `path`: at once (`atomic_write`), or once something else
    is durable (a group commit: `stores.cache.ArtefactCache.put_manifests`)."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        half = len(view) // 2
        view = view[os.write(fd, view[:half]) :] if half else view
        faults.point(f"write:{path.name}")  # half the bytes are on disk, under the temp name
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
        closing, fd = fd, -1
        os.close(closing)  # may report a deferred write error (NFS): not closed twice
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def sync_filesystem(path: str | os.PathLike[str]) -> bool:
    """Make everything written to the filesystem holding `path` durable, with one `syncfs(2)`
    (Linux); False where there is none (the caller then fsyncs what it wrote, one by one).

    One call for a whole batch is git's `core.fsyncMethod=batch` idea: per-file fsyncs each
    wait for a journal commit; one sync of the filesystem waits once for all of them."""
    syncfs = _syncfs()
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            import ctypes

            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), os.fspath(path))
    finally:
        os.close(fd)
    return True


_SYNCFS: list[object] = []  # [the libc function or None], looked up once


def _syncfs():  # type: ignore[no-untyped-def]
    if not _SYNCFS:
        function = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes  # only by a run that stores something: a null run never syncs

                function = ctypes.CDLL(None, use_errno=True).syncfs
            except (OSError, AttributeError):  # no libc symbol (musl without it, a sandbox)
                function = None
        _SYNCFS.append(function)
    return _SYNCFS[0]


def append_whole(fd: int, data: bytes) -> None:
    """Append `data` to the O_APPEND descriptor `fd` whole or not at all: a write that fails
    part-way (a full disk) is cut back off, so the file never ends in a torn line that the
    next append would glue itself to. The caller must be the file's only writer."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        if len(view) < len(data):
            os.ftruncate(fd, os.fstat(fd).st_size - (len(data) - len(view)))
        raise


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write(path, text.encode("utf-8"), durable=durable)
