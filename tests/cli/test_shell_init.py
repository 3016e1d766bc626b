"""`bg shell-init`: the printed `bg` function, loaded into real bash, dash, zsh and fish.

Each flavour runs in its shell (and `sh` in bash too): buildgraph's commands and options must
reach buildgraph, everything else the shell's own job-control builtin — checked against what
the same shell says without the function, and on a really stopped job under a pseudo-terminal
(job control needs one). A missing shell skips locally and FAILS under CI=true
(scripts/ci-docker.sh installs zsh and fish).
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from buildgraph import __version__
from buildgraph.cli import COMMANDS

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

FLAVOURS = [("sh", "dash"), ("sh", "bash"), ("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")]
IDS = [f"{flavour}-in-{shell}" for flavour, shell in FLAVOURS]
# No user start-up files. fish still loads its own share/config.fish, which defines the `bg`
# that expands `%1` (see `isolated_fish`), as in a real session.
NO_RC = {"bash": ["--norc", "--noprofile"], "dash": [], "zsh": ["-f"], "fish": []}
BIN = str(Path(sys.executable).parent)  # where pip put the `buildgraph` script
TIMEOUT = 60  # seconds for one shell; a hang fails the test instead of the suite


def shell_path(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs {shell} for the shell-init tests (scripts/ci-docker.sh installs it)")
        pytest.skip(f"{shell} is not installed")
    return path


def environment(path: str, **extra: str) -> dict[str, str]:
    """This environment with `path` first on PATH, without the BG_* settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BG_")}
    return {**env, "PATH": path + os.pathsep + env["PATH"], **extra}


def run_shell(
    shell: str, script: str, path: str, cwd: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [shell_path(shell), *NO_RC[shell], "-c", script]
    env = environment(path, **extra)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT)


def load_line(flavour: str) -> str:
    """The documented way to load the function."""
    if flavour == "fish":
        return "buildgraph shell-init fish | source"
    return f'eval "$(buildgraph shell-init {flavour})"'


@pytest.fixture(autouse=True)
def isolated_fish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty user configuration for fish (it cannot skip only the user's part of it)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    """A `buildgraph` that only echoes its arguments: which words the function sends to it."""
    bin_dir = tmp_path / "stub"
    bin_dir.mkdir()
    script = bin_dir / "buildgraph"
    script.write_text('#!/bin/sh\necho "buildgraph:$*"\n')
    script.chmod(0o755)
    return bin_dir


def function_file(tmp_path: Path, flavour: str) -> Path:
    argv = [sys.executable, "-m", "buildgraph", "shell-init", flavour]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    path = tmp_path / f"bg.{flavour}"
    path.write_text(done.stdout)
    return path


@pytest.mark.parametrize(("flavour", "shell"), FLAVOURS, ids=IDS)
def test_documented_line_sends_version_and_status_to_buildgraph(
    project: Project, flavour: str, shell: str
) -> None:
    project.stages('[stages.hello]\ncommand = "echo hi > hi.txt"\noutputs = ["hi.txt"]\n')
    script = f'{load_line(flavour)}\nbg --version\nbg status\ncd /\nbg -C "$PROJ" status\n'
    done = run_shell(shell, script, BIN, project.root, PROJ=str(project.root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"bg {__version__}"
    assert [line.split()[:2] for line in lines if line.startswith("hello")] == [["hello", "run"]] * 2


@pytest.mark.parametrize(("flavour", "shell"), FLAVOURS, ids=IDS)
def test_every_command_and_option_reaches_buildgraph(
    tmp_path: Path, stub: Path, flavour: str, shell: str
) -> None:
    words = [*COMMANDS, "-C", "--directory=d", "-q", "--version", "-h", "--help"]
    calls = "".join(f"bg {word} x\n" for word in words)
    done = run_shell(shell, f". {function_file(tmp_path, flavour)}\n{calls}", str(stub), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"buildgraph:{word} x" for word in words]


@pytest.mark.parametrize("words", ["", "%1", "-- %1"])
@pytest.mark.parametrize(("flavour", "shell"), FLAVOURS, ids=IDS)
def test_other_words_reach_the_job_control_builtin(
    tmp_path: Path, stub: Path, flavour: str, shell: str, words: str
) -> None:
    """Without jobs, `bg`, `bg %1` answer as the builtin does when there is no function."""
    load = f". {function_file(tmp_path, flavour)}\n"
    with_function = run_shell(shell, f"{load}bg {words}\n", str(stub), tmp_path)
    builtin = run_shell(shell, f"bg {words}\n", str(stub), tmp_path)
    assert "buildgraph" not in with_function.stdout + with_function.stderr
    assert with_function.returncode == builtin.returncode != 0
    # The message without its location prefix (script name, line number differ).
    assert with_function.stderr.rsplit(": ", 1)[-1] == builtin.stderr.rsplit(": ", 1)[-1] != ""


# A stopped background job, resumed by `bg %1` through the function. The loop waits until the
# shell itself has seen the stop (its `jobs` says so); before that, `bg` would rightly say the
# job is already running. Job control needs a terminal: see `in_pty`.
POSIX_JOB = """\
set -m
{load}
sleep 30 &
pid=$!
kill -STOP $pid
i=0
while [ $i -lt 1000 ]; do
  jobs > jobs.txt
  grep -qiE 'stopped|suspended' jobs.txt && break
  i=$((i+1)); sleep 0.01
done
bg %1
echo "bg-rc=$?"
echo "state=$(cut -d' ' -f3 /proc/$pid/stat)"
kill $pid
"""

FISH_JOB = """\
status job-control full
{load}
sleep 30 &
set pid $last_pid
kill -STOP $pid
for i in (seq 1000)
    jobs > jobs.txt
    grep -qi stopped jobs.txt; and break
    sleep 0.01
end
bg %1
echo "bg-rc=$status"
echo "state="(cut -d' ' -f3 /proc/$pid/stat)
kill $pid
"""


@pytest.mark.parametrize(("flavour", "shell"), FLAVOURS, ids=IDS)
def test_bg_percent_one_resumes_a_stopped_job(tmp_path: Path, flavour: str, shell: str) -> None:
    template = FISH_JOB if flavour == "fish" else POSIX_JOB
    script = template.format(load=load_line(flavour))
    argv = [shell_path(shell), *NO_RC[shell], "-c", script]
    rc, out = in_pty(argv, environment(BIN), tmp_path)
    assert rc == 0, out
    assert "bg-rc=0" in out.splitlines(), out
    state = [line for line in out.splitlines() if line.startswith("state=")]
    assert state in (["state=R"], ["state=S"]), out  # running again, no longer T (stopped)
    assert "buildgraph" not in out and "usage:" not in out


def in_pty(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run argv as the session leader of a new pseudo-terminal; its exit status and output."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, preexec_fn=controlling_terminal
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_unknown_or_missing_shell_is_a_one_line_usage_error(project: Project) -> None:
    for args in (["shell-init", "tcsh"], ["shell-init"]):
        rc, out, err = project.bg(*args)
        assert rc == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith("bg: error: shell-init: "), err
        assert "sh, bash, zsh, fish" in err


def test_listed_in_bg_help(project: Project) -> None:
    rc, out, _ = project.bg("--help", check=0)
    assert "shell-init" in out
