#!/usr/bin/env python3
"""The README's figures, from a run: never typed in by hand.

    bash scripts/main.sh                   # the main job: runs the example, leaves eval/, figure.png
    python scripts/readme_figures.py       # records that run in docs/img/, rewrites the README's block
    python scripts/readme_figures.py --check   # exit 1 when the README's block differs from the record

The record (`docs/img/figures.json`) holds what `bg metrics` (and `--json`) printed after the run,
the `evaluate-lenet` stage's key from Buildfile.lock (which names the code, data and params that
produced the numbers) and the versions that ran it; `figure.png` is copied next to it. The
README block between the markers is rendered from that record alone, and a test checks
that it is (`tests/unit/test_readme_figures.py`).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "docs" / "img" / "figures.json"
BEGIN = "<!-- figures: rendered by scripts/readme_figures.py from docs/img/figures.json; do not edit -->"
END = "<!-- /figures -->"
SHOWN = 3  # metric lines the README shows before "…"
STAGE = "evaluate-lenet"  # the tutorial's net, evaluated (the matrix's first): its numbers come first


def record(root: Path) -> dict[str, object]:
    """What the main job's last run produced, from the tool itself and its lock."""
    def bg_metrics(*options: str) -> str:
        argv = [sys.executable, "-m", "buildgraph", "-C", str(root), "metrics", *options]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    lock = json.loads((root / "Buildfile.lock").read_text())["stages"]
    from importlib.metadata import version  # of the torch that trained the model, without importing it

    return {
        "command": "bash scripts/main.sh",
        "metrics": json.loads(bg_metrics("--json")).get(STAGE, {}),
        "printed": bg_metrics().splitlines(),  # what `bg metrics` showed, as the README shows it
        "evaluate_key": lock[STAGE]["key"],
        "torch": version("torch"),
        "python": platform.python_version(),
    }


def render(facts: dict[str, object]) -> str:
    printed = list(facts["printed"])  # type: ignore[call-overload]
    lines = printed[:SHOWN] + ([f"… ({len(printed) - SHOWN} more)"] if len(printed) > SHOWN else [])
    return "\n".join(
        [
            BEGIN,
            "![per-class accuracy](docs/img/figure.png)",
            "",
            "```",
            "$ bg metrics",
            *lines,
            "```",
            "",
            f"(from `{facts['command']}` with torch {facts['torch']} on Python {facts['python']}; "
            f"{STAGE} key `{str(facts['evaluate_key'])[:12]}`)",
            END,
        ]
    )


def replace_block(readme: str, block: str) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no block between {BEGIN!r} and {END!r}")
    return readme[:start] + block + readme[end + len(END) :]


def shows(readme: str, facts: dict[str, object]) -> bool:
    """Whether the README's block is exactly what the record renders to."""
    return replace_block(readme, render(facts)) == readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare the README with the record")
    ns = parser.parse_args(argv)
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    if ns.check:
        if not shows(readme, json.loads(RECORD.read_text())):
            print("README.md's figures differ from docs/img/figures.json: run scripts/readme_figures.py")
            return 1
        return 0
    facts = record(ROOT)
    RECORD.write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.copyfile(ROOT / "figure.png", ROOT / "docs" / "img" / "figure.png")
    readme_path.write_text(replace_block(readme, render(facts)), encoding="utf-8")
    print(f"recorded {RECORD.relative_to(ROOT)}; README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
