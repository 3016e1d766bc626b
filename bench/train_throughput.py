"""Training throughput of the example's models on the CPU: images per second.

    python3 bench/train_throughput.py [--threads 1 2] [--seconds 3] [--batch-sizes 4 64]

Times full training steps (normalise, forward, cross-entropy, backward, SGD with
momentum) on random uint8 batches, after a warm-up, with the same thread pinning
and deterministic algorithms as `stages/train.py`. Prints one row per thread
count, model and batch size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))

import cifar  # noqa: E402
import torch  # noqa: E402


def images_per_second(model_name: str, batch_size: int, seconds: float, warmup: int = 5) -> tuple[float, int]:
    """(images/s, steps timed) for training steps of `model_name` at `batch_size`."""
    model = cifar.build_model(model_name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (batch_size,), generator=generator)

    def step() -> None:
        optimizer.zero_grad()
        criterion(model(cifar.normalise(images)), labels).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step()
        steps += 1
    return steps * batch_size / elapsed, steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 64])
    p.add_argument("--models", nargs="+", default=list(cifar.MODELS), choices=cifar.MODELS)
    args = p.parse_args()
    print(f"torch {torch.__version__}, CPU, {args.seconds:g} s per row")
    print(f"{'threads':>7} {'model':<8} {'batch':>5} {'images/s':>9} {'steps':>6} {'ms/step':>8}")
    for threads in args.threads:
        cifar.make_deterministic(0, threads, torch.device("cpu"))
        for model_name in args.models:
            for batch_size in args.batch_sizes:
                rate, steps = images_per_second(model_name, batch_size, args.seconds)
                row = f"{threads:>7} {model_name:<8} {batch_size:>5} {rate:>9.0f} {steps:>6}"
                print(f"{row} {1000 * batch_size / rate:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
