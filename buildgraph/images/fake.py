"""An image engine in memory (`engine.image_step.ImageBackend`), for the engine's tests.

Images are tags → the key they carry; registry bases are pins given up front
(`{"debian:12": "debian@sha256:…"}`), "pulled" when first asked for. It records the builds
and pulls asked of it; building for real is tested against a real engine in tests/docker.

    images = FakeImages(pins={"debian:12": "debian@sha256:" + "0" * 64})
    engine = Engine(ws, spec, graph, FakeExecutor(), reporter, Options(), images=lambda: images, store=store)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildgraph.core.spec import DebianBase, ImageStage
from buildgraph.errors import EnvironmentProblem, StageFailed
from buildgraph.lines import LineSink
from buildgraph.records.debian_base import DebianRecord


class FakeImages:
    def __init__(self, pins: Mapping[str, str] | None = None, project: str = "fake") -> None:
        self.project = project
        self.pins = dict(pins or {})  # registry reference → its pinned reference
        self.images: dict[str, str] = {}  # tag → the key it carries
        self.local: set[str] = set()  # registry references pulled (or pinned ones present)
        self.builds: list[str] = []  # stage names, in the order built
        self.pulls: list[str] = []
        self.failing: set[str] = set()  # stages whose build fails as the stage's fault
        self.debian_pins: list[dict[str, str]] = []  # the pins each Debian base was asked at
        self._lock = threading.Lock()  # builds run on worker threads

    def tag(self, stage: str, key: str) -> str:
        return f"bg/{self.project}/{stage}:{key[:32]}"

    def has_image(self, stage: str, key: str) -> bool:
        with self._lock:
            return self.images.get(self.tag(stage, key)) == key

    def present(self, reference: str) -> bool:
        with self._lock:
            return reference in self.local or reference in self.images

    def pin(self, reference: str, pull: bool = False, on_line: LineSink | None = None) -> str:
        if reference not in self.pins:
            raise EnvironmentProblem(f"cannot pull {reference}: not in this fake registry")
        pinned = self.pins[reference]
        with self._lock:
            if pull or reference not in self.local:
                self.pulls.append(reference)
                self.local |= {reference, pinned}
        return pinned

    def build(
        self,
        stage: ImageStage,
        key: str,
        parent: str,
        context: Any,
        args: Mapping[str, str],
        on_line: LineSink | None,
        secrets: Mapping[str, Path],
    ) -> None:
        if on_line is not None:
            on_line(f"fake build of {stage.name} on {parent}")
        if stage.name in self.failing:
            raise StageFailed(f"image stage '{stage.name}': a RUN instruction failed")
        with self._lock:
            self.builds.append(stage.name)
            self.images[self.tag(stage.name, key)] = key

    def debian_base(
        self, base: DebianBase, on_line: LineSink | None, pins: Mapping[str, str] | None = None
    ) -> tuple[str, DebianRecord | None]:
        """Installs the pinned versions, else version "1" of each package asked for."""
        with self._lock:
            self.debian_pins.append(dict(pins or {}))
        packages = dict(pins) if pins else {name: "1" for name in ("base-files", *base.packages)}
        return f"bg/debian-base:{base.suite}", DebianRecord("0" * 64, packages)

    def remove(self, stage: str, key: str) -> None:
        """`docker rmi`: the image of `stage` built under `key` is gone."""
        with self._lock:
            del self.images[self.tag(stage, key)]
