"""Group commit: one sync for a batch's objects and manifests, renames after it, then one journal write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import buildgraph.stores.objects as objects_module
from buildgraph.engine.commit import GroupCommit, Record
from buildgraph.lockfile import Journal, read_journal
from buildgraph.stores.cache import ArtefactCache

MISSING = "ee" * 32  # an object never stored


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ArtefactCache]:
    with ArtefactCache(tmp_path / "cache") as found:
        yield found


def key(n: int) -> str:
    return f"{n:02x}" * 32  # each in a prefix folder of its own


def manifest(log: str, stage: str = "train") -> dict[str, Any]:
    return {"outputs": {}, "log": log, "stage": stage}


def temps(cache: ArtefactCache) -> list[Path]:
    return sorted(cache.runs.glob("*/.*.tmp-*")) if cache.runs.is_dir() else []


def in_place(cache: ArtefactCache, *keys: str) -> list[str]:
    return [k for k in keys if cache.manifest_path(k).is_file()]


# ---------------------------------------------------------------- ObjectStore.sync
def test_an_ingested_object_its_folder_and_objects_are_unsynced_until_sync(
    cache: ArtefactCache, tmp_path: Path
) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    digest = cache.ingest(tmp_path / "model.bin").digest
    path = cache.object_path(digest)
    assert {str(path), str(path.parent), str(cache.objects)} <= cache._unsynced
    cache.sync()
    assert cache._unsynced == set()


def test_without_syncfs_each_pending_path_is_fsynced_deepest_first(
    cache: ArtefactCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(objects_module, "sync_filesystem", lambda path: False)
    monkeypatch.setattr(objects_module, "fsync_file", lambda path: calls.append(str(path)))
    monkeypatch.setattr(objects_module, "fsync_dir", lambda path: calls.append(str(path)))
    (tmp_path / "model.bin").write_bytes(b"weights")
    path = cache.object_path(cache.ingest(tmp_path / "model.bin").digest)
    pending = set(cache._unsynced)
    cache.sync()
    assert sorted(calls) == sorted(pending) and len(calls) == len(pending), "each pending path, once"
    assert calls.index(str(path)) < calls.index(str(path.parent)) < calls.index(str(cache.objects))
    assert cache._unsynced == set()


def test_a_large_batch_is_one_syncfs_and_no_fsync(
    cache: ArtefactCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(objects_module, "_SYNCFS_FROM", 2)  # this batch counts as large
    monkeypatch.setattr(
        objects_module, "sync_filesystem", lambda path: calls.append(f"syncfs {path}") or True
    )
    monkeypatch.setattr(objects_module, "fsync_file", lambda path: calls.append(str(path)))
    monkeypatch.setattr(objects_module, "fsync_dir", lambda path: calls.append(str(path)))
    cache.put_object(b"weights")
    cache.sync()
    assert calls == [f"syncfs {cache.root}"] and cache._unsynced == set()


# ---------------------------------------------------------------- ArtefactCache.put_manifests
def test_manifests_are_synced_aside_then_renamed_then_synced_again(
    cache: ArtefactCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = cache.put_object(b"log")
    keys = [key(1), key(2)]
    seen: list[tuple[list[str], int]] = []
    real_sync = cache.sync

    def sync() -> None:
        seen.append((in_place(cache, *keys), len(temps(cache))))
        real_sync()

    monkeypatch.setattr(cache, "sync", sync)
    cache.put_manifests({k: manifest(log) for k in keys})
    assert seen == [([], 2), (keys, 0)], "first sync: both aside, none in place; second: both in place"
    assert cache.get_manifest(key(2)) == manifest(log)


def test_a_batch_naming_a_missing_object_records_nothing(cache: ArtefactCache) -> None:
    log = cache.put_object(b"log")
    with pytest.raises(ValueError, match="names objects not in the cache"):
        cache.put_manifests({key(1): manifest(log), key(2): manifest(MISSING)})
    assert in_place(cache, key(1), key(2)) == []
    assert temps(cache) == [], "the first manifest, written aside, is removed"


def test_a_failed_sync_leaves_no_manifest_and_keeps_the_paths_unsynced(
    cache: ArtefactCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    digest = cache.ingest(tmp_path / "model.bin").digest
    objects = {str(cache.object_path(digest)), str(cache.object_path(digest).parent)}

    def broken(path: object) -> None:
        raise OSError(5, "Input/output error")

    for name in ("sync_filesystem", "fsync_file", "fsync_dir"):  # whichever way it syncs
        monkeypatch.setattr(objects_module, name, broken)
    with pytest.raises(OSError, match="Input/output"):
        cache.put_manifests({key(1): {"outputs": {}, "log": digest}})
    assert in_place(cache, key(1)) == [] and temps(cache) == []
    assert objects <= cache._unsynced, "not durable: the next sync tries again"
    monkeypatch.undo()
    cache.put_manifests({key(1): {"outputs": {}, "log": digest}})
    assert in_place(cache, key(1)) == [key(1)] and cache._unsynced == set()


# ---------------------------------------------------------------- GroupCommit
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.jsonl") as found:
        yield found


def test_a_batch_is_due_once_its_window_has_passed(cache: ArtefactCache, journal: Journal) -> None:
    clock = Clock()
    commits = GroupCommit(cache, journal, window=0.25, clock=clock)
    assert not commits.due() and not commits.holds(["a"])
    commits.add(Record("a", key(1), manifest(cache.put_object(b"a")), {"key": key(1)}), "then-a")
    clock.now += 0.2
    commits.add(Record("b", key(2), manifest(cache.put_object(b"b")), {"key": key(2)}), "then-b")
    assert not commits.due(), "the window runs from the batch's first record"
    clock.now += 0.05
    assert commits.due() and commits.pending == 2
    assert commits.holds(["x", "b"]) and not commits.holds(["x", "c"])


def test_a_commit_journals_the_locked_records_and_returns_the_thens_in_order(
    cache: ArtefactCache, journal: Journal
) -> None:
    commits = GroupCommit(cache, journal, clock=Clock())
    for n, (stage, entry) in enumerate([("a", {"key": key(1)}), ("c", None), ("b", {"key": key(3)})], 1):
        commits.add(Record(stage, key(n), manifest(cache.put_object(stage.encode()), stage), entry), stage)
    assert commits.commit() == ["a", "c", "b"]
    assert in_place(cache, key(1), key(2), key(3)) == [key(1), key(2), key(3)], "all three cached"
    assert list(read_journal(journal.path)) == [("a", {"key": key(1)}), ("b", {"key": key(3)})]
    assert commits.pending == 0 and not commits.holds(["a"]) and not commits.due()
    assert commits.commit() == [], "nothing pending: nothing written"


def test_a_refused_batch_journals_nothing_and_is_emptied(cache: ArtefactCache, journal: Journal) -> None:
    commits = GroupCommit(cache, journal, clock=Clock())
    commits.add(Record("a", key(1), manifest(cache.put_object(b"a")), {"key": key(1)}), "then-a")
    commits.add(Record("b", key(2), manifest(MISSING), {"key": key(2)}), "then-b")
    with pytest.raises(ValueError):
        commits.commit()
    assert list(read_journal(journal.path)) == [] and not os.path.exists(journal.path)
    assert in_place(cache, key(1), key(2)) == []
    assert commits.pending == 0 and not commits.holds(["a", "b"])
