"""The loop of one run (ninja's `Builder`): ready steps to workers, outcomes back, recorded.

One step per worker thread; at most `jobs` commands at once (`slots.Slots`), GPU steps
drawing device ids from a pool so they never oversubscribe the GPUs. Deciding happens on
this thread as soon as a step is ready, after every upstream step settled: a rerun that
reproduced identical bytes leaves the downstream key unchanged (early cutoff). Steps are
handed to workers ahead of a free slot (at most `jobs` waiting), so a freed slot starts the
next command at once; a step gives its slot back when its command succeeds, its downstream
steps may start once it is stored, and it counts as done once committed: the steps that ran
are recorded in batches (`commit.GroupCommit`), a few times a second and when the run ends.
Every step is driven through `steps.Step`, whatever its kind.

Stopping: a failure (without --keep-going) stops handing out steps and turns away those
waiting for a slot; an exception that is no stage's failure stops the run too, and is raised
once the steps running have settled; Ctrl-C cancels the running commands, records the steps
that completed, and raises `Interrupted`. However the run ends, the steps that completed
are committed before it returns or raises.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from buildgraph import stage_secrets
from buildgraph.diskfull import writing
from buildgraph.engine.commit import Batch, GroupCommit
from buildgraph.engine.context import Context
from buildgraph.engine.outcome import Outcome, StepStatus, Summary, not_the_stages_fault
from buildgraph.engine.slots import Claim, Slots
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
        self.commits = GroupCommit(ctx.store, self.journal)
        self._committing: Future[list[Outcome]] | None = None  # a batch the committer writes
        self._committer: ThreadPoolExecutor | None = None
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
            self._commit()
            if self.error is not None:  # the steps that were running have settled and are recorded
                raise self.error  # here, not after `finally`: its clean-up may meet the same full disk
        except KeyboardInterrupt:
            self.ctx.cancel.set()
            self.slots.stop()
            self._settle_running()
            self._commit()
            raise Interrupted(
                "interrupted; completed stages were recorded", hint="run `bg run` again to resume"
            ) from None
        except Exception as exc:
            if exc is not self.error:  # raised here (deciding, a secret, a pull): workers still wait
                self.slots.stop()  # for a slot; none may start after the run has failed
                self._settle_running()
            self._commit_after(exc)
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
            if self.commits.due():
                self._commit_in_background()

    def _settle_running(self) -> None:
        """Wait for the steps still running (stopped or cancelled) and settle them."""
        for future in list(self.running):
            self.running.discard(future)
            outcome = future.result()
            if outcome.record is not None:  # it completed: recorded like any other
                self.commits.add(outcome.record, outcome)
            self._settle(outcome)

    def _commit(self) -> None:
        """Record the steps that ran since the last commit, then report them done."""
        self._landed()
        if not self.commits.pending:
            return
        with writing("the run manifests and journal", self.ctx.store.root):
            committed = self.commits.commit()
        for outcome in committed:
            self._report(outcome)

    def _commit_in_background(self) -> None:
        """Hand the batch to the committer thread (once the one before it landed): writing
        manifests (a new file each) and syncing take a few ms a step, which would hold up
        handing out the next steps."""
        self._landed()
        if self._committer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bg-commit")
        self._committing = self._committer.submit(self._write, self.commits.take())

    def _write(self, batch: Batch) -> list[Outcome]:
        with writing("the run manifests and journal", self.ctx.store.root):
            return self.commits.write(batch)

    def _landed(self) -> None:
        """Wait for the batch being written, report its steps done; raises what it raised."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            committed = committing.result()
        finally:
            self.commits.landed()
        for outcome in committed:
            self._report(outcome)

    def _report(self, outcome: Outcome) -> None:
        outcome.record = None  # committed, if it had one: 10,000 manifests are not kept to the end
        self.ctx.reporter.finish(
            outcome.stage, outcome.status, outcome.duration, outcome.error, log=outcome.log_path
        )

    def _commit_after(self, error: Exception) -> None:
        """Commit what completed before `error` stopped the run. A second failure (the same
        full disk, say) must not hide the first, which is the one raised: those steps rerun."""
        with contextlib.suppress(Exception):
            self._landed()
        if self.commits.pending:
            with contextlib.suppress(Exception):
                self._commit()

    def _close(self) -> None:
        if self._committer is not None:
            self._committer.shutdown(wait=True)  # landed already, unless the run raised first
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
            if self.commits.holds(self.ctx.graph.upstreams(step.name)):
                self._commit()  # a step starts once what it reads is recorded: killing bg during
                # a long command never costs the steps it follows (independent ones batch up)
            self.ctx.scratch.make()
            claim = self.slots.claim(step.gpus(), self._on_admit(step.name, decided))
            try:
                future = self._workers().submit(self._work, step, decided, claim)
            except BaseException:
                claim.release()  # its turn must not hold back the steps handed out after it
                raise
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
    def _on_admit(self, name: str, decided: Decided) -> Callable[[], None]:
        """What a step's claim does once admitted: report the step started."""
        decision, reporter = decided.decision, self.ctx.reporter
        return lambda: reporter.start(name, decision.action, [r.text() for r in decision.reasons])

    def _work(self, step: Step, decided: Decided, claim: Claim) -> Outcome:
        """A worker's whole step: prepare it, wait for a slot, restore, run or build, and store."""
        decision = decided.decision
        try:
            started = time.monotonic()
            try:
                outcome = step.execute(decided, claim, self.journal)
            except Exception as exc:  # must not hang the scheduler: the run stops and raises it
                outcome = not_the_stages_fault(step.name, decision, time.monotonic() - started, exc)
            if outcome.status == StepStatus.UNREACHED:
                return outcome
            if not claim.admitted:  # it ended while being prepared (inputs that cannot be staged)
                self._on_admit(step.name, decided)()
            if outcome.record is None:  # a step that ran is reported done once committed
                self._report(outcome)
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
        if outcome.record is not None:
            self.commits.add(outcome.record, outcome)
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
