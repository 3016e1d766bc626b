"""`bg lint`: Dockerfile best practices, checked on a Buildfile's image stages (pure).

Each rule is a small function returning `LintWarning`s; `lint(spec)` runs them all. Rules
about `run` look at each simple command (`lint_shell`), so `pip install x && pip install
--no-cache-dir y` flags the first. Each warning names its rule and, where hadolint has
the same rule, its code (`HADOLINT`), so `bg lint --hadolint` and the comparison bench can
line the two up.

Which stages a rule looks at (the graph says it): a stage is *shipped* when a run stage
runs in it or no image stage builds on it or copies from it; its layers are those of its
`from` ancestors too. Size rules (caches, package lists) look only at stages whose layers
are shipped: a stage that is only copied from leaves its layers behind. "Runs as root"
looks only at shipped stages (a parent's user is its child's unless the child sets one).

Rules, and why:
- `pip install` without `--no-cache-dir` (or pip's abbreviation `--no-cache`, or env
  `PIP_NO_CACHE_DIR`): pip's cache stays in the layer for ever.
- `apt-get update` with no `rm -rf /var/lib/apt/lists/*` *after* it in the same
  `run` entry: each entry is one layer, so a later cleanup frees nothing. Same for `conda
  install` without `conda clean`, and `apk add` without `--no-cache`.
- `apt-get install` without `--no-install-recommends` (size), without `-y` (the build
  stops at a question), without `DEBIAN_FRONTEND=noninteractive` (env, stage args, inherited,
  or inline: tzdata asks a question and hangs the build).
- packages without a version where the ecosystem pins them: apt (`pkg=1.2`), pip
  (`pkg==1.2`, not for `-r file`, `.`, paths, or pip/setuptools/wheel), apk, conda.
- a `run` entry with a pipe, run by a shell without `-o pipefail`: a failure on the
  left of `|` is lost and the build goes on.
- consecutive `run` entries of one command each: each is a layer; join them.
- a registry base without a tag, or tagged `:latest`: the base changes under you (bg
  pins the digest it resolved in the lock, but a fresh clone resolves it again).
- args or env whose name looks like a secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
  `*PASSWD*`, `*_KEY`) or whose value looks like a credential: both end up in
  `docker history` and the image config; use `secrets = [...]`.
- a shipped image stage whose effective user is root. bg itself runs run stages as the
  invoking user whatever the image says, so this rule is about shipping the image.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from buildgraph import lint_commands as cmd
from buildgraph.core.graph import Graph
from buildgraph.core.spec import ImageRef, ImageStage, Mount, Spec, StageRef
from buildgraph.lint_shell import Command, commands

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|_KEY$|^KEY$", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"^(gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|xox[abp]-\S+|hf_[A-Za-z]{20,})"
)
_ROOT = {"", "root", "0", "0:0", "root:root"}
_APT_LISTS = "/var/lib/apt/lists"
_TESTS = {"[", "[[", "test", "true", "false", ":"}  # hadolint does not count them as commands

# bg rule → the hadolint rule that checks the same thing (where there is one).
HADOLINT = {
    "unpinned-base": "DL3006",
    "latest-base": "DL3007",
    "pip-cache": "DL3042",
    "pip-pin": "DL3013",
    "apt-lists": "DL3009",
    "apt-recommends": "DL3015",
    "apt-yes": "DL3014",
    "apt-pin": "DL3008",
    "apk-cache": "DL3019",
    "apk-pin": "DL3018",
    "pipefail": "DL4006",
    "merge-runs": "DL3059",
    "root-user": "DL3002",
}


@dataclass(frozen=True)
class LintWarning:
    stage: str  # "" for a project-level field (`args.NAME`)
    field: str  # key path inside the stage, e.g. "run[1]", "from", "env.API_TOKEN"
    message: str
    fix: str
    rule: str = ""  # e.g. "pip-cache"; `HADOLINT[rule]` is hadolint's code for it

    @property
    def where(self) -> str:
        return f"stages.{self.stage}.{self.field}" if self.stage else self.field

    def render(self, file: str = "Buildfile.toml") -> str:
        return f"{file}: {self.where}: {self.message}"


@dataclass(frozen=True)
class Scope:
    """What the graph says about the image stages: which ones, and whose layers, are shipped."""

    spec: Spec
    shipped: frozenset[str]
    shipped_layers: frozenset[str]

    @classmethod
    def of(cls, spec: Spec) -> Scope:
        graph = Graph(spec)
        run_images = {s.image for s in spec.run_stages()}
        images = {s.name for s in spec.image_stages()}
        shipped = {n for n in images if n in run_images or not images & set(graph.downstreams(n))}
        layers = {s.name for n in shipped for s in _ancestry(spec, spec.stages[n])}  # type: ignore[arg-type]
        return cls(spec, frozenset(shipped), frozenset(layers))


Rule = Callable[[Scope, ImageStage], Iterator[LintWarning]]


def lint(spec: Spec) -> list[LintWarning]:
    """Every warning for `spec`'s image stages, in stage order then rule order."""
    scope = Scope.of(spec)
    found = [w for stage in spec.image_stages() for rule in RULES for w in rule(scope, stage)]
    return found + list(_secret_args(spec))


