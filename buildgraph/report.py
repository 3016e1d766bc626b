"""Progress reporting: the engine emits events, a `Reporter` renders them (doit's reporter pattern).

Events, in the order a run emits them (any may come from a worker thread):

    plan(steps)                         once: [(stage, action, reasons)], action = skip | run |
                                        restore | build | blocked
    start(stage, action, reasons=None)  a step begins: run | restore | build; `reasons`
                                        (why, as decided now) default to the plan's
    line(stage, text)                   one line of a running step's output
    finish(stage, status, duration,     a step ends: done | cached (restored) | skipped (up to
           detail="", log="")           date) | failed | cancelled | cutoff (early cutoff: its
                                        upstream reproduced identical outputs) | blocked (an
                                        upstream failed); `detail` says why ("exit 1", "timed
                                        out after 30s"), `log` where the output is kept
    notice(text)                        anything else worth saying ("waiting for the lock …")
    summary(counts, duration)           once: {status: number of steps}
    close()                             always, last

Implementations: `PlainReporter` (logs, CI, pipes), `RichReporter` (a live table on a
terminal), `JsonReporter` (one JSON object per line, for tools). `make_reporter` picks one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:  # rich is imported lazily: `bg status` must start fast
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.text import Text

Step = tuple[str, str, list[str]]  # (stage, action, reasons)
STATUSES = ("done", "cached", "skipped", "cutoff", "failed", "blocked", "cancelled")
_SUMMARY_WORDS = {
    "done": "ran",
    "cached": "restored",
    "skipped": "up to date",
    "cutoff": "cut off early",
    "failed": "failed",
    "blocked": "blocked",
    "cancelled": "cancelled",
}
TAIL_LINES = 20  # output lines shown with a failure whose output was not shown as it ran


class Reporter(Protocol):
    def plan(self, steps: list[Step]) -> None: ...
    def start(self, stage: str, action: str, reasons: Sequence[str] | None = None) -> None: ...
    def line(self, stage: str, text: str) -> None: ...
    def finish(self, stage: str, status: str, duration: float, detail: str = "", log: str = "") -> None: ...
    def notice(self, text: str) -> None: ...
    def summary(self, counts: Mapping[str, int], duration: float) -> None: ...
    def close(self) -> None: ...


# --- wording shared by the human reporters ----------------------------------------------


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def start_message(action: str, reasons: Sequence[str]) -> str:
    return f"{action}: {'; '.join(reasons)}" if reasons else action


def finish_message(status: str, duration: float, detail: str = "", log: str = "") -> str:
    """What a finished step says after its stage name; "" for a silent up-to-date skip."""
    took = format_duration(duration)
    if status == "failed":
        return "FAILED" + (f" ({detail})" if detail else "") + (f" — log: {log}" if log else "")
    if status == "skipped":
        return f"skipped: {detail}" if detail else ""
    if status == "cutoff":
        return f"up to date: {detail or 'upstream outputs unchanged'}"
    words = {
        "done": f"done in {took}",
        "cached": "restored from cache",
        "cancelled": f"cancelled after {took}",
    }
    text = words.get(status, status)
    return f"{text}: {detail}" if detail else text


def summary_message(counts: Mapping[str, int], duration: float) -> str:
    known = [f"{counts[s]} {_SUMMARY_WORDS[s]}" for s in STATUSES if counts.get(s)]
    extra = [f"{n} {status}" for status, n in sorted(counts.items()) if status not in STATUSES and n]
    parts = known + extra
    return f"{', '.join(parts) if parts else 'nothing to do'} in {format_duration(duration)}"


# --- plain lines ------------------------------------------------------------------------


class PlainReporter:
    """One line per event, every line prefixed with its stage: readable when stages interleave.

    Output lines are always prefixed (`[train] loss 0.3`), so a CI log stays greppable
    even with `-j 4`. `quiet` prints only failures (with the last lines of their output)
    and the summary.
    """

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream, self.quiet = stream, quiet
        self._lock = threading.Lock()
        self._reasons: dict[str, list[str]] = {}
        self._tails: dict[str, deque[str]] = {}

    def plan(self, steps: list[Step]) -> None:
        with self._lock:
            self._reasons.update((stage, list(reasons)) for stage, _, reasons in steps)

    def start(self, stage: str, action: str, reasons: Sequence[str] | None = None) -> None:
        if not self.quiet:
            why = self._reasons.get(stage, []) if reasons is None else reasons
            self._write(f"[{stage}] {start_message(action, why)}")

    def line(self, stage: str, text: str) -> None:
        if self.quiet:
            with self._lock:
                self._tails.setdefault(stage, deque(maxlen=TAIL_LINES)).append(text)
        else:
            self._write(f"[{stage}] {text}")

    def finish(self, stage: str, status: str, duration: float, detail: str = "", log: str = "") -> None:
        message = finish_message(status, duration, detail, log)
        with self._lock:
            tail = self._tails.pop(stage, ())
        if status == "failed":
            self._write(*(f"[{stage}] {text}" for text in tail), f"[{stage}] {message}")
        elif message and not self.quiet:
            self._write(f"[{stage}] {message}")

    def notice(self, text: str) -> None:
        if not self.quiet:
            self._write(f"bg: {text}")

    def summary(self, counts: Mapping[str, int], duration: float) -> None:
        self._write(f"bg: {summary_message(counts, duration)}")

    def close(self) -> None:
        with self._lock:
            self.stream.flush()

    def _write(self, *lines: str) -> None:
        with self._lock:  # one write per event: lines of parallel stages never tear
            self.stream.write("".join(f"{line}\n" for line in lines))
            self.stream.flush()


# --- JSON lines -------------------------------------------------------------------------


class JsonReporter:
    """One compact JSON object per event per line: `{"event":"finish","stage":"train",…}`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._reasons: dict[str, list[str]] = {}

    def plan(self, steps: list[Step]) -> None:
        rows = [{"stage": s, "action": a, "reasons": list(r)} for s, a, r in steps]
        self._reasons.update((s, list(r)) for s, _, r in steps)
        self._emit("plan", steps=rows)

    def start(self, stage: str, action: str, reasons: Sequence[str] | None = None) -> None:
        why = self._reasons.get(stage, []) if reasons is None else list(reasons)
        self._emit("start", stage=stage, action=action, reasons=why)

    def line(self, stage: str, text: str) -> None:
        self._emit("line", stage=stage, text=text)

    def finish(self, stage: str, status: str, duration: float, detail: str = "", log: str = "") -> None:
        self._emit("finish", stage=stage, status=status, duration=round(duration, 3), detail=detail, log=log)

    def notice(self, text: str) -> None:
        self._emit("notice", text=text)

    def summary(self, counts: Mapping[str, int], duration: float) -> None:
        self._emit("summary", counts=dict(sorted(counts.items())), duration=round(duration, 3))

    def close(self) -> None:
        with self._lock:
            self.stream.flush()

    def _emit(self, event: str, **fields: Any) -> None:
        text = json.dumps({"event": event, **fields}, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()


# --- live table -------------------------------------------------------------------------

_STYLES = {
    "done": "green",
    "cached": "cyan",
    "cutoff": "green",
    "failed": "bold red",
    "blocked": "yellow",
    "cancelled": "yellow",
}
_SYMBOLS = {"done": "✓", "cached": "↺", "cutoff": "=", "failed": "✗", "blocked": "-", "cancelled": "-"}


@dataclass
class _Row:
    state: str  # queued | blocked | running | one of STATUSES
    action: str = ""
    started: float = 0.0
    duration: float = 0.0
    last_line: str = ""
    unshown_lines: int = 0  # output lines that went only to the table, not to the terminal
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))


