"""The example's Buildfile.toml: stages wired so that edits rerun exactly what they should.

Run stages are checked as bg reads them (`pipeline.spec()`: the `train` and `evaluate` matrices
expanded, params.yaml values interpolated); image stages as written."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest

from .conftest import ROOT, STAGES, load_stage
from .pipeline import NETS, RUN_STAGES, buildfile, run_stage_of, spec

SPEC = buildfile()
BUILT = spec()
STAGE_SPECS = SPEC["stages"]
OUTPUT_OPTIONS = {
    "data": ["out"],
    **{f"train-{net}": ["out", "loss"] for net in NETS},
    **{f"evaluate-{net}": ["out"] for net in NETS},
    "compare": ["out"],
    "plot": ["figure", "confusion", "loss_figure"],
}
TRAIN_KEYS = ["train.batch_size", "train.lr", "train.momentum", "train.seed"]


def script_of(stage: str) -> Path:
    return ROOT / shlex.split(run_stage_of(BUILT, stage).command)[1]


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


def test_the_matrix_expands_into_one_train_and_one_evaluate_stage_per_net() -> None:
    assert [name for name in BUILT.stages if name in RUN_STAGES] == list(RUN_STAGES)
    assert [s.name for s in BUILT.run_stages()] == list(RUN_STAGES)
    assert STAGE_SPECS["train"]["matrix"] == STAGE_SPECS["evaluate"]["matrix"] == {"model": list(NETS)}


def test_run_stages_use_deps_and_never_the_code_image() -> None:
    for name in RUN_STAGES:
        assert run_stage_of(BUILT, name).image == "deps", name


@pytest.mark.parametrize("stage", RUN_STAGES)
def test_each_stage_lists_its_script_and_the_local_modules_it_imports(stage: str) -> None:
    script = script_of(stage)
    inputs = run_stage_of(BUILT, stage).inputs
    local = {m for m in imported_modules(script) if (STAGES / f"{m}.py").exists()}
    assert str(script.relative_to(ROOT)) in inputs
    assert {f"stages/{m}.py" for m in local} <= set(inputs)


def test_data_compare_and_plot_import_neither_torch_nor_the_shared_module() -> None:
    # Editing cifar.py must not rerun data, compare or plot, and none pays torch's import time
    # (data.py imports torchvision lazily, for a download only).
    for stage in ("data", "compare", "plot"):
        assert not {"torch", "cifar"} & imported_modules(script_of(stage))
        assert "stages/cifar.py" not in run_stage_of(BUILT, stage).inputs


def test_stages_reference_only_the_params_they_need() -> None:
    used = {name: set(run_stage_of(BUILT, name).params_used) for name in RUN_STAGES}
    assert used == {
        "data": {"source", "synthetic_train", "synthetic_test"},
        **{f"train-{net}": {"threads", "device"} for net in NETS},
        **{f"evaluate-{net}": {"threads", "device"} for net in NETS},
        "compare": set(),
        "plot": set(),
    }
    assert set().union(*used.values()) == set(SPEC["params"])


def test_hyperparameters_come_from_params_yaml_by_key() -> None:
    """Each net's stage keys its own epochs and the shared settings, nothing else of the file."""
    for net in NETS:
        stage = run_stage_of(BUILT, f"train-{net}")
        assert stage.params_files == ("params.yaml",)
        assert sorted(name for name, _ in stage.file_params) == sorted(
            f"params.yaml:{key}" for key in [f"train.epochs.{net}", *TRAIN_KEYS]
        )
    other = [name for name in RUN_STAGES if not name.startswith("train-")]
    assert all(not run_stage_of(BUILT, name).file_params for name in other)


def test_outputs_flow_between_stages() -> None:
    outputs = {o.path: s.name for s in BUILT.run_stages() for o in s.outputs}
    assert outputs == {
        "data": "data",
        **{f"models/{net}": f"train-{net}" for net in NETS},
        **{f"eval/{net}": f"evaluate-{net}" for net in NETS},
        "comparison.json": "compare",
        "figure.png": "plot",
        "confusion.png": "plot",
        "loss.png": "plot",
    }
    for stage in BUILT.run_stages():
        for path in stage.inputs:
            produced = any(path == o or path.startswith(o + "/") or o.startswith(path + "/") for o in outputs)
            assert path.startswith("stages/") or produced, f"{stage.name}: {path} is nobody's output"
    assert run_stage_of(BUILT, "evaluate-lenet").metrics == "eval/lenet/metrics.json"  # in its output dir
    assert run_stage_of(BUILT, "compare").metrics == "comparison.json"
    assert BUILT.default == ("plot", "compare")


def test_gpus_off_by_default_and_network_only_for_data() -> None:
    assert all(run_stage_of(BUILT, name).gpu_count == 0 for name in RUN_STAGES)
    assert [name for name in RUN_STAGES if run_stage_of(BUILT, name).network] == ["data"]


@pytest.mark.torch
@pytest.mark.parametrize("stage", RUN_STAGES)
def test_commands_parse_with_the_scripts_own_arguments(stage: str) -> None:
    if stage.startswith(("train", "evaluate")):
        pytest.importorskip("torch")
    if stage == "plot":
        pytest.importorskip("matplotlib")
    argv = shlex.split(run_stage_of(BUILT, stage).command)
    args = load_stage(script_of(stage).stem).parse_args(argv[2:])  # SystemExit on an unknown flag
    declared = [o.path for o in run_stage_of(BUILT, stage).outputs]
    written = [str(getattr(args, option)) for option in OUTPUT_OPTIONS[stage]]
    assert all(any(w == d or w.startswith(d + "/") for d in declared) for w in written), (written, declared)
    assert all(any(w == d or w.startswith(d + "/") for w in written) for d in declared), (written, declared)
