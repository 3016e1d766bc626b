"""The whole example, data → train → evaluate → plot, run twice: byte-identical results.

Each stage runs as a subprocess (`python3 stages/<x>.py …` from the Buildfile's own
command) in a scratch directory holding only its declared inputs, as `bg`'s local
executor runs it; the two pipelines run side by side in separate directories.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .pipeline import SMALL, buildfile, param_defaults, run_pipelines, sha256_tree

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

OUTPUTS = ("model.pt", "loss.json", "metrics.json", "figure.png", "confusion.png", "loss.png")


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pipelines")
    workspaces = [root / "first", root / "second"]
    for ws in workspaces:
        ws.mkdir()
    run_pipelines(workspaces, {**param_defaults(buildfile()), **SMALL})
    return workspaces[0], workspaces[1]


def test_every_output_is_byte_identical(twice: tuple[Path, Path]) -> None:
    first, second = (sha256_tree(ws) for ws in twice)
    assert set(OUTPUTS) <= set(first)
    assert any(p.startswith("data/cifar-10-batches-py/") for p in first)
    assert first == second


def test_the_run_learned_and_recorded_itself(twice: tuple[Path, Path]) -> None:
    metrics = json.loads((twice[0] / "metrics.json").read_text())
    loss = json.loads((twice[0] / "loss.json").read_text())
    assert metrics["test_images"] == SMALL["synthetic_test"] and len(metrics["classes"]) == 10
    assert loss["config"]["train_images"] == SMALL["synthetic_train"]
    assert loss["environment"]["threads"] == SMALL["threads"]
    assert len(loss["loss"]) == SMALL["synthetic_train"] // SMALL["batch_size"]
