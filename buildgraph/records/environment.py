"""An environment fingerprint: the stable part of where a run happened, as Buildfile.lock keeps it.

An executor reports where each job ran (`executors/fingerprint.py`: Python, torch, CUDA, GPU,
OS …). The lock keeps the part that says how a result was made and stays the same between
two runs on one machine — no hostname, kernel build, time or path — so rerunning on the same
machine leaves the committed lock byte-identical, and an audit compares like with like:

    {"executor": "local", "python": "3.11.7", "torch": "2.13.0+cpu", "cuda": null, "gpu": null,
     "driver": null, "cpus": 2, "threads": {"OMP_NUM_THREADS": "1"},
     "os": "Debian GNU/Linux 12 (bookworm)", "machine": "x86_64"}

A value the executor found absent (no torch, no GPU) is null; a field that does not apply (an
image id on the host) is left out; `audit/environment.py` compares two fingerprints. The image
id is the one docker reported: it names the exact image the result came from, and differs from
engine to engine as torch versions differ from machine to machine (it is in no key, so a
different one reruns nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELDS: tuple[str, ...] = ("executor", "image_id", "python", "torch", "cuda", "gpu", "driver")
FIELDS += ("cpus", "threads", "os", "machine")


def stable(environment: Mapping[str, Any]) -> dict[str, Any]:
    """The lock's fingerprint of a reported environment: FIELDS only. A field the executor
    reported as None stays (no CUDA is worth comparing with CUDA 12.4); one it does not
    report at all (the host has no image id) is left out."""
    return {f: environment[f] for f in FIELDS if f in environment}


def describe(environment: Mapping[str, Any]) -> str:
    """One phrase a person reads: `torch 2.13.0+cpu (CPU), Python 3.11.7, on the host (local),
    Debian GNU/Linux 12 (bookworm), 2 CPUs`."""
    e = environment
    device = f"CUDA {e['cuda']}" if e.get("cuda") else "CPU"
    torch = f"torch {e['torch']} ({device})" if e.get("torch") else ""
    gpu = f"on {e['gpu']}" + (f" (driver {e['driver']})" if e.get("driver") else "") if e.get("gpu") else ""
    python = f"Python {e['python']}" if e.get("python") else ""
    image = e.get("image_id") or e.get("image")
    where = f"in image {_short(str(image))}" if image else f"on the host ({e.get('executor') or '?'})"
    cpus = f"{e['cpus']} CPUs" if e.get("cpus") else ""
    threads = " ".join(f"{k}={v}" for k, v in sorted((e.get("threads") or {}).items()))
    parts = (torch or "no torch", gpu, python, where, e.get("os") or "", cpus, threads)
    return ", ".join(p for p in parts if p)


def _short(image: str) -> str:
    return image[:19] if image.startswith("sha256:") else image  # "sha256:" + 12 hex digits
