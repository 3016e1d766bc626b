"""The Buildfile format as data: a `Key` per key, a `Table` per kind of table, a `Form` per kind of value.

A key is declared once, in the table that holds it (`parse.TOP`, `parse.PROJECT`,
`variables.PARAM`, `image_stage.IMAGE_STAGE`, `run_stage.RUN_STAGE`, …): its name, the form
of its value (its reader and its JSON Schema), the description editors show, and the field of
the `core.spec` dataclass it fills. The parser reads a table through its keys, and
`core.schema` prints the same declarations as a JSON Schema, so the two cannot drift apart. A
key's default is its dataclass field's default (an absent key leaves the field alone); the
schema shows that one too. Adding a key is one `Key(...)` in its table, next to the dataclass
field it fills and the code that uses it.

A form pairs how a value is read (`read(f, where, value)`: the field's value, or a recorded
problem and `Skip`) with the JSON Schema fragment that describes it. Strings may hold `${…}`,
which the parser expands before checking them, so a schema pattern also accepts any string
holding `${` (`interpolated`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.interpolate import ARG_NAME, Expander, Issue

JSON = dict[str, Any]
Reader = Callable[["Fields", str, object], Any]
SCALAR_TEXT: JSON = {"type": ["string", "number"]}  # strings, and the numbers accepted in their place
PATH_DOC = (
    "A path relative to the project root, POSIX style ('/' separators). Not absolute, no '~', must not"
    " escape the project with '..'. A trailing '/' marks a directory."
)
PATH_SCHEMA: JSON = {"type": "string", "minLength": 1, "pattern": r"^(?![/~])[^\\]*$"}


class Skip(Exception):
    """A field's value is invalid; its problem is already recorded."""


def whole(rule: re.Pattern[str]) -> str:
    """`rule` as a JSON Schema pattern matching the whole string, like `fullmatch`."""
    return f"^(?:{rule.pattern})$"


def interpolated(rule: re.Pattern[str]) -> str:
    """`whole(rule)`, or any string holding a reference: the parser checks such a value once expanded."""
    return whole(rule) + r"|\$\{"


class Fields:
    """Typed, interpolated access to one table's values for its keys' readers; problems go to `out`.

    A stage's fields also know the stage's name, every stage declared (a `from` may name one)
    and, for an image stage, collect the strings written with `$` (see `ImageStage.templates`).
    """

    def __init__(
        self,
        out: v.Problems,
        where: str,
        expander: Expander | None = None,
        name: str = "",
        all_stages: Mapping[str, object] | None = None,
        templates: dict[str, str] | None = None,
    ) -> None:
        self.out, self.where, self.name = out, where, name
        self.all_stages: Mapping[str, object] = all_stages or {}
        self.expander = expander or Expander({}, {})
        self.templates = templates

    def fail(self, where: str, issue: Issue) -> Skip:
        self.out.add_issue(where, issue)
        return Skip()

    def check(self, value: object, where: str, ok: object, expected: str, hint: str = "") -> None:
        """Record a type error and skip the field unless `ok`."""
        if not self.out.expect(value, where, ok, expected, hint):
            raise Skip()

    def text(self, where: str, value: object, numbers: bool = False) -> str:
        if isinstance(value, str):
            if "$" not in value:  # fast path: most strings hold no reference
                return value
        else:
            expected = "a string or a number" if numbers else "a string"
            self.check(value, where, numbers and v.is_number(value), expected)
        expanded, issues = self.expander.expand(v.scalar_text(value))
        for issue in issues:
            self.out.add_issue(where, issue)
        if issues:
            raise Skip()
        if self.templates is not None and isinstance(value, str):
            self.templates[where.removeprefix(self.where + ".")] = value
        return expanded

    def each(
        self,
        where: str,
        value: object,
        read: Callable[[str, object], Any],
        what: str = "a list",
        single: bool = False,
    ) -> tuple[Any, ...]:
        """A list (`what`) read item by item, every item checked; with `single`, a string is
        accepted in place of a one-item list."""
        if single and not isinstance(value, list):
            self.check(value, where, isinstance(value, str), f"a string or {what}")
            return (read(where, value),)
        example = f"write [{v.show(value)}]" if isinstance(value, str) else ""
        self.check(value, where, isinstance(value, list), what, example)
        assert isinstance(value, list)
        results, failed = [], False
        for index, item in enumerate(value):
            try:
                results.append(read(f"{where}[{index}]", item))
            except Skip:
                failed = True
        if failed:
            raise Skip()
        return tuple(results)

    def texts(self, where: str, value: object, single: bool = False) -> tuple[str, ...]:
        return self.each(where, value, self.text, "a list of strings", single)

    def mapping(
        self, where: str, value: object, key_rule: re.Pattern[str] | None
    ) -> tuple[tuple[str, str], ...]:
        self.check(value, where, isinstance(value, dict), "a table", 'e.g. { NAME = "value" }')
        assert isinstance(value, dict)
        failed, result = False, []
        for key, item in value.items():
            try:
                if key_rule is not None and not key_rule.fullmatch(key):
                    raise self.fail(v.at(where, key), Issue("invalid name", "use letters, digits and _"))
                result.append((key, self.text(v.at(where, key), item, numbers=True)))
            except Skip:
                failed = True
        if failed:
            raise Skip()
        return tuple(result)

    def names(self, where: str, value: object) -> tuple[str, ...]:
        def name(at: str, item: object) -> str:
            self.check(
                item, at, isinstance(item, str) and ARG_NAME.fullmatch(item), "a name (letters, digits, _)"
            )
            return str(item)

        return tuple(dict.fromkeys(self.each(where, value, name, "a list of names")))

    def path(self, where: str, value: object, globs: bool = False) -> tuple[str, bool]:
        result = v.project_path(self.text(where, value), globs)
        if isinstance(result, Issue):
            raise self.fail(where, result)
        return result

    def container_path(self, where: str, value: object) -> str:
        result = v.container_path(self.text(where, value))
        if isinstance(result, Issue):
            raise self.fail(where, result)
        return result

    def pattern(self, where: str, value: object, rule: re.Pattern[str], expected: str) -> str:
        text = self.text(where, value)
        self.check(text, where, rule.fullmatch(text), expected)
        return text


