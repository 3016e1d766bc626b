"""`bg explain STAGE`: the decision for one stage in detail — keys, digests and values, old and new."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from buildgraph.commands._common import add, check_targets, load_project

if TYPE_CHECKING:
    from buildgraph.records import LockEntry


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--executor", choices=["auto", "local", "docker"])


def run(ns: argparse.Namespace) -> int:
    from buildgraph.commands.session import Session
    from buildgraph.core.spec import RunStage
    from buildgraph.engine import recorded
    from buildgraph.errors import UsageError

    project = load_project(ns)
    check_targets(project, [ns.stage])
    if not isinstance(project.spec.stages[ns.stage], RunStage):  # type: ignore[attr-defined]
        raise UsageError(
            f"'{ns.stage}' is an image stage", hint=f"`bg dockerfile {ns.stage}` shows what it builds"
        )
    ns.quiet = True
    with Session(project, ns, shared=True) as session:
        engine = session.engine()
        decisions = {d.stage: d for d in engine.status([ns.stage])}
        decision = decisions[ns.stage]
        _, material = engine.evaluate(ns.stage, ())
        locked = recorded.entry(engine.lock, ns.stage)
    report = explanation(decision, material, locked)
    if ns.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0


def explanation(decision: Any, material: dict[str, Any], recorded: LockEntry | None) -> dict[str, Any]:
    old = recorded.material if recorded is not None else {}
    return {
        "stage": decision.stage,
        "action": decision.action,
        "tentative": decision.tentative,
        "key": {"old": recorded.key if recorded is not None else None, "new": decision.key},
        "reasons": [r.as_dict() for r in decision.reasons],
        "inputs": _pairs(old.get("inputs", {}), material.get("inputs", {})),
        "params": _pairs(old.get("params", {}), material.get("params", {})),
        "command": {"old": old.get("command"), "new": material.get("command")},
        "environment": {"old": old.get("environment"), "new": material.get("environment")},
        "outputs": {p: dict(r) for p, r in recorded.outputs.items()} if recorded is not None else {},
    }


def _pairs(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"old": old.get(k), "new": new.get(k)} for k in sorted(set(old) | set(new))}


def _short(value: Any) -> str:
    if value is None:
        return "—"
    text = str(value)
    return text[:12] if len(text) == 64 else text


def render(report: dict[str, Any]) -> str:
    lines = [f"stage {report['stage']}: {report['action']}{' (tentative)' if report['tentative'] else ''}"]
    lines.append(f"  key       {_short(report['key']['old'])} → {_short(report['key']['new'])}")
    for reason in report["reasons"] or [{"text": "up to date"}]:
        lines.append(f"  because   {reason['text']}")
    if report["command"]["old"] not in (None, report["command"]["new"]):
        lines.append(f"  command   was: {report['command']['old']}")
    lines.append(f"  command   {report['command']['new']}")
    for section in ("inputs", "params"):
        for name, pair in report[section].items():
            mark = " " if pair["old"] == pair["new"] else "*"
            lines.append(f"{mark} {section[:-1]:<8} {name}: {_short(pair['old'])} → {_short(pair['new'])}")
    for path, rec in report["outputs"].items():
        lines.append(f"  output    {path}: {_short(rec.get('digest'))} ({rec.get('size', '?')} bytes)")
    return "\n".join(lines) + "\n"
