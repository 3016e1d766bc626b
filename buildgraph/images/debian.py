"""Offline Debian base images: `from = { debian = "bookworm", packages = [...] }`.

Built with `mmdebstrap` into a root-filesystem tar, then `docker import`ed, so a
project needs no registry at all: only Debian's package mirror. The build is as
reproducible as mmdebstrap makes it: a fixed SOURCE_DATE_EPOCH, `--variant=minbase`,
the package list sorted and de-duplicated, apt's lists and caches removed from the
tar. (Package *versions* still follow the mirror's state on the day of the build: pin
a snapshot mirror, e.g. `mirror = "http://snapshot.debian.org/archive/debian/2025…"`,
to freeze them.)

The image is tagged `bg/debian/<suite>:<key[:32]>`; a tag that exists is never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePath

from buildgraph.core.spec import DebianBase
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.lines import LineSink

# 2024-01-01T00:00:00Z: any constant works; it only has to never change.
SOURCE_DATE_EPOCH = "1704067200"
KEY_LABEL = "org.buildgraph.key"


def debian_key(spec: DebianBase) -> str:
    """A key for the base alone (suite, sorted packages, mirror): stages sharing it share the image.

    Versioned like `core.keys`: bump the "v" on purpose when the build recipe changes.
    """
    material = {
        "v": 1,
        "kind": "debian",
        "suite": spec.suite,
        "packages": sorted(set(spec.packages)),
        "mirror": spec.mirror,
        "epoch": SOURCE_DATE_EPOCH,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def debian_tag(spec: DebianBase, key: str) -> str:
    return f"bg/debian/{spec.suite}:{key[:32]}"


def mmdebstrap_argv(spec: DebianBase, out_tar: PurePath) -> list[str]:
    """The exact mmdebstrap command line for `spec` (pure, so it is tested and documented)."""
    argv = ["mmdebstrap", "--variant=minbase", "--format=tar"]
    packages = sorted(set(spec.packages))
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += [
        '--aptopt=Acquire::Languages "none"',
        # Leave no apt state in the image: it is large and differs from build to build.
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*',
        spec.suite,
        str(out_tar),
    ]
    if spec.mirror:
        argv.append(spec.mirror)
    return argv


def debian_base(spec: DebianBase, key: str, on_line: LineSink | None = None, client: object = None) -> str:
    """Return the tag of the offline base for `spec`, building it first if it is absent."""
    from buildgraph.dockerd.sdk import sdk

    client = client or sdk().from_env()
    tag = debian_tag(spec, key)
    if _tag_exists(client, tag, key):
        return tag
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentProblem(
            f"cannot build the Debian base '{spec.suite}': mmdebstrap is not installed",
            hint="apt-get install mmdebstrap",
        )
    with tempfile.TemporaryDirectory(prefix="bg-debian-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        _run_streaming(mmdebstrap_argv(spec, tar), on_line, f"mmdebstrap {spec.suite}")
        _import_tar(client, tar, tag, key)
    return tag


def _tag_exists(client: object, tag: str, key: str) -> bool:
    import docker.errors

    try:
        image = client.images.get(tag)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return False
    return bool((image.labels or {}).get(KEY_LABEL) == key)


def _run_streaming(argv: list[str], on_line: LineSink | None, what: str) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, LC_ALL="C.UTF-8")
    last = ""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = line.rstrip("\n") or last
            if on_line:
                on_line(line.rstrip("\n"))
    if proc.returncode != 0:
        raise StageFailed(
            f"{what} failed with exit status {proc.returncode}: {last}",
            hint="check the suite, the package names and that the Debian mirror is reachable",
        )


def _import_tar(client: object, tar: Path, tag: str, key: str) -> None:
    """`docker import` with the key label, so `exists` can check it like any bg image."""
    repository, _, version = tag.rpartition(":")
    changes = [f'LABEL {KEY_LABEL}="{key}"', 'CMD ["/bin/bash"]']
    client.api.import_image_from_file(  # type: ignore[attr-defined]
        str(tar), repository=repository, tag=version, changes=changes
    )
