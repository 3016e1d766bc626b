"""decide(): the action and its reasons, from material, lock entry and what the engine saw."""

from __future__ import annotations

from buildgraph.core.plan import Observed, decide, why_changed

MATERIAL = {
    "kind": "run",
    "environment": {"host": "linux/x86_64"},
    "command": "python3 train.py",
    "env": [],
    "params": {"epochs": 3},
    "args": {},
    "inputs": {"train.py": "b" * 64, "data": "c" * 64},
    "outputs": ["model.pt"],
}
OLD = {**MATERIAL, "params": {"epochs": 2}, "inputs": {"train.py": "a" * 64, "data": "c" * 64}}
ENTRY = {"key": "old", "material": OLD, "outputs": {"model.pt": {"digest": "d" * 64}}}


def kinds(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.kind for r in decision.reasons]


def test_never_built_runs() -> None:
    d = decide("train", "k", MATERIAL, None, Observed())
    assert (d.action, kinds(d)) == ("run", ["never-built"])


def test_changed_key_lists_every_difference() -> None:
    d = decide("train", "new", MATERIAL, ENTRY, Observed())
    assert d.action == "run"
    assert [r.text() for r in d.reasons] == ["param epochs 2 → 3", "input train.py changed"]


def test_changed_key_found_in_cache_restores() -> None:
    d = decide("train", "new", MATERIAL, ENTRY, Observed(cached=True))
    assert d.action == "restore"


def test_same_key_and_outputs_skips() -> None:
    entry = {**ENTRY, "key": "k"}
    d = decide("train", "k", MATERIAL, entry, Observed(outputs={"model.pt": "d" * 64}))
    assert (d.action, d.reasons) == ("skip", ())


def test_same_key_missing_output_restores_or_runs() -> None:
    entry = {**ENTRY, "key": "k"}
    assert (
        decide("train", "k", MATERIAL, entry, Observed(outputs={"model.pt": None}, cached=True)).action
        == "restore"
    )
    d = decide("train", "k", MATERIAL, entry, Observed(outputs={"model.pt": "e" * 64}))
    assert (d.action, kinds(d)) == ("run", ["output-modified"])


def test_forced_and_pending() -> None:
    entry = {**ENTRY, "key": "k"}
    assert kinds(decide("train", "k", MATERIAL, entry, Observed(forced=True))) == ["forced"]
    pending = decide("train", "k", MATERIAL, entry, Observed(pending=("data",)))
    assert pending.tentative and kinds(pending) == ["upstream-pending"]


def test_upstream_output_change_names_the_producer() -> None:
    new = {**OLD, "inputs": {"train.py": "a" * 64, "data": "f" * 64}}
    reasons = why_changed(ENTRY, new, {"data": "prepare"})
    assert [r.text() for r in reasons] == ["upstream output data changed (from prepare)"]


def test_image_and_command_changes() -> None:
    new = {**OLD, "environment": {"image": "1" * 64}, "command": "python3 other.py"}
    old = {**OLD, "environment": {"image": "2" * 64}}
    reasons = why_changed({"material": old}, new)
    assert [r.kind for r in reasons] == ["image-changed", "command-changed"]


def test_decision_json_shape() -> None:
    d = decide("train", "new", MATERIAL, ENTRY, Observed())
    out = d.as_dict()
    assert out["stage"] == "train" and out["action"] == "run"
    assert out["reasons"][0] == {
        "kind": "param-changed",
        "text": "param epochs 2 → 3",
        "subject": "epochs",
        "old": 2,
        "new": 3,
    }


def test_pending_upstream_with_own_change_is_a_firm_run() -> None:
    entry = {**ENTRY, "key": "old"}
    new = {**OLD, "command": "python3 other.py"}
    d = decide("train", "new", new, entry, Observed(pending=("prepare",), upstream_of={"data": "prepare"}))
    assert not d.tentative and kinds(d) == ["command-changed"]
    only_upstream = {**OLD, "inputs": {"train.py": "a" * 64, "data": "f" * 64}}
    d = decide(
        "train", "new", only_upstream, entry, Observed(pending=("prepare",), upstream_of={"data": "prepare"})
    )
    assert d.tentative and kinds(d) == ["upstream-pending"]
