"""`bg import dvc.yaml` on DVC's get-started pipeline: bg reruns exactly what `dvc repro` reruns.

The pipeline has the shape of DVC's get-started tutorial (tests/fixtures/dvc/get-started, see its
README): written for these tests, as are its stage scripts. Each edit is one DVC's docs
make; the expected sets follow DVC's rules (a stage reruns when its command, a dependency's
content or a listed param's value changed; a byte-identical output stops the cascade). With
`dvc` on PATH (or BG_TEST_DVC naming it) the same edits are replayed under real `dvc repro`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Project

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dvc" / "get-started"
STAGES = {"prepare", "featurize", "train", "evaluate"}


def posts(n: int) -> str:
    tags = ["&lt;r&gt;&lt;plot&gt;", "&lt;python&gt;", "&lt;r&gt;", "&lt;java&gt;&lt;spring&gt;"]
    words = ["data frame", "ggplot axis", "list comprehension", "null pointer", "vector apply", "bean"]
    rows = [
        f'  <row Id="{i}" Tags="{tags[i % 4]}" Title="how {words[i % 6]} {i % 5}"'
        f' Body="a {words[(i * 7) % 6]}" />'
        for i in range(1, n + 1)
    ]
    return "<?xml version='1.0' encoding='utf-8'?>\n<posts>\n" + "\n".join(rows) + "\n</posts>\n"


def replace(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.unlink()  # bg's outputs and DVC's may be read-only links: never write through
    path.write_text(text.replace(old, new, 1))


def touch(root: Path, rel: str) -> None:
    os.utime(root / rel, (1_900_000_000, 1_900_000_000))


# (what is edited, the edit, the stages `dvc repro` reruns after it), applied in this order.
EDITS: list[tuple[str, Callable[[Path], None], set[str]]] = [
    ("nothing", lambda root: None, set()),
    (
        "a param train reads",
        lambda r: replace(r, "params.yaml", "n_est: 50", "n_est: 80"),
        {"train", "evaluate"},
    ),
    ("a param no stage reads", lambda r: replace(r, "params.yaml", "train:", "notes: x\ntrain:"), set()),
    (
        "a param featurize reads",
        lambda r: replace(r, "params.yaml", "max_features: 120", "max_features: 5"),
        {"featurize", "train", "evaluate"},
    ),
    ("the evaluate script", lambda r: replace(r, "src/evaluate.py", "indent=2", "indent=1"), {"evaluate"}),
    # a comment: train reruns, model.pkl comes out byte-identical, evaluate stays (DVC compares md5s)
    (
        "a comment in the train script",
        lambda r: replace(r, "src/train.py", "import os", "import os  # x"),
        {"train"},
    ),
    ("the data's mtime only", lambda r: touch(r, "data/data.xml"), set()),
    ("the data", lambda r: (r / "data/data.xml").write_text(posts(60)), STAGES),
]


@pytest.fixture
def python_bin(tmp_path: Path) -> str:
    """A PATH entry where `python` (the stages' command word) is this interpreter, which has PyYAML."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def lay_out(root: Path) -> None:
    shutil.copytree(
        FIXTURE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md", "__pycache__")
    )
    (root / "data").mkdir(exist_ok=True)
    (root / "data/data.xml").write_text(posts(40))


def imported(project: Project) -> str:
    lay_out(project.root)
    done = project.bg("import", "dvc.yaml", "-o", "Buildfile.toml", check=0)
    assert "bg: wrote Buildfile.toml" in done.err
    return done.err


def test_the_get_started_pipeline_imports_with_warnings_naming_their_lines(project: Project) -> None:
    err = imported(project)
    warnings = [line for line in err.splitlines() if line.startswith("bg: warning:")]
    assert [w.split(": ")[2:4] for w in warnings] == [["dvc.yaml:50", "plots"]]
    text = project.read("Buildfile.toml")
    assert (
        'params = { file = "params.yaml", keys = ["train.min_split", "train.n_est", "train.seed"] }' in text
    )
    assert 'outputs = ["data/prepared/"]' in text  # a directory, as dvc.lock records it
    assert 'metrics = "eval/metrics.json"' in text  # the top-level metrics, inside evaluate's eval/
    assert set(project.status()) == STAGES


def bg_reruns(project: Project, path: str) -> Callable[[], set[str]]:
    def run() -> set[str]:
        done = project.run_json(env={"PATH": path})
        return {stage for stage, status in done.statuses.items() if status == "done"}

    return run


def test_bg_reruns_exactly_what_dvc_repro_reruns(project: Project, python_bin: str) -> None:
    imported(project)
    run = bg_reruns(project, python_bin)
    assert run() == STAGES
    assert sorted(project.read("eval/metrics.json").split()) != []
    for what, edit, expected in EDITS:
        edit(project.root)
        assert run() == expected, f"after editing {what}"


def dvc_command() -> str | None:
    return os.environ.get("BG_TEST_DVC") or shutil.which("dvc")


@pytest.mark.skipif(
    dvc_command() is None, reason="dvc is not installed (pip install dvc; or BG_TEST_DVC=path)"
)
def test_the_expected_reruns_are_what_real_dvc_repro_reruns(tmp_path: Path, python_bin: str) -> None:
    root = tmp_path / "dvc-project"
    lay_out(root)
    env = {**os.environ, "PATH": python_bin, "DVC_NO_ANALYTICS": "1"}

    def dvc(*args: str) -> str:
        done = subprocess.run(
            [str(dvc_command()), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    dvc("init", "--no-scm")

    def repro() -> set[str]:
        return set(re.findall(r"Running stage '([^']+)'", dvc("repro")))

    assert repro() == STAGES
    for what, edit, expected in EDITS:
        edit(root)
        assert repro() == expected, f"after editing {what}"
