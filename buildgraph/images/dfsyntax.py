"""Dockerfile lexical syntax, as Docker's parser reads it (pure).

Parser directives (`# escape=`, `# syntax=`) at the very top; `#` comment lines;
instructions continued with the escape character at the end of a line (comment and
blank lines inside a continuation are dropped, as Docker drops them); heredocs
(`RUN <<EOF … EOF`) are recognised so that their bodies are not read as instructions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"^--([A-Za-z-]+)(?:=(\S*))?\s*")


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of its first physical line
    keyword: str  # upper case
    text: str  # the arguments, physical lines joined the way Docker joins them
    pieces: tuple[str, ...]  # the argument's physical lines, escapes removed (for RUN)
    heredoc: bool = False


@dataclass(frozen=True)
class Parsed:
    directives: dict[str, str]
    instructions: list[Instruction]
    escape: str


def parse(text: str) -> Parsed:
    lines = text.splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\") or "\\"
    return Parsed(directives, list(_instructions(lines, start, escape)), escape)


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() in found:
            return found, i
        found[match.group(1).lower()] = match.group(2)
    return found, len(lines)


def _instructions(lines: list[str], i: int, escape: str) -> Iterator[Instruction]:
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        first, pieces = i, []
        while True:
            line = lines[i].rstrip()
            continued = line.endswith(escape)
            pieces.append(line[:-1] if continued else line)
            i += 1
            while continued and i < len(lines) and _skipped_in_continuation(lines[i]):
                i += 1
            if not continued or i >= len(lines):
                break
        head = pieces[0].lstrip()
        keyword = head.split(None, 1)[0]
        pieces[0] = head[len(keyword) :].lstrip()
        body = "".join(pieces).strip()
        heredoc = _HEREDOC.search(body)
        if heredoc and keyword.upper() in ("RUN", "COPY", "ADD"):
            i = _skip_heredoc(lines, i, heredoc.group(3), strip_tabs=bool(heredoc.group(1)))
        yield Instruction(first + 1, keyword.upper(), body, tuple(pieces), heredoc=bool(heredoc))


def _skipped_in_continuation(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _skip_heredoc(lines: list[str], i: int, word: str, strip_tabs: bool) -> int:
    while i < len(lines):
        line = lines[i].lstrip("\t") if strip_tabs else lines[i]
        i += 1
        if line.rstrip() == word:
            break
    return i


def split_flags(text: str) -> tuple[list[tuple[str, str]], str]:
    """`--from=x --chown=1:1 a b` → ([("from", "x"), ("chown", "1:1")], "a b")."""
    flags: list[tuple[str, str]] = []
    while True:
        match = _FLAG.match(text)
        if not match:
            return flags, text
        flags.append((match.group(1).lower(), match.group(2) or ""))
        text = text[match.end() :]


def exec_form(text: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for shell form (as Docker decides)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def words(text: str, escape: str = "\\") -> list[str]:
    """Split on whitespace, honouring quotes and escapes, removing them (Docker's word rules).

    `$` references are kept as written: they are resolved later.
    """
    out: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and quote != "'" and i + 1 < len(text):
            i += 1
            word.append(text[i] if text[i] != "$" else "\\$")
        elif quote:
            if c == quote:
                quote = ""
            else:
                word.append(c)
        elif c in "\"'":
            quote, started = c, True
        elif c.isspace():
            if word or started:
                out.append("".join(word))
            word, started = [], False
        else:
            word.append(c)
        i += 1
    if word or started:
        out.append("".join(word))
    return out


def split_assignments(text: str, escape: str = "\\") -> list[tuple[str, str]] | None:
    """`K=V K2="a b"` → pairs; None when the text is the legacy `K V` form."""
    parts = words(text, escape)
    if parts and all("=" in p for p in parts):
        return [(k, v) for k, _, v in (p.partition("=") for p in parts)]
    return None
