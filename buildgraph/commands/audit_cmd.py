"""`bg audit [TARGET…]`: rerun recorded stages with their recorded inputs; prove the outputs
identical, or say exactly what differs. Also the engine of `bg run --check`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from buildgraph.commands._common import add, add_targets, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(
        sub,
        common,
        name,
        help_text,
        description="Rerun run stages in a scratch area, each with the inputs its recorded result read "
        "(from the project or the cache, by digest), and compare every output with the recorded digest. "
        "The workspace, Buildfile.lock and the cache are never changed. "
        "Exit status: 0 every output reproduced, 1 something did not (named), 2 usage, "
        "3 a stage could not be audited here.",
        add_help=False,
    )
    add_targets(p, "audit")
    add_audit_options(p)
    p.add_argument(
        "--vary",
        action="store_true",
        help="rerun under another working directory path, time zone, locale, umask, hostname "
        "(containers), clock (libfaketime) and PYTHONHASHSEED",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the scratch area (.bg/audit/…) even when all reproduced"
    )
    p.add_argument(
        "--executor", choices=["local", "docker"], help="rerun here instead of where each result was recorded"
    )


def add_audit_options(p: argparse.ArgumentParser) -> None:
    """What `bg audit` and `bg run --check` share."""
    p.add_argument("--report", metavar="DIR", help="write DIR/audit.md, DIR/audit.json and the diff images")
    if not any(a.dest == "json" for a in p._actions):
        p.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    if not any(a.dest == "jobs" for a in p._actions):
        p.add_argument("-j", "--jobs", type=int, default=1, help="stages rerun at once (default 1)")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.audit.subjects import recorded_subjects
    from buildgraph.commands.session import Session
    from buildgraph.lockfile import current

    project = load_project(ns)
    targets = check_targets(project, ns.targets)
    with Session(project, ns, shared=True) as session:
        quiet_progress(session, ns)
        lock = current(session.ws.lock_path, session.ws.journal_path)
        subjects = recorded_subjects(project.spec, lock, session.ws.cache, targets)  # type: ignore[arg-type]
        return audit_and_report(session, lock, subjects, ns, ns.executor or "", vary=ns.vary, keep=ns.keep)


def quiet_progress(session: Any, ns: argparse.Namespace) -> None:
    """Progress goes to stderr (stdout is the table or the JSON document), and -q quiets it."""
    from buildgraph.report import make_reporter

    if ns.quiet:
        session.reporter.close()
        session.reporter = make_reporter(sys.stderr, quiet=True)


def audit_and_report(
    session: Any,
    lock: Any,
    subjects: list[Any],
    ns: argparse.Namespace,
    executor: str,
    vary: bool = False,
    keep: bool = False,
) -> int:
    """Audit `subjects`, print the table (or JSON), write the report; the exit status."""
    from buildgraph.audit.runner import AuditOptions, Auditor
    from buildgraph.errors import UsageError

    if ns.jobs < 1:
        raise UsageError(f"-j {ns.jobs}: expected at least 1")
    report_dir = Path(ns.report).resolve() if ns.report else None
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
    options = AuditOptions(jobs=ns.jobs, vary=vary, executor=executor, report_dir=report_dir, keep=keep)
    executors = _Executors(session.project.spec)
    started = time.monotonic()
    try:
        auditor = Auditor(
            session.ws,
            session.project.spec,
            session.project.graph,
            lock,
            session.ws.cache,
            session.reporter,
            executors.get,
            executors.image_backend,
            options,
        )
        report = auditor.audit(subjects)
    finally:
        executors.close()
    duration = time.monotonic() - started
    session.reporter.close()  # the live progress ends before the table is printed
    _show(report, duration, ns.json)
    if report_dir is not None:
        _write_report(report, duration, report_dir)
    if not report.reproduced:
        return 1 if report.not_reproduced() else 3
    return 0


class _Executors:
    """One executor per name, made when first asked (an audit of host stages never asks Docker)."""

    def __init__(self, spec: Any) -> None:
        self.spec, self.made = spec, {}

    def get(self, name: str) -> Any:
        if name not in self.made:
            from buildgraph.executors.choice import choose_executor

            self.made[name] = choose_executor(name, self.spec)
        return self.made[name]

    def image_backend(self) -> Any:
        from buildgraph.images.backend import DockerBackend

        docker = self.get("docker")
        return DockerBackend(lambda: docker.client, self.spec.name)

    def close(self) -> None:
        for executor in self.made.values():
            executor.close()


def _show(report: Any, duration: float, as_json: bool) -> None:
    from buildgraph.audit import render

    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if not sys.stdout.isatty():  # a pipe or a log: aligned plain lines
        lines = [
            *render.plain_table(report),
            *render.notes(report),
            f"bg: {render.verdict_line(report, duration)}",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False)
    console.print(render.table(report))
    for line in render.notes(report):
        console.print(line, markup=False)
    style = "green" if report.reproduced else "red bold"
    console.print(f"bg: {render.verdict_line(report, duration)}", style=style, markup=False)


def _write_report(report: Any, duration: float, folder: Path) -> None:
    from buildgraph.atomic import atomic_write_text
    from buildgraph.audit import render

    atomic_write_text(folder / "audit.md", render.markdown(report, duration), durable=False)
    atomic_write_text(folder / "audit.json", json.dumps(report.to_json(), indent=2) + "\n", durable=False)
    sys.stderr.write(f"bg: report written to {os.path.relpath(folder)}/audit.md\n")
