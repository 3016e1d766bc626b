"""Fixtures for the CIFAR-10 example's tests: its stage scripts as modules, tiny data sets."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ROOT / "stages"


def load_stage(name: str) -> ModuleType:
    """Import `stages/<name>.py`; `stages/` goes on sys.path so `import cifar` works as in a run."""
    if str(STAGES) not in sys.path:
        sys.path.insert(0, str(STAGES))
    module_name = f"cifar10_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, STAGES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_stage() -> ModuleType:
    return load_stage("data")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, data_stage: ModuleType) -> Path:
    """A synthetic CIFAR-10 of 100 training and 50 test images (its root folder)."""
    root = tmp_path_factory.mktemp("tiny-cifar")
    data_stage.write_synthetic(root, train_size=100, test_size=50, seed=0)
    return root


@pytest.fixture
def torch_state() -> Iterator[None]:
    """Restore the process-wide torch settings that the stages change (threads, determinism)."""
    torch = pytest.importorskip("torch")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
