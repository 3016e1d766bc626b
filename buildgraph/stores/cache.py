"""The artefact cache: outputs stored by content, and run manifests that point at them.

    <root>/objects/ab/cdef…      bytes by digest, read-only  } `stores.objects`: storing,
    <root>/objects.db            stat record of each object  } verifying, re-recording
    <root>/runs/ab/<key>.json    a run's manifest, written last, atomically and durably

A manifest is the engine's dict; the cache reads two fields of it: `outputs` (path →
`OutputRecord.as_dict()`) and `log` (a digest), the objects that must exist for it to be used.
One that would plant a symlink leading out of an output is not used either.

`ArtefactCache` is the `ObjectStore` plus the manifests, restoring outputs from objects
(`materialise`, built beside the destination and renamed over it) and `gc`. Threads of one
process may use it at once (see `stores.objects`); other processes are kept out by the
project lock; `gc` must run under the exclusive one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildgraph import faults
from buildgraph.atomic import write_aside
from buildgraph.stores.base import OutputRecord, RecordLike
from buildgraph.stores.link import (
    LINK_MODES,
    LinkMode,
    build_record,
    remove_path,
    swap_into_place,
    temp_sibling,
)
from buildgraph.stores.objects import CorruptObject, ObjectStore
from buildgraph.stores.outputs import (  # re-exported: the cache's own vocabulary
    UnsafeOutput,
    manifest_objects,
    record_objects,
)
from buildgraph.stores.statdb import Warn
from buildgraph.stores.symlinks import lexical_target
from buildgraph.stores.tree import LINK_MODE, Digest

__all__ = [
    "ArtefactCache",
    "CorruptObject",
    "GcReport",
    "OutputRecord",
    "UnsafeOutput",
    "manifest_objects",
    "record_objects",
]

_KEY = re.compile(r"[0-9a-f]{8,128}")


@dataclass(frozen=True)
class GcReport:
    objects_removed: int = 0
    manifests_removed: int = 0
    bytes_freed: int = 0


class ArtefactCache(ObjectStore):
    """The local store (`stores.base.Store`): `.bg/cache`."""

    def __init__(self, root: Path, on_warning: Warn | None = None, full_is_error: bool = True) -> None:
        super().__init__(root, on_warning, full_is_error)
        self.runs = self.root / "runs"

    def __enter__(self) -> ArtefactCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ manifests
    def manifest_path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a cache key (lowercase hex)")
        return self.runs / key[:2] / f"{key}.json"

    def has_manifest(self, key: str) -> bool:
        return self.manifest_path(key).is_file()

    def put_manifest(self, key: str, manifest: Mapping[str, Any]) -> None:
        """Write the manifest last: only after every object it names is stored and durable."""
        self.put_manifests({key: manifest})

    def put_manifests(self, manifests: Mapping[str, Mapping[str, Any]]) -> None:
        """Record runs together, durably (a group commit): each manifest is written aside, one
        sync makes them and every object stored so far durable, then each is renamed into
        place, and a second sync makes the names durable. A crash at any point leaves each
        manifest absent or whole, and never one naming an object a power cut could lose."""
        staged: list[tuple[Path, Path]] = []
        try:
            for key, manifest in manifests.items():
                missing = [
                    d for d in sorted(manifest_objects(manifest)) if not os.path.isfile(self._object(d))
                ]
                if missing:
                    raise ValueError(f"manifest {key[:12]}… names objects not in the cache: {missing[:3]}")
                data = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                path = self.manifest_path(key)
                self._folder(str(path.parent))
                aside = write_aside(path, data.encode("utf-8"))
                staged.append((aside, path))
                self._written(str(aside))
            faults.point("manifests-staged")  # written aside, neither durable nor in place
            self.sync()
            while staged:
                aside, path = staged[-1]
                os.replace(aside, path)
                staged.pop()
                self._written(str(path.parent))
            self.sync()
        finally:
            for aside, _ in staged:  # not renamed: nothing of them may remain
                aside.unlink(missing_ok=True)
        self._flush_records()

    def get_manifest(self, key: str, verify: bool = True) -> dict[str, Any] | None:
        """The manifest, or None when absent, unreadable, or (with `verify`) when any object it
        needs is missing or corrupt."""
        manifest = self._read_manifest(self.manifest_path(key))
        if manifest is None or not verify:
            return manifest
        needed = manifest_objects(manifest)
        if len(needed) > 64:
            self._records.preload(self.objects)
        intact = all(self.verify(d) for d in sorted(needed))
        self._flush_records()
        if intact and not self._links_stay_inside(manifest):
            self._warn(f"cache entry {key[:12]}… holds a symlink leading out of its output: not restored")
            return None
        return manifest if intact else None

    def _links_stay_inside(self, manifest: Mapping[str, Any]) -> bool:
        """False for a manifest that would plant a symlink leading out of an output (stored
        before ingest refused them, or brought from elsewhere); its objects are intact."""
        for data in manifest["outputs"].values():
            record = Digest.from_dict(data)
            if record.kind == "link":
                return False
            for entry in record.tree:
                if entry.mode == LINK_MODE:
                    with open(self._object(entry.digest), "rb") as f:
                        target = os.fsdecode(f.read())
                    if lexical_target(entry.relpath, target) is None:
                        return False
        return True

    def iter_manifests(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(key, manifest) of every readable manifest, unverified, in key order."""
        for key, path in self._manifest_files():
            manifest = self._read_manifest(path)
            if manifest is not None:
                yield key, manifest

    def _manifest_files(self) -> list[tuple[str, Path]]:
        if not self.runs.is_dir():
            return []
        found = [
            (p.name[: -len(".json")], p) for p in self.runs.glob("*/*.json") if not p.name.startswith(".")
        ]
        return sorted(found)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any] | None:
        try:
            manifest = json.loads(path.read_bytes())
            manifest_objects(manifest)  # readable in the shape we rely on
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, or truncated by a crash, or not ours
        return manifest if isinstance(manifest, dict) else None

    # ------------------------------------------------------------ restoring
    def materialise(self, record: RecordLike, dest: Path, link: LinkMode = "auto") -> None:
        """Make `dest` hold the output: built beside it, then renamed over it, so an
        interrupted restore never leaves a half tree. Raises CorruptObject if an object is
        missing or damaged, LinkImpossible when `link="hardlink"` cannot link."""
        if link not in LINK_MODES:
            raise ValueError(f"link must be one of {LINK_MODES}, not {link!r}")
        found = record if isinstance(record, Digest) else Digest.from_dict(record)
        self._check(found)
        target = os.path.abspath(dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        built = temp_sibling(target)
        unlinked: list[os.stat_result] = []
        try:
            hardlinked = build_record(found, built, link, self._object, self._reflinker)
            swap_into_place(built, target, unlinked)
        except BaseException:
            remove_path(built)
            raise
        # linking, renaming and unlinking changed the ctime of objects verified above
        for digest in hardlinked:
            obj = self._object(digest)
            self._records.remember_stat(obj, os.lstat(obj), digest)
        self._refresh_unlinked(unlinked)  # written at the next flush: a lost one costs a re-hash

    def _check(self, record: OutputRecord) -> None:
        for entry in record.tree:
            parts = entry.relpath.split("/")
            if entry.relpath.startswith("/") or ".." in parts or "" in parts:
                raise CorruptObject(f"cache record holds an unsafe path {entry.relpath!r}", "run `bg gc`")
        needed = sorted(record_objects(record))
        if len(needed) > 64:
            self._records.preload(self.objects)
        for digest in needed:
            if not self.verify(digest):
                raise CorruptObject(
                    f"cache object {digest[:12]}… is missing or corrupt", "run `bg run` again to rebuild it"
                )

    def remove_output(self, dest: Path) -> bool:
        """Remove a workspace output (file or tree), re-recording the objects its files were
        hardlinks to: unlinking changes their ctime, which would otherwise cost a re-hash
        (a 1 GiB restore after `bg clean` must not read the gigabyte again)."""
        if not os.path.lexists(dest):
            return False
        linked = []
        if os.path.isdir(dest) and not os.path.islink(dest):
            for folder, _, names in os.walk(dest):
                linked += [
                    st for st in map(os.lstat, (os.path.join(folder, n) for n in names)) if st.st_nlink > 1
                ]
            shutil.rmtree(dest)
        else:
            st = os.lstat(dest)
            linked += [st] if st.st_nlink > 1 else []
            os.unlink(dest)
        with self._lock:
            self._refresh_unlinked(linked)
        return True

    # ------------------------------------------------------------ collecting
    def gc(self, keep_keys: set[str]) -> GcReport:
        """Delete manifests not in `keep_keys` (and unreadable ones), every object no kept
        manifest needs, and stray temporaries. Run it under the exclusive project lock."""
        keep: set[str] = set()
        manifests_removed = 0
        freed = self._remove_strays(self.runs)
        for key, path in self._manifest_files():
            manifest = self._read_manifest(path) if key in keep_keys else None
            if manifest is None:
                freed += path.stat().st_size
                path.unlink()
                manifests_removed += 1
            else:
                keep |= manifest_objects(manifest)
        objects_removed, object_bytes = self._sweep_objects(keep)
        self._records.flush()
        return GcReport(objects_removed, manifests_removed, freed + object_bytes)

    def _sweep_objects(self, keep: set[str]) -> tuple[int, int]:
        removed = freed = 0
        if not self.objects.is_dir():
            return 0, 0
        freed += self._remove_strays(self.objects)
        for folder in sorted(self.objects.iterdir()):
            for item in sorted(folder.iterdir()) if folder.is_dir() else ():
                if folder.name + item.name in keep:
                    continue
                freed += item.lstat().st_size
                self._records.forget(str(item))
                item.unlink()
                removed += 1
        return removed, freed

    @staticmethod
    def _remove_strays(top: Path) -> int:
        """Remove `*.tmp-*` leftovers of killed processes below `top`; returns bytes freed."""
        freed = 0
        for stray in top.glob("**/.*.tmp-*") if top.is_dir() else ():
            freed += stray.lstat().st_size
            remove_path(str(stray))
        return freed