def _entries(stage: ImageStage) -> list[tuple[str, tuple[Mount, ...]]]:
    """Each `run` entry with its mounts (`run_mounts` is empty when no entry has any)."""
    mounts = stage.run_mounts or ((),) * len(stage.run)
    return list(zip(stage.run, mounts, strict=True))


def _commands(stage: ImageStage, cache: str = "") -> Iterator[tuple[int, list[Command]]]:
    """Each entry's commands; with `cache`, not those of entries with a cache mount on that path
    (what is written there stays out of the image)."""
    for i, (text, mounts) in enumerate(_entries(stage)):
        if not (cache and _cache_mounted(mounts, cache)):
            yield i, commands(text)


def _cache_mounted(mounts: tuple[Mount, ...], path: str) -> bool:
    return any(m.type == "cache" and path in m.target for m in mounts)


def _env(scope: Scope, stage: ImageStage, command: Command) -> dict[str, str]:
    """What a command sees in its environment, as far as lint knows: env, stage args, inline."""
    pairs = [p for s in reversed(_ancestry(scope.spec, stage)) for p in s.env]
    return dict(pairs + list(stage.args) + list(command.assigns))


def _warn(stage: ImageStage, i: int, rule: str, message: str, fix: str) -> LintWarning:
    return LintWarning(stage.name, f"run[{i}]", message, fix, rule)


