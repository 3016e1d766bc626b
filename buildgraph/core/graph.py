"""The stage graph: who feeds whom, in what order, and what is wrong with the wiring.

An edge `a → b` means b needs a: b's image is a (`image = "a"`), b builds on a
(`from = "a"`), or b reads or copies a path that is equal to, inside, or around one of a's
outputs. Uses stdlib `graphlib`; networkx costs ~0.23 s to import and start-up is benchmarked.
"""

from __future__ import annotations

import bisect
import graphlib
import heapq
from collections.abc import Iterable

from buildgraph.core.spec import ImageStage, Output, RunStage, Spec, Stage, StageRef
from buildgraph.core.suggest import closest, did_you_mean
from buildgraph.core.values import at, problem, show, show_raw
from buildgraph.errors import Problem, UsageError

__all__ = ["Graph", "validate_graph"]

_GLOB_CHARS = frozenset("*?[")


def _ancestors(path: str) -> list[str]:
    """`a/b/c` → [`a/b/c`, `a/b`, `a`]."""
    found = [path]
    while "/" in path:
        path = path.rpartition("/")[0]
        found.append(path)
    return found


def glob_root(source: str) -> str:
    """The directory part of a `copy` source before its first wildcard (`out/*.txt` → `out`)."""
    plain: list[str] = []
    for part in source.split("/"):
        if not _GLOB_CHARS.isdisjoint(part):
            break
        plain.append(part)
    return "/".join(plain)


