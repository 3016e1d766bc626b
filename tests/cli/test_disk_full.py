"""A full disk is an environment problem (exit 3), not a crash: on a real, tiny tmpfs.

Each test puts a project on its own tmpfs (mounting needs root: skipped otherwise, a failure
under CI=true), fills it while bg writes something, and checks the one error line naming what
was being written, that nothing half-written is left or trusted, and that once space is freed
(`mount -o remount,size=…` or `bg gc`) the next run completes. The journal, the lock and the
stat cache are also filled directly, through their own write paths.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from buildgraph.diskfull import NoSpace
from buildgraph.lockfile import Journal, Lock, read_journal
from buildgraph.stores.digests import DigestCache
from buildgraph.workspace import Workspace

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project


class Tmpfs:
    """A tmpfs mounted on `root` for one test; always unmounted afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mount(self, size: str) -> None:
        if os.geteuid() != 0:
            _unavailable("mounting a tmpfs needs root")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.root)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            _unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.root)], check=True)

    def unmount(self) -> None:
        if not os.path.ismount(self.root):
            return
        if subprocess.run(["umount", str(self.root)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.root)], check=True)  # still busy: detach

    def fill(self) -> Path:
        """Write a filler file until not one more byte fits."""
        path = self.root / "filler"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        chunk = 1 << 20
        try:
            while chunk:
                try:
                    os.write(fd, bytes(chunk))
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    chunk //= 2
        finally:
            os.close(fd)
        return path


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (under CI=true the tests run as root)")
    pytest.skip(why)


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Tmpfs]:
    """A 3000k tmpfs; the test may resize it."""
    mounted = Tmpfs(tmp_path / "fs")
    mounted.root.mkdir()
    mounted.mount("3000k")
    try:
        yield mounted
    finally:
        mounted.unmount()


@pytest.fixture
def small(fs: Tmpfs, project: Project) -> Project:
    """A project on the tmpfs (its `ran.log` outside it, where `project` keeps it)."""
    return type(project)(fs.root / "proj", project.ran)


def one_error(err: str) -> str:
    """The single `bg: error:` line (with a hint naming `bg gc`), and nothing that is a crash."""
    errors = [line for line in err.splitlines() if line.startswith("bg: error:")]
    assert len(errors) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    assert any(line.startswith("bg: hint: free space on ") and "bg gc" in line for line in err.splitlines())
    return errors[0]


def temporaries(project: Project) -> list[str]:
    return sorted(p.name for p in project.root.rglob(".*.tmp-*"))


def assert_nothing_half_written(project: Project) -> None:
    """No temporaries; every manifest's objects intact; every lock entry's manifest present."""
    assert temporaries(project) == []
    project.assert_sound()
    if (project.root / "Buildfile.lock").exists():
        manifests = project.manifests()
        assert all(entry["key"] in manifests for entry in project.lock().values())


BIG = 3_000_000
BIG_STAGE = """
[stages.big]
command = "echo big >> {ran}; head -c 3000000 /dev/zero > out.bin"
outputs = ["out.bin"]
"""
COPYING = '[project]\nname = "t"\nexecutor = "local"\nlink = "copy"\n'  # copies into place, never links


# ---------------------------------------------------------------- bg run on a full disk
def test_an_output_that_does_not_fit_is_an_environment_error(fs: Tmpfs, small: Project) -> None:
    small.stages(BIG_STAGE)
    rc, _, err = small.bg("run", "-q")
    assert rc == 3, err
    assert one_error(err).startswith("bg: error: no space left on device writing ")
    assert f"free on {fs.root})" in err
    assert_nothing_half_written(small)

    fs.resize("20m")
    small.bg("run", "-q", check=0)
    assert (small.root / "out.bin").stat().st_size == BIG
    assert small.status()["big"]["action"] == "skip"
    assert_nothing_half_written(small)


def test_a_cache_object_that_does_not_fit_records_nothing(fs: Tmpfs, small: Project) -> None:
    fs.resize("5000k")  # the output fits once, not twice: its copy into the cache fails
    small.stages(
        '[stages.a]\ncommand = "echo a >> {ran}; echo a > a.txt"\noutputs = ["a.txt"]\n'
        "[stages.big]\n"
        # a second link to the output: it cannot be moved into the cache, only copied
        'command = "echo big >> {ran}; head -c 3000000 /dev/zero > out.bin; ln out.bin spare; cat a.txt"\n'
        'inputs = ["a.txt"]\noutputs = ["out.bin"]'
    )
    rc, _, err = small.bg("run", "-q", "-j", "1")
    assert rc == 3, err
    line = one_error(err)
    assert line.startswith(
        "bg: error: no space left on device writing cache object for stage 'big' output 'out.bin' "
        "(3.0 MB needed, "
    ), line
    assert line.endswith(f" free on {fs.root})")
    assert sorted(small.lock()) == ["a"], "a completed before the disk filled: kept; big is not recorded"
    assert [m["stage"] for m in small.manifests().values()] == ["a"]
    assert not (small.root / "out.bin").exists()
    assert_nothing_half_written(small)
    assert small.executed() == ["a", "big"]

    fs.resize("20m")
    done = small.run_json("-j", "1")
    assert done.statuses == {"a": "skipped", "big": "done"}
    assert (small.root / "out.bin").stat().st_size == BIG
    assert_nothing_half_written(small)


