"""The project on disk: where bg keeps its state, and how workspace paths are digested.

A `Workspace` is the engine's `engine.context.Files` (and its `cache` the default store).

<root>/Buildfile.toml     declared intent (the user's)
<root>/Buildfile.lock     recorded state (committed)
<root>/.bg/cache/         artefact cache: objects/ and runs/ (see stores.cache)
<root>/.bg/stat.db        stat cache of digests (disposable)
<root>/.bg/journal.jsonl  completions not yet folded into the lock
<root>/.bg/lock.sha256    the sha256 of the lock bytes bg last wrote (lockfile: a hint)
<root>/.bg/logs/          the latest log of each stage
<root>/.bg/tmp/           scratch directories of running jobs
<root>/.bg/runs.jsonl     one line per `bg run`: the keys it used (for `bg gc --keep-runs`); a run
                          with the last line's keys adds none (a null run again)
<root>/.bg/uptodate/      up-to-date stamps: null runs answered from stats (buildgraph.uptodate)
<root>/.bg/lock           the project lock (flock)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from buildgraph.atomic import append_whole, atomic_write_text
from buildgraph.diskfull import writing
from buildgraph.stores.cache import ArtefactCache
from buildgraph.stores.digests import DigestCache
from buildgraph.stores.symlinks import Links
from buildgraph.stores.tree import Digest, StrPath

HISTORY_TRIM_BYTES = 8 << 20  # .bg/runs.jsonl is trimmed past this size …
HISTORY_KEEP_RUNS = 100  # … to its last runs (far more than any sensible `keep_runs`)


class Workspace:
    def __init__(self, root: Path, read_only: bool = False) -> None:
        """`read_only`: for commands whose only writes are the stat caches (status, explain),
        which a full disk then turns off with a warning instead of stopping the command."""
        self.root = root
        self._full_is_error = not read_only
        self._root = os.path.abspath(root)
        self.state = root / ".bg"
        self.lock_path = root / "Buildfile.lock"
        self.journal_path = self.state / "journal.jsonl"
        self.logs = self.state / "logs"
        self.tmp = self.state / "tmp"
        self.history = self.state / "runs.jsonl"

    @cached_property
    def cache(self) -> ArtefactCache:
        return ArtefactCache(self.state / "cache", full_is_error=self._full_is_error)

    @cached_property
    def digests(self) -> DigestCache:
        self.state.mkdir(exist_ok=True)
        cache = DigestCache(self.state / "stat.db", full_is_error=self._full_is_error)
        cache.preload(self.root)  # one query for every row, not one per path
        return cache

    def path(self, rel: str) -> Path:
        return self.root / rel

    def digest(self, rel: str) -> str | None:
        """The digest of a project path, symlinks followed inside the project (docs/buildfile.md)."""
        path = f"{self._root}/{rel}"  # a str: pathlib costs, 1,000s of times a run
        return self.digests.digest_text(path, follow_symlinks=True, links=self._links)

    def remember(self, rel: str, record: Mapping[str, Any]) -> None:
        """Project path `rel` now holds `record` (just materialised): nothing re-hashes it."""
        self.digests.remember(self.path(rel), record)

    def listing_digest(self, files: Iterable[tuple[str, StrPath]]) -> Digest:
        return self.digests.listing_digest(files)

    @cached_property
    def _links(self) -> Links:
        return Links(within=os.path.realpath(self.root))

    def close(self) -> None:
        try:
            if "digests" in self.__dict__:
                self.digests.close()
        finally:  # a full disk failing one flush must not leave the other database open
            if "cache" in self.__dict__:
                self.cache.close()

    def remember_run(self, run_id: str, keys: list[str]) -> None:
        self.state.mkdir(exist_ok=True)
        data = (json.dumps({"run": run_id, "keys": sorted(keys)}) + "\n").encode("utf-8")
        with writing("the run history .bg/runs.jsonl", self.history, len(data)):
            fd = os.open(self.history, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if _last_keys(fd, len(data)) == sorted(keys):
                    return  # a null run again: the same keys, and `--keep-runs` counts kinds of runs
                append_whole(fd, data)  # whole or not at all: a torn line would hide the next one
                grown = os.fstat(fd).st_size > HISTORY_TRIM_BYTES
            finally:
                os.close(fd)
            if grown:  # keep the newest runs only: `keep_runs` is small, the file must not grow forever
                lines = self.history.read_text(encoding="utf-8").splitlines(keepends=True)
                atomic_write_text(self.history, "".join(lines[-HISTORY_KEEP_RUNS:]), durable=False)

    def recent_run_keys(self, last: int) -> set[str]:
        if last <= 0 or not self.history.exists():
            return set()
        keys: set[str] = set()
        lines = self.history.read_text(encoding="utf-8").splitlines()
        for line in lines[-last:]:
            try:
                keys.update(json.loads(line)["keys"])
            except (ValueError, KeyError):
                continue  # a torn line from a killed run
        return keys


def _last_keys(fd: int, size: int) -> list[str] | None:
    """The keys of the run history's last line if it is `size` bytes long, as a line of the same
    keys (and a run id of the same length) is; None otherwise."""
    end = os.fstat(fd).st_size
    if end < size:
        return None
    tail = os.pread(fd, size + 1, end - size - 1) if end > size else b"\n" + os.pread(fd, size, 0)
    if not tail.startswith(b"\n"):
        return None
    try:
        keys = json.loads(tail[1:])["keys"]
    except (ValueError, KeyError, TypeError):
        return None
    return keys if isinstance(keys, list) else None
