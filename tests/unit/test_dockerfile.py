"""Rendering image stages as Dockerfiles (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from buildgraph.core.parse import parse
from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, RunStage, Spec, StageRef
from buildgraph.errors import UsageError
from buildgraph.images.dockerfile import docker_stage_name, render_stage, render_standalone


def full_stage(**overrides: object) -> ImageStage:
    fields: dict[str, object] = dict(
        name="deps",
        base=StageRef("base"),
        env=(("DEBIAN_FRONTEND", "noninteractive"), ("PATH", "/opt/venv/bin:$PATH"), ("Q", 'say "hi" \\o/')),
        run=("pip install --no-cache-dir numpy", "apt-get update && \\\n    apt-get install -y gcc"),
        copy=(Copy(("stages/",), "/opt/bg/stages/"), Copy(("my file.txt",), "/opt/", chown="1000:1000")),
        workdir="/opt/bg",
        user="1000:1000",
        entrypoint=("python3",),
        cmd=("stages/train.py", "--epochs", "2"),
        labels=(("org.opencontainers.image.title", "cifar 10"),),
    )
    fields.update(overrides)
    return ImageStage(**fields)  # type: ignore[arg-type]


def test_render_stage_in_fixed_order() -> None:
    text = render_stage(full_stage(), "bg/p/base:abc", args=["PYTORCH"])
    assert text == (
        "FROM bg/p/base:abc\n"
        "ARG PYTORCH\n"
        'ENV DEBIAN_FRONTEND="noninteractive"\n'
        'ENV PATH="/opt/venv/bin:$PATH"\n'
        'ENV Q="say \\"hi\\" \\\\o/"\n'
        "RUN pip install --no-cache-dir numpy\n"
        "RUN apt-get update && \\\n    apt-get install -y gcc\n"
        "WORKDIR /opt/bg\n"
        "COPY stages/ /opt/bg/stages/\n"
        'COPY --chown=1000:1000 ["my file.txt", "/opt/"]\n'
        "USER 1000:1000\n"
        'ENTRYPOINT ["python3"]\n'
        'CMD ["stages/train.py", "--epochs", "2"]\n'
        'LABEL "org.opencontainers.image.title"="cifar 10"\n'
    )


def test_bare_newlines_in_run_use_exec_form_so_docker_keeps_them() -> None:
    text = render_stage(full_stage(run=("echo a\necho b",), env=(), copy=()), "x")
    run_line = next(line for line in text.splitlines() if line.startswith("RUN"))
    assert json.loads(run_line[4:]) == ["/bin/sh", "-c", "echo a\necho b"]


def test_secrets_mount_on_every_run() -> None:
    text = render_stage(full_stage(run=("a", "b"), secrets=("tok",)), "x")
    assert "RUN --mount=type=secret,id=tok a\nRUN --mount=type=secret,id=tok b\n" in text


def test_literal_dollar_stays_escaped() -> None:
    assert 'ENV A="\\$HOME"' in render_stage(full_stage(env=(("A", "\\$HOME"),)), "x")


def test_env_value_with_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="newline"):
        render_stage(full_stage(env=(("A", "x\ny"),)), "x")


def spec_of(*stages: ImageStage | RunStage, args: tuple[tuple[str, str], ...] = ()) -> Spec:
    return Spec(name="demo", args=args, stages={s.name: s for s in stages})


TUTORIAL = """
[project]
name = "demo"

[args]
PYTORCH = "1.6.0"
CUDA = "10.1"
CUDNN = "7"

[stages.base]
from = "pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-devel"
env = { DEBIAN_FRONTEND = "noninteractive" }

[stages.App_2]
from = "base"
workdir = "/opt/test"
copy = [{ src = "test.py", dest = "/opt/test/test.py" }]

[stages.train]
image = "App_2"
command = "python3 test.py"

