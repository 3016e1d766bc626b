"""Core benchmark: bg against GNU make and doit on the same random DAGs, in the same run.

    python bench/bench_core.py --sizes 10,100,1000 --reps 5 --out bench/results/core.json

Per size, every tool gets its own copy of the same workload (bench/dag.py) and goes through
the same phases, repetitions interleaved across tools so that noise hits them alike:

  full -jN      first build from a clean state (outputs and the tool's state removed)
  null          nothing changed (bg: `bg run` and `bg status`)
  touch 1/2     after `touch` of one data file (mtime only): the run right after, then the next
  edit          after changing one data file's bytes: rebuilding what depends on it

Each timed run also records how many outputs it rewrote (inode or mtime changed), so "bg ran
nothing after a touch" is checked, not assumed. Medians are printed with ratios against make
and doit, and the release targets are checked at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PHASES,
    CommandFailed,
    bg_command,
    count_rewritten,
    executable,
    format_table,
    machine,
    machine_line,
    median,
    output_signatures,
    repeat_timed,
    run_timed,
    verdict,
    write_json,
)
from dag import Dag, make_dag, write_data, write_workspace  # noqa: E402

FILE_SIZE = 100_000  # 100 files x 100 KB = 10 MB of input, as the release notes state
DOIT_BACKEND = "json"  # fastest doit state backend here (dbm is dbm.dumb without gdbm; see README)


@dataclass
class Tool:
    """How one tool does each phase, in its own workspace."""

    name: str
    ws: Path
    state: tuple[str, ...]  # files/dirs holding the tool's memory, removed for a first build
    full: dict[str, list[str]]  # config label → argv of a build
    run: list[str]  # an incremental run (-j1)
    status: list[str] | None = None  # a read-only "what would run" (bg only)
    error: str | None = None  # set when the tool failed; its later phases are skipped

    def reset(self) -> None:
        for name in self.state:
            path = self.ws / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        shutil.rmtree(self.ws / "out")
        (self.ws / "out").mkdir()


def make_tools(root: Path, dag: Dag, template: Path, names: list[str]) -> list[Tool]:
    tools = []
    for name in names:
        ws = write_workspace(root, dag, name, template)
        tools.append(_tool(name, ws))
    return tools


def _tool(name: str, ws: Path) -> Tool:
    if name == "bg":
        bg = bg_command()
        return Tool(
            name,
            ws,
            (".bg", "Buildfile.lock"),
            {"-j1": [*bg, "run", "--quiet", "-j", "1"], "-j2": [*bg, "run", "--quiet", "-j", "2"]},
            [*bg, "run", "--quiet", "-j", "1"],
            [*bg, "status"],
        )
    if name == "make":
        return Tool(
            name, ws, (), {"-j1": ["make", "-s", "-j1"], "-j2": ["make", "-s", "-j2"]}, ["make", "-s"]
        )
    doit = [executable("doit"), "--backend", DOIT_BACKEND]
    return Tool(name, ws, (".doit.db",), {"-j1": doit, "-j2": doit + ["-n", "2", "-P", "thread"]}, doit)


@dataclass
class Row:
    size: int
    tool: str
    phase: str
    times: list[float] = field(default_factory=list)
    rewritten: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.times)


class Recorder:
    """Collects timings by (size, tool, phase); a failing tool is recorded once and then skipped."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, str], Row] = {}
        self.errors: list[str] = []

    def time(self, size: int, tool: Tool, phase: str, argv: list[str]) -> None:
        if tool.error:
            return
        before = output_signatures(tool.ws / "out")
        try:
            seconds = run_timed(argv, tool.ws).seconds
        except CommandFailed as exc:
            tool.error = str(exc)
            self.errors.append(f"[{tool.name}, {size} stages, {phase}] {exc}")
            return
        row = self.rows.setdefault((size, tool.name, phase), Row(size, tool.name, phase))
        row.times.append(seconds)
        row.rewritten.append(count_rewritten(before, output_signatures(tool.ws / "out")))

    def get(self, size: int, tool: str, phase: str) -> float | None:
        row = self.rows.get((size, tool, phase))
        return row.median if row and row.times else None


