"""A stage's entry in Buildfile.lock: the key it was last brought up to date under, what the
key was computed from, and what it produced.

    run    {"kind": "run", "key", "v": KEY_VERSION, "material", "outputs": {path: {kind, digest, size}},
            "environment": {executor, python, torch, …} (where the result was made)}
    image  {"kind": "image", "key", "material", "image": "bg/<project>/<stage>:<key[:32]>",
            "debian": {"tar", "packages"} (only for a stage built on an offline Debian base)}

Buildfile.lock is committed and merged, so `to_json` is exactly this shape (and bg writes it
sorted): an entry read and written again is byte-identical. Image entries hold a tag, never an
image id, which differs from engine to engine. `v` is the key version the key was made with.
`environment` is the fingerprint of where a run's result was made (`records.environment`; absent
in entries from before bg kept one), so an audit says when it reruns elsewhere.

Versions: the lock file carries its own (`lockfile.LOCK_VERSION`); entries follow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from buildgraph.records.debian_base import DebianRecord
from buildgraph.records.environment import stable
from buildgraph.records.errors import RecordError, optional, required

Kind = Literal["run", "image"]
_OUTPUT_FIELDS = ("kind", "digest", "size")  # what the lock keeps of an output record


@dataclass(frozen=True)
class LockEntry:
    kind: Kind
    key: str
    material: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # run: path → kind/digest/size
    image: str = ""  # image: the tag it was built as
    key_version: int | None = None  # run: the KEY_VERSION of `key`
    environment: Mapping[str, Any] = field(default_factory=dict)  # run: where it was made (stable part)
    debian: DebianRecord | None = None  # image on `from = { debian = … }`: what its base held
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields a newer bg wrote, kept

    @classmethod
    def for_run(
        cls,
        key: str,
        key_version: int,
        material: Mapping[str, Any],
        outputs: Mapping[str, Mapping[str, Any]],
        environment: Mapping[str, Any] | None = None,
    ) -> LockEntry:
        """A run stage's entry from the store's output records (only kind, digest, size kept) and
        the environment its executor reported (only the stable fingerprint kept)."""
        kept = {p: {k: r[k] for k in _OUTPUT_FIELDS if k in r} for p, r in outputs.items()}
        return cls("run", key, material, kept, key_version=key_version, environment=stable(environment or {}))

    @classmethod
    def for_image(
        cls, key: str, material: Mapping[str, Any], tag: str, debian: DebianRecord | None = None
    ) -> LockEntry:
        return cls("image", key, material, image=tag, debian=debian)

    def digests(self) -> dict[str, str]:
        return {path: str(record["digest"]) for path, record in self.outputs.items()}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "kind": self.kind, "key": self.key}
        out["material"] = dict(self.material)
        if self.kind == "run":
            out["outputs"] = {path: dict(record) for path, record in self.outputs.items()}
            if self.key_version is not None:
                out["v"] = self.key_version
            if self.environment:
                out["environment"] = dict(self.environment)
        else:
            out["image"] = self.image
            if self.debian is not None:
                out["debian"] = self.debian.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any, stage: str = "") -> LockEntry:
        what = f"lock entry of stage '{stage}'" if stage else "lock entry"
        if not isinstance(data, Mapping):
            raise RecordError(f"{what}: not a JSON object")
        kind = optional(data, "kind", str, "run", what)
        if kind not in ("run", "image"):
            raise RecordError(f"{what}: unknown kind {kind!r}")
        outputs = optional(data, "outputs", dict, {}, what)
        for path, record in outputs.items():
            if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
                raise RecordError(f"{what}: output {path!r} has no digest")
        known = {"kind", "key", "material", "outputs", "image", "v", "debian", "environment"}
        debian = data.get("debian")
        return cls(
            kind=kind,
            key=required(data, "key", str, what),
            material=optional(data, "material", dict, {}, what),
            outputs=outputs,
            image=optional(data, "image", str, "", what),
            key_version=optional(data, "v", int, None, what),
            environment=optional(data, "environment", dict, {}, what),
            debian=None if debian is None else DebianRecord.from_json(debian, f"{what}: debian"),
            extra={k: v for k, v in data.items() if k not in known},
        )
