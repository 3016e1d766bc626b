"""Stage `plot`: `figure.png` (per-class accuracy), `confusion.png` and `loss.png`.

Reads only `metrics.json` and `loss.json` (never the model or torch), so editing
this file reruns this stage alone. The PNGs are byte-reproducible: Agg backend,
fixed size and dpi, default style, and no `Software`/date metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, deterministic raster output

import matplotlib.pyplot as plt  # noqa: E402

DPI = 100
PNG_METADATA: dict[str, Any] = {"Software": None}  # matplotlib writes no date into PNGs; drop its version too


def save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)


def accuracy_figure(metrics: dict[str, Any]) -> Any:
    """The tutorial's bar chart: accuracy of each class, in percent."""
    names = metrics["classes"]
    values = [100 * metrics["per_class_accuracy"][n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = ax.bar(range(len(names)), values, color="tab:blue")
    ax.bar_label(bars, fmt="%.0f", padding=2, fontsize=8)
    ax.axhline(
        100 * metrics["accuracy"],
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"overall {100 * metrics['accuracy']:.1f} %",
    )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy per class ({metrics['test_images']} test images)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(metrics: dict[str, Any]) -> Any:
    names, matrix = metrics["classes"], metrics["confusion"]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="images")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return fig


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def loss_figure(loss: dict[str, Any]) -> Any:
    steps, per_epoch = loss["loss"], loss["steps_per_epoch"]
    window = max(1, loss["log_interval"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(range(1, len(steps) + 1), steps, color="tab:blue", alpha=0.25, linewidth=0.5, label="step")
    ax.plot(
        range(1, len(steps) + 1),
        moving_average(steps, window),
        color="tab:blue",
        label=f"mean of last {window}",
    )
    for epoch in range(1, len(loss["epoch_mean_loss"])):
        ax.axvline(epoch * per_epoch, color="grey", linestyle=":", linewidth=1)
    config = loss["config"]
    ax.set_title(f"Training loss ({config['model']}, batch {config['batch_size']}, lr {config['lr']})")
    ax.set_xlabel("mini-batch")
    ax.set_ylabel("cross-entropy")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="plot.py")
    p.add_argument("--metrics", type=Path, default=Path("metrics.json"))
    p.add_argument("--loss", type=Path, default=Path("loss.json"))
    p.add_argument("--figure", type=Path, default=Path("figure.png"), help="per-class accuracy chart")
    p.add_argument("--confusion", type=Path, default=Path("confusion.png"))
    p.add_argument("--loss-figure", type=Path, default=Path("loss.png"))
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    matplotlib.rcdefaults()  # a user's matplotlibrc must not change the bytes
    matplotlib.use("Agg")
    try:
        metrics = json.loads(args.metrics.read_text())
        loss = json.loads(args.loss.read_text())
    except (OSError, ValueError) as exc:
        print(f"plot.py: error: {exc}", file=sys.stderr)
        return 1
    save(accuracy_figure(metrics), args.figure)
    save(confusion_figure(metrics), args.confusion)
    save(loss_figure(loss), args.loss_figure)
    print(f"wrote {args.figure}, {args.confusion}, {args.loss_figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
