"""Docker benchmark: the CIFAR-10 example under `--executor docker --arg BASE=base-debian`.

    python bench/bench_docker.py [--reps 3] [--null-reps 9] [--with-base] [--out bench/results/docker.json]

The example is the repository's Buildfile.toml + stages/ with its default params (5,000
synthetic training images, 2 epochs), copied once per repetition under a fresh project
name, so its images (`bg/<name>/…`) do not exist yet and are removed at the end. Phases:

  a  cold      `bg run plot code` in the fresh copy: builds base-debian's labelled image,
               deps and code, runs data → train → evaluate → plot. The mmdebstrap'd Debian
               base (`bg/debian/bookworm:…`, ~2 min to build) is KEPT; `--with-base` adds one
               run whose base is built too (a distinct mirror spelling gives it its own key,
               so the shared base is never touched), then removed.
  b  train.py  after appending a comment to stages/train.py: rebuild code, rerun train;
               evaluate and plot are cut off (model.pt comes out byte-identical)
  c  plot.py   after appending a comment to stages/plot.py: rebuild code, rerun plot
  d  null      `bg run plot` with nothing to do, docker and local executors, against a bare
               `python -c pass` of the same interpreter, interleaved, median of --null-reps

Every timed `bg run` of a-c records which steps it built, ran and cut off (from `--json`),
so a phase that did the wrong work is reported, not silently timed. PYTHONDONTWRITEBYTECODE
is removed from the environment and a warm-up run goes first, so .pyc files exist as in a
normal installation. When the null docker run misses 3x `python -c pass`, a cProfile of it
(top 15) and the costliest imports are printed and stored.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CommandFailed,
    bg_command,
    format_table,
    machine,
    machine_line,
    median,
    run_timed,
    verdict,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ["--executor", "docker", "--arg", "BASE=base-debian"]
NULL_TARGET = 3.0  # a null docker run within 3x a bare interpreter start
BASE_LINE = 'from = { debian = "bookworm",'
EXPECTED = {  # phase → (built, ran, cut off)
    "a": ({"base-debian", "deps", "code"}, {"data", "train", "evaluate", "plot"}, set()),
    "b": ({"code"}, {"train"}, {"evaluate", "plot"}),
    "c": ({"code"}, {"plot"}, set()),
}


@dataclass
class Copy:
    """A copy of the example under its own project name."""

    root: Path
    name: str


@dataclass
class Phase:
    label: str
    times: list[float] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # what each timed run did, as text
    unexpected: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.times)


def make_copy(parent: Path, tag: str, names: list[str]) -> Copy:
    """Copy the example into `parent/tag` under a fresh project name, recorded in `names` for clean-up."""
    name = f"cifar10-bench-{uuid.uuid4().hex[:8]}"
    names.append(name)
    root = parent / tag
    root.mkdir()
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "Buildfile.toml").read_text()
    (root / "Buildfile.toml").write_text(text.replace('name = "cifar10"', f'name = "{name}"', 1))
    return Copy(root, name)


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def bg_run(copy: Copy, *extra: str) -> tuple[float, list[dict[str, Any]]]:
    """Time one `bg run plot code --json` under docker; return (seconds, events)."""
    timing = run_timed([*bg_command(), "run", "plot", "code", "--json", *DOCKER, *extra], copy.root)
    return timing.seconds, [json.loads(line) for line in timing.stdout.splitlines() if line.startswith("{")]


def steps_done(events: list[dict[str, Any]]) -> tuple[set[str], set[str], set[str]]:
    started = [e for e in events if e["event"] == "start"]
    built = {e["stage"] for e in started if e["action"] == "build"}
    ran = {e["stage"] for e in started if e["action"] == "run"}
    cut = {e["stage"] for e in events if e["event"] == "finish" and e["status"] == "cutoff"}
    return built, ran, cut


def describe(built: set[str], ran: set[str], cut: set[str]) -> str:
    parts = [
        f"{verb} {', '.join(sorted(s))}" for verb, s in (("built", built), ("ran", ran), ("cut", cut)) if s
    ]
    return "; ".join(parts) or "nothing"


def timed_phase(phase: Phase, key: str, copy: Copy) -> None:
    seconds, events = bg_run(copy)
    done = steps_done(events)
    phase.times.append(seconds)
    phase.steps.append(describe(*done))
    if done != EXPECTED[key]:
        phase.unexpected.append(f"{copy.name}: {describe(*done)} (expected {describe(*EXPECTED[key])})")


def edit_cycle(parent: Path, rep: int, phases: dict[str, Phase], names: list[str]) -> Copy:
    """Phases a, b, c in one fresh copy; returns the copy, up to date."""
    copy = make_copy(parent, f"rep{rep}", names)
    timed_phase(phases["a"], "a", copy)
    append(copy.root / "stages/train.py", f"# bench edit {rep}: the weights do not change\n")
    timed_phase(phases["b"], "b", copy)
    append(copy.root / "stages/plot.py", f"# bench edit {rep}\n")
    timed_phase(phases["c"], "c", copy)
    return copy


def cold_with_base(parent: Path) -> tuple[float, str]:
    """One cold run whose Debian base is built too, under a key of its own; the base is removed after."""
    from buildgraph.core.spec import DebianBase
    from buildgraph.images.debian import debian_key, debian_tag

    copy = make_copy(parent, "with-base", [])
    mirror = "http://deb.debian.org/debian"
    text = (copy.root / "Buildfile.toml").read_text()
    (copy.root / "Buildfile.toml").write_text(text.replace(BASE_LINE, f'{BASE_LINE} mirror = "{mirror}",', 1))
    packages = ("python3", "python3-torch", "python3-torchvision", "python3-matplotlib")
    spec = DebianBase("bookworm", packages, mirror)
    tag = debian_tag(spec, debian_key(spec))
    try:
        seconds, events = bg_run(copy)
        return seconds, describe(*steps_done(events))
    finally:
        remove_images([copy.name])
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


def null_runs(parent: Path, docker_copy: Copy, reps: int) -> dict[str, list[float]]:
    """Null `bg run plot` (docker, local) and `python -c pass`, interleaved; each warmed up first."""
    local_copy = make_copy(parent, "local", [])  # runs on the host: no images
    commands = {
        "bg run (docker)": ([*bg_command(), "run", "plot", *DOCKER], docker_copy.root),
        "bg run (local)": ([*bg_command(), "run", "plot", "--executor", "local"], local_copy.root),
        "python -c pass": ([sys.executable, "-c", "pass"], parent),
    }
    for argv, cwd in commands.values():
        run_timed(argv, cwd)  # brings the local copy up to date; the rest is a warm-up
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(reps):
        for label, (argv, cwd) in commands.items():
            times[label].append(run_timed(argv, cwd).seconds)
    return times


def profile_null(copy: Copy, top: int = 15) -> dict[str, str]:
    """cProfile of a null docker run (by own time; bg's functions by cumulative) and slowest imports."""
    argv = ["-m", "buildgraph", "run", "plot", *DOCKER]
    prof = copy.root / ".bg/null.prof"
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), *argv],
        cwd=copy.root,
        check=True,
        capture_output=True,
    )
    own, mine = StringIO(), StringIO()
    pstats.Stats(str(prof), stream=own).strip_dirs().sort_stats("tottime").print_stats(top)
    pstats.Stats(str(prof), stream=mine).sort_stats("cumulative").print_stats("/buildgraph/", top)
    imports = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], cwd=copy.root, check=True, capture_output=True, text=True
    ).stderr
    return {"own_time": _stats_table(own.getvalue()), "bg_cumulative": _stats_table(mine.getvalue()),
            "imports": slowest_imports(imports, top)}  # fmt: skip


