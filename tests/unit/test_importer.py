"""`bg import`: Dockerfile → Buildfile.toml, with a located warning for what cannot map."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from buildgraph.core.parse import parse
from buildgraph.core.spec import Copy, ImageRef, ImageStage, StageRef
from buildgraph.images.importer import import_dockerfile

TUTORIAL = """\
ARG PYTORCH="1.6.0"
ARG CUDA="10.1"
ARG CUDNN="7"
FROM pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-devel
ENV DEBIAN_FRONTEND noninteractive
RUN pip --no-cache install matplotlib
WORKDIR /opt/test
COPY test.py /opt/test/test.py
"""


def imported(text: str) -> tuple[dict[str, Any], list[str]]:
    toml_text, warnings = import_dockerfile(text)
    return tomllib.loads(toml_text), warnings


def test_tutorial_dockerfile_is_one_stage_without_warnings() -> None:
    doc, warnings = imported(TUTORIAL)
    assert warnings == []
    assert doc["args"] == {"PYTORCH": "1.6.0", "CUDA": "10.1", "CUDNN": "7"}
    assert doc["stages"] == {
        "stage0": {
            "from": "pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-devel",
            "env": {"DEBIAN_FRONTEND": "noninteractive"},
            "run": ["pip --no-cache install matplotlib"],
            "workdir": "/opt/test",
            "copy": [{"src": ["test.py"], "dest": "/opt/test/test.py"}],
        }
    }


def test_tutorial_output_is_a_valid_buildfile() -> None:
    spec = parse(import_dockerfile(TUTORIAL)[0])
    stage = spec.stages["stage0"]
    assert isinstance(stage, ImageStage)
    assert stage.base == ImageRef("pytorch/pytorch:1.6.0-cuda10.1-cudnn7-devel")
    assert stage.copy == (Copy(("test.py",), "/opt/test/test.py"),)


def test_env_both_syntaxes_and_quotes() -> None:
    doc, _ = imported("FROM a:1\nENV A 1 2\nENV B=x C=\"a b\" D='q' E=$PATH:/x F=\\$HOME\n")
    assert doc["stages"]["stage0"]["env"] == {
        "A": "1 2",
        "B": "x",
        "C": "a b",
        "D": "q",
        "E": "$PATH:/x",
        "F": "\\$HOME",
    }


def test_run_continuations_comments_and_exec_form() -> None:
    text = (
        'FROM a:1\nRUN apt-get update \\\n    # why\n\n    && apt-get install -y curl\nRUN ["echo", "a b"]\n'
    )
    doc, warnings = imported(text)
    assert doc["stages"]["stage0"]["run"] == [
        "apt-get update \\\n    && apt-get install -y curl",
        "echo 'a b'",
    ]
    assert warnings == []


def test_arg_references_become_bg_interpolation_and_others_are_escaped() -> None:
    text = "ARG V=1\nFROM a:${V}\nARG V\nARG W=2\nRUN echo $V ${W} ${HOME} $HOME\n"
    doc, _ = imported(text)
    assert doc["args"] == {"V": "1", "W": "2"}
    assert doc["stages"]["stage0"]["run"] == ["echo ${V} ${W} $${HOME} $HOME"]
    spec = parse(import_dockerfile(text)[0])
    assert spec.stages["stage0"].run == ("echo 1 2 ${HOME} $HOME",)  # type: ignore[union-attr]


def test_global_arg_is_not_visible_in_a_stage_without_redeclaring() -> None:
    doc, _ = imported("ARG V=1\nFROM a:1\nRUN echo $V\n")
    assert doc["stages"]["stage0"]["run"] == ["echo $V"]


def test_named_stages_chain_and_out_of_order_instructions_split() -> None:
    text = """\
