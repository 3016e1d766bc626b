"""Workspace: the run history `bg gc --keep-runs` reads stays bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildgraph import workspace


def test_run_history_is_trimmed_to_the_newest_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace, "HISTORY_TRIM_BYTES", 2000)
    monkeypatch.setattr(workspace, "HISTORY_KEEP_RUNS", 3)
    ws = workspace.Workspace(tmp_path)
    for i in range(40):
        ws.remember_run(f"r{i}", [f"{i:064x}"])
    assert ws.history.stat().st_size <= 2000 + 200
    assert ws.recent_run_keys(2) == {f"{38:064x}", f"{39:064x}"}
