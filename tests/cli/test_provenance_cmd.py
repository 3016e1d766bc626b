"""`bg provenance`: every run recorded with an in-toto/SLSA statement, found by stage or path, signed."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from tests.cli.conftest import Project

SECRET = "s3cr3t-9d2f7a61c4"
BUILDFILE = """
[stages.prep]
command = "echo prep >> {ran}; mkdir -p out; cat raw.txt $BG_SECRETS_DIR/TOKEN | wc -c >out/n; echo b >out/b"
inputs = ["raw.txt"]
outputs = ["out/"]
env = { OMP_NUM_THREADS = "1" }
secrets = ["TOKEN"]

[stages.sq]
command = "echo sq >> {ran}; cat out/n out/b > sq.txt"
inputs = ["out/"]
outputs = ["sq.txt"]
"""


def ran(project: Project) -> Project:
    project.stages(BUILDFILE)
    project.write("raw.txt", "raw\n")
    project.bg("run", env={"TOKEN": SECRET}, check=0)
    return project


def statement_of(project: Project, target: str) -> dict:
    return json.loads(project.bg("provenance", target, "--json", check=0).out)


def test_every_run_records_a_valid_statement_whose_subjects_are_the_cached_objects(project: Project) -> None:
    ran(project)
    for key, manifest in project.manifests().items():
        document = manifest["provenance"]
        Statement.copy_from_pb(json_format.Parse(json.dumps(document), statement_pb2.Statement())).validate()
        json_format.Parse(json.dumps(document["predicate"]), provenance_pb2.Provenance())
        assert manifest["format"] == 2
        assert document["predicate"]["buildDefinition"]["internalParameters"]["key"] == key
        for subject in document["subject"]:
            digest = subject["digest"]["sha256"]
            assert hashlib.sha256(project.object(digest).read_bytes()).hexdigest() == digest
            assert hashlib.sha256((project.root / subject["name"]).read_bytes()).hexdigest() == digest
    names = sorted(s["name"] for m in project.manifests().values() for s in m["provenance"]["subject"])
    assert names == ["out/b", "out/n", "sq.txt"]


def test_a_secrets_value_is_nowhere_only_its_name(project: Project) -> None:
    ran(project)
    recorded = [p.read_bytes() for p in (project.root / ".bg").rglob("*") if p.is_file()]
    recorded.append((project.root / "Buildfile.lock").read_bytes())
    assert not [r for r in recorded if SECRET.encode() in r]
    external = statement_of(project, "prep")["predicate"]["buildDefinition"]["externalParameters"]
    assert external["secrets"] == ["TOKEN"]
    assert "TOKEN (its name only)" in project.bg("provenance", "prep", check=0).out


def test_a_path_finds_the_stage_that_made_it(project: Project) -> None:
    ran(project)
    assert statement_of(project, "out/n") == statement_of(project, "prep")
    external = statement_of(project, "sq.txt")["predicate"]["buildDefinition"]["externalParameters"]
    assert external["stage"] == "sq"
    summary = project.bg("provenance", "out/b", check=0).out  # the summary shows the subject asked for
    assert "provenance of stage prep" in summary and "output    out/b" in summary
    assert "output    out/n" not in summary


def test_the_lock_keeps_the_fingerprint_and_a_restore_keeps_the_producers_one(project: Project) -> None:
    ran(project)
    prep = project.lock()["prep"]["environment"]
    assert prep["executor"] == "local" and prep["threads"] == {"OMP_NUM_THREADS": "1"}
    assert "kernel" not in prep and "python" in prep and "torch" in prep
    project.bg("clean", check=0)
    (project.root / "Buildfile.lock").unlink()
    project.bg("run", check=0)  # restored from the cache: nothing runs, no secret needed
    assert project.executed() == ["prep", "sq"]  # (the first run's)
    assert project.lock()["prep"]["environment"] == prep


def test_unknown_targets_and_results_without_provenance_say_what_to_do(project: Project) -> None:
    ran(project)
    rc, _, err = project.bg("provenance", "nowhere.txt")
    assert rc == 2 and "'nowhere.txt' is neither a stage nor an output Buildfile.lock records" in err
    key = project.lock()["sq"]["key"]
    path = project.root / ".bg/cache/runs" / key[:2] / f"{key}.json"
    old = json.loads(path.read_bytes())
    del old["provenance"], old["environment"]
    path.write_text(json.dumps({**old, "format": 1}))
    rc, _, err = project.bg("provenance", "sq.txt")
    assert rc == 3 and "recorded before bg kept provenance" in err and "bg run --force sq" in err


def test_a_signed_statement_verifies_and_tampering_is_caught(project: Project, tmp_path: Path) -> None:
    ran(project)
    project.bg("provenance", "--new-key", str(tmp_path / "k.pem"), check=0)
    envelope = tmp_path / "sq.intoto.json"
    project.bg("provenance", "sq", "--sign-key", str(tmp_path / "k.pem"), "-o", str(envelope), check=0)
    done = project.bg("provenance", "--verify", str(envelope), "--key", str(tmp_path / "k.pub.pem"), check=0)
    assert "signature verified" in done.out and "all 1 subjects are here" in done.out

    forged = json.loads(envelope.read_text())
    payload = json.loads(base64.b64decode(forged["payload"]))
    payload["subject"][0]["digest"]["sha256"] = "0" * 64
    forged["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    key = str(tmp_path / "k.pub.pem")
    rc, _, err = project.bg("provenance", "--verify", str(tmp_path / "forged.json"), "--key", key)
    assert rc == 1 and "does not verify" in err

    project.write("sq.txt", "edited\n")  # the workspace file changes; the cache still holds the signed bytes
    project.bg("provenance", "--verify", str(envelope), "--key", str(tmp_path / "k.pub.pem"), check=0)
    project.bg("gc", "--keep-runs", "0", check=0)
    (project.root / "Buildfile.lock").unlink()
    project.bg("gc", "--keep-runs", "0", check=0)
    rc, _, err = project.bg("provenance", "--verify", str(envelope), "--key", str(tmp_path / "k.pub.pem"))
    assert rc == 1 and "subject sq.txt: the workspace file's digest is" in err
