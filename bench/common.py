"""Timing helpers shared by the benchmarks: run a command, take medians, describe the machine.

Every measurement is the wall time of a whole process (what a user waits for), taken with
`time.perf_counter` around `subprocess.run`, output captured to a pipe so that terminal
speed does not count. This machine is noisy: compare only figures taken in the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT_S = 3600


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero; the message holds its argv and the end of its output."""


@dataclass(frozen=True)
class Timing:
    seconds: float
    stdout: str


def executable(name: str) -> str:
    """The real script next to this interpreter, not a pyenv shim (a shim adds ~50 ms of bash)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name}: not installed")
    return found


def bg_command() -> list[str]:
    """How to start bg: `$BENCH_BG` when set (e.g. another checkout's bg), else the installed script."""
    override = os.environ.get("BENCH_BG")
    return shlex.split(override) if override else [executable("bg")]


def run_timed(argv: Sequence[str], cwd: Path | None = None) -> Timing:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-8:]
        raise CommandFailed(f"`{' '.join(argv)}` in {cwd} exited {proc.returncode}:\n  " + "\n  ".join(tail))
    return Timing(seconds, proc.stdout)


def repeat_timed(argv: Sequence[str], reps: int, cwd: Path | None = None) -> list[float]:
    return [run_timed(argv, cwd).seconds for _ in range(reps)]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def output_signatures(directory: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file in `directory`: a tool-neutral record of what was rewritten."""
    with os.scandir(directory) as entries:
        return {e.name: (e.inode(), e.stat().st_mtime_ns) for e in entries if e.is_file()}


def count_rewritten(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> int:
    return sum(1 for name, sig in after.items() if before.get(name) != sig)


def machine() -> dict[str, object]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def machine_line(info: dict[str, object]) -> str:
    return (
        f"# {info['date']}, {info['cores']} cores ({info['cpu']}), Python {info['python']}, "
        f"load {info['load_avg_1m']}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.1f}"
    return str(value)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def verdict(value: float | None, limit: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value >= limit if higher_is_better else value <= limit
    return "meets" if ok else "MISSES"


# The phases of bench_core.py, in the order its tables list them.
PHASES = (
    "full -j1",
    "full -j2",
    "null run",
    "null status",
    "touch run 1",
    "touch run 2",
    "touch status 1",
    "touch status 2",
    "edit run",
)
