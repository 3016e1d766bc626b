"""The speed-ups that skip work, each checked to skip it only when the result cannot differ:
the cached Buildfile analysis, the lock fold with no journal, silent commands' logs, the
artefact cache's prefix folders and missing logs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from buildgraph import buildfile
from buildgraph.buildfile import load_graph
from buildgraph.core import parse
from buildgraph.errors import BuildfileError
from buildgraph.executors.base import Job
from buildgraph.executors.local import LocalExecutor
from buildgraph.lockfile import Journal, Lock, fold
from buildgraph.stores.cache import ArtefactCache


# ---------------------------------------------------------------- Buildfile cache
def big_buildfile(stages: int = 200, command: str = "cp in.txt {out}") -> str:
    lines = ['[project]\nname = "big"\n\n[params]\nn = 1\n']
    for i in range(stages):
        lines.append(f'[stages.s{i}]\ncommand = "{command.format(out=f"o{i}")} ${{params.n}}"\n')
        lines.append(f'inputs = ["in.txt"]\noutputs = ["o{i}"]\n')
    return "\n".join(lines)


@pytest.fixture
def big(tmp_path: Path) -> Path:
    (tmp_path / "in.txt").write_text("x\n")
    (tmp_path / "Buildfile.toml").write_text(big_buildfile())
    (tmp_path / ".bg").mkdir()
    return tmp_path


def test_a_buildfile_is_parsed_once_then_loaded(big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, graph = load_graph(big)
    assert (big / buildfile._SPEC_CACHE).is_file()
    monkeypatch.setattr(parse, "analyse", lambda *a, **k: pytest.fail("parsed again"))
    again, again_graph = load_graph(big)
    assert again == spec and again_graph.order() == graph.order()


@pytest.mark.parametrize("change", ["text", "param", "damaged"])
def test_the_cache_is_not_used_for_other_input(big: Path, change: str) -> None:
    load_graph(big)
    params = None
    if change == "text":
        (big / "Buildfile.toml").write_text(big_buildfile(command="cat in.txt > {out}"))
    elif change == "param":
        params = {"n": "2"}
    else:
        cache = big / buildfile._SPEC_CACHE
        cache.write_bytes(cache.read_bytes()[:200])  # its key line intact, the pickle cut short
    spec, _ = load_graph(big, params=params)
    expected = "cat in.txt > o0 1" if change == "text" else "cp in.txt o0 2" if params else "cp in.txt o0 1"
    assert spec.stages["s0"].command == expected


def test_filesystem_problems_are_checked_even_with_the_cache(big: Path) -> None:
    load_graph(big)
    (big / "in.txt").unlink()
    with pytest.raises(BuildfileError, match="in.txt"):
        load_graph(big)


# ---------------------------------------------------------------- lock fold
def test_fold_without_a_journal_does_not_rewrite_the_lock(tmp_path: Path) -> None:
    lock_path, journal = tmp_path / "Buildfile.lock", tmp_path / ".bg" / "journal.jsonl"
    lock_path.write_text(json.dumps({"version": 1, "stages": {"a": {"key": "1"}}}))  # not our layout
    before = lock_path.stat()
    lock = fold(lock_path, journal, keep={"a", "b"})
    assert dict(lock.stages) == {"a": {"key": "1"}}
    after = lock_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_fold_still_drops_removed_stages_and_applies_the_journal(tmp_path: Path) -> None:
    lock_path, journal = tmp_path / "Buildfile.lock", tmp_path / ".bg" / "journal.jsonl"
    Lock({"a": {"key": "1"}, "gone": {"key": "2"}}).save(lock_path)
    assert set(fold(lock_path, journal, keep={"a"}).stages) == {"a"}
    with Journal(journal) as j:
        j.record("a", {"key": "3"})
    assert fold(lock_path, journal, keep={"a"}).get("a") == {"key": "3"}
    assert Lock.load(lock_path).get("a") == {"key": "3"} and not journal.exists()


def test_conflict_markers_are_found_at_any_line_start(tmp_path: Path) -> None:
    lock_path = tmp_path / "Buildfile.lock"
    lock_path.write_text('{\n  "version": 1,\n<<<<<<< HEAD\n  "stages": {}\n}\n')
    with pytest.raises(Exception, match="merge conflict"):
        Lock.load(lock_path)


# ---------------------------------------------------------------- logs of silent commands
def job(tmp_path: Path, command: str, scratch: str = "scratch") -> Job:
    return Job("s", "run-1", command, (), ("out.txt",), tmp_path / scratch, tmp_path / "logs" / "s.log")


def test_a_silent_command_makes_no_log_file_and_empties_an_old_one(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        result = executor.run(job(tmp_path, "echo x > out.txt"))
        assert result.ok and not result.log_path.exists()
        result.log_path.write_text("an old run's log\n")
        result = executor.run(job(tmp_path, "echo x > out.txt", scratch="scratch2"))
        assert result.ok and result.log_path.read_text() == ""
    finally:
        executor.close()


def test_a_silent_failure_leaves_its_log(tmp_path: Path) -> None:
    executor = LocalExecutor()
    try:
        result = executor.run(job(tmp_path, "exit 3"))
        assert result.exit_status == 3 and result.log_path.read_text() == ""
    finally:
        executor.close()


# ---------------------------------------------------------------- artefact cache
def test_a_missing_log_is_stored_as_the_empty_log(tmp_path: Path) -> None:
    with ArtefactCache(tmp_path / "cache") as cache:
        digest = cache.put_log(tmp_path / "never-written.log")
        assert digest == hashlib.sha256(b"").hexdigest()
        assert cache.object_path(digest).read_bytes() == b"" and cache.verify(digest)


def test_objects_land_in_prefix_folders_made_once(tmp_path: Path) -> None:
    with ArtefactCache(tmp_path / "cache") as cache:
        for i in range(40):
            (tmp_path / f"f{i}").write_bytes(str(i).encode())
            record = cache.ingest(tmp_path / f"f{i}")
            assert cache.object_path(record.digest).read_bytes() == str(i).encode()
        folders = os.listdir(tmp_path / "cache" / "objects")
        assert all(len(f) == 2 for f in folders) and len(folders) == len(set(folders))
        objects = str(tmp_path / "cache" / "objects")
        assert {objects, *(f"{objects}/{f}" for f in folders)} <= cache._unsynced, "new folders, to sync"
        cache.sync()
        assert cache._unsynced == set(), "every new folder's own entry was made durable"
