"""Digests of workspace paths, through a stat cache so that unchanged files are never re-read.

Digest scheme (one implementation, shared with `stores.cache`):

    file  sha256 of its bytes
    link  sha256 of its target string
    dir   sha256 of the canonical listing, one line per regular file or symlink below it,
          "{mode:o} {digest} {relpath}\\n", sorted by relpath (POSIX, compared as bytes);
          mode is 644, 755 (any exec bit set) or 120000 (symlink)

Symlinks below a tree (`Links`): one that *stays inside* the tree (relative, its `..` never
leading out, and resolving to an existing path that is exactly where it reads) is a link entry:
it means the same wherever the tree is put. Any other one is followed when the walk is given
a boundary (the project) it resolves inside: its target's bytes (or its folder's files) then
stand at the link's path, keyed by the target's stat, so that editing the target changes the
digest. Otherwise it is refused (`LinkRefused`) or, for a walk that neither follows nor
refuses, kept as a link entry.

Empty directories are not part of a tree (as in git and DVC): a tree is its files, so a tool
leaving an empty folder behind changes no digest. Sockets, fifos and devices are skipped.

The stat cache maps path → (inode, size, mtime_ns, ctime_ns, digest, hashed_ns). A file whose
four stat fields equal its row is not read. ctime is compared too: it catches an in-place edit
that restored mtime. *Racy files* (git's "racily clean" problem): a file written within the
timestamp granularity of our hashing can change again without its stat changing. A row is
therefore trusted only when `mtime_ns < hashed_ns - racy_window_ns` (2 s on coarse-timestamp
filesystems, 100 ms where timestamps carry sub-millisecond digits — still many clock ticks);
otherwise the file is hashed again and the row refreshed. A file
touched right before a run thus costs one extra hash on the next run, then none.

Rows are kept in memory and written in one transaction by `flush()`/`close()`. The database is
disposable: deleted → rebuilt; corrupt → recreated with a warning; busy (another `bg`) → this
run's rows are kept for the next flush; a full disk → `diskfull.NoSpace`, like every other
write of bg's state (a transaction that did not commit leaves the old rows), except with
`full_is_error=False` (read-only commands: a warning, and no caching). Thread-safe:
hashing runs outside the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, Union

from buildgraph.diskfull import is_no_space, problem

CHUNK = 1 << 20
RACY_WINDOW_NS = 2_000_000_000
FINE_RACY_WINDOW_NS = 100_000_000
LINK_MODE = 0o120000
SCHEMA_VERSION = 1

Kind = Literal["file", "dir", "link"]
Warn = Callable[[str], None]
FileDigester = Callable[[str, os.stat_result], str]
Row = tuple[int, int, int, int, str, int]  # inode, size, mtime_ns, ctime_ns, digest, hashed_ns
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


@dataclass
class HashStats:
    files_hashed: int = 0
    bytes_hashed: int = 0


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


class LinkRefused(ValueError):
    """A symlink below a tree that may be neither kept as a link nor followed."""

    def __init__(self, relpath: str, target: str, reason: str) -> None:
        super().__init__(f"{relpath} -> {target}: {reason}")
        self.relpath = relpath  # in the tree
        self.target = target  # as the message should show it
        self.reason = reason  # the end of a sentence: "outside the project", …


@dataclass(frozen=True)
class Links:
    """What a tree walk does with a symlink that does not stay inside the tree (module doc):
    follow it when it resolves inside `within` (a real path), else refuse it if `refuse`,
    else keep it as a link entry."""

    within: str | None = None
    refuse: bool = False

    def resolve(self, tree: str, relpath: str, path: str, chain: tuple[str, ...]) -> os.stat_result | None:
        """The stat of what stands at the link `path` (`relpath` in the tree whose real path is
        `tree`), or None to keep it as a link. `chain`: the real folders the walk went through
        by following links (and `tree`), for loops."""
        if self.within is None and not self.refuse:
            return None
        target = os.readlink(path)
        real = os.path.realpath(path)
        if stays_inside(tree, relpath, target, real):
            return None
        if self.within is None:
            dangling = not target.startswith("/") and is_within(real, tree) and not os.path.lexists(real)
            raise LinkRefused(relpath, target, DANGLING if dangling else LEAVES)
        found = self._follow(path, real, chain)
        if isinstance(found, os.stat_result):
            return found
        if self.refuse:
            raise LinkRefused(relpath, target if found == DANGLING else real, found)
        return None

    def _follow(self, path: str, real: str, chain: tuple[str, ...]) -> os.stat_result | str:
        """The target's stat, or why it is not followed."""
        assert self.within is not None
        if not is_within(real, self.within):
            return OUTSIDE
        try:
            st = os.stat(real)
        except OSError:
            return DANGLING
        if stat.S_ISDIR(st.st_mode):
            here = os.path.realpath(os.path.dirname(path))
            if any(is_within(folder, real) for folder in (*chain, here)):
                return LOOP
        elif not stat.S_ISREG(st.st_mode):
            return SPECIAL
        return st


KEEP_LINKS = Links()
# why a link is refused: the end of a sentence "… is a symlink to TARGET, <why>"
OUTSIDE = "outside the project"
DANGLING = "which does not exist"
LOOP = "which leads back to a folder that holds it (a loop)"
SPECIAL = "which is not a regular file or directory"
LEAVES = "which does not stay inside it"


