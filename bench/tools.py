"""The tools benchmarked, and how each does each phase in its own copy of the workload.

bg, make and doit go through every phase; Snakemake and DVC (slow peers, for the peer table)
through the first build at -j1 and the null run only, under a per-command time limit. A peer
that is not installed is skipped with a note: Snakemake is found through `$BENCH_SNAKEMAKE`,
DVC through `$BENCH_DVC`, else on PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import bg_command, executable
from dag import Dag, write_workspace

ALL_TOOLS = ("bg", "make", "doit", "snakemake", "dvc")
SLOW_PEERS = ("snakemake", "dvc")
PEER_ENV = {"snakemake": "BENCH_SNAKEMAKE", "dvc": "BENCH_DVC"}
DOIT_BACKEND = "json"  # fastest doit state backend here (dbm is dbm.dumb without gdbm; see README)


@dataclass
class Tool:
    """How one tool does each phase, in its own workspace."""

    name: str
    ws: Path
    state: tuple[str, ...]  # files/dirs holding the tool's memory, removed for a first build
    full: dict[str, list[str]]  # -j label → argv of a first build
    run: list[str]  # an incremental run (-j1)
    status: list[str] | None = None  # a read-only "what would run" (bg status, doit list --status)
    prepare: tuple[list[str], ...] = ()  # untimed, after a reset (`dvc init`)
    env: dict[str, str] | None = None  # added to the environment of its commands
    limit: float | None = None  # seconds a command may take before it is killed
    incremental: bool = True  # also timed on touch and edit runs
    full_reps: int | None = None  # at most this many first builds (slow peers)
    stopped: str | None = None  # why its later phases are skipped (a failure, a kill)

    def reset(self) -> None:
        for name in self.state:
            path = self.ws / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        shutil.rmtree(self.ws / "out")
        (self.ws / "out").mkdir()
        for argv in self.prepare:
            subprocess.run(argv, cwd=self.ws, check=True, capture_output=True, env=self._environ())

    def _environ(self) -> dict[str, str] | None:
        return os.environ | self.env if self.env else None


def locate(name: str) -> list[str] | None:
    """How to start `name`, or None when it is not installed."""
    if name == "bg":
        return bg_command()
    override = os.environ.get(PEER_ENV.get(name, ""), "")
    if override:
        return shlex.split(override)
    try:
        return [executable(name)]
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class PeerLimits:
    """What the slow peers are allowed: seconds per command, first builds per size."""

    limit_s: float = 150.0
    full_reps: int = 1


def make_tool(name: str, ws: Path, command: list[str], peers: PeerLimits) -> Tool:
    if name == "bg":
        bg = command
        return Tool(
            name,
            ws,
            (".bg", "Buildfile.lock"),
            {"-j1": [*bg, "run", "--quiet", "-j", "1"], "-j2": [*bg, "run", "--quiet", "-j", "2"]},
            [*bg, "run", "--quiet", "-j", "1"],
            [*bg, "status"],
        )
    if name == "make":
        make = command
        return Tool(name, ws, (), {"-j1": [*make, "-s", "-j1"], "-j2": [*make, "-s", "-j2"]}, [*make, "-s"])
    if name == "doit":
        doit = [*command, "--backend", DOIT_BACKEND]
        return Tool(
            name,
            ws,
            (".doit.db",),
            {"-j1": doit, "-j2": [*doit, "-n", "2", "-P", "thread"]},
            doit,
            [*command, "list", "--status", "--backend", DOIT_BACKEND],
        )
    if name == "snakemake":
        smk = [*command, "-c1", "--quiet", "all"]  # `all`: quiet about everything, not a target
        tool = Tool(name, ws, (".snakemake",), {"-j1": smk}, smk)
    elif name == "dvc":
        dvc = [*command, "repro", "--quiet"]
        tool = Tool(name, ws, (".dvc", ".dvcignore", "dvc.lock"), {"-j1": dvc}, dvc)
        tool.prepare = ([*command, "init", "--no-scm", "--quiet"],)
        tool.env = {"DVC_NO_ANALYTICS": "1"}
    else:
        raise ValueError(f"unknown tool {name!r}")
    tool.limit, tool.incremental, tool.full_reps = peers.limit_s, False, peers.full_reps
    return tool


def make_tools(
    root: Path, dag: Dag, template: Path, commands: dict[str, list[str]], peers: PeerLimits
) -> list[Tool]:
    return [
        make_tool(name, write_workspace(root, dag, name, template), argv, peers)
        for name, argv in commands.items()
    ]
