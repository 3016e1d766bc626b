"""bg audit's per-type comparison (buildgraph.audit.compare) on real files: JSON metrics, CSV and
text, PNG/JPEG (Pillow and matplotlib), directories, binaries (with diffoscope when installed).
Checkpoints: test_audit_compare_checkpoints.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from buildgraph.audit.compare import Difference, compare


def pair(tmp_path: Path, name: str, old: bytes | str, new: bytes | str) -> tuple[Path, Path]:
    """`name` written under recorded/ and audited/ with the two contents."""
    paths = []
    for side, content in (("recorded", old), ("audited", new)):
        path = tmp_path / side / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        paths.append(path)
    return paths[0], paths[1]


def strict_json(diff: Difference) -> dict:
    """data of `diff` and its children round-trip through strict JSON (no NaN, no objects)."""
    text = json.dumps(diff.data, allow_nan=False)
    for child in diff.children:
        strict_json(child)
    return json.loads(text)


# ---------------------------------------------------------------- JSON
METRICS = {
    "accuracy": 0.867,
    "correct": 867,
    "per_class": {"cat": 0.8, "dog": 0.9, "ship": 0.95},
    "losses": [1.2, 0.9, 0.7],
    "model": "lenet",
}


def test_json_metrics_name_each_changed_field_with_old_new_and_deltas(tmp_path: Path) -> None:
    new = {
        "accuracy": 0.871,
        "correct": 871,
        "per_class": {"cat": 0.9, "dog": 0.9, "bird": 0.5},
        "losses": [1.2, 0.9, 0.7, 0.6],
        "model": "resnet",
    }
    old_path, new_path = pair(tmp_path, "metrics.json", json.dumps(METRICS), json.dumps(new))
    diff = compare("metrics.json", old_path, new_path)
    assert (diff.kind, diff.identical, diff.path) == ("json", False, "metrics.json")
    assert diff.summary.startswith("7 fields differ: accuracy 0.867 → 0.871 (+0.004), correct 867 → 871 (+4)")
    assert "\n" not in diff.summary
    assert diff.details == (
        "accuracy: 0.867 → 0.871 (+0.004, +0.46%)",
        "correct: 867 → 871 (+4, +0.46%)",
        "per_class.cat: 0.8 → 0.9 (+0.1, +12.50%)",
        "per_class.ship: removed (was 0.95)",
        "per_class.bird: added 0.5",
        "losses: length 3 → 4",
        'model: "lenet" → "resnet"',
    )
    data = strict_json(diff)
    assert data["count"] == 7
    cat = next(c for c in data["changes"] if c["path"] == "per_class.cat")
    assert cat["old"] == 0.8 and cat["new"] == 0.9 and cat["change"] == "changed"
    assert cat["delta"] == pytest.approx(0.1) and cat["relative"] == pytest.approx(0.125)
    assert {"path": "per_class.bird", "change": "added", "new": 0.5} in data["changes"]


def test_json_changes_inside_lists_are_located_by_index_and_nan_is_explained(tmp_path: Path) -> None:
    old = {"runs": [{"loss": 0.5}, {"loss": float("nan")}], "zero": 0}
    new = {"runs": [{"loss": 0.25}, {"loss": float("nan")}], "zero": 2, "extra": float("inf")}
    diff = compare("m.json", *pair(tmp_path, "m.json", json.dumps(old), json.dumps(new)))
    assert diff.details == (
        "runs[0].loss: 0.5 → 0.25 (-0.25, -50.00%)",
        "zero: 0 → 2 (+2)",  # no relative change from 0
        "extra: added Infinity",
    )  # a NaN that stays NaN is no change
    assert strict_json(diff)["changes"][2]["new"] == "inf"


def test_json_with_the_same_values_differs_only_in_formatting(tmp_path: Path) -> None:
    old_path, new_path = pair(tmp_path, "m.json", json.dumps(METRICS), json.dumps(METRICS, indent=2))
    diff = compare("m.json", old_path, new_path)
    assert (diff.kind, diff.identical, diff.details) == ("json", False, ())
    assert diff.summary.startswith("same values; only the formatting differs")


def test_a_json_file_that_does_not_parse_is_compared_as_text(tmp_path: Path) -> None:
    diff = compare("m.json", *pair(tmp_path, "m.json", '{"accuracy": 0.8}\n', '{"accuracy": 0.8,\n'))
    assert diff.kind == "text"
    assert diff.details[0] == "recorded is json, audited is text"
    assert '-{"accuracy": 0.8}' in diff.details and '+{"accuracy": 0.8,' in diff.details


# ---------------------------------------------------------------- text and CSV
def test_csv_is_shown_as_a_unified_diff(tmp_path: Path) -> None:
    rows = [f"{i},{i * i},{i / 7:.4f}" for i in range(30)]
    changed = list(rows)
    changed[10] = "10,100,1.4290"
    changed.append("30,900,4.2857")
    old, new = "\n".join(rows) + "\n", "\n".join(changed) + "\n"
    diff = compare("table.csv", *pair(tmp_path, "table.csv", old, new))
    assert diff.kind == "text"
    assert diff.summary == "1 line removed, 2 added (30 → 31 lines)"
    assert diff.details[:2] == ("--- recorded/table.csv", "+++ audited/table.csv")
    assert "-10,100,1.4286" in diff.details and "+10,100,1.4290" in diff.details
    assert "+30,900,4.2857" in diff.details
    assert strict_json(diff)["added"] == 2


def test_a_long_text_diff_is_bounded(tmp_path: Path) -> None:
    old = "".join(f"line {i}\n" for i in range(500))
    new = "".join(f"LINE {i}\n" for i in range(500))
    diff = compare("log.txt", *pair(tmp_path, "log.txt", old, new))
    assert len(diff.details) == 41
    assert diff.details[-1] == f"… {1003 - 40} more lines"  # 2 header + 1 hunk + 1000 changed lines
    assert diff.summary == "500 lines removed, 500 added (500 → 500 lines)"
    assert len(json.dumps(diff.data)) < 5000


def test_text_that_differs_only_in_line_endings_says_so(tmp_path: Path) -> None:
    diff = compare("a.txt", *pair(tmp_path, "a.txt", "a\nb\n", "a\r\nb\r\n"))
    assert (diff.kind, diff.summary) == ("text", "same lines; line endings or the final newline differ")


def test_a_json_object_in_a_txt_file_is_compared_as_json(tmp_path: Path) -> None:
    diff = compare("m.txt", *pair(tmp_path, "m.txt", '{"a": 1}', '{"a": 2}'))
    assert (diff.kind, diff.details) == ("json", ("a: 1 → 2 (+1, +100.00%)",))


# ---------------------------------------------------------------- images
def png(path: Path, size: tuple[int, int] = (64, 48), box: tuple[int, int, int, int] | None = None,
        colour: tuple[int, int, int] = (250, 10, 10), fmt: str = "PNG") -> bytes:
    """A grey gradient image (saved at `path`), `box` (left, top, right, bottom) painted `colour`."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size)
    image.putdata([(x * 3 % 256, y * 5 % 256, 128) for y in range(size[1]) for x in range(size[0])])
    if box:
        ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)
    return path.read_bytes()


