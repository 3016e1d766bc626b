"""GPUs (buildgraph/gpus.py): the pool's size, what a stage takes, the names a command sees."""

from __future__ import annotations

import pytest

from buildgraph import gpus


@pytest.mark.parametrize(
    ("variable", "count"), [("3,5", 2), ("0", 1), ("", 0), ("-1", 0), (" 1 , 2 ,", 2)]
)
def test_cuda_visible_devices_is_counted_as_the_driver_counts_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, count: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", variable)
    assert gpus.count() == count


def test_no_driver_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpus.count() == 0


def test_the_pool_is_counted_only_when_a_stage_wants_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "count", lambda: 4)
    assert gpus.pool_size([0, 0]) == 0
    assert gpus.pool_size([0, None]) == 4 and gpus.pool_size([2]) == 4


@pytest.mark.parametrize(
    ("asked", "pool", "taken"), [(0, 4, 0), (None, 4, 4), (2, 4, 2), (8, 4, 4), (1, 0, 0)]
)
def test_a_stage_takes_what_it_asks_for_within_the_pool(asked: int | None, pool: int, taken: int) -> None:
    assert gpus.wanted(asked, pool) == taken


def test_pool_ids_become_the_hosts_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpus.visible((0, 1)) == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpus.visible((0, 1)) == ["0", "1"]
