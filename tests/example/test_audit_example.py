"""The example passes its audit on the host: `bg audit` reruns every run stage with its recorded
inputs and finds every output bit for bit identical, plainly and under `--vary`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .pipeline import NETS, RUN_STAGES, SMALL, SMALL_TRAIN, params_file

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
    (root / "params.yaml").write_text(yaml.safe_dump(params_file(**SMALL_TRAIN)))
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
        *(f"models/{net}" for net in NETS),
        *(f"eval/{net}" for net in NETS),
        "comparison.json",
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
    shutil.rmtree(example / "models/lenet")  # the recorded model comes from the cache, by digest
    try:
        found = json.loads(bg(example, "audit", "evaluate-lenet", "--json"))
        assert [s["stage"] for s in found["stages"]] == ["evaluate-lenet"]
        assert found["reproduced"] is True
        assert not (example / "models/lenet").exists()  # the workspace is left as it was
    finally:
        bg(example, "run", "--executor", "local")  # restores models/lenet/ from the cache

