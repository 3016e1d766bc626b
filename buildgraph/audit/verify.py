"""`bg verify`: re-hash the artefact cache and the workspace outputs against what bg recorded.

Every byte is read again: the stat caches are bypassed, since an edit in place that restored
mtime is just what a stat cannot always see, and the check writes nothing (not even a stat row).

    objects    every file under objects/ must hash to its name; every object a readable
               manifest names (each file of a dir output, and the log) must exist
    manifests  every run manifest must parse and record the key it is filed under; the key
               of every run stage in the lock must have one, recording the lock's outputs
    outputs    every workspace output of every run stage in the lock must hash to its locked
               digest; a directory is compared file by file with its manifest's tree

Problems, by `Problem.kind`:

    missing    an object a manifest needs, a manifest the lock needs, or a workspace output
    truncated  an object shorter than the size a manifest records for it
    swapped    an object holding the bytes of another known object (`other` names it)
    corrupted  an object with any other wrong bytes (or not a readable file)
    tampered   a workspace output, or a file in one, differing from the lock; an object with
               the right bytes that is not read-only (chmod through a workspace hardlink)
    damaged    a manifest that does not parse, is filed under another key, or disagrees with
               the lock

Repairing is `audit.repair`; this module only looks (and keeps, in the `Report`, what it found
on the way that a repair needs: which files still hold which bytes).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from buildgraph.engine import recorded
from buildgraph.records.lock_entry import LockEntry
from buildgraph.records.manifest import Manifest
from buildgraph.stores.cache import ArtefactCache
from buildgraph.stores.tree import LINK_MODE, Digest, TreeEntry, hash_file, tree_digest, walk_tree

MISSING, TRUNCATED, SWAPPED, CORRUPTED = "missing", "truncated", "swapped", "corrupted"
TAMPERED, DAMAGED = "tampered", "damaged"
WRONG_BYTES = (TRUNCATED, SWAPPED, CORRUPTED)  # an object file that must not keep its name
OBJECT, OUTPUT, MANIFEST = "object", "output", "manifest"  # what a problem is about
OBJECT_MODE = 0o444  # objects are read-only: a workspace hardlink to one must not be writable

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Problem:
    kind: str  # see the module doc
    subject: str  # OBJECT, OUTPUT (a workspace path) or MANIFEST
    name: str  # the object's digest, the workspace path, or the manifest's key
    detail: str  # one line for a person
    stage: str = ""  # OUTPUT, MANIFEST: the lock's stage it belongs to ("" when none)
    used_by: tuple[str, ...] = ()  # OBJECT: "stage path" of each record naming it
    other: str = ""  # swapped: the digest of the bytes it holds

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["used_by"] = list(self.used_by)
        return found


@dataclass(frozen=True)
class Run:
    """A readable run manifest, its output records parsed."""

    key: str
    stage: str
    outputs: Mapping[str, Digest]
    log: str

    def objects(self) -> Iterator[tuple[str, int | None, str]]:
        """(digest, size or None, path) of every object it needs; path: the output file, or "log"."""
        for path, record in self.outputs.items():
            if record.kind == "dir":
                yield from ((e.digest, e.size, f"{path}/{e.relpath}") for e in record.tree)
            else:
                yield record.digest, record.size, path
        if self.log:
            yield self.log, None, "log"


@dataclass
class WrongObject:
    """An object file whose bytes are not its name: where it is, and what it holds."""

    path: str
    holds: str | None  # the digest of its bytes (None: not a readable regular file)
    size: int


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0  # object files hashed
    bytes: int = 0  # … their bytes
    manifests: int = 0  # manifests read
    outputs: int = 0  # workspace outputs checked
    # found on the way, for repairing: nothing here is re-read without being hashed again
    entries: dict[str, LockEntry] = field(default_factory=dict)  # run stages of the lock
    runs: dict[str, Run] = field(default_factory=dict)  # key → readable manifest
    manifest_files: dict[str, str] = field(default_factory=dict)  # key → its file, readable or not
    wrong: dict[str, WrongObject] = field(default_factory=dict)  # object name → what it is
    loose: dict[str, str] = field(default_factory=dict)  # name → path of a right one, not read-only
    sources: dict[str, str] = field(default_factory=dict)  # digest → a workspace file holding it

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": not self.problems,
            "checked": {
                "objects": self.objects,
                "bytes": self.bytes,
                "manifests": self.manifests,
                "outputs": self.outputs,
            },
            "problems": [p.as_dict() for p in self.problems],
        }


def check(root: Path, cache: ArtefactCache, lock: Any, stages: Iterable[str]) -> Report:
    """Verify the cache under `cache` and the workspace at `root` against `lock` (a
    `lockfile.Lock`), for the run stages named in `stages` (the Buildfile's)."""
    report = Report(entries=run_entries(lock, stages))
    stage_of = {entry.key: name for name, entry in report.entries.items()}
    read_runs(cache, stage_of, report)
    check_objects(cache, report)
    check_lock(report)
    for name, entry in report.entries.items():
        run = report.runs.get(entry.key)
        for rel, locked in entry.outputs.items():
            report.outputs += 1
            full = run.outputs.get(rel) if run is not None else None
            report.problems += check_output(root, cache, name, rel, locked, full, report.sources)
    return report


def run_entries(lock: Any, stages: Iterable[str]) -> dict[str, LockEntry]:
    """The lock's entries of these stages that are run stages (a damaged one: exit 3, naming it)."""
    found = {}
    for name in stages:
        entry = recorded.entry(lock, name)
        if entry is not None and entry.kind == "run":
            found[name] = entry
    return found


# ---------------------------------------------------------------- manifests
def read_runs(cache: ArtefactCache, stage_of: Mapping[str, str], report: Report) -> None:
    """Parse every manifest into `report.runs`; a damaged one is a problem."""
    for path in sorted(cache.runs.glob("*/*.json")) if cache.runs.is_dir() else ():
        if path.name.startswith("."):
            continue  # a temporary of a killed writer (gc removes it)
        key = path.name[: -len(".json")]
        report.manifests += 1
        report.manifest_files[key] = str(path)
        try:
            report.runs[key] = parse_run(key, path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as error:
            report.problems.append(Problem(DAMAGED, MANIFEST, key, _unreadable(error), stage_of.get(key, "")))


def parse_run(key: str, data: bytes) -> Run:
    """The manifest filed under `key`; ValueError (and kin) saying why it cannot be used."""
    manifest = Manifest.from_json(json.loads(data))
    if manifest.key != key:
        raise ValueError(f"filed under key {key[:12]}… but records key {manifest.key[:12]}…")
    outputs = {path: Digest.from_dict(record) for path, record in manifest.outputs.items()}
    run = Run(key, manifest.stage, outputs, manifest.log)
    for digest, _size, path in run.objects():
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"{path}: {digest!r} is not a sha256 digest")
    return run


def _unreadable(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"unreadable: {error}"


def check_lock(report: Report) -> None:
    """The lock's run stages need their manifests: without one an output cannot be restored."""
    damaged = {p.name for p in report.problems if p.subject == MANIFEST}
    for name, entry in report.entries.items():
        run = report.runs.get(entry.key)
        if run is None and entry.key not in damaged:
            why = "no run record for the key in Buildfile.lock: its outputs cannot be restored"
            report.problems.append(Problem(MISSING, MANIFEST, entry.key, why, name))
        elif run is not None and {p: r.digest for p, r in run.outputs.items()} != entry.digests():
            why = "records other outputs than Buildfile.lock does"
            report.problems.append(Problem(DAMAGED, MANIFEST, entry.key, why, name))


# ---------------------------------------------------------------- objects
def check_objects(cache: ArtefactCache, report: Report) -> None:
    """Hash every object file once; then name the wrong ones (every name known, so a swap
    names its partner wherever it sorts) and the missing ones."""
    needs = needed_objects(report.runs.values())
    present: set[str] = set()
    for name, path in object_files(cache.objects):
        present.add(name)
        holds, size, mode = _hash_object(path)
        report.objects += 1
        report.bytes += size
        if holds != name:
            report.wrong[name] = WrongObject(path, holds, size)
        elif mode != OBJECT_MODE:  # a chmod through a workspace hardlink: the next restore is writable
            report.loose[name] = path
            why = f"mode {mode:o}, not read-only ({OBJECT_MODE:o})"
            users = needs.get(name, (None, ()))[1]
            report.problems.append(Problem(TAMPERED, OBJECT, name, why, used_by=users))
    known = present | set(needs)
    for name, wrong in report.wrong.items():
        report.problems.append(wrong_object(name, wrong, needs, known))
    for digest, (_size, users) in needs.items():
        if digest not in present:
            report.problems.append(Problem(MISSING, OBJECT, digest, "not in the cache", used_by=users))


Needs = dict[str, tuple[int | None, tuple[str, ...]]]  # digest → (recorded size, "stage path" users)


def needed_objects(runs: Iterable[Run]) -> Needs:
    """Every object a manifest names, with the size recorded for it and who names it."""
    sizes: dict[str, int | None] = {}
    users: dict[str, list[str]] = {}
    for run in runs:
        for digest, size, path in run.objects():
            if sizes.get(digest) is None:
                sizes[digest] = size
            users.setdefault(digest, []).append(f"{run.stage or run.key[:12]} {path}")
    return {d: (sizes[d], tuple(sorted(set(users[d])))) for d in sorted(sizes)}


def object_files(objects: Path) -> Iterator[tuple[str, str]]:
    """(name, path) of every file under `objects/ab/`, its name `ab` + file name; hidden
    temporaries of killed writers are gc's, not ours."""
    if not objects.is_dir():
        return
    with os.scandir(objects) as folders:
        prefixes = [f for f in folders if f.is_dir(follow_symlinks=False) and not f.name.startswith(".")]
    prefixes.sort(key=lambda f: f.name)
    for prefix in prefixes:
        with os.scandir(prefix.path) as listing:
            items = sorted((i for i in listing if not i.name.startswith(".")), key=lambda i: i.name)
        for item in items:
            yield prefix.name + item.name, item.path


def _hash_object(path: str) -> tuple[str | None, int, int]:
    """(digest of its bytes or None when not a readable regular file, size, permission bits)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, 0, 0
        return hash_file(path), st.st_size, stat.S_IMODE(st.st_mode)
    except OSError:
        return None, 0, 0


def wrong_object(name: str, wrong: WrongObject, needs: Needs, known: set[str]) -> Problem:
    """Classify an object whose bytes are not its name: swapped, truncated or corrupted."""
    recorded_size, users = needs.get(name, (None, ()))
    holds, size = wrong.holds, wrong.size
    if holds is None:
        return Problem(CORRUPTED, OBJECT, name, "not a readable regular file", used_by=users)
    if holds in known:
        whose = needs.get(holds, (None, ()))[1]
        also = f" ({', '.join(whose)})" if whose else ""
        detail = f"holds the bytes of object {holds[:12]}…{also}"
        return Problem(SWAPPED, OBJECT, name, detail, used_by=users, other=holds)
    if recorded_size is not None and size < recorded_size:
        return Problem(TRUNCATED, OBJECT, name, f"{size:,} of {recorded_size:,} bytes", used_by=users)
    return Problem(CORRUPTED, OBJECT, name, f"its bytes hash to {holds[:12]}…", used_by=users)


# ---------------------------------------------------------------- workspace outputs
def check_output(
    root: Path,
    cache: ArtefactCache,
    stage: str,
    rel: str,
    locked: Mapping[str, Any],
    full: Digest | None,
    sources: dict[str, str],
) -> list[Problem]:
    """Problems of one workspace output against its lock record (`full`: its manifest's record,
    with the tree, when there is one); the files found intact go into `sources`."""
    try:
        return _check_output(str(root / rel), cache, stage, rel, locked, full, sources)
    except OSError as error:  # unreadable (permissions, a folder replaced by a file meanwhile …)
        return [Problem(TAMPERED, OUTPUT, rel, f"unreadable ({error.strerror or error})", stage)]


def _check_output(
    path: str,
    cache: ArtefactCache,
    stage: str,
    rel: str,
    locked: Mapping[str, Any],
    full: Digest | None,
    sources: dict[str, str],
) -> list[Problem]:
    digest, kind = str(locked["digest"]), locked.get("kind")
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return [Problem(MISSING, OUTPUT, rel, "not in the workspace", stage)]
    if stat.S_ISLNK(st.st_mode):
        return [Problem(TAMPERED, OUTPUT, rel, f"a symlink to {os.readlink(path)} now", stage)]
    if kind == "dir" and stat.S_ISDIR(st.st_mode):
        return check_tree(path, stage, rel, digest, full, sources, cache)
    if kind != "file" or not stat.S_ISREG(st.st_mode):
        return [Problem(TAMPERED, OUTPUT, rel, f"not a {kind} now", stage)]
    if hash_file(path) == digest:
        sources[digest] = path
        return []
    detail = _size_change(st.st_size, int(locked.get("size", -1))) + _through_link(path, cache, digest)
    return [Problem(TAMPERED, OUTPUT, rel, detail, stage)]


def _size_change(size: int, recorded_size: int) -> str:
    if size == recorded_size:
        return "other bytes, same size"
    return f"{size:,} byte{'s' if size != 1 else ''}, recorded {recorded_size:,}"


def _through_link(path: str, cache: ArtefactCache, digest: str) -> str:
    """A note when `path` is a hardlink to the object it should hold: written through, the
    object was damaged as well."""
    try:
        shared = os.path.samestat(os.lstat(path), os.lstat(cache.object_path(digest)))
    except (OSError, ValueError):
        return ""
    return "; changed in place, and with it the cache object it is a hardlink to" if shared else ""


def check_tree(
    path: str,
    stage: str,
    rel: str,
    digest: str,
    full: Digest | None,
    sources: dict[str, str],
    cache: ArtefactCache,
) -> list[Problem]:
    """A directory output, file by file against its manifest's tree."""
    found = walk_tree(path, lambda item, _st: hash_file(item))
    recorded_tree = full.tree if full is not None and full.digest == digest else None
    if tree_digest(found) == digest:
        _add_sources(path, found, sources)
        return []
    if recorded_tree is None:
        why = "differs from Buildfile.lock (its run record is gone: which file cannot be told)"
        return [Problem(TAMPERED, OUTPUT, rel, why, stage)]
    problems = []
    expected = {e.relpath: e for e in recorded_tree}
    actual = {e.relpath: e for e in found}
    for relpath in sorted(expected.keys() | actual.keys()):
        where = f"{rel}/{relpath}"
        want, have = expected.get(relpath), actual.get(relpath)
        if have is None:
            problems.append(Problem(MISSING, OUTPUT, where, "not in the workspace", stage))
        elif want is None:
            problems.append(Problem(TAMPERED, OUTPUT, where, "not in the recorded output", stage))
        elif want != have:
            detail = _changed_entry(want, have) + _through_link(f"{path}/{relpath}", cache, want.digest)
            problems.append(Problem(TAMPERED, OUTPUT, where, detail, stage))
        else:
            _add_sources(path, (have,), sources)
    return problems


def _changed_entry(want: TreeEntry, have: TreeEntry) -> str:
    if want.mode != have.mode:
        return f"mode {have.mode:o}, recorded {want.mode:o}"
    return _size_change(have.size, want.size)


def _add_sources(folder: str, entries: Iterable[TreeEntry], sources: dict[str, str]) -> None:
    for entry in entries:
        if entry.mode != LINK_MODE:  # a link's object holds its target, not a file's bytes
            sources.setdefault(entry.digest, os.path.join(folder, entry.relpath))
