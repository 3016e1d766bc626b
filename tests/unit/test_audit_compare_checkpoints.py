"""bg audit's comparison of torch checkpoints and safetensors files (buildgraph.audit.compare),
on real files written by torch.save and safetensors, and on a malicious pickle that must not run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from buildgraph.audit.compare import compare

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def model_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def saved(tmp_path: Path, name: str, old: object, new: object) -> tuple[Path, Path]:
    paths = []
    for side, value in (("recorded", old), ("audited", new)):
        path = tmp_path / side / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, path)
        paths.append(path)
    return paths[0], paths[1]


def test_a_state_dict_differing_in_one_tensor(tmp_path: Path) -> None:
    old = model_state()
    new = {k: v.clone() for k, v in old.items()}
    new["2.weight"][1, 2] += 0.25
    new["2.weight"][0, 0] += 0.5
    diff = compare("model.pt", *saved(tmp_path, "model.pt", old, new))
    assert diff.kind == "checkpoint"
    assert diff.summary == "1 of 4 tensors differ: 2.weight max abs 0.5"
    expected_rel = max(0.25 / abs(float(old["2.weight"][1, 2])), 0.5 / abs(float(old["2.weight"][0, 0])))
    change = json.loads(json.dumps(diff.data, allow_nan=False))["changes"]
    assert len(change) == 1
    assert change[0]["path"] == "2.weight" and change[0]["differing"] == 2 and change[0]["elements"] == 6
    assert change[0]["max_abs"] == pytest.approx(0.5, rel=1e-6)
    assert change[0]["max_rel"] == pytest.approx(expected_rel, rel=1e-5)
    assert diff.details[0] == "format: torch"
    assert diff.details[1].startswith("2.weight: 2 of 6 elements differ; max abs 0.5, max rel ")


def test_dtype_and_shape_changes_and_added_and_removed_keys(tmp_path: Path) -> None:
    old = model_state()
    new = dict(old)
    new["0.weight"] = old["0.weight"].half()
    new["2.weight"] = torch.zeros(4, 3)
    new["head.bias"] = torch.ones(2)
    del new["2.bias"]
    diff = compare("model.pt", *saved(tmp_path, "model.pt", old, new))
    lines = {line.split(":")[0]: line for line in diff.details[1:]}
    assert lines["0.weight"].startswith(
        "0.weight: dtype float32 → float16; 12 of 12 elements differ; max abs "
    )
    assert lines["2.weight"] == "2.weight: shape [2, 3] → [4, 3]"
    assert lines["2.bias"] == "2.bias: removed (was float32 [2])"
    assert lines["head.bias"] == "head.bias: added float32 [2]"
    assert diff.summary == (
        "2 of 3 tensors differ: 0.weight dtype float32 → float16, 2.weight shape [2, 3] → [4, 3]; "
        "1 added; 1 removed"
    )
    rounding = next(c for c in diff.data["changes"] if c["path"] == "0.weight")["max_abs"]
    assert 0 < rounding < 1e-3  # float16's rounding, measured in float64


def test_a_nested_checkpoint_with_optimizer_state(tmp_path: Path) -> None:
    def checkpoint(lr: float, steps: int) -> dict:
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 2)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            net(torch.ones(1, 3)).sum().backward()
            optimizer.step()
        return {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": steps}

    diff = compare("ckpt.pt", *saved(tmp_path, "ckpt.pt", checkpoint(0.01, 1), checkpoint(0.01, 2)))
    paths = [c["path"] for c in diff.data["changes"]]
    assert "model.weight" in paths and "optimizer.state.0.exp_avg" in paths
    assert "optimizer.state.0.step" in paths  # a 0-d tensor, too
    assert "epoch: 1 → 2 (+1, +100.00%)" in diff.details
    assert "optimizer.param_groups[0].lr" not in paths
    assert diff.summary.endswith("; 1 other value differs")
    assert diff.data["tensors_compared"] == 2 + 2 * 3  # 2 parameters; step, exp_avg, exp_avg_sq for each


def test_equal_tensors_saved_differently_are_said_to_differ_only_in_bytes(tmp_path: Path) -> None:
    old = model_state()
    reordered = dict(reversed(list(old.items())))
    old_path, new_path = saved(tmp_path, "model.pt", old, reordered)
    assert old_path.read_bytes() != new_path.read_bytes()
    diff = compare("model.pt", old_path, new_path)
    assert diff.summary == "all 4 tensors and values equal; only the serialised bytes differ"


def test_a_legacy_non_zip_checkpoint_is_loaded_too(tmp_path: Path) -> None:
    old = model_state()
    new = {**old, "0.bias": old["0.bias"] + 1}
    paths = []
    for side, value in (("recorded", old), ("audited", new)):
        path = tmp_path / side / "model.pth"
        path.parent.mkdir(parents=True)
        torch.save(value, path, _use_new_zipfile_serialization=False)
        paths.append(path)
    diff = compare("model.pth", *paths)
    assert diff.summary == "1 of 4 tensors differ: 0.bias max abs 1"


class Payload:
    """Unpickling this runs os.mkdir(marker): what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def test_a_malicious_pickle_is_not_run_but_reported_and_compared_as_bytes(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    old = {"weight": torch.ones(2), "x": Payload(marker)}
    new = {"weight": torch.zeros(2), "x": Payload(marker)}
    old_path, new_path = saved(tmp_path, "model.pt", old, new)
    diff = compare("model.pt", old_path, new_path)
    assert not marker.exists()
    assert diff.kind == "binary"
    assert diff.details[0].startswith(
        "compared as bytes: not loadable safely (torch.load with weights_only=True"
    )
    assert "mkdir" in diff.details[0]  # what it refused
    assert diff.data["first_offset"] is not None
    # the payload is live: an unsafe load runs it (so the assertion above could fail)
    torch.load(old_path, weights_only=False)
    assert marker.is_dir()


def test_without_torch_a_checkpoint_is_compared_as_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_path, new_path = saved(tmp_path, "model.pt", model_state(0), model_state(1))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    diff = compare("model.pt", old_path, new_path)
    assert diff.kind == "binary"
    assert diff.details[0] == "compared as bytes: torch is not installed"


def test_safetensors_files_are_compared_tensor_by_tensor(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    old = model_state()
    new = {**old, "0.bias": old["0.bias"].clone(), "extra": torch.arange(3, dtype=torch.int64)}
    new["0.bias"][2] = float("nan")
    paths = []
    for side, value, meta in (("recorded", old, {"epochs": "2"}), ("audited", new, {"epochs": "3"})):
        path = tmp_path / side / "model.safetensors"
        path.parent.mkdir(parents=True)
        save_file(value, str(path), metadata=meta)
        paths.append(path)
    diff = compare("model.safetensors", *paths)
    assert diff.kind == "checkpoint" and diff.data["formats"] == ["safetensors", "safetensors"]
    assert diff.details[1:] == (
        "0.bias: 1 of 3 elements differ; max abs -, max rel -; 1 NaN on one side only",
        "extra: added int64 [3]",
        '__metadata__.epochs: "2" → "3"',
    )
    assert diff.summary == "1 of 4 tensors differ: 0.bias max abs -; 1 added; 1 other value differs"
    json.dumps(diff.data, allow_nan=False)


def test_safetensors_without_torch_use_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    paths = []
    for side, value in (("recorded", 1.0), ("audited", 1.5)):
        path = tmp_path / side / "w.safetensors"
        path.parent.mkdir(parents=True)
        save_file({"w": np.full((2, 2), value, dtype=np.float32)}, str(path))
        paths.append(path)
    monkeypatch.setitem(sys.modules, "torch", None)
    diff = compare("w.safetensors", *paths)
    assert diff.details[1] == "w: 4 of 4 elements differ; max abs 0.5, max rel 50%"


def test_nan_in_the_same_place_is_no_difference(tmp_path: Path) -> None:
    nan = float("nan")
    old = {"stays": torch.tensor([nan, 1.0]), "moves": torch.tensor([nan, 1.0, 2.0])}
    new = {"stays": torch.tensor([nan, 1.0]), "moves": torch.tensor([nan, 1.0, 3.0])}
    diff = compare("m.pt", *saved(tmp_path, "m.pt", old, new))
    assert diff.details[1:] == ("moves: 1 of 3 elements differ; max abs 1, max rel 50%",)
