"""`bg import dvc.yaml`: a DVC pipeline (with its params files) as a Buildfile of run stages.

Mapping (anything else is a warning naming its line in dvc.yaml):

| dvc.yaml                               | Buildfile                                                  |
|----------------------------------------|------------------------------------------------------------|
| `cmd` (a string / a list)              | `command` / `commands` (stop at the first failure)         |
| `deps`                                 | `inputs`                                                   |
| `outs`, `metrics`, `plots` (files)     | `outputs` (a directory gets its '/': from dvc.lock, the    |
|                                        | workspace, or else guessed from the name, with a warning)  |
| `params` (params.yaml keys, other      | `params = [{ file, keys }]`: the key holds those values    |
| files' keys; a whole file)             | only (a whole file: an input)                              |
| a stage's or the top-level `metrics`   | `metrics` (the first JSON file inside its outputs)         |
| `foreach`/`do`, `matrix`               | one stage per iteration, `name@key` named `name-key`       |
| `vars`, `${…}`                         | inline values substituted; values of vars files (params.yaml|
|                                        | by default) become `${params.key}`, tracked as DVC does    |
| `wdir`                                 | paths prefixed, commands run after `cd` there              |
| `frozen`, `always_changed`, `desc`     | `frozen`, `always`, `description`                          |

The module does no I/O: the command hands it a `Workspace` that reads project files.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from buildgraph.errors import UsageError
from buildgraph.importers.dvc_yaml import Context, Located, Path, Tracked, load, lookup, to_text
from buildgraph.importers.render import render

__all__ = ["Workspace", "import_dvc"]

DEFAULT_PARAMS = "params.yaml"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Keys a stage may have whose meaning bg keeps; every other key is warned.
_HANDLED = {
    "cmd",
    "deps",
    "outs",
    "params",
    "metrics",
    "plots",
    "wdir",
    "frozen",
    "always_changed",
    "desc",
    "vars",
}
_IGNORED_TOP = {
    "artifacts": "artifacts are a model registry's metadata: not part of a Buildfile",
    "datasets": "datasets are DVC's data-registry entries: not part of a Buildfile",
    "params": "top-level params only feed `dvc params diff`: bg keys stages by the params they list",
    "plots": "bg draws no plots: top-level plots are not imported (their files stay outputs)",
}


@dataclass(frozen=True)
class Workspace:
    """What the importer may know of the project: a file's text, and whether a path is a directory."""

    read: Callable[[str], str | None]
    is_dir: Callable[[str], bool | None]  # None: no such path


@dataclass
class _Stage:
    """One Buildfile run stage being made, with the params it tracks (file → keys, in order)."""

    table: dict[str, Any] = field(default_factory=dict)
    params: dict[str, list[str]] = field(default_factory=dict)

    def track(self, file: str, key: str) -> None:
        keys = self.params.setdefault(file, [])
        if key not in keys:
            keys.append(key)


def import_dvc(text: str, file: str, project: str, base: str, workspace: Workspace) -> tuple[str, list[str]]:
    """The Buildfile.toml for a dvc.yaml's `text` (in directory `base` of the project), and its warnings."""
    importer = _Importer(load(text, file), base, workspace)
    stages = importer.run()
    document: dict[str, Any] = {"project": {"name": project, "executor": "local"}, "stages": stages}
    header = [f"# Imported from {posixpath.normpath(posixpath.join(base, file))} by `bg import`."]
    header += [f"# warning: {w}" for w in importer.warnings]
    return render(header, document), importer.warnings


