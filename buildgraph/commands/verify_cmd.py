"""`bg verify [--repair]`: re-hash the cache's objects and the workspace outputs against the
lock and the run manifests; exit 1 when anything is wrong. `--repair` makes it good again."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from buildgraph.commands._common import Project, add, load_project

if TYPE_CHECKING:
    from buildgraph.audit.verify import Report
    from buildgraph.commands.session import Session


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument(
        "--repair",
        action="store_true",
        help="move damaged objects aside, restore outputs from the cache, run again what cannot be "
        "restored (with the Buildfile's values: pass the --param/--arg you ran with)",
    )
    p.add_argument("--json", action="store_true", help="print the findings as one JSON object")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session

    project = load_project(ns)
    if ns.repair:
        return _repair(project, ns)
    ns.quiet = True
    with Session(project, ns, shared=True) as session:
        report = _check(session, fresh_cache=True)
    _show(report, ns.json)
    return 1 if report.problems else 0


def _check(session: Session, fresh_cache: bool = False) -> Report:
    from buildgraph.audit.verify import check
    from buildgraph.lockfile import current
    from buildgraph.stores.cache import ArtefactCache

    ws = session.ws
    # the check only reads: a cache of its own, never closed, so not even objects.db is opened
    cache = ArtefactCache(ws.state / "cache") if fresh_cache else ws.cache
    lock = current(ws.lock_path, ws.journal_path)
    return check(ws.root, cache, lock, session.project.spec.stages)  # type: ignore[attr-defined]


def _repair(project: Project, ns: argparse.Namespace) -> int:
    from buildgraph.audit.repair import repair
    from buildgraph.commands.session import Session

    summary = None
    with Session(project, ns) as session:
        found = _check(session)
        if not ns.json:  # what was found, before the rerun's progress
            sys.stdout.write(render(found))
        ws = session.ws
        aside = ws.state / "damaged" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        fixed = repair(found, ws.cache, ws.root, aside, project.spec.link, ws.remember)  # type: ignore[attr-defined]
        if fixed.rerun:
            ns.force = fixed.rerun  # the engine stores their objects and manifests anew
            summary = session.engine().run(fixed.rerun)
        after = _check(session)
    ran = [name for name in fixed.rerun if summary is not None and name not in summary.failed]
    fixed.done += [_rerun_line(name, found, after) for name in ran]
    _show_repair(found, fixed.done, after, ns.json)
    if summary is not None and summary.failed:
        _stage_failed(summary)
    return 1 if after.problems else 0


def _rerun_line(name: str, found: Report, after: Report) -> str:
    """Say so when the rerun is not the recorded run made again: other values, other inputs."""
    now = after.entries.get(name)
    if now is None or now.key == found.entries[name].key:
        return f"ran {name} again"
    return (
        f"ran {name} again, under a new key: its params, args or inputs are not those Buildfile.lock"
        " recorded (pass the --param/--arg it ran with)"
    )


def _stage_failed(summary: Any) -> None:
    from buildgraph.errors import StageFailed

    first = summary.outcomes[summary.failed[0]]
    log = f" — log: {first.log_path}" if first.log_path else ""
    raise StageFailed(
        f"stage '{first.stage}' failed while repairing: {first.error}{log}",
        hint=first.hint or "fix it, then `bg verify --repair` again",
    )


# ---------------------------------------------------------------- showing
def _show(report: Report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(report))


def _show_repair(found: Report, done: list[str], after: Report, as_json: bool) -> None:
    """What was done and what the check says now (what was found is shown already, but in JSON:
    one line holding it all, after the JSON events of any rerun)."""
    if as_json:
        document = {**found.as_dict(), "repaired": done, "after": after.as_dict()}
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
        return
    sys.stdout.write("".join(f"repair: {line}\n" for line in done))
    sys.stdout.write(render(after, summary=False) + f"after repair: {summary_line(after)}\n")


def render(report: Report, summary: bool = True) -> str:
    """One aligned row per problem (what, name, kind, where, detail), then the summary line."""
    rows = [
        (p.subject, _short(p.name), p.kind, p.stage or ", ".join(p.used_by) or "-", p.detail)
        for p in report.problems
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + f"  {r[4]}" for r in rows]
    if summary:
        lines.append(summary_line(report))
    return "".join(f"{line}\n" for line in lines)


def summary_line(report: Report) -> str:
    count = len(report.problems)
    found = f"{count:,} problem{'s' if count != 1 else ''}" if count else "no problems"
    return (
        f"checked {report.objects:,} objects ({_size(report.bytes)}), {report.manifests:,} run records "
        f"and {report.outputs:,} workspace outputs: {found}"
    )


def _short(name: str) -> str:
    return f"{name[:12]}…" if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else name


def _size(n: float) -> str:
    """Decimal units, as disks are sold: 3.2 GB."""
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            break
        n /= 1000
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
