"""Fuzzing `parse`: whatever the text, it returns a Spec or raises BuildfileError/UsageError whose
problems each render to one line. Never another exception, never a traceback for the user."""

from __future__ import annotations

import copy
import datetime
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildgraph.core.parse import parse
from buildgraph.errors import BuildfileError, UsageError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "docs" / "examples").glob("*.toml"))
SEED = """
[project]
name = "fuzz"
executor = "auto"
keep_runs = 2
[args]
PY = "3.12"
[params]
epochs = 2
model = { default = "a", choices = ["a", "b"], help = "h" }
[stages.deps]
from = "python:${PY}-slim"
env = { A = "1" }
run = ["pip install x"]
copy = [{ src = ["s/"], dest = "/opt/", chown = "1:1" }]
workdir = "/opt"
entrypoint = ["python3"]
labels = { "a.b" = "c" }
[stages.prep]
command = "echo ${params.model} > data.csv"
outputs = ["data.csv", "out/"]
[stages.train]
image = "deps"
command = ["python3", "t.py", "${params.epochs}"]
inputs = ["data.csv", "t.py"]
outputs = ["model.pt", "m.json"]
gpus = [0]
timeout = "2h"
metrics = "m.json"
shm_size = "1g"
network = true
secrets = ["TOKEN"]
"""
SEEDS = [SEED] + [path.read_text() for path in EXAMPLES]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        ["all", "", "..", "/abs", "~", "${X}", "$${", "${params.epochs}", "90m", "a\nb", "\u2028"]
    ),
    st.dates(min_value=datetime.date(1, 1, 1)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def check(text: str, **overrides: dict[str, str]) -> None:
    try:
        parse(text, **overrides)  # type: ignore[arg-type]
    except BuildfileError as error:
        assert error.problems
        for problem in error.problems:
            assert len(problem.render().splitlines()) == 1, problem
            assert len(problem.hint.splitlines()) <= 1, problem
    except UsageError as error:
        assert len(error.message.splitlines()) == 1


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path (dict keys and list indexes) in a TOML document."""
    found = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        found.append(prefix + (key,))
        found.extend(paths(value, prefix + (key,)))
    return found


def container(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> str:
    doc = tomllib.loads(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        targets = paths(doc)
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent, key = container(doc, path), path[-1]
        action = draw(st.sampled_from(["delete", "retype", "duplicate", "rename"]))
        if action == "delete":
            del parent[key]
        elif action == "retype":
            parent[key] = draw(values)
        elif action == "duplicate" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = copy.deepcopy(parent[key])
        elif action == "rename" and isinstance(parent, dict):
            parent[key + draw(st.text(min_size=1, max_size=2))] = parent.pop(key)
    return tomli_w.dumps(doc)


@FUZZ
@given(
    mutated(), st.dictionaries(st.sampled_from(["epochs", "model", "nope"]), st.text(max_size=5), max_size=2)
)
def test_mutated_documents(text: str, params: dict[str, str]) -> None:
    check(text, params=params)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_flipped_characters_and_truncation(seed: str, data: st.DataObject) -> None:
    text = seed
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(len(text) - 1, 0)))
        text = text[:at] + data.draw(st.text(max_size=2)) + text[at + 1 :]
    check(text[: data.draw(st.integers(0, len(text)))])


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(data.decode("utf-8", errors="replace"))


def test_seeds_themselves_parse() -> None:
    for seed in SEEDS:
        assert parse(seed).stages