def bench_size(
    size: int, reps: int, full_reps: int, names: list[str], rec: Recorder, log: Callable[[str], None]
) -> dict[str, object]:
    dag = make_dag(size)
    changed_file = dag.median_fanout_file()
    affected = len(dag.downstream_of(changed_file))
    with tempfile.TemporaryDirectory(prefix=f"bg-bench-{size}-") as tmp:
        root = Path(tmp)
        write_data(root / "template", dag, FILE_SIZE)
        tools = make_tools(root, dag, root / "template", names)
        log(f"{size} stages: full builds ({full_reps} reps)")
        _full_builds(size, tools, full_reps, rec)
        log(f"{size} stages: null, touch and edit runs ({reps} reps)")
        _null_runs(size, tools, reps, rec)
        _touch_runs(size, tools, reps, rec, changed_file)
        _edit_runs(size, tools, reps, rec, changed_file)
    return {"stages": size, "changed_file": changed_file, "affected_stages": affected}


def _full_builds(size: int, tools: list[Tool], reps: int, rec: Recorder) -> None:
    for _ in range(reps):
        for tool in tools:
            for label, argv in tool.full.items():
                if not tool.error:
                    tool.reset()
                rec.time(size, tool, f"full {label}", argv)


def _null_runs(size: int, tools: list[Tool], reps: int, rec: Recorder) -> None:
    for _ in range(reps):
        for tool in tools:
            rec.time(size, tool, "null run", tool.run)
            if tool.status:
                rec.time(size, tool, "null status", tool.status)


def _touch_runs(size: int, tools: list[Tool], reps: int, rec: Recorder, path: str) -> None:
    for _ in range(reps):
        for tool in tools:
            os.utime(tool.ws / path)
            rec.time(size, tool, "touch run 1", tool.run)
            rec.time(size, tool, "touch run 2", tool.run)
            if tool.status:  # does a read-only status also remember the re-hash?
                os.utime(tool.ws / path)
                rec.time(size, tool, "touch status 1", tool.status)
                rec.time(size, tool, "touch status 2", tool.status)


def _edit_runs(size: int, tools: list[Tool], reps: int, rec: Recorder, path: str) -> None:
    for rep in range(reps):
        # New bytes every repetition, so bg's run cache cannot answer from an earlier edit.
        nonce = random.Random(f"{size}-{rep}").randbytes(16)
        for tool in tools:
            with open(tool.ws / path, "r+b") as f:
                f.write(nonce)
            rec.time(size, tool, "edit run", tool.run)


def startup_rows(names: list[str], reps: int) -> dict[str, float]:
    """Bare process start-up, to read the small-graph figures against."""
    argvs = {"python3 -c pass": [sys.executable, "-c", "pass"], "make --version": ["make", "--version"]}
    if "bg" in names:
        argvs["bg --version"] = [*bg_command(), "--version"]
    if "doit" in names:
        argvs["doit --version"] = [executable("doit"), "--version"]
    out = {}
    for label, argv in argvs.items():
        try:
            out[label] = median(repeat_timed(argv, reps))
        except CommandFailed as exc:
            out[label] = float("nan")
            print(f"warning: {exc}", file=sys.stderr)
    return out


# ---- reporting ---------------------------------------------------------------------------------------

_REFERENCE_PHASE = {
    "null status": "null run",
    "touch status 1": "touch run 1",
    "touch status 2": "touch run 2",
}


def table(rec: Recorder) -> str:
    rows = []
    for (size, tool, phase), row in sorted(rec.rows.items(), key=_row_order):
        ref = _REFERENCE_PHASE.get(phase, phase)
        make, doit = rec.get(size, "make", ref), rec.get(size, "doit", ref)
        rows.append(
            [
                tool,
                size,
                phase,
                row.median,
                _ratio(row.median, make),
                _ratio(row.median, doit),
                len(row.times),
                max(row.rewritten),
            ]
        )
    return format_table(["tool", "stages", "phase", "median s", "x make", "x doit", "n", "rewrote"], rows)


_TOOL_ORDER = ("bg", "make", "doit")


