"""A tree, file by file: what differs in each (by its type), what was added or removed, and
changes of exec bit or symlink target — what a directory's digest covers (`stores.tree`), and
nothing else (empty folders and other mode bits are in no digest, so they are no difference)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from buildgraph.audit.compare.detect import detect
from buildgraph.audit.compare.difference import MAX_ITEMS, Context, Difference, bounded, plural, size_text
from buildgraph.stores.tree import file_mode, scan_tree

FileComparer = Callable[[str, Path, Path, Context], Difference]
MAX_EXPLAINED = 100  # differing files compared by type; beyond, only whether they differ is said


@dataclass(frozen=True)
class Item:
    kind: str  # "file" | "link" | "dir" | "other" (a socket, fifo or device)
    path: Path
    mode: int = 0  # files: 0o644 or 0o755, as the digest normalises it
    target: str = ""  # links


def item(path: Path) -> Item | None:
    """What stands at `path`, not following a symlink; None when nothing does."""
    if path.is_symlink():
        return Item("link", path, target=os.readlink(path))
    if path.is_dir():
        return Item("dir", path)
    if path.is_file():
        return Item("file", path, file_mode(path.stat().st_mode))
    return Item("other", path) if os.path.lexists(path) else None


def listing(root: Path) -> dict[str, Item]:
    """The files and symlinks below `root` by relative path, as the tree digest lists them."""
    found: dict[str, Item] = {}
    for relpath, path, kind, _ in scan_tree(str(root)):
        if kind == "link":
            found[relpath] = Item("link", Path(path), target=os.readlink(path))
        elif kind == "file":
            found[relpath] = Item("file", Path(path), file_mode(os.lstat(path).st_mode))
    return found


def compare_directory(
    path: str, recorded: Path, audited: Path, ctx: Context, files: FileComparer
) -> Difference:
    old, new = listing(recorded), listing(audited)
    names = sorted(set(old) | set(new))
    children: list[Difference] = []
    for rel in names:
        explain = len(children) < MAX_EXPLAINED
        child = compare_items(f"{path.rstrip('/')}/{rel}", old.get(rel), new.get(rel), ctx, files, explain)
        if not child.identical:
            children.append(child)
    added = [c.path for c in children if c.data.get("change") == "added"]
    removed = [c.path for c in children if c.data.get("change") == "removed"]
    changed = len(children) - len(added) - len(removed)
    summary = _summary(len(names), changed, len(added), len(removed))
    data = {
        "files": len(names),
        "identical": len(names) - len(children),
        "differing": changed,
        "added": added[:MAX_ITEMS],
        "removed": removed[:MAX_ITEMS],
    }
    details = bounded([f"{c.path}: {c.summary}" for c in children])
    return Difference(path, "directory", not children, summary, details, data, children=tuple(children))


def _summary(total: int, changed: int, added: int, removed: int) -> str:
    if not (changed or added or removed):
        return f"identical ({plural(total, 'file')})"
    parts = [f"{changed} of {plural(total, 'file')} differ" if changed else f"no file of {total:,} differs"]
    parts += [f"{added} added"] if added else []
    parts += [f"{removed} removed"] if removed else []
    return "; ".join(parts)


def compare_items(
    path: str, old: Item | None, new: Item | None, ctx: Context, files: FileComparer, explain: bool = True
) -> Difference:
    """`old` and `new` (either may be missing) compared: files by `files` when `explain`, else by bytes."""
    if old is None or new is None:
        return _presence(path, old, new)
    if old.kind != new.kind:
        return _kind_change(path, old, new)
    if old.kind == "link":
        return _link_change(path, old, new)
    if old.kind != "file":
        return _other(path, old)
    diff = files(path, old.path, new.path, ctx) if explain else _unexplained(path, old, new)
    return _with_mode(diff, old.mode, new.mode)


def _presence(path: str, old: Item | None, new: Item | None) -> Difference:
    present = new or old
    if present is None:
        return Difference(path, "binary", True, "missing on both sides", (), {})
    change, side = ("added", "audited") if new else ("removed", "recorded")
    what = _describe(present)
    kind = {"dir": "directory", "file": ""}.get(present.kind, "binary") or detect(present.path)
    data = {"change": change, "type": present.kind}
    return Difference(path, kind, False, f"{change}: {what}", (f"only in the {side} output: {what}",), data)


def _describe(it: Item) -> str:
    if it.kind == "link":
        return f"a symlink to {it.target}"
    if it.kind == "file":
        return f"a file of {size_text(it.path.stat().st_size)}, mode {it.mode:o}"
    return "a directory" if it.kind == "dir" else "a special file"


def _kind_change(path: str, old: Item, new: Item) -> Difference:
    line = f"{_describe(old)} in the recorded output, {_describe(new)} in the audited one"
    kind = "directory" if "dir" in (old.kind, new.kind) else "binary"
    data = {"change": "type", "types": [old.kind, new.kind]}
    return Difference(path, kind, False, line, (line,), data)


def _link_change(path: str, old: Item, new: Item) -> Difference:
    if old.target == new.target:
        return Difference(path, "binary", True, "identical", (), {})
    line = f"symlink target {old.target} → {new.target}"
    data = {"change": "symlink", "targets": [old.target, new.target]}
    return Difference(path, "binary", False, line, (line,), data)


def _other(path: str, old: Item) -> Difference:
    return Difference(path, "binary", True, "not a regular file: in no digest", (), {})


def _unexplained(path: str, old: Item, new: Item) -> Difference:
    from buildgraph.audit.compare.binary import same_bytes

    if same_bytes(old.path, new.path):
        return Difference(path, detect(old.path), True, "identical", (), {})
    line = f"differs (not explained: only the first {MAX_EXPLAINED} differing files are)"
    return Difference(path, detect(new.path), False, line, (line,), {"explained": False})


def _with_mode(diff: Difference, old: int, new: int) -> Difference:
    if old == new:
        return diff
    line = f"mode {old:o} → {new:o}"
    summary = f"{line} (content identical)" if diff.identical else f"{line}; {diff.summary}"
    data = {**diff.data, "modes": [f"{old:o}", f"{new:o}"]}
    return replace(diff, identical=False, summary=summary, details=(line, *diff.details), data=data)
