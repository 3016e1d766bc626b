"""`bg status` and `bg explain`: what would run, and the reasons, as text and as JSON."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

HEX64 = re.compile(r"[0-9a-f]{64}")


def kinds(decision: dict[str, Any]) -> list[str]:
    return [r["kind"] for r in decision["reasons"]]


def test_status_json_shape_on_a_project_never_built(pipeline: Project) -> None:
    done = pipeline.bg("status", "--json", check=0)
    decisions = json.loads(done.out)
    assert [d["stage"] for d in decisions] == ["prep", "feat", "train", "report"]
    for d in decisions:
        assert set(d) <= {"stage", "action", "key", "reasons", "tentative"}
        assert HEX64.fullmatch(d["key"]) and d["action"] == "run"
        assert all(set(r) >= {"kind", "text"} for r in d["reasons"])
        # never built runs whatever its upstream writes: a firm decision, not a tentative one
        assert "tentative" not in d
        assert d["reasons"] == [{"kind": "never-built", "text": "never built"}]
    assert not (pipeline.root / "Buildfile.lock").exists(), "status must not record anything"


def test_status_text_says_what_runs_and_when_all_is_up_to_date(built: Project) -> None:
    assert built.bg("status", check=0).out.splitlines()[-1] == "everything is up to date"
    built.write("notes.txt", "changed\n")
    lines = built.bg("status", check=0).out.splitlines()
    assert re.fullmatch(r"report\s+run\s+input notes.txt changed", lines[3])
    assert lines[-1] == "1 of 4 stages to run or restore"


def test_input_changed(built: Project) -> None:
    built.write("raw.txt", "other\n")
    status = built.status()
    reason = status["prep"]["reasons"][0]
    assert reason["kind"] == "input-changed" and reason["subject"] == "raw.txt"
    assert reason["text"] == "input raw.txt changed"
    assert reason["new"] == hashlib.sha256(b"other\n").hexdigest()
    assert status["feat"].get("tentative") is True


def test_param_changed(built: Project) -> None:
    status = built.status("--param", "scale=3")
    assert status["prep"]["action"] == "skip" and status["prep"]["reasons"] == []
    param = next(r for r in status["feat"]["reasons"] if r["kind"] == "param-changed")
    assert (param["subject"], param["old"], param["new"]) == ("scale", 2, 3)
    assert param["text"] == "param scale 2 → 3"


def test_command_changed(built: Project) -> None:
    text = (built.root / "Buildfile.toml").read_text()
    built.write("Buildfile.toml", text.replace("echo trained", "echo TRAINED"))
    status = built.status()
    assert kinds(status["train"]) == ["command-changed"]
    assert status["train"]["reasons"][0]["text"] == "command changed"
    assert [s for s, d in status.items() if d["action"] != "skip"] == ["train", "report"]


def test_upstream_output_changed(built: Project) -> None:
    built.bg("run", "-q", "feat", "--param", "scale=3", check=0)  # feat reruns; train does not
    status = built.status("--param", "scale=3")
    assert status["feat"]["action"] == "skip"
    reason = status["train"]["reasons"][0]
    assert reason["kind"] == "upstream-changed" and reason["subject"] == "feat.txt"
    assert reason["detail"] == "feat" and reason["text"] == "upstream output feat.txt changed (from feat)"
    assert reason["new"] == hashlib.sha256((built.root / "feat.txt").read_bytes()).hexdigest()
    assert reason["old"] != reason["new"]


def test_forced(built: Project) -> None:
    done = built.bg("run", "--dry-run", "--json", "--force", "train", check=0)
    decisions = {d["stage"]: d for d in json.loads(done.out)}
    assert kinds(decisions["train"]) == ["forced"] and decisions["train"]["action"] == "run"
    assert decisions["prep"]["action"] == "skip"
    assert built.executed() == []


def test_explain_shows_old_and_new_keys_digests_and_values(built: Project) -> None:
    old_key = built.lock()["feat"]["key"]
    clean = hashlib.sha256(b"HELLO\n").hexdigest()
    done = built.bg("explain", "feat", "--param", "scale=3", check=0)
    assert done.out.startswith("stage feat: run\n")
    assert f"key       {old_key[:12]} → " in done.out
    assert re.search(r"^\* param\s+scale: 2 → 3$", done.out, re.M)
    assert re.search(rf"^  input\s+clean.txt: {clean[:12]} → {clean[:12]}$", done.out, re.M)
    assert "because   param scale 2 → 3" in done.out

    report = json.loads(built.bg("explain", "feat", "--param", "scale=3", "--json", check=0).out)
    assert report["key"]["old"] == old_key and HEX64.fullmatch(report["key"]["new"])
    assert report["key"]["new"] != old_key
    assert report["params"] == {"scale": {"old": 2, "new": 3}}
    assert report["inputs"] == {"clean.txt": {"old": clean, "new": clean}}
    assert report["command"]["old"] != report["command"]["new"]


def test_explain_an_up_to_date_stage(built: Project) -> None:
    done = built.bg("explain", "train", check=0)
    assert done.out.startswith("stage train: skip\n") and "because   up to date" in done.out
