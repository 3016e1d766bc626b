"""`bg verify --repair`: make good what `audit.verify` found, each step using what the one
before made good.

    1. every object with wrong bytes is moved aside (never left under a digest name). A
       workspace file hardlinked to it keeps that inode, but then it holds the same wrong bytes,
       was reported tampered, and is replaced in step 4. An object with the right bytes that
       is not read-only is made read-only again
    2. damaged manifests are moved aside too
    3. a missing object is made again from a file just hashed to hold its bytes: a workspace
       output, or an object moved aside in step 1 (so a swapped pair heals itself)
    4. tampered and missing workspace outputs are restored from the cache, where every object
       of their stage's manifest is good again
    5. a manifest whose objects are still lost is moved aside (it can no longer be restored);
       the lock's stages that could not be made good are returned, for the caller to run again
       (forced) through the engine, which stores their objects and manifests anew

Nothing is deleted: what is moved aside goes to one folder per repair (`aside`), for a look.
Run it under the exclusive project lock.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildgraph.audit.verify import (
    DAMAGED,
    MANIFEST,
    MISSING,
    OBJECT,
    OBJECT_MODE,
    OUTPUT,
    WRONG_BYTES,
    Report,
)
from buildgraph.records.lock_entry import LockEntry
from buildgraph.stores.cache import ArtefactCache, CorruptObject
from buildgraph.stores.link import LinkMode

EMPTY = hashlib.sha256(b"").hexdigest()  # the log of a silent command: made from nothing

Remember = Callable[[str, Mapping[str, Any]], None]  # workspace path now holds this record


@dataclass
class Repair:
    done: list[str] = field(default_factory=list)  # what was done, one line each, in order
    rerun: list[str] = field(default_factory=list)  # the lock's stages to run again, in its order


def repair(
    report: Report,
    cache: ArtefactCache,
    root: Path,
    aside: Path,
    link: LinkMode = "auto",
    remember: Remember | None = None,
) -> Repair:
    """Repair what `report` found (module doc); `aside`: a new folder for what is moved aside."""
    fixed = Repair()
    mover = _Aside(aside, root, fixed.done)
    held = move_objects_aside(report, mover)
    for name, path in sorted(report.loose.items()):
        os.chmod(path, OBJECT_MODE)  # its hardlinks in the workspace are read-only again too
        fixed.done.append(f"made object {name[:12]}… read-only again")
    for key in sorted(p.name for p in report.problems if p.subject == MANIFEST and p.kind == DAMAGED):
        mover.move(report.manifest_files[key], f"run-{key}.json", f"run record {key[:12]}… (damaged)")
    lost = recreate_objects(report, cache, held, fixed.done)
    rerun = stages_to_rerun(report, lost)
    rerun |= restore_outputs(report, cache, root, link, rerun, fixed.done, remember)
    drop_lost_runs(report, lost, mover)
    fixed.rerun = [name for name in report.entries if name in rerun]
    return fixed


class _Aside:
    """Moves files into the repair's folder, saying so in `done`."""

    def __init__(self, folder: Path, root: Path, done: list[str]) -> None:
        self.folder, self.root, self.done = folder, root, done

    def move(self, path: str, name: str, what: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = str(self.folder / name)
        os.rename(path, target)
        self.done.append(f"moved {what} aside to {os.path.relpath(target, self.root)}")
        return target


def move_objects_aside(report: Report, mover: _Aside) -> dict[str, str]:
    """Step 1; returns digest → the moved file that holds those bytes (a swapped object)."""
    kinds = {p.name: p.kind for p in report.problems if p.subject == OBJECT}
    held: dict[str, str] = {}
    for name, wrong in report.wrong.items():
        moved = mover.move(wrong.path, f"object-{name}", f"object {name[:12]}… ({kinds[name]})")
        if wrong.holds is not None:
            held.setdefault(wrong.holds, moved)
    return held


def recreate_objects(
    report: Report, cache: ArtefactCache, held: Mapping[str, str], done: list[str]
) -> set[str]:
    """Step 3: every object a manifest needs that is missing now; returns those that stay lost."""
    needed = {digest for run in report.runs.values() for digest, _size, _path in run.objects()}
    gone = {p.name for p in report.problems if p.subject == OBJECT and p.kind in (*WRONG_BYTES, MISSING)}
    gone &= needed
    lost = set()
    for digest in sorted(gone):
        source = _recreate(digest, cache, (report.sources.get(digest), held.get(digest)))
        if source is None:
            lost.add(digest)
        else:
            done.append(f"made object {digest[:12]}… again from {source}")
    return lost


def _recreate(digest: str, cache: ArtefactCache, candidates: tuple[str | None, ...]) -> str | None:
    """Store the object from the first candidate file that still holds its bytes (hashed again
    as it is copied in); what it came from, or None."""
    if digest == EMPTY:
        cache.put_object(b"")
        return "nothing (it is empty)"
    for source in candidates:
        if source is None:
            continue
        try:
            stored = cache.ingest(Path(source), move=False)  # a copy: the workspace file stays
        except (OSError, ValueError):
            continue  # gone or changed since it was hashed
        if stored.digest == digest:
            return source
    return None


def stages_to_rerun(report: Report, lost: set[str]) -> set[str]:
    """The lock's stages whose manifest is missing or damaged, or names an object now lost."""
    bad = {p.name for p in report.problems if p.subject == MANIFEST}
    rerun = set()
    for name, entry in report.entries.items():
        run = report.runs.get(entry.key)
        if entry.key in bad or run is None or any(d in lost for d, _size, _path in run.objects()):
            rerun.add(name)
    return rerun


def restore_outputs(
    report: Report,
    cache: ArtefactCache,
    root: Path,
    link: LinkMode,
    rerun: set[str],
    done: list[str],
    remember: Remember | None,
) -> set[str]:
    """Step 4, for the stages not rerun anyway; returns those whose restore failed after all."""
    broken = {
        (p.stage, _output_of(report.entries[p.stage], p.name))
        for p in report.problems
        if p.subject == OUTPUT and p.stage not in rerun
    }
    failed = set()
    for stage, rel in sorted(broken):
        record = report.runs[report.entries[stage].key].outputs[rel]
        try:
            cache.materialise(record, root / rel, link)  # built beside it, renamed over it
        except CorruptObject:  # damaged since the check: the stage runs again instead
            failed.add(stage)
            continue
        if remember is not None:
            remember(rel, record.as_dict())
        done.append(f"restored {rel} (stage {stage}) from the cache")
    return failed


def _output_of(entry: LockEntry, path: str) -> str:
    """The declared output holding workspace path `path` (itself, or a directory above it)."""
    return next(rel for rel in entry.outputs if path == rel or path.startswith(f"{rel.rstrip('/')}/"))


def drop_lost_runs(report: Report, lost: set[str], mover: _Aside) -> None:
    """Step 5: a readable manifest naming a lost object can never be restored; a rerun of its
    stage writes a new one."""
    damaged = {p.name for p in report.problems if p.subject == MANIFEST and p.kind == DAMAGED}
    for key, run in report.runs.items():
        if key not in damaged and any(d in lost for d, _size, _path in run.objects()):
            what = f"run record {key[:12]}… of {run.stage or 'a stage'} (its objects are lost)"
            mover.move(report.manifest_files[key], f"run-{key}.json", what)
