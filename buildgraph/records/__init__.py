"""What bg records, as types: a run's `Manifest` (in the artefact cache) and a stage's
`LockEntry` (in Buildfile.lock). One module each; each versioned, with `to_json`/`from_json`
and a golden file test (tests/unit/test_records.py), so a change of shape is a decision.

Records know nothing of the engine, the stores or the core: they are the shared vocabulary
those read and write. `from_json` refuses what it cannot read with `RecordError`, which the
reader turns into its own message (a damaged lock is an environment problem; a damaged
manifest is a cache miss).
"""

from __future__ import annotations

from buildgraph.records.errors import RecordError
from buildgraph.records.lock_entry import LockEntry
from buildgraph.records.manifest import Manifest

__all__ = ["LockEntry", "Manifest", "RecordError"]
