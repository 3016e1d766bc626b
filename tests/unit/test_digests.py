"""DigestCache: the digest scheme, the stat cache, racy files, a disposable database."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildgraph.stores.digests import (
    CHUNK,
    Digest,
    DigestCache,
    LinkRefused,
    Links,
    TreeEntry,
    hash_file,
    tree_digest,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age(path: Path, seconds: float = 60) -> None:
    """Give `path` an mtime in the past (outside the racy window); its ctime becomes now."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then), follow_symlinks=False)


def write(path: Path, data: bytes, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        age(path)
    return path


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def cache(tmp_path: Path, warnings_seen: list[str]) -> Iterator[DigestCache]:
    with DigestCache(tmp_path / "state" / "stat.db", on_warning=warnings_seen.append) as found:
        yield found


def reopen(tmp_path: Path, warnings_seen: list[str], **options: int) -> DigestCache:
    return DigestCache(tmp_path / "state" / "stat.db", on_warning=warnings_seen.append, **options)


# ---------------------------------------------------------------- scheme
def test_file_digest_is_sha256_of_bytes(cache: DigestCache, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 3)  # crosses read-buffer boundaries
    found = cache.digest(write(tmp_path / "w" / "a.bin", data))
    assert found == Digest("file", sha(data), len(data))


def test_missing_path_is_none(cache: DigestCache, tmp_path: Path) -> None:
    assert cache.digest(tmp_path / "nope") is None
    assert cache.digest(tmp_path / "nope" / "deeper") is None


def test_directory_digest_is_the_canonical_listing(cache: DigestCache, tmp_path: Path) -> None:
    root = tmp_path / "w" / "d"
    write(root / "b.txt", b"bee")
    tool = write(root / "sub" / "tool.sh", b"#!/bin/sh\n")
    tool.chmod(0o700)
    (root / "empty").mkdir()
    (root / "sub" / "link").symlink_to("../b.txt")
    listing = (
        f"644 {sha(b'bee')} b.txt\n"
        f"120000 {sha(b'../b.txt')} sub/link\n"
        f"755 {sha(b'#!/bin/sh' + bytes([10]))} sub/tool.sh\n"
    )
    found = cache.digest(root)
    assert found is not None and found.kind == "dir"
    assert found.digest == sha(listing.encode())
    assert [e.relpath for e in found.tree] == ["b.txt", "sub/link", "sub/tool.sh"]  # no empty dir
    assert found.tree[1] == TreeEntry("sub/link", 0o120000, sha(b"../b.txt"), len("../b.txt"))
    assert found.size == 3 + 8 + 10


def test_directory_digest_depends_on_content_and_exec_bit_only(cache: DigestCache, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        write(root / "x" / "y.txt", b"same")
    (two / "x" / "y.txt").chmod(0o600)  # not an exec bit: same normalised mode
    (two / "unrelated-empty-dir").mkdir()
    first, second = cache.digest(one), cache.digest(two)
    assert first is not None and second is not None and first.digest == second.digest
    (two / "x" / "y.txt").chmod(0o744)
    changed = cache.digest(two)
    assert changed is not None and changed.digest != first.digest
    assert changed.tree[0].mode == 0o755


def test_empty_directory(cache: DigestCache, tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert cache.digest(tmp_path / "e") == Digest("dir", sha(b""), 0, ())


def test_symlinks_are_not_followed_unless_asked(cache: DigestCache, tmp_path: Path) -> None:
    write(tmp_path / "data" / "f", b"payload")
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    as_link = cache.digest(tmp_path / "alias")
    assert as_link == Digest("link", sha(os.fsencode(tmp_path / "data")), len(os.fsencode(tmp_path / "data")))
    followed = cache.digest(tmp_path / "alias", follow_symlinks=True)
    assert followed == cache.digest(tmp_path / "data")
    (tmp_path / "dangling").symlink_to("nowhere")
    assert cache.digest(tmp_path / "dangling", follow_symlinks=True) is None
    assert cache.digest(tmp_path / "dangling") is not None


def test_links_leaving_a_tree_are_followed_inside_the_boundary(cache: DigestCache, tmp_path: Path) -> None:
    project = tmp_path / "p"
    write(project / "shared" / "w.bin", b"weights")
    write(project / "d" / "x", b"x")
    (project / "d" / "same").symlink_to("x")  # stays inside d: a link entry
    (project / "d" / "w").symlink_to("../shared/w.bin")  # leaves d: its target's bytes
    (project / "d" / "all").symlink_to("../shared")  # a folder: walked
    (project / "d" / "etc").symlink_to("/etc")  # outside the boundary: a link entry, not followed
    found = cache.digest(project / "d", links=Links(within=str(project)))
    assert found is not None
    assert [(e.relpath, e.mode, e.digest) for e in found.tree] == [
        ("all/w.bin", 0o644, sha(b"weights")),
        ("etc", 0o120000, sha(b"/etc")),
        ("same", 0o120000, sha(b"x")),
        ("w", 0o644, sha(b"weights")),
        ("x", 0o644, sha(b"x")),
    ]
    with pytest.raises(LinkRefused) as refused:
        cache.digest(project / "d", links=Links(within=str(project), refuse=True))
    assert (refused.value.relpath, refused.value.target, refused.value.reason) == (
        "etc",
        "/etc",
        "outside the project",
    )


def test_a_followed_link_is_keyed_by_its_targets_stat(cache: DigestCache, tmp_path: Path) -> None:
    target = write(tmp_path / "p" / "real", b"one")
    (tmp_path / "p" / "d").mkdir()
    (tmp_path / "p" / "d" / "l").symlink_to("../real")
    follow = Links(within=str(tmp_path / "p"))
    first = cache.digest(tmp_path / "p" / "d", links=follow)
    assert cache.digest(tmp_path / "p" / "d", links=follow) == first
    assert cache.stats.files_hashed == 1  # the second time, one stat proved it unchanged
    with open(target, "r+b") as f:  # same size, mtime put back: only the target's ctime moved
        f.write(b"two")
    age(target)
    second = cache.digest(tmp_path / "p" / "d", links=follow)
    assert second is not None and second.tree[0].digest == sha(b"two")


def test_a_link_loop_is_not_followed(cache: DigestCache, tmp_path: Path) -> None:
    write(tmp_path / "p" / "d" / "x", b"x")
    (tmp_path / "p" / "d" / "up").symlink_to("..")
    found = cache.digest(tmp_path / "p" / "d", links=Links(within=str(tmp_path / "p")))
    assert found is not None and [e.relpath for e in found.tree] == ["up", "x"]
    with pytest.raises(LinkRefused, match="a loop"):
        cache.digest(tmp_path / "p" / "d", links=Links(within=str(tmp_path / "p"), refuse=True))


def test_special_files_are_skipped_in_trees_and_refused_alone(cache: DigestCache, tmp_path: Path) -> None:
    write(tmp_path / "d" / "f", b"x")
    os.mkfifo(tmp_path / "d" / "pipe")
    found = cache.digest(tmp_path / "d")
    assert found is not None and [e.relpath for e in found.tree] == ["f"]
    with pytest.raises(ValueError, match="not a regular file"):
        cache.digest(tmp_path / "d" / "pipe")


def test_record_round_trips_through_a_dict(cache: DigestCache, tmp_path: Path) -> None:
    write(tmp_path / "d" / "a", b"a")
    (tmp_path / "d" / "l").symlink_to("a")
    found = cache.digest(tmp_path / "d")
    assert found is not None
    assert Digest.from_dict(found.as_dict()) == found
    assert found.as_dict()["tree"][1][1] == "120000"
    with pytest.raises(ValueError):
        Digest.from_dict({"kind": "blob", "digest": "x", "size": 1})


def test_hash_file_and_tree_digest_helpers(tmp_path: Path) -> None:
    assert hash_file(write(tmp_path / "f", b"abc")) == sha(b"abc")
    entries = [TreeEntry("a", 0o644, "d1", 1)]
    assert tree_digest(entries) == sha(b"644 d1 a\n")


# ---------------------------------------------------------------- stat cache
def test_unchanged_file_is_not_read_again(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    with reopen(tmp_path, warnings_seen) as first:
        expected = first.digest(path)
        assert first.digest(path) == expected
        assert first.stats.files_hashed == 1
    with reopen(tmp_path, warnings_seen) as second:  # a later `bg` run
        assert second.digest(path) == expected
        assert second.stats.files_hashed == 0


def test_unchanged_tree_costs_no_hashing_on_the_next_run(tmp_path: Path, warnings_seen: list[str]) -> None:
    for i in range(300):
        write(tmp_path / "data" / f"{i % 7}" / f"{i}.txt", str(i).encode())
    with reopen(tmp_path, warnings_seen) as first:
        expected = first.digest(tmp_path / "data")
        assert first.stats.files_hashed == 300
    with reopen(tmp_path, warnings_seen) as second:
        assert second.digest(tmp_path / "data") == expected
        assert second.stats.files_hashed == 0


def test_touch_rehashes_once_and_never_again(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    with reopen(tmp_path, warnings_seen) as run:
        expected = run.digest(path)
    age(path, seconds=30)  # like `touch -d`: new mtime and ctime, same bytes
    with reopen(tmp_path, warnings_seen) as run:
        assert run.digest(path) == expected and run.stats.files_hashed == 1
    for _ in range(2):
        with reopen(tmp_path, warnings_seen) as run:
            assert run.digest(path) == expected and run.stats.files_hashed == 0


def test_plain_touch_with_a_fine_grained_clock(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    with reopen(tmp_path, warnings_seen, racy_window_ns=0) as run:
        run.digest(path)
    os.utime(path)  # `touch`: mtime = now
    with reopen(tmp_path, warnings_seen, racy_window_ns=0) as run:
        run.digest(path)
        assert run.stats.files_hashed == 1
    with reopen(tmp_path, warnings_seen, racy_window_ns=0) as run:
        run.digest(path)
        assert run.stats.files_hashed == 0


def test_racily_clean_file_is_hashed_again(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"fresh", old=False)  # mtime within the racy window of hashing
    with reopen(tmp_path, warnings_seen) as run:
        run.digest(path)
    with reopen(tmp_path, warnings_seen) as run:
        run.digest(path)
        assert run.stats.files_hashed == 1  # not trusted by stat alone


def test_same_size_edit_with_restored_mtime_is_caught_by_ctime(cache: DigestCache, tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"aaaa")
    before = path.stat()
    assert cache.digest(path) == Digest("file", sha(b"aaaa"), 4)
    time.sleep(0.01)  # so the edit's ctime differs from the recorded one even on coarse clocks
    with open(path, "r+b") as f:
        f.write(b"b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert cache.digest(path) == Digest("file", sha(b"baaa"), 4)


def test_remember_records_a_materialised_output(cache: DigestCache, tmp_path: Path) -> None:
    path = write(tmp_path / "d" / "model.pt", b"weights")
    record = Digest("dir", "unused", 7, (TreeEntry("model.pt", 0o644, sha(b"weights"), 7),))
    cache.remember(tmp_path / "d", record.as_dict())
    assert cache.digest(path) == Digest("file", sha(b"weights"), 7)
    assert cache.stats.files_hashed == 0


# ---------------------------------------------------------------- the database
def test_corrupt_database_is_recreated_with_a_warning(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    db = tmp_path / "state" / "stat.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not sqlite at all" * 100)
    with reopen(tmp_path, warnings_seen) as run:
        assert run.digest(path) == Digest("file", sha(b"content"), 7)
    assert len(warnings_seen) == 1 and "corrupt" in warnings_seen[0]
    with reopen(tmp_path, warnings_seen) as run:  # the recreated database works
        run.digest(path)
        assert run.stats.files_hashed == 0
    assert len(warnings_seen) == 1


def test_database_deleted_between_and_during_runs(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    with reopen(tmp_path, warnings_seen) as run:
        run.digest(path)
    (tmp_path / "state" / "stat.db").unlink()
    with reopen(tmp_path, warnings_seen) as run:
        run.digest(path)
        assert run.stats.files_hashed == 1
        for leftover in (tmp_path / "state").iterdir():
            leftover.unlink()  # `rm -rf .bg` while bg runs
        run.digest(write(tmp_path / "g", b"more"))
    assert warnings_seen == []


def test_rows_are_written_by_flush(tmp_path: Path, warnings_seen: list[str]) -> None:
    path = write(tmp_path / "f", b"content")
    first = reopen(tmp_path, warnings_seen)
    first.digest(path)
    with reopen(tmp_path, warnings_seen) as other:  # nothing flushed yet
        other.digest(path)
        assert other.stats.files_hashed == 1
    first.flush()
    with reopen(tmp_path, warnings_seen) as other:
        other.digest(path)
        assert other.stats.files_hashed == 0
    first.close()


def test_threads_share_one_cache(cache: DigestCache, tmp_path: Path) -> None:
    paths = [write(tmp_path / "t" / f"{i}", os.urandom(5000)) for i in range(64)]
    results: dict[Path, Digest | None] = {}
    errors: list[BaseException] = []

    def work(chunk: list[Path]) -> None:
        try:
            for p in chunk:
                results[p] = cache.digest(p)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(paths[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(results[p] == Digest("file", sha(p.read_bytes()), 5000) for p in paths)
    cache.flush()
    assert cache.stats.files_hashed == 64


def test_racy_window_is_short_on_fine_timestamps_and_long_on_whole_seconds(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path / "stat.db")
    fine = tmp_path / "fine.txt"
    fine.write_text("x")
    os.utime(fine, ns=(time.time_ns(), time.time_ns() - 500_000_123))  # 0.5 s old, ns digits
    coarse = tmp_path / "coarse.txt"
    coarse.write_text("y")
    whole = (time.time_ns() // 1_000_000_000 - 1) * 1_000_000_000  # ~1 s old, whole seconds
    os.utime(coarse, ns=(whole, whole))
    for path in (fine, coarse):
        cache.digest(path)
    hashed = cache.stats.files_hashed
    cache.digest(fine)  # outside the 100 ms window: trusted by stat
    assert cache.stats.files_hashed == hashed
    cache.digest(coarse)  # inside the 2 s window of a whole-second timestamp: read again
    assert cache.stats.files_hashed == hashed + 1
    cache.close()
