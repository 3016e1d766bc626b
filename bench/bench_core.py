"""Core benchmark: bg against GNU make, doit, Snakemake and DVC on the same random DAGs, in one run.

    python bench/bench_core.py --sizes 10,100,1000 --reps 5 --out bench/results/core.json

Per size, every tool gets its own copy of the same workload (bench/dag.py; `--workload`
per-stage, the default, or shared) and goes through the same phases, repetitions interleaved
across tools so that noise hits them alike:

  full -jN      first build from a clean state (outputs and the tool's state removed); doit
                -j2 is `-n 2 -P thread`
  null          nothing changed: a run, and the read-only status (`bg status`, `doit list --status`)
  touch 1/2     after `touch` of one data file (mtime only): the run right after, then the next
  edit          after changing one data file's bytes: rebuilding what depends on it

bg, make and doit go through all of them; Snakemake and DVC through `full -j1` and the null
run only, each command under `--peer-limit` seconds (a killed build is reported as "> N s
(killed at k of n)" and the tool skipped at that size and above). Each timed run also records
its peak RSS and how many outputs it rewrote (inode or mtime changed), so "bg ran nothing after
a touch" is checked, not assumed. Medians are printed with ratios against make and doit, and
the targets of issue 11 (bench/targets.py) are checked at the end. Exits 1, printing `FAILED …`,
when a command fails.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PHASES,
    CommandFailed,
    bg_interpreter,
    format_table,
    machine,
    machine_line,
    median,
    repeat_timings,
    write_json,
)
from dag import DEFAULT_WORKLOAD, WORKLOADS, make_dag, write_data  # noqa: E402
from recorder import Recorder, Row  # noqa: E402
from targets import targets, targets_table  # noqa: E402
from tools import ALL_TOOLS, DOIT_BACKEND, PeerLimits, Tool, locate, make_tools  # noqa: E402

Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Which phases to time (peers.py times only the first build at -j1 and the null runs)."""

    full: tuple[str, ...] = ("-j1", "-j2")
    null: bool = True
    touch: bool = True
    edit: bool = True


@dataclass(frozen=True)
class Settings:
    sizes: list[int]
    reps: int
    full_reps: int
    commands: dict[str, list[str]]  # tool → how to start it
    workload: str = DEFAULT_WORKLOAD
    plan: Plan = Plan()
    peers: PeerLimits = PeerLimits()


def bench_size(size: int, cfg: Settings, rec: Recorder, log: Log) -> dict[str, object]:
    dag = make_dag(size, cfg.workload)
    changed_file = dag.median_fanout_file()
    affected = len(dag.downstream_of(changed_file))
    commands = {}
    for name, argv in cfg.commands.items():
        if name in rec.killed_at:
            rec.notes.append(f"{name} @ {size}: skipped (killed at {rec.killed_at[name]} stages)")
        else:
            commands[name] = argv
    with tempfile.TemporaryDirectory(prefix=f"bg-bench-{size}-") as tmp:
        root = Path(tmp)
        write_data(root / "template", dag)
        tools = make_tools(root, dag, root / "template", commands, cfg.peers)
        log(f"{size} stages: full builds ({cfg.full_reps} reps)")
        _full_builds(size, tools, cfg.full_reps, cfg.plan, rec)
        log(f"{size} stages: null, touch and edit runs ({cfg.reps} reps)")
        if cfg.plan.null:
            _null_runs(size, tools, cfg.reps, rec)
        incremental = [t for t in tools if t.incremental]
        if cfg.plan.touch:
            _touch_runs(size, incremental, cfg.reps, rec, changed_file)
        if cfg.plan.edit:
            _edit_runs(size, incremental, cfg.reps, rec, changed_file)
    return {
        "stages": size,
        "changed_file": changed_file,
        "affected_stages": affected,
        "file_size": dag.file_size,
    }


