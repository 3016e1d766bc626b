"""Image stages doing what Dockerfiles do (issue 10): `COPY . .` and ARGs inside a stage (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildgraph.core.keys import image_material
from buildgraph.core.parse import parse
from buildgraph.core.spec import Copy, ImageRef, ImageStage
from buildgraph.errors import BuildfileError
from buildgraph.images.context import copy_sources_listing
from buildgraph.images.dockerfile import render_stage, render_standalone

HEAD = '[project]\nname = "p"\n[args]\nG = "g1"\n'
APP = """
[stages.app]
from = "debian:bookworm"
args = { DEBIAN_FRONTEND = "noninteractive", SUFFIX = "x", TAG = "${SUFFIX}-${G}" }
run = ["echo $DEBIAN_FRONTEND ${TAG}"]
copy = [{ src = ["."], dest = "/app/" }]
"""


def app(text: str = APP, **args: str) -> ImageStage:
    stage = parse(HEAD + text, args=args).stages["app"]
    assert isinstance(stage, ImageStage)
    return stage


def problems(text: str, **args: str) -> list[str]:
    with pytest.raises(BuildfileError) as caught:
        parse(HEAD + text, args=args)
    return [p.render() for p in caught.value.problems]


@pytest.mark.parametrize("source", [".", "./"])
def test_the_whole_project_is_a_copy_source(source: str) -> None:
    stage = app(APP.replace('src = ["."]', f'src = ["{source}"]'))
    assert stage.copy == (Copy((".",), "/app/"),)
    assert "COPY . /app/" in render_standalone(parse(HEAD + APP), "app").splitlines()


def test_a_project_copy_leaves_out_bg_state_and_keeps_what_dockerignore_keeps(tmp_path: Path) -> None:
    written = ("Buildfile.toml", "Buildfile.lock", ".bg/cache/x", "src/a.py", "secret.env")
    written += ("sub/Buildfile.lock",)
    for rel in written:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("*.env\n")
    listing = [rel for rel, _ in copy_sources_listing(tmp_path, app())]
    # the lock is rewritten by every run: copying it would rebuild the image every time
    assert listing == [".dockerignore", "Buildfile.toml", "src/a.py", "sub/Buildfile.lock"]


def test_stage_args_use_earlier_args_and_the_global_ones() -> None:
    stage = app()
    assert stage.args == (("DEBIAN_FRONTEND", "noninteractive"), ("SUFFIX", "x"), ("TAG", "x-g1"))
    assert stage.run == ("echo $DEBIAN_FRONTEND x-g1",)
    assert stage.args_used == ("G",)  # the [args] it used; its own are keyed whole


def test_arg_on_the_command_line_overrides_a_stage_arg_and_what_uses_it() -> None:
    stage = app(SUFFIX="y", G="g2")
    assert dict(stage.args)["TAG"] == "y-g2" and stage.run == ("echo $DEBIAN_FRONTEND y-g2",)


def test_an_arg_no_stage_or_table_declares_is_still_refused() -> None:
    assert problems(APP, NOPE="1") == ["--arg NOPE=1: no arg named 'NOPE' in [args]"]


def test_from_sees_only_the_global_args() -> None:
    text = APP.replace('from = "debian:bookworm"', 'from = "debian:${SUFFIX}"')
    assert problems(text) == ["Buildfile.toml: stages.app.from: undefined arg '${SUFFIX}'"]
    # a stage arg re-declaring a global one leaves FROM with the global value, as in Docker
    text = '\n[stages.app]\nfrom = "debian:${G}"\nargs = { G = "${G}-mine" }\nrun = ["echo ${G}"]\n'
    stage = app(text)
    assert stage.base == ImageRef("debian:g1") and stage.run == ("echo g1-mine",)
    assert stage.args_used == ("G",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('["A"]', "stages.app.args: expected a table"),
        ('{ 1A = "x" }', "stages.app.args.1A: invalid arg name"),
        ('{ A = "${NOPE}" }', "stages.app.args.A: undefined arg '${NOPE}'"),
    ],
)
def test_bad_stage_args_are_located(args: str, message: str) -> None:
    text = f'\n[stages.app]\nfrom = "debian:bookworm"\nargs = {args}\n'
    assert any(message in p for p in problems(text)), problems(text)


def test_every_stage_arg_is_in_the_environment_of_the_build() -> None:
    """Docker puts every ARG in scope into each RUN's environment: `DEBIAN_FRONTEND` is used by apt,
    never by a string of the stage, and must still reach it (it once silently did not)."""
    stage = app()
    lines = render_stage(stage, "bg/p/base:abc", dict(stage.args)).splitlines()
    assert lines[:4] == ["FROM bg/p/base:abc", "ARG DEBIAN_FRONTEND", "ARG SUFFIX", "ARG TAG"]


def test_export_declares_the_stage_args_with_their_defaults() -> None:
    lines = render_standalone(parse(HEAD + APP), "app").splitlines()
    start = lines.index("FROM debian:bookworm AS app")
    assert lines[start + 1 : start + 5] == [
        "ARG G=g1",
        "ARG DEBIAN_FRONTEND=noninteractive",
        "ARG SUFFIX=x",
        'ARG TAG="${SUFFIX}-${G}"',  # Docker expands it, so --build-arg SUFFIX=… reaches TAG
    ]
    assert "RUN echo $DEBIAN_FRONTEND ${TAG}" in lines


def test_a_redeclared_global_arg_is_written_with_its_value() -> None:
    text = '\n[stages.app]\nfrom = "debian:bookworm"\nargs = { G = "${G}" }\n'
    lines = render_standalone(parse(HEAD + text), "app").splitlines()
    assert lines[-1] == "ARG G=g1"


def test_stage_args_are_keyed_and_stages_without_them_keep_their_material() -> None:
    spec = parse(HEAD + APP)
    material = image_material(app(), spec, {}, ("d",))
    assert material["stage_args"] == [["DEBIAN_FRONTEND", "noninteractive"], ["SUFFIX", "x"], ["TAG", "x-g1"]]
    plain = app('\n[stages.app]\nfrom = "debian:bookworm"\nrun = ["echo ${G}"]\n')
    assert "stage_args" not in image_material(plain, spec, {}, ())


FROM_STAGE = """
[stages.builder]
from = "debian:bookworm"
run = ["make"]
[stages.app]
from = "debian:bookworm"
copy = [
  { from = "builder", src = ["/opt/venv"], dest = "/opt/venv" },
  { from = "python:3.12", src = "/usr/bin/python3", dest = "/usr/bin/" },
]
"""


def test_copy_from_a_stage_or_an_image_reads_their_paths_and_waits_for_the_stage() -> None:
    from buildgraph.core.graph import Graph

    spec = parse(HEAD + FROM_STAGE)
    stage = spec.stages["app"]
    assert isinstance(stage, ImageStage)
    assert stage.copy == (
        Copy(("/opt/venv",), "/opt/venv", from_stage="builder"),
        Copy(("/usr/bin/python3",), "/usr/bin/", from_image="python:3.12"),
    )
    assert Graph(spec).order() == ["builder", "app"]
    material = image_material(stage, spec, {"builder": "k1"}, ("", ""), {"python:3.12": "python@sha256:ab"})
    assert [c["from"] for c in material["copy"]] == [
        {"stage": "builder", "key": "k1"},
        {"image": "python:3.12", "digest": "python@sha256:ab"},
    ]
    lines = render_standalone(spec, "app").splitlines()
    assert lines.index("FROM debian:bookworm AS builder") < lines.index("FROM debian:bookworm AS app")
    assert "COPY --from=builder /opt/venv /opt/venv" in lines
    assert "COPY --from=python:3.12 /usr/bin/python3 /usr/bin/" in lines


@pytest.mark.parametrize(
    ("copy", "message"),
    [
        ('{ from = "builder", src = ["opt"], dest = "/o" }', "copy[0].src[0]: \"opt\" is not absolute"),
        ('{ from = "app", src = ["/o"], dest = "/o" }', "a stage cannot copy from its own image"),
        ('{ from = "run1", src = ["/o"], dest = "/o" }', "copy[0].from: 'run1' is a run stage"),
        ('{ from = "Bulder", src = ["/o"], dest = "/o" }', "copy[0].from: \"Bulder\" is neither a stage"),
    ],
)
def test_bad_copy_from_is_located(copy: str, message: str) -> None:
    text = f"""
