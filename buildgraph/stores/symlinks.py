"""The symlink rules of a tree walk (`stores.tree.scan_tree`): keep, follow or refuse a link.

Symlinks below a tree (`Links`): one that *stays inside* the tree (relative, its `..` never
leading out, and resolving to an existing path that is exactly where it reads) is a link entry:
it means the same wherever the tree is put. Any other one is followed when the walk is given
a boundary (the project) it resolves inside: its target's bytes (or its folder's files) then
stand at the link's path, keyed by the target's stat, so that editing the target changes the
digest. Otherwise it is refused (`LinkRefused`) or, for a walk that neither follows nor
refuses, kept as a link entry.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass


class LinkRefused(ValueError):
    """A symlink below a tree that may be neither kept as a link nor followed."""

    def __init__(self, relpath: str, target: str, reason: str) -> None:
        super().__init__(f"{relpath} -> {target}: {reason}")
        self.relpath = relpath  # in the tree
        self.target = target  # as the message should show it
        self.reason = reason  # the end of a sentence: "outside the project", …


@dataclass(frozen=True)
class Links:
    """What a tree walk does with a symlink that does not stay inside the tree (module doc):
    follow it when it resolves inside `within` (a real path), else refuse it if `refuse`,
    else keep it as a link entry."""

    within: str | None = None
    refuse: bool = False

    def resolve(self, tree: str, relpath: str, path: str, chain: tuple[str, ...]) -> os.stat_result | None:
        """The stat of what stands at the link `path` (`relpath` in the tree whose real path is
        `tree`), or None to keep it as a link. `chain`: the real folders the walk went through
        by following links (and `tree`), for loops."""
        if self.within is None and not self.refuse:
            return None
        target = os.readlink(path)
        real = os.path.realpath(path)
        if stays_inside(tree, relpath, target, real):
            return None
        if self.within is None:
            dangling = not target.startswith("/") and is_within(real, tree) and not os.path.lexists(real)
            raise LinkRefused(relpath, target, DANGLING if dangling else LEAVES)
        found = self._follow(path, real, chain)
        if isinstance(found, os.stat_result):
            return found
        if self.refuse:
            raise LinkRefused(relpath, target if found == DANGLING else real, found)
        return None

    def _follow(self, path: str, real: str, chain: tuple[str, ...]) -> os.stat_result | str:
        """The target's stat, or why it is not followed."""
        assert self.within is not None
        if not is_within(real, self.within):
            return OUTSIDE
        try:
            st = os.stat(real)
        except OSError:
            return DANGLING
        if stat.S_ISDIR(st.st_mode):
            here = os.path.realpath(os.path.dirname(path))
            if any(is_within(folder, real) for folder in (*chain, here)):
                return LOOP
        elif not stat.S_ISREG(st.st_mode):
            return SPECIAL
        return st


KEEP_LINKS = Links()
# why a link is refused: the end of a sentence "… is a symlink to TARGET, <why>"
OUTSIDE = "outside the project"
DANGLING = "which does not exist"
LOOP = "which leads back to a folder that holds it (a loop)"
SPECIAL = "which is not a regular file or directory"
LEAVES = "which does not stay inside it"


def is_within(path: str, folder: str) -> bool:
    """True when the absolute `path` is `folder` or below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def stays_inside(tree: str, relpath: str, target: str, real: str) -> bool:
    """True when the link `relpath` -> `target` of the tree whose real path is `tree` may be kept
    as a link: relative, inside the tree as written (no `..` out of it), and resolving (to
    `real`, which exists) to exactly that path. Resolving elsewhere means going through another
    link, which a copy of the tree may not hold as a link (a followed one is a folder there)."""
    lexical = lexical_target(relpath, target)
    if lexical is None:
        return False
    return real == (tree if lexical == "." else f"{tree}/{lexical}") and os.path.exists(real)


def lexical_target(relpath: str, target: str) -> str | None:
    """Where the link `relpath` -> `target` leads in its tree, read as written (no file system):
    None when it is absolute or its `..` lead out of the tree."""
    if target.startswith("/"):
        return None
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    return None if lexical == ".." or lexical.startswith("../") else lexical
