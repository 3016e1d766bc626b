"""The CIFAR-10 example (the repository's Buildfile.toml + stages/) end to end under the docker executor.

One copy of the project, built once with tiny synthetic data on the offline Debian base
(`--arg BASE=base-debian`: Docker Hub is not needed), then edited test by test: each test
asks `bg status --json` what would happen, runs `bg run --json`, and checks which steps
started, were cut off or came from the cache. After each test its edits are undone and the
project brought back to the first run's state (from the cache), so any order works.

The copy gets its own project name, so its images (`bg/<name>/deps:…`) are built from
the shared Debian base exactly as on a first run, never collide with another session's,
and are removed, by tag, when the module ends. The Debian base itself (~2 GB, ~2 min the
first time) is kept: it is tagged by its key and reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildgraph.dockerd.containers import PID_LABEL
from buildgraph.executors.base import Job
from buildgraph.executors.docker import DockerExecutor
from buildgraph.images.builder import KEY_LABEL, PROJECT_LABEL, STAGE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUN_STAGES = ("data", "train-lenet", "train-resnet", "evaluate-lenet", "evaluate-resnet", "compare", "plot")
LENET = ("train-lenet", "evaluate-lenet", "compare", "plot")  # what the lenet's epochs rerun
IMAGE_STAGES = ("base-debian", "deps", "code")
TARGETS = ("plot", "compare")  # the Buildfile's default
TINY = {"synthetic_train": 500, "synthetic_test": 200}
TINY_EPOCHS = {"lenet": 1, "resnet": 1}
DOCKER = ("--executor", "docker", "--arg", "BASE=base-debian")
DEPS_RUN = 'pip install --no-cache-dir matplotlib"]'  # the end of the deps stage's `run` line
OTHER_UID = "1234:1234"


@dataclass
class Events:
    """The JSON events of one `bg run --json`."""

    lines: list[dict[str, Any]]

    def started(self, *actions: str) -> set[str]:
        return {e["stage"] for e in self.lines if e["event"] == "start" and e["action"] in actions}

    def finished(self) -> dict[str, str]:
        return {e["stage"]: e["status"] for e in self.lines if e["event"] == "finish"}

    def with_status(self, status: str) -> set[str]:
        return {stage for stage, s in self.finished().items() if s == status}


@dataclass
class Project:
    root: Path
    name: str
    bg_pids: list[int] = field(default_factory=list)  # every bg process: their containers carry the pid
    first_run: Events = field(default_factory=lambda: Events([]))

    def bg(self, *args: str, **params: Any) -> str:
        flags = [f"--param={k}={v}" for k, v in {**TINY, **params}.items()]
        command = [sys.executable, "-m", "buildgraph", "-C", str(self.root), *args, *DOCKER, *flags]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.bg_pids.append(proc.pid)
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"bg {' '.join(args)} exited {proc.returncode}:\n{out}\n{err}"
        return out

    def run(self, *targets: str, **params: Any) -> Events:
        out = self.bg("run", *(targets or TARGETS), "--json", **params)
        return Events([json.loads(line) for line in out.splitlines() if line.startswith("{")])

    def status(self, *targets: str, **params: Any) -> dict[str, dict[str, Any]]:
        out = self.bg("status", *(targets or TARGETS), "--json", **params)
        return {d["stage"]: d for d in json.loads(out)}

    def lock(self) -> dict[str, Any]:
        stages: dict[str, Any] = json.loads((self.root / "Buildfile.lock").read_text())["stages"]
        return stages

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        assert text.count(old) == 1, f"{relpath}: {old!r} should occur once"
        path.write_text(text.replace(old, new))

    def epochs(self, **epochs: int) -> None:
        """params.yaml with these epochs (and the committed file's other values)."""
        doc = yaml.safe_load((ROOT / "params.yaml").read_text())
        doc["train"]["epochs"] = {**TINY_EPOCHS, **epochs}
        (self.root / "params.yaml").write_text(yaml.safe_dump(doc))

    def append(self, relpath: str, text: str) -> None:
        with (self.root / relpath).open("a") as f:
            f.write(text)


def actions(decisions: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {stage: d["action"] for stage, d in decisions.items()}


def reason_texts(decision: dict[str, Any]) -> list[str]:
    return [r["text"] for r in decision["reasons"]]


def remove_project_images(client: Any, name: str) -> None:
    """Untag the project's images, children first; by tag, so a shared layer or base is never forced out."""
    built = client.images.list(filters={"label": f"{PROJECT_LABEL}={name}"})
    for image in sorted(built, key=lambda i: i.attrs["Created"], reverse=True):
        for tag in image.tags:
            if tag.startswith(f"bg/{name}/"):
                client.images.remove(tag)


@pytest.fixture(scope="module")
def project(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("cifar10-docker")
    shutil.copy2(ROOT / "Buildfile.toml", root / "Buildfile.toml")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    name = f"cifar10-t{uuid.uuid4().hex[:8]}"
    project = Project(root, name)
    project.edit("Buildfile.toml", 'name = "cifar10"', f'name = "{name}"')
    project.epochs()
    try:
        project.first_run = project.run(*TARGETS, "code")
        yield project
    finally:
        remove_project_images(client, name)


@pytest.fixture(autouse=True)
def as_first_built(project: Project) -> Iterator[None]:
    """Undo a test's edits to the project's sources, then bring it back to the first run's state."""
    sources = [
        project.root / "Buildfile.toml",
        project.root / "params.yaml",
        *sorted((project.root / "stages").glob("*.py")),
    ]
    before = {path: path.read_bytes() for path in sources}
    yield
    changed = [path for path, data in before.items() if path.read_bytes() != data]
    for path in changed:
        path.write_bytes(before[path])
    project.run(*TARGETS, "code")  # restores or skips: every key is a first-run key again


def test_first_run_builds_the_images_and_runs_every_stage(project: Project, client: Any) -> None:
    finished = project.first_run.finished()
    assert finished == {stage: "done" for stage in (*IMAGE_STAGES, *RUN_STAGES)}
    assert project.first_run.started("build") == set(IMAGE_STAGES)
    assert project.first_run.started("run") == set(RUN_STAGES)
    lock = project.lock()
    for stage in ("deps", "code"):
        labels = client.images.get(lock[stage]["image"]).labels
        assert labels[KEY_LABEL] == lock[stage]["key"]
        assert (labels[PROJECT_LABEL], labels[STAGE_LABEL]) == (project.name, stage)
    code = client.images.get(lock["code"]["image"])
    assert (code.attrs["Config"]["User"], code.attrs["Config"]["WorkingDir"]) == ("1000:1000", "/opt/cifar10")
    assert actions(project.status(*TARGETS, "code")) == dict.fromkeys((*IMAGE_STAGES, *RUN_STAGES), "skip")


def test_outputs_exist_and_belong_to_the_invoking_user(project: Project) -> None:
    outputs = (
        "models/lenet/model.pt",
        "models/resnet/model.pt",
        "eval/lenet/metrics.json",
        "comparison.json",
        "figure.png",
        "models/lenet/loss.json",
        "data/cifar-10-batches-py/test_batch",
    )
    for name in outputs:
        stat = (project.root / name).stat()
        assert stat.st_size > 0, name
        assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid()), name
    metrics = json.loads((project.root / "eval/lenet/metrics.json").read_text())
    assert metrics["test_images"] == TINY["synthetic_test"]
    assert (project.root / "figure.png").read_bytes().startswith(b"\x89PNG")


def test_plot_runs_in_the_deps_image_as_a_non_root_user(
    project: Project, client: Any, tmp_path: Path
) -> None:
    """The plot stage's job as uid 1234 writes the same PNGs, owned by that uid."""
    if os.getuid() != 0:
        pytest.skip("handing the output directory to another uid needs root")
    stage = tomllib.loads((project.root / "Buildfile.toml").read_text())["stages"]["plot"]
    (tmp_path / "scratch").mkdir()
    job = Job(
        stage="plot",
        run_id=f"test-nonroot-{uuid.uuid4().hex[:8]}",
        command=stage["command"],
        inputs=tuple((path, project.root / path) for path in stage["inputs"]),
        outputs=tuple(stage["outputs"]),
        scratch=tmp_path / "scratch",
        log_path=tmp_path / "plot.log",
        image=project.lock()["deps"]["image"],
    )
    lines: list[str] = []
    result = DockerExecutor(client=client, user=OTHER_UID).run(job, on_line=lines.append)
    assert result.ok, "\n".join(lines)
    for name in stage["outputs"]:
        written = result.output_root / name
        assert f"{written.stat().st_uid}:{written.stat().st_gid}" == OTHER_UID, name
        assert written.read_bytes() == (project.root / name).read_bytes(), f"{name} differs from bg's run"


def test_editing_train_rebuilds_only_code_and_reruns_only_train(project: Project, client: Any) -> None:
    project.append("stages/train.py", f"# an edit that leaves the weights alone ({uuid.uuid4().hex})\n")
    decisions = project.status(*TARGETS, "code")
    chosen = ("base-debian", "deps", "code", "data", "train-lenet", "train-resnet")
    assert {s: actions(decisions)[s] for s in chosen} == {
        "base-debian": "skip", "deps": "skip", "code": "build", "data": "skip",
        "train-lenet": "run", "train-resnet": "run",
    }  # fmt: skip
    assert reason_texts(decisions["train-lenet"]) == ["input stages/train.py changed"]
    old_code = project.lock()["code"]
    events = project.run(*TARGETS, "code")
    assert events.started("build") == {"code"}
    assert events.started("run") == {"train-lenet", "train-resnet"}
    # the weights came out byte-identical
    assert events.with_status("cutoff") == {"evaluate-lenet", "evaluate-resnet", "plot"}
    new_code = project.lock()["code"]
    assert new_code["key"] == decisions["code"]["key"] != old_code["key"]
    new_image, old_image = client.images.get(new_code["image"]), client.images.get(old_code["image"])
    assert new_image.id != old_image.id
    assert new_image.labels[KEY_LABEL] == new_code["key"]


def test_editing_plot_reruns_plot_alone(project: Project) -> None:
    figure = (project.root / "figure.png").read_bytes()
    project.append("stages/plot.py", "# a comment\n")
    unchanged = ("base-debian", "deps", *(s for s in RUN_STAGES if s != "plot"))
    assert actions(project.status()) == {**dict.fromkeys(unchanged, "skip"), "plot": "run"}
    events = project.run()
    assert events.started("run", "build", "restore") == {"plot"}
    assert events.finished()["train-lenet"] == "skipped"
    assert (project.root / "figure.png").read_bytes() == figure  # the scripts are byte-reproducible


def test_whitespace_edit_of_evaluate_reruns_it_and_cuts_off_plot(project: Project) -> None:
    metrics = (project.root / "eval/lenet/metrics.json").read_bytes()
    project.append("stages/evaluate.py", "\n\n")
    events = project.run()
    assert events.started("run", "build", "restore") == {"evaluate-lenet", "evaluate-resnet"}
    assert (events.finished()["plot"], events.finished()["compare"]) == ("cutoff", "cutoff")
    assert (project.root / "eval/lenet/metrics.json").read_bytes() == metrics


def test_lenet_epochs_rerun_its_stages_then_come_back_from_the_cache(project: Project) -> None:
    first = {p: (project.root / p).read_bytes() for p in ("models/lenet/model.pt", "comparison.json")}
    project.epochs(lenet=2)  # params.yaml: only the stages that list train.epochs.lenet, and after them
    events = project.run()
    assert events.started("run") == set(LENET)
    assert (project.root / "models/lenet/model.pt").read_bytes() != first["models/lenet/model.pt"]

    project.epochs(lenet=1)
    decisions = project.status()
    assert {s: actions(decisions)[s] for s in LENET} == dict.fromkeys(LENET, "restore")
    events = project.run()
    assert events.started("run", "build") == set()
    assert {s: events.finished()[s] for s in LENET} == dict.fromkeys(LENET, "cached")
    assert {p: (project.root / p).read_bytes() for p in first} == first


def test_editing_the_deps_run_line_rebuilds_deps_and_code_but_not_the_base(project: Project) -> None:
    buildfile = (project.root / "Buildfile.toml").read_text()
    project.edit("Buildfile.toml", DEPS_RUN, DEPS_RUN[:-2] + ' && true"]')
    try:
        decisions = project.status(*TARGETS, "code")
        assert actions(decisions) == {
            "base-debian": "skip", "deps": "build", "code": "build", **dict.fromkeys(RUN_STAGES, "run"),
        }  # fmt: skip
        assert reason_texts(decisions["data"]) == ["image changed"]
        events = project.run(*TARGETS, "code")
        assert events.started("build") == {"deps", "code"}
        assert events.started("run") == set(RUN_STAGES)
        assert events.finished()["base-debian"] == "skipped"
    finally:
        (project.root / "Buildfile.toml").write_text(buildfile)


def test_after_a_deps_edit_status_says_image_changed_for_every_run_stage(project: Project) -> None:
    buildfile = (project.root / "Buildfile.toml").read_text()
    project.edit("Buildfile.toml", DEPS_RUN, DEPS_RUN[:-2] + ' && : another"]')
    try:
        decisions = project.status()
    finally:
        (project.root / "Buildfile.toml").write_text(buildfile)
    assert {s: "image changed" in reason_texts(decisions[s]) for s in RUN_STAGES} == dict.fromkeys(
        RUN_STAGES, True
    )


def test_no_container_is_left_behind(project: Project, client: Any) -> None:
    assert project.bg_pids
    left = [
        container.name
        for pid in project.bg_pids
        for container in client.containers.list(all=True, filters={"label": f"{PID_LABEL}={pid}"})
    ]
    for image in client.images.list(filters={"label": f"{PROJECT_LABEL}={project.name}"}):
        left += [c.name for c in client.containers.list(all=True, filters={"ancestor": image.id})]
    assert left == []


def test_the_example_passes_its_audit_in_its_image(project: Project, client: Any) -> None:
    """Every run stage rerun in the image its result was recorded in: bit for bit."""
    found = json.loads(project.bg("audit", "--json"))
    assert found["reproduced"] is True, found
    assert {s["stage"] for s in found["stages"]} == set(RUN_STAGES)
    assert {s["executor"] for s in found["stages"]} == {"docker"}
    outputs = {o["path"]: o["result"] for s in found["stages"] for o in s["outputs"]}
    assert {"models/lenet", "eval/resnet", "comparison.json", "figure.png", "data"} <= set(outputs)
    assert set(outputs.values()) == {"identical"}


def test_the_example_passes_its_audit_under_variation(project: Project) -> None:
    found = json.loads(project.bg("audit", "--vary", "--json"))
    assert found["reproduced"] is True, found
    assert {"path", "tz", "locale", "umask", "hostname", "hashseed"} <= set(found["varied"])
