"""Recorded state: `Buildfile.lock`, and the journal that feeds it.

`Buildfile.lock` is committed, so it is deterministic and merge-friendly: JSON with sorted keys,
2-space indent and a trailing newline, each stage's entry a block of its own. Its entries are
the engine's dicts (key, material, outputs …); this module never looks inside them.

A run never rewrites the lock per stage. Each completed step appends one line to
`.bg/journal.jsonl` (`Journal.record`; a group commit's lines together, `record_many`); `fold`
applies the journal to the lock once, at the end of the run, and at the start of the next one
(a run killed before folding loses nothing). Lines are written with one `os.write` on an
O_APPEND descriptor and not fsynced: once the write returns the kernel has the bytes, so SIGKILL
cannot lose them; a line lost to a power cut costs at most a restore, because the step's
results are already in the run cache (made durable first). docs/architecture.md, "Durability".

Writing the lock copies the blocks of the entries that did not change from the bytes bg wrote
last (`.bg/lock.sha256` names them), and a run reads the lock once, not at each fold.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from buildgraph import indented_json
from buildgraph.atomic import append_whole, atomic_write, fsync_dir
from buildgraph.diskfull import writing
from buildgraph.errors import EnvironmentProblem
from buildgraph.gcpause import paused

LOCK_VERSION = 1
_CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")  # at the start of a line
Entry = dict[str, Any]
_LOCK_HINT = "restore it from version control, or delete it: `bg run` re-records every stage from the cache"


class Lock:
    """The parsed `Buildfile.lock`: stage name → entry."""

    def __init__(self, stages: Mapping[str, Entry] | None = None) -> None:
        self._stages: dict[str, Entry] = dict(stages or {})
        self._source: _Source | None = None  # the bytes the entries were read from, if any

    @property
    def stages(self) -> Mapping[str, Entry]:
        return MappingProxyType(self._stages)

    def get(self, stage: str) -> Entry | None:
        return self._stages.get(stage)

    def with_stages(self, stages: Mapping[str, Entry]) -> Lock:
        """A lock of `stages` that remembers this one's source: its unchanged entries' blocks."""
        lock = Lock(stages)
        lock._source = self._source
        return lock

    @classmethod
    def load(cls, path: Path) -> Lock:
        """The lock at `path` (empty when missing); EnvironmentProblem when it is damaged."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return cls()
        remembered = _last_read.get(str(path))
        if remembered is not None and remembered[0] == _stat_key(st):
            return remembered[1].with_stages(remembered[1].stages)  # read once a run, not at each fold
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except FileNotFoundError:
            return cls()
        except UnicodeDecodeError as error:
            raise EnvironmentProblem(f"{path.name}: not UTF-8 text ({error.reason})", _LOCK_HINT) from None
        with paused():  # 10,000 entries: no collections while they are made (nor scanning them)
            lock = cls(_parse(path.name, text))
        lock._source = _Source(path, st, lock._stages)
        _remember_read(path, st, lock)
        return lock

    def dumps(self, known: str = "") -> str:
        """The file's text. `known`: the sha256 of lock bytes bg wrote (`.bg/lock.sha256`); when
        this lock was read from those bytes, the entries unchanged since keep their blocks."""
        if not self._stages:
            document = {"version": LOCK_VERSION, "stages": self._stages}
            return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        blocks = self._source.blocks(known) if self._source is not None and known else None
        read = self._source.entries if self._source is not None and blocks else {}
        # entry by entry even without blocks to copy: the whole document at once is a list of
        # ~150 small strings an entry before it is joined (~0.1 GB for 10,000 stages)
        body = ",\n    ".join(
            blocks[name] if blocks and read.get(name) is entry and name in blocks else _block(name, entry)
            for name, entry in sorted(self._stages.items())
        )
        return f'{_HEAD}{body}\n  }},\n  "version": {LOCK_VERSION}\n}}\n'

    def save(self, path: Path, known: Path | None = None) -> bool:
        """Write atomically and durably, only if the bytes change; True if written.
        `known`: where bg keeps the sha256 of the lock bytes it wrote (see `_Source`)."""
        digest = _read_known(known)
        data = self.dumps(digest).encode("utf-8")
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                _write_known(known, digest, data)
                return False
        except FileNotFoundError:
            if not self._stages:
                return False  # nothing recorded yet: do not create an empty lock
        with writing(path.name, path, len(data)):  # a full disk: the old lock and the journal stand
            atomic_write(path, data, durable=True)
        _write_known(known, digest, data)  # after the lock is durable: it never names other bytes
        with contextlib.suppress(OSError):
            self._source = _Source(path, os.stat(path), dict(self._stages))
        return True


