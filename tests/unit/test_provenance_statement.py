"""Provenance statements (records/provenance.py), parsed with the official in-toto bindings."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from buildgraph.records.errors import RecordError
from buildgraph.records.provenance import BUILD_TYPE, PREDICATE_TYPE, TREE_DIGEST, Run, read, statement

D = {c: c * 64 for c in "abcdef0123456789"}
OUTPUTS = {
    "model.pt": {"kind": "file", "digest": D["a"], "size": 3},
    "curves": {
        "kind": "dir",
        "digest": D["b"],
        "size": 7,
        "tree": [
            ["loss.json", "644", D["c"], 4],
            ["latest", "120000", D["d"], 9],  # a symlink: its digest is of its target's name
            ["run.sh", "755", D["e"], 3],
        ],
    },
}
MATERIAL = {
    "kind": "run",
    "environment": {"image": D["f"]},
    "command": "python3 train.py --epochs 2",
    "env": [["OMP_NUM_THREADS", "1"]],
    "params": {"epochs": 2},
    "args": {"BASE": "base-debian"},
    "inputs": {"train.py": D["1"], "data": D["2"]},
    "outputs": ["model.pt", "curves/"],
}
ENVIRONMENT = {"executor": "docker", "python": "3.11.2", "torch": "2.1.2", "cuda": None}
ENVIRONMENT["image"] = "bg/p/deps:ff"
RUN = Run(
    stage="train",
    key=D["3"],
    key_version=2,
    material=MATERIAL,
    outputs=OUTPUTS,
    environment={**ENVIRONMENT, "image_id": "sha256:" + D["4"]},
    executor="docker",
    started="2026-12-01T22:50:05Z",
    finished="2026-12-01T22:50:17Z",
    invocation="20261201T225005-ed381930/train",
    version="0.1.0",
    log=D["5"],
    producers={"data": "data"},
    dir_inputs=frozenset({"data"}),
    secrets=("WANDB_API_KEY",),
    base={"image": "pytorch/pytorch:2.5.1", "digest": "pytorch/pytorch@sha256:" + D["6"]},
)


def parsed(document: dict[str, Any]) -> tuple[Statement, provenance_pb2.Provenance]:  # type: ignore[name-defined]
    """The statement and its predicate through the official bindings: unknown fields are errors."""
    proto = json_format.Parse(json.dumps(document), statement_pb2.Statement())  # type: ignore[attr-defined]
    found = Statement.copy_from_pb(proto)
    found.validate()
    predicate = json_format.Parse(
        json.dumps(document["predicate"]),
        provenance_pb2.Provenance(),  # type: ignore[attr-defined]
    )
    return found, predicate


def test_a_statement_is_an_in_toto_statement_of_slsa_provenance_v1() -> None:
    found, predicate = parsed(statement(RUN))
    assert found.pb.predicate_type == PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    assert predicate.build_definition.build_type == BUILD_TYPE
    assert predicate.run_details.builder.version["buildgraph"] == "0.1.0"
    assert predicate.run_details.metadata.invocation_id == RUN.invocation
    assert predicate.run_details.metadata.started_on.ToJsonString() == "2026-12-01T22:50:05Z"
    assert predicate.run_details.metadata.finished_on.ToJsonString() == "2026-12-01T22:50:17Z"
    assert [b.digest["sha256"] for b in predicate.run_details.byproducts] == [D["5"]]


def test_subjects_are_every_output_file_a_dir_output_expanded_and_its_links_left_out() -> None:
    found, _ = parsed(statement(RUN))
    assert [(s.name, s.digest["sha256"]) for s in found.pb.subject] == [
        ("model.pt", D["a"]),
        ("curves/loss.json", D["c"]),
        ("curves/run.sh", D["e"]),
    ]


def test_an_empty_dir_output_is_its_own_subject_so_the_statement_stays_valid() -> None:
    empty = {"out": {"kind": "dir", "digest": D["b"], "size": 0, "tree": []}}
    document = statement(dataclasses.replace(RUN, outputs=empty))
    found, _ = parsed(document)
    assert [(s.name, s.digest["sha256"]) for s in found.pb.subject] == [("out", D["b"])]
    assert document["subject"][0]["annotations"]["digest"] == TREE_DIGEST


def test_parameters_say_what_the_buildfile_and_bg_chose() -> None:
    build = statement(RUN)["predicate"]["buildDefinition"]
    external, internal = build["externalParameters"], build["internalParameters"]
    assert external == {
        "stage": "train",
        "command": "python3 train.py --epochs 2",
        "params": {"epochs": 2},
        "args": {"BASE": "base-debian"},
        "env": [["OMP_NUM_THREADS", "1"]],
        "outputs": ["model.pt", "curves/"],
        "secrets": ["WANDB_API_KEY"],
    }
    assert internal["executor"] == "docker" and internal["key"] == D["3"] and internal["keyVersion"] == 2
    assert internal["runsOn"] == {"image": D["f"]} and internal["environment"]["torch"] == "2.1.2"


def test_dependencies_are_the_inputs_the_image_and_its_pinned_base() -> None:
    _, predicate = parsed(statement(RUN))
    deps = [json_format.MessageToDict(d) for d in predicate.build_definition.resolved_dependencies]
    assert deps[0] == {"name": "train.py", "digest": {"sha256": D["1"]}, "annotations": {"source": "project"}}
    assert deps[1] == {
        "name": "data",
        "digest": {"sha256": D["2"]},
        "annotations": {"digest": TREE_DIGEST, "source": "output of stage data"},
    }
    assert deps[2] == {
        "name": "bg/p/deps:ff",
        "digest": {"sha256": D["4"]},
        "annotations": {"source": "image", "key": D["f"]},
    }
    assert deps[3] == {
        "uri": "docker://pytorch/pytorch:2.5.1",
        "digest": {"sha256": D["6"]},
        "annotations": {"source": "base image"},
    }


def test_an_offline_debian_base_names_its_suite_and_packages() -> None:
    base = {"debian": "bookworm", "packages": ["python3"], "mirror": "", "tar": D["7"]}
    document = statement(dataclasses.replace(RUN, base=base))
    deps = document["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[-1] == {
        "name": "debian:bookworm",
        "digest": {"sha256": D["7"]},
        "annotations": {"source": "base image", "packages": ["python3"], "mirror": ""},
    }
    parsed(document)


def test_on_the_host_there_is_no_image_dependency() -> None:
    host = dataclasses.replace(RUN, material={**MATERIAL, "environment": {"host": "linux/x86_64"}}, base=None)
    deps = statement(host)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d.get("name") for d in deps] == ["train.py", "data"]


def test_a_statement_reads_back() -> None:
    found = read(statement(RUN))
    assert found.stage == "train" and found.key == D["3"] and found.executor == "docker"
    assert found.subjects[0] == ("model.pt", D["a"])
    assert (found.started, found.finished, found.invocation) == (RUN.started, RUN.finished, RUN.invocation)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"_type": "https://in-toto.io/Statement/v0.1"}, "not an in-toto Statement v1 of SLSA Provenance v1"),
        ({"subject": [{"name": "x"}]}, "a subject without a name or sha256 digest"),
    ],
)
def test_what_is_not_bgs_provenance_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        read({**statement(RUN), **change})


def test_another_build_type_is_refused() -> None:
    other = statement(RUN)
    other["predicate"]["buildDefinition"]["buildType"] = "https://example.com/other"
    with pytest.raises(RecordError, match="is not bg's"):
        read(other)
