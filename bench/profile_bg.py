"""Where bg's time goes on a null run: slowest imports and a cProfile of `bg run`/`bg status`.

    python bench/profile_bg.py --stages 1000 --top 15
    python bench/profile_bg.py --stages 100 --full      # the first build instead

Builds the bench_core workload once, then profiles an up-to-date `bg run -j1` and
`bg status` in a subprocess (`python -m cProfile`), and lists the imports that cost the
most at start-up (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bg_command, run_timed  # noqa: E402
from dag import make_dag, write_data, write_workspace  # noqa: E402

FILE_SIZE = 100_000

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
try:
    profiles[0].runcall(runpy.run_module if module else runpy.run_path, module or target, run_name="__main__")
except SystemExit:
    pass
stats = pstats.Stats(profiles[0])
for profile in profiles[1:]:
    stats.add(profile)
stats.dump_stats(out)
"""


def profile(argv: list[str], ws: Path, out: Path, top: int) -> str:
    """cProfile of one bg invocation (all its threads), in a subprocess like the benchmark's.

    Two views: every function by own time (the hot spots), and bg's own functions by
    cumulative time (which step of bg the time belongs to). Worker threads are profiled
    too: `python -m cProfile` sees only the main thread, which mostly waits on them.
    """
    cmd = [sys.executable, "-c", THREADED_PROFILER, str(out), *python_args(argv)]
    subprocess.run(cmd, cwd=ws, check=True, capture_output=True)
    own, mine = _Capture(), _Capture()
    pstats.Stats(str(out), stream=own).strip_dirs().sort_stats("tottime").print_stats(top)  # type: ignore[arg-type]
    pstats.Stats(str(out), stream=mine).sort_stats("cumulative").print_stats("/buildgraph/", top)  # type: ignore[arg-type]
    package = str(Path(__file__).resolve().parent.parent) + "/"
    return (
        "# by own time (tottime)\n"
        + _trim(own.text)
        + "\n# bg's functions by cumulative time\n"
        + _trim(mine.text).replace(package, "")
    )


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


def slowest_imports(bg: list[str], ws: Path, top: int) -> str:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *python_args(bg), "status"],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    rows.sort(reverse=True)
    return "\n".join(f"{us / 1000:8.1f} ms  {'  ' * depth}{name}" for us, depth, name in rows[:top])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", type=int, default=1000)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--full", action="store_true", help="profile the first build instead of null runs")
    ns = p.parse_args(argv)
    bg = bg_command()
    dag = make_dag(ns.stages)
    with tempfile.TemporaryDirectory(prefix="bg-profile-") as tmp:
        root = Path(tmp)
        write_data(root / "template", dag, FILE_SIZE)
        ws = write_workspace(root, dag, "bg", root / "template")
        if ns.full:
            print(f"## cProfile: bg run --quiet -j 1 (first build, {ns.stages} stages)")
            print(profile([*bg, "run", "--quiet", "-j", "1"], ws, root / "prof.out", ns.top))
            return 0
        run_timed([*bg, "run", "--quiet", "-j", "2"], ws)
        print("## imports costing most (cumulative, `python -X importtime bg status`)")
        print(slowest_imports(bg, ws, ns.top))
        for args in (["run", "--quiet", "-j", "1"], ["status"]):
            print(f"\n## cProfile: bg {' '.join(args)} (up to date, {ns.stages} stages)")
            print(profile([*bg, *args], ws, root / "prof.out", ns.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
