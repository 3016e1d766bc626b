"""`bg verify` re-hashes every cache object and workspace output, names each kind of damage,
and `--repair` makes it all good again: from the cache, from intact workspace files, or by
running the producing stage again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

# `gen` writes three files and a directory of three (six objects, and the empty log);
# `use` reads them and prints a line (its log is an object too).
BUILDFILE = """
[stages.gen]
command = '''echo gen >> {ran}; printf 'alpha %.0s' $(seq 1 40) > a.txt; echo bravo > b.txt
    mkdir -p d; echo one > d/one; echo two-two > d/two; echo three > d/three'''
outputs = ["a.txt", "b.txt", "d/"]

[stages.use]
command = "echo use >> {ran}; cat a.txt b.txt d/one > use.txt; echo used"
inputs = ["a.txt", "b.txt", "d/"]
outputs = ["use.txt"]
"""
OUTPUTS = ["a.txt", "b.txt", "d/one", "d/two", "d/three", "use.txt"]


@pytest.fixture
def made(project: Project) -> Project:
    project.stages(BUILDFILE)
    project.bg("run", "-q", check=0)
    assert project.executed() == ["gen", "use"]
    return project


def digest_of(project: Project, rel: str) -> str:
    """The recorded digest of a workspace file (a file of `d/` through its manifest's tree)."""
    stage = "use" if rel == "use.txt" else "gen"
    manifest = next(m for m in project.manifests().values() if m["stage"] == stage)
    if rel.startswith("d/"):
        return next(d for name, _mode, d, _size in manifest["outputs"]["d"]["tree"] if name == rel[2:])
    return str(manifest["outputs"][rel]["digest"])


def write_in_place(path: Path, data: bytes) -> None:
    """Overwrite a file's bytes through its inode (as root could), keeping its mtime."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.chmod(path, st.st_mode & 0o777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def verify(project: Project, *args: str, check: int) -> dict[str, Any]:
    """`bg verify --json ARGS`: its last line, the report."""
    done = project.bg("verify", "--json", *args, check=check)
    report: dict[str, Any] = json.loads(done.out.splitlines()[-1])
    return report


def found(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(subject, name, kind) of every problem; an object is named by its workspace file."""
    return {(p["subject"], p["name"], p["kind"]) for p in report["problems"]}


def contents(project: Project) -> dict[str, bytes]:
    return {rel: (project.root / rel).read_bytes() for rel in OUTPUTS}


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file below `root`, bg's state included (but the parsed Buildfile's cache, which
    loading the project writes for any command): its digest, mode and mtime."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != "buildfile.pickle":
            st = path.stat()
            files[str(path.relative_to(root))] = (sha256(path), st.st_mode, st.st_mtime_ns)
    return files


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sound_project_verifies_clean(made: Project) -> None:
    done = made.bg("verify", check=0)
    assert done.out.splitlines()[-1] == (
        "checked 8 objects (519 B), 2 run records and 4 workspace outputs: no problems"
    )
    report = verify(made, check=0)
    assert report["clean"] is True and report["problems"] == []
    assert report["checked"] == {"objects": 8, "bytes": 519, "manifests": 2, "outputs": 4}


