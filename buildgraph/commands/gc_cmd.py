"""`bg gc`: delete cached artefacts that neither the lock nor the last N runs reference."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from buildgraph.commands._common import add, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument(
        "--keep-runs",
        type=int,
        metavar="N",
        help="also keep what the last N runs used (default: [project] keep_runs)",
    )


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session
    from buildgraph.engine import recorded
    from buildgraph.lockfile import current

    project = load_project(ns)
    keep_runs = project.spec.keep_runs if ns.keep_runs is None else ns.keep_runs  # type: ignore[attr-defined]
    with Session(project, ns, frees_space=True) as session:
        ws = session.ws
        lock = current(ws.lock_path, ws.journal_path)  # a full disk may have kept the journal unfolded
        # every entry must parse: gc cannot know what a damaged one keeps, so it deletes nothing
        keep = {entry.key for name in lock.stages if (entry := recorded.entry(lock, name)) is not None}
        keep |= ws.recent_run_keys(keep_runs)
        report = ws.cache.gc(keep)
        scratch = _remove_scratch(ws.tmp)
    sys.stdout.write(
        f"removed {report.manifests_removed} run(s) and {report.objects_removed} object(s), "
        f"freed {_size(report.bytes_freed + scratch)}; kept {len(keep)} run(s)\n"
    )
    return 0


def _remove_scratch(tmp: Path) -> int:
    """Scratch directories left by killed runs (a finished run removes its own); nothing else
    can be using them while we hold the exclusive project lock. Returns the bytes freed."""
    freed = 0
    for leftover in tmp.iterdir() if tmp.is_dir() else ():
        sizes = (f.lstat() for f in leftover.rglob("*"))
        freed += sum(st.st_size for st in sizes if st.st_nlink == 1)  # hardlinked inputs free nothing
        shutil.rmtree(leftover, ignore_errors=True)
    return freed


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
