"""The params files an audited stage reads (`params = { file, keys }`), as its recorded run saw them.

A run records only the values its stage lists (`"params.yaml:train.lr": 0.1` in its material),
not the file: so the rerun gets a file holding exactly those values, in the file's own format.
A command that reads a key it does not list then fails its audit — which is the point: that
key was never part of the stage's key, and a change of it would not have rerun the stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def recorded_params_files(
    files: tuple[str, ...], material: Mapping[str, Any], folder: Path
) -> dict[str, Path]:
    """Project path → the file written under `folder` for each of `files`."""
    placed = {}
    for file in files:
        doc: dict[str, Any] = {}
        for name, value in material.get("params", {}).items():
            if name.startswith(file + ":"):
                _put(doc, name[len(file) + 1 :].split("."), value)
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_encode(file, doc), encoding="utf-8")
        placed[file] = path
    return placed


def _put(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


def _encode(file: str, doc: dict[str, Any]) -> str:
    """In the format `buildfile.ParamsFiles` reads the file in: by its extension, else YAML."""
    suffix = file.rpartition(".")[2].lower()
    if suffix == "json":
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if suffix == "toml":
        import tomli_w

        return tomli_w.dumps(doc)
    import yaml

    return str(yaml.safe_dump(doc, sort_keys=True))