def test_png_pixels_that_differ_are_counted_boxed_and_drawn(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    old, new = tmp_path / "recorded/fig.png", tmp_path / "audited/fig.png"
    png(old)
    png(new, box=(10, 20, 15, 23))  # 5 × 3 pixels
    report = tmp_path / "report"
    diff = compare("plots/fig.png", old, new, report)
    assert diff.kind == "image"
    expected = int(np.abs(np.asarray(Image.open(old), np.int16)[20:23, 10:15] - [250, 10, 10]).max())
    data = strict_json(diff)
    assert diff.summary == (
        f"15 of 3,072 pixels differ (0.49%) in x 10–14, y 20–22; max channel difference {expected}"
    )
    assert data["bbox"] == [10, 20, 15, 23] and data["differing_pixels"] == 15
    assert data["max_channel_difference"] == expected
    assert diff.files == ("plots/fig.png.diff.png",)
    drawn = np.asarray(Image.open(report / diff.files[0]).convert("RGB"))
    red = np.all(drawn == (255, 0, 0), axis=2)
    assert drawn.shape == (48, 64, 3) and red.sum() == 15 and red[20:23, 10:15].all()


def test_png_without_a_report_dir_writes_no_diff_image(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/fig.png", tmp_path / "audited/fig.png"
    png(old)
    png(new, box=(0, 0, 2, 2))
    before = sorted(p for p in tmp_path.rglob("*"))
    diff = compare("fig.png", old, new)
    assert diff.files == () and diff.data["differing_pixels"] == 4
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_png_size_change_is_reported_and_the_common_area_compared(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/fig.png", tmp_path / "audited/fig.png"
    png(old, size=(64, 48))
    png(new, size=(80, 48))
    diff = compare("fig.png", old, new, tmp_path / "report")
    assert diff.summary == "size 64×48 → 80×48; common area identical; only the encoding differs"
    assert "size: 64×48 → 80×48" in diff.details
    assert diff.data["sizes"] == [[64, 48], [80, 48]]
    assert diff.files == ("fig.png.diff.png",)


def test_a_jpeg_is_recognised_by_its_magic_bytes_whatever_its_name(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/photo.bin", tmp_path / "audited/photo.bin"
    png(old, fmt="JPEG")
    png(new, box=(30, 30, 40, 40), fmt="JPEG")
    diff = compare("photo.bin", old, new)
    assert diff.kind == "image" and diff.data["modes"] == ["RGB", "RGB"]
    left, top, right, bottom = diff.data["bbox"]
    assert left <= 30 and top <= 30 and right >= 40 and bottom >= 40  # JPEG blurs a block's edges


def test_a_truncated_png_falls_back_to_bytes(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/fig.png", tmp_path / "audited/fig.png"
    whole = png(old)
    new.parent.mkdir(parents=True)
    new.write_bytes(whole[: len(whole) // 2])
    diff = compare("fig.png", old, new)
    assert diff.kind == "binary"
    assert diff.details[0].startswith("compared as bytes: not a readable image")


def matplotlib_png(path: Path, slope: float, software: str = "test") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3, 2), dpi=50)
    axes.plot([0, 1, 2], [0, slope, 2 * slope])
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": software})
    plt.close(figure)


def test_matplotlib_figures_whose_curves_differ(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/loss.png", tmp_path / "audited/loss.png"
    matplotlib_png(old, 1.0)
    matplotlib_png(new, 1.5)
    diff = compare("loss.png", old, new)
    assert diff.kind == "image" and diff.data["sizes"] == [[150, 100], [150, 100]]
    assert diff.data["differing_pixels"] > 50 and diff.data["max_channel_difference"] > 100


def test_matplotlib_figures_that_differ_only_in_metadata(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/loss.png", tmp_path / "audited/loss.png"
    matplotlib_png(old, 1.0, software="matplotlib 3.7")
    matplotlib_png(new, 1.0, software="matplotlib 3.8")
    diff = compare("loss.png", old, new, tmp_path / "report")
    assert diff.summary == "pixels identical; metadata differs: Software"
    assert 'metadata Software: "matplotlib 3.7" → "matplotlib 3.8"' in diff.details
    assert diff.files == () and not (tmp_path / "report").exists()


# ---------------------------------------------------------------- binaries
def test_binary_first_differing_offset_and_hex_context(tmp_path: Path) -> None:
    base = bytes(range(256)) * 8
    changed = bytearray(base)
    changed[1000] ^= 0xFF
    changed[1003] ^= 0x01
    diff = compare("blob.bin", *pair(tmp_path, "blob.bin", base + b"\0", bytes(changed)))
    assert diff.kind == "binary"
    assert diff.summary == "2,049 bytes → 2,048 bytes; 2 differ, the first at offset 0x3e8"
    assert diff.details[:4] == (
        "size: 2,049 bytes → 2,048 bytes (-1)",
        "2 differing bytes within the common length, at offsets 0x3e8–0x3eb",
        "recorded 000003e0: e0 e1 e2 e3 e4 e5 e6 e7 e8 e9 ea eb ec ed ee ef  ................",
        "audited  000003e0: e0 e1 e2 e3 e4 e5 e6 e7 17 e9 ea ea ec ed ee ef  ................",
    )
    assert strict_json(diff)["first_offset"] == 1000


def test_binary_scan_crosses_chunk_boundaries(tmp_path: Path) -> None:
    size = 3 * (1 << 20) + 123
    base = os.urandom(size)
    changed = bytearray(base)
    for offset in (2 * (1 << 20) + 5, size - 1):
        changed[offset] ^= 0x80
    diff = compare("big.bin", *pair(tmp_path, "big.bin", base, bytes(changed)))
    assert (diff.data["first_offset"], diff.data["last_offset"]) == (2 * (1 << 20) + 5, size - 1)
    assert diff.data["differing_bytes"] == 2


def test_binary_that_only_grew_is_identical_up_to_the_shorter_length(tmp_path: Path) -> None:
    base = os.urandom(1 << 20)
    diff = compare("big.bin", *pair(tmp_path, "big.bin", base, base + b"tail"))
    assert diff.summary == (
        "1,048,576 bytes → 1,048,580 bytes; identical up to 1,048,576 bytes, then one is longer"
    )
    assert diff.data["first_offset"] is None


@pytest.mark.skipif(shutil.which("diffoscope") is None, reason="diffoscope is not installed")
def test_diffoscope_explains_a_binary_when_installed(tmp_path: Path) -> None:
    diff = compare("blob.bin", *pair(tmp_path, "blob.bin", b"abc\x00\x01", b"abd\x00\x02"))
    start = diff.details.index("diffoscope:")
    assert any("6162 6300 01" in line for line in diff.details[start:])
    assert any("6162 6400 02" in line for line in diff.data["diffoscope"])


def test_without_diffoscope_the_binary_comparison_says_how_to_get_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    diff = compare("blob.bin", *pair(tmp_path, "blob.bin", b"\x00\x01", b"\x00\x02"))
    assert diff.data["diffoscope"] == "not installed"
    assert diff.details[-1].startswith("(install diffoscope")


def fake_diffoscope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "diffoscope").write_text("#!/bin/sh\n" + script)
    (folder / "diffoscope").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_a_diffoscope_that_fails_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_diffoscope(tmp_path, monkeypatch, "echo warming up >&2; echo 'no comparator for it' >&2; exit 2\n")
    diff = compare("blob.bin", *pair(tmp_path, "blob.bin", b"\x00\x01", b"\x00\x02"))
    assert diff.details[-1] == "diffoscope: failed (exit 2: no comparator for it)"


def gone_within(pid: int, seconds: float) -> bool:
    """The process has exited (gone, or a zombie awaiting init) within `seconds`."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in status.read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_diffoscope_that_hangs_is_killed_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildgraph.audit.compare import diffoscope

    pidfile = tmp_path / "child.pid"
    # the child lets go of the pipes, so that a kill of diffoscope alone would not hang the test
    fake_diffoscope(tmp_path, monkeypatch, f"sleep 1000 >/dev/null 2>&1 & echo $! > {pidfile}; wait\n")
    monkeypatch.setattr(diffoscope, "TIMEOUT", 10)  # far more than sh needs to start sleep, even loaded
    diff = compare("blob.bin", *pair(tmp_path, "blob.bin", b"\x00\x01", b"\x00\x02"))
    assert diff.data["diffoscope"] == "no answer within 10 s"
    pid = int(pidfile.read_text())
    try:
        assert gone_within(pid, 20.0)  # a SIGKILL takes effect soon, but not at once: wait, bounded
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # a failed assertion leaves no sleeper behind


# ---------------------------------------------------------------- directories and the top level
def test_a_directory_is_compared_file_by_file(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/out", tmp_path / "audited/out"
    for root in (old, new):
        (root / "sub").mkdir(parents=True)
        (root / "same.txt").write_text("same\n")
        (root / "sub/also-same.bin").write_bytes(b"\x00\x01")
        (root / "run.sh").write_text("echo hi\n")
    (old / "metrics.json").write_text('{"accuracy": 0.5}')
    (new / "metrics.json").write_text('{"accuracy": 0.75}')
    png(old / "sub/fig.png")
    png(new / "sub/fig.png", box=(1, 1, 3, 3))
    (old / "gone.txt").write_text("bye\n")
    (new / "new.txt").write_text("hello\n")
    (new / "run.sh").chmod(0o755)
    os.symlink("same.txt", old / "link")
    os.symlink("run.sh", new / "link")
    (new / "empty-folder").mkdir()  # in no digest: no difference
    diff = compare("out/", old, new, tmp_path / "report")
    assert diff.kind == "directory" and not diff.identical
    assert diff.summary == "4 of 8 files differ; 1 added; 1 removed"
    assert [(c.path, c.kind) for c in diff.children] == [
        ("out/gone.txt", "text"),
        ("out/link", "binary"),
        ("out/metrics.json", "json"),
        ("out/new.txt", "text"),
        ("out/run.sh", "text"),
        ("out/sub/fig.png", "image"),
    ]
    children = {c.path: c for c in diff.children}
    assert children["out/gone.txt"].summary == "removed: a file of 4 bytes, mode 644"
    assert children["out/new.txt"].summary == "added: a file of 6 bytes, mode 644"
    assert children["out/link"].summary == "symlink target same.txt → run.sh"
    assert children["out/run.sh"].summary == "mode 644 → 755 (content identical)"
    assert children["out/metrics.json"].details == ("accuracy: 0.5 → 0.75 (+0.25, +50.00%)",)
    assert children["out/sub/fig.png"].files == ("out/sub/fig.png.diff.png",)
    assert (tmp_path / "report/out/sub/fig.png.diff.png").is_file()
    data = strict_json(diff)
    assert (data["files"], data["identical"], data["differing"]) == (8, 2, 4)
    assert (data["added"], data["removed"]) == (["out/new.txt"], ["out/gone.txt"])
    assert diff.details[0] == "out/gone.txt: removed: a file of 4 bytes, mode 644"


def test_a_directory_with_many_differing_files_stays_bounded(tmp_path: Path) -> None:
    old, new = tmp_path / "recorded/d", tmp_path / "audited/d"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    for i in range(130):
        (old / f"f{i:03}.txt").write_text(f"{i}\n")
        (new / f"f{i:03}.txt").write_text(f"{i + 1}\n")
    diff = compare("d", old, new)
    assert diff.summary == "130 of 130 files differ"
    assert len(diff.details) == 41 and diff.details[-1] == "… 90 more lines"
    assert len(diff.children) == 130
    assert diff.children[99].kind == "text" and diff.children[99].details[0].startswith("---")
    assert diff.children[100].data == {"explained": False}


def test_identical_and_missing_outputs(tmp_path: Path) -> None:
    old, new = pair(tmp_path, "a.txt", "x\n", "x\n")
    same = compare("a.txt", old, new)
    assert (same.identical, same.summary, same.kind) == (True, "identical", "text")
    new.unlink()
    gone = compare("a.txt", old, new)
    assert (gone.identical, gone.summary) == (False, "removed: a file of 2 bytes, mode 644")
    assert gone.details == ("only in the recorded output: a file of 2 bytes, mode 644",)


def test_a_file_that_became_a_directory(tmp_path: Path) -> None:
    old, new = pair(tmp_path, "out", "x\n", "")
    new.unlink()
    (new / "inner").mkdir(parents=True)
    diff = compare("out", old, new)
    assert diff.kind == "directory"
    assert diff.summary == (
        "a file of 2 bytes, mode 644 in the recorded output, a directory in the audited one"
    )
