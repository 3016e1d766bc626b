"""`bg run` on the host: what runs, what is skipped, restored or cut off — and how failures look.

Whether a command executed is read from `ran.log` (outside the project, see conftest), not
from bg's own report, so a wrong "skipped" cannot hide a run.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

STAGES = ["prep", "feat", "train", "report"]  # the `pipeline` fixture's stages, in order


def test_first_run_executes_everything_then_a_second_run_nothing(pipeline: Project) -> None:
    first = pipeline.run_json()
    assert first.statuses == dict.fromkeys(STAGES, "done")
    assert pipeline.executed() == STAGES
    assert pipeline.read("rep/summary.txt") == "HELLO\nHELLO\n2\ntrained\nnotes\n"
    assert sorted(pipeline.lock()) == sorted(STAGES)

    second = pipeline.run_json()
    assert second.statuses == dict.fromkeys(STAGES, "skipped")
    assert pipeline.executed() == []


def test_editing_one_input_reruns_exactly_the_stages_that_read_it(built: Project) -> None:
    built.write("notes.txt", "new notes\n")
    done = built.run_json()
    assert built.executed() == ["report"]
    assert done.statuses == {"prep": "skipped", "feat": "skipped", "train": "skipped", "report": "done"}
    assert done.started()["report"]["reasons"] == ["input notes.txt changed"]

    built.write("raw.txt", "bye\n")
    built.run_json()
    assert built.executed() == STAGES
    assert built.read("rep/summary.txt").startswith("BYE\nBYE\n")


def test_an_identical_intermediate_output_stops_the_cascade(built: Project) -> None:
    feat_log = (built.root / ".bg/logs/feat.log").read_bytes()
    built.write("raw.txt", "HELLO\n")  # prep upper-cases: clean.txt comes out byte-identical
    done = built.run_json()
    assert built.executed() == ["prep"]
    assert done.statuses == {"prep": "done", "feat": "cutoff", "train": "skipped", "report": "skipped"}
    assert set(done.started()) == {"prep"}
    assert done.lines("feat") == []
    assert (built.root / ".bg/logs/feat.log").read_bytes() == feat_log
    assert built.status()["prep"]["action"] == "skip"  # the new raw.txt digest was recorded


def test_reverting_a_param_restores_outputs_from_the_cache_without_running(built: Project) -> None:
    keys = {stage: entry["key"] for stage, entry in built.lock().items()}
    built.run_json("--param", "scale=3")
    assert built.executed() == ["feat", "train", "report"]
    assert built.read("feat.txt").endswith("3\n")

    back = built.run_json()
    assert built.executed() == []
    assert back.statuses == {"prep": "skipped", "feat": "cached", "train": "cached", "report": "cached"}
    assert back.started()["feat"]["reasons"] == ["command changed", "param scale 3 → 2"]
    assert built.read("feat.txt").endswith("2\n")
    assert built.read("rep/summary.txt").endswith("2\ntrained\nnotes\n")
    assert {stage: entry["key"] for stage, entry in built.lock().items()} == keys


def test_touching_an_input_reruns_nothing(built: Project) -> None:
    later = time.time() + 60
    for name in ("raw.txt", "notes.txt"):
        os.utime(built.root / name, (later, later))
    assert built.run_json().statuses == dict.fromkeys(STAGES, "skipped")
    assert built.executed() == []


def test_deleting_outputs_restores_them_from_the_cache(built: Project) -> None:
    model, summary = built.read("model.txt"), built.read("rep/summary.txt")
    (built.root / "model.txt").unlink()
    for item in (built.root / "rep").iterdir():
        item.unlink()
    (built.root / "rep").rmdir()
    done = built.run_json()
    assert built.executed() == []
    assert done.statuses == {"prep": "skipped", "feat": "skipped", "train": "cached", "report": "cached"}
    assert done.started()["train"]["reasons"] == ["output model.txt missing from the workspace"]
    assert built.read("model.txt") == model and built.read("rep/summary.txt") == summary


def test_a_replaced_output_is_restored_from_the_cache(built: Project) -> None:
    model = built.read("model.txt")
    built.write("model.txt", "hand-edited\n")  # a new file: the cached object is untouched
    done = built.run_json()
    assert built.executed() == []
    assert done.statuses["train"] == "cached"
    assert done.started()["train"]["reasons"] == ["output model.txt modified in the workspace"]
    assert built.read("model.txt") == model


def test_an_output_edited_in_place_is_put_back(built: Project) -> None:
    model = built.read("model.txt")
    path = built.root / "model.txt"
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:  # through a hardlink this also writes the cached object
        f.write(b"X")
    done = built.run_json()
    if done.statuses["train"] == "done":  # hardlinked: the object was damaged, so train reran
        assert "was corrupt" in done.err and built.executed() == ["train"]
    else:  # copied or reflinked: the object is intact and simply restored
        assert done.statuses["train"] == "cached" and built.executed() == []
    assert built.read("model.txt") == model
    assert done.statuses["report"] in ("skipped", "cutoff")
    built.assert_sound()


def test_force_reruns_the_stage_and_cuts_off_below_it(built: Project) -> None:
    done = built.run_json("--force", "feat")
    assert built.executed() == ["feat"]
    assert done.started()["feat"]["reasons"] == ["forced"]
    assert done.statuses == {"prep": "skipped", "feat": "done", "train": "cutoff", "report": "skipped"}


def test_a_target_runs_only_what_it_needs(pipeline: Project) -> None:
    done = pipeline.run_json("feat")
    assert pipeline.executed() == ["prep", "feat"]
    assert done.statuses == {"prep": "done", "feat": "done"}
    assert sorted(pipeline.lock()) == ["feat", "prep"]
    assert not (pipeline.root / "model.txt").exists()


def test_dry_run_runs_nothing_and_writes_nothing(pipeline: Project) -> None:
    done = pipeline.bg("run", "--dry-run", check=0)
    assert pipeline.executed() == []
    assert "prep" in done.out and "never built" in done.out
    assert not (pipeline.root / "clean.txt").exists()
    assert not (pipeline.root / "Buildfile.lock").exists()


def _window(text: str) -> tuple[float, float]:
    start, end = text.split()[0], text.split()[-1]
    return float(start), float(end)


def test_jobs_2_runs_independent_stages_at_the_same_time(project: Project) -> None:
    stage = """
