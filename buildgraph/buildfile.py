"""Reading Buildfile.toml from disk: `load` = read the file, `core.parse`, then the checks that
need the filesystem (inputs that exist or are produced, copy sources that match something,
symlinks that stay inside the project). Problems of all phases are reported together.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildgraph import __version__
from buildgraph.atomic import atomic_write
from buildgraph.core.graph import Graph, glob_root
from buildgraph.core.spec import ImageStage, RunStage, Spec
from buildgraph.core.suggest import closest
from buildgraph.core.values import at, problem, show, show_raw
from buildgraph.errors import BuildfileError, Problem, UsageError
from buildgraph.gcpause import paused
from buildgraph.stores import symlinks
from buildgraph.stores.tree import scan_tree

__all__ = ["ParamsFiles", "filesystem_problems", "load", "load_graph", "read_text"]

_GLOB_CHARS = frozenset("*?[")
_OUTSIDE_HINT = (
    "buildgraph tracks only files inside the project: copy the data in, or move the link's target inside"
)
_LINK_HINTS = {  # why a symlink is refused → what to do
    symlinks.OUTSIDE: _OUTSIDE_HINT,
    symlinks.DANGLING: "point the link at an existing file, or remove it",
    symlinks.LOOP: "remove the link, or point it at a folder that does not hold it",
    symlinks.SPECIAL: "point the link at a file or a directory",
}


def load(
    root: Path,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Spec:
    """The validated `Spec` of `root/file`; raises `BuildfileError` with every problem found."""
    return load_graph(root, file, args, params)[0]


def load_graph(
    root: Path,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> tuple[Spec, Graph]:
    """`load`, and the stage graph that validating it built (not built twice)."""
    text = read_text(root, file)
    machine = _machine()  # the automatic platform args (TARGETARCH …) follow it
    key = _cache_key(file, text, args, params, machine)
    with paused():  # 10,000 stages: no collections while they are made (nor scanning them)
        found = _cached(root, key)
        if found is not None:
            spec, graph = found
            problems = filesystem_problems(root, spec, file, graph)  # the disk may have changed since
    if found is None:
        from buildgraph.core.parse import analyse  # with its TOML reader: only when parsing
        from buildgraph.core.variables import platform_args

        params_files = ParamsFiles(root)
        analysis = analyse(text, file, args, params, params_files, platform_args(machine))
        spec = analysis.spec
        graph = analysis.graph if analysis.graph is not None else Graph(spec)
        problems = analysis.problems + filesystem_problems(root, spec, file, graph)
        if not analysis.problems:
            graph.order()  # computed once, kept in the cache with the rest
            _remember(root, key, spec, graph, params_files.digests)
    if problems:
        raise BuildfileError(problems)
    return spec, graph


def _machine() -> str:
    """`platform.machine()`, without importing `platform` where uname has it (POSIX)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


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


_SPEC_CACHE = ".bg/buildfile.pickle"  # the last valid Spec and Graph, after a line with their key


def _cached(root: Path, key: str) -> tuple[Spec, Graph] | None:
    """The Spec and Graph `_remember` saved under `key`, if that is what the cache holds.

    Parsing and validating 1,000 stages takes ~50 ms (tomllib is pure Python), loading them
    ~5 ms; for a small Buildfile, importing tomllib alone costs twice importing pickle.
    `.bg/` is trusted already: whoever can write it can plant cache entries."""
    try:
        with open(root / _SPEC_CACHE, "rb") as f:
            if f.readline() != f"{key}\n".encode():
                return None
            import pickle

            spec, graph, read = pickle.load(f)
    except Exception:  # noqa: BLE001 - absent, another key's, or damaged: parse instead
        return None
    if not isinstance(spec, Spec) or not isinstance(graph, Graph) or not _unchanged(root, read):
        return None
    return spec, graph


def _unchanged(root: Path, read: Mapping[str, str]) -> bool:
    """Whether the params files a parse read still hold the bytes it read (their values are in it)."""
    try:
        return all(_digest((root / path).read_bytes()) == digest for path, digest in read.items())
    except OSError:
        return False


def _remember(root: Path, key: str, spec: Spec, graph: Graph, read: Mapping[str, str]) -> None:
    cache = root / _SPEC_CACHE
    if cache.parent.is_dir():
        _write_cache(cache, key, (spec, graph, dict(read)))
        return
    # Only in a project bg has run in: `.bg` is made later by this very command if it runs or
    # checks stages, so the first build leaves the cache too (parsing 10,000 stages takes ~1 s).
    if not _unwritten:
        atexit.register(_write_unwritten)
    _unwritten.clear()  # the last project loaded is the one a command works on
    _unwritten[cache] = (key, (spec, graph, dict(read)))


