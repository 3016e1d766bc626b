"""Text and CSV: a unified diff, bounded."""

from __future__ import annotations

import difflib
from pathlib import Path

from buildgraph.audit.compare.detect import read_text
from buildgraph.audit.compare.difference import Difference, Unreadable, bounded, plural

MAX_DIFF_LINES = 40
# difflib is quadratic on files that differ everywhere: beyond this, the bytes tell as much
MAX_TEXT_LINES = 200_000


def compare_text(path: str, recorded: Path, audited: Path) -> Difference:
    old, new = _lines(recorded), _lines(audited)
    diff = list(difflib.unified_diff(old, new, f"recorded/{path}", f"audited/{path}", lineterm=""))
    body = diff[2:]  # after the ---/+++ header
    added = sum(1 for line in body if line.startswith("+"))
    removed = sum(1 for line in body if line.startswith("-"))
    if diff:
        summary = f"{plural(removed, 'line')} removed, {added} added ({len(old):,} → {len(new):,} lines)"
    else:
        summary = "same lines; line endings or the final newline differ"
    shown = bounded(diff, MAX_DIFF_LINES)
    data = {"lines": [len(old), len(new)], "added": added, "removed": removed, "diff": list(shown)}
    return Difference(path, "text", False, summary, shown, data)


def _lines(path: Path) -> list[str]:
    text = read_text(path)
    if text is None:
        raise Unreadable("not UTF-8 text")
    lines = text.splitlines()
    if len(lines) > MAX_TEXT_LINES:
        raise Unreadable(f"over {MAX_TEXT_LINES:,} lines, too many for a readable diff")
    return lines
