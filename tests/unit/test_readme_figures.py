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


def test_the_readme_shows_exactly_the_recorded_run() -> None:
    script = load_script()
    facts = json.loads(script.RECORD.read_text())
    assert facts["metrics"]["accuracy"] > 0.1 and len(facts["evaluate_key"]) == 64
    assert facts["printed"][0].split() == ["evaluate", "accuracy", str(facts["metrics"]["accuracy"])]
    readme = (ROOT / "README.md").read_text()
    assert script.render(facts) in readme
    assert script.main(["--check"]) == 0


def test_an_edited_figure_is_caught() -> None:
    script = load_script()
    facts = json.loads(script.RECORD.read_text())
    readme = (ROOT / "README.md").read_text()
    edited = readme.replace(facts["printed"][0], "evaluate  accuracy  0.999")
    assert edited != readme
    assert script.replace_block(edited, script.render(facts)) == readme
