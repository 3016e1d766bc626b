"""Reading TOML values precisely: problem collection, type messages, path rules, TOML errors.

Every message names what was expected and shows what was found (`expected "all", an integer
or a list of integers, got a string "two"`). User text is shown escaped so that a problem
always renders to one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from buildgraph.core.interpolate import Issue
from buildgraph.core.spec import ParamValue
from buildgraph.core.suggest import closest
from buildgraph.errors import Problem

if TYPE_CHECKING:  # imported where a Buildfile is parsed: a cached Spec needs no TOML parser
    import tomllib

STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = "a name of letters, digits, '_', '.' and '-' that starts with a letter or digit"
ParamType = Literal["bool", "int", "float", "str"]
TYPE_WORDS: dict[str, str] = {"bool": "a boolean", "int": "an int", "float": "a float", "str": "a string"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHOW_LIMIT = 60


# Showing values -----------------------------------------------------------------------------


def show_raw(text: str) -> str:
    """`text` with anything that is not printable escaped (keeps a message on one line)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def show(value: object) -> str:
    """A value as TOML would spell it, shortened and escaped: `"two"`, `3`, `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        short = value if len(value) <= _SHOW_LIMIT else value[:_SHOW_LIMIT] + "…"
        return show_raw('"' + short.replace("\\", "\\\\").replace('"', '\\"') + '"')
    if isinstance(value, (int, float)):
        return repr(value)
    return show_raw(str(value))


def describe(value: object) -> str:
    """`a string "two"`, `an integer 3`, `a list`, … for `got …` in type errors."""
    if isinstance(value, bool):
        return f"a boolean {show(value)}"
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, float):
        return f"a float {value!r}"
    if isinstance(value, str):
        return f"a string {show(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def at(parent: str, key: str | int) -> str:
    """The key path of `key` inside `parent`: `stages.train.outputs[1]`, `labels."a.b"`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    part = key if _BARE_KEY.fullmatch(key) else show(key)
    return f"{parent}.{part}" if parent else part


def or_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# Scalars --------------------------------------------------------------------------------------


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML `true` is not 1


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar_text(value: object) -> bool:
    """Strings, and numbers we accept in their place (`[args]`, `env`, `labels`)."""
    return isinstance(value, str) or is_number(value)


def scalar_text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def param_type(value: object) -> ParamType | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else None


def coerce(text: str, kind: str) -> tuple[ParamValue | None, str]:
    """A command-line `--param` value as `kind`, or (None, what is wrong)."""
    if kind == "int" and re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        return int(text), ""
    if kind == "float":
        try:
            return float(text), ""
        except ValueError:
            pass
    if kind == "bool" and text.lower() in ("true", "false"):
        return text.lower() == "true", ""
    if kind == "str":
        return text, ""
    expected = "true or false" if kind == "bool" else TYPE_WORDS[kind]
    return None, f"expected {expected}, got {show(text)}"


def problem(file: str, where: str, message: str, hint: str = "") -> Problem:
    """A Problem whose message and hint are one line each, whatever names they quote."""
    return Problem(file, where, show_raw(message), show_raw(hint))


# Collecting problems --------------------------------------------------------------------------