class RichReporter:
    """A live table of steps (~8 Hz) with finished steps, notices and output printed above it.

    The table is transient: when the run ends it disappears and the permanent lines
    (one per finished step, failures with the tail of their output, the summary) are
    what stays in the terminal. While exactly one step runs, its output streams above
    the table; with several, each shows only its last line in the table.

    Rich's refresh thread holds the Live lock while it calls `_render`, which takes ours;
    so no method prints while holding ours (that order would deadlock).
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._reasons: dict[str, list[str]] = {}
        self._live: Live | None = None
        self._live_lock = threading.Lock()  # guards starting/stopping the display, never held while rendering
        self._closed = False
        self._started = time.monotonic()

    def plan(self, steps: list[Step]) -> None:
        with self._lock:
            for stage, action, reasons in steps:
                state = {"skip": "skipped", "blocked": "blocked"}.get(action, "queued")
                self._rows[stage] = _Row(state, action)
                self._reasons[stage] = list(reasons)
        self._ensure_live()

    def start(self, stage: str, action: str, reasons: Sequence[str] | None = None) -> None:
        with self._lock:
            row = self._rows.setdefault(stage, _Row("queued"))
            row.state, row.action, row.started = "running", action, time.monotonic()
            why = self._reasons.get(stage, []) if reasons is None else reasons
        self._ensure_live()
        self._print(self._labelled(stage, start_message(action, why), "dim"))

    def line(self, stage: str, text: str) -> None:
        with self._lock:
            row = self._rows.setdefault(stage, _Row("running"))
            row.last_line = text
            row.tail.append(text)
            stream = sum(r.state == "running" for r in self._rows.values()) == 1 and row.state == "running"
            row.unshown_lines += not stream
        if stream:
            self._print(self._labelled(stage, text, ""))

    def finish(self, stage: str, status: str, duration: float, detail: str = "", log: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(stage, _Row(status))
            row.state, row.duration = status, duration
            tail = list(row.tail) if status == "failed" and row.unshown_lines else []
            row.tail.clear()
        message = finish_message(status, duration, detail, log)
        texts = [self._labelled(stage, text, "") for text in tail]
        if message:
            texts.append(self._finished(stage, status, message))
        if texts:
            self._print(*texts)  # one print: the live table is never drawn between them

    def notice(self, text: str) -> None:
        from rich.text import Text

        self._print(Text(f"bg: {text}", style="yellow"))

    def summary(self, counts: Mapping[str, int], duration: float) -> None:
        from rich.text import Text

        failed = counts.get("failed", 0) > 0
        self._print(Text(f"bg: {summary_message(counts, duration)}", style="bold red" if failed else "bold"))

    def close(self) -> None:
        with self._live_lock:
            live, self._live, self._closed = self._live, None, True
        if live is not None:
            refresher = live._refresh_thread  # rich's stop() only signals it: join it, so none outlives us
            live.stop()
            if refresher is not None:
                refresher.join(timeout=5)

    def _ensure_live(self) -> None:
        from rich.live import Live

        with self._live_lock:
            if self._live is not None or self._closed:  # a late event after close() just prints
                return
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()

    def _print(self, *texts: RenderableType) -> None:
        self.console.print(*texts, sep="\n", highlight=False, soft_wrap=True)

    def _labelled(self, stage: str, text: str, style: str) -> Text:
        from rich.text import Text

        return Text.assemble((f"[{stage}] ", "dim"), (text, style))

    def _finished(self, stage: str, status: str, message: str) -> Text:
        from rich.text import Text

        style = _STYLES.get(status, "")
        return Text.assemble((f"{_SYMBOLS.get(status, '?')} ", style), (stage, "bold"), f" {message}")

    def _render(self) -> RenderableType:
        with self._lock:
            rows = [
                (stage, row.state, row.started, row.duration, row.last_line)
                for stage, row in self._rows.items()
            ]
        return _table(rows, time.monotonic(), time.monotonic() - self._started, self.console.height)


def _table(
    rows: list[tuple[str, str, float, float, str]], now: float, elapsed: float, height: int
) -> RenderableType:
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    shown = [r for r in rows if r[1] != "skipped"]
    limit = max(height - 3, 3)
    if len(shown) > limit:  # running and failed steps first, then those still to come
        order = {"running": 0, "failed": 1, "queued": 2, "blocked": 3}
        shown = sorted(shown, key=lambda r: order.get(r[1], 4))[:limit]
    table = Table.grid(padding=(0, 1))
    table.add_column(width=1)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis")
    for stage, state, started, duration, last_line in shown:
        if state == "running":
            symbol: Any = Spinner("dots", style="cyan")
            info = Text.assemble((format_duration(now - started), "cyan"), " ", (last_line, "dim"))
        else:
            symbol = Text(_SYMBOLS.get(state, "○"), style=_STYLES.get(state, "dim"))
            info = Text(state if state in ("queued", "blocked") else f"{state} {format_duration(duration)}")
        table.add_row(symbol, Text(stage, style="bold"), info)
    counts = {state: sum(r[1] == state for r in rows) for state in ("running", "queued", "skipped")}
    footer = ", ".join(f"{n} {s.replace('skipped', 'up to date')}" for s, n in counts.items() if n)
    return Group(table, Text(f"{footer or 'idle'} · {format_duration(elapsed)}", style="dim"))


def make_reporter(stream: TextIO, quiet: bool = False, json: bool = False) -> Reporter:
    """JSON lines if asked; a live table on an interactive terminal; plain lines otherwise."""
    if json:
        return JsonReporter(stream)
    if not quiet and _is_interactive(stream):
        from rich.console import Console

        return RichReporter(Console(file=stream))
    return PlainReporter(stream, quiet=quiet)


def _is_interactive(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
