"""The scratch workspace of an audit: one folder per audited stage, its recorded inputs by digest.

    <audit dir>/<stage>/out/        the stage's workspace: its outputs land here
    <audit dir>/<stage>/in/<path>   recorded inputs the workspace no longer holds, from the cache
    <audit dir>/cache/              the scratch store the rerun's outputs go to (never .bg/cache)

An input is taken from the project when its file there still has the recorded digest (it is
only read), else from the cache by digest (an upstream stage's recorded output), so an audit of
`evaluate` reads the `model.pt` that `evaluate` read, without rerunning `train`. An input found
in neither is named: the stage cannot be audited with what it read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildgraph.stores.tree import Digest


class MissingInput(Exception):
    """A recorded input is neither in the project nor in the cache."""


class SandboxFiles:
    """An `engine.context.Files` over a scratch folder: inputs mapped to where their recorded
    bytes are, everything else (outputs, logs) inside the folder. Nothing outside is written."""

    def __init__(
        self,
        base: Path,
        root: Path,
        store: Any,
        inputs: Mapping[str, Path] | None = None,
        digests: Mapping[str, str] | None = None,
    ) -> None:
        """`base`: the pass's folder (logs, scratch, journal); `root`: the stage's workspace."""
        self.root = root
        self.logs = base / "logs"
        self.tmp = base / "tmp"
        self.lock_path = base / "Buildfile.lock"  # never written: audits record nothing
        self.journal_path = base / "journal.jsonl"  # the builder's; never folded into the project's
        self._store = store
        self._inputs = dict(inputs or {})
        self._digests = dict(digests or {})
        self._remembered: dict[str, str] = {}

    @property
    def cache(self) -> Any:
        return self._store

    def path(self, rel: str) -> Path:
        placed = self._inputs.get(rel)
        return placed if placed is not None else self.root / rel

    def digest(self, rel: str) -> str | None:
        if rel in self._digests:
            return self._digests[rel]
        return self._remembered.get(rel)  # an output materialised by the rerun, else not there yet

    def remember(self, rel: str, record: Mapping[str, Any]) -> None:
        self._remembered[rel] = str(record["digest"])

    def listing_digest(self, files: Iterable[tuple[str, Any]]) -> Digest:
        raise NotImplementedError("an audit reruns run stages only")  # image steps never see a sandbox

    def remember_run(self, run_id: str, keys: list[str]) -> None:
        """An audit is no run of the project: `bg gc --keep-runs` must not count it."""


def place_inputs(
    stage: str,
    inputs: Mapping[str, str],
    project: Any,
    store: Any,
    records: Mapping[str, Mapping[str, Any]],
    into: Path,
) -> dict[str, Path]:
    """Where each recorded input's bytes are: its project path if it still has the recorded digest,
    else a copy materialised from the cache under `into` (hardlinks: objects are read-only).

    `records`: output records of upstream results by digest (a directory input needs its tree)."""
    placed: dict[str, Path] = {}
    for path, digest in inputs.items():
        if project.digest(path) == digest:
            placed[path] = project.path(path)
            continue
        record = records.get(digest) or _file_record(store, digest)
        if record is None:
            raise MissingInput(
                f"stage '{stage}': input '{path}' as recorded ({digest[:12]}…) is neither in the project "
                "nor in the cache"
            )
        target = into / path
        store.materialise(record, target, "auto")
        placed[path] = target
    return placed


def _file_record(store: Any, digest: str) -> dict[str, Any] | None:
    """A plain file's record, when the cache holds an object with the digest (a source file never is)."""
    if not store.has_object(digest):
        return None
    size = os.stat(store.object_path(digest)).st_size
    return {"kind": "file", "digest": digest, "size": size}


def upstream_records(manifests: Iterable[Any]) -> dict[str, Mapping[str, Any]]:
    """Output records by digest, from the manifests of the results an audit may read inputs of."""
    found: dict[str, Mapping[str, Any]] = {}
    for manifest in manifests:
        for record in manifest.outputs.values():
            found.setdefault(str(record["digest"]), record)
    return found
