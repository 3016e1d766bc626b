"""`bg audit` and `bg run --check` end to end: real projects, the real CLI, real reruns.

Nondeterminism is made certain, never left to chance: a stage that writes the time or random
bytes differs on every run; a float sum whose order comes from something undeclared (here an
environment variable the test changes, standing in for thread scheduling) differs for sure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import Project

STEADY = """
[stages.gen]
command = "echo gen >> {ran}; python3 gen.py > out.txt"
inputs = ["gen.py"]
outputs = ["out.txt"]

[stages.use]
command = "echo use >> {ran}; mkdir -p d && cp out.txt d/a.txt && echo b > d/b.txt && echo 3 > m.json"
inputs = ["out.txt"]
outputs = ["d/", "m.json"]
"""

# the order of a float sum comes from SUM_ORDER, which the stage does not declare
FLAKY = """
[stages.clock]
command = "python3 clock.py > clock.json"
inputs = ["clock.py"]
outputs = ["clock.json"]

[stages.noise]
command = "python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(64))' > noise.bin"
outputs = ["noise.bin"]

[stages.floatsum]
command = "python3 floatsum.py > sum.txt"
inputs = ["floatsum.py"]
outputs = ["sum.txt"]
"""
CLOCK = """
import json, time
print(json.dumps({"loss": 0.5, "at": time.time_ns()}))
"""
FLOATSUM = """
import os
values = [1e16, 1.0, -1e16, 3.0, 1e-3] * 5
if os.environ.get("SUM_ORDER") == "reverse":
    values.reverse()
print(repr(sum(values)))
"""


def audit(project: Project, *args: str, check: int | None = None, env: dict[str, str] | None = None) -> dict:
    done = project.bg("audit", "--json", *args, check=check, env=env)
    return {"rc": done.rc, "err": done.err, **json.loads(done.out)}


def results(found: dict) -> dict[str, str]:
    """`stage:path` → identical | differs; `stage` → failed | unaudited."""
    out = {}
    for s in found["stages"]:
        if not s["outputs"]:
            out[s["stage"]] = s["result"]
        for o in s["outputs"]:
            out[f"{s['stage']}:{o['path']}"] = o["result"]
    return out


@pytest.fixture
def steady(project: Project) -> Project:
    project.stages(STEADY)
    project.write("gen.py", "print('hello')\n")
    project.bg("run", check=0)
    project.executed()
    return project


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the project outside .bg/audit, with its size and mtime: what an audit must leave
    alone (the workspace, Buildfile.lock, the cache's objects and manifests, the logs)."""
    found = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("audit", "tmp")]
        for name in files:
            path = Path(dirpath, name)
            if ".db" in name or name.endswith(".pickle"):
                continue  # bookkeeping: stat records may learn digests, the parsed Buildfile is cached
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def test_a_deterministic_pipeline_reproduces_and_nothing_is_touched(steady: Project) -> None:
    before = snapshot(steady.root)
    found = audit(steady, check=0)
    assert found["reproduced"] is True
    assert results(found) == {"gen:out.txt": "identical", "use:d": "identical", "use:m.json": "identical"}
    assert sorted(steady.executed()) == ["gen", "use"]  # both really reran
    assert snapshot(steady.root) == before  # workspace, lock, cache, logs: as they were
    assert not (steady.root / ".bg" / "audit").exists()  # the sandbox went


def test_the_table_names_every_output(steady: Project) -> None:
    done = steady.bg("audit", check=0)
    for path in ("out.txt", "d", "m.json"):
        assert path in done.out
    assert done.out.count("identical") == 3
    assert "every output reproduced bit for bit (2 stages, 3 outputs)" in done.out


def test_an_audit_uses_the_recorded_inputs_not_the_workspace(steady: Project) -> None:
    """`use` is audited with the out.txt it read, though out.txt in the workspace is gone and gen.py
    changed: the recorded out.txt comes from the cache, and `gen` is not rerun for it."""
    steady.write("gen.py", "print('changed')\n")
    (steady.root / "out.txt").unlink()
    found = audit(steady, "use", check=0)
    assert results(found) == {"use:d": "identical", "use:m.json": "identical"}
    assert steady.executed() == ["use"]


