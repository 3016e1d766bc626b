"""In a container, an output that is a symlink leading out of it (to the container's /etc, say)
fails its stage and nothing of the stage is cached: the check is where outputs are stored, so it
holds for the docker executor as for the local one (tests/cli/test_symlinks.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg, finished

BUILDFILE = """
[project]
name = "bgoutlinks"
executor = "docker"

[stages.base]
from = {{ debian = "bookworm" }}

[stages.write]
image = "base"
command = "echo fine > ok.txt; mkdir d; echo x > d/x; ln -s x d/same; {link}"
outputs = ["ok.txt", "d/", "last.txt"]
"""


def write_manifests(root: Path) -> list[str]:
    runs = root / ".bg" / "cache" / "runs"
    found = [json.loads(p.read_bytes()).get("stage") for p in runs.glob("*/*.json")] if runs.is_dir() else []
    return [stage for stage in found if stage == "write"]


@pytest.mark.parametrize(
    ("link", "named"),
    [
        ("ln -s /etc/hostname last.txt", "declared output 'last.txt' is a symlink to /etc/hostname"),
        ("touch last.txt; ln -s /etc d/etc", "declared output 'd/' holds 'd/etc', a symlink to /etc"),
    ],
)
def test_an_output_link_leading_out_fails_in_a_container_and_nothing_is_cached(
    tmp_path: Path, client: Any, tiny_base: str, link: str, named: str
) -> None:
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.format(link=link))
    out = bg(tmp_path, "run", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert finished(out)["write"] == "failed"
    assert named in out.stderr
    assert write_manifests(tmp_path) == []
    lock = tmp_path / "Buildfile.lock"
    assert not lock.exists() or "write" not in json.loads(lock.read_text())["stages"]
    assert not os.path.lexists(tmp_path / "ok.txt") and not os.path.lexists(tmp_path / "d")


def test_links_staying_inside_an_output_are_kept_from_a_container(
    tmp_path: Path, client: Any, tiny_base: str
) -> None:
    (tmp_path / "Buildfile.toml").write_text(BUILDFILE.format(link="touch last.txt"))
    out = bg(tmp_path, "run", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert os.readlink(tmp_path / "d" / "same") == "x"
    assert (tmp_path / "d" / "same").read_text() == "x\n"
