"""The loop of one run (ninja's `Builder`): ready steps to workers, outcomes back, recorded.

One step per worker thread; at most `jobs` commands at once (`slots.Slots`), GPU steps
drawing device ids from a pool so they never oversubscribe the GPUs. Deciding happens on
this thread as soon as a step is ready, after every upstream step settled: a rerun that
reproduced identical bytes leaves the downstream key unchanged (early cutoff). Steps are
handed to workers ahead of a free slot (at most `jobs` waiting), so a freed slot starts the
next command at once; a step gives its slot back when its command succeeds and counts as
done once stored. Every step is driven through `steps.Step`, whatever its kind.

Stopping: a failure (without --keep-going) stops handing out steps and turns away those
waiting for a slot; an exception that is no stage's failure stops the run too, and is raised
once the steps running have settled; Ctrl-C cancels the running commands, records the steps
that completed, and raises `Interrupted`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from buildgraph import stage_secrets
from buildgraph.engine.context import Context
from buildgraph.engine.outcome import Outcome, StepStatus, Summary, not_the_stages_fault
from buildgraph.engine.slots import Slots
from buildgraph.engine.steps import Decided, Step
from buildgraph.engine.walk import Walk
from buildgraph.errors import Interrupted
from buildgraph.lockfile import Journal

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


class Builder:
    def __init__(
        self, ctx: Context, steps: Mapping[str, Step], upstreams: Mapping[str, Iterable[str]]
    ) -> None:
        """`upstreams`: each selected step → its upstream steps, in the order to hand them out."""
        self.ctx, self.steps = ctx, steps
        self.walk = Walk(upstreams)
        self.slots = Slots(ctx.options.jobs, ctx.options.gpus)
        self.journal = Journal(ctx.files.journal_path)
        self.summary = Summary()
        self.running: set[Future[Outcome]] = set()
        self.ran: set[str] = set()  # steps that ran (their downstream skips are cutoffs)
        self.stopping = False
        self.error: BaseException | None = None  # the first exception that is no stage's failure
        self._pool: ThreadPoolExecutor | None = None  # made when a step first has work to do
        self._keep_going = ctx.options.keep_going

    def run(self) -> Summary:
        try:
            self._loop()
            if self.error is not None:  # the steps that were running have settled and are recorded
                raise self.error  # here, not after `finally`: its clean-up may meet the same full disk
        except KeyboardInterrupt:
            self.ctx.cancel.set()
            self.slots.stop()
            for future in list(self.running):
                self._settle(future.result())
            raise Interrupted(
                "interrupted; completed stages were recorded", hint="run `bg run` again to resume"
            ) from None
        except Exception as exc:
            if exc is not self.error:  # raised here (deciding, a secret, a pull): workers still wait
                self.slots.stop()  # for a slot; none may start after the run has failed
                for future in list(self.running):
                    self._settle(future.result())
            raise
        finally:
            self._close()
        return self.summary

    def _loop(self) -> None:
        while self.walk.active:
            self._hand_out()
            if not self.running:
                if self.stopping or not self.walk.ready:
                    break
                continue
            for future in self.slots.wait(self.running):
                self.running.remove(future)
                self._receive(future.result())

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.journal.close()
        self.ctx.scratch.remove()
        for name in self.walk.unsettled():  # handed out and stopped, or never reached
            self.summary.outcomes.setdefault(name, Outcome(name, StepStatus.CANCELLED))
        self.ctx.files.remember_run(self.ctx.run_id, self.summary.keys())

    # ---------------------------------------------------------------- handing out
    def _hand_out(self) -> None:
        """Settle the ready steps found up to date; give the others to workers, at most `jobs`
        of them waiting for a slot. Deciding happens here, while commands run (a step's inputs
        are settled once it is ready), so a freed slot starts the next command at once."""
        while self.walk.ready and not self.stopping and self.slots.queued < self.slots.jobs:
            step = self._next_dispatchable()
            if step is None:
                return
            self.walk.start(step.name)
            decided = step.decide()
            if decided.decision.action == "skip":
                self._settle(self._skipped(step, decided))
                continue
            if decided.decision.action in ("run", "build"):
                stage_secrets.require({step.name: step.missing_secrets()})
            self.ctx.scratch.make()
            self.slots.queue()
            future = self._workers().submit(self._work, step, decided)
            self.slots.watch(future)
            self.running.add(future)

    def _next_dispatchable(self) -> Step | None:
        """The first ready step whose GPUs are free (a GPU step waits; others pass it)."""
        for name in self.walk.ready:
            step = self.steps[name]
            if self.slots.gpus_free(step.gpus()):
                return step
        return None

    def _skipped(self, step: Step, decided: Decided) -> Outcome:
        ran_above = any(u in self.ran for u in self.ctx.graph.upstreams(step.name))
        status = StepStatus.CUTOFF if ran_above else StepStatus.SKIPPED
        outputs = step.skip(decided, self.journal)
        self.ctx.reporter.finish(step.name, status, 0.0, "")
        return Outcome(step.name, status, decided.decision, outputs=outputs)

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # not imported by a run with nothing to do

            # `jobs` steps run commands, `jobs` wait for a slot, up to 2 × `jobs` store outputs
            self._pool = ThreadPoolExecutor(max_workers=4 * self.slots.jobs, thread_name_prefix="bg-step")
        return self._pool

    # ---------------------------------------------------------------- one step (a worker)
    def _work(self, step: Step, decided: Decided) -> Outcome:
        """A worker's whole step: wait for a slot, then restore, run or build, and store."""
        decision = decided.decision
        claim = self.slots.take(step.gpus())
        if claim is None:
            return Outcome(step.name, StepStatus.UNREACHED, decision)  # stopped before it could start
        try:
            self.ctx.reporter.start(step.name, decision.action, [r.text() for r in decision.reasons])
            started = time.monotonic()
            try:
                outcome = step.execute(decided, claim, self.journal)
            except Exception as exc:  # must not hang the scheduler: the run stops and raises it
                outcome = not_the_stages_fault(step.name, decision, time.monotonic() - started, exc)
            reporter = self.ctx.reporter
            reporter.finish(step.name, outcome.status, outcome.duration, outcome.error, log=outcome.log_path)
            failed = outcome.status == StepStatus.FAILED and not self._keep_going
            if outcome.status == StepStatus.CANCELLED or failed or outcome.exception is not None:
                self.slots.stop()  # before the slot frees: no other step starts
            return outcome
        finally:
            claim.release()

    # ---------------------------------------------------------------- outcomes
    def _receive(self, outcome: Outcome) -> None:
        if outcome.status == StepStatus.DONE:
            self.ran.add(outcome.stage)
        self._settle(outcome)
        if outcome.exception is not None and self.error is None:
            self.error = outcome.exception
            self.slots.stop()
        if outcome.status == StepStatus.FAILED and (self.error is not None or not self._keep_going):
            self.stopping = True

    def _settle(self, outcome: Outcome) -> None:
        name = outcome.stage
        if outcome.status == StepStatus.UNREACHED:
            self.walk.give_up(name)  # never started: reported as cancelled when the run ends
            return
        self.summary.outcomes[name] = outcome
        if not outcome.status.settles_downstream:
            for down in self.walk.fail(name):
                blocked = Outcome(down, StepStatus.BLOCKED, error=f"upstream {name} failed")
                self.summary.outcomes[down] = blocked
                self.ctx.reporter.finish(down, StepStatus.BLOCKED, 0.0, f"upstream {name} did not complete")
            return
        self.ctx.settled[name] = outcome.outputs  # downstream keys read these digests
        self.walk.finish(name)
