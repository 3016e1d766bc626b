"""Typo suggestions for names the user got almost right (keys, stages, args, params)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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

