"""The up-to-date stamp (`buildgraph.uptodate`): a null `bg run` / `bg status` answered from one
stat per path — and only when nothing it depends on changed; then the normal path decides.

Each `bg` here is a real `python -m buildgraph` started in the project (the stamp answers no
`-C`), wrapped so that it reports which heavy modules it imported: the stamp's answer imports
none of sqlite3, tomllib or argparse, the normal path all of them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from buildgraph import uptodate

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

HEAVY = ("sqlite3", "tomllib", "argparse")
WRAPPER = (
    "import runpy, sys\n"
    "sys.argv[0] = 'bg'\n"
    "try:\n"
    "    runpy.run_module('buildgraph', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    f"    sys.stderr.write('imported:' + ''.join(' ' + m for m in {HEAVY!r} if m in sys.modules) + '\\n')\n"
)

BUILDFILE = """
[project]
name = "stamp"
executor = "local"

[stages.listing]
command = "find data | sort > listing.txt; cat data/sub/x >> listing.txt"
inputs = ["data/"]
outputs = ["listing.txt"]

[stages.report]
command = "mkdir -p rep; cat listing.txt > rep/all.txt; echo ${params.n} > rep/n.txt"
inputs = ["listing.txt"]
params = { file = "params.yaml", keys = ["n"] }
outputs = ["rep/"]
"""
STAGES = ("listing", "report")


class Null:
    """`bg` in the project's directory: exit status, stdout, and whether the stamp answered."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, bool]:
        done = subprocess.run(
            [sys.executable, "-c", WRAPPER, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=_environment(env),
            timeout=60,
        )
        assert "Traceback" not in done.stderr, done.stderr
        imported = done.stderr.splitlines()[-1]
        assert imported.startswith("imported:"), done.stderr
        fast = imported == "imported:"
        assert fast or "argparse" in imported.split(), imported  # the normal path parses argv
        return done.returncode, done.stdout, fast

    def stamp(self, name: str = "default") -> Path:
        return self.root / uptodate.FOLDER / name

    def settle(self) -> None:
        """Wait out the racy window (a condition, not a guess): the stamp trusts no path that
        changed less than that before bg started, so a stamp is written only after it."""
        newest, window = 0, uptodate.FINE_RACY_WINDOW_NS
        for folder in (self.root, Path(uptodate.PACKAGE)):
            for path in [folder, *folder.rglob("*")]:
                st = path.lstat()
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
                if st.st_mtime_ns % 1_000_000 == 0:
                    window = uptodate.RACY_WINDOW_NS
        while time.time_ns() <= newest + window:
            time.sleep((newest + window - time.time_ns()) / 1e9 + 0.01)

    def stamped(self, *args: str) -> tuple[int, str, bool]:
        """Settle, then run `args` on the normal path, which leaves the stamp."""
        self.settle()
        rc, out, fast = self(*args)
        assert rc == 0 and not fast and self.stamp().exists(), (out, self._recent())
        return rc, out, fast

    def _recent(self) -> list[str]:
        """Paths changed in the last second: why no stamp was written (another edit racing)."""
        since = time.time_ns() - 10**9
        paths = [p for f in (self.root, Path(uptodate.PACKAGE)) for p in [f, *f.rglob("*")]]
        return [str(p) for p in paths if max(p.lstat().st_mtime_ns, p.lstat().st_ctime_ns) > since]


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BG_")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["TERM"] = "dumb"
    env["PYTHONPATH"] = str(Path(uptodate.PACKAGE).parent)
    env.update(extra or {})
    return env


def _timeless(text: str) -> str:
    return re.sub(r" in \d+\.\ds$", " in …", text, flags=re.M)


@pytest.fixture
def bg(project: Project) -> Null:
    """The stamp project, built once and settled."""
    project.buildfile(BUILDFILE)
    project.write("data/sub/x", "x\n")
    project.write("data/y", "y\n")
    project.write("params.yaml", "n: 1\nunused: 1\n")
    null = Null(project.root)
    rc, out, _ = null("run", "-q")
    assert rc == 0 and out.startswith("bg: 2 ran"), out
    return null


def test_the_second_null_run_is_answered_by_the_stamp_alone(bg: Null) -> None:
    _, slow, _ = bg.stamped("run", "-q")
    rc, fast, used = bg("run", "-q")
    assert (rc, used) == (0, True)
    assert _timeless(fast) == _timeless(slow) == "bg: 2 up to date in …\n"


@pytest.mark.parametrize("args", [("run",), ("run", "-q"), ("run", "-j1", "-k"), ("status",)])
def test_the_stamps_answer_is_the_normal_paths_byte_for_byte(bg: Null, args: tuple[str, ...]) -> None:
    bg.settle()
    _, slow, fast_first = bg(*args)
    rc, fast, used = bg(*args)
    assert (fast_first, used, rc) == (False, True, 0)
    assert _timeless(fast) == _timeless(slow)
    if args == ("status",):
        assert fast == slow == "listing  up to date\nreport   up to date\neverything is up to date\n"


def test_run_and_status_share_the_stamp_of_one_selection(bg: Null) -> None:
    bg.stamped("status")
    assert bg("run", "-q")[2] and bg("status")[2]
    assert not bg("run", "-q", "report")[2], "another selection has its own stamp"
    assert bg("run", "-q", "report")[2] and bg.stamp(uptodate.stamp_name(("report",))).exists()


def _edit_in_place(path: Path, text: str) -> None:
    """Same size, mtime put back: only the inode's ctime tells."""
    before = path.stat()
    path.chmod(0o644)
    with open(path, "r+", encoding="utf-8") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _rewrite(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.unlink()
    path.write_text(text)


EDITED = BUILDFILE.replace("> rep/n", ">rep/n")  # report's command, and nothing else
CHANGES = {  # change → the summary the normal path prints next
    "input bytes, same size": (lambda r: _rewrite(r, "data/sub/x", "z\n"), "2 ran"),
    "input edited in place, mtime restored": (lambda r: _edit_in_place(r / "data/sub/x", "q\n"), "2 ran"),
    "touch": (lambda r: os.utime(r / "data/y"), "2 up to date"),
    "a new file deep in an input dir": (
        lambda r: (r / "data/sub/deeper").mkdir() or (r / "data/sub/deeper/new").write_text("n\n"),
        "2 ran",
    ),
    "an output removed": (lambda r: (r / "rep/n.txt").unlink(), "1 restored, 1 up to date"),
    "Buildfile edited": (lambda r: _rewrite(r, "Buildfile.toml", EDITED), "1 ran, 1 up to date"),
    "params file edited": (lambda r: _rewrite(r, "params.yaml", "n: 2\nunused: 1\n"), "1 ran, 1 up to date"),
    "params file, an unused key": (lambda r: _rewrite(r, "params.yaml", "n: 1\nunused: 2\n"), "2 up to date"),
    "lock deleted": (lambda r: (r / "Buildfile.lock").unlink(), "2 restored"),
    "lock edited": (lambda r: _drop_from_lock(r, "report"), "1 restored, 1 up to date"),
    "a journal present": (lambda r: (r / uptodate.JOURNAL).write_text(""), "2 up to date"),
}


def _drop_from_lock(root: Path, stage: str) -> None:
    lock = json.loads((root / "Buildfile.lock").read_text())
    del lock["stages"][stage]
    _rewrite(root, "Buildfile.lock", json.dumps(lock, indent=2) + "\n")


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_takes_the_normal_path_and_its_decision(bg: Null, change: str) -> None:
    bg.stamped("run", "-q")
    edit, summary = CHANGES[change]
    edit(bg.root)
    rc, out, fast = bg("run", "-q")
    assert (rc, fast) == (0, False)
    assert _timeless(out) == f"bg: {summary} in …\n"


@pytest.mark.parametrize(
    "args",
    [
        ("run", "-q", "listing"),
        ("run", "-q", "-C", "."),
        ("run", "--json"),
        ("status", "--json"),
        ("run", "-q", "--force", "report"),
    ],
)
def test_other_targets_and_options_take_the_normal_path(bg: Null, args: tuple[str, ...]) -> None:
    bg.stamped("run", "-q")
    assert bg(*args)[2] is False


def test_bg_variables_take_the_normal_path(bg: Null) -> None:
    bg.stamped("run", "-q")
    assert bg("run", "-q", env={"BG_DEBUG": "1"})[2] is False


def test_a_racy_path_leaves_no_stamp(bg: Null) -> None:
    """A path whose mtime is not safely in the past (here: in the future) is not vouched for,
    and the stamp written before is removed."""
    bg.stamped("run", "-q")
    future = time.time_ns() + 60 * 10**9
    os.utime(bg.root / "data/y", ns=(future, future))
    rc, out, fast = bg("run", "-q")
    assert (rc, fast, out.startswith("bg: 2 up to date")) == (0, False, True)
    assert not bg.stamp().exists()


def test_the_racy_rule_counts_from_when_bg_started(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    written = (tmp_path / "f").stat().st_ctime_ns
    watches: list[uptodate.Watch] = [("f", False, True)]
    old = uptodate.Request.__new__(uptodate.Request)
    old.root, old.path, old.targets = str(tmp_path), str(tmp_path / "stamp"), ()
    old.started_ns = written + uptodate.FINE_RACY_WINDOW_NS // 2  # changed just before bg started
    assert uptodate.write(old, "bg: 1 up to date", "", watches, []) is False
    old.started_ns = written + 3 * uptodate.RACY_WINDOW_NS  # long before
    assert uptodate.write(old, "bg: 1 up to date", "", watches, []) is True
    assert Path(old.path).exists()
    old.started_ns = written  # and changed since
    assert uptodate.write(old, "bg: 1 up to date", "", watches, []) is False
    assert not Path(old.path).exists(), "the earlier stamp is removed"


def test_a_failing_or_running_stage_leaves_no_stamp(bg: Null) -> None:
    bg.stamped("run", "-q")
    _rewrite(bg.root, "data/y", "yy\n")
    bg.settle()
    assert bg("run", "-q")[1].startswith("bg: 1 ran, 1 cut off early") and not bg.stamp().exists()
    _rewrite(bg.root, "Buildfile.toml", BUILDFILE.replace("mkdir -p rep;", "exit 3;"))
    bg.settle()
    assert bg("run", "-q")[0] == 1 and not bg.stamp().exists()
    assert bg("status")[0] == 0 and not bg.stamp().exists(), "status: report would run"


def test_no_stamp_while_the_lock_holds_a_removed_stage(bg: Null) -> None:
    """A run would drop it from the lock first: the normal path does, then stamps."""
    _rewrite(bg.root, "Buildfile.toml", BUILDFILE.split("[stages.report]")[0])
    bg.settle()
    assert bg("status")[1].endswith("everything is up to date\n") and not bg.stamp().exists()
    assert bg("run", "-q")[1].startswith("bg: 1 up to date") and not bg.stamp().exists()
    assert "report" not in json.loads((bg.root / "Buildfile.lock").read_text())["stages"]
    bg.stamped("run", "-q")
    assert bg("run", "-q")[2]


@pytest.mark.parametrize("command", [("clean", "report"), ("gc",), ("verify", "--repair")])
def test_a_command_that_may_change_the_workspace_removes_the_stamps(
    bg: Null, project: Project, command: tuple[str, ...]
) -> None:
    bg.stamped("run", "-q")
    project.bg(*command, check=0)
    assert not bg.stamp().exists()


def test_a_null_run_again_adds_no_line_to_the_run_history(bg: Null) -> None:
    history = bg.root / ".bg" / "runs.jsonl"
    lines = history.read_text().splitlines()
    bg.settle()
    for _ in range(2):  # the normal path, then the stamp
        assert bg("run", "-q")[0] == 0
    (bg.root / "rep/n.txt").unlink()
    assert bg("run", "-q")[0] == 0  # restored: the same keys as the build
    assert history.read_text().splitlines() == lines


IMAGES = """
[project]
name = "imgs"
executor = "local"
default = ["use"]

[stages.code]
from = "debian:bookworm-slim"
copy = [{ src = ["src/*.py"], dest = "/opt/" }]

[stages.use]
command = "cat in.txt > out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
"""


def test_what_loading_checks_for_other_stages_is_watched_too(project: Project) -> None:
    """`code` is no part of the selection, but its copy glob must match something: once it
    does not, the normal path refuses the Buildfile, and the stamp must not answer instead."""
    project.buildfile(IMAGES)
    project.write("in.txt", "x\n")
    project.write("src/a.py", "a\n")
    bg = Null(project.root)
    assert bg("run", "-q")[0] == 0
    bg.stamped("run", "-q")
    assert bg("run", "-q")[2]
    (project.root / "src/a.py").unlink()
    rc, _, fast = bg("run", "-q")
    assert (rc, fast) == (2, False)


# ---------------------------------------------------------------- the module itself
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run"], ("run", (), False)),
        (["run", "-q", "-j", "2", "-k", "a", "b"], ("run", ("a", "b"), True)),
        (["run", "-j2", "--jobs=3", "--jobs", "4", "--quiet", "--keep-going"], ("run", (), True)),
        (["status", "a"], ("status", ("a",), False)),
        (["run", "-j", "0"], None),
        (["run", "-j"], None),
        (["run", "-jx"], None),
        (["run", "-qk"], None),
        (["run", "--force", "a"], None),
        (["status", "-q"], None),
        (["-C", "d", "run"], None),
        (["explain", "a"], None),
        ([], None),
    ],
)
def test_the_invocations_a_stamp_answers(argv: list[str], expected: tuple[object, ...] | None) -> None:
    req = uptodate.request(argv, environ={})
    assert (None if req is None else (req.command, req.targets, req.quiet)) == expected


def test_the_stamp_shares_the_stat_caches_racy_windows_and_host() -> None:
    from buildgraph.engine.context import host_fingerprint
    from buildgraph.stores import digests

    assert (uptodate.RACY_WINDOW_NS, uptodate.FINE_RACY_WINDOW_NS) == (
        digests.RACY_WINDOW_NS,
        digests.FINE_RACY_WINDOW_NS,
    )
    assert uptodate._context()[2] == host_fingerprint()


def test_the_fast_path_module_imports_only_the_stdlib_it_needs() -> None:
    tree = ast.parse(Path(uptodate.__file__).read_text(encoding="utf-8"))
    found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    found |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert found <= {"__future__", "marshal", "os", "stat", "sys", "time", "zlib", "buildgraph"}


def test_a_torn_stamp_is_not_trusted(bg: Null) -> None:
    bg.stamped("run", "-q")
    data = bg.stamp().read_bytes()
    bg.stamp().write_bytes(data[: len(data) // 2])
    rc, out, fast = bg("run", "-q")
    assert (rc, fast, out.startswith("bg: 2 up to date")) == (0, False, True)