def _stats_table(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    total = next((line.strip() for line in lines if "function calls" in line), "")
    return "\n".join([total, *[line for line in lines[start:] if line.strip()]])


def slowest_imports(importtime: str, top: int) -> str:
    """Top-level imports by cumulative microseconds, from `python -X importtime` output."""
    rows = []
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(3)) <= 1:  # one space = imported by __main__ directly
            rows.append((int(match.group(2)), match.group(4)))
    rows.sort(reverse=True)
    return "\n".join(f"{us / 1000:8.1f} ms  {name}" for us, name in rows[:top])


def remove_images(names: list[str]) -> None:
    """Untag every image of the bench's projects, children first (never by id: layers are shared)."""
    import docker

    client = docker.from_env()
    try:
        for name in names:
            built = client.images.list(filters={"label": f"org.buildgraph.project={name}"})
            for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):
                for tag in image.tags:
                    if tag.startswith(f"bg/{name}/"):
                        client.images.remove(tag)
    finally:
        client.close()


def report(
    phases: dict[str, Phase], nulls: dict[str, list[float]], base: tuple[float, str] | None
) -> dict[str, Any]:
    cold = phases["a"].median
    ratios = {f"{k}/a": phases[k].median / cold for k in ("b", "c")}
    null = {label: median(ts) for label, ts in nulls.items()}
    bare = null["python -c pass"]
    null_ratio = null["bg run (docker)"] / bare
    rows: list[list[object]] = [[p.label, p.median, len(p.times), p.steps[-1]] for p in phases.values()]
    if base:
        rows.append(["a' cold, Debian base built too", base[0], 1, base[1]])
    rows += [[f"d  null {label}", value, len(nulls[label]), ""] for label, value in null.items()]
    print(format_table(["phase", "median s", "runs", "steps (last run)"], rows))
    print("\nratios: " + "   ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    print(
        f"null docker run / python -c pass: {null_ratio:.2f}x "
        f"(target <= {NULL_TARGET:g}x: {verdict(null_ratio, NULL_TARGET)}); "
        f"local: {null['bg run (local)'] / bare:.2f}x"
    )
    return {
        "phases": {k: asdict(p) | {"median": p.median} for k, p in phases.items()},
        "cold_with_base": {"seconds": base[0], "steps": base[1]} if base else None,
        "ratios": ratios,
        "null": {label: {"times": ts, "median": null[label]} for label, ts in nulls.items()},
        "null_ratio_docker": null_ratio,
        "null_ratio_local": null["bg run (local)"] / bare,
        "null_target": NULL_TARGET,
        "null_verdict": verdict(null_ratio, NULL_TARGET),
    }