[stages.{name}]
command = "date +%s.%N > {name}.txt; sleep 0.6; date +%s.%N >> {name}.txt"
outputs = ["{name}.txt"]
"""
    project.stages(stage.replace("{name}", "a") + stage.replace("{name}", "b"))
    project.run_json("-j", "2")
    (a0, a1), (b0, b1) = _window(project.read("a.txt")), _window(project.read("b.txt"))
    assert max(a0, b0) < min(a1, b1), "the two stages did not overlap"


def test_gpu_stages_share_the_visible_gpus_one_each(project: Project) -> None:
    stage = """
[stages.{name}]
command = "(date +%s.%N; echo $CUDA_VISIBLE_DEVICES; sleep 0.5; date +%s.%N) > {name}.txt"
outputs = ["{name}.txt"]
gpus = 1
"""
    names = ["g1", "g2", "g3"]
    project.stages("".join(stage.replace("{name}", n) for n in names))
    project.run_json("-j", "3", env={"CUDA_VISIBLE_DEVICES": "3,5"})
    runs = []
    for name in names:
        start, device, end = project.read(f"{name}.txt").split()
        runs.append((float(start), float(end), device))
    assert {device for _, _, device in runs} == {"3", "5"}  # the host's ids, one per stage
    overlapping = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "two GPUs, yet the GPU stages ran one at a time"
    assert all(a[2] != b[2] for a, b in overlapping), "two stages held the same GPU at once"
    assert len(overlapping) < 3, "three stages ran at once on two GPUs"


# ---------------------------------------------------------------- failures
FAILING = """
[project]
name = "fail"
executor = "local"

