"""`bg audit --vary`: rerun under another environment, reprotest's way, and say what was varied.

Knobs (each one a thing real stages leak into their outputs):

    path      another, deeper working directory (absolute paths in outputs)
    tz        TZ=... far from UTC (local time in outputs)
    locale    LC_ALL/LANG another locale (sorting, number formats)
    umask     umask 0027 instead of the usual 0022 (file modes)
    hostname  another hostname (containers only: the host's cannot be changed unprivileged)
    clock     the clock a year and more ahead, by libfaketime when installed (host only: the
              library is not in the image)
    hashseed  PYTHONHASHSEED fixed to another value (set and dict iteration orders)

The variation is applied to the job only (`VaryingExecutor` wraps the real executor): the
audited command, its inputs and its image stay the recorded ones.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from typing import Any

from buildgraph.executors.base import Cancel, Job, Result
from buildgraph.lines import LineSink

KNOBS = ("path", "tz", "locale", "umask", "hostname", "clock", "hashseed")
TZ = "Pacific/Kiritimati"  # UTC+14: as far from UTC as a real zone is
LOCALE = "C.UTF-8"  # present everywhere; differs from POSIX/en_US in collation and encoding
UMASK = "0027"
HOSTNAME = "bg-audit-varied"
CLOCK_OFFSET = "+400d"  # libfaketime's relative offset
HASHSEED = "4242"
VARIED_PATH = "varied/path/of/another/length"  # below the audit folder: same filesystem, hardlinks work
FAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


@dataclass(frozen=True)
class Variation:
    """The knobs turned for one executor, and those that could not be, with why."""

    on: tuple[str, ...]
    off: dict[str, str]  # knob → why it was not varied
    faketime: str = ""  # libfaketime's path (host only)

    def describe(self) -> str:
        return ", ".join(self.on) if self.on else "nothing"


def variation(executor: str) -> Variation:
    """What can be varied under `executor` ("local" or "docker") on this machine."""
    off: dict[str, str] = {}
    on = ["path", "tz", "locale", "umask", "hashseed"]
    if executor == "docker":
        on.append("hostname")
        off["clock"] = "libfaketime is not in the image"
        return Variation(tuple(k for k in KNOBS if k in on), off)
    off["hostname"] = "the host's hostname cannot be changed unprivileged"
    library = find_faketime()
    if library:
        on.append("clock")
    else:
        off["clock"] = "libfaketime is not installed (apt-get install faketime)"
    return Variation(tuple(k for k in KNOBS if k in on), off, library)


def find_faketime() -> str:
    for pattern in FAKETIME_GLOBS:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return ""


def varied_job(job: Job, varied: Variation) -> Job:
    env = dict(job.env)
    if "tz" in varied.on:
        env["TZ"] = TZ
    if "locale" in varied.on:
        env["LC_ALL"] = env["LANG"] = LOCALE
    if "hashseed" in varied.on:
        env["PYTHONHASHSEED"] = HASHSEED
    if "clock" in varied.on and varied.faketime:
        env["LD_PRELOAD"] = ":".join(p for p in (env.get("LD_PRELOAD", ""), varied.faketime) if p)
        env["FAKETIME"] = CLOCK_OFFSET
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"  # timeouts and thread waits keep real time
    command = f"umask {UMASK}\n{job.command}" if "umask" in varied.on else job.command
    changes: dict[str, Any] = {"env": tuple(env.items()), "command": command}
    if "hostname" in varied.on:
        changes["hostname"] = HOSTNAME
    if "path" in varied.on:
        changes["workdir"] = "/build/" + VARIED_PATH  # in a container; on the host the scratch path varies
    return dataclasses.replace(job, **changes)


class VaryingExecutor:
    """An executor running every job under a `Variation` (the engine sees the real one's name)."""

    def __init__(self, inner: Any, varied: Variation) -> None:
        self.inner, self.varied = inner, varied
        self.name = inner.name

    @property
    def client(self) -> Any:  # the docker executor's, for image lookups
        return self.inner.client

    def run(self, job: Job, on_line: LineSink | None = None, cancel: Cancel | None = None) -> Result:
        return self.inner.run(varied_job(job, self.varied), on_line=on_line, cancel=cancel)

    def close(self) -> None:
        self.inner.close()