[stages.unrelated]
from = "debian:bookworm"
"""


def exported(buildfile: str, target: str, **args: str) -> list[str]:
    """The lines of `bg dockerfile target`, without comments and blank lines."""
    text = render_standalone(parse(buildfile, args=args), target)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_standalone_declares_from_args_before_from_and_chains_stages() -> None:
    assert exported(TUTORIAL, "train") == [
        "ARG PYTORCH=1.6.0",
        "ARG CUDA=10.1",
        "ARG CUDNN=7",
        "FROM pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-devel AS base",
        # an ARG before FROM is in scope for FROM only, and in no RUN's environment, as in Docker
        'ENV DEBIAN_FRONTEND="noninteractive"',
        "FROM base AS app_2",
        "WORKDIR /opt/test",
        "COPY test.py /opt/test/test.py",
    ]


def test_standalone_writes_from_as_written_even_where_values_repeat() -> None:
    buildfile = '[project]\nname = "d"\n[args]\nV = "3.3"\n[stages.base]\nfrom = "python:${V}-slim-3.3"\n'
    assert exported(buildfile, "base") == ["ARG V=3.3", "FROM python:${V}-slim-3.3 AS base"]


PARAMETERS = """
[project]
name = "demo"

[args]
VERSION = "1.2.3"
PREFIX = "/opt"
SPACED = "a b"

[stages.base]
from = "debian:bookworm"
env = { APP_VERSION = "${VERSION}", SHELL_HOME = "$${HOME}" }

[stages.deps]
from = "base"
run = [
    "echo \\"building ${VERSION}\\" > /version.txt",
    "echo 'quoted ${VERSION}' x${VERSION}y",
    "echo ${SPACED}",
    "echo $(echo '${VERSION}') ${VERSION}",
]
workdir = "${PREFIX}/app-${VERSION}"
user = "${VERSION}"
labels = { "org.opencontainers.image.version" = "${VERSION}" }

