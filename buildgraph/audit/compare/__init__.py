"""Why an audited output differs from the recorded one, explained per type of file.

    compare(path, recorded, audited, report_dir) -> Difference     the one entry point (dispatch)

    detect      what a file is: by content first (magic bytes, a zip's members, a parse), extension second
    values      the walk over nested values (JSON documents, checkpoints' state dicts) and its lines
    jsonfile    JSON metrics: fields changed, added, removed; numeric deltas
    text        text and CSV: a bounded unified diff
    image       PNG/JPEG: sizes, differing pixels, their bounding box, a diff image
    checkpoint  torch checkpoints and safetensors, loaded safely; tensors.py: per-tensor statistics
    directory   a tree, file by file (added, removed, mode and symlink changes)
    binary      anything else: sizes, the first differing offset, diffoscope when installed

A comparer that cannot read what it was given raises `Unreadable`; the dispatch then compares the
bytes and says why, so a malformed or unsafe file is still explained, never an error.
"""

from buildgraph.audit.compare.difference import Difference
from buildgraph.audit.compare.dispatch import compare

__all__ = ["Difference", "compare"]
