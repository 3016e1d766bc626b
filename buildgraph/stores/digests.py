"""Digests of workspace paths, through a stat cache so that unchanged files are never re-read.

What a digest is (the canonical listing of a tree) is `stores.tree`; which symlinks a walk
keeps, follows or refuses is `stores.symlinks`; the sqlite table is `stores.statdb`.

The stat cache maps path → (inode, size, mtime_ns, ctime_ns, digest, hashed_ns). A file whose
four stat fields equal its row is not read. ctime is compared too: it catches an in-place edit
that restored mtime. *Racy files* (git's "racily clean" problem): a file written within the
timestamp granularity of our hashing can change again without its stat changing. A row is
therefore trusted only when `mtime_ns < hashed_ns - racy_window_ns` (2 s on coarse-timestamp
filesystems, 100 ms where timestamps carry sub-millisecond digits — still many clock ticks);
otherwise the file is hashed again and the row refreshed. A file
touched right before a run thus costs one extra hash on the next run, then none.

Rows are kept in memory and written in one transaction by `flush()`/`close()`. The database is
disposable (`stores.statdb`): deleted → rebuilt; corrupt → recreated with a warning; busy
(another `bg`) → this run's rows are kept for the next flush; a full disk → `diskfull.NoSpace`,
except with `full_is_error=False` (read-only commands: a warning, and no caching). Thread-safe:
hashing runs outside the lock.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from buildgraph.stores.statdb import Row, StatDb, Warn
from buildgraph.stores.symlinks import KEEP_LINKS, LinkRefused, Links
from buildgraph.stores.tree import (
    CHUNK,
    LINK_MODE,
    Digest,
    StrPath,
    TreeEntry,
    dir_digest,
    file_mode,
    hash_file,
    link_entry,
    sorted_tree,
    tree_digest,
    walk_tree,
)

__all__ = [
    "FINE_RACY_WINDOW_NS",
    "RACY_WINDOW_NS",
    "DigestCache",
    "HashStats",
    "stat_key",
    "warn_stderr",
    # the digest vocabulary, re-exported: tests import it from here (its home: stores.tree, .symlinks)
    "CHUNK",
    "Digest",
    "LinkRefused",
    "Links",
    "TreeEntry",
    "hash_file",
    "tree_digest",
]

RACY_WINDOW_NS = 2_000_000_000
FINE_RACY_WINDOW_NS = 100_000_000


@dataclass
class HashStats:
    files_hashed: int = 0
    bytes_hashed: int = 0


def warn_stderr(message: str) -> None:
    print(f"bg: warning: {message}", file=sys.stderr)


def _normal_absolute(path: StrPath) -> TypeGuard[str]:
    """True for a str that `os.path.abspath` would return unchanged (the cheap, common case)."""
    return (
        isinstance(path, str)
        and path.startswith("/")
        and "//" not in path
        and "/." not in path
        and not path.endswith("/")
    )


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DigestCache:
    """Digests of paths, by stat where a row proves the bytes unchanged (see module doc)."""

    def __init__(
        self,
        db_path: Path,
        racy_window_ns: int = RACY_WINDOW_NS,
        on_warning: Warn | None = None,
        full_is_error: bool = True,
    ) -> None:
        self._db = StatDb(Path(db_path), on_warning or warn_stderr, full_is_error)
        self._racy_window_ns = racy_window_ns
        self._lock = threading.Lock()
        self._rows: dict[str, Row | None] = {}  # None: known absent from the db
        self._loaded: list[str] = []  # folders whose rows are all in _rows
        self._pending: dict[str, Row | None] = {}
        self._by_inode: dict[int, str] | None = None
        self.stats = HashStats()

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def digest(
        self, path: StrPath, follow_symlinks: bool = False, links: Links = KEEP_LINKS
    ) -> Digest | None:
        """The digest of a file, directory or symlink; None when `path` does not exist.

        `follow_symlinks` applies to `path` itself (e.g. `data -> datasets/v3`), `links` to the
        symlinks below a directory."""
        where = path if _normal_absolute(path) else os.path.abspath(path)
        try:
            st = os.stat(where, follow_symlinks=follow_symlinks)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISREG(st.st_mode):
            return Digest("file", self.file_digest(where, st), st.st_size)
        if stat.S_ISDIR(st.st_mode):
            self.preload(where)
            return dir_digest(walk_tree(where, self.file_digest, links))
        if stat.S_ISLNK(st.st_mode):
            entry = link_entry("", os.readlink(where))
            return Digest("link", entry.digest, entry.size)
        raise ValueError(f"{path}: not a regular file, directory or symlink")

    def digest_text(self, path: str, follow_symlinks: bool = False, links: Links = KEEP_LINKS) -> str | None:
        """`digest(path).digest`, without making a `Digest` for a regular file: for an unchanged
        one, a stat and a dict lookup (the engine asks 1,000s of times a run)."""
        where = path if _normal_absolute(path) else os.path.abspath(path)
        try:
            st = os.stat(where, follow_symlinks=follow_symlinks)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            found = self.digest(where, follow_symlinks, links)
            return found.digest if found else None
        row = self._rows.get(where)  # one dict read needs no lock; a miss takes it (`cached`)
        return row[4] if self._proves(row, st) else self.file_digest(where, st)

    def listing_digest(self, files: Iterable[tuple[str, StrPath]]) -> Digest:
        """The tree digest of chosen files and symlinks, each under its given relpath.

        For a set of files that is not one directory (an image stage's copy sources after its
        ignore rules): the same canonical listing as a directory, so modes count too. A path
        that vanished since it was listed is left out, as a walk would have left it out.
        """
        entries: list[TreeEntry] = []
        for relpath, path in files:
            where = os.path.abspath(path)
            try:
                st = os.lstat(where)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                digest = self.file_digest(where, st)
                entries.append(TreeEntry(relpath, file_mode(st.st_mode), digest, st.st_size))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(link_entry(relpath, os.readlink(where)))
        return dir_digest(sorted_tree(entries))

    def file_digest(self, path: str, st: os.stat_result) -> str:
        """Digest of the regular file `path` whose lstat is `st` (absolute path)."""
        found = self.cached(path, st)
        if found is not None:
            return found
        started = time.time_ns()  # before reading: the conservative end of the racy window
        digest = hash_file(path)
        self.remember_stat(path, st, digest, started)
        with self._lock:
            self.stats.files_hashed += 1
            self.stats.bytes_hashed += st.st_size
        return digest

    def cached(self, path: str, st: os.stat_result) -> str | None:
        """The recorded digest if `st` proves the file unchanged since it was hashed, else None."""
        row = self._row(path)
        return row[4] if self._proves(row, st) else None

    def _proves(self, row: Row | None, st: os.stat_result) -> bool:
        """Whether `row` matches `st` and was hashed well after its mtime: a file changed
        within the timestamp granularity of its hashing is racily clean, not proven."""
        return (
            row is not None
            and row[:4] == stat_key(st)
            and st.st_mtime_ns < row[5] - self._window(st.st_mtime_ns)
        )

    def _window(self, mtime_ns: int) -> int:
        """The racy window for a timestamp: 2 s where the filesystem keeps whole seconds (or
        milliseconds), 100 ms where it keeps finer ones (ext4, xfs, btrfs: a few ms of clock tick)."""
        if mtime_ns % 1_000_000:
            return min(self._racy_window_ns, FINE_RACY_WINDOW_NS)
        return self._racy_window_ns

    def remember(self, path: StrPath, record: Digest | Mapping[str, Any]) -> None:
        """Record that `path` now holds `record` (just materialised), so nothing re-hashes it."""
        found = record if isinstance(record, Digest) else Digest.from_dict(record)
        where = os.path.abspath(path)
        if found.kind == "file":
            self._remember_now(where, found.digest)
        for entry in found.tree:
            if entry.mode != LINK_MODE:
                self._remember_now(os.path.join(where, entry.relpath), entry.digest)

    def remember_stat(self, path: str, st: os.stat_result, digest: str, hashed_ns: int | None = None) -> None:
        row: Row = (*stat_key(st), digest, time.time_ns() if hashed_ns is None else hashed_ns)
        with self._lock:
            self._rows[path] = self._pending[path] = row
            if self._by_inode is not None:
                self._by_inode[st.st_ino] = path

    def forget(self, path: str) -> None:
        with self._lock:
            self._rows[path] = self._pending[path] = None

    def preload(self, folder: StrPath) -> None:
        """Load every row under `folder` in one query (10,000 files: one SELECT, not 10,000)."""
        prefix = os.path.abspath(folder).rstrip("/") + "/"
        with self._lock:
            if any(prefix.startswith(done) for done in self._loaded):
                return
            for path, row in self._db.load_prefix(prefix).items():
                self._rows.setdefault(path, row)  # rows changed in memory are newer
            self._loaded.append(prefix)
            self._by_inode = None

    def find_by_stat(self, st: os.stat_result) -> tuple[str, str] | None:
        """(path, digest) of a loaded row whose stat equals `st` exactly, if any."""
        with self._lock:
            if self._by_inode is None:
                self._by_inode = {row[0]: p for p, row in self._rows.items() if row is not None}
            path = self._by_inode.get(st.st_ino)
            row = self._rows.get(path) if path is not None else None
        if path is None or row is None or row[:4] != stat_key(st):
            return None
        return path, row[4]

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            if not self._db.write(pending):
                self._pending = {**pending, **self._pending}  # busy: keep for the next flush

    def close(self) -> None:
        try:
            self.flush()
        finally:  # also when the disk is full: the connection is closed all the same
            with self._lock:
                self._db.close()

    def _remember_now(self, path: str, digest: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISREG(st.st_mode):
            self.remember_stat(path, st, digest)

    def _row(self, path: str) -> Row | None:
        with self._lock:
            if path in self._rows:
                return self._rows[path]
            if any(path.startswith(done) for done in self._loaded):
                return None
            row = self._rows[path] = self._db.load_one(path)
            return row
