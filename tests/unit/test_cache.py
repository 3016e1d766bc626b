"""ArtefactCache: ingest, manifests, integrity, materialising (link/copy), gc."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildgraph.stores.cache import ArtefactCache, CorruptObject, GcReport, OutputRecord, UnsafeOutput
from buildgraph.stores.digests import Digest, DigestCache, TreeEntry
from buildgraph.stores.link import LinkImpossible


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def cache(tmp_path: Path, warnings_seen: list[str]) -> Iterator[ArtefactCache]:
    with ArtefactCache(tmp_path / ".bg" / "cache", on_warning=warnings_seen.append) as found:
        yield found


@pytest.fixture
def other_device(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem (tmpfs), where hardlinks and renames cannot reach."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="bg-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def make_tree(root: Path) -> None:
    write(root / "weights.bin", b"w" * 1000)
    write(root / "curves" / "loss.csv", b"1,2,3\n")
    tool = write(root / "bin" / "run.sh", b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "bin" / "latest").symlink_to("../weights.bin")
    (root / "empty").mkdir()


def manifest_for(**outputs: OutputRecord) -> dict[str, object]:
    return {"outputs": {path: record.as_dict() for path, record in outputs.items()}, "stage": "train"}


KEY = sha(b"key-1")
KEY2 = sha(b"key-2")


# ---------------------------------------------------------------- ingest
def test_ingest_moves_a_file_into_a_read_only_object(cache: ArtefactCache, tmp_path: Path) -> None:
    src = write(tmp_path / "scratch" / "model.pt", b"weights")
    inode = src.stat().st_ino
    record = cache.ingest(src)
    assert record == Digest("file", sha(b"weights"), 7)
    obj = cache.object_path(record.digest)
    assert obj == cache.root / "objects" / record.digest[:2] / record.digest[2:]
    assert obj.read_bytes() == b"weights" and mode(obj) == 0o444
    assert obj.stat().st_ino == inode  # renamed, not copied
    assert not src.exists()


def test_ingest_without_move_copies(cache: ArtefactCache, tmp_path: Path) -> None:
    src = write(tmp_path / "scratch" / "model.pt", b"weights")
    record = cache.ingest(src, move=False)
    obj = cache.object_path(record.digest)
    assert src.read_bytes() == b"weights" and mode(src) == 0o644
    assert obj.stat().st_ino != src.stat().st_ino and mode(obj) == 0o444


def test_ingest_never_takes_a_file_with_other_links(cache: ArtefactCache, tmp_path: Path) -> None:
    original = write(tmp_path / "workspace" / "data.csv", b"a,b\n")
    linked = tmp_path / "scratch" / "data.csv"
    linked.parent.mkdir()
    os.link(original, linked)  # an input hardlinked into scratch and declared as an output
    record = cache.ingest(linked)
    assert mode(original) == 0o644  # not chmodded through the other name
    assert cache.object_path(record.digest).stat().st_ino != original.stat().st_ino


def test_ingest_tree_uses_the_workspace_digest_scheme(cache: ArtefactCache, tmp_path: Path) -> None:
    make_tree(tmp_path / "scratch" / "out")
    shutil.copytree(tmp_path / "scratch" / "out", tmp_path / "copy", symlinks=True)
    with DigestCache(tmp_path / "stat.db") as digests:
        expected = digests.digest(tmp_path / "copy")
    record = cache.ingest(tmp_path / "scratch" / "out")
    assert record == expected
    assert [e.relpath for e in record.tree] == ["bin/latest", "bin/run.sh", "curves/loss.csv", "weights.bin"]
    link = record.tree[0]
    assert cache.object_path(link.digest).read_bytes() == b"../weights.bin"  # a link's object: its target
    assert all(cache.verify(e.digest) for e in record.tree)


def test_ingest_deduplicates(cache: ArtefactCache, tmp_path: Path) -> None:
    first = cache.ingest(write(tmp_path / "a" / "x", b"same"))
    second = cache.ingest(write(tmp_path / "b" / "y", b"same"))
    assert first == second
    objects = [p for p in (cache.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1


def test_concurrent_ingest_of_the_same_object(cache: ArtefactCache, tmp_path: Path) -> None:
    payloads = [os.urandom(50_000) for _ in range(20)]
    results: list[list[Digest]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(side: int) -> None:
        try:
            for i, data in enumerate(payloads):
                src = write(tmp_path / f"scratch{side}" / f"{i}.bin", data)
                barrier.wait()
                results[side].append(cache.ingest(src))
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results[0] == results[1] == [Digest("file", sha(d), len(d)) for d in payloads]
    stored = [p for p in (cache.root / "objects").rglob("*") if p.is_file()]
    assert len(stored) == 20 and not [p for p in stored if ".tmp-" in p.name]
    assert all(cache.object_path(sha(d)).read_bytes() == d for d in payloads)


def test_ingest_from_another_filesystem_copies(cache: ArtefactCache, other_device: Path) -> None:
    record = cache.ingest(write(other_device / "out.bin", b"far away"))
    assert cache.object_path(record.digest).read_bytes() == b"far away"
    assert (other_device / "out.bin").exists()  # not taken: a copy crossed devices


def test_ingest_missing_output_raises(cache: ArtefactCache, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cache.ingest(tmp_path / "never-written")


def test_put_log_keeps_the_log(cache: ArtefactCache, tmp_path: Path) -> None:
    log = write(tmp_path / "logs" / "train.log", b"epoch 1\n")
    digest = cache.put_log(log)
    assert digest == sha(b"epoch 1\n") and log.exists() and cache.verify(digest)


# ---------------------------------------------------------------- manifests
def test_manifest_round_trip(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "m", b"m"))
    manifest = {**manifest_for(m=record), "log": cache.put_log(write(tmp_path / "log", b"log"))}
    assert not cache.has_manifest(KEY) and cache.get_manifest(KEY) is None
    cache.put_manifest(KEY, manifest)
    assert cache.has_manifest(KEY)
    assert cache.get_manifest(KEY) == manifest
    assert (cache.root / "runs" / KEY[:2] / f"{KEY}.json").is_file()
    assert list(cache.iter_manifests()) == [(KEY, manifest)]


def test_manifest_naming_a_missing_object_is_refused(cache: ArtefactCache) -> None:
    bogus = Digest("file", sha(b"never stored"), 12)
    with pytest.raises(ValueError, match="names objects not in the cache"):
        cache.put_manifest(KEY, manifest_for(x=bogus))
    assert not cache.has_manifest(KEY)


def test_truncated_manifest_reads_as_absent(cache: ArtefactCache, tmp_path: Path) -> None:
    cache.put_manifest(KEY, manifest_for(m=cache.ingest(write(tmp_path / "s" / "m", b"m"))))
    path = cache.root / "runs" / KEY[:2] / f"{KEY}.json"
    path.write_bytes(path.read_bytes()[:20])
    assert cache.get_manifest(KEY) is None and cache.get_manifest(KEY, verify=False) is None
    assert list(cache.iter_manifests()) == []


def test_manifest_with_a_deleted_object_reads_as_absent(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "d" / "a", b"a").parent)
    cache.put_manifest(KEY, manifest_for(d=record))
    cache.object_path(record.tree[0].digest).unlink()
    assert cache.get_manifest(KEY) is None
    assert cache.get_manifest(KEY, verify=False) is not None


def test_bad_keys_are_refused(cache: ArtefactCache) -> None:
    with pytest.raises(ValueError):
        cache.get_manifest("../../etc/passwd")


# ---------------------------------------------------------------- integrity
def test_flipped_byte_is_detected_even_with_mtime_restored(
    cache: ArtefactCache, tmp_path: Path, warnings_seen: list[str]
) -> None:
    record = cache.ingest(write(tmp_path / "s" / "model.pt", b"0123456789" * 1000))
    cache.put_manifest(KEY, manifest_for(model=record))
    obj = cache.object_path(record.digest)
    before = obj.stat()
    assert cache.verify(record.digest)
    with open(obj, "r+b") as f:  # as root: 0o444 does not stop us
        f.seek(5000)
        f.write(b"X")
    os.utime(obj, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert obj.stat().st_mtime_ns == before.st_mtime_ns and obj.stat().st_size == before.st_size
    assert cache.get_manifest(KEY) is None
    assert not obj.exists()  # removed: the stage reruns and stores it again
    assert any("corrupt" in w for w in warnings_seen)


def test_verify_is_a_stat_when_nothing_changed(tmp_path: Path, warnings_seen: list[str]) -> None:
    root = tmp_path / ".bg" / "cache"
    with ArtefactCache(root) as first:
        record = first.ingest(write(tmp_path / "s" / "f", b"x" * 100_000))
        first.materialise(record, tmp_path / "w" / "f")  # a hardlink: changes the object's ctime
    with ArtefactCache(root) as later:  # a later run
        assert later.verify(record.digest)
        later.materialise(record, tmp_path / "w" / "f")  # replaces (unlinks) the old hardlink too
        assert later.verify(record.digest)
        assert later.stats.files_hashed == 0
    with ArtefactCache(root) as again:
        assert again.verify(record.digest) and again.stats.files_hashed == 0


# ---------------------------------------------------------------- materialising
def test_materialise_file_auto_hardlinks_read_only(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "model.pt", b"weights"))
    dest = tmp_path / "w" / "models" / "model.pt"
    cache.materialise(record, dest)
    assert dest.read_bytes() == b"weights"
    assert dest.stat().st_ino == cache.object_path(record.digest).stat().st_ino
    assert mode(dest) == 0o444


def test_materialise_copy_gives_an_independent_writable_file(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "model.pt", b"weights"))
    dest = tmp_path / "w" / "model.pt"
    cache.materialise(record.as_dict(), dest, link="copy")
    assert dest.stat().st_ino != cache.object_path(record.digest).stat().st_ino
    assert mode(dest) == 0o644
    dest.write_bytes(b"edited")
    assert cache.verify(record.digest)


def test_materialise_hardlink_mode(cache: ArtefactCache, tmp_path: Path, other_device: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "model.pt", b"weights"))
    cache.materialise(record, tmp_path / "w" / "model.pt", link="hardlink")
    assert (tmp_path / "w" / "model.pt").stat().st_nlink == 2
    with pytest.raises(LinkImpossible, match="cannot hardlink"):
        cache.materialise(record, other_device / "model.pt", link="hardlink")
    assert not list(other_device.iterdir())  # nothing half-made left behind
    cache.materialise(record, other_device / "model.pt", link="auto")  # falls back to a copy
    assert (other_device / "model.pt").read_bytes() == b"weights"


def test_materialise_replaces_a_hardlink_not_writing_through_it(cache: ArtefactCache, tmp_path: Path) -> None:
    old = cache.ingest(write(tmp_path / "s" / "v1", b"version one"))
    new = cache.ingest(write(tmp_path / "s" / "v2", b"version two!"))
    dest = tmp_path / "w" / "model.pt"
    cache.materialise(old, dest)
    cache.materialise(new, dest)
    assert dest.read_bytes() == b"version two!"
    assert cache.object_path(old.digest).read_bytes() == b"version one"
    assert cache.verify(old.digest) and cache.verify(new.digest)
    assert cache.stats.files_hashed == 0  # our own unlink did not make the old object suspect


def test_switching_outputs_back_and_forth_rehashes_nothing(tmp_path: Path) -> None:
    root, dest = tmp_path / ".bg" / "cache", tmp_path / "w" / "out"
    with ArtefactCache(root) as first:
        single = first.ingest(write(tmp_path / "s" / "f", b"f" * 10_000))
        for i in range(100):
            write(tmp_path / "s" / "d" / f"{i % 3}" / f"{i}", str(i).encode())
        tree = first.ingest(tmp_path / "s" / "d")
        first.put_manifest(KEY, manifest_for(out=tree))
        first.materialise(single, dest)
    with ArtefactCache(root) as later:  # params A → B → A → B across runs
        later.materialise(tree, dest)  # a hardlinked file renamed aside, then unlinked
        later.materialise(single, dest)  # a tree of hardlinks removed
        later.materialise(tree, dest)
        assert later.get_manifest(KEY) is not None
        assert later.stats.files_hashed == 0


def test_materialise_tree(cache: ArtefactCache, tmp_path: Path) -> None:
    make_tree(tmp_path / "s" / "out")
    record = cache.ingest(tmp_path / "s" / "out")
    dest = tmp_path / "w" / "out"
    write(dest / "stale.txt", b"from an older run")
    cache.materialise(record, dest)
    assert not (dest / "stale.txt").exists()
    assert (dest / "curves" / "loss.csv").read_bytes() == b"1,2,3\n"
    assert os.readlink(dest / "bin" / "latest") == "../weights.bin"
    assert mode(dest / "bin" / "run.sh") == 0o755  # executables get their own inode
    assert not (dest / "empty").exists()  # empty folders are not part of a tree
    with DigestCache(tmp_path / "stat.db") as digests:
        assert digests.digest(dest) == record
    assert [p.name for p in dest.parent.iterdir()] == ["out"]  # no temporaries left


def test_materialise_switches_between_file_and_tree(cache: ArtefactCache, tmp_path: Path) -> None:
    tree = cache.ingest(write(tmp_path / "s" / "d" / "a", b"a").parent)
    single = cache.ingest(write(tmp_path / "s" / "f", b"f"))
    dest = tmp_path / "w" / "out"
    cache.materialise(single, dest)
    cache.materialise(tree, dest)
    assert (dest / "a").read_bytes() == b"a"
    cache.materialise(single, dest)
    assert dest.read_bytes() == b"f"


def test_materialise_empty_tree(cache: ArtefactCache, tmp_path: Path) -> None:
    (tmp_path / "s" / "empty").mkdir(parents=True)
    empty = cache.ingest(tmp_path / "s" / "empty")
    assert empty == Digest("dir", sha(b""), 0, ())
    cache.materialise(empty, tmp_path / "w" / "empty")
    assert (tmp_path / "w" / "empty").is_dir()


def test_links_leading_out_of_an_output_are_refused_and_nothing_stored(
    cache: ArtefactCache, tmp_path: Path
) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "latest").symlink_to("checkpoints/7.pt")
    with pytest.raises(UnsafeOutput, match="is a symlink to checkpoints/7.pt"):
        cache.ingest(tmp_path / "s" / "latest")
    for target in ("/etc", "../../elsewhere", "sub/../../up", "missing"):
        out = tmp_path / "s" / f"out-{len(target)}"
        write(out / "sub" / "kept.txt", b"k")
        (out / "sub" / "same").symlink_to("kept.txt")  # stays inside: allowed …
        (out / "bad").symlink_to(target)  # … this one is not
        with pytest.raises(UnsafeOutput, match=f"holds '.*/bad', a symlink to {target}"):
            cache.ingest(out)
    assert not cache.objects.exists() or not any(cache.objects.iterdir())


def test_links_inside_a_directory_output_are_kept_as_links(cache: ArtefactCache, tmp_path: Path) -> None:
    out = tmp_path / "s" / "out"
    write(out / "ckpt" / "7.pt", b"seven")
    (out / "latest").symlink_to("ckpt/7.pt")
    (out / "ckpt" / "self").symlink_to(".")
    record = cache.ingest(out)
    assert [(e.relpath, e.mode) for e in record.tree] == [
        ("ckpt/7.pt", 0o644),
        ("ckpt/self", 0o120000),
        ("latest", 0o120000),
    ]
    cache.materialise(record, tmp_path / "w" / "out")
    assert os.readlink(tmp_path / "w" / "out" / "latest") == "ckpt/7.pt"
    assert (tmp_path / "w" / "out" / "latest").read_bytes() == b"seven"


def test_a_manifest_planting_a_link_out_of_its_output_is_not_used(
    cache: ArtefactCache, tmp_path: Path, warnings_seen: list[str]
) -> None:
    """As a cache written before ingest refused such links, or brought from another machine."""
    target = cache.ingest(write(tmp_path / "s" / "t", b"/etc")).digest  # an object holding "/etc"
    log = cache.put_log(tmp_path / "no-log")
    evil = Digest("dir", "0" * 64, 4, (TreeEntry("etc", 0o120000, target, 4),))
    cache.put_manifest(KEY, {"outputs": {"d": evil.as_dict()}, "log": log})
    assert cache.get_manifest(KEY, verify=False) is not None
    assert cache.get_manifest(KEY) is None
    assert len(warnings_seen) == 1 and "holds a symlink leading out of its output" in warnings_seen[0]


def test_materialise_with_a_missing_object_keeps_dest(cache: ArtefactCache, tmp_path: Path) -> None:
    make_tree(tmp_path / "s" / "out")
    record = cache.ingest(tmp_path / "s" / "out")
    dest = write(tmp_path / "w" / "out" / "keep.txt", b"previous").parent
    cache.object_path(record.tree[-1].digest).unlink()
    with pytest.raises(CorruptObject) as caught:
        cache.materialise(record, dest)
    assert caught.value.exit_status == 3 and caught.value.hint
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["out"]


def test_records_with_unsafe_paths_are_refused(cache: ArtefactCache, tmp_path: Path) -> None:
    digest = cache.ingest(write(tmp_path / "s" / "x", b"x")).digest
    evil = Digest("dir", "0" * 64, 1, (TreeEntry("../../escape", 0o644, digest, 1),))
    with pytest.raises(CorruptObject, match="unsafe path"):
        cache.materialise(evil, tmp_path / "w" / "d")
    assert not (tmp_path / "escape").exists()


def test_link_mode_is_checked(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "x", b"x"))
    with pytest.raises(ValueError, match="link must be one of"):
        cache.materialise(record, tmp_path / "w" / "x", link="symlink")  # type: ignore[arg-type]


# ---------------------------------------------------------------- gc
def test_gc_keeps_what_kept_manifests_need(cache: ArtefactCache, tmp_path: Path) -> None:
    shared = cache.ingest(write(tmp_path / "s" / "shared", b"shared bytes"))
    only_old = cache.ingest(write(tmp_path / "s" / "old", b"old bytes only"))
    log = cache.put_log(write(tmp_path / "log", b"log of the kept run"))
    cache.put_manifest(KEY, {**manifest_for(a=shared), "log": log})
    cache.put_manifest(KEY2, manifest_for(a=shared, b=only_old))
    stray = write(cache.root / "objects" / "ab" / ".cdef.tmp-123-abcd", b"half")
    stray_manifest = write(cache.root / "runs" / "ab" / ".x.json.tmp-1-2", b"{")
    report = cache.gc({KEY})
    assert report.objects_removed == 1 and report.manifests_removed == 1
    assert report.bytes_freed >= len(b"old bytes only") + len(b"half")
    assert not stray.exists() and not stray_manifest.exists()
    assert not cache.object_path(only_old.digest).exists()
    assert cache.get_manifest(KEY) is not None and not cache.has_manifest(KEY2)
    assert [k for k, _ in cache.iter_manifests()] == [KEY]
    assert cache.gc({KEY}) == GcReport(0, 0, 0)


def test_gc_on_an_empty_cache(cache: ArtefactCache) -> None:
    assert cache.gc(set()) == GcReport(0, 0, 0)


def test_manifest_is_plain_json(cache: ArtefactCache, tmp_path: Path) -> None:
    record = cache.ingest(write(tmp_path / "s" / "d" / "a", b"a").parent)
    cache.put_manifest(KEY, manifest_for(d=record))
    stored = json.loads((cache.root / "runs" / KEY[:2] / f"{KEY}.json").read_text())
    assert stored["outputs"]["d"]["tree"] == [["a", "644", sha(b"a"), 1]]
