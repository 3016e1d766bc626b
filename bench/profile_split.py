"""Split a cProfile of a first build into where bg's time goes per stage (used by profile_bg.py).

Categories are sums of cumulative times of the bg functions that do each thing (`CLAIMS`),
named by module and qualified name (resolved from the source with `ast`, so line numbers may
move while bg is edited; a claim that matches nothing is listed, not an error). Claims nest:
hashing runs inside storing an output, storing inside a step. Each moment goes to the
*innermost* claimed function on the stack, so nothing is counted twice: a claimed function's
time is its cumulative time minus that of the claimed functions below it. cProfile keeps
only caller→callee totals, so "below it" is estimated as gprof does: a callee's time is shared
among its callers in proportion to the time each spent calling it. Worker threads are profiled
too, so the categories may add up to more than the wall time (threads overlap); "idle" is
time spent waiting for a slot or a worker, and "command" the time the command itself ran.
"""

from __future__ import annotations

import ast
import pstats
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

Func = tuple[str, int, str]  # pstats' (file, line, name)
Table = dict[Func, tuple[Any, ...]]  # func → (calls, primitive calls, tottime, cumtime, callers)


@dataclass(frozen=True)
class Claim:
    category: str
    label: str
    module: str  # path below buildgraph/, or "~" for a built-in
    names: tuple[str, ...]  # qualified names; "Class.*" or "*" for all of a class or module
    by_caller: tuple[tuple[str, str], ...] = ()  # (caller's qualified name, label) for calls from there


def _c(
    category: str, label: str, module: str, *names: str, by_caller: tuple[tuple[str, str], ...] = ()
) -> Claim:
    return Claim(category, label, module, names, by_caller)


CLAIMS = (
    _c("fork/exec", "spawn (Popen)", "executors/local.py", "_Supervisor._start"),
    _c("fork/exec", "reap, kill the group", "executors/local.py", "_Supervisor.run"),
    _c("fork/exec", "guardian (group list)", "executors/guardian.py", "*"),
    _c(
        "command",
        "the command (pumping its output)",
        "executors/local.py",
        "_Supervisor._supervise",
        "_Supervisor._drain",
    ),
    _c("executor", "log, output checks", "executors/local.py", "LocalExecutor.run", "_LazyLog.*"),
    _c("executor", "environment fingerprint", "executors/fingerprint.py", "*"),
    _c("scratch setup", "stage inputs", "executors/workdir.py", "stage_inputs"),
    _c("scratch setup", "scratch folders", "engine/context.py", "Scratch.*"),
    _c("scratch setup", "recycle folders", "executors/workdir.py", "SpareFolders.*", "recycle_below"),
    _c("hashing", "sha256 of files", "stores/tree.py", "hash_file", "tree_digest"),
    _c("hashing", "digest cache (stat records)", "stores/digests.py", "DigestCache.*"),
    _c("hashing", "stat database", "stores/statdb.py", "*"),
    _c(
        "store",
        "ingest outputs",
        "stores/objects.py",
        "ObjectStore.ingest",
        by_caller=(("ObjectStore.put_log", "log"),),
    ),
    _c("store", "log", "stores/objects.py", "ObjectStore.put_log"),
    _c("store", "commit objects", "stores/objects.py", "ObjectStore._commit", "ObjectStore._claim"),
    _c("store", "output safety check", "engine/run_step.py", "_unsafe_outputs"),
    _c("store", "output safety check", "stores/outputs.py", "check_output"),
    _c("store", "group commit", "engine/commit.py", "*"),
    _c("store", "manifest", "stores/cache.py", "ArtefactCache.put_manifest", "ArtefactCache.put_manifests"),
    _c("store", "manifest", "engine/recorded.py", "run_manifest"),
    _c("store", "manifest", "records/manifest.py", "*"),
    _c("store", "provenance", "engine/run_step.py", "RunStep._provenance"),
    _c("store", "provenance", "records/provenance.py", "*"),
    _c("store", "materialise", "engine/run_step.py", "RunStep._materialise"),
    _c("store", "materialise", "stores/cache.py", "ArtefactCache.materialise"),
    _c("store", "store: other", "engine/run_step.py", "RunStep._store"),
    _c("durability", "fsync, syncfs", "atomic.py", "fsync_file", "fsync_dir", "sync_filesystem"),
    _c("durability", "fsync, syncfs", "~", "<built-in method posix.fsync>"),
    _c("lock/journal", "journal", "lockfile.py", "Journal.*", "read_journal"),
    _c("lock/journal", "journal", "engine/recorded.py", "run_entry"),
    _c("lock/journal", "journal", "records/lock_entry.py", "*"),
    _c("lock/journal", "lock file", "lockfile.py", "fold", "current", "Lock.*"),
    _c("lock/journal", "project lock", "stores/projectlock.py", "*"),
    _c("scheduling", "deciding", "engine/run_step.py", "RunStep.decide"),
    _c("scheduling", "deciding", "engine/engine.py", "Engine.evaluate"),
    _c("scheduling", "hand-out", "engine/builder.py", "Builder._hand_out", "Builder._next_dispatchable"),
    _c(
        "scheduling",
        "receive, settle",
        "engine/builder.py",
        "Builder._receive",
        "Builder._settle",
        "Builder._skipped",
    ),
    _c("scheduling", "walk", "engine/walk.py", "*"),
    _c("scheduling", "worker: other", "engine/builder.py", "Builder._work"),
    _c("scheduling", "step: other", "engine/run_step.py", "RunStep.execute", "RunStep._run", "RunStep._job"),
    _c("reporting", "reporter", "report.py", "*"),
    _c("loading", "Buildfile (parse, graph)", "buildfile.py", "*"),
    _c("idle", "waiting for a slot or a worker", "engine/slots.py", "Slots.take", "Slots.wait"),
)
NOT_BOOKKEEPING = ("command", "idle")


