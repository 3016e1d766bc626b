"""The example passes its audit on the host: `bg audit` reruns every run stage with its recorded
inputs and finds every output bit for bit identical, plainly and under `--vary`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .pipeline import RUN_STAGES, SMALL

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

PARAMS = [f"--param={k}={v}" for k, v in SMALL.items()]


def bg(root: Path, *args: str, check: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "buildgraph", "-C", str(root), *args, *PARAMS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == check, (
        f"bg {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar10-audit")
    shutil.copy2(ROOT / "Buildfile.toml", root / "Buildfile.toml")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    bg(root, "run", "--executor", "local")
    return root


def test_every_output_of_the_example_reproduces(example: Path) -> None:
    found = json.loads(bg(example, "audit", "--json"))
    assert found["reproduced"] is True, found
    assert [s["stage"] for s in found["stages"]] == list(RUN_STAGES)
    outputs = {o["path"]: o["result"] for s in found["stages"] for o in s["outputs"]}
    assert set(outputs) == {
        "data",
        "model.pt",
        "loss.json",
        "metrics.json",
        "figure.png",
        "confusion.png",
        "loss.png",
    }
    assert set(outputs.values()) == {"identical"}


def test_the_example_reproduces_under_variation(example: Path) -> None:
    found = json.loads(bg(example, "audit", "--vary", "--json"))
    assert found["reproduced"] is True, found
    assert {"path", "tz", "locale", "umask", "hashseed"} <= set(found["varied"])


def test_auditing_evaluate_reads_the_recorded_model_without_training(example: Path) -> None:
    (example / "model.pt").unlink()  # the recorded model comes from the cache, by digest
    try:
        found = json.loads(bg(example, "audit", "evaluate", "--json"))
        assert [s["stage"] for s in found["stages"]] == ["evaluate"]
        assert found["reproduced"] is True
        assert not (example / "model.pt").exists()  # the workspace is left as it was
    finally:
        bg(example, "run", "--executor", "local")  # restores model.pt from the cache
