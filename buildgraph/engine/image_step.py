"""An image stage as a step: keyed before anything is built, decided by what the image engine
holds, built through an `ImageBackend`.

An image stage's key is known before anything is built (its parent's key, its pinned base,
its instructions, the digests of the files it copies), so run stages that use the image can
be keyed — and `bg status` can answer — without building. It is built only when no image
carries the key (`bg/<project>/<stage>:<key[:32]>` with the key as a label).

Registry bases are pinned: the first resolution records `repo@sha256:…` in the lock and
later runs reuse that digest until `--pull` asks the registry again; `bg status` never pulls.
Offline Debian bases likewise: the lock records every package version a build installed (and
the tar's sha256), and a later build of the same base installs those versions until `--pull`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from buildgraph import stage_secrets
from buildgraph.core.bases import base_alternatives
from buildgraph.core.keys import base_material, image_material, key_of
from buildgraph.core.plan import Observed, decide
from buildgraph.core.spec import DebianBase, ImageRef, ImageStage, Spec, StageRef
from buildgraph.engine import recorded
from buildgraph.engine.context import Context, Options
from buildgraph.engine.outcome import Outcome, StepStatus, not_the_stages_fault, unreached
from buildgraph.engine.slots import Claim
from buildgraph.engine.steps import Decided
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.lines import LineSink
from buildgraph.lockfile import Journal, Lock
from buildgraph.records.debian_base import DebianRecord
from buildgraph.stores.tree import Digest


class ImageBackend(Protocol):
    """What image steps need of an image engine: `images.backend.DockerBackend` (Docker),
    `images.fake.FakeImages` (tests). Asking must stay cheap: a null run asks `has_image`
    once per image stage, and nothing more."""

    def tag(self, stage: str, key: str) -> str:
        """The reference the image of `stage` built under `key` carries."""
        ...

    def has_image(self, stage: str, key: str) -> bool:
        """An image is tagged for `key` and carries that key."""
        ...

    def present(self, reference: str) -> bool:
        """Some image answers to `reference` (a pinned base, say) here, without pulling."""
        ...

    def pin(self, reference: str, pull: bool = False, on_line: LineSink | None = None) -> str:
        """A registry reference pinned (`repo@sha256:…`), pulled when absent or when `pull`."""
        ...

    def build(
        self,
        stage: ImageStage,
        key: str,
        parent: str,
        context: Any,
        args: Mapping[str, str],
        on_line: LineSink | None,
        secrets: Mapping[str, Path],
    ) -> None:
        """Build and tag the image; StageFailed when an instruction fails."""
        ...

    def debian_base(
        self, base: DebianBase, on_line: LineSink | None, pins: Mapping[str, str] | None = None
    ) -> tuple[str, DebianRecord | None]:
        """The reference of an offline Debian base, built first (at `pins`, name → version, when
        given) if absent, and what it holds (None when it does not say)."""
        ...


class Images:
    """The image side of one engine: its backend, each image stage's key once decided, and
    the registry bases pinned so far (each asked once per engine)."""

    def __init__(self, backend: ImageBackend, spec: Spec, lock: Lock, options: Options) -> None:
        self.backend, self.spec, self.lock, self.options = backend, spec, lock, options
        self.keys: dict[str, str] = {}
        self._resolved: dict[str, str] = {}
        self.debian: dict[str, DebianRecord | None] = {}  # stage → what its Debian base holds

    def tag(self, stage: str) -> str:
        return self.backend.tag(stage, self.keys[stage])

    def resolve(self, stage: ImageStage, on_line: LineSink | None = None) -> dict[str, str]:
        """The registry base of `stage` → its pin ({} for other bases): the lock's pin while an
        image has it here, else asked of the registry (`bg status`: never pulled)."""
        refs = [stage.base.reference] if isinstance(stage.base, ImageRef) else []
        refs += [copy.from_image for copy in stage.copy if copy.from_image]  # COPY --from=image
        return {ref: self._resolve(stage.name, ref, on_line) for ref in refs}

    def _resolve(self, name: str, ref: str, on_line: LineSink | None) -> str:
        if ref not in self._resolved:
            pull = self.options.pull
            pinned = "" if pull else self._pinned_in_lock(name, ref)
            if pinned and self.backend.present(pinned):
                self._resolved[ref] = pinned
            elif self.options.read_only:
                self._resolved[ref] = pinned or (self._local_pin(ref) if not pull else "")
            else:
                self._resolved[ref] = self._pull(name, ref, on_line)
        return self._resolved[ref]

    def _pinned_in_lock(self, name: str, ref: str) -> str:
        locked = recorded.entry(self.lock, name)
        material = locked.material if locked is not None else {}
        copied = [c.get("from") or {} for c in material.get("copy", []) if isinstance(c, dict)]
        for pinned in [material.get("base") or {}, *copied]:
            if isinstance(pinned, dict) and pinned.get("image") == ref:
                return str(pinned.get("digest", ""))
        return ""

    def with_copy_images(self, stage: ImageStage) -> ImageStage:
        """`stage` with each COPY --from naming the image to copy from: a stage's built tag, or
        the pinned external image (the Dockerfile bg builds has no other stage to name)."""
        if not any(c.from_stage or c.from_image for c in stage.copy):
            return stage
        copies = tuple(
            replace(c, from_stage="", from_image=self.tag(c.from_stage)) if c.from_stage
            else replace(c, from_image=self._resolved.get(c.from_image) or c.from_image) if c.from_image
            else c
            for c in stage.copy
        )
        return replace(stage, copy=copies)

    def _local_pin(self, ref: str) -> str:
        try:
            return self.backend.pin(ref, pull=False) if self.backend.present(ref) else ""
        except Exception:  # status must answer even when the engine misbehaves
            return ""

    def _pull(self, name: str, ref: str, on_line: LineSink | None) -> str:
        try:
            return self.backend.pin(ref, pull=self.options.pull, on_line=on_line)
        except EnvironmentProblem as exc:
            offered = base_alternatives(self.spec, name)
            if not offered:
                raise
            raise EnvironmentProblem(
                exc.message, hint=f"this Buildfile offers another base for '{name}': {' or '.join(offered)}"
            ) from exc

    def parent(self, stage: ImageStage, on_line: LineSink | None) -> str:
        """The reference `stage` builds on: its parent stage's image, its pinned base, or an
        offline Debian base."""
        base = stage.base
        if isinstance(base, StageRef):
            return self.tag(base.stage)
        if isinstance(base, ImageRef):
            return self._resolved[base.reference]
        assert isinstance(base, DebianBase)
        tag, self.debian[stage.name] = self.backend.debian_base(base, on_line, self._debian_pins(stage))
        return tag

    def _debian_pins(self, stage: ImageStage) -> dict[str, str]:
        """The versions the lock recorded for this same base (suite, packages, mirror), so that
        another machine installs what the first one did; none under `--pull` (ask the mirror)."""
        locked = recorded.entry(self.lock, stage.name)
        if self.options.pull or locked is None or locked.debian is None:
            return {}
        if locked.material.get("base") != base_material(stage, {}, {}):
            return {}  # another package set: the old versions need not fit together
        return dict(locked.debian.packages)


class ImageStep:
    def __init__(self, stage: ImageStage, ctx: Context) -> None:
        self.name, self.stage, self.ctx = stage.name, stage, ctx

    @property
    def images(self) -> Images:
        assert self.ctx.images is not None, "the engine makes Images before its image steps"
        return self.ctx.images

    def decide(self, pending: tuple[str, ...] = ()) -> Decided:
        """`pending` does not matter: an image's key is known before its parent is built."""
        ctx, images, name = self.ctx, self.images, self.name
        resolved = images.resolve(self.stage)
        digests = copy_digests(ctx.files.root, self.stage, ctx.files)
        material = image_material(self.stage, ctx.spec, images.keys, digests, resolved)
        key = images.keys[name] = key_of(material)
        seen = Observed(forced=name in ctx.options.force, image_present=images.backend.has_image(name, key))
        return Decided(decide(name, key, material, ctx.lock.get(name), seen), material)

    def gpus(self) -> int:
        return 0

    def missing_secrets(self) -> list[str]:
        return stage_secrets.missing(self.stage.secrets)

    def planned(self, decided: Decided) -> dict[str, str] | None:
        return None

    def skip(self, decided: Decided, journal: Journal) -> dict[str, str]:
        locked = recorded.entry(self.ctx.lock, self.name)
        if locked is None or locked.key != decided.decision.key:  # built elsewhere (a teammate)
            journal.record(self.name, self._entry(decided))
        return {}

    def execute(self, decided: Decided, claim: Claim, journal: Journal) -> Outcome:
        decision = decided.decision
        if not claim.admit():
            return unreached(self.name, decision)
        started = time.monotonic()
        log_path = self.ctx.files.logs / f"{self.name}.log"
        rel_log = self.ctx.rel(log_path)
        with open(log_path, "w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                self.ctx.reporter.line(self.name, line)

            try:
                self._build(decided, on_line)
            except StageFailed as exc:  # the build itself failed: the stage's fault
                duration = time.monotonic() - started
                return Outcome(self.name, StepStatus.FAILED, decision, duration, exc.message, rel_log)
            except Exception as exc:  # cannot pull, lost the daemon, a bug: the run stops
                outcome = not_the_stages_fault(self.name, decision, time.monotonic() - started, exc)
                outcome.log_path = rel_log
                return outcome
        journal.record(self.name, self._entry(decided))
        return Outcome(self.name, StepStatus.DONE, decision, time.monotonic() - started, "", rel_log)

    def _build(self, decided: Decided, on_line: LineSink) -> None:
        from buildgraph.images.argrefs import body_args
        from buildgraph.images.context import build_context

        stage, images = self.stage, self.images
        parent = images.parent(stage, on_line)
        used = body_args(stage)  # not those only `from` uses: as in Docker, no RUN sees them
        args = {n: v for n, v in self.ctx.spec.args if n in stage.args_used and n in used}
        context = build_context(self.ctx.files.root, stage)
        stage = images.with_copy_images(stage)
        with stage_secrets.temporary_files(stage.secrets) as secrets:
            images.backend.build(stage, decided.decision.key, parent, context, args, on_line, secrets)

    def _entry(self, decided: Decided) -> dict[str, Any]:
        tag = self.images.tag(self.name)
        debian = self.images.debian.get(self.name)  # known only when this run built the stage
        return recorded.image_entry(decided.decision.key, decided.material, tag, debian).to_json()


class _Listings(Protocol):
    def listing_digest(self, files: Any) -> Digest: ...


def copy_digests(root: Path, stage: ImageStage, digests: _Listings) -> tuple[str, ...]:
    """One digest per `copy` entry: the tree digest of the files it copies, after ignore rules.

    The same canonical listing as any directory digest, so a mode change (`chmod +x`), which
    the build context carries into the image, changes the image's key too.
    """
    from buildgraph.images.context import copy_sources_listing

    listings = (copy_sources_listing(root, stage, index=i) for i in range(len(stage.copy)))
    return tuple(digests.listing_digest(listing).digest for listing in listings)
