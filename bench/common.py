"""Timing helpers shared by the benchmarks: run a command, take medians, describe the machine.

Every measurement is the wall time of a whole process (what a user waits for), taken with
`time.perf_counter` around its start and `os.wait4`, plus its peak RSS (`ru_maxrss`: the
largest of the process and the children it waited for). Output goes to a temporary file, so
that terminal speed does not count. This machine is noisy: compare only figures taken in the
same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

COMMAND_TIMEOUT_S = 3600


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero; the message holds its argv and the end of its output."""


class CommandTimedOut(RuntimeError):
    """A benchmarked command ran past its time limit and was killed (with its process group)."""

    def __init__(self, argv: Sequence[str], limit: float) -> None:
        super().__init__(f"`{' '.join(argv)}` killed after {limit:g} s")
        self.limit = limit


@dataclass(frozen=True)
class Timing:
    seconds: float
    stdout: str
    rss_mb: float = 0.0  # peak resident set size, MiB


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


def bg_interpreter(bg: Sequence[str]) -> str:
    """The Python that runs bg: `bg[0]` when that is python, else the script's shebang interpreter
    (resolved through `env`), so that `python -c pass` is timed with the very same binary."""
    if Path(bg[0]).name.startswith("python"):
        return bg[0]
    with open(bg[0], "rb") as script:
        first = script.readline().decode(errors="replace")
    words = first.removeprefix("#!").split() if first.startswith("#!") else []
    if words and Path(words[0]).name == "env" and len(words) > 1:
        return shutil.which(words[1]) or words[1]
    return words[0] if words else sys.executable


def run_timed(
    argv: Sequence[str],
    cwd: Path | None = None,
    limit: float | None = None,
    env: dict[str, str] | None = None,
) -> Timing:
    """Wall time and peak RSS of one command; CommandFailed when it exits non-zero,
    CommandTimedOut when it runs past `limit` seconds (its whole process group is killed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=os.environ | env if env else None, start_new_session=True,
        )  # fmt: skip
        killed, rusage = _wait(proc, limit or COMMAND_TIMEOUT_S)
        seconds = time.perf_counter() - start
        if killed:
            raise CommandTimedOut(argv, limit or COMMAND_TIMEOUT_S)
        stdout, stderr = (_read(f) for f in (out, err))
    if proc.returncode != 0:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-8:]
        raise CommandFailed(f"`{' '.join(argv)}` in {cwd} exited {proc.returncode}:\n  " + "\n  ".join(tail))
    return Timing(seconds, stdout, rusage.ru_maxrss / 1024)  # Linux: KiB


def _wait(proc: subprocess.Popen[bytes], limit: float) -> tuple[bool, resource.struct_rusage]:
    """Reap `proc` with `wait4` (for its rusage); past `limit`, SIGKILL its group first.

    The leader is waited for without reaping it (`WNOWAIT`) and the timer disarmed under a lock
    before it is reaped: until then its pid is the group's id, so the kill cannot reach an
    unrelated process. True when it was killed for the limit."""
    guard, state = threading.Lock(), {"exited": False, "killed": False}

    def kill() -> None:
        with guard:
            if not state["exited"]:
                state["killed"] = True
                _kill_group(proc.pid)

    timer = threading.Timer(limit, kill)
    timer.start()
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with guard:
            state["exited"] = True
    except BaseException:  # Ctrl-C: leave nothing running
        with guard:
            _kill_group(proc.pid)
            state["exited"] = True
        proc.wait()
        raise
    finally:
        timer.cancel()
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return state["killed"], rusage


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def repeat_timed(argv: Sequence[str], reps: int, cwd: Path | None = None) -> list[float]:
    return [run_timed(argv, cwd).seconds for _ in range(reps)]


def repeat_timings(argv: Sequence[str], reps: int, cwd: Path | None = None) -> list[Timing]:
    return [run_timed(argv, cwd) for _ in range(reps)]


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


def verdict(value: float | None, limit: float, higher_is_better: bool = False, strict: bool = False) -> str:
    """ "meets" when `value` is within `limit` (`strict`: and not equal to it)."""
    if value is None:
        return "n/a"
    if strict:
        ok = value > limit if higher_is_better else value < limit
    else:
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
