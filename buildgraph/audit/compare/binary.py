"""Anything else: sizes, where the bytes first differ (with a hex context), how many differ.

Both files are streamed 1 MiB at a time, so a 100 MB checkpoint costs two sequential reads and
two buffers, never a copy in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from buildgraph.audit.compare import diffoscope
from buildgraph.audit.compare.difference import Context, Difference, size_text

CHUNK = 1 << 20
CONTEXT = 16  # bytes of hex shown around the first difference


@dataclass(frozen=True)
class Scan:
    sizes: tuple[int, int]
    first: int | None  # offset of the first differing byte (None: none; a size change is not one)
    last: int | None
    differing: int  # bytes differing within the common length


def compare_binary(path: str, recorded: Path, audited: Path, ctx: Context) -> Difference:
    scan = scan_bytes(recorded, audited)
    details = [_sizes_line(scan), *_where_lines(scan), *_hex_lines(recorded, audited, scan)]
    data: dict[str, object] = {
        "sizes": list(scan.sizes),
        "first_offset": scan.first,
        "last_offset": scan.last,
        "differing_bytes": scan.differing,
    }
    lines, data["diffoscope"] = diffoscope.explain(recorded, audited, ctx)
    details += lines
    return Difference(path, "binary", False, _summary(scan), tuple(details), data)


def scan_bytes(recorded: Path, audited: Path) -> Scan:
    import numpy as np  # only here: numpy compares a chunk in C instead of byte by byte

    first = last = None
    differing = offset = 0
    a, b = bytearray(CHUNK), bytearray(CHUNK)
    with open(recorded, "rb", buffering=0) as fa, open(audited, "rb", buffering=0) as fb:
        while (na := _fill(fa, a)) and (nb := _fill(fb, b)):
            n = min(na, nb)
            where = np.flatnonzero(np.frombuffer(a, np.uint8, n) != np.frombuffer(b, np.uint8, n))
            if where.size:
                first = offset + int(where[0]) if first is None else first
                last = offset + int(where[-1])
                differing += int(where.size)
            offset += n
            if n < CHUNK:
                break
    return Scan((recorded.stat().st_size, audited.stat().st_size), first, last, differing)


def _fill(f: object, buffer: bytearray) -> int:
    """Read until `buffer` is full or the file ends (a raw read may return less)."""
    view, got = memoryview(buffer), 0
    while got < len(buffer) and (n := f.readinto(view[got:])):  # type: ignore[attr-defined]
        got += n
    return got


def same_bytes(recorded: Path, audited: Path) -> bool:
    if recorded.stat().st_size != audited.stat().st_size:
        return False
    with open(recorded, "rb") as fa, open(audited, "rb") as fb:
        while chunk := fa.read(CHUNK):
            if chunk != fb.read(CHUNK):
                return False
    return True


def _summary(scan: Scan) -> str:
    old, new = scan.sizes
    sizes = f"{size_text(old)} each" if old == new else f"{size_text(old)} → {size_text(new)}"
    if scan.first is None and old == new:
        return f"{sizes}; identical"
    if scan.first is None:
        return f"{sizes}; identical up to {size_text(min(old, new))}, then one is longer"
    return f"{sizes}; {scan.differing:,} differ, the first at offset {scan.first:#x}"


def _sizes_line(scan: Scan) -> str:
    old, new = scan.sizes
    change = "" if old == new else f" ({new - old:+,})"
    return f"size: {size_text(old)} → {size_text(new)}{change}"


def _where_lines(scan: Scan) -> list[str]:
    if scan.first is None:
        return [f"identical up to offset {min(scan.sizes):#x}, where the shorter file ends"]
    span = f"offsets {scan.first:#x}–{scan.last:#x}" if scan.last != scan.first else f"offset {scan.first:#x}"
    return [f"{scan.differing:,} differing bytes within the common length, at {span}"]


def _hex_lines(recorded: Path, audited: Path, scan: Scan) -> list[str]:
    start = (scan.first if scan.first is not None else min(scan.sizes)) // CONTEXT * CONTEXT
    return [_hex_line("recorded", recorded, start), _hex_line("audited ", audited, start)]


def _hex_line(label: str, path: Path, start: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        chunk = f.read(CONTEXT)
    text = "".join(chr(c) if 32 <= c < 127 else "." for c in chunk)
    return f"{label} {start:08x}: {chunk.hex(' '):<{CONTEXT * 3 - 1}}  {text}"
