"""The walk over two nested values (a JSON document, a checkpoint's state dict), and its lines.

The walk recurses through mappings and sequences in the recorded value's order and hands every
pair of leaves to a `Leaf` function, so a checkpoint can compare tensors where a JSON document
compares numbers. Paths read as they are written: `per_class.cat`, `losses[3]`,
`optimizer.state.0.exp_avg`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

SHORT = 60  # characters of a value shown in a line


class Entry(Protocol):
    """One thing found to differ, rendered three ways."""

    @property
    def path(self) -> str: ...

    def line(self) -> str: ...  # for details

    def brief(self) -> str: ...  # for the one-line summary

    def as_data(self) -> dict[str, Any]: ...  # for --json


Leaf = Callable[[str, Any, Any], Iterable[Entry]]


def walk(old: Any, new: Any, leaf: Leaf, where: str = "") -> Iterator[Entry]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        yield from _walk_mapping(old, new, leaf, where)
    elif _is_sequence(old) and _is_sequence(new):
        if len(old) != len(new):
            yield ValueChange(where, "length", len(old), len(new))
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            yield from walk(a, b, leaf, f"{where}[{index}]")
    else:
        yield from leaf(where, old, new)


def _walk_mapping(old: Mapping[Any, Any], new: Mapping[Any, Any], leaf: Leaf, where: str) -> Iterator[Entry]:
    for key, value in old.items():
        path = f"{where}.{key}" if where else str(key)
        if key in new:
            yield from walk(value, new[key], leaf, path)
        else:
            yield ValueChange(path, "removed", value, None)
    for key, value in new.items():
        if key not in old:
            yield ValueChange(f"{where}.{key}" if where else str(key), "added", None, value)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple)


def compare_values(where: str, old: Any, new: Any) -> Iterator[Entry]:
    """The `Leaf` of plain values (JSON's)."""
    if not same(old, new):
        yield ValueChange(where, "changed", old, new)


def same(old: Any, new: Any) -> bool:
    """Equal as values: 1 and 1.0 are, NaN and NaN are (a metric that was NaN still is)."""
    if is_number(old) and is_number(new):
        return bool(old == new or (math.isnan(old) and math.isnan(new)))
    try:
        return type(old) is type(new) and bool(old == new)
    except (TypeError, ValueError, RuntimeError):  # an object whose == is elementwise or refuses
        return False


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ValueChange:
    path: str
    change: str  # "changed" | "added" | "removed" | "length"
    old: Any
    new: Any

    def line(self) -> str:
        return self._text(relative=True)

    def brief(self) -> str:
        return self._text(relative=False).replace(": ", " ", 1)

    def _text(self, relative: bool) -> str:
        name = self.path or "(root)"
        if self.change == "added":
            return f"{name}: added {short(self.new)}"
        if self.change == "removed":
            return f"{name}: removed (was {short(self.old)})"
        if self.change == "length":
            return f"{name}: length {self.old} → {self.new}"
        delta = delta_text(self.old, self.new, relative)
        return f"{name}: {short(self.old)} → {short(self.new)}" + (f" ({delta})" if delta else "")

    def as_data(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "change": self.change}
        if self.change != "added":
            found["old"] = data_value(self.old)
        if self.change != "removed":
            found["new"] = data_value(self.new)
        if self.change == "changed" and _finite_numbers(self.old, self.new):
            found["delta"] = self.new - self.old
            if self.old:
                found["relative"] = (self.new - self.old) / abs(self.old)
        return found


def _finite_numbers(*values: Any) -> bool:
    return all(is_number(v) and math.isfinite(v) for v in values)


def delta_text(old: Any, new: Any, relative: bool) -> str:
    """`+0.004, +0.46%` for two finite numbers (relative only when `old` is not 0), else ""."""
    if not _finite_numbers(old, new):
        return ""
    delta = new - old
    text = f"{delta:+,}" if isinstance(delta, int) else f"{delta:+.4g}"
    if relative and old:
        text += f", {delta / abs(old):+.2%}"
    return text


def short(value: Any) -> str:
    """A value in at most SHORT characters: JSON for what is JSON, `float32 [10, 84]` for arrays."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = _container(value) if isinstance(value, Mapping | list | tuple) else repr(value)
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _container(value: Mapping[Any, Any] | list[Any] | tuple[Any, ...]) -> str:
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    return f"[{len(value)} items]"


def data_value(value: Any) -> Any:
    """A value for `data`: itself when scalar, its short text when a container or an array."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return short(value)


def brief_list(entries: Iterable[Entry], width: int = 100) -> str:
    """The entries' briefs joined while they fit in `width` characters, then `…`."""
    shown: list[str] = []
    used = 0
    for entry in entries:
        brief = entry.brief()
        if shown and used + len(brief) > width:
            return ", ".join(shown) + ", …"
        shown.append(brief)
        used += len(brief) + 2
    return ", ".join(shown)