# ---------------------------------------------------------------- writing only what changed
# json's indenting encoder is pure Python: ~50 µs an entry, half a second for 10,000 stages, in
# every run that records one. The file bg wrote last has each entry in a block of its own, so
# an entry unchanged since it was read from those bytes is written by copying its block. Bytes
# are known to be bg's own when their sha256 is the one it noted on writing them: a lock edited,
# merged or checked out is written the long way, once.
KNOWN_LOCK = "lock.sha256"  # in .bg/, beside the journal
_HEAD = '{\n  "stages": {\n    '


class _Source:
    """The file a lock was read from (or written as), its stat then, and the entries it held.
    Its bytes are read again to be copied (a lock of 10,000 stages is ~12 MB: not kept)."""

    __slots__ = ("entries", "path", "stat")

    def __init__(self, path: Path, st: os.stat_result, entries: Mapping[str, Entry]) -> None:
        self.path, self.stat, self.entries = path, _stat_key(st), entries

    def blocks(self, known: str) -> dict[str, str] | None:
        """Stage → its block of text, when the file still holds the bytes these entries were
        read from and those are bg's own (their sha256 is `known`); else None."""
        try:
            with open(self.path, "rb") as f:
                if _stat_key(os.fstat(f.fileno())) != self.stat:
                    return None
                data = f.read()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != known:
            return None
        text = data.decode("utf-8")
        del data
        end = text.rfind('\n  },\n  "version": ')
        if not text.startswith(_HEAD) or end < 0:
            return None
        # a block's own lines are indented deeper, and strings hold no raw newline: each
        # ',\n    "' ends one stage's block (stages in sorted order, as json wrote them)
        first, *rest = text[len(_HEAD) : end].split(',\n    "')
        found, names = [first, *('"' + block for block in rest)], sorted(self.entries)
        if len(found) != len(names) or not first.startswith(f"{_key(names[0])}: "):
            return None
        return dict(zip(names, found, strict=True))


def _key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _block(name: str, entry: Entry) -> str:
    """An entry as `dumps` writes it inside the document: indented two levels."""
    return f"{_key(name)}: " + indented_json.dumps(entry, depth=2)


def _read_known(known: Path | None) -> str:
    if known is None:
        return ""
    try:
        return known.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return ""


def _write_known(known: Path | None, digest: str, data: bytes) -> None:
    """Note the sha256 of the lock bytes just written or found. A note is only a hint, written
    in place (no temporary to leave behind): torn, or not written (a full disk, no `.bg` yet),
    it names no bytes, and the lock is written the long way."""
    noted = hashlib.sha256(data).hexdigest()
    if known is None or noted == digest or not known.parent.is_dir():
        return
    with contextlib.suppress(OSError):
        known.write_text(noted, encoding="ascii")


# ---------------------------------------------------------------- reading once a run
# Entering and leaving a command both fold (session.py), so a run read the whole lock twice.
# The last lock read is kept, keyed by its file's stat, and trusted only when the file was last
# modified well before it was read (the racy-file rule of stores.digests): a file rewritten in
# place within one timestamp tick could keep its stat.
_last_read: dict[str, tuple[tuple[int, int, int, int], Lock]] = {}
_RACY_NS, _FINE_RACY_NS = 2_000_000_000, 100_000_000


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember_read(path: Path, st: os.stat_result, lock: Lock) -> None:
    _last_read.clear()  # one lock: a process that loads many (the tests) keeps none of the others
    window = _FINE_RACY_NS if st.st_mtime_ns % 1_000_000 else _RACY_NS
    if st.st_mtime_ns < time.time_ns() - window:  # a later write then changes the mtime
        _last_read[str(path)] = (_stat_key(st), lock.with_stages(lock.stages))


