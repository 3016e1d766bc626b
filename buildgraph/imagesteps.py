"""Image stages as steps of the engine (docker executor): key, decide, build.

An image stage's key is known before anything is built (its parent's key, its pinned
base, its instructions, the digests of the files it copies), so run stages that use the
image can be keyed — and `bg status` can answer — without building. Building happens
only when no image carries the key: `bg/<project>/<stage>:<key[:32]>`.

Registry bases are pinned: the first resolution records `repo@sha256:…` in the lock and
later runs reuse that digest until `--pull` asks the registry again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from buildgraph.core.keys import image_material, key_of
from buildgraph.core.plan import Decision, Observed, Reason, decide
from buildgraph.core.spec import DebianBase, ImageRef, ImageStage, Spec, StageRef
from buildgraph.core.suggest import base_alternatives
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.base import LineSink
from buildgraph.lockfile import Lock
from buildgraph.stores.digests import DigestCache
from buildgraph.workspace import Workspace


class ImageSteps:
    def __init__(
        self,
        ws: Workspace,
        spec: Spec,
        lock: Lock,
        client: Callable[[], Any],
        pull: bool = False,
        read_only: bool = False,
    ) -> None:
        from buildgraph.images.builder import DockerImages
        from buildgraph.images.engine_api import EngineAPI

        self.ws, self.spec, self.lock, self.pull = ws, spec, lock, pull
        self.read_only = read_only  # `bg status`: never pull, say what a run would pull
        self._client_factory = client  # the docker SDK is imported only to pull, build or run
        self.images = DockerImages(None, spec.name)
        self.api = EngineAPI.available()
        self.keys: dict[str, str] = {}
        self._resolved: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self.images.client is None:
            self.images.client = self._client_factory()
        return self.images.client

    def _exists(self, name: str, key: str) -> bool:
        if self.api is None:
            self.images.client = self.client
            return self.images.exists(name, key)
        from buildgraph.images.builder import KEY_LABEL

        labels = self.api.image_labels(self.images.tag_for(name, key))
        return labels is not None and labels.get(KEY_LABEL) == key

    def tag(self, stage: str) -> str:
        return self.images.tag_for(stage, self.keys[stage])

    # ---------------------------------------------------------------- deciding
    def evaluate(
        self, name: str, forced: bool = False, on_line: LineSink | None = None
    ) -> tuple[Decision, dict[str, Any]]:
        stage = self.spec.stages[name]
        assert isinstance(stage, ImageStage)
        resolved = self._resolve(stage, on_line)
        material = image_material(stage, self.spec, self.keys, self._copy_digests(stage), resolved)
        key = key_of(material)
        self.keys[name] = key
        built = self._exists(name, key)
        recorded = self.lock.get(name)
        seen = Observed(cached=False, forced=forced)
        decision = decide(name, key, material, recorded, seen)
        if built and not forced:
            decision = Decision(name, "skip", key)
        elif not built and decision.action == "skip":
            decision = Decision(name, "build", key, decision.reasons or (Reason("image-missing"),))
        return decision, material

    def _resolve(self, stage: ImageStage, on_line: LineSink | None) -> dict[str, str]:
        base = stage.base
        if not isinstance(base, ImageRef):
            return {}
        ref = base.reference
        if ref not in self._resolved:
            pinned = "" if self.pull else self._pinned_in_lock(stage.name, ref)
            if pinned and self._present(pinned):
                self._resolved[ref] = pinned
            elif self.read_only:
                self._resolved[ref] = pinned or (self._local_pin(ref) if not self.pull else "")
            else:
                self.images.client = self.client
                self._resolved[ref] = self._pull(stage.name, ref, on_line)
        return {ref: self._resolved[ref]}

    def _pull(self, name: str, ref: str, on_line: LineSink | None) -> str:
        try:
            return self.images.resolve_base(ref, pull=self.pull, on_line=on_line)
        except EnvironmentProblem as exc:
            offered = base_alternatives(self.spec, name)
            if not offered:
                raise
            raise EnvironmentProblem(
                exc.message, hint=f"this Buildfile offers another base for '{name}': {' or '.join(offered)}"
            ) from exc

    def _pinned_in_lock(self, name: str, ref: str) -> str:
        base = ((self.lock.get(name) or {}).get("material") or {}).get("base") or {}
        return str(base.get("digest", "")) if base.get("image") == ref else ""

    def _local_pin(self, ref: str) -> str:
        try:
            self.images.client = self.client
            return self.images.resolve_base(ref, pull=False) if self._present(ref) else ""
        except Exception:  # status must answer even when the engine misbehaves
            return ""

    def _present(self, reference: str) -> bool:
        if self.api is not None:
            return self.api.image_labels(reference) is not None
        import docker.errors

        try:
            self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _copy_digests(self, stage: ImageStage) -> tuple[str, ...]:
        return copy_digests(self.ws.root, stage, self.ws.digests)

    # ---------------------------------------------------------------- building
    def build(
        self, name: str, key: str, material: dict[str, Any], on_line: LineSink | None
    ) -> dict[str, Any]:
        from buildgraph.images.context import build_context

        stage = self.spec.stages[name]
        assert isinstance(stage, ImageStage)
        self.images.client = self.client
        parent = self._parent_ref(stage, on_line)
        args = {n: v for n, v in self.spec.args if n in stage.args_used}
        context = build_context(self.ws.root, stage)
        with secret_files(stage.secrets) as secrets:
            self.images.build(stage, key, parent, context, args, on_line, secrets=secrets)
        return self.entry(name, key, material)

    def entry(self, name: str, key: str, material: dict[str, Any]) -> dict[str, Any]:
        """The lock entry of a built image: no image id, which differs from engine to engine."""
        return {"kind": "image", "key": key, "material": material, "image": self.tag(name)}

    def _parent_ref(self, stage: ImageStage, on_line: LineSink | None) -> str:
        base = stage.base
        if isinstance(base, StageRef):
            return self.tag(base.stage)
        if isinstance(base, ImageRef):
            return self._resolved[base.reference]
        assert isinstance(base, DebianBase)
        from buildgraph.images.debian import debian_base, debian_key

        return debian_base(base, debian_key(base), on_line, self.client)


def copy_digests(root: Path, stage: ImageStage, digests: DigestCache) -> tuple[str, ...]:
    """One digest per `copy` entry: the tree digest of the files it copies, after ignore rules.

    The same canonical listing as any directory digest, so a mode change (`chmod +x`), which
    the build context carries into the image, changes the image's key too.
    """
    from buildgraph.images.context import copy_sources_listing

    listings = (copy_sources_listing(root, stage, index=i) for i in range(len(stage.copy)))
    return tuple(digests.listing_digest(listing).digest for listing in listings)


@contextlib.contextmanager
def secret_files(names: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """Each secret's value (from bg's environment) in a 0600 file that lives only during the build."""
    if not names:
        yield {}
        return
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise EnvironmentProblem(
            f"build secret(s) not set in the environment: {', '.join(missing)}",
            hint="export each secret's value as an environment variable of the same name",
        )
    with tempfile.TemporaryDirectory(prefix="bg-secrets-") as folder:
        files = {}
        for name in names:
            path = Path(folder) / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(os.environ[name])
            files[name] = path
        yield files