[stages.builder]
from = "debian:bookworm"
[stages.run1]
command = "true"
[stages.app]
from = "debian:bookworm"
copy = [{copy}]
"""
    assert any(message in p for p in problems(text)), problems(text)


CONFIG = """
[stages.app]
from = "debian:bookworm"
shell = ["/bin/bash", "-o", "pipefail", "-c"]
run = ["echo a | cat"]
expose = ["8080/tcp", "53/udp"]
volume = ["/data"]
stopsignal = "SIGINT"
healthcheck = { test = "test -f /ok", interval = "5s", retries = 2 }
onbuild = ["RUN echo child"]
"""


def test_configuration_instructions_are_read_keyed_and_written() -> None:
    from buildgraph.core.spec import Healthcheck

    stage = app(CONFIG)
    assert stage.healthcheck == Healthcheck(("test -f /ok",), shell=True, interval="5s", retries=2)
    lines = render_stage(stage, "base").splitlines()
    assert lines == [
        "FROM base",
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        "RUN echo a | cat",
        "EXPOSE 8080/tcp",
        "EXPOSE 53/udp",
        'VOLUME ["/data"]',
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --retries=2 CMD test -f /ok",
        "ONBUILD RUN echo child",
    ]
    material = image_material(stage, parse(HEAD + CONFIG), {}, ())
    assert material["shell"] == ["/bin/bash", "-o", "pipefail", "-c"] and material["stopsignal"] == "SIGINT"
    assert "HEALTHCHECK NONE" in render_stage(app(CONFIG.replace("{ test", '"NONE" #')), "base")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("shell = []", "stages.app.shell: empty"),
        ('expose = ["http"]', "stages.app.expose[0]: expected a port"),
        ('volume = ["data"]', 'stages.app.volume[0]: "data" is not absolute'),
        ('stopsignal = "TERM"', "stages.app.stopsignal: expected a signal"),
        ('healthcheck = { interval = "5s" }', "stages.app.healthcheck.test: missing"),
        ('healthcheck = { test = "x", interval = "5" }', "healthcheck.interval: expected a duration"),
        ('onbuild = ["FROM x"]', 'stages.app.onbuild[0]: "FROM x" cannot follow ONBUILD'),
    ],
)
def test_bad_configuration_is_located(line: str, message: str) -> None:
    text = f'\n[stages.app]\nfrom = "debian:bookworm"\n{line}\n'
    assert any(message in p for p in problems(text)), problems(text)


MOUNTS = """
[stages.app]
from = "debian:bookworm"
secrets = ["A"]
run = [
  "apt-get update",
  { command = "pip install -r r.txt", mounts = [
    { type = "cache", target = "/root/.cache/pip", sharing = "locked" },
    { type = "secret", id = "TOKEN", target = "/tok", required = true },
  ] },
]
"""


def test_run_mounts_are_written_and_neither_keyed_nor_kept() -> None:
    from buildgraph.core.spec import Mount

    stage = app(MOUNTS)
    assert stage.run == ("apt-get update", "pip install -r r.txt")
    assert stage.run_mounts == (
        (),
        (
            Mount("cache", "/root/.cache/pip", sharing="locked"),
            Mount("secret", "/tok", "TOKEN", required=True),
        ),
    )
    assert stage.secrets == ("A", "TOKEN")  # the mounted secret is one bg provides
    lines = render_stage(stage, "base").splitlines()
    assert lines[1:] == [
        "RUN --mount=type=secret,id=A --mount=type=secret,id=TOKEN apt-get update",
        "RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked"
        " --mount=type=secret,id=TOKEN,target=/tok,required=true"
        " --mount=type=secret,id=A pip install -r r.txt",
    ]
    material = image_material(stage, parse(HEAD + MOUNTS), {}, ())
    assert material["run"] == ["apt-get update", "pip install -r r.txt"] and "run_mounts" not in material


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ('{ type = "bind", target = "/x" }', 'mounts[0].type: type = "bind" is not supported'),
        ('{ type = "volume" }', 'mounts[0].type: expected "cache", "secret" or "tmpfs"'),
        ('{ type = "cache" }', "mounts[0].target: missing"),
        ('{ type = "secret" }', "mounts[0].id: missing (the secret's name)"),
        ('{ type = "cache", target = "/c", colour = "red" }', "mounts[0].colour: unknown key"),
    ],
)
def test_bad_mounts_are_located(mount: str, message: str) -> None:
    text = f'\n[stages.app]\nfrom = "debian:bookworm"\nrun = [{{ command = "x", mounts = [{mount}] }}]\n'
    found = problems(text)
    assert any(f"stages.app.run[0].{message}" in p for p in found), found


def test_platform_args_are_automatic_keyed_and_left_to_buildkit_in_the_export() -> None:
    from buildgraph.core.variables import platform_args

    assert platform_args("aarch64")["TARGETPLATFORM"] == "linux/arm64"
    assert platform_args("armv7l")["BUILDVARIANT"] == "v7"
    text = '\n[stages.app]\nfrom = "debian:bookworm"\nargs = { TARGETARCH = "${TARGETARCH}" }\n'
    text += 'run = ["echo ${TARGETPLATFORM} $TARGETARCH"]\n'
    spec = parse(HEAD + text, platform=platform_args("x86_64"))
    stage = spec.stages["app"]
    assert isinstance(stage, ImageStage)
    assert stage.run == ("echo linux/amd64 $TARGETARCH",) and stage.args == (("TARGETARCH", "amd64"),)
    material = image_material(stage, spec, {}, ())
    assert material["platform_args"] == {"TARGETARCH": "amd64", "TARGETPLATFORM": "linux/amd64"}
    lines = render_standalone(spec, "app").splitlines()
    assert lines[-3:] == ["ARG TARGETPLATFORM", "ARG TARGETARCH", "RUN echo ${TARGETPLATFORM} $TARGETARCH"]
    # without platform values (a parse of the text alone) they are undefined, located
    assert problems(text)[0].startswith("Buildfile.toml: stages.app.args.TARGETARCH: undefined arg")


def test_user_and_chown_may_name_a_variable_docker_substitutes() -> None:
    """`USER ${NB_UID}` (jupyter/docker-stacks): the value comes from the image's ENV at build time."""
    spec = parse(
        '[project]\nname = "u"\n[stages.a]\nfrom = "debian:bookworm"\nenv = { NB_UID = "1000" }\n'
        'user = "$${NB_UID}"\ncopy = [{ src = ["f"], dest = "/f", chown = "$${NB_UID}:$${NB_GID}" }]\n'
    )
    stage = spec.stages["a"]
    assert isinstance(stage, ImageStage)
    assert (stage.user, stage.copy[0].chown) == ("${NB_UID}", "${NB_UID}:${NB_GID}")
    rendered = render_standalone(spec, "a")
    assert "USER ${NB_UID}" in rendered and "COPY --chown=${NB_UID}:${NB_GID} f /f" in rendered
    with pytest.raises(BuildfileError, match="user"):
        parse('[project]\nname = "u"\n[stages.a]\nfrom = "debian:bookworm"\nuser = "a b"\n')
