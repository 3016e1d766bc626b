"""The whole example, data → train (both nets) → evaluate → compare, plot, run twice: byte-identical results.

Each stage runs as a subprocess (`python3 stages/<x>.py …` from the Buildfile's own
command) in a scratch directory holding only its declared inputs, as `bg`'s local
executor runs it; the two pipelines run side by side in separate directories.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .pipeline import SMALL, SMALL_TRAIN, run_pipelines, sha256_tree, spec

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

OUTPUTS = (
    *(f"models/{net}/{name}" for net in ("lenet", "resnet") for name in ("model.pt", "loss.json")),
    "eval/lenet/metrics.json",
    "eval/resnet/metrics.json",
    "comparison.json",
    "figure.png",
    "confusion.png",
    "loss.png",
)


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pipelines")
    workspaces = [root / "first", root / "second"]
    for ws in workspaces:
        ws.mkdir()
    run_pipelines(workspaces, spec(SMALL, SMALL_TRAIN))
    return workspaces[0], workspaces[1]


def test_every_output_is_byte_identical(twice: tuple[Path, Path]) -> None:
    first, second = (sha256_tree(ws) for ws in twice)
    assert set(OUTPUTS) <= set(first)
    assert any(p.startswith("data/cifar-10-batches-py/") for p in first)
    assert first == second


def test_the_run_learned_and_recorded_itself(twice: tuple[Path, Path]) -> None:
    metrics = json.loads((twice[0] / "eval/lenet/metrics.json").read_text())
    loss = json.loads((twice[0] / "models/lenet/loss.json").read_text())
    assert metrics["test_images"] == SMALL["synthetic_test"] and len(metrics["classes"]) == 10
    assert loss["config"]["train_images"] == SMALL["synthetic_train"]
    assert loss["environment"]["threads"] == SMALL["threads"]
    assert len(loss["loss"]) == SMALL["synthetic_train"] // SMALL_TRAIN["batch_size"]
    compared = json.loads((twice[0] / "comparison.json").read_text())
    assert set(compared["accuracy"]) == {"lenet", "resnet"} and sorted(compared["rank"].values()) == [1, 2]
