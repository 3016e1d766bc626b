"""A writer for the pickles the CIFAR-10 batch files are: Python 2 ``cPickle``, protocol 2.

Hand-written, opcode by opcode, so the bytes never depend on the Python or numpy
version: numpy 2's own pickles reference ``numpy._core``, which numpy 1.x cannot
load, and Python 3's pickler cannot write Python 2 ``str`` objects at all. Keys and
strings written as ``Py2Str`` are decoded by the reader's ``encoding``:
``pickle.load(f, encoding="bytes")`` gives ``b"data"`` (the CIFAR-10 page's recipe),
``encoding="latin1"`` gives ``"data"`` (torchvision's).

Used by ``data.py`` only (and listed as an input of the ``data`` stage).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np


class Py2Str(bytes):
    """Bytes that pickle as a Python 2 ``str`` (decoded by ``pickle.load``'s ``encoding``)."""


class _Py2Pickler:
    """Writes the subset of pickle protocol 2 that the CIFAR-10 batch files use."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def dumps(self, obj: Any) -> bytes:
        self.out.write(b"\x80\x02")  # PROTO 2
        self._save(obj)
        self.out.write(b".")  # STOP
        return self.out.getvalue()

    def _save(self, obj: Any) -> None:
        if obj is None:
            self.out.write(b"N")
        elif isinstance(obj, bool):
            self.out.write(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, bytes):
            self._str(obj)
        elif isinstance(obj, tuple):
            self._tuple(obj)
        elif isinstance(obj, list):
            self._list(obj)
        elif isinstance(obj, dict):
            self._dict(obj)
        elif isinstance(obj, np.ndarray):
            self._ndarray(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__} in a CIFAR-10 pickle")

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out.write(b"K" + struct.pack("<B", value))
        elif 0 <= value < 65536:
            self.out.write(b"M" + struct.pack("<H", value))
        else:
            self.out.write(b"J" + struct.pack("<i", value))

    def _str(self, value: bytes) -> None:
        if len(value) < 256:
            self.out.write(b"U" + struct.pack("<B", len(value)) + value)
        else:
            self.out.write(b"T" + struct.pack("<I", len(value)) + value)

    def _tuple(self, items: Sequence[Any]) -> None:
        self.out.write(b"(")
        for item in items:
            self._save(item)
        self.out.write(b"t")

    def _list(self, items: Sequence[Any]) -> None:
        self.out.write(b"]")
        if items:
            self.out.write(b"(")
            for item in items:
                self._save(item)
            self.out.write(b"e")  # APPENDS

    def _dict(self, mapping: dict[bytes, Any]) -> None:
        self.out.write(b"}(")
        for key, value in mapping.items():
            self._save(key)
            self._save(value)
        self.out.write(b"u")

    def _global(self, module: str, name: str) -> None:
        self.out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def _ndarray(self, array: np.ndarray) -> None:
        # What numpy 1.x's ndarray.__reduce__ produced under Python 2.
        if array.dtype != np.uint8:
            raise TypeError("only uint8 arrays are written")
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self._save((0,))
        self._save(Py2Str(b"b"))
        self.out.write(b"\x87R")  # TUPLE3, REDUCE
        self.out.write(b"(")  # state: (version, shape, dtype, fortran, raw bytes)
        self._save(1)
        self._save(tuple(array.shape))
        self._global("numpy", "dtype")
        self._save((Py2Str(b"u1"), 0, 1))
        self.out.write(b"R")
        self._save((3, Py2Str(b"|"), None, None, None, -1, -1, 0))
        self.out.write(b"b")  # BUILD the dtype
        self._save(False)
        self._save(Py2Str(np.ascontiguousarray(array).tobytes()))
        self.out.write(b"tb")  # TUPLE, BUILD the array


def py2_pickle(obj: Any) -> bytes:
    return _Py2Pickler().dumps(obj)
