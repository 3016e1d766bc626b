"""Offline Debian base images: `from = { debian = "bookworm", packages = [...] }`.

Built with `mmdebstrap` into a root-filesystem tar, then `docker import`ed, so a
project needs no registry at all: only Debian's package mirror. Two builds from the same
mirror state give byte-identical tarballs, on any machine (docs/debian-base.md): a fixed
SOURCE_DATE_EPOCH, `--variant=minbase`, the package list sorted and de-duplicated, apt's
lists, caches and logs removed, and the two files mmdebstrap copies from the host
(/etc/hostname, /etc/resolv.conf) removed too.

What a build installed (every package's version, the tar's sha256) is returned as a
`DebianRecord`, carried as image labels and kept in Buildfile.lock; a later build given
those versions pins them with an apt preferences file that lives only during the build,
and fails if the mirror no longer has them (a snapshot mirror, e.g.
`mirror = "http://snapshot.debian.org/archive/debian/2025…"`, keeps them for good).

The image is tagged `bg/debian/<suite>:<key[:32]>`; a tag that exists is never rebuilt,
unless it holds other versions than the ones asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePath

from buildgraph.core.spec import DebianBase
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.lines import LineSink
from buildgraph.records.debian_base import DebianRecord

# 2024-01-01T00:00:00Z: any constant works; it only has to never change.
SOURCE_DATE_EPOCH = "1704067200"
KEY_LABEL = "org.buildgraph.key"
TAR_LABEL = "org.buildgraph.debian.tar"  # the DebianRecord, carried by the image
PACKAGES_LABEL = "org.buildgraph.debian.packages"  # "name=version name=version …"
PINS_PATH = "/etc/apt/preferences.d/bg-pins"  # only during the build: removed before packing
# mmdebstrap copies these from the host (debootstrap compatibility), so a tar built on another
# machine would differ; Docker writes its own into every container anyway.
HOST_FILES = ("/etc/hostname", "/etc/resolv.conf")


def debian_key(spec: DebianBase) -> str:
    """A key for the base alone (suite, sorted packages, mirror): stages sharing it share the image.

    Versioned like `core.keys`: bump the "v" on purpose when the build recipe changes.
    """
    material = {
        "v": 2,  # 2: the host's /etc/hostname and /etc/resolv.conf are no longer in the tar
        "kind": "debian",
        "suite": spec.suite,
        "packages": sorted(set(spec.packages)),
        "mirror": spec.mirror,
        "epoch": SOURCE_DATE_EPOCH,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def debian_tag(spec: DebianBase, key: str) -> str:
    return f"bg/debian/{spec.suite}:{key[:32]}"


def mmdebstrap_argv(spec: DebianBase, out_tar: PurePath, pins_file: PurePath | None = None) -> list[str]:
    """The exact mmdebstrap command line for `spec` (pure, so it is tested and documented).

    `pins_file` (written by `apt_pins`) pins every package's version for the build alone: it is
    uploaded before apt runs and removed before packing, so a pinned build of the same versions
    packs the same bytes as the unpinned build that chose them.
    """
    argv = ["mmdebstrap", "--variant=minbase", "--format=tar"]
    packages = sorted(set(spec.packages))
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv.append('--aptopt=Acquire::Languages "none"')
    if pins_file is not None:
        argv.append(f"--setup-hook=upload {pins_file} {PINS_PATH}")
    removed = " ".join(f'"$1"{path}' for path in (*HOST_FILES, PINS_PATH))
    argv += [
        # Leave no apt state in the image: it is large and differs from build to build.
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*',
        f"--customize-hook=rm -f {removed}",
        spec.suite,
        str(out_tar),
    ]
    if spec.mirror:
        argv.append(spec.mirror)
    return argv


def apt_pins(pins: Mapping[str, str]) -> str:
    """An apt preferences file holding each package at its version (priority 1001: even a
    downgrade), so apt resolves to exactly what an earlier build installed."""
    stanza = "Package: {}\nPin: version {}\nPin-Priority: 1001\n"
    return "\n".join(stanza.format(name, version) for name, version in sorted(pins.items()))


def installed_packages(dpkg_status: str) -> dict[str, str]:
    """name → version of every package `/var/lib/dpkg/status` says is installed."""
    packages = {}
    for stanza in dpkg_status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Status") == "install ok installed":
            packages[fields["Package"]] = fields["Version"]
    return packages


def pin_drift(pins: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """Each package whose installed version is not the pinned one, as `name pinned → installed`."""
    names = sorted(set(pins) | set(installed))
    return [
        f"{n} {pins.get(n, '(not pinned)')} → {installed.get(n, '(not installed)')}"
        for n in names
        if pins.get(n) != installed.get(n)
    ]


def debian_base(
    spec: DebianBase,
    key: str,
    on_line: LineSink | None = None,
    client: object = None,
    pins: Mapping[str, str] | None = None,
) -> str:
    """Return the tag of the offline base for `spec`, building it first if it is absent (or
    holds other versions than `pins`, the name → version map of an earlier build)."""
    return debian_build(spec, key, on_line, client, pins)[0]


def debian_build(
    spec: DebianBase,
    key: str,
    on_line: LineSink | None = None,
    client: object = None,
    pins: Mapping[str, str] | None = None,
) -> tuple[str, DebianRecord | None]:
    """`debian_base`, with what the image holds (None for an image built before bg kept it)."""
    from buildgraph.dockerd.sdk import sdk

    client = client or sdk().from_env()
    tag = debian_tag(spec, key)
    labels = _labels_if_keyed(client, tag, key)
    if labels is not None:
        record = _record_of(labels)
        if not pins or (record is not None and dict(record.packages) == dict(pins)):
            return tag, record
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentProblem(
            f"cannot build the Debian base '{spec.suite}': mmdebstrap is not installed",
            hint="apt-get install mmdebstrap",
        )
    with tempfile.TemporaryDirectory(prefix="bg-debian-") as tmp:
        record = build_tar(spec, Path(tmp), on_line, pins)
        _import_tar(client, Path(tmp) / "rootfs.tar", tag, key, record)
    return tag, record


def build_tar(
    spec: DebianBase, where: Path, on_line: LineSink | None = None, pins: Mapping[str, str] | None = None
) -> DebianRecord:
    """Build `where/rootfs.tar` for `spec` (at `pins` when given) and say what it holds."""
    tar, pins_file = where / "rootfs.tar", None
    if pins:
        pins_file = where / "pins.pref"
        pins_file.write_text(apt_pins(pins), encoding="utf-8")
    _run_streaming(mmdebstrap_argv(spec, tar, pins_file), on_line, f"mmdebstrap {spec.suite}")
    record = DebianRecord(tar=_sha256(tar), packages=installed_packages(_dpkg_status(tar)))
    drift = pin_drift(pins, record.packages) if pins else []
    if drift:
        raise StageFailed(
            f"the Debian mirror no longer has the versions Buildfile.lock pins for '{spec.suite}': "
            + ", ".join(drift[:3])
            + (f" (and {len(drift) - 3} more)" if len(drift) > 3 else ""),
            hint="keep them with a snapshot mirror (mirror = \"http://snapshot.debian.org/archive/debian/<time>\"),"
            " or take the mirror's versions with `bg run --pull`",
        )
    return record


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dpkg_status(tar: Path) -> str:
    import tarfile

    with tarfile.open(tar) as archive:
        member = archive.extractfile("./var/lib/dpkg/status")
        assert member is not None, "mmdebstrap always installs dpkg"
        return member.read().decode("utf-8", errors="replace")


def _labels_if_keyed(client: object, tag: str, key: str) -> Mapping[str, str] | None:
    """The labels of the image tagged `tag` when it carries `key`; None when there is none."""
    import docker.errors

    try:
        image = client.images.get(tag)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    return labels if labels.get(KEY_LABEL) == key else None


def _record_of(labels: Mapping[str, str]) -> DebianRecord | None:
    if TAR_LABEL not in labels:
        return None
    pairs = (item.partition("=") for item in labels.get(PACKAGES_LABEL, "").split())
    return DebianRecord(tar=labels[TAR_LABEL], packages={name: version for name, _, version in pairs})


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


def _import_tar(client: object, tar: Path, tag: str, key: str, record: DebianRecord) -> None:
    """`docker import` with the key label, so `exists` can check it like any bg image, and the
    record, so a later run that finds the image knows what it holds without the tar."""
    repository, _, version = tag.rpartition(":")
    packages = " ".join(f"{name}={ver}" for name, ver in sorted(record.packages.items()))
    changes = [
        f'LABEL {KEY_LABEL}="{key}" {TAR_LABEL}="{record.tar}" {PACKAGES_LABEL}="{packages}"',
        'CMD ["/bin/bash"]',
    ]
    client.api.import_image_from_file(  # type: ignore[attr-defined]
        str(tar), repository=repository, tag=version, changes=changes
    )
