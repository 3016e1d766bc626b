"""When `bg run` / `bg status` leave an up-to-date stamp, and which paths it watches.

The stamp itself (stats, the racy rule, the fast check) is `buildgraph.uptodate`; this module
knows the Buildfile: a stamp is left only when the answer depended on nothing but the paths
it lists — the local executor (`auto` resolved from the Buildfile alone), run stages only,
none `always = true`, every selected step decided "skip".
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from buildgraph import uptodate
from buildgraph.core.graph import glob_root
from buildgraph.core.spec import RunStage, Spec
from buildgraph.report import format_duration, summary_message

if TYPE_CHECKING:
    from buildgraph.commands._common import Project
    from buildgraph.engine import Engine
    from buildgraph.engine.outcome import Summary

_GLOB_CHARS = frozenset("*?[")


def after_status(
    ns: argparse.Namespace, project: Project, engine: Engine, targets: list[str], decisions: Sequence[Any]
) -> None:
    """A `bg status` that found everything up to date stamps its answer (else drops the old one)."""
    _leave(ns, project, engine, targets, decisions, null=True)


def after_run(
    ns: argparse.Namespace, project: Project, engine: Engine, targets: list[str], summary: Summary
) -> None:
    """A `bg run` whose every step was up to date (no run, restore or cutoff) stamps its answer."""
    outcomes = summary.outcomes.values()
    null = all(o.status == "skipped" for o in outcomes)
    decisions = [o.decision for o in outcomes]
    _leave(ns, project, engine, targets, decisions, null=null and None not in decisions)


def _leave(
    ns: argparse.Namespace,
    project: Project,
    engine: Engine,
    targets: list[str],
    decisions: Sequence[Any],
    null: bool,
) -> None:
    req: uptodate.Request | None = getattr(ns, "uptodate", None)
    if req is None:  # not an invocation the stamp answers (-C, -f, --param, --force …)
        return
    spec: Spec = project.spec  # type: ignore[assignment]
    selected = engine.select(targets)
    if not null or not _stampable(engine, spec, selected, decisions):
        uptodate.remove(req.path)
        return
    by_stage = {d.stage: d for d in decisions}
    from buildgraph.commands.status_cmd import render

    status_text = render([by_stage[name] for name in selected])
    summary = summary_message({"skipped": len(selected)}, 0.0)
    run_head = "bg: " + summary.removesuffix(f" in {format_duration(0.0)}")
    watches, globs = watched(spec, ns.file, set(selected))
    uptodate.write(req, run_head, status_text, watches, globs)


def _stampable(engine: Engine, spec: Spec, selected: list[str], decisions: Sequence[Any]) -> bool:
    """Local execution of run stages, each decided "skip" (never `always`), one decision each."""
    if engine.ctx.executor.name != "local" or engine.ctx.options.in_images or engine.ctx.options.force:
        return False
    if not set(engine.lock.stages) <= set(spec.stages):  # a run would drop them from the lock first
        return False
    stages = [spec.stages[name] for name in selected]
    if not all(isinstance(s, RunStage) and not s.always for s in stages):
        return False
    skipped = {d.stage for d in decisions if d.action == "skip" and not d.tentative}
    return len(decisions) == len(selected) and skipped == set(selected)


def watched(
    spec: Spec, buildfile: str, selected: set[str]
) -> tuple[list[uptodate.Watch], list[uptodate.Glob]]:
    """The paths a null answer depends on: the Buildfile, every params file its parse read, the
    lock, and the inputs and outputs of the selected stages (each entry below a directory; all
    must exist). Also what loading the Buildfile checks on disk for the other stages (their
    paths exist or are produced, hold no symlink leading out, copy sources match something),
    so the stamp never answers where the normal path would refuse the Buildfile."""
    found: dict[str, tuple[bool, bool]] = {}

    def watch(paths: Iterable[str], below: bool, required: bool) -> None:
        for path in paths:
            was_below, was_required = found.get(path, (False, False))
            found[path] = (was_below or below, was_required or required)

    watch((buildfile, "Buildfile.lock"), False, True)
    globs: list[uptodate.Glob] = []
    for stage in spec.run_stages():
        needed = stage.name in selected
        watch(stage.params_files, False, True)
        watch(stage.inputs, True, needed)
        watch((o.path for o in stage.outputs), True, needed)
    for image in spec.image_stages():  # never selected when stamped: only the load's checks
        for copy in image.copy:
            sources = () if copy.from_stage or copy.from_image else copy.sources
            watch((s for s in sources if _GLOB_CHARS.isdisjoint(s)), False, False)
            globs += [_glob(s) for s in sources if not _GLOB_CHARS.isdisjoint(s)]
        watch((image.ignore,) if image.ignore else (), False, False)
    return [(path, below, required) for path, (below, required) in found.items()], globs


def _glob(source: str) -> uptodate.Glob:
    """The directories `glob(source)` lists: below its root, as deep as its pattern (`**`: all)."""
    base = glob_root(source)
    rest = source[len(base) :].strip("/").split("/")
    levels = -1 if "**" in rest else len(rest) - 1
    return base, levels, any(part.startswith(".") for part in rest)
