"""A run stage as a step: keyed on its inputs' digests, run through the executor, stored.

Crash safety, in the order things happen when it runs:
    executor writes outputs in a scratch dir  → killed here: nothing recorded, step reruns
    outputs moved into store objects          → killed here: stray objects, gc removes them
    outputs materialised into the workspace   → killed here: the step reruns (no lock entry);
                                                fails (a full disk): the manifest alone is
                                                committed, and the next run restores from it
    group commit (engine/commit.py), with the steps that ended near it:
      manifest durable, then renamed in place → killed before: the step reruns
      one journal line appended               → killed before: next run restores from the store
    journal folded into Buildfile.lock at the end of the run

The slot is handed back as soon as the command succeeded, so storing its outputs (hashing)
overlaps the next command; the step counts as done once committed.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from buildgraph import faults, gpus, stage_secrets
from buildgraph.core.keys import KEY_VERSION, key_of, run_material
from buildgraph.core.plan import Decision, Observed, decide
from buildgraph.core.spec import DebianBase, ImageRef, ImageStage, RunStage, StageRef
from buildgraph.diskfull import tree_bytes, writing
from buildgraph.engine import recorded
from buildgraph.engine.commit import Record
from buildgraph.engine.context import Context
from buildgraph.engine.outcome import Outcome, StepStatus, not_the_stages_fault, unreached
from buildgraph.engine.slots import Claim
from buildgraph.engine.steps import Decided
from buildgraph.executors.base import Job, Result
from buildgraph.executors.workdir import work_dir
from buildgraph.lockfile import Journal
from buildgraph.stores.outputs import UnsafeOutput, check_output

Records = dict[str, dict[str, Any]]  # output path → the store's record of it
Times = tuple[float, float]  # when the command started and finished (seconds since the epoch)


class RunStep:
    def __init__(self, stage: RunStage, ctx: Context) -> None:
        self.name, self.stage, self.ctx = stage.name, stage, ctx
        self._sources: list[tuple[str, str | None]] | None = None

    # ---------------------------------------------------------------- deciding
    def decide(self, pending: tuple[str, ...] = ()) -> Decided:
        ctx, name = self.ctx, self.name
        sources = self._input_sources()
        digests = {path: self._input_digest(path, producer) for path, producer in sources}
        material = run_material(self.stage, ctx.spec, self._environment(), digests)
        key = key_of(material)
        seen = Observed(
            outputs={o.path: ctx.files.digest(o.path) for o in self.stage.outputs},
            forced=name in ctx.options.force,
            upstream_of={path: producer for path, producer in sources if producer is not None},
            pending=pending,
            always=self.stage.always,
        )
        locked = ctx.lock.get(name)  # the core reads the lock entry's JSON shape (core ↛ records)
        if self.stage.frozen and not seen.forced and locked and "material" in locked:
            kept = self._frozen(locked, seen)
            if kept is not None:
                return kept
        decision = decide(name, key, material, locked, seen)
        if decision.action == "run" and ctx.store.has_manifest(key):  # asked only when not up to date
            decision = decide(name, key, material, locked, dataclasses.replace(seen, cached=True))
        return Decided(decision, material)

    def _frozen(self, locked: Mapping[str, Any], seen: Observed) -> Decided | None:
        """A frozen stage is decided on its recorded key and material, so nothing that changed since
        reruns it; None when its result is gone from both workspace and cache (then it runs)."""
        key, material = str(locked.get("key", "")), locked["material"]
        seen = dataclasses.replace(seen, frozen=True, pending=())
        decision = decide(self.name, key, material, locked, seen)
        if decision.action == "run" and self.ctx.store.has_manifest(key):
            decision = decide(self.name, key, material, locked, dataclasses.replace(seen, cached=True))
        return Decided(decision, material) if decision.action != "run" else None

    def _input_sources(self) -> list[tuple[str, str | None]]:
        """Each input with the stage producing it (None: a workspace file)."""
        if self._sources is None:
            self._sources = self.ctx.graph.input_sources(self.name)
        return self._sources

    def _input_digest(self, path: str, producer: str | None) -> str | None:
        """An upstream output's recorded digest once its step settled, else the file's."""
        settled = self.ctx.settled.get(producer, {}).get(path) if producer is not None else None
        return settled if settled is not None else self.ctx.files.digest(path)

    def _environment(self) -> dict[str, Any]:
        images = self.ctx.images
        if self.ctx.options.in_images and images is not None and self.stage.image:
            return {"image": images.keys[self.stage.image]}
        return self.ctx.environment

    def gpus(self) -> int:
        return gpus.wanted(self.stage.gpu_count, self.ctx.options.gpus)

    def missing_secrets(self) -> list[str]:
        return stage_secrets.missing(self.stage.secrets)

    def planned(self, decided: Decided) -> dict[str, str] | None:
        if decided.decision.action != "restore":
            return None
        manifest = recorded.manifest(self.ctx.store, decided.decision.key, verify=False)
        return manifest.digests() if manifest is not None else {}

    def skip(self, decided: Decided, journal: Journal) -> dict[str, str]:
        locked = recorded.entry(self.ctx.lock, self.name)
        return locked.digests() if locked is not None else {}  # = the workspace

    # ---------------------------------------------------------------- doing
    def execute(self, decided: Decided, claim: Claim, journal: Journal) -> Outcome:
        started = time.monotonic()
        # a command is admitted by the executor once its inputs are staged; a restore, or a
        # command that needs GPU ids in its environment, first
        if (decided.decision.action == "restore" or self.gpus()) and not claim.admit():
            return unreached(self.name, decided.decision)
        if decided.decision.action == "restore":
            restored = self._restore(decided, journal)
            if restored is not None:
                duration = time.monotonic() - started
                return Outcome(self.name, StepStatus.CACHED, decided.decision, duration, outputs=restored)
        return self._run(decided, claim, journal)

    def _restore(self, decided: Decided, journal: Journal) -> dict[str, str] | None:
        """The restored outputs' digests; None when the entry is gone or damaged since deciding
        (the step then runs)."""
        key = decided.decision.key
        manifest = recorded.manifest(self.ctx.store, key)
        if manifest is None:
            return None
        self._materialise(manifest.outputs)
        entry = recorded.run_entry(key, decided.material, manifest.outputs, manifest.environment)
        journal.record(self.name, entry.to_json())
        return manifest.digests()

    def _run(self, decided: Decided, claim: Claim, journal: Journal) -> Outcome:
        ctx, name, decision = self.ctx, self.name, decided.decision
        scratch = ctx.scratch.take(name)
        log_path = ctx.files.logs / f"{name}.log"
        job = dataclasses.replace(self._job(scratch, log_path, claim.gpu_ids), admit=claim.admit)
        rel_log = ctx.rel(log_path)
        try:
            on_line = lambda line: ctx.reporter.line(name, line)  # noqa: E731
            started = time.time()  # wall-clock times for the provenance (durations are monotonic)
            result = ctx.executor.run(job, on_line=on_line, cancel=ctx.cancel)
            if result.interrupted and not claim.admitted:  # stopped before it could start
                return unreached(name, decision)
            times = (started, time.time())
            failed = self._failure(decision, job, result, rel_log)
            if failed is not None:
                return failed
            claim.release()  # succeeded: the next command may start while this step stores
            result.settle()  # where it ran, if the executor had to wait to say
            refused = _unsafe_outputs(self.stage, result.output_root)
            if refused:  # checked before anything is stored: nothing of the step is kept
                log = rel_log if log_path.exists() else ""
                return Outcome(name, StepStatus.FAILED, decision, result.duration, refused, log)
            outputs, manifest = self._store(decided, result, log_path, times)
        finally:
            ctx.scratch.keep(scratch)
        try:
            self._materialise(outputs)
        except Exception as exc:  # a full workspace, say: the cache entry is whole, so it is kept
            failed = not_the_stages_fault(name, decision, result.duration, exc)  # (restored later)
            cached = Record(name, decision.key, manifest, None)  # but not locked
            return dataclasses.replace(failed, record=cached)
        entry = recorded.run_entry(decision.key, decided.material, outputs, result.environment)
        record = Record(name, decision.key, manifest, entry.to_json())  # committed by the builder
        return Outcome(
            name, StepStatus.DONE, decision, result.duration, "", rel_log, entry.digests(), record=record
        )

    def _failure(self, decision: Decision, job: Job, result: Result, rel_log: str) -> Outcome | None:
        """The outcome of a command that was interrupted or failed; None when it succeeded."""
        if result.interrupted or self.ctx.cancel.is_set():
            return Outcome(self.name, StepStatus.CANCELLED, decision, result.duration, "interrupted", rel_log)
        if result.ok:
            return None
        error = result.error or f"command exited with status {result.exit_status}"
        hint = self._failure_hint(job, job.log_path)
        return Outcome(self.name, StepStatus.FAILED, decision, result.duration, error, rel_log, hint=hint)

    def _job(self, scratch: Path, log_path: Path, gpu_ids: tuple[int, ...]) -> Job:
        stage, ctx = self.stage, self.ctx
        env = list(stage.env)
        if stage.gpu_count != 0:
            env.append(("CUDA_VISIBLE_DEVICES", ",".join(gpus.visible(gpu_ids))))
        secrets: tuple[tuple[str, Path], ...] = ()
        if stage.secrets:  # files outside the work dir; a host command finds them in $BG_SECRETS_DIR
            secrets = stage_secrets.write_files(scratch / "secrets", stage.secrets)
            env.append(("BG_SECRETS_DIR", str(scratch / "secrets")))
        return Job(
            stage=stage.name,
            run_id=ctx.run_id,
            command=stage.command,
            # params files are staged for the command to read, but only their listed values are keyed
            inputs=tuple((path, ctx.files.path(path)) for path in _staged(stage)),
            outputs=tuple(o.path + ("/" if o.is_dir else "") for o in stage.outputs),
            scratch=scratch,
            log_path=log_path,
            env=tuple(env),
            timeout=stage.timeout,
            gpus=gpu_ids if gpu_ids else None,
            image=self._image_tag(),
            network=stage.network,
            shm_size=stage.shm_size,
            secrets=secrets,
        )

    def _image_tag(self) -> str:
        """The image the job runs in; "" on the host."""
        images = self.ctx.images
        if self.ctx.options.in_images and images is not None and self.stage.image:
            return images.tag(self.stage.image)
        return ""

    def _failure_hint(self, job: Job, log_path: Path) -> str:
        """What the end of a failed command's log suggests the user do (or "")."""
        from buildgraph.diagnose import undeclared_input_hint

        try:
            with open(log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        files = self.ctx.files
        roots = (str(work_dir(job.scratch)), job.workdir, str(files.root))
        exists = lambda path: files.path(path).exists()  # noqa: E731
        return undeclared_input_hint(self.name, lines, self.stage.inputs, exists, roots)

    # ---------------------------------------------------------------- storing
    def _store(
        self, decided: Decided, result: Result, log_path: Path, times: Times
    ) -> tuple[Records, dict[str, Any]]:
        """Store the outputs and log as objects; returns their records and the run manifest,
        for the group commit to write."""
        store, name, key, output_root = self.ctx.store, self.name, decided.decision.key, result.output_root
        outputs: Records = {}
        for o in self.stage.outputs:  # a full disk: no manifest, so the step reruns (stray objects: gc)
            source = output_root / o.path
            what = f"cache object for stage '{name}' output '{o.path}'"
            with writing(what, store.root, partial(tree_bytes, source)):
                outputs[o.path] = store.ingest(source).as_dict()
        faults.point("before-manifest")  # objects stored, manifest not yet written
        with writing(f"the log of stage '{name}' into the cache", store.root, partial(tree_bytes, log_path)):
            log = store.put_log(log_path)
        statement = self._provenance(decided, outputs, log, result.environment, times)
        manifest = recorded.run_manifest(
            key, name, decided.material, outputs, log, result.duration, self.ctx.executor.name,
            self.ctx.run_id, result.environment, statement,
        )
        return outputs, manifest.to_json()

    def _provenance(
        self, decided: Decided, outputs: Records, log: str, environment: Mapping[str, Any], times: Times
    ) -> dict[str, Any]:
        """The in-toto Statement of this run (records/provenance.py; docs/provenance.md)."""
        from buildgraph import __version__
        from buildgraph.records.provenance import Run, statement

        files, sources = self.ctx.files, self._input_sources()
        run = Run(
            stage=self.name,
            key=decided.decision.key,
            key_version=KEY_VERSION,
            material=decided.material,
            outputs=outputs,
            environment=environment,
            executor=self.ctx.executor.name,
            started=recorded.utc(times[0]),
            finished=recorded.utc(times[1]),
            invocation=f"{self.ctx.run_id}/{self.name}",
            version=__version__,
            log=log,
            producers={path: producer for path, producer in sources if producer is not None},
            dir_inputs=frozenset(path for path, _ in sources if files.path(path).is_dir()),
            secrets=self.stage.secrets,
            base=self._image_base(),
        )
        return statement(run)

    def _image_base(self) -> dict[str, Any] | None:
        """What the image the command ran in is built on, followed through parent stages: a
        registry image with its pinned digest, or an offline Debian base (with its locked tarball
        digest when the lock has one). None on the host."""
        images, spec = self.ctx.images, self.ctx.spec
        if images is None or not self.ctx.options.in_images or not self.stage.image:
            return None
        stage = spec.stages[self.stage.image]
        while isinstance(stage, ImageStage) and isinstance(stage.base, StageRef):
            stage = spec.stages[stage.base.stage]
        if not isinstance(stage, ImageStage):
            return None
        base = stage.base
        if isinstance(base, ImageRef):
            return {"image": base.reference, "digest": images.resolve(stage).get(base.reference, "")}
        assert isinstance(base, DebianBase)
        tar = ((self.ctx.lock.get(stage.name) or {}).get("debian") or {}).get("tar", "")
        return {"debian": base.suite, "packages": sorted(base.packages), "mirror": base.mirror, "tar": tar}

    def _materialise(self, outputs: Mapping[str, Mapping[str, Any]]) -> None:
        files = self.ctx.files
        for path, record in outputs.items():
            # a full disk: nothing journalled, so the next run restores the step from the store
            with writing(f"output '{path}' into the workspace", files.path(path), record.get("size")):
                self.ctx.store.materialise(record, files.path(path), self.ctx.options.link)
            files.remember(path, record)


def _staged(stage: RunStage) -> tuple[str, ...]:
    """What the command finds in its work dir: its inputs, and the params files it reads."""
    return tuple(dict.fromkeys((*stage.inputs, *stage.params_files)))


def _unsafe_outputs(stage: RunStage, output_root: Path) -> str:
    """Why the step's outputs may not be stored (a symlink leading out of one), or ""."""
    try:
        for o in stage.outputs:
            check_output(f"{output_root}/{o.path}", o.path + ("/" if o.is_dir else ""))
    except UnsafeOutput as refused:
        return str(refused)
    return ""
