"""What a path's digest is: the canonical listing of a tree, and the walk that lists it.

Digest scheme (one implementation, shared by the stat cache `stores.digests`, the stores'
outputs `stores.outputs` and the artefact cache `stores.cache`):

    file  sha256 of its bytes
    link  sha256 of its target string
    dir   sha256 of the canonical listing, one line per regular file or symlink below it,
          "{mode:o} {digest} {relpath}\\n", sorted by relpath (POSIX, compared as bytes);
          mode is 644, 755 (any exec bit set) or 120000 (symlink)

Empty directories are not part of a tree (as in git and DVC): a tree is its files, so a tool
leaving an empty folder behind changes no digest. Sockets, fifos and devices are skipped.
What the walk does with a symlink below a tree (keep, follow or refuse it) is `stores.symlinks`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from buildgraph.stores.symlinks import KEEP_LINKS, Links

CHUNK = 1 << 20
LINK_MODE = 0o120000

Kind = Literal["file", "dir", "link"]
FileDigester = Callable[[str, os.stat_result], str]
StrPath = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TreeEntry:
    relpath: str  # POSIX, relative to the tree's root
    mode: int  # 0o644, 0o755 or LINK_MODE
    digest: str
    size: int


@dataclass(frozen=True)
class Digest:
    kind: Kind
    digest: str
    size: int  # bytes of the file, of the link target, or of every entry of a tree
    tree: tuple[TreeEntry, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.kind, "digest": self.digest, "size": self.size}
        if self.kind == "dir":
            found["tree"] = [[e.relpath, f"{e.mode:o}", e.digest, e.size] for e in self.tree]
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Digest:
        """Inverse of `as_dict`; ValueError/KeyError/TypeError on anything malformed."""
        kind = data["kind"]
        if kind not in ("file", "dir", "link"):
            raise ValueError(f"unknown kind {kind!r}")
        tree = tuple(TreeEntry(str(r), int(m, 8), str(d), int(s)) for r, m, d, s in data.get("tree", ()))
        return cls(kind, str(data["digest"]), int(data["size"]), tree)


# ---------------------------------------------------------------- digest scheme
_buffers = threading.local()


def hash_file(path: StrPath) -> str:
    """sha256 of a file's bytes, read 1 MiB at a time into its thread's buffer (a fresh 1 MiB
    per call, zeroed and mapped, cost more than hashing a small file)."""
    digest = hashlib.sha256()
    buffer = getattr(_buffers, "chunk", None)
    if buffer is None:
        buffer = _buffers.chunk = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while count := f.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def file_mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def link_entry(relpath: str, target: str) -> TreeEntry:
    raw = os.fsencode(target)
    return TreeEntry(relpath, LINK_MODE, hashlib.sha256(raw).hexdigest(), len(raw))


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # undecodable names round-trip as their bytes


def tree_digest(entries: Iterable[TreeEntry]) -> str:
    digest = hashlib.sha256()
    for e in entries:
        digest.update(_encoded(f"{e.mode:o} {e.digest} {e.relpath}\n"))
    return digest.hexdigest()


def sorted_tree(entries: Iterable[TreeEntry]) -> tuple[TreeEntry, ...]:
    """`entries` in the listing's order: by relpath, compared as bytes."""
    return tuple(sorted(entries, key=lambda e: _encoded(e.relpath)))


def dir_digest(tree: tuple[TreeEntry, ...]) -> Digest:
    return Digest("dir", tree_digest(tree), sum(e.size for e in tree), tree)


# ---------------------------------------------------------------- the walk
Item = tuple[str, str, Literal["file", "dir", "link"], "os.stat_result | None"]  # see scan_tree


def scan_tree(root: str, links: Links = KEEP_LINKS) -> Iterator[Item]:
    """(relpath, path, kind, st) of everything below `root`, each folder before what it holds.

    kind "link" is a symlink kept as a link; a followed one comes as the "file" or "dir" it
    leads to, with its target's `st` (None otherwise: a caller that needs it lstats the path).
    Types come from the directory listing, so a scan that only checks links stats nothing.
    Sockets, fifos and devices are skipped."""
    tree = ""  # the real path of `root`, found at the first link
    pending: list[tuple[str, str, tuple[str, ...]]] = [("", root, ())]
    while pending:
        prefix, folder, chain = pending.pop()
        with os.scandir(folder) as listing:
            for item in listing:
                relpath = prefix + item.name
                if item.is_symlink():
                    tree = tree or os.path.realpath(root)
                    st = links.resolve(tree, relpath, item.path, (tree, *chain))
                    if st is None:
                        yield relpath, item.path, "link", None
                    elif stat.S_ISDIR(st.st_mode):
                        yield relpath, item.path, "dir", st
                        pending.append((relpath + "/", item.path, (*chain, os.path.realpath(item.path))))
                    else:
                        yield relpath, item.path, "file", st
                elif item.is_dir(follow_symlinks=False):
                    yield relpath, item.path, "dir", None
                    pending.append((relpath + "/", item.path, chain))
                elif item.is_file(follow_symlinks=False):
                    yield relpath, item.path, "file", None


def walk_tree(root: str, file_digest: FileDigester, links: Links = KEEP_LINKS) -> tuple[TreeEntry, ...]:
    """Every regular file and kept symlink below `root`, sorted; `file_digest(path, st)` hashes
    (`st`: the file's lstat, or a followed link's target's stat)."""
    entries: list[TreeEntry] = []
    for relpath, path, kind, st in scan_tree(root, links):
        if kind == "link":
            entries.append(link_entry(relpath, os.readlink(path)))
        elif kind == "file":
            st = st or os.lstat(path)
            entries.append(TreeEntry(relpath, file_mode(st.st_mode), file_digest(path, st), st.st_size))
    return sorted_tree(entries)
