"""indented_json.dumps writes exactly what json.dumps(sort_keys, indent=2, ensure_ascii=False) does."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from buildgraph import indented_json


def _reference(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    leaves = [
        lambda: rng.choice(["", "a", "é\u2028\x00\"\\\n\t", "日本", "\ud800"[:0] + "x" * rng.randint(0, 5)]),
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.uniform(-1e308, 1e308),
        lambda: rng.choice([0.1, -0.0, 1e-320, 5e-324, 1.0]),
        lambda: rng.choice([True, False, None]),
    ]
    if depth > 3 or rng.random() < 0.4:
        return rng.choice(leaves)()
    if rng.random() < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["k", "é", "a b", "", "Z", "0"]
    return {rng.choice([*keys, str(i)]): _random_value(rng, depth + 1) for i in range(rng.randint(0, 5))}


@pytest.mark.parametrize("seed", range(200))
def test_random_documents_match_json(seed: int) -> None:
    value = _random_value(random.Random(seed))
    assert indented_json.dumps(value) == _reference(value)


def test_a_lock_entry_nested_two_levels_matches_json_reindented() -> None:
    entry = {"key": "ab", "material": {"inputs": {"d.bin": "00"}, "outputs": ["o"], "args": {}}, "v": 2}
    assert indented_json.dumps(entry, depth=2) == _reference(entry).replace("\n", "\n    ")


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key", 2: "b"},  # json writes the keys as "1", "2": left to json
        {True: 1},
        [float("nan"), float("inf"), float("-inf")],
        (1, (2, 3)),
        {"deep": [[[[[[[[[[]]]]]]]]]]},
    ],
)
def test_values_json_writes_its_own_way_are_as_json_writes_them(value: Any) -> None:
    assert indented_json.dumps(value) == _reference(value)


def test_mixed_key_types_fail_as_json_fails() -> None:
    with pytest.raises(TypeError):
        _reference({1: 1, "a": 2})
    with pytest.raises(TypeError):
        indented_json.dumps({1: 1, "a": 2})


def test_a_type_json_cannot_write_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        indented_json.dumps({"a": {1, 2}})