def test_a_source_input_changed_since_cannot_be_audited(steady: Project) -> None:
    steady.write("gen.py", "print('changed')\n")  # a source file is not in the cache
    found = audit(steady, "gen", check=3)
    assert results(found) == {"gen": "unaudited"}
    assert "input 'gen.py'" in found["stages"][0]["error"]
    assert "git checkout" in found["stages"][0]["hint"]


def test_nondeterministic_stages_are_caught_with_explanations(project: Project, tmp_path: Path) -> None:
    project.stages(FLAKY)
    project.write("floatsum.py", FLOATSUM)
    project.write("clock.py", CLOCK)
    project.bg("run", check=0, env={"SUM_ORDER": "forward"})
    report = tmp_path / "report"
    found = audit(project, "--report", str(report), check=1, env={"SUM_ORDER": "reverse"})
    assert found["reproduced"] is False
    assert results(found) == {
        "clock:clock.json": "differs",
        "noise:noise.bin": "differs",
        "floatsum:sum.txt": "differs",
    }
    by_path = {o["path"]: o for s in found["stages"] for o in s["outputs"]}
    clock = by_path["clock.json"]["difference"]
    assert clock["kind"] == "json"
    assert "at" in clock["summary"] and "loss" not in clock["summary"]  # only the changed field is named
    assert by_path["noise.bin"]["difference"]["kind"] == "binary"
    floatsum = by_path["sum.txt"]["difference"]
    assert floatsum["kind"] == "text"
    forward, backward = (
        repr(sum([1e16, 1.0, -1e16, 3.0, 1e-3] * 5)),
        repr(sum(([1e16, 1.0, -1e16, 3.0, 1e-3] * 5)[::-1])),
    )
    assert forward != backward
    assert f"-{forward}" in floatsum["details"] and f"+{backward}" in floatsum["details"]
    markdown = (report / "audit.md").read_text()
    assert "clock.json" in markdown and "noise.bin" in markdown
    assert json.loads((report / "audit.json").read_text())["reproduced"] is False
    kept = project.root / found["kept"]
    assert (kept).is_dir()  # the rerun's outputs stay for a look


def test_the_exit_status_names_what_did_not_reproduce(project: Project) -> None:
    project.stages(FLAKY)
    project.write("floatsum.py", FLOATSUM)
    project.write("clock.py", CLOCK)
    project.bg("run", check=0)
    done = project.bg("audit", "noise", check=1)
    assert "not reproducible: noise: noise.bin" in done.out
    assert "first differing byte" in done.out or "differ" in done.out


def test_run_check_fails_on_a_difference_and_stores_nothing(project: Project) -> None:
    project.stages(FLAKY)
    project.write("floatsum.py", FLOATSUM)
    project.write("clock.py", CLOCK)
    project.bg("run", check=0, env={"SUM_ORDER": "forward"})
    manifests = project.manifests()
    lock = project.read("Buildfile.lock")
    assert project.bg("run", "--check", "floatsum", env={"SUM_ORDER": "forward"}, check=0).rc == 0
    done = project.bg("run", "--check", "floatsum", env={"SUM_ORDER": "reverse"}, check=1)
    assert "sum.txt" in done.out and "differs" in done.out
    assert project.manifests() == manifests  # nothing stored
    assert project.read("Buildfile.lock") == lock


def test_run_check_needs_a_cached_result(steady: Project) -> None:
    steady.write("gen.py", "print('changed')\n")
    done = steady.bg("run", "--check", "gen", check=2)
    assert "no cached result for its current inputs" in done.err
    assert "bg run gen" in done.err


def test_audit_of_a_stage_never_run_is_a_usage_error(project: Project) -> None:
    project.stages(STEADY)
    project.write("gen.py", "print('hello')\n")
    done = project.bg("audit", "gen", check=2)
    assert "stage 'gen' has no recorded result to audit" in done.err


