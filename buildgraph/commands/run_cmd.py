"""`bg run [TARGET…]`: bring the targets up to date, running only what changed."""

from __future__ import annotations

import argparse
import os

from buildgraph.commands._common import add, add_targets, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text, add_help=False)
    add_targets(p, "bring up to date")
    p.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="steps run at once (default: cores)"
    )
    p.add_argument(
        "-k", "--keep-going", action="store_true", help="after a failure, run every independent stage"
    )
    p.add_argument(
        "--force", action="append", default=[], metavar="STAGE", help="run STAGE even if up to date"
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="show what would run, run nothing")
    p.add_argument("--executor", choices=["auto", "local", "docker"], help="where run stages execute")
    p.add_argument("--json", action="store_true", help="emit one JSON event per line")
    p.add_argument(
        "--pull", action="store_true", help="ask the registry again for the digests of base images"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="rerun the targets (which have a cached result) and fail if an output differs; store nothing",
    )
    p.add_argument("--report", metavar="DIR", help="with --check: write DIR/audit.md and the diff images")


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session
    from buildgraph.errors import StageFailed, UsageError

    project = load_project(ns)
    targets = check_targets(project, ns.targets)
    check_targets(project, ns.force)
    if ns.jobs < 1:
        raise UsageError(f"-j {ns.jobs}: expected at least 1")
    if ns.check:
        return _check(project, targets, ns)
    if ns.report:
        raise UsageError("--report goes with --check (or `bg audit --report DIR`)")
    if ns.dry_run:
        from buildgraph.commands.status_cmd import show

        with Session(project, ns, shared=True) as session:
            return show(session.engine().status(targets), ns.json)
    _sigterm_interrupts()
    with Session(project, ns) as session:
        engine = session.engine()
        summary = engine.run(targets)
        session.reporter.summary(summary.counts(), summary.duration)
        session.show_metrics(summary)
        from buildgraph.commands.stamp import after_run

        after_run(ns, project, engine, targets, summary)  # a null run: the next one is a stat per path
    if summary.failed:
        first = summary.outcomes[summary.failed[0]]
        more = f" (and {len(summary.failed) - 1} more)" if len(summary.failed) > 1 else ""
        log = f" — log: {first.log_path}" if first.log_path else ""
        raise StageFailed(
            f"stage '{first.stage}' failed{more}: {first.error}{log}",
            hint=first.hint or "fix it and run `bg run` again; completed stages are kept",
        )
    return 0


def _check(project: object, targets: list[str], ns: argparse.Namespace) -> int:
    """`bg run --check STAGE…` (nix build --check): each target rerun against the cached result of
    its current key, in a scratch area; nothing is stored. An audit with other subjects."""
    from buildgraph.audit.subjects import checked_subjects
    from buildgraph.commands.audit_cmd import audit_and_report, quiet_progress
    from buildgraph.commands.session import Session
    from buildgraph.errors import UsageError

    if not targets:
        raise UsageError("--check needs the stages to check", hint="for example `bg run --check train`")
    spec = project.spec  # type: ignore[attr-defined]
    images = [t for t in targets if getattr(spec.stages[t], "kind", "") != "run"]
    if images:
        raise UsageError(f"--check reruns run stages; '{images[0]}' is an image stage")
    _sigterm_interrupts()
    with Session(project, ns, shared=True) as session:  # type: ignore[arg-type]
        quiet_progress(session, ns)
        engine = session.engine()
        decided = {d.stage: d for d in engine.status(targets)}
        keys = {t: decided[t].key for t in targets}
        subjects = checked_subjects(spec, keys, session.ws.cache)
        executor = "docker" if engine.ctx.options.in_images else "local"
        return audit_and_report(session, engine.lock, subjects, ns, executor)


def _sigterm_interrupts() -> None:
    """Treat SIGTERM (docker stop, CI cancel, kill) like Ctrl-C: stop jobs, keep completed stages."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
