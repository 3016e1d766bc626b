"""Symlinks: followed inside the project for inputs, refused when they lead out (inputs: at load,
exit 2; outputs: the step fails, exit 1, nothing cached). The rule is in docs/buildfile.md."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

READER = """
[stages.read]
command = "echo read >> {ran}; cat link.txt d/out d/in > out.txt"
inputs = ["link.txt", "d/"]
outputs = ["out.txt"]
"""
LONG_AGO = 1_000_000_000  # 2001: outside any racy window, so the stat cache trusts its rows


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age(*paths: Path) -> None:
    for path in paths:
        os.utime(path, (LONG_AGO, LONG_AGO), follow_symlinks=False)


@pytest.fixture
def linked(project: Project) -> Project:
    """`link.txt` -> real.txt, and in `d/`: `out` -> ../real.txt (leaves d/), `in` -> x (stays)."""
    project.stages(READER)
    project.write("real.txt", "hello\n")
    project.write("d/x", "x\n")
    (project.root / "link.txt").symlink_to("real.txt")
    (project.root / "d" / "out").symlink_to("../real.txt")
    (project.root / "d" / "in").symlink_to("x")
    age(*(project.root / p for p in ("real.txt", "link.txt", "d/x", "d/out", "d/in")))
    return project


def test_links_inside_the_project_are_followed_and_keyed_by_content(linked: Project) -> None:
    linked.run_json()
    assert linked.executed() == ["read"]
    assert linked.read("out.txt") == "hello\nhello\nx\n"
    inputs = linked.lock()["read"]["material"]["inputs"]
    assert inputs["link.txt"] == sha(b"hello\n")  # the target's bytes, not the string "real.txt"
    explained = linked.bg("explain", "read", check=0).out
    assert sha(b"hello\n")[:12] in explained and sha(b"real.txt")[:12] not in explained

    assert linked.run_json().statuses == {"read": "skipped"}
    assert linked.executed() == []


def test_editing_a_links_target_reruns_the_stage(linked: Project) -> None:
    linked.run_json()
    linked.executed()
    real = linked.root / "real.txt"
    with open(real, "r+") as f:  # in place, same size, old mtime: only the target's ctime tells
        f.write("HELLO\n")
    age(real)
    done = linked.run_json()
    assert linked.executed() == ["read"]
    assert done.started()["read"]["reasons"] == ["input d changed", "input link.txt changed"]
    assert linked.read("out.txt") == "HELLO\nHELLO\nx\n"


@pytest.mark.parametrize(
    ("link", "target", "index", "shown", "why"),
    [
        ("link.txt", "{outside}", 0, '"link.txt" is a symlink to {outside}', "outside the project"),
        ("d/out", "{outside}", 1, '"d/out" (inside "d") is a symlink to {outside}', "outside the project"),
        ("d/out", "gone", 1, '"d/out" (inside "d") is a symlink to gone', "which does not exist"),
        ("d/in", "..", 1, '"d/in" (inside "d") is a symlink to {root}', "which leads back"),
    ],
)
def test_links_leading_out_of_the_project_are_a_located_error(
    linked: Project, tmp_path: Path, link: str, target: str, index: int, shown: str, why: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    values = {"outside": outside, "root": linked.root}
    path = linked.root / link
    path.unlink()
    path.symlink_to(target.format(**values))
    done = linked.bg("run", check=2)
    first, hint = done.err.splitlines()
    assert first.startswith(
        f"bg: error: Buildfile.toml: stages.read.inputs[{index}]: {shown.format(**values)}, {why}"
    )
    assert hint.startswith("bg: hint: ")
    assert linked.executed() == []
    assert not (linked.root / "Buildfile.lock").exists()


OUTPUTS = """
[stages.write]
command = "echo write >> {ran}; echo fine > ok.txt; mkdir d; echo x > d/x; {link}"
outputs = ["ok.txt", "d/", "last.txt"]
"""


@pytest.mark.parametrize(
    ("link", "named"),
    [
        ("ln -s /etc/hostname last.txt", "declared output 'last.txt' is a symlink to /etc/hostname"),
        ("touch last.txt; ln -s /etc d/etc", "declared output 'd/' holds 'd/etc', a symlink to /etc"),
        ("touch last.txt; ln -s ../../x d/up", "declared output 'd/' holds 'd/up', a symlink to ../../x"),
    ],
)
def test_an_output_link_leading_out_fails_the_stage_and_nothing_is_cached(
    project: Project, link: str, named: str
) -> None:
    project.stages(OUTPUTS.replace("{link}", link))
    done = project.run_json(check=1)
    assert project.executed() == ["write"]
    assert done.statuses == {"write": "failed"}
    assert named in done.err
    assert project.manifests() == {}
    objects = project.root / ".bg" / "cache" / "objects"
    assert not objects.exists() or not any(objects.iterdir())
    assert not (project.root / "Buildfile.lock").exists() or "write" not in project.lock()
    assert not os.path.lexists(project.root / "ok.txt") and not os.path.lexists(project.root / "d")


def test_links_staying_inside_a_directory_output_are_kept(project: Project) -> None:
    links = "touch last.txt; mkdir d/s; ln -s x d/latest; ln -s ../x d/s/up"
    project.stages(OUTPUTS.replace("{link}", links))
    project.run_json()
    assert os.readlink(project.root / "d" / "latest") == "x"
    project.bg("clean", check=0)
    assert project.run_json().statuses == {"write": "cached"}
    assert os.readlink(project.root / "d" / "s" / "up") == "../x"
    assert project.read("d/s/up") == "x\n"
    assert project.run_json().statuses == {"write": "skipped"}
