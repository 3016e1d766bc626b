"""Dockerfile lexical syntax, as Docker's parser reads it (pure).

A port of moby/buildkit `frontend/dockerfile/parser/parser.go` (line reading) on top of
`dfargs` (argument splitting). BuildKit's own parser test files, where a developer has them in
tests/fixtures/external/buildkit/ (never committed), are read as BuildKit reads them
(tests/unit/test_dockerfile_conformance.py); tests/unit/test_dfsyntax.py holds our own cases.

- Parser directives (`# escape=`, `# syntax=`, `# check=`) only before anything else.
- A line ending in the escape character (not itself escaped: `a\\\\` ends no line)
  continues on the next; the pieces are joined with nothing between them (`good\\` +
  `bye` is `goodbye`), continuation lines keep their indentation, and comment and blank
  lines inside a continuation are dropped.
- Heredocs (`RUN <<EOF … EOF`) on ADD/COPY/RUN: their bodies are not instructions.

`parse` refuses what BuildKit's parser refuses; `read` adds the checks Docker makes
before it builds anything (unknown instruction, no FROM, an instruction before FROM).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from buildgraph.errors import BuildfileError, Problem
from buildgraph.images import dfargs
from buildgraph.images.dfargs import unquote

__all__ = ["Heredoc", "Instruction", "Parsed", "parse", "read", "shell_lines", "unquote"]

_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
KEYWORDS = frozenset(
    {
        "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
        "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # the word was unquoted: Docker expands variables in the body
    chomp: bool  # `<<-`: leading tabs stripped
    fd: int = 0


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of its first physical line
    keyword: str  # upper case
    text: str  # everything after the keyword (flags included), lines joined as Docker joins them
    pieces: tuple[str, ...]  # the joined pieces (continuation escapes removed); joined, they are `original`
    heredocs: tuple[Heredoc, ...] = ()
    end_line: int = 0
    flags: tuple[str, ...] = ()  # builder flags as Docker extracts them: `--from=builder`
    rest: str = ""  # the text after the flags
    args: tuple[str, ...] = ()  # BuildKit's node values (JSON items; the shell string; ENV `k, v, sep`…)
    json: bool = False
    sub: Instruction | None = None  # ONBUILD's instruction
    original: str = ""
    rest_at: int = 0  # where `rest` starts in `original`

    @property
    def heredoc(self) -> bool:
        return bool(self.heredocs)

    def pairs(self) -> list[tuple[str, str]]:
        """ENV/LABEL (either form) → [(key, value as written, quotes and all)]."""
        return [(self.args[i], self.args[i + 1]) for i in range(0, len(self.args) - 2, 3)]


@dataclass(frozen=True)
class Parsed:
    directives: dict[str, str]
    instructions: list[Instruction]
    escape: str


class _Located(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def parse(text: str, file: str = "Dockerfile") -> Parsed:
    """The instructions of a Dockerfile, or a BuildfileError naming the line Docker would refuse."""
    reader = _Reader(text)
    try:
        instructions = list(reader.instructions())
        if not instructions:
            raise _Located(max(reader.n, 1), "file with no instructions")
    except _Located as e:
        raise BuildfileError([Problem(file, str(e.line), e.message, _hint(e.message))]) from None
    return Parsed(reader.directives, instructions, reader.escape)


def _hint(message: str) -> str:
    if message == "file with no instructions":
        return "a Dockerfile needs at least a FROM line"
    return ""


class _Reader:
    """The state of one pass over a Dockerfile's lines (BuildKit's `Parse` loop)."""

    def __init__(self, text: str) -> None:
        self.lines = _physical_lines(text.removeprefix("\ufeff"))
        self.n = 0  # lines consumed
        self.directives: dict[str, str] = {}
        self.directives_done = False
        self.escape = "\\"
        self.continuation = _continuation("\\")

    def next_line(self) -> str | None:
        if self.n >= len(self.lines):
            return None
        self.n += 1
        return self.lines[self.n - 1]

    def instructions(self) -> Iterator[Instruction]:
        while (raw := self.next_line()) is not None:
            start = self.n
            piece, ended = self.trim_continuation(self.process(raw, strip=True))
            if ended and not piece:
                continue
            pieces = [piece]
            while not ended and (raw := self.next_line()) is not None:
                piece = self.process(raw, strip=False)
                if _is_comment(raw) or not piece.strip():
                    continue
                piece, ended = self.trim_continuation(piece)
                pieces.append(piece)
            line = "".join(pieces)
            try:
                ins = _instruction(line, self.escape, start, tuple(pieces))
            except dfargs.ArgumentError as e:
                raise _Located(start, str(e)) from None
            heredocs = self.heredocs(ins, line, start) if _may_have_heredoc(ins, line) else ()
            yield _replace(ins, heredocs=heredocs, end_line=self.n)

    def process(self, raw: str, strip: bool) -> str:
        """A physical line without its newline, left-stripped if asked; comments become ''."""
        token = raw.rstrip("\r\n")
        if strip:
            token = token.lstrip()
        self.directive(token)
        return "" if _is_comment(token) else token

    def directive(self, token: str) -> None:
        if self.directives_done:
            return
        match = _DIRECTIVE.match(token[1:].lstrip()) if token.startswith("#") else None
        name = match.group(1).lower() if match else ""
        if not match or name not in _DIRECTIVES:
            self.directives_done = True
            return
        if name in self.directives:
            raise _Located(self.n, f"only one {name} parser directive can be used")
        value = match.group(2)
        if name == "escape":
            if value not in ("`", "\\"):
                raise _Located(self.n, f"invalid escape token '{value}' does not match ` or \\")
            self.escape, self.continuation = value, _continuation(value)
        self.directives[name] = value

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(the line without its continuation escape, whether the instruction ends here)."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line), False
        return line, True

    def heredocs(self, ins: Instruction, line: str, start: int) -> tuple[Heredoc, ...]:
        found = []
        for fd, chomp, name, expand in _heredoc_words(line):
            body: list[str] = []
            while True:
                raw = self.next_line()
                if raw is None:
                    raise _Located(start, "unterminated heredoc")
                candidate = raw.rstrip("\r\n")
                if (candidate.lstrip("\t") if chomp else candidate) == name:
                    break
                body.append(raw)
            found.append(Heredoc(name, "".join(body), expand, chomp, fd))
        return tuple(found)


def _physical_lines(text: str) -> list[str]:
    """Lines split at `\\n` only (as Go's scanner does), each keeping its line ending."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _continuation(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _instruction(line: str, escape: str, start: int, pieces: tuple[str, ...]) -> Instruction:
    keyword, flags, rest, rest_at = dfargs.split_command(line, escape)
    sub = None
    if keyword.lower() == "onbuild":
        sub = _instruction(rest, escape, start, (rest,)) if rest else None
        args: list[str] = []
        is_json = False
    else:
        args, is_json = dfargs.parse_args(keyword, rest, escape)
    head = len(line) - len(line.lstrip()) + len(keyword)
    text = line[head:].strip()
    return Instruction(
        start, keyword.upper(), text, pieces, (), start, tuple(flags), rest, tuple(args), is_json,
        sub, line, rest_at,
    )  # fmt: skip


def _replace(ins: Instruction, **changes: object) -> Instruction:
    from dataclasses import replace

    return replace(ins, **changes)  # type: ignore[arg-type]


def _may_have_heredoc(ins: Instruction, line: str) -> bool:
    target = ins.sub if ins.keyword == "ONBUILD" and ins.sub else ins
    return target.keyword in ("ADD", "COPY", "RUN") and not target.json and "<<" in line


def _heredoc_words(line: str) -> Iterator[tuple[int, bool, str, bool]]:
    """(fd, chomp, name, expand) of each `<<WORD` / `<<-"WORD"` on an instruction line."""
    for word in dfargs.parse_words(line, "\\"):
        match = _HEREDOC.match(word)
        if not match or not match.group(3):
            continue
        name = unquote(match.group(3))
        if not name or dfargs.WHITESPACE.search(name):
            continue
        quoted = any(q in match.group(3) for q in "'\"")
        yield int(match.group(1) or 0), match.group(2) == "-", name, not quoted


def read(text: str, file: str = "Dockerfile") -> Parsed:
    """`parse`, then what Docker checks before building: known instructions, a FROM first (after ARGs)."""
    parsed = parse(text, file)
    seen_from = False
    for ins in parsed.instructions:
        where = str(ins.line)
        if ins.keyword.lower() not in KEYWORDS:
            hint = "is this a Dockerfile? `bg import` reads Dockerfiles" if not seen_from else ""
            raise BuildfileError([Problem(file, where, f"unknown instruction: {ins.keyword}", hint)])
        if ins.keyword == "FROM":
            seen_from = True
        elif not seen_from and ins.keyword != "ARG":
            message = f"{ins.keyword} before the first FROM: no build stage in current context"
            raise BuildfileError([Problem(file, where, message, "start the Dockerfile with FROM <image>")])
        _check_flags(ins, file)
        if ins.keyword == "HEALTHCHECK":
            _check_healthcheck(ins, file)
    if not seen_from:
        line = str(parsed.instructions[-1].line)
        raise BuildfileError([Problem(file, line, "no FROM: the Dockerfile has no build stage")])
    return parsed


# Flags Docker accepts. ADD, COPY and RUN are absent: BuildKit adds flags to them often
# (labs features), so an unknown one there is the importer's warning, not a refusal.
_FLAGS: dict[str, set[str] | None] = {
    "from": {"platform"},
    "healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
    "arg": None,
    "stopsignal": None,
    "add": None,
    "copy": None,
    "run": None,
}


def _check_healthcheck(ins: Instruction, file: str) -> None:
    """What BuildKit's `parseHealthcheck` refuses: `HEALTHCHECK` alone, a type other than CMD or
    NONE, `NONE` with arguments, `CMD` with no command."""
    kind = ins.args[0].upper() if ins.args else ""
    if not kind:
        message = "HEALTHCHECK requires at least one argument"
    elif kind == "NONE":
        message = "HEALTHCHECK NONE takes no arguments" if len(ins.args) > 1 else ""
    elif kind != "CMD":
        message = f'unknown type "{kind}" in HEALTHCHECK (try CMD)'
    else:
        message = "missing command after HEALTHCHECK CMD" if len(ins.args) < 2 else ""
    if message:
        raise BuildfileError([Problem(file, str(ins.line), message, "HEALTHCHECK CMD <command>, or NONE")])


def _check_flags(ins: Instruction, file: str) -> None:
    for target in (ins, ins.sub) if ins.sub else (ins,):
        allowed = _FLAGS.get(target.keyword.lower(), set())
        if allowed is None:
            continue
        for flag in target.flags:
            name = flag[2:].partition("=")[0]
            if name not in allowed:
                message = f"{target.keyword} does not take the flag --{name}"
                hint = f"{target.keyword} takes {', '.join('--' + f for f in sorted(allowed))}"
                raise BuildfileError([Problem(file, str(ins.line), message, hint if allowed else "")])


# -- helpers for readers of instructions (the importer) ------------------------------


def shell_lines(ins: Instruction) -> str:
    """A shell-form RUN's command with its line continuations kept (`\\` + newline), where sh
    reads that exactly as Docker's joined line: never inside single quotes or a `#` comment
    (there sh keeps the backslash-newline; Docker has already removed it)."""
    if ins.json or ins.heredocs or len(ins.pieces) == 1 or "$'" in ins.rest:
        return ins.rest
    plain = _plain_positions(ins.rest)
    cuts, at = [], 0
    for piece in ins.pieces[:-1]:
        at += len(piece)
        if 0 < at - ins.rest_at < len(ins.rest) and at - ins.rest_at in plain:
            cuts.append(at - ins.rest_at)
    parts = [ins.rest[a:b] for a, b in zip([0, *cuts], [*cuts, len(ins.rest)], strict=True)]
    return "\\\n".join(parts)


def _plain_positions(text: str) -> set[int]:
    """Offsets in a sh command that are outside quotes, escapes and comments."""
    plain: set[int] = set()
    quote, comment, word_start, i = "", False, True, 0
    while i < len(text):
        if not quote and not comment:
            plain.add(i)
        c = text[i]
        i += 1
        if comment or (quote == "'" and c != "'"):
            continue
        if c == "\\":
            i += 1
        elif c == quote:
            quote = ""
        elif not quote and c in "'\"":
            quote = c
        elif not quote and c == "#" and word_start:
            comment = True
        word_start = not quote and (c.isspace() or c in ";&|()")
    return plain


def split_flags(text: str, escape: str = "\\") -> tuple[list[tuple[str, str]], str]:
    """`--from=x --chown=1:1 a b` → ([("from", "x"), ("chown", "1:1")], "a b"); `--` ends the flags."""
    flags, used = dfargs.extract_flags(text, escape)
    pairs = [(name.lower(), value) for name, _, value in (f[2:].partition("=") for f in flags)]
    return pairs, text[used:].strip()


def exec_form(text: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for shell form (as Docker decides)."""
    try:
        values, is_json = dfargs.parse_args("cmd", text, "\\")
    except dfargs.ArgumentError:
        return None
    return values if is_json else None


def words(text: str, escape: str = "\\") -> list[str]:
    """Split on whitespace, honouring quotes and escapes, removing them (Docker's word rules).

    `$` references are kept as written: they are resolved later.
    """
    return [unquote(word, escape) for word in dfargs.parse_words(text, escape)]


def split_assignments(text: str, escape: str = "\\") -> list[tuple[str, str]] | None:
    """`K=V K2="a b"` → pairs; None when the text is the legacy `K V` form."""
    parts = words(text, escape)
    if parts and all("=" in p for p in parts):
        return [(k, v) for k, _, v in (p.partition("=") for p in parts)]
    return None
