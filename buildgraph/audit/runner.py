"""Run an audit: rerun each subject in its sandbox through the engine's Builder, then compare.

    for each pass (one; two under --vary when something differs):
        place each stage's recorded inputs        sandbox.place_inputs
        Builder over the engine's own RunSteps    forced, a scratch store, independent of one another
    compare each output with the recorded digest; explain a difference (audit.compare)

The project's workspace, Buildfile.lock, logs and `.bg/cache` are only read: the rerun's
outputs, manifests and logs go to `.bg/audit/<id>/`, removed when everything reproduced and
kept (and named) when something did not, for a look at both sides.

Under --vary the first pass turns every knob; a stage that then differs is rerun once more
without them, so a difference that appears only under variation says which knobs were on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildgraph.audit import environment as env_compare
from buildgraph.audit.params import recorded_params_files
from buildgraph.audit.results import (
    DIFFERS,
    FAILED,
    REPRODUCED,
    UNAUDITED,
    AuditReport,
    OutputAudit,
    StageAudit,
)
from buildgraph.audit.sandbox import MissingInput, SandboxFiles, place_inputs, upstream_records
from buildgraph.audit.subjects import Subject
from buildgraph.audit.vary import VARIED_PATH, VaryingExecutor, variation
from buildgraph.core.graph import Graph
from buildgraph.core.spec import Spec
from buildgraph.engine.builder import Builder
from buildgraph.engine.context import Context, Options, Scratch, host_fingerprint
from buildgraph.engine.outcome import Outcome, StepStatus
from buildgraph.engine.run_step import RunStep
from buildgraph.lockfile import Lock


@dataclass
class AuditOptions:
    jobs: int = 1
    vary: bool = False
    executor: str = ""  # "" = the executor each result was recorded with
    report_dir: Path | None = None  # diff images (and the Markdown report, written by the command)
    keep: bool = False  # keep the sandbox even when everything reproduced


class RecordedImages:
    """The image side of an audited step: the image its result was recorded in, by key (an
    `engine.image_step.Images` as far as a RunStep asks: `keys` and `tag`)."""

    def __init__(self, backend: Any, keys: Mapping[str, str]) -> None:
        self.backend, self.keys = backend, dict(keys)

    def tag(self, stage: str) -> str:
        return str(self.backend.tag(stage, self.keys[stage]))

    def resolve(self, stage: Any, on_line: Any = None) -> dict[str, str]:
        """No registry is asked during an audit: the rerun's provenance is not kept anyway."""
        return {}


