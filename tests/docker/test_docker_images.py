"""Image stages on a real engine: chains, reuse by key, failures, bases, build secrets."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, StageRef
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.images.builder import KEY_LABEL, DockerImages
from buildgraph.images.context import build_context
from buildgraph.images.debian import debian_base, debian_key

CANARY = "image-canary-51c2e0d8aa"


@pytest.fixture
def images(client: Any) -> Any:
    """A DockerImages for a throwaway project; its images are removed afterwards."""
    project = f"t{uuid.uuid4().hex[:10]}"
    yield DockerImages(client, project)
    built = client.images.list(filters={"label": f"org.buildgraph.project={project}"})
    for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):  # children first
        client.images.remove(image.id, force=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src/pkg").mkdir(parents=True)
    (tmp_path / "src/pkg/mod.py").write_text("x = 1\n")
    (tmp_path / "src/tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.chmod(tmp_path / "src/tool.sh", 0o755)
    (tmp_path / "src/secret.env").write_text("nope\n")
    (tmp_path / ".dockerignore").write_text("**/*.env\n")
    return tmp_path


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_in(client: Any, image: str, command: str, user: str = "") -> str:
    out = client.containers.run(image, ["sh", "-c", command], remove=True, user=user or None)
    return bytes(out).decode()


def build(
    images: Any,
    root: Path,
    stage: ImageStage,
    stage_key: str,
    parent: str,
    lines: list[str] | None = None,
    **kw: Any,
) -> str:
    return str(
        images.build(
            stage,
            stage_key,
            parent,
            build_context(root, stage),
            kw.pop("args", {}),
            (lines if lines is not None else []).append,
            **kw,
        )
    )


def test_two_stage_chain_from_the_offline_base(
    client: Any, images: Any, project: Path, tiny_base: str
) -> None:
    base = ImageStage(
        "base",
        ImageRef(tiny_base),
        env=(("APP", "/opt/app"), ("PATH", "/opt/app/bin:$PATH")),
        run=("mkdir -p $APP/bin && echo $GREETING > /greeting",),
        workdir="/opt/app",
        copy=(Copy(("src",), "src/"),),
        args_used=("GREETING",),
    )
    app = ImageStage(
        "app",
        StageRef("base"),
        run=("cp src/tool.sh bin/tool",),
        user="1000:1000",
        cmd=("tool",),
        labels=(("org.opencontainers.image.title", "demo"),),
    )
    lines: list[str] = []
    base_id = build(
        images, project, base, key("base"), images.resolve_base(tiny_base), lines, args={"GREETING": "hello"}
    )
    app_id = build(images, project, app, key("app"), images.tag_for("base", key("base")))
    assert any(line.startswith("Step 1/") for line in lines)
    assert images.exists("base", key("base")) and images.exists("app", key("app"))
    assert client.images.get(images.tag_for("app", key("app"))).id == app_id != base_id
    tag = images.tag_for("app", key("app"))
    assert run_in(client, tag, "cat /greeting; id -u; pwd; tool; ls -A; find src | sort") == (
        "hello\n1000\n/opt/app\ntool\nbin\nsrc\nsrc\nsrc/pkg\nsrc/pkg/mod.py\nsrc/tool.sh\n"
    )  # .dockerignore'd secret.env, bg's Dockerfile and .dockerignore are not in the image
    config = client.images.get(tag).attrs["Config"]
    assert config["Cmd"] == ["tool"] and config["Labels"][KEY_LABEL] == key("app")
    assert config["Labels"]["org.opencontainers.image.title"] == "demo"


def test_tag_names_the_project_stage_and_key(images: Any) -> None:
    assert images.tag_for("Train_Set", "ab" * 32) == f"bg/{images.project}/train_set:{'ab' * 16}"


def test_existing_key_is_not_rebuilt_and_a_moved_tag_is_not_trusted(
    client: Any, images: Any, project: Path, tiny_base: str
) -> None:
    stage = ImageStage("s", ImageRef(tiny_base), run=("echo built > /marker",))
    assert not images.exists("s", key("s"))
    build(images, project, stage, key("s"), tiny_base)
    assert images.exists("s", key("s"))
    assert not images.exists("s", key("other"))
    other_key = key("s2")
    client.images.get(images.tag_for("s", key("s"))).tag(images.tag_for("s", other_key))  # same tag prefix
    assert not images.exists("s", other_key)  # the label holds the full key: a tag alone proves nothing


def test_failed_build_names_the_step(images: Any, project: Path, tiny_base: str) -> None:
    # failing at the first step: a later one would leave the earlier steps as (dangling) cache images
    stage = ImageStage("broken", ImageRef(tiny_base), run=("echo about to fail; exit 7",))
    lines: list[str] = []
    with pytest.raises(StageFailed) as info:
        build(images, project, stage, key("broken"), tiny_base, lines)
    assert "image stage 'broken' failed at step 2/" in info.value.message
    assert "`RUN echo about to fail; exit 7`" in info.value.message and "code: 7" in info.value.message
    assert "about to fail" in lines
    assert not images.exists("broken", key("broken"))


def test_resolve_base_of_a_local_image_without_digest_is_its_id(
    client: Any, images: Any, tiny_base: str
) -> None:
    assert images.resolve_base(tiny_base) == client.images.get(tiny_base).id


def test_unreachable_registry_is_an_environment_problem_with_the_offline_hint(images: Any) -> None:
    with pytest.raises(EnvironmentProblem) as info:
        images.resolve_base("bgtest.invalid/nothing/here:1.0")
    assert "cannot pull base image 'bgtest.invalid/nothing/here:1.0'" in info.value.message
    assert "debian" in info.value.hint and "mmdebstrap" in info.value.hint


def test_debian_base_with_existing_tag_is_not_rebuilt(client: Any, tiny_base: str) -> None:
    lines: list[str] = []
    spec = DebianBase("bookworm")
    assert debian_base(spec, debian_key(spec), lines.append, client=client) == tiny_base
    assert lines == []  # mmdebstrap did not run
    assert (
        run_in(
            client, tiny_base, "cat /etc/debian_version; ls /var/lib/apt/lists | grep -c Packages || true"
        ).split()[1]
        == "0"
    )


def test_build_secret_is_used_but_never_stored(
    client: Any, images: Any, project: Path, tiny_base: str, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text(CANARY)
    stage = ImageStage(
        "withsecret",
        ImageRef(tiny_base),
        secrets=("token",),
        run=("sha256sum < /run/secrets/token > /used-secret-hash",),
    )
    build(images, project, stage, key("withsecret"), tiny_base, secrets={"token": secret})
    tag = images.tag_for("withsecret", key("withsecret"))
    expected = hashlib.sha256(CANARY.encode()).hexdigest()
    assert run_in(client, tag, "cat /used-secret-hash; ls /run/secrets 2>/dev/null | wc -l").split() == [
        expected,
        "-",
        "0",
    ]
    history = json.dumps(client.api.history(tag))
    saved = b"".join(client.images.get(tag).save())
    config = json.dumps(client.images.get(tag).attrs)
    assert CANARY not in history and CANARY not in config
    assert CANARY.encode() not in saved and CANARY.encode() not in _layer_bytes(saved)


def _layer_bytes(saved: bytes) -> bytes:
    """The uncompressed content of every layer in a `docker save` tar."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer.getmembers():
            if member.name.endswith("layer.tar"):
                out.append(outer.extractfile(member).read())  # type: ignore[union-attr]
    return b"".join(out)


def test_missing_build_secret_is_refused(images: Any, project: Path, tiny_base: str) -> None:
    stage = ImageStage("needs", ImageRef(tiny_base), secrets=("token",), run=("true",))
    with pytest.raises(StageFailed, match="needs secret 'token'"):
        build(images, project, stage, key("needs"), tiny_base)
