"""The stage graph: edges, order, closure, producers, and what `validate_graph` reports."""

from __future__ import annotations

import pytest

from buildgraph.core.graph import Graph, validate_graph
from buildgraph.core.parse import analyse, parse
from buildgraph.errors import UsageError

HEAD = '[project]\nname = "g"\n'

PIPELINE = (
    HEAD
    + """
[stages.deps]
from = "python:3.12-slim"

[stages.report]
command = "x"
inputs = ["scores.json", "curves/loss.png"]
outputs = ["report.md"]

[stages.prepare]
command = "x"
inputs = ["raw/"]
outputs = ["data/"]

[stages.train]
image = "deps"
command = "x"
inputs = ["stages/train.py", "data/train.csv"]
outputs = ["model.pt", "curves/"]

[stages.evaluate]
image = "deps"
command = "x"
inputs = ["model.pt", "data/"]
outputs = ["scores.json"]

[stages.serve]
from = "deps"
copy = [{ src = ["model.pt", "stages/*.py"], dest = "/app/" }]

[stages.lonely]
command = "x"
"""
)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph(parse(PIPELINE))


def test_upstreams_are_image_parent_run_image_and_input_producers(graph: Graph) -> None:
    assert graph.upstreams("train") == ("deps", "prepare")
    assert graph.upstreams("evaluate") == ("deps", "train", "prepare")
    assert graph.upstreams("report") == ("evaluate", "train")
    assert graph.upstreams("serve") == ("deps", "train")  # from + a copied output
    assert graph.upstreams("deps") == () and graph.upstreams("lonely") == ()


def test_downstreams(graph: Graph) -> None:
    assert graph.downstreams("deps") == ("train", "evaluate", "serve")
    assert graph.downstreams("train") == ("report", "evaluate", "serve")
    assert graph.downstreams("report") == ()


def test_order_is_topological_with_ties_in_declaration_order(graph: Graph) -> None:
    assert graph.order() == ["deps", "prepare", "train", "evaluate", "report", "serve", "lonely"]


def test_order_keeps_declaration_order_when_already_sorted() -> None:
    text = HEAD + "".join(f'[stages.s{i}]\ncommand = "x"\noutputs = ["o{i}"]\n' for i in range(5))
    assert Graph(parse(text)).order() == [f"s{i}" for i in range(5)]


def test_closure_is_targets_and_their_upstreams_in_order(graph: Graph) -> None:
    assert graph.closure(["report"]) == ["deps", "prepare", "train", "evaluate", "report"]
    assert graph.closure(["lonely", "prepare"]) == ["prepare", "lonely"]
    assert graph.closure([]) == []


def test_closure_of_an_unknown_stage_suggests_the_closest(graph: Graph) -> None:
    with pytest.raises(UsageError) as caught:
        graph.closure(["trian"])
    assert caught.value.message == "unknown stage 'trian'" and caught.value.hint == "did you mean 'train'?"


def test_producer_finds_the_output_containing_a_path(graph: Graph) -> None:
    assert graph.producer("model.pt") == ("train", "model.pt")
    assert graph.producer("curves/loss.png") == ("train", "curves")
    assert graph.producer("curves") == ("train", "curves")
    assert graph.producer("curvesx") is None and graph.producer("stages/train.py") is None


def test_input_sources(graph: Graph) -> None:
    assert graph.input_sources("train") == [("stages/train.py", None), ("data/train.csv", "prepare")]
    assert graph.input_sources("deps") == []


def test_an_input_directory_around_an_output_depends_on_its_producer() -> None:
    spec = parse(HEAD + '[stages.a]\ncommand = "x"\noutputs = ["data/clean.csv"]\n'
                 '[stages.b]\ncommand = "x"\ninputs = ["data/"]\n')  # fmt: skip
    graph = Graph(spec)
    assert graph.upstreams("b") == ("a",)
    assert graph.producers_inside("data") == [("a", "data/clean.csv")]


# validate_graph ---------------------------------------------------------------------------------


def rendered(text: str) -> list[str]:
    return [p.render() for p in analyse(text).problems]


def test_valid_pipeline_has_no_graph_problems(graph: Graph) -> None:
    assert validate_graph(graph.spec, "Buildfile.toml") == []


