"""The store protocol (buildgraph/stores/base.py), the same tests for every store: the local
cache and the memory store (a remote one will join them)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildgraph.stores.base import Store
from buildgraph.stores.cache import ArtefactCache, UnsafeOutput
from buildgraph.stores.fake import MemoryStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = ArtefactCache(tmp_path / "cache") if request.param == "local" else MemoryStore(tmp_path)
    yield made
    made.close()


def manifest(outputs: dict[str, Any], log: str) -> dict[str, Any]:
    return {"key": "ab" * 32, "stage": "s", "material": {}, "outputs": outputs, "log": log}


def tree(root: Path) -> Path:
    (root / "out" / "sub").mkdir(parents=True)
    (root / "out" / "sub" / "a.txt").write_text("a\n")
    tool = root / "out" / "run.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.symlink("sub/a.txt", root / "out" / "link")
    return root / "out"


def test_objects_are_stored_by_digest_once(store: Store) -> None:
    digest = store.put_object(b"bytes")
    assert digest == hashlib.sha256(b"bytes").hexdigest()
    assert store.put_object(b"bytes") == digest and store.has_object(digest)
    with store.open_object(digest) as f:
        assert f.read() == b"bytes"
    assert not store.has_object("0" * 64)
    with pytest.raises(FileNotFoundError):
        store.open_object("0" * 64)


def test_an_output_goes_in_and_comes_back_out(store: Store, tmp_path: Path) -> None:
    record = store.ingest(tree(tmp_path / "run"))
    assert record.kind == "dir" and {e.relpath for e in record.tree} == {"sub/a.txt", "run.sh", "link"}
    dest = tmp_path / "workspace" / "out"
    store.materialise(record.as_dict(), dest, "copy")
    assert (dest / "sub" / "a.txt").read_text() == "a\n"
    assert os.access(dest / "run.sh", os.X_OK) and os.readlink(dest / "link") == "sub/a.txt"
    (tmp_path / "one.txt").write_text("1\n")
    single = store.ingest(tmp_path / "one.txt")
    store.materialise(single, dest, "copy")  # replaces the tree at once
    assert dest.read_text() == "1\n"


def test_a_manifest_is_found_only_while_its_objects_are(store: Store, tmp_path: Path) -> None:
    (tmp_path / "o.txt").write_text("o\n")
    record = store.ingest(tmp_path / "o.txt").as_dict()
    log = store.put_log(tmp_path / "no-such.log")  # a silent command: the empty log
    assert log == hashlib.sha256(b"").hexdigest()
    key = "ab" * 32
    assert not store.has_manifest(key) and store.get_manifest(key) is None
    store.put_manifest(key, manifest({"o.txt": record}, log))
    assert store.has_manifest(key)
    assert store.get_manifest(key) == manifest({"o.txt": record}, log)
    with pytest.raises(ValueError, match="objects not in"):
        store.put_manifest("cd" * 32, manifest({"o.txt": {**record, "digest": "0" * 64}}, log))


def test_a_symlink_leading_out_of_an_output_is_refused(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "secret").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeOutput, match="a symlink to /etc/passwd"):
        store.ingest(out)
    assert not store.has_object(hashlib.sha256(b"/etc/passwd").hexdigest())


def test_the_memory_store_loses_an_object_as_a_damaged_cache_would(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    (tmp_path / "o.txt").write_text("o\n")
    record = store.ingest(tmp_path / "o.txt").as_dict()
    store.put_manifest("ab" * 32, manifest({"o.txt": record}, store.put_object(b"")))
    store.lose(record["digest"])
    assert store.get_manifest("ab" * 32) is None
    assert store.get_manifest("ab" * 32, verify=False) is not None
    with pytest.raises(FileNotFoundError):
        store.materialise(record, tmp_path / "back.txt")
    assert not (tmp_path / "back.txt").exists()
