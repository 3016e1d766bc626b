"""What a file is, by its content first and its name second.

A name can lie (a `metrics.json` a crashed stage left half-written, a `.pt` that is a plain pickle),
so magic bytes, a zip's member names and a parse decide; the extension only picks a comparer
for content that says nothing about itself (a legacy torch pickle)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
TORCH_SUFFIXES = (".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"
# Larger files are compared as bytes: difflib over megabytes of lines is slow and unreadable anyway.
TEXT_LIMIT = 8 << 20
HEAD = 4096


def detect(path: Path) -> str:
    """One of "json", "text", "image", "checkpoint", "binary" for the regular file `path`."""
    head = read_head(path)
    if head.startswith((PNG, JPEG)):
        return "image"
    if is_safetensors(head, path.stat().st_size) or is_torch_zip(path) or has_checkpoint_suffix(path):
        return "checkpoint"
    text = read_text(path)
    if text is None:
        return "binary"
    return "json" if looks_like_json(path, text) else "text"


def common_kind(recorded: str, audited: str) -> str:
    """The comparer for two files detected as `recorded` and `audited`: a metrics file that no
    longer parses is still best shown as a text diff; any other mismatch only as bytes."""
    if recorded == audited:
        return recorded
    return "text" if {recorded, audited} == {"json", "text"} else "binary"


def read_head(path: Path, size: int = HEAD) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def read_text(path: Path) -> str | None:
    """The file as UTF-8 text, or None when it is too large, undecodable or holds a NUL byte."""
    if path.stat().st_size > TEXT_LIMIT:
        return None
    raw = path.read_bytes()
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def looks_like_json(path: Path, text: str) -> bool:
    """A `.json` that parses, or any object/array that does (a bare `3` in a .txt is text)."""
    if path.suffix.lower() != ".json" and text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def is_torch_zip(path: Path) -> bool:
    """torch.save's format since 1.6: a zip whose members sit under one folder with a data.pkl."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[-1] == "data.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then that many bytes of a JSON object."""
    length = int.from_bytes(head[:8], "little")
    return len(head) >= 10 and 2 <= length <= size - 8 and head[8:9] == b"{"


def has_checkpoint_suffix(path: Path) -> bool:
    return path.suffix.lower() in (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)
