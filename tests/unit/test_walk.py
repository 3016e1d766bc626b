"""The walk (buildgraph/engine/walk.py) on string graphs: readiness, failure, giving up — no I/O."""

from __future__ import annotations

import pytest

from buildgraph.engine.walk import Walk

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def run_to_end(walk: Walk) -> list[str]:
    """Take and finish ready steps one at a time, first ready first: the order they ran."""
    ran = []
    while walk.ready:
        name = walk.ready[0]
        walk.start(name)
        walk.finish(name)
        ran.append(name)
    return ran


def test_steps_go_once_their_upstreams_are_done_in_the_order_given() -> None:
    walk = Walk(DIAMOND)
    assert walk.ready == ["a"]
    walk.start("a")
    assert walk.ready == [] and walk.running == {"a"} and walk.active
    assert walk.finish("a") == ["b", "c"]
    walk.start("c")
    assert walk.finish("c") == []  # d still waits for b
    walk.start("b")
    assert walk.finish("b") == ["d"]
    assert run_to_end(walk) == ["d"] and not walk.active and walk.unsettled() == []


def test_roots_are_ready_at_once_and_order_follows_the_mapping() -> None:
    walk = Walk({"z": [], "y": ["z"], "x": []})
    assert walk.ready == ["z", "x"]
    assert run_to_end(walk) == ["z", "x", "y"]


def test_upstreams_outside_the_walk_are_not_waited_for() -> None:
    walk = Walk({"train": ["data", "image"], "data": []})  # image: not selected
    assert run_to_end(walk) == ["data", "train"]


def test_a_failure_blocks_everything_below_it_and_nothing_beside_it() -> None:
    graph = {"a": [], "b": ["a"], "c": ["b"], "other": [], "d": ["c", "other"]}
    walk = Walk(graph)
    walk.start("a")
    assert walk.fail("a") == ["b", "c", "d"]
    assert walk.state["a"] == "failed" and {walk.state[n] for n in "bcd"} == {"blocked"}
    assert run_to_end(walk) == ["other"]
    assert walk.unsettled() == []


def test_a_step_blocked_twice_is_reported_once() -> None:
    walk = Walk({"a": [], "b": [], "c": ["a", "b"]})
    walk.start("a")
    walk.start("b")
    assert walk.fail("a") == ["c"]
    assert walk.fail("b") == []


def test_a_blocked_step_that_was_ready_leaves_the_ready_list() -> None:
    walk = Walk({"a": [], "b": ["a"], "c": ["a", "b"]})
    walk.start("a")
    walk.finish("a")
    assert walk.ready == ["b"]
    walk.start("b")
    assert walk.fail("b") == ["c"]
    assert walk.ready == [] and not walk.active


def test_a_step_given_up_is_unsettled_and_its_downstream_keeps_waiting() -> None:
    walk = Walk({"a": [], "b": ["a"], "c": []})
    walk.start("a")
    walk.give_up("a")  # handed out, stopped before it started
    assert walk.state["b"] == "waiting" and walk.ready == ["c"]
    assert walk.unsettled() == ["a", "b", "c"]


def test_only_legal_moves_are_allowed() -> None:
    walk = Walk({"a": [], "b": ["a"]})
    with pytest.raises(ValueError, match="'b' is waiting, not ready"):
        walk.start("b")
    with pytest.raises(ValueError, match="'a' is ready, not running"):
        walk.finish("a")
    walk.start("a")
    walk.finish("a")
    with pytest.raises(ValueError, match="'a' is done, not running"):
        walk.fail("a")


def test_repeated_upstreams_count_once() -> None:
    walk = Walk({"a": [], "b": ["a", "a"]})
    walk.start("a")
    assert walk.finish("a") == ["b"]