class _Importer:
    def __init__(self, doc: Located, base: str, workspace: Workspace) -> None:
        self.doc, self.base, self.workspace = doc, base, workspace
        self.warnings: list[str] = []
        self.dirs = _locked_dirs(workspace.read(self.path("dvc.lock")), base)
        self.stages: dict[str, _Stage] = {}

    # ------------------------------------------------------------ the document
    def run(self) -> dict[str, dict[str, Any]]:
        data = self.doc.data
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict) or not data["stages"]:
            raise UsageError(
                f"{self.doc.file}:{self.doc.line(('stages',))}: no stages: not a DVC pipeline",
                hint="a dvc.yaml has a `stages:` mapping; for a Dockerfile, name the Dockerfile",
            )
        for key in data:
            if key in _IGNORED_TOP:
                self.warn((key,), _IGNORED_TOP[key])
            elif key not in {"stages", "vars", "metrics"}:
                self.warn((key,), f"unknown top-level key {key!r} ignored")
        context = self.context(data.get("vars"), ("vars",), Context({}, {}, {}), self.base)
        for name, definition in data["stages"].items():
            self.definition(str(name), definition, context)
        for i, metric in enumerate(data.get("metrics") or []):
            self.attach_metric(self.path(str(metric)), ("metrics", i))
        return {name: self.finish(stage) for name, stage in self.stages.items()}

    def context(self, entries: Any, where: Path, outer: Context, wdir: str) -> Context:
        """`vars` (inline mappings and files, `file.yaml:key,…`), with the default params file first."""
        files, inline = dict(outer.files), dict(outer.inline)
        default = posixpath.normpath(posixpath.join(wdir, DEFAULT_PARAMS))
        if default not in files and (content := self.params_file(default)) is not None:
            files = {default: content, **files}
        for i, entry in enumerate(entries or []):
            if isinstance(entry, dict):
                inline.update(entry)
                continue
            name, _, keys = str(entry).partition(":")
            name = posixpath.normpath(posixpath.join(wdir, name))
            content = self.params_file(name)
            if content is None:
                self.warn((*where, i), f"vars file {name!r} not found: its references will not resolve")
                continue
            if keys:
                content = {k: lookup(content, k)[1] for k in keys.split(",") if lookup(content, k)[0]}
            files[name] = content
        return Context(dict(outer.local), inline, files)

    def definition(self, name: str, d: Any, context: Context) -> None:
        where: Path = ("stages", name)
        if not isinstance(d, dict):
            self.warn(where, "a stage is a mapping: skipped")
            return
        if "foreach" in d or "matrix" in d:
            for key, values in self.iterations(d, where, context):
                self.entry(f"{name}@{key}", d.get("do", d), where, context.within(values))
        else:
            self.entry(name, d, where, context)

    def iterations(
        self, d: dict[str, Any], where: Path, context: Context
    ) -> list[tuple[str, dict[str, Any]]]:
        """DVC's names and values of a foreach or matrix group (dvc/parsing/__init__.py)."""
        group = d.get("matrix", d.get("foreach"))
        if not isinstance(self.resolved_value(group, context), dict | list):
            self.warn(where, "foreach/matrix takes a list or a mapping: stage skipped")
            return []
        if "matrix" in d:
            axes = {k: self.resolved_value(v, context) for k, v in d["matrix"].items()}
            combos: list[tuple[str, dict[str, Any]]] = [("", {})]
            for axis, values in axes.items():
                combos = [
                    (f"{k}-{_fragment(axis, i, v)}".lstrip("-"), {**c, axis: v})
                    for k, c in combos
                    for i, v in enumerate(values)
                ]
            return [(k, {"item": c, "key": k}) for k, c in combos]
        data = self.resolved_value(d["foreach"], context)
        if isinstance(data, dict):
            return [(to_text(k), {"item": v, "key": to_text(k)}) for k, v in data.items()]
        composite = any(isinstance(v, dict | list) for v in data)
        return [(str(i) if composite else to_text(v), {"item": v}) for i, v in enumerate(data)]

    def resolved_value(self, value: Any, context: Context) -> Any:
        try:
            return context.value(value) if isinstance(value, str) else value
        except KeyError as exc:
            raise UsageError(
                f"{self.doc.file}: ${{{exc.args[0]}}} is not defined (vars, params.yaml)"
            ) from None

    # ------------------------------------------------------------ one stage
    def entry(self, dvc_name: str, d: dict[str, Any], where: Path, context: Context) -> None:
        name = self.stage_name(dvc_name, where)
        stage = self.stages[name] = _Stage()
        wdir = self.text(d.get("wdir", "."), (*where, "wdir"), context, stage)
        wdir = posixpath.normpath(posixpath.join(self.base, wdir))
        context = self.context(d.get("vars"), (*where, "vars"), context, wdir)
        for key in d:
            if key not in _HANDLED | {"foreach", "matrix", "do"}:
                self.warn((*where, key), f"{key!r} has no bg equivalent and was skipped")
        self.commands(stage, d.get("cmd"), (*where, "cmd"), context, wdir)
        deps = [self.text(p, (*where, "deps", i), context, stage) for i, p in enumerate(d.get("deps") or [])]
        stage.table["inputs"] = [self.project_path(wdir, p, (*where, "deps")) for p in deps]
        self.params(stage, d.get("params") or [], (*where, "params"), context, wdir)
        for kind in ("outs", "metrics", "plots"):
            for i, out in enumerate(d.get(kind) or []):
                self.output(stage, out, (*where, kind, i), context, wdir, kind)
        self.flags(stage, d, where)

    def commands(self, stage: _Stage, cmd: Any, where: Path, context: Context, wdir: str) -> None:
        lines = cmd if isinstance(cmd, list) else [cmd]
        if not lines or any(not isinstance(c, str) or not c.strip() for c in lines):
            self.warn(where, "a stage needs `cmd`: a string or a list of strings; written as `true`")
            lines = ["true"]
        texts = [self.command_text(c, (*where, i), context, stage) for i, c in enumerate(lines)]
        if wdir != ".":
            texts = [f"mkdir -p {_quote(wdir)} && cd {_quote(wdir)} && {t}" for t in texts]
        if len(texts) == 1:
            stage.table["command"] = texts[0]
        else:
            stage.table["commands"] = texts

    def command_text(self, text: str, where: Path, context: Context, stage: _Stage) -> str:
        """DVC's `${…}` resolved; a vars-file value becomes a tracked `${params.key}`; `${` kept literal."""
        out = []
        for part in self.resolve(text, where, context):
            if isinstance(part, Tracked):
                stage.track(part.file, part.key)
                out.append("${params." + part.key + "}")
            else:
                out.append(part.replace("${", "$${"))
        return "".join(out)

    def text(self, value: Any, where: Path, context: Context, stage: _Stage) -> str:
        """A path-like string with every reference substituted by its value now (a tracked one warned)."""
        parts = self.resolve(str(value), where, context)
        for part in parts:
            if isinstance(part, Tracked):
                stage.track(part.file, part.key)
                self.warn(
                    where, f"${{{part.key}}} in a path is substituted at import: re-import after editing it"
                )
        return "".join(_literal(p, context) for p in parts)

    def resolve(self, text: str, where: Path, context: Context) -> list[str | Tracked]:
        try:
            return context.resolve(text)
        except KeyError as exc:
            self.warn(where, f"${{{exc.args[0]}}} is not defined (vars, params.yaml): kept as written")
            return [text.replace("${", "$${")]

    def params(self, stage: _Stage, entries: list[Any], where: Path, context: Context, wdir: str) -> None:
        """`- key` (params.yaml), `- file.yaml: [keys]`, `- file.yaml:` (the whole file)."""
        for i, entry in enumerate(entries):
            items = entry.items() if isinstance(entry, dict) else [(DEFAULT_PARAMS, [entry])]
            for file, keys in items:
                path = self.project_path(wdir, str(file), (*where, i))
                if keys is None or keys == []:
                    self.warn(
                        (*where, i), f"all of {file} is tracked: as an input, any edit of it reruns the stage"
                    )
                    stage.table["inputs"].append(path)
                    continue
                for key in keys:
                    self.check_param(path, str(key), (*where, i))
                    stage.track(path, str(key))

    def check_param(self, file: str, key: str, where: Path) -> None:
        content = self.params_file(file)
        if content is None or not lookup(content, key)[0]:
            self.warn(where, f"param {key!r} is not in {file}: bg will refuse the stage until it is")

    def output(self, stage: _Stage, out: Any, where: Path, context: Context, wdir: str, kind: str) -> None:
        path_text, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
        path = self.project_path(wdir, self.text(path_text, where, context, stage), where)
        for option, value in (options or {}).items():
            self.output_option(option, value, (*where, str(path_text), option), kind)
        is_dir = self.is_dir(path, where)
        stage.table.setdefault("outputs", []).append(path + "/" if is_dir else path)
        if kind == "metrics" and not is_dir:
            self.set_metric(stage, path, where)

    def output_option(self, option: str, value: Any, where: Path, kind: str) -> None:
        if option == "cache" and value is False:
            self.warn(where, "cache: false: bg caches every output (the workspace copy is the same)")
        elif option == "persist" and value is True:
            self.warn(where, "persist: true has no bg equivalent: the output starts empty on every run")
        elif option in {"desc", "type", "labels", "meta", "push", "remote"}:
            self.warn(where, f"{option!r} (DVC metadata) is not imported")
        elif kind == "plots":
            self.warn(where, f"plot option {option!r} ignored: bg draws no plots")
        else:
            self.warn(where, f"output option {option!r} has no bg equivalent and was skipped")

    def flags(self, stage: _Stage, d: dict[str, Any], where: Path) -> None:
        if d.get("frozen") is True:
            stage.table["frozen"] = True
        if d.get("always_changed") is True:
            stage.table["always"] = True
        if isinstance(d.get("desc"), str):
            stage.table["description"] = d["desc"]

    # ------------------------------------------------------------ metrics, names, paths
    def set_metric(self, stage: _Stage, path: str, where: Path) -> None:
        if "metrics" in stage.table and stage.table["metrics"] != path:
            self.warn(where, f"bg shows one metrics file per stage: {path} is an output only")
        else:
            stage.table["metrics"] = path

    def attach_metric(self, path: str, where: Path) -> None:
        """A top-level metrics file: the metrics of the stage whose outputs hold it."""
        for stage in self.stages.values():
            for out in stage.table.get("outputs", []):
                if path == out or (out.endswith("/") and path.startswith(out)):
                    self.set_metric(stage, path, where)
                    return
        self.warn(where, f"metrics file {path} is no stage's output: not imported")

    def stage_name(self, dvc_name: str, where: Path) -> str:
        name = _NAME_UNSAFE.sub("-", dvc_name.replace("@", "-")).strip("-") or "stage"
        if name in self.stages:
            self.warn(where, f"stage {dvc_name!r} becomes {name!r}, which another stage has: skipped")
            name = f"{name}-{len(self.stages)}"
        elif name != dvc_name:
            self.warn(
                where, f"stage {dvc_name!r} is named {name!r} (bg names: letters, digits, '_', '.', '-')"
            )
        return name

    def project_path(self, wdir: str, path: str, where: Path) -> str:
        joined = posixpath.normpath(posixpath.join(wdir, path))
        if joined.startswith("../") or joined == ".." or posixpath.isabs(path):
            self.warn(where, f"{path} is outside the project: bg stages read and write inside it")
        return joined

    def path(self, relative: str) -> str:
        return posixpath.normpath(posixpath.join(self.base, relative))

    def is_dir(self, path: str, where: Path) -> bool:
        """dvc.lock knows (`.dir` digests); else the workspace; else the name (warned)."""
        if path in self.dirs:
            return self.dirs[path]
        found = self.workspace.is_dir(path)
        if found is not None:
            return found
        guess = "." not in posixpath.basename(path)
        self.warn(
            where, f"{path} does not exist yet: taken as a {'directory' if guess else 'file'} from its name"
        )
        return guess

    def params_file(self, path: str) -> dict[str, Any] | None:
        text = self.workspace.read(path)
        if text is None:
            return None
        content = _parse_values(text, path)
        return content if isinstance(content, dict) else None

    def warn(self, where: Path, message: str) -> None:
        self.warnings.append(f"{self.doc.where(where)}: {'.'.join(map(str, where))}: {message}")

    def finish(self, stage: _Stage) -> dict[str, Any]:
        table = {k: v for k, v in stage.table.items() if v or v is False}
        if stage.params:
            tables = [{"file": f, "keys": keys} for f, keys in stage.params.items()]
            table["params"] = tables[0] if len(tables) == 1 else tables
        order = [
            "description",
            "command",
            "commands",
            "inputs",
            "params",
            "outputs",
            "metrics",
            "frozen",
            "always",
        ]
        return {k: table[k] for k in order if k in table}


