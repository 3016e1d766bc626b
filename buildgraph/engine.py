"""Walks a plan: decide each step once its upstream steps are done, then skip, restore or run it.

One step per worker thread; at most `jobs` commands at once (`slots.Slots`), GPU steps
drawing device ids from a pool so they never oversubscribe the GPUs. A step gives its slot
back when its command succeeds, so storing its outputs (hashing, fsyncs) overlaps the next
command; it settles, and its downstream steps become ready, only once stored. Deciding
happens on the main thread as soon as a step is ready, after every upstream step settled:
a rerun that reproduced identical bytes leaves the downstream key unchanged (early cutoff).
Scratch folders are recycled (`workdir.SpareFolders`), never made per step.

Crash safety, in the order things happen for a run step:
    executor writes outputs in a scratch dir  → killed here: nothing recorded, step reruns
    outputs moved into cache objects (fsync)  → killed here: stray objects, gc removes them
    run manifest written (atomic, last)       → killed here: next run restores from cache
    outputs linked into the workspace
    one journal line appended                 → folded into Buildfile.lock at the end
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildgraph import faults
from buildgraph.core.graph import Graph
from buildgraph.core.keys import KEY_VERSION, key_of, run_material
from buildgraph.core.plan import Decision, Observed, decide
from buildgraph.core.spec import RunStage, Spec
from buildgraph.diskfull import tree_bytes, writing
from buildgraph.errors import BgError, EnvironmentProblem, Interrupted, StageFailed
from buildgraph.executors.base import Cancel, Executor, Job
from buildgraph.executors.workdir import SpareFolders, recycle_below, work_dir
from buildgraph.lockfile import Journal, Lock, current
from buildgraph.report import Reporter
from buildgraph.slots import Claim, Slots
from buildgraph.stores.cache import UnsafeOutput, check_output
from buildgraph.workspace import Workspace, host_fingerprint

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from buildgraph.imagesteps import ImageSteps


@dataclass
class Options:
    jobs: int = 1
    keep_going: bool = False
    force: frozenset[str] = frozenset()
    dry_run: bool = False
    link: str = "auto"
    gpus: int = 0  # GPUs available to the GPU pool
    in_images: bool = False  # run stages execute in their images (the docker executor)


@dataclass
class Outcome:
    stage: str
    status: str  # skipped | cutoff | cached | done | failed | cancelled | blocked
    decision: Decision | None = None
    duration: float = 0.0
    error: str = ""
    log_path: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # path → digest, once in the workspace
    # not a stage's failure (an environment problem, a bug): the run stops and raises it
    exception: BaseException | None = None
    hint: str = ""  # what the user might do about a failure


@dataclass
class Summary:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [o.stage for o in self.outcomes.values() if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts


class Engine:
    def __init__(
        self,
        ws: Workspace,
        spec: Spec,
        graph: Graph,
        executor: Executor,
        reporter: Reporter,
        options: Options,
        images: Callable[[Lock], ImageSteps] | None = None,
        lock: Lock | None = None,
    ) -> None:
        self.ws, self.spec, self.graph = ws, spec, graph
        self.executor, self.reporter, self.options = executor, reporter, options
        # the recorded state: as just folded by the caller, or with a killed run's journal read in
        self.lock = lock if lock is not None else current(ws.lock_path, ws.journal_path)
        # made only when a selection holds an image stage: a host-only run never touches Docker
        self._image_steps = images
        self.images: ImageSteps | None = None
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}"
        self.cancel = Cancel()
        self.environment: dict[str, Any] = {"host": host_fingerprint()}
        # output digests of steps settled (run) or to be restored (status): a downstream key uses
        # them without hashing the workspace file again (its ctime changes when staged)
        self._planned: dict[str, dict[str, str]] = {}
        self._input_sources: dict[str, list[tuple[str, str | None]]] = {}
        self._slots = Slots(options.jobs, options.gpus)
        self._scratch_root = self.ws.tmp / self.run_id  # one folder per step below it
        self._scratch_made = False
        self._spares: SpareFolders | None = None  # scratch folders are reused, not remade

    # ---------------------------------------------------------------- selection
    def steps(self, targets: list[str]) -> list[str]:
        """The stages to walk: the run stages, plus the image stages that are wanted — those the
        run stages execute in (docker executor) and those named as targets (or, with no target
        and no `default`, every one). Run stages on the host need no image, so under the local
        executor a target's image ancestors are not built unless named."""
        targets = targets or list(self.spec.default)
        names = self.graph.closure(targets) if targets else self.graph.order()
        if not self.options.in_images:
            named = [n for n in targets or names if not isinstance(self.spec.stages[n], RunStage)]
            images = set(self.graph.closure(named)) if named else set()
            names = [n for n in names if n in images or isinstance(self.spec.stages[n], RunStage)]
        if self.images is None and any(not isinstance(self.spec.stages[n], RunStage) for n in names):
            if self._image_steps is None:
                raise EnvironmentProblem("this selection holds image stages, and this engine has no Docker")
            self.images = self._image_steps(self.lock)
        return names

    def _upstreams(self, name: str, selected: set[str]) -> set[str]:
        return {u for u in self.graph.upstreams(name) if u in selected}

    # ---------------------------------------------------------------- deciding
    def evaluate(self, name: str, pending: tuple[str, ...] = ()) -> tuple[Decision, dict[str, Any]]:
        stage = self.spec.stages[name]
        if not isinstance(stage, RunStage):
            assert self.images is not None
            return self.images.evaluate(name, forced=name in self.options.force)
        sources = self._sources(name)
        digests = {path: self._input_digest(path, producer) for path, producer in sources}
        material = run_material(stage, self.spec, self._environment_of(stage), digests)
        key = key_of(material)
        seen = Observed(
            outputs={o.path: self.ws.digest(o.path) for o in stage.outputs},
            forced=name in self.options.force,
            upstream_of={path: producer for path, producer in sources if producer is not None},
            pending=pending,
        )
        decision = decide(name, key, material, self.lock.get(name), seen)
        if decision.action == "run" and self.ws.cache.has_manifest(key):  # asked only when not up to date
            decision = decide(
                name, key, material, self.lock.get(name), dataclasses.replace(seen, cached=True)
            )
        return decision, material

    def _environment_of(self, stage: RunStage) -> dict[str, Any]:
        if self.options.in_images and self.images is not None and stage.image:
            return {"image": self.images.keys[stage.image]}
        return self.environment

    def _sources(self, name: str) -> list[tuple[str, str | None]]:
        """Each input of run stage `name` with the stage producing it (None: a workspace file)."""
        found = self._input_sources.get(name)
        if found is None:
            found = self._input_sources[name] = self.graph.input_sources(name)
        return found

    def _input_digest(self, path: str, producer: str | None) -> str | None:
        """An upstream output's recorded digest once its step settled, else the file's."""
        planned = self._planned.get(producer, {}).get(path) if producer is not None else None
        return planned if planned is not None else self.ws.digest(path)

    def status(self, targets: list[str]) -> list[Decision]:
        """What `run` would do, without doing it (nothing is written but the stat cache)."""
        decisions: dict[str, Decision] = {}
        selected = self.steps(targets)
        chosen = set(selected)
        for name in selected:
            # an image's key is known before it is built: only run steps leave a step tentative
            pending = tuple(u for u in sorted(self._upstreams(name, chosen)) if decisions[u].action == "run")
            decision, _ = self.evaluate(name, pending)
            decisions[name] = decision
            if decision.action == "restore":
                manifest = self.ws.cache.get_manifest(decision.key, verify=False) or {}
                self._planned[name] = {p: rec["digest"] for p, rec in manifest.get("outputs", {}).items()}
        return [decisions[n] for n in selected]

    # ---------------------------------------------------------------- running
    def run(self, targets: list[str]) -> Summary:
        started = time.monotonic()
        selected = self.steps(targets)
        self._check_secrets(selected)
        # every step is queued until decided (just before it runs): the live table lists them all
        self.reporter.plan([(name, "queued", []) for name in selected])
        chosen = set(selected)
        walk = _Walk(chosen, {n: self._upstreams(n, chosen) for n in selected}, Journal(self.ws.journal_path))
        walk.ready = [n for n in selected if not walk.waiting[n]]
        try:
            while walk.ready or walk.running:
                self._hand_out(walk)
                if not walk.running:
                    if walk.stop or not walk.ready:
                        break
                    continue
                for future in self._slots.wait(walk.running):
                    walk.running.remove(future)
                    outcome = future.result()
                    if outcome.status == "done":
                        walk.ran.add(outcome.stage)
                    self._settle(outcome, walk)
                    if outcome.exception is not None and walk.error is None:
                        walk.error = outcome.exception
                        self._slots.stop()
                    if outcome.status == "failed" and (walk.error is not None or not self.options.keep_going):
                        walk.stop = True
            if walk.error is not None:  # the steps that were running have settled and are recorded
                raise walk.error  # here, not after `finally`: its clean-up may meet the same full disk
        except KeyboardInterrupt:
            self.cancel.set()
            self._slots.stop()
            for future in list(walk.running):
                self._settle(future.result(), walk)
            raise Interrupted(
                "interrupted; completed stages were recorded", hint="run `bg run` again to resume"
            ) from None
        finally:
            if walk.pool is not None:
                walk.pool.shutdown(wait=True)
            walk.journal.close()
            if self._scratch_made:
                recycle_below(str(self._scratch_root), None)
                shutil.rmtree(self._scratch_root, ignore_errors=True)
            self._mark_unreached(selected, walk.summary)
            walk.summary.duration = time.monotonic() - started
            self.ws.remember_run(self.run_id, self._keys_used(walk.summary))
        return walk.summary

    def _hand_out(self, walk: _Walk) -> None:
        """Settle the ready steps found up to date; give the others to workers, at most `jobs`
        of them waiting for a slot. Deciding happens here, while commands run (a step's inputs
        are settled once it is ready), so a freed slot starts the next command at once."""
        while walk.ready and not walk.stop and self._slots.queued < self._slots.jobs:
            name = self._next_dispatchable(walk.ready)
            if name is None:
                return
            walk.ready.remove(name)
            decision, material = self.evaluate(name)
            if decision.action == "skip":
                self._settle(self._skipped(name, decision, material, walk), walk)
                continue
            if decision.action == "run":
                _raise_missing(self._missing_secrets([name]))
            self._make_scratch_root()
            self._slots.queue()
            future = walk.workers(self._slots.jobs).submit(
                self._run_step, name, decision, material, walk.journal
            )
            self._slots.watch(future)
            walk.running.add(future)

    def _check_secrets(self, selected: list[str]) -> None:
        """Fail before running anything when a step that will run needs a secret that is not set.
        A stage that is up to date or restored needs none: deciding is cheap, and done only
        when some secret is missing. (A step that turns out to run later is checked again.)"""
        missing = self._missing_secrets(selected)
        if missing:
            will_run = {d.stage for d in self.status(selected) if d.action == "run"}
            self._planned.clear()  # status's guesses; the walk records what really happens
            _raise_missing({s: names for s, names in missing.items() if s in will_run})

    def _missing_secrets(self, names: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name in names:
            stage = self.spec.stages[name]
            unset = [s for s in getattr(stage, "secrets", ()) if s not in os.environ]
            if unset and isinstance(stage, RunStage):
                found[name] = unset
        return found

    def _next_dispatchable(self, ready: list[str]) -> str | None:
        for name in ready:
            if self._slots.gpus_free(self._gpus_wanted(name)):
                return name
        return None

    def _gpus_wanted(self, name: str) -> int:
        stage = self.spec.stages[name]
        wanted = stage.gpu_count if isinstance(stage, RunStage) else 0
        if wanted == 0 or self.options.gpus == 0:
            return 0
        return self.options.gpus if wanted is None else min(wanted, self.options.gpus)

    def _run_step(self, name: str, decision: Decision, material: dict[str, Any], journal: Journal) -> Outcome:
        """A worker's whole step: wait for a slot, then run, restore or build, and store."""
        claim = self._slots.take(self._gpus_wanted(name))
        if claim is None:
            return Outcome(name, "unreached", decision)  # stopped before it could start
        try:
            self.reporter.start(name, decision.action, [r.text() for r in decision.reasons])
            stage = self.spec.stages[name]
            if isinstance(stage, RunStage):
                outcome = self._execute_guarded(stage, decision, material, journal, claim)
            else:
                outcome = self._build_guarded(name, decision, material, journal)
            if outcome.status == "cancelled" or (outcome.status == "failed" and not self.options.keep_going):
                self._slots.stop()  # before the slot frees: no other step starts
            return outcome
        finally:
            claim.release()

    def _skipped(self, name: str, decision: Decision, material: dict[str, Any], walk: _Walk) -> Outcome:
        ups = self.graph.upstreams(name)
        status = "cutoff" if any(u in walk.ran for u in ups) else "skipped"
        recorded = self.lock.get(name) or {}
        if self.images is not None and name in self.images.keys and recorded.get("key") != decision.key:
            walk.journal.record(name, self.images.entry(name, decision.key, material))  # built elsewhere
        self.reporter.finish(name, status, 0.0, "")
        return Outcome(name, status, decision, outputs=_digests(recorded.get("outputs", {})))  # = workspace

    def _make_scratch_root(self) -> None:
        """The run's scratch folder and the log folder, made once (main thread), not per step."""
        if not self._scratch_made:
            self._scratch_root.mkdir(parents=True, exist_ok=True)
            self.ws.logs.mkdir(parents=True, exist_ok=True)
            self._spares = SpareFolders(f"{self._scratch_root}/.spare")
            recycle_below(str(self._scratch_root), self._spares)
            self._scratch_made = True

    def _settle(self, outcome: Outcome, walk: _Walk) -> None:
        if outcome.status == "unreached":
            return  # never started: `_mark_unreached` records it
        walk.summary.outcomes[outcome.stage] = outcome
        if outcome.status in ("failed", "cancelled", "blocked"):
            for down in self._all_downstreams(outcome.stage, walk.chosen):
                if down not in walk.summary.outcomes:
                    walk.summary.outcomes[down] = Outcome(
                        down, "blocked", error=f"upstream {outcome.stage} failed"
                    )
                    self.reporter.finish(down, "blocked", 0.0, f"upstream {outcome.stage} did not complete")
                    walk.waiting.pop(down, None)
                    if down in walk.ready:
                        walk.ready.remove(down)
            return
        self._planned[outcome.stage] = outcome.outputs  # downstream keys read these digests
        for down in self.graph.downstreams(outcome.stage):
            if down in walk.waiting and outcome.stage in walk.waiting[down]:
                walk.waiting[down].discard(outcome.stage)
                if not walk.waiting[down] and down not in walk.summary.outcomes:
                    walk.ready.append(down)

    def _all_downstreams(self, name: str, chosen: set[str]) -> list[str]:
        found: list[str] = []
        stack = [name]
        while stack:
            for down in self.graph.downstreams(stack.pop()):
                if down in chosen and down not in found:
                    found.append(down)
                    stack.append(down)
        return found

    def _mark_unreached(self, selected: list[str], summary: Summary) -> None:
        for name in selected:
            if name not in summary.outcomes:
                summary.outcomes[name] = Outcome(name, "cancelled")

    def _keys_used(self, summary: Summary) -> list[str]:
        return [o.decision.key for o in summary.outcomes.values() if o.decision is not None]

    # ---------------------------------------------------------------- one step
    def _execute_guarded(
        self,
        stage: RunStage,
        decision: Decision,
        material: dict[str, Any],
        journal: Journal,
        claim: Claim,
    ) -> Outcome:
        started = time.monotonic()
        try:
            restored = (
                self._restore(stage, decision, material, journal) if decision.action == "restore" else None
            )
            if restored is not None:
                outcome = Outcome(
                    stage.name, "cached", decision, time.monotonic() - started, outputs=restored
                )
            else:
                outcome = self._execute(stage, decision, material, journal, claim)
        except Exception as exc:  # must not hang the scheduler: the run stops and raises it
            outcome = _not_the_stages_fault(stage.name, decision, time.monotonic() - started, exc)
        self.reporter.finish(
            stage.name, outcome.status, outcome.duration, outcome.error, log=outcome.log_path
        )
        return outcome

    def _build_guarded(
        self, name: str, decision: Decision, material: dict[str, Any], journal: Journal
    ) -> Outcome:
        assert self.images is not None
        started = time.monotonic()
        log_path = self.ws.logs / f"{name}.log"
        rel_log = os.path.relpath(log_path, self.ws.root)
        with open(log_path, "w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                self.reporter.line(name, line)

            try:
                entry = self.images.build(name, decision.key, material, on_line)
            except StageFailed as exc:  # the build itself failed: the stage's fault
                outcome = Outcome(name, "failed", decision, time.monotonic() - started, exc.message, rel_log)
            except Exception as exc:  # cannot pull, lost the daemon, a bug: the run stops
                outcome = _not_the_stages_fault(name, decision, time.monotonic() - started, exc)
                outcome.log_path = rel_log
            else:
                journal.record(name, entry)
                outcome = Outcome(name, "done", decision, time.monotonic() - started, "", rel_log)
        self.reporter.finish(name, outcome.status, outcome.duration, outcome.error, log=outcome.log_path)
        return outcome

    def _restore(
        self, stage: RunStage, decision: Decision, material: dict[str, Any], journal: Journal
    ) -> dict[str, str] | None:
        """The restored outputs' digests; None when the entry is gone or corrupt since deciding
        (the step then runs)."""
        manifest = self.ws.cache.get_manifest(decision.key)
        if manifest is None:
            return None
        self._materialise(manifest["outputs"])
        journal.record(stage.name, self._lock_entry(decision.key, material, manifest["outputs"]))
        return _digests(manifest["outputs"])

    def _execute(
        self,
        stage: RunStage,
        decision: Decision,
        material: dict[str, Any],
        journal: Journal,
        claim: Claim,
    ) -> Outcome:
        assert self._spares is not None
        scratch = self._scratch_root / stage.name
        self._spares.take(str(scratch))
        log_path = self.ws.logs / f"{stage.name}.log"
        job = self._job(stage, scratch, log_path, claim.gpu_ids)
        job = dataclasses.replace(job, **self._secrets(stage, scratch, job))
        rel_log = os.path.relpath(log_path, self.ws.root)
        try:
            result = self.executor.run(
                job, on_line=lambda line: self.reporter.line(stage.name, line), cancel=self.cancel
            )
            if result.interrupted or self.cancel.is_set():
                return Outcome(stage.name, "cancelled", decision, result.duration, "interrupted", rel_log)
            if not result.ok:
                error = result.error or f"command exited with status {result.exit_status}"
                outcome = Outcome(stage.name, "failed", decision, result.duration, error, rel_log)
                outcome.hint = self._failure_hint(stage, job, log_path)
                return outcome
            claim.release()  # succeeded: the next command may start while this step stores
            refused = _unsafe_outputs(stage, result.output_root)
            if refused:  # checked before anything is stored: nothing of the step is cached
                log = rel_log if log_path.exists() else ""
                return Outcome(stage.name, "failed", decision, result.duration, refused, log)
            outputs = self._store(stage, decision, material, result.output_root, log_path, result.duration)
        finally:
            self._spares.keep(str(scratch))
        journal.record(stage.name, self._lock_entry(decision.key, material, outputs))
        return Outcome(stage.name, "done", decision, result.duration, "", rel_log, _digests(outputs))

    def _job(self, stage: RunStage, scratch: Any, log_path: Any, gpu_ids: tuple[int, ...]) -> Job:
        env = list(stage.env)
        if stage.gpu_count != 0:
            env.append(("CUDA_VISIBLE_DEVICES", ",".join(_visible_gpus(gpu_ids))))
        return Job(
            stage=stage.name,
            run_id=self.run_id,
            command=stage.command,
            inputs=tuple((path, self.ws.path(path)) for path in stage.inputs),
            outputs=tuple(o.path + ("/" if o.is_dir else "") for o in stage.outputs),
            scratch=scratch,
            log_path=log_path,
            env=tuple(env),
            timeout=stage.timeout,
            gpus=gpu_ids if gpu_ids else None,
            image=self._image_tag(stage),
            network=stage.network,
            shm_size=stage.shm_size,
        )

    def _failure_hint(self, stage: RunStage, job: Job, log_path: Path) -> str:
        """What the end of a failed command's log suggests the user do (or "")."""
        from buildgraph.diagnose import undeclared_input_hint

        try:
            with open(log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        roots = (str(work_dir(job.scratch)), job.workdir, str(self.ws.root))
        exists = lambda path: self.ws.path(path).exists()  # noqa: E731
        return undeclared_input_hint(stage.name, lines, stage.inputs, exists, roots)

    def _image_tag(self, stage: RunStage) -> str:
        """The image the job runs in; "" on the host."""
        if self.options.in_images and self.images is not None and stage.image:
            return self.images.tag(stage.image)
        return ""

    def _secrets(self, stage: RunStage, scratch: Path, job: Job) -> dict[str, Any]:
        """Secret values from bg's environment, as 0600 files outside the work dir.

        Containers see them at /run/secrets/NAME; a host command finds them in
        $BG_SECRETS_DIR. They never enter a key, the lock, the cache or an image.
        """
        if not stage.secrets:
            return {}
        folder = scratch / "secrets"
        folder.mkdir(mode=0o700)
        files = []
        for name in stage.secrets:
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(os.environ[name])
            files.append((name, path))
        return {"secrets": tuple(files), "env": (*job.env, ("BG_SECRETS_DIR", str(folder)))}

    def _store(
        self,
        stage: RunStage,
        decision: Decision,
        material: dict[str, Any],
        output_root: Any,
        log_path: Any,
        duration: float,
    ) -> dict[str, dict[str, Any]]:
        cache, name = self.ws.cache, stage.name
        records = {}
        for o in stage.outputs:  # a full disk: no manifest, so the step reruns (stray objects: gc)
            source = output_root / o.path
            what = f"cache object for stage '{name}' output '{o.path}'"
            with writing(what, cache.root, partial(tree_bytes, source)):
                records[o.path] = cache.ingest(source).as_dict()
        faults.point("before-manifest")  # objects stored, manifest not yet written
        with writing(f"the log of stage '{name}' into the cache", cache.root, partial(tree_bytes, log_path)):
            log = cache.put_log(log_path)
        manifest = {
            "key": decision.key,
            "stage": stage.name,
            "material": material,
            "outputs": records,
            "log": log,
            "exit_status": 0,
            "duration": round(duration, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "executor": self.executor.name,
            "run_id": self.run_id,
        }
        with writing(f"the run manifest of stage '{name}'", cache.root, lambda: len(json.dumps(manifest))):
            cache.put_manifest(decision.key, manifest)
        self._materialise(records)
        return records

    def _materialise(self, records: dict[str, dict[str, Any]]) -> None:
        for path, record in records.items():
            # a full disk: nothing journalled, so the next run restores the step from the cache
            with writing(f"output '{path}' into the workspace", self.ws.path(path), record.get("size")):
                self.ws.cache.materialise(record, self.ws.path(path), self.options.link)
            self.ws.digests.remember(self.ws.path(path), record)

    def _lock_entry(
        self, key: str, material: dict[str, Any], outputs: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "kind": "run",
            "key": key,
            "v": KEY_VERSION,
            "material": material,
            "outputs": {
                p: {k: r[k] for k in ("kind", "digest", "size") if k in r} for p, r in outputs.items()
            },
        }


@dataclass
class _Walk:
    """The state of one `run`: which steps wait for which, which are ready, which running."""

    chosen: set[str]
    waiting: dict[str, set[str]]  # step → upstream steps not settled yet
    journal: Journal
    ready: list[str] = field(default_factory=list)
    running: set[Future[Outcome]] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)
    summary: Summary = field(default_factory=Summary)
    stop: bool = False
    error: BaseException | None = None  # the first step's exception that is no stage failure
    pool: ThreadPoolExecutor | None = None  # made when a step first has work to do

    def workers(self, jobs: int) -> ThreadPoolExecutor:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor  # not imported by a run with nothing to do

            # `jobs` steps run commands, `jobs` wait for a slot, up to 2 × `jobs` store outputs
            self.pool = ThreadPoolExecutor(max_workers=4 * max(1, jobs), thread_name_prefix="bg-step")
        return self.pool


def _raise_missing(secrets: dict[str, list[str]]) -> None:
    missing = sorted(f"{name} (stage {stage})" for stage, names in secrets.items() for name in names)
    if missing:
        raise EnvironmentProblem(
            f"secret(s) not set in the environment: {', '.join(missing)}",
            hint="export each secret's value as an environment variable of the same name before `bg run`",
        )


def _not_the_stages_fault(name: str, decision: Decision, duration: float, exc: Exception) -> Outcome:
    error = exc.message if isinstance(exc, BgError) else f"internal error: {exc!r}"
    return Outcome(name, "failed", decision, duration, error, exception=exc)


def _unsafe_outputs(stage: RunStage, output_root: Path) -> str:
    """Why the step's outputs may not be stored (a symlink leading out of one), or ""."""
    try:
        for o in stage.outputs:
            check_output(f"{output_root}/{o.path}", o.path + ("/" if o.is_dir else ""))
    except UnsafeOutput as refused:
        return str(refused)
    return ""


def _digests(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {path: record["digest"] for path, record in records.items()}


def _visible_gpus(pool_ids: tuple[int, ...]) -> list[str]:
    """The host's names for the pool's GPUs: under `CUDA_VISIBLE_DEVICES=3,5` pool slot 0 is
    GPU "3", and a stage told `0` would land on a GPU it was never given."""
    host = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [d.strip() for d in (host or "").split(",") if d.strip() and d.strip() != "-1"]
    return [visible[i] if host is not None and i < len(visible) else str(i) for i in pool_ids]
