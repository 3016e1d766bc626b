"""What a comparison finds (`Difference`), and the bounds every comparer keeps to."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

MAX_LINES = 40  # details shown per output: enough to see the change, never a screenful of noise
MAX_ITEMS = 200  # entries kept in `data` lists (changes, files); the total is always counted


@dataclass(frozen=True)
class Difference:
    path: str  # project-relative path of the output (for a file inside a dir output: its full rel path)
    kind: str  # "json" | "text" | "image" | "checkpoint" | "directory" | "binary"
    identical: bool  # nothing the digest covers differs (bytes, exec bit, symlink target)
    summary: str  # one line for the terminal table
    details: tuple[str, ...]  # the full explanation, at most MAX_LINES (+ one "… N more" line)
    data: Mapping[str, Any]  # the same as JSON-serialisable data (for `bg audit --json`)
    files: tuple[str, ...] = ()  # paths (relative to report_dir) of files written, e.g. diff images
    children: tuple[Difference, ...] = ()  # directories: the differing files


class Unreadable(Exception):
    """A comparer could not read its input as its type (the message says why); compare bytes."""


@dataclass
class Context:
    """What one `compare` call shares with every comparison below it."""

    report_dir: Path | None
    diffoscope_left: int = 3  # diffoscope costs a second or more per file: only the first few get it


def bounded(lines: Sequence[str], limit: int = MAX_LINES) -> tuple[str, ...]:
    if len(lines) <= limit:
        return tuple(lines)
    return (*lines[:limit], f"… {len(lines) - limit} more lines")


def with_notes(diff: Difference, *notes: str) -> Difference:
    """`diff` with `notes` first in its details and listed in its data."""
    if not notes:
        return diff
    data = {**diff.data, "notes": [*notes, *diff.data.get("notes", ())]}
    return replace(diff, details=(*notes, *diff.details), data=data)


def jsonable(value: Any) -> Any:
    """`value` as strict JSON allows: NaN and infinities as strings, tuples as lists, numpy
    scalars as Python numbers, anything else unknown as its str()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return jsonable(value.item())  # a numpy or torch scalar
    return str(value)


def size_text(size: int) -> str:
    return f"{size:,} byte" if size == 1 else f"{size:,} bytes"


def plural(count: int, word: str, words: str = "") -> str:
    return f"{count:,} {word if count == 1 else (words or word + 's')}"

