"""Command slots and the GPU pool (buildgraph/slots.py): limits, hand-over, stop."""

from __future__ import annotations

import threading
import time

from buildgraph.engine.slots import Claim, Slots


def take_in_thread(slots: Slots, gpus: int = 0) -> tuple[threading.Thread, list[Claim | None]]:
    got: list[Claim | None] = []
    slots.queue()
    thread = threading.Thread(target=lambda: got.append(slots.take(gpus)), daemon=True)
    thread.start()
    return thread, got


def test_at_most_jobs_slots_are_taken_and_a_freed_one_goes_to_the_waiter() -> None:
    slots = Slots(jobs=2)
    first, second = slots.queue() or slots.take(), slots.queue() or slots.take()
    assert first is not None and second is not None and slots.busy == 2
    waiter, got = take_in_thread(slots)
    time.sleep(0.05)
    assert got == [] and slots.queued == 1, "no third slot while two are taken"
    first.release()
    first.release()  # a second release gives nothing back
    waiter.join(timeout=2)
    assert got and got[0] is not None and slots.busy == 2 and slots.queued == 0


def test_stop_turns_waiting_steps_away() -> None:
    slots = Slots(jobs=1)
    slots.queue()
    held = slots.take()
    assert held is not None
    waiter, got = take_in_thread(slots)
    slots.stop()
    waiter.join(timeout=2)
    assert got == [None] and slots.queued == 0
    held.release()
    slots.queue()
    assert slots.take() is None, "nothing starts after stop, even with a free slot"


def test_gpus_are_handed_out_whole_and_returned() -> None:
    slots = Slots(jobs=4, gpus=2)
    slots.queue()
    two = slots.take(gpus=2)
    assert two is not None and two.gpu_ids == (0, 1) and not slots.gpus_free(1)
    waiter, got = take_in_thread(slots, gpus=1)
    time.sleep(0.05)
    assert got == [], "a free slot is not enough: the GPUs are taken"
    two.release()
    waiter.join(timeout=2)
    assert got and got[0] is not None and got[0].gpu_ids == (0,)
    assert slots.gpus_free(1) and not slots.gpus_free(2)
