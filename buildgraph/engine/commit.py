"""Group commit: the steps that ran are recorded together, a few times a second, not one by one.

Recording a step that ran means its run manifest in the store (durable) and its line in the
journal (what `Buildfile.lock` is folded from). Done per step, the fsyncs of objects and
manifest cost more than a short command itself; so, like git's `core.fsyncMethod=batch` and
SQLite's WAL, steps that finish within `WINDOW_S` of the first of them are committed as one
batch, or sooner when a step that reads one of them is about to start. A commit is
`Store.put_manifests` (one sync makes the batch's objects and manifests durable, then the
manifests are renamed into place), then one write of their journal lines; then each step is
reported done. The builder hands a batch that is due to a committer thread (one batch at a
time, so journal lines keep their order) and goes on starting steps; it commits at once, on
its own thread, before a step whose upstream is not recorded yet, and whatever is pending when
the run ends, however it ends (failure, Ctrl-C, an exception).

What a crash may cost (docs/architecture.md, "Durability"): a SIGKILL or power cut loses at
most the steps of the batch not yet committed — they run again; it never leaves a manifest or
lock entry that names what is not there. Deciding a downstream step needs no commit (it reads
the upstream's output digests from the run's memory, `Context.settled`), but its command
starts only once its upstream steps are committed: killing bg in a long training run never
costs the data preparation before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from buildgraph import faults
from buildgraph.lockfile import Journal
from buildgraph.stores.base import Store

WINDOW_S = 0.25  # at most this long between a step's end and its commit, while steps keep ending


@dataclass(frozen=True)
class Record:
    """What a step that ran leaves to be committed."""

    stage: str
    key: str
    manifest: dict[str, Any]  # → the store
    entry: dict[str, Any] | None  # its lock entry → the journal; None: cached, not locked


Batch = list[tuple[Record, Any]]


class GroupCommit:
    """Used by the builder's thread (workers hand their records back in their outcomes), but
    for `write`, which a committer thread may run on a batch `take`n: one at a time, in order,
    while steps go on starting; `landed` then tells the batch is recorded."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.journal, self.window, self.clock = store, journal, window, clock
        self._batch: Batch = []
        self._stages: set[str] = set()  # the stages of the batch
        self._flying: set[str] = set()  # the stages of a batch taken, not landed
        self._opened = 0.0  # when the batch's first record came

    def add(self, record: Record, then: Any = None) -> None:
        """Queue `record`; `then` comes back from `commit` once it is recorded."""
        if not self._batch:
            self._opened = self.clock()
        self._batch.append((record, then))
        self._stages.add(record.stage)

    @property
    def pending(self) -> int:
        return len(self._batch)

    def holds(self, stages: Iterable[str]) -> bool:
        """Whether any of `stages` is not recorded yet: in the batch, or in one being written."""
        waiting = self._stages | self._flying if self._flying else self._stages
        return bool(waiting) and not waiting.isdisjoint(stages)

    def due(self) -> bool:
        return bool(self._batch) and self.clock() - self._opened >= self.window

    def commit(self) -> list[Any]:
        """Record the batch now: `take`, `write`, `landed`."""
        batch = self.take()
        try:
            return self.write(batch)
        finally:
            self.landed()

    def take(self) -> Batch:
        """The batch, to `write`; the next batch starts empty."""
        batch, self._batch = self._batch, []
        self._flying, self._stages = self._stages, set()
        return batch

    def write(self, batch: Batch) -> list[Any]:
        """Record `batch`: manifests (durable), then journal lines. Returns the `then`s of the
        records committed. On an error nothing of the batch is journalled (its steps rerun)."""
        if not batch:
            return []
        self.store.put_manifests({record.key: record.manifest for record, _ in batch})
        faults.point("before-journal")  # manifests committed, the steps not journalled yet
        self.journal.record_many([(r.stage, r.entry) for r, _ in batch if r.entry is not None])
        return [then for _, then in batch]

    def landed(self) -> None:
        """The batch taken last is written (or failed to be)."""
        self._flying = set()
