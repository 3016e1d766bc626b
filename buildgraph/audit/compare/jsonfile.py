"""JSON (metrics): which fields changed, by how much; keys added and removed; lists resized."""

from __future__ import annotations

import json
from pathlib import Path

from buildgraph.audit.compare.difference import MAX_ITEMS, Difference, Unreadable, bounded, jsonable, plural
from buildgraph.audit.compare.values import brief_list, compare_values, walk


def compare_json(path: str, recorded: Path, audited: Path) -> Difference:
    old, new = _load(recorded), _load(audited)
    entries = list(walk(old, new, compare_values))
    if not entries:
        summary = "same values; only the formatting differs (key order, spacing or number spelling)"
    else:
        summary = f"{plural(len(entries), 'field differs', 'fields differ')}: {brief_list(entries)}"
    data = {"changes": [e.as_data() for e in entries[:MAX_ITEMS]], "count": len(entries)}
    return Difference(
        path, "json", False, summary, bounded([e.line() for e in entries]), jsonable(data)
    )


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise Unreadable(f"not valid JSON ({e})") from None