def docker_version() -> str:
    done = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def measure(
    parent: Path, args: argparse.Namespace, phases: dict[str, Phase], names: list[str]
) -> dict[str, Any]:
    copy = make_copy(parent, "warm-up", names)  # also builds the Debian base if this engine lacks it
    bg_run(copy)
    for rep in range(args.reps):
        copy = edit_cycle(parent, rep, phases, names)
    base = cold_with_base(parent) if args.with_base else None
    nulls = null_runs(parent, copy, args.null_reps)
    result = report(phases, nulls, base)
    if result["null_verdict"] != "meets":
        result["profile"] = profile_null(copy)
        for title, text in result["profile"].items():
            print(f"\n--- null docker run: {title} ---\n{text}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=3, help="cold/edit cycles, each in a fresh copy (>= 1)")
    parser.add_argument("--null-reps", type=int, default=9)
    parser.add_argument(
        "--with-base", action="store_true", help="one more cold run that builds the base (~2 min)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/docker.json")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.null_reps < 1:
        parser.error("--reps and --null-reps must be at least 1")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with .pyc files, as users have them
    info = machine()
    print(machine_line(info) + f", Docker {docker_version()}")
    phases = {
        "a": Phase("a  cold build + run (Debian base kept)"),
        "b": Phase("b  after editing stages/train.py"),
        "c": Phase("c  after editing stages/plot.py"),
    }
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bg-bench-docker-") as tmp:
        try:
            result = measure(Path(tmp), args, phases, names)
        except CommandFailed as exc:
            print(f"bench_docker: {exc}", file=sys.stderr)
            return 1
        finally:
            remove_images(names)
    unexpected = [u for p in phases.values() for u in p.unexpected]
    for line in unexpected:
        print(f"UNEXPECTED: {line}")
    write_json(args.out, {"machine": info, "docker": docker_version(), "pythondontwritebytecode": "unset",
                          "base_kept": "bg/debian/bookworm (mmdebstrap) kept for a-c", **result})  # fmt: skip
    print(f"\nwrote {args.out}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
