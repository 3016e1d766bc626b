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
    def __init__(
        self, project: Project, ns: argparse.Namespace, shared: bool = False, frees_space: bool = False
    ) -> None:
        from buildgraph.report import make_reporter
        from buildgraph.workspace import Workspace

        self.project, self.ns, self.shared = project, ns, shared
        self.frees_space = frees_space  # `bg gc`: must run on a full disk, even if it cannot fold yet
        self.ws = Workspace(project.root, read_only=shared)  # status on a full disk: warns, answers
        if shared:  # status/explain print their own answer on stdout; notices go to stderr
            self.reporter = make_reporter(sys.stderr)
        else:
            self.reporter = make_reporter(sys.stdout, quiet=ns.quiet, json=getattr(ns, "json", False))
        self._lock: Any = None
        self._executor: Any = None
        self._client: Any = None  # docker SDK client of image builds under the local executor
        self._folded: Any = None  # Buildfile.lock as folded on entry (None: read-only commands)

    def __enter__(self) -> Session:
        from buildgraph.diskfull import NoSpace
        from buildgraph.lockfile import fold
        from buildgraph.stores.projectlock import ProjectLock

        self.ws.state.mkdir(exist_ok=True)
        self._lock = ProjectLock(self.ws.state / "lock", shared=self.shared, on_wait=self._waiting)
        self._lock.__enter__()
        if not self.shared:
            stages = set(self.project.spec.stages)  # type: ignore[attr-defined]
            try:
                self._folded = fold(self.ws.lock_path, self.ws.journal_path, keep=stages)
            except NoSpace:
                if not self.frees_space:
                    raise  # the journal stands: it is folded once there is room
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
            if self._client is not None:
                self._client.close()
            try:
                self.ws.close()  # may meet a full disk too: the reporter and the lock are closed all the same
            finally:
                self.reporter.close()
                self._lock.__exit__(*exc)

    def engine(self):  # type: ignore[no-untyped-def]
        from buildgraph.engine import Engine, Options
        from buildgraph.executors.select import choose_executor

        spec = self.project.spec
        executor = choose_executor(getattr(self.ns, "executor", None) or spec.executor, spec)  # type: ignore[attr-defined]
        self._executor = executor
        options = Options(
            jobs=getattr(self.ns, "jobs", 1),
            keep_going=getattr(self.ns, "keep_going", False),
            force=frozenset(getattr(self.ns, "force", [])),
            link=spec.link,  # type: ignore[attr-defined]
            gpus=_gpus_needed(spec),
            in_images=executor.name == "docker",
        )
        if executor.name == "docker" and not self.shared:
            self._reap(executor)
        graph, lock = self.project.graph, self._folded
        return Engine(self.ws, spec, graph, executor, self.reporter, options, self._image_steps, lock)  # type: ignore[arg-type]

    def _image_steps(self, lock: Any) -> Any:
        """Image stages as steps: the engine asks only when its selection holds one."""
        from buildgraph.imagesteps import ImageSteps

        executor = self._executor
        if executor.name != "docker":  # else choose_executor made sure a daemon answers
            from buildgraph.executors.select import require_daemon

            require_daemon("image stages are built and checked with Docker")
        client = (lambda: executor.client) if executor.name == "docker" else self._docker_client
        return ImageSteps(
            self.ws,
            self.project.spec,  # type: ignore[arg-type]
            lock,
            client,
            pull=getattr(self.ns, "pull", False),
            read_only=self.shared,
        )

    def _docker_client(self) -> Any:
        """A docker SDK client for image stages built while run stages execute on the host."""
        if self._client is None:
            from buildgraph.executors.docker import DockerExecutor

            self._client = DockerExecutor().client
        return self._client

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
            line = metrics_line(_load_json(self.ws.path(metrics)))
            if line:
                self.reporter.notice(f"[{name}] metrics: {line}")


def _gpus_needed(spec: Any) -> int:
    if not any(getattr(s, "gpu_count", 0) != 0 for s in spec.stages.values()):
        return 0
    from buildgraph.workspace import count_gpus

    return count_gpus()


def read_metrics(path: Any) -> dict[str, float]:
    """The numbers of a metrics JSON file, nested dicts flattened with dots."""
    return _flatten(_load_json(path))


def _load_json(path: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _flatten(data: Any) -> dict[str, float]:
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


def metrics_line(data: Any, most: int = 6) -> str:
    """The top-level numbers of a metrics document (at most `most`), then how many more
    `bg metrics` shows: `accuracy 0.867 … (10 more: bg metrics)`. Never cut off unannounced."""
    top = [(k, v) for k, v in (data.items() if isinstance(data, dict) else []) if _is_number(v)][:most]
    shown = ", ".join(f"{k} {_fmt(v)}" for k, v in top)
    more = len(_flatten(data)) - len(top)
    if more:
        shown = f"{shown} … ({more} more: bg metrics)" if shown else f"{more} nested: bg metrics"
    return shown


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
