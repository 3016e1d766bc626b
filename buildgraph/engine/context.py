"""What the steps of one engine share: options, the injected interfaces, and the run's state.

ninja's builder is given a `DiskInterface` and a `CommandRunner`; ours is given `Files` (the
project folder: its paths, their digests through the stat cache, its logs and scratch space),
a `stores.base.Store` (artefacts and run manifests) and an `executors.base.Executor`. A
`Workspace` is one `Files`; an audit will pass a scratch one, with a scratch store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buildgraph.core.graph import Graph
from buildgraph.core.spec import Spec
from buildgraph.executors.base import Cancel, Executor
from buildgraph.executors.workdir import SpareFolders, recycle_below
from buildgraph.lockfile import Lock
from buildgraph.report import Reporter
from buildgraph.stores.base import Store
from buildgraph.stores.link import LinkMode
from buildgraph.stores.tree import Digest, StrPath

if TYPE_CHECKING:
    from buildgraph.engine.image_step import Images


@dataclass
class Options:
    jobs: int = 1
    keep_going: bool = False
    force: frozenset[str] = frozenset()
    dry_run: bool = False
    link: LinkMode = "auto"  # how stored outputs reach the workspace
    gpus: int = 0  # GPUs available to the GPU pool
    in_images: bool = False  # run stages execute in their images (the docker executor)
    pull: bool = False  # image steps ask the registry again for their bases' digests
    read_only: bool = False  # status, explain: image steps never pull, they say what a run would


class Files(Protocol):
    """The project folder, as the engine uses it."""

    root: Path
    logs: Path  # the latest log of each stage
    tmp: Path  # scratch folders of running jobs
    lock_path: Path
    journal_path: Path

    def path(self, rel: str) -> Path: ...

    def digest(self, rel: str) -> str | None:
        """The digest of a project path (None: missing), through the stat cache."""
        ...

    def remember(self, rel: str, record: Mapping[str, Any]) -> None:
        """Project path `rel` now holds `record` (just materialised): nothing re-hashes it."""
        ...

    def listing_digest(self, files: Iterable[tuple[str, StrPath]]) -> Digest:
        """The tree digest of chosen files (an image stage's copy sources)."""
        ...

    def remember_run(self, run_id: str, keys: list[str]) -> None:
        """Record the keys a run used (`bg gc --keep-runs`)."""
        ...

    @property
    def cache(self) -> Store:
        """The project's own store (`.bg/cache`): the engine's when it is given no other."""
        ...


def host_fingerprint() -> str:
    """Where a host run happens; part of a run stage's key under the local executor."""
    if hasattr(os, "uname"):  # what `platform.system()`/`machine()` return on POSIX, without importing it
        uname = os.uname()
        return f"{uname.sysname.lower()}/{uname.machine}"
    import platform

    return f"{platform.system().lower()}/{platform.machine()}"


class Scratch:
    """A run's scratch folders, one per step below `<tmp>/<run id>`: made once the first step
    has work to do (on the builder's thread), emptied and reused rather than made per step
    (inode creation dominated on ext4), removed at the end of the run."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self._spares: SpareFolders | None = None

    def make(self) -> None:
        if self._spares is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.logs.mkdir(parents=True, exist_ok=True)
            self._spares = SpareFolders(f"{self.root}/.spare")
            recycle_below(str(self.root), self._spares)

    def take(self, name: str) -> Path:
        """An empty folder for step `name` (from a spare when there is one)."""
        assert self._spares is not None, "Scratch.make() comes first"
        folder = self.root / name
        self._spares.take(str(folder))
        return folder

    def keep(self, folder: Path) -> None:
        """Empty a step's folder, keeping its folders as spares."""
        assert self._spares is not None
        self._spares.keep(str(folder))

    def remove(self) -> None:
        if self._spares is not None:
            recycle_below(str(self.root), None)
            shutil.rmtree(self.root, ignore_errors=True)
            self._spares = None


@dataclass
class Context:
    spec: Spec
    graph: Graph
    files: Files
    store: Store
    executor: Executor
    reporter: Reporter
    options: Options
    lock: Lock  # the recorded state the steps are decided against
    run_id: str
    scratch: Scratch
    environment: dict[str, Any]  # where host run steps run: part of their keys
    cancel: Cancel = field(default_factory=Cancel)
    # output digests of steps settled (run) or to be restored (status): a downstream key uses
    # them without hashing the workspace file again (its ctime changes when staged)
    settled: dict[str, dict[str, str]] = field(default_factory=dict)
    images: Images | None = None  # made when a selection holds an image stage

    def rel(self, path: Path) -> str:
        """`path` relative to the project root (log paths, as the user sees them)."""
        return os.path.relpath(path, self.files.root)
