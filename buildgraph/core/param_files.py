"""`params = { file = "params.yaml", keys = ["train.lr"] }`: values a run stage reads from a
user-edited YAML, JSON or TOML file (DVC's `params:`).

The stage's key holds the listed values only, never the file's digest, so editing an unlisted
key reruns nothing. The command still sees the file (the engine stages it next to the inputs),
and its strings may name a value as `${params.train.lr}`. Reading and decoding the file is I/O:
`buildfile.py` does it and hands the documents in through `LoadParams`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.forms import Fields, Skip
from buildgraph.core.interpolate import param_text
from buildgraph.core.suggest import did_you_mean

__all__ = ["FILE_KEYS", "FileParams", "LoadParams", "read_file_params"]

# A project file's decoded document (a table), or the reason it cannot be read.
LoadParams = Callable[[str], "Mapping[str, Any] | str"]
FILE_KEYS = ("file", "keys")
_HINT = 'write params = { file = "params.yaml", keys = ["train.lr", "train.epochs"] }'
_MISSING = object()


@dataclass
class FileParams:
    """What a stage's `params` key gives it."""

    texts: dict[str, str] = field(default_factory=dict)  # dotted key → text for `${params.KEY}`
    keyed: dict[str, str] = field(default_factory=dict)  # "file:key" → canonical JSON of the value
    files: list[str] = field(default_factory=list)


def read_file_params(value: object, where: str, out: v.Problems, load: LoadParams | None) -> FileParams:
    """The values `params` names (problems recorded for what cannot be read)."""
    found = FileParams()
    entries = value if isinstance(value, list) else [value]
    for index, entry in enumerate(entries):
        at = v.at(where, index) if isinstance(value, list) else where
        if not isinstance(entry, dict):
            out.type_error(at, "a table { file, keys } (or a list of them)", entry, _HINT)
            continue
        out.unknown_keys(entry, at, FILE_KEYS)
        _read_entry(entry, at, out, load, found)
    return found


def _read_entry(
    entry: dict[str, Any], where: str, out: v.Problems, load: LoadParams | None, found: FileParams
) -> None:
    path, keys = _file(entry, where, out), _keys(entry, where, out)
    if path is None or keys is None:
        return
    doc = load(path) if load is not None else "no file reader was given"
    if isinstance(doc, str):
        hint = "params files are YAML (.yaml, .yml), JSON (.json) or TOML (.toml)"
        out.add(v.at(where, "file"), f"cannot read {v.show(path)}: {doc}", hint)
        return
    found.files.append(path)
    for index, key in enumerate(keys):
        item, at = _lookup(doc, key), v.at(v.at(where, "keys"), index)
        if item is _MISSING:
            hint = f"dotted names reach into tables{did_you_mean(key, _leaves(doc))}"
            out.add(at, f"no key '{key}' in {v.show(path)}", hint)
        elif key in found.texts:
            out.add(at, f"'{key}' is read twice", "list each key in one file only")
        else:
            found.texts[key] = _text(item)
            found.keyed[f"{path}:{key}"] = json.dumps(item, sort_keys=True, ensure_ascii=False)


def _file(entry: dict[str, Any], where: str, out: v.Problems) -> str | None:
    if "file" not in entry:
        out.add(v.at(where, "file"), "missing (which file holds the params?)", _HINT)
        return None
    try:
        path, is_dir = Fields(out, where).path(v.at(where, "file"), entry["file"])
    except Skip:
        return None
    if is_dir:
        out.add(v.at(where, "file"), "is a directory", "name a YAML, JSON or TOML file")
        return None
    return path


def _keys(entry: dict[str, Any], where: str, out: v.Problems) -> list[str] | None:
    if "keys" not in entry:
        out.add(v.at(where, "keys"), "missing (which values of the file does the stage read?)", _HINT)
        return None
    keys = entry["keys"]
    ok = isinstance(keys, list) and keys and all(isinstance(k, str) and k for k in keys)
    if not ok:
        out.type_error(v.at(where, "keys"), "a non-empty list of dotted key names", keys, _HINT)
        return None
    assert isinstance(keys, list)
    return keys


def _lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, item in doc.items():
        name = f"{prefix}{key}"
        names += _leaves(item, name + ".") if isinstance(item, Mapping) and item else [name]
    return names


def _text(item: Any) -> str:
    """A value as `${params.KEY}` writes it: scalars as params are, tables and lists as JSON."""
    if isinstance(item, (bool, int, float, str)):
        return param_text(item)
    return json.dumps(item, sort_keys=True, ensure_ascii=False)
