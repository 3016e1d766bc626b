"""Recorded state: `Buildfile.lock`, and the journal that feeds it.

`Buildfile.lock` is committed, so it is deterministic and merge-friendly: JSON with sorted keys,
2-space indent and a trailing newline, each stage's entry a block of its own. Its entries are
the engine's dicts (key, material, outputs …); this module never looks inside them.

A run never rewrites the lock per stage. Each completed step appends one line to
`.bg/journal.jsonl` (`Journal.record`); `fold` applies the journal to the lock once, at the end
of the run, and at the start of the next one (a run killed before folding loses nothing).
Lines are written with one `os.write` on an O_APPEND descriptor and not fsynced: once the write
returns the kernel has the bytes, so SIGKILL cannot lose them; a line lost to a power cut costs
at most a restore, because the step's results are already in the run cache (written first).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from buildgraph.atomic import append_whole, atomic_write, fsync_dir
from buildgraph.diskfull import writing
from buildgraph.errors import EnvironmentProblem

LOCK_VERSION = 1
_CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")  # at the start of a line
Entry = dict[str, Any]
_LOCK_HINT = "restore it from version control, or delete it: `bg run` re-records every stage from the cache"


class Lock:
    """The parsed `Buildfile.lock`: stage name → entry."""

    def __init__(self, stages: Mapping[str, Entry] | None = None) -> None:
        self._stages: dict[str, Entry] = dict(stages or {})

    @property
    def stages(self) -> Mapping[str, Entry]:
        return MappingProxyType(self._stages)

    def get(self, stage: str) -> Entry | None:
        return self._stages.get(stage)

    @classmethod
    def load(cls, path: Path) -> Lock:
        """The lock at `path` (empty when missing); EnvironmentProblem when it is damaged."""
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return cls()
        except UnicodeDecodeError as error:
            raise EnvironmentProblem(f"{path.name}: not UTF-8 text ({error.reason})", _LOCK_HINT) from None
        return cls(_parse(path.name, text))

    def dumps(self) -> str:
        document = {"version": LOCK_VERSION, "stages": self._stages}
        return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> bool:
        """Write atomically and durably, only if the bytes change; True if written."""
        data = self.dumps().encode("utf-8")
        try:
            if path.read_bytes() == data:
                return False
        except FileNotFoundError:
            if not self._stages:
                return False  # nothing recorded yet: do not create an empty lock
        with writing(path.name, path, len(data)):  # a full disk: the old lock and the journal stand
            atomic_write(path, data, durable=True)
        return True


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
        line = json.dumps({"stage": stage, "entry": entry}, sort_keys=True, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
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
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.splitlines():
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
    stages = dict(Lock.load(lock_path).stages)
    for stage, entry in read_journal(journal_path):
        if entry is None:
            stages.pop(stage, None)
        else:
            stages[stage] = entry
    return Lock(stages)


def fold(lock_path: Path, journal_path: Path, keep: set[str] | None = None) -> Lock:
    """Apply the journal to the lock (last record per stage wins), drop stages not in `keep`
    (stages no longer in the Buildfile), write the lock if it changed, remove the journal.
    Call it under the exclusive project lock: it also removes temporaries of killed writers.
    Returns the lock as it now is on disk."""
    _remove_stale_temporaries(lock_path)
    journaled = journal_path.exists()
    found = current(lock_path, journal_path) if journaled else Lock.load(lock_path)
    if keep is None or keep.issuperset(found.stages):
        lock = found
    else:
        lock = Lock({name: entry for name, entry in found.stages.items() if name in keep})
    if lock is not found or journaled:  # else the file holds exactly this: nothing to write
        lock.save(lock_path)
    if journaled:
        journal_path.unlink()
        fsync_dir(journal_path.parent)  # an old journal must not reappear and be folded again
    return lock


def _remove_stale_temporaries(lock_path: Path) -> None:
    """A `bg` killed while saving the lock leaves `.Buildfile.lock.tmp-*` in the project root
    (where the user would commit it); nobody else writes there under our exclusive lock."""
    for stray in lock_path.parent.glob(f".{lock_path.name}.tmp-*"):
        stray.unlink(missing_ok=True)
