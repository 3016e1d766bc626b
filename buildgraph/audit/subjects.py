"""What an audit reruns: recorded results of run stages, each with the manifest it is held to.

`bg audit` holds each stage to the result Buildfile.lock records (its inputs as they were then,
whatever the workspace holds now); `bg run --check` holds it to the cached result of its
*current* key, as `nix build --check` does a derivation already built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildgraph.core.spec import Output, RunStage, Spec
from buildgraph.errors import EnvironmentProblem, UsageError

if TYPE_CHECKING:
    from buildgraph.records.manifest import Manifest


@dataclass(frozen=True)
class Subject:
    stage: RunStage  # as recorded: the recorded command, env, inputs and outputs
    manifest: Manifest  # the result the rerun is held to
    changed: tuple[str, ...] = ()  # how the Buildfile's stage differs from the recorded one now

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def inputs(self) -> dict[str, str]:
        """Input path → the digest the recorded run read."""
        return {p: d for p, d in self.manifest.material.get("inputs", {}).items() if isinstance(d, str)}


class _Manifests:
    """The store's manifests by key, read through `engine.recorded` (a damaged one reads as None)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, key: str) -> Manifest | None:
        from buildgraph.engine.recorded import manifest

        return manifest(self.store, key)


def recorded_subjects(spec: Spec, lock: Any, store: Any, targets: Iterable[str]) -> list[Subject]:
    """The lock's results of `targets` (none: every run stage the lock records), in Buildfile order.
    A run stage named that has no recorded result, or whose result left the cache, is an error."""
    from buildgraph.engine.recorded import entry

    named = list(targets)
    manifests = _Manifests(store)
    chosen = [n for n in spec.stages if isinstance(spec.stages[n], RunStage) and (not named or n in named)]
    for name in named:
        if not isinstance(spec.stages[name], RunStage):
            raise UsageError(
                f"'{name}' is an image stage: an audit reruns run stages",
                hint="image digests are not reproducible on every engine; audit the run stages that use it",
            )
    subjects = []
    for name in chosen:
        locked = entry(lock, name)
        if locked is None or locked.kind != "run":
            if named:
                raise UsageError(
                    f"stage '{name}' has no recorded result to audit", hint=f"run `bg run {name}` first"
                )
            continue
        found = manifests.get(locked.key)
        if found is None:
            raise EnvironmentProblem(
                f"stage '{name}': its recorded result ({locked.key[:12]}…) is not in the cache",
                hint=f"`bg run --force {name}` records a new one (the old result cannot be audited)",
            )
        subjects.append(subject(spec.stages[name], found))  # type: ignore[arg-type]
    if not subjects:
        raise UsageError("nothing to audit: no run stage has a recorded result", hint="run `bg run` first")
    return subjects


def checked_subjects(spec: Spec, keys: Mapping[str, str], store: Any) -> list[Subject]:
    """`bg run --check`: each stage held to the cached result of its current key."""
    manifests = _Manifests(store)
    subjects = []
    for name, key in keys.items():
        found = manifests.get(key)
        if found is None:
            raise UsageError(
                f"stage '{name}' has no cached result for its current inputs, so it cannot be checked",
                hint=f"run `bg run {name}` first, then `bg run --check {name}`",
            )
        subjects.append(subject(spec.stages[name], found))  # type: ignore[arg-type]
    return subjects


def subject(current: RunStage, manifest: Manifest) -> Subject:
    """The stage as its manifest recorded it: the recorded command, env, inputs and outputs over
    the Buildfile's stage (image, GPUs, timeout, network stay as the Buildfile says now)."""
    material = manifest.material
    recorded = dataclasses.replace(
        current,
        command=str(material.get("command", current.command)),
        inputs=tuple(material.get("inputs", {})) or current.inputs,
        outputs=_outputs(material, manifest) or current.outputs,
        env=tuple((str(k), str(v)) for k, v in material.get("env", current.env)),
    )
    return Subject(recorded, manifest, _changes(current, recorded))


def _outputs(material: Mapping[str, Any], manifest: Manifest) -> tuple[Output, ...]:
    declared = material.get("outputs") or [
        p + ("/" if r.get("kind") == "dir" else "") for p, r in manifest.outputs.items()
    ]
    return tuple(Output(p.rstrip("/"), p.endswith("/")) for p in declared)


def _changes(current: RunStage, recorded: RunStage) -> tuple[str, ...]:
    """What the Buildfile changed in the stage since its recorded run (the audit reruns the recorded one)."""
    changes = []
    if current.command != recorded.command:
        changes.append("command")
    if current.env != recorded.env:
        changes.append("env")
    if set(current.inputs) != set(recorded.inputs):
        changes.append("inputs")
    if {o.path for o in current.outputs} != {o.path for o in recorded.outputs}:
        changes.append("outputs")
    return tuple(changes)
