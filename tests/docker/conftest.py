"""Real-engine tests. They skip locally when no Docker daemon answers, and FAIL under CI=true.

The tiny offline base (Debian bookworm minbase, ~160 MB, about a minute to build) is
tagged by its key, so later sessions reuse it instead of rebuilding it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.spec import DebianBase
from buildgraph.dockerd.containers import RUN_LABEL
from buildgraph.dockerd.ping import sdk_problem as docker_available

TINY_BASE = DebianBase("bookworm")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    problem = docker_available()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs a Docker engine: {problem} (scripts/ci-docker.sh starts one)")
        pytest.skip(problem)
    import docker

    client = docker.from_env(timeout=300)
    yield client
    client.close()


@pytest.fixture(scope="session")
def tiny_base(client: Any) -> str:
    """Tag of the offline Debian minbase image, built once and reused across sessions."""
    from buildgraph.images.debian import debian_base, debian_key

    return debian_base(TINY_BASE, debian_key(TINY_BASE), client=client)


@pytest.fixture
def containers_of(client: Any) -> Any:
    """`containers_of(run_id)`: the containers, running or not, labelled with that run id."""

    def find(run_id: str) -> list[Any]:
        return list(client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}))

    return find