def test_an_output_that_cannot_be_copied_to_the_workspace_is_restored_later(
    fs: Tmpfs, small: Project
) -> None:
    fs.resize("5000k")
    small.buildfile(COPYING + BIG_STAGE)
    rc, _, err = small.bg("run", "-q")
    assert rc == 3, err
    assert one_error(err).startswith(
        "bg: error: no space left on device writing output 'out.bin' into the workspace (3.0 MB needed, "
    )
    assert not (small.root / "Buildfile.lock").exists(), "not in the workspace: not recorded"
    assert_nothing_half_written(small)

    fs.resize("20m")
    done = small.run_json()
    assert done.statuses == {"big": "cached"}, "its cache entry was complete: restored, not rerun"
    assert small.executed() == ["big"], "the command ran once, in the first run"
    assert (small.root / "out.bin").stat().st_size == BIG


def test_a_log_that_fills_the_disk_stops_the_command(fs: Tmpfs, small: Project) -> None:
    small.stages(
        '[stages.noisy]\ncommand = "echo noisy >> {ran}; yes | head -c 4000000; echo ok > out.txt"\n'
        'outputs = ["out.txt"]'
    )
    rc, _, err = small.bg("run", "-q")
    assert rc == 3, err
    assert one_error(err).startswith("bg: error: no space left on device writing the log of stage 'noisy' (")
    assert not (small.root / "out.txt").exists()
    assert_nothing_half_written(small)

    fs.resize("20m")
    small.bg("run", "-q", check=0)
    assert small.read("out.txt") == "ok\n"


def test_an_input_that_cannot_be_staged_is_an_environment_error(fs: Tmpfs, small: Project) -> None:
    small.buildfile(
        COPYING
        + '[stages.count]\ncommand = "wc -c < data.bin > n.txt"\ninputs = ["data.bin"]\noutputs = ["n.txt"]'
    )
    (small.root / "data.bin").write_bytes(bytes(2_000_000))  # fits once; its copy does not
    rc, _, err = small.bg("run", "-q")
    assert rc == 3, err
    assert one_error(err).startswith(
        "bg: error: no space left on device writing input 'data.bin' into a scratch folder (2.0 MB needed, "
    )
    fs.resize("20m")
    small.bg("run", "-q", check=0)
    assert small.read("n.txt").strip() == "2000000"


def test_status_on_a_full_disk_answers_with_a_warning(fs: Tmpfs, small: Project) -> None:
    """Its only write is the stat cache, which it can do without; `bg run` cannot."""
    small.stages('[stages.small]\ncommand = "echo hi > out.txt"\noutputs = ["out.txt"]')
    small.bg("run", "-q", check=0)
    fs.fill()
    done = small.bg("status", check=0)
    assert "everything is up to date" in done.out
    assert "stat.db: no space left on device; digests are not cached in this run" in done.err
    rc, _, err = small.bg("run", "-q")
    assert rc == 3, err
    assert one_error(err).startswith("bg: error: no space left on device writing ")


