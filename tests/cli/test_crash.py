"""Ctrl-C, SIGKILL at every crash point (`BG_CRASH_AT`, see buildgraph/faults.py), and a corrupt cache.

After each: the next `bg run` succeeds and redoes exactly the interrupted stage, no partial
cache entry exists, and every stage completed before the crash is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Procs, Project

# `b` sleeps $NAP seconds (a host variable, so not part of its key) after writing its pid.
TWO_STAGES = """
[params]
pa = 2

[stages.a]
command = "echo a >> {ran}; echo a ${params.pa} > a.txt"
outputs = ["a.txt"]

[stages.b]
command = "echo b >> {ran}; echo $$ > {pid}; echo b-log-line; sleep $${NAP:-0}; (cat a.txt; echo b) > b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]
"""


@pytest.fixture
def two(project: Project) -> Project:
    project.stages(TWO_STAGES, pid=project.root.parent / "b.pid")
    return project


def pid_file(project: Project) -> Path:
    return project.root.parent / "b.pid"


def temporaries(project: Project) -> list[str]:
    """Hidden `*.tmp-*` files a killed writer left anywhere in the project."""
    return sorted(p.name for p in project.root.rglob(".*.tmp-*"))


# ---------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_kills_the_command_and_keeps_what_completed(
    two: Project, procs: Procs, sig: signal.Signals
) -> None:
    bg = two.spawn("run", "-j", "1", env={"NAP": "30"})
    pid = procs.wait_pid(pid_file(two))
    sent = time.monotonic()
    bg.send_signal(sig)
    try:
        _, err = bg.communicate(timeout=15)
        assert bg.returncode == 130 and time.monotonic() - sent < 15  # not the 30 s nap
        assert "interrupted" in err and "Traceback" not in err
        procs.wait_for(lambda: not procs.group_alive(pid), timeout=20, what="the command's group to die")
    except BaseException:
        procs.kill_group(pid)  # bg failed to: leave nothing running behind a failed test
        raise
    assert sorted(two.lock()) == ["a"], "a completed before Ctrl-C: it is recorded; b is not"
    assert [m["stage"] for m in two.manifests().values()] == ["a"]
    assert two.executed() == ["a", "b"]

    done = two.run_json()
    assert done.statuses == {"a": "skipped", "b": "done"}
    assert two.executed() == ["b"]
    two.assert_sound()


# ---------------------------------------------------------------- SIGKILL at crash points
def _crash(two: Project, point: str, b_finished: bool = False) -> tuple[dict[str, str], str]:
    """Leave a run of `a` under pa=1 and pa=2 in the cache, then SIGKILL bg at `point` in a run
    with pa=1 in which `a` is restored (and journaled) and `b` runs. Returns the keys planned."""
    two.bg("run", "-q", "a", "--param", "pa=1", check=0)
    two.bg("run", "-q", "a", check=0)
    assert two.executed() == ["a", "a"]
    keys = {stage: d["key"] for stage, d in two.status("--param", "pa=1").items()}
    point = point.replace("<b>", keys["b"])
    lock_before = (two.root / "Buildfile.lock").read_bytes()
    done = two.run_json("-j", "1", "--param", "pa=1", env={"BG_CRASH_AT": point}, check=-signal.SIGKILL)
    expected = {"a": "cached", "b": "done"} if b_finished else {"a": "cached"}
    assert done.statuses == expected, "the crash came after b started, and only then"
    assert two.executed() == ["b"]
    assert (two.root / "Buildfile.lock").read_bytes() == lock_before, "the lock is rewritten only whole"
    two.assert_sound()
    return keys, point


@pytest.mark.parametrize(
    ("point", "leftover"),
    [
        ("before-manifest", ""),  # b's objects stored, no manifest
        ("object-copied", "objects"),  # b's log half copied into the cache
        ("write:<b>.json", "runs"),  # half of b's manifest written
    ],
)
def test_killed_before_the_manifest_reruns_exactly_that_stage(
    two: Project, point: str, leftover: str
) -> None:
    keys, _ = _crash(two, point)
    assert keys["b"] not in two.manifests()
    strays = list((two.root / ".bg/cache").glob(f"{leftover}/*/.*.tmp-*")) if leftover else []
    assert bool(strays) == bool(leftover), "the crash left the partial file it was meant to"
    status = two.status("--param", "pa=1")
    assert status["a"]["action"] == "skip", "a's restore before the crash counts (journal)"
    assert status["b"]["action"] == "run"

    done = two.run_json("--param", "pa=1")
    assert done.statuses == {"a": "skipped", "b": "done"}
    assert two.executed() == ["b"]
    assert {s: e["key"] for s, e in two.lock().items()} == keys
    assert two.read("b.txt") == "a 1\nb\n"
    two.assert_sound()
    two.bg("gc", check=0)
    assert temporaries(two) == [] and list((two.root / ".bg/tmp").iterdir()) == []


# Two independent stages: with -j 1, x's record waits in the batch while y runs (no step reads
# x, so nothing commits it early), and the window is checked only right after each step is
# received: x is never due on its own (microseconds after it was added), so x and y are
# committed as one batch, when y is received or when the run ends. The tests count the
# staged manifests rather than trust that reasoning.
BATCH = """
[stages.x]
command = "echo x >> {ran}; echo x > x.txt"
outputs = ["x.txt"]