def _parse(name: str, text: str) -> dict[str, Entry]:
    if any(text.startswith(m) or f"\n{m}" in text for m in _CONFLICT_MARKERS):  # `in`: 50× a regex
        raise EnvironmentProblem(
            f"{name}: unresolved merge conflict markers",
            "keep either side of each conflict (`bg run` re-records stages that differ), or delete the file",
        )
    try:
        document = json.loads(text)
    except ValueError as error:
        where = f":{error.lineno}:{error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        raise EnvironmentProblem(
            f"{name}{where}: not valid JSON ({getattr(error, 'msg', error)})", _LOCK_HINT
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("version"), int):
        raise EnvironmentProblem(f"{name}: not a bg lock file (no version)", _LOCK_HINT)
    if document["version"] > LOCK_VERSION:  # older versions: migrate here when there are any
        raise EnvironmentProblem(
            f"{name}: lock version {document['version']} is newer than this bg reads ({LOCK_VERSION})",
            "upgrade bg",
        )
    stages = document.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(e, dict) for e in stages.values()):
        raise EnvironmentProblem(f"{name}: `stages` must map stage names to objects", _LOCK_HINT)
    return stages


class Journal:
    """Append-only record of completed steps; safe to call from worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, stage: str, entry: Entry | None) -> None:
        """Append "`stage` now has `entry`" (None: remove the stage from the lock)."""
        self.record_many([(stage, entry)])

    def record_many(self, records: list[tuple[str, Entry | None]]) -> None:
        """Append one line per (stage, entry), with one write: a group commit's steps."""
        if not records:
            return
        lines = [
            json.dumps({"stage": stage, "entry": entry}, sort_keys=True, separators=(",", ":")) + "\n"
            for stage, entry in records
        ]
        data = "".join(lines).encode("utf-8")
        what = f"the journal {self.path.parent.name}/{self.path.name}"
        # a full disk: no torn line is left (the step is not recorded; its cache entry is)
        with self._lock, writing(what, self.path, len(data)):
            append_whole(self._open(), data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # seal a line torn by a crash, so ours parses
            self._fd = fd
        return self._fd


def read_journal(path: Path) -> Iterator[tuple[str, Entry | None]]:
    """(stage, entry) per complete line; lines torn by a crash are skipped."""
    try:
        journal = open(path, "rb")  # noqa: SIM115 - read line by line: 10,000 entries are ~12 MB
    except FileNotFoundError:
        return
    with journal:
        yield from _records(part for line in journal for part in line.splitlines())


def _records(lines: Iterator[bytes]) -> Iterator[tuple[str, Entry | None]]:
    for line in lines:
        try:
            record = json.loads(line)
            stage, entry = record["stage"], record["entry"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(stage, str) and (entry is None or isinstance(entry, dict)):
            yield stage, entry


def current(lock_path: Path, journal_path: Path) -> Lock:
    """The lock as `fold` would leave it, without writing anything: what a read-only
    command (status, explain) must see after a killed run left its journal behind."""
    found = Lock.load(lock_path)
    stages = dict(found.stages)
    for stage, entry in read_journal(journal_path):
        if entry is None:
            stages.pop(stage, None)
        else:
            stages[stage] = entry
    return found.with_stages(stages)


def fold(lock_path: Path, journal_path: Path, keep: set[str] | None = None) -> Lock:
    """Apply the journal to the lock (last record per stage wins), drop stages not in `keep`
    (stages no longer in the Buildfile), write the lock if it changed, remove the journal.
    Call it under the exclusive project lock: it also removes temporaries of killed writers.
    Returns the lock as it now is on disk."""
    with paused():  # 10,000 entries read, written: no collections scanning them meanwhile
        return _fold(lock_path, journal_path, keep)


def _fold(lock_path: Path, journal_path: Path, keep: set[str] | None) -> Lock:
    _remove_stale_temporaries(lock_path)
    journaled = journal_path.exists()
    found = current(lock_path, journal_path) if journaled else Lock.load(lock_path)
    if keep is None or keep.issuperset(found.stages):
        lock = found
    else:
        lock = found.with_stages({name: entry for name, entry in found.stages.items() if name in keep})
    if lock is not found or journaled:  # else the file holds exactly this: nothing to write
        lock.save(lock_path, journal_path.parent / KNOWN_LOCK)
    if journaled:
        journal_path.unlink()
        fsync_dir(journal_path.parent)  # an old journal must not reappear and be folded again
    return lock


def _remove_stale_temporaries(lock_path: Path) -> None:
    """A `bg` killed while saving the lock leaves `.Buildfile.lock.tmp-*` in the project root
    (where the user would commit it); nobody else writes there under our exclusive lock."""
    for stray in lock_path.parent.glob(f".{lock_path.name}.tmp-*"):
        stray.unlink(missing_ok=True)