# ---------------------------------------------------------------- the lock fold, and bg gc
def test_a_lock_that_cannot_be_folded_keeps_the_journal_and_gc_frees_the_space(
    fs: Tmpfs, small: Project
) -> None:
    fs.resize("20m")
    small.stages(
        '[params]\nv = 1\n[stages.big]\noutputs = ["out.bin"]\n'
        'command = "head -c 3000000 /dev/zero > out.bin; echo ${params.v} >> out.bin"'
    )
    small.bg("run", "-q", check=0)
    # v=2 completes and is journalled; bg dies writing the lock (as a full disk would stop it)
    small.bg("run", "-q", "--param", "v=2", env={"BG_CRASH_AT": "write:Buildfile.lock"}, check=-9)
    for stray in small.root.glob(".Buildfile.lock.tmp-*"):
        stray.unlink()
    (small.root / ".bg" / "lock").write_bytes(b"")  # as a bg that exits leaves it: no room for a pid
    lock_before = (small.root / "Buildfile.lock").read_bytes()
    fs.fill()

    rc, _, err = small.bg("run", "-q", "--param", "v=2")
    assert rc == 3, err
    assert one_error(err).startswith("bg: error: no space left on device writing Buildfile.lock (")
    assert (small.root / "Buildfile.lock").read_bytes() == lock_before
    assert (small.root / ".bg" / "journal.jsonl").exists(), "the journal stands until it can be folded"
    assert_nothing_half_written(small)

    done = small.bg("gc", "--keep-runs", "0", "--param", "v=2", check=0)  # frees v=1's artefact
    assert "freed 2.9 MiB" in done.out
    assert not (small.root / ".bg" / "journal.jsonl").exists(), "folded once gc made room"
    assert small.status("--param", "v=2")["big"]["action"] == "skip"
    small.bg("run", "-q", "--param", "v=2", check=0)
    assert small.read("out.bin").endswith("2\n")
    assert_nothing_half_written(small)


# ---------------------------------------------------------------- the write paths themselves
def test_a_journal_line_that_does_not_fit_leaves_no_torn_line(fs: Tmpfs) -> None:
    path = fs.root / ".bg" / "journal.jsonl"
    with Journal(path) as journal:
        journal.record("a", {"key": "a"})
    before = path.read_bytes()
    filler = fs.fill()
    with Journal(path) as journal:  # the line is longer than what is left of the file's last page
        with pytest.raises(NoSpace) as caught:
            journal.record("b", {"key": "b", "blob": "x" * 100_000})
        assert path.read_bytes() == before, "the bytes that fit were cut back off"
        message = caught.value.message
        assert message.startswith("no space left on device writing the journal .bg/journal.jsonl (")
        filler.unlink()
        journal.record("c", {"key": "c"})
    assert [stage for stage, _ in read_journal(path)] == ["a", "c"]


def test_a_lock_that_does_not_fit_leaves_the_old_one(fs: Tmpfs) -> None:
    path = fs.root / "Buildfile.lock"
    Lock({"a": {"key": "1"}}).save(path)
    before = path.read_bytes()
    fs.fill()
    with pytest.raises(NoSpace) as caught:
        Lock({"a": {"key": "2", "material": "m" * 50_000}}).save(path)
    assert caught.value.message.startswith("no space left on device writing Buildfile.lock (50.1 kB needed, ")
    assert caught.value.message.endswith(f" free on {fs.root})")
    assert path.read_bytes() == before
    assert sorted(p.name for p in fs.root.iterdir()) == ["Buildfile.lock", "filler"], "no temporary left"


@pytest.mark.parametrize("opened", ["before", "after"], ids=["opened-before-full", "opened-on-full-disk"])
def test_a_stat_cache_flush_that_does_not_fit_keeps_the_old_rows(fs: Tmpfs, opened: str) -> None:
    db = fs.root / ".bg" / "stat.db"
    sample = fs.root / "sample.txt"
    sample.write_text("sample\n")
    with DigestCache(db) as cache:
        cache.digest(sample)
    cache = DigestCache(db)
    if opened == "before":  # SQLite meets the full disk inside the transaction (SQLITE_FULL) …
        cache.digest(sample)
    fs.fill()  # … or opening the database in WAL mode (SQLITE_IOERR_SHMSIZE)
    st = os.lstat(sample)
    for i in range(20_000):  # more rows than the free pages of the database and its WAL hold
        cache.remember_stat(f"/elsewhere/{i:05}", st, f"{i:064x}")
    with pytest.raises(NoSpace) as caught:
        cache.close()
    assert caught.value.message.startswith("no space left on device writing the stat cache .bg/stat.db (")
    (fs.root / "filler").unlink()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [r[0] for r in conn.execute("SELECT path FROM stat")] == [str(sample)]
    with DigestCache(db) as cache:  # usable again once there is room
        cache.remember_stat("/elsewhere/1", st, "1" * 64)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM stat").fetchone() == (2,)


def test_runs_history_line_is_whole_or_absent(fs: Tmpfs) -> None:
    ws = Workspace(fs.root)
    ws.remember_run("r1", ["a" * 64])
    before = ws.history.read_bytes()
    filler = fs.fill()
    with pytest.raises(NoSpace):
        ws.remember_run("r2", ["b" * 64] * 200)  # longer than the room left in the file's page
    assert ws.history.read_bytes() == before
    filler.unlink()
    ws.remember_run("r3", ["c" * 64])
    assert [json.loads(line)["run"] for line in ws.history.read_text().splitlines()] == ["r1", "r3"]
