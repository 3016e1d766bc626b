"""What a Dockerfile builds, instruction by instruction, after Docker's own normalisation.

Used by test_import_corpus.py to compare a real Dockerfile with what `bg import` + `bg dockerfile`
give back. Both files are read by `dfsyntax.parse` (BuildKit's parser, conformance-tested) and
evaluated the way Docker's dispatcher evaluates them:

- variables substituted where Docker substitutes them (FROM with the ARGs before the first FROM;
  ENV, LABEL, WORKDIR, USER, COPY/ADD paths and --chown with the stage's ARGs and ENV); a
  variable neither file declares (the base image's `$HOME`) stays a reference;
- quotes removed; ENV and LABEL one pair at a time; WORKDIR and COPY destinations made absolute;
- ARG is not an instruction here: each RUN carries the ARGs it sees in its environment (not
  shadowed by an ENV), an ARG with no default counting as "" and BuildKit's platform args as
  whatever the platform is; SHELL is carried by each RUN too;
- `ADD` of a local file that is not an archive is `COPY`; exec-form RUN is its shell-quoted argv;
- metadata (LABEL, EXPOSE, VOLUME, CMD, ENTRYPOINT, HEALTHCHECK, STOPSIGNAL, ONBUILD, MAINTAINER)
  is compared as the image config it ends in, not by position.

An exported stage that `bg import` split into a chain (`name-1`, …, `name`) is read as one stage.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildgraph.core.spec import ImageStage, Spec
from buildgraph.images import dfsyntax
from buildgraph.images.dfwords import Known, process, process_words

PLATFORM_ARGS = {f"{p}{k}" for p in ("TARGET", "BUILD") for k in ("PLATFORM", "OS", "ARCH", "VARIANT")}
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst)$")
_METADATA = {
    "LABEL", "EXPOSE", "VOLUME", "CMD", "ENTRYPOINT", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD", "MAINTAINER"
}
_CHAIN = re.compile(r"^(?P<stage>.+)-(?P<n>[0-9]+)$")


@dataclass
class Stage:
    name: str
    base: tuple[str, str]  # ("stage", name) or ("image", reference)
    line: int
    steps: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)  # (line, normalised)
    meta: dict[str, tuple[int, Any]] = field(default_factory=dict)  # key → (line, value)
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    shell: tuple[str, ...] = ("/bin/sh", "-c")


def read(text: str) -> list[Stage]:
    """The stages of a Dockerfile, evaluated (see the module docstring)."""
    parsed = dfsyntax.parse(text)
    reader = _Reader(parsed.escape)
    for ins in parsed.instructions:
        reader.instruction(ins)
    return reader.stages


def merged(stages: list[Stage], target: str) -> Stage:
    """`target` of an exported file, the chain pieces bg split it into read as one stage."""
    pieces = [s for s in stages if s.name == target or _piece_of(s.name) == target]
    first = pieces[0]
    out = Stage(target, first.base, first.line)
    for piece in pieces:
        out.steps += piece.steps
        out.meta |= piece.meta
    return out


def _piece_of(name: str) -> str:
    match = _CHAIN.match(name)
    return match.group("stage") if match else ""


class _Reader:
    def __init__(self, escape: str) -> None:
        self.escape = escape
        self.globals: dict[str, str] = {}
        self.stages: list[Stage] = []

    @property
    def stage(self) -> Stage:
        return self.stages[-1]

    def lookup(self, name: str) -> Known | None:
        value = self.stage.env.get(name, self.stage.args.get(name))
        return None if value is None else Known(value, value)

    def value(self, text: str, words: bool = False) -> Any:
        if words:
            return [w.value for w in process_words(text, self.lookup, self.escape)]
        return process(text, self.lookup, self.escape).value

    def instruction(self, ins: dfsyntax.Instruction) -> None:
        keyword = ins.keyword
        if keyword == "FROM":
            self.from_(ins)
        elif keyword == "ARG":
            self.arg(ins)
        elif keyword in _METADATA:
            self.metadata(ins)
        else:
            getattr(self, keyword.lower())(ins)

    def from_(self, ins: dfsyntax.Instruction) -> None:
        _, rest = dfsyntax.split_flags(ins.text, self.escape)
        parts = rest.split()
        glob = {n: Known(v, v) for n, v in self.globals.items()}
        image = process(parts[0], glob.get, self.escape).value
        name = parts[2].lower() if len(parts) >= 3 else f"stage{len(self.stages)}"
        parent = next((s for s in self.stages if s.name == image.lower()), None)
        stage = Stage(name, ("stage", parent.name) if parent else ("image", image), ins.line)
        if parent:
            stage.env, stage.workdir, stage.shell = dict(parent.env), parent.workdir, parent.shell
        self.stages.append(stage)

    def arg(self, ins: dfsyntax.Instruction) -> None:
        for raw in ins.args:
            name, eq, default = raw.partition("=")
            if not self.stages:
                glob = {n: Known(v, v) for n, v in self.globals.items()}
                self.globals.setdefault(name, process(default, glob.get, self.escape).value)
            elif eq:
                self.stage.args[name] = self.value(default)
            else:
                self.stage.args[name] = self.globals.get(name, "")
            if self.stages and name in PLATFORM_ARGS:
                self.stage.args[name] = "<platform>"

    def step(self, ins: dfsyntax.Instruction, *normalised: Any) -> None:
        self.stage.steps.append((ins.line, normalised))

    def env(self, ins: dfsyntax.Instruction) -> None:
        pairs = [(k, self.value(v)) for k, v in ins.pairs()]  # each sees the env from before
        for key, value in pairs:
            self.stage.env[key] = value
            self.step(ins, "ENV", key, value)

    def shell(self, ins: dfsyntax.Instruction) -> None:
        self.stage.shell = tuple(ins.args)

    def run(self, ins: dfsyntax.Instruction) -> None:
        command = shlex.join(ins.args) if ins.json else ins.rest
        mounts = tuple(sorted(f for f in ins.flags if f.startswith("--mount=")))
        seen = tuple(sorted((k, v) for k, v in self.stage.args.items() if k not in self.stage.env))
        self.step(ins, "RUN", command, mounts, seen, self.stage.shell)

    def workdir(self, ins: dfsyntax.Instruction) -> None:
        self.stage.workdir = posixpath.join(self.stage.workdir or "/", self.value(ins.rest))
        self.step(ins, "WORKDIR", posixpath.normpath(self.stage.workdir))

    def user(self, ins: dfsyntax.Instruction) -> None:
        self.step(ins, "USER", self.value(ins.rest))

    def copy(self, ins: dfsyntax.Instruction, keyword: str = "COPY") -> None:
        flags = dict(f[2:].partition("=")[::2] for f in ins.flags if not f.startswith("--link"))
        paths = [self.value(p) for p in ins.args] if ins.json else self.value(ins.rest, words=True)
        sources = tuple(p if "from" in flags else posixpath.normpath(p) for p in paths[:-1])
        if keyword == "ADD" and any(re.match(r"^[a-z]+://", s) or _ARCHIVE.search(s) for s in sources):
            keyword = "ADD-special"  # downloads or extracts: not a COPY
        dest = paths[-1]
        directory = dest.endswith("/") or dest in (".", "..")
        dest = posixpath.normpath(posixpath.join(self.stage.workdir or "/", dest)) + ("/" * directory)
        options = tuple(sorted((k, self.value(v)) for k, v in flags.items()))
        self.step(ins, "COPY" if keyword == "ADD" else keyword, sources, dest.replace("//", "/"), options)

    def add(self, ins: dfsyntax.Instruction) -> None:
        self.copy(ins, "ADD")

    def metadata(self, ins: dfsyntax.Instruction) -> None:
        meta = self.stage.meta
        keyword = ins.keyword
        if keyword in ("LABEL", "MAINTAINER"):
            pairs = ins.pairs() if keyword == "LABEL" else [("org.opencontainers.image.authors", ins.rest)]
            for key, value in pairs:
                meta[f"label:{self.value(key)}"] = (ins.line, self.value(value))
        elif keyword in ("EXPOSE", "VOLUME"):
            items = list(ins.args) if ins.json else self.value(ins.rest, words=True)
            for item in items:
                meta[f"{keyword}:{self.value(item)}"] = (ins.line, True)
        elif keyword in ("CMD", "ENTRYPOINT"):
            argv = list(ins.args) if ins.json else [*self.stage.shell, ins.rest]
            meta[keyword] = (ins.line, argv)
            if keyword == "ENTRYPOINT":  # it clears an inherited CMD: as `CMD []` does
                meta.setdefault("CMD", (ins.line, []))
        elif keyword == "HEALTHCHECK":
            meta[keyword] = (ins.line, _health_config(ins))
        else:
            meta[keyword] = (ins.line, json.dumps([ins.flags, ins.rest]))


def _health_config(ins: dfsyntax.Instruction) -> str:
    """A HEALTHCHECK as the image's Healthcheck config: flags in any order, a zero duration or
    retry count being Docker's default, as is an absent flag."""
    if ins.args[0].upper() == "NONE":
        return json.dumps(["NONE"])
    options = dict(f[2:].partition("=")[::2] for f in ins.flags)
    kept = sorted((k, v) for k, v in options.items() if v.strip("0smhun") or not v)
    test = ["CMD", *ins.args[1:]] if ins.json else ["CMD-SHELL", " ".join(ins.args[1:])]
    return json.dumps([kept, test])


def stub_sources(root: Path, spec: Spec) -> None:
    """A stub file for each project `copy` source of `spec` under `root` (the build context a user
    would import in): `*`/`?` → x, `[ab]` → a, a trailing `/` → a folder holding one file."""
    for stage in spec.stages.values():
        for copy in stage.copy if isinstance(stage, ImageStage) else ():
            if getattr(copy, "image", "") or getattr(copy, "from_stage", "") or copy.sources == (".",):
                continue
            for source in copy.sources:
                name = re.sub(r"\[!?([^]])[^]]*\]", r"\1", re.sub(r"[*?]", "x", source))
                target = root / name.strip("/")
                _stub(root, target / "file" if source.endswith("/") else target)


def _stub(root: Path, target: Path) -> None:
    """A stub file at `target`; a stub standing where a folder must be (`COPY server …` then
    `COPY server/Makefile …`) becomes that folder."""
    for parent in reversed(target.relative_to(root).parents):
        folder = root / parent
        if folder.is_file():
            folder.unlink()
        folder.mkdir(exist_ok=True)
    if not target.exists():
        target.write_text("stub\n")
