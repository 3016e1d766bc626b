"""Walks a plan: decide each step once its upstream steps are done, then skip, restore or run it.

One step at a time per worker thread, at most `jobs` at once, GPU steps drawing device
ids from a pool so they never oversubscribe the GPUs. Deciding happens on the main
thread right before dispatch, after every upstream step finished: a rerun that
reproduced identical bytes leaves the downstream key unchanged (early cutoff).

Crash safety, in the order things happen for a run step:
    executor writes outputs in a scratch dir  → killed here: nothing recorded, step reruns
    outputs moved into cache objects (fsync)  → killed here: stray objects, gc removes them
    run manifest written (atomic, last)       → killed here: next run restores from cache
    outputs linked into the workspace
    one journal line appended                 → folded into Buildfile.lock at the end
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildgraph import faults
from buildgraph.core.graph import Graph
from buildgraph.core.keys import KEY_VERSION, key_of, run_material
from buildgraph.core.plan import Decision, Observed, decide
from buildgraph.core.spec import RunStage, Spec
from buildgraph.errors import BgError, EnvironmentProblem, Interrupted
from buildgraph.executors.base import Cancel, Executor, Job
from buildgraph.lockfile import Journal, current
from buildgraph.report import Reporter
from buildgraph.workspace import Workspace, host_fingerprint

if TYPE_CHECKING:
    from buildgraph.imagesteps import ImageSteps


@dataclass
class Options:
    jobs: int = 1
    keep_going: bool = False
    force: frozenset[str] = frozenset()
    dry_run: bool = False
    link: str = "auto"
    gpus: int = 0  # GPUs available to the GPU pool


@dataclass
class Outcome:
    stage: str
    status: str  # skipped | cutoff | cached | done | failed | cancelled | blocked
    decision: Decision | None = None
    duration: float = 0.0
    error: str = ""
    log_path: str = ""


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
        images: ImageSteps | None = None,
    ) -> None:
        self.ws, self.spec, self.graph = ws, spec, graph
        self.images = images  # image stages are steps only when run stages execute in containers
        self.executor, self.reporter, self.options = executor, reporter, options
        self.lock = current(ws.lock_path, ws.journal_path)  # a killed run's journal counts too
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.cancel = Cancel()
        self.environment: dict[str, Any] = {"host": host_fingerprint()}
        self._planned: dict[str, dict[str, str]] = {}  # status mode: outputs a restore would bring
        self._gpu_free = list(range(options.gpus))
        self._gpu_lock = threading.Lock()

    # ---------------------------------------------------------------- selection
    def steps(self, targets: list[str]) -> list[str]:
        """The stages to walk: run stages, plus the image stages they need under docker."""
        targets = targets or list(self.spec.default)
        names = self.graph.closure(targets) if targets else self.graph.order()
        if self.images is not None:
            return names
        return [n for n in names if isinstance(self.spec.stages[n], RunStage)]

    def _upstreams(self, name: str, selected: set[str]) -> set[str]:
        return {u for u in self.graph.upstreams(name) if u in selected}

    # ---------------------------------------------------------------- deciding
    def evaluate(self, name: str, pending: tuple[str, ...] = ()) -> tuple[Decision, dict[str, Any]]:
        stage = self.spec.stages[name]
        if not isinstance(stage, RunStage):
            assert self.images is not None
            return self.images.evaluate(name, forced=name in self.options.force)
        digests = {path: self._input_digest(path) for path in stage.inputs}
        material = run_material(stage, self.spec, self._environment_of(stage), digests)
        key = key_of(material)
        seen = Observed(
            outputs={o.path: self.ws.digest(o.path) for o in stage.outputs},
            cached=self.ws.cache.has_manifest(key),
            forced=name in self.options.force,
            upstream_of=self._upstream_paths(stage),
            pending=pending,
        )
        return decide(name, key, material, self.lock.get(name), seen), material

    def _environment_of(self, stage: RunStage) -> dict[str, Any]:
        if self.images is not None and stage.image:
            return {"image": self.images.keys[stage.image]}
        return self.environment

    def _input_digest(self, path: str) -> str | None:
        planned = self._planned_digest(path)
        return planned if planned is not None else self.ws.digest(path)

    def _planned_digest(self, path: str) -> str | None:
        producer = self.graph.producer(path)
        if producer is None:
            return None
        outputs = self._planned.get(producer[0], {})
        return outputs.get(path)

    def _upstream_paths(self, stage: RunStage) -> dict[str, str]:
        found = {}
        for path in stage.inputs:
            producer = self.graph.producer(path)
            if producer is not None:
                found[path] = producer[0]
        return found

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
        summary = Summary()
        selected = self.steps(targets)
        self._check_secrets(selected)
        chosen = set(selected)
        waiting = {n: self._upstreams(n, chosen) for n in selected}
        ready = [n for n in selected if not waiting[n]]
        ran: set[str] = set()
        journal = Journal(self.ws.journal_path)
        running: dict[Future[Outcome], str] = {}
        stop = False
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.jobs), thread_name_prefix="bg-step")
        try:
            while ready or running:
                while ready and not stop and len(running) < max(1, self.options.jobs):
                    name = self._next_dispatchable(ready)
                    if name is None:
                        break
                    ready.remove(name)
                    outcome = self._dispatch(name, pool, running, journal, ran)
                    if outcome is not None:
                        self._settle(outcome, summary, waiting, ready, chosen)
                if stop and not running:
                    break
                if not running:
                    continue
                done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    outcome = future.result()
                    if outcome.status == "done":
                        ran.add(outcome.stage)
                    self._settle(outcome, summary, waiting, ready, chosen)
                    if outcome.status == "failed" and not self.options.keep_going:
                        stop = True
        except KeyboardInterrupt:
            self.cancel.set()
            for future in list(running):
                outcome = future.result()
                self._settle(outcome, summary, waiting, ready, chosen)
            raise Interrupted(
                "interrupted; completed stages were recorded", hint="run `bg run` again to resume"
            ) from None
        finally:
            pool.shutdown(wait=True)
            journal.close()
            shutil.rmtree(self.ws.tmp / self.run_id, ignore_errors=True)
            self._mark_unreached(selected, summary)
            summary.duration = time.monotonic() - started
            self.ws.remember_run(self.run_id, self._keys_used(summary))
        return summary

    def _check_secrets(self, selected: list[str]) -> None:
        missing = sorted(
            {
                f"{name} (stage {stage.name})"
                for stage in map(self.spec.stages.get, selected)
                if isinstance(stage, RunStage)
                for name in stage.secrets
                if name not in os.environ
            }
        )
        if missing:
            raise EnvironmentProblem(
                f"secret(s) not set in the environment: {', '.join(missing)}",
                hint="export each secret's value as an environment variable of the same name before `bg run`",
            )

    def _next_dispatchable(self, ready: list[str]) -> str | None:
        for name in ready:
            stage = self.spec.stages[name]
            if not isinstance(stage, RunStage) or self._gpus_available(stage):
                return name
        return None

    def _gpus_available(self, stage: RunStage) -> bool:
        wanted = stage.gpu_count
        if wanted == 0 or self.options.gpus == 0:
            return True
        with self._gpu_lock:
            need = self.options.gpus if wanted is None else min(wanted, self.options.gpus)
            return len(self._gpu_free) >= need

    def _take_gpus(self, stage: RunStage) -> tuple[int, ...]:
        wanted = stage.gpu_count
        if wanted == 0 or self.options.gpus == 0:
            return ()
        with self._gpu_lock:
            need = self.options.gpus if wanted is None else min(wanted, self.options.gpus)
            taken, self._gpu_free = self._gpu_free[:need], self._gpu_free[need:]
            return tuple(taken)

    def _give_gpus(self, ids: tuple[int, ...]) -> None:
        with self._gpu_lock:
            self._gpu_free = sorted(self._gpu_free + list(ids))

    def _dispatch(
        self,
        name: str,
        pool: ThreadPoolExecutor,
        running: dict[Future[Outcome], str],
        journal: Journal,
        ran: set[str],
    ) -> Outcome | None:
        decision, material = self.evaluate(name)
        if decision.action == "skip":
            upstream_ran = bool(self.graph.upstreams(name)) and any(
                u in ran for u in self.graph.upstreams(name)
            )
            status = "cutoff" if upstream_ran else "skipped"
            recorded = self.lock.get(name) or {}
            if self.images is not None and name in self.images.keys and recorded.get("key") != decision.key:
                journal.record(name, self.images.entry(name, decision.key, material))  # built elsewhere
            self.reporter.finish(name, status, 0.0, "")
            return Outcome(name, status, decision)
        self.reporter.start(name, decision.action, [r.text() for r in decision.reasons])
        stage = self.spec.stages[name]
        if not isinstance(stage, RunStage):
            running[pool.submit(self._build_guarded, name, decision, material, journal)] = name
            return None
        gpu_ids = self._take_gpus(stage)
        future = pool.submit(self._execute_guarded, stage, decision, material, journal, gpu_ids)
        running[future] = name
        return None

    def _settle(
        self,
        outcome: Outcome,
        summary: Summary,
        waiting: dict[str, set[str]],
        ready: list[str],
        chosen: set[str],
    ) -> None:
        summary.outcomes[outcome.stage] = outcome
        if outcome.status in ("failed", "cancelled", "blocked"):
            for down in self._all_downstreams(outcome.stage, chosen):
                if down not in summary.outcomes:
                    summary.outcomes[down] = Outcome(
                        down, "blocked", error=f"upstream {outcome.stage} failed"
                    )
                    self.reporter.finish(down, "blocked", 0.0, f"upstream {outcome.stage} did not complete")
                    waiting.pop(down, None)
                    if down in ready:
                        ready.remove(down)
            return
        for down in self.graph.downstreams(outcome.stage):
            if down in waiting and outcome.stage in waiting[down]:
                waiting[down].discard(outcome.stage)
                if not waiting[down] and down not in summary.outcomes:
                    ready.append(down)

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
        gpu_ids: tuple[int, ...],
    ) -> Outcome:
        started = time.monotonic()
        try:
            if decision.action == "restore" and self._restore(stage, decision, material, journal):
                outcome = Outcome(stage.name, "cached", decision, time.monotonic() - started)
            else:
                outcome = self._execute(stage, decision, material, journal, gpu_ids)
        except Exception as exc:  # an executor or store bug must not hang the scheduler
            if os.environ.get("BG_DEBUG"):
                raise
            outcome = Outcome(
                stage.name, "failed", decision, time.monotonic() - started, f"internal error: {exc!r}"
            )
        finally:
            self._give_gpus(gpu_ids)
        self.reporter.finish(
            stage.name, outcome.status, outcome.duration, outcome.error, log=outcome.log_path
        )
        return outcome

    def _build_guarded(
        self, name: str, decision: Decision, material: dict[str, Any], journal: Journal
    ) -> Outcome:
        assert self.images is not None
        started = time.monotonic()
        self.ws.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.ws.logs / f"{name}.log"
        rel_log = os.path.relpath(log_path, self.ws.root)
        with open(log_path, "w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                self.reporter.line(name, line)

            try:
                entry = self.images.build(name, decision.key, material, on_line)
            except BgError as exc:
                outcome = Outcome(name, "failed", decision, time.monotonic() - started, exc.message, rel_log)
            else:
                journal.record(name, entry)
                outcome = Outcome(name, "done", decision, time.monotonic() - started, "", rel_log)
        self.reporter.finish(name, outcome.status, outcome.duration, outcome.error, log=outcome.log_path)
        return outcome

    def _restore(
        self, stage: RunStage, decision: Decision, material: dict[str, Any], journal: Journal
    ) -> bool:
        manifest = self.ws.cache.get_manifest(decision.key)
        if manifest is None:  # gone or corrupt since deciding: fall back to running
            return False
        self._materialise(manifest["outputs"])
        journal.record(stage.name, self._lock_entry(decision.key, material, manifest["outputs"]))
        return True

    def _execute(
        self,
        stage: RunStage,
        decision: Decision,
        material: dict[str, Any],
        journal: Journal,
        gpu_ids: tuple[int, ...],
    ) -> Outcome:
        scratch = self.ws.tmp / self.run_id / stage.name
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        self.ws.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.ws.logs / f"{stage.name}.log"
        job = self._job(stage, scratch, log_path, gpu_ids)
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
                return Outcome(stage.name, "failed", decision, result.duration, error, rel_log)
            outputs = self._store(stage, decision, material, result.output_root, log_path, result.duration)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        journal.record(stage.name, self._lock_entry(decision.key, material, outputs))
        return Outcome(stage.name, "done", decision, result.duration, "", rel_log)

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
            image=self.images.tag(stage.image) if self.images is not None and stage.image else "",
            network=stage.network,
            shm_size=stage.shm_size,
        )

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
        cache = self.ws.cache
        records = {o.path: cache.ingest(output_root / o.path).as_dict() for o in stage.outputs}
        faults.point("before-manifest")  # objects stored, manifest not yet written
        manifest = {
            "key": decision.key,
            "stage": stage.name,
            "material": material,
            "outputs": records,
            "log": cache.put_log(log_path),
            "exit_status": 0,
            "duration": round(duration, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "executor": self.executor.name,
            "run_id": self.run_id,
        }
        cache.put_manifest(decision.key, manifest)
        self._materialise(records)
        return records

    def _materialise(self, records: dict[str, dict[str, Any]]) -> None:
        for path, record in records.items():
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


def _visible_gpus(pool_ids: tuple[int, ...]) -> list[str]:
    """The host's names for the pool's GPUs: under `CUDA_VISIBLE_DEVICES=3,5` pool slot 0 is
    GPU "3", and a stage told `0` would land on a GPU it was never given."""
    host = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [d.strip() for d in (host or "").split(",") if d.strip() and d.strip() != "-1"]
    return [visible[i] if host is not None and i < len(visible) else str(i) for i in pool_ids]
