"""Stage `evaluate`: accuracy, per-class accuracy and the confusion matrix → `metrics.json`.

Prints the PyTorch tutorial's lines. `metrics.json` is byte-reproducible (sorted
keys, rounded floats, no timestamps), so re-evaluating an unchanged model leaves
`plot` valid (early cutoff).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cifar  # stages/cifar.py, next to this file
import torch

DIGITS = 4  # accuracies are fractions rounded to 4 decimals


def predict(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Predicted class of every image, batch by batch, in order."""
    model.eval()
    predictions = []
    with torch.no_grad():
        for batch, _ in cifar.loader(
            images, torch.zeros(len(images), dtype=torch.long), batch_size, shuffle=False
        ):
            predictions.append(model(cifar.normalise(batch).to(device)).argmax(dim=1).cpu())
    return torch.cat(predictions)


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> list[list[int]]:
    """Rows are true classes, columns predicted ones."""
    counts = torch.bincount(labels * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


def metrics(confusion: list[list[int]], names: list[str]) -> dict[str, Any]:
    total = sum(map(sum, confusion))
    correct = sum(confusion[i][i] for i in range(len(names)))
    per_class = {
        name: round(confusion[i][i] / max(sum(confusion[i]), 1), DIGITS) for i, name in enumerate(names)
    }
    return {
        "accuracy": round(correct / max(total, 1), DIGITS),
        "classes": names,  # the order of the confusion matrix's rows and columns
        "confusion": confusion,
        "correct": correct,
        "per_class_accuracy": per_class,
        "test_images": total,
    }


def print_tutorial_lines(result: dict[str, Any], labels: torch.Tensor, predicted: torch.Tensor) -> None:
    """The tutorial's output, `%` formats included (percentages from counts, truncated like `%d`)."""
    short = [cifar.SHORT_NAMES.get(n, n) for n in result["classes"]]
    first = range(min(4, len(labels)))
    print("GroundTruth: ", " ".join("%5s" % short[int(labels[j])] for j in first))  # noqa: UP031
    print("Predicted: ", " ".join("%5s" % short[int(predicted[j])] for j in first))  # noqa: UP031
    total = result["test_images"]
    line = "Accuracy of the network on the %d test images: %d %%"
    print(line % (total, 100 * result["correct"] // max(total, 1)))  # noqa: UP031
    for i, row in enumerate(result["confusion"]):
        print("Accuracy of %5s : %2d %%" % (short[i], 100 * row[i] // max(sum(row), 1)))  # noqa: UP031


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="evaluate.py")
    p.add_argument("--data", type=Path, default=Path("data"), help="folder holding cifar-10-batches-py/")
    p.add_argument("--weights", type=Path, default=Path("model.pt"), help="state dict written by train.py")
    p.add_argument("--model", choices=cifar.MODELS, default="lenet")
    p.add_argument("--batch-size", type=int, default=100, help="evaluation batch size")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", type=Path, default=Path("metrics.json"))
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = cifar.resolve_device(args.device)
        model = cifar.build_model(args.model)
        model.load_state_dict(cifar.load_state_dict(args.weights))
    except (RuntimeError, OSError) as exc:  # no CUDA, missing file, or weights of another --model
        print(f"evaluate.py: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    cifar.make_deterministic(0, args.threads, device)
    images, labels = cifar.load_split(args.data, train=False)
    predicted = predict(model.to(device), images, args.batch_size, device)
    names = cifar.label_names(args.data)
    result = metrics(confusion_matrix(labels, predicted, len(names)), names)
    print_tutorial_lines(result, labels, predicted)
    cifar.write_atomic(args.out, cifar.json_text(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
