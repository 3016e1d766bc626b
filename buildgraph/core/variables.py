"""`[args]` and `[params]`, the values `${NAME}` and `${params.name}` refer to, and their
command-line overrides (`--arg NAME=VALUE`, `--param name=value`).

Args are strings (numbers are accepted and turned into strings). A param is typed: by its
value (`epochs = 2`), or by a table (`{ default, type, choices, help }`, declared in `PARAM`)
whose keys are checked against each other, so a `--param` override is coerced to that type.
An invalid arg or param is still declared, with a placeholder value, so that the references
to it are not reported as undefined too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from buildgraph.core import values as v
from buildgraph.core.forms import PLAIN_TEXT, Fields, Form, Key, Skip, Table, choice
from buildgraph.core.interpolate import ARG_NAME, PARAM_NAME
from buildgraph.core.spec import Param, ParamValue
from buildgraph.core.suggest import closest

__all__ = [
    "PARAM",
    "PLATFORM_ARGS",
    "platform_args",
    "PARAM_VALUE",
    "override_args",
    "override_params",
    "read_args",
    "read_params",
    "stage_arg_names",
]

PARAM_TYPES = ("bool", "int", "float", "str")
PARAM_VALUE = {"type": ["boolean", "integer", "number", "string"]}  # a param's value, as JSON Schema


# [args] ------------------------------------------------------------------------------------


def read_args(table: object, out: v.Problems) -> dict[str, str]:
    result: dict[str, str] = {}
    if not out.expect_table(table, "args"):
        return result
    assert isinstance(table, dict)
    for name, value in table.items():
        where = v.at("args", name)
        if not ARG_NAME.fullmatch(name):
            out.add(
                where, "invalid arg name", "arg names are letters, digits and _, not starting with a digit"
            )
            continue
        result[name] = ""  # kept even if its value is invalid: references to it are not reported too
        if out.expect(value, where, v.is_scalar_text(value), "a string or a number"):
            result[name] = v.scalar_text(value)
    return result


def stage_arg_names(stages: object) -> frozenset[str]:
    """The names image stages declare in their own `args` tables (`--arg` may set them too)."""
    if not isinstance(stages, dict):
        return frozenset()
    tables = (body.get("args") for body in stages.values() if isinstance(body, dict))
    return frozenset(name for table in tables if isinstance(table, dict) for name in table)


def override_args(
    values: dict[str, str],
    overrides: Mapping[str, str],
    out: v.Problems,
    stage_args: frozenset[str] = frozenset(),
) -> None:
    """`--arg NAME=VALUE` sets [args] NAME, and every stage's own arg NAME (read with the stages)."""
    for name, text in overrides.items():
        source = v.show_raw(f"--arg {name}={text}")
        if name in values:
            values[name] = text
        elif name not in stage_args:
            out.add_at(
                source, f"no arg named '{v.show_raw(name)}' in [args]", _declared_hint(name, values, "arg")
            )


# The automatic platform args (BuildKit's) ---------------------------------------------------

PLATFORM_ARGS = (
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
)  # fmt: skip
# `platform.machine()` → Docker's (architecture, variant)
_ARCHES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}


def platform_args(machine: str) -> dict[str, str]:
    """TARGETPLATFORM … BUILDVARIANT for a build on this machine: bg builds for the platform it runs
    on, and images are Linux ones whatever the host (as Docker Desktop's are)."""
    arch, variant = _ARCHES.get(machine.lower(), (machine.lower(), ""))
    platform = f"linux/{arch}" + (f"/{variant}" if variant else "")
    one = {"PLATFORM": platform, "OS": "linux", "ARCH": arch, "VARIANT": variant}
    return {f"{side}{name}": value for side in ("TARGET", "BUILD") for name, value in one.items()}


# [params] ----------------------------------------------------------------------------------


def read_params(table: object, out: v.Problems) -> dict[str, Param]:
    result: dict[str, Param] = {}
    if not out.expect_table(table, "params"):
        return result
    assert isinstance(table, dict)
    for name, value in table.items():
        where = v.at("params", name)
        if not PARAM_NAME.fullmatch(name):
            out.add(
                where,
                "invalid param name",
                "param names are letters, digits, _ and -, not starting with a digit",
            )
            continue
        param = (
            _param_table(name, value, where, out)
            if isinstance(value, dict)
            else _param_scalar(name, value, where, out)
        )
        # an invalid param keeps a placeholder so that references to it are not reported too
        result[name] = param if param is not None else Param(name, "", "str")
    return result


