"""Image steps (buildgraph/engine/image_step.py) deciding on a fake image engine: keyed before
building, skipped while an image carries the key, built parents first, bases pinned, status
never pulling. Building for real is tested on a real engine in tests/docker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.graph import Graph
from buildgraph.core.parse import parse
from buildgraph.core.plan import Observed, Reason, decide
from buildgraph.engine import Engine, Options
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.fake import FakeExecutor
from buildgraph.images.fake import FakeImages
from buildgraph.lockfile import current
from buildgraph.report import PlainReporter
from buildgraph.stores.fake import MemoryStore
from buildgraph.workspace import Workspace

BUILDFILE = """
[project]
name = "imgs"
[stages.base]
from = "debian:12"
[stages.deps]
from = "base"
run = ["pip install x"]
[stages.train]
image = "deps"
command = "train"
outputs = ["model.pt"]
[stages.host]
command = "plot"
outputs = ["plot.png"]
"""
PINNED = "debian@sha256:" + "1" * 64


class Project:
    def __init__(self, root: Path, images: FakeImages) -> None:
        root.mkdir(exist_ok=True)
        self.root, self.images = root, images
        self.fake, self.store = FakeExecutor(), MemoryStore(root)
        self._opened: list[Workspace] = []

    def engine(self, text: str = BUILDFILE, **options: Any) -> Engine:
        spec, ws = parse(text), Workspace(self.root)
        self._opened.append(ws)
        reporter = PlainReporter(io.StringIO())
        opts, images = Options(in_images=True, **options), lambda: self.images
        return Engine(ws, spec, Graph(spec), self.fake, reporter, opts, images=images, store=self.store)

    def actions(self, *targets: str, **options: Any) -> dict[str, tuple[str, list[str]]]:
        decisions = self.engine(read_only=True, **options).status(list(targets))
        return {d.stage: (d.action, [r.kind for r in d.reasons]) for d in decisions}

    def run(self, *targets: str, **options: Any) -> dict[str, str]:
        summary = self.engine(**options).run(list(targets))
        return {name: o.status.value for name, o in summary.outcomes.items()}

    def recorded(self) -> dict[str, Any]:
        return dict(current(self.root / "Buildfile.lock", self.root / ".bg/journal.jsonl").stages)

    def close(self) -> None:
        for ws in self._opened:
            ws.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path / "p", FakeImages(pins={"debian:12": PINNED}, project="imgs"))
    yield made
    made.close()


def test_status_keys_every_image_without_building_or_pulling(project: Project) -> None:
    assert project.actions("train") == {
        "base": ("build", ["never-built"]),
        "deps": ("build", ["never-built"]),
        "train": ("run", ["never-built"]),  # not tentative: the image key is known before building
    }
    assert project.images.builds == [] and project.images.pulls == []


def test_a_run_pins_the_base_builds_parents_first_and_runs_in_the_image(project: Project) -> None:
    assert project.run("train") == {"base": "done", "deps": "done", "train": "done"}
    assert project.images.builds == ["base", "deps"] and project.images.pulls == ["debian:12"]
    lock = project.recorded()
    assert lock["base"]["material"]["base"] == {"image": "debian:12", "digest": PINNED}
    assert lock["deps"]["kind"] == "image" and lock["deps"]["image"].startswith("bg/imgs/deps:")
    (job,) = project.fake.jobs
    assert job.image == lock["deps"]["image"]
    assert project.run("train") == dict.fromkeys(("base", "deps", "train"), "skipped")
    assert project.images.builds == ["base", "deps"] and project.images.pulls == ["debian:12"]


def test_an_image_removed_from_the_engine_is_built_again_and_nothing_below_it(project: Project) -> None:
    project.run("train")
    project.images.remove("deps", project.recorded()["deps"]["key"])
    assert project.actions("train") == {
        "base": ("skip", []),
        "deps": ("build", ["image-missing"]),
        "train": ("skip", []),  # its key names the image's key, which did not change
    }
    assert project.run("train") == {"base": "skipped", "deps": "done", "train": "cutoff"}


def test_an_image_built_by_another_checkout_is_recorded_not_rebuilt(project: Project, tmp_path: Path) -> None:
    project.run("deps")
    other = Project(tmp_path / "other", project.images)
    try:
        assert other.run("deps") == {"base": "skipped", "deps": "skipped"}
        assert other.recorded() == project.recorded()
    finally:
        other.close()
    assert project.images.builds == ["base", "deps"]


def test_a_forced_image_is_built_although_present(project: Project) -> None:
    project.run("deps")
    assert project.actions("deps", force=frozenset({"deps"}))["deps"] == ("build", ["forced"])
    assert project.run("deps", force=frozenset({"deps"})) == {"base": "skipped", "deps": "done"}
    assert project.images.builds == ["base", "deps", "deps"]


def test_a_failed_build_blocks_the_stages_that_run_in_it(project: Project) -> None:
    project.images.failing.add("deps")
    engine = project.engine()
    summary = engine.run(["train"])
    assert {n: o.status.value for n, o in summary.outcomes.items()} == {
        "base": "done",
        "deps": "failed",
        "train": "blocked",
    }
    assert summary.outcomes["deps"].log_path == ".bg/logs/deps.log"
    assert "fake build of deps on bg/imgs/base:" in (project.root / ".bg/logs/deps.log").read_text()
    assert set(project.recorded()) == {"base"}


def test_a_base_the_registry_does_not_have_stops_the_run(project: Project) -> None:
    project.images.pins.clear()
    with pytest.raises(EnvironmentProblem, match="cannot pull debian:12"):
        project.run("deps")


def test_the_image_backend_is_made_only_for_a_selection_holding_an_image(project: Project) -> None:
    spec, ws = parse(BUILDFILE), Workspace(project.root)
    try:
        never = lambda: pytest.fail("a host-only selection asked for Docker")  # noqa: E731
        engine = Engine(ws, spec, Graph(spec), project.fake, PlainReporter(io.StringIO()), Options(),
                        images=never, store=project.store)
        assert engine.select(["host"]) == ["host"]
        no_docker = Engine(ws, spec, Graph(spec), project.fake, PlainReporter(io.StringIO()), Options(),
                           store=project.store)
        with pytest.raises(EnvironmentProblem, match="holds image stages, and this engine has no Docker"):
            no_docker.select(["deps"])
    finally:
        ws.close()


# ---------------------------------------------------------------- the rule, pure (core/plan.py)
MATERIAL = {"kind": "image", "base": "b", "run": ["x"]}


def test_decide_an_image_by_what_the_engine_holds() -> None:
    recorded = {"kind": "image", "key": "k", "material": MATERIAL}
    assert decide("i", "k", MATERIAL, None, Observed(image_present=True)).action == "skip"
    missing = decide("i", "k", MATERIAL, recorded, Observed(image_present=False))
    assert (missing.action, missing.reasons) == ("build", (Reason("image-missing"),))
    changed = decide("i", "k2", {**MATERIAL, "run": ["y"]}, recorded, Observed(image_present=False))
    assert (changed.action, [r.kind for r in changed.reasons]) == ("build", ["instructions-changed"])
    forced = decide("i", "k", MATERIAL, recorded, Observed(image_present=True, forced=True))
    assert (forced.action, forced.reasons) == ("build", (Reason("forced"),))