def _literal(part: str | Tracked, context: Context) -> str:
    return to_text(context.find(part.key)[0]) if isinstance(part, Tracked) else part


def _fragment(axis: str, index: int, value: Any) -> str:
    return f"{axis}{index}" if isinstance(value, dict | list) else to_text(value)


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)


def _locked_dirs(text: str | None, base: str) -> dict[str, bool]:
    """Output path → is a directory, from dvc.lock (a directory's md5 ends in `.dir`)."""
    if not text:
        return {}
    try:
        lock = load(text, "dvc.lock").data
    except UsageError:
        return {}
    found: dict[str, bool] = {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in (stage or {}).get("outs", []) or []:
            if isinstance(out, dict) and "path" in out:
                digest = str(out.get("md5") or out.get("hash") or "")
                found[posixpath.normpath(posixpath.join(base, out["path"]))] = (
                    digest.endswith(".dir") or "nfiles" in out
                )
    return found


def _parse_values(text: str, path: str) -> Any:
    """A params or vars file, by extension as DVC reads them (YAML, JSON, TOML)."""
    import tomllib

    try:
        if path.endswith(".json"):
            return json.loads(text)
        if path.endswith(".toml"):
            return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError is one
        raise UsageError(f"{path}: not valid {path.rpartition('.')[2].upper()}: {exc}") from None
    return load(text, path).data
