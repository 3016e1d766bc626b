"""The sqlite table behind the stat cache (`stores.digests.DigestCache`): one row per path.

    stat (path TEXT PRIMARY KEY, inode, size, mtime_ns, ctime_ns, digest, hashed_ns)

The database is disposable: deleted → rebuilt; corrupt → recreated with a warning; busy
(another `bg`) → the caller keeps its rows for the next write; a full disk →
`diskfull.NoSpace`, like every other write of bg's state (a transaction that did not commit
leaves the old rows), except with `full_is_error=False` (read-only commands: a warning, and no
caching). A schema of another version is dropped and created anew. `sqlite3` is imported at
the first query, not at start-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from buildgraph.diskfull import is_no_space, problem
from buildgraph.gcpause import paused

SCHEMA_VERSION = 1

Warn = Callable[[str], None]
Row = tuple[int, int, int, int, str, int]  # inode, size, mtime_ns, ctime_ns, digest, hashed_ns

_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_CREATE = (
    "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, inode INTEGER, size INTEGER,"
    " mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, hashed_ns INTEGER) WITHOUT ROWID"
)


class StatDb:
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
            with paused():  # a row per file of the project: no collections while they are made
                return {r[0]: r[1:] for r in conn.execute(sql, args)}  # a slice of a row is a tuple
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
