"""Digest and restore benchmark: how bg copes with big files and many files.

    python bench/bench_digest.py --reps 5 --out bench/results/digest.json

Measures, in one run and against baselines taken in that same run:
  * first digest of a 1 GiB input (`bg status`, stat cache emptied) vs `hashlib.file_digest`
    over the same (page-cached) file; bg's fixed start-up, measured the same way on an empty
    input, is subtracted before computing its throughput;
  * unchanged re-status of that project, against `python3 -c pass` and bg on an empty input;
  * `touch` of the 1 GiB file: the status right after must re-hash it once, the next must not;
  * unchanged re-status with 10,000 small files in an input directory;
  * cache-hit restore of a 1 GiB output (`bg run`, `bg clean`, timed `bg run`).
The temporary projects (about 3 GiB) are deleted at the end, also on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CommandFailed,
    bg_command,
    format_table,
    machine,
    machine_line,
    median,
    repeat_timed,
    run_timed,
    verdict,
    write_json,
)

GIB = 1 << 30
# bg trusts a stat-cache row only when the file's mtime is this much older than its hashing
# (stores/digests.py: racily-clean files); a file touched just before is re-hashed until then.
RACY_WINDOW_S = 2.0
SMALL_FILES = 10_000
BUILDFILE = """[project]
name = "digest-bench"
executor = "local"

[stages.{name}]
command = "{command}"
inputs = [{inputs}]
outputs = ["{output}"]
"""


def write_project(root: Path, command: str, inputs: list[str], output: str = "out.txt") -> Path:
    root.mkdir(parents=True)
    quoted = ", ".join(f'"{i}"' for i in inputs)
    (root / "Buildfile.toml").write_text(
        BUILDFILE.format(name="s", command=command, inputs=quoted, output=output)
    )
    return root


def write_big_file(path: Path, size: int) -> None:
    """`size` bytes: one random MiB repeated (sha256 costs the same on any bytes; this is fast to write)."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])


def forget_state(project: Path) -> None:
    shutil.rmtree(project / ".bg", ignore_errors=True)
    (project / "Buildfile.lock").unlink(missing_ok=True)


