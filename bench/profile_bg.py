"""Where bg's time goes: slowest imports, and a cProfile (all threads) of null runs or a first build.

    python bench/profile_bg.py --stages 1000 --top 15          # null `bg run` and `bg status`
    python bench/profile_bg.py --stages 1000 --full --split    # a first build, split per stage

Builds the bench_core workload (`--workload`, per-stage by default). Null mode builds it once,
warms up with one null `bg run` and `bg status` (the first after a build is no typical one),
then lists the imports that cost most at the start of a null `bg run` and of `bg status`
(`python -X importtime`, top `--imports-top`) and profiles both (`python -m cProfile` sees only
the main thread: a small driver gives every thread its own profile and merges them).
`--full` profiles the first build instead; `--split` adds its per-stage cost split into
fork/exec, scratch setup, hashing, store, durability, lock/journal and scheduling
(bench/profile_split.py says how), next to the wall time of the same build unprofiled.
Exits 1, printing `FAILED …`, when a bg command fails.
"""

from __future__ import annotations

import argparse
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CommandFailed, bg_command, bg_interpreter, run_timed  # noqa: E402
from dag import DEFAULT_WORKLOAD, WORKLOADS, make_dag, write_data, write_workspace  # noqa: E402
from profile_split import render, split  # noqa: E402

# Run a script (or `-m module`) with one cProfile per thread, merged into one stats file.
# Waits of the main thread on its workers show up as lock `acquire` time: read workers' rows.
THREADED_PROFILER = """
import cProfile, pstats, runpy, sys, threading
out, target, *args = sys.argv[1:]
profiles = [cProfile.Profile()]
thread_run = threading.Thread.run
def profiled_run(self):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.runcall(thread_run, self)
threading.Thread.run = profiled_run
module = args.pop(0) if target == "-m" else None
sys.argv = [module or target, *args]
code = 0
try:
    profiles[0].runcall(runpy.run_module if module else runpy.run_path, module or target, run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
stats = pstats.Stats(profiles[0])
for profile in profiles[1:]:
    stats.add(profile)
stats.dump_stats(out)
sys.exit(code)
"""


def profile_run(bg: list[str], args: list[str], ws: Path, out: Path) -> float:
    """Run bg under the threaded profiler; its wall time. CommandFailed when bg fails."""
    cmd = [bg_interpreter(bg), "-c", THREADED_PROFILER, str(out), *python_args(bg), *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-8:]
        raise CommandFailed(
            f"`bg {' '.join(args)}` (profiled) exited {proc.returncode}:\n  " + "\n  ".join(tail)
        )
    return seconds


def top_tables(out: Path, top: int) -> str:
    """Every function by own time (the hot spots), and bg's own functions by cumulative time."""
    own, mine = _Capture(), _Capture()
    pstats.Stats(str(out), stream=own).strip_dirs().sort_stats("tottime").print_stats(top)  # type: ignore[arg-type]
    pstats.Stats(str(out), stream=mine).sort_stats("cumulative").print_stats("/buildgraph/", top)  # type: ignore[arg-type]
    text = (
        "# by own time (tottime)\n"
        + _trim(own.text)
        + "\n# bg's functions by cumulative time\n"
        + _trim(mine.text)
    )
    return re.sub(r"\S*/buildgraph/", "buildgraph/", text)


def python_args(bg: list[str]) -> list[str]:
    """What follows `python` to start bg: the entry-point script, or `BENCH_BG`'s arguments."""
    return bg[1:] if Path(bg[0]).name.startswith("python") else bg


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def _trim(report: str) -> str:
    """Drop pstats' preamble (file name, ordering note); keep the totals line and the table."""
    lines = [line for line in report.splitlines() if line.strip()]
    keep = [line for line in lines if "function calls" in line or re.match(r"\s+(ncalls|\d)", line)]
    return "\n".join(keep)


def slowest_imports(bg: list[str], args: list[str], ws: Path, top: int) -> str:
    """The imports costing most (cumulative µs) when bg starts with `args`."""
    proc = subprocess.run(
        [bg_interpreter(bg), "-X", "importtime", *python_args(bg), *args],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CommandFailed(f"`bg {' '.join(args)}` (-X importtime) exited {proc.returncode}")
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    total = sum(us for us, depth, _ in rows if depth == 0)
    rows.sort(reverse=True)
    lines = [f"{us / 1000:8.1f} ms  {'  ' * depth}{name}" for us, depth, name in rows[:top]]
    return "\n".join([*lines, f"{total / 1000:8.1f} ms  (all top-level imports)"])


def first_build(bg: list[str], ns: argparse.Namespace, root: Path, template: Path) -> None:
    dag = make_dag(ns.stages, ns.workload)
    run = ["run", "--quiet", "-j", "1"]
    plain = run_timed([*bg, *run], write_workspace(root / "plain", dag, "bg", template)).seconds
    ws = write_workspace(root / "profiled", dag, "bg", template)
    wall = profile_run(bg, run, ws, root / "prof.out")
    print(f"## cProfile: bg {' '.join(run)} (first build, {ns.stages} stages, {ns.workload})")
    print(f"# wall: {plain:.3f} s unprofiled, {wall:.3f} s profiled (all threads)")
    if ns.split:
        shares, missing = split(pstats.Stats(str(root / "prof.out")))
        print("\n## per-stage split (cumulative times, innermost claimed function wins; % of profiled wall)")
        print(render(shares, ns.stages, wall, missing))
    print()
    print(top_tables(root / "prof.out", ns.top))


def null_runs(bg: list[str], ns: argparse.Namespace, root: Path, template: Path) -> None:
    ws = write_workspace(root, make_dag(ns.stages, ns.workload), "bg", template)
    run_timed([*bg, "run", "--quiet", "-j", "2"], ws)
    commands = (["run", "--quiet", "-j", "1"], ["status"])
    for args in commands:  # the first null run after a build is no typical one (stat cache, stamps)
        run_timed([*bg, *args], ws)
    for args in commands:
        print(f"## imports costing most (cumulative), `python -X importtime bg {' '.join(args)}`, up to date")
        print(slowest_imports(bg, args, ws, ns.imports_top))
        print()
    for args in commands:
        wall = profile_run(bg, args, ws, root / "prof.out")
        print(f"## cProfile: bg {' '.join(args)} (up to date, {ns.stages} stages; {wall:.3f} s profiled)")
        print(top_tables(root / "prof.out", ns.top))
        print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", type=int, default=1000)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default=DEFAULT_WORKLOAD)
    p.add_argument("--top", type=int, default=15, help="rows of each cProfile table")
    p.add_argument("--imports-top", type=int, default=10, help="rows of each -X importtime list")
    p.add_argument("--full", action="store_true", help="profile the first build instead of null runs")
    p.add_argument("--split", action="store_true", help="with --full: the per-stage split of its cost")
    ns = p.parse_args(argv)
    if ns.split and not ns.full:
        p.error("--split goes with --full (it splits a first build)")
    if ns.stages < 1:
        p.error("--stages must be at least 1")
    bg = bg_command()
    with tempfile.TemporaryDirectory(prefix="bg-profile-") as tmp:
        root = Path(tmp)
        dag = make_dag(ns.stages, ns.workload)
        write_data(root / "template", dag)
        try:
            (first_build if ns.full else null_runs)(bg, ns, root, root / "template")
        except CommandFailed as exc:
            print(f"FAILED {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