class Graph:
    """Edges of a parsed `Spec`. Unknown references and self-references are left out (see
    `validate_graph`), so a Graph can be built from a best-effort Spec to explain problems."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._index = {name: i for i, name in enumerate(spec.stages)}
        self._producers: dict[str, tuple[str, str]] = {}  # output path → (stage, path)
        for stage in spec.run_stages():
            for output in stage.outputs:
                self._producers.setdefault(output.path, (stage.name, output.path))
        self._outputs = sorted(self._producers)
        # stage → [(upstream, why)]; `why` (formatted only to explain a cycle) is (verb, path)
        self.edges: dict[str, list[tuple[str, tuple[str, str]]]] = {
            stage.name: self._edges(stage) for stage in spec.stages.values()
        }
        self._up = {name: tuple(dict.fromkeys(u for u, _ in edges)) for name, edges in self.edges.items()}
        down: dict[str, list[str]] = {name: [] for name in spec.stages}
        for name, ups in self._up.items():
            for upstream in ups:
                down[upstream].append(name)
        self._down = {name: tuple(names) for name, names in down.items()}
        self._order: list[str] | None = None

    def upstreams(self, name: str) -> tuple[str, ...]:
        return self._up[name]

    def downstreams(self, name: str) -> tuple[str, ...]:
        return self._down[name]

    def producer(self, path: str) -> tuple[str, str] | None:
        """(stage, declared output) for the output equal to or containing project `path`."""
        for candidate in _ancestors(path):
            found = self._producers.get(candidate)
            if found is not None:
                return found
        return None

    def producers_inside(self, path: str) -> list[tuple[str, str]]:
        """(stage, output) for every declared output strictly inside directory `path`."""
        prefix, outputs = path + "/", self._outputs
        index = bisect.bisect_left(outputs, prefix)
        found = []
        # indexed, not sliced: a slice copies every later output, once per path (quadratic)
        while index < len(outputs) and outputs[index].startswith(prefix):
            found.append(self._producers[outputs[index]])
            index += 1
        return found

    def input_sources(self, name: str) -> list[tuple[str, str | None]]:
        """Each input of run stage `name` with the stage that produces it (None: a workspace path)."""
        stage = self.spec.stages[name]
        if not isinstance(stage, RunStage):
            return []
        return [(path, found[0] if (found := self.producer(path)) else None) for path in stage.inputs]

    def order(self) -> list[str]:
        """All stages, upstreams first; ties go to the stage declared first."""
        if self._order is None:
            sorter = graphlib.TopologicalSorter(self._up)
            sorter.prepare()  # raises graphlib.CycleError; `validate_graph` reports cycles first
            ready: list[tuple[int, str]] = []
            order: list[str] = []
            while sorter.is_active():
                for name in sorter.get_ready():
                    heapq.heappush(ready, (self._index[name], name))
                _, name = heapq.heappop(ready)
                order.append(name)
                sorter.done(name)
            self._order = order
        return list(self._order)

    def closure(self, targets: Iterable[str]) -> list[str]:
        """`targets` and every stage they need, upstreams first."""
        wanted: set[str] = set()
        stack = list(targets)
        for target in stack:
            if target not in self.spec.stages:
                hint = did_you_mean(target, self.spec.stages).strip(" ()") or "`bg graph` lists the stages"
                raise UsageError(f"unknown stage '{show_raw(target)}'", hint)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self._up[name])
        return [name for name in self.order() if name in wanted]

    def _edges(self, stage: Stage) -> list[tuple[str, tuple[str, str]]]:
        edges: list[tuple[str, tuple[str, str]]] = []
        if isinstance(stage, RunStage):
            if stage.image in self._index:
                edges.append((stage.image, ("image", "")))
            for path in stage.inputs:
                edges.extend(self._path_edges(path, "reads"))
        else:
            if isinstance(stage.base, StageRef) and stage.base.stage in self._index:
                edges.append((stage.base.stage, ("from", "")))
            for copy in stage.copy:
                if copy.from_stage in self._index:  # COPY --from: that image is built first
                    edges.append((copy.from_stage, ("copies from", "")))
                if copy.from_stage or copy.from_image:
                    continue  # its sources are paths in that image, not in the project
                for source in copy.sources:
                    edges.extend(self._path_edges(glob_root(source), "copies"))
        return [edge for edge in edges if edge[0] != stage.name]

    def _path_edges(self, path: str, verb: str) -> list[tuple[str, tuple[str, str]]]:
        if not path:
            return []
        found = self.producer(path)
        around = [found] if found else self.producers_inside(path)
        return [(stage, (verb, path)) for stage, _ in around]


def validate_graph(spec: Spec, file: str, graph: Graph | None = None) -> list[Problem]:
    """Problems in how stages refer to each other: unknown or wrong-kind references, outputs
    claimed twice or nested, stages reading their own outputs, and cycles."""
    problems: list[Problem] = []
    images = [stage.name for stage in spec.image_stages()]
    for stage in spec.stages.values():
        problems.extend(_reference_problems(spec, stage, images, file))
    problems.extend(_output_problems(spec, file))
    problems.extend(_cycle_problems(graph or Graph(spec), file))
    return problems


def _reference_problems(spec: Spec, stage: Stage, images: list[str], file: str) -> list[Problem]:
    if isinstance(stage, ImageStage):
        return _base_problems(spec, stage, file)
    return _image_problems(spec, stage, images, file)


def _base_problems(spec: Spec, stage: ImageStage, file: str) -> list[Problem]:
    """An image stage's `from` naming the stage itself, or a run stage."""
    if not isinstance(stage.base, StageRef):
        return []
    parent = stage.base.stage
    where = at(at("stages", stage.name), "from")
    if parent == stage.name:
        return [
            problem(
                file,
                where,
                f"'{parent}' is this stage itself",
                "a stage named like its base image hides that image: rename the stage, "
                f"or write the full reference (docker.io/library/{parent})",
            )
        ]
    if parent not in spec.stages:
        return []  # the parent stage itself is invalid: that problem is reported already
    if isinstance(spec.stages[parent], RunStage):
        return [
            problem(
                file,
                where,
                f"'{parent}' is a run stage, not an image stage",
                "`from` names an image stage (one with `from`) or a registry image",
            )
        ]
    return []


def _image_problems(spec: Spec, stage: RunStage, images: list[str], file: str) -> list[Problem]:
    """A run stage's `image` naming no stage, or a run stage."""
    if not stage.image:
        return []
    where = at(at("stages", stage.name), "image")
    target = spec.stages.get(stage.image)
    if target is None:
        match = closest(stage.image, images)
        hint = (
            f"did you mean '{match}'?"
            if match
            else "declare it as an image stage, or leave `image` out to run on the host"
        )
        return [problem(file, where, f"no stage named {show(stage.image)}", hint)]
    if isinstance(target, RunStage):
        return [
            problem(
                file,
                where,
                f"'{stage.image}' is a run stage, not an image stage",
                "image stages: " + (", ".join(images) or "none (leave `image` out to run on the host)"),
            )
        ]
    return []