def _row_order(item: tuple[tuple[int, str, str], Row]) -> tuple[int, int, int]:
    size, tool, phase = item[0]
    return size, PHASES.index(phase), _TOOL_ORDER.index(tool)


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def targets(rec: Recorder, sizes: list[int]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(name: str, value: float | None, limit: float) -> None:
        out.append({"target": name, "value": value, "limit": limit, "verdict": verdict(value, limit)})

    for size in sizes:
        doit_null = rec.get(size, "doit", "null run")
        add(f"bg run null / doit null @ {size}", _ratio(rec.get(size, "bg", "null run"), doit_null), 1.0)
        add(
            f"bg status null / doit null @ {size}", _ratio(rec.get(size, "bg", "null status"), doit_null), 1.0
        )
    if 1000 in sizes:
        for j in ("-j1", "-j2"):
            add(
                f"bg full {j} / make full {j} @ 1000",
                _ratio(rec.get(1000, "bg", f"full {j}"), rec.get(1000, "make", f"full {j}")),
                2.0,
            )
    if 1000 in sizes and 10000 in sizes:
        add(
            "bg full -j1 @ 10000 / @ 1000",
            _ratio(rec.get(10000, "bg", "full -j1"), rec.get(1000, "bg", "full -j1")),
            12.0,
        )
        growth = {
            t: _ratio(rec.get(10000, t, "full -j1"), rec.get(1000, t, "full -j1")) for t in ("bg", "make")
        }
        info = {
            # load changes between the sizes' phases: make's own growth, same run, tells how much
            "bg full growth / make full growth (10000 vs 1000, -j1)": _ratio(growth["bg"], growth["make"]),
            "bg null run @ 10000 / @ 1000 (linear would be 10)": _ratio(
                rec.get(10000, "bg", "null run"), rec.get(1000, "bg", "null run")
            ),
        }
        out += [
            {"target": name, "value": value, "limit": None, "verdict": "info"} for name, value in info.items()
        ]
    for size in sizes:
        rewritten = [
            max(r.rewritten)
            for (s, t, p), r in rec.rows.items()
            if s == size and t == "bg" and p.startswith(("touch", "null"))
        ]
        if rewritten:
            out.append(
                {
                    "target": f"bg rewrote nothing on null/touch runs @ {size}",
                    "value": max(rewritten),
                    "limit": 0,
                    "verdict": "meets" if max(rewritten) == 0 else "MISSES",
                }
            )
    return out


def targets_table(items: list[dict[str, object]]) -> str:
    return format_table(
        ["target", "value", "limit", "verdict"],
        [[t["target"], t["value"], t["limit"], t["verdict"]] for t in items],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000", help="comma-separated stage counts")
    p.add_argument("--reps", type=int, default=5, help="repetitions of null/touch/edit runs (median taken)")
    p.add_argument("--full-reps", type=int, help="repetitions of full builds (default: --reps)")
    p.add_argument("--tools", default="bg,make,doit", help="comma-separated subset of bg,make,doit")
    p.add_argument("--out", type=Path, help="write all timings as JSON here")
    ns = p.parse_args(argv)
    sizes = [int(s) for s in ns.sizes.split(",")]
    names = [t for t in ns.tools.split(",") if t]
    full_reps = ns.full_reps or ns.reps

    def log(text: str) -> None:
        print(f"# {text}", file=sys.stderr, flush=True)

    rec = Recorder()
    info = machine()
    startup = startup_rows(names, ns.reps)
    workloads = [bench_size(size, ns.reps, full_reps, names, rec, log) for size in sizes]
    checks = targets(rec, sizes)
    print(f"{machine_line(info)}, doit --backend {DOIT_BACKEND}")
    print(format_table(["start-up", "median s"], list(startup.items())))
    print()
    for w in workloads:
        affected = w["affected_stages"]
        print(f"# {w['stages']} stages: touch/edit {w['changed_file']} ({affected} stages downstream)")
    print(table(rec))
    print()
    print(targets_table(checks))
    for err in rec.errors:
        print(f"\nFAILED {err}")
    if ns.out:
        write_json(
            ns.out,
            {
                "machine": info,
                "startup": startup,
                "workloads": workloads,
                "rows": [vars(r) | {"median": r.median} for r in rec.rows.values()],
                "targets": checks,
                "errors": rec.errors,
                "doit_backend": DOIT_BACKEND,
                "reps": ns.reps,
                "full_reps": full_reps,
            },
        )
    return 1 if rec.errors else 0


if __name__ == "__main__":
    sys.exit(main())
