"""The docker SDK, imported once and whole, under a lock.

The SDK's package has import cycles (`docker.api` ↔ `docker.utils`). When two threads import
it for the first time at once — an image build next to a container run — one of them can
find a partially initialised module ("cannot import name 'check_resource'"). Every path that
may be first to touch the SDK from a worker thread goes through `sdk()`; later `import
docker.errors` statements then find finished modules. Still lazy: a null run never calls it.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import cast

_lock = threading.Lock()


def sdk() -> ModuleType:
    with _lock:
        import docker
        import docker.errors
        import docker.types
        import docker.utils  # noqa: F401  (imported for its side effect: a finished module)
    return cast(ModuleType, docker)  # the SDK ships no type information
