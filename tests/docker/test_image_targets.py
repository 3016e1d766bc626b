"""Image stages named as targets are built, whatever executes the run stages; `bg status`
reports them as images; a failed pull names the Buildfile's own alternative."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from bgcli import bg


def statuses(root: Path) -> dict[str, str]:
    out = bg(root, "status", "--json")
    assert out.returncode == 0, out.stderr
    return {d["stage"]: d["action"] for d in json.loads(out.stdout)}


def test_an_image_only_project_builds_the_image_it_is_asked_for(tmp_path: Path, tiny_base: str) -> None:
    marker = uuid.uuid4().hex  # a fresh image each session: the engine keeps images between runs
    (tmp_path / "Buildfile.toml").write_text(
        f'[project]\nname = "imgonly"\n\n[stages.base]\nfrom = {{ debian = "bookworm" }}\n\n'
        f'[stages.app]\nfrom = "base"\nrun = ["echo {marker} > /marker"]\n'
    )
    assert statuses(tmp_path)["app"] == "build", "never built: status says so"
    first = bg(tmp_path, "run", "app")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "nothing to do" not in first.stdout
    assert statuses(tmp_path) == {"base": "skip", "app": "skip"}
    again = bg(tmp_path, "run", "app", "--json")
    finished = [json.loads(x) for x in again.stdout.splitlines() if x.startswith("{")]
    assert {e["stage"]: e["status"] for e in finished if e["event"] == "finish"} == {
        "base": "skipped",
        "app": "skipped",
    }


def test_an_imported_dockerfile_builds_with_a_bare_bg_run(tmp_path: Path, tiny_base: str) -> None:
    marker = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(
        f"FROM {tiny_base}\nARG GREETING=hello\nRUN echo \"$GREETING {marker}\" > /greeting\nWORKDIR /app\n"
    )
    imported = bg(tmp_path, "import", "Dockerfile", "-o", "Buildfile.toml")
    assert imported.returncode == 0, imported.stderr
    names = list(json.loads(bg(tmp_path, "graph", "--format", "json").stdout)["nodes"])
    last = names[-1]["name"]
    built = bg(tmp_path, "run", last)
    assert built.returncode == 0, built.stdout + built.stderr
    assert statuses(tmp_path)[last] == "skip"


def test_a_failed_pull_names_the_buildfiles_own_offline_base(tmp_path: Path, client: Any) -> None:
    (tmp_path / "Buildfile.toml").write_text(
        '[project]\nname = "pullhint"\n\n[args]\nBASE = "base-remote"\n\n'
        '[stages.base-remote]\nfrom = "bgtest.invalid/nothing/here:1.0"\n\n'
        '[stages.base-offline]\nfrom = { debian = "bookworm" }\n\n'
        '[stages.deps]\nfrom = "${BASE}"\nrun = ["true"]\n'
    )
    out = bg(tmp_path, "run", "deps")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "bg: error: cannot pull base image 'bgtest.invalid/nothing/here:1.0'" in out.stderr
    hint = "bg: hint: this Buildfile offers another base for 'base-remote': --arg BASE=base-offline"
    assert hint in out.stderr
