"""GPUs: how many the host has, how many a stage wants, and the names a command is given.

The engine's GPU pool holds ids 0 … N-1 (`engine.slots.Slots`); a stage's `gpus` asks for
some of them ("all", a count, or ids, which count as their number). What reaches the command
is the host's names for the pool's ids (`CUDA_VISIBLE_DEVICES`), so that bg run under
`CUDA_VISIBLE_DEVICES=3,5` hands out GPUs 3 and 5, never 0 and 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def count() -> int:
    """NVIDIA GPUs visible on this host (0 without a driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len(_names(visible))
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def pool_size(wanted: Iterable[int | None]) -> int:
    """The GPU pool for stages wanting `wanted` GPUs each (`RunStage.gpu_count`): the host's
    GPUs, counted only when some stage wants one (`nvidia-smi` costs a process)."""
    return count() if any(w != 0 for w in wanted) else 0


def wanted(gpu_count: int | None, pool: int) -> int:
    """The GPUs a stage takes from a pool of `pool`: None means all of them, and no stage
    waits for more than the pool holds (it gets what there is)."""
    if gpu_count == 0 or pool == 0:
        return 0
    return pool if gpu_count is None else min(gpu_count, pool)


def visible(pool_ids: tuple[int, ...]) -> list[str]:
    """The host's names for the pool's GPUs: under `CUDA_VISIBLE_DEVICES=3,5` pool slot 0 is
    GPU "3", and a stage told `0` would land on a GPU it was never given."""
    host = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = _names(host or "")
    return [names[i] if host is not None and i < len(names) else str(i) for i in pool_ids]


def _names(variable: str) -> list[str]:
    """The device names of a `CUDA_VISIBLE_DEVICES` value ("-1" hides every GPU)."""
    return [d.strip() for d in variable.split(",") if d.strip() and d.strip() != "-1"]
