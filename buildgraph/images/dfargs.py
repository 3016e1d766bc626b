"""An instruction's arguments, split the way BuildKit's parser splits them (pure).

A port of moby/buildkit `frontend/dockerfile/parser/{split_command,line_parsers}.go`,
kept close to the Go so that the two can be compared line by line: the vendored
conformance files (tests/fixtures/external/buildkit/ (not committed)) check that we read every case as Docker
does. At this level quotes are still in the words (`ENV A="a b"` gives `"a b"`);
`unquote` removes them later, as Docker's evaluator does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class ArgumentError(ValueError):
    """An instruction Docker's parser refuses (the caller adds the line)."""


class _NotJSON(Exception):
    pass


def split_command(line: str, escape: str) -> tuple[str, list[str], str, int]:
    """`RUN --mount=x  echo hi` → ("RUN", ["--mount=x"], "echo hi", offset of "echo" in `line`)."""
    lead = len(line) - len(line.lstrip())
    parts = WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], "", len(line)
    after = lead + len(parts[0])
    after += len(line[after:]) - len(line[after:].lstrip(" \t\v\f\r"))
    flags, used = extract_flags(parts[1], escape)
    rest = parts[1][used:]
    return parts[0], flags, rest.strip(), after + used + len(rest) - len(rest.lstrip())


def extract_flags(line: str, escape: str) -> tuple[list[str], int]:
    """Leading `--name=value` words (quotes, escapes removed; `--` ends them), and where the rest starts."""
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return words, pos
        word, end = _flag_word(line, pos, escape)
        if word == "--":
            return words, end
        if word is not None:
            words.append(word)
        pos = end


def _flag_word(line: str, pos: int, escape: str) -> tuple[str | None, int]:
    """One flag word from `pos`: its text (None when empty and unquoted) and where it ends."""
    out: list[str] = []
    quote = ""
    quoted = False
    while pos < len(line):
        ch = line[pos]
        if not quote and ch.isspace():
            break
        pos += 1
        if not quote and ch in "'\"":
            quote, quoted = ch, True
            continue
        if quote and ch == quote:
            quote = ""
            continue
        if ch == escape:
            if pos == len(line):
                continue  # BuildKit skips an escape at the very end
            ch = line[pos]
            pos += 1
        out.append(ch)
    word = "".join(out)
    return (word if word or quoted else None), pos


def parse_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words; quotes and escapes kept (BuildKit's parseWords)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if not quote and ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok = [], False
            i += 1
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote, blank_ok = ch, True
        if ch == escape and quote != "'":
            if i + 1 == len(rest):
                quote = ""
                break  # an escape at the very end is dropped
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if blank_ok or word:
        words.append("".join(word))
    return words


def _json_list(rest: str) -> list[str]:
    rest = rest.lstrip()
    if not rest.startswith("["):
        raise _NotJSON
    try:
        value = json.loads(rest, parse_constant=_refuse_constant)
    except ValueError:
        raise _NotJSON from None
    if not isinstance(value, list):
        raise _NotJSON
    if not all(isinstance(v, str) for v in value):
        raise ArgumentError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(name)  # Go's encoding/json has no NaN or Infinity


Parsed = tuple[list[str], bool]  # the node values, and whether they came from a JSON array


def _maybe_json(rest: str, escape: str) -> Parsed:
    if not rest:
        return [], False
    try:
        return _json_list(rest), True
    except _NotJSON:
        return [rest], False


def _maybe_json_to_list(rest: str, escape: str) -> Parsed:
    try:
        return _json_list(rest), True
    except _NotJSON:
        return _whitespace_list(rest, escape)


def _whitespace_list(rest: str, escape: str) -> Parsed:
    return (WHITESPACE.split(rest) if rest else []), False


def _string(rest: str, escape: str) -> Parsed:
    return ([rest] if rest else []), False


def _name_or_name_val(rest: str, escape: str) -> Parsed:
    return parse_words(rest, escape), False


def _name_val(keyword: str) -> Callable[[str, str], Parsed]:
    """ENV/LABEL: `k v` (legacy, one pair, split at the first blank or tab) or `k=v k2=v2`."""

    def parse(rest: str, escape: str) -> Parsed:
        words = parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            parts = WHITESPACE.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise ArgumentError(f"{keyword} must have two arguments")
            return [parts[0], parts[1], ""], False
        out: list[str] = []
        for word in words:
            if "=" not in word:
                raise ArgumentError(
                    f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: name=value"
                )
            key, _, value = word.partition("=")
            out += [key, value, "="]
        return out, False

    return parse


def _health(rest: str, escape: str) -> Parsed:
    """HEALTHCHECK: a type word (`CMD`, `NONE`), then CMD's arguments."""
    sep = len(rest.split(None, 1)[0]) if rest and not rest[0].isspace() else 0
    if sep == 0:
        return [], False
    tail = rest[sep:].lstrip()
    values, is_json = _maybe_json(tail, escape)
    return [rest[:sep], *values], is_json


PARSERS: dict[str, Callable[[str, str], Parsed]] = {
    "add": _maybe_json_to_list,
    "arg": _name_or_name_val,
    "cmd": _maybe_json,
    "copy": _maybe_json_to_list,
    "entrypoint": _maybe_json,
    "env": _name_val("ENV"),
    "expose": _whitespace_list,
    "from": _whitespace_list,
    "healthcheck": _health,
    "label": _name_val("LABEL"),
    "maintainer": _string,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_to_list,
    "workdir": _string,
}


def parse_args(keyword: str, rest: str, escape: str) -> Parsed:
    """The node values of one instruction (ONBUILD is the caller's); unknown keywords give `[""]`."""
    parser = PARSERS.get(keyword.lower())
    return parser(rest, escape) if parser else ([""], False)


def unquote(word: str, escape: str = "\\") -> str:
    """Docker's quote removal for one word: `'…'` literal; in `"…"` the escape only escapes `" $` and
    itself; outside quotes it escapes any character. `$` references are kept as written (an escaped
    `$` stays `\\$`) because they are substituted later."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(word):
        ch = word[i]
        i += 1
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out.append(ch)
        elif ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == escape and i < len(word):
            nxt = word[i]
            if quote and nxt not in ('"', "$", escape):
                out.append(ch)
                continue
            out.append("\\$" if nxt == "$" else nxt)
            i += 1
        elif ch != escape:
            out.append(ch)
    return "".join(out)
