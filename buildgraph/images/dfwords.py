"""Docker's own word processing, for `bg import` (pure): a Dockerfile word → a Buildfile string.

Docker substitutes variables itself only in FROM, ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL,
USER, VOLUME, WORKDIR and ONBUILD (moby/buildkit `frontend/dockerfile/shell/lex.go`), removing
quotes as it goes: `'…'` is literal, in `"…"` the escape only escapes `"`, `$` and itself,
outside quotes it escapes any character. RUN is never processed here: the shell does that.

Each reference is resolved by the caller's `lookup(name)`:
- a `Known(template, value)`: an arg (template `${NAME}`, bg substitutes it) or an ENV the
  importer has seen (its own template, as Docker would substitute it);
- None: a variable only the build can know (the base image's `$HOME`): it is kept for Docker
  to substitute, `$X` as it is and `${X…}` escaped as `$${X…}` so that bg leaves it alone.

`${X:-w}` `${X-w}` `${X:+w}` `${X+w}` of a known variable are decided with its value now, and
reported (`Word.decided`): bg has no conditional substitution, so `--arg X=…` will not decide
them again. The other BuildKit forms (`#`, `%`, `/`, `?`) are always left for Docker (which has
the arg or ENV declared too), and reported in `Word.unresolved` for fields bg itself resolves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]")
_DECIDED = (":-", ":+", "-", "+")


@dataclass(frozen=True)
class Known:
    template: str  # how the Buildfile writes it (`${NAME}`, or the ENV's own template)
    value: str  # its value with the args' defaults, to decide `${X:-w}`


Lookup = Callable[[str], "Known | None"]


@dataclass
class Word:
    template: str  # the Buildfile string
    value: str  # the same with every known reference replaced by its value
    decided: list[str] = field(default_factory=list)  # `${X:-w}`… decided at import
    unresolved: list[str] = field(default_factory=list)  # `${X/a/b}`… of a known X: not expressible


def process(text: str, lookup: Lookup, escape: str = "\\") -> Word:
    """One word as Docker's `ProcessWord` reads it (quotes removed, variables substituted)."""
    lexer = _Lexer(text, lookup, escape)
    lexer.run(stop="")
    return lexer.word


def process_words(text: str, lookup: Lookup, escape: str = "\\") -> list[Word]:
    """Whitespace-separated words (EXPOSE, VOLUME in shell form), each processed."""
    lexer = _Lexer(text, lookup, escape)
    return lexer.split()


class _Lexer:
    def __init__(self, text: str, lookup: Lookup, escape: str) -> None:
        self.text, self.lookup, self.escape = text, lookup, escape
        self.i = 0
        self.word = Word("", "")

    def emit(self, template: str, value: str | None = None) -> None:
        self.word.template += template
        self.word.value += template if value is None else value

    def literal(self, char: str) -> None:
        # A literal `$` stays escaped (`\$`): the value is processed by Docker once more when built.
        self.emit("\\$" if char == "$" else char, char)

    def split(self) -> list[Word]:
        words: list[Word] = []
        while self.i < len(self.text):
            while self.i < len(self.text) and self.text[self.i].isspace():
                self.i += 1
            if self.i < len(self.text):
                self.word = Word("", "")
                self.run(stop=" \t\n")
                words.append(self.word)
        return words

    def run(self, stop: str) -> None:
        """Read until a character of `stop` outside quotes (or the end)."""
        while self.i < len(self.text):
            char = self.text[self.i]
            if char in stop and stop:
                return
            self.i += 1
            if char == "'":
                self.single_quoted()
            elif char == '"':
                self.double_quoted()
            elif char == self.escape:
                self.escaped(quoted=False)
            elif char == "$":
                self.dollar()
            else:
                self.literal(char)

    def single_quoted(self) -> None:
        end = self.text.find("'", self.i)
        end = len(self.text) if end < 0 else end
        for char in self.text[self.i : end]:
            self.literal(char)
        self.i = end + 1

    def double_quoted(self) -> None:
        while self.i < len(self.text) and self.text[self.i] != '"':
            char = self.text[self.i]
            self.i += 1
            if char == self.escape:
                self.escaped(quoted=True)
            elif char == "$":
                self.dollar()
            else:
                self.literal(char)
        self.i += 1

    def escaped(self, quoted: bool) -> None:
        if self.i >= len(self.text):
            return  # a trailing escape is dropped, as Docker drops it
        char = self.text[self.i]
        if quoted and char not in ('"', "$", self.escape):
            self.literal(self.escape)
            return
        self.i += 1
        self.literal(char)

    def dollar(self) -> None:
        if self.text.startswith("{", self.i):
            self.braced()
            return
        match = _NAME.match(self.text, self.i)
        if not match:
            self.literal("$")
            return
        self.i = match.end()
        known = self.lookup(match.group(0))
        if known is None:
            self.emit("$" + match.group(0))
        else:
            self.emit(known.template, known.value)

    def braced(self) -> None:
        start = self.i - 1
        match = _NAME.match(self.text, self.i + 1)
        end = self.closing(self.i + 1)
        if not match or end < 0:
            self.literal("$")  # not a reference Docker reads: kept as text
            return
        name, modifier = match.group(0), self.text[match.end() : end]
        self.i = end + 1
        known = self.lookup(name)
        raw = self.text[start : end + 1]
        if known is None:
            self.emit(_for_docker(raw), raw)
        elif not modifier:
            self.emit(known.template, known.value)
        else:
            self.modified(known, name, modifier)

    def closing(self, i: int) -> int:
        """The `}` that closes a `${` (nested `${…}` in a modifier's word skipped)."""
        depth = 0
        while i < len(self.text):
            if self.text.startswith("${", i):
                depth, i = depth + 1, i + 2
                continue
            if self.text[i] == "}":
                if depth == 0:
                    return i
                depth -= 1
            i += 1
        return -1

    def modified(self, known: Known, name: str, modifier: str) -> None:
        op = next((o for o in _DECIDED if modifier.startswith(o)), "")
        if not op:  # `${X#…}` `${X%…}` `${X/…}`: for Docker, which declares X too
            self.word.unresolved.append(f"${{{name}{modifier}}}")
            self.emit(_for_docker(f"${{{name}{modifier}}}"), f"${{{name}{modifier}}}")
            return
        self.word.decided.append(f"${{{name}{modifier}}}")
        inner = process(modifier[len(op) :], self.lookup, self.escape)
        self.word.decided += inner.decided
        self.word.unresolved += inner.unresolved
        # `:` forms count an empty value as unset; a known variable is always declared.
        is_set = bool(known.value) or not op.startswith(":")
        if op in (":-", "-"):
            chosen = known if is_set else Known(inner.template, inner.value)
        else:
            chosen = Known(inner.template, inner.value) if is_set else Known("", "")
        self.emit(chosen.template, chosen.value)


def _for_docker(reference: str) -> str:
    """`${X…}` as a Buildfile string bg leaves alone (`$${X…}`, nested references too)."""
    return reference.replace("${", "$${")
