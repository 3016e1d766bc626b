"""An audit report for people: the terminal table, the explanations under it, the Markdown report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from buildgraph.audit.results import FAILED, UNAUDITED, AuditReport, OutputAudit, StageAudit

_STYLE = {"identical": "green", "differs": "red bold", "failed": "red bold", "unaudited": "yellow"}


def rows(report: AuditReport) -> Iterator[tuple[str, str, str, str]]:
    """(stage, output, result, explanation), one per output; one per stage that did not rerun."""
    for s in report.stages:
        if s.verdict in (FAILED, UNAUDITED):
            yield s.stage, "", s.verdict, s.error
            continue
        for o in s.outputs:
            yield s.stage, o.path, _result(o), _summary(o)


def _result(o: OutputAudit) -> str:
    return "identical" if o.identical else "differs"


def _summary(o: OutputAudit) -> str:
    if o.identical:
        return ""
    text = o.difference.summary if o.difference is not None else o.note
    if o.only_varied:
        text = f"only under --vary: {text}"
    return text


def table(report: AuditReport) -> Any:
    """A rich Table of the rows."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("stage", "output", "result", "explanation"):
        grid.add_column(column, overflow="fold")
    for stage, path, result, why in rows(report):
        grid.add_row(stage, path, Text(result, style=_STYLE.get(result, "")), why)
    return grid


def plain_table(report: AuditReport) -> list[str]:
    """The rows as aligned text lines, for a pipe or a log (no colours, no trailing blanks)."""
    table_rows = [("stage", "output", "result", "explanation"), *rows(report)]
    widths = [max(len(r[i]) for r in table_rows) for i in range(3)]
    return [
        "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(r)).rstrip()
        for r in table_rows
    ]


def notes(report: AuditReport, explain: bool = True) -> list[str]:
    """The lines under the table: environments, variation, explanations (unless not `explain`),
    where things are kept."""
    lines: list[str] = []
    for s in report.stages:
        lines += _stage_notes(s, explain)
    if report.varied:
        lines.append(f"varied: {', '.join(report.varied)}")
        off = "; ".join(f"{k} ({why})" for k, why in sorted(report.not_varied.items()))
        if off:
            lines.append(f"not varied: {off}")
    if report.kept:
        lines.append(f"the rerun's outputs and logs are kept in {report.kept}/ (delete it when done)")
    return lines


def _stage_notes(s: StageAudit, explain: bool) -> list[str]:
    lines = []
    if s.environment:
        lines.append(f"{s.stage}: environment differs: {s.environment}")
    if s.changed:
        lines.append(
            f"{s.stage}: the Buildfile changed its {', '.join(s.changed)} since the recorded run; "
            "the recorded one was rerun"
        )
    if s.verdict in (FAILED, UNAUDITED) and s.hint:
        lines.append(f"{s.stage}: hint: {s.hint}" + (f" (log: {s.log})" if s.log else ""))
    for o in s.outputs if explain else ():
        if o.difference is None or o.identical:
            continue
        lines.append(f"{s.stage}: {o.path} ({o.difference.kind}):")
        lines += [f"    {line}" for line in _details(o.difference)]
        if o.only_varied:
            lines.append(f"    identical without variation: caused by a varied knob ({', '.join(s.varied)})")
    return lines


def _details(difference: Any, depth: int = 0) -> Iterator[str]:
    pad = "  " * depth
    for line in difference.details:
        yield f"{pad}{line}"
    for child in difference.children:
        yield f"{pad}{child.path} ({child.kind}): {child.summary}"
        yield from _details(child, depth + 1)


def verdict_line(report: AuditReport, duration: float) -> str:
    outputs = sum(len(s.outputs) for s in report.stages)
    stages = len(report.stages)
    if report.reproduced:
        counted = f"{_count(stages, 'stage')}, {_count(outputs, 'output')}"
        return f"every output reproduced bit for bit ({counted}) in {duration:.1f}s"
    bad = report.not_reproduced()
    if bad:
        return f"not reproducible: {', '.join(bad)}"
    return f"not audited: {', '.join(s.stage for s in report.unaudited)}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def markdown(report: AuditReport, duration: float) -> str:
    """The report folder's audit.md: the table, then each explanation, diff images inline."""
    out = ["# bg audit", "", verdict_line(report, duration), ""]
    out += ["| stage | output | result | explanation |", "|---|---|---|---|"]
    for stage, path, result, why in rows(report):
        shown = f"`{path}`" if path else ""
        out.append(f"| {stage} | {shown} | {result} | {_cell(why)} |")
    out.append("")
    for s in report.stages:
        for o in s.outputs:
            if o.difference is None or o.identical:
                continue
            out += [f"## {s.stage}: `{o.path}` ({o.difference.kind})", "", "```"]
            out += list(_details(o.difference))
            out += ["```", ""]
            out += [f"![{name}]({name})" for name in _files(o.difference)]
            out.append("")
    rest = notes(report, explain=False)
    if rest:
        out += ["## Notes", ""] + [f"- {line}" for line in rest] + [""]
    return "\n".join(out)


def _files(difference: Any) -> Iterator[str]:
    yield from difference.files
    for child in difference.children:
        yield from _files(child)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
