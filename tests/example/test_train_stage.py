"""stages/cifar.py and stages/train.py: loader, models, model files, a short training run."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import load_stage

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def cifar() -> ModuleType:
    return load_stage("cifar")


@pytest.fixture(scope="module")
def train() -> ModuleType:
    return load_stage("train")


# --- loader ---------------------------------------------------------------------------------


def test_loader_reads_the_synthetic_archive(
    tiny_data: Path, cifar: ModuleType, data_stage: ModuleType
) -> None:
    images, labels = cifar.load_split(tiny_data, train=True)
    assert images.shape == (100, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (100,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [10] * 10
    test_images, test_labels = cifar.load_split(
        tiny_data / "cifar-10-batches-py", train=False
    )  # either folder
    assert test_images.shape == (50, 3, 32, 32) and len(test_labels) == 50
    assert cifar.label_names(tiny_data) == list(data_stage.LABEL_NAMES)


def test_loader_keeps_the_planes_order_of_the_format(tiny_data: Path, cifar: ModuleType) -> None:
    import pickle

    with (tiny_data / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][0]
    images, _ = cifar.load_split(tiny_data, train=True)
    assert images[0, 0].flatten().tolist() == row[:1024].tolist()  # red plane first
    assert images[0, 2].flatten().tolist() == row[2048:].tolist()  # blue plane last


def test_normalise_maps_bytes_to_minus_one_one(cifar: ModuleType) -> None:
    values = cifar.normalise(torch.tensor([0, 255], dtype=torch.uint8))
    assert values.tolist() == [-1.0, 1.0]


def test_shuffled_batches_depend_only_on_the_seed(tiny_data: Path, cifar: ModuleType) -> None:
    images, labels = cifar.load_split(tiny_data, train=True)

    def order(seed: int) -> list[int]:
        batches = cifar.loader(images, labels, 7, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [y for _, batch_labels in batches for y in batch_labels.tolist()]

    assert order(3) == order(3) != order(4)
    assert sorted(order(3)) == sorted(labels.tolist())  # every image once, last batch short


# --- models and model files -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet", "resnet"])
def test_models_build_and_classify_a_batch(name: str, cifar: ModuleType) -> None:
    model = cifar.build_model(name)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_model_is_refused(cifar: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        cifar.build_model("vgg")


def test_model_bytes_are_deterministic_and_load_back(tmp_path: Path, cifar: ModuleType) -> None:
    torch.manual_seed(0)
    model = cifar.build_model("resnet")
    first, second = cifar.state_dict_bytes(model), cifar.state_dict_bytes(model)
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert all(n.startswith("archive/") for n in names)  # not named after the output file
    (tmp_path / "model.pt").write_bytes(first)
    loaded = cifar.load_state_dict(tmp_path / "model.pt")
    assert loaded.keys() == model.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


# --- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("batches", "interval"), [(12500, 2000), (1250, 250), (100, 20), (3, 1), (1, 1)])
def test_loss_lines_every_2000_batches_scaled_for_small_data(
    batches: int, interval: int, train: ModuleType
) -> None:
    assert train.log_interval(batches) == interval


def test_a_few_epochs_reduce_the_loss(
    tmp_path: Path, tiny_data: Path, train: ModuleType, torch_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--data",
        str(tiny_data),
        "--epochs",
        "4",
        "--batch-size",
        "10",
        "--lr",
        "0.01",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "model.pt"),
        "--loss",
        str(tmp_path / "loss.json"),
    ]
    assert train.main(argv) == 0
    record = json.loads((tmp_path / "loss.json").read_text())
    assert record["epoch_mean_loss"][-1] < record["epoch_mean_loss"][0]
    assert len(record["loss"]) == 4 * 10 and record["steps_per_epoch"] == 10
    out = capsys.readouterr()
    assert "[4,    10] loss: " in out.out and "Finished Training" in out.out
    assert "epoch 4/4 [####################] 10/10" in out.err  # the progress line, in log form


def test_loss_json_records_how_to_reproduce_it(
    tmp_path: Path, tiny_data: Path, train: ModuleType, torch_state: None
) -> None:
    argv = [
        "--data",
        str(tiny_data),
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--seed",
        "7",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "m.pt"),
        "--loss",
        str(tmp_path / "loss.json"),
    ]
    assert train.main(argv) == 0
    text = (tmp_path / "loss.json").read_text()
    record = json.loads(text)
    assert record["config"] == {
        "batch_size": 50,
        "epochs": 1,
        "lr": 0.001,
        "model": "lenet",
        "momentum": 0.9,
        "train_images": 100,
    }
    env = record["environment"]
    assert (env["seed"], env["threads"], env["device"], env["torch"]) == (7, 1, "cpu", torch.__version__)
    assert env["deterministic_algorithms"] is True and env["cudnn_deterministic"] is True
    assert text.endswith("}\n") and list(record) == sorted(record)


def test_cuda_requested_without_a_gpu_is_a_clean_error(
    tmp_path: Path, tiny_data: Path, train: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert train.main(["--data", str(tiny_data), "--device", "cuda", "--out", str(tmp_path / "m.pt")]) == 1
    assert capsys.readouterr().err.startswith("train.py: error: --device cuda: no CUDA device")
