"""What bg records, as types: a run's `Manifest` (in the artefact cache) and a stage's
`LockEntry` (in Buildfile.lock). One module each; each versioned, with `to_json`/`from_json`
and a golden file test (tests/unit/test_records.py), so a change of shape is a decision.

Records know nothing of the engine, the stores or the core: they are the shared vocabulary
those read and write. `from_json` refuses what it cannot read with `RecordError`, which the
reader turns into its own message (a damaged lock is an environment problem; a damaged
manifest is a cache miss).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildgraph.records.errors import RecordError
    from buildgraph.records.lock_entry import LockEntry
    from buildgraph.records.manifest import Manifest

__all__ = ["LockEntry", "Manifest", "RecordError"]
_HOMES = {"LockEntry": "lock_entry", "Manifest": "manifest", "RecordError": "errors"}


def __getattr__(name: str) -> Any:
    """Each record's module is imported when first named: a null run reads lock entries and
    never a manifest, and a dataclass costs about a millisecond to make."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"buildgraph.records.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'buildgraph.records' has no attribute {name!r}")
