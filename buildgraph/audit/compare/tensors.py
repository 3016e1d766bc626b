"""How two tensors differ: shape, dtype, how many elements, the largest absolute and relative
difference. Works on torch tensors and numpy arrays alike (safetensors without torch).

Values are compared a chunk at a time in float64 (complex128 for complex dtypes), so a tensor of
any size costs a few MiB beyond its own (often memory-mapped) storage. The relative difference
is |audited − recorded| / |recorded|, over the elements whose recorded value is not 0; two NaNs
in the same place are equal (a NaN weight that stays NaN did not change)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK = 1 << 20  # elements per step


def is_tensor(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("shape", "dtype", "reshape"))


def dtype_name(value: Any) -> str:
    return str(value.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class TensorChange:
    path: str
    dtypes: tuple[str, str]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    elements: int
    differing: int | None = None  # None: the values were not compared (shapes differ, or could not be)
    max_abs: float | None = None
    max_rel: float | None = None
    nan_mismatches: int = 0  # elements NaN on one side only (not in max_abs)
    note: str = ""

    def line(self) -> str:
        parts = self._structure()
        if self.differing is not None:
            parts.append(f"{self.differing:,} of {self.elements:,} elements differ")
            parts.append(f"max abs {_num(self.max_abs)}, max rel {_rel(self.max_rel)}")
        if self.nan_mismatches:
            parts.append(f"{self.nan_mismatches:,} NaN on one side only")
        if self.note:
            parts.append(self.note)
        return f"{self.path}: " + "; ".join(parts)

    def brief(self) -> str:
        parts = self._structure() or [f"max abs {_num(self.max_abs)}"]
        return f"{self.path} " + ", ".join(parts)

    def _structure(self) -> list[str]:
        (d0, d1), (s0, s1) = self.dtypes, self.shapes
        found = [f"shape {list(s0)} → {list(s1)}"] if s0 != s1 else []
        return found + ([f"dtype {d0} → {d1}"] if d0 != d1 else [])

    def as_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": "tensor",
            "dtypes": list(self.dtypes),
            "shapes": [list(s) for s in self.shapes],
            "elements": self.elements,
            "differing": self.differing,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "nan_mismatches": self.nan_mismatches,
        }


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _rel(value: float | None) -> str:
    """A relative difference as a percentage, in 4 significant digits however large or small."""
    return "-" if value is None else f"{value * 100:.4g}%"


def compare_tensors(path: str, old: Any, new: Any) -> TensorChange | None:
    """None when `old` and `new` hold the same dtype, shape and values."""
    dtypes = (dtype_name(old), dtype_name(new))
    shapes = (tuple(old.shape), tuple(new.shape))
    elements = _count(shapes[0])
    if shapes[0] != shapes[1]:
        return TensorChange(path, dtypes, shapes, elements)
    if dtypes[0] == dtypes[1] and _equal(old, new):
        return None
    try:
        differing, max_abs, max_rel, nans = _stats(old, new)
    except (RuntimeError, TypeError, ValueError) as e:  # quantized, sparse … tensors
        return TensorChange(path, dtypes, shapes, elements, note=f"values not comparable ({e})")
    if differing == 0 and dtypes[0] == dtypes[1]:
        return None  # differs only where both are NaN, or in the sign of a zero
    return TensorChange(path, dtypes, shapes, elements, differing, max_abs, max_rel, nans)


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


def _equal(old: Any, new: Any) -> bool:
    try:
        if hasattr(old, "detach"):
            import torch

            return bool(torch.equal(old, new))
        import numpy as np

        return bool(np.array_equal(old, new))
    except (RuntimeError, TypeError, ValueError):
        return False


def _stats(old: Any, new: Any) -> tuple[int, float | None, float | None, int]:
    """(differing elements, max abs, max rel, NaN mismatches), a chunk at a time."""
    import numpy as np

    differing = nans = 0
    max_abs: float | None = None
    max_rel: float | None = None
    for a, b in zip(_chunks(old), _chunks(new), strict=True):
        with np.errstate(all="ignore"):
            differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            if not differ.any():
                continue
            a, b = a[differ], b[differ]
            gap = np.abs(b - a)
            known = ~np.isnan(gap)
            differing += int(differ.sum())
            nans += int((~known).sum())
            if known.any():
                max_abs = max(max_abs or 0.0, float(gap[known].max()))
                ref = np.abs(a[known])
                if (ref > 0).any():
                    max_rel = max(max_rel or 0.0, float((gap[known][ref > 0] / ref[ref > 0]).max()))
    return differing, max_abs, max_rel, nans


def _chunks(tensor: Any) -> Iterator[Any]:
    import numpy as np

    wide = "complex" in str(tensor.dtype)
    flat = tensor.reshape(-1)
    for start in range(0, flat.shape[0], CHUNK):
        piece = flat[start : start + CHUNK]
        if hasattr(piece, "detach"):
            import torch

            yield piece.detach().to(torch.complex128 if wide else torch.float64).numpy()
        else:
            yield np.asarray(piece, dtype=np.complex128 if wide else np.float64)
