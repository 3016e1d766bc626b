"""The engine: selects the steps of a run, answers `bg status`, and runs them with a `Builder`.

It is given everything it touches — the project's `Files`, a `Store`, an `Executor`, a
`Reporter`, and (only when a selection holds an image stage) an `ImageBackend` — and makes
one `Step` per selected stage. So the same engine runs on the local cache and Docker for
`bg run`, on fakes in the tests, and on a scratch workspace and store for an audit:

    engine = Engine(Workspace(root), spec, Graph(spec), FakeExecutor(), reporter, Options(),
                    store=MemoryStore())
    summary = engine.run(["train"])
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from buildgraph import stage_secrets
from buildgraph.core.graph import Graph
from buildgraph.core.plan import Decision
from buildgraph.core.spec import ImageStage, RunStage, Spec
from buildgraph.engine.builder import Builder
from buildgraph.engine.context import Context, Files, Options, Scratch, host_fingerprint
from buildgraph.engine.outcome import Summary
from buildgraph.engine.run_step import RunStep
from buildgraph.engine.steps import Decided, Step
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.base import Executor
from buildgraph.gcpause import frozen
from buildgraph.lockfile import Lock, current
from buildgraph.report import Reporter
from buildgraph.stores.base import Store

if TYPE_CHECKING:  # image steps are imported only by a selection holding an image stage
    from buildgraph.engine.image_step import ImageBackend


class Engine:
    def __init__(
        self,
        files: Files,
        spec: Spec,
        graph: Graph,
        executor: Executor,
        reporter: Reporter,
        options: Options,
        images: Callable[[], ImageBackend] | None = None,
        lock: Lock | None = None,
        store: Store | None = None,
    ) -> None:
        """`images`: makes the image backend, called only when a selection holds an image
        stage (a host-only run never touches Docker); `lock`: the recorded state as just
        folded by the caller (default: the lock with a killed run's journal read in);
        `store`: default, the project's own `.bg/cache`."""
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}"
        self.ctx = Context(
            spec=spec,
            graph=graph,
            files=files,
            store=store if store is not None else files.cache,
            executor=executor,
            reporter=reporter,
            options=options,
            lock=lock if lock is not None else current(files.lock_path, files.journal_path),
            run_id=run_id,
            scratch=Scratch(files.tmp / run_id, files.logs),
            environment={"host": host_fingerprint()},
        )
        self._image_backend = images
        self._steps: dict[str, Step] = {}

    @property
    def lock(self) -> Lock:
        return self.ctx.lock

    # ---------------------------------------------------------------- selection
    def select(self, targets: list[str]) -> list[str]:
        """The stages to walk: the run stages, plus the image stages that are wanted — those the
        run stages execute in (docker executor) and those named as targets (or, with no target
        and no `default`, every one). Run stages on the host need no image, so under the local
        executor a target's image ancestors are not built unless named."""
        spec, graph = self.ctx.spec, self.ctx.graph
        targets = targets or list(spec.default)
        names = graph.closure(targets) if targets else graph.order()
        is_run = {n: isinstance(spec.stages[n], RunStage) for n in names}
        if not self.ctx.options.in_images:
            named = [n for n in targets or names if not isinstance(spec.stages[n], RunStage)]
            images = set(graph.closure(named)) if named else set()
            names = [n for n in names if n in images or is_run[n]]
        if self.ctx.images is None and not all(is_run[n] for n in names):
            if self._image_backend is None:
                raise EnvironmentProblem("this selection holds image stages, and this engine has no Docker")
            from buildgraph.engine.image_step import Images

            self.ctx.images = Images(self._image_backend(), spec, self.ctx.lock, self.ctx.options)
        return names

    def step(self, name: str) -> Step:
        """The step of stage `name`: the one place a stage's kind chooses its step's class."""
        if name not in self._steps:
            stage = self.ctx.spec.stages[name]
            made = RunStep(stage, self.ctx) if isinstance(stage, RunStage) else _image_step(stage, self.ctx)
            self._steps[name] = made
        return self._steps[name]

    # ---------------------------------------------------------------- deciding
    def evaluate(self, name: str, pending: tuple[str, ...] = ()) -> Decided:
        """Decide stage `name` now: its decision and the material of its key."""
        return self.step(name).decide(pending)

    def status(self, targets: list[str]) -> list[Decision]:
        """What `run` would do, without doing it (nothing is written but the stat cache)."""
        decisions: dict[str, Decision] = {}
        selected = self.select(targets)
        chosen = set(selected)
        with frozen():  # the loaded project is left out of garbage collections
            for name in selected:
                # an image's key is known before it is built: only run steps leave a step tentative
                ups = sorted(u for u in self.ctx.graph.upstreams(name) if u in chosen)
                pending = tuple(u for u in ups if decisions[u].action == "run")
                decided = self.evaluate(name, pending)
                decisions[name] = decided.decision
                planned = self.step(name).planned(decided)
                if planned is not None:
                    self.ctx.settled[name] = planned
        return [decisions[n] for n in selected]

    # ---------------------------------------------------------------- running
    def run(self, targets: list[str]) -> Summary:
        started = time.monotonic()
        selected = self.select(targets)
        self._check_secrets(selected)
        # every step is queued until decided (just before it runs): the live table lists them all
        self.ctx.reporter.plan([(name, "queued", []) for name in selected])
        chosen = set(selected)
        # handed out in the Buildfile's order, as the graph lists downstream steps
        ordered = [n for n in self.ctx.spec.stages if n in chosen]
        upstreams = {n: [u for u in self.ctx.graph.upstreams(n) if u in chosen] for n in ordered}
        with frozen():  # the loaded project is left out of garbage collections
            summary = Builder(self.ctx, {n: self.step(n) for n in ordered}, upstreams).run()
        summary.duration = time.monotonic() - started
        return summary

    def _check_secrets(self, selected: list[str]) -> None:
        """Fail before running anything when a step that will run or build needs an unset secret.
        A stage that is up to date or restored needs none: deciding is cheap, and done only
        when some secret is missing. (A step that turns out to run later is checked again.)"""
        missing = {name: found for name in selected if (found := self.step(name).missing_secrets())}
        if missing:
            will_run = {d.stage for d in self.status(selected) if d.action in ("run", "build")}
            self.ctx.settled.clear()  # status's guesses; the walk records what really happens
            stage_secrets.require({s: names for s, names in missing.items() if s in will_run})


def _image_step(stage: ImageStage, ctx: Context) -> Step:
    from buildgraph.engine.image_step import ImageStep  # not imported by a host-only run

    return ImageStep(stage, ctx)
