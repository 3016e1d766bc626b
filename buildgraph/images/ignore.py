""".dockerignore rules, matched the way Docker matches them.

Syntax (https://docs.docker.com/build/concepts/context/#dockerignore-files):
one pattern a line; `#` starts a comment line; blank lines are skipped; a leading `/`
is dropped (patterns are relative to the context root anyway); `*` matches within one
path segment, `?` one character, `[a-z]` a class, `**` any number of segments
(zero included); `!pattern` re-includes what an earlier pattern excluded. The last
pattern that matches a path decides, and a pattern that matches a directory also
matches everything under it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str  # the cleaned pattern, without `!`
    regex: re.Pattern[str]
    exception: bool  # a `!` line: re-include


def compile_pattern(pattern: str) -> Pattern | None:
    """Compile one line; None for blank and comment lines."""
    line = pattern.strip()
    if not line or line.startswith("#"):
        return None
    exception = line.startswith("!")
    if exception:
        line = line[1:].strip()
    line = posixpath.normpath(line).lstrip("/")
    if line in ("", "."):
        line = "*" if not exception else line
    return Pattern(line, re.compile(_to_regex(line)), exception)


def _to_regex(pattern: str) -> str:
    """Translate like moby's patternmatcher: `**/` may match nothing, `*` stays in a segment."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


class IgnoreRules:
    """An ordered list of patterns; `ignored(relpath)` says whether Docker would drop a path."""

    def __init__(self, lines: list[str] | tuple[str, ...] = ()) -> None:
        compiled = (compile_pattern(line) for line in lines)
        self.patterns = [p for p in compiled if p is not None]

    @classmethod
    def from_text(cls, text: str) -> IgnoreRules:
        return cls(text.splitlines())

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def ignored(self, relpath: str) -> bool:
        """True when the last pattern matching `relpath` or one of its parents excludes it."""
        path = posixpath.normpath(relpath).lstrip("/")
        candidates = _self_and_parents(path)
        verdict = False
        for pattern in self.patterns:
            if any(pattern.regex.match(c) for c in candidates):
                verdict = not pattern.exception
        return verdict

    def may_reinclude_under(self, dirpath: str) -> bool:
        """Whether some `!` pattern could re-include a path below an ignored `dirpath`.

        Used to avoid walking huge ignored trees (`.git/`, `data/`) when no exception
        pattern could bring any of their files back.
        """
        prefix = dirpath.rstrip("/") + "/"
        for pattern in self.patterns:
            literal = re.split(r"[*?\[\\]", pattern.text, maxsplit=1)[0]
            if pattern.exception and (literal.startswith(prefix) or prefix.startswith(literal)):
                return True
        return False


def _self_and_parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
