"""End-to-end helpers: a project in tmp_path, and `bg` run as a real subprocess against it.

Commands in the Buildfiles append their stage name to `ran.log` *outside* the project
(`Project.ran`, an absolute path): the scratch directory holds only declared inputs, so this
is the one side effect that proves whether a command really executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60  # seconds for one `bg` invocation; a hang fails the test instead of the suite


@dataclass
class Done:
    """One finished `bg` invocation."""

    rc: int
    out: str
    err: str

    def __iter__(self) -> Iterator[Any]:  # rc, out, err = project.bg(...)
        return iter((self.rc, self.out, self.err))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON events of a `--json` run, in order."""
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    @property
    def statuses(self) -> dict[str, str]:
        """Stage → its finish status (done, cached, skipped, cutoff, failed, blocked …)."""
        return {e["stage"]: e["status"] for e in self.events if e["event"] == "finish"}

    def started(self) -> dict[str, dict[str, Any]]:
        return {e["stage"]: e for e in self.events if e["event"] == "start"}

    def lines(self, stage: str) -> list[str]:
        return [e["text"] for e in self.events if e["event"] == "line" and e["stage"] == stage]


class Project:
    def __init__(self, root: Path, ran: Path) -> None:
        self.root, self.ran = root, ran
        root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ files
    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # outputs are read-only hardlinks into the cache: never write through
        path.write_text(text)
        return path

    def buildfile(self, text: str, **values: object) -> None:
        """Write Buildfile.toml; `{ran}` (and any other `{name}` given) is filled in."""
        for name, value in {"ran": self.ran, **values}.items():
            text = text.replace("{" + name + "}", str(value))
        self.write("Buildfile.toml", text)

    def stages(self, text: str, **values: object) -> None:
        """Write a Buildfile of these `[stages.*]` tables, run on the host."""
        self.buildfile(f'[project]\nname = "t"\nexecutor = "local"\n{text}', **values)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def executed(self) -> list[str]:
        """Stages whose command ran since the last call (in completion order), then forget them."""
        if not self.ran.exists():
            return []
        names = self.ran.read_text().split()
        self.ran.unlink()
        return names

    # ------------------------------------------------------------ bg
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "buildgraph", "-C", str(self.root), *args]

    def bg(self, *args: str, env: dict[str, str] | None = None, check: int | None = None) -> Done:
        """Run `bg -C root ARGS…`; `check` asserts the exit status. Never a traceback."""
        done = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=environment(env), timeout=TIMEOUT
        )
        result = Done(done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in result.err, result.err
        if check is not None:
            assert result.rc == check, f"bg {' '.join(args)} exited {result.rc}\n{result.out}\n{result.err}"
        return result

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `bg` in the background, with SIGINT at its default (a shell's `&` ignores it)."""
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(env),
            preexec_fn=_default_sigint,
        )

    def run_json(self, *args: str, env: dict[str, str] | None = None, check: int | None = 0) -> Done:
        return self.bg("run", "--json", *args, env=env, check=check)

    def status(self, *args: str) -> dict[str, dict[str, Any]]:
        """`bg status --json` as stage → decision."""
        done = self.bg("status", "--json", *args, check=0)
        return {d["stage"]: d for d in json.loads(done.out)}

    # ------------------------------------------------------------ recorded state
    def lock(self) -> dict[str, Any]:
        stages: dict[str, Any] = json.loads(self.read("Buildfile.lock"))["stages"]
        return stages

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Key → manifest of every run in the cache (a manifest that does not parse fails)."""
        runs = self.root / ".bg" / "cache" / "runs"
        found = {}
        for path in sorted(runs.glob("*/*.json")) if runs.is_dir() else ():
            if not path.name.startswith("."):
                found[path.stem] = json.loads(path.read_bytes())
        return found

    def object(self, digest: str) -> Path:
        return self.root / ".bg" / "cache" / "objects" / digest[:2] / digest[2:]

    def assert_sound(self) -> None:
        """No corrupt or partial cache entry, and a lock (if any) that parses."""
        assert store_problems(self) == []
        if (self.root / "Buildfile.lock").exists():
            assert isinstance(self.lock(), dict)


def environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BG_")}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the GPU pool is sized from it: tests set it
    env["TERM"] = "dumb"
    env.update(extra or {})
    return env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj", tmp_path / "ran.log")


# prep → feat → train → report (which also reads notes.txt). `prep` upper-cases, so a
# change of case in raw.txt leaves clean.txt byte-identical: the early-cutoff case.
PIPELINE = """
[project]
name = "pipe"
executor = "local"

[params]
scale = 2

[stages.prep]
command = "echo prep >> {ran}; tr a-z A-Z < raw.txt > clean.txt"
inputs = ["raw.txt"]
outputs = ["clean.txt"]

[stages.feat]
command = "echo feat >> {ran}; echo featuring; (cat clean.txt clean.txt; echo ${params.scale}) > feat.txt"
inputs = ["clean.txt"]
outputs = ["feat.txt"]

[stages.train]
command = "echo train >> {ran}; cat feat.txt > model.txt; echo trained >> model.txt"
inputs = ["feat.txt"]
outputs = ["model.txt"]

[stages.report]
command = "echo report >> {ran}; mkdir -p rep; cat model.txt notes.txt > rep/summary.txt; echo ok > rep/ok"
inputs = ["model.txt", "notes.txt"]
outputs = ["rep/"]
"""
STAGES = ["prep", "feat", "train", "report"]


@pytest.fixture
def pipeline(project: Project) -> Project:
    """The four-stage pipeline, written but not run."""
    project.buildfile(PIPELINE)
    project.write("raw.txt", "hello\n")
    project.write("notes.txt", "notes\n")
    return project


@pytest.fixture(scope="module")
def shared_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The pipeline, written once per module, for commands that do not change the project."""
    root = tmp_path_factory.mktemp("shared")
    project = Project(root / "proj", root / "ran.log")
    project.buildfile(PIPELINE)
    project.write("raw.txt", "hello\n")
    project.write("notes.txt", "notes\n")
    return project


@pytest.fixture
def built(pipeline: Project) -> Project:
    """The pipeline after one successful `bg run`."""
    pipeline.bg("run", "-q", check=0)
    assert pipeline.executed() == STAGES
    return pipeline


# ---------------------------------------------------------------- shared checks
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def referenced_objects(manifest: dict[str, Any]) -> set[str]:
    """Object digests a manifest needs (its outputs' files/tree entries and its log)."""
    found = {manifest["log"]} if manifest.get("log") else set()
    for record in manifest["outputs"].values():
        if record["kind"] == "dir":
            found |= {digest for _rel, _mode, digest, _size in record["tree"]}
        else:
            found.add(record["digest"])
    return found


def store_problems(project: Project) -> list[str]:
    """Corrupt or partial cache entries: a manifest that names a missing object or one with
    the wrong bytes, an object (under its final name) whose bytes do not match it."""
    problems = []
    for key, manifest in project.manifests().items():
        if manifest.get("key") != key:
            problems.append(f"manifest {key[:12]} records key {manifest.get('key')}")
        for digest in referenced_objects(manifest):
            path = project.object(digest)
            if not path.is_file() or sha256(path) != digest:
                problems.append(f"manifest {key[:12]} needs object {digest[:12]}: missing or wrong")
    objects = project.root / ".bg" / "cache" / "objects"
    for path in objects.glob("*/*") if objects.is_dir() else ():
        if not path.name.startswith(".") and sha256(path) != path.parent.name + path.name:
            problems.append(f"object {path.parent.name}{path.name[:10]} has the wrong bytes")
    return problems


class Procs:
    """Process helpers for the Ctrl-C, crash and concurrency tests (the `procs` fixture)."""

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    @staticmethod
    def read_pid(path: Path) -> int | None:
        """The pid a command wrote with `echo $$ > PATH`, once the whole line is there."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") and text.strip().isdigit() else None

    def wait_pid(self, path: Path) -> int:
        self.wait_for(lambda: self.read_pid(path) is not None, what=f"the command to write {path.name}")
        pid = self.read_pid(path)
        assert pid is not None
        return pid

    @staticmethod
    def alive(pid: int) -> bool:
        """True while a process with this pid exists and is not a zombie."""
        return _state(pid) not in (None, "Z")

    def group_alive(self, pgid: int) -> bool:
        """True while any live (non-zombie) process is in process group `pgid`."""
        return any(_field(pid, 2) == str(pgid) and self.alive(pid) for pid in _pids())

    def kill_group(self, pgid: int) -> None:
        """Clean up a command's process group that a SIGKILLed bg left behind (we started it);
        nothing when the group is gone already, so a reused id is never signalled."""
        if self.group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _field(pid: int, index: int) -> str | None:
    """Field `index` after the command name in /proc/PID/stat (0 state, 2 process group)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[index]
    except (OSError, IndexError):
        return None


def _state(pid: int) -> str | None:
    return _field(pid, 0)


@pytest.fixture
def procs() -> Procs:
    return Procs()
