"""Stage `train`: train a CIFAR-10 classifier; write `model.pt` and `loss.json`.

The PyTorch tutorial's loop (SGD with momentum, cross-entropy, its loss lines),
made reproducible: same inputs → byte-identical `model.pt` and `loss.json` on the
same CPU software stack. Nothing time-dependent goes into the outputs (no
timings, dates or host names), so a rerun that learns the same weights leaves
every downstream stage valid.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cifar  # stages/cifar.py, next to this file (python puts the script's folder on sys.path)
import torch
from torch import nn

LOG_INTERVALS = (2000, 1000, 500, 250, 100, 50, 20, 10, 5, 2, 1)


def log_interval(batches_per_epoch: int, requested: int = 0) -> int:
    """The tutorial's 2,000 mini-batches, or a round interval giving ~4+ lines an epoch on small data."""
    if requested > 0:
        return requested
    return next(n for n in LOG_INTERVALS if n * 4 <= batches_per_epoch or n == 1)


class Progress:
    """An epoch progress bar: redrawn with `\\r` on a terminal, a line every 10 % in a log."""

    def __init__(self, total: int, epoch: int, epochs: int, stream: Any = None) -> None:
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = self.last_draw = time.monotonic()
        self.tenths_shown = 0

    def update(self, done: int, images: int) -> None:
        now = time.monotonic()
        tenths = 10 * done // self.total
        if self.tty and (now - self.last_draw >= 0.2 or done == self.total):
            self.stream.write("\r" + self._text(done, images, now))
            self.last_draw = now
        elif not self.tty and tenths > self.tenths_shown:
            self.stream.write(self._text(done, images, now) + "\n")
        self.tenths_shown = max(self.tenths_shown, tenths)
        if done == self.total and self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _text(self, done: int, images: int, now: float) -> str:
        elapsed = max(now - self.start, 1e-6)
        eta = elapsed * (self.total - done) / max(done, 1)
        filled = 20 * done // self.total
        return (
            f"epoch {self.epoch}/{self.epochs} [{'#' * filled}{'.' * (20 - filled)}] "
            f"{done:>{len(str(self.total))}}/{self.total} {images / elapsed:7.0f} img/s eta {eta:4.0f}s"
        )


def train_epoch(
    model: nn.Module,
    batches: Any,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    epochs: int,
    interval: int,
) -> list[float]:
    """One pass over the data; prints the tutorial's loss lines; returns each step's loss."""
    criterion = nn.CrossEntropyLoss()
    progress = Progress(len(batches), epoch, epochs)
    losses: list[float] = []
    running, images = 0.0, 0
    model.train()
    for i, (inputs, labels) in enumerate(batches):
        inputs, labels = cifar.normalise(inputs).to(device), labels.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        value = loss.item()
        losses.append(value)
        running += value
        images += len(labels)
        if i % interval == interval - 1:
            line = "[%d, %5d] loss: %.3f" % (epoch, i + 1, running / interval)  # noqa: UP031 (the tutorial's)
            print(line, flush=True)
            running = 0.0
        progress.update(i + 1, images)
    return losses


def loss_record(
    args: argparse.Namespace,
    environment: dict[str, Any],
    losses: list[list[float]],
    interval: int,
    train_images: int,
) -> dict[str, Any]:
    """loss.json: the per-step curve and everything needed to reproduce it; no timings."""
    return {
        "config": {
            "model": args.model,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "momentum": args.momentum,
            "train_images": train_images,
        },
        "environment": environment,
        "log_interval": interval,
        "steps_per_epoch": len(losses[0]) if losses else 0,
        "epoch_mean_loss": [round(sum(e) / len(e), 6) for e in losses],
        "loss": [round(v, 6) for epoch in losses for v in epoch],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="train.py")
    p.add_argument("--data", type=Path, default=Path("data"), help="folder holding cifar-10-batches-py/")
    p.add_argument("--model", choices=cifar.MODELS, default="lenet")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (pinned for reproducibility)"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--log-every", type=int, default=0, help="mini-batches per loss line (0: 2000, scaled down)"
    )
    p.add_argument("--out", type=Path, default=Path("model.pt"))
    p.add_argument("--loss", type=Path, default=Path("loss.json"))
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = cifar.resolve_device(args.device)
    except RuntimeError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 1
    environment = cifar.make_deterministic(args.seed, args.threads, device)
    print(f"device {device}, torch {torch.__version__}, {environment['threads']} threads, seed {args.seed}")
    images, labels = cifar.load_split(args.data, train=True)
    generator = torch.Generator().manual_seed(args.seed)
    batches = cifar.loader(images, labels, args.batch_size, shuffle=True, generator=generator)
    interval = log_interval(len(batches), args.log_every)
    model = cifar.build_model(args.model).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    losses = [
        train_epoch(model, batches, optimizer, device, epoch, args.epochs, interval)
        for epoch in range(1, args.epochs + 1)
    ]
    print("Finished Training")
    cifar.write_atomic(args.out, cifar.state_dict_bytes(model))
    record = loss_record(args, environment, losses, interval, len(labels))
    cifar.write_atomic(args.loss, cifar.json_text(record).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
