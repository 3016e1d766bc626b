"""A store in memory (`stores.base.Store`), for the engine's tests and as the model of a store.

Objects are bytes in a dict, manifests JSON-shaped dicts (copied in and out, as a real store
would serialise them). `ingest` reads an output the way the local cache does — the same
records, the same refusal of symlinks leading out of an output — and `materialise` writes
real files, so the engine runs on it in a temporary folder with the fake executor:

    store = MemoryStore(tmp_path)
    engine = Engine(Workspace(tmp_path), spec, Graph(spec), FakeExecutor(), reporter, Options(), store=store)

`lose(digest)` drops an object, as a damaged cache would.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from buildgraph.stores.base import OutputRecord, RecordLike
from buildgraph.stores.link import LinkMode, remove_path, swap_into_place, temp_sibling
from buildgraph.stores.outputs import manifest_objects, record_objects, scan_output
from buildgraph.stores.tree import LINK_MODE, Digest


class MemoryStore:
    def __init__(self, root: Path | str = ".") -> None:
        self.root = Path(root)  # only where a full disk would be reported: nothing is written there
        self.objects: dict[str, bytes] = {}
        self.manifests: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # engine workers store outputs at once

    # ------------------------------------------------------------ manifests
    def has_manifest(self, key: str) -> bool:
        return key in self.manifests

    def get_manifest(self, key: str, verify: bool = True) -> dict[str, Any] | None:
        with self._lock:
            found = self.manifests.get(key)
        if found is None or (verify and not all(map(self.has_object, manifest_objects(found)))):
            return None
        return copy.deepcopy(found)

    def put_manifest(self, key: str, manifest: Mapping[str, Any]) -> None:
        self.put_manifests({key: manifest})

    def put_manifests(self, manifests: Mapping[str, Mapping[str, Any]]) -> None:
        for key, manifest in manifests.items():  # checked first: a refused batch records none
            missing = sorted(d for d in manifest_objects(manifest) if not self.has_object(d))
            if missing:
                raise ValueError(f"manifest {key[:12]}… names objects not in the store: {missing[:3]}")
        with self._lock:
            for key, manifest in manifests.items():
                self.manifests[key] = copy.deepcopy(dict(manifest))

    # ------------------------------------------------------------ objects
    def has_object(self, digest: str) -> bool:
        with self._lock:
            return digest in self.objects

    def open_object(self, digest: str) -> BinaryIO:
        with self._lock:
            data = self.objects.get(digest)
        if data is None:
            raise FileNotFoundError(f"object {digest[:12]}… is not in the store")
        return io.BytesIO(data)

    def _data(self, digest: str) -> bytes:
        with self._lock:
            return self.objects[digest]

    def put_object(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.objects.setdefault(digest, bytes(data))
        return digest

    def lose(self, digest: str) -> None:
        with self._lock:
            del self.objects[digest]

    # ------------------------------------------------------------ outputs
    def ingest(self, path: Path) -> OutputRecord:
        src = os.path.abspath(path)
        record = scan_output(src, os.fspath(path))  # the local cache's record, and its refusals
        if record.kind == "file":
            self._put_file(src)
        for entry in record.tree:
            item = os.path.join(src, entry.relpath)
            if entry.mode == LINK_MODE:
                self.put_object(os.fsencode(os.readlink(item)))
            else:
                self._put_file(item)
        return record

    def put_log(self, path: Path) -> str:
        try:
            return self._put_file(os.fspath(path))
        except FileNotFoundError:
            return self.put_object(b"")

    def materialise(self, record: RecordLike, dest: Path, link: LinkMode = "auto") -> None:
        """Written as copies whatever `link` says: there is nothing to link to."""
        found = record if isinstance(record, Digest) else Digest.from_dict(record)
        missing = sorted(d for d in record_objects(found) if not self.has_object(d))
        if missing:
            raise FileNotFoundError(f"object {missing[0][:12]}… is not in the store")
        target = os.path.abspath(dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        built = temp_sibling(target)
        try:
            self._build(found, built)
            swap_into_place(built, target)
        except BaseException:
            remove_path(built)
            raise

    def close(self) -> None:
        pass

    def _put_file(self, path: str) -> str:
        with open(path, "rb") as f:
            return self.put_object(f.read())

    def _build(self, record: OutputRecord, built: str) -> None:
        if record.kind == "file":
            self._write(record.digest, built, 0o644)
            return
        if record.kind == "link":
            os.symlink(os.fsdecode(self._data(record.digest)), built)
            return
        os.mkdir(built)
        for entry in record.tree:
            path = os.path.join(built, entry.relpath)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if entry.mode == LINK_MODE:
                os.symlink(os.fsdecode(self._data(entry.digest)), path)
            else:
                self._write(entry.digest, path, entry.mode)

    def _write(self, digest: str, path: str, mode: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(self._data(digest))
