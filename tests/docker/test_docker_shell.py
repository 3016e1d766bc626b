"""`bg shell`: the docker CLI in the stage's image, with its inputs read-only, as the invoking user."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from buildgraph.buildfile import load
from buildgraph.images.builder import DockerImages
from buildgraph.images.context import build_context


def test_shell_runs_in_the_latest_image_with_the_stage_mounts(
    client: Any, tiny_base: str, tmp_path: Path
) -> None:
    name = f"sh{uuid.uuid4().hex[:8]}"
    (tmp_path / "data").mkdir()
    (tmp_path / "data/x.txt").write_text("input\n")
    (tmp_path / "Buildfile.toml").write_text(
        f'[project]\nname = "{name}"\n\n[stages.img]\nfrom = "{tiny_base}"\n'
        'run = ["echo from-image > /marker"]\n\n'
        '[stages.use]\nimage = "img"\ncommand = "cat data/x.txt"\ninputs = ["data/"]\n'
        'env = { GREETING = "hi" }\noutputs = ["o.txt"]\n'
    )
    spec = load(tmp_path)
    stage = spec.stages["img"]
    images = DockerImages(client, name)
    key = hashlib.sha256(name.encode()).hexdigest()
    image_id = images.build(stage, key, tiny_base, build_context(tmp_path, stage), {})  # type: ignore[arg-type]
    try:
        command = (
            "id -u; cat /marker data/x.txt; echo $GREETING; touch data/new 2>/dev/null || echo read-only; pwd"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "buildgraph",
                "-C",
                str(tmp_path),
                "shell",
                "use",
                "--",
                "sh",
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [
            str(os.getuid()),
            "from-image",
            "input",
            "hi",
            "read-only",
            "/work",
        ]
        assert (tmp_path / ".bg/shell/use").is_dir()
    finally:
        client.images.remove(image_id, force=True)
