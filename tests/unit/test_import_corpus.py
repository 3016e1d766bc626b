"""Real Dockerfiles from ML repositories: `bg import` → the Buildfile loads → `bg dockerfile` exports
each stage → the same instructions as the original, after Docker's own normalisation
(`dockerfile_equivalence`).

The corpus is tests/fixtures/external/dockerfiles/, not committed (tests/fixtures/external/README.md;
skipped where absent, as in CI) (each file: a 3-line header naming repo, path,
commit and licence, then the file unchanged). A difference is accepted only where `bg import`
warned on that line with one of the `ALLOWED` messages; a difference on a line with no warning
is *silently wrong*, which no file may be. Targets (issue 10): ≥ 28/30 load, ≥ 25/30 equivalent.
"""

from __future__ import annotations

import difflib
import functools
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile_equivalence as eq
import pytest

from buildgraph.buildfile import load
from buildgraph.core.parse import parse
from buildgraph.core.spec import Spec
from buildgraph.core.variables import platform_args
from buildgraph.errors import BuildfileError, UsageError
from buildgraph.images.dockerfile import docker_stage_name, render_standalone
from buildgraph.images.importer import import_dockerfile

CORPUS = Path(__file__).parents[1] / "fixtures" / "external" / "dockerfiles"
FILES = sorted(CORPUS.glob("*.Dockerfile"))
pytestmark = pytest.mark.skipif(
    not FILES, reason="the real-Dockerfile corpus is not committed: tests/fixtures/external/README.md"
)

# Differences that a warning explains and that no Buildfile can avoid, with why.
ALLOWED = {
    "of a URL": "ADD <url> downloads at build time; bg image stages copy project files (a run stage can)",
    "MAINTAINER sets": "MAINTAINER (deprecated) sets the Author field; bg writes the OCI authors label",
    "relative to the base image's WORKDIR": "the base image's WORKDIR is not known without pulling it",
}


@dataclass
class Outcome:
    name: str
    loaded: bool = False
    exported: bool = False
    differences: list[tuple[int, str]] = field(default_factory=list)  # (line, what): not allowed
    allowed: list[tuple[int, str]] = field(default_factory=list)
    silent: list[tuple[int, str]] = field(default_factory=list)  # no warning on that line
    error: str = ""

    @property
    def equivalent(self) -> bool:
        return self.exported and not self.differences and not self.silent


def dockerfile(path: Path) -> str:
    """The vendored file without its 3-line provenance header (parser directives come first)."""
    return path.read_text(encoding="utf-8").split("\n", 3)[3]


def stub_project(root: Path, spec: Spec, buildfile: str) -> None:
    """The project a user would import in: the Buildfile and a file for each `copy` source."""
    (root / "Buildfile.toml").write_text(buildfile, encoding="utf-8")
    eq.stub_sources(root, spec)


@functools.cache
def outcome(path: Path, tmp: Path) -> Outcome:
    out = Outcome(path.name)
    text = dockerfile(path)
    buildfile, warnings = import_dockerfile(text, file=path.name)
    warned = _warned_lines(warnings)
    try:
        spec = parse(buildfile, platform=platform_args(platform.machine()))  # as `buildfile.load` does
        root = tmp / path.stem
        root.mkdir()
        stub_project(root, spec, buildfile)
        spec = load(root)
    except BuildfileError as e:
        out.error = f"does not load: {e}"
        return out
    out.loaded = True
    original = eq.read(text)
    try:
        exported = {s.name: eq.read(render_standalone(spec, s.name)) for s in original}
    except UsageError as e:
        out.error = f"does not export: {e}"
        return out
    out.exported = True
    for stage in original:
        for line, what in _differences(stage, exported[stage.name]):
            reasons = warned.get(line, [])
            if not reasons:
                out.silent.append((line, what))
            elif any(key in r for key in ALLOWED for r in reasons):
                out.allowed.append((line, what))
            else:
                out.differences.append((line, what))
    return out


def _warned_lines(warnings: list[str]) -> dict[int, list[str]]:
    lines: dict[int, list[str]] = {}
    for warning in warnings:
        _, line, message = warning.split(":", 2)
        lines.setdefault(int(line), []).append(message)
    return lines


def _differences(stage: eq.Stage, exported_file: list[eq.Stage]) -> list[tuple[int, str]]:
    got = eq.merged(exported_file, docker_stage_name(stage.name))
    found = []
    if got.base != stage.base:
        found.append((stage.line, f"FROM {stage.base} became {got.base}"))
    want_steps = [s for _, s in stage.steps]
    got_steps = [s for _, s in got.steps]
    matcher = difflib.SequenceMatcher(None, want_steps, got_steps, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        line = stage.steps[i1][0] if i1 < len(stage.steps) else stage.line
        for i in range(i1, i2):
            found.append((stage.steps[i][0], f"{op}: {want_steps[i]} → {got_steps[j1:j2]}"))
        if i1 == i2:
            found.append((line, f"added: {got_steps[j1:j2]}"))
    for key in sorted(set(stage.meta) | set(got.meta)):
        want, have = stage.meta.get(key, (stage.line, None)), got.meta.get(key, (0, None))
        if want[1] != have[1]:
            found.append((want[0], f"{key}: {want[1]!r} became {have[1]!r}"))
    return found


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def test_the_corpus_is_real_and_varied() -> None:
    assert len(FILES) >= 30
    texts = [p.read_text(encoding="utf-8") for p in FILES]
    for path, text in zip(FILES, texts, strict=True):
        header = r"# Source: https://github.com/\S+/blob/[0-9a-f]{40}/\S+\n# repo: .* licence: \S+"
        assert re.match(header, text), path
    assert len({t.split("repo: ")[1].split()[0] for t in texts}) >= 8  # repositories
    body = "\n".join(dockerfile(p) for p in FILES)
    features = ("--mount=type=cache", "nvidia/cuda", "conda", "apt-get install", "pip install", "COPY --from")
    for feature in features:
        assert feature in body, feature
    assert sum(len(re.findall(r"(?m)^FROM ", dockerfile(p))) > 1 for p in FILES) >= 8  # multi-stage


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_import_is_never_silently_wrong(path: Path, tmp: Path) -> None:
    result = outcome(path, tmp)
    assert not result.silent, "\n".join(f"{path.name}:{line}: {what}" for line, what in result.silent)


def test_corpus_targets(tmp: Path) -> None:
    results = [outcome(p, tmp) for p in FILES]
    loaded = sum(r.loaded for r in results)
    equivalent = sum(r.equivalent for r in results)
    report = [f"{len(FILES)} files: {loaded} load, {equivalent} round-trip equivalent"]
    for r in results:
        if not r.equivalent:
            detail = r.error or "; ".join(f"{line}: {what}" for line, what in (r.differences + r.silent)[:3])
            report.append(f"  {r.name}: {detail[:300]}")
    print("\n".join(report))
    assert loaded >= 28 and equivalent >= 25, "\n".join(report)
