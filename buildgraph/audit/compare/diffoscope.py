"""diffoscope's explanation of two binaries, when it is installed (it is optional).

It recurses into archives, ELF files, databases …, which no comparer here does; but it is slow to
start and unbounded on large inputs, so it runs under a time limit, on files up to a size, for
the first few files of one `compare`, and only its first lines are kept."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from buildgraph.audit.compare.difference import Context

TIMEOUT = 30  # seconds
MAX_SIZE = 64 << 20  # bytes per file
MAX_LINES = 20


def explain(recorded: Path, audited: Path, ctx: Context) -> tuple[list[str], object]:
    """(detail lines, data) of diffoscope's report; data is the report's lines or why there is none."""
    command = shutil.which("diffoscope")
    if command is None:
        return ["(install diffoscope for a structural explanation of these bytes)"], "not installed"
    if max(recorded.stat().st_size, audited.stat().st_size) > MAX_SIZE:
        return [], f"not run: files over {MAX_SIZE >> 20} MiB"
    if ctx.diffoscope_left <= 0:
        return [], "not run: done for the first files already"
    ctx.diffoscope_left -= 1
    lines = _run(command, recorded, audited)
    if isinstance(lines, str):
        return [f"diffoscope: {lines}"], lines
    return ["diffoscope:", *(f"  {line}" for line in lines)], lines


def _run(command: str, recorded: Path, audited: Path) -> list[str] | str:
    argv = [command, "--text", "-", "--text-color", "never", "--no-progress",
            "--max-text-report-size", "16384", "--timeout", str(TIMEOUT // 2), str(recorded), str(audited)]
    try:
        returncode, out, err = _communicate(argv)
    except subprocess.TimeoutExpired:
        return f"no answer within {TIMEOUT} s"
    except OSError as e:
        return f"could not run ({e.strerror})"
    if returncode not in (0, 1):  # 0 same, 1 different, anything else: its own failure
        last = (err.strip().splitlines() or ["no message"])[-1]
        return f"failed (exit {returncode}: {last[:120]})"
    lines = out.splitlines()
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… {len(lines) - MAX_LINES} more lines"]
    return lines


def _communicate(argv: list[str]) -> tuple[int, str, str]:
    """Run `argv` in its own process group, killed whole (diffoscope runs unzip, objdump …) when
    it takes over TIMEOUT seconds or bg is interrupted."""
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace", start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=TIMEOUT)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return process.returncode, out, err