def test_every_kind_of_damage_is_found_and_repaired(made: Project) -> None:
    before = contents(made)
    obj = {rel: made.object(digest_of(made, rel)) for rel in OUTPUTS}
    d = {rel: digest_of(made, rel) for rel in OUTPUTS}
    write_in_place(obj["d/one"], b"ONE\n")  # flipped bytes: the workspace hardlink shares them
    write_in_place(obj["a.txt"], before["a.txt"][:10])  # truncated
    aside = obj["b.txt"].with_name("swapping")
    obj["b.txt"].rename(aside)  # swapped: each holds the other's bytes
    obj["d/two"].rename(obj["b.txt"])
    aside.rename(obj["d/two"])
    obj["d/three"].unlink()  # deleted
    write_in_place(made.root / "use.txt", b"edited!" + before["use.txt"][7:])  # same size, same mtime

    report = verify(made, check=1)
    assert found(report) == {
        ("object", d["d/one"], "corrupted"),
        ("object", d["a.txt"], "truncated"),
        ("object", d["b.txt"], "swapped"),
        ("object", d["d/two"], "swapped"),
        ("object", d["d/three"], "missing"),
        ("object", d["use.txt"], "corrupted"),  # edited through its workspace hardlink
        ("output", "d/one", "tampered"),
        ("output", "a.txt", "tampered"),
        ("output", "use.txt", "tampered"),
    }
    swapped = {p["name"]: p["other"] for p in report["problems"] if p["kind"] == "swapped"}
    assert swapped == {d["b.txt"]: d["d/two"], d["d/two"]: d["b.txt"]}
    edited = next(p for p in report["problems"] if p["name"] == "use.txt")
    assert edited["stage"] == "use" and "changed in place" in edited["detail"]
    text = made.bg("verify", check=1).out
    assert text.splitlines()[-1].endswith(": 9 problems")

    repaired = verify(made, "--repair", check=0)
    assert repaired["after"]["clean"] is True and len(repaired["problems"]) == 9
    assert made.executed() == ["gen", "use"], "the flipped and edited outputs had no intact copy left"
    assert verify(made, check=0)["clean"] is True
    assert contents(made) == before
    made.assert_sound()
    assert made.bg("status", check=0).out.splitlines()[-1] == "everything is up to date"


def test_repair_restores_from_the_cache_and_the_workspace_without_running(made: Project) -> None:
    before = contents(made)
    d = {rel: digest_of(made, rel) for rel in OUTPUTS}
    made.object(d["d/three"]).unlink()  # its workspace file is intact: the object is made from it
    b, two = made.object(d["b.txt"]), made.object(d["d/two"])
    aside = b.with_name("swapping")
    b.rename(aside)
    two.rename(b)
    aside.rename(two)
    a = made.root / "a.txt"  # replaced (not written through): the cache object is intact
    st = a.stat()
    made.write("a.txt", "x" * st.st_size)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    (made.root / "use.txt").unlink()
    (made.root / "d" / "one").chmod(0o755)  # through the hardlink: its object is not read-only now

    state = snapshot(made.root)
    report = verify(made, check=1)
    assert snapshot(made.root) == state, "verify without --repair changes nothing, not even a stat cache"
    assert found(report) == {
        ("object", d["d/three"], "missing"),
        ("object", d["b.txt"], "swapped"),
        ("object", d["d/two"], "swapped"),
        ("output", "a.txt", "tampered"),
        ("output", "use.txt", "missing"),
        ("object", d["d/one"], "tampered"),
        ("output", "d/one", "tampered"),
    }

    done = made.bg("verify", "--repair", check=0)
    assert made.executed() == [], "everything had a good copy: nothing runs"
    assert f"repair: made object {d['d/three'][:12]}… again from {made.root / 'd' / 'three'}" in done.out
    assert "repair: restored a.txt (stage gen) from the cache" in done.out
    assert f"repair: made object {d['d/one'][:12]}… read-only again" in done.out
    assert done.out.splitlines()[-1].endswith("workspace outputs: no problems")
    moved = sorted(p.name for p in (made.root / ".bg" / "damaged").glob("*/*"))
    assert moved == sorted(f"object-{d[rel]}" for rel in ("b.txt", "d/two")), "moved aside, not deleted"
    assert made.bg("verify", check=0).out.endswith("no problems\n")
    assert contents(made) == before
    assert (made.root / "d" / "one").stat().st_mode & 0o777 == 0o444
    made.assert_sound()


def test_a_damaged_run_record_is_named_and_its_stage_runs_again(made: Project) -> None:
    key = made.lock()["use"]["key"]
    record = made.root / ".bg" / "cache" / "runs" / key[:2] / f"{key}.json"
    record.write_bytes(record.read_bytes()[:40])  # cut short, as by a crash of something else

    problems = verify(made, check=1)["problems"]
    assert [(p["subject"], p["name"], p["kind"], p["stage"]) for p in problems] == [
        ("manifest", key, "damaged", "use")
    ]
    assert problems[0]["detail"].startswith("not valid JSON")
    assert verify(made, "--repair", check=0)["after"]["clean"] is True
    assert made.executed() == ["use"]
    assert made.bg("verify", check=0).rc == 0
