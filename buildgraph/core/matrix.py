"""`matrix = { model = ["lenet", "resnet"], seed = [0, 1] }`: one run stage written once, expanded
into one stage per combination of values (DVC's `foreach`, Snakemake's wildcards).

Expansion happens on the TOML table, before the stage is read: `${matrix.NAME}` is replaced in
every string of the body, and each combination is then read as an ordinary stage, so it is
validated, keyed and cached on its own. Its name is the stage's name followed by the values in
the order the matrix is written (`train-lenet-0`), which is why values must be name-safe.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from buildgraph.core import values as v

__all__ = ["expand_matrix"]

# `$${matrix.x}` is a literal (the Expander turns `$${` into `${`): not substituted.
_REF = re.compile(r"(?<!\$)\$\{matrix\.([^}]*)\}")
_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
_HINT = 'write matrix = { NAME = ["value", …] }, e.g. matrix = { model = ["lenet", "resnet"] }'


def expand_matrix(name: str, body: dict[str, Any], out: v.Problems) -> list[tuple[str, dict[str, Any]]]:
    """The stages `body` stands for: itself, or one per combination of its `matrix` values."""
    if "matrix" not in body:
        return [(name, body)]
    where = v.at(v.at("stages", name), "matrix")
    axes = _axes(body["matrix"], where, out)
    rest = {key: value for key, value in body.items() if key != "matrix"}
    if axes is None:
        return [(name, rest)]
    reported: set[str] = set()
    stages = []
    for combination in itertools.product(*axes.values()):
        values = dict(zip(axes, combination, strict=True))
        expanded = _substitute(rest, values, v.at("stages", name), out, reported)
        stages.append(("-".join([name, *combination]), expanded))
    return stages


def _axes(value: object, where: str, out: v.Problems) -> dict[str, list[str]] | None:
    """The matrix's variables and their values as text; None (problem recorded) when invalid."""
    if not isinstance(value, dict):
        out.type_error(where, "a table of lists of values", value)
        return None
    if not value:
        out.add(where, "empty matrix", _HINT)
        return None
    axes: dict[str, list[str]] = {}
    for variable, items in value.items():
        texts = _values(items, v.at(where, variable), out)
        if texts is None:
            return None
        axes[variable] = texts
    return axes


def _values(items: object, where: str, out: v.Problems) -> list[str] | None:
    if not isinstance(items, list) or not items:
        out.add(where, "must be a non-empty list of values", _HINT)
        return None
    texts = []
    for index, item in enumerate(items):
        text = _text(item)
        if text is None or not _VALUE.fullmatch(text):
            out.add(
                v.at(where, index),
                f"{v.show(item)} cannot be part of a stage name",
                "matrix values name the stages they make (train-lenet): letters, digits, '_', '.', '-'",
            )
            return None
        texts.append(text)
    if len(set(texts)) != len(texts):
        out.add(where, "holds a value twice", "each value makes one stage: list it once")
        return None
    return texts


def _text(item: object) -> str | None:
    if isinstance(item, bool):
        return "true" if item else "false"
    return v.scalar_text(item) if v.is_scalar_text(item) else None


def _substitute(node: Any, values: dict[str, str], where: str, out: v.Problems, reported: set[str]) -> Any:
    """`node` with `${matrix.NAME}` replaced in every string (keys of tables included)."""
    if isinstance(node, str):
        return _REF.sub(lambda m: _value(m.group(1), values, where, out, reported), node)
    if isinstance(node, list):
        return [_substitute(item, values, v.at(where, i), out, reported) for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {
            _substitute(key, values, where, out, reported): _substitute(
                item, values, v.at(where, key), out, reported
            )
            for key, item in node.items()
        }
    return node


def _value(variable: str, values: dict[str, str], where: str, out: v.Problems, reported: set[str]) -> str:
    if variable in values:
        return values[variable]
    if where not in reported:  # once, not once per combination
        reported.add(where)
        message = f"undefined matrix variable '${{matrix.{variable}}}'"
        out.add(where, message, "the matrix declares " + ", ".join(values))
    return ""
