"""Where a job ran (executors/fingerprint.py): the probe, real on this host, and each executor's report."""

from __future__ import annotations

import subprocess
from pathlib import Path

from buildgraph.executors.base import Job
from buildgraph.executors.fake import FakeExecutor
from buildgraph.executors.fingerprint import PROBE_ARGV, for_job, parse_probe, probe_host, sees_gpus
from buildgraph.executors.local import LocalExecutor


def job(tmp_path: Path, **fields: object) -> Job:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    defaults: dict[str, object] = dict(
        stage="s", run_id="r", command="echo ok > out.txt", inputs=(), outputs=("out.txt",),
        scratch=scratch, log_path=tmp_path / "s.log",
    )
    return Job(**{**defaults, **fields})  # type: ignore[arg-type]


def test_the_probe_reports_the_python3_on_path_without_importing_torch(tmp_path: Path) -> None:
    found = probe_host()
    expected = subprocess.run(
        ["python3", "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    assert found["python"] == expected
    assert isinstance(found["cpus"], int) and found["cpus"] >= 1
    assert found["os"] and found["machine"]
    assert "torch" in found and "cuda" in found and "gpu" in found
    # torch is read from its metadata, never imported (seconds, and a GPU context)
    traced = subprocess.run(
        [*PROBE_ARGV[:2], PROBE_ARGV[2].replace('python3 -c', 'python3 -X importtime -c'), *PROBE_ARGV[3:]],
        capture_output=True, text=True,
    )
    assert traced.returncode == 0
    assert "| torch" not in traced.stderr


def test_without_python_the_probe_still_says_the_os() -> None:
    found = parse_probe('{}\nNAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert found["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert found["python"] is None and found["torch"] is None and found["threads"] == {}


def test_a_jobs_thread_settings_override_the_probed_ones_and_hidden_gpus_are_not_recorded() -> None:
    probed = {"threads": {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "2"}, "gpu": "NVIDIA H200"}
    probed["driver"] = "550.54.15"
    seen = for_job(probed, "local", {"OMP_NUM_THREADS": "1", "SECRET_TOKEN": "s3cr3t-v4lue"}, sees_gpus=False)
    assert seen["threads"] == {"MKL_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}
    assert seen["gpu"] is None and seen["driver"] is None and seen["executor"] == "local"
    assert "s3cr3t-v4lue" not in repr(seen)  # only the thread settings are taken from a job's env
    assert sees_gpus({}) and sees_gpus({"CUDA_VISIBLE_DEVICES": "0"})
    assert not sees_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) and not sees_gpus({"CUDA_VISIBLE_DEVICES": ""})


def test_the_local_executor_reports_the_host_probed_once(tmp_path: Path, monkeypatch: object) -> None:
    import buildgraph.executors.fingerprint as fingerprint

    calls: list[int] = []
    real = fingerprint.HostProbe

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object) -> None:
            calls.append(1)
            super().__init__(*args)

    monkeypatch.setattr(fingerprint, "HostProbe", Counted)  # type: ignore[attr-defined]
    executor = LocalExecutor()
    try:
        first = executor.run(job(tmp_path, env=(("OMP_NUM_THREADS", "3"),))).settle()
        (tmp_path / "again").mkdir()
        second = executor.run(job(tmp_path / "again")).settle()
    finally:
        executor.close()
    assert first.ok and second.ok
    assert first.environment["executor"] == "local"
    assert calls == [1]
    assert first.environment["python"] == probe_host()["python"]
    assert first.environment["threads"]["OMP_NUM_THREADS"] == "3"


def test_the_fake_executor_reports_a_fixed_environment(tmp_path: Path) -> None:
    result = FakeExecutor().run(job(tmp_path))
    assert result.environment["executor"] == "fake" and result.environment["os"] == "Fake OS 1"
