"""The build context of an image stage: exactly its declared `copy` sources, as a tar bg writes.

Docker would send the whole project directory; bg sends only what the stage copies, so
a 10 GB `data/` never travels to the daemon, and the context is a pure function of the
files it lists (`engine.image_step.copy_digests` keys each copy entry by `copy_sources_listing`):

- the project root is the context root: a source `stages/train.py` is at that path in
  the tar, and the Dockerfile's `COPY stages/train.py …` names it the same way;
- directories are walked; files and symlinks (kept as links) are included, empty
  directories below a source are not (as in git); `.bg/` and the top-level `Buildfile.lock`
  are never included: they are bg's state, and a project copy (`src = ["."]`, Docker's
  `COPY . .`) holding a lock that every run rewrites would rebuild the image every time;
- the stage's `ignore` file (`.dockerignore` syntax; default: `./.dockerignore` when it
  exists) drops what it matches;
- the tar is deterministic: entries sorted by path, mtime 0, uid/gid 0, no user or group
  names, modes normalised to 0o755 (directories, executables) or 0o644, GNU format.
  Same files, same bytes → byte-identical tar.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from buildgraph.core.spec import ImageStage
from buildgraph.errors import BuildfileError, Problem
from buildgraph.images.ignore import IgnoreRules

DOCKERFILE_NAME = ".bg-Dockerfile"
# Tells the daemon to drop our Dockerfile and this file from what COPY can see.
_CONTEXT_DOCKERIGNORE = f"{DOCKERFILE_NAME}\n.dockerignore\n"
_ALWAYS_EXCLUDED = (".bg", "Buildfile.lock")
_GLOB_CHARS = frozenset("*?[")

Listing = list[tuple[str, Path]]


@dataclass(frozen=True)
class ContextTar:
    """The files of a build context; `write` adds the Dockerfile and emits the tar."""

    files: tuple[tuple[str, Path], ...]  # (relpath, absolute path), sorted by relpath
    source_dirs: tuple[str, ...] = ()  # declared directory sources, kept even when empty

    def write(self, out: BinaryIO, dockerfile: str) -> None:
        entries = _entries(self.files, self.source_dirs)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for relpath, path in entries:
                _add(tar, relpath, path)
            _add_bytes(tar, DOCKERFILE_NAME, dockerfile.encode())
            _add_bytes(tar, ".dockerignore", _CONTEXT_DOCKERIGNORE.encode())

    def to_bytes(self, dockerfile: str) -> bytes:
        buffer = io.BytesIO()
        self.write(buffer, dockerfile)
        return buffer.getvalue()


def build_context(root: Path, stage: ImageStage) -> ContextTar:
    """The context for `stage`'s `copy` entries under the project `root`."""
    files = copy_sources_listing(root, stage)
    dirs = sorted({rel for rel, path in _expanded_sources(root, stage) if path.is_dir() and rel != "."})
    return ContextTar(tuple(files), tuple(dirs))


def copy_sources_listing(root: Path, stage: ImageStage, index: int | None = None) -> Listing:
    """Every file and symlink the stage copies, after ignore rules: (relpath, abs path), sorted.

    `index` limits it to `stage.copy[index]` (keys digest each copy entry apart).
    """
    rules = load_ignore_rules(root, stage)
    found: dict[str, Path] = {}
    for relpath, path in _expanded_sources(root, stage, index):
        for rel, file in _walk(root, relpath, path, rules):
            found[rel] = file
    return sorted(found.items())


def load_ignore_rules(root: Path, stage: ImageStage) -> IgnoreRules:
    name = stage.ignore or ".dockerignore"
    path = root / name
    if not path.is_file():
        if stage.ignore:
            raise _problem(stage, "ignore", f"ignore file '{stage.ignore}' does not exist")
        return IgnoreRules()
    return IgnoreRules.from_text(path.read_text(encoding="utf-8"))


def _expanded_sources(root: Path, stage: ImageStage, index: int | None = None) -> Iterator[tuple[str, Path]]:
    for i, copy in enumerate(stage.copy):
        if (index is not None and i != index) or copy.from_stage or copy.from_image:
            continue  # a copy from another image takes nothing from the project
        for j, source in enumerate(copy.sources):
            matches = list(_expand(root, source.strip("/") or "."))
            if not matches:
                raise _problem(stage, f"copy[{i}].src[{j}]", f"'{source}' matches no file or directory")
            yield from matches


def _expand(root: Path, source: str) -> Iterator[tuple[str, Path]]:
    """A literal path, or a glob matched one segment at a time (like Docker: dotfiles match `*`)."""
    if not _GLOB_CHARS & set(source):
        path = root / source
        if path.exists() or path.is_symlink():
            yield os.path.normpath(source), path
        return
    candidates = [("", root)]
    for segment in source.split("/"):
        candidates = [
            (f"{rel}/{name}" if rel else name, path / name)
            for rel, path in candidates
            if path.is_dir()
            for name in sorted(os.listdir(path))
            if fnmatch.fnmatchcase(name, segment)
        ]
    yield from candidates


def _walk(root: Path, relpath: str, path: Path, rules: IgnoreRules) -> Iterator[tuple[str, Path]]:
    if path.is_symlink() or not path.is_dir():
        if not _excluded(relpath, rules):
            yield relpath, path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        reldir = os.path.relpath(dirpath, root)
        reldir = "" if reldir == "." else reldir + "/"
        dirnames[:] = sorted(d for d in dirnames if _descend(reldir + d, rules, Path(dirpath) / d))
        filenames += [
            d for d in os.listdir(dirpath) if d not in dirnames and (Path(dirpath) / d).is_symlink()
        ]
        for name in sorted(set(filenames)):
            rel = reldir + name
            if not _excluded(rel, rules):
                yield rel, Path(dirpath) / name


def _descend(reldir: str, rules: IgnoreRules, path: Path) -> bool:
    if path.is_symlink() or reldir in _ALWAYS_EXCLUDED:
        return False  # symlinked directories are copied as links, never followed
    return not rules.ignored(reldir) or rules.may_reinclude_under(reldir)


def _excluded(relpath: str, rules: IgnoreRules) -> bool:
    return relpath.split("/", 1)[0] in _ALWAYS_EXCLUDED or rules.ignored(relpath)


def _entries(
    files: tuple[tuple[str, Path], ...], source_dirs: tuple[str, ...]
) -> list[tuple[str, Path | None]]:
    """Files plus every directory above them (and declared source dirs), sorted by path parts."""
    dirs = set(source_dirs)
    for relpath, _ in files:
        parts = relpath.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    entries: list[tuple[str, Path | None]] = [(d, None) for d in dirs]
    entries += list(files)
    return sorted(entries, key=lambda e: e[0].split("/"))


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(tar: tarfile.TarFile, relpath: str, path: Path | None) -> None:
    info = _normalised(tarfile.TarInfo(relpath))
    if path is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(path)
        tar.addfile(info)
        return
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    info.size = st.st_size
    with path.open("rb") as f:
        tar.addfile(info, f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalised(tarfile.TarInfo(name))
    info.mode, info.size = 0o644, len(data)
    tar.addfile(info, io.BytesIO(data))


def _problem(stage: ImageStage, field: str, message: str) -> BuildfileError:
    return BuildfileError([Problem("Buildfile.toml", f"stages.{stage.name}.{field}", message)])
