"""Dockerfile → `bg import` → Buildfile → `bg dockerfile` → Dockerfile: the same image, built for real.

Three builds of one Dockerfile are compared: the original (engine's builder), the
re-rendered standalone Dockerfile, and bg's own chain of image stages. Digests are not
reproducible on this engine, so the comparison is of `docker export` file trees (path,
type, mode, owner, size, link, content hash; not mtimes) and of the image config.
"""

from __future__ import annotations

import hashlib
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.parse import parse
from buildgraph.core.spec import ImageStage, Spec, StageRef
from buildgraph.images.builder import DockerImages
from buildgraph.images.context import build_context
from buildgraph.images.dockerfile import render_standalone
from buildgraph.images.importer import import_dockerfile

DOCKERFILE = """\
# syntax is plain Dockerfile, no BuildKit features
ARG BASE={base}
FROM ${{BASE}} AS base
ENV APP_HOME=/opt/app
ENV PATH=/opt/app/bin:$PATH LANG="C.UTF-8"
RUN mkdir -p $APP_HOME/bin \\
    # comments inside a continuation are dropped
    && echo "built" > /built.txt
WORKDIR /opt/app
COPY tool.sh bin/
COPY conf/ /etc/app/
RUN tool.sh > /tool-output.txt
LABEL org.opencontainers.image.title="round trip"
FROM base
ARG VERSION=3
WORKDIR sub
RUN echo "version ${{VERSION}} $HOME" > version.txt && touch made-in-sub
COPY --chown=1000:1000 conf/app.ini ./
USER 1000:1000
ENTRYPOINT ["tool.sh"]
CMD ["--help"]
"""


@pytest.fixture
def context_dir(tmp_path: Path, tiny_base: str) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/app.ini").write_text("[app]\nname = demo\n")
    (tmp_path / "tool.sh").write_text('#!/bin/sh\necho "tool ran with $*"\n')
    (tmp_path / "tool.sh").chmod(0o755)
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=tiny_base))
    return tmp_path


@pytest.fixture
def cleanup(client: Any) -> Any:
    import docker.errors

    refs: list[str] = []
    yield refs
    for _ in range(len(refs)):  # children before parents, whatever order they were listed in
        for ref in list(refs):
            try:
                client.images.remove(ref, force=True)
                refs.remove(ref)
            except docker.errors.NotFound:
                refs.remove(ref)
            except docker.errors.APIError:
                continue


def docker_build(client: Any, root: Path, dockerfile: str, tag: str) -> str:
    image, _ = client.images.build(path=str(root), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True)
    return str(image.id)


def bg_build(client: Any, root: Path, spec: Spec, target: str, project: str) -> str:
    images = DockerImages(client, project)
    args = dict(spec.args)
    built: dict[str, str] = {}
    for stage in _chain(spec, target):
        base = stage.base
        parent = built[base.stage] if isinstance(base, StageRef) else images.resolve_base(base.reference)  # type: ignore[union-attr]
        key = hashlib.sha256(f"{project}/{stage.name}".encode()).hexdigest()
        used = {name: args[name] for name in stage.args_used}
        built[stage.name] = images.build(stage, key, parent, build_context(root, stage), used)
    return built[target]


def _chain(spec: Spec, target: str) -> list[ImageStage]:
    chain = [spec.stages[target]]
    while isinstance(chain[0].base, StageRef):  # type: ignore[union-attr]
        chain.insert(0, spec.stages[chain[0].base.stage])  # type: ignore[union-attr]
    return chain  # type: ignore[return-value]


def filesystem(client: Any, image: str) -> dict[str, tuple[Any, ...]]:
    """path → (type, mode, uid, gid, size, link, sha256) of the image's exported file tree."""
    container = client.containers.create(image, ["true"])
    try:
        stream = _Chunks(container.export())
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            return {m.name: _entry(tar, m) for m in tar}
    finally:
        container.remove(force=True)


def _entry(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[Any, ...]:
    digest = ""
    if member.isfile():
        digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()  # type: ignore[union-attr]
    return (member.type, member.mode, member.uid, member.gid, member.size, member.linkname, digest)


class _Chunks:
    """A file-like view of a generator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks: Any) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buffer += chunk
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def config(client: Any, image: str) -> dict[str, Any]:
    attrs = client.images.get(image).attrs["Config"]
    labels = {k: v for k, v in (attrs.get("Labels") or {}).items() if not k.startswith("org.buildgraph.")}
    return {k: attrs.get(k) for k in ("Env", "WorkingDir", "User", "Entrypoint", "Cmd")} | {"Labels": labels}


def test_import_then_export_builds_the_same_image(client: Any, context_dir: Path, cleanup: list[str]) -> None:
    toml_text, warnings = import_dockerfile((context_dir / "Dockerfile").read_text())
    assert warnings == []
    spec = parse(toml_text)
    # a RUN after a COPY or a WORKDIR runs on the copied files or in that directory: split in two
    assert list(spec.stages) == ["base-1", "base", "stage1-1", "stage1"]
    (context_dir / "Dockerfile.bg").write_text(render_standalone(spec, "stage1"))
    project = f"rt{uuid.uuid4().hex[:8]}"
    original = docker_build(client, context_dir, "Dockerfile", f"bgtest/{project}:original")
    cleanup.append(original)
    exported = docker_build(client, context_dir, "Dockerfile.bg", f"bgtest/{project}:exported")
    cleanup.append(exported)
    by_bg = bg_build(client, context_dir, spec, "stage1", project)
    cleanup += [i.id for i in client.images.list(filters={"label": f"org.buildgraph.project={project}"})]

    expected = filesystem(client, original)
    assert expected["opt/app/sub/version.txt"][2:4] == (0, 0)
    assert expected["opt/app/sub/app.ini"][2:4] == (1000, 1000)
    for image in (exported, by_bg):
        actual = filesystem(client, image)
        assert sorted(set(actual) ^ set(expected)) == []
        assert {p: v for p, v in actual.items() if v != expected[p]} == {}
        assert config(client, image) == config(client, original)
    output = client.containers.run(by_bg, remove=True)
    assert bytes(output) == b"tool ran with --help\n"
