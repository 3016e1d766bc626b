"""The one error records raise, and the checks that raise it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RecordError(ValueError):
    """A JSON document that is not the record it claims to be (what, and where)."""


def required(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`data[name]`, which must be a `kind`; RecordError naming the record otherwise."""
    if name not in data:
        raise RecordError(f"{what}: no `{name}`")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise RecordError(f"{what}: `{name}` is {type(value).__name__}, not {_names(kind)}")
    return value


def optional(
    data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any, what: str
) -> Any:
    return required(data, name, kind, what) if name in data else default


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _kinds(kind))
