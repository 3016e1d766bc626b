"""Where the engine meets its records: typed `Manifest`s and `LockEntry`s (buildgraph.records)
on one side, the JSON documents that stores and Buildfile.lock hold on the other.

Stores and the lock keep JSON (a remote store exchanges JSON, never our objects); every read
the engine makes goes through `from_json` here, every write through `to_json`, so a damaged
record is caught in one place: a manifest that does not parse is a cache miss (the step runs
again), a lock entry that does not parse is an environment problem naming the stage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from buildgraph.core.keys import KEY_VERSION
from buildgraph.errors import EnvironmentProblem
from buildgraph.records.debian_base import DebianRecord
from buildgraph.records.errors import RecordError
from buildgraph.records.lock_entry import LockEntry

if TYPE_CHECKING:
    from buildgraph.records.manifest import Manifest


class _Manifests(Protocol):
    def get_manifest(self, key: str, verify: bool = True) -> Mapping[str, Any] | None: ...


class _Entries(Protocol):
    def get(self, stage: str) -> Mapping[str, Any] | None: ...


def run_manifest(
    key: str,
    stage: str,
    material: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, Any]],
    log: str,
    duration: float,
    executor: str,
    run_id: str,
    environment: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Manifest:
    """What one successful execution of a run stage produced, under its key: where it ran and
    its provenance statement included."""
    from buildgraph.records.manifest import Manifest  # not imported by a run that stores nothing

    finished = utc(time.time())
    return Manifest(
        key, stage, material, outputs, log, 0, round(duration, 3), finished, executor, run_id,
        environment=dict(environment or {}), provenance=provenance,
    )


def utc(seconds: float) -> str:
    """A time as records write it: UTC, RFC 3339 to the second (`2026-12-01T22:38:30Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def run_entry(
    key: str,
    material: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, Any]],
    environment: Mapping[str, Any] | None = None,
) -> LockEntry:
    """A run stage's lock entry: its key, what the key came from, its outputs' digests, and the
    fingerprint of the environment that made them (of the run that made a restored result)."""
    return LockEntry.for_run(key, KEY_VERSION, material, outputs, environment)


def image_entry(
    key: str, material: Mapping[str, Any], tag: str, debian: DebianRecord | None = None
) -> LockEntry:
    """An image stage's lock entry: a tag, no image id (ids differ from engine to engine), and
    for a stage on an offline Debian base what that base holds."""
    return LockEntry.for_image(key, material, tag, debian)


def manifest(store: _Manifests, key: str, verify: bool = True) -> Manifest | None:
    """The run manifest under `key`; None when missing, damaged or unreadable by this bg."""
    data = store.get_manifest(key, verify=verify)
    if data is None:
        return None
    from buildgraph.records.manifest import Manifest

    try:
        return Manifest.from_json(data)
    except RecordError:
        return None


def entry(lock: _Entries, stage: str) -> LockEntry | None:
    """Stage's entry in the lock (None when it has none)."""
    data = lock.get(stage)
    if data is None:
        return None
    try:
        return LockEntry.from_json(data, stage)
    except RecordError as exc:
        raise EnvironmentProblem(
            f"Buildfile.lock: {exc}",
            hint="restore it from version control, or delete the stage's entry: `bg run` records it again",
        ) from None
