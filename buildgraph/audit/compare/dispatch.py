"""`compare`: the one entry point; picks the comparer for what stands at the two paths."""

from __future__ import annotations

from pathlib import Path

from buildgraph.audit.compare.binary import compare_binary, same_bytes
from buildgraph.audit.compare.detect import common_kind, detect
from buildgraph.audit.compare.difference import Context, Difference, Unreadable, with_notes
from buildgraph.audit.compare.directory import compare_directory, compare_items, item


def compare(path: str, recorded: Path, audited: Path, report_dir: Path | None = None) -> Difference:
    """How the `audited` version of the output `path` differs from the `recorded` one.

    recorded/audited: the two versions on disk (file or directory; a dir compared recursively, per
    file, including files added/removed, mode changes and symlink target changes; either may be
    missing). report_dir: where to write diff images (None: write none)."""
    ctx = Context(Path(report_dir) if report_dir is not None else None)
    old, new = item(Path(recorded)), item(Path(audited))
    if old is not None and new is not None and old.kind == new.kind == "dir":
        return compare_directory(path, old.path, new.path, ctx, compare_file)
    return compare_items(path, old, new, ctx, compare_file)


def compare_file(path: str, recorded: Path, audited: Path, ctx: Context) -> Difference:
    """Two regular files, by the comparer of their type; as bytes when that one cannot read them."""
    if same_bytes(recorded, audited):
        return Difference(path, detect(recorded), True, "identical", (), {})
    detected = detect(recorded), detect(audited)
    kind = common_kind(*detected)
    notes = [] if detected[0] == detected[1] else [f"recorded is {detected[0]}, audited is {detected[1]}"]
    try:
        diff = _by_kind(kind, path, recorded, audited, ctx)
    except Unreadable as why:
        notes.append(f"compared as bytes: {why}")
        diff = compare_binary(path, recorded, audited, ctx)
    return with_notes(diff, *notes)


def _by_kind(kind: str, path: str, recorded: Path, audited: Path, ctx: Context) -> Difference:
    # each comparer imported when needed: numpy, Pillow and torch cost a second to import
    if kind == "json":
        from buildgraph.audit.compare.jsonfile import compare_json

        return compare_json(path, recorded, audited)
    if kind == "text":
        from buildgraph.audit.compare.text import compare_text

        return compare_text(path, recorded, audited)
    if kind == "image":
        from buildgraph.audit.compare.image import compare_image

        return compare_image(path, recorded, audited, ctx.report_dir)
    if kind == "checkpoint":
        from buildgraph.audit.compare.checkpoint import compare_checkpoint

        return compare_checkpoint(path, recorded, audited)
    return compare_binary(path, recorded, audited, ctx)
