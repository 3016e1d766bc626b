"""What an audit found, as data: one `StageAudit` per stage, one `OutputAudit` per output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# a stage's verdict
REPRODUCED = "reproduced"  # every output bit for bit
DIFFERS = "differs"  # some output did not reproduce
FAILED = "failed"  # the rerun failed (the recorded run had succeeded)
UNAUDITED = "unaudited"  # it could not be rerun here (an input or the image is gone)


@dataclass
class OutputAudit:
    path: str
    recorded: str  # digest
    audited: str | None  # None: the rerun did not produce it
    difference: Any = None  # audit.compare.Difference when it differs and both sides were at hand
    only_varied: bool = False  # identical without --vary's knobs: a knob causes the difference
    note: str = ""  # why there is no explanation (the recorded objects left the cache, …)

    @property
    def identical(self) -> bool:
        return self.audited == self.recorded

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "path": self.path,
            "result": "identical" if self.identical else "differs",
            "recorded": self.recorded,
            "audited": self.audited,
        }
        if self.only_varied:
            found["only_under_variation"] = True
        if self.difference is not None:
            found["difference"] = _difference_json(self.difference)
        if self.note:
            found["note"] = self.note
        return found


@dataclass
class StageAudit:
    stage: str
    verdict: str
    outputs: list[OutputAudit] = field(default_factory=list)
    error: str = ""  # failed or unaudited: why
    hint: str = ""
    executor: str = ""
    environment: str = ""  # how the audited environment differs from the recorded one ("" = alike)
    recorded_environment: Mapping[str, Any] = field(default_factory=dict)
    audited_environment: Mapping[str, Any] = field(default_factory=dict)
    varied: tuple[str, ...] = ()  # the knobs turned for the rerun
    not_varied: Mapping[str, str] = field(default_factory=dict)  # knob → why it could not be turned
    changed: tuple[str, ...] = ()  # what the Buildfile changed in the stage since (the recorded one ran)
    duration: float = 0.0
    log: str = ""  # the rerun's log, kept when it failed or differs

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "stage": self.stage,
            "result": self.verdict,
            "executor": self.executor,
            "duration": round(self.duration, 3),
            "outputs": [o.to_json() for o in self.outputs],
        }
        optional = {
            "error": self.error,
            "hint": self.hint,
            "environment_differs": self.environment,
            "varied": list(self.varied),
            "buildfile_changed": list(self.changed),
            "log": self.log,
        }
        found.update({k: v for k, v in optional.items() if v})
        if self.recorded_environment or self.audited_environment:
            found["environment"] = {
                "recorded": dict(self.recorded_environment),
                "audited": dict(self.audited_environment),
            }
        return found


@dataclass
class AuditReport:
    stages: list[StageAudit]
    varied: tuple[str, ...] = ()  # knobs turned (--vary)
    not_varied: Mapping[str, str] = field(default_factory=dict)  # knob → why not
    kept: str = ""  # the audit folder, kept for inspection when something did not reproduce
    report_dir: str = ""

    @property
    def reproduced(self) -> bool:
        return all(s.verdict == REPRODUCED for s in self.stages)

    @property
    def unaudited(self) -> list[StageAudit]:
        return [s for s in self.stages if s.verdict == UNAUDITED]

    def not_reproduced(self) -> list[str]:
        """`stage: path` of every output that did not reproduce, and stages that failed."""
        named = []
        for s in self.stages:
            if s.verdict == FAILED:
                named.append(f"{s.stage} (rerun failed)")
            named += [f"{s.stage}: {o.path}" for o in s.outputs if not o.identical]
        return named

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "reproduced": self.reproduced,
            "stages": [s.to_json() for s in self.stages],
            "varied": list(self.varied),
            "not_varied": dict(self.not_varied),
            "kept": self.kept,
            "report": self.report_dir,
        }


def _difference_json(difference: Any) -> dict[str, Any]:
    return {
        "kind": difference.kind,
        "summary": difference.summary,
        "details": list(difference.details),
        "data": dict(difference.data),
        "files": list(difference.files),
        "children": [_difference_json(c) for c in difference.children],
    }