def _full_builds(size: int, tools: list[Tool], reps: int, plan: Plan, rec: Recorder) -> None:
    for rep in range(reps):
        for tool in tools:
            if tool.full_reps is not None and rep >= tool.full_reps:
                continue
            for label in plan.full:
                if label in tool.full and not tool.stopped:
                    tool.reset()
                    rec.time(size, tool, f"full {label}", tool.full[label])


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


def startup_interpreter(commands: dict[str, list[str]]) -> str:
    """bg's own interpreter, called directly (a pyenv shim alone adds ~80 ms)."""
    return bg_interpreter(commands["bg"]) if "bg" in commands else sys.executable


def startup_rows(commands: dict[str, list[str]], python: str, reps: int) -> dict[str, dict[str, float]]:
    """Bare process start-up, to read the small-graph figures against."""
    argvs = {"python -c pass": [python, "-c", "pass"]}
    for name, flag in (("bg", "--version"), ("make", "--version"), ("doit", "--version")):
        if name in commands:
            argvs[f"{name} {flag}"] = [*commands[name], flag]
    out = {}
    for label, argv in argvs.items():
        try:
            timings = repeat_timings(argv, reps)
        except CommandFailed as exc:
            print(f"warning: {exc}", file=sys.stderr)
            continue
        out[label] = {"median": median(t.seconds for t in timings), "rss_mb": max(t.rss_mb for t in timings)}
    return out


# ---- reporting ---------------------------------------------------------------------------------------

# make has no read-only status: its row is compared with make's run of the same moment.
_RUN_PHASE = {"null status": "null run", "touch status 1": "touch run 1", "touch status 2": "touch run 2"}
_TOOL_ORDER = ALL_TOOLS


def reference(rec: Recorder, size: int, tool: str, phase: str) -> float | None:
    """`tool`'s median of `phase`, or of the run it stands in for when it has no such phase."""
    value = rec.get(size, tool, phase)
    return value if value is not None else rec.get(size, tool, _RUN_PHASE.get(phase, phase))


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def table(rec: Recorder) -> str:
    rows = []
    for (size, tool, phase), row in sorted(rec.rows.items(), key=_row_order):
        make, doit = reference(rec, size, "make", phase), reference(rec, size, "doit", phase)
        rows.append(
            [
                tool,
                size,
                phase,
                row.figure(),
                ratio(row.median, make),
                ratio(row.median, doit),
                len(row.times),
                max(row.rewritten) if row.rewritten else None,
                row.peak_rss,
            ]
        )
    headers = ["tool", "stages", "phase", "median s", "x make", "x doit", "n", "rewrote", "peak MB"]
    return format_table(headers, rows)


def _row_order(item: tuple[tuple[int, str, str], Row]) -> tuple[int, int, int]:
    size, tool, phase = item[0]
    return size, PHASES.index(phase), _TOOL_ORDER.index(tool)


