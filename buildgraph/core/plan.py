"""Deciding what to do with each step, and why — pure.

`decide()` compares a step's fresh key and material with what the lock recorded, what
the workspace holds and what the run cache has, and returns a `Decision`:

    skip     key equals the lock and the workspace outputs match it
    restore  the run cache has this key: materialise its outputs, run nothing
    run      execute the stage (or `build` for an image stage)

An image stage's output is an image in the Docker engine, so what the engine holds
(`Observed.image_present`) decides skip or build for it, not the workspace.

Reasons are data (`Reason`), rendered by `Reason.text()` for `bg status`/`bg explain`
and emitted as-is by `--json`. The engine re-decides a step only after its upstream
steps finished, so a rerun that reproduced identical bytes stops the cascade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["skip", "restore", "run", "build"]


@dataclass(frozen=True)
class Reason:
    kind: str
    subject: str = ""
    old: Any = None
    new: Any = None
    detail: str = ""

    def text(self) -> str:
        render = _RENDER.get(self.kind)
        return render(self) if render else self.kind.replace("-", " ")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text()}
        for name in ("subject", "old", "new", "detail"):
            value = getattr(self, name)
            if value not in ("", None):
                out[name] = value
        return out


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return repr(value) if isinstance(value, str) else str(value)


_RENDER: dict[str, Callable[[Reason], str]] = {
    "never-built": lambda r: "never built",
    "forced": lambda r: "forced",
    "always": lambda r: "always runs (always = true)",
    "frozen": lambda r: "frozen (frozen = true: its recorded result is kept)",
    "input-changed": lambda r: f"input {r.subject} changed",
    "input-added": lambda r: f"input {r.subject} added",
    "input-removed": lambda r: f"input {r.subject} removed",
    "input-missing": lambda r: f"input {r.subject} does not exist yet",
    "upstream-changed": lambda r: f"upstream output {r.subject} changed (from {r.detail})",
    "upstream-pending": lambda r: (
        f"upstream {r.detail} {'run' if ',' in r.detail else 'runs'} first"
        " (may cut off if its outputs are unchanged)"
    ),
    "param-changed": lambda r: f"param {r.subject} {_short(r.old)} → {_short(r.new)}",
    "param-added": lambda r: f"param {r.subject} now used ({_short(r.new)})",
    "param-removed": lambda r: f"param {r.subject} no longer used",
    "arg-changed": lambda r: f"arg {r.subject} {_short(r.old)} → {_short(r.new)}",
    "command-changed": lambda r: "command changed",
    "env-changed": lambda r: "env changed",
    "outputs-changed": lambda r: "declared outputs changed",
    "image-changed": lambda r: "image changed",
    "environment-changed": lambda r: f"environment changed ({_short(r.old)} → {_short(r.new)})",
    "base-changed": lambda r: "base image changed",
    "instructions-changed": lambda r: f"{r.subject} changed",
    "copy-changed": lambda r: f"copied files changed ({r.subject})",
    "output-missing": lambda r: f"output {r.subject} missing from the workspace",
    "output-modified": lambda r: f"output {r.subject} modified in the workspace",
    "key-version": lambda r: "key format changed (buildgraph upgrade)",
    "image-missing": lambda r: "image not in the Docker engine",
}


@dataclass(frozen=True)
class Decision:
    stage: str
    action: Action
    key: str
    reasons: tuple[Reason, ...] = ()
    tentative: bool = False  # depends on an upstream step that has not run yet

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.stage,
            "action": self.action,
            "key": self.key,
            "reasons": [r.as_dict() for r in self.reasons],
        }
        if self.tentative:
            out["tentative"] = True
        return out


@dataclass(frozen=True)
class Observed:
    """What the engine saw before deciding: the workspace outputs and the run cache."""

    outputs: Mapping[str, str | None] = field(default_factory=dict)  # path → digest (None = missing)
    cached: bool = False  # the run cache holds a complete, intact entry for the key
    forced: bool = False
    upstream_of: Mapping[str, str] = field(default_factory=dict)  # input path → producing stage
    pending: tuple[str, ...] = ()  # upstream stages that will run before this one
    # image stages: whether the Docker engine holds an image carrying the key (None: a run stage)
    image_present: bool | None = None
    always: bool = False  # `always = true`: runs whatever its key
    frozen: bool = False  # `frozen = true`, decided on its recorded key: kept, whatever changed


def decide(
    stage: str,
    key: str,
    material: Mapping[str, Any],
    recorded: Mapping[str, Any] | None,
    seen: Observed,
) -> Decision:
    """Decide one step. `recorded` is the stage's lock entry (or None)."""
    run_action: Action = "build" if material.get("kind") == "image" else "run"
    if seen.forced:
        return Decision(stage, run_action, key, (Reason("forced"),))
    if seen.always:
        return Decision(stage, run_action, key, (Reason("always"),))
    if seen.image_present is not None:
        return _decide_image(stage, key, material, recorded, seen.image_present)
    if seen.pending:
        # Upstream steps run first, so this step's inputs are not known yet; but a change of
        # its own (command, param, image …) makes it run whatever the upstream produces.
        own = [] if recorded is not None and recorded.get("key") == key else [
            r for r in why_changed(recorded, material, seen.upstream_of) if r.subject not in seen.upstream_of
        ]
        if own:
            return Decision(stage, run_action, key, tuple(own))
        reason = Reason("upstream-pending", detail=", ".join(seen.pending))
        return Decision(stage, run_action, key, (reason,), tentative=True)
    if recorded is None or recorded.get("key") != key:
        reasons = tuple(why_changed(recorded, material, seen.upstream_of))
        return Decision(stage, "restore" if seen.cached else run_action, key, reasons)
    stale = tuple(_output_reasons(recorded.get("outputs", {}), seen.outputs))
    if not stale:
        return Decision(stage, "skip", key, (Reason("frozen"),) if seen.frozen else ())
    return Decision(stage, "restore" if seen.cached else run_action, key, stale)