def _pip_cache(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    if stage.name not in scope.shipped_layers:
        return
    for i, found in _commands(stage, cache="/.cache/pip"):
        for command in found:
            args = cmd.pip_install(command)
            if args is None or cmd.pip_no_cache(cmd.pip_args(command) or ()):
                continue
            if not _env(scope, stage, command).get("PIP_NO_CACHE_DIR"):
                yield _warn(
                    stage,
                    i,
                    "pip-cache",
                    "pip install keeps its download cache in the image",
                    'add --no-cache-dir (or set env PIP_NO_CACHE_DIR = "1")',
                )
                break


def _cleanup_after(
    found: list[Command], used: Callable[[Command], bool], cleans: Callable[[Command], bool]
) -> bool:
    """Whether, in one `run` entry, no command `used` is left without a `cleans` after it."""
    last_use = max((k for k, c in enumerate(found) if used(c)), default=-1)
    return last_use < 0 or any(cleans(c) for c in found[last_use + 1 :])


def _apt_lists(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    if stage.name not in scope.shipped_layers:
        return
    for i, found in _commands(stage, cache=_APT_LISTS):
        if not _cleanup_after(found, _apt_fetches, _apt_cleans):
            yield _warn(
                stage,
                i,
                "apt-lists",
                "apt-get leaves its package lists in the image",
                "end the same command with && rm -rf /var/lib/apt/lists/*",
            )


def _apt_fetches(command: Command) -> bool:
    """`apt-get update` writes the lists; an install without it reuses those of an earlier layer."""
    return cmd.apt(command)[0] == "update"


def _apt_cleans(command: Command) -> bool:
    return cmd.removes(command, _APT_LISTS) or cmd.apt(command)[0] in ("distclean", "dist-clean")


def _apt_install(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    """-y, --no-install-recommends, DEBIAN_FRONTEND and pins, for each `apt-get install`."""
    for i, found in _commands(stage):
        installs = [c for c in found if cmd.apt(c)[0] == "install"]
        yield from _apt_checks(scope, stage, i, installs)


def _apt_checks(scope: Scope, stage: ImageStage, i: int, installs: list[Command]) -> Iterator[LintWarning]:
    if any(not cmd.apt_yes(c) for c in installs):
        yield _warn(stage, i, "apt-yes", "apt-get install without -y stops at its question", "add -y")
    if stage.name in scope.shipped_layers and any(not cmd.apt_no_recommends(c) for c in installs):
        yield _warn(
            stage,
            i,
            "apt-recommends",
            "apt-get install also installs recommended packages",
            "add --no-install-recommends (and name what you need)",
        )
    if any(_env(scope, stage, c).get("DEBIAN_FRONTEND") != "noninteractive" for c in installs):
        yield _warn(
            stage,
            i,
            "apt-noninteractive",
            "apt-get install may stop at an interactive question",
            'add args = { DEBIAN_FRONTEND = "noninteractive" } to the stage (or prefix the command with it)',
        )
    unpinned = [p for c in installs for p in cmd.apt_unpinned(cmd.apt(c)[1])]
    if unpinned:
        yield _unpinned(stage, i, "apt-pin", "apt-get install", unpinned, "pkg=VERSION")


def _unpinned(stage: ImageStage, i: int, rule: str, what: str, packages: list[str], form: str) -> LintWarning:
    named = ", ".join(packages[:3]) + (", …" if len(packages) > 3 else "")
    return _warn(
        stage,
        i,
        rule,
        f"{what} of packages with no version ({named}): a rebuild may install others",
        f"pin each as {form}",
    )


def _pip_pin(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    for i, found in _commands(stage):
        unpinned = [p for c in found for p in cmd.pip_unpinned(cmd.pip_install(c) or [])]
        if unpinned:
            yield _unpinned(stage, i, "pip-pin", "pip install", unpinned, "pkg==VERSION (or -r a file)")


def _apk(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    entries = _entries(stage)
    for i, found in _commands(stage):
        adds = [c for c in found if cmd.apk_add(c) is not None]
        kept = stage.name in scope.shipped_layers and not _cache_mounted(entries[i][1], "/var/cache/apk")
        if kept and not _cleanup_after(found, _apk_caches, _apk_cleans):
            yield _warn(stage, i, "apk-cache", "apk add keeps its index in the image", "add --no-cache")
        unpinned = [p for c in adds for p in cmd.apk_unpinned(cmd.apk_add(c) or [])]
        if unpinned:
            yield _unpinned(stage, i, "apk-pin", "apk add", unpinned, "pkg=VERSION")


def _conda(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    for i, found in _commands(stage):
        installs = [c for c in found if cmd.conda_install(c) is not None]
        shipped = stage.name in scope.shipped_layers
        if shipped and not _cleanup_after(found, _conda_fetches, cmd.is_conda_clean):
            yield _warn(
                stage,
                i,
                "conda-clean",
                "conda install leaves its package cache in the image",
                "end the same command with && conda clean -afy",
            )
        unpinned = [p for c in installs for p in cmd.conda_unpinned(cmd.conda_install(c) or [])]
        if unpinned:
            yield _unpinned(stage, i, "conda-pin", "conda install", unpinned, "pkg=VERSION")


def _apk_caches(command: Command) -> bool:
    return cmd.apk_add(command) is not None and "--no-cache" not in command.words


def _apk_cleans(command: Command) -> bool:
    return cmd.removes(command, "/var/cache/apk")


def _conda_fetches(command: Command) -> bool:
    return cmd.conda_install(command) is not None


def _pipefail(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    if _shell_has_pipefail(scope, stage):
        return
    for i, found in _commands(stage):
        first_pipe = next((k for k, c in enumerate(found) if c.piped), None)
        if first_pipe is not None and not any(cmd.sets_pipefail(c) for c in found[:first_pipe]):
            yield _warn(
                stage,
                i,
                "pipefail",
                "a failure on the left of | is ignored: the build goes on",
                'set shell = ["/bin/bash", "-o", "pipefail", "-c"] on the stage',
            )


def _shell_has_pipefail(scope: Scope, stage: ImageStage) -> bool:
    """The stage's `shell` (or the nearest ancestor's, as Docker inherits SHELL) sets pipefail."""
    shell = next((s.shell for s in _ancestry(scope.spec, stage) if s.shell), ())
    pairs = zip(shell, shell[1:], strict=False)
    return any(w.startswith("-") and w.endswith("o") and after == "pipefail" for w, after in pairs)


def _merge_runs(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    """hadolint DL3059's rule: two single-command entries in a row, with the same mounts, could be one
    layer (entries that chain commands were most likely split on purpose)."""
    if stage.name not in scope.shipped_layers:
        return
    entries = _entries(stage)
    sizes = [sum(c.program not in _TESTS for c in commands(text)) for text, _ in entries]
    for i in range(1, len(entries)):
        if entries[i][1] == entries[i - 1][1] and sizes[i] == sizes[i - 1] == 1:
            yield _warn(
                stage,
                i,
                "merge-runs",
                f"run[{i - 1}] and run[{i}] each make a layer",
                f"join them into one entry with && (files run[{i}] deletes stay in run[{i - 1}]'s layer)",
            )


def _unpinned_base(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
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
            "latest-base" if tag else "unpinned-base",
        )


def _secret_env(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    for name, value in stage.env:
        if _looks_secret(name, value):
            yield _secret_warning(stage.name, f"env.{name}", name)


def _root_user(scope: Scope, stage: ImageStage) -> Iterator[LintWarning]:
    if stage.name not in scope.shipped:
        return
    user = next((s.user for s in _ancestry(scope.spec, stage) if s.user), "")
    if user.strip() in _ROOT:
        yield LintWarning(
            stage.name,
            "user",
            "the image runs as root when shipped",
            'set user = "1000:1000" on this stage (bg runs run stages as you either way)',
            "root-user",
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
        "secret",
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


RULES: tuple[Rule, ...] = (
    _unpinned_base,
    _pip_cache,
    _pip_pin,
    _apt_lists,
    _apt_install,
    _apk,
    _conda,
    _pipefail,
    _merge_runs,
    _secret_env,
    _root_user,
)
