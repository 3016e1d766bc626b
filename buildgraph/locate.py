"""The line of a Buildfile field (`stages.img.run[2]`, `env.PATH`) in the TOML text (pure).

`tomllib` keeps no positions, and lint's warnings are about fields, so `bg lint` finds
them again the way a reader would: the stage's `[stages.NAME]` table, the key's line in
it, then (for `run[2]`) the third item of its array or (for `env.PATH`) the line naming
the sub-key. Best effort: 0 when a field is written in a shape this does not follow (an
inline stage table, a dotted key); the field path is always printed beside it.
"""

from __future__ import annotations

import re

_INDEX = re.compile(r"^([A-Za-z0-9_-]+)(?:\[(\d+)\])?(?:\.(.+))?$")


def field_line(text: str, stage: str, field: str) -> int:
    """1-based line of `field` of `stage` ("" = a project-level field such as `args.NAME`), or 0."""
    lines = text.splitlines()
    match = _INDEX.match(field)
    if match is None:
        return 0
    key, index, sub = match.group(1), match.group(2), match.group(3)
    table = _table(lines, f"stages.{_key(stage)}" if stage else key)
    if table is None:
        return 0
    start, end = table
    if not stage:  # `[args]`: the field's sub-key is the key in that table
        key, sub = sub or "", None
    at = next((n for n in range(start + 1, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[n])), None)
    if at is None:
        return start + 1
    if index is not None:
        return _item_line(lines, at, int(index)) + 1
    if sub:
        named = re.compile(rf"(^|[{{,\s]){re.escape(_key(sub))}\s*=")
        return next((n + 1 for n in range(at, end) if named.search(lines[n])), at + 1)
    return at + 1


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _table(lines: list[str], name: str) -> tuple[int, int] | None:
    """(header line, line after the table's last) of `[name]`, 0-based."""
    header = re.compile(rf"\s*\[\s*{re.escape(name)}\s*\]\s*(#.*)?$")
    start = next((n for n, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return None
    end = next((n for n in range(start + 1, len(lines)) if lines[n].lstrip().startswith("[")), len(lines))
    return start, end


def _item_line(lines: list[str], at: int, index: int) -> int:
    """The line where item `index` of the array that starts after `=` on line `at` begins."""
    text = "\n".join(lines[at:])
    i = text.index("=") + 1
    depth, count, quote = 0, 0, ""
    while i < len(text):
        char = text[i]
        if quote:
            if text.startswith(quote, i) and (quote == "'" * len(quote) or text[i - 1] != "\\"):
                i += len(quote) - 1
                quote = ""
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            if depth == 1 and count == index:
                return at + text.count("\n", 0, i)
            i += len(quote) - 1
        elif char == "#":
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        elif char in "[{":
            if depth == 1 and count == index:
                return at + text.count("\n", 0, i)
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                break
        elif char == "," and depth == 1:
            count += 1
        i += 1
    return at
