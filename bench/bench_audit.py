"""Audit benchmark: what `bg audit` costs over rerunning the same stages, and what comparing costs.

    python bench/bench_audit.py --reps 3 --out bench/results/audit.json

1. The CIFAR-10 example (host executor, its default params) is run once; then, interleaved per
   repetition, `bg run --force <every run stage> -j1` (the baseline: the same commands, stored)
   and `bg audit -j1` (the same commands in a sandbox, compared). Target: audit ≤ 1.2× the
   forced run (the outputs reproduce, so there is no comparison cost on top).
2. The comparison cost on a 100 MB checkpoint: two torch state dicts of 25 M float32 values
   differing in one tensor, compared by `buildgraph.audit.compare.compare`; the baseline is one
   sha256 of both files (what deciding "differs" costs anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bg_command, format_table, machine, machine_line, median, run_timed, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN_STAGES = ("data", "train", "evaluate", "plot")


def example_copy(into: Path) -> Path:
    root = into / "cifar10"
    root.mkdir()
    shutil.copy2(ROOT / "Buildfile.toml", root / "Buildfile.toml")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def audit_vs_forced(reps: int, work: Path) -> dict[str, object]:
    root = example_copy(work)
    bg = [*bg_command(), "-C", str(root)]
    run_timed([*bg, "run", "-q"])
    forced_argv = [*bg, "run", "-q", "-j1", *(f"--force={s}" for s in RUN_STAGES)]
    audit_argv = [*bg, "audit", "-q", "-j1"]
    forced, audited = [], []
    for _ in range(reps):  # interleaved: noise hits both alike
        forced.append(run_timed(forced_argv).seconds)
        audited.append(run_timed(audit_argv).seconds)
    ratio = median(audited) / median(forced)
    return {"forced_s": forced, "audit_s": audited, "ratio": ratio}


def checkpoint_pair(work: Path, megabytes: int, every: bool) -> tuple[Path, Path]:
    """Two checkpoints of `megabytes` in 10 tensors: one value changed, or (`every`) all of them."""
    import torch

    values = megabytes * (1 << 20) // 4
    generator = torch.Generator().manual_seed(0)
    layers = 10
    state = {f"layer{i}.weight": torch.randn(values // layers, generator=generator) for i in range(layers)}
    name = "every" if every else "one"
    first, second = work / f"{name}-a.pt", work / f"{name}-b.pt"
    torch.save(state, first)
    if every:
        state = {k: v + 1e-3 for k, v in state.items()}
    else:
        state["layer3.weight"][123] += 1e-3
    torch.save(state, second)
    return first, second


def comparison_cost(reps: int, work: Path, megabytes: int, every: bool) -> dict[str, object]:
    from buildgraph.audit.compare import compare

    first, second = checkpoint_pair(work, megabytes, every)
    hashing, comparing = [], []
    summary = ""
    for _ in range(reps):
        start = time.perf_counter()
        for path in (first, second):
            hashlib.file_digest(path.open("rb"), "sha256")
        hashing.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = compare("model.pt", first, second, None)
        comparing.append(time.perf_counter() - start)
        summary = found.summary
    return {
        "size_mb": first.stat().st_size / 1e6,
        "sha256_both_s": hashing,
        "compare_s": comparing,
        "ratio_to_hashing": median(comparing) / median(hashing),
        "summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--checkpoint-mb", type=int, default=100)
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    info = machine()
    print(machine_line(info))
    with tempfile.TemporaryDirectory(prefix="bg-bench-audit-") as tmp:
        work = Path(tmp)
        runs = audit_vs_forced(ns.reps, work)
        costs = {
            name: comparison_cost(ns.reps, work, ns.checkpoint_mb, name == "every")
            for name in ("one", "every")
        }
    table = [["bg audit -j1 (example)", median(runs["audit_s"]), median(runs["forced_s"]), runs["ratio"]]]
    for name, cost in costs.items():
        what = "one value" if name == "one" else "every value"
        table.append(
            [
                f"compare {cost['size_mb']:.0f} MB checkpoint, {what} changed",
                median(cost["compare_s"]),
                median(cost["sha256_both_s"]),
                cost["ratio_to_hashing"],
            ]
        )
    print(format_table(["measure", "median s", "baseline s (sha256 of both)", "ratio"], table))
    for name, cost in costs.items():
        print(f"difference found ({name}): {cost['summary']}")
    target = runs["ratio"] <= 1.2
    print(f"audit / forced run = {runs['ratio']:.2f} (target ≤ 1.2): {'ok' if target else 'MISSED'}")
    if ns.out:
        write_json(ns.out, {"machine": info, "audit": runs, "compare": costs})
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
