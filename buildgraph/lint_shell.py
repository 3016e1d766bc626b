"""A `run` command split into the simple commands a POSIX shell would run (pure).

`bg lint` judges each command on its own (`pip install x && pip install --no-cache-dir y`
flags the first), so it needs sh's view of the text: quotes, backslashes, line
continuations, `#` comments, and the operators `&& || ; & |` and newlines between
commands. `$(…)`, backquotes and `${…}` stay inside the word they are part of; a
redirection and its target are dropped; leading `NAME=value` assignments are kept apart,
and wrappers that run the rest of the line as a command (`sudo`, `env`, `exec`, …) are
dropped, so the program is always `words[0]`. Not a full shell: enough for lint, and it
never fails (unbalanced quotes end at the end of the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = ("&&", "||", ";;", "|&", ";", "&", "|", "\n", "(", ")")
_REDIRECT = re.compile(r"\d*(>>|>&|>\||<<-|<<<|<<|<&|<>|>|<)")
# Reserved words that start a compound command; what follows them is a command.
_PREFIX_WORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"}
_END_WORDS = {"fi", "done", "esac", "}"}
_WRAPPERS = {"sudo", "env", "exec", "command", "nohup", "nice"}


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # the program, then its arguments; quotes removed
    assigns: tuple[tuple[str, str], ...] = ()  # leading `NAME=value` (also those given to `env`)
    piped: bool = False  # one side of a `|`

    @property
    def program(self) -> str:
        """The program's base name (`/opt/conda/bin/pip` → `pip`)."""
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""


def commands(script: str) -> list[Command]:
    """The simple commands of `script`, in order (`for` loops' headers and `case` left out)."""
    found: list[Command] = []
    current: list[str] = []
    pipe_before = False
    for token, is_operator in _tokens(script):
        if not is_operator:
            current.append(token)
            continue
        piped = token in ("|", "|&")
        command = _command(current, pipe_before or piped)
        if command is not None:
            found.append(command)
        current, pipe_before = [], piped
    command = _command(current, pipe_before)
    return found + ([command] if command is not None else [])


def _command(words: list[str], piped: bool) -> Command | None:
    while words and words[0] in _PREFIX_WORDS:
        words = words[1:]
    if not words or words[0] in _END_WORDS or words[0] in ("for", "case", "in", "esac"):
        return None
    assigns: list[tuple[str, str]] = []
    wrapped = False
    while words:
        head = words[0]
        if _ASSIGN.match(head):
            name, _, value = head.partition("=")
            assigns.append((name, value))
        elif head in _WRAPPERS:
            wrapped = True
        elif not (wrapped and head.startswith("-")):  # `sudo -E pip …`: the flag is sudo's
            break
        words = words[1:]
    return Command(tuple(words), tuple(assigns), piped) if words else None


def _tokens(script: str) -> list[tuple[str, bool]]:
    """(text, is_operator) pairs; a word that is a redirection's target is left out."""
    return _Lexer(script).run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[tuple[str, bool]] = []
        self.word: list[str] = []
        self.in_word = False
        self.skip_next = False  # the next word is a redirection's target

    def run(self) -> list[tuple[str, bool]]:
        while self.i < len(self.text):
            self.step()
        self.end_word()
        return self.out

    def step(self) -> None:
        text, i = self.text, self.i
        char = text[i]
        if text.startswith("\\\n", i):
            self.i += 2
        elif char == "\\":
            self.add(text[i + 1 : i + 2])
            self.i += 2
        elif char == "'":
            end = _find(text, "'", i + 1)
            self.add(text[i + 1 : end])
            self.i = end + 1
        elif char == '"':
            self.double_quoted()
        elif char == "`":
            end = _find(text, "`", i + 1)
            self.add(text[i : end + 1])
            self.i = end + 1
        elif text.startswith(("$(", "${"), i):
            end = _balanced(text, i + 1)
            self.add(text[i:end])
            self.i = end
        elif char == "#" and not self.in_word:
            self.i = _find(text, "\n", i)
        elif char in " \t":
            self.end_word()
            self.i += 1
        else:
            self.operator_or_char()

    def operator_or_char(self) -> None:
        text, i = self.text, self.i
        redirect = _REDIRECT.match(text, i)
        if redirect and (text[i] in "<>" or not self.in_word):
            if "".join(self.word).isdigit():  # `2>file`: the 2 is a descriptor
                self.word, self.in_word = [], False
            self.end_word()
            self.i, self.skip_next = redirect.end(), True
            return
        operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
        if operator is None:
            self.add(text[i])
            self.i += 1
            return
        self.end_word()
        self.out.append((operator, True))
        self.skip_next = False
        self.i += len(operator)

    def double_quoted(self) -> None:
        text = self.text
        i = self.i + 1
        piece: list[str] = []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
                piece.append("" if text[i + 1] == "\n" else text[i + 1])
                i += 2
            elif text.startswith(("$(", "${"), i):
                end = _balanced(text, i + 1)
                piece.append(text[i:end])
                i = end
            else:
                piece.append(text[i])
                i += 1
        self.add("".join(piece))
        self.i = i + 1

    def add(self, piece: str) -> None:
        self.word.append(piece)
        self.in_word = True

    def end_word(self) -> None:
        if self.in_word and not self.skip_next:
            self.out.append(("".join(self.word), False))
        if self.in_word:
            self.skip_next = False
        self.word, self.in_word = [], False


def _find(text: str, char: str, start: int) -> int:
    found = text.find(char, start)
    return len(text) if found < 0 else found


def _balanced(text: str, start: int) -> int:
    """The index after the bracket that closes the one at `start` (`(` or `{`)."""
    close = {"(": ")", "{": "}"}[text[start]]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == text[start]:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)
