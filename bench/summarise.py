"""Render bench_core JSON as the Markdown table used in bench/README.md and the release notes.

    python bench/summarise.py bench/results/core.json [bench/results/scaling.json …]

One row per (stages, phase), one column per tool: median seconds, then bg ÷ make and
bg ÷ doit. Ratios are only meaningful within one file (one run), so files are not merged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PHASES  # noqa: E402

TOOLS = ("bg", "make", "doit")
# bg status has no make/doit counterpart: compare it with their null/touch run.
COUNTERPART = {"null status": "null run", "touch status 1": "touch run 1", "touch status 2": "touch run 2"}


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    medians = {(r["size"], r["tool"], r["phase"]): r["median"] for r in data["rows"]}
    sizes = sorted({size for size, _, _ in medians})
    lines = [
        "| stages | phase | bg s | make s | doit s | bg ÷ make | bg ÷ doit |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        for phase in PHASES:
            if not any((size, tool, phase) in medians for tool in TOOLS):
                continue
            ref = COUNTERPART.get(phase, phase)
            bg = medians.get((size, "bg", phase))
            make, doit = medians.get((size, "make", ref)), medians.get((size, "doit", ref))
            cells = [_s(bg), _s(medians.get((size, "make", phase))), _s(medians.get((size, "doit", phase)))]
            lines.append(
                f"| {size} | {phase} | " + " | ".join(cells) + f" | {_x(bg, make)} | {_x(bg, doit)} |"
            )
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _x(value: float | None, base: float | None) -> str:
    return "–" if value is None or not base else f"{value / base:.2f}"


def main(argv: list[str]) -> int:
    for name in argv:
        data = json.loads(Path(name).read_text())
        m = data["machine"]
        reps = f"{data['reps']} reps ({data['full_reps']} for full builds)"
        print(f"{name}: {m['date']}, {m['cores']} cores, {reps}\n")
        print(markdown(data) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
