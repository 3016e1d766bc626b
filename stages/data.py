"""Stage `data`: produce `DIR/cifar-10-batches-py/` in the CIFAR-10 python format.

Three sources, one on-disk result, so `train.py` reads real and synthetic data
through the same code path:

- ``synthetic``   ten learnable classes (a shape per class, colours shared by
                  pairs of classes, random placement, size and noise), generated
                  deterministically: the same sizes and seed give identical bytes
                  on any machine (numpy's ``RandomState`` stream is frozen, and the
                  pickles are written opcode by opcode, not by ``pickle.dump``).
- ``download``    the official archive, md5-verified, then extracted.
- ``path:DIR``    an existing local copy (a ``cifar-10-batches-py`` directory or
                  its parent), validated, then copied.

The files are exactly what the original Python 2 ``cPickle`` wrote (see
``py2pickle.py``): ``pickle.load(f, encoding="bytes")`` gives ``b"data"`` keys
(the CIFAR web page's recipe), ``encoding="latin1"`` gives ``"data"`` keys
(torchvision's loader).

Only the standard library and numpy: this stage must not pay torch's import time.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import shutil
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from py2pickle import Py2Str, py2_pickle  # stages/py2pickle.py, next to this file

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
PIXELS = SIDE * SIDE


class DataError(Exception):
    """A problem the user can fix (bad source, corrupt copy, checksum mismatch)."""


# --- synthetic data --------------------------------------------------------------------------

# Pairs of classes share a colour, so a model must learn shapes, not only colours:
# airplane/truck (plus, frame), automobile/ship (bar, stripes), bird/frog (triangle,
# checks), cat/dog (disc, ring), deer/horse (vertical, diagonal stripes).
_RED, _BLUE, _YELLOW, _GREEN, _VIOLET = (
    (0.85, 0.25, 0.2),
    (0.2, 0.45, 0.85),
    (0.9, 0.75, 0.15),
    (0.25, 0.7, 0.3),
    (0.7, 0.3, 0.8),
)
_CLASS_COLOURS = (_RED, _BLUE, _YELLOW, _GREEN, _VIOLET, _GREEN, _YELLOW, _VIOLET, _BLUE, _RED)


def _shape_masks(label: int, n: int, rng: np.random.RandomState) -> np.ndarray:
    """(n, 32, 32) booleans: the class's shape at a random position and size."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    cy = (16 + rng.uniform(-5, 5, n))[:, None, None]
    cx = (16 + rng.uniform(-5, 5, n))[:, None, None]
    r = rng.uniform(7, 11, n)[:, None, None]
    phase = rng.randint(0, 6, n)[:, None, None]
    dy, dx = yy - cy, xx - cx
    box = (np.abs(dx) < r) & (np.abs(dy) < r)
    dist2 = dx * dx + dy * dy
    shapes: dict[int, Callable[[], np.ndarray]] = {
        0: lambda: ((np.abs(dx) < r) & (np.abs(dy) < r / 3)) | ((np.abs(dx) < r / 3) & (np.abs(dy) < r)),
        1: lambda: (np.abs(dx) < r) & (np.abs(dy) < r / 2),
        2: lambda: (dy < r * 0.8) & (np.abs(dx) < (dy + r) / 2),
        3: lambda: dist2 < r * r,
        4: lambda: box & (((xx + phase) // 3) % 2 == 0),
        5: lambda: (dist2 < r * r) & (dist2 > (0.55 * r) ** 2),
        6: lambda: box & (((xx + phase) // 4 + (yy + phase) // 4) % 2 == 0),
        7: lambda: box & (((xx + yy + phase) // 3) % 2 == 0),
        8: lambda: box & (((yy + phase) // 3) % 2 == 0),
        9: lambda: box & ~((np.abs(dx) < r - 3) & (np.abs(dy) < r - 3)),
    }
    return shapes[label]()


def _class_images(label: int, n: int, rng: np.random.RandomState) -> np.ndarray:
    """(n, 3, 32, 32) uint8 images of one class: shape on a random background, plus noise."""
    mask = _shape_masks(label, n, rng)[:, None, :, :]
    background = rng.uniform(0.0, 0.6, (n, 3, 1, 1))
    foreground = np.clip(
        np.array(_CLASS_COLOURS[label])[None, :, None, None] + rng.normal(0, 0.12, (n, 3, 1, 1)), 0, 1
    )
    image = np.where(mask, foreground, background) + rng.normal(0, 0.18, (n, 3, SIDE, SIDE))
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def synthetic_split(n: int, rng: np.random.RandomState) -> tuple[np.ndarray, list[int]]:
    """`n` balanced, shuffled images: (data (n, 3072) uint8, labels list[int])."""
    labels = np.arange(n) % len(LABEL_NAMES)
    rng.shuffle(labels)
    data = np.empty((n, 3 * PIXELS), dtype=np.uint8)
    for label in range(len(LABEL_NAMES)):
        where = np.flatnonzero(labels == label)
        data[where] = _class_images(label, len(where), rng).reshape(len(where), -1)
    return data, [int(x) for x in labels]


def _batch(label: str, data: np.ndarray, labels: list[int], first: int) -> dict[bytes, Any]:
    names = [
        Py2Str(f"synthetic_{LABEL_NAMES[y]}_s_{first + i:06d}.png".encode()) for i, y in enumerate(labels)
    ]
    return {
        Py2Str(b"batch_label"): Py2Str(label.encode()),
        Py2Str(b"labels"): labels,
        Py2Str(b"data"): data,
        Py2Str(b"filenames"): names,
    }


def write_synthetic(out: Path, train_size: int, test_size: int, seed: int = 0) -> Path:
    """Write a synthetic CIFAR-10 to `out/cifar-10-batches-py/`; returns that directory."""
    if train_size < len(TRAIN_FILES) or test_size < 1:
        raise DataError(f"synthetic sizes too small: train {train_size} (>= 5), test {test_size} (>= 1)")
    rng = np.random.RandomState(seed)
    target = out / BATCHES_DIR
    target.mkdir(parents=True, exist_ok=True)
    data, labels = synthetic_split(train_size, rng)
    bounds = np.linspace(0, train_size, len(TRAIN_FILES) + 1).astype(int)
    for i, name in enumerate(TRAIN_FILES):
        lo, hi = bounds[i], bounds[i + 1]
        batch = _batch(f"training batch {i + 1} of 5", data[lo:hi], labels[lo:hi], lo)
        (target / name).write_bytes(py2_pickle(batch))
    data, labels = synthetic_split(test_size, rng)
    (target / TEST_FILE).write_bytes(py2_pickle(_batch("testing batch 1 of 1", data, labels, 0)))
    meta = {
        Py2Str(b"num_cases_per_batch"): int(bounds[1]),
        Py2Str(b"label_names"): [Py2Str(x.encode()) for x in LABEL_NAMES],
        Py2Str(b"num_vis"): 3 * PIXELS,
    }
    (target / META_FILE).write_bytes(py2_pickle(meta))
    (target / "readme.html").write_text(_README.format(train=train_size, test=test_size, seed=seed))
    return target


_README = """<meta HTTP-EQUIV="REFRESH" content="0; url=http://www.cs.toronto.edu/~kriz/cifar.html">
<!-- Synthetic stand-in for CIFAR-10 written by buildgraph's example (stages/data.py):
     {train} training and {test} test images, seed {seed}. Same file format as the real data set. -->
"""


# --- validation ------------------------------------------------------------------------------


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except Exception as exc:  # a truncated or foreign file raises many different errors
        raise DataError(f"{path}: not a CIFAR-10 pickle ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


def _check_batch(path: Path) -> int:
    batch = _unpickle(path)
    missing = [k.decode() for k in (b"batch_label", b"labels", b"data", b"filenames") if k not in batch]
    if missing:
        raise DataError(f"{path}: missing keys {', '.join(missing)}")
    data, labels = batch[b"data"], batch[b"labels"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * PIXELS
    ):
        raise DataError(f"{path}: b'data' must be an N x 3072 uint8 array")
    if len(labels) != len(data) or not all(0 <= int(y) < len(LABEL_NAMES) for y in labels):
        raise DataError(f"{path}: b'labels' must hold {len(data)} labels in 0..9")
    return len(data)


def validate(batches: Path) -> dict[str, int]:
    """Check a `cifar-10-batches-py` directory; returns {"train": N, "test": M}."""
    meta = _unpickle(batches / META_FILE)
    if len(meta.get(b"label_names", ())) != len(LABEL_NAMES):
        raise DataError(f"{batches / META_FILE}: b'label_names' must list 10 classes")
    train = sum(_check_batch(batches / name) for name in TRAIN_FILES)
    return {"train": train, "test": _check_batch(batches / TEST_FILE)}


# --- local copy and download -----------------------------------------------------------------


def copy_local(source: Path, out: Path) -> Path:
    """Validate an existing copy (the batches dir or its parent) and copy it into `out`."""
    batches = source if (source / META_FILE).exists() else source / BATCHES_DIR
    if not batches.is_dir():
        raise DataError(f"{source}: no {BATCHES_DIR}/ directory here")
    validate(batches)
    target = out / BATCHES_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in (*TRAIN_FILES, TEST_FILE, META_FILE, "readme.html"):
        if (batches / name).exists():
            shutil.copyfile(batches / name, target / name)
    return target


class _ProgressLine:
    """A download progress line: redrawn with `\\r` on a terminal, every 10 % in a log."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.shown, self.last_draw, self.start = -1, 0.0, time.monotonic()

    def update(self, done: int) -> None:
        percent = int(100 * done / self.total) if self.total else 0
        now = time.monotonic()
        if self.tty and (now - self.last_draw > 0.2 or done == self.total):
            self.stream.write(f"\r{self._text(done, percent, now)}")
            self.last_draw = now
        elif not self.tty and percent // 10 > self.shown // 10:
            self.stream.write(self._text(done, percent, now) + "\n")
        self.shown = max(self.shown, percent)
        self.stream.flush()

    def _text(self, done: int, percent: int, now: float) -> str:
        rate = done / max(now - self.start, 1e-6) / 1e6
        bar = "#" * (percent // 5) + "." * (20 - percent // 5)
        return f"download [{bar}] {percent:3d}% {done / 1e6:7.1f}/{self.total / 1e6:.1f} MB {rate:5.1f} MB/s"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def fetch(url: str, dest: Path, md5: str, chunk: int = 1 << 20) -> None:
    """Download `url` to `dest` with a progress line; raise DataError on an md5 mismatch."""
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as f:
            progress = _ProgressLine(int(response.headers.get("Content-Length") or 0))
            done = 0
            while block := response.read(chunk):
                f.write(block)
                digest.update(block)
                done += len(block)
                progress.update(done)
            progress.close()
    except OSError as exc:
        raise DataError(f"cannot download {url}: {exc}") from None
    if digest.hexdigest() != md5:
        dest.unlink()
        raise DataError(f"{url}: md5 {digest.hexdigest()} != expected {md5} (corrupt or wrong file)")


def _extract(archive: Path, out: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.9.17: refuses unsafe members
            tar.extractall(out, filter="data")
            return
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in Path(member.name).parts:
                raise DataError(f"{archive}: unsafe member {member.name!r}")
        tar.extractall(out)


def _torchvision_download() -> Callable[..., Any] | None:
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError:  # torchvision is optional: the stdlib path below does the same
        return None
    return download_and_extract_archive  # type: ignore[no-any-return]


def download(out: Path, url: str = URL, md5: str = MD5, use_torchvision: bool = True) -> Path:
    """Download, verify and extract the archive into `out`; returns the batches dir.

    torchvision's downloader (when installed) handles http(s) only; `file://` URLs,
    and machines without torchvision, take the standard-library path.
    """
    out.mkdir(parents=True, exist_ok=True)
    archive = out / url.rsplit("/", 1)[-1]
    web = url.startswith(("http://", "https://"))
    torchvision_download = _torchvision_download() if use_torchvision and web else None
    try:
        if torchvision_download is None:
            fetch(url, archive, md5)
            _extract(archive, out)
        else:
            torchvision_download(url, str(out), filename=archive.name, md5=md5)
    except DataError:
        raise
    except Exception as exc:  # urllib, tarfile and torchvision (RuntimeError on a bad md5) raise many kinds
        raise DataError(f"cannot download {url}: {exc.__class__.__name__}: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)  # the stage's output is the extracted data only
    validate(out / BATCHES_DIR)
    return out / BATCHES_DIR


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="data.py")
    p.add_argument("--source", default="synthetic", help="synthetic | download | path:DIR")
    p.add_argument("--out", type=Path, default=Path("data"), help="output directory (default: data)")
    p.add_argument("--train-size", type=int, default=5000, help="synthetic training images")
    p.add_argument("--test-size", type=int, default=1000, help="synthetic test images")
    p.add_argument("--seed", type=int, default=0, help="synthetic generator seed")
    p.add_argument("--url", default=URL, help="download URL (file:// works too)")
    p.add_argument("--md5", default=MD5, help="expected md5 of the downloaded archive")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    if args.source == "synthetic":
        return write_synthetic(args.out, args.train_size, args.test_size, args.seed)
    if args.source == "download":
        return download(args.out, args.url, args.md5)
    if args.source.startswith("path:") and len(args.source) > len("path:"):
        return copy_local(Path(args.source[len("path:") :]).expanduser(), args.out)
    raise DataError(f"unknown source {args.source!r}: use synthetic, download or path:DIR")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        batches = run(args)
        counts = validate(batches)
    except DataError as exc:
        print(f"data.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.source}: {counts['train']} training and {counts['test']} test images in {batches}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
