"""Reading DVC's YAML files with the line of every value, and DVC's `${…}` templating.

DVC resolves `${name}` in `dvc.yaml` from a context: `item`/`key` of a foreach or matrix
iteration, inline `vars`, and the values of vars files (`params.yaml` by default). Values that
come from a file are *tracked*: DVC records them as the stage's params, so editing them reruns
the stage. A Buildfile expresses that as a params-file reference, `${params.<key>}`, which the
caller gets back as a `Tracked` part; everything else is substituted as text at import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildgraph.errors import UsageError

__all__ = ["Context", "Located", "Tracked", "load", "lookup", "to_text"]

# DVC's own pattern (dvc/parsing/interpolate.py): `\${` is a literal `${`.
_REFERENCE = re.compile(r"(?P<escape>\\)?\$\{(?P<inner>(?:[^{}\\]|\{[^{}]*\})*)\}")
_INDEX = re.compile(r"\[(\d+)\]")

Path = tuple[str | int, ...]


@dataclass
class Located:
    """A YAML document and the line of each of its values, by path (`("stages", "train", "outs", 0)`)."""

    data: Any
    lines: dict[Path, int]
    file: str

    def line(self, path: Path) -> int:
        """The line of `path`, or of the nearest enclosing value that has one."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: Path) -> str:
        return f"{self.file}:{self.line(path)}"


def load(text: str, file: str) -> Located:
    """`text` parsed as YAML (PyYAML's safe loader), refused with its line if it does not parse."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{file}:{line}: not valid YAML: {problem}") from None
    lines: dict[Path, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return Located(data, lines, file)


def _record_lines(node: Any, path: Path, lines: dict[Path, int]) -> None:
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            _record_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, i), lines)


@dataclass(frozen=True)
class Tracked:
    """A reference to a value of a vars file: DVC tracks it as a param of the stage."""

    file: str
    key: str


@dataclass
class Context:
    """What `${…}` may name, looked up in DVC's order: the iteration, inline vars, vars files."""

    local: dict[str, Any]
    inline: dict[str, Any]
    files: dict[str, dict[str, Any]]  # file → its content, default params file first

    def within(self, values: Mapping[str, Any]) -> Context:
        return Context({**self.local, **values}, self.inline, self.files)

    def find(self, name: str) -> tuple[Any, str | None]:
        """The value `name` names, and the vars file it came from (None: not from a file)."""
        for scope, file in [
            (self.local, None),
            (self.inline, None),
            *((c, f) for f, c in self.files.items()),
        ]:
            found, value = lookup(scope, name)
            if found:
                return value, file
        raise KeyError(name)

    def resolve(self, text: str) -> list[str | Tracked]:
        """`text` as literal pieces and tracked references; KeyError names an unknown reference."""
        parts: list[str | Tracked] = []
        end = 0
        for match in _REFERENCE.finditer(text):
            parts.append(text[end : match.start()])
            end = match.end()
            if match.group("escape"):
                parts.append(match.group(0)[1:])  # `\${x}` is the literal `${x}`
                continue
            name = match.group("inner").strip()
            value, file = self.find(name)
            parts.append(Tracked(file, name) if file is not None else to_text(value))
        parts.append(text[end:])
        return [p for p in parts if p != ""]

    def value(self, text: str) -> Any:
        """A whole-string reference (`foreach: ${models}`) as its value; other text resolved as text."""
        match = _REFERENCE.fullmatch(text.strip())
        if match and not match.group("escape"):
            return self.find(match.group("inner").strip())[0]
        return text


def lookup(scope: Any, name: str) -> tuple[bool, Any]:
    """`a.b[0].c` in nested mappings and lists."""
    value = scope
    for part in _INDEX.sub(r".\1", name).split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def to_text(value: Any) -> str:
    """A value as DVC writes it into a string (booleans lower-case, like YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
