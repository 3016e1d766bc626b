"""stages/evaluate.py (metrics, tutorial lines) and stages/plot.py (byte-reproducible PNGs)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import load_stage

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
METRICS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["accuracy", "classes", "confusion", "correct", "per_class_accuracy", "test_images"],
    "properties": {
        "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "confusion": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        },
        "correct": {"type": "integer", "minimum": 0},
        "per_class_accuracy": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "test_images": {"type": "integer", "minimum": 0},
    },
}


def confusion_with_diagonal(diagonal: list[int], per_class: int = 10) -> list[list[int]]:
    """Each class `per_class` images; `diagonal[i]` right, the rest predicted as the next class."""
    matrix = [[0] * len(diagonal) for _ in diagonal]
    for i, right in enumerate(diagonal):
        matrix[i][i] = right
        matrix[i][(i + 1) % len(diagonal)] += per_class - right
    return matrix


@pytest.fixture(scope="module")
def evaluate() -> ModuleType:
    pytest.importorskip("torch")
    return load_stage("evaluate")


@pytest.fixture(scope="module")
def plot() -> ModuleType:
    pytest.importorskip("matplotlib")
    return load_stage("plot")


# --- evaluate ---------------------------------------------------------------------------------


@pytest.mark.torch
def test_confusion_matrix_rows_are_true_classes(evaluate: ModuleType) -> None:
    import torch

    labels, predicted = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0])
    assert evaluate.confusion_matrix(labels, predicted, 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


@pytest.mark.torch
def test_metrics_match_the_schema_and_round(evaluate: ModuleType) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    result = evaluate.metrics([[2, 1, 0], [0, 3, 0], [1, 1, 1]], ["a", "b", "c"])
    jsonschema.validate(result, METRICS_SCHEMA)
    assert result["accuracy"] == 0.6667 and result["correct"] == 6 and result["test_images"] == 9
    assert result["per_class_accuracy"] == {"a": 0.6667, "b": 1.0, "c": 0.3333}


@pytest.mark.torch
def test_prints_the_tutorials_lines(evaluate: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    diagonal = [60, 65, 29, 44, 54, 41, 52, 68, 78, 63]  # the tutorial's; 100 * 0.29 == 28.999999999999996
    result = evaluate.metrics(confusion_with_diagonal(diagonal, per_class=100), NAMES)
    evaluate.print_tutorial_lines(result, torch.tensor([3, 8, 8, 0]), torch.tensor([3, 8, 1, 0]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "GroundTruth:    cat  ship  ship plane"
    assert lines[1] == "Predicted:    cat  ship   car plane"
    assert lines[2] == "Accuracy of the network on the 1000 test images: 55 %"
    assert lines[3] == "Accuracy of plane : 60 %"
    assert lines[5] == "Accuracy of  bird : 29 %"
    assert all(re.fullmatch(r"Accuracy of [ a-z]{5} : [ \d]\d %", line) for line in lines[3:])
    assert len(lines) == 13


@pytest.mark.torch
def test_weights_of_another_model_are_a_clean_error(
    tmp_path: Path, tiny_data: Path, evaluate: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    cifar = load_stage("cifar")
    (tmp_path / "model.pt").write_bytes(cifar.state_dict_bytes(cifar.build_model("lenet")))
    argv = [
        "--data",
        str(tiny_data),
        "--weights",
        str(tmp_path / "model.pt"),
        "--model",
        "resnet",
        "--device",
        "cpu",
    ]
    assert evaluate.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("evaluate.py: error: Error(s) in loading state_dict") and err.count("\n") == 1


# --- plot -------------------------------------------------------------------------------------


@pytest.fixture
def plot_inputs(tmp_path: Path) -> Path:
    metrics = {
        "accuracy": 0.51,
        "classes": NAMES,
        "confusion": confusion_with_diagonal([5] * 10),
        "correct": 51,
        "per_class_accuracy": {n: 0.5 for n in NAMES},
        "test_images": 100,
    }
    loss = {
        "config": {"model": "lenet", "batch_size": 4, "lr": 0.001},
        "steps_per_epoch": 5,
        "log_interval": 2,
        "epoch_mean_loss": [2.0, 1.5],
        "loss": [2.3, 2.2, 2.0, 1.8, 1.7, 1.6, 1.5, 1.5, 1.4, 1.3],
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "loss.json").write_text(json.dumps(loss))
    return tmp_path


def run_plot(plot: ModuleType, folder: Path, out: Path) -> dict[str, bytes]:
    names = {"figure": "figure.png", "confusion": "confusion.png", "loss-figure": "loss.png"}
    argv = ["--metrics", str(folder / "metrics.json"), "--loss", str(folder / "loss.json")]
    for flag, name in names.items():
        argv += [f"--{flag}", str(out / name)]
    assert plot.main(argv) == 0
    return {name: (out / name).read_bytes() for name in names.values()}


def test_plots_are_byte_reproducible_pngs_without_software_tag(plot_inputs: Path, plot: ModuleType) -> None:
    first = run_plot(plot, plot_inputs, plot_inputs / "a")
    second = run_plot(plot, plot_inputs, plot_inputs / "b")
    assert first == second
    for data in first.values():
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"Software" not in data and b"matplotlib" not in data.lower()


def test_a_changed_metric_changes_the_figure(plot_inputs: Path, plot: ModuleType) -> None:
    before = run_plot(plot, plot_inputs, plot_inputs / "a")
    metrics = json.loads((plot_inputs / "metrics.json").read_text())
    metrics["per_class_accuracy"]["cat"] = 0.9
    (plot_inputs / "metrics.json").write_text(json.dumps(metrics))
    after = run_plot(plot, plot_inputs, plot_inputs / "b")
    assert before["figure.png"] != after["figure.png"]
    assert before["loss.png"] == after["loss.png"]


def test_missing_metrics_is_a_clean_error(
    tmp_path: Path, plot: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plot.main(["--metrics", str(tmp_path / "nope.json"), "--loss", str(tmp_path / "loss.json")]) == 1
    assert capsys.readouterr().err.startswith("plot.py: error: ")


def test_moving_average_is_a_trailing_mean(plot: ModuleType) -> None:
    assert plot.moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