def test_vary_reports_the_knobs_and_blames_them(project: Project) -> None:
    """A stage writing its umask and time zone reproduces plainly and differs only under --vary."""
    project.stages(
        """
[stages.leaky]
command = "sh -c 'umask; echo tz=$TZ' > env.txt"
outputs = ["env.txt"]
"""
    )
    project.bg("run", check=0)
    assert audit(project, check=0)["reproduced"] is True
    found = audit(project, "--vary", check=1)
    assert set(found["varied"]) >= {"path", "tz", "locale", "umask", "hashseed"}
    assert "hostname" in found["not_varied"]  # on the host it cannot be
    output = found["stages"][0]["outputs"][0]
    assert output["result"] == "differs" and output["only_under_variation"] is True
    done = project.bg("audit", "--vary", check=1)
    assert "only under --vary" in done.out
    assert "caused by a varied knob" in done.out


def test_vary_turns_the_clock_with_libfaketime(project: Project) -> None:
    from buildgraph.audit.vary import find_faketime

    if not find_faketime():
        assert not os.environ.get("CI"), "CI installs faketime (scripts/ci-docker.sh)"
        pytest.skip("libfaketime is not installed (CI installs it: scripts/ci-docker.sh)")
    project.stages(
        """
[stages.dated]
command = "python3 -c 'import time; print(time.gmtime().tm_year)' > year.txt"
outputs = ["year.txt"]
"""
    )
    project.bg("run", check=0)
    found = audit(project, "--vary", check=1)
    assert "clock" in found["varied"]
    output = found["stages"][0]["outputs"][0]
    assert output["only_under_variation"] is True
    year = int(project.read("year.txt"))
    faked = [
        int(line[1:]) for line in output["difference"]["details"] if line[1:].isdigit() and line[0] == "+"
    ]
    assert faked and faked[0] > year  # 400 days on


def test_vary_keeps_a_reproducible_stage_reproducible(steady: Project) -> None:
    found = audit(steady, "--vary", check=0)
    assert found["reproduced"] is True
    assert "tz" in found["varied"]


RANDOM_ML = """
[stages.model]
command = "python3 model.py"
inputs = ["model.py"]
outputs = ["model.pt", "chart.png"]
"""
MODEL = """
import os
import numpy as np
import torch
from PIL import Image

torch.manual_seed(0)
state = {"fc.weight": torch.randn(4, 3), "fc.bias": torch.zeros(4)}
state["fc.bias"] += torch.from_numpy(np.frombuffer(os.urandom(16), dtype=np.float32).copy()).nan_to_num(0.0)
torch.save(state, "model.pt")
pixels = np.full((40, 60, 3), 255, dtype=np.uint8)
pixels[10:20, 30:45] = np.frombuffer(os.urandom(10 * 15 * 3), dtype=np.uint8).reshape(10, 15, 3)
Image.fromarray(pixels).save("chart.png")
"""


def test_a_random_checkpoint_and_chart_are_explained_by_type(project: Project, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    project.stages(RANDOM_ML)
    project.write("model.py", MODEL)
    project.bg("run", check=0)
    report = tmp_path / "report"
    found = audit(project, "--report", str(report), check=1)
    by_path = {o["path"]: o["difference"] for s in found["stages"] for o in s["outputs"]}
    checkpoint = by_path["model.pt"]
    assert checkpoint["kind"] == "checkpoint"
    assert "fc.bias" in checkpoint["summary"] and "fc.weight" not in checkpoint["summary"]
    chart = by_path["chart.png"]
    assert chart["kind"] == "image"
    box = json.dumps(chart["data"])
    assert "30" in box and "44" in box or "45" in box  # the bounding box of the random patch
    assert chart["files"] and all((report / name).is_file() for name in chart["files"])
    assert any(name in (report / "audit.md").read_text() for name in chart["files"])
