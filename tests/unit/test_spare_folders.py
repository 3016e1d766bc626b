"""Scratch folders recycled instead of remade (executors/workdir.SpareFolders)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildgraph.executors.workdir import SpareFolders, recycle_below, stage_inputs


@pytest.fixture
def pool(tmp_path: Path) -> SpareFolders:
    return SpareFolders(str(tmp_path / "run" / ".spare"))


def test_kept_folders_are_emptied_and_reused_by_inode(pool: SpareFolders, tmp_path: Path) -> None:
    tree = tmp_path / "run" / "a"
    pool.take(str(tree))
    (tree / "work" / "data").mkdir(parents=True)
    (tree / "work" / "data" / "f").write_text("x")
    (tree / "work" / "link").symlink_to("data/f")
    inodes = {os.stat(p).st_ino for p in (tree, tree / "work", tree / "work" / "data")}
    pool.keep(str(tree))
    assert not tree.exists()
    again = [tmp_path / "run" / name for name in ("b", "c", "d")]
    for path in again:
        pool.take(str(path))
    assert {os.stat(p).st_ino for p in again} == inodes, "no new folder was made"
    assert all(list(p.iterdir()) == [] for p in again), "a spare comes empty"


def test_a_folder_with_another_mode_is_not_reused(pool: SpareFolders, tmp_path: Path) -> None:
    tree = tmp_path / "run" / "a"
    pool.take(str(tree))
    (tree / "private").mkdir(mode=0o700)  # say, a command's own folder
    pool.keep(str(tree))
    assert len(os.listdir(tmp_path / "run" / ".spare")) == 1, "only the folder made as we make them"
    pool.take(str(tmp_path / "run" / "b"))
    assert os.stat(tmp_path / "run" / "b").st_mode & 0o777 != 0o700


def test_take_refuses_an_existing_folder_with_content(pool: SpareFolders, tmp_path: Path) -> None:
    pool.take(str(tmp_path / "run" / "a"))
    pool.keep(str(tmp_path / "run" / "a"))  # one spare now
    busy = tmp_path / "run" / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    with pytest.raises(FileExistsError):
        pool.take(str(busy))
    assert (busy / "f").read_text() == "x"
    pool.take(str(tmp_path / "run" / "b"))  # the spare was given back, not lost
    assert len(os.listdir(tmp_path / "run" / ".spare")) == 0


def test_staging_below_a_registered_pool_holds_only_the_inputs(pool: SpareFolders, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "a.csv").write_text("1\n")
    (project / "notes.txt").write_text("undeclared\n")
    top = str(tmp_path / "run")
    recycle_below(top, pool)
    try:
        for stage in ("one", "two"):
            pool.take(f"{top}/{stage}")
            work = Path(top) / stage / "work"
            stage_inputs(work, [("data/a.csv", project / "data" / "a.csv")], ["out/model.pt"])
            found = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
            assert found == ["data", "data/a.csv", "out"]
            pool.keep(f"{top}/{stage}")
    finally:
        recycle_below(top, None)
    assert len(os.listdir(tmp_path / "run" / ".spare")) == 4  # stage, work, data, out: kept for reuse
