"""Comparing where a result was recorded with where it was audited: like with like, or say so.

A fingerprint is the stable part of the executor's `Result.environment`, as the manifest and
the lock keep it (`records.environment`: executor, image id, Python, torch, CUDA, GPU, driver,
CPUs, threads, OS). Two results made in different environments may differ for that reason
alone; the audit says so next to the differences ("recorded on torch 2.13.0+cpu (CPU), …, on
the host (local), audited on torch 1.13.1 (CPU), …, in image sha256:3f2a…").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildgraph.records.environment import FIELDS
from buildgraph.records.environment import describe as phrase


def differing(recorded: Mapping[str, Any], audited: Mapping[str, Any]) -> list[str]:
    """The fingerprint fields whose values differ. A field one side lacks does not count: a
    result recorded before fingerprints existed is compared with nothing."""
    return [f for f in FIELDS if f in recorded and f in audited and recorded[f] != audited[f]]


def describe(recorded: Mapping[str, Any], audited: Mapping[str, Any]) -> str:
    """One line saying how the environments differ; "" when alike (or nothing was recorded)."""
    fields = differing(recorded, audited)
    if not fields:
        return ""
    return f"{', '.join(fields)}: recorded on {phrase(recorded)}; audited on {phrase(audited)}"
