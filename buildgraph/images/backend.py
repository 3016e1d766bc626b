"""Docker as the image engine of image steps (`engine.image_step.ImageBackend`).

Deciding asks two cheap questions — is an image tagged for this key, is a pinned base here —
over the Engine API's unix socket (`dockerd.api`) when it can, so a null run never imports
the docker SDK; the SDK client (made by the factory given, so that the docker executor's own
client is shared) is opened only to pull, build, or where the daemon is not on a unix socket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildgraph.core.spec import DebianBase, ImageStage
from buildgraph.lines import LineSink
from buildgraph.records.debian_base import DebianRecord

if TYPE_CHECKING:
    from buildgraph.images.builder import DockerImages


class DockerBackend:
    def __init__(self, client: Callable[[], Any], project: str) -> None:
        from buildgraph.dockerd.api import EngineAPI
        from buildgraph.images.builder import DockerImages

        self._client_factory = client  # the docker SDK is imported only to pull, build or run
        self.images = DockerImages(None, project)
        self.api = EngineAPI.available()

    @property
    def client(self) -> Any:
        return self._sdk_images().client

    def _sdk_images(self) -> DockerImages:
        """The SDK-backed image calls, with a client made on first use (null runs make none)."""
        if self.images.client is None:
            self.images.client = self._client_factory()
        return self.images

    def tag(self, stage: str, key: str) -> str:
        return self.images.tag_for(stage, key)

    def has_image(self, stage: str, key: str) -> bool:
        if self.api is None:
            return self._sdk_images().exists(stage, key)
        from buildgraph.images.builder import KEY_LABEL

        labels = self.api.image_labels(self.tag(stage, key))
        return labels is not None and labels.get(KEY_LABEL) == key

    def present(self, reference: str) -> bool:
        if self.api is not None:
            return self.api.image_labels(reference) is not None
        from buildgraph.dockerd.sdk import sdk

        client = self.client
        try:
            client.images.get(reference)
        except sdk().errors.ImageNotFound:
            return False
        return True

    def pin(self, reference: str, pull: bool = False, on_line: LineSink | None = None) -> str:
        return self._sdk_images().resolve_base(reference, pull=pull, on_line=on_line)

    def build(
        self,
        stage: ImageStage,
        key: str,
        parent: str,
        context: Any,
        args: Mapping[str, str],
        on_line: LineSink | None,
        secrets: Mapping[str, Path],
    ) -> None:
        self._sdk_images().build(stage, key, parent, context, args, on_line, secrets=secrets)

    def debian_base(
        self, base: DebianBase, on_line: LineSink | None, pins: Mapping[str, str] | None = None
    ) -> tuple[str, DebianRecord | None]:
        from buildgraph.images.debian import debian_build, debian_key

        return debian_build(base, debian_key(base), on_line, self.client, pins)