def _decide_image(
    stage: str, key: str, material: Mapping[str, Any], recorded: Mapping[str, Any] | None, present: bool
) -> Decision:
    """An image's output lives in the Docker engine, not in the workspace: it is up to date when
    an image carries its key (built here, or by another checkout on this engine), whatever the
    lock says; otherwise it is built, and the lock says why (or, if the lock has this very key,
    the image was removed from the engine)."""
    if present:
        return Decision(stage, "skip", key)
    if recorded is not None and recorded.get("key") == key:
        return Decision(stage, "build", key, (Reason("image-missing"),))
    return Decision(stage, "build", key, tuple(why_changed(recorded, material)))


def _output_reasons(recorded: Mapping[str, Any], current: Mapping[str, str | None]) -> list[Reason]:
    reasons = []
    for path, rec in sorted(recorded.items()):
        digest = current.get(path)
        if digest is None:
            reasons.append(Reason("output-missing", path))
        elif digest != rec.get("digest"):
            reasons.append(Reason("output-modified", path, rec.get("digest"), digest))
    return reasons


def why_changed(
    recorded: Mapping[str, Any] | None,
    material: Mapping[str, Any],
    upstream_of: Mapping[str, str] | None = None,
) -> list[Reason]:
    """The differences between a recorded material and a new one, as reasons."""
    if recorded is None or "material" not in recorded:
        return [Reason("never-built")]
    old: Mapping[str, Any] = recorded["material"]
    reasons: list[Reason] = []
    if material.get("kind") == "run":
        reasons += _run_reasons(old, material, upstream_of or {})
    else:
        reasons += _image_reasons(old, material)
    return reasons or [Reason("key-version")]


def _dict_reasons(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Reason]:
    reasons = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            reasons.append(Reason(f"{kind}-added", name, None, new[name]))
        elif name not in new:
            reasons.append(Reason(f"{kind}-removed", name, old[name], None))
        elif old[name] != new[name]:
            reasons.append(Reason(f"{kind}-changed", name, old[name], new[name]))
    return reasons


def _run_reasons(
    old: Mapping[str, Any], new: Mapping[str, Any], upstream_of: Mapping[str, str]
) -> list[Reason]:
    reasons: list[Reason] = []
    if old.get("environment") != new.get("environment"):
        old_env, new_env = old.get("environment", {}), new.get("environment", {})
        if "image" in old_env and "image" in new_env:
            reasons.append(Reason("image-changed", "", old_env["image"], new_env["image"]))
        else:
            reasons.append(Reason("environment-changed", "", _where(old_env), _where(new_env)))
    if old.get("command") != new.get("command"):
        reasons.append(Reason("command-changed", "", old.get("command"), new.get("command")))
    if old.get("env") != new.get("env"):
        reasons.append(Reason("env-changed", "", old.get("env"), new.get("env")))
    reasons += _dict_reasons("param", old.get("params", {}), new.get("params", {}))
    reasons += [
        Reason("arg-changed", r.subject, r.old, r.new)
        for r in _dict_reasons("arg", old.get("args", {}), new.get("args", {}))
    ]
    for r in _dict_reasons("input", old.get("inputs", {}), new.get("inputs", {})):
        if r.kind == "input-changed" and r.subject in upstream_of:
            r = Reason("upstream-changed", r.subject, r.old, r.new, upstream_of[r.subject])
        elif r.kind != "input-removed" and r.new is None:
            r = Reason("input-missing", r.subject)
        reasons.append(r)
    if old.get("outputs") != new.get("outputs"):
        reasons.append(Reason("outputs-changed", "", old.get("outputs"), new.get("outputs")))
    return reasons


def _where(environment: Mapping[str, Any]) -> str:
    if "image" in environment:
        return f"image {str(environment['image'])[:12]}"
    return f"host {environment.get('host', '?')}"


_IMAGE_FIELDS = ("env", "run", "workdir", "user", "entrypoint", "cmd", "labels")


def _image_reasons(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Reason]:
    reasons: list[Reason] = []
    if old.get("base") != new.get("base"):
        reasons.append(Reason("base-changed", "", old.get("base"), new.get("base")))
    reasons += [
        Reason("instructions-changed", name) for name in _IMAGE_FIELDS if old.get(name) != new.get(name)
    ]
    old_copy = {c["dest"]: c for c in old.get("copy", [])}
    for entry in new.get("copy", []):
        if old_copy.get(entry["dest"]) != entry:
            reasons.append(Reason("copy-changed", entry["dest"]))
    if len(old.get("copy", [])) != len(new.get("copy", [])) and not any(
        r.kind == "copy-changed" for r in reasons
    ):
        reasons.append(Reason("instructions-changed", "copy"))
    reasons += [
        Reason("arg-changed", r.subject, r.old, r.new)
        for r in _dict_reasons("arg", old.get("args", {}), new.get("args", {}))
    ]
    return reasons
