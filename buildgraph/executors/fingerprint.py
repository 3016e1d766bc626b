"""Where a job ran, as data: the environment an executor reports in `Result.environment`.

    {"executor": "local", "python": "3.11.7", "torch": "2.13.0+cpu", "cuda": None,
     "gpu": None, "driver": None, "cpus": 2, "threads": {"OMP_NUM_THREADS": "1"},
     "os": "Debian GNU/Linux 12 (bookworm)", "machine": "x86_64", "kernel": "6.1.0-18-amd64"}

plus, in a container, "image" (the tag the job ran in) and "image_id". It is what a result's
provenance says it was made on, and (its stable part, `records.environment`) what the lock
records, so that an audit compares like with like.

Probing costs a process (a container for an image), so it is done once per executor and host,
or per image id, and only when a job runs: a null run probes nothing. The probe runs the
`python3` the command would run, without importing torch (seconds, and a GPU context):
torch's version comes from its distribution metadata and CUDA's from `torch/version.py`.
No hostname, user, path or time is taken: none says how a result was made, and they differ
between two runs on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import weakref
from collections.abc import Mapping
from typing import Any

# thread-count settings of the common numeric libraries: they change what floating point sums
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)

# Runs in the job's interpreter, which may be an old one in an image: Python 3.6 syntax,
# standard library only. Prints one JSON object.
_PYTHON_PROBE = r"""
import json, os, platform, re
found = {"python": platform.python_version(), "machine": platform.machine(),
         "kernel": platform.release(), "torch": None, "cuda": None}
try:
    found["cpus"] = len(os.sched_getaffinity(0))
except (AttributeError, OSError):
    found["cpus"] = os.cpu_count()
found["threads"] = {k: os.environ[k] for k in __THREAD_VARS__ if k in os.environ}
try:
    from importlib import metadata
    found["torch"] = metadata.version("torch")
except Exception:
    pass
try:
    import importlib.util
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.origin:
        text = open(os.path.join(os.path.dirname(spec.origin), "version.py")).read()
        for name in ("cuda", "__version__"):
            match = re.search(r"^" + name + r"\s*(?::[^=\n]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
            if match and not (name == "__version__" and found["torch"]):
                found["torch" if name == "__version__" else "cuda"] = match.group(1)
except Exception:
    pass
for path in ("/etc/os-release", "/usr/lib/os-release"):
    try:
        for line in open(path):
            if line.startswith("PRETTY_NAME="):
                found["os"] = line.split("=", 1)[1].strip().strip('"')
        break
    except OSError:
        pass
print(json.dumps(found))
""".replace("__THREAD_VARS__", repr(THREAD_VARS))

# Without python3 the environment is at least the OS (`PRETTY_NAME=…` after an empty object).
_SHELL = 'python3 -c "$1" 2>/dev/null || { echo "{}"; cat /etc/os-release 2>/dev/null; }'
PROBE_ARGV = ("sh", "-c", _SHELL, "bg-probe", _PYTHON_PROBE)
PROBE_TIMEOUT = 60.0  # seconds: a cold image's interpreter on a slow disk


def parse_probe(output: str) -> dict[str, Any]:
    """The probe's output as an environment: its JSON object, or `{"os": …}` when there was
    no Python to run it (then every Python field is None)."""
    first, _, rest = output.strip().partition("\n")
    try:
        found = json.loads(first)
    except ValueError:
        found = {}
    if not isinstance(found, dict):
        found = {}
    for line in rest.splitlines():
        if line.startswith("PRETTY_NAME=") and "os" not in found:
            found["os"] = line.split("=", 1)[1].strip().strip('"')
    blank: dict[str, Any] = {"python": None, "torch": None, "cuda": None, "cpus": None, "threads": {}}
    blank.update(os=None, machine=None, kernel=None)
    return {**blank, **found}


def probe_host(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The host's environment: the probe run with `python3` from bg's PATH, and its GPUs."""
    return HostProbe(env).result()


class HostProbe:
    """The host probe, started when made and read when first needed: the interpreter's start
    (0.1–0.3 s, more behind a pyenv shim) overlaps a first build's first command rather than
    delaying the next one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, Any] | None = None
        try:
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                PROBE_ARGV,
                env=dict(env if env is not None else os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError:
            self._proc = None
        else:  # an executor dropped without close(): its probe is stopped, not left to warn
            weakref.finalize(self, _stop, self._proc)

    def done(self) -> bool:
        """Whether `result` would answer without waiting for the probe."""
        with self._lock:
            return self._found is not None or self._proc is None or self._proc.poll() is not None

    def result(self) -> dict[str, Any]:
        with self._lock:
            if self._found is None:
                self._found = {**self._read(), **host_gpus()}
            return self._found

    def close(self) -> None:
        """Stop a probe never read (a run that ended first): no process is left behind."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)

    def _read(self) -> dict[str, Any]:
        proc = self._proc
        if proc is None:
            return parse_probe("")
        try:
            output, _ = proc.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return parse_probe("")
        return parse_probe(output)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def host_gpus() -> dict[str, Any]:
    """`{"gpu": "NVIDIA H200", "driver": "550.54.15"}` from nvidia-smi (distinct models joined
    by ", "); both None without an NVIDIA driver. nvidia-smi is asked only when installed."""
    none: dict[str, Any] = {"gpu": None, "driver": None}
    if shutil.which("nvidia-smi") is None:
        return none
    query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return none
    rows = [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if "," in line]
    if done.returncode != 0 or not rows:
        return none
    models = list(dict.fromkeys(row[0] for row in rows))
    return {"gpu": ", ".join(models), "driver": rows[0][1]}


def for_job(
    found: Mapping[str, Any], executor: str, job_env: Mapping[str, str], sees_gpus: bool
) -> dict[str, Any]:
    """A probed environment as one job saw it: its thread settings override the probed ones,
    and a job that sees no GPU has no GPU model or driver recorded (they did not touch it)."""
    threads = {**found.get("threads", {}), **{k: job_env[k] for k in THREAD_VARS if k in job_env}}
    environment = {**found, "executor": executor, "threads": dict(sorted(threads.items()))}
    if not sees_gpus:
        environment.update(gpu=None, driver=None)
    return environment


def sees_gpus(env: Mapping[str, str]) -> bool:
    """Whether a host job sees the host's GPUs: not when CUDA_VISIBLE_DEVICES hides them all."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    return visible is None or any(d.strip() not in ("", "-1") for d in visible.split(","))
