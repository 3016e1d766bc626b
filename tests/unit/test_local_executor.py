"""LocalExecutor against real `sh` subprocesses in tmp_path."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from buildgraph.executors.base import Cancel, Job, Result
from buildgraph.executors.local import LocalExecutor, _LineSplitter, job_environment
from buildgraph.executors.workdir import NOT_STARTED


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "data" / "sub" / "b.csv").write_text("3,4\n")
    (root / "data" / "link").symlink_to("a.csv")
    (root / "train.py").write_text("print('training')\n")
    (root / "secret.txt").write_text("undeclared\n")
    return root


def make_job(
    project: Path, command: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (), **kw: Any
) -> Job:
    scratch = project.parent / "scratch"
    return Job(
        stage=kw.pop("stage", "train"),
        run_id="run-1",
        command=command,
        inputs=tuple((rel, project / rel.rstrip("/")) for rel in inputs),
        outputs=outputs,
        scratch=scratch,
        log_path=project.parent / "logs" / "train.log",
        **kw,
    )


def run(
    job: Job, executor: LocalExecutor | None = None, cancel: Cancel | None = None
) -> tuple[Result, list[str]]:
    lines: list[str] = []
    result = (executor or LocalExecutor(kill_grace=0.3)).run(job, on_line=lines.append, cancel=cancel)
    return result, lines


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie waiting for init to reap it counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], within: float = 20.0) -> bool:  # returns as soon as they are gone
    give_up = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < give_up:
        time.sleep(0.02)
    return not any(alive(p) for p in pids)


# --- the working directory --------------------------------------------------------------


def test_declared_inputs_are_staged_and_outputs_collected(project: Path) -> None:
    job = make_job(
        project,
        "mkdir -p out && cat train.py data/a.csv > out/model.pt",
        ("train.py", "data/"),
        ("out/model.pt",),
    )
    result, _ = run(job)
    assert result.ok, result
    assert result.output_root == job.scratch / "work"
    assert (result.output_root / "out" / "model.pt").read_text() == "print('training')\n1,2\n"


def test_parent_directories_of_outputs_exist_but_not_the_outputs(project: Path) -> None:
    job = make_job(
        project,
        "test -d models/v1 && test ! -e models/v1/model.pt && echo x > models/v1/model.pt",
        outputs=("models/v1/model.pt",),
    )
    result, _ = run(job)
    assert result.ok, result


def test_undeclared_project_file_is_not_visible(project: Path) -> None:
    result, lines = run(make_job(project, "cat secret.txt", ("train.py",)))
    assert result.exit_status != 0 and not result.ok
    assert any("secret.txt" in line for line in lines)
    assert sorted(os.listdir(result.output_root)) == ["train.py"]


def test_directory_input_is_recreated_with_hardlinks_and_symlinks(project: Path) -> None:
    result, _ = run(make_job(project, "true", ("data/",)))
    staged = result.output_root / "data"
    assert (staged / "sub" / "b.csv").stat().st_ino == (project / "data" / "sub" / "b.csv").stat().st_ino
    assert os.readlink(staged / "link") == "a.csv"


def test_copy_mode_does_not_share_inodes(project: Path) -> None:
    result, _ = run(make_job(project, "true", ("train.py",)), LocalExecutor(link="copy"))
    assert (result.output_root / "train.py").read_text() == "print('training')\n"
    assert (result.output_root / "train.py").stat().st_ino != (project / "train.py").stat().st_ino


def test_unknown_link_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="link must be one of auto, hardlink, copy"):
        LocalExecutor(link="reflink")


def test_missing_input_source_is_reported_without_running(project: Path) -> None:
    result, lines = run(make_job(project, "echo ran", ("nope.txt",)))
    assert result.exit_status == NOT_STARTED
    assert result.error.startswith("input 'nope.txt' does not exist")
    assert lines == [] and result.log_path.read_text() == ""


def test_input_path_escaping_the_project_is_a_bug(project: Path) -> None:
    job = make_job(project, "true")
    job = Job(**{**job.__dict__, "inputs": (("../etc/passwd", Path("/etc/passwd")),)})
    with pytest.raises(ValueError, match="inside the project"):
        LocalExecutor().run(job)


# --- checks after the command -----------------------------------------------------------


def test_missing_output_is_reported(project: Path) -> None:
    result, _ = run(make_job(project, "true", outputs=("model.pt",)))
    assert result.exit_status == 0 and not result.ok
    assert result.error == "declared output 'model.pt' was not created"


def test_all_missing_outputs_are_named_and_kinds_checked(project: Path) -> None:
    result, _ = run(make_job(project, "echo > curves", outputs=("a.pt", "b/", "curves/")))
    assert result.error == (
        "declared outputs 'a.pt', 'b/' were not created; declared output 'curves/' is not a directory"
    )


def test_modified_input_is_detected(project: Path) -> None:
    result, _ = run(
        make_job(project, "echo more >> data/sub/b.csv; echo 1 >> train.py", ("data/", "train.py"))
    )
    assert result.exit_status == 0 and not result.ok
    assert (
        result.error == "stage modified its inputs 'data/sub/b.csv', 'train.py'; write outputs to new paths"
    )


def test_replacing_an_input_is_not_modifying_it(project: Path) -> None:
    result, _ = run(make_job(project, "rm train.py && echo new > train.py", ("train.py",)))
    assert result.ok, result
    assert (project / "train.py").read_text() == "print('training')\n"


# --- the process ------------------------------------------------------------------------


def test_failing_command_status_and_log(project: Path) -> None:
    result, lines = run(make_job(project, "echo starting; echo oops >&2; exit 3"))
    assert (result.exit_status, result.error, result.ok) == (3, "", False)
    assert result.log_path.read_text() == "starting\noops\n"
    assert lines == ["starting", "oops"]


def test_lines_stream_in_order_and_live(project: Path) -> None:
    script = "import time\nprint('first')\ntime.sleep(0.5)\nprint('second')\n"
    (project / "slow.py").write_text(script)
    arrivals: list[tuple[str, float]] = []
    job = make_job(
        project, f"'{sys.executable}' slow.py; for i in 1 2 3; do echo $i; echo e$i >&2; done", ("slow.py",)
    )
    LocalExecutor().run(job, on_line=lambda line: arrivals.append((line, time.monotonic())))
    assert [line for line, _ in arrivals] == ["first", "second", "1", "e1", "2", "e2", "3", "e3"]
    assert arrivals[1][1] - arrivals[0][1] > 0.3  # "first" arrived before python exited: unbuffered


def test_carriage_returns_end_lines_but_log_keeps_bytes(project: Path) -> None:
    result, lines = run(make_job(project, r"printf '10%%\r50%%\r100%%\r\ndone\n\nlast'"))
    assert lines == ["10%", "50%", "100%", "done", "", "last"]
    assert result.log_path.read_bytes() == b"10%\r50%\r100%\r\ndone\n\nlast"


def test_line_splitter_handles_chunk_boundaries() -> None:
    lines: list[str] = []
    splitter = _LineSplitter(lines.append)
    for chunk in (b"a\r", b"\nb", b"c\r", b"d\xc3", b"\xa9\n", b"x" * 70000):
        splitter.feed(chunk)
    splitter.close()
    assert lines[:3] == ["a", "bc", "dé"]
    assert [len(line) for line in lines[3:]] == [65536, 70000 - 65536]


def test_stdin_is_empty(project: Path) -> None:
    result, lines = run(make_job(project, "cat; echo end"))
    assert result.ok and lines == ["end"]


def test_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_VAR", "from-host")
    job = make_job(
        project,
        'echo "$HOST_VAR $FOO $BG_STAGE $BG_RUN_ID $PYTHONUNBUFFERED"',
        env=(("FOO", "bar"), ("BG_STAGE", "spoofed")),
    )
    result, lines = run(job)
    assert lines == ["from-host bar train run-1 1"]


def test_job_environment_order() -> None:
    job = Job(
        "s", "r", "true", (), (), Path("/x"), Path("/x.log"), env=(("PYTHONUNBUFFERED", "0"), ("PATH", "/p"))
    )
    env = job_environment(job, {"PATH": "/usr/bin", "HOME": "/h"})
    assert env == {"PATH": "/p", "HOME": "/h", "PYTHONUNBUFFERED": "0", "BG_STAGE": "s", "BG_RUN_ID": "r"}


def test_sh_not_bash(project: Path) -> None:
    result, lines = run(make_job(project, "echo $0"))
    assert lines == ["sh"]


# --- timeouts, cancel, orphans ------------------------------------------------------------

GRANDCHILD = "sleep 100 & echo $! > {dir}/bg.pid; echo $$ > {dir}/sh.pid; sleep 100"


def pids(directory: Path) -> list[int]:
    return [int((directory / name).read_text()) for name in ("bg.pid", "sh.pid")]


def test_timeout_kills_the_whole_group(project: Path, tmp_path: Path) -> None:
    job = make_job(project, GRANDCHILD.format(dir=tmp_path), timeout=0.5)
    result, _ = run(job)
    assert result.error == "timed out after 0.5s" and not result.interrupted and not result.ok
    assert result.exit_status < 0
    assert 0.5 <= result.duration < 50  # killed, not waited for: the command sleeps 100 s
    assert wait_gone(pids(tmp_path))


def test_term_ignoring_command_is_killed_after_grace(project: Path, tmp_path: Path) -> None:
    job = make_job(project, "trap '' TERM; " + GRANDCHILD.format(dir=tmp_path), timeout=0.2)
    result, _ = run(job, LocalExecutor(kill_grace=0.4))
    assert result.error == "timed out after 0.2s"
    assert 0.6 <= result.duration < 50  # waited the grace before SIGKILL, not the 100 s sleep
    assert wait_gone(pids(tmp_path))


def test_cancel_kills_the_group(project: Path, tmp_path: Path) -> None:
    cancel = Cancel()
    threading.Timer(0.3, cancel.set).start()
    result, _ = run(make_job(project, GRANDCHILD.format(dir=tmp_path)), cancel=cancel)
    assert result.interrupted and not result.ok and result.error == ""
    assert result.duration < 50  # the command sleeps 100 s
    assert wait_gone(pids(tmp_path))


def test_cancel_before_start_runs_nothing(project: Path, tmp_path: Path) -> None:
    cancel = Cancel()
    cancel.set()
    result, _ = run(make_job(project, f"touch {tmp_path}/ran"), cancel=cancel)
    assert result.interrupted and not (tmp_path / "ran").exists()


def test_leftover_background_process_is_killed_after_exit(project: Path, tmp_path: Path) -> None:
    result, _ = run(make_job(project, f"sleep 100 & echo $! > {tmp_path}/bg.pid; echo done"))
    assert result.ok and result.duration < 50  # the orphan (sleep 100) held the pipe: not waited for
    assert wait_gone([int((tmp_path / "bg.pid").read_text())])


def test_raising_line_sink_still_kills_the_command(project: Path, tmp_path: Path) -> None:
    def explode(line: str) -> None:
        raise RuntimeError("sink broke")

    job = make_job(project, f"echo $$ > {tmp_path}/sh.pid; echo hi; sleep 100")
    with pytest.raises(RuntimeError, match="sink broke"):
        LocalExecutor().run(job, on_line=explode)
    assert wait_gone([int((tmp_path / "sh.pid").read_text())])