FROM python:3.12-slim AS Deps
COPY requirements.txt /app/
RUN pip install --no-cache-dir -r /app/requirements.txt
ENV MODE=prod
WORKDIR /app
WORKDIR src
CMD ["python3", "main.py"]
FROM deps
USER 1000
"""
    doc, warnings = imported(text)
    stages = doc["stages"]
    assert list(stages) == ["deps-1", "deps-2", "deps-3", "deps", "stage1"]
    assert stages["deps-1"] == {
        "from": "python:3.12-slim",
        "copy": [{"src": ["requirements.txt"], "dest": "/app/"}],
    }
    assert stages["deps-2"] == {
        "from": "deps-1",
        "run": ["pip install --no-cache-dir -r /app/requirements.txt"],
    }
    assert stages["deps-3"] == {"from": "deps-2", "env": {"MODE": "prod"}, "workdir": "/app"}
    assert stages["deps"] == {"from": "deps-3", "workdir": "/app/src", "cmd": ["python3", "main.py"]}
    assert stages["stage1"] == {"from": "deps", "user": "1000"}
    spec = parse(import_dockerfile(text)[0])
    assert spec.stages["stage1"].base == StageRef("deps")  # type: ignore[union-attr]
    assert warnings == []


def test_metadata_instructions() -> None:
    text = (
        'FROM a:1\nLABEL a=b "c d"="e f"\nLABEL legacy value here\nMAINTAINER me@x\nENTRYPOINT python3 -m x\n'
    )
    stage = imported(text)[0]["stages"]["stage0"]
    assert stage["labels"] == {
        "a": "b",
        "c d": "e f",
        "legacy": "value here",
        "org.opencontainers.image.authors": "me@x",
    }
    assert stage["entrypoint"] == ["/bin/sh", "-c", "python3 -m x"]


def test_copy_flags_and_add() -> None:
    text = 'FROM a:1\nCOPY --chown=1:2 ./x ./y/ /dst/\nADD data.tar.gz /data/\nCOPY ["a b", "/c d/"]\n'
    doc, warnings = imported(text)
    assert doc["stages"]["stage0"]["copy"] == [
        {"src": ["x", "y"], "dest": "/dst/", "chown": "1:2"},
        {"src": ["data.tar.gz"], "dest": "/data/"},
        {"src": ["a b"], "dest": "/c d/"},
    ]
    assert warnings == [
        "Dockerfile:3: ADD data.tar.gz: Docker extracts archives, bg copies the file as it is"
    ]


def test_build_secret_mounts_become_stage_secrets() -> None:
    doc, warnings = imported("FROM a:1\nRUN --mount=type=secret,id=token cat /run/secrets/token\n")
    assert doc["stages"]["stage0"] == {"from": "a:1", "run": ["cat /run/secrets/token"], "secrets": ["token"]}
    assert warnings == []


UNMAPPABLE = """\
# syntax=docker/dockerfile:1
FROM a:1 AS build
FROM a:1
COPY --from=build /out /out
ADD https://example.com/x.tgz /tmp/
EXPOSE 8080
HEALTHCHECK CMD true
RUN --mount=type=cache,target=/root/.cache pip install x
RUN <<EOF
echo hi
EOF
VOLUME /data
FROM scratch
"""


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (1, "parser directive 'syntax'"),
        (4, "COPY --from=build cannot be mapped"),
        (5, "ADD of a URL (https://example.com/x.tgz)"),
        (6, "EXPOSE 8080"),
        (7, "HEALTHCHECK has no bg equivalent"),
        (8, "RUN --mount=type=cache,target=/root/.cache is not supported"),
        (9, "RUN with a heredoc"),
        (12, "VOLUME has no bg equivalent"),
        (13, "FROM scratch"),
    ],
)
def test_every_unmappable_instruction_is_a_located_warning(line: int, fragment: str) -> None:
    toml_text, warnings = import_dockerfile(UNMAPPABLE)
    assert [w for w in warnings if w.startswith(f"Dockerfile:{line}: ") and fragment in w]
    assert f"# warning: Dockerfile:{line}: " in toml_text


def test_heredoc_body_is_not_read_as_instructions() -> None:
    _, warnings = import_dockerfile(UNMAPPABLE)
    assert not [w for w in warnings if w.startswith(("Dockerfile:10:", "Dockerfile:11:"))]


def test_escape_directive_and_arg_without_default() -> None:
    doc, warnings = imported("# escape=`\nARG X\nFROM a:1\nRUN echo a `\n  b\n")
    assert doc["args"] == {"X": ""}
    assert doc["stages"]["stage0"]["run"] == ["echo a   b"]
    assert warnings == ["Dockerfile:2: ARG X has no default; set one in [args] or pass --arg X=…"]


# -- `bg import` and `bg init` --------------------------------------------------------------


def test_bg_import_writes_the_buildfile_and_warns_on_stderr(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Dockerfile").write_text(TUTORIAL + "EXPOSE 80\n")
    assert main(["-C", str(tmp_path), "import", "Dockerfile"]) == 0
    out, err = capsys.readouterr()
    assert tomllib.loads(out)["stages"]["stage0"]["workdir"] == "/opt/test"
    assert (
        err == "bg: warning: Dockerfile:9: EXPOSE 80 was skipped: bg has no ports; "
        "publish them when you run the image\n"
    )
    assert main(["-C", str(tmp_path), "import", "-o", "Buildfile.toml"]) == 0
    assert tomllib.loads((tmp_path / "Buildfile.toml").read_text())["project"]["name"] == tmp_path.name
    assert main(["-C", str(tmp_path), "import", "-o", "Buildfile.toml"]) == 2  # never overwrites
    assert "exists; not overwriting" in capsys.readouterr().err


def test_bg_init_scaffolds_a_valid_buildfile_and_refuses_to_overwrite(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.buildfile import load
    from buildgraph.cli import main

    assert main(["-C", str(tmp_path), "init"]) == 0
    spec = load(tmp_path)
    assert set(spec.stages) == {"env", "hello"}
    before = (tmp_path / "Buildfile.toml").read_text()
    assert main(["-C", str(tmp_path), "init"]) == 2
    assert (tmp_path / "Buildfile.toml").read_text() == before
    assert "already exists" in capsys.readouterr().err


def test_bg_init_imports_an_existing_dockerfile(tmp_path: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Dockerfile").write_text(TUTORIAL)
    assert main(["-C", str(tmp_path), "init"]) == 0
    text = (tmp_path / "Buildfile.toml").read_text()
    assert text.startswith("# Imported from Dockerfile") and "pytorch/pytorch:${PYTORCH}" in text
