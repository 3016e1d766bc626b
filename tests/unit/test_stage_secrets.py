"""Secrets (buildgraph/stage_secrets.py): missing ones named with their stage, values only in
private files, build secrets' files gone after the build."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from buildgraph import stage_secrets
from buildgraph.errors import EnvironmentProblem


def test_missing_secrets_are_named_with_their_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SET_ONE", "x")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert stage_secrets.missing(["SET_ONE", "UNSET_ONE"]) == ["UNSET_ONE"]
    stage_secrets.require({"train": []})  # nothing missing: nothing raised
    with pytest.raises(EnvironmentProblem) as raised:
        stage_secrets.require({"train": ["UNSET_ONE"], "eval": ["B", "A"]})
    assert raised.value.message == (
        "secret(s) not set in the environment: A (stage eval), B (stage eval), UNSET_ONE (stage train)"
    )
    assert raised.value.hint.endswith("before `bg run`")


def test_run_secrets_are_private_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "t0ken")
    found = stage_secrets.write_files(tmp_path / "secrets", ["TOKEN"])
    assert found == (("TOKEN", tmp_path / "secrets" / "TOKEN"),)
    assert found[0][1].read_text() == "t0ken"
    assert stat.S_IMODE(found[0][1].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


def test_build_secrets_live_only_during_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "t0ken")
    with stage_secrets.temporary_files(("TOKEN",)) as files:
        path = files["TOKEN"]
        assert path.read_text() == "t0ken" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.exists()
    monkeypatch.delenv("TOKEN")
    unset = "build secret\\(s\\) not set in the environment: TOKEN"
    with pytest.raises(EnvironmentProblem, match=unset), stage_secrets.temporary_files(("TOKEN",)):
        pass
    with stage_secrets.temporary_files(()) as none:
        assert none == {}
