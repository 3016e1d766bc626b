"""`bg lint`: Dockerfile best practices, checked on a Buildfile's image stages (pure).

Each rule is a small function returning `LintWarning`s; `lint(spec)` runs them all.

Rules, and why:
- `pip install` without `--no-cache-dir`: pip's cache stays in the layer for ever.
- `apt-get install`/`update` without `rm -rf /var/lib/apt/lists/*` *in the same* `run`
  entry: each entry is one layer, so a later cleanup frees nothing.
- `apt-get install` without `DEBIAN_FRONTEND=noninteractive` (the stage's or an
  ancestor's `env`, or inline): a package that asks a question (tzdata) hangs the build.
- a registry base without a tag, or tagged `:latest`: the base changes under you (bg
  pins the digest it resolved in the lock, but a fresh clone resolves it again).
- args or env whose name looks like a secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
  `*PASSWD*`, `*_KEY`) or whose value looks like a credential: both end up in
  `docker history` and the image config; use `secrets = [...]`.
- a *leaf* image stage (no other image stage builds on it: the images you ship) whose
  effective user is root. bg itself runs run stages as the invoking user whatever the
  image says, so this rule is about shipping the image, not about bg.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from buildgraph.core.spec import ImageRef, ImageStage, Spec, StageRef

_PIP_INSTALL = re.compile(r"\bpip3?\s+(?:[^|;&]*\s)?install\b|\bpython3?\s+-m\s+pip\s+install\b")
_NO_CACHE = re.compile(r"--no-cache(?:-dir)?\b")
_APT = re.compile(r"\bapt(?:-get)?\s+(?:[^|;&]*\s)?(install|update)\b")
_APT_INSTALL = re.compile(r"\bapt(?:-get)?\s+(?:[^|;&]*\s)?install\b")
_APT_CLEANUP = re.compile(r"rm\s+-(?:rf|fr|r)\s+[^;&|]*/var/lib/apt/lists")
_NONINTERACTIVE = re.compile(r"DEBIAN_FRONTEND=['\"]?noninteractive")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|_KEY$|^KEY$", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"^(gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|xox[abp]-\S+|hf_[A-Za-z]{20,})"
)
_ROOT = {"", "root", "0", "0:0", "root:root"}


@dataclass(frozen=True)
class LintWarning:
    stage: str  # "" for a project-level field (`args.NAME`)
    field: str  # key path inside the stage, e.g. "run[1]", "from", "env.API_TOKEN"
    message: str
    fix: str

    @property
    def where(self) -> str:
        return f"stages.{self.stage}.{self.field}" if self.stage else self.field

    def render(self, file: str = "Buildfile.toml") -> str:
        return f"{file}: {self.where}: {self.message}"


Rule = Callable[[Spec, ImageStage], Iterator[LintWarning]]


def lint(spec: Spec) -> list[LintWarning]:
    """Every warning for `spec`'s image stages, in stage order then rule order."""
    found = [w for stage in spec.image_stages() for rule in RULES for w in rule(spec, stage)]
    return found + list(_secret_args(spec))


def _pip_cache(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    env = dict(_inherited_env(spec, stage))
    if env.get("PIP_NO_CACHE_DIR"):
        return
    for i, command in enumerate(stage.run):
        if _PIP_INSTALL.search(command) and not _NO_CACHE.search(command):
            yield LintWarning(
                stage.name,
                f"run[{i}]",
                "pip install keeps its download cache in the image",
                'add --no-cache-dir (or set env PIP_NO_CACHE_DIR = "1")',
            )


def _apt_cleanup(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    for i, command in enumerate(stage.run):
        if _APT.search(command) and not _APT_CLEANUP.search(command):
            yield LintWarning(
                stage.name,
                f"run[{i}]",
                "apt-get leaves its package lists in the image",
                "end the same command with && rm -rf /var/lib/apt/lists/*",
            )


def _apt_noninteractive(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    if dict(_inherited_env(spec, stage)).get("DEBIAN_FRONTEND") == "noninteractive":
        return
    for i, command in enumerate(stage.run):
        if _APT_INSTALL.search(command) and not _NONINTERACTIVE.search(command):
            yield LintWarning(
                stage.name,
                f"run[{i}]",
                "apt-get install may stop at an interactive question",
                'set env DEBIAN_FRONTEND = "noninteractive" (or prefix the command with it)',
            )


def _unpinned_base(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    if not isinstance(stage.base, ImageRef) or "@sha256:" in stage.base.reference:
        return
    name = stage.base.reference.rsplit("/", 1)[-1]
    tag = name.partition(":")[2]
    if tag in ("", "latest"):
        yield LintWarning(
            stage.name,
            "from",
            f"base image '{stage.base.reference}' is not pinned to a version",
            "name a version tag, e.g. debian:bookworm-20250520, or a digest (@sha256:…)",
        )


def _secret_env(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    for name, value in stage.env:
        if _looks_secret(name, value):
            yield _secret_warning(stage.name, f"env.{name}", name)


def _root_user(spec: Spec, stage: ImageStage) -> Iterator[LintWarning]:
    built_on = {s.base.stage for s in spec.image_stages() if isinstance(s.base, StageRef)}
    if stage.name in built_on:
        return
    user = next((s.user for s in _ancestry(spec, stage) if s.user), "")
    if user.strip() in _ROOT:
        yield LintWarning(
            stage.name,
            "user",
            "the image runs as root when shipped",
            'set user = "1000:1000" on this stage (bg runs run stages as you either way)',
        )


def _secret_args(spec: Spec) -> Iterator[LintWarning]:
    for name, value in spec.args:
        if _looks_secret(name, value):
            yield _secret_warning("", f"args.{name}", name)


def _looks_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name) or _SECRET_VALUE.match(value))


def _secret_warning(stage: str, field: str, name: str) -> LintWarning:
    return LintWarning(
        stage,
        field,
        f"'{name}' looks like a secret: it would be stored in the image",
        f'declare secrets = ["{name}"] and read /run/secrets/{name} instead',
    )


def _ancestry(spec: Spec, stage: ImageStage) -> list[ImageStage]:
    """`stage` then its parents, nearest first."""
    chain = [stage]
    while isinstance(chain[-1].base, StageRef):
        parent = spec.stages.get(chain[-1].base.stage)
        if not isinstance(parent, ImageStage) or parent in chain:
            break
        chain.append(parent)
    return chain


def _inherited_env(spec: Spec, stage: ImageStage) -> list[tuple[str, str]]:
    return [pair for s in reversed(_ancestry(spec, stage)) for pair in s.env]


RULES: tuple[Rule, ...] = (
    _unpinned_base,
    _pip_cache,
    _apt_cleanup,
    _apt_noninteractive,
    _secret_env,
    _root_user,
)
