"""Content keys: a Merkle hash of everything that can change a stage's result.

`key = sha256(canonical_json({"v": KEY_VERSION, **material}))`. The *material* is a
plain dict that the lock file records verbatim, so "why does this rerun?" is a diff of
two materials (see `core.plan`), never a guess.

Run stages hash their inputs' *digests*; for inputs produced by another stage those
are the upstream's recorded output digests, not the upstream's key. A rerun that
reproduces identical bytes therefore leaves every downstream key unchanged: early
cutoff falls out of the hashing, no special case needed.

Pure: callers pass digests in; nothing here reads files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, Param, RunStage, Spec, StageRef

# Bump on purpose whenever the material or its encoding changes; the golden test in
# tests/unit/test_keys.py fails on any accidental change.
# 2: a copy entry's digest is the canonical tree listing (modes included) of what it copies.
KEY_VERSION = 2

Material = dict[str, Any]


# = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False), whose arguments
# make an encoder at each call: once per step of a run
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> bytes:
    return _CANONICAL.encode(obj).encode("utf-8")


def key_of(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"v": KEY_VERSION, **material})).hexdigest()


def base_material(stage: ImageStage, parent_keys: Mapping[str, str], resolved: Mapping[str, str]) -> Any:
    """What the image is built on: a parent stage's key, a pinned registry digest, or a Debian spec.

    `resolved` maps a registry reference to its digest once the engine has pulled it;
    until then the reference itself stands in (the status of a never-pulled base).
    """
    base = stage.base
    if isinstance(base, StageRef):
        return {"stage": base.stage, "key": parent_keys.get(base.stage, "")}
    if isinstance(base, ImageRef):
        return {"image": base.reference, "digest": resolved.get(base.reference, "")}
    assert isinstance(base, DebianBase)
    return {"debian": base.suite, "packages": sorted(base.packages), "mirror": base.mirror}


def image_material(
    stage: ImageStage,
    spec: Spec,
    parent_keys: Mapping[str, str],
    copy_digests: tuple[str, ...],
    resolved: Mapping[str, str] | None = None,
) -> Material:
    """Material of an image stage; `copy_digests[i]` digests the files of `stage.copy[i]`."""
    args = dict(spec.args)
    material: Material = {
        "kind": "image",
        "base": base_material(stage, parent_keys, resolved or {}),
        "env": [list(kv) for kv in stage.env],
        "run": list(stage.run),
        "copy": [
            _copy_material(c, d, parent_keys, resolved or {})
            for c, d in zip(stage.copy, copy_digests, strict=True)
        ],
        "workdir": stage.workdir,
        "user": stage.user,
        "entrypoint": list(stage.entrypoint),
        "cmd": list(stage.cmd),
        "labels": dict(stage.labels),
        "args": {name: args[name] for name in stage.args_used if name in args},
    }
    # Only when present, so that the keys of stages without these fields stay as they were.
    if stage.args:  # every one is in the environment of the `run` lines, used or not
        material["stage_args"] = [list(kv) for kv in stage.args]
    if stage.platform_args:
        material["platform_args"] = dict(stage.platform_args)
    material.update(_config_material(stage))
    return material


def _config_material(stage: ImageStage) -> Material:
    """The image configuration keys a stage sets (shell, expose, …), as the lock shows them."""
    found: Material = {}
    for name in ("shell", "expose", "volume", "onbuild"):
        if getattr(stage, name):
            found[name] = list(getattr(stage, name))
    if stage.stopsignal:
        found["stopsignal"] = stage.stopsignal
    for name in ("entrypoint_shell", "cmd_shell"):  # shell form runs another argv than exec form
        if getattr(stage, name):
            found[name] = True
    if stage.healthcheck is not None:
        found["healthcheck"] = dataclasses.asdict(stage.healthcheck)
    return found


def _copy_material(
    copy: Copy, digest: str, parent_keys: Mapping[str, str], resolved: Mapping[str, str]
) -> Material:
    entry: Material = {"dest": copy.dest, "chown": copy.chown, "sources": list(copy.sources)}
    entry["digest"] = digest
    # Only for COPY --from, so that the keys of other copies stay as they were.
    if copy.from_stage:  # that image's key: rebuilt, it is copied again
        entry["from"] = {"stage": copy.from_stage, "key": parent_keys.get(copy.from_stage, "")}
    elif copy.from_image:  # pinned like a registry base
        entry["from"] = {"image": copy.from_image, "digest": resolved.get(copy.from_image, "")}
    return entry


def param_values(spec: Spec, names: tuple[str, ...]) -> dict[str, Any]:
    if not names:
        return {}
    by_name: dict[str, Param] = {p.name: p for p in spec.params}
    return {name: by_name[name].value for name in names if name in by_name}


def file_param_values(stage: RunStage) -> dict[str, Any]:
    """The values a stage's `params` key lists, decoded (the file's digest is never keyed)."""
    return {name: json.loads(text) for name, text in stage.file_params}


def run_material(
    stage: RunStage,
    spec: Spec,
    environment: Mapping[str, Any],
    input_digests: Mapping[str, str | None],
) -> Material:
    """Material of a run stage.

    `environment` is where it runs: `{"image": <image key>}` in a container, or a host
    fingerprint such as `{"host": "linux/x86_64"}`. `input_digests` maps each input
    path to its digest (None when it does not exist yet).
    """
    args = dict(spec.args) if stage.args_used else {}
    return {
        "kind": "run",
        "environment": dict(environment),
        "command": stage.command,
        "env": [list(kv) for kv in stage.env],
        # params-file values by "file:key" next to [params] names, so `bg explain` shows either
        "params": {**param_values(spec, stage.params_used), **file_param_values(stage)},
        "args": {name: args[name] for name in stage.args_used if name in args},
        "inputs": {path: input_digests.get(path) for path in stage.inputs},
        "outputs": [o.path + ("/" if o.is_dir else "") for o in stage.outputs],
    }
