"""Typo suggestions for names the user got almost right (keys, stages, args, params)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from buildgraph.core.spec import DebianBase, Spec, StageRef


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` was most likely meant to be, or None when nothing is close."""
    options = list(candidates)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # Case slips ("Train" for "train") score low with difflib on short words.
    return {c.lower(): c for c in options}.get(word.lower())


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`" (did you mean 'outputs'?)"`, or `""` when nothing is close; ready to append to a message."""
    match = closest(word, candidates)
    return f" (did you mean '{match}'?)" if match is not None else ""


def base_alternatives(spec: Spec, failing: str) -> list[str]:
    """`--arg NAME=STAGE` choices this Buildfile offers instead of image stage `failing`:
    where another image stage is built `from = "${NAME}"` and NAME names `failing`, every
    other image stage with a base of its own (offline Debian bases first) could stand in."""
    roots = [s for s in spec.image_stages() if s.name != failing and not isinstance(s.base, StageRef)]
    roots.sort(key=lambda s: not isinstance(s.base, DebianBase))
    args = dict(spec.args)
    found: list[str] = []
    for stage in spec.image_stages():
        if stage.base != StageRef(failing):
            continue
        for name in stage.args_used:
            if args.get(name) == failing:
                found += [f"--arg {name}={r.name}" for r in roots if f"--arg {name}={r.name}" not in found]
    return found
