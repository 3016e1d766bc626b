"""PNG and JPEG: sizes, how many pixels differ and where, by how much; a diff image.

Pixels are compared as 8-bit RGBA (palette, grey and RGB images alike), over the area both
images share when their sizes differ. A figure whose pixels are identical can still differ in
its metadata (matplotlib writes its version into a PNG), which is said as such."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from buildgraph.audit.compare.difference import Difference, Unreadable, jsonable, plural
from buildgraph.audit.compare.values import same, short

FADE = 0.25  # how much of the audited image shows under the marked pixels of a diff image
MARK = (255, 0, 0)  # differing pixels
ONLY_ONE = (255, 200, 0)  # pixels only one of the images has (a size change)


@dataclass(frozen=True)
class Picture:
    rgba: Any  # numpy int16 array, height × width × 4
    grey: Any  # numpy uint8 array, height × width
    mode: str
    format: str
    info: dict[str, Any]

    @property
    def size(self) -> tuple[int, int]:
        return self.rgba.shape[1], self.rgba.shape[0]


def compare_image(path: str, recorded: Path, audited: Path, report_dir: Path | None) -> Difference:
    old, new = load(recorded), load(audited)
    found = _pixels(old, new)
    details = [*_header_lines(old, new), *found.lines(), *_metadata_lines(old, new)]
    files: tuple[str, ...] = ()
    if report_dir is not None and (found.count or old.size != new.size):
        files = (write_diff_image(path, old, new, found.mask, report_dir),)
        details.append(f"diff image: {files[0]}")
    data = {
        "sizes": [list(old.size), list(new.size)],
        "modes": [old.mode, new.mode],
        **found.as_data(),
        "metadata_changed": sorted(_metadata_changes(old, new)),
    }
    summary = _summary(old, new, found)
    return Difference(path, "image", False, summary, tuple(details), jsonable(data), files)


def load(path: Path) -> Picture:
    import numpy as np
    from PIL import Image

    # OSError: not an image, or a truncated one; a decompression bomb: a fault to report, not to load
    errors = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                rgba = np.asarray(image.convert("RGBA"), dtype=np.int16)
                grey = np.asarray(image.convert("L"), dtype=np.uint8)
                info = {str(k): v for k, v in image.info.items()}
                return Picture(rgba, grey, image.mode, image.format or "", info)
    except errors as e:
        raise Unreadable(f"not a readable image ({e})") from None


@dataclass(frozen=True)
class Pixels:
    mask: Any  # bool array over the common area: which pixels differ
    count: int
    total: int
    box: tuple[int, int, int, int] | None  # left, top, right, bottom (right and bottom exclusive)
    max_channel: int
    mean_channel: float  # mean of the largest channel difference, over the differing pixels

    def lines(self) -> list[str]:
        share = self.count / self.total if self.total else 0.0
        found = [f"{self.count:,} of {plural(self.total, 'pixel')} differ ({share:.2%})"]
        if self.box:
            left, top, right, bottom = self.box
            found.append(f"differing pixels lie in x {left}–{right - 1}, y {top}–{bottom - 1}")
            found.append(
                f"largest channel difference {self.max_channel} of 255 "
                f"(mean {self.mean_channel:.1f} over the differing pixels)"
            )
        return found

    def as_data(self) -> dict[str, Any]:
        return {
            "differing_pixels": self.count,
            "pixels": self.total,
            "bbox": list(self.box) if self.box else None,
            "max_channel_difference": self.max_channel,
            "mean_channel_difference": self.mean_channel,
        }


def _pixels(old: Picture, new: Picture) -> Pixels:
    import numpy as np

    height, width = min(old.rgba.shape[0], new.rgba.shape[0]), min(old.rgba.shape[1], new.rgba.shape[1])
    delta = np.abs(old.rgba[:height, :width] - new.rgba[:height, :width]).max(axis=2)
    mask = delta > 0
    count = int(mask.sum())
    if not count:
        return Pixels(mask, 0, width * height, None, 0, 0.0)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Pixels(mask, count, width * height, box, int(delta.max()), float(delta[mask].mean()))


def _header_lines(old: Picture, new: Picture) -> list[str]:
    (w0, h0), (w1, h1) = old.size, new.size
    lines = [f"size: {w0}×{h0} → {w1}×{h1}" if old.size != new.size else f"size: {w0}×{h0}"]
    if old.size != new.size:
        lines.append(f"compared over the common {min(w0, w1)}×{min(h0, h1)} area, from the top left")
    if (old.mode, old.format) != (new.mode, new.format):
        lines.append(f"format: {old.format} {old.mode} → {new.format} {new.mode}")
    return lines


def _metadata_changes(old: Picture, new: Picture) -> dict[str, tuple[Any, Any]]:
    keys = [*old.info, *(k for k in new.info if k not in old.info)]
    return {
        str(k): (old.info.get(k), new.info.get(k)) for k in keys if not same(old.info.get(k), new.info.get(k))
    }


def _metadata_lines(old: Picture, new: Picture) -> list[str]:
    return [f"metadata {k}: {short(a)} → {short(b)}" for k, (a, b) in _metadata_changes(old, new).items()]


def _summary(old: Picture, new: Picture, found: Pixels) -> str:
    size = f"size {old.size[0]}×{old.size[1]} → {new.size[0]}×{new.size[1]}; " if old.size != new.size else ""
    if found.box:
        left, top, right, bottom = found.box
        return (
            f"{size}{found.count:,} of {found.total:,} pixels differ ({found.count / found.total:.2%}) "
            f"in x {left}–{right - 1}, y {top}–{bottom - 1}; max channel difference {found.max_channel}"
        )
    changed = _metadata_changes(old, new)
    rest = f"metadata differs: {', '.join(changed)}" if changed else "only the encoding differs"
    return f"{size}{'common area' if size else 'pixels'} identical; {rest}"


def write_diff_image(path: str, old: Picture, new: Picture, mask: Any, report_dir: Path) -> str:
    """The audited image faded to grey, its differing pixels red, and what only one of the two
    images covers yellow; written under `report_dir`, at the output's path + `.diff.png`."""
    import numpy as np
    from PIL import Image

    width, height = max(old.size[0], new.size[0]), max(old.size[1], new.size[1])
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = ONLY_ONE
    h, w = mask.shape
    faded = 255 - (255 - new.grey[:h, :w].astype(np.float32)) * FADE
    canvas[:h, :w] = faded.astype(np.uint8)[..., None]
    canvas[:h, :w][mask] = MARK
    name = "/".join(p for p in PurePosixPath(path).parts if p not in ("/", ".", "..")) + ".diff.png"
    dest = report_dir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(dest)  # uint8 height × width × 3: RGB
    return name