@dataclass(frozen=True)
class Share:
    category: str
    label: str
    seconds: float


def split(stats: pstats.Stats) -> tuple[list[Share], list[str]]:
    """Seconds per (category, label), in CLAIMS order, and the claims that matched nothing."""
    table = stats.stats  # type: ignore[attr-defined]
    claimed = {func: claim for func in table if (claim := _claim_of(func)) is not None}
    callees: dict[Func, list[Func]] = defaultdict(list)
    for func, (*_, callers) in table.items():
        for caller in callers:
            callees[caller].append(func)
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for func, claim in claimed.items():
        own = table[func][3] - sum(
            share * table[g][3] for g, share in _below(func, table, callees, claimed).items()
        )
        for label, fraction in _labels(func, claim, table):
            totals[(claim.category, label)] += own * fraction
    order = list(dict.fromkeys((c.category, c.label) for c in CLAIMS))
    shares = [Share(cat, label, totals[(cat, label)]) for cat, label in order if (cat, label) in totals]
    found = {id(c) for c in claimed.values()}
    missing = [f"{c.module}: {', '.join(c.names)}" for c in CLAIMS if id(c) not in found]
    return shares, missing


def _labels(func: Func, claim: Claim, table: Table) -> list[tuple[str, float]]:
    """A claim's label, or its by-caller labels in proportion to the time called from there."""
    ct, callers = table[func][3], table[func][4]
    out, rest = [], 1.0
    for caller_name, label in claim.by_caller:
        from_there = sum(edge[3] for c, edge in callers.items() if _qualname(c) == caller_name)
        fraction = from_there / ct if ct else 0.0
        out.append((label, fraction))
        rest -= fraction
    return [(claim.label, max(rest, 0.0)), *out]


def _below(
    top: Func,
    table: Table,
    callees: dict[Func, list[Func]],
    claimed: dict[Func, Claim],
) -> dict[Func, float]:
    """Claimed functions directly below `top` (no claimed one between): share of each one's time."""
    reach, todo = {top}, [top]
    while todo:
        for callee in callees.get(todo.pop(), ()):
            if callee not in reach:
                reach.add(callee)
                if callee not in claimed:
                    todo.append(callee)
    share: dict[Func, float] = {top: 1.0}
    busy: set[Func] = set()

    def of(func: Func) -> float:
        if func in share:
            return share[func]
        if func in busy:  # a cycle: counted once, from where it was entered
            return 0.0
        busy.add(func)
        ct, callers = table[func][3], table[func][4]
        total = sum(
            of(c) * edge[3]
            for c, edge in callers.items()
            if c in reach and c != func and (c == top or c not in claimed)
        )
        share[func] = min(1.0, total / ct) if ct else 0.0
        return share[func]

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return {g: of(g) for g in reach if g in claimed and g != top}
    finally:
        sys.setrecursionlimit(limit)


def _claim_of(func: Func) -> Claim | None:
    module, qualname = _module(func[0]), _qualname(func)
    if module is None:
        return None
    for claim in CLAIMS:
        if claim.module == module and any(_matches(qualname, name) for name in claim.names):
            return claim
    return None


def _matches(qualname: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return qualname.startswith(pattern[:-1])
    return qualname == pattern


def _module(path: str) -> str | None:
    if path == "~":
        return "~"
    _, sep, rest = path.rpartition("/buildgraph/")
    return rest if sep else None


def _qualname(func: Func) -> str:
    path, line, name = func
    if _module(path) in (None, "~"):
        return name
    return _definitions(path).get(line, name)


@cache
def _definitions(path: str) -> dict[int, str]:
    """First line of each def (its first decorator's line, as `co_firstlineno`) → qualified name."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError):
        return {}
    out: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    for line in (child.lineno, *(d.lineno for d in child.decorator_list)):
                        out[line] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def render(shares: Iterable[Share], stages: int, wall_s: float, missing: list[str]) -> str:
    """The split as a table: ms per stage and % of wall, per label and per category."""
    by_category: dict[str, list[Share]] = defaultdict(list)
    for s in shares:
        by_category[s.category].append(s)
    lines = [f"{'category / part':44} {'ms/stage':>9} {'% wall':>7}"]
    bookkeeping = 0.0
    for category, parts in by_category.items():
        total = sum(p.seconds for p in parts)
        if category not in NOT_BOOKKEEPING:
            bookkeeping += total
        lines.append(_line(category, total, stages, wall_s))
        lines += [_line(f"  {p.label}", p.seconds, stages, wall_s) for p in parts if len(parts) > 1]
    lines.append(_line("bg's bookkeeping (all but command and idle)", bookkeeping, stages, wall_s))
    lines.append("(threads overlap: the parts may add up to more than 100 % of the wall time)")
    lines += [f"(no function found for {m})" for m in missing]
    return "\n".join(lines)


def _line(label: str, seconds: float, stages: int, wall_s: float) -> str:
    per_stage = 1000 * seconds / max(stages, 1)
    return f"{label:44} {per_stage:9.3f} {100 * seconds / wall_s if wall_s else 0:6.1f}%"
