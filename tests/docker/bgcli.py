"""`bg` as a real subprocess for the docker tests: one way to run it and read its --json events.

Imported by the tests of this folder (pytest puts the folder on sys.path for its conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def bg(
    root: Path, *args: str, env: dict[str, str] | None = None, rc: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`bg -C root ARGS…` with this environment (less BG_* test knobs) plus `env`; never a
    traceback; `rc` asserts the exit status."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BG_")}
    out = subprocess.run(
        [sys.executable, "-m", "buildgraph", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env={**full_env, **(env or {})},
        timeout=600,
    )
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
    assert rc is None or out.returncode == rc, out.stdout + out.stderr
    return out


def finished(out: subprocess.CompletedProcess[str], rc: int | None = None) -> dict[str, str]:
    """Stage → finish status of a `--json` run (that exited `rc`, when given)."""
    assert rc is None or out.returncode == rc, out.stdout + out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {e["stage"]: e["status"] for e in events if e.get("event") == "finish"}
