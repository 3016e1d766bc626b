"""Two `bg` at once in one project: the second waits for the first (and says so), nothing is
done twice, and a lock whose holder died is free again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Procs, Project

SLOW_THEN_FAST = """
[stages.a]
command = "echo a >> {ran}; echo $$ > {pid}; sleep 1.5; echo a > a.txt"
outputs = ["a.txt"]

[stages.b]
command = "echo b >> {ran}; cp a.txt b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]
"""


def test_a_second_run_waits_for_the_first_and_does_no_work_twice(project: Project, procs: Procs) -> None:
    pid_path = project.root.parent / "a.pid"
    project.stages(SLOW_THEN_FAST, pid=pid_path)
    first = project.spawn("run", "--json")
    procs.wait_pid(pid_path)  # the first holds the project lock and runs `a`
    second = project.spawn("run", "--json")
    status = project.spawn("status", "--json")
    outputs = [p.communicate(timeout=30) for p in (first, second, status)]
    assert [p.returncode for p in (first, second, status)] == [0, 0, 0], outputs

    (out1, _), (out2, err2), (out_status, err_status) = outputs
    events2 = [json.loads(line) for line in out2.splitlines()]
    waits = [e["text"] for e in events2 if e["event"] == "notice"]
    assert waits == [f"another bg is running in this project (pid {first.pid}); waiting…"]
    assert {e["stage"]: e["status"] for e in events2 if e["event"] == "finish"} == {
        "a": "skipped",
        "b": "skipped",
    }
    assert "waiting" in err_status  # a read-only command waits too, and says so on stderr
    assert [d["action"] for d in json.loads(out_status)] == ["skip", "skip"]  # stdout stays JSON

    assert project.executed() == ["a", "b"]
    assert sorted(project.lock()) == ["a", "b"]
    project.assert_sound()


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from buildgraph.stores.projectlock import ProjectLock
lock = ProjectLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_the_lock_of_a_holder_killed_by_sigkill_is_released(project: Project) -> None:
    project.stages('[stages.a]\ncommand = "echo a > a.txt"\noutputs = ["a.txt"]\n')
    (project.root / ".bg").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(project.root / ".bg" / "lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        bg = project.spawn("run", "--json")
        assert bg.stdout is not None
        notice = json.loads(bg.stdout.readline())  # blocks until bg reports the wait
        assert notice["event"] == "notice" and f"(pid {holder.pid})" in notice["text"]
        time.sleep(0.2)
        assert bg.poll() is None, "bg must wait while the holder lives"
    finally:
        holder.kill()
        holder.communicate()
    out, err = bg.communicate(timeout=30)
    assert bg.returncode == 0, err
    assert '"status":"done"' in out and project.read("a.txt") == "a\n"
