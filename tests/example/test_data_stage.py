"""stages/data.py: the CIFAR-10 on-disk format, the three sources, and their failure modes."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def unpickle(path: Path, encoding: str = "bytes") -> dict[Any, Any]:
    with path.open("rb") as f:
        loaded: dict[Any, Any] = pickle.load(f, encoding=encoding)
    return loaded


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the Python 2 pickle writer ---------------------------------------------------------------


def test_py2_pickle_round_trips_plain_values(data_stage: ModuleType) -> None:
    value = {
        data_stage.Py2Str(b"ints"): [0, 255, 256, 65535, 65536, -1, 2**31 - 1],
        data_stage.Py2Str(b"tuples"): [(), (1,), (1, 2, 3, 4)],
        data_stage.Py2Str(b"empty"): [],
        data_stage.Py2Str(b"long"): data_stage.Py2Str(b"x" * 300),
        data_stage.Py2Str(b"flags"): [True, False, None],
    }
    loaded = pickle.loads(data_stage.py2_pickle(value), encoding="bytes")
    assert loaded == value


def test_py2_strings_follow_the_readers_encoding(data_stage: ModuleType) -> None:
    blob = data_stage.py2_pickle({data_stage.Py2Str(b"data"): data_stage.Py2Str(b"abc")})
    assert pickle.loads(blob, encoding="bytes") == {b"data": b"abc"}
    assert pickle.loads(blob, encoding="latin1") == {"data": "abc"}  # how torchvision reads CIFAR


def test_arrays_unpickle_as_uint8_under_both_encodings(data_stage: ModuleType) -> None:
    array = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for encoding in ("bytes", "latin1"):
        loaded = pickle.loads(data_stage.py2_pickle(array), encoding=encoding)
        assert loaded.dtype == np.uint8 and loaded.shape == (2, 3072)
        assert np.array_equal(loaded, array)


# --- synthetic ------------------------------------------------------------------------------


def test_synthetic_has_the_cifar10_layout(tiny_data: Path, data_stage: ModuleType) -> None:
    batches = tiny_data / "cifar-10-batches-py"
    assert sorted(p.name for p in batches.iterdir()) == sorted((*FILES, "batches.meta", "readme.html"))
    batch = unpickle(batches / "data_batch_1")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (20, 3072)
    assert batch[b"batch_label"] == b"training batch 1 of 5"
    assert len(batch[b"filenames"]) == 20 and batch[b"filenames"][0].endswith(b".png")
    meta = unpickle(batches / "batches.meta")
    assert [n.decode() for n in meta[b"label_names"]] == list(data_stage.LABEL_NAMES)
    assert meta[b"num_vis"] == 3072 and meta[b"num_cases_per_batch"] == 20


def test_synthetic_splits_are_balanced_over_ten_classes(tiny_data: Path) -> None:
    batches = tiny_data / "cifar-10-batches-py"
    train = [y for name in FILES[:5] for y in unpickle(batches / name)[b"labels"]]
    test = unpickle(batches / "test_batch")[b"labels"]
    assert np.bincount(train).tolist() == [10] * 10
    assert np.bincount(test).tolist() == [5] * 10


def test_synthetic_is_byte_identical_for_a_seed(tmp_path: Path, data_stage: ModuleType) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        data_stage.write_synthetic(tmp_path / name, train_size=30, test_size=10, seed=seed)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert tree_bytes(tmp_path / "a") != tree_bytes(tmp_path / "c")


def test_synthetic_classes_differ_in_shape_not_only_colour(data_stage: ModuleType) -> None:
    # Classes 3 and 5 (cat, dog) share a colour: a disc against a ring. Same seed = same geometry.
    assert data_stage._CLASS_COLOURS[3] == data_stage._CLASS_COLOURS[5]
    disc = data_stage._shape_masks(3, 50, np.random.RandomState(0))
    ring = data_stage._shape_masks(5, 50, np.random.RandomState(0))
    assert (ring <= disc).all() and ring.sum() < 0.8 * disc.sum()


def test_too_small_sizes_are_refused(tmp_path: Path, data_stage: ModuleType) -> None:
    with pytest.raises(data_stage.DataError, match="too small"):
        data_stage.write_synthetic(tmp_path, train_size=4, test_size=10)


# --- path:DIR ---------------------------------------------------------------------------------


def test_path_source_copies_a_valid_copy(tmp_path: Path, tiny_data: Path, data_stage: ModuleType) -> None:
    out = tmp_path / "out"
    assert data_stage.main(["--source", f"path:{tiny_data}", "--out", str(out)]) == 0
    assert tree_bytes(out) == tree_bytes(tiny_data)


def test_path_source_accepts_the_batches_folder_itself(
    tmp_path: Path, tiny_data: Path, data_stage: ModuleType
) -> None:
    data_stage.copy_local(tiny_data / "cifar-10-batches-py", tmp_path)
    assert tree_bytes(tmp_path) == tree_bytes(tiny_data)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "data_batch_3").unlink(), "data_batch_3: missing"),
        (
            lambda d: (d / "test_batch").write_bytes((d / "test_batch").read_bytes()[:1000]),
            "not a CIFAR-10 pickle",
        ),
        (lambda d: (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]})), "10 classes"),
        (lambda d: (d / "data_batch_1").write_bytes(pickle.dumps([1, 2])), "expected a dict"),
    ],
)
def test_path_source_rejects_a_broken_copy(
    tmp_path: Path,
    tiny_data: Path,
    data_stage: ModuleType,
    capsys: pytest.CaptureFixture[str],
    breakage: Callable[[Path], object],
    message: str,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_data, broken)
    breakage(broken / "cifar-10-batches-py")
    assert data_stage.main(["--source", f"path:{broken}", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("data.py: error: ") and message in err
    assert "Traceback" not in err


def test_path_source_without_batches_folder_is_refused(tmp_path: Path, data_stage: ModuleType) -> None:
    with pytest.raises(data_stage.DataError, match="no cifar-10-batches-py/"):
        data_stage.copy_local(tmp_path, tmp_path / "out")


def test_unknown_source_is_refused(
    tmp_path: Path, data_stage: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert data_stage.main(["--source", "ftp", "--out", str(tmp_path)]) == 1
    assert "unknown source 'ftp'" in capsys.readouterr().err


# --- download ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> tuple[Path, str]:
    """A cifar-10-python.tar.gz of the tiny data set, and its md5."""
    path = tmp_path_factory.mktemp("served") / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tiny_data / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def http_url(archive: tuple[Path, str]) -> Iterator[str]:
    """The archive served over HTTP on 127.0.0.1 (with a Content-Length, for the progress line)."""
    folder = str(archive[0].parent)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=folder, **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{archive[0].name}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_over_http_verifies_and_extracts(
    tmp_path: Path,
    tiny_data: Path,
    archive: tuple[Path, str],
    http_url: str,
    data_stage: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batches = data_stage.download(tmp_path, url=http_url, md5=archive[1], use_torchvision=False)
    assert tree_bytes(batches) == tree_bytes(tiny_data / "cifar-10-batches-py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py"]  # archive removed
    assert "download [####################] 100%" in capsys.readouterr().err


def test_download_from_a_file_url_through_main(
    tmp_path: Path, archive: tuple[Path, str], data_stage: ModuleType
) -> None:
    argv = ["--source", "download", "--url", archive[0].as_uri(), "--md5", archive[1], "--out", str(tmp_path)]
    assert data_stage.main(argv) == 0
    assert data_stage.validate(tmp_path / "cifar-10-batches-py") == {"train": 100, "test": 50}


def test_download_with_a_wrong_md5_fails_and_leaves_nothing(
    tmp_path: Path, http_url: str, data_stage: ModuleType
) -> None:
    with pytest.raises(data_stage.DataError, match="md5 .* != expected 0123"):
        data_stage.download(tmp_path, url=http_url, md5="0123" * 8, use_torchvision=False)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_missing_file_is_an_error(
    tmp_path: Path, http_url: str, data_stage: ModuleType
) -> None:
    with pytest.raises(data_stage.DataError, match="cannot download .*404"):
        data_stage.download(tmp_path, url=http_url + ".missing", md5="0" * 32, use_torchvision=False)


def test_download_defaults_to_the_official_archive(data_stage: ModuleType) -> None:
    args = data_stage.parse_args(["--source", "download"])
    assert args.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert args.md5 == "c58f30108f718f92721af3b95e74349a"
