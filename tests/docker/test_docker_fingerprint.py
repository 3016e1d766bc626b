"""The docker executor reports where a job ran: the image's id and what the probe found inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buildgraph.executors.base import Job
from buildgraph.executors.docker import DockerExecutor


def test_a_job_reports_its_image_id_and_os_probed_once(client: Any, tiny_base: str, tmp_path: Path) -> None:
    executor = DockerExecutor(client)
    results = []
    try:
        for n in range(2):
            scratch = tmp_path / f"s{n}"
            scratch.mkdir()
            job = Job(
                stage="fp", run_id=f"fp-{n}", command="echo ok > out.txt", inputs=(), outputs=("out.txt",),
                scratch=scratch, log_path=tmp_path / f"{n}.log", image=tiny_base,
                env=(("OMP_NUM_THREADS", "2"),),
            )
            results.append(executor.run(job))
        probed = len(executor._images)  # noqa: SLF001 - one probe per image id, not per job
    finally:
        executor.close()
    first = results[0].environment
    assert all(r.ok for r in results)
    assert first["image_id"] == client.images.get(tiny_base).id and first["image"] == tiny_base
    assert first["executor"] == "docker" and first["os"].startswith("Debian GNU/Linux 12")
    assert first["threads"] == {"OMP_NUM_THREADS": "2"} and first["gpu"] is None
    assert probed == 1 and results[1].environment == first
