"""FakeExecutor: records jobs, deterministic outputs, the same output checks as the local one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from buildgraph.executors.base import Cancel, Job
from buildgraph.executors.fake import FakeExecutor, default_behaviour
from buildgraph.executors.local import LocalExecutor


def make_job(
    tmp_path: Path, name: str, inputs: dict[str, bytes], outputs: tuple[str, ...], command: str = "cmd"
) -> Job:
    project = tmp_path / name / "project"
    for rel, data in inputs.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(data)
    top_level = sorted({rel.split("/")[0] + ("/" if "/" in rel else "") for rel in inputs})
    return Job(
        stage=name,
        run_id="run-1",
        command=command,
        inputs=tuple((rel, project / rel.rstrip("/")) for rel in top_level),
        outputs=outputs,
        scratch=tmp_path / name / "scratch",
        log_path=tmp_path / name / "log",
    )


def test_records_jobs_and_writes_outputs(tmp_path: Path) -> None:
    fake = FakeExecutor()
    lines: list[str] = []
    job = make_job(tmp_path, "train", {"data/a.csv": b"1"}, ("model.pt", "curves/"))
    result = fake.run(job, on_line=lines.append)
    assert result.ok, result
    assert fake.jobs == [job] and fake.stages == ["train"]
    assert (result.output_root / "model.pt").read_text().startswith("model.pt ")
    assert (result.output_root / "curves" / "part-0").is_file()
    assert (result.output_root / "data" / "a.csv").read_bytes() == b"1"  # staged like the local one
    assert lines == ["fake: train"] and job.log_path.read_text() == "fake: train\n"


def test_identical_inputs_give_identical_outputs(tmp_path: Path) -> None:
    fake = FakeExecutor()
    first = fake.run(make_job(tmp_path, "a", {"x.txt": b"same", "d/y": b"y"}, ("out",)))
    second = fake.run(make_job(tmp_path, "b", {"x.txt": b"same", "d/y": b"y"}, ("out",)))
    changed = fake.run(make_job(tmp_path, "c", {"x.txt": b"other", "d/y": b"y"}, ("out",)))
    nested = fake.run(make_job(tmp_path, "d", {"x.txt": b"same", "d/y": b"Y"}, ("out",)))
    other_command = fake.run(
        make_job(tmp_path, "e", {"x.txt": b"same", "d/y": b"y"}, ("out",), command="cmd2")
    )
    out = [(r.output_root / "out").read_text() for r in (first, second, changed, nested, other_command)]
    assert out[0] == out[1]
    assert len(set(out[1:])) == 4


def test_behaviour_exit_status_and_missing_outputs(tmp_path: Path) -> None:
    seen: list[Path] = []

    def behaviour(job: Job, workdir: Path) -> int:
        seen.append(workdir)
        return 0 if job.stage == "lazy" else 2

    fake = FakeExecutor(behaviour)
    failed = fake.run(make_job(tmp_path, "broken", {}, ("model.pt",)))
    lazy = fake.run(make_job(tmp_path, "lazy", {}, ("model.pt", "curves/")))
    assert (failed.exit_status, failed.error) == (2, "")  # outputs are only checked after success
    assert lazy.error == "declared outputs 'model.pt', 'curves/' were not created"
    assert seen == [tmp_path / "broken" / "scratch" / "work", tmp_path / "lazy" / "scratch" / "work"]


def test_missing_output_message_matches_the_local_executor(tmp_path: Path) -> None:
    fake = FakeExecutor(lambda job, workdir: 0).run(make_job(tmp_path, "f", {}, ("model.pt",)))
    local = LocalExecutor().run(make_job(tmp_path, "l", {}, ("model.pt",), command="true"))
    assert fake.error == local.error == "declared output 'model.pt' was not created"


def test_modified_input_is_detected(tmp_path: Path) -> None:
    def scribble(job: Job, workdir: Path) -> int:
        with open(workdir / "x.txt", "a") as f:
            f.write("!")
        return default_behaviour(job, workdir)

    result = FakeExecutor(scribble).run(make_job(tmp_path, "s", {"x.txt": b"x"}, ("out",)))
    assert result.error == "stage modified its input 'x.txt'; write outputs to new paths"


def test_cancelled_job_does_not_run(tmp_path: Path) -> None:
    calls: list[str] = []
    cancel = Cancel()
    cancel.set()

    def record(job: Job, workdir: Path) -> int:
        calls.append(job.stage)
        return 0

    fake = FakeExecutor(record)
    result = fake.run(make_job(tmp_path, "t", {}, ()), cancel=cancel)
    assert result.interrupted and not result.ok and calls == []


def test_missing_input_is_reported(tmp_path: Path) -> None:
    job = make_job(tmp_path, "t", {}, ())
    job = Job(**{**job.__dict__, "inputs": (("gone.txt", tmp_path / "gone.txt"),)})
    result = FakeExecutor().run(job)
    assert result.exit_status == 127 and result.error.startswith("input 'gone.txt' does not exist")


def test_records_jobs_from_many_threads(tmp_path: Path) -> None:
    fake = FakeExecutor()
    jobs = [make_job(tmp_path, f"s{i}", {"in": str(i).encode()}, ("out",)) for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(fake.run, jobs))
    assert all(r.ok for r in results)
    assert sorted(fake.stages) == sorted(j.stage for j in jobs)
