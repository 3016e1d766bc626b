"""`lint_shell.commands`: a `run` string split into simple commands as sh splits it."""

from __future__ import annotations

from buildgraph.lint_shell import Command, commands


def words(script: str) -> list[tuple[str, ...]]:
    return [c.words for c in commands(script)]


def test_operators_split_commands() -> None:
    expected = [("a", "1"), ("b", "2"), ("c",), ("d",), ("e",), ("f",), ("g",)]
    assert words("a 1 && b 2 || c; d & e | f\ng") == expected


def test_quotes_backslashes_and_continuations() -> None:
    expected = [("echo", "a && b", 'c; $(x && y) "d"', "e f")]
    assert words("echo 'a && b' \"c; $(x && y) \\\"d\\\"\" e\\ f") == expected
    assert words("echo good\\\nbye && pip \\\n  install x") == [("echo", "goodbye"), ("pip", "install", "x")]


def test_comments_redirections_and_expansions_are_not_commands() -> None:
    assert words("make > log 2>&1 # && pip install x") == [("make",)]
    assert words('echo "${A:+${A}:}" `date` > /dev/null') == [("echo", "${A:+${A}:}", "`date`")]


def test_assignments_wrappers_and_compound_commands() -> None:
    found = commands("DEBIAN_FRONTEND=noninteractive sudo -E apt-get install -y x")
    assert found == [Command(("apt-get", "install", "-y", "x"), (("DEBIAN_FRONTEND", "noninteractive"),))]
    script = "if [ -f r ]; then env A=1 pip install -r r; fi; for p in a b; do pip install $p; done;"
    script += " (cd /x && make)"
    assert words(script) == [
        ("[", "-f", "r", "]"),
        ("pip", "install", "-r", "r"),
        ("pip", "install", "$p"),
        ("cd", "/x"),
        ("make",),
    ]


def test_pipes_mark_both_sides() -> None:
    assert [(c.program, c.piped) for c in commands("set -e; curl -s u | /usr/bin/tar x && ls")] == [
        ("set", False),
        ("curl", True),
        ("tar", True),
        ("ls", False),
    ]