[params]
code = 0

[stages.bad]
command = "echo bad >> {ran}; echo to-stdout; echo to-stderr >&2; echo out > bad.txt; exit ${params.code}"
outputs = ["bad.txt"]

[stages.down]
command = "echo down >> {ran}; cp bad.txt down.txt"
inputs = ["bad.txt"]
outputs = ["down.txt"]

[stages.indep]
command = "echo indep >> {ran}; echo i > indep.txt"
outputs = ["indep.txt"]
"""


def test_a_failing_command_is_reported_and_nothing_is_recorded_for_it(project: Project) -> None:
    project.buildfile(FAILING)
    project.bg("run", "-q", "bad", check=0)  # a good run first: its record must survive
    project.executed()
    lock_before, runs_before = project.lock()["bad"], set(project.manifests())

    rc, out, err = project.bg("run", "-j", "1", "--param", "code=3")
    assert rc == 1
    assert "stage 'bad' failed" in err and "exited with status 3" in err and ".bg/logs/bad.log" in err
    assert err.count("bg: error:") == 1
    log = (project.root / ".bg/logs/bad.log").read_text()
    assert "to-stdout" in log and "to-stderr" in log
    assert project.executed() == ["bad"]  # down blocked; indep not started without --keep-going
    assert set(project.manifests()) == runs_before
    assert project.lock()["bad"] == lock_before and "down" not in project.lock()
    assert project.read("bad.txt") == "out\n"  # the last good output is still in place


def test_keep_going_runs_every_independent_stage(project: Project) -> None:
    project.buildfile(FAILING)
    done = project.run_json("-j", "1", "--keep-going", "--param", "code=1", check=1)
    assert done.statuses == {"bad": "failed", "down": "blocked", "indep": "done"}
    assert sorted(project.executed()) == ["bad", "indep"]
    assert sorted(project.lock()) == ["indep"]


def test_a_missing_declared_output_fails_and_caches_nothing(project: Project) -> None:
    project.stages("""
[stages.lazy]
command = "echo forgot"
outputs = ["model.pt", "out/"]
""")
    rc, _, err = project.bg("run")
    assert rc == 1
    assert "declared outputs 'model.pt', 'out/' were not created" in err
    assert project.manifests() == {} and not (project.root / "Buildfile.lock").exists()


def test_reading_an_undeclared_project_file_fails(project: Project) -> None:
    project.write("secret.txt", "data\n")
    project.stages("""
[stages.sneaky]
command = "cat secret.txt > copy.txt"
outputs = ["copy.txt"]
""")
    rc, _, err = project.bg("run")
    assert rc == 1 and "stage 'sneaky' failed" in err
    assert "secret.txt" in (project.root / ".bg/logs/sneaky.log").read_text()
    assert project.manifests() == {}


def test_a_stage_that_modifies_its_input_is_reported(project: Project) -> None:
    project.write("in.txt", "original\n")
    project.stages("""
[stages.scribble]
command = "echo more >> in.txt; cp in.txt out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
""")
    rc, _, err = project.bg("run")
    assert rc == 1
    assert "stage modified its input 'in.txt'" in err
    assert project.manifests() == {}


def test_timeout_kills_the_command(project: Project) -> None:
    project.stages("""
[stages.slow]
command = "sleep 30; echo > s.txt"
outputs = ["s.txt"]
timeout = 1
""")
    started = time.monotonic()
    rc, _, err = project.bg("run")
    assert rc == 1 and "timed out after 1s" in err
    assert time.monotonic() - started < 15  # killed at 1 s, not after the 30 s sleep
    assert project.manifests() == {}
