"""The engine, split as ninja splits its builder (docs/architecture.md, "The engine"):

    walk.py        which steps may go now, on step ids alone (pure)
    steps.py       the `Step` protocol: decide (through the pure core), execute, record
    run_step.py    a run stage: a command through the executor, outputs through the store
    image_step.py  an image stage: an image through an image backend
    builder.py     the loop: ready steps to workers within `-j` and the GPU pool, outcomes back
    engine.py      selects a run's steps, answers `bg status`, runs a `Builder`
    context.py     options and what the steps share: `Files`, the store, the executor …
    outcome.py     `Outcome`, `StepStatus`, `Summary`;  recorded.py  typed records ↔ JSON
    slots.py       the `-j` command slots and the GPU pool
"""

from buildgraph.engine.context import Files, Options
from buildgraph.engine.engine import Engine
from buildgraph.engine.outcome import Outcome, StepStatus, Summary

__all__ = ["Engine", "Files", "Options", "Outcome", "StepStatus", "Summary"]
