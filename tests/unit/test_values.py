"""Reading TOML values precisely (`core.values`): how values are shown in messages, `--param`
coercion, the hints for near misses, the path rules, and TOML syntax errors made readable."""

from __future__ import annotations

import tomllib

import pytest

from buildgraph.core import values as v
from buildgraph.core.interpolate import Issue

# Showing values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("two", '"two"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),  # TOML's escapes
        ("line\nbreak\tand\x1b", '"line\\nbreak\\tand\\x1b"'),  # a message stays on one line
        ("x" * 61, '"' + "x" * 60 + '…"'),  # long values are cut
        (True, "true"),
        (3, "3"),
        (0.5, "0.5"),
    ],
)
def test_values_are_shown_as_toml_spells_them_on_one_line(value: object, shown: str) -> None:
    assert v.show(value) == shown and "\n" not in v.show(value)


@pytest.mark.parametrize(
    ("value", "described"),
    [
        ("x", 'a string "x"'),
        (False, "a boolean false"),
        (7, "an integer 7"),
        (2.5, "a float 2.5"),
        ([1], "a list"),
        ({"a": 1}, "a table"),
        (tomllib.loads("d = 1979-05-27")["d"], "a date/time"),
    ],
)
def test_got_names_the_toml_type_and_the_value(value: object, described: str) -> None:
    assert v.describe(value) == described


@pytest.mark.parametrize(
    ("parent", "key", "path"),
    [
        ("stages.train", "outputs", "stages.train.outputs"),
        ("stages.train.outputs", 1, "stages.train.outputs[1]"),
        ("labels", "org.opencontainers.image.title", 'labels."org.opencontainers.image.title"'),
        ("stages", "a b", 'stages."a b"'),
        ("", "project", "project"),
    ],
)
def test_key_paths_quote_only_keys_that_need_it(parent: str, key: str | int, path: str) -> None:
    assert v.at(parent, key) == path


def test_problems_never_span_lines_whatever_names_they_quote() -> None:
    problem = v.problem("Buildfile.toml", "stages.a", "unknown stage 'x\ny'", "did you mean 'x\ty'?")
    assert (problem.message, problem.hint) == ("unknown stage 'x\\ny'", "did you mean 'x\\ty'?")


# --param values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("3", "int", 3),
        ("-3", "int", -3),
        ("+3", "int", 3),
        (" 7 ", "int", 7),
        ("2", "float", 2.0),
        ("1e-3", "float", 0.001),
        ("TRUE", "bool", True),
        ("false", "bool", False),
        ("", "str", ""),
        ("3", "str", "3"),  # a str param keeps the text, even when it looks like a number
    ],
)
def test_command_line_params_are_coerced_to_the_declared_type(text: str, kind: str, value: object) -> None:
    coerced, message = v.coerce(text, kind)
    assert (coerced, message) == (value, "") and type(coerced) is type(value)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("2.5", "int", 'expected an int, got "2.5"'),
        ("1e3", "int", 'expected an int, got "1e3"'),
        ("three", "int", 'expected an int, got "three"'),
        ("x", "float", 'expected a float, got "x"'),
        ("yes", "bool", 'expected true or false, got "yes"'),
        ("1", "bool", 'expected true or false, got "1"'),
    ],
)
def test_command_line_params_of_the_wrong_type_say_what_was_expected(
    text: str, kind: str, message: str
) -> None:
    assert v.coerce(text, kind) == (None, message)


# Hints for near misses ------------------------------------------------------------------------------


def messages(out: v.Problems) -> list[tuple[str, str, str]]:
    return [(p.where, p.message, p.hint) for p in out.items]


@pytest.mark.parametrize(
    ("expected", "value", "hint"),
    [
        ("an integer ≥ 0", "5", "write the number without quotes: 5"),
        ("a number of seconds", " 1.5 ", "write the number without quotes: 1.5"),
        ("true or false", "true", "write true without quotes"),
        ("a table", "5", ""),  # quotes are not the problem there
        ("an integer ≥ 0", "five", ""),
    ],
)
def test_a_quoted_value_of_the_right_kind_gets_a_hint(expected: str, value: str, hint: str) -> None:
    out = v.Problems("B.toml")
    out.type_error("project.keep_runs", expected, value)
    assert messages(out) == [("project.keep_runs", f"expected {expected}, got {v.describe(value)}", hint)]


def test_choices_suggest_the_closest_word() -> None:
    out = v.Problems("B.toml")
    assert out.choice("docker", "project.executor", ("auto", "local", "docker")) == "docker"
    assert out.choice("dockr", "project.executor", ("auto", "local", "docker")) is None
    assert out.choice("k8s", "project.executor", ("auto", "local", "docker")) is None
    expected = 'expected "auto", "local" or "docker"'
    assert messages(out) == [
        ("project.executor", f'{expected}, got a string "dockr"', "did you mean 'docker'?"),
        ("project.executor", f'{expected}, got a string "k8s"', ""),
    ]


