"""A command's hold on the project: the kernel lock, the journal fold, the executor, the reporter.

Entering folds a journal left by a killed `bg` into Buildfile.lock; leaving folds this
run's journal, so the lock is written once per invocation and never half-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from buildgraph.commands._common import Project


class Session:
    def __init__(self, project: Project, ns: argparse.Namespace, shared: bool = False) -> None:
        from buildgraph.report import make_reporter
        from buildgraph.workspace import Workspace

        self.project, self.ns, self.shared = project, ns, shared
        self.ws = Workspace(project.root)
        if shared:  # status/explain print their own answer on stdout; notices go to stderr
            self.reporter = make_reporter(sys.stderr)
        else:
            self.reporter = make_reporter(sys.stdout, quiet=ns.quiet, json=getattr(ns, "json", False))
        self._lock: Any = None
        self._executor: Any = None
        self._folded: Any = None  # Buildfile.lock as folded on entry (None: read-only commands)

    def __enter__(self) -> Session:
        from buildgraph.lockfile import fold
        from buildgraph.stores.projectlock import ProjectLock

        self.ws.state.mkdir(exist_ok=True)
        self._lock = ProjectLock(self.ws.state / "lock", shared=self.shared, on_wait=self._waiting)
        self._lock.__enter__()
        if not self.shared:
            self._folded = fold(self.ws.lock_path, self.ws.journal_path, keep=set(self.project.spec.stages))  # type: ignore[attr-defined]
        return self

    def _waiting(self, text: str) -> None:
        """Say why we block. Read-only commands print a document on stdout (`status --json`)
        and quiet ones print no notices, yet a silent hang is worse: those say it on stderr."""
        if self.shared or self.ns.quiet:
            sys.stderr.write(f"bg: {text}\n")
            sys.stderr.flush()
        else:
            self.reporter.notice(text)

    def __exit__(self, *exc: object) -> None:
        from buildgraph.lockfile import fold

        try:
            if not self.shared and self.ws.journal_path.exists():  # else nothing completed: the lock stands
                fold(self.ws.lock_path, self.ws.journal_path, keep=set(self.project.spec.stages))  # type: ignore[attr-defined]
        finally:
            if self._executor is not None and hasattr(self._executor, "close"):
                self._executor.close()
            self.ws.close()
            self.reporter.close()
            self._lock.__exit__(*exc)

    def engine(self):  # type: ignore[no-untyped-def]
        from buildgraph.engine import Engine, Options
        from buildgraph.executors.select import choose_executor

        spec = self.project.spec
        executor = choose_executor(getattr(self.ns, "executor", None) or spec.executor, spec, self.reporter)  # type: ignore[attr-defined]
        self._executor = executor
        options = Options(
            jobs=getattr(self.ns, "jobs", 1),
            keep_going=getattr(self.ns, "keep_going", False),
            force=frozenset(getattr(self.ns, "force", [])),
            link=spec.link,  # type: ignore[attr-defined]
            gpus=_gpus_needed(spec),
        )
        graph, lock = self.project.graph, self._folded
        engine = Engine(self.ws, spec, graph, executor, self.reporter, options, lock=lock)  # type: ignore[arg-type]
        if executor.name == "docker":
            from buildgraph.imagesteps import ImageSteps

            if not self.shared:
                self._reap(executor)
            engine.images = ImageSteps(
                self.ws,
                spec,
                engine.lock,
                lambda: executor.client,  # type: ignore[arg-type]
                pull=getattr(self.ns, "pull", False),
                read_only=self.shared,
            )
        return engine

    def _reap(self, executor: Any) -> None:
        """Remove containers left by a bg that was killed (asking the SDK only when there are some)."""
        from buildgraph.executors.docker import RUN_LABEL, _owner_alive, reap
        from buildgraph.images.engine_api import EngineAPI

        api = EngineAPI.available()
        if api is not None and all(
            _owner_alive(c.get("Labels") or {}) for c in api.containers_with_label(RUN_LABEL)
        ):
            return
        for container in reap(executor.client):
            self.reporter.notice(f"removed container {container[:12]} left by a bg that was killed")

    def show_metrics(self, summary: Any) -> None:
        for name, stage in self.project.spec.stages.items():  # type: ignore[attr-defined]
            metrics = getattr(stage, "metrics", "")
            outcome = summary.outcomes.get(name)
            if not metrics or outcome is None or outcome.status not in ("done", "cached"):
                continue
            numbers = read_metrics(self.ws.path(metrics))
            if numbers:
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in list(numbers.items())[:8])
                self.reporter.notice(f"[{name}] metrics: {shown}")


def _gpus_needed(spec: Any) -> int:
    if not any(getattr(s, "gpu_count", 0) != 0 for s in spec.stages.values()):
        return 0
    from buildgraph.workspace import count_gpus

    return count_gpus()


def read_metrics(path: Any) -> dict[str, float]:
    """The top-level numbers of a metrics JSON file (nested dicts flattened with dots)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    flat: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            flat[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    walk("", data)
    return flat


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