class Problems:
    """Every problem found in one file, in the order found."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, where: str, message: str, hint: str = "") -> None:
        self.items.append(problem(self.file, where, message, hint))

    def add_at(self, source: str, message: str, hint: str = "") -> None:
        """A problem that is not in the file (a command-line override): `source: message`."""
        self.items.append(problem(source, "", message, hint))

    def add_issue(self, where: str, issue: Issue) -> None:
        self.add(where, issue.message, issue.hint)

    def type_error(self, where: str, expected: str, value: object, hint: str = "") -> None:
        self.add(where, f"expected {expected}, got {describe(value)}", hint or _quoted_hint(expected, value))

    def expect(self, value: object, where: str, ok: object, expected: str, hint: str = "") -> bool:
        if not ok:
            self.type_error(where, expected, value, hint)
        return bool(ok)

    def expect_table(self, value: object, where: str) -> bool:
        return self.expect(value, where, isinstance(value, dict), "a table")

    def choice(self, value: object, where: str, choices: Sequence[str]) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        match = closest(value, choices) if isinstance(value, str) else None
        hint = f"did you mean '{match}'?" if match else ""
        self.type_error(where, or_list([show(c) for c in choices]), value, hint)
        return None

    def unknown_keys(
        self,
        table: Mapping[str, Any],
        where: str,
        allowed: Iterable[str],
        other_hint: Callable[[str, object], str] | None = None,
    ) -> None:
        known = tuple(allowed)
        for key, value in table.items():
            if key in known:
                continue
            match = closest(key, known)
            hint = f"did you mean '{match}'?" if match else (other_hint(key, value) if other_hint else "")
            self.add(at(where, key), "unknown key", hint or "allowed keys: " + ", ".join(known))


def _quoted_hint(expected: str, value: object) -> str:
    """`keep_runs = "5"`, `network = "true"`: the value is right, the quotes are not."""
    if not isinstance(value, str):
        return ""
    numeric = re.fullmatch(r"[+-]?[0-9]+(?:\.[0-9]+)?", value.strip())
    if numeric and any(word in expected for word in ("int", "number", "float")):
        return f"write the number without quotes: {value.strip()}"
    if value in ("true", "false") and ("true" in expected or "bool" in expected):
        return f"write {value} without quotes"
    return ""


# Paths ----------------------------------------------------------------------------------------

_GLOB_CHARS = frozenset("*?[")
# Already normal: no empty, ".", ".." or hidden segments, no spaces, wildcards or backslashes.
_PLAIN_PATH = re.compile(r"[\w+@=,-][\w.+@=,-]*(?:/[\w+@=,-][\w.+@=,-]*)*/?")


def project_path(raw: str, globs: bool = False) -> tuple[str, bool] | Issue:
    """`./a//b/` → (`a/b`, True): a normalised project-relative path, or what is wrong with it."""
    if _PLAIN_PATH.fullmatch(raw):  # fast path for the common case (1,000-stage Buildfiles)
        return (raw[:-1], True) if raw.endswith("/") else (raw, False)
    issue = _path_shape_issue(raw)
    if issue is not None:
        return issue
    if not globs and not _GLOB_CHARS.isdisjoint(raw):
        return Issue(
            f"{show(raw)}: wildcards are not allowed here", "name the directory instead (with a trailing /)"
        )
    parts: list[str] = []
    for part in raw.split("/"):
        if part == "..":
            if not parts:
                return Issue(
                    f"{show(raw)} points outside the project", "paths must stay inside the project root"
                )
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    if not parts:
        return Issue(f"{show(raw)} is the project root itself", "name a file or directory inside the project")
    if parts[0] == ".bg":
        return Issue(f"{show(raw)} is inside .bg/, buildgraph's own state", "use another directory")
    return "/".join(parts), raw.endswith("/")


def _path_shape_issue(raw: str) -> Issue | None:
    relative = "paths are relative to the project root (the directory holding the Buildfile)"
    if not raw:
        return Issue("empty path")
    if raw != raw.strip():
        return Issue(f"{show(raw)} starts or ends with spaces", "remove the spaces")
    if "\\" in raw:
        return Issue(f"{show(raw)} contains a backslash", "write paths with forward slashes: data/train.csv")
    if "\0" in raw:
        return Issue(f"{show(raw)} contains a NUL character")
    if raw.startswith("~"):
        return Issue(f"{show(raw)}: '~' is not expanded", relative)
    if raw.startswith("/"):
        return Issue(f"{show(raw)} is an absolute path", relative)
    return None


_IMAGE_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def container_path(raw: str) -> str | Issue:
    """A path inside an image (`/opt/app/`): absolute POSIX, normalised, trailing "/" kept. It may
    start with a variable Docker substitutes from the image's ENV at build time (`${HOME}/.cache`,
    written `$${HOME}` in a Buildfile): that variable must hold an absolute path."""
    variable = _IMAGE_VARIABLE.match(raw)
    if not raw.startswith("/") and not variable:
        return Issue(f"{show(raw)} is not absolute", "paths inside the image start with '/', e.g. /opt/app")
    if "\\" in raw or "\0" in raw or raw != raw.strip():
        return Issue(f"{show(raw)} is not a clean POSIX path", "use '/' separators and no surrounding spaces")
    if variable:
        rest = raw[variable.end() :]
        if rest and not rest.startswith("/"):
            return Issue(f"{show(raw)}: a variable starting a path is followed by '/'", "e.g. ${HOME}/app")
        tail = container_path(rest) if rest.strip("/") else rest[:1]  # "", "/" or a clean path
        return variable.group() + str(tail)
    parts: list[str] = []
    for part in raw.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    path = "/" + "/".join(parts)
    return path + "/" if raw.endswith("/") and parts else path


# TOML syntax errors ---------------------------------------------------------------------------

_TOML_AT = re.compile(r"(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)", re.S)
_KEY_ON_LINE = re.compile(r"\s*([^=\s][^=]*?)\s*=")


def syntax_problem(file: str, text: str, error: tomllib.TOMLDecodeError) -> Problem:
    """A TOML decoding error as `Buildfile.toml:LINE:COL: message` with a hint."""
    found = _TOML_AT.fullmatch(str(error))
    if found is None:
        return Problem(file, "", f"invalid TOML: {show_raw(str(error))}")
    message = found["msg"]
    if found["line"]:
        line, column = int(found["line"]), int(found["col"])
    else:
        line, column = _locate_at_end(text, message)
    source_line = text.split("\n")[line - 1] if text else ""
    message, hint, key_column = _explain(message, source_line)
    return Problem(file, f"{line}:{key_column or column}", show_raw(message), hint)


def _locate_at_end(text: str, message: str) -> tuple[int, int]:
    """tomllib reports some errors "at end of document"; find the first line that causes it."""
    lines = text.split("\n")
    if message.startswith("Cannot"):  # a duplicate: the shortest failing prefix ends on it
        low, high = 1, len(lines)
        while low < high:
            middle = (low + high) // 2
            if _fails_with("\n".join(lines[:middle]), message):
                high = middle
            else:
                low = middle + 1
        return low, 1
    return len(lines), len(lines[-1]) + 1


def _fails_with(text: str, message: str) -> bool:
    import tomllib

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return str(error).startswith(message)
    return False


def _explain(message: str, line: str) -> tuple[str, str, int]:
    """A friendlier message + hint for tomllib's message, and the column of the key if useful."""
    key = _KEY_ON_LINE.match(line)
    key_column = (key.start(1) + 1) if key else 0
    if message == "Cannot overwrite a value":
        name = f" '{key.group(1)}'" if key else ""
        return f"duplicate key{name}", "a key can be set only once in a table; remove one of them", key_column
    if message.startswith("Cannot declare"):
        table = ".".join(re.findall(r"'([^']*)'", message))
        return f"table [{table}] declared twice", f"merge the two [{table}] sections into one", 1
    if message.startswith("Cannot mutate immutable namespace"):
        table = ".".join(re.findall(r"'([^']*)'", message))
        return (
            f"'{table}' was written as an inline table and cannot be extended",
            "put all its keys inside the { ... }, or use a [section]",
            key_column,
        )
    hint = ""
    if message == "Invalid value":
        hint = 'values are "quoted strings", numbers, true/false, [lists] or { inline = "tables" }'
    elif message == "Illegal character '\\n'":
        hint = 'close the string on the same line, or use """ for a string over several lines'
    return message[:1].lower() + message[1:], hint, 0
