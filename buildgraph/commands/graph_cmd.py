"""`bg graph`: the stage graph as readable text, Graphviz dot, Mermaid or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from buildgraph.commands._common import add, check_targets, load_project


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("targets", nargs="*", metavar="TARGET", help="show only what these need")
    p.add_argument("--format", choices=["text", "dot", "mermaid", "json"], default="text")


def run(ns: argparse.Namespace) -> int:
    project = load_project(ns)
    targets = check_targets(project, ns.targets)
    graph, spec = project.graph, project.spec
    names = graph.closure(targets) if targets else graph.order()  # type: ignore[attr-defined]
    edges = [(u, n) for n in names for u in graph.upstreams(n) if u in names]  # type: ignore[attr-defined]
    render = {"text": text, "dot": dot, "mermaid": mermaid, "json": as_json}[ns.format]
    sys.stdout.write(render(spec, names, edges))
    return 0


def _kind(stage: Any) -> str:
    if stage.kind == "image":
        return "image"
    return f"run in {stage.image}" if stage.image else "run on host"


def text(spec: Any, names: list[str], edges: list[tuple[str, str]]) -> str:
    width = max((len(n) for n in names), default=0)
    lines = []
    for name in names:
        stage = spec.stages[name]
        ups = [u for u, d in edges if d == name]
        arrow = f"  ← {', '.join(ups)}" if ups else ""
        outs = ", ".join(o.path + ("/" if o.is_dir else "") for o in getattr(stage, "outputs", ()))
        lines.append(f"{name:<{width}}  [{_kind(stage)}]{arrow}" + (f"  → {outs}" if outs else ""))
    return "\n".join(lines) + "\n"


def dot(spec: Any, names: list[str], edges: list[tuple[str, str]]) -> str:
    lines = ["digraph buildgraph {", "  rankdir=LR;"]
    for name in names:
        shape = "box3d" if spec.stages[name].kind == "image" else "box"
        lines.append(f'  "{name}" [shape={shape}];')
    lines += [f'  "{u}" -> "{d}";' for u, d in edges]
    return "\n".join(lines + ["}"]) + "\n"


def mermaid(spec: Any, names: list[str], edges: list[tuple[str, str]]) -> str:
    ids = {n: f"s{i}" for i, n in enumerate(names)}
    lines = ["flowchart LR"]
    for name in names:
        left, right = ("[[", "]]") if spec.stages[name].kind == "image" else ("[", "]")
        lines.append(f'  {ids[name]}{left}"{name}"{right}')
    lines += [f"  {ids[u]} --> {ids[d]}" for u, d in edges]
    return "\n".join(lines) + "\n"


def as_json(spec: Any, names: list[str], edges: list[tuple[str, str]]) -> str:
    nodes = [{"name": n, "kind": spec.stages[n].kind} for n in names]
    return json.dumps({"nodes": nodes, "edges": [list(e) for e in edges]}, indent=2) + "\n"