def _output_problems(spec: Spec, file: str) -> list[Problem]:
    problems: list[Problem] = []
    owners: dict[str, tuple[str, Output]] = {}  # output path → (stage, output)
    around: dict[str, tuple[str, Output]] = {}  # every directory above an output → (stage, output)
    for stage in spec.run_stages():
        for index, output in enumerate(stage.outputs):
            clash = _clash(output, owners, around, stage.name)
            if clash:
                where = f"{at('stages', stage.name)}.outputs[{index}]"
                problems.append(problem(file, where, clash, "each path is written by one stage only"))
            owners.setdefault(output.path, (stage.name, output))
            for parent in _ancestors(output.path)[1:]:
                around.setdefault(parent, (stage.name, output))
        problems.extend(_own_output_problems(stage, file))
    return problems


def _shown(output: Output) -> str:
    return show(output.path + "/" if output.is_dir else output.path)


def _clash(
    output: Output, owners: dict[str, tuple[str, Output]], around: dict[str, tuple[str, Output]], name: str
) -> str:
    def whose(owner: str) -> str:
        return "this stage" if owner == name else f"stage '{owner}'"

    if output.path in owners:
        return f"{_shown(output)} is also an output of {whose(owners[output.path][0])}"
    for parent in _ancestors(output.path)[1:]:
        if parent in owners:
            owner, other = owners[parent]
            return f"{_shown(output)} is inside {_shown(other)}, an output of {whose(owner)}"
    if output.path in around:
        owner, other = around[output.path]
        return f"{_shown(output)} contains {_shown(other)}, an output of {whose(owner)}"
    return ""


def _own_output_problems(stage: RunStage, file: str) -> list[Problem]:
    problems = []
    for index, path in enumerate(stage.inputs):
        for output in stage.outputs:
            if (
                path == output.path
                or path.startswith(output.path + "/")
                or output.path.startswith(path + "/")
            ):
                problems.append(
                    problem(
                        file,
                        at(at(at("stages", stage.name), "inputs"), index),
                        f"{show(path)} overlaps this stage's own output {show(output.path)}",
                        "a stage cannot read what it writes; split it into two stages",
                    )
                )
                break
    return problems


def _cycle_problems(graph: Graph, file: str) -> list[Problem]:
    """One problem per cycle (cycles sharing a stage are reported once)."""
    index = {name: i for i, name in enumerate(graph.spec.stages)}
    # lists, not sets: which cycle graphlib finds must not depend on string hashing
    remaining = {name: list(graph.upstreams(name)) for name in graph.spec.stages}
    problems: list[Problem] = []
    while True:
        try:
            graphlib.TopologicalSorter(remaining).prepare()
            return problems
        except graphlib.CycleError as error:
            cycle: list[str] = error.args[1][:-1]
        start = min(range(len(cycle)), key=lambda i: index[cycle[i]])
        cycle = cycle[start:] + cycle[:start]
        problems.append(_cycle_problem(graph, cycle, file))
        for name in cycle:
            remaining.pop(name, None)
        for name, ups in remaining.items():
            remaining[name] = [up for up in ups if up not in cycle]


def _cycle_problem(graph: Graph, cycle: list[str], file: str) -> Problem:
    whys = []
    for upstream, downstream in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        verb, path = next(why for up, why in graph.edges[downstream] if up == upstream)
        if verb == "image":
            whys.append(f"{downstream} runs in image {upstream}")
        elif verb == "from":
            whys.append(f"{downstream} builds on {upstream}")
        else:
            whys.append(f"{downstream} {verb} {show(path)} from {upstream}")
    arrows = " → ".join(cycle + cycle[:1])
    return problem(file, at("stages", cycle[0]), f"cycle: {arrows}", "; ".join(whys))
