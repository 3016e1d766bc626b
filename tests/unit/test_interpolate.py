"""`${NAME}`, `${params.name}` and `$${` on their own: `Expander` (what a stage's strings become,
which args and params its key then depends on) and `arg_parts` (how `bg dockerfile` keeps
references as Dockerfile ARGs)."""

from __future__ import annotations

import pytest

from buildgraph.core.interpolate import ArgRef, Expander, Issue, arg_parts, param_text

ARGS = {"PYTORCH": "2.5.1", "CUDA": "12.4", "EMPTY": ""}
PARAMS = {"epochs": 2, "lr": 0.001, "fast": False, "model": "lenet", "batch-size": 64}


def expand(text: str, params_allowed: bool = True) -> tuple[str, list[Issue], Expander]:
    expander = Expander(ARGS, PARAMS, params_allowed)
    result, issues = expander.expand(text)
    return result, issues, expander


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("pytorch:${PYTORCH}-cuda${CUDA}", "pytorch:2.5.1-cuda12.4"),
        ("--epochs ${params.epochs} --lr ${params.lr}", "--epochs 2 --lr 0.001"),
        ("${params.fast}", "false"),  # TOML spelling, not Python's False
        ("${params.batch-size}", "64"),  # param names may hold '-'
        ("a${EMPTY}b", "ab"),
        ("$HOME ${CUDA}$", "$HOME 12.4$"),  # a bare `$` is the shell's
    ],
)
def test_references_are_replaced_by_their_values(text: str, result: str) -> None:
    assert expand(text)[:2] == (result, [])


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("echo $${HOME}", "echo ${HOME}"),
        ("$${PYTORCH}", "${PYTORCH}"),  # escaped: not a reference, even to a declared arg
        ("$$${CUDA}", "$${CUDA}"),  # read left to right: `$`, then the escape
        ("$$HOME", "$$HOME"),  # only `$${` is an escape
        ("$${", "${"),
    ],
)
def test_double_dollar_brace_is_a_literal(text: str, result: str) -> None:
    out, issues, expander = expand(text)
    assert (out, issues) == (result, [])
    assert expander.args_used == set()


def test_only_the_names_referenced_are_recorded_as_used() -> None:
    expander = Expander(ARGS, PARAMS)
    expander.expand("${CUDA} ${params.lr}")
    expander.expand("${CUDA} $${PYTORCH} $${params.epochs}")
    assert (expander.args_used, expander.params_used) == ({"CUDA"}, {"lr"})


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("${PYTORC}", "undefined arg '${PYTORC}'", "did you mean ${PYTORCH}?"),
        ("${cuda}", "undefined arg '${cuda}'", "did you mean ${CUDA}?"),
        ("${ZZZZ}", "undefined arg '${ZZZZ}'", "declare ZZZZ under [args]; or write $${ for a literal ${"),
        ("${params.epoch}", "undefined param '${params.epoch}'", "did you mean ${params.epochs}?"),
        ("${params.zzzz}", "undefined param '${params.zzzz}'", "declare zzzz under [params]"),
    ],
)
def test_unknown_names_are_reported_with_the_closest_declared_one(text: str, message: str, hint: str) -> None:
    result, issues, _ = expand(text)
    assert result == "" and len(issues) == 1
    assert issues[0].message == message and issues[0].hint.startswith(hint)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${open", "unterminated reference '${open'"),
        ("${a b}", "invalid reference '${a b}'"),
        ("${}", "invalid reference '${}'"),
        ("${1X}", "invalid reference '${1X}'"),
    ],
)
def test_malformed_references_say_how_to_write_a_literal(text: str, message: str) -> None:
    _, issues, _ = expand(text)
    assert [issue.message for issue in issues] == [message]
    assert "$${" in issues[0].hint


def test_every_bad_reference_in_a_string_is_reported() -> None:
    result, issues, expander = expand("${NOPE} ${CUDA} ${params.nope}")
    messages = [issue.message for issue in issues]
    assert messages == ["undefined arg '${NOPE}'", "undefined param '${params.nope}'"]
    assert expander.args_used == {"CUDA"} and result == " 12.4 "


def test_params_are_refused_where_they_are_not_allowed() -> None:
    """Image stages are configured by args: an image must not depend on a run parameter."""
    _, issues, expander = expand("${params.epochs}", params_allowed=False)
    hint = "an image stage is configured by [args]: use ${NAME}"
    assert issues == [Issue("'${params.epochs}': params are for run stages", hint)]
    assert expander.params_used == set()


@pytest.mark.parametrize(
    ("value", "text"), [(True, "true"), (0.1, "0.1"), (1e-7, "1e-07"), (3, "3"), ("x", "x")]
)
def test_param_values_are_written_as_toml_would(value: bool | int | float | str, text: str) -> None:
    assert param_text(value) == text


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("python:${PY}-slim", ("python:", ArgRef("PY"), "-slim")),
        ("$${HOME}/${A}${B}", ("${HOME}/", ArgRef("A"), ArgRef("B"))),
        ("no references", ("no references",)),
        ("${params.p} ${A}", ("${params.p} ", ArgRef("A"))),  # a param is not a Dockerfile ARG
        ("", ()),
    ],
)
def test_arg_parts_splits_literal_text_from_arg_references(text: str, parts: tuple[object, ...]) -> None:
    assert arg_parts(text) == parts


@pytest.mark.parametrize("text", ["a$${B}${PYTORCH}c", "${CUDA}${CUDA}", "x$${y"])
def test_arg_parts_joined_with_the_values_are_what_expand_gives(text: str) -> None:
    joined = "".join(ARGS[p.name] if isinstance(p, ArgRef) else p for p in arg_parts(text))
    assert joined == Expander(ARGS, {}).expand(text)[0]
