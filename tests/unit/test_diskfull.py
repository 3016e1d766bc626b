"""`buildgraph.diskfull`: how a full disk is put into words.

The real full disks (tmpfs, as root) are in tests/cli/test_disk_full.py.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from buildgraph.diskfull import NoSpace, human, is_no_space, mount_point, writing
from buildgraph.errors import EnvironmentProblem


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (999, "999 B"), (1_000, "1.0 kB"), (999_960, "1.0 MB"), (3_000_000, "3.0 MB"), (None, "?")],
)
def test_sizes_are_decimal_as_df_h_prints_them(count: int | None, text: str) -> None:
    assert human(count) == text


def test_a_shortage_names_what_was_written_what_it_needed_and_where(tmp_path: Path) -> None:
    what = "cache object for stage 'big' output 'out.bin'"
    with pytest.raises(NoSpace) as caught, writing(what, tmp_path, 3_000_000):
        raise OSError(errno.ENOSPC, "No space left on device")
    problem = caught.value
    assert isinstance(problem, EnvironmentProblem) and problem.exit_status == 3
    mount = mount_point(tmp_path)
    assert problem.message.startswith(
        "no space left on device writing cache object for stage 'big' output 'out.bin' (3.0 MB needed, "
    )
    assert problem.message.endswith(f" free on {mount})")
    assert problem.hint.startswith(f"free space on {mount} (`bg gc` deletes cached artefacts")


def test_a_quota_says_so_without_the_filesystem_free_space(tmp_path: Path) -> None:
    with pytest.raises(NoSpace) as caught, writing("Buildfile.lock", tmp_path / "x", lambda: 1200):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    mount = mount_point(tmp_path)
    assert caught.value.message == f"disk quota exceeded writing Buildfile.lock (1.2 kB needed, on {mount})"


def test_other_errors_pass_unchanged(tmp_path: Path) -> None:
    with pytest.raises(PermissionError), writing("Buildfile.lock", tmp_path):
        raise PermissionError(errno.EACCES, "Permission denied")


def test_the_first_shortage_wins_over_one_met_cleaning_up_after_it(tmp_path: Path) -> None:
    """The journal fold after a run stopped by a full disk fails too: the object is what to report."""
    with pytest.raises(NoSpace) as caught:
        try:
            with writing("cache object for stage 'big' output 'out.bin'", tmp_path, 10):
                raise OSError(errno.ENOSPC, "No space left on device")
        finally:
            with writing("Buildfile.lock", tmp_path, 20):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert "cache object for stage 'big'" in caught.value.message


def test_a_missing_folder_is_measured_on_its_nearest_existing_parent(tmp_path: Path) -> None:
    assert mount_point(tmp_path / "not" / "yet") == mount_point(tmp_path)
    assert os.path.ismount(mount_point(tmp_path))


def test_sqlite_saying_database_or_disk_is_full_is_a_shortage(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db")
    conn.execute("PRAGMA max_page_count = 4")  # a real SQLITE_FULL, without filling a disk
    conn.execute("CREATE TABLE t (x TEXT)")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,) for _ in range(100)])
    conn.close()
    assert is_no_space(caught.value)
    assert not is_no_space(sqlite3.OperationalError("no such table: t"))