def raw_sha256_seconds(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - start


class DigestBench:
    def __init__(self, root: Path, reps: int, size: int) -> None:
        self.root, self.reps, self.size = root, reps, size
        self.bg = bg_command()
        self.results: dict[str, float] = {}
        self.notes: dict[str, object] = {}  # what bg said, to check it restored rather than ran

    def status(self, project: Path) -> float:
        return run_timed([*self.bg, "status"], project).seconds

    def first_status(self, project: Path) -> float:
        forget_state(project)
        return self.status(project)

    def startup(self) -> None:
        empty = write_project(self.root / "empty", "cat data/empty > out.txt", ["data/empty"])
        (empty / "data").mkdir()
        (empty / "data" / "empty").touch()
        r = self.results
        r["python3 -c pass"] = median(repeat_timed([sys.executable, "-c", "pass"], self.reps))
        r["bg --version"] = median(repeat_timed([*self.bg, "--version"], self.reps))
        r["bg status, empty input, first"] = median(self.first_status(empty) for _ in range(self.reps))
        r["bg status, empty input, again"] = median(repeat_timed([*self.bg, "status"], self.reps, empty))
        run_timed([*self.bg, "run", "--quiet"], empty)
        r["bg run, empty input, up to date"] = median(
            repeat_timed([*self.bg, "run", "--quiet"], self.reps, empty)
        )

    def big_input(self) -> None:
        project = write_project(self.root / "big", "head -c 100 data/big.bin > out.txt", ["data/big.bin"])
        (project / "data").mkdir()
        big = project / "data" / "big.bin"
        write_big_file(big, self.size)
        raw_sha256_seconds(big)  # bring it into the page cache for both contenders
        raw, first = [], []
        for _ in range(self.reps):  # interleaved: noise hits both alike
            raw.append(raw_sha256_seconds(big))
            first.append(self.first_status(project))
        r = self.results
        r["hashlib sha256, big file"] = median(raw)
        r["bg status, big input, first"] = median(first)
        r["bg status, big input, again"] = median(repeat_timed([*self.bg, "status"], self.reps, project))
        run = [*self.bg, "run", "--quiet"]
        run_timed(run, project)
        r["bg run, big input, up to date"] = median(repeat_timed(run, self.reps, project))
        for name, argv in (("status", [*self.bg, "status"]), ("run", run)):
            for settle in (0.0, RACY_WINDOW_S + 0.5):
                first_after, second_after = self.after_touch(big, project, argv, settle)
                when = "touched" if not settle else f"touched {settle:.1f} s before"
                r[f"bg {name}, big input, {when}, 1st"] = first_after
                r[f"bg {name}, big input, {when}, 2nd"] = second_after
        big.unlink()

    def after_touch(self, big: Path, project: Path, argv: list[str], settle: float) -> tuple[float, float]:
        """Medians of the two invocations after `touch big` (and `settle` seconds of waiting)."""
        pairs = []
        for _ in range(self.reps):
            os.utime(big)
            time.sleep(settle)
            pairs.append((run_timed(argv, project).seconds, run_timed(argv, project).seconds))
        return median(a for a, _ in pairs), median(b for _, b in pairs)

    def many_files(self) -> None:
        project = write_project(self.root / "many", "ls many | wc -l > out.txt", ["many/"])
        (project / "many").mkdir()
        for i in range(SMALL_FILES):
            (project / "many" / f"f{i:05d}.txt").write_bytes(os.urandom(100))
        r = self.results
        r[f"bg status, {SMALL_FILES} files, first"] = median(self.first_status(project) for _ in range(3))
        r[f"bg status, {SMALL_FILES} files, again"] = median(
            repeat_timed([*self.bg, "status"], self.reps, project)
        )

    def restore(self) -> None:
        project = write_project(
            self.root / "restore", f"head -c {self.size} /dev/zero > big.out", [], "big.out"
        )
        r = self.results
        r["bg run, writes big output, first"] = run_timed([*self.bg, "run", "--quiet"], project).seconds
        times = []
        for _ in range(self.reps):
            run_timed([*self.bg, "clean"], project)
            timing = run_timed([*self.bg, "run", "--quiet"], project)
            times.append(timing.seconds)
            self.notes["restore summary"] = timing.stdout.strip().splitlines()[-1:]
            self.notes["restored file's link count (>1: hardlinked)"] = (project / "big.out").stat().st_nlink
            restored = project / "big.out"
            if not restored.is_file() or restored.stat().st_size != self.size:
                raise CommandFailed(f"`bg run` after `bg clean` did not restore big.out in {project}")
        r["bg run, restores big output"] = median(times)


def targets(r: dict[str, float], size: int) -> list[list[object]]:
    startup_first = r["bg status, empty input, first"]
    hashing = r["bg status, big input, first"] - startup_first
    share = (r["hashlib sha256, big file"] / hashing) if hashing > 0 else None
    again = r["bg status, big input, again"] - r["bg status, empty input, again"]
    settled = f"touched {RACY_WINDOW_S + 0.5:.1f} s before"
    touched = {
        f"{cmd}, {when}": r[f"bg {cmd}, big input, {when}, 2nd"] - base
        for cmd, base in (
            ("status", r["bg status, empty input, again"]),
            ("run", r["bg run, empty input, up to date"]),
        )
        for when in ("touched", settled)
    }
    rehash = r[f"bg status, big input, {settled}, 1st"] - r[f"bg status, big input, {settled}, 2nd"]
    restore = r["bg run, restores big output"] - r["bg run, empty input, up to date"]
    many = r[f"bg status, {SMALL_FILES} files, again"]
    mib_s = size / (1 << 20)
    return [
        ["bg first digest throughput / hashlib (start-up subtracted)", share, 0.7, verdict(share, 0.7, True)],
        [
            "  bg MiB/s | hashlib MiB/s",
            round(mib_s / hashing) if hashing > 0 else None,
            round(mib_s / r["hashlib sha256, big file"]),
            "info",
        ],
        [
            f"big file: status 1st minus 2nd after settled touch (1 hash = {hashing:.2f})",
            rehash,
            None,
            "info",
        ],
        ["big file: unchanged re-status, s beyond bg start-up", again, 0.05, verdict(again, 0.05)],
        *(
            [f"big file: 2nd {what}, s beyond start-up", extra, 0.05, verdict(extra, 0.05)]
            for what, extra in touched.items()
        ),
        [f"{SMALL_FILES} files unchanged re-status, s", many, 0.5, verdict(many, 0.5)],
        [
            "big file: restore, s beyond bg start-up (bg run, up to date)",
            restore,
            0.05,
            verdict(restore, 0.05),
        ],
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size", type=int, default=GIB, help="bytes of the big file (default: 1 GiB)")
    p.add_argument("--out", type=Path)
    p.add_argument("--tmp", type=Path, help="where to put the temporary projects (default: system temp)")
    ns = p.parse_args(argv)
    info = machine()
    root = Path(tempfile.mkdtemp(prefix="bg-digest-", dir=ns.tmp))
    bench = DigestBench(root, ns.reps, ns.size)
    error = None
    try:
        for part in (bench.startup, bench.big_input, bench.many_files, bench.restore):
            print(f"# {part.__name__}", file=sys.stderr, flush=True)
            part()
    except CommandFailed as exc:
        error = str(exc)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # a few GiB: the disk is shared
    print(machine_line(info))
    print(f"# big file: {ns.size / (1 << 20):.0f} MiB; {bench.notes}")
    print(format_table(["measurement", "median s"], list(bench.results.items())))
    checks = targets(bench.results, ns.size) if error is None else []
    if checks:
        print()
        print(format_table(["target", "value", "limit", "verdict"], checks))
    if error:
        print(f"\nFAILED {error}")
    if ns.out:
        write_json(
            ns.out,
            {
                "machine": info,
                "reps": ns.reps,
                "size": ns.size,
                "results": bench.results,
                "notes": bench.notes,
                "targets": [
                    dict(zip(("target", "value", "limit", "verdict"), c, strict=True)) for c in checks
                ],
                "error": error,
            },
        )
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