# Declarations ---------------------------------------------------------------------------------


class Form:
    """A kind of value: how the parser reads it, and the JSON Schema fragment describing it.

    `read` is None for the values a table's owner reads itself, because they depend on each
    other (the top-level sections, a param's default and choices, which its type decides)."""

    __slots__ = ("read", "schema")

    def __init__(self, schema: JSON, read: Reader | None = None) -> None:
        self.schema, self.read = schema, read


class Key:
    """One key of a table. `missing`, when set, makes the key required and is the problem
    reported when it is absent; `required` alone marks a key whose absence the table's reader
    reports in its own words (a stage without `from` or `command`)."""

    __slots__ = ("name", "form", "doc", "field", "required", "missing")

    def __init__(
        self,
        name: str,
        form: Form,
        doc: str,
        field: str = "",
        required: bool = False,
        missing: Issue | None = None,
    ) -> None:
        self.name, self.form, self.doc, self.field = name, form, doc, field or name
        self.required, self.missing = required or missing is not None, missing

    def schema(self, default: object = MISSING) -> JSON:
        node = dict(self.form.schema)
        if _shown(default):
            node["default"] = default
        node["description"] = self.doc
        return node


class Table:
    """The keys a TOML table may hold, in the order `allowed keys: …` lists them; `cls` is the
    dataclass they fill (its field defaults are the keys' defaults)."""

    __slots__ = ("keys", "cls", "name", "title", "doc", "names", "by_name", "one_of")

    def __init__(
        self,
        keys: tuple[Key, ...],
        cls: type | None = None,
        name: str = "",
        title: str = "",
        doc: str = "",
        one_of: tuple[str, ...] = (),
    ) -> None:
        self.keys, self.cls, self.name, self.title, self.doc = keys, cls, name, title, doc
        self.one_of = one_of  # keys of which the table needs one (`command` or `commands`)
        self.by_name = {key.name: key for key in keys}
        self.names = tuple(self.by_name)

    def read_as_written(self, f: Fields, body: Mapping[str, object], found: dict[str, Any]) -> None:
        """Sets `found[field]` for a stage's keys, in the order written; a key whose value is invalid
        (problem recorded) or unknown (reported by `Problems.unknown_keys`) keeps its default."""
        for name, value in body.items():
            key = self.by_name.get(name)
            if key is None or key.form.read is None:
                continue
            try:
                found[key.field] = key.form.read(f, f"{f.where}.{name}", value)  # known keys are bare
            except Skip:
                continue

    def read(self, f: Fields, where: str, body: Mapping[str, object], whole_value: bool) -> dict[str, Any]:
        """The fields `body` sets, in declaration order, missing keys reported first. With
        `whole_value` (a table that is one value: a `copy` entry, a Debian base) the first
        problem skips the value; otherwise each invalid key keeps its default."""
        for key in self.keys:
            if key.missing is not None and key.name not in body:
                f.out.add_issue(v.at(where, key.name), key.missing)
                if whole_value:
                    raise Skip()
        found: dict[str, Any] = {}
        for key in self.keys:
            if key.name in body and key.form.read is not None:
                try:
                    found[key.field] = key.form.read(f, v.at(where, key.name), body[key.name])
                except Skip:
                    if whole_value:
                        raise
        return found

    def read_key(self, f: Fields, where: str, body: Mapping[str, object], name: str) -> Any:
        """One key's value read by its form (the caller knows it is present and readable)."""
        read = self.by_name[name].form.read
        assert read is not None
        return read(f, v.at(where, name), body[name])

    def schema(self) -> JSON:
        node: JSON = {"type": "object"}
        if self.title:
            node["title"] = self.title
        if self.doc:
            node["description"] = self.doc
        required = [key.name for key in self.keys if key.required]
        if required:
            node["required"] = required
        if self.one_of:
            node["anyOf"] = [{"required": [name]} for name in self.one_of]
        node["additionalProperties"] = False
        defaults = _defaults(self.cls)
        node["properties"] = {key.name: key.schema(defaults.get(key.field, MISSING)) for key in self.keys}
        return node


