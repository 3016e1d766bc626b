"""Buildfile.lock and its journal: deterministic bytes, crash recovery, one write per run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from buildgraph.errors import EnvironmentProblem
from buildgraph.lockfile import Journal, Lock, fold, read_journal


def entry(n: int) -> dict[str, object]:
    return {"key": f"{n:064x}", "outputs": {"model.pt": {"digest": "ab" * 32, "kind": "file", "size": n}}}


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "Buildfile.lock", tmp_path / ".bg" / "journal.jsonl"


# ---------------------------------------------------------------- the lock
def test_missing_lock_is_empty_and_not_created(paths: tuple[Path, Path]) -> None:
    lock_path, _ = paths
    lock = Lock.load(lock_path)
    assert dict(lock.stages) == {} and lock.get("train") is None
    assert lock.save(lock_path) is False and not lock_path.exists()


def test_lock_bytes_are_deterministic_and_merge_friendly(paths: tuple[Path, Path]) -> None:
    lock_path, _ = paths
    Lock({"train": entry(2), "prepare": entry(1)}).save(lock_path)
    text = lock_path.read_text()
    assert text.endswith("}\n") and text.index('"prepare"') < text.index('"train"')
    document = {"version": 1, "stages": {"prepare": entry(1), "train": entry(2)}}
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert Lock.load(lock_path).get("train") == entry(2)
    inode = lock_path.stat().st_ino
    assert Lock({"prepare": entry(1), "train": entry(2)}).save(lock_path) is False
    assert lock_path.stat().st_ino == inode  # unchanged bytes: not rewritten


def test_stages_cannot_be_mutated_behind_the_lock(paths: tuple[Path, Path]) -> None:
    lock = Lock({"a": entry(1)})
    with pytest.raises(TypeError):
        lock.stages["b"] = entry(2)  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": 1, "stages": {', "Buildfile.lock:1:"),
        ("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n", "merge conflict"),
        ('{"version": 9, "stages": {}}', "newer than this bg"),
        ('{"stages": {}}', "not a bg lock file"),
        ('{"version": 1, "stages": {"train": 3}}', "`stages` must map"),
        ("[1, 2]", "not a bg lock file"),
    ],
)
def test_damaged_lock_is_an_environment_problem(paths: tuple[Path, Path], text: str, message: str) -> None:
    lock_path, _ = paths
    lock_path.write_text(text)
    with pytest.raises(EnvironmentProblem, match=message) as caught:
        Lock.load(lock_path)
    assert caught.value.exit_status == 3 and caught.value.hint


def test_lock_that_is_not_utf8(paths: tuple[Path, Path]) -> None:
    lock_path, _ = paths
    lock_path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(EnvironmentProblem, match="not UTF-8"):
        Lock.load(lock_path)


# ---------------------------------------------------------------- journal + fold
def test_fold_applies_the_journal_once(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    Lock({"old": entry(0), "gone": entry(9)}).save(lock_path)
    with Journal(journal_path) as journal:
        journal.record("train", entry(1))
        journal.record("train", entry(2))  # the last record of a stage wins
        journal.record("gone", None)
    lock = fold(lock_path, journal_path)
    assert dict(lock.stages) == {"old": entry(0), "train": entry(2)}
    assert Lock.load(lock_path).stages == lock.stages
    assert not journal_path.exists()


def test_fold_drops_stages_no_longer_declared(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    Lock({"kept": entry(1), "renamed": entry(2)}).save(lock_path)
    assert dict(fold(lock_path, journal_path, keep={"kept"}).stages) == {"kept": entry(1)}
    assert "renamed" not in lock_path.read_text()


def test_fold_without_changes_does_not_rewrite(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    Lock({"train": entry(1)}).save(lock_path)
    inode = lock_path.stat().st_ino
    with Journal(journal_path) as journal:
        journal.record("train", entry(1))  # a restore that recorded the same entry
    fold(lock_path, journal_path)
    assert lock_path.stat().st_ino == inode and not journal_path.exists()


def test_crash_with_a_torn_last_line_loses_only_that_line(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    with Journal(journal_path) as journal:
        for n in range(5):
            journal.record(f"stage{n}", entry(n))
    with open(journal_path, "ab") as f:
        f.write(b'{"entry":{"key":"12')  # killed mid-write; no fold ran
    assert len(list(read_journal(journal_path))) == 5
    lock = fold(lock_path, journal_path)
    assert sorted(lock.stages) == [f"stage{n}" for n in range(5)]


def test_appending_after_a_torn_line_keeps_the_new_record(paths: tuple[Path, Path]) -> None:
    _, journal_path = paths
    journal_path.parent.mkdir()
    journal_path.write_bytes(b'{"stage":"a","entry":{}}\n{"stage":"b","en')
    with Journal(journal_path) as journal:
        journal.record("c", entry(3))
    assert [stage for stage, _ in read_journal(journal_path)] == ["a", "c"]


def test_journal_from_many_threads(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    journal = Journal(journal_path)

    def work(worker: int) -> None:
        for n in range(50):
            journal.record(f"w{worker}-{n}", entry(n))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    assert len(journal_path.read_bytes().splitlines()) == 400
    assert len(fold(lock_path, journal_path).stages) == 400


def test_sigkill_after_record_loses_nothing(paths: tuple[Path, Path]) -> None:
    lock_path, journal_path = paths
    child = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from buildgraph.lockfile import Journal\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "for n in range(20):\n"
        "    j.record(f's{n}', {'n': n})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(journal_path)], check=False)
    assert done.returncode == -signal.SIGKILL
    lock = fold(lock_path, journal_path)
    assert [lock.get(f"s{n}") for n in range(20)] == [{"n": n} for n in range(20)]
    assert os.path.exists(lock_path) and not journal_path.exists()


# ---------------------------------------------------------------- writing only what changed
def canonical(stages: dict[str, object]) -> str:
    return json.dumps({"version": 1, "stages": stages}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


ODD_ENTRIES: dict[str, object] = {
    'quote " and \\ back': {"key": "é ☃", "material": {"inputs": {'a,\n    "b': None}}},
    "empty": {},
    "nested": {"k": [1, 2.5, {"a": [], "b": {}}], "n": None, "t": True},
}


def folded_twice(paths: tuple[Path, Path], first: dict, then: dict) -> str:
    """The lock bytes after a fold of `first`, then a fold that journals `then` (None: removed)."""
    lock_path, journal_path = paths
    for records in (first, then):
        with Journal(journal_path) as journal:
            for stage, value in records.items():
                journal.record(stage, value)
        fold(lock_path, journal_path)
    return lock_path.read_text(encoding="utf-8")


def test_a_fold_rewrites_changed_entries_into_the_same_bytes(paths: tuple[Path, Path]) -> None:
    first = {f"s{n:03d}": entry(n) for n in range(50)} | ODD_ENTRIES
    then = {"s007": entry(700), "s031": None, "new ☃": entry(5), "empty": {"now": "full"}}
    text = folded_twice(paths, first, then)
    expected = {k: v for k, v in (first | then).items() if v is not None}
    assert text == canonical(expected)
    assert (paths[1].parent / "lock.sha256").read_text() == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("note", ["stale", "missing"])
def test_a_lock_not_written_by_bg_is_written_the_long_way(paths: tuple[Path, Path], note: str) -> None:
    lock_path, journal_path = paths
    folded_twice(paths, {"a": entry(1), "b": entry(2)}, {})
    lock_path.write_text(json.dumps({"version": 1, "stages": {"a": entry(1), "b": entry(2)}}))  # by hand
    known = journal_path.parent / "lock.sha256"
    if note == "missing":
        known.unlink()
    text = folded_twice(paths, {}, {"b": entry(3)})
    assert text == canonical({"a": entry(1), "b": entry(3)})


def test_a_lock_is_read_again_once_its_file_changed(paths: tuple[Path, Path]) -> None:
    lock_path, _ = paths

    def aged() -> None:  # old enough for a read to be kept
        old = time.time() - 60
        os.utime(lock_path, (old, old))

    Lock({"a": entry(1)}).save(lock_path)
    aged()
    assert Lock.load(lock_path).get("a") == entry(1)
    Lock({"a": entry(2)}).save(lock_path)  # another writer: a new file
    assert Lock.load(lock_path).get("a") == entry(2)
    aged()
    assert Lock.load(lock_path).get("a") == entry(2)
    text = lock_path.read_text(encoding="utf-8")
    with open(lock_path, "r+", encoding="utf-8") as f:  # in place, same size: its stat tells
        f.write(text.replace(f"{2:064x}", f"{3:064x}"))
    assert Lock.load(lock_path).get("a") == {**entry(2), "key": f"{3:064x}"}


def test_an_unchanged_lock_is_read_once(paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    lock_path, _ = paths
    Lock({"a": entry(1)}).save(lock_path)
    old = time.time() - 60
    os.utime(lock_path, (old, old))
    first = Lock.load(lock_path)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} read again"))
    again = Lock.load(lock_path)
    assert again.stages == first.stages and again is not first
