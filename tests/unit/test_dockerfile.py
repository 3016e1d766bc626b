"""Rendering image stages as Dockerfiles (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

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


TUTORIAL_ARGS = (("PYTORCH", "1.6.0"), ("CUDA", "10.1"), ("CUDNN", "7"))


def test_standalone_recovers_args_in_from_and_chains_stages() -> None:
    base = ImageStage(
        "base",
        ImageRef("pytorch/pytorch:1.6.0-cuda10.1-cudnn7-devel"),
        env=(("DEBIAN_FRONTEND", "noninteractive"),),
        args_used=("PYTORCH", "CUDA", "CUDNN"),
    )
    app = ImageStage(
        "App_2", StageRef("base"), workdir="/opt/test", copy=(Copy(("test.py",), "/opt/test/test.py"),)
    )
    train = RunStage("train", command="python3 test.py", image="App_2")
    other = ImageStage("unrelated", ImageRef("debian:bookworm"))
    text = render_standalone(spec_of(base, app, train, other, args=TUTORIAL_ARGS), "train")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:4] == [
        'ARG PYTORCH="1.6.0"',
        'ARG CUDA="10.1"',
        'ARG CUDNN="7"',
        "FROM pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-devel AS base",
    ]
    assert "FROM base AS app_2" in lines
    assert "unrelated" not in text and "debian" not in text


def test_standalone_leaves_ambiguous_values_literal() -> None:
    base = ImageStage("base", ImageRef("python:3.3-slim-3.3"), args_used=("V",))
    text = render_standalone(spec_of(base, args=(("V", "3.3"),)), "base")
    assert "FROM python:3.3-slim-3.3 AS base" in text
    assert 'ARG V="3.3"' in text  # still declared inside the stage, for `$V` in commands


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
        'ARG PY="3.12"',
        "",
        "FROM python:${PY}-slim AS base",
        'ARG PY="3.12"',
        "",
        "FROM base AS app",
        "WORKDIR /app",
    ]
    assert main(["-C", str(tmp_path), "dockerfile", "nope"]) == 2
