"""The real-Dockerfile corpus built for real: `bg run` of the imported Buildfile against
`docker build` of the original, image by image (issue 10, Deliver 3).

Both builds start from the same rewrite of the original file (`offline`), so that it can build
with no registry and no network:

- every `FROM` of an external image becomes `FROM <tiny_base>` (the offline Debian minbase),
  keeping its stage name; an unnamed stage is named `stage<N>`, the name `bg import` gives it,
  so `docker build --target` reaches it;
- a `# syntax=` directive is removed (BuildKit would pull that frontend image);
- an instruction that needs the network or what the real base installs is removed (its lines
  left blank, so line numbers stay the original's): a `RUN` unless each command in it is one of
  `OFFLINE_COMMANDS` (tools the minbase has that fetch nothing: no apt-get, pip, conda, curl,
  wget, git, compilers, the project's own scripts), and any `RUN` in exec form, with a heredoc
  or a secret/ssh mount; `ADD <url>`; `COPY --from=<external image>`;
- then the original decides what else cannot build offline: an instruction its `docker build`
  fails on (a kept `cp` of what a removed RUN made, a `COPY --from` of it) is removed the same way
  and the build tried again.

The rewritten file is imported (`bg import` semantics), loaded and built with `bg run <every
stage>`; the original is built with `docker build --target <stage>` (BuildKit, as a user would)
in the same stub context (a file for each copy source). For each stage, the two images must
agree on their config (Env, WorkingDir, User, Entrypoint, Cmd, ExposedPorts, Volumes, Labels
less bg's own org.buildgraph.*, Healthcheck, StopSignal, Shell, OnBuild) and on their file trees
(path, type, mode, owner, size, link target, content digest; not mtimes). A stage that still
cannot build (its FROM fails, or RETRIES ran out) must fail in both; it is reported as not built,
with why.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bgcli import bg
from test_docker_roundtrip import filesystem

from buildgraph.core.parse import parse
from buildgraph.core.variables import platform_args
from buildgraph.errors import BuildfileError
from buildgraph.images import dfsyntax
from buildgraph.images.builder import PROJECT_LABEL, STAGE_LABEL, buildkit_cli
from buildgraph.images.dfwords import Known, process
from buildgraph.images.importer import import_dockerfile
from tests.unit.dockerfile_equivalence import stub_sources

CORPUS = Path(__file__).parents[1] / "fixtures" / "external" / "dockerfiles"
FILES = sorted(CORPUS.glob("*.Dockerfile"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FILES, reason="the corpus is not committed: tests/fixtures/external/README.md"),
]
OFFLINE_COMMANDS = frozenset(
    ("mkdir", "chmod", "chown", "chgrp", "ln", "echo", "printf", "touch", "rm", "cp", "mv", "useradd")
    + ("groupadd", "usermod", "groupmod", "sed", "cat", "true", "test", "[", "tee", "id", "ls", "env")
    + ("export", "set", "cd", "install")
)
CONFIG = ("Env", "WorkingDir", "User", "Entrypoint", "Cmd", "ExposedPorts", "Volumes", "Labels")
CONFIG += ("Healthcheck", "StopSignal", "Shell", "OnBuild")
# `COPY --chown=${NB_UID}:${NB_GID}` with variables the real base defines and the tiny base does
# not: BuildKit (the original) ignores the empty `:`, the classic builder (bg's, for a stage with
# no RUN mounts) refuses it. Not seen with the real base; reported, not failed.
EMPTY_CHOWN = "can't find uid for user : no such user"
# Likewise `WORKDIR ${HOME}` where the real base sets HOME and the tiny base does not: the classic
# builder refuses the empty path ("cannot normalize nothing"), BuildKit takes it as /.
EMPTY_WORKDIR = "cannot normalize nothing"
# And a `COPY --from` wildcard that matches nothing because the RUN making its files was removed
# offline: BuildKit allows an empty wildcard, the classic builder refuses it.
EMPTY_WILDCARD = "no source files were specified"
RETRIES = 30  # builds of the original per file, removals included


@dataclass
class Offline:
    text: str  # the rewritten Dockerfile
    stages: list[str]  # its stage names, in order
    removed: list[int]  # lines of the instructions removed


def offline(text: str, base: str) -> Offline:
    """The corpus file rewritten to build offline on `base` (see the module docstring)."""
    parsed = dfsyntax.parse(text)
    lines = text.split("\n")
    globals_: dict[str, Known] = {}
    stages: list[str] = []
    removed: list[int] = []
    for ins in parsed.instructions:
        replacement: str | None = None
        if ins.keyword == "ARG" and not stages:
            for raw in ins.args:
                name, _, default = raw.partition("=")
                value = process(default, globals_.get, parsed.escape).value
                globals_.setdefault(name, Known(value, value))
        elif ins.keyword == "FROM":
            replacement = _from_line(ins, stages, globals_, base, parsed.escape)
        elif _needs_network(ins, stages):
            replacement = ""
            removed.append(ins.line)
        if replacement is not None:
            last = ins.end_line or ins.line
            lines[ins.line - 1 : last] = [replacement] + [""] * (last - ins.line)
    for directive in re.finditer(r"(?im)^#\s*syntax\s*=.*$", "\n".join(lines[:5])):
        lines[lines.index(directive.group(0))] = "#"
    return Offline("\n".join(lines), stages, removed)


def _from_line(
    ins: dfsyntax.Instruction, stages: list[str], globals_: dict[str, Known], base: str, esc: str
) -> str:
    words = ins.rest.split()
    image = process(words[0], globals_.get, esc).value.lower()
    name = words[2].lower() if len(words) >= 3 else f"stage{len(stages)}"
    stages.append(name)
    return f"FROM {image if image in stages[:-1] else base} AS {name}"


def _needs_network(ins: dfsyntax.Instruction, stages: list[str]) -> bool:
    if ins.keyword == "RUN":
        mounts = [f for f in ins.flags if f.startswith("--mount") and re.search(r"type=(secret|ssh)", f)]
        return ins.json or ins.heredoc or bool(mounts) or not _offline_script(ins.rest)
    if ins.keyword == "ADD" and re.search(r"(^|\s)(https?://|git@)", ins.rest):
        return True
    if ins.keyword in ("ADD", "COPY"):
        froms = [f.split("=", 1)[1].lower() for f in ins.flags if f.startswith("--from=")]
        return any(f not in stages and not f.isdigit() for f in froms)
    return False


def _offline_script(script: str) -> bool:
    """Each command of the shell script (split crudely: a quoted `;` makes it refuse) is in
    OFFLINE_COMMANDS, after its leading `NAME=value` assignments."""
    for command in re.split(r"&&|\|\||[;|()\n]", script):
        words = command.split()
        while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        if words and words[0] not in OFFLINE_COMMANDS:
            return False
    return True


def docker_build(dockerfile: Path, context: Path, target: str, tag: str) -> tuple[str, int]:
    """`docker build --target` with BuildKit: ("", 0) when it built, else its last error line
    and the Dockerfile line it names (0 if none)."""
    argv = [buildkit_cli(), "build", "--progress=plain", "-f", str(dockerfile), "--target", target, "-t", tag]
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    proc = subprocess.run([*argv, str(context)], capture_output=True, text=True, env=env, check=False)
    if proc.returncode == 0:
        return "", 0
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "error" in line]
    where = re.findall(r"(?m)Dockerfile:(\d+)\s*$", proc.stderr)
    line = int(where[-1]) if where else _failed_step_line(proc.stderr, dockerfile.read_text(encoding="utf-8"))
    return (errors or ["docker build failed"])[-1], line


def _failed_step_line(stderr: str, text: str) -> int:
    """The line of the instruction Docker 20.10's BuildKit names as failing (` > [stage 3/5] RUN …:`;
    it prints no `Dockerfile:N`), found by its text; 0 if none."""
    steps = re.findall(r"(?m)^ > \[[^\]]*\] (.+?):?$", stderr)
    if not steps:
        return 0
    wanted = " ".join(steps[-1].split())
    for ins in dfsyntax.parse(text).instructions:
        if " ".join(ins.original.split()).startswith(wanted):
            return ins.line
    return 0


def settle(rewrite: Offline, dockerfile: Path, context: Path, project: str) -> dict[str, str]:
    """Build each stage of the original; an instruction that fails offline (a RUN that needed
    a removed one) is removed too and the stage built again. Stage → why it cannot build ("")."""
    errors: dict[str, str] = {}
    stage_at = 0
    for _ in range(RETRIES):
        dockerfile.write_text(rewrite.text, encoding="utf-8")
        for stage in rewrite.stages[stage_at:]:
            errors[stage], line = docker_build(dockerfile, context, stage, f"bgtest/{project}:{stage}")
            if errors[stage] and _remove(rewrite, line):
                break
            stage_at += 1
        else:
            return errors
    return errors


def _remove(rewrite: Offline, line: int) -> bool:
    """Blank the instruction at `line` unless it is a FROM (or none); True when removed."""
    found = [i for i in dfsyntax.parse(rewrite.text).instructions if i.line <= line <= (i.end_line or i.line)]
    if not found or found[0].keyword == "FROM":
        return False
    lines = rewrite.text.split("\n")
    lines[found[0].line - 1 : found[0].end_line or found[0].line] = [""] * (
        (found[0].end_line or found[0].line) - found[0].line + 1
    )
    rewrite.text = "\n".join(lines)
    rewrite.removed.append(found[0].line)
    return True


def config(client: Any, image: str) -> dict[str, Any]:
    attrs = client.images.get(image).attrs["Config"]
    labels = {k: v for k, v in (attrs.get("Labels") or {}).items() if not k.startswith("org.buildgraph.")}
    return {k: attrs.get(k) for k in CONFIG} | {"Labels": labels}


def differences(client: Any, original: str, by_bg: str) -> list[str]:
    """What the two images disagree on: config fields, then paths of the file tree."""
    found = []
    want, got = config(client, original), config(client, by_bg)
    found += [f"{k}: {want[k]!r} became {got[k]!r}" for k in CONFIG if want[k] != got[k]]
    want_files, got_files = filesystem(client, original), filesystem(client, by_bg)
    for path in sorted(set(want_files) | set(got_files)):
        if want_files.get(path) != got_files.get(path):
            found.append(f"/{path}: {want_files.get(path)} became {got_files.get(path)}")
    return found


@dataclass
class Outcome:
    name: str
    built: list[str]  # stages both built
    equivalent: list[str]  # of those, the ones whose images agree
    why_not: dict[str, str]  # stage → why it was not built or is not equivalent
    removed: list[int]


def build_and_compare(client: Any, path: Path, base: str, tmp: Path) -> Outcome:
    rewrite = offline(path.read_text(encoding="utf-8").split("\n", 3)[3], base)
    project = f"corpus{uuid.uuid4().hex[:8]}"
    buildfile, _ = import_dockerfile(rewrite.text, file=path.name)
    buildfile = buildfile.replace('name = "imported"', f'name = "{project}"', 1)
    root, other = tmp / "project", tmp / "original"
    root.mkdir()
    other.mkdir()
    (root / "Buildfile.toml").write_text(buildfile, encoding="utf-8")
    try:
        spec = parse(buildfile, platform=platform_args(platform.machine()))  # as `buildfile.load` does
    except BuildfileError as e:  # counted by the corpus test's targets (a needed --arg, say)
        pytest.skip(f"does not load: {e}")
    stub_sources(root, spec)
    # the Buildfile is this test's, rewritten after settling: neither build copies it (`COPY . .`)
    (root / ".dockerignore").write_text("Buildfile.toml\n.dockerignore\n", encoding="utf-8")
    originals = settle(rewrite, other / "Dockerfile", root, project)
    out = Outcome(path.name, [], [], {}, sorted(rewrite.removed))
    buildfile, _ = import_dockerfile(rewrite.text, file=path.name)  # what settling left of the file
    buildfile = buildfile.replace('name = "imported"', f'name = "{project}"', 1)
    (root / "Buildfile.toml").write_text(buildfile, encoding="utf-8")
    spec = parse(buildfile, platform=platform_args(platform.machine()))  # its chains may be shorter now
    run = bg(root, "run", "--json", "-k", *spec.stages)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    bg_failed = {e["stage"]: e.get("detail") or e["status"] for e in events if e.get("status") == "failed"}
    for stage in rewrite.stages:
        labels = [f"{PROJECT_LABEL}={project}", f"{STAGE_LABEL}={stage}"]
        images = client.images.list(filters={"label": labels})
        error = originals.get(stage, "gave up after RETRIES removals")
        if error or not images:
            out.why_not[stage] = _why_not_built(error, bool(images), bg_failed, run.stderr)
            continue
        out.built.append(stage)
        found = differences(client, f"bgtest/{project}:{stage}", images[0].id)
        if found:
            out.why_not[stage] = "; ".join(found[:6])
        else:
            out.equivalent.append(stage)
    return out


def _why_not_built(docker_error: str, bg_built: bool, bg_failed: dict[str, str], stderr: str) -> str:
    if docker_error and not bg_built:
        return f"neither builds offline: docker: {docker_error[:200]}"
    if docker_error:
        return f"BUG: bg built it, docker did not: {docker_error[:200]}"
    for quirk, name in (
        (EMPTY_CHOWN, "EMPTY_CHOWN"),
        (EMPTY_WORKDIR, "EMPTY_WORKDIR"),
        (EMPTY_WILDCARD, "EMPTY_WILDCARD"),
    ):
        if quirk in stderr:
            return f"engine difference: {quirk} (see {name})"
    return f"BUG: docker built it, bg did not: {(json.dumps(bg_failed) + stderr)[-400:]}"


@pytest.fixture
def cleanup(client: Any) -> Any:
    """Removes this test's images afterwards, children before parents."""
    import docker.errors

    yield
    ours = client.images.list(filters={"reference": "bgtest/corpus*"})
    ours += [i for i in client.images.list(filters={"label": PROJECT_LABEL}) if _ours(i)]
    for _ in range(len(ours)):
        for image in list(ours):
            try:
                client.images.remove(image.id, force=True)
                ours.remove(image)
            except docker.errors.NotFound:
                ours.remove(image)
            except docker.errors.APIError:
                continue


def _ours(image: Any) -> bool:
    return str((image.labels or {}).get(PROJECT_LABEL, "")).startswith("corpus")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_the_imported_build_makes_the_same_images(
    path: Path, client: Any, tiny_base: str, tmp_path: Path, cleanup: None
) -> None:
    result = build_and_compare(client, path, tiny_base, tmp_path)
    report = [f"{result.name}: built {result.built}, equivalent {result.equivalent}"]
    report[0] += f", removed lines {result.removed}"
    report += [f"  {stage}: {why}" for stage, why in result.why_not.items()]
    print("\n".join(report))
    assert set(result.built) == set(result.equivalent), "\n".join(report)
    assert not any(why.startswith("BUG") for why in result.why_not.values()), "\n".join(report)
