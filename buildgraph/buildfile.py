"""Reading Buildfile.toml from disk: `load` = read the file, `core.parse`, then the checks that
need the filesystem (inputs that exist or are produced, copy sources that match something,
symlinks that stay inside the project). Problems of all phases are reported together.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from buildgraph.core.graph import Graph, glob_root
from buildgraph.core.parse import analyse
from buildgraph.core.spec import ImageStage, RunStage, Spec
from buildgraph.core.suggest import closest
from buildgraph.core.values import at, problem, show
from buildgraph.errors import BuildfileError, Problem, UsageError

__all__ = ["filesystem_problems", "load", "read_text"]

_GLOB_CHARS = frozenset("*?[")
_OUTSIDE_HINT = (
    "buildgraph tracks only files inside the project: copy the data in, or move the link's target inside"
)


def load(
    root: Path,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Spec:
    """The validated `Spec` of `root/file`; raises `BuildfileError` with every problem found."""
    text = read_text(root, file)
    analysis = analyse(text, file, args, params)
    problems = analysis.problems + filesystem_problems(root, analysis.spec, file, analysis.graph)
    if problems:
        raise BuildfileError(problems)
    return analysis.spec


def read_text(root: Path, file: str = "Buildfile.toml") -> str:
    path = root / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"no {file} in {root}", "`bg init` scaffolds one; or use -C DIR for another project"
        ) from None
    except OSError as error:
        raise BuildfileError([Problem(file, "", f"cannot read: {error.strerror or error}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise BuildfileError(
            [Problem(file, f"{line}:{column}", "not valid UTF-8", "save the file as UTF-8")]
        ) from None


class _Tree:
    """Project paths → real paths, one `lstat` per path thanks to a cache of parent directories."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._real: dict[str, str | None] = {"": self.root}

    def real(self, rel: str) -> str | None:
        """The real path of project path `rel`, or None when it does not exist."""
        if rel not in self._real:
            parent, _, leaf = rel.rpartition("/")
            base = self.real(parent)
            self._real[rel] = None if base is None else self._follow(os.path.join(base, leaf))
        return self._real[rel]

    def _follow(self, full: str) -> str | None:
        try:
            mode = os.lstat(full).st_mode
        except OSError:
            return None
        if not stat.S_ISLNK(mode):
            return full
        real = os.path.realpath(full)
        return real if os.path.exists(real) or not self.inside(real) else None

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def siblings(self, rel: str) -> list[str]:
        parent = rel.rpartition("/")[0]
        real = self.real(parent)
        try:
            names = os.listdir(real) if real else []
        except OSError:
            return []
        return [f"{parent}/{name}" if parent else name for name in names]


def filesystem_problems(
    root: Path, spec: Spec, file: str = "Buildfile.toml", graph: Graph | None = None
) -> list[Problem]:
    """Problems with the paths a (parsed) Spec names, as they are on disk under `root`."""
    tree, graph, problems = _Tree(root), graph or Graph(spec), []
    for stage in spec.stages.values():
        where = at("stages", stage.name)
        if isinstance(stage, RunStage):
            for index, path in enumerate(stage.inputs):
                problems += _path_problems(tree, graph, path, at(at(where, "inputs"), index))
            for index, output in enumerate(stage.outputs):
                problems += _output_problems(tree, output.path, at(at(where, "outputs"), index), file)
        elif isinstance(stage, ImageStage):
            for index, copy in enumerate(stage.copy):
                for source in copy.sources:
                    problems += _source_problems(tree, graph, source, at(at(at(where, "copy"), index), "src"))
            if stage.ignore:
                problems += _path_problems(tree, graph, stage.ignore, at(where, "ignore"))
    return [problem(file, where, message, hint) for where, message, hint in problems]


_Found = list[tuple[str, str, str]]  # (where, message, hint)


def _path_problems(tree: _Tree, graph: Graph, path: str, where: str) -> _Found:
    real = tree.real(path)
    if real is not None and not tree.inside(real):
        return [(where, f"{show(path)} resolves outside the project (through a symlink)", _OUTSIDE_HINT)]
    if real is None and graph.producer(path) is None and not graph.producers_inside(path):
        return [
            (where, f"{show(path)} does not exist and no stage outputs it", _missing_hint(tree, graph, path))
        ]
    return []


def _missing_hint(tree: _Tree, graph: Graph, path: str) -> str:
    outputs = [o.path for s in graph.spec.run_stages() for o in s.outputs]
    match = closest(path, _candidates(tree.siblings(path), outputs))
    if match is not None:
        return f"did you mean {show(match)}?"
    return "create it, or add it to the outputs of the stage that makes it"


def _candidates(*groups: Iterable[str]) -> list[str]:
    return [name for group in groups for name in group]


def _output_problems(tree: _Tree, path: str, where: str, file: str) -> _Found:
    if path == file:
        return [(where, f"{show(path)} is the Buildfile itself", "choose another output path")]
    real = tree.real(path)
    if real is not None and not tree.inside(real):
        return [
            (
                where,
                f"{show(path)} resolves outside the project (through a symlink)",
                "remove the symlink: outputs are written inside the project",
            )
        ]
    return []


def _source_problems(tree: _Tree, graph: Graph, source: str, where: str) -> _Found:
    if _GLOB_CHARS.isdisjoint(source):
        return _path_problems(tree, graph, source, where)
    base = glob_root(source)
    if glob.glob(source, root_dir=tree.root, recursive=True) or (base and graph.producer(base)):
        return []
    return [
        (where, f"{show(source)} matches nothing", "check the pattern; it is relative to the project root")
    ]
