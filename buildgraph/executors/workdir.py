"""The job's working directory: stage the declared inputs, then check what the command did.

Shared by the local and fake executors (and usable by any executor that runs in a
host directory). The working directory holds *only* the declared inputs, at their
project-relative paths, so a command that reads an undeclared project file fails
with "file not found" instead of silently depending on it.

Inputs are hardlinked when possible: staging a 10 GB dataset then costs one link
per file. The price is that a command writing *into* an input would write through
the link into the project (or the artefact cache), so `InputSnapshot` records each
input file's (size, mtime_ns) and the executor reports a stage that changed one.

Symlinks (docs/buildfile.md#symlinks): an input that is a link is staged as its target's bytes;
inside an input directory, a link that stays inside it is staged as the same relative link
(its target is staged too), any other one as its target's file or folder of files.

Output paths follow `Job.outputs`: project-relative, a trailing "/" meaning the
output must be a directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from buildgraph.diskfull import tree_bytes, writing
from buildgraph.stores.symlinks import Links
from buildgraph.stores.tree import scan_tree

LinkMode = Literal["auto", "hardlink", "copy"]
LINK_MODES: tuple[str, ...] = ("auto", "hardlink", "copy")
NOT_STARTED = 127  # exit status of a job whose command never started (as `sh` reports it)


class StagingError(Exception):
    """An input could not be placed in the working directory (missing, unreadable, disk full)."""


def work_dir(scratch: Path) -> Path:
    return scratch / "work"


def safe_relpath(relpath: str) -> str:
    """The relative path without a trailing "/"; rejects absolute or escaping paths (engine bugs).

    Plain string work, as `PurePosixPath.parts` would do it: this runs for every input and output
    of every job."""
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if not parts or relpath.startswith("/") or ".." in parts:
        raise ValueError(f"job path {relpath!r} must be relative and inside the project")
    return "/".join(parts)


# --- staging ---------------------------------------------------------------------------


@dataclass
class InputSnapshot:
    """(size, mtime_ns) of every input source file, taken while staging: stat only, no hashing."""

    stats: dict[str, tuple[int, int]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # source file -> project-relative name

    def record(self, source: str, name: str, st: os.stat_result) -> None:
        self.stats[source] = (st.st_size, st.st_mtime_ns)
        self.names[source] = name

    def modified(self) -> list[str]:
        """Project-relative names of input files whose size or mtime changed (or that vanished)."""
        changed = []
        for source, before in self.stats.items():
            try:
                st = os.stat(source)
            except FileNotFoundError:
                changed.append(self.names[source])
                continue
            if (st.st_size, st.st_mtime_ns) != before:
                changed.append(self.names[source])
        return sorted(changed)


def stage_inputs(
    workdir: Path, inputs: Iterable[tuple[str, Path]], outputs: Iterable[str], link: LinkMode = "auto"
) -> InputSnapshot:
    """Create `workdir` holding the inputs and the parent directories of the outputs.

    Raises StagingError for a missing or unplaceable input; `workdir` must not exist yet.
    """
    if link not in LINK_MODES:
        raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, not {link!r}")
    root = os.fspath(workdir)
    pool = _pool_for(root)
    folders = _Folders(root, pool.take if pool is not None else os.mkdir)
    folders.make_root()
    snapshot = InputSnapshot()
    for relpath, source in inputs:
        name = safe_relpath(relpath)
        try:  # a full disk is not the stage's fault: bg stops with NoSpace (exit 3)
            with writing(f"input '{name}' into a scratch folder", root, partial(tree_bytes, source)):
                _place(os.fspath(source), name, folders, link, snapshot)
        except FileNotFoundError as exc:
            raise StagingError(f"input '{name}' does not exist ({exc.filename})") from exc
        except OSError as exc:
            raise StagingError(f"could not stage input '{name}': {exc.strerror or exc}") from exc
    for output in outputs:
        folders.parent_of(safe_relpath(output))
    return snapshot


class _Folders:
    """The folders made below the work dir: each made once, however many inputs share it."""

    def __init__(self, root: str, mkdir: Callable[[str], None]) -> None:
        self.root = root
        self.mkdir = mkdir  # os.mkdir, or a pool's `take`
        self._made = {""}

    def make_root(self) -> None:
        try:
            self.mkdir(self.root)
        except FileNotFoundError:  # no scratch folder above it (a caller outside the engine)
            os.makedirs(self.root)

    def parent_of(self, name: str) -> str:
        """Make the folder holding project-relative `name`; returns `name`'s absolute path."""
        folder = name.rpartition("/")[0]
        if folder not in self._made:
            self._make(folder)
        return f"{self.root}/{name}"

    def _make(self, folder: str) -> None:
        parent = folder.rpartition("/")[0]
        if parent not in self._made:
            self._make(parent)
        with contextlib.suppress(FileExistsError):  # a directory input made it already
            self.mkdir(f"{self.root}/{folder}")
        self._made.add(folder)


def _place(source: str, name: str, folders: _Folders, link: LinkMode, snapshot: InputSnapshot) -> None:
    st = os.stat(source)  # follows a symlinked input: the command sees the target
    dest = folders.parent_of(name)
    if not stat.S_ISDIR(st.st_mode):
        # link(2) links a symlink itself, not what it points to: resolve only a link (a folder
        # on the way is followed by the kernel), not every path with a realpath of lstats
        _place_file(os.path.realpath(source) if os.path.islink(source) else source, dest, link)
        snapshot.record(source, name, st)
        return
    with contextlib.suppress(FileExistsError):
        folders.mkdir(dest)
    for rel, path, kind, found in scan_tree(source, _FOLLOW):
        target = f"{dest}/{rel}"
        if kind == "link":  # stays inside the tree: it resolves in the copy too
            _replace_with_symlink(os.readlink(path), target)
        elif kind == "dir":
            with contextlib.suppress(FileExistsError):
                folders.mkdir(target)
        else:  # a file, or a link followed to one: its target's bytes
            _place_file(os.path.realpath(path) if found else path, target, link)
            snapshot.record(path, f"{name}/{rel}", found or os.stat(path))


