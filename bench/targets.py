"""The targets of issue 11, checked on one bench_core run: every ratio is within that run.

Each target is a row (name, value, limit, verdict); a target whose figures the run lacks
(a size not benchmarked, a tool skipped) is left out, and "info" rows carry no limit. The
digest and restore targets live in bench_digest.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from common import format_table, verdict

RSS_LIMIT_MB = 150.0


class _Timings(Protocol):
    @property
    def rows(self) -> Mapping[tuple[int, str, str], Any]: ...

    def get(self, size: int, tool: str, phase: str) -> float | None: ...

    def peak_rss(self, size: int, tool: str) -> float | None: ...


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


class _Targets:
    def __init__(self, rec: _Timings) -> None:
        self.rec = rec
        self.out: list[dict[str, object]] = []
        self.sizes = sorted({size for size, _, _ in rec.rows})

    def add(self, name: str, value: float | None, limit: float | None, strict: bool = False) -> None:
        if value is None:
            return
        judged = "info" if limit is None else verdict(value, limit, strict=strict)
        self.out.append({"target": name, "value": value, "limit": limit, "verdict": judged})

    def versus(self, size: int, phase: str, tool: str, other_phase: str | None = None) -> float | None:
        return _ratio(self.rec.get(size, "bg", phase), self.rec.get(size, tool, other_phase or phase))


def targets(
    rec: _Timings, startup: Mapping[str, Mapping[str, float]], workloads: Sequence[Mapping[str, object]]
) -> list[dict[str, object]]:
    t = _Targets(rec)
    _full_builds(t)
    _null_runs(t, startup)
    _scaling(t)
    _per_size_checks(t, workloads)
    return t.out


def _full_builds(t: _Targets) -> None:
    for j in ("-j1", "-j2"):
        t.add(f"bg full {j} / make full {j} @ 1000", t.versus(1000, f"full {j}", "make"), 1.5)
        t.add(
            f"bg full {j} / doit full {j} @ 1000 (<)", t.versus(1000, f"full {j}", "doit"), 1.0, strict=True
        )
    t.add("bg full -j1 / make full -j1 @ 100", t.versus(100, "full -j1", "make"), 2.0)
    t.add("bg full -j2 / make full -j2 @ 100", t.versus(100, "full -j2", "make"), None)


def _null_runs(t: _Targets, startup: Mapping[str, Mapping[str, float]]) -> None:
    for size in t.sizes:
        limit = 0.6 if size in (10, 100, 1000) else None
        t.add(f"bg null run / doit null run @ {size}", t.versus(size, "null run", "doit"), limit)
    python = startup.get("python -c pass", {}).get("median")
    t.add("bg null run @ 10 / python -c pass", _ratio(t.rec.get(10, "bg", "null run"), python), 5.0)
    for size in t.sizes:
        limit = 0.7 if size == 1000 else None
        t.add(f"bg status / doit list --status @ {size}", t.versus(size, "null status", "doit"), limit)
    t.add("bg edit run / doit edit run @ 1000", t.versus(1000, "edit run", "doit"), 0.8)


def _scaling(t: _Targets) -> None:
    growth = {
        tool: _ratio(t.rec.get(10000, tool, "full -j1"), t.rec.get(1000, tool, "full -j1"))
        for tool in ("bg", "make")
    }
    t.add("bg full -j1 @ 10000 / @ 1000", growth["bg"], 11.0)
    # load changes between the sizes' phases: make's own growth, same run, tells how much
    t.add("make full -j1 @ 10000 / @ 1000", growth["make"], None)
    t.add("bg null run @ 10000, s", t.rec.get(10000, "bg", "null run"), 1.0)
    null_growth = _ratio(t.rec.get(10000, "bg", "null run"), t.rec.get(1000, "bg", "null run"))
    t.add("bg null run @ 10000 / @ 1000 (linear: 10)", null_growth, None)


def _per_size_checks(t: _Targets, workloads: Sequence[Mapping[str, object]]) -> None:
    affected = {w["stages"]: w["affected_stages"] for w in workloads}
    for size in t.sizes:
        t.add(f"bg peak RSS @ {size}, MB", t.rec.peak_rss(size, "bg"), RSS_LIMIT_MB)
        quiet = [
            max(r.rewritten)
            for (s, tool, phase), r in t.rec.rows.items()
            if s == size and tool == "bg" and phase.startswith(("touch", "null")) and r.rewritten
        ]
        if quiet:
            t.add(f"bg rewrote nothing on null/touch runs @ {size}", max(quiet), 0)
        edit = t.rec.rows.get((size, "bg", "edit run"))
        if edit is not None and edit.rewritten:
            # every stage downstream of the edit reruns and changes (cksum of new bytes)
            n = affected.get(size)
            t.out.append(
                {
                    "target": f"bg edit run rewrote just the stages downstream ({n}) @ {size}",
                    "value": min(edit.rewritten),
                    "limit": n,
                    "verdict": "meets" if set(edit.rewritten) == {n} else "MISSES",
                }
            )


def targets_table(items: list[dict[str, object]]) -> str:
    return format_table(
        ["target", "value", "limit", "verdict"],
        [[t["target"], t["value"], t["limit"], t["verdict"]] for t in items],
    )
