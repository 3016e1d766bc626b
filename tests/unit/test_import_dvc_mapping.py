"""The dvc.yaml → Buildfile mapping on the keys the get-started pipeline does not use."""

from __future__ import annotations

import tomllib

import pytest

from buildgraph.errors import UsageError
from buildgraph.importers.dvc import Workspace, import_dvc

FILES = {"params.yaml": "lr: 0.1\nmodels: [lenet, resnet]\n", "conf/extra.json": '{"depth": 3}'}
NOWHERE = Workspace(read=FILES.get, is_dir=lambda path: None)


def convert(text: str) -> tuple[dict, list[str]]:
    toml, warnings = import_dvc(text, "dvc.yaml", "t", ".", NOWHERE)
    return tomllib.loads(toml)["stages"], warnings


def test_foreach_matrix_vars_and_tracked_references() -> None:
    stages, _ = convert(
        """
vars:
  - size: 32
stages:
  train:
    foreach: ${models}
    do:
      cmd: python train.py --net ${item} --lr ${lr} --size ${size} \\${HOME}
      outs: ["model-${item}.pt"]
  grid:
    matrix: {net: [a, b], seed: [0, 1]}
    cmd: echo ${item.net} ${item.seed} > out-${key}.txt
    outs: ["out-${key}.txt"]
"""
    )
    assert list(stages) == ["train-lenet", "train-resnet", "grid-a-0", "grid-a-1", "grid-b-0", "grid-b-1"]
    lenet = stages["train-lenet"]
    assert lenet["command"] == "python train.py --net lenet --lr ${params.lr} --size 32 $${HOME}"
    assert lenet["params"] == {"file": "params.yaml", "keys": ["lr"]}  # DVC tracks ${lr}: a params.yaml value
    assert lenet["outputs"] == ["model-lenet.pt"]
    assert stages["grid-b-1"]["command"] == "echo b 1 > out-b-1.txt"


def test_command_lists_wdir_flags_and_params_of_other_files() -> None:
    stages, warnings = convert(
        """
stages:
  fetch:
    wdir: conf
    cmd: [python get.py, python check.py]
    deps: [get.py]
    params: [{extra.json: [depth]}]
    outs: [{raw: {persist: true, cache: false}}]
    always_changed: true
    frozen: true
    desc: fetch the data
    meta: {owner: me}
"""
    )
    fetch = stages["fetch"]
    assert fetch["commands"] == [
        "mkdir -p conf && cd conf && python get.py",
        "mkdir -p conf && cd conf && python check.py",
    ]
    assert fetch["inputs"] == ["conf/get.py"]
    assert fetch["params"] == {"file": "conf/extra.json", "keys": ["depth"]}
    assert fetch["outputs"] == ["conf/raw/"]  # no such path, no suffix: a directory (warned)
    assert (fetch["always"], fetch["frozen"], fetch["description"]) == (True, True, "fetch the data")
    assert [w.split(": ", 2)[:2] for w in warnings] == [
        ["dvc.yaml:12", "stages.fetch.meta"],
        ["dvc.yaml:8", "stages.fetch.outs.0.raw.persist"],
        ["dvc.yaml:8", "stages.fetch.outs.0.raw.cache"],
        ["dvc.yaml:8", "stages.fetch.outs.0"],
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "dvc.yaml:1: no stages"),
        ("FROM debian\n", "dvc.yaml:1: no stages"),
        ("stages:\n  a: [1\n", "dvc.yaml:3: not valid YAML"),
    ],
)
def test_what_is_no_pipeline_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        convert(text)