def rss_floor_note() -> str:
    """A child's ru_maxrss includes the pages of the process it was spawned from (the kernel
    carries the old memory's peak across exec, vfork or not): ours is the floor of every figure."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"peak MB: ru_maxrss; never below this benchmark's own {own:.1f} MB (spawning counts it)"


def startup_table(startup: dict[str, dict[str, float]]) -> str:
    rows = [[label, r["median"], r["rss_mb"]] for label, r in startup.items()]
    return format_table(["start-up", "median s", "peak MB"], rows)


# ---- running -----------------------------------------------------------------------------------------


@dataclass
class Bench:
    settings: Settings
    rec: Recorder
    info: dict[str, object]
    python: str  # the interpreter of the `python -c pass` row
    startup: dict[str, dict[str, float]]
    workloads: list[dict[str, object]]


def find_commands(names: list[str], log: Log) -> dict[str, list[str]]:
    commands = {}
    for name in names:
        argv = locate(name)
        if argv is None:
            hint = f" (set $BENCH_{name.upper()})" if name != "bg" else ""
            log(f"{name}: not installed{hint}; skipped")
        else:
            commands[name] = argv
    return commands


def run_benchmark(cfg: Settings, log: Log) -> Bench:
    rec = Recorder()
    info = machine()
    python = startup_interpreter(cfg.commands)
    startup = startup_rows(cfg.commands, python, cfg.reps)
    workloads = [bench_size(size, cfg, rec, log) for size in cfg.sizes]
    return Bench(cfg, rec, info, python, startup, workloads)


def to_json(bench: Bench) -> dict[str, object]:
    cfg, rec = bench.settings, bench.rec
    return {
        "machine": bench.info,
        "workload": cfg.workload,
        "tools": {name: " ".join(argv) for name, argv in cfg.commands.items()},
        "startup": bench.startup,
        "startup_python": bench.python,
        "workloads": bench.workloads,
        "rows": [vars(r) | {"median": r.median, "peak_rss_mb": r.peak_rss} for r in rec.rows.values()],
        "targets": targets(rec, bench.startup, bench.workloads),
        "errors": rec.errors,
        "notes": rec.notes,
        "doit_backend": DOIT_BACKEND,
        "reps": cfg.reps,
        "full_reps": cfg.full_reps,
        "peer_limit_s": cfg.peers.limit_s,
        "peer_full_reps": cfg.peers.full_reps,
    }


def report(bench: Bench) -> str:
    cfg, rec = bench.settings, bench.rec
    lines = [f"{machine_line(bench.info)}, workload {cfg.workload}, doit --backend {DOIT_BACKEND}"]
    lines += [f"# python -c pass: {bench.python}", startup_table(bench.startup), ""]
    for w in bench.workloads:
        lines.append(
            f"# {w['stages']} stages ({w['file_size']} B per data file): touch/edit {w['changed_file']}"
            f" ({w['affected_stages']} downstream)"
        )
    lines += [
        table(rec),
        f"# {rss_floor_note()}",
        "",
        targets_table(targets(rec, bench.startup, bench.workloads)),
    ]
    lines += [f"# note: {note}" for note in rec.notes]
    lines += [f"\nFAILED {err}" for err in rec.errors]
    return "\n".join(lines)


def parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=sizes_arg, default="10,100,1000", help="comma-separated stage counts")
    p.add_argument("--reps", type=int, default=5, help="repetitions of null/touch/edit runs (median taken)")
    p.add_argument("--full-reps", type=int, help="repetitions of full builds (default: --reps)")
    p.add_argument("--tools", type=tools_arg, default=",".join(ALL_TOOLS), help="a subset of %(default)s")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default=DEFAULT_WORKLOAD)
    p.add_argument("--peer-limit", type=float, default=150.0, help="Snakemake/DVC: seconds per command")
    p.add_argument("--peer-full-reps", type=int, default=1, help="Snakemake/DVC: full builds per size")
    p.add_argument("--out", type=Path, help="write all timings as JSON here")
    return p


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected stage counts like 10,100,1000") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: stage counts must be at least 1")
    return sizes


def tools_arg(text: str) -> list[str]:
    names = [t for t in text.split(",") if t]
    unknown = sorted(set(names) - set(ALL_TOOLS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown) or 'empty list'} (known: {','.join(ALL_TOOLS)})"
        )
    return names


def settings(ns: argparse.Namespace, plan: Plan, log: Log) -> Settings:
    return Settings(
        sizes=ns.sizes,
        reps=ns.reps,
        full_reps=ns.full_reps or ns.reps,
        commands=find_commands(ns.tools, log),
        workload=ns.workload,
        plan=plan,
        peers=PeerLimits(ns.peer_limit, ns.peer_full_reps),
    )


def log_stderr(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    bench = run_benchmark(settings(ns, Plan(), log_stderr), log_stderr)
    print(report(bench))
    if ns.out:
        write_json(ns.out, to_json(bench))
    return 1 if bench.rec.errors else 0


if __name__ == "__main__":
    sys.exit(main())
