"""The README's figures are rendered from the recorded run (scripts/readme_figures.py), never typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_shows_exactly_the_recorded_run_of_the_committed_lock() -> None:
    script = load_script()
    facts = json.loads(script.RECORD.read_text())
    assert facts["metrics"]["accuracy"] > 0.1
    assert facts["printed"][0].split() == [script.STAGE, "accuracy", str(facts["metrics"]["accuracy"])]
    lock = json.loads((ROOT / "Buildfile.lock").read_text())["stages"]
    assert facts["evaluate_key"] == lock[script.STAGE]["key"], "the record is of the run the lock records"
    assert script.shows((ROOT / "README.md").read_text(), facts)


def test_an_edited_figure_is_caught() -> None:
    script = load_script()
    facts = json.loads(script.RECORD.read_text())
    readme = (ROOT / "README.md").read_text()
    edited = readme.replace(facts["printed"][0], f"{script.STAGE}  accuracy  0.999")
    assert edited != readme and not script.shows(edited, facts)
