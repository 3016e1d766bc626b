"""Hints drawn from a failed command's output: what the user can do about the failure.

Pure functions over text; the caller supplies the output and a way to ask whether a
project path exists, so the rules are tested without running anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_MISSING = re.compile(r"No such file")  # glibc's "…or directory", dash's "No such file"
# a quote opens after a space or punctuation and closes before one: the ' of "can't" is no quote
_QUOTED = re.compile(r"""(?:^|(?<=[\s(\[=:,]))(?:'([^']+)'|"([^"]+)"|‘([^’]+)’)(?=$|[\s:,)\]])""")
_BEFORE_COLON = re.compile(r"(?:^|\s)([^\s:'\"]+): No such file")


def missing_paths(lines: Iterable[str]) -> list[str]:
    """Paths that output lines say were not found, in order of appearance, without repeats:
    `cat: a.txt: No such file or directory`, `FileNotFoundError: … No such file or
    directory: 'data/x.csv'`, `python3: can't open file '/w/train.py': [Errno 2] …`."""
    found: list[str] = []
    for line in lines:
        if not _MISSING.search(line):
            continue
        candidates = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(line)]
        candidates += _BEFORE_COLON.findall(line)
        found += [c for c in candidates if c not in found]
    return found


def undeclared_input_hint(
    stage: str,
    lines: Iterable[str],
    declared: Iterable[str],
    exists: Callable[[str], bool],
    roots: Iterable[str],
) -> str:
    """A hint when the command looked for a project file that is not a declared input.

    `roots`: absolute folders the command may have named the path under (its scratch work
    folder, the container's workdir, the project root); `exists(relpath)` asks the project.
    """
    inputs = [d.rstrip("/") for d in declared]
    for path in missing_paths(lines):
        rel = _project_relative(path, roots)
        if rel and exists(rel) and not any(rel == d or rel.startswith(d + "/") for d in inputs):
            return (
                f"stage '{stage}' runs in a scratch folder holding only its declared inputs, and "
                f"'{rel}' exists in the project but is not one: add it to stages.{stage}.inputs"
            )
    return ""


def _project_relative(path: str, roots: Iterable[str]) -> str:
    if path.startswith("/"):
        for root in roots:
            prefix = root.rstrip("/") + "/"
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        else:
            return ""
    while path.startswith("./"):
        path = path[2:]
    parts = path.split("/")
    if not path or ".." in parts:
        return ""
    return path.rstrip("/")
