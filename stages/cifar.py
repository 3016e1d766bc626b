"""Code shared by `train.py` and `evaluate.py`: the data loader, the models, determinism.

Both stages list this file as an input, so editing it reruns both (correctly);
`data.py` and `plot.py` do not import it, so editing it never reruns them.

Runs on torch >= 1.13 and Python >= 3.9 (Debian bookworm's python3-torch too).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
MODELS = ("lenet", "resnet")
# The tutorial prints these short names (`%5s`) instead of the data set's label names.
SHORT_NAMES = {"airplane": "plane", "automobile": "car"}


# --- data -------------------------------------------------------------------------------------


def _unpickle(path: Path) -> dict[bytes, Any]:
    with path.open("rb") as f:
        batch: dict[bytes, Any] = pickle.load(f, encoding="bytes")  # the CIFAR-10 page's own recipe
    return batch


def batches_dir(root: Path) -> Path:
    """`root` itself when it holds the batch files, else `root/cifar-10-batches-py`."""
    return root if (root / META_FILE).exists() else root / BATCHES_DIR


def label_names(root: Path) -> list[str]:
    return [name.decode() for name in _unpickle(batches_dir(root) / META_FILE)[b"label_names"]]


def load_split(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of the training or test split."""
    folder = batches_dir(root)
    batches = [_unpickle(folder / name) for name in (TRAIN_FILES if train else (TEST_FILE,))]
    data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])  # a writable copy
    labels = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in batches])
    return torch.from_numpy(data.reshape(-1, 3, 32, 32)), torch.from_numpy(labels)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 → float in [-1, 1]: the tutorial's ToTensor() + Normalize((0.5,)*3, (0.5,)*3)."""
    return images.float().div_(255.0).sub_(0.5).div_(0.5)


def loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
) -> torch.utils.data.DataLoader[Any]:
    """Whole batches indexed at once (no per-image collate); in-process (`num_workers=0`)."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

    dataset = TensorDataset(images, labels)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(order, batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0)


# --- models -----------------------------------------------------------------------------------


class LeNet(nn.Module):
    """The PyTorch CIFAR-10 tutorial's network (named `Net` there)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        logits: torch.Tensor = self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
        return logits


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet (6n+2 layers: 16/32/64 channels); n=1 is ResNet-8, n=3 ResNet-20."""

    def __init__(self, blocks_per_stage: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        inputs = 16
        for outputs, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(inputs, outputs, stride if i == 0 else 1))
                inputs = outputs
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn(self.conv(x))))
        # A mean, not adaptive_avg_pool2d: its CUDA backward has no deterministic kernel.
        logits: torch.Tensor = self.fc(x.mean(dim=(2, 3)))
        return logits


def build_model(name: str) -> nn.Module:
    if name == "lenet":
        return LeNet()
    if name == "resnet":
        return ResNet(blocks_per_stage=1)
    raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")


# --- device and determinism -------------------------------------------------------------------


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is visible (on bg, set `gpus` on the stage)")
    return torch.device(choice)


def make_deterministic(seed: int, threads: int, device: torch.device) -> dict[str, Any]:
    """Seed every generator, pin threads, forbid nondeterministic kernels; returns what was set."""
    if device.type == "cuda":
        # cuBLAS reads this when its handle is created: set before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")
        if device.type == "cuda"
        else "",
    }


# --- model files ------------------------------------------------------------------------------


def state_dict_bytes(model: nn.Module) -> bytes:
    """The state dict as `torch.save` bytes, identical for identical weights.

    Saving to a buffer (not a path) fixes the archive's internal folder name, which
    `torch.save(obj, "x.pt")` derives from the file name; torch's zip writer uses no
    timestamps, and its serialization id (torch >= 2.1) is a CRC of the contents.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def json_text(record: dict[str, Any]) -> str:
    """Deterministic, diff-friendly JSON: one top-level key a line, sorted; values compact."""
    lines = [f"  {json.dumps(key)}: {json.dumps(record[key], sort_keys=True)}" for key in sorted(record)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename: a killed stage never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only (`weights_only`, torch >= 1.13): a model file cannot run code when loaded."""
    state: dict[str, torch.Tensor] = torch.load(
        io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True
    )
    return state
