"""`bg status` on each invalid fixture project: exit status 2, the exact expected stderr, no traceback."""

from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "errors"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.txt").exists())


def bg_status(case: str) -> subprocess.CompletedProcess[str]:
    project = FIXTURES / case
    argv = project / "argv"
    extra = shlex.split(argv.read_text()) if argv.exists() else []
    return subprocess.run(
        [sys.executable, "-m", "buildgraph", "-C", str(project), "status", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def results() -> dict[str, subprocess.CompletedProcess[str]]:
    # ~50 interpreter start-ups: run them side by side so the file takes seconds, not a minute.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(bg_status, CASES), strict=True))


@pytest.mark.parametrize("case", CASES)
def test_bg_status_reports_the_fixture_problems(
    case: str, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = results[case]
    assert "Traceback" not in done.stderr
    assert done.stderr == (FIXTURES / case / "expected.txt").read_text()
    assert done.returncode == 2
    assert not (FIXTURES / case / ".bg").exists(), "an invalid project must be left untouched"