def _param_scalar(name: str, value: object, where: str, out: v.Problems) -> Param | None:
    kind = v.param_type(value)
    if kind is None:
        out.type_error(
            where, "a bool, int, float or string, or a table {default, type, choices, help}", value
        )
        return None
    assert isinstance(value, (bool, int, float, str))
    return Param(name, value, kind)


def _param_table(name: str, table: dict[str, Any], where: str, out: v.Problems) -> Param | None:
    out.unknown_keys(table, where, PARAM.names)
    if "default" not in table:
        out.add(
            v.at(where, "default"),
            "missing (a param needs a default value)",
            f"add default = ... to params.{name}",
        )
        return None
    f = Fields(out, where)
    kind = _param_kind(f, where, table)
    if kind is None:
        return None
    default = _typed(table["default"], kind, v.at(where, "default"), out)
    choices = _choices(table.get("choices", []), kind, v.at(where, "choices"), out)
    help_text = _optional(f, where, table, "help", "")
    if default is None or choices is None:
        return None
    if choices and default not in choices:
        out.add(
            v.at(where, "default"), f"{v.show(default)} is not one of the choices", _choices_hint(choices)
        )
        return None
    return Param(name, default, kind, tuple(choices), help_text)


def _param_kind(f: Fields, where: str, table: dict[str, Any]) -> v.ParamType | None:
    """The declared `type`, else the default's; None (problem recorded) when neither will do."""
    kind = v.param_type(table["default"])
    if "type" in table:
        kind = cast(v.ParamType | None, _optional(f, where, table, "type", None))
        if kind is None:
            return None
    if kind is None:
        f.out.type_error(v.at(where, "default"), "a bool, int, float or string", table["default"])
    return kind


def _optional(f: Fields, where: str, table: dict[str, Any], key: str, otherwise: Any) -> Any:
    """A param table's `key` read by its declaration; `otherwise` when absent or invalid."""
    if key not in table:
        return otherwise
    try:
        return PARAM.read_key(f, where, table, key)
    except Skip:
        return otherwise


def _typed(value: object, kind: v.ParamType, where: str, out: v.Problems) -> ParamValue | None:
    if kind == "float" and v.is_int(value):
        assert isinstance(value, int)
        return float(value)
    if v.param_type(value) != kind:
        out.type_error(where, v.TYPE_WORDS[kind], value)
        return None
    assert isinstance(value, (bool, int, float, str))
    return value


def _choices(value: object, kind: v.ParamType, where: str, out: v.Problems) -> list[ParamValue] | None:
    if not out.expect(value, where, isinstance(value, list), f"a list of {kind} values"):
        return None
    assert isinstance(value, list)
    typed = [_typed(item, kind, v.at(where, i), out) for i, item in enumerate(value)]
    return None if any(t is None for t in typed) else [t for t in typed if t is not None]


def _choices_hint(choices: list[ParamValue] | tuple[ParamValue, ...]) -> str:
    return "choose one of " + ", ".join(v.show(c) for c in choices)


PARAM = Table(
    (
        Key(
            "default",
            Form(PARAM_VALUE),  # read with `choices` once the type is known
            "The value used unless `--param name=value` overrides it.",
            field="value",
            required=True,
        ),
        Key("type", choice(PARAM_TYPES), "The type; by default, the default value's type."),
        Key("choices", Form({"type": "array", "items": PARAM_VALUE}), "The allowed values."),
        Key("help", PLAIN_TEXT, "What the param means (shown by `bg explain`)."),
    ),
    Param,
)


def override_params(params: dict[str, Param], overrides: Mapping[str, str], out: v.Problems) -> None:
    for name, text in overrides.items():
        source = v.show_raw(f"--param {name}={text}")
        param = params.get(name)
        if param is None:
            out.add_at(
                source,
                f"no param named '{v.show_raw(name)}' in [params]",
                _declared_hint(name, params, "param"),
            )
            continue
        value, message = v.coerce(text, param.type)
        if value is None:
            out.add_at(source, message, f"params.{name} is declared as {v.TYPE_WORDS[param.type]}")
        elif param.choices and value not in param.choices:
            out.add_at(source, f"{v.show(value)} is not one of the choices", _choices_hint(param.choices))
        else:
            params[name] = Param(name, value, param.type, param.choices, param.help)


def _declared_hint(name: str, declared: Mapping[str, object], what: str) -> str:
    match = closest(name, declared)
    if match is not None:
        return f"did you mean '{match}'?"
    if declared:
        return f"declared {what}s: " + ", ".join(sorted(declared))
    return f"declare it under [{what}s] in the Buildfile"
