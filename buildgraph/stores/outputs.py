"""What a stored output may be, and which objects a record or a manifest needs.

An output is a file or a directory; a symlink as an output, or one inside a directory output
that does not stay inside it, is refused (`UnsafeOutput`): one leading out could be planted,
through a store, in another workspace. Every store reads outputs through `scan_output`, so the
rule is the same for the local cache, the memory store and a remote one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Mapping
from typing import Any

from buildgraph.stores.base import OutputRecord
from buildgraph.stores.symlinks import LinkRefused, Links
from buildgraph.stores.tree import Digest, dir_digest, hash_file, scan_tree, walk_tree


class UnsafeOutput(ValueError):
    """An output that may not be stored: a symlink, or a directory holding a link that does not
    stay inside it. Links are kept only where they resolve the same wherever the output is put:
    one leading out could be planted, through the cache, in another workspace."""


_OUTPUT_LINKS = Links(refuse=True)  # keep the links that stay inside their output, refuse others


def check_output(src: str, name: str) -> None:
    """Raise UnsafeOutput if the output at `src` is a symlink or holds one that does not stay
    inside it (no hashing: a listing of its folders). `name`: the output, for the message.
    A missing output is not this check's to report."""
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        with _named(name):
            for _ in scan_tree(src, _OUTPUT_LINKS):
                pass
    elif stat.S_ISLNK(st.st_mode):
        target = os.readlink(src)
        raise UnsafeOutput(f"declared output '{name}' is a symlink to {target}: write the file, not a link")


def scan_output(src: str, name: str) -> OutputRecord:
    """The record of the output at `src` (files hashed, nothing stored); see `check_output`."""
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        return Digest("file", hash_file(src), st.st_size)
    if not stat.S_ISDIR(st.st_mode):
        check_output(src, name)  # a symlink: refused
        raise ValueError(f"{src}: not a regular file, directory or symlink")
    with _named(name):
        return dir_digest(walk_tree(src, lambda item, _st: hash_file(item), _OUTPUT_LINKS))


@contextlib.contextmanager
def _named(name: str) -> Iterator[None]:
    """A refused link below directory output `name`, as UnsafeOutput."""
    try:
        yield
    except LinkRefused as refused:
        folder = name.rstrip("/")
        raise UnsafeOutput(
            f"declared output '{folder}/' holds '{folder}/{refused.relpath}', a symlink to {refused.target},"
            f" {refused.reason}: a directory output may hold only relative links to paths inside it"
        ) from None


def record_objects(record: OutputRecord) -> set[str]:
    """The object digests an output needs: itself, or its tree's entries."""
    return {e.digest for e in record.tree} if record.kind == "dir" else {record.digest}


def manifest_objects(manifest: Mapping[str, Any]) -> set[str]:
    """Every object a manifest refers to; ValueError/KeyError/TypeError if malformed."""
    found: set[str] = set()
    for record in manifest["outputs"].values():
        found |= record_objects(Digest.from_dict(record))
    log = manifest.get("log")
    if log is not None:
        found.add(str(log))
    return found
