"""The short cuts between start-up and the first command, each checked to give the answer the
long way gives: the Buildfile cache of a first build, folders listed once instead of a `lstat`
per path, the digest of an unchanged file, keeping the collector off loaded data."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from buildgraph import buildfile, gcpause
from buildgraph.buildfile import filesystem_problems, load_graph
from buildgraph.core.graph import Graph
from buildgraph.stores.digests import DigestCache

CROWD = 40  # inputs in one folder: more than `_Tree.list_crowded` lists at once


def crowded_buildfile(names: list[str]) -> str:
    lines = ['[project]\nname = "crowd"\n']
    for i, name in enumerate(names):
        lines.append(
            f'[stages.s{i}]\ncommand = "cp {name} o/{i}"\ninputs = ["{name}"]\noutputs = ["o/{i}"]\n'
        )
    return "\n".join(lines)


@pytest.fixture
def crowd(tmp_path: Path) -> Path:
    (tmp_path / "d").mkdir()
    for i in range(CROWD):
        (tmp_path / "d" / f"f{i}").write_text(str(i))
    return tmp_path


def problems_of(root: Path, names: list[str], crowded: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from buildgraph.core.parse import analyse

    spec = analyse(crowded_buildfile(names)).spec
    monkeypatch.setattr(buildfile, "_CROWDED", crowded)
    return [str(p) for p in filesystem_problems(root, spec, "Buildfile.toml", Graph(spec))]


def test_a_listed_folder_finds_the_problems_each_lstat_finds(
    crowd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.symlink("/etc/hostname", crowd / "d" / "out")
    os.symlink("nowhere", crowd / "d" / "dangling")
    (crowd / "d" / "sub").mkdir()
    os.symlink("/etc", crowd / "d" / "sub" / "away")
    names = [f"d/f{i}" for i in range(CROWD)] + ["d/missing", "d/out", "d/dangling", "d/sub"]
    listed = problems_of(crowd, names, 2, monkeypatch)
    alone = problems_of(crowd, names, 10**6, monkeypatch)
    assert listed == alone and len(listed) == 4
    assert any("d/missing" in p and "does not exist" in p for p in listed)
    assert any("d/dangling" in p for p in listed) and any("d/sub/away" in p for p in listed)


def test_the_first_build_leaves_the_buildfile_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "Buildfile.toml").write_text(crowded_buildfile(["in.txt"]))
    registered: list[object] = []
    monkeypatch.setattr(buildfile.atexit, "register", registered.append)
    monkeypatch.setattr(buildfile, "_unwritten", {})
    load_graph(tmp_path)  # no .bg yet: nothing written now
    assert not (tmp_path / ".bg").exists() and registered == [buildfile._write_unwritten]
    (tmp_path / ".bg").mkdir()  # the command went on to make it
    buildfile._write_unwritten()
    assert (tmp_path / buildfile._SPEC_CACHE).is_file()
    from buildgraph.core import parse

    monkeypatch.setattr(parse, "analyse", lambda *a, **k: pytest.fail("parsed again"))
    assert list(load_graph(tmp_path)[0].stages) == ["s0"]


def test_a_project_without_bg_state_is_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "Buildfile.toml").write_text(crowded_buildfile(["in.txt"]))
    monkeypatch.setattr(buildfile.atexit, "register", lambda fn: None)
    monkeypatch.setattr(buildfile, "_unwritten", {})
    load_graph(tmp_path)
    buildfile._write_unwritten()  # at exit: no command made .bg (`bg graph`, `bg lint`)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Buildfile.toml", "in.txt"]


def test_digest_text_is_the_digest_of_every_kind_of_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "g").write_text("y")
    os.symlink("f", tmp_path / "link")
    with DigestCache(tmp_path / "stat.db", racy_window_ns=0) as cache:
        for name in ("f", "dir", "link", "missing"):
            for follow in (False, True):
                path = str(tmp_path / name)
                whole = cache.digest(path, follow_symlinks=follow)
                assert cache.digest_text(path, follow_symlinks=follow) == (whole.digest if whole else None)
        (tmp_path / "f").write_text("changed")
        assert cache.digest_text(str(tmp_path / "f")) == cache.digest(str(tmp_path / "f")).digest  # type: ignore[union-attr]


def test_the_collector_is_back_as_it_was() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with gcpause.frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
