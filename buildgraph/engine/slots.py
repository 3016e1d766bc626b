"""Who may start a command now: the `-j N` command slots and the GPU pool.

A step's worker takes a slot (with the GPUs its stage asks for) right before its command and
gives it back as soon as the command succeeded, so that storing that step's outputs (hashing,
fsyncs) overlaps the next command. The scheduler hands steps to workers ahead of a free slot:
the worker waiting starts its command the moment a slot frees, with no round trip through the
scheduler's thread. After a failure (without --keep-going) or Ctrl-C, `stop` turns the waiting
workers away: their steps were never started.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")


class Claim:
    """A slot and GPU ids held by one step; `release` gives them back, once."""

    def __init__(self, slots: Slots, gpu_ids: tuple[int, ...]) -> None:
        self.gpu_ids = gpu_ids
        self._slots: Slots | None = slots

    def release(self) -> None:
        slots, self._slots = self._slots, None  # a Claim is used by its worker thread only
        if slots is not None:
            slots._give_back(self.gpu_ids)


class Slots:
    def __init__(self, jobs: int, gpus: int = 0) -> None:
        self.jobs = max(1, jobs)
        self.busy = 0  # slots taken
        self.queued = 0  # steps handed to a worker, waiting for a slot
        self._gpus_free = list(range(gpus))
        self._gpu_waiters = 0
        self._stopped = False
        self._cond = threading.Condition()
        self._wake = threading.Event()  # for the scheduler: a slot taken, a step finished

    def gpus_free(self, need: int) -> bool:
        with self._cond:
            return len(self._gpus_free) >= need

    def queue(self) -> None:
        """The scheduler handed a step to a worker, which will `take` a slot."""
        with self._cond:
            self.queued += 1

    def take(self, gpus: int = 0) -> Claim | None:
        """Wait for a free slot and `gpus` free GPUs; None once stopped (do not start)."""
        with self._cond:
            self._gpu_waiters += 1 if gpus else 0
            while not self._stopped and (self.busy >= self.jobs or len(self._gpus_free) < gpus):
                self._cond.wait()
            self._gpu_waiters -= 1 if gpus else 0
            self.queued -= 1
            if self._stopped:
                claim = None
            else:
                self.busy += 1
                ids, self._gpus_free = tuple(self._gpus_free[:gpus]), self._gpus_free[gpus:]
                claim = Claim(self, ids)
        self._wake.set()
        return claim

    def stop(self) -> None:
        """No step starts from now on; those waiting for a slot give up."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _give_back(self, gpu_ids: tuple[int, ...]) -> None:
        with self._cond:
            self.busy -= 1
            self._gpus_free = sorted(self._gpus_free + list(gpu_ids))
            if self._gpu_waiters:
                self._cond.notify_all()  # the one woken might need GPUs not free yet
            else:
                self._cond.notify()  # the scheduler need not wake: a waiting worker takes the slot
        if gpu_ids:
            self._wake.set()  # the scheduler may hand out a step that was waiting for GPUs

    def watch(self, future: Future[T]) -> None:
        future.add_done_callback(lambda _: self._wake.set())

    def wait(self, running: Iterable[Future[T]], timeout: float = 0.25) -> list[Future[T]]:
        """The finished steps, after waiting up to `timeout` for a step to finish or a waiting
        step to take its slot (then the scheduler may hand out another)."""
        done = [f for f in running if f.done()]
        if not done:
            self._wake.wait(timeout)
            self._wake.clear()  # then look again: nothing that happened before is missed
            done = [f for f in running if f.done()]
        return done
