"""The store interface: artefacts by content, run manifests by key (ninja's injected DiskInterface).

    objects     bytes, named by their sha256 digest; written once, never changed
    manifests   one JSON document per run key (its outputs' records, log, timings …), written
                only after every object it names is stored, so its presence means "complete"

The engine knows a store through this protocol alone: the local `.bg/cache`
(`stores.cache.ArtefactCache`), an in-memory fake for tests (`stores.fake.MemoryStore`), and
later a remote one (fsspec) that the local one reads through. The primitives are byte-oriented
(`put_object`, `open_object`) so a remote can implement them over any object store;
`ingest` and `materialise` move whole outputs (a file or a tree) between a folder and the
store, which the local cache does by renames and hardlinks, a remote by copying objects.

What is *not* here: workspace digests. Hashing project files through the stat cache, and
remembering what was just materialised, belong to the workspace (`engine.context.Files`):
a store knows digests, keys and manifests, never the project (and never imports `core`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from buildgraph.stores.link import LinkMode
from buildgraph.stores.tree import Digest

OutputRecord = Digest  # what a stored output is: same kinds, digests and trees as a workspace path
RecordLike = OutputRecord | Mapping[str, Any]


class Store(Protocol):
    # a local folder the store writes to: where a full disk is measured and reported
    root: Path

    def has_manifest(self, key: str) -> bool:
        """Whether a manifest for `key` exists (not checked further: cheap, for deciding)."""
        ...

    def get_manifest(self, key: str, verify: bool = True) -> dict[str, Any] | None:
        """The manifest, or None when absent or unreadable, or (with `verify`) when an object
        it names is missing or damaged."""
        ...

    def put_manifest(self, key: str, manifest: Mapping[str, Any]) -> None:
        """Record a run, last: ValueError if an object it names is not stored."""
        ...

    def put_manifests(self, manifests: Mapping[str, Mapping[str, Any]]) -> None:
        """Record several runs together (a group commit): durable once it returns, each whole
        or absent after a crash, never naming an object that is not durable. ValueError (and
        none recorded) if an object one names is not stored."""
        ...

    def has_object(self, digest: str) -> bool:
        """Whether the object is stored with the right bytes."""
        ...

    def open_object(self, digest: str) -> BinaryIO:
        """The object's bytes, for reading; FileNotFoundError when it is not stored."""
        ...

    def put_object(self, data: bytes) -> str:
        """Store `data` (once: stored objects are deduplicated); returns its digest."""
        ...

    def ingest(self, path: Path) -> OutputRecord:
        """Store the output at `path` (a file or a tree), returning its record; refuses
        (`stores.outputs.UnsafeOutput`), having stored nothing, a symlink leading out of it."""
        ...

    def put_log(self, path: Path) -> str:
        """Store a log file as an object (a missing file: the empty log); returns its digest."""
        ...

    def materialise(self, record: RecordLike, dest: Path, link: LinkMode = "auto") -> None:
        """Make `dest` hold the output `record`, replacing what is there all at once."""
        ...

    def close(self) -> None: ...