def _defaults(cls: type | None) -> dict[str, object]:
    if cls is None or not is_dataclass(cls):
        return {}
    return {field.name: field.default for field in fields(cls)}


def _shown(default: object) -> bool:
    """Defaults worth showing an editor: a flag, a number or a word; not "none" or "empty"."""
    return isinstance(default, (bool, int, float)) or (isinstance(default, str) and default != "")


# Forms shared by several keys -----------------------------------------------------------------


def choice(choices: tuple[str, ...]) -> Form:
    """One of a few words, not interpolated (`executor = "docker"`)."""

    def read(f: Fields, where: str, value: object) -> str:
        chosen = f.out.choice(value, where, choices)
        if chosen is None:
            raise Skip()
        return chosen

    return Form({"enum": list(choices)}, read)


def pattern(rule: re.Pattern[str], expected: str) -> Form:
    """A string matching `rule` once interpolated; `expected` names it in type errors."""
    return Form(
        {"type": "string", "pattern": interpolated(rule)},
        lambda f, where, value: f.pattern(where, value, rule, expected),
    )


def list_of(item: Form, what: str) -> Form:
    """A list (`what`: "a list of tables") whose items each have the form `item`."""
    read = item.read
    assert read is not None
    return Form(
        {"type": "array", "items": item.schema},
        lambda f, where, value: f.each(where, value, lambda at, x: read(f, at, x), what),
    )


def _string(f: Fields, where: str, value: object) -> str:
    f.check(value, where, isinstance(value, str), "a string")
    return str(value)


def _boolean(f: Fields, where: str, value: object) -> bool:
    f.check(value, where, isinstance(value, bool), "true or false")
    return bool(value)


def _one_or_many(schema: JSON) -> JSON:
    return {"anyOf": [schema, {"type": "array", "items": schema}]}


PLAIN_TEXT = Form({"type": "string"}, _string)  # taken as written: no `${…}` expansion
TEXT = Form({"type": "string"}, lambda f, where, value: f.text(where, value))
# A string is one item: `run = "make"`, or shell form for `entrypoint` / `cmd`.
TEXTS = Form(_one_or_many({"type": "string"}), lambda f, where, value: f.texts(where, value, single=True))
BOOLEAN = Form({"type": "boolean"}, _boolean)
PATH = Form(PATH_SCHEMA, lambda f, where, value: f.path(where, value)[0])
PATH_ITEMS: JSON = {"type": "array", "items": {**PATH_SCHEMA, "description": PATH_DOC}}
ARGS = Form(  # [args] and a stage's `args`: NAME = value, in order
    {"type": "object", "propertyNames": {"pattern": whole(ARG_NAME)}, "additionalProperties": SCALAR_TEXT}
)
CONTAINER_PATH = Form(
    {"type": "string", "pattern": r"^(/|\$)"}, lambda f, where, value: f.container_path(where, value)
)
NAMES = Form(
    {"type": "array", "items": {"type": "string", "pattern": whole(ARG_NAME)}, "uniqueItems": True},
    lambda f, where, value: f.names(where, value),
)
ENV = Form(
    {"type": "object", "additionalProperties": SCALAR_TEXT, "propertyNames": {"pattern": whole(ARG_NAME)}},
    lambda f, where, value: f.mapping(where, value, ARG_NAME),
)
LABELS = Form(
    {"type": "object", "additionalProperties": SCALAR_TEXT},
    lambda f, where, value: f.mapping(where, value, None),
)

# Keys of both kinds of stage.
ENV_KEY = Key("env", ENV, "Environment variables, in declaration order. Numbers are turned into strings.")
SECRETS_KEY = Key(
    "secrets", NAMES, "Names of secrets made available to the build or run (never part of a cache key)."
)
DESCRIPTION_KEY = Key("description", TEXT, "A one-line description, shown by `bg status` and `bg graph`.")

