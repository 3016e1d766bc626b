"""Render bench_core JSON as the Markdown tables used in bench/README.md and the release notes.

    python bench/summarise.py bench/results/core.json [bench/results/scaling.json …]

One row per (stages, phase), one column per tool present (median seconds; a killed command as
"> N s (killed at k of n)"), then bg ÷ make, bg ÷ doit and bg's peak RSS; then the targets.
Ratios are only meaningful within one file (one run), so files are not merged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PHASES  # noqa: E402
from tools import ALL_TOOLS  # noqa: E402

# make has no read-only status: bg status is compared with make's run of the same moment.
COUNTERPART = {"null status": "null run", "touch status 1": "touch run 1", "touch status 2": "touch run 2"}


def markdown(data: dict[str, Any]) -> str:
    rows = {(r["size"], r["tool"], r["phase"]): r for r in data["rows"]}
    medians = {key: r["median"] for key, r in rows.items() if r["median"] is not None}
    sizes = sorted({size for size, _, _ in rows})
    tools = [t for t in ALL_TOOLS if any(tool == t for _, tool, _ in rows)]
    lines = [
        "| stages | phase | " + " | ".join(f"{t} s" for t in tools) + " | bg ÷ make | bg ÷ doit | bg MB |",
        "|---:|---|" + "---:|" * (len(tools) + 3),
    ]
    for size in sizes:
        for phase in PHASES:
            if not any((size, tool, phase) in rows for tool in tools):
                continue
            bg = medians.get((size, "bg", phase))
            make = medians.get((size, "make", phase), medians.get((size, "make", COUNTERPART.get(phase, ""))))
            doit = medians.get((size, "doit", phase), medians.get((size, "doit", COUNTERPART.get(phase, ""))))
            cells = [figure(rows.get((size, tool, phase))) for tool in tools]
            rss = (rows.get((size, "bg", phase)) or {}).get("peak_rss_mb")
            tail = f"{_x(bg, make)} | {_x(bg, doit)} | {'–' if rss is None else f'{rss:.0f}'}"
            lines.append(f"| {size} | {phase} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines)


def figure(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    killed = row.get("killed")
    if killed and row["median"] is None:
        return f"> {killed['limit_s']:g} s (killed at {killed['done']:,.0f} of {killed['of']:,.0f})"
    return seconds(row["median"])


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _x(value: float | None, base: float | None) -> str:
    return "–" if value is None or not base else f"{value / base:.2f}"


def targets_markdown(data: dict[str, Any]) -> str:
    lines = ["| target | value | limit | verdict |", "|---|---:|---:|---|"]
    for t in data.get("targets", []):
        limit = "–" if t["limit"] is None else f"{t['limit']:g}"
        lines.append(f"| {t['target']} | {t['value']:.3g} | {limit} | {t['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    for name in argv:
        data = json.loads(Path(name).read_text())
        m = data["machine"]
        reps = f"{data['reps']} reps ({data['full_reps']} for full builds)"
        workload = data.get("workload", "shared")
        print(f"{name}: {m['date']}, {m['cores']} cores, workload {workload}, {reps}\n")
        print(markdown(data) + "\n")
        print(targets_markdown(data) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
