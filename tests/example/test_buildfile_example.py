"""The example's Buildfile.toml: stages wired so that edits rerun exactly what they should."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest

from .conftest import ROOT, STAGES, load_stage
from .pipeline import RUN_STAGES, buildfile, interpolate, param_defaults, params_used

SPEC = buildfile()
OUTPUT_OPTIONS = {
    "data": ["out"],
    "train": ["out", "loss"],
    "evaluate": ["out"],
    "plot": ["figure", "confusion", "loss_figure"],
}
STAGE_SPECS = SPEC["stages"]


def script_of(stage: str) -> Path:
    return ROOT / shlex.split(STAGE_SPECS[stage]["command"])[1]


def imported_modules(script: Path) -> set[str]:
    tree = ast.parse(script.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def test_project_args_and_images() -> None:
    assert SPEC["project"]["name"] == "cifar10"
    assert SPEC["args"]["BASE"] == "base-pytorch" and {"PYTORCH", "CUDA", "CUDNN"} <= set(SPEC["args"])
    assert (
        STAGE_SPECS["base-pytorch"]["from"] == "pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn${CUDNN}-runtime"
    )
    assert STAGE_SPECS["base-debian"]["from"]["debian"] == "bookworm"
    assert STAGE_SPECS["deps"]["from"] == "${BASE}"
    assert STAGE_SPECS["code"]["from"] == "deps"


def test_run_stages_use_deps_and_never_the_code_image() -> None:
    for name in RUN_STAGES:
        assert STAGE_SPECS[name]["image"] == "deps", name


@pytest.mark.parametrize("stage", RUN_STAGES)
def test_each_stage_lists_its_script_and_the_local_modules_it_imports(stage: str) -> None:
    script = script_of(stage)
    inputs = STAGE_SPECS[stage]["inputs"]
    local = {m for m in imported_modules(script) if (STAGES / f"{m}.py").exists()}
    assert str(script.relative_to(ROOT)) in inputs
    assert {f"stages/{m}.py" for m in local} <= set(inputs)


def test_data_and_plot_import_neither_torch_nor_the_shared_module() -> None:
    # Editing cifar.py must not rerun data or plot, and neither pays torch's import time
    # (data.py imports torchvision lazily, for a download only).
    for stage in ("data", "plot"):
        assert not {"torch", "cifar"} & imported_modules(script_of(stage))
        assert "stages/cifar.py" not in STAGE_SPECS[stage]["inputs"]


def test_stages_reference_only_the_params_they_need() -> None:
    used = {name: params_used(STAGE_SPECS[name]["command"]) for name in RUN_STAGES}
    assert used == {
        "data": {"source", "synthetic_train", "synthetic_test"},
        "train": {"model", "epochs", "batch_size", "lr", "momentum", "seed", "threads", "device"},
        "evaluate": {"model", "threads", "device"},
        "plot": set(),
    }
    assert set().union(*used.values()) == set(SPEC["params"])


def test_outputs_flow_between_stages() -> None:
    outputs = {p: name for name in RUN_STAGES for p in STAGE_SPECS[name]["outputs"]}
    assert outputs == {
        "data/": "data",
        "model.pt": "train",
        "loss.json": "train",
        "metrics.json": "evaluate",
        "figure.png": "plot",
        "confusion.png": "plot",
        "loss.png": "plot",
    }
    for name in RUN_STAGES:
        for path in STAGE_SPECS[name]["inputs"]:
            assert path.startswith("stages/") or path in outputs, f"{name}: {path} is nobody's output"
    assert STAGE_SPECS["evaluate"]["metrics"] == "metrics.json"


def test_gpus_off_by_default_and_network_only_for_data() -> None:
    assert all(STAGE_SPECS[name].get("gpus", 0) == 0 for name in RUN_STAGES)
    assert [name for name in RUN_STAGES if STAGE_SPECS[name].get("network")] == ["data"]


@pytest.mark.torch
@pytest.mark.parametrize("stage", RUN_STAGES)
def test_commands_parse_with_the_scripts_own_arguments(stage: str) -> None:
    if stage in ("train", "evaluate"):
        pytest.importorskip("torch")
    if stage == "plot":
        pytest.importorskip("matplotlib")
    argv = shlex.split(interpolate(STAGE_SPECS[stage]["command"], param_defaults(SPEC)))
    args = load_stage(script_of(stage).stem).parse_args(argv[2:])  # SystemExit on an unknown flag
    declared = sorted(p.rstrip("/") for p in STAGE_SPECS[stage]["outputs"])
    assert sorted(str(getattr(args, option)) for option in OUTPUT_OPTIONS[stage]) == declared
