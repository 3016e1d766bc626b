"""The offline Debian base's record (buildgraph/images/debian.py, records/debian_base.py): what
a build installed reaches the lock, and a later build of the same base is pinned to it. The
real builds, and that two of them give the same tarball, are tests/docker/test_debian_reproducible.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import pytest

from buildgraph.core.graph import Graph
from buildgraph.core.parse import parse
from buildgraph.core.spec import DebianBase
from buildgraph.engine import Engine, Options
from buildgraph.executors.fake import FakeExecutor
from buildgraph.images.debian import (
    HOST_FILES,
    PINS_PATH,
    apt_pins,
    installed_packages,
    mmdebstrap_argv,
    pin_drift,
)
from buildgraph.images.fake import FakeImages
from buildgraph.lockfile import current
from buildgraph.records.debian_base import DebianRecord
from buildgraph.records.errors import RecordError
from buildgraph.records.lock_entry import LockEntry
from buildgraph.report import PlainReporter
from buildgraph.stores.fake import MemoryStore
from buildgraph.workspace import Workspace

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "records" / "lock-entry-image-debian.json"
BUILDFILE = """
[project]
name = "deb"
[stages.base]
from = {{ debian = "bookworm", packages = [{packages}] }}
"""


class Project:
    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root, self.images, self.store = root, FakeImages(project="deb"), MemoryStore(root)

    def run(self, packages: str = '"curl"', **options: Any) -> None:
        spec, ws = parse(BUILDFILE.format(packages=packages)), Workspace(self.root)
        try:
            opts, reporter = Options(in_images=True, **options), PlainReporter(io.StringIO())
            images, fake = (lambda: self.images), FakeExecutor()
            engine = Engine(ws, spec, Graph(spec), fake, reporter, opts, images=images, store=self.store)
            engine.run(["base"])
        finally:
            ws.close()

    def locked(self) -> dict[str, Any]:
        return dict(current(self.root / "Buildfile.lock", self.root / ".bg/journal.jsonl").stages["base"])

    def lose_image(self) -> None:
        """As on another machine: no image for the stage, so it is built again."""
        self.images.remove("base", self.locked()["key"])


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    yield Project(tmp_path / "p")


def test_the_lock_records_what_the_debian_base_holds(project: Project) -> None:
    project.run()
    assert project.locked()["debian"] == {"tar": "0" * 64, "packages": {"base-files": "1", "curl": "1"}}
    assert project.images.debian_pins == [{}]  # the first build asks the mirror


def test_a_later_build_of_the_same_base_is_pinned_to_the_lock(project: Project) -> None:
    project.run()
    project.lose_image()
    project.run()
    assert project.images.debian_pins == [{}, {"base-files": "1", "curl": "1"}]


def test_pull_and_another_package_set_ask_the_mirror_again(project: Project) -> None:
    project.run()
    project.lose_image()
    project.run(pull=True)
    project.run(packages='"curl", "git"')  # the old versions need not fit the new set
    assert project.images.debian_pins == [{}, {}, {}]


# ---------------------------------------------------------------- the recipe, pure
def test_the_tar_leaves_out_the_host_files_and_the_pins() -> None:
    plain = mmdebstrap_argv(DebianBase("bookworm"), PurePath("/t/rootfs.tar"))
    assert not any(a.startswith("--setup-hook") for a in plain)
    removal = next(a for a in plain if a.startswith("--customize-hook=rm -f "))
    assert all(f'"$1"{path}' in removal for path in (*HOST_FILES, PINS_PATH))
    pinned = mmdebstrap_argv(DebianBase("bookworm"), PurePath("/t/rootfs.tar"), PurePath("/t/pins.pref"))
    assert f"--setup-hook=upload /t/pins.pref {PINS_PATH}" in pinned
    assert pinned[-2:] == ["bookworm", "/t/rootfs.tar"]


def test_apt_pins_hold_each_package_at_its_version() -> None:
    assert apt_pins({"zlib1g": "1:1.2.13", "bash": "5.2.15-2+b7"}) == (
        "Package: bash\nPin: version 5.2.15-2+b7\nPin-Priority: 1001\n\n"
        "Package: zlib1g\nPin: version 1:1.2.13\nPin-Priority: 1001\n"
    )


def test_installed_packages_read_from_dpkg_status() -> None:
    status = (
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nDescription: x\n more: y\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
        "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\n"
    )
    assert installed_packages(status) == {"bash": "5.2.15-2+b7", "zlib1g": "1:1.2.13.dfsg-1"}


def test_pin_drift_names_every_package_apt_did_not_hold() -> None:
    pins = {"a": "1", "b": "2", "c": "3"}
    assert pin_drift(pins, pins) == []
    assert pin_drift(pins, {"a": "1", "b": "2.1", "d": "4"}) == [
        "b 2 → 2.1",
        "c 3 → (not installed)",
        "d (not pinned) → 4",
    ]


# ---------------------------------------------------------------- the record in the lock
def test_an_image_entry_with_its_debian_record_round_trips_byte_for_byte() -> None:
    text = GOLDEN.read_text()
    entry = LockEntry.from_json(json.loads(text), "base-debian")
    assert entry.debian == DebianRecord("5" * 64, {"base-files": "12.4+deb12u15", "libc6": "2.36-9+deb12u14"})
    assert json.dumps(entry.to_json(), indent=2, sort_keys=True) + "\n" == text


def test_an_image_entry_without_a_debian_record_writes_none() -> None:
    assert "debian" not in LockEntry.for_image("k", {}, "bg/p/s:k").to_json()


@pytest.mark.parametrize(
    ("debian", "message"),
    [
        ([], "debian: not a JSON object"),
        ({"packages": {}}, "no `tar`"),
        ({"tar": "x", "packages": {"libc6": 2}}, "map names to version strings"),
    ],
)
def test_a_damaged_debian_record_names_its_stage(debian: Any, message: str) -> None:
    data = {"kind": "image", "key": "k", "image": "t", "debian": debian}
    with pytest.raises(RecordError, match=message) as caught:
        LockEntry.from_json(data, "base")
    assert "stage 'base'" in str(caught.value)
