"""A Buildfile's stage tables written as a person would write them: inline tables, short lists on one line.

(tomli_w writes `params = {…}` as a `[stages.x.params]` section after the stage's other keys,
which reads badly in a file the user is meant to keep editing.)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render"]

_WIDTH = 100


def render(header: list[str], document: dict[str, dict[str, Any]]) -> str:
    """`document` (top-level tables; `stages` holds one table per stage) as TOML, after `header` comments."""
    lines = [*header, ""]
    for section, table in document.items():
        if section == "stages":
            for name, stage in table.items():
                lines += [
                    f"[stages.{_key(name)}]",
                    *(f"{_key(k)} = {_value(v)}" for k, v in stage.items()),
                    "",
                ]
        else:
            lines += [f"[{section}]", *(f"{_key(k)} = {_value(v)}" for k, v in table.items()), ""]
    return "\n".join(lines)


def _key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "").isalnum() and name.isascii()
    return name if bare else _string(name)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON's escapes are all valid in a TOML basic string


def _value(value: Any, nested: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v, True)}" for k, v in value.items()) + " }"
    items = [_value(v, True) for v in value]
    one_line = "[" + ", ".join(items) + "]"
    if nested or len(one_line) <= _WIDTH:
        return one_line
    return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