def test_unknown_keys_suggest_a_key_then_a_reason_then_the_keys_allowed() -> None:
    out = v.Problems("B.toml")
    other = {"inputs": "'inputs' belongs to run stages"}
    table = {"from": "x", "evn": {}, "inputs": [], "zzz": 1}
    out.unknown_keys(table, "stages.a", ("from", "env", "run"), lambda key, _: other.get(key, ""))
    assert messages(out) == [
        ("stages.a.evn", "unknown key", "did you mean 'env'?"),
        ("stages.a.inputs", "unknown key", "'inputs' belongs to run stages"),
        ("stages.a.zzz", "unknown key", "allowed keys: from, env, run"),
    ]


# Paths --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("data/train.csv", ("data/train.csv", False)),
        ("./a//b/", ("a/b", True)),
        ("a/./b/../c", ("a/c", False)),
        ("my data/x", ("my data/x", False)),  # spaces inside a name are fine
        ("a/.bg", ("a/.bg", False)),  # only the project's own .bg/ is off limits
    ],
)
def test_project_paths_are_normalised(raw: str, path: tuple[str, bool]) -> None:
    assert v.project_path(raw) == path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("x/../../y", '"x/../../y" points outside the project'),
        ("./", '"./" is the project root itself'),
        ("./.bg/x", '"./.bg/x" is inside .bg/, buildgraph\'s own state'),
        ("a\\b", '"a\\\\b" contains a backslash'),
        ("~user/x", "\"~user/x\": '~' is not expanded"),
        ("data/ ", '"data/ " starts or ends with spaces'),
    ],
)
def test_project_paths_that_leave_or_blur_the_project_are_refused(raw: str, message: str) -> None:
    issue = v.project_path(raw)
    assert isinstance(issue, Issue) and issue.message == message


def test_wildcards_only_where_globs_are_allowed() -> None:
    assert isinstance(v.project_path("data/*.csv"), Issue)
    assert v.project_path("./data//*.csv", globs=True) == ("data/*.csv", False)


@pytest.mark.parametrize(
    ("raw", "path"),
    [("/opt/./app/../bg", "/opt/bg"), ("/opt/app/", "/opt/app/"), ("/", "/"), ("/..", "/"), ("//x//", "/x/")],
)
def test_container_paths_are_normalised_and_keep_a_trailing_slash(raw: str, path: str) -> None:
    assert v.container_path(raw) == path


@pytest.mark.parametrize("raw", ["opt/app", "", " /opt", "/a\\b"])
def test_container_paths_must_be_clean_and_absolute(raw: str) -> None:
    assert isinstance(v.container_path(raw), Issue)


# TOML syntax errors ------------------------------------------------------------------------------


def syntax(text: str) -> tuple[str, str]:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problem = v.syntax_problem("B.toml", text, error)
        return problem.render(), problem.hint
    raise AssertionError("valid TOML")


@pytest.mark.parametrize(
    ("text", "rendered", "hint"),
    [
        ('[a]\nx = 1\nx = 2\n[b]\ny = 1\n', "B.toml:3:1: duplicate key 'x'", "a key can be set only once"),
        ("[a]\nx = 1\n\n[a]\n", "B.toml:4:1: table [a] declared twice", "merge the two [a] sections"),
        ("a = { b = 1 }\na.c = 2\n", "B.toml:2:1: 'a' was written as an inline table", "put all its keys"),
        ("a = nope\n", "B.toml:1:5: invalid value", 'values are "quoted strings"'),
        ('a = "x\n', "B.toml:1:7: illegal character '\\n'", "close the string"),
    ],
)
def test_toml_errors_are_located_and_explained(text: str, rendered: str, hint: str) -> None:
    found, found_hint = syntax(text)
    assert found.startswith(rendered) and found_hint.startswith(hint)


def test_a_duplicate_reported_at_the_end_of_the_document_is_found_on_its_line() -> None:
    """tomllib locates some duplicates only "at end of document": the first line that fails is found."""
    text = '[project]\nname = "x"\n[stages.a]\ncommand = "x"\n[stages.b]\ncommand = "y"\ncommand = "z"\n\n\n'
    assert syntax(text)[0] == "B.toml:7:1: duplicate key 'command'"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("${HOME}", "${HOME}"), ("${HOME}/a/../b/", "${HOME}/b/"), ("$CONDA_DIR/bin", "$CONDA_DIR/bin")],
)
def test_a_container_path_may_start_with_a_variable_of_the_image(raw: str, expected: str) -> None:
    assert v.container_path(raw) == expected


@pytest.mark.parametrize("raw", ["${HOME}x", "rel/${HOME}", "$1/x"])
def test_a_variable_starts_a_container_path_only_when_a_slash_follows(raw: str) -> None:
    assert isinstance(v.container_path(raw), Issue)