_unwritten: dict[Path, tuple[str, tuple[Spec, Graph, dict[str, str]]]] = {}


def _write_unwritten() -> None:
    for cache, (key, parsed) in _unwritten.items():
        if cache.parent.is_dir():
            _write_cache(cache, key, parsed)


def _write_cache(cache: Path, key: str, parsed: tuple[Spec, Graph, dict[str, str]]) -> None:
    import pickle

    with contextlib.suppress(Exception):  # a cache: never worth failing for
        data = f"{key}\n".encode() + pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(cache, data, durable=False)


class ParamsFiles:
    """Reads the params files run stages name (`params = { file, keys }`) for `core.parse`:
    YAML, JSON or TOML by the file's extension, decoded into plain JSON values. Remembers the
    digest of each file it read, so that a cached parse is not reused once one is edited."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.digests: dict[str, str] = {}

    def __call__(self, path: str) -> Mapping[str, Any] | str:
        try:
            data = (self.root / path).read_bytes()
        except FileNotFoundError:
            return "no such file"
        except OSError as error:
            return error.strerror or str(error)
        self.digests[path] = _digest(data)
        try:
            doc = _decode(path, data)
        except (ValueError, UnicodeDecodeError) as error:  # every decoder's error is a ValueError
            return f"not valid {_format(path)} ({str(error).splitlines()[0]})"
        if not isinstance(doc, dict):
            return f"holds {type(doc).__name__}, not a table of keys"
        plain: dict[str, Any] = json.loads(json.dumps(doc, default=str))  # YAML dates and the like, as text
        return plain


def _format(path: str) -> str:
    suffix = path.rpartition(".")[2].lower()
    return {"yml": "YAML", "yaml": "YAML", "json": "JSON", "toml": "TOML"}.get(suffix, "YAML")


def _decode(path: str, data: bytes) -> Any:
    kind = _format(path)
    if kind == "JSON":
        return json.loads(data)
    if kind == "TOML":
        import tomllib

        return tomllib.loads(data.decode("utf-8-sig"))
    import yaml  # only for a project with a YAML params file

    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_key(
    file: str, text: str, args: Mapping[str, str] | None, params: Mapping[str, str] | None, machine: str = ""
) -> str:
    """What a parse depends on: the text, the overrides, the machine (its platform args) and bg's
    own code (its classes are pickled)."""
    digest = hashlib.sha256(_code_fingerprint().encode())
    for part in (
        file,
        text,
        json.dumps(sorted((args or {}).items())),
        json.dumps(sorted((params or {}).items())),
        machine,
    ):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _code_fingerprint() -> str:
    """Size and mtime of each module a Spec or Graph is made of: an edited bg reads no stale cache."""
    package = Path(__file__).parent
    found = [__version__, sys.version]
    for folder in (package / "core", package):
        with os.scandir(folder) as entries:
            found += [
                f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}"
                for e in entries
                if e.name.endswith(".py")
            ]
    return "\n".join(sorted(found))


_UNSEEN = "\0"  # not a path: `_Tree` has not resolved this one yet
_CROWDED = 32  # paths in one folder from which it is listed once, rather than each path lstat-ed


class _Tree:
    """Project paths → real paths, one `lstat` per path thanks to a cache of parent directories."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._real: dict[str, str | None] = {"": self.root}
        self._is_dir: dict[str, bool] = {}  # real path → a directory? (from the stat that found it)
        self._listed: dict[str, dict[str, tuple[bool, bool]]] = {}  # folder → name → (link?, dir?)
        self.links: dict[str, tuple[str, str]] = {}  # project path of a symlink → (shown target, why)

    def list_crowded(self, paths: Iterable[str], least: int) -> None:
        """List once each folder holding `least` or more of `paths` (a folder of 10,000 data
        files: one directory read, not 10,000 `lstat`s); its entries' types come from the listing."""
        counts: dict[str, int] = {}
        for path in paths:
            parent = path.rpartition("/")[0]
            counts[parent] = counts.get(parent, 0) + 1
        for parent in (folder for folder, count in counts.items() if count >= least):
            real = self.real(parent)
            if real is None or not os.access(real, os.X_OK):  # unsearchable: lstat fails where it lists
                continue
            try:
                with os.scandir(real) as entries:
                    self._listed[real] = {
                        e.name: (e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries
                    }
            except OSError:
                continue  # unreadable: each path is looked up alone

    def real(self, rel: str) -> str | None:
        """The real path of project path `rel`, or None when it does not exist."""
        found = self._real.get(rel, _UNSEEN)
        if found is _UNSEEN:
            parent, _, leaf = rel.rpartition("/")
            base = self.real(parent)
            # `base` is a real path: "/" only for a project at the root
            found = None if base is None else self._follow(rel, base, leaf)
            self._real[rel] = found
        return found

    def _follow(self, rel: str, base: str, leaf: str) -> str | None:
        full = f"{base.rstrip('/')}/{leaf}"  # `base` is a real path: "/" only for a project at the root
        listed = self._listed.get(base, {}).get(leaf)
        if listed is not None and not listed[0]:
            self._is_dir[full] = listed[1]
            return full
        if listed is None:  # not listed, or not by that name (a case-insensitive filesystem): ask
            try:
                mode = os.lstat(full).st_mode
            except OSError:
                return None
            if not stat.S_ISLNK(mode):
                self._is_dir[full] = stat.S_ISDIR(mode)
                return full
        real = os.path.realpath(full)
        if not self.inside(real):
            self.links[rel] = (real, symlinks.OUTSIDE)
            return real
        try:
            self._is_dir[real] = stat.S_ISDIR(os.stat(real).st_mode)
            return real
        except OSError:
            self.links[rel] = (os.readlink(full), symlinks.DANGLING)
            return None

    def link_problem(self, path: str) -> tuple[str, str] | None:
        """The message and hint for a refused symlink that is `path` or one of its folders."""
        if not self.links:  # none met yet: none on `path`, whose folders are all resolved
            return None
        parts = path.split("/")
        for rel in ("/".join(parts[:count]) for count in range(1, len(parts) + 1)):  # outermost first
            if rel in self.links:
                target, why = self.links[rel]
                place = "is" if rel == path else f"is inside {show(rel)},"
                return f"{show(path)} {place} a symlink to {show_raw(target)}, {why}", _LINK_HINTS[why]
        return None

    def tree_problem(self, path: str) -> tuple[str, str] | None:
        """The message and hint for the first refused symlink below the existing folder `path`."""
        real = self.real(path)
        if real is None or not self.is_dir(real):
            return None
        try:
            for _ in scan_tree(real, symlinks.Links(within=self.root, refuse=True)):
                pass
        except symlinks.LinkRefused as refused:
            inner, target = show(f"{path}/{refused.relpath}"), show_raw(refused.target)
            message = f"{inner} (inside {show(path)}) is a symlink to {target}, {refused.reason}"
            return message, _LINK_HINTS[refused.reason]
        except OSError:
            return None  # unreadable: staging says so, with the reason
        return None

    def is_dir(self, real: str) -> bool:
        known = self._is_dir.get(real)
        return os.path.isdir(real) if known is None else known

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
    paths = (p for s in spec.run_stages() for p in (*s.inputs, *(o.path for o in s.outputs)))
    tree.list_crowded(paths, _CROWDED)
    for stage in spec.stages.values():
        if isinstance(stage, RunStage):  # `where` is spelled out only for a problem: 1,000s of paths
            for index, path in enumerate(stage.inputs):
                if found := _path_problems(tree, graph, path, "", walk=True):
                    problems += _at(found, at(at(at("stages", stage.name), "inputs"), index))
            for index, output in enumerate(stage.outputs):
                if found := _output_problems(tree, output.path, "", file):
                    problems += _at(found, at(at(at("stages", stage.name), "outputs"), index))
        elif isinstance(stage, ImageStage):
            where = at("stages", stage.name)
            for index, copy in enumerate(stage.copy):
                for source in () if copy.from_stage or copy.from_image else copy.sources:
                    problems += _source_problems(tree, graph, source, at(at(at(where, "copy"), index), "src"))
            if stage.ignore:
                problems += _path_problems(tree, graph, stage.ignore, at(where, "ignore"))
    return [problem(file, where, message, hint) for where, message, hint in problems]


_Found = list[tuple[str, str, str]]  # (where, message, hint)


def _at(found: _Found, where: str) -> _Found:
    return [(where, message, hint) for _, message, hint in found]


def _path_problems(tree: _Tree, graph: Graph, path: str, where: str, walk: bool = False) -> _Found:
    """Problems of a path that must exist or be produced; `walk`: also of the symlinks in it (a
    run stage's input: its digest and staging follow them; an image's `copy` keeps them as links)."""
    real = tree.real(path)
    produced = graph.producer(path) is not None
    if real is None and (produced or graph.producers_inside(path)):
        return []
    link = tree.link_problem(path)
    if link is not None:
        return [(where, *link)]
    if real is None:
        return [
            (where, f"{show(path)} does not exist and no stage outputs it", _missing_hint(tree, graph, path))
        ]
    # an upstream's output holds only the links that ingest keeps: not walked again
    link = tree.tree_problem(path) if walk and not produced else None
    return [(where, *link)] if link is not None else []


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
