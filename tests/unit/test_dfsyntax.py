"""The Dockerfile lexer on the cases where it used to disagree with Docker (issue 10)."""

from __future__ import annotations

import pytest

from buildgraph.errors import BuildfileError
from buildgraph.images import dfsyntax


def instructions(text: str) -> list[dfsyntax.Instruction]:
    return dfsyntax.parse(text).instructions


def refusal(text: str, reader=dfsyntax.read) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(BuildfileError) as caught:
        reader(text, "Dockerfile")
    assert caught.value.exit_status == 2
    return caught.value.problems[0].render()


def test_a_continuation_without_a_space_joins_without_one() -> None:
    run = instructions("FROM a\nRUN echo good\\\nbye\n")[1]
    assert run.text == "echo goodbye"
    assert dfsyntax.shell_lines(run) == "echo good\\\nbye"  # sh removes `\`+newline: the same command


def test_continuation_lines_keep_their_indentation_and_skip_comments() -> None:
    run = instructions("FROM a\nRUN apt-get update \\\n# a note\n\n    && apt-get clean\n")[1]
    assert run.rest == "apt-get update     && apt-get clean"
    assert dfsyntax.shell_lines(run) == "apt-get update \\\n    && apt-get clean"


def test_a_continuation_inside_single_quotes_or_a_comment_is_joined_for_sh() -> None:
    run = instructions("FROM a\nRUN echo 'a \\\nb' # c \\\n&& d\n")[1]
    assert dfsyntax.shell_lines(run) == run.rest == "echo 'a b' # c && d"


def test_an_escaped_backslash_at_the_end_of_a_line_ends_the_instruction() -> None:
    env, run = instructions("FROM a\nENV C trailing\\\\\nRUN true\n")[1:]
    assert env.pairs() == [("C", "trailing\\\\")]
    assert run.keyword == "RUN" and run.rest == "true"


def test_backslashes_inside_double_quotes_escape_only_quote_dollar_and_backslash() -> None:
    assert dfsyntax.unquote('"a\\n\\"b\\""') == 'a\\n"b"'
    assert dfsyntax.unquote('"a\\\\b"') == "a\\b"
    assert dfsyntax.unquote("a\\ b") == "a b"
    assert dfsyntax.unquote("'a\\b'") == "a\\b"
    assert dfsyntax.words("x=\"a\\n b\" 'c d'") == ["x=a\\n b", "c d"]


def test_tab_separated_legacy_env_and_label() -> None:
    env, label = instructions("FROM a\nENV\tNAME\tvalue with spaces\nLABEL\tmaintainer\tA B <a@b>\n")[1:]
    assert env.pairs() == [("NAME", "value with spaces")]
    assert label.pairs() == [("maintainer", "A B <a@b>")]


def test_builder_flags_on_cmd_are_not_part_of_the_command() -> None:
    cmd = instructions("FROM a\nCMD --doit -- [ ]\n")[1]
    assert cmd.flags == ("--doit",) and cmd.json and cmd.args == ()


def test_a_double_dash_ends_the_flags() -> None:
    copy = instructions("FROM a\nCOPY --flag=x -- foo /tmp/\n")[1]
    assert copy.flags == ("--flag=x",) and copy.args == ("foo", "/tmp/")
    assert dfsyntax.split_flags(copy.text) == ([("flag", "x")], "foo /tmp/")


def test_the_escape_directive_only_at_the_top() -> None:
    parsed = dfsyntax.parse("# escape=`\nFROM a\nRUN echo a `\n  b\n")
    assert parsed.escape == "`" and parsed.instructions[1].rest == "echo a   b"
    late = dfsyntax.parse("# a comment\n# escape=`\nFROM a\nENV A b`\n")
    assert late.escape == "\\" and late.directives == {}
    assert "only one escape" in refusal("# escape=`\n# escape=\\\nFROM a\n", dfsyntax.parse)


def test_heredoc_bodies_are_not_instructions() -> None:
    text = "FROM a\nRUN <<EOF\nFROM b\nEOF\nCOPY <<-'X' /x\n\tbody $Y\n\tX\nRUN true\n"
    run, copy, last = instructions(text)[1:]
    assert run.heredocs == (dfsyntax.Heredoc("EOF", "FROM b\n", expand=True, chomp=False),)
    assert copy.heredocs == (dfsyntax.Heredoc("X", "\tbody $Y\n", expand=False, chomp=True),)
    assert (last.keyword, last.line) == ("RUN", 8)
    assert refusal("FROM a\nRUN <<EOF\necho\n", dfsyntax.parse) == "Dockerfile:2: unterminated heredoc"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\n\nENV PATH\n", "Dockerfile:3: ENV must have two arguments"),
        ("", "Dockerfile:1: file with no instructions"),
        ("# only\n# comments\n", "Dockerfile:2: file with no instructions"),
        ("ARG X=1\n", "Dockerfile:1: no FROM: the Dockerfile has no build stage"),
        ("RUN true\nFROM a\n", "Dockerfile:1: RUN before the first FROM: no build stage in current context"),
        ("stages:\n  prepare:\n    cmd: python prepare.py\n", "Dockerfile:1: unknown instruction: STAGES:"),
        ("FROM a\nCMD --doit [ ]\n", "Dockerfile:2: CMD does not take the flag --doit"),
        ('FROM a\nCMD [ "echo", [ "nested" ] ]\n', "Dockerfile:2: when using JSON array syntax, arrays"),
    ],
)
def test_what_docker_refuses_is_refused_naming_the_line(text: str, message: str) -> None:
    assert refusal(text).startswith(message)


def test_unknown_instruction_after_from_is_still_refused_and_known_flags_pass() -> None:
    assert refusal("FROM a\nFETCH x\n") == "Dockerfile:2: unknown instruction: FETCH"
    parsed = dfsyntax.read("FROM --platform=linux/amd64 a\nHEALTHCHECK --interval=5s CMD true\n")
    assert parsed.instructions[1].args == ("CMD", "true")
