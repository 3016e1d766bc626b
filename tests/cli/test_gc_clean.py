"""`bg gc` keeps what the lock (and recent runs) need and frees the rest; `bg clean` removes
outputs that the next `bg run` restores without running anything."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

STAGES = ["prep", "feat", "train", "report"]
OUTPUTS = ["clean.txt", "feat.txt", "model.txt", "rep"]


def gc(project: Project, *args: str) -> tuple[int, float]:
    """Run `bg gc`; returns (runs removed, bytes freed)."""
    out = project.bg("gc", *args, check=0).out
    found = re.fullmatch(
        r"removed (\d+) run\(s\) and \d+ object\(s\), freed ([\d.]+) (B|KiB|MiB); kept \d+ run\(s\)\n", out
    )
    assert found, out
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2}[found[3]]
    return int(found[1]), float(found[2]) * scale


def remove_outputs(project: Project, *names: str) -> None:
    for name in names:
        path = project.root / name
        if path.is_dir():
            for item in path.iterdir():
                item.unlink()
            path.rmdir()
        else:
            path.unlink()


def test_gc_keeps_what_the_lock_needs_and_frees_the_rest(built: Project) -> None:
    built.bg("run", "-q", "--param", "scale=3", check=0)
    built.bg("run", "-q", "--param", "scale=4", check=0)
    built.executed()
    runs = set(built.manifests())
    assert gc(built) == (0, 0), "keep_runs = 5 by default: the last runs are kept"
    assert set(built.manifests()) == runs

    removed, freed = gc(built, "--keep-runs", "0")
    lock_keys = {entry["key"] for entry in built.lock().values()}
    assert removed == len(runs - lock_keys) > 0 and freed > 0
    assert set(built.manifests()) == lock_keys
    built.assert_sound()
    assert {d["action"] for d in built.status("--param", "scale=4").values()} == {"skip"}

    remove_outputs(built, *OUTPUTS)
    done = built.run_json("--param", "scale=4")
    assert done.statuses == dict.fromkeys(STAGES, "cached") and built.executed() == []
    assert built.read("feat.txt").endswith("4\n")

    built.run_json("--param", "scale=2")  # collected: has to run again
    assert built.executed() == ["feat", "train", "report"]


def test_clean_removes_outputs_and_run_restores_them_without_running(built: Project) -> None:
    before = {name: built.read(name) for name in ("clean.txt", "feat.txt", "model.txt", "rep/summary.txt")}
    assert built.bg("clean", "train", check=0).out.startswith("removed 1 output(s)")
    assert not (built.root / "model.txt").exists() and (built.root / "feat.txt").exists()

    assert built.bg("clean", check=0).out.startswith("removed 3 output(s)")
    assert not any((built.root / name).exists() for name in OUTPUTS)
    assert (built.root / "raw.txt").exists() and (built.root / "notes.txt").exists()

    done = built.run_json()
    assert done.statuses == dict.fromkeys(STAGES, "cached")
    assert built.executed() == []
    assert {name: built.read(name) for name in before} == before