[stages.code]
from = "deps"
run = "echo ${VERSION} >> /version.txt"
copy = [{ src = ["${VERSION}.txt", "conf-${VERSION}/"], dest = "${PREFIX}/${VERSION}/" }]
cmd = ["echo", "${VERSION}"]
"""


def test_standalone_keeps_arg_references_along_the_chain() -> None:
    assert exported(PARAMETERS, "code") == [
        "FROM debian:bookworm AS base",
        "ARG VERSION=1.2.3",
        'ENV APP_VERSION="${VERSION}"',
        'ENV SHELL_HOME="${HOME}"',  # `$${` is a literal `${`: Docker expands it, as in bg's build
        "FROM base AS deps",
        "ARG PREFIX=/opt",
        'ARG SPACED="a b"',
        "ARG VERSION=1.2.3",
        'RUN echo "building ${VERSION}" > /version.txt',
        # the shell expands nothing inside single quotes: step out of them for the reference
        "RUN echo 'quoted '\"${VERSION}\"'' x${VERSION}y",
        "RUN echo a b",  # not a plain value: as data it would be one word, not two
        "RUN echo $(echo '1.2.3') 1.2.3",  # quoting inside $(…) is not followed: values
        "WORKDIR ${PREFIX}/app-${VERSION}",
        "USER ${VERSION}",
        'LABEL "org.opencontainers.image.version"="${VERSION}"',
        "FROM deps AS code",
        "ARG PREFIX=/opt",
        "ARG VERSION=1.2.3",
        "RUN echo ${VERSION} >> /version.txt",
        # a source bg normalised ("conf-1.2.3/" → "conf-1.2.3") keeps its value
        "COPY ${VERSION}.txt conf-1.2.3 ${PREFIX}/${VERSION}/",
        'CMD ["echo", "1.2.3"]',  # exec form: nothing substitutes
    ]


def test_standalone_arg_defaults_are_the_values_bg_builds_with() -> None:
    lines = exported(PARAMETERS, "code", VERSION="2.0")
    assert "ARG VERSION=2.0" in lines and 'CMD ["echo", "2.0"]' in lines
    assert "RUN echo ${VERSION} >> /version.txt" in lines


def test_an_arg_named_like_an_env_variable_of_the_chain_keeps_its_value() -> None:
    buildfile = (
        '[project]\nname = "d"\n[args]\nV = "1"\n[stages.base]\nfrom = "debian:bookworm"\n'
        'env = { V = "2" }\n[stages.app]\nfrom = "base"\nrun = "echo ${V}"\n'
    )
    # Docker would give the ENV's 2 to `${V}`; bg interpolated the arg's 1
    assert exported(buildfile, "app")[-2:] == ["ARG V=1", "RUN echo 1"]


def test_bg_import_of_the_export_gives_back_the_same_dockerfile() -> None:
    from buildgraph.images.importer import import_dockerfile

    buildfile = PARAMETERS.replace('SPACED = "a b"', 'SPACED = "ab"')  # a plain value stays a reference
    first = render_standalone(parse(buildfile), "code")
    imported, warnings = import_dockerfile(first)
    assert warnings == []
    again = render_standalone(parse(imported), "code")
    assert again.splitlines()[1:] == first.splitlines()[1:]  # all but the header naming the project
    assert "RUN echo ${SPACED}" in again


@pytest.mark.parametrize(
    ("command", "written"),
    [
        ("echo \\${V}", "echo \\1"),  # the backslash escapes the value's first character
        ("echo `echo ${V}`", "echo `echo 1`"),
        ("cat <<EOF\n${V}\nEOF", "cat <<EOF\n1\nEOF"),
        ("true # it's ${V}", "true # it's 1"),
        ("echo ${V} # it's ${V}", "echo ${V} # it's 1"),
        ('echo "it\'s ${V}"', 'echo "it\'s ${V}"'),
        ("echo '\"'${V}", "echo '\"'${V}"),
    ],
)
def test_run_references_are_kept_only_where_the_shell_quoting_is_followed(command: str, written: str) -> None:
    value = command.replace("${V}", "1")
    stage = ImageStage(
        "s", ImageRef("debian:bookworm"), run=(value,), args_used=("V",), templates=(("run[0]", command),)
    )
    text = render_standalone(spec_of(stage, args=(("V", "1"),)), "s")
    run = next(line for line in text.splitlines() if line.startswith("RUN"))[4:]
    assert (json.loads(run)[2] if "\n" in command else run) == written


def test_stages_made_without_a_buildfile_are_written_with_their_values() -> None:
    base = ImageStage("base", ImageRef("python:3.12-slim"), run=("echo 3.12",), args_used=("PY",))
    text = render_standalone(spec_of(base, args=(("PY", "3.12"),)), "base")
    assert text.endswith("FROM python:3.12-slim AS base\nARG PY=3.12\nRUN echo 3.12\n")


def test_standalone_debian_base_is_a_documented_placeholder() -> None:
    base = ImageStage("base", DebianBase("bookworm", ("python3", "curl")))
    text = render_standalone(spec_of(base), "base")
    assert "mmdebstrap --variant=minbase --format=tar --include=curl,python3 " in text
    assert " bookworm rootfs.tar\n" in text
    assert "FROM bg/debian/bookworm:local AS base" in text


def test_standalone_refuses_host_run_stages_and_unknown_names() -> None:
    spec = spec_of(RunStage("fetch", command="true"))
    with pytest.raises(UsageError, match="runs on the host"):
        render_standalone(spec, "fetch")
    with pytest.raises(UsageError, match="unknown stage 'nope'"):
        render_standalone(spec, "nope")


@pytest.mark.parametrize(("name", "docker"), [("train", "train"), ("App_2", "app_2"), ("9lives", "s-9lives")])
def test_docker_stage_names(name: str, docker: str) -> None:
    assert docker_stage_name(name) == docker


def test_bg_dockerfile_prints_the_standalone_dockerfile(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Buildfile.toml").write_text(
        '[project]\nname = "demo"\n\n[args]\nPY = "3.12"\n\n[stages.base]\nfrom = "python:${PY}-slim"\n\n'
        '[stages.app]\nfrom = "base"\nworkdir = "/app"\n'
    )
    assert main(["-C", str(tmp_path), "dockerfile", "app"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [
        "ARG PY=3.12",
        "",
        "FROM python:${PY}-slim AS base",
        "",
        "FROM base AS app",
        "WORKDIR /app",
    ]
    assert main(["-C", str(tmp_path), "dockerfile", "nope"]) == 2
