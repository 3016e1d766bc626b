"""BuildKit's own parser test files (tests/fixtures/external/buildkit/, not committed: see
tests/fixtures/external/README.md): every positive case must read to the instruction list of its
`result` file (BuildKit's AST dump), every negative case must be refused with a located error.
Skipped where the files are not there (CI); tests/unit/test_dfsyntax.py covers the same cases."""

from __future__ import annotations

import platform
from pathlib import Path

import dockerfile_equivalence as eq
import pytest
from test_import_corpus import ALLOWED, _differences, _warned_lines, stub_project

from buildgraph.buildfile import load
from buildgraph.core.parse import parse
from buildgraph.core.variables import platform_args
from buildgraph.errors import BuildfileError
from buildgraph.images import dfsyntax
from buildgraph.images.dfsyntax import Instruction
from buildgraph.images.dockerfile import render_standalone
from buildgraph.images.importer import import_dockerfile

FIXTURES = Path(__file__).parent.parent / "fixtures" / "external" / "buildkit"
POSITIVE = sorted(p.name for p in (FIXTURES / "testfiles").iterdir()) if FIXTURES.is_dir() else []
NEGATIVE = sorted(p.name for p in (FIXTURES / "testfiles-negative").iterdir()) if FIXTURES.is_dir() else []
pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason="BuildKit's parser test files are not committed: tests/fixtures/external/README.md",
)


def go_quote(text: str) -> str:
    """Go's strconv.Quote, which BuildKit's dump uses for every value."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == " " or (ch.isprintable() and not ch.isspace()):
            out.append(ch)
        elif ch in named:
            out.append(named[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def dump(ins: Instruction) -> str:
    """One instruction as BuildKit's `Node.Dump` writes it."""
    text = ins.original.strip().split(None, 1)[0].lower()
    if ins.flags:
        text += " [" + " ".join(go_quote(f) for f in ins.flags) + "]"
    if ins.sub is not None:
        text += " (" + dump(ins.sub) + ")"
    for value in ins.args:
        text += " " + go_quote(value)
    return text.strip()


def dump_file(text: str) -> str:
    return "".join(f"({dump(ins)})\n" for ins in dfsyntax.parse(text).instructions)


@pytest.mark.parametrize("case", POSITIVE)
def test_positive_case_reads_as_buildkit_reads_it(case: str) -> None:
    folder = FIXTURES / "testfiles" / case
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert dump_file(dockerfile) == (folder / "result").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_case_is_refused_with_a_line(case: str) -> None:
    dockerfile = (FIXTURES / "testfiles-negative" / case / "Dockerfile").read_text(encoding="utf-8")
    with pytest.raises(BuildfileError) as caught:
        dfsyntax.parse(dockerfile, file="Dockerfile")
    rendered = caught.value.problems[0].render()
    assert rendered.startswith("Dockerfile:") and rendered.split(":")[1].isdigit(), rendered


# Positive cases for BuildKit's *parser* that its instruction parser then refuses, as `bg import`
# does (naming the line): they cannot be built by Docker either.
REFUSED = {
    "flags": "CMD does not take the flag --doit",
    "health": "HEALTHCHECK requires at least one argument",
    **{
        case: "CMD before the first FROM"
        for case in ("json", *(f"jeztah-invalid-json-{k}" for k in ("json-inside-string",
            "json-inside-string-double", "single-quotes", "unterminated-bracket", "unterminated-string")))
    },
}
# Warned differences on top of the corpus's ALLOWED ones, with why.
WARNED = {
    # `ADD \conf\\" /.znc`: one word with an unclosed quote; Docker refuses to build that line
    "needs a source and a destination": "a COPY/ADD whose words Docker cannot read",
}


@pytest.mark.parametrize("case", POSITIVE)
def test_positive_case_round_trips_through_import_and_export(case: str, tmp_path: Path) -> None:
    """`bg import` → the Buildfile loads → `bg dockerfile` of each stage → the same instructions,
    after Docker's normalisation; a difference only where the importer warned on that line."""
    text = (FIXTURES / "testfiles" / case / "Dockerfile").read_text(encoding="utf-8")
    if case in REFUSED:
        with pytest.raises(BuildfileError) as caught:
            import_dockerfile(text, file="Dockerfile")
        rendered = caught.value.problems[0].render()
        assert rendered.startswith("Dockerfile:") and REFUSED[case] in rendered, rendered
        return
    buildfile, warnings = import_dockerfile(text, file="Dockerfile")
    spec = parse(buildfile, platform=platform_args(platform.machine()))  # as `buildfile.load` does
    stub_project(tmp_path, spec, buildfile)
    spec = load(tmp_path)
    warned = _warned_lines(warnings)
    for stage in eq.read(text):
        exported = eq.read(render_standalone(spec, stage.name))
        for line, what in _differences(stage, exported):
            reasons = warned.get(line, [])
            assert any(key in r for key in (*ALLOWED, *WARNED) for r in reasons), f"{line}: {what} {reasons}"


def test_the_fixtures_are_all_there() -> None:
    assert len(POSITIVE) == 33 and len(NEGATIVE) == 4
    assert (FIXTURES / "LICENSE").is_file() and (FIXTURES / "README.md").is_file()
