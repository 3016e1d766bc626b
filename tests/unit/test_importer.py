"""`bg import`: Dockerfile → Buildfile.toml, with a located warning for what cannot map."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from buildgraph.core.parse import parse
from buildgraph.core.spec import Copy, ImageRef, ImageStage, StageRef
from buildgraph.images.dockerfile import render_standalone
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


def test_run_reaches_the_shell_untouched_with_the_args_in_its_environment() -> None:
    text = "ARG V=1\nFROM a:${V}\nARG V\nARG W=2\nRUN echo $V ${W} ${HOME} $HOME\n"
    doc, _ = imported(text)
    assert doc["args"] == {"V": "1"}
    stage = doc["stages"]["stage0"]
    assert stage["args"] == {"V": "${V}", "W": "2"}  # a re-declared global takes its value
    assert stage["run"] == ["echo $V $${W} $${HOME} $HOME"]
    spec = parse(import_dockerfile(text)[0])
    image = spec.stages["stage0"]
    assert isinstance(image, ImageStage)
    assert image.run == ("echo $V ${W} ${HOME} $HOME",)
    assert image.args == (("V", "1"), ("W", "2"))


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
    assert stage["entrypoint"] == "python3 -m x"  # shell form stays shell form


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


def test_cache_and_secret_mounts_are_kept_on_their_run_line() -> None:
    text = (
        "FROM a:1\nRUN --mount=type=secret,id=token cat /run/secrets/token\n"
        "RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked pip install x\n"
        "RUN --mount=type=cache,id=apt-dev,target=/var/cache/apt apt-get update\n"
    )
    doc, warnings = imported(text)
    cache = {"type": "cache", "target": "/root/.cache/pip", "sharing": "locked"}
    apt = {"id": "apt-dev"}
    assert doc["stages"]["stage0"]["run"] == [
        {"command": "cat /run/secrets/token", "mounts": [{"type": "secret", "id": "token"}]},
        {"command": "pip install x", "mounts": [cache]},  # sharing kept: concurrent builds wait
        # the id kept: two RUNs naming one id share one cache, as in Docker
        {"command": "apt-get update", "mounts": [{"type": "cache", "target": "/var/cache/apt", **apt}]},
    ]
    assert warnings == []


UNMAPPABLE = """\
# syntax=example.com/frontend:1
FROM a:1 AS build
FROM a:1
RUN --mount=type=bind,from=build,target=/b ls /b
ADD https://example.com/x.tgz /tmp/
RUN --network=none true
FROM --platform=linux/arm64 a:1
RUN true
RUN <<EOF
echo hi
EOF
ENV A=1
FROM scratch
"""


def test_a_second_env_of_one_key_sees_the_first() -> None:
    """`ENV P=/a` then `ENV P=$P:/b`: one `env` table cannot hold both, so the second goes to a
    chained stage (the export then has both ENV lines, in order, as the original)."""
    doc, _ = imported("FROM a:1\nENV P=/a\nENV P=$P:/b\n")
    first, second = doc["stages"]["stage0-1"], doc["stages"]["stage0"]
    assert first["env"] == {"P": "/a"} and second["env"] == {"P": "$P:/b"} and second["from"] == "stage0-1"


def test_an_absolute_copy_source_is_relative_to_the_context() -> None:
    doc, _ = imported("FROM a:1\nCOPY /requirements.txt /app/\n")
    assert doc["stages"]["stage0"]["copy"] == [{"src": ["requirements.txt"], "dest": "/app/"}]


def test_a_path_starting_with_a_base_image_variable_is_not_joined() -> None:
    """`WORKDIR ${HOME}` (jupyter): Docker substitutes HOME from the base image's ENV and joins only
    a relative result; joining it to the previous WORKDIR (`/tmp/${HOME}`) would be silently wrong."""
    doc, warnings = imported('FROM a:1\nWORKDIR /tmp\nWORKDIR "${HOME}"\nCOPY x ${HOME}/y\nWORKDIR sub\n')
    stages = doc["stages"]
    assert stages["stage0-2"]["workdir"] == "$${HOME}"
    assert stages["stage0-2"]["copy"] == [{"src": ["x"], "dest": "$${HOME}/y"}]
    assert stages["stage0"]["workdir"] == "$${HOME}/sub"
    assert warnings == []


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (1, "parser directive 'syntax=example.com/frontend:1'"),
        (4, "RUN --mount=type=bind,from=build,target=/b cannot be expressed"),
        (5, "ADD of a URL (https://example.com/x.tgz)"),
        (6, "RUN --network=none is not supported"),
        (7, "FROM --platform=linux/arm64 is not supported"),
        (9, "RUN with a heredoc"),
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
    assert doc["args"] == {"X": ""}  # "" as Docker's unset ARG reads, but for ${X-w}
    assert doc["stages"]["stage0"]["run"] == ["echo a   b"]
    assert warnings == []


# -- `bg import` and `bg init` --------------------------------------------------------------


def test_bg_import_writes_the_buildfile_and_warns_on_stderr(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Dockerfile").write_text(TUTORIAL + "ADD https://example.com/a /a\n")
    assert main(["-C", str(tmp_path), "import", "Dockerfile"]) == 0
    out, err = capsys.readouterr()
    assert tomllib.loads(out)["stages"]["stage0"]["workdir"] == "/opt/test"
    assert err == (
        "bg: warning: Dockerfile:9: ADD of a URL (https://example.com/a) cannot be mapped: "
        "download it in a run stage\n"
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


# -- faithful to Docker (issue 10) -----------------------------------------------------------


def test_debian_frontend_arg_stays_in_the_environment_of_apt() -> None:
    text = "FROM debian:12\nARG DEBIAN_FRONTEND=noninteractive\nRUN apt-get update && apt-get install -y x\n"
    spec = parse(import_dockerfile(text)[0])
    stage = spec.stages["stage0"]
    assert isinstance(stage, ImageStage)
    assert stage.args == (("DEBIAN_FRONTEND", "noninteractive"),)
    exported = render_standalone(spec, "stage0")
    assert exported.index("ARG DEBIAN_FRONTEND=noninteractive") < exported.index("RUN apt-get")


def test_shell_syntax_in_run_is_passed_untouched() -> None:
    run = "[ ${#PYTORCH} -gt 0 ] && pip install tensorflow${TF:+==${TF}} ${CUDA/./-} $${x}"
    doc, warnings = imported(f"FROM a:1\nARG PYTORCH=2.5\nARG TF=\nRUN {run}\n")
    spec = parse(import_dockerfile(f"FROM a:1\nARG PYTORCH=2.5\nARG TF=\nRUN {run}\n")[0])
    assert spec.stages["stage0"].run == (run,)  # type: ignore[union-attr]
    assert warnings == []


def test_docker_side_substitution_with_quotes_and_modifiers() -> None:
    text = (
        'FROM a:1\nARG NB_USER="jovyan"\nARG UID=1000\nENV HOME="/home/${NB_USER}" P=${OPT:-/opt}\n'
        'WORKDIR "${HOME}"\nCOPY --chown="${NB_USER}:${UID}" "a b.txt" ./\nUSER ${UID}\n'
        "ENV MODE=${NB_USER:+set}\n"
    )
    doc, warnings = imported(text)
    stage = doc["stages"]["stage0-1"]
    assert stage["env"] == {"HOME": "/home/${NB_USER}", "P": "$${OPT:-/opt}"}  # OPT: the base image's
    assert stage["workdir"] == "/home/${NB_USER}"
    assert stage["copy"] == [{"src": ["a b.txt"], "dest": "/home/${NB_USER}/", "chown": "${NB_USER}:${UID}"}]
    assert stage["user"] == "${UID}"
    assert doc["stages"]["stage0"]["env"] == {"MODE": "set"}
    assert [w for w in warnings if "'${NB_USER:+set}' decided with the default values" in w]
    assert all(w.startswith("Dockerfile:8:") for w in warnings)


def test_whole_project_and_other_stages_are_copied() -> None:
    text = (
        "FROM python:3.12 AS builder\nWORKDIR /src\nCOPY . .\nRUN make\n"
        "FROM python:3.12-slim\nCOPY --from=builder /src/dist /app/\nCOPY --from=0 /etc/x /etc/x\n"
        "COPY --from=nginx:1 /etc/nginx /etc/nginx\n"
    )
    doc, warnings = imported(text)
    assert doc["stages"]["builder-1"]["copy"] == [{"src": ["."], "dest": "/src/"}]
    assert doc["stages"]["stage1"]["copy"] == [
        {"from": "builder", "src": ["/src/dist"], "dest": "/app/"},
        {"from": "builder", "src": ["/etc/x"], "dest": "/etc/x"},
        {"from": "nginx:1", "src": ["/etc/nginx"], "dest": "/etc/nginx"},
    ]
    assert warnings == []


def test_arg_scopes_globals_and_platform_args() -> None:
    text = (
        "ARG REGISTRY=docker.io\nARG BASE=$REGISTRY/library/python\nARG TARGETARCH\nFROM ${BASE}:3.12\n"
        "RUN echo one\nARG REF=main\nARG TARGETARCH\nRUN git checkout $REF\n"
    )
    doc, warnings = imported(text)
    assert doc["args"] == {"REGISTRY": "docker.io", "BASE": "docker.io/library/python"}
    assert warnings == [
        "Dockerfile:2: ARG BASE's default uses other args; [args] holds its value 'docker.io/library/python'"
    ]
    # the first RUN must not see REF: the ARG after it starts a new piece of the chain
    assert doc["stages"]["stage0-1"] == {"from": "${BASE}:3.12", "run": ["echo one"]}
    assert doc["stages"]["stage0"]["args"] == {"REF": "main", "TARGETARCH": "${TARGETARCH}"}


def test_metadata_keys_map_instead_of_being_dropped() -> None:
    text = (
        'FROM a:1\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN curl x | sh\nEXPOSE 8888 9000/udp\n'
        'VOLUME ["/data"]\nSTOPSIGNAL SIGINT\n'
        'HEALTHCHECK --interval=30s --retries=3 CMD ["curl", "-f", "x"]\n'
        "ONBUILD COPY . /app\nCMD python app.py\n"
    )
    doc, warnings = imported(text)
    stage = doc["stages"]["stage0"]
    assert stage["shell"] == ["/bin/bash", "-o", "pipefail", "-c"]
    assert stage["expose"] == ["8888", "9000/udp"] and stage["volume"] == ["/data"]
    assert stage["stopsignal"] == "SIGINT" and stage["onbuild"] == ["COPY . /app"]
    assert stage["healthcheck"] == {"interval": "30s", "retries": 3, "test": ["curl", "-f", "x"]}
    assert stage["cmd"] == "python app.py"
    assert warnings == []


def test_shell_form_cmd_and_entrypoint_export_as_shell_form() -> None:
    text = 'FROM a:1\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT exec run ${X}\nCMD serve --port 80 | tee log\n'
    doc, warnings = imported(text)
    assert warnings == []
    stage = doc["stages"]["stage0"]
    assert stage["entrypoint"] == "exec run $${X}" and stage["cmd"] == "serve --port 80 | tee log"
    spec = parse(import_dockerfile(text)[0])
    exported = render_standalone(spec, "stage0")
    # written as shell form: Docker wraps it in the image's SHELL, bash here, and expands nothing
    assert "\nENTRYPOINT exec run ${X}\nCMD serve --port 80 | tee log\n" in exported


def test_exec_form_of_one_word_stays_exec_form() -> None:
    spec = parse(import_dockerfile('FROM a:1\nCMD ["/app/main.sh"]\n')[0])
    assert '\nCMD ["/app/main.sh"]\n' in render_standalone(spec, "stage0")


def test_shell_form_changes_the_key() -> None:
    from buildgraph.core.keys import image_material

    def material(cmd: str) -> object:
        spec = parse(f'[project]\nname = "p"\n[stages.s]\nfrom = "a:1"\ncmd = {cmd}\n')
        stage = spec.stages["s"]
        assert isinstance(stage, ImageStage)
        return image_material(stage, spec, {}, ())

    assert material('"serve"') != material('["serve"]')


@pytest.mark.parametrize("cmd", ['"serve \\\\"', '"[\\"a\\"]"'])
def test_a_shell_form_docker_would_read_otherwise_is_refused_at_export(cmd: str) -> None:
    from buildgraph.errors import UsageError

    spec = parse(f'[project]\nname = "p"\n[stages.s]\nfrom = "a:1"\ncmd = {cmd}\n')
    with pytest.raises(UsageError, match="would read as another Dockerfile line"):
        render_standalone(spec, "s")


def test_cmd_empty_list_is_warned_unless_an_entrypoint_clears_it_too() -> None:
    assert imported("FROM a:1\nCMD []\n")[1] == [
        "Dockerfile:2: CMD [] (clearing the base image's CMD) cannot be expressed"
    ]
    assert imported('FROM a:1\nCMD []\nENTRYPOINT ["x"]\n')[1] == []


def test_a_second_user_is_kept_for_what_runs_after_it() -> None:
    doc, _ = imported("FROM a:1\nUSER docker\nUSER docker:root\n")
    assert doc["stages"]["stage0-1"]["user"] == "docker"
    assert doc["stages"]["stage0"] == {"from": "stage0-1", "user": "docker:root"}


def test_healthcheck_start_interval_is_kept() -> None:
    doc, warnings = imported('FROM a:1\nHEALTHCHECK --start-interval=2s --retries=0 CMD ["probe"]\n')
    assert warnings == []
    check = doc["stages"]["stage0"]["healthcheck"]
    assert check == {"start_interval": "2s", "retries": 0, "test": ["probe"]}
    spec = parse(import_dockerfile('FROM a:1\nHEALTHCHECK --start-interval=2s CMD ["probe"]\n')[0])
    assert 'HEALTHCHECK --start-interval=2s CMD ["probe"]' in render_standalone(spec, "stage0")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CONNECT TCP 7000", 'unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ],
)
def test_a_healthcheck_docker_refuses_is_refused_naming_the_line(line: str, message: str) -> None:
    from buildgraph.errors import BuildfileError

    with pytest.raises(BuildfileError) as caught:
        import_dockerfile(f"FROM a:1\n{line}\n")
    assert caught.value.problems[0].render().startswith(f"Dockerfile:2: {message}")
