"""`hadolint`: findings on the exported Dockerfile mapped back to Buildfile fields (fake hadolint)."""

from __future__ import annotations

from buildgraph.core.spec import Copy, ImageRef, ImageStage, Spec, StageRef
from buildgraph.hadolint import dockerfile_fields, hadolint_warnings
from buildgraph.images.dockerfile import render_standalone

BASE = ImageStage(
    "Base",
    ImageRef("python:3.12-slim"),
    env=(("LANG", "C.UTF-8"),),
    run=("echo one", "cd /src && make"),
)
APP = ImageStage(
    "app",
    StageRef("Base"),
    run=("echo two",),
    copy=(Copy(("a.txt",), "/app/"),),
    user="1000",
)
SPEC = Spec(name="demo", stages={"Base": BASE, "app": APP})


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def test_each_instruction_maps_to_its_stage_and_field() -> None:
    text = render_standalone(SPEC, "app")
    fields = dockerfile_fields(SPEC, text)
    assert fields[line_of(text, "FROM python")] == ("Base", "from")
    assert fields[line_of(text, "ENV LANG")] == ("Base", "env.LANG")
    assert fields[line_of(text, "RUN cd")] == ("Base", "run[1]")
    assert fields[line_of(text, "RUN echo two")] == ("app", "run[0]")
    assert fields[line_of(text, "COPY")] == ("app", "copy[0]")
    assert fields[line_of(text, "USER")] == ("app", "user")


def test_findings_become_warnings_once_per_field() -> None:
    def fake(text: str) -> list[dict[str, object]]:
        line = line_of(text, "RUN cd")
        return [{"code": "DL3003", "line": line, "message": "Use WORKDIR", "level": "warning"}]

    other = ImageStage("other", StageRef("Base"), user="1000")  # a second export holding Base
    spec = Spec(name="demo", stages={**SPEC.stages, "other": other})
    warnings = hadolint_warnings(spec, fake)
    assert [(w.stage, w.field, w.rule) for w in warnings] == [("Base", "run[1]", "hadolint:DL3003")]
    assert warnings[0].message == "DL3003 Use WORKDIR (hadolint)"
    assert warnings[0].fix.endswith("/wiki/DL3003")
