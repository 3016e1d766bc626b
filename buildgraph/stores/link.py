"""How cache objects reach the workspace: reflink, hardlink or copy; and safe replacement.

A workspace path is never truncated or written in place: it may be a hardlink to a cache
object, and writing through it would corrupt the cache. Old content is unlinked (or renamed
aside) and new content is built in a temporary sibling, then renamed over it.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable
from typing import Literal

from buildgraph.stores.tree import LINK_MODE, Digest

LinkMode = Literal["auto", "hardlink", "copy"]
LINK_MODES = ("auto", "hardlink", "copy")
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


class LinkImpossible(OSError):
    """`link = "hardlink"` was asked for and the filesystem refused (e.g. another device)."""


def temp_sibling(path: str, tag: str = "tmp") -> str:
    """A unique hidden name beside `path`; `*.tmp-*` leftovers of a killed process are gc'd."""
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}.{tag}-{os.getpid()}-{os.urandom(4).hex()}")


class Reflinker:
    """FICLONE (copy-on-write clone), remembering the devices that do not support it."""

    def __init__(self) -> None:
        self._unsupported: set[int] = set()
        self._devices: dict[str, int] = {}  # folder → its device: one stat per folder, not per file
        self._lock = threading.Lock()

    def clone(self, src: str, dst: str) -> bool:
        """Create `dst` as a clone of `src`; False (and nothing created) where unsupported."""
        folder = os.path.dirname(dst)
        device = self._devices.get(folder)
        if device is None:
            device = self._devices[folder] = os.stat(folder).st_dev
        if device in self._unsupported:
            return False
        import fcntl

        src_fd = os.open(src, os.O_RDONLY)
        try:
            dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.ioctl(dst_fd, FICLONE, src_fd)
                return True
            except OSError:
                os.unlink(dst)
                with self._lock:
                    self._unsupported.add(device)
                return False
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)


def copy_file(src: str, dst: str, mode: int, reflinker: Reflinker | None = None) -> None:
    """An independent copy of `src` at the new path `dst` (a clone where the filesystem can)."""
    if reflinker is None or not reflinker.clone(src, dst):
        shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def place_file(obj: str, dst: str, mode: int, link: LinkMode, reflinker: Reflinker) -> str:
    """Make the new path `dst` hold the object's bytes; returns "reflink", "hardlink" or "copy".

    "auto": a clone, else a hardlink, else a copy. "hardlink": never copy bytes (a clone or a
    hardlink, LinkImpossible otherwise). "copy": an independent file (cloned where possible).
    Hardlinks share the object's inode and so its read-only mode; an executable (mode 0o755)
    needs its own inode, so without clones it is copied even under "hardlink"."""
    if link != "copy" and reflinker.clone(obj, dst):
        os.chmod(dst, mode)
        return "reflink"
    if link != "copy" and mode != 0o755:
        try:
            os.link(obj, dst)
            return "hardlink"
        except OSError as error:
            if link == "hardlink":
                raise LinkImpossible(
                    error.errno, f"cannot hardlink {obj} to {dst}: {error.strerror}"
                ) from error
    copy_file(obj, dst, mode)
    return "copy"


def remove_path(path: str, linked: list[os.stat_result] | None = None) -> None:
    """Remove a file, symlink or tree (read-only folders included); a missing path is fine.

    The lstat of every removed file with other links is appended to `linked`: unlinking
    changes the ctime of the inode it shared (a cache object), which the caller may refresh."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        if linked is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            linked.append(st)
        os.unlink(path)
        return
    if st.st_mode & 0o700 != 0o700:
        os.chmod(path, st.st_mode | 0o700)
    with os.scandir(path) as listing:
        children = [item.path for item in listing]
    for child in children:
        remove_path(child, linked)
    os.rmdir(path)


def swap_into_place(built: str, dest: str, linked: list[os.stat_result] | None = None) -> None:
    """Rename `built` to `dest`, replacing whatever is there without writing through it."""
    try:
        old = os.lstat(dest)
    except FileNotFoundError:
        os.rename(built, dest)
        return
    new = os.lstat(built)
    if os.path.samestat(old, new):
        os.unlink(built)  # rename() between two links to one inode does nothing: dest is right
        return
    if not stat.S_ISDIR(old.st_mode) and not stat.S_ISDIR(new.st_mode):
        if linked is not None and stat.S_ISREG(old.st_mode) and old.st_nlink > 1:
            linked.append(old)
        os.replace(built, dest)  # a new directory entry: the old inode's bytes are untouched
        return
    aside = temp_sibling(dest, "old")
    os.rename(dest, aside)  # renaming changes the ctime of the inode moved (not of a tree's files)
    os.rename(built, dest)
    if stat.S_ISDIR(old.st_mode):
        remove_path(aside, linked)
        return
    if linked is not None and stat.S_ISREG(old.st_mode) and old.st_nlink > 1:
        linked.append(old)  # its stat before we renamed it
    os.unlink(aside)


def build_record(
    record: Digest, built: str, link: LinkMode, object_path: Callable[[str], str], reflinker: Reflinker
) -> list[str]:
    """Create the new path `built` holding `record` from the objects at `object_path(digest)`;
    returns the digests of the objects that were hardlinked (their ctime changed)."""
    hardlinked: list[str] = []

    def place(digest: str, path: str, mode: int) -> None:
        if place_file(object_path(digest), path, mode, link, reflinker) == "hardlink":
            hardlinked.append(digest)

    def symlink(digest: str, path: str) -> None:
        with open(object_path(digest), "rb") as f:  # a link's object holds its target
            os.symlink(os.fsdecode(f.read()), path)

    if record.kind == "file":
        place(record.digest, built, 0o644)
    elif record.kind == "link":
        symlink(record.digest, built)
    else:
        os.mkdir(built)
        made = {built}
        for entry in record.tree:
            path = os.path.join(built, entry.relpath)
            folder = os.path.dirname(path)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            if entry.mode == LINK_MODE:
                symlink(entry.digest, path)
            else:
                place(entry.digest, path, entry.mode)
    return hardlinked