def test_cycle_message_prints_the_cycle_and_why() -> None:
    text = (
        HEAD
        + """
[stages.train]
command = "x"
inputs = ["scores.json"]
outputs = ["model.pt"]
[stages.evaluate]
command = "x"
inputs = ["model.pt"]
outputs = ["scores.json"]
"""
    )
    problems = analyse(text).problems
    assert [p.render() for p in problems] == ["Buildfile.toml: stages.train: cycle: train → evaluate → train"]
    assert problems[0].hint == 'evaluate reads "model.pt" from train; train reads "scores.json" from evaluate'


def test_every_separate_cycle_is_reported() -> None:
    pair = '[stages.{a}]\ncommand = "x"\ninputs = ["{b}"]\noutputs = ["{a}"]\n'
    text = HEAD + "".join(pair.format(a=a, b=b) for a, b in (("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")))
    assert rendered(text) == [
        "Buildfile.toml: stages.a: cycle: a → b → a",
        "Buildfile.toml: stages.c: cycle: c → d → c",
    ]


def test_cycle_through_images() -> None:
    text = HEAD + '[stages.img]\nfrom = "python:3"\ncopy = [{ src = "m.pt", dest = "/m.pt" }]\n' \
        '[stages.train]\nimage = "img"\ncommand = "x"\noutputs = ["m.pt"]\n'  # fmt: skip
    problems = analyse(text).problems
    assert [p.render() for p in problems] == ["Buildfile.toml: stages.img: cycle: img → train → img"]
    assert problems[0].hint == 'train runs in image img; img copies "m.pt" from train'


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("model.pt", "model.pt", "stages.b.outputs[0]: \"model.pt\" is also an output of stage 'a'"),
        ("out/", "out/a.txt", 'stages.b.outputs[0]: "out/a.txt" is inside "out/", an output of stage \'a\''),
        ("out/a.txt", "out/", 'stages.b.outputs[0]: "out/" contains "out/a.txt", an output of stage \'a\''),
    ],
)
def test_outputs_written_by_two_stages(first: str, second: str, message: str) -> None:
    stage = '[stages.{}]\ncommand = "x"\noutputs = ["{}"]\n'
    text = HEAD + stage.format("a", first) + stage.format("b", second)
    assert rendered(text) == [f"Buildfile.toml: {message}"]


def test_similar_names_are_not_overlapping_outputs() -> None:
    stage = '[stages.{}]\ncommand = "x"\noutputs = [{}]\n'
    text = HEAD + stage.format("a", '"out/"') + stage.format("b", '"out2/", "outx"')
    assert rendered(text) == []


@pytest.mark.parametrize("path", ["model.pt", "out/x", "out"])
def test_a_stage_cannot_read_its_own_output(path: str) -> None:
    text = HEAD + f'[stages.a]\ncommand = "x"\ninputs = ["{path}"]\noutputs = ["model.pt", "out/x"]\n'
    assert len(rendered(text)) == 1 and "overlaps this stage's own output" in rendered(text)[0]


def test_reference_problems() -> None:
    text = (
        HEAD
        + """
[stages.deps]
from = "python:3"
[stages.prep]
command = "x"
[stages.a]
image = "dps"
command = "x"
[stages.b]
image = "prep"
command = "x"
[stages.c]
from = "prep"
"""
    )
    assert rendered(text) == [
        'Buildfile.toml: stages.a.image: no stage named "dps"',
        "Buildfile.toml: stages.b.image: 'prep' is a run stage, not an image stage",
        "Buildfile.toml: stages.c.from: 'prep' is a run stage, not an image stage",
    ]


def test_order_of_a_long_chain_needs_no_recursion() -> None:
    chain = "".join(
        f'[stages.s{i}]\ncommand = "x"\ninputs = ["o{i - 1}"]\noutputs = ["o{i}"]\n' if i else
        '[stages.s0]\ncommand = "x"\noutputs = ["o0"]\n'
        for i in range(1000)
    )  # fmt: skip
    spec = parse(HEAD + chain)
    graph = Graph(spec)  # deep, not slow: no recursion limit hit (its speed is bench/'s to measure)
    order = graph.order()
    assert order == [f"s{i}" for i in range(1000)]
    assert graph.closure(["s999"]) == order
