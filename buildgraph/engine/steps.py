"""One protocol for every kind of step: how it is decided, run, and recorded.

The builder treats every step alike through `Step`; what differs between a run step
(`run_step.RunStep`: a command through the executor, outputs through the store) and an image
step (`image_step.ImageStep`: an image through an image backend) lives in those classes, never
in `isinstance` branches of the builder. Deciding always goes through the pure core
(`core.plan.decide`): a step only gathers what it observed.

Threads: `decide`, `planned` and `skip` run on the builder's thread; `execute` on a worker,
which admits the step's `Claim` (waits for a slot and its GPUs) right before its command or
build starts, so preparing it overlaps the step before; a step the run stopped before its
admission is `unreached`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from buildgraph.core.plan import Decision
from buildgraph.engine.outcome import Outcome
from buildgraph.engine.slots import Claim
from buildgraph.lockfile import Journal


class Decided(NamedTuple):
    decision: Decision
    material: dict[str, Any]  # what the key was computed from (the lock records it)


class Step(Protocol):
    name: str

    def decide(self, pending: tuple[str, ...] = ()) -> Decided:
        """Key the step from what is settled now and decide it; `pending`: upstream steps
        that will run first (`bg status`), which leave it tentative."""
        ...

    def gpus(self) -> int:
        """The GPUs the step takes from the pool while it runs."""
        ...

    def missing_secrets(self) -> list[str]:
        """Secrets the step needs if it runs that bg's environment does not set."""
        ...

    def planned(self, decided: Decided) -> dict[str, str] | None:
        """The output digests a restore would bring, known without doing it (`bg status`);
        None where the workspace will hold the outputs as they are."""
        ...

    def skip(self, decided: Decided, journal: Journal) -> dict[str, str]:
        """The step is up to date: record whatever the lock lacks; its output digests."""
        ...

    def execute(self, decided: Decided, claim: Claim, journal: Journal) -> Outcome:
        """Restore, run or build the step (once `claim` is admitted), store and journal what it
        produced. A failure of the stage is an outcome; anything else (a full disk, a bug) may
        be raised."""
        ...
