"""torch checkpoints (.pt/.pth, zip or legacy) and safetensors: which tensors differ and how.

Loaded safely or not at all: `torch.load(weights_only=True)`, whose unpickler builds only
tensors, containers and plain values and refuses anything else (a pickle that would run code is
"not loadable safely" and compared as bytes), or `safetensors`, which holds no code. A zip
checkpoint is memory-mapped and a safetensors file read tensor by tensor, so two 100 MB
checkpoints are never both copied into memory. Nested state dicts (a model's and an optimizer's,
dicts of dicts, lists) are walked like JSON: `optimizer.state.0.exp_avg`."""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildgraph.audit.compare.detect import SAFETENSORS_SUFFIX, is_safetensors, read_head
from buildgraph.audit.compare.difference import MAX_ITEMS, Difference, Unreadable, bounded, jsonable, plural
from buildgraph.audit.compare.tensors import TensorChange, compare_tensors, is_tensor
from buildgraph.audit.compare.values import Entry, ValueChange, brief_list, compare_values, walk

# safetensors' dtype codes, named as torch and numpy name them
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
          "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation")


@dataclass(frozen=True)
class Loaded:
    format: str  # "torch" | "safetensors"
    tree: Any  # the loaded object: a state dict, nested dicts, a tensor …
    metadata: dict[str, str]  # safetensors' __metadata__


class Lazy:
    """A tensor of an open safetensors file, read only when compared."""

    def __init__(self, handle: Any, name: str) -> None:
        self.handle, self.name = handle, name
        info = handle.get_slice(name)
        self.shape = tuple(info.get_shape())
        self.dtype = DTYPES.get(info.get_dtype(), info.get_dtype().lower())

    def reshape(self, *shape: int) -> Any:  # only so that it passes as a tensor: `load` it first
        raise TypeError("a lazy tensor: load() it")

    def load(self) -> Any:
        return self.handle.get_tensor(self.name)


def compare_checkpoint(path: str, recorded: Path, audited: Path) -> Difference:
    with ExitStack() as stack:
        old, new = load(recorded, stack), load(audited, stack)
        leaf = TensorLeaf()
        entries = list(walk(old.tree, new.tree, leaf))
        entries += walk(old.metadata, new.metadata, compare_values, "__metadata__")
    tensors = [e for e in entries if isinstance(e, TensorChange)]
    formats = f"{old.format} → {new.format}" if old.format != new.format else old.format
    details = [f"format: {formats}"]
    data = {
        "formats": [old.format, new.format],
        "tensors_compared": leaf.compared,
        "tensors_differing": len(tensors),
        "changes": [e.as_data() for e in entries[:MAX_ITEMS]],
        "count": len(entries),
    }
    summary = _summary(entries, tensors, leaf.compared)
    return Difference(path, "checkpoint", False, summary, bounded(details + [e.line() for e in entries]),
                      jsonable(data))


class TensorLeaf:
    """The walk's `Leaf` for checkpoints: tensors by `compare_tensors`, plain values as JSON's."""

    def __init__(self) -> None:
        self.compared = 0

    def __call__(self, where: str, old: Any, new: Any) -> Iterator[Entry]:
        old, new = _resolve(old), _resolve(new)
        if is_tensor(old) and is_tensor(new):
            self.compared += 1
            change = compare_tensors(where, old, new)
            if change is not None:
                yield change
        elif is_tensor(old) or is_tensor(new):
            yield ValueChange(where, "changed", old, new)
        else:
            yield from compare_values(where, old, new)


def _resolve(value: Any) -> Any:
    return value.load() if isinstance(value, Lazy) else value


def _summary(entries: list[Entry], tensors: Sequence[Entry], compared: int) -> str:
    if not entries:
        return f"all {plural(compared, 'tensor')} and values equal; only the serialised bytes differ"
    parts = []
    if tensors:
        parts.append(f"{len(tensors)} of {plural(compared, 'tensor')} differ: {brief_list(tensors, 80)}")
    for change, word in (("added", "added"), ("removed", "removed")):
        count = sum(1 for e in entries if isinstance(e, ValueChange) and e.change == change)
        if count:
            parts.append(f"{count} {word}")
    others = sum(1 for e in entries if isinstance(e, ValueChange) and e.change in ("changed", "length"))
    if others:
        parts.append(f"{plural(others, 'other value differs', 'other values differ')}")
    return "; ".join(parts)


def load(path: Path, stack: ExitStack) -> Loaded:
    head = read_head(path)
    if is_safetensors(head, path.stat().st_size) or path.suffix.lower() == SAFETENSORS_SUFFIX:
        return _load_safetensors(path, stack)
    return Loaded("torch", _load_torch(path), {})


def _load_torch(path: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise Unreadable("torch is not installed") from None
    try:
        # mmap: the storages stay on disk until a comparison reads them (zip checkpoints only)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # whatever the restricted unpickler refuses or fails on, the answer is one
        why = f"not loadable safely (torch.load with weights_only=True refused it: {_first(e)})"
        raise Unreadable(why) from None


def _load_safetensors(path: Path, stack: ExitStack) -> Loaded:
    try:
        from safetensors import safe_open
    except ImportError:
        raise Unreadable("the safetensors package is not installed") from None
    framework = "pt" if importlib.util.find_spec("torch") else "numpy"  # numpy has no bfloat16
    try:
        handle = stack.enter_context(safe_open(str(path), framework=framework))
        tree = {name: Lazy(handle, name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
        return Loaded("safetensors", tree, dict(handle.metadata() or {}))
    except Exception as e:  # the library's own error types are not public API
        raise Unreadable(f"not a readable safetensors file ({_first(e)})") from None


def _first(error: BaseException) -> str:
    """The line of `error` that says what was wrong: torch opens with boilerplate about its
    defaults (which invites a reader to turn the protection off) and ends with a link."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(TORCH_BOILERPLATE)]
    return (useful or lines or [type(error).__name__])[0][:200]
