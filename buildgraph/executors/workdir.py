"""The job's working directory: stage the declared inputs, then check what the command did.

Shared by the local and fake executors (and usable by any executor that runs in a
host directory). The working directory holds *only* the declared inputs, at their
project-relative paths, so a command that reads an undeclared project file fails
with "file not found" instead of silently depending on it.

Inputs are hardlinked when possible: staging a 10 GB dataset then costs one link
per file. The price is that a command writing *into* an input would write through
the link into the project (or the artefact cache), so `InputSnapshot` records each
input file's (size, mtime_ns) and the executor reports a stage that changed one.

Output paths follow `Job.outputs`: project-relative, a trailing "/" meaning the
output must be a directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LinkMode = Literal["auto", "hardlink", "copy"]
LINK_MODES: tuple[str, ...] = ("auto", "hardlink", "copy")
NOT_STARTED = 127  # exit status of a job whose command never started (as `sh` reports it)


class StagingError(Exception):
    """An input could not be placed in the working directory (missing, unreadable, disk full)."""


def work_dir(scratch: Path) -> Path:
    return scratch / "work"


def safe_relpath(relpath: str) -> str:
    """The relative path without a trailing "/"; rejects absolute or escaping paths (engine bugs)."""
    parts = Path(relpath.rstrip("/")).parts
    if not parts or Path(relpath).is_absolute() or ".." in parts:
        raise ValueError(f"job path {relpath!r} must be relative and inside the project")
    return "/".join(parts)


# --- staging ---------------------------------------------------------------------------


@dataclass
class InputSnapshot:
    """(size, mtime_ns) of every input source file, taken while staging: stat only, no hashing."""

    stats: dict[Path, tuple[int, int]] = field(default_factory=dict)
    names: dict[Path, str] = field(default_factory=dict)  # source file -> project-relative name

    def record(self, source: Path, name: str, st: os.stat_result) -> None:
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
    workdir.mkdir(parents=True)
    snapshot = InputSnapshot()
    for relpath, source in inputs:
        name = safe_relpath(relpath)
        try:
            _place(Path(source), workdir / name, name, link, snapshot)
        except FileNotFoundError as exc:
            raise StagingError(f"input '{name}' does not exist ({exc.filename})") from exc
        except OSError as exc:
            raise StagingError(f"could not stage input '{name}': {exc.strerror or exc}") from exc
    for output in outputs:
        (workdir / safe_relpath(output)).parent.mkdir(parents=True, exist_ok=True)
    return snapshot


def _place(source: Path, dest: Path, name: str, link: LinkMode, snapshot: InputSnapshot) -> None:
    st = os.stat(source)  # follows a symlinked input: the command sees the target
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.isdir(source):
        _place_file(source, dest, link)
        snapshot.record(source, name, st)
        return
    dest.mkdir(exist_ok=True)
    for entry, rel in _walk(source):
        target = dest / rel
        if entry.is_symlink():
            _replace_with_symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            target.mkdir(exist_ok=True)
        elif entry.is_file():
            _place_file(Path(entry.path), target, link)
            snapshot.record(Path(entry.path), f"{name}/{rel}", entry.stat())
        # sockets, fifos and devices are not build inputs: left out on purpose


def _walk(root: Path, prefix: str = "") -> Iterator[tuple[os.DirEntry[str], str]]:
    """Entries under `root` (parents before children), with their path relative to `root`."""
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"{prefix}{entry.name}"
            yield entry, rel
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path), f"{rel}/")


def _place_file(source: Path, dest: Path, link: LinkMode) -> None:
    if dest.exists():  # the same file reached through two overlapping inputs
        return
    if link == "copy":
        shutil.copy2(source, dest)
        return
    try:
        os.link(source, dest)
    except FileNotFoundError:
        raise
    except OSError:
        # EXDEV (other device), EPERM (protected_hardlinks, foreign owner), EMLINK …
        if link == "hardlink":
            raise
        shutil.copy2(source, dest)


def _replace_with_symlink(target: str, dest: Path) -> None:
    if not dest.is_symlink() and not dest.exists():
        os.symlink(target, dest)


# --- checking --------------------------------------------------------------------------


def output_problems(workdir: Path, outputs: Iterable[str]) -> str:
    """The empty string when every declared output exists, else one message naming all wrong ones."""
    missing, not_dirs = [], []
    for output in outputs:
        path = workdir / safe_relpath(output)
        if not path.exists():  # a dangling symlink counts as missing
            missing.append(output)
        elif output.endswith("/") and not path.is_dir():
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
