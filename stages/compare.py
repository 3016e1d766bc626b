"""Stage `compare`: the nets the `train`/`evaluate` matrix made, side by side → `comparison.json`.

Reads `eval/<model>/metrics.json` for every model evaluated (the folder `eval/` holds one per
matrix value), prints a table, and writes their accuracies and per-class accuracies, with the
best net's margin over the others. Standard library only; byte-reproducible (sorted keys,
rounded numbers), so re-evaluating unchanged nets cuts the cascade off here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DIGITS = 4


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """Model name → its metrics, for every `<model>/metrics.json` under `folder`."""
    found = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))}
    if not found:
        raise SystemExit(f"compare: no */metrics.json under {folder}")
    return found


def comparison(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Accuracies by model, per-class accuracies by class then model, and the best net's margin."""
    accuracy = {model: m["accuracy"] for model, m in metrics.items()}
    ranked = sorted(accuracy, key=lambda model: (-accuracy[model], model))
    margin = accuracy[ranked[0]] - accuracy[ranked[1]] if len(ranked) > 1 else 0.0
    classes = next(iter(metrics.values()))["classes"]
    per_class = {c: {model: m["per_class_accuracy"][c] for model, m in metrics.items()} for c in classes}
    return {
        "accuracy": accuracy,
        "best_margin": round(margin, DIGITS),
        "per_class_accuracy": per_class,
        "rank": {model: place for place, model in enumerate(ranked, start=1)},
    }


def table(result: dict[str, Any]) -> str:
    rows = sorted(result["rank"], key=result["rank"].get)
    lines = [f"{'model':<8} {'accuracy':>8}"] + [f"{m:<8} {result['accuracy'][m]:>8.4f}" for m in rows]
    return "\n".join(lines) + f"\nbest: {rows[0]} (by {result['best_margin']:.4f})\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, default=Path("eval"), help="folder of <model>/metrics.json")
    p.add_argument("--out", type=Path, default=Path("comparison.json"))
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = comparison(load(args.eval))
    sys.stdout.write(table(result))
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)  # a killed stage never leaves half a file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
