"""Objects: the bytes of stored outputs, by digest, each with a stat record that proves it intact.

    <root>/objects/ab/cdef…      bytes by digest (a symlink is stored as its target string),
                                 chmod 0o444, never half-written under its final name
    <root>/objects.db            stat record of each object (a DigestCache): verify is one stat

`ObjectStore` is the objects half of the artefact cache (`stores.cache.ArtefactCache` adds
the run manifests, restoring and gc to it). `ingest` takes an output's files as objects by
rename where it may move them and each is alone on the objects' filesystem (`_claim`: made
read-only first), and copies them (a clone where the filesystem can) otherwise; either way
an object never appears half-written under its name (a process killed mid-copy leaves a
temporary).

Durability is a group commit, not an fsync per object: what `ingest` and `put_object` store
is listed as unsynced until `sync` makes all of it durable at once (an fsync per file and
folder, or one `syncfs` for many). The cache syncs before a manifest is renamed
into place (`ArtefactCache.put_manifests`), so a manifest never names an object a power cut
could take away; an object no manifest names yet is worth nothing, so losing it costs nothing.

Integrity before use: `verify(digest)` compares the object's lstat (inode, size, mtime_ns,
ctime_ns) with the record written when it was stored; on any difference the object is hashed
again, and deleted (with a warning) if its bytes are wrong, so its stage reruns. ctime catches a
root edit through a workspace hardlink even when mtime was restored. Our own link and unlink
operations also change ctime: the record is refreshed after them, but only when it matched
just before, so that refresh never blesses bytes we did not see.

Concurrency: threads of one process may ingest and materialise at once (the decision to
place an object is taken under a lock; hashing and copying run outside it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import BinaryIO

from buildgraph import faults
from buildgraph.atomic import fsync_dir, fsync_file, sync_filesystem, write_aside
from buildgraph.errors import EnvironmentProblem
from buildgraph.stores.base import OutputRecord
from buildgraph.stores.digests import DigestCache, HashStats, warn_stderr
from buildgraph.stores.link import Reflinker, copy_file, remove_path, temp_sibling
from buildgraph.stores.outputs import scan_output
from buildgraph.stores.statdb import Warn
from buildgraph.stores.tree import LINK_MODE

_DIGEST = re.compile(r"[0-9a-f]{64}")
_FLUSH_EVERY_S = 1.0
_SYNCFS_FROM = 48  # paths to sync from which one syncfs is cheaper than their fsyncs (~0.1–0.3 ms each)


class CorruptObject(EnvironmentProblem):
    """An object a manifest needs is missing or damaged (it has been removed)."""


class ObjectStore:
    """Objects under `<root>/objects`, their stat records in `<root>/objects.db` (module doc)."""

    def __init__(self, root: Path, on_warning: Warn | None = None, full_is_error: bool = True) -> None:
        self.root = Path(os.path.abspath(root))  # object records are keyed by absolute path
        self.objects = self.root / "objects"
        self._objects_prefix = f"{self.objects}/"
        self._warn = on_warning or warn_stderr
        self._records = DigestCache(
            self.root / "objects.db", racy_window_ns=0, on_warning=self._warn, full_is_error=full_is_error
        )
        self._lock = threading.Lock()
        self._reflinker = Reflinker()
        self._device: int | None = None
        self._folders: set[str] = set()  # prefix folders (objects/ab, runs/ab) known to exist
        self._folders_lock = threading.Lock()
        # files and folders written since the last `sync`: what it must make durable
        self._unsynced: set[str] = set()
        self._unsynced_lock = threading.Lock()
        self._flushed = time.monotonic()

    def close(self) -> None:
        try:
            self.sync()  # what was stored is durable once the store is closed
        finally:
            self._records.close()

    @property
    def stats(self) -> HashStats:
        """Objects re-hashed by `verify` because their stat record did not prove them intact."""
        return self._records.stats

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
        self._store_bytes(data, digest)
        return digest

    # ------------------------------------------------------------ storing
    def ingest(self, path: Path, move: bool = True) -> OutputRecord:
        """Store a run's output (file or directory); `move` takes the files (zero copy) where
        they are alone on the same filesystem, and copies otherwise. Raises UnsafeOutput, having
        stored nothing, for a symlink (see `scan_output`)."""
        src = os.path.abspath(path)
        record = scan_output(src, os.fspath(path))
        self._store_record(src, record, move)
        return record

    def _store_record(self, src: str, record: OutputRecord, move: bool) -> None:
        if record.kind == "file":
            self._store_file(src, record.digest, move)
        for entry in record.tree:
            item = os.path.join(src, entry.relpath)
            if entry.mode == LINK_MODE:
                self._store_bytes(os.fsencode(os.readlink(item)), entry.digest)
            else:
                self._store_file(item, entry.digest, move)

    def put_log(self, path: Path, move: bool = False) -> str:
        """Store a log file as an object (a missing file: an empty log); its digest goes in the
        manifest's `log`."""
        try:
            return self.ingest(path, move=move).digest
        except FileNotFoundError:
            return self.put_object(b"")

    def _store_file(self, src: str, digest: str, move: bool) -> None:
        if self.verify(digest):
            return  # stored already (deduplicated)
        final = self.object_path(digest)
        if move and self._claim(src) and self._commit(src, False, final, digest):
            return
        # copied: not moving, or the rename failed (another device, a read-only folder …)
        self._commit(self._copy_in(src, final), True, final, digest)

    def _store_bytes(self, data: bytes, digest: str) -> None:
        if self.verify(digest):
            return
        final = self.object_path(digest)
        self._folder(str(final.parent))
        staged = write_aside(final, data, mode=0o444)  # renamed to its name under the lock
        self._commit(str(staged), True, final, digest)

    def _claim(self, src: str) -> bool:
        """Prepare a scratch file to become an object by rename: read-only.

        A file with other links (say, a hardlinked input) is never taken: chmod would change
        the other names too."""
        st = os.lstat(src)
        if st.st_nlink != 1 or st.st_dev != self._objects_device():
            return False
        try:
            os.chmod(src, 0o444)
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
            faults.point("object-copied")  # bytes copied, not yet renamed
        except BaseException:
            remove_path(staged)
            raise
        return staged

    def _commit(self, staged: str, owned: bool, final: Path, digest: str) -> bool:
        """Rename a staged file (`owned`: our temporary) to its object name, unless another
        thread stored the object first; False if the rename is impossible."""
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
            self._written(str(final), folder)
        return True

    # ------------------------------------------------------------ prefix folders
    def _folder(self, folder: str) -> str:
        """Make a prefix folder exist: one mkdir per folder and process, not one per object.
        A folder we create is unsynced, and so is its parent (which gained its name)."""
        with self._folders_lock:
            if folder in self._folders:
                return folder
            try:
                os.mkdir(folder)
                created = True
            except FileExistsError:
                created = False
            except FileNotFoundError:  # objects/ or runs/ itself is new
                os.makedirs(folder, exist_ok=True)
                created = True
            self._folders.add(folder)
        if created:
            parent = os.path.dirname(folder)
            self._written(folder, parent, os.path.dirname(parent))
        return folder

    # ------------------------------------------------------------ durability
    def _written(self, *paths: str) -> None:
        """`paths` (files, folders whose entries changed) are not durable until `sync`."""
        with self._unsynced_lock:
            self._unsynced.update(paths)

    def sync(self) -> None:
        """Make everything stored so far durable: an fsync of each file and folder written,
        folders deepest first, or for many of them one `syncfs` of the store's filesystem
        (which also waits for other programs' writes there: not worth it for a few files)."""
        with self._unsynced_lock:
            pending, self._unsynced = self._unsynced, set()
        if not pending:
            return
        try:
            faults.point("before-sync")
            if len(pending) < _SYNCFS_FROM or not sync_filesystem(self.root):
                for path in sorted(pending, key=lambda p: (-p.count("/"), p)):
                    with contextlib.suppress(FileNotFoundError):  # gone since (gc, a corrupt object)
                        (fsync_dir if os.path.isdir(path) else fsync_file)(path)  # type: ignore[operator]
        except BaseException:
            self._written(*pending)  # not durable: the next sync tries again
            raise

    # ------------------------------------------------------------ stat records
    def _flush_records(self) -> None:
        """Write the objects' stat records at most every `_FLUSH_EVERY_S` (and at close): one
        sqlite transaction per stage cost more than its fsyncs. A record lost to a crash costs
        one re-hash of that object when it is next verified."""
        now = time.monotonic()
        if now - self._flushed >= _FLUSH_EVERY_S:
            self._flushed = now
            self._records.flush()

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