# Links leaving an input's tree were checked to stay inside the project when the Buildfile was
# loaded (the digest follows them there, with the same rule): here they are followed, wherever.
_FOLLOW = Links(within="/")


def _place_file(source: str, dest: str, link: LinkMode) -> None:
    if link == "copy":
        if not os.path.lexists(dest):  # else the same file, reached through two overlapping inputs
            shutil.copy2(source, dest)
        return
    try:
        os.link(source, dest)
    except FileExistsError:
        return  # the same file, reached through two overlapping inputs
    except FileNotFoundError:
        raise
    except OSError:
        # EXDEV (other device), EPERM (protected_hardlinks, foreign owner), EMLINK …
        if link == "hardlink":
            raise
        shutil.copy2(source, dest)


def _replace_with_symlink(target: str, dest: str) -> None:
    if not os.path.lexists(dest):
        os.symlink(target, dest)


# --- recycling folders ----------------------------------------------------------------


class SpareFolders:
    """Empty folders kept to be renamed into place instead of made anew.

    Making a folder allocates an inode, and on ext4 without a journal (common in VMs) that
    scans past every inode freed in the last seconds: four scratch folders made and removed
    per job cost more than a short job itself. `keep` empties a finished job's tree and keeps
    its folders; `take` renames one into place (a rename allocates nothing). Spares live in
    `root`, on the scratch's filesystem; removing `root` removes them. (A process that escaped
    its job's group with `setsid` and still writes relative to its old cwd would now write
    into a later job's folder: such a process could write anywhere, and is killed at the end
    of the command only while it stays in the group.)
    """

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._mode = stat.S_IMODE(os.stat(root).st_mode)  # what a folder we make gets
        self._free: list[str] = []
        self._count = 0
        self._lock = threading.Lock()

    def take(self, path: str) -> None:
        """Make `path` an empty folder, from a spare when there is one. Like `os.mkdir`, it
        raises FileExistsError when `path` exists, except an empty folder, which it replaces."""
        with self._lock:
            spare = self._free.pop() if self._free else None
        if spare is None:
            os.mkdir(path)
            return
        try:
            os.rename(spare, path)
        except OSError as error:
            self._give_back(spare)
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path) from None
            os.mkdir(path)  # the error mkdir gives (no parent …), or a folder if the spare vanished

    def keep(self, tree: str) -> None:
        """Remove everything below the folder `tree`, keeping its folders (itself too) as spares."""
        try:
            self._keep(tree)
        except FileNotFoundError:
            pass
        except OSError:  # an odd tree (a folder the command made read-only …): just remove it
            shutil.rmtree(tree, ignore_errors=True)

    def _keep(self, folder: str) -> None:
        with os.scandir(folder) as listing:
            entries = list(listing)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self._keep(entry.path)
            else:
                os.unlink(entry.path)
        if stat.S_IMODE(os.lstat(folder).st_mode) != self._mode:
            os.rmdir(folder)  # a mode we would not make (0700 secrets, a command's chmod)
            return
        with self._lock:
            self._count += 1
            spare = f"{self.root}/{self._count}"
        os.rename(folder, spare)
        self._give_back(spare)

    def _give_back(self, spare: str) -> None:
        with self._lock:
            self._free.append(spare)


_POOLS: dict[str, SpareFolders] = {}  # top folder → the pool for scratch folders below it


def recycle_below(top: str, pool: SpareFolders | None) -> None:
    """From now on `stage_inputs` makes folders below `top` from `pool` (None: stop that)."""
    if pool is None:
        _POOLS.pop(top, None)
    else:
        _POOLS[top] = pool


def _pool_for(path: str) -> SpareFolders | None:
    for top, pool in list(_POOLS.items()):  # one entry per running engine
        if path.startswith(top + "/"):
            return pool
    return None


# --- checking --------------------------------------------------------------------------


def output_problems(workdir: Path, outputs: Iterable[str]) -> str:
    """The empty string when every declared output exists, else one message naming all wrong ones."""
    missing, not_dirs = [], []
    for output in outputs:
        path = os.path.join(workdir, safe_relpath(output))
        if not os.path.exists(path):  # a dangling symlink counts as missing
            missing.append(output)
        elif output.endswith("/") and not os.path.isdir(path):
            not_dirs.append(output)
    problems = []
    if missing:
        problems.append(_declared(missing, "was not created", "were not created"))
    if not_dirs:
        problems.append(_declared(not_dirs, "is not a directory", "are not directories"))
    return "; ".join(problems)


def modified_inputs_problem(snapshot: InputSnapshot) -> str:
    changed = snapshot.modified()
    if not changed:
        return ""
    quoted = ", ".join(f"'{name}'" for name in changed)
    noun = "input" if len(changed) == 1 else "inputs"
    return f"stage modified its {noun} {quoted}; write outputs to new paths"


def _declared(paths: list[str], one: str, many: str) -> str:
    quoted = ", ".join(f"'{p}'" for p in paths)
    return f"declared output {quoted} {one}" if len(paths) == 1 else f"declared outputs {quoted} {many}"
