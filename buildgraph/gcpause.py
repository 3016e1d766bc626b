"""Keeping Python's cycle collector off bg's large, long-lived data.

A run of 10,000 stages holds millions of objects (the Spec, the graph, the lock, the stat
cache), made at start-up and kept to the end. The collector scans every tracked object at each
full collection, and allocating them triggers several: ~0.4 s of a 10,000-stage null run.

`paused()`: no collection while one large structure is built (`pickle.load`, `json.loads`:
they make no garbage cycles). `frozen()`: what exists when a run starts is left out of
collections until it ends (`gc.freeze`), then handed back, so cyclic garbage among it is still
collected; garbage the run makes is collected as usual. And a process that ran an engine skips
the full collection Python makes as it exits (~0.3 s at 10,000 stages), by freezing everything
then: what it would free, the process's end frees. bg closes its files and databases itself,
never through a finalizer.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def frozen() -> Iterator[None]:
    _no_collection_at_exit()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_at_exit: list[bool] = []


def _no_collection_at_exit() -> None:
    if not _at_exit:
        _at_exit.append(True)
        atexit.register(gc.freeze)
