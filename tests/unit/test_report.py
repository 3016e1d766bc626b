"""Reporters: exact plain and JSON output, a rich live table that renders, the factory's choice."""

from __future__ import annotations

import io
import json
import re
import threading

import pytest
from rich.console import Console
from rich.live import _RefreshThread

from buildgraph.report import (
    JsonReporter,
    PlainReporter,
    Reporter,
    RichReporter,
    format_duration,
    make_reporter,
    summary_message,
)

PLAN = [
    ("prepare", "skip", []),
    ("train", "run", ["input stages/train.py changed", "param epochs 2→3"]),
    ("eval", "run", ["upstream output changed"]),
    ("plot", "restore", ["never built"]),
]


def play(reporter: Reporter) -> None:
    """A run: prepare up to date, train runs, plot restored, eval fails, report cut off."""
    reporter.plan(PLAN)
    reporter.finish("prepare", "skipped", 0.0)
    reporter.start("train", "run")
    reporter.line("train", "epoch 1 loss 0.9")
    reporter.line("train", "epoch 2 loss 0.4")
    reporter.finish("train", "done", 3.24)
    reporter.start("plot", "restore")
    reporter.finish("plot", "cached", 0.05)
    reporter.start("eval", "run", ["image rebuilt"])
    reporter.line("eval", "Traceback: boom")
    reporter.finish("eval", "failed", 1.0, "exit 1", ".bg/logs/eval.log")
    reporter.finish("report", "blocked", 0.0, "upstream eval failed")
    reporter.finish("summary", "cutoff", 0.0)
    reporter.notice("metrics: acc 0.91")
    reporter.summary({"done": 1, "cached": 1, "skipped": 1, "failed": 1, "blocked": 1, "cutoff": 1}, 75.5)
    reporter.close()


def test_plain_reporter_lines() -> None:
    out = io.StringIO()
    play(PlainReporter(out))
    assert out.getvalue() == (
        "[train] run: input stages/train.py changed; param epochs 2→3\n"
        "[train] epoch 1 loss 0.9\n"
        "[train] epoch 2 loss 0.4\n"
        "[train] done in 3.2s\n"
        "[plot] restore: never built\n"
        "[plot] restored from cache\n"
        "[eval] run: image rebuilt\n"
        "[eval] Traceback: boom\n"
        "[eval] FAILED (exit 1) — log: .bg/logs/eval.log\n"
        "[report] blocked: upstream eval failed\n"
        "[summary] up to date: upstream outputs unchanged\n"
        "bg: metrics: acc 0.91\n"
        "bg: 1 ran, 1 restored, 1 up to date, 1 cut off early, 1 failed, 1 blocked in 1m15s\n"
    )


def test_plain_quiet_prints_failures_with_their_output_and_the_summary() -> None:
    out = io.StringIO()
    play(PlainReporter(out, quiet=True))
    assert out.getvalue() == (
        "[eval] Traceback: boom\n"
        "[eval] FAILED (exit 1) — log: .bg/logs/eval.log\n"
        "bg: 1 ran, 1 restored, 1 up to date, 1 cut off early, 1 failed, 1 blocked in 1m15s\n"
    )


def test_plain_lines_from_threads_never_tear() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)

    def chatter(stage: str) -> None:
        for i in range(200):
            reporter.line(stage, f"line {i}")

    threads = [threading.Thread(target=chatter, args=(f"s{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1200 and all(re.fullmatch(r"\[s\d\] line \d+", line) for line in lines)
    assert [line for line in lines if line.startswith("[s3]")] == [f"[s3] line {i}" for i in range(200)]


def test_json_reporter_events() -> None:
    out = io.StringIO()
    play(JsonReporter(out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == (
        ["plan", "finish", "start", "line", "line", "finish", "start", "finish", "start", "line"]
        + ["finish", "finish", "finish", "notice", "summary"]
    )
    assert events[0]["steps"][1] == {"stage": "train", "action": "run", "reasons": PLAN[1][2]}
    assert out.getvalue().splitlines()[2] == (
        '{"event":"start","stage":"train","action":"run",'
        '"reasons":["input stages/train.py changed","param epochs 2→3"]}'
    )
    assert events[8]["reasons"] == ["image rebuilt"]
    assert events[10] == {
        "event": "finish",
        "stage": "eval",
        "status": "failed",
        "duration": 1.0,
        "detail": "exit 1",
        "log": ".bg/logs/eval.log",
    }
    assert events[-1]["counts"]["failed"] == 1 and events[-1]["duration"] == 75.5


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0.0s"), (3.24, "3.2s"), (59.9, "59.9s"), (75.5, "1m15s"), (7325, "2h02m")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_summary_message() -> None:
    assert summary_message({}, 0.01) == "nothing to do in 0.0s"
    assert summary_message({"skipped": 3, "done": 0, "weird": 2}, 1) == "3 up to date, 2 weird in 1.0s"


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", text)


def test_rich_reporter_renders_stages() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, height=30)
    reporter = RichReporter(console)
    play(reporter)
    text = strip_ansi(buffer.getvalue())
    # close() joined its own refresh thread (other tests' threads are none of our business)
    ours = [t for t in threading.enumerate() if isinstance(t, _RefreshThread) and t.live.console is console]
    assert not ours
    for expected in (
        "[train] run: input stages/train.py changed; param epochs 2→3",
        "[train] epoch 2 loss 0.4",  # the only running stage: its output streams
        "✓ train done in 3.2s",
        "↺ plot restored from cache",
        "✗ eval FAILED (exit 1) — log: .bg/logs/eval.log",
        "bg: 1 ran, 1 restored, 1 up to date, 1 cut off early, 1 failed, 1 blocked in 1m15s",
    ):
        assert expected in text


def test_rich_reporter_shows_parallel_output_in_the_table_and_the_tail_on_failure() -> None:
    buffer = io.StringIO()
    reporter = RichReporter(Console(file=buffer, force_terminal=True, width=100, height=30))
    reporter.plan([("a", "run", []), ("b", "run", [])])
    reporter.start("a", "run")
    reporter.start("b", "run")
    reporter.line("b", "b says hi")
    rendered = io.StringIO()
    Console(file=rendered, width=100).print(reporter._render())
    reporter.finish("b", "failed", 0.5, "exit 2")
    reporter.close()
    table = rendered.getvalue()
    assert "a" in table and "b says hi" in table and "2 running" in table
    text = strip_ansi(buffer.getvalue())
    assert "[b] b says hi\n✗ b FAILED (exit 2)" in text  # not streamed while a ran: shown with the failure


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_reporter_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(make_reporter(io.StringIO(), quiet=False, json=False), PlainReporter)
    assert isinstance(make_reporter(Terminal(), quiet=False, json=True), JsonReporter)
    assert isinstance(make_reporter(Terminal(), quiet=True, json=False), PlainReporter)
    rich_reporter = make_reporter(Terminal(), quiet=False, json=False)
    assert isinstance(rich_reporter, RichReporter)
    rich_reporter.close()
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_reporter(Terminal(), quiet=False, json=False), PlainReporter)
