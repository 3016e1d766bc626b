"""The CLI's last line of defence: what escapes a command becomes one line and a documented status."""

from __future__ import annotations

import errno

import pytest

from buildgraph import cli
from buildgraph.commands import status_cmd
from buildgraph.errors import INTERNAL_ERROR


def raising(exc: BaseException):  # type: ignore[no-untyped-def]
    def run(ns: object) -> int:
        raise exc

    return run


def test_an_unexpected_exception_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(status_cmd, "run", raising(KeyError("boom")))
    assert cli.main(["status"]) == INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "bg: error: internal error: KeyError('boom')"
    assert "Traceback" not in err


def test_debug_prints_the_traceback_and_keeps_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(status_cmd, "run", raising(KeyError("boom")))
    assert cli.main(["status", "--debug"]) == 70
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_full_disk_no_write_path_named_is_still_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path))
    monkeypatch.setattr(status_cmd, "run", raising(full))
    assert cli.main(["status"]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"bg: error: no space left on device writing '{tmp_path}' (")
    assert lines[1].startswith("bg: hint: free space on ")
