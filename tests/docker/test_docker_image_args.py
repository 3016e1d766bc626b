"""Image stages doing what Dockerfiles do, on a real engine: `COPY . /app/` filtered by .dockerignore,
and ARGs inside a stage in the environment of every RUN — in bg's build and in `bg dockerfile`'s export."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg, finished

BUILDFILE = """
[project]
name = "{project}"

[args]
BASE = "{base}"

[stages.app]
from = "${{BASE}}"
args = {{ DEBIAN_FRONTEND = "noninteractive", SUFFIX = "x", TAG = "${{SUFFIX}}-1" }}
run = ["printf '%s|%s' \\"$DEBIAN_FRONTEND\\" \\"$TAG\\" > /args.txt"]
copy = [{{ src = ["."], dest = "/app/" }}]
"""


@pytest.fixture
def project(tmp_path: Path, client: Any, tiny_base: str) -> Iterator[Path]:
    name = f"imgargs{uuid.uuid4().hex[:8]}"  # no earlier session has built these images
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.format(project=name, base=tiny_base))
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.chmod(tmp_path / "tool.sh", 0o755)
    (tmp_path / "data").mkdir()
    (tmp_path / "data/a.txt").write_text("a\n")
    (tmp_path / "secret.env").write_text("TOKEN=no\n")
    (tmp_path / ".dockerignore").write_text("*.env\n")
    yield tmp_path
    built = client.images.list(filters={"label": f"org.buildgraph.project={name}"})
    for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):  # children first
        client.images.remove(image.id, force=True)


def shell(client: Any, image: str, command: str) -> str:
    """The output of `command` in `image`, read after it exited (never raced by `remove=True`)."""
    container = client.containers.run(image, ["sh", "-c", command], detach=True)
    try:
        assert container.wait(timeout=120)["StatusCode"] == 0
        return bytes(container.logs()).decode()
    finally:
        container.remove(force=True)


def locked_tag(project: Path) -> str:
    return str(json.loads((project / "Buildfile.lock").read_text())["stages"]["app"]["image"])


def test_stage_args_reach_every_run_and_the_project_is_copied_filtered(project: Path, client: Any) -> None:
    assert finished(bg(project, "run", "app", "--json"), rc=0)["app"] == "done"
    tag = locked_tag(project)
    assert shell(client, tag, "cat /args.txt") == "noninteractive|x-1"
    files = shell(client, tag, "cd /app && find . -type f | sort && stat -c %a tool.sh").split()
    # .dockerignore itself is the one file bg's build leaves out (docs/buildfile.md: copy)
    assert files == ["./Buildfile.toml", "./data/a.txt", "./tool.sh", "755"]
    # an ARG is not kept in the image, as in Docker
    env = client.images.get(tag).attrs["Config"]["Env"] or []
    assert not [e for e in env if e.startswith(("DEBIAN_FRONTEND=", "TAG="))]
    # the lock just written is not copied, so the image is up to date
    status = {d["stage"]: d["action"] for d in json.loads(bg(project, "status", "--json").stdout)}
    assert status == {"app": "skip"}


def test_arg_override_rebuilds_with_the_new_value(project: Path, client: Any) -> None:
    assert finished(bg(project, "run", "app", "--arg", "SUFFIX=y", "--json"), rc=0)["app"] == "done"
    assert shell(client, locked_tag(project), "cat /args.txt") == "noninteractive|y-1"


def test_the_export_builds_the_same_image_with_docker(project: Path, client: Any) -> None:
    bg(project, "dockerfile", "app", "-o", "Dockerfile", rc=0)
    tag = f"bgtest/imgargs-{uuid.uuid4().hex[:8]}"
    try:
        for build_args, expected in (({}, "noninteractive|x-1"), ({"SUFFIX": "z"}, "noninteractive|z-1")):
            image, _ = client.images.build(
                path=str(project), tag=tag, buildargs=build_args, rm=True, forcerm=True
            )
            assert shell(client, image.id, "cat /args.txt") == expected
        assert "secret.env" not in shell(client, tag, "ls -a /app")
    finally:
        client.images.remove(tag, force=True)


MULTI = """
[project]
name = "{project}"

[args]
BASE = "{base}"

[stages.builder]
from = "${{BASE}}"
run = ["mkdir -p /opt/out && echo built > /opt/out/artefact.txt && chmod 755 /opt/out/artefact.txt"]

