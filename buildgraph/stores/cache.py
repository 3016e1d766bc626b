"""The artefact cache: outputs stored by content, and run manifests that point at them.

    <root>/objects/ab/cdef…      bytes by digest (a symlink is stored as its target string),
                                 chmod 0o444, never half-written under its final name
    <root>/objects.db            stat record of each object (a DigestCache): verify is one stat
    <root>/runs/ab/<key>.json    a run's manifest, written last, atomically and durably

A manifest is the engine's dict; the cache reads two fields of it: `outputs` (path →
`OutputRecord.as_dict()`) and `log` (a digest), the objects that must exist for it to be used.

Integrity before use: `verify(digest)` compares the object's lstat (inode, size, mtime_ns,
ctime_ns) with the record written when it was stored; on any difference the object is hashed
again, and deleted (with a warning) if its bytes are wrong, so its stage reruns. ctime catches a
root edit through a workspace hardlink even when mtime was restored. Our own link and unlink
operations also change ctime: the record is refreshed after them, but only when it matched
just before, so that refresh never blesses bytes we did not see.

Concurrency: threads of one process may ingest and materialise at once (the decision to
place an object is taken under a lock; hashing and copying run outside it). Other processes
are kept out by the project lock; `gc` must run under the exclusive one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from buildgraph import faults
from buildgraph.atomic import atomic_write, fsync_dir, fsync_file
from buildgraph.errors import EnvironmentProblem
from buildgraph.stores.base import OutputRecord, RecordLike
from buildgraph.stores.digests import (
    LINK_MODE,
    Digest,
    DigestCache,
    HashStats,
    Warn,
    lexical_target,
    warn_stderr,
)
from buildgraph.stores.link import (
    LINK_MODES,
    LinkMode,
    Reflinker,
    build_record,
    copy_file,
    remove_path,
    swap_into_place,
    temp_sibling,
)
from buildgraph.stores.outputs import (  # re-exported: the cache's own vocabulary
    UnsafeOutput,
    check_output,
    manifest_objects,
    record_objects,
    scan_output,
)

__all__ = [
    "ArtefactCache",
    "CorruptObject",
    "GcReport",
    "OutputRecord",
    "UnsafeOutput",
    "check_output",
    "manifest_objects",
    "record_objects",
    "scan_output",
]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"[0-9a-f]{8,128}")
_FLUSH_EVERY_S = 1.0


class CorruptObject(EnvironmentProblem):
    """An object a manifest needs is missing or damaged (it has been removed)."""


@dataclass(frozen=True)
class GcReport:
    objects_removed: int = 0
    manifests_removed: int = 0
    bytes_freed: int = 0


class ArtefactCache:
    """The local store (`stores.base.Store`): `.bg/cache`."""

    def __init__(self, root: Path, on_warning: Warn | None = None, full_is_error: bool = True) -> None:
        self.root = Path(os.path.abspath(root))  # object records are keyed by absolute path
        self.objects = self.root / "objects"
        self._objects_prefix = f"{self.objects}/"
        self.runs = self.root / "runs"
        self._warn = on_warning or warn_stderr
        self._records = DigestCache(
            self.root / "objects.db", racy_window_ns=0, on_warning=self._warn, full_is_error=full_is_error
        )
        self._lock = threading.Lock()
        self._reflinker = Reflinker()
        self._device: int | None = None
        self._folders: set[str] = set()  # prefix folders (objects/ab, runs/ab) known to exist
        self._fresh: set[str] = set()  # … created by us, their entry in the parent not yet fsynced
        self._folders_lock = threading.Lock()
        self._flushed = time.monotonic()

    def __enter__(self) -> ArtefactCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._records.close()

    @property
    def stats(self) -> HashStats:
        """Objects re-hashed by `verify` because their stat record did not prove them intact."""
        return self._records.stats

    # ------------------------------------------------------------ objects
    def object_path(self, digest: str) -> Path:
        return Path(self._object(digest))

    def _object(self, digest: str) -> str:
        """The object's path as a string: pathlib costs too much 10,000 times per tree."""
        if not _DIGEST.fullmatch(digest):
            raise CorruptObject(f"{self.root}: {digest!r} is not a sha256 digest", "run `bg gc`")
        return f"{self._objects_prefix}{digest[:2]}/{digest[2:]}"

    def verify(self, digest: str) -> bool:
        """True if the object exists with the right bytes (one stat when its record matches);
        a damaged object is deleted, with a warning, and reported False."""
        path = self._object(digest)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISREG(st.st_mode) and self._records.file_digest(path, st) == digest:
            return True
        self._warn(f"cache object {digest[:12]}… was corrupt; removed it (its stage will run again)")
        self._records.forget(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return False

    def has_object(self, digest: str) -> bool:
        return self.verify(digest)

    def open_object(self, digest: str) -> BinaryIO:
        return open(self._object(digest), "rb")

    def put_object(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        touched: set[str] = set()
        self._store_bytes(data, digest, touched)
        self._synced(touched)
        return digest

    def ingest(self, path: Path, move: bool = True) -> OutputRecord:
        """Store a run's output (file or directory); `move` takes the files (zero copy) where
        they are alone on the same filesystem, and copies otherwise. Raises UnsafeOutput, having
        stored nothing, for a symlink (see `scan_output`)."""
        src = os.path.abspath(path)
        record = scan_output(src, os.fspath(path))
        self._store_record(src, record, move)
        return record

    def _store_record(self, src: str, record: OutputRecord, move: bool) -> None:
        touched: set[str] = set()
        if record.kind == "file":
            self._store_file(src, record.digest, move, touched)
        for entry in record.tree:
            item = os.path.join(src, entry.relpath)
            if entry.mode == LINK_MODE:
                self._store_bytes(os.fsencode(os.readlink(item)), entry.digest, touched)
            else:
                self._store_file(item, entry.digest, move, touched)
        self._synced(touched)  # its stat records are written with the manifest (or at close)

    def put_log(self, path: Path, move: bool = False) -> str:
        """Store a log file as an object (a missing file: an empty log); its digest goes in the
        manifest's `log`."""
        try:
            return self.ingest(path, move=move).digest
        except FileNotFoundError:
            return self.put_object(b"")

    def _store_file(self, src: str, digest: str, move: bool, touched: set[str]) -> None:
        if self.verify(digest):
            return  # stored already (deduplicated)
        final = self.object_path(digest)
        if move and self._claim(src) and self._commit(src, False, final, digest, touched):
            return
        # copied: not moving, or the rename failed (another device, a read-only folder …)
        self._commit(self._copy_in(src, final), True, final, digest, touched)

    def _store_bytes(self, data: bytes, digest: str, touched: set[str]) -> None:
        if self.verify(digest):
            return
        final = self.object_path(digest)
        self._folder(str(final.parent))
        staged = temp_sibling(str(final))
        atomic_write(Path(staged), data, mode=0o444)  # durable; renamed to its name under the lock
        self._commit(staged, True, final, digest, touched)

    def _claim(self, src: str) -> bool:
        """Prepare a scratch file to become an object by rename: read-only and durable.

        A file with other links (say, a hardlinked input) is never taken: chmod would change
        the other names too."""
        st = os.lstat(src)
        if st.st_nlink != 1 or st.st_dev != self._objects_device():
            return False
        try:
            os.chmod(src, 0o444)
            fsync_file(src)
        except OSError:
            return False
        return True

    def _objects_device(self) -> int:
        if self._device is None:
            self.objects.mkdir(parents=True, exist_ok=True)
            self._device = os.stat(self.objects).st_dev
        return self._device

    def _copy_in(self, src: str, final: Path) -> str:
        self._folder(str(final.parent))
        staged = temp_sibling(str(final))
        try:
            copy_file(src, staged, 0o444, self._reflinker)
            faults.point("object-copied")  # bytes copied, not yet fsynced nor renamed
            fsync_file(staged)
        except BaseException:
            remove_path(staged)
            raise
        return staged

    def _commit(self, staged: str, owned: bool, final: Path, digest: str, touched: set[str]) -> bool:
        """Rename a durable staged file (`owned`: our temporary) to its object name, unless
        another thread stored the object first; False if the rename is impossible."""
        with self._lock:
            if self.verify(digest):
                if owned:
                    os.unlink(staged)
                return True
            folder = self._folder(str(final.parent))
            try:
                os.replace(staged, final)
            except OSError:
                if owned:
                    os.unlink(staged)
                    raise
                return False
            self._records.remember_stat(str(final), os.lstat(final), digest, time.time_ns())
            touched.add(folder)
            if self._is_fresh(folder):  # its own entry in objects/ must be durable too
                touched.add(str(self.objects))
        return True

    def _folder(self, folder: str) -> str:
        """Make a prefix folder exist: one mkdir per folder and process, not one per object.

        A folder we create goes into `_fresh` until `_synced` fsyncs its parent: the object
        renamed into it is durable only once the folder's own name is."""
        with self._folders_lock:
            if folder in self._folders:
                return folder
            try:
                os.mkdir(folder)
                self._fresh.add(folder)
            except FileExistsError:
                pass
            except FileNotFoundError:  # objects/ or runs/ itself is new
                os.makedirs(folder, exist_ok=True)
                self._fresh.add(folder)
            self._folders.add(folder)
        return folder

    def _is_fresh(self, folder: str) -> bool:
        with self._folders_lock:
            return folder in self._fresh

    def _synced(self, folders: set[str]) -> None:
        """fsync `folders`, parents last; then no folder below a synced parent is fresh."""
        for folder in sorted(folders, key=len, reverse=True):
            fsync_dir(Path(folder))
        with self._folders_lock:
            self._fresh.difference_update([f for f in self._fresh if os.path.dirname(f) in folders])

    # ------------------------------------------------------------ manifests
    def manifest_path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a cache key (lowercase hex)")
        return self.runs / key[:2] / f"{key}.json"

    def has_manifest(self, key: str) -> bool:
        return self.manifest_path(key).is_file()

    def put_manifest(self, key: str, manifest: Mapping[str, Any]) -> None:
        """Write the manifest last: only after every object it names is stored and durable."""
        missing = [d for d in sorted(manifest_objects(manifest)) if not os.path.isfile(self._object(d))]
        if missing:
            raise ValueError(f"manifest {key[:12]}… names objects not in the cache: {missing[:3]}")
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        path = self.manifest_path(key)
        folder = self._folder(str(path.parent))
        atomic_write(path, data.encode("utf-8"), durable=True)  # fsyncs the file and runs/ab
        if self._is_fresh(folder):
            self._synced({str(self.runs)})
        self._flush_records()

    def _flush_records(self) -> None:
        """Write the objects' stat records at most every `_FLUSH_EVERY_S` (and at close): one
        sqlite transaction per stage cost more than its fsyncs. A record lost to a crash costs
        one re-hash of that object when it is next verified."""
        now = time.monotonic()
        if now - self._flushed >= _FLUSH_EVERY_S:
            self._flushed = now
            self._records.flush()

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

    def _refresh_unlinked(self, unlinked: list[os.stat_result]) -> None:
        """Re-record objects whose ctime changed because we unlinked a workspace hardlink
        to them — only those whose record matched the inode's stat right before."""
        if unlinked:
            self._records.preload(self.objects)
        for st in unlinked:
            found = self._records.find_by_stat(st)
            if found is not None:
                path, digest = found
                self._records.remember_stat(path, os.lstat(path), digest)

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
