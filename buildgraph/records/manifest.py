"""A run's manifest: what one execution of a run stage produced, under its key.

Stored by the artefact cache as `runs/ab/<key>.json`, written last (after every object it
names), so its presence means the run's results are complete. Its `outputs` are the store's
output records (path → `{"kind", "digest", "size", …}`, a directory with its `tree`), kept as
the store wrote them: records carry them, they do not interpret them.

It also holds where the command ran (`environment`, as the executor reported it) and the
run's provenance (`provenance`: an in-toto Statement, `records.provenance`), in the same
atomic write: a result never exists without its provenance.

Versions: 1 — the first shape (manifests written before `format` existed read as 1).
          2 — `environment` and `provenance` added; a format-1 manifest reads with neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buildgraph.records.errors import RecordError, optional, required

FORMAT = 2


@dataclass(frozen=True)
class Manifest:
    key: str
    stage: str
    material: Mapping[str, Any]  # what the key was computed from (core.keys.run_material)
    outputs: Mapping[str, Mapping[str, Any]]  # path → the store's output record
    log: str = ""  # digest of the command's log object; "" when it printed nothing
    exit_status: int = 0
    duration: float = 0.0  # seconds the command ran
    finished: str = ""  # UTC, ISO 8601 (`2026-12-01T22:38:30Z`)
    executor: str = ""  # local | docker | …
    run_id: str = ""  # the `bg run` invocation that produced it
    environment: Mapping[str, Any] = field(default_factory=dict)  # where it ran; {} before format 2
    provenance: Mapping[str, Any] | None = None  # the in-toto Statement; None before format 2
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields a newer bg wrote, kept as they are

    def digests(self) -> dict[str, str]:
        """Output path → its digest."""
        return {path: str(record["digest"]) for path, record in self.outputs.items()}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "format": FORMAT,
            "key": self.key,
            "stage": self.stage,
            "material": dict(self.material),
            "outputs": {path: dict(record) for path, record in self.outputs.items()},
            "log": self.log,
            "exit_status": self.exit_status,
            "duration": self.duration,
            "finished": self.finished,
            "executor": self.executor,
            "run_id": self.run_id,
        }
        if self.environment:
            out["environment"] = dict(self.environment)
        if self.provenance is not None:
            out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        what = "run manifest"
        if not isinstance(data, Mapping):
            raise RecordError(f"{what}: not a JSON object")
        version = optional(data, "format", int, 1, what)
        if version > FORMAT:
            raise RecordError(f"{what}: format {version} is newer than this bg reads ({FORMAT})")
        outputs = required(data, "outputs", dict, what)
        for path, record in outputs.items():
            if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
                raise RecordError(f"{what}: output {path!r} has no digest")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"} | {"format"}
        return cls(
            key=required(data, "key", str, what),
            stage=optional(data, "stage", str, "", what),
            material=optional(data, "material", dict, {}, what),
            outputs=outputs,
            log=optional(data, "log", str, "", what) or "",
            exit_status=optional(data, "exit_status", int, 0, what),
            duration=float(optional(data, "duration", (int, float), 0.0, what)),
            finished=optional(data, "finished", str, "", what),
            executor=optional(data, "executor", str, "", what),
            run_id=optional(data, "run_id", str, "", what),
            environment=optional(data, "environment", dict, {}, what),
            provenance=optional(data, "provenance", dict, None, what),
            extra={k: v for k, v in data.items() if k not in known},
        )