[stages.app]
from = "${{BASE}}"
copy = [
  {{ from = "builder", src = ["/opt/out/artefact.txt"], dest = "/app/" }},
  {{ from = "${{BASE}}", src = "/etc/debian_version", dest = "/app/version" }},
]
"""


@pytest.fixture
def multi(tmp_path: Path, client: Any, tiny_base: str) -> Iterator[Path]:
    name = f"imgfrom{uuid.uuid4().hex[:8]}"
    (tmp_path / "Buildfile.toml").write_text(MULTI.format(project=name, base=tiny_base))
    yield tmp_path
    built = client.images.list(filters={"label": f"org.buildgraph.project={name}"})
    for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):
        client.images.remove(image.id, force=True)


def test_copy_from_another_stage_and_from_an_external_image(multi: Path, client: Any) -> None:
    assert finished(bg(multi, "run", "app", "--json"), rc=0) == {"builder": "done", "app": "done"}
    tag = str(json.loads((multi / "Buildfile.lock").read_text())["stages"]["app"]["image"])
    assert shell(client, tag, "cat /app/artefact.txt; stat -c %a /app/artefact.txt; cat /app/version") == (
        shell(client, tag, "echo built; echo 755; cat /etc/debian_version")
    )
    # the copied stage's image is part of the key: changing it rebuilds the stage that copies from it
    text = (multi / "Buildfile.toml").read_text().replace("echo built", "echo rebuilt")
    (multi / "Buildfile.toml").write_text(text)
    status = {d["stage"]: d["action"] for d in json.loads(bg(multi, "status", "--json").stdout)}
    assert status == {"builder": "build", "app": "build"}


def test_the_export_of_a_copy_from_holds_the_stage_it_copies_from(
    multi: Path, client: Any, tiny_base: str
) -> None:
    lines = bg(multi, "dockerfile", "app", rc=0).stdout.splitlines()
    assert "FROM ${BASE} AS builder" in lines and "COPY --from=builder /opt/out/artefact.txt /app/" in lines
    # Docker expands no ARG in `--from`: the reference is written as bg read it
    assert f"COPY --from={tiny_base} /etc/debian_version /app/version" in lines
    (multi / "Dockerfile").write_text("\n".join(lines) + "\n")
    tag = f"bgtest/imgfrom-{uuid.uuid4().hex[:8]}"
    try:
        image, _ = client.images.build(path=str(multi), tag=tag, rm=True, forcerm=True)
        assert shell(client, image.id, "cat /app/artefact.txt") == "built\n"
    finally:
        client.images.remove(tag, force=True)


CONFIG = """
[project]
name = "{project}"

[args]
BASE = "{base}"

[stages.app]
from = "${{BASE}}"
shell = ["/bin/bash", "-o", "pipefail", "-c"]
run = ["echo $BASH_VERSION > /shell.txt", "if false | true; then echo no pipefail; exit 1; fi"]
expose = ["8080/tcp"]
volume = ["/data"]
stopsignal = "SIGINT"
healthcheck = {{ test = ["true"], interval = "5s", retries = 2 }}
onbuild = ["RUN echo child"]
"""


def test_shell_and_configuration_reach_the_image(tmp_path: Path, client: Any, tiny_base: str) -> None:
    name = f"imgcfg{uuid.uuid4().hex[:8]}"
    (tmp_path / "Buildfile.toml").write_text(CONFIG.format(project=name, base=tiny_base))
    try:
        assert finished(bg(tmp_path, "run", "app", "--json"), rc=0) == {"app": "done"}
        tag = str(json.loads((tmp_path / "Buildfile.lock").read_text())["stages"]["app"]["image"])
        assert shell(client, tag, "cat /shell.txt").strip()  # bash ran the `run` lines
        config = client.images.get(tag).attrs["Config"]
        assert config["Shell"] == ["/bin/bash", "-o", "pipefail", "-c"]
        assert list(config["ExposedPorts"]) == ["8080/tcp"] and list(config["Volumes"]) == ["/data"]
        assert config["StopSignal"] == "SIGINT" and config["OnBuild"] == ["RUN echo child"]
        assert config["Healthcheck"]["Test"] == ["CMD", "true"] and config["Healthcheck"]["Retries"] == 2
    finally:
        for image in client.images.list(filters={"label": f"org.buildgraph.project={name}"}):
            client.images.remove(image.id, force=True)


MOUNTED = """
[project]
name = "{project}"

[args]
BASE = "{base}"

[stages.app]
from = "${{BASE}}"
run = [
  {{ command = "echo run >> /cache/runs && wc -l < /cache/runs > /runs.txt && cp /tok /seen", mounts = [
    {{ type = "cache", target = "/cache", id = "{project}" }},
    {{ type = "secret", id = "TOKEN", target = "/tok", required = true }},
  ] }},
]
"""


def test_cache_and_secret_mounts_stay_out_of_the_image(tmp_path: Path, client: Any, tiny_base: str) -> None:
    name = f"imgmnt{uuid.uuid4().hex[:8]}"
    (tmp_path / "Buildfile.toml").write_text(MOUNTED.format(project=name, base=tiny_base))
    env = {"TOKEN": "s3cr3t-token"}
    try:
        assert finished(bg(tmp_path, "run", "app", "--json", env=env), rc=0) == {"app": "done"}
        lock = (tmp_path / "Buildfile.lock").read_text()
        tag = str(json.loads(lock)["stages"]["app"]["image"])
        assert "s3cr3t" not in lock and shell(client, tag, "cat /seen") == "s3cr3t-token"
        assert shell(client, tag, "cat /runs.txt; ls -A /cache; test -e /tok || echo no-tok") == "1\nno-tok\n"
    finally:
        for image in client.images.list(filters={"label": f"org.buildgraph.project={name}"}):
            client.images.remove(image.id, force=True)