class Auditor:
    def __init__(
        self,
        project: Any,  # the project's Files (a Workspace): inputs are read from it
        spec: Spec,
        graph: Graph,
        lock: Lock,
        store: Any,  # the project's cache: recorded outputs are read from it
        reporter: Any,
        executors: Callable[[str], Any],  # executor name → the executor (made once each)
        images: Callable[[], Any] | None,  # the image backend (docker), made when a stage needs it
        options: AuditOptions,
    ) -> None:
        self.project, self.spec, self.graph, self.lock, self.store = project, spec, graph, lock, store
        self.reporter, self.executors, self.images_factory, self.options = (
            reporter,
            executors,
            images,
            options,
        )
        self._images: Any = None
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(4).hex()}"
        self.folder = project.state / "audit" / self.run_id
        self._records: dict[str, Mapping[str, Any]] | None = None
        self._subjects: dict[str, Subject] = {}

    # ---------------------------------------------------------------- the audit
    def audit(self, subjects: list[Subject]) -> AuditReport:
        from buildgraph.stores.cache import ArtefactCache

        self._subjects = {s.name: s for s in subjects}
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch_store = ArtefactCache(self.folder / "cache")
        report = AuditReport([])
        try:
            first = self._pass(subjects, scratch_store, varied=self.options.vary)
            if self.options.vary:
                self._control(subjects, first, scratch_store)
                report.varied = tuple(sorted({k for s in first.values() for k in s.varied}))
                report.not_varied = self._not_varied(first)
            report.stages = [first[s.name] for s in subjects]
            for found in report.stages:
                self._explain(found)
        finally:
            scratch_store.close()
            keep = self.options.keep or not report.reproduced
            if keep and report.stages:
                report.kept = os.path.relpath(self.folder, self.project.root)
            else:
                _remove(self.folder)
                _remove_if_empty(self.folder.parent)
        if self.options.report_dir is not None:
            report.report_dir = str(self.options.report_dir)
        return report

    def _control(self, subjects: list[Subject], varied: dict[str, StageAudit], store: Any) -> None:
        """Rerun without the knobs the stages whose varied rerun differed: a difference only the
        varied rerun shows is the knobs' doing."""
        differing = [s for s in subjects if varied[s.name].verdict == DIFFERS]
        if not differing:
            return
        plain = self._pass(differing, store, varied=False)
        for s in differing:
            control = {o.path: o for o in plain[s.name].outputs}
            for output in varied[s.name].outputs:
                same = control.get(output.path)
                if not output.identical and same is not None and same.identical:
                    output.only_varied = True

    @staticmethod
    def _not_varied(found: Mapping[str, StageAudit]) -> dict[str, str]:
        return {k: v for s in found.values() for k, v in s.not_varied.items()}

    # ---------------------------------------------------------------- one pass
    def _pass(self, subjects: list[Subject], store: Any, varied: bool) -> dict[str, StageAudit]:
        label = "varied" if varied else "plain"
        base = self.folder / (VARIED_PATH if varied else "") / label
        found: dict[str, StageAudit] = {}
        steps: dict[str, RunStep] = {}
        sandboxes: dict[str, SandboxFiles] = {}
        top = self._context(
            base, store, SandboxFiles(base, base / "builder", store), self.executors("local"), None
        )
        for s in subjects:
            prepared = self._prepare(s, base, store, top, varied)
            if isinstance(prepared, StageAudit):
                found[s.name] = prepared
                continue
            step, sandboxes[s.name], found[s.name] = prepared
            steps[s.name] = step
        if steps:
            why = ["rerun with the recorded inputs" + (", varied" if varied else "")]
            self.reporter.plan([(name, "run", why) for name in steps])
            summary = Builder(top, steps, {name: [] for name in steps}).run()
            for name in steps:
                self._settle(found[name], summary.outcomes[name], sandboxes[name], store, base)
        return found

    def _context(self, base: Path, store: Any, files: Any, executor: Any, images: Any) -> Context:
        options = Options(
            jobs=self.options.jobs,
            keep_going=True,  # one stage failing to rerun must not hide the others' results
            force=frozenset(self.spec.stages),
            in_images=images is not None,
        )
        return Context(
            spec=self.spec,
            graph=self.graph,
            files=files,
            store=store,
            executor=executor,
            reporter=_Rerunning(self.reporter),
            options=options,
            lock=Lock(),
            run_id=self.run_id,
            scratch=Scratch(base / "tmp", base / "logs"),
            environment={"host": host_fingerprint()},
            images=images,
        )

    def _prepare(
        self, s: Subject, base: Path, store: Any, top: Context, varied: bool
    ) -> StageAudit | tuple[RunStep, SandboxFiles, StageAudit]:
        """The step rerunning `s` in its sandbox, or the reason it cannot be rerun."""
        executor_name = self.options.executor or _recorded_executor(s)
        audit = StageAudit(s.name, REPRODUCED, executor=executor_name, changed=s.changed)
        audit.recorded_environment = _fingerprint(s.manifest)
        images = None
        if executor_name == "docker":
            images, problem = self._recorded_image(s)
            if problem:
                return _unaudited(audit, *problem)
        try:
            placed = place_inputs(
                s.name, s.inputs, self.project, self.store, self._upstream(), base / s.name / "in"
            )
            folder = base / s.name / "params"
            params = recorded_params_files(s.stage.params_files, s.manifest.material, folder)
            placed = {**params, **placed}
        except MissingInput as exc:
            return _unaudited(
                audit, str(exc), "restore it (`git checkout`), or `bg run` and audit the new result"
            )
        executor = self.executors(executor_name)
        if varied:
            knobs = variation(executor_name)
            executor = VaryingExecutor(executor, knobs)
            audit.varied = knobs.on
            audit.not_varied = knobs.off
        files = SandboxFiles(base, base / s.name / "out", store, placed, s.inputs)
        ctx = dataclasses.replace(top, files=files, executor=executor, images=images)
        ctx.options = dataclasses.replace(top.options, in_images=images is not None)
        return RunStep(s.stage, ctx), files, audit

    def _recorded_image(self, s: Subject) -> tuple[RecordedImages | None, tuple[str, str] | None]:
        """The image the result was recorded in, present on this engine; else why not."""
        image = s.stage.image
        if not image:
            return None, (
                f"stage '{s.name}' names no image: it cannot be audited in a container",
                "--executor local",
            )
        key = s.manifest.material.get("environment", {}).get("image")
        if not key:  # recorded on the host, audited in its image as the lock last built it
            locked = self.lock.get(image) or {}
            key = locked.get("key")
        if not key:
            return None, (f"image stage '{image}' has not been built", f"`bg run {image}` builds it")
        if self._images is None:
            assert self.images_factory is not None, "the command gives an image backend with docker"
            self._images = self.images_factory()
        if not self._images.has_image(image, key):
            tag = self._images.tag(image, key)
            return None, (
                f"stage '{s.name}': the image it was recorded in ({tag}) is no longer on this Docker engine",
                f"`bg run {image}` rebuilds it from the same definition (a rebuilt image has another id: "
                "the audit then says so)",
            )
        return RecordedImages(self._images, {image: key}), None

    def _upstream(self) -> Mapping[str, Mapping[str, Any]]:
        """Output records (trees) of every result the lock records: where directory inputs come from."""
        if self._records is None:
            from buildgraph.engine.recorded import manifest

            manifests = []
            for entry in self.lock.stages.values():
                found = manifest(self.store, entry.get("key", "")) if entry.get("kind") == "run" else None
                if found is not None:
                    manifests.append(found)
            self._records = upstream_records(manifests)
        return self._records

    # ---------------------------------------------------------------- comparing
    def _settle(
        self, audit: StageAudit, outcome: Outcome, files: SandboxFiles, store: Any, base: Path
    ) -> None:
        audit.duration = outcome.duration
        if outcome.status != StepStatus.DONE:
            audit.verdict = FAILED
            audit.error = outcome.error or str(outcome.status)
            audit.log = os.path.relpath(base / "logs" / f"{audit.stage}.log", self.project.root)
            audit.hint = "the recorded run succeeded: the stage depends on something it does not declare"
            return
        new = outcome.outputs
        from buildgraph.engine.recorded import manifest

        rerun = manifest(store, outcome.decision.key) if outcome.decision is not None else None
        audit.audited_environment = _fingerprint(rerun) if rerun is not None else {}
        audit.environment = env_compare.describe(audit.recorded_environment, audit.audited_environment)
        recorded = self._recorded_manifest(audit.stage)
        for path, record in recorded.outputs.items():
            output = OutputAudit(path, str(record["digest"]), new.get(path))
            audit.outputs.append(output)
            if not output.identical:
                audit.verdict = DIFFERS
                output.note = str(files.path(path))  # where the rerun's bytes are, until explained
        if audit.verdict == DIFFERS:
            audit.log = os.path.relpath(base / "logs" / f"{audit.stage}.log", self.project.root)

    def _recorded_manifest(self, stage: str) -> Any:
        return self._subjects[stage].manifest

    def _explain(self, audit: StageAudit) -> None:
        """Explain every differing output: both sides on disk, compared by type."""
        for output in audit.outputs:
            if output.identical or output.audited is None:
                if output.audited is None and not output.identical:
                    output.note = "the rerun did not produce it"
                continue
            audited = Path(output.note)
            output.note = ""
            recorded = self._materialise_recorded(audit.stage, output.path)
            if recorded is None:
                output.note = "the recorded bytes are no longer in the cache: no explanation"
                continue
            from buildgraph.audit.compare import compare  # only when something differs

            output.difference = compare(output.path, recorded, audited, self.options.report_dir)

    def _materialise_recorded(self, stage: str, path: str) -> Path | None:
        from buildgraph.stores.objects import CorruptObject

        record = self._recorded_manifest(stage).outputs[path]
        target = self.folder / "recorded" / stage / path
        try:
            self.store.materialise(record, target, "auto")
        except CorruptObject:
            return None
        return target


class _Rerunning:
    """The reporter as an audit shows it: a step starts as a rerun, not as "run: forced"."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def start(self, stage: str, action: str, reasons: Any = None) -> None:
        self.inner.start(stage, "audit", None)  # the plan's reasons: rerun with the recorded inputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _unaudited(audit: StageAudit, error: str, hint: str) -> StageAudit:
    audit.verdict, audit.error, audit.hint = UNAUDITED, error, hint
    return audit


def _recorded_executor(s: Subject) -> str:
    """The executor the result was recorded with: docker when it ran in an image, else local."""
    if "image" in s.manifest.material.get("environment", {}):
        return "docker"
    return "local"


def _fingerprint(manifest: Any) -> Mapping[str, Any]:
    found = getattr(manifest, "environment", None)
    if found is None:
        found = manifest.extra.get("environment", {})
    return found if isinstance(found, Mapping) else {}


def _remove(folder: Path) -> None:
    """The sandbox, read-only folders a command left included; a leftover is no reason to fail."""
    from buildgraph.stores.link import remove_path

    with contextlib.suppress(OSError):
        remove_path(str(folder))


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # another audit's folder is still there
        folder.rmdir()
