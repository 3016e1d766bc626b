"""Records are types with a fixed JSON shape: golden files read and written back byte for byte."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from buildgraph.records import LockEntry, Manifest, RecordError

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "records"


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def dumped(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_a_manifest_round_trips_byte_for_byte() -> None:
    manifest = Manifest.from_json(golden("manifest-v2.json"))
    assert dumped(manifest.to_json()) == (GOLDEN / "manifest-v2.json").read_text()
    assert manifest.stage == "evaluate" and manifest.executor == "local"
    assert manifest.digests() == {"metrics.json": manifest.outputs["metrics.json"]["digest"]}
    assert manifest.environment["torch"] == "2.13.0+cpu"
    assert manifest.provenance is not None and manifest.provenance["_type"] == "https://in-toto.io/Statement/v1"


def test_a_format_1_manifest_reads_without_environment_or_provenance() -> None:
    old = Manifest.from_json(golden("manifest-v1.json"))
    assert old.environment == {} and old.provenance is None
    new = Manifest.from_json(golden("manifest-v2.json"))
    assert old == dataclasses.replace(new, environment={}, provenance=None)
    assert "provenance" not in old.to_json() and "environment" not in old.to_json()


def test_a_manifest_from_before_format_existed_reads_as_format_1() -> None:
    old = Manifest.from_json(golden("manifest-unversioned.json"))
    assert old == Manifest.from_json(golden("manifest-v1.json"))


def test_fields_a_newer_bg_added_are_kept() -> None:
    data = {**golden("manifest-v2.json"), "attestations": {"x": 1}}
    assert Manifest.from_json(data).to_json()["attestations"] == {"x": 1}


def test_lock_entries_round_trip_byte_for_byte() -> None:
    for name, kind in (
        ("lock-entry-run.json", "run"),
        ("lock-entry-run-environment.json", "run"),
        ("lock-entry-image.json", "image"),
    ):
        entry = LockEntry.from_json(golden(name), stage="s")
        assert entry.kind == kind
        assert dumped(entry.to_json()) == (GOLDEN / name).read_text()


def test_a_run_entry_keeps_only_kind_digest_and_size_of_outputs() -> None:
    record = {"kind": "dir", "digest": "d" * 64, "size": 3, "tree": [["a", 420, "e" * 64, 3]]}
    entry = LockEntry.for_run("k" * 64, 2, {"command": "x"}, {"out/": record})
    assert entry.to_json() == {
        "kind": "run",
        "key": "k" * 64,
        "v": 2,
        "material": {"command": "x"},
        "outputs": {"out/": {"kind": "dir", "digest": "d" * 64, "size": 3}},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "run manifest: not a JSON object"),
        ({"outputs": {}}, "run manifest: no `key`"),
        ({"key": 3, "outputs": {}}, "run manifest: `key` is int, not str"),
        ({"key": "k", "outputs": {"a": {}}}, "run manifest: output 'a' has no digest"),
        ({"key": "k", "outputs": {}, "format": 9}, "run manifest: format 9 is newer than this bg reads (2)"),
        ({"key": "k", "outputs": {}, "provenance": []}, "run manifest: `provenance` is list, not dict"),
        ({"key": "k", "outputs": {}, "exit_status": True}, "run manifest: `exit_status` is bool, not int"),
    ],
)
def test_a_damaged_manifest_is_refused_with_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(RecordError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        Manifest.from_json(data)


def test_a_damaged_lock_entry_names_its_stage() -> None:
    with pytest.raises(RecordError, match="^lock entry of stage 'train': unknown kind 'tape'$"):
        LockEntry.from_json({"kind": "tape", "key": "k"}, stage="train")


def test_a_run_entry_keeps_the_stable_fingerprint_of_its_environment() -> None:
    """No kernel build (nor image tag) in the lock: they change with no change to how a result is made."""
    image_id = "sha256:" + "1" * 64
    reported = golden("manifest-v2.json")["environment"] | {"image": "bg/p/deps:abc", "image_id": image_id}
    entry = LockEntry.for_run("k" * 64, 2, {}, {}, reported)
    expected = golden("lock-entry-run-environment.json")["environment"] | {"image_id": image_id}
    assert entry.environment == expected
    assert "kernel" not in entry.to_json()["environment"] and entry.environment["cuda"] is None
    assert "environment" not in LockEntry.for_run("k" * 64, 2, {}, {}).to_json()  # none reported: as before