[stages.y]
command = "echo y >> {ran}; echo y > y.txt"
outputs = ["y.txt"]
"""


def _staged(project: Project) -> list[Path]:
    return sorted((project.root / ".bg/cache/runs").glob("*/.*.json.tmp-*"))


def _kill_in_the_group_commit(project: Project, point: str) -> None:
    project.stages(BATCH)
    done = project.run_json("-j", "1", env={"BG_CRASH_AT": point}, check=-signal.SIGKILL)
    assert done.statuses == {}, "a step is reported finished only once committed"
    assert sorted(project.executed()) == ["x", "y"]
    assert not (project.root / "Buildfile.lock").exists()
    journal = project.root / ".bg/journal.jsonl"
    assert not journal.exists() or journal.read_bytes() == b"", "nothing journalled"
    project.assert_sound()


@pytest.mark.parametrize("point", ["manifests-staged", "before-sync"])
def test_killed_before_a_batch_is_synced_reruns_its_steps(project: Project, point: str) -> None:
    _kill_in_the_group_commit(project, point)
    assert project.manifests() == {}, "no manifest of the batch in place"
    assert len(_staged(project)) == 2, "both steps' manifests were in the one batch, written aside"

    done = project.run_json()
    assert done.statuses == {"x": "done", "y": "done"}
    assert sorted(project.executed()) == ["x", "y"]
    assert sorted(project.lock()) == ["x", "y"]
    assert sorted(m["stage"] for m in project.manifests().values()) == ["x", "y"]
    project.assert_sound()
    project.bg("gc", check=0)
    assert temporaries(project) == [] and list((project.root / ".bg/tmp").iterdir()) == []


def test_killed_before_a_batch_is_journalled_restores_its_steps(project: Project) -> None:
    _kill_in_the_group_commit(project, "before-journal")
    assert sorted(m["stage"] for m in project.manifests().values()) == ["x", "y"], "committed together"
    assert _staged(project) == []

    done = project.run_json()
    assert done.statuses == {"x": "cached", "y": "cached"}
    assert project.executed() == []
    assert sorted(project.lock()) == ["x", "y"]
    assert project.read("x.txt") == "x\n" and project.read("y.txt") == "y\n"
    project.assert_sound()


def test_killed_while_writing_the_lock_loses_nothing(two: Project) -> None:
    keys, _ = _crash(two, "write:Buildfile.lock", b_finished=True)
    assert keys["b"] in two.manifests()  # the manifest made it: b is complete
    assert [t for t in temporaries(two) if t.startswith(".Buildfile.lock.tmp-")], "half a lock, aside"
    assert {s: d["action"] for s, d in two.status("--param", "pa=1").items()} == {"a": "skip", "b": "skip"}

    done = two.run_json("--param", "pa=1")
    assert done.statuses == {"a": "skipped", "b": "skipped"}  # recorded from the journal
    assert two.executed() == []
    assert {s: e["key"] for s, e in two.lock().items()} == keys
    assert temporaries(two) == [], "the half-written lock is removed, not left to be committed"
    two.assert_sound()


def test_killed_mid_command_reruns_that_stage_and_frees_the_project_lock(two: Project, procs: Procs) -> None:
    bg = two.spawn("run", "-j", "1", env={"NAP": "30"})
    pid = procs.wait_pid(pid_file(two))
    try:
        bg.kill()
        bg.communicate(timeout=15)
        assert not (two.root / "Buildfile.lock").exists()
        done = two.run_json()  # would wait forever if the dead bg still held the project lock
        assert not [e for e in done.events if e["event"] == "notice" and "waiting" in e["text"]]
        assert done.statuses == {"a": "skipped", "b": "done"}  # a came back from the journal
        assert two.executed() == ["a", "b", "b"]
        assert sorted(two.lock()) == ["a", "b"]
        two.assert_sound()
    finally:
        procs.kill_group(pid)


def test_a_sigkilled_bg_leaves_no_command_running(two: Project, procs: Procs) -> None:
    bg = two.spawn("run", "-j", "1", env={"NAP": "30"})
    pid = procs.wait_pid(pid_file(two))
    try:
        bg.kill()
        bg.communicate(timeout=15)
        time.sleep(1)
        assert not procs.group_alive(pid)
    finally:
        procs.kill_group(pid)


# ---------------------------------------------------------------- corruption
def _flip_first_byte(path: os.PathLike[str]) -> None:
    """Damage a cache object the way a stray write would, keeping its mtime."""
    st = os.stat(path)
    fd = os.open(path, os.O_RDWR)
    try:
        first = os.pread(fd, 1, 0)
        os.pwrite(fd, bytes([first[0] ^ 0x20]), 0)
    finally:
        os.close(fd)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _a_object(two: Project, pa: int) -> Path:
    return two.object(hashlib.sha256(f"a {pa}\n".encode()).hexdigest())


def test_a_corrupt_object_is_detected_and_its_stage_reruns(two: Project) -> None:
    two.bg("run", "-q", "--param", "pa=1", check=0)
    two.bg("run", "-q", check=0)
    two.executed()
    _flip_first_byte(_a_object(two, 1))  # not in the workspace now: pa=2 is

    done = two.run_json("--param", "pa=1")
    assert "was corrupt" in done.err
    assert done.statuses == {"a": "done", "b": "cached"}  # rerun, not restored from bad bytes
    assert two.executed() == ["a"]
    assert two.read("a.txt") == "a 1\n" and two.read("b.txt") == "a 1\nb\n"
    two.assert_sound()


def test_a_corrupt_object_behind_a_deleted_output_is_rebuilt(two: Project) -> None:
    two.bg("run", "-q", check=0)
    two.executed()
    _flip_first_byte(_a_object(two, 2))
    (two.root / "a.txt").unlink()

    done = two.run_json()
    assert "was corrupt" in done.err
    assert done.statuses["a"] == "done"
    assert two.executed() == ["a"]
    assert two.read("a.txt") == "a 2\n"
    two.assert_sound()
    assert json.loads((two.root / "Buildfile.lock").read_text())["stages"]["a"]["key"]
