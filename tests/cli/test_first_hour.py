"""What a new user met in the first hour (issue 7): each behaviour run through real `bg` processes.

Exit statuses, one-line errors, image stages named as targets, `sh -e`, secrets that are
needed only when used, and the hints that make a failure actionable.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # no daemon answers there


# ---------------------------------------------------------------- exit statuses
def test_the_docker_sdk_is_a_dependency_of_the_tool_not_an_extra() -> None:
    requires = importlib.metadata.requires("buildgraph") or []
    assert any(re.match(r"docker\b", r) and "extra" not in r for r in requires), requires


def test_a_bug_inside_a_step_exits_70_in_one_line_and_records_nothing(project: Project) -> None:
    project.stages('[stages.a]\ncommand = "echo a >> {ran}; echo hi > a.txt"\noutputs = ["a.txt"]\n')
    rc, _, err = project.bg("run", env={"BG_FAIL_AT": "before-manifest"})
    assert rc == 70
    assert "bg: error: internal error: RuntimeError('fault injected at before-manifest')" in err
    assert [line for line in err.splitlines() if line.startswith("bg: error:")] == [
        "bg: error: internal error: RuntimeError('fault injected at before-manifest')"
    ]
    assert project.manifests() == {} and not (project.root / "Buildfile.lock").exists()
    assert project.executed() == ["a"]
    project.bg("run", check=0)
    assert project.executed() == ["a"], "the step that hit the bug runs again"


def test_debug_adds_the_traceback_and_keeps_the_exit_status(project: Project) -> None:
    project.stages('[stages.a]\ncommand = "echo hi > a.txt"\noutputs = ["a.txt"]\n')
    proc = project.spawn("run", "--debug", env={"BG_FAIL_AT": "before-manifest"})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 70
    assert "Traceback (most recent call last)" in err and "fault injected" in err


def test_help_documents_every_exit_status() -> None:
    argv = [sys.executable, "-m", "buildgraph", "--help"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "70 internal error" in " ".join(out.split())
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "70 internal error" in readme


# ---------------------------------------------------------------- image stages as targets
IMAGE_ONLY = """
[project]
name = "imgs"

[stages.base]
from = { debian = "bookworm" }

[stages.app]
from = "base"
run = ["true"]
"""


def test_an_image_target_without_docker_is_an_environment_problem_not_nothing_to_do(project: Project) -> None:
    project.buildfile(IMAGE_ONLY)
    rc, out, err = project.bg("run", "app", env=NO_DOCKER)
    assert rc == 3, (out, err)
    assert "nothing to do" not in out + err
    assert "bg: error: image stages are built and checked with Docker: no Docker socket at" in err
    rc, out, err = project.bg("status", env=NO_DOCKER)
    assert rc == 3 and "up to date" not in out, "status does not call unbuilt images up to date"


def test_under_the_local_executor_a_run_target_does_not_need_its_image(project: Project) -> None:
    project.buildfile(
        '[project]\nname = "mix"\nexecutor = "local"\n' + IMAGE_ONLY.split("\n", 3)[3]
        + '[stages.job]\nimage = "app"\ncommand = "echo job >> {ran}; echo x > x.txt"\noutputs = ["x.txt"]\n'
    )
    project.bg("run", "job", env=NO_DOCKER, check=0)
    assert project.executed() == ["job"]
    assert project.bg("run", "app", env=NO_DOCKER).rc == 3, "an image named as a target is built"


def test_auto_does_not_flip_to_the_host_when_no_daemon_answers(project: Project) -> None:
    project.buildfile(
        IMAGE_ONLY + '[stages.job]\nimage = "app"\ncommand = "echo x > x.txt"\noutputs = ["x.txt"]\n'
    )
    rc, _, err = project.bg("run", "job", env=NO_DOCKER)
    assert rc == 3
    assert "run stages with an `image` execute in containers (executor auto), which needs Docker" in err
    assert '--executor local (or `executor = "local"` under [project])' in err


# ---------------------------------------------------------------- sh -e
def test_a_failing_middle_line_fails_the_stage_and_caches_nothing(project: Project) -> None:
    project.stages(
        '[stages.multi]\ncommand = """\necho one >> {ran}\nfalse\necho three >> {ran}\n'
        'echo done > out.txt\n"""\noutputs = ["out.txt"]\n'
    )
    rc, _, err = project.bg("run")
    assert rc == 1 and "stage 'multi' failed: command exited with status 1" in err
    assert project.ran.read_text().split() == ["one"], "the lines after the failing one never ran"
    assert project.manifests() == {} and not (project.root / "out.txt").exists()


def test_set_plus_e_opts_out(project: Project) -> None:
    project.stages('[stages.lenient]\ncommand = """\nset +e\nfalse\necho done > out.txt\n"""\n'
                   'outputs = ["out.txt"]\n')
    project.bg("run", check=0)
    assert project.read("out.txt") == "done\n"


# ---------------------------------------------------------------- secrets
SECRET = (
    '[stages.s]\ncommand = "echo s >> {ran}; wc -c < $BG_SECRETS_DIR/TOKEN > n.txt"\noutputs = ["n.txt"]\n'
)


def test_a_secret_is_needed_only_by_a_stage_that_will_run(project: Project) -> None:
    project.stages(SECRET + 'secrets = ["TOKEN"]\n')
    rc, _, err = project.bg("run")
    assert rc == 3 and "secret(s) not set in the environment: TOKEN (stage s)" in err
    assert project.executed() == []
    project.bg("run", env={"TOKEN": "abc"}, check=0)
    assert project.executed() == ["s"] and project.read("n.txt").strip() == "3"
    project.bg("run", check=0)  # up to date: no secret needed
    (project.root / "n.txt").unlink()
    project.bg("run", check=0)  # restored from the cache: none either
    assert project.executed() == [] and project.read("n.txt").strip() == "3"


# ---------------------------------------------------------------- hints
def test_reading_an_undeclared_project_file_gets_a_hint_naming_it(project: Project) -> None:
    project.write("data/raw.csv", "1,2\n")
    project.stages('[stages.load]\ncommand = "cat data/raw.csv > out.txt"\noutputs = ["out.txt"]\n')
    rc, _, err = project.bg("run")
    assert rc == 1
    assert (
        "bg: hint: stage 'load' runs in a scratch folder holding only its declared inputs, and "
        "'data/raw.csv' exists in the project but is not one: add it to stages.load.inputs"
    ) in err


def test_a_missing_file_that_is_not_in_the_project_gets_the_plain_hint(project: Project) -> None:
    project.stages('[stages.load]\ncommand = "cat nowhere.csv > out.txt"\noutputs = ["out.txt"]\n')
    rc, _, err = project.bg("run")
    assert rc == 1 and "bg: hint: fix it and run `bg run` again" in err


def test_run_help_names_the_projects_default_target(project: Project) -> None:
    project.buildfile('[project]\nname = "t"\nexecutor = "local"\ndefault = ["b"]\n'
                      '[stages.a]\ncommand = "true"\n[stages.b]\ncommand = "true"\n')
    help_text = " ".join(project.bg("run", "--help", check=0).out.split())
    assert "TARGET stages to bring up to date (default: b, the [project] default of Buildfile.toml)" in (
        help_text
    )
