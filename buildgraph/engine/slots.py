"""Who may start a command now: the `-j N` command slots and the GPU pool.

A step's worker takes a slot (with the GPUs its stage asks for) right before its command
starts, once its inputs are staged, and gives it back as soon as the command succeeded, so
that staging the next step's inputs and storing this step's outputs (hashing) overlap the
commands. The scheduler hands steps to workers ahead of a free slot: the worker waiting
starts its command the moment a slot frees, with no round trip through the scheduler's
thread. After a failure (without --keep-going) or Ctrl-C, `stop` turns the waiting workers
away: their steps were never started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")


class Claim:
    """A step's right to a slot (and GPU ids), taken by `admit` right before its command
    starts, so that staging its inputs overlaps the command before it; `release` gives the
    slot back, or the place in the queue of a step that never started. Used by one worker."""

    def __init__(
        self, slots: Slots, gpus: int = 0, on_admit: Callable[[], None] = lambda: None,
        turn: int | None = None,
    ) -> None:
        self.gpu_ids: tuple[int, ...] = ()
        self.admitted = False
        self._slots: Slots | None = slots
        self._gpus, self._on_admit, self._turn = gpus, on_admit, turn

    def admit(self) -> bool:
        """Wait for the slot and GPUs (at once when already admitted); False once the run
        stopped: the step must not start."""
        if self.admitted:
            return True
        slots = self._slots
        ids = None if slots is None else slots._take(self._gpus, self._turn)
        if ids is None:
            self._slots = None  # its place in the queue is given up already
            return False
        self.gpu_ids, self.admitted = ids, True
        self._on_admit()
        return True

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is None:
            return
        if self.admitted:
            slots._give_back(self.gpu_ids)
        else:
            slots._unqueue(self._turn)


class Slots:
    def __init__(self, jobs: int, gpus: int = 0) -> None:
        self.jobs = max(1, jobs)
        self.busy = 0  # slots taken
        self.queued = 0  # steps handed to a worker, waiting for a slot
        self._gpus_free = list(range(gpus))
        self._gpu_waiters = 0
        # claims without GPUs not admitted yet, in the order they were handed out: they start
        # in that order, however long each takes to prepare (GPU steps wait for their GPUs)
        self._turns: dict[int, None] = {}
        self._next_turn = 0
        self._stopped = False
        self._cond = threading.Condition()
        self._wake = threading.Event()  # for the scheduler: a slot taken, a step finished

    def gpus_free(self, need: int) -> bool:
        with self._cond:
            return len(self._gpus_free) >= need

    def claim(self, gpus: int = 0, on_admit: Callable[[], None] = lambda: None) -> Claim:
        """Hand a step out (it is `queued`): its claim, to `admit` before its command starts;
        `on_admit` is called then, on the worker's thread."""
        with self._cond:
            self.queued += 1
            turn = None
            if not gpus:
                turn, self._next_turn = self._next_turn, self._next_turn + 1
                self._turns[turn] = None
        return Claim(self, gpus, on_admit, turn)

    def _take(self, gpus: int, turn: int | None) -> tuple[int, ...] | None:
        with self._cond:
            self._gpu_waiters += 1 if gpus else 0
            while not self._stopped and (
                self.busy >= self.jobs
                or len(self._gpus_free) < gpus
                or (turn is not None and next(iter(self._turns)) != turn)
            ):
                self._cond.wait()
            self._gpu_waiters -= 1 if gpus else 0
            self.queued -= 1
            self._leave(turn)
            if self._stopped:
                ids = None
            else:
                self.busy += 1
                ids, self._gpus_free = tuple(self._gpus_free[:gpus]), self._gpus_free[gpus:]
        self._wake.set()
        return ids

    def _unqueue(self, turn: int | None) -> None:
        """A step handed out ended without starting (its inputs could not be staged …)."""
        with self._cond:
            self.queued -= 1
            self._leave(turn)
        self._wake.set()

    def _leave(self, turn: int | None) -> None:
        """`turn` is no longer waiting (under the condition): the next in turn may go."""
        if turn is not None:
            first = next(iter(self._turns)) == turn
            del self._turns[turn]
            if first and self._turns:
                self._cond.notify_all()

    def stop(self) -> None:
        """No step starts from now on; those waiting for a slot give up."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _give_back(self, gpu_ids: tuple[int, ...]) -> None:
        with self._cond:
            self.busy -= 1
            self._gpus_free = sorted(self._gpus_free + list(gpu_ids))
            if self._gpu_waiters or self._turns:
                self._cond.notify_all()  # the one woken might need GPUs not free yet, or wait its turn
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
