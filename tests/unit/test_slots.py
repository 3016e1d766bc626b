"""Command slots and the GPU pool (buildgraph/engine/slots.py): limits, hand-over, turns, stop."""

from __future__ import annotations

import threading
import time

from buildgraph.engine.slots import Claim, Slots


def admit_in_thread(claim: Claim) -> tuple[threading.Thread, list[bool]]:
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(claim.admit()), daemon=True)
    thread.start()
    return thread, got


def admitted(slots: Slots, gpus: int = 0) -> Claim:
    claim = slots.claim(gpus)
    assert claim.admit()
    return claim


def test_at_most_jobs_slots_are_taken_and_a_freed_one_goes_to_the_waiter() -> None:
    slots = Slots(jobs=2)
    first = admitted(slots)
    admitted(slots)
    assert slots.busy == 2
    waiter, got = admit_in_thread(slots.claim())
    time.sleep(0.05)
    assert got == [] and slots.queued == 1, "no third slot while two are taken"
    first.release()
    first.release()  # a second release gives nothing back
    waiter.join(timeout=2)
    assert got == [True] and slots.busy == 2 and slots.queued == 0


def test_claims_are_admitted_in_the_order_they_were_handed_out() -> None:
    slots = Slots(jobs=1)
    early, late = slots.claim(), slots.claim()
    waiter, got = admit_in_thread(late)  # ready first, with a slot free: it waits its turn
    time.sleep(0.05)
    assert got == [] and slots.busy == 0, "the claim handed out first goes first"
    assert early.admit() and slots.busy == 1
    early.release()
    waiter.join(timeout=2)
    assert got == [True] and late.admitted


def test_a_claim_released_unadmitted_gives_up_its_turn_and_its_place() -> None:
    slots = Slots(jobs=1)
    never, next_one = slots.claim(), slots.claim()  # `never` fails while being prepared
    waiter, got = admit_in_thread(next_one)
    time.sleep(0.05)
    assert got == [] and slots.queued == 2
    never.release()
    waiter.join(timeout=2)
    assert got == [True] and slots.queued == 0 and slots.busy == 1
    assert not never.admitted


def test_stop_turns_waiting_steps_away() -> None:
    slots = Slots(jobs=1)
    held = admitted(slots)
    waiting = slots.claim()
    waiter, got = admit_in_thread(waiting)
    slots.stop()
    waiter.join(timeout=2)
    assert got == [False] and slots.queued == 0
    waiting.release()  # given up already: nothing to give back
    held.release()
    assert not slots.claim().admit(), "nothing starts after stop, even with a free slot"
    assert slots.busy == 0


def test_gpus_are_handed_out_whole_and_returned() -> None:
    slots = Slots(jobs=4, gpus=2)
    two = admitted(slots, gpus=2)
    assert two.gpu_ids == (0, 1) and not slots.gpus_free(1)
    one = slots.claim(gpus=1)
    waiter, got = admit_in_thread(one)
    time.sleep(0.05)
    assert got == [], "a free slot is not enough: the GPUs are taken"
    two.release()
    waiter.join(timeout=2)
    assert got == [True] and one.gpu_ids == (0,)
    assert slots.gpus_free(1) and not slots.gpus_free(2)


def test_on_admit_runs_once_when_admitted() -> None:
    slots = Slots(jobs=1)
    calls: list[str] = []
    claim = slots.claim(on_admit=lambda: calls.append("started"))
    assert calls == []
    assert claim.admit() and claim.admit()
    assert calls == ["started"]
