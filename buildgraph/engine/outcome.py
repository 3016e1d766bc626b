"""What became of each step of a run (`Outcome`, its `StepStatus`) and of the run (`Summary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from buildgraph.core.plan import Decision
from buildgraph.errors import BgError

if TYPE_CHECKING:
    from buildgraph.engine.commit import Record


class StepStatus(StrEnum):
    """How a step ended. A `str`, so reporters and `--json` show the word itself."""

    SKIPPED = "skipped"  # up to date
    CUTOFF = "cutoff"  # up to date because its upstream reproduced identical outputs
    CACHED = "cached"  # restored from the store
    DONE = "done"  # ran (or built), and stored
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by Ctrl-C, or never reached once the run stopped
    BLOCKED = "blocked"  # an upstream step failed or was cancelled
    # handed to a worker but stopped before it started; the summary shows it as cancelled
    UNREACHED = "unreached"

    @property
    def settles_downstream(self) -> bool:
        """Whether downstream steps may go on: the step's outputs are in the workspace."""
        return self in (StepStatus.SKIPPED, StepStatus.CUTOFF, StepStatus.CACHED, StepStatus.DONE)


@dataclass
class Outcome:
    stage: str
    status: StepStatus
    decision: Decision | None = None
    duration: float = 0.0
    error: str = ""
    log_path: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # path → digest, once in the workspace
    # not a stage's failure (an environment problem, a bug): the run stops and raises it
    exception: BaseException | None = None
    hint: str = ""  # what the user might do about a failure
    record: Record | None = None  # a step that ran: what the group commit records, then reports


@dataclass
class Summary:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [o.stage for o in self.outcomes.values() if o.status == StepStatus.FAILED]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
        return counts

    def keys(self) -> list[str]:
        """The keys the run used (for `bg gc --keep-runs`)."""
        return [o.decision.key for o in self.outcomes.values() if o.decision is not None]


def unreached(name: str, decision: Decision | None) -> Outcome:
    """A step handed out that the run stopped before it could start."""
    return Outcome(name, StepStatus.UNREACHED, decision)


def not_the_stages_fault(name: str, decision: Decision | None, duration: float, exc: Exception) -> Outcome:
    """The outcome of a step that raised something other than its stage's failure (a full disk,
    a lost daemon, a bug): failed, carrying the exception that stops the run."""
    error = exc.message if isinstance(exc, BgError) else f"internal error: {exc!r}"
    return Outcome(name, StepStatus.FAILED, decision, duration, error, exception=exc)
