"""Timings by (stages, tool, phase), with each run's peak RSS and outputs rewritten (bench_core).

A tool whose command fails or is killed for its time limit stops there: its later phases at
that size are skipped (and, once killed, the larger sizes too; bench_core skips them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common import CommandFailed, CommandTimedOut, count_rewritten, median, output_signatures, run_timed
from tools import Tool


@dataclass
class Row:
    size: int
    tool: str
    phase: str
    times: list[float] = field(default_factory=list)
    rewritten: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    killed: dict[str, float] | None = None  # limit_s, done (outputs present), of (stages)

    @property
    def median(self) -> float | None:
        return median(self.times) if self.times else None

    @property
    def peak_rss(self) -> float | None:
        return max(self.rss_mb) if self.rss_mb else None

    def figure(self) -> float | str | None:
        """The median, or what a killed command got through."""
        if self.killed and not self.times:
            k = self.killed
            return f"> {k['limit_s']:g} s (killed at {k['done']:.0f} of {k['of']:.0f})"
        return self.median


class Recorder:
    """Collects timings by (size, tool, phase); a tool that fails or is killed stops there."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, str], Row] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.killed_at: dict[str, int] = {}  # tool → the size at which a command was killed

    def time(self, size: int, tool: Tool, phase: str, argv: list[str]) -> None:
        if tool.stopped:
            return
        row = self.rows.setdefault((size, tool.name, phase), Row(size, tool.name, phase))
        before = output_signatures(tool.ws / "out")
        try:
            timing = run_timed(argv, tool.ws, tool.limit, tool.env)
        except CommandFailed as exc:
            tool.stopped = str(exc)
            self.errors.append(f"[{tool.name}, {size} stages, {phase}] {exc}")
            return
        except CommandTimedOut as exc:
            done = len(output_signatures(tool.ws / "out"))
            row.killed = {"limit_s": exc.limit, "done": done, "of": size}
            tool.stopped = f"killed in {phase}"
            self.killed_at.setdefault(tool.name, size)
            self.notes.append(
                f"{tool.name} @ {size}: {phase} killed after {exc.limit:g} s ({done} of {size})"
            )
            return
        row.times.append(timing.seconds)
        row.rss_mb.append(timing.rss_mb)
        row.rewritten.append(count_rewritten(before, output_signatures(tool.ws / "out")))

    def get(self, size: int, tool: str, phase: str) -> float | None:
        row = self.rows.get((size, tool, phase))
        return row.median if row else None

    def peak_rss(self, size: int, tool: str) -> float | None:
        peaks = [r.peak_rss for (s, t, _), r in self.rows.items() if s == size and t == tool and r.rss_mb]
        return max(p for p in peaks if p is not None) if peaks else None