def is_within(path: str, folder: str) -> bool:
    """True when the absolute `path` is `folder` or below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def stays_inside(tree: str, relpath: str, target: str, real: str) -> bool:
    """True when the link `relpath` -> `target` of the tree whose real path is `tree` may be kept
    as a link: relative, inside the tree as written (no `..` out of it), and resolving (to
    `real`, which exists) to exactly that path. Resolving elsewhere means going through another
    link, which a copy of the tree may not hold as a link (a followed one is a folder there)."""
    lexical = lexical_target(relpath, target)
    if lexical is None:
        return False
    return real == (tree if lexical == "." else f"{tree}/{lexical}") and os.path.exists(real)


def lexical_target(relpath: str, target: str) -> str | None:
    """Where the link `relpath` -> `target` leads in its tree, read as written (no file system):
    None when it is absolute or its `..` lead out of the tree."""
    if target.startswith("/"):
        return None
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    return None if lexical == ".." or lexical.startswith("../") else lexical


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
    entries.sort(key=lambda e: _encoded(e.relpath))
    return tuple(entries)


def dir_digest(tree: tuple[TreeEntry, ...]) -> Digest:
    return Digest("dir", tree_digest(tree), sum(e.size for e in tree), tree)


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


# ---------------------------------------------------------------- sqlite side
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_CREATE = (
    "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, inode INTEGER, size INTEGER,"
    " mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, hashed_ns INTEGER) WITHOUT ROWID"
)


class _StatDb:
    """The sqlite table, opened lazily; every failure but a full disk degrades to "not cached"
    (a full disk too when `full_is_error` is off: a command that writes nothing else)."""

    def __init__(self, path: Path, warn: Warn, full_is_error: bool = True) -> None:
        self.path = path
        self.warn = warn
        self.full_is_error = full_is_error
        self.disabled = False
        self._recreated = False
        self._conn: Any = None

    def load_one(self, path: str) -> Row | None:
        rows = self._select("SELECT * FROM stat WHERE path = ?", (path,))
        return rows.get(path)

    def load_prefix(self, folder: str) -> dict[str, Row]:
        low = folder.rstrip("/") + "/"
        return self._select("SELECT * FROM stat WHERE path >= ? AND path < ?", (low, low[:-1] + "0"))

    def write(self, changes: Mapping[str, Row | None]) -> bool:
        """Apply upserts (row) and deletions (None) in one transaction; False if busy."""
        upserts = [(p, *row) for p, row in changes.items() if row is not None]
        deletes = [(p,) for p, row in changes.items() if row is None]
        for _attempt in range(2):  # a second time into a database recreated after corruption
            conn = self._connect()
            if conn is None or not changes:
                return True
            try:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?)", upserts)
                conn.executemany("DELETE FROM stat WHERE path = ?", deletes)
                conn.execute("COMMIT")
                return True
            except Exception as error:  # sqlite3.Error; the module is imported lazily
                self._rollback(conn)
                if self._failed(error) == "busy":
                    return False
        return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _select(self, sql: str, args: tuple[str, ...]) -> dict[str, Row]:
        conn = self._connect()
        if conn is None:
            return {}
        try:
            return {r[0]: tuple(r[1:]) for r in conn.execute(sql, args)}
        except Exception as error:
            self._failed(error)
            return {}

    def _connect(self) -> Any:
        if self._conn is None and not self.disabled:
            import sqlite3

            try:
                self._conn = self._open(sqlite3)
            except (sqlite3.Error, OSError) as error:
                self._failed(error)
        return self._conn

    def _open(self, sqlite3: Any) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost last commit costs re-hashing
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                conn.execute("DROP TABLE IF EXISTS stat")
                conn.execute(_CREATE)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _failed(self, error: Exception) -> str:
        """ "busy" (try later), "recreated" (corrupt file removed) or "off" (give up this run)."""
        full = is_no_space(error)
        if full and self.full_is_error:  # for the user to know, not to drop quietly
            what = f"the stat cache {self.path.parent.name}/{self.path.name}"
            raise problem(error, what, self.path) from None
        code = getattr(error, "sqlite_errorcode", None)
        if code in _BUSY_CODES:
            return "busy"
        self.close()
        if code in _CORRUPT_CODES and not self._recreated:
            self._recreated = True
            self.warn(f"{self.path} was corrupt ({error}); recreated it (it is only a cache)")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return "recreated"
        reason = "no space left on device" if full else error
        self.warn(f"{self.path}: {reason}; digests are not cached in this run")
        self.disabled = True
        return "off"

    @staticmethod
    def _rollback(conn: Any) -> None:
        with contextlib.suppress(Exception):  # no transaction was open
            conn.execute("ROLLBACK")


# ---------------------------------------------------------------- the cache
class DigestCache:
    """Digests of paths, by stat where a row proves the bytes unchanged (see module doc)."""

    def __init__(
        self,
        db_path: Path,
        racy_window_ns: int = RACY_WINDOW_NS,
        on_warning: Warn | None = None,
        full_is_error: bool = True,
    ) -> None:
        self._db = _StatDb(Path(db_path), on_warning or warn_stderr, full_is_error)
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
        entries.sort(key=lambda e: _encoded(e.relpath))
        return dir_digest(tuple(entries))

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
        if row is None or row[:4] != stat_key(st):
            return None
        if st.st_mtime_ns >= row[5] - self._window(st.st_mtime_ns):
            return None  # racily clean: could have changed within the timestamp granularity
        return row[4]

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
