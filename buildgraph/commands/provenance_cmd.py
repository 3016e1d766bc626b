"""`bg provenance STAGE|PATH`: the in-toto/SLSA provenance of a recorded result; signing and checking it.

    bg provenance train                   a readable summary (`--json`: the Statement itself)
    bg provenance model.pt                the same, found by an output (or a file in a dir output)
    bg provenance train --sign-key k.pem  a DSSE envelope of it, on stdout or `-o FILE`
    bg provenance --verify F --key k.pub.pem   exit 1 unless the signature verifies and every
                                          subject is here (workspace or cache) with its digest
    bg provenance --new-key k.pem         an Ed25519 key pair (k.pem, k.pub.pem)

The statement is the one stored in the run manifest of the result Buildfile.lock records
(docs/provenance.md); nothing is run or written but the envelope and keys asked for.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildgraph.commands._common import add, load_project
from buildgraph.errors import EnvironmentProblem, UsageError

if TYPE_CHECKING:
    from buildgraph.records.provenance import Provenance

_DIGEST = re.compile(r"[0-9a-f]{64}")
_MOST_OUTPUTS = 20  # subjects the summary lists; --json has them all


def add_parser(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help_text: str
) -> None:
    p = add(sub, common, name, help_text)
    p.add_argument("target", nargs="?", metavar="STAGE|PATH", help="a run stage, or an output it recorded")
    p.add_argument("--json", action="store_true", help="print the in-toto Statement itself")
    p.add_argument("--sign-key", metavar="KEY.pem", type=Path, help="print a DSSE envelope signed with KEY")
    p.add_argument("-o", "--output", metavar="FILE", type=Path, help="write the envelope to FILE")
    p.add_argument("--verify", metavar="ENVELOPE", type=Path, help="check a signed envelope (with --key)")
    p.add_argument("--key", metavar="PUB.pem", type=Path, help="the public key --verify checks against")
    p.add_argument("--new-key", metavar="KEY.pem", type=Path, help="make an Ed25519 key pair and exit")


def run(ns: argparse.Namespace) -> int:
    if ns.new_key is not None:
        return _new_key(ns.new_key)
    if ns.verify is not None:
        return _verify(ns)
    if not ns.target:
        raise UsageError("name a stage or an output path", hint="for example `bg provenance model.pt`")
    found, path = _find(ns)
    if ns.sign_key is not None:
        return _sign(found, ns.sign_key, ns.output)
    if ns.json:
        json.dump(found.statement, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(summary(found, path))
    return 0


# ---------------------------------------------------------------- finding
def _find(ns: argparse.Namespace) -> tuple[Provenance, str]:
    """The recorded statement of the stage named (or producing the path named), and the path."""
    from buildgraph.core.spec import RunStage
    from buildgraph.engine import recorded
    from buildgraph.lockfile import current
    from buildgraph.workspace import Workspace

    project = load_project(ns)
    ws = Workspace(project.root, read_only=True)
    lock = current(ws.lock_path, ws.journal_path)
    stages = project.spec.stages  # type: ignore[attr-defined]
    if ns.target in stages:
        name, path = ns.target, ""
    else:
        name, path = _producer(lock, _relative(project.root, ns.target))
    if not isinstance(stages[name], RunStage):
        raise UsageError(f"'{name}' is an image stage: provenance is recorded for run stages")
    entry = recorded.entry(lock, name)
    if entry is None:
        raise EnvironmentProblem(f"stage '{name}' has no recorded result", f"`bg run {name}` records one")
    manifest = recorded.manifest(ws.cache, entry.key)
    if manifest is None:
        raise EnvironmentProblem(
            f"stage '{name}': the cache no longer holds its recorded result ({entry.key[:12]})",
            hint=f"`bg run --force {name}` makes it again, with its provenance",
        )
    if manifest.provenance is None:
        raise EnvironmentProblem(
            f"stage '{name}': its result was recorded before bg kept provenance",
            hint=f"`bg run --force {name}` runs it again and records it",
        )
    return _read(manifest.provenance, name), path


def _relative(root: Path, target: str) -> str:
    """A path as the lock names outputs: project-relative, no `./`, no trailing `/`."""
    path = Path(target)
    if path.is_absolute() or target.startswith(".."):
        path = Path(os.path.relpath(Path.cwd() / path, root))
    return path.as_posix().strip("/").removeprefix("./") or "."


def _producer(lock: Any, path: str) -> tuple[str, str]:
    """The stage in the lock whose output is `path`, or holds it (a file in a dir output)."""
    for name, entry in lock.stages.items():
        for output in entry.get("outputs", {}):
            if path == output or path.startswith(f"{output}/"):
                return name, path
    raise UsageError(
        f"'{path}' is neither a stage nor an output Buildfile.lock records",
        hint="`bg graph` lists the stages; `bg status` says which have not run yet",
    )


def _read(statement: Mapping[str, Any], name: str) -> Provenance:
    from buildgraph.records.errors import RecordError
    from buildgraph.records.provenance import read

    try:
        return read(statement)
    except RecordError as exc:
        hint = f"`bg run --force {name}` records it again"
        raise EnvironmentProblem(f"stage '{name}': {exc}", hint) from None


# ---------------------------------------------------------------- showing
def summary(found: Provenance, path: str = "") -> str:
    """What a person reads: the stage, when and where it ran, what it read and what it made."""
    from buildgraph.records.environment import describe

    external = found.statement["predicate"]["buildDefinition"]["externalParameters"]
    kind = "in-toto Statement v1, SLSA Provenance v1"
    lines = [f"provenance of stage {found.stage} (key {found.key[:12]}): {kind}"]
    lines.append(f"  ran       {found.started} → {found.finished}  (invocation {found.invocation})")
    lines.append(f"  on        {describe(found.environment)}")
    lines.append(f"  command   {external.get('command', '')}")
    lines += [f"  param     {k} = {v}" for k, v in sorted(external.get("params", {}).items())]
    lines += [f"  secret    {name} (its name only)" for name in external.get("secrets", [])]
    for dep in found.dependencies:
        digest = dep.get("digest", {}).get("sha256", "")
        note = dep.get("annotations", {}).get("source", "")
        lines.append(f"  from      {dep.get('name') or dep.get('uri')}  {digest[:12] or '—'}  ({note})")
    shown = [s for s in found.subjects if not path or s[0] == path or s[0].startswith(f"{path}/")]
    for name, digest in shown[:_MOST_OUTPUTS]:
        lines.append(f"  output    {name}  {digest[:12]}")
    if len(shown) > _MOST_OUTPUTS:
        lines.append(f"  …         {len(shown) - _MOST_OUTPUTS} more outputs (--json lists every one)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- signing
def _sign(found: Provenance, key: Path, output: Path | None) -> int:
    from buildgraph.atomic import atomic_write
    from buildgraph.audit import dsse

    payload = json.dumps(found.statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    envelope = dsse.sign(payload, key)
    text = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    atomic_write(output, text.encode())
    keyid = envelope["signatures"][0]["keyid"]
    sys.stdout.write(f"bg: signed the provenance of stage {found.stage} → {output} (key {keyid[:12]})\n")
    return 0


def _new_key(path: Path) -> int:
    from buildgraph.audit import dsse

    public = dsse.new_key(path)
    sys.stdout.write(f"bg: wrote {path} (private, keep it so) and {public} (public, give it to verifiers)\n")
    return 0


def _verify(ns: argparse.Namespace) -> int:
    """Exit 1 unless the signature verifies and every subject is here with its digest."""
    from buildgraph.audit import dsse
    from buildgraph.stores.cache import ArtefactCache

    if ns.key is None:
        raise UsageError("--verify needs --key PUB.pem", hint="the public key of the one who signed it")
    payload = dsse.verify(dsse.load(ns.verify), ns.key, what=str(ns.verify))
    try:
        found = _read(json.loads(payload), "?")
    except (ValueError, EnvironmentProblem) as exc:
        raise dsse.BadSignature(f"{ns.verify}: the signed payload is not bg's provenance ({exc})") from None
    root = Path(ns.directory).resolve()
    cache_dir = root / ".bg" / "cache"
    cache = ArtefactCache(cache_dir) if cache_dir.is_dir() else None
    sys.stdout.write(f"bg: signature verified: {ns.verify} (stage {found.stage}, key {ns.key})\n")
    problems = [p for name, digest in found.subjects if (p := _check(root, cache, name, digest))]
    for problem in problems:
        sys.stderr.write(f"bg: error: {problem}\n")
    if problems:
        return 1
    sys.stdout.write(f"bg: all {len(found.subjects)} subjects are here with their digests\n")
    return 0


def _check(root: Path, cache: Any, name: str, digest: str) -> str:
    """Why subject `name` is not here with `digest` (the workspace file, else the cache object); ""."""
    if not _DIGEST.fullmatch(digest):
        return f"subject {name}: {digest!r} is not a sha256 digest"
    here = _hash(root / name)
    if here == digest or (cache is not None and cache.has_object(digest)):
        return ""
    if here is not None:
        return f"subject {name}: the workspace file's digest is {here[:12]}, not {digest[:12]} (changed)"
    return f"subject {name}: in neither the workspace nor the cache (digest {digest[:12]})"


def _hash(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
        return None
