"""The offline Debian base is reproducible (docs/debian-base.md): a `bg run` builds it with
mmdebstrap and records every package version and the tarball's sha256 in Buildfile.lock; on
"another machine" (its images gone) the next `bg run` builds it again pinned to those versions,
and the two tarballs have the same sha256, with no file of the host in them.

One package on top of minbase (`hello`) keeps its key apart from the shared `tiny_base`,
which this module removes nothing of. Two real builds, about half a minute each here.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg, finished

from buildgraph.core.spec import DebianBase
from buildgraph.images.debian import HOST_FILES, PACKAGES_LABEL, TAR_LABEL, debian_key, debian_tag

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SPEC = DebianBase("bookworm", ("hello",))
BUILDFILE = """[project]
name = "debrepro"

[stages.base]
from = { debian = "bookworm", packages = ["hello"] }
"""


def _lose_images(client: Any) -> None:
    """What a fresh machine has of this project: no stage image, no Debian base."""
    for name in ("bg/debrepro/base", debian_tag(SPEC, debian_key(SPEC))):
        repository = name.split(":")[0]
        for image in client.images.list(name=name):
            # by tag, not by id: an untagged child left by an earlier build would refuse the removal
            for tag in image.tags:
                if tag.split(":")[0] == repository:
                    client.images.remove(tag)


def _built(project: Path) -> dict[str, Any]:
    assert finished(bg(project, "run", "base", "--json"), rc=0) == {"base": "done"}
    return dict(json.loads((project / "Buildfile.lock").read_text())["stages"]["base"])


@pytest.fixture(scope="module")
def builds(client: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The lock entry after a first build (no pins) and after a second one pinned by the lock."""
    project = tmp_path_factory.mktemp("debrepro")
    (project / "Buildfile.toml").write_text(BUILDFILE)
    _lose_images(client)  # what an earlier session left: build afresh
    first = _built(project)
    _lose_images(client)
    return first, _built(project)


def test_two_builds_give_tarballs_with_the_same_sha256(builds: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = builds
    print(f"first build: {first['debian']['tar']}\nsecond build (pinned): {second['debian']['tar']}")
    assert len(first["debian"]["tar"]) == 64
    assert second["debian"] == first["debian"]
    assert second["key"] == first["key"]


def test_the_lock_pins_every_installed_package(builds: tuple[dict[str, Any], dict[str, Any]]) -> None:
    packages = builds[0]["debian"]["packages"]
    assert {"hello", "libc6", "base-files", "dpkg", "apt"} <= set(packages)
    assert all(version and " " not in version for version in packages.values())


def test_the_image_carries_its_record_and_no_host_file(
    client: Any, builds: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    image = client.images.get(debian_tag(SPEC, debian_key(SPEC)))
    record = builds[1]["debian"]
    assert image.labels[TAR_LABEL] == record["tar"]
    assert image.labels[PACKAGES_LABEL] == " ".join(f"{n}={v}" for n, v in sorted(record["packages"].items()))
    names = _layer_names(image)
    assert "etc/passwd" in names  # the listing is the root filesystem's
    assert not {path.lstrip("/") for path in HOST_FILES} & names


def _layer_names(image: Any) -> set[str]:
    """The paths in the image's one layer (`docker import` makes one), from `docker save`,
    whichever layout (legacy `<id>/layer.tar` or OCI blobs) this engine writes."""
    saved = io.BytesIO(b"".join(image.save(named=False)))
    with tarfile.open(fileobj=saved) as outer:
        (layer,) = [m for m in outer.getmembers() if _is_tar(outer, m)]
        with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
            return {m.name.removeprefix("./") for m in inner.getmembers()}


def _is_tar(outer: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
    if not member.isfile() or member.size < 1024:
        return False
    head = outer.extractfile(member)
    return head is not None and head.read(262)[257:262] == b"ustar"
