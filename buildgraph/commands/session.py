"""A command's hold on the project: the kernel lock, the journal fold, the executor, the reporter.

Entering folds a journal left by a killed `bg` into Buildfile.lock; leaving folds this
run's journal, so the lock is written once per invocation and never half-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, cast

from buildgraph.commands._common import Project

if TYPE_CHECKING:
    from buildgraph.engine import Engine
    from buildgraph.engine.image_step import ImageBackend
    from buildgraph.executors.base import DockerBacked, Executor


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
        self._executor: Executor | None = None
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
            from buildgraph.uptodate import remove_all

            remove_all(self.ws.state)  # before anything changes: no stamp may vouch for it
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
            if self._executor is not None:
                self._executor.close()
            if self._client is not None:
                self._client.close()
            try:
                self.ws.close()  # may meet a full disk too: the reporter and the lock are closed all the same
            finally:
                self.reporter.close()
                self._lock.__exit__(*exc)

    def engine(self) -> Engine:
        """The engine of this command, complete: executor, store, image backend, options."""
        from buildgraph import gpus
        from buildgraph.engine import Engine, Options
        from buildgraph.executors.choice import choose_executor

        spec = self.project.spec
        executor: Executor = choose_executor(getattr(self.ns, "executor", None) or spec.executor, spec)  # type: ignore[attr-defined]
        self._executor = executor
        options = Options(
            jobs=getattr(self.ns, "jobs", 1),
            keep_going=getattr(self.ns, "keep_going", False),
            force=frozenset(getattr(self.ns, "force", [])),
            link=spec.link,  # type: ignore[attr-defined]
            gpus=gpus.pool_size(s.gpu_count for s in spec.run_stages()),  # type: ignore[attr-defined]
            in_images=executor.name == "docker",
            pull=getattr(self.ns, "pull", False),
            read_only=self.shared,  # status, explain: never pull
        )
        if executor.name == "docker" and not self.shared:
            self._reap(cast("DockerBacked", executor))
        return Engine(
            self.ws,
            spec,  # type: ignore[arg-type]
            self.project.graph,  # type: ignore[arg-type]
            executor,
            self.reporter,
            options,
            images=self._image_backend,
            lock=self._folded,
            store=self.ws.cache,
        )

    def _image_backend(self) -> ImageBackend:
        """Docker for image steps: the engine asks only when its selection holds an image stage."""
        from buildgraph.images.backend import DockerBackend

        executor, project = self._executor, self.project.spec.name  # type: ignore[attr-defined]
        assert executor is not None, "engine() chose the executor"
        if executor.name != "docker":
            from buildgraph.executors.choice import require_daemon

            require_daemon("image stages are built and checked with Docker")
            return DockerBackend(self._docker_client, project)
        docker = cast("DockerBacked", executor)  # choose_executor made sure a daemon answers
        return DockerBackend(lambda: docker.client, project)

    def _docker_client(self) -> Any:
        """A docker SDK client for image stages built while run stages execute on the host."""
        if self._client is None:
            from buildgraph.dockerd.sdk import sdk

            self._client = sdk().from_env()
        return self._client

    def _reap(self, executor: DockerBacked) -> None:
        """Remove containers left by a bg that was killed (asking the SDK only when there are some)."""
        from buildgraph.dockerd.containers import reap_left_over

        for container in reap_left_over(lambda: executor.client):
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
