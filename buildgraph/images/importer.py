"""`bg import`: a Dockerfile → an equivalent Buildfile.toml, plus what could not be mapped.

The Dockerfile is read by `dfsyntax.read`, which refuses what Docker refuses (no FROM, an
unknown instruction, `ENV PATH` with no value), naming the line. Then, as Docker reads it:

- `RUN` reaches the shell untouched: every `${` is written `$${` so that bg leaves it alone,
  and the ARGs in scope are in the shell's environment (a stage's `args`), as in Docker —
  `ARG DEBIAN_FRONTEND=noninteractive` keeps apt non-interactive.
- Docker's own substitution (FROM ADD COPY ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR
  ONBUILD) and quote removal are applied here (`images.dfwords`): an arg becomes bg's `${X}`,
  an ENV seen earlier its value, anything else (the base image's `$HOME`) is left for Docker.
- `ARG` before the first FROM → `[args]` (a default that uses an earlier one is written as its
  value); `ARG` in a stage → the stage's `args` (re-declaring a global one: `X = "${X}"`);
  BuildKit's platform args are bg's automatic ones.
- `FROM image [AS name]` → an image stage `name` (unnamed: `stage0`, …); `FROM <stage>` and
  `COPY --from=<stage|index|image>` name the stage (or the image).
- `RUN --mount=type=cache|secret` → a run entry with `mounts`; `SHELL`, `EXPOSE`, `VOLUME`,
  `HEALTHCHECK`, `STOPSIGNAL`, `ONBUILD`, `CMD`/`ENTRYPOINT` (shell form: a string) map to keys.
- bg applies a stage's fields in a fixed order (args, env, shell, run, workdir, copy, user; see
  `images/dockerfile.py`). Where the Dockerfile's order differs — a `RUN` after a `COPY`, an
  `ENV` after a `RUN`, an `ARG` after a `RUN`, a second `WORKDIR` — the Dockerfile stage becomes
  a chain of image stages `name-1`, `name-2`, …, `name`, each built on the previous (each with
  the args in scope), so the image is the same. Metadata goes on the last one.

Every warning names its line. `COPY --link` is dropped without one: it changes how layers are
stacked, not the files.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from buildgraph.images import dfsyntax
from buildgraph.images.dfsyntax import Instruction
from buildgraph.images.dfwords import Known, Word, process, process_words

_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst)$")
_RANK = {"ENV": 0, "SHELL": 0, "RUN": 1, "WORKDIR": 2, "COPY": 3, "USER": 4}
PLATFORM_ARGS = frozenset(
    f"{p}{k}" for p in ("TARGET", "BUILD") for k in ("PLATFORM", "OS", "ARCH", "VARIANT")
)
_HEALTH_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")
_METADATA = ("expose", "volume", "healthcheck", "stopsignal", "onbuild", "entrypoint", "cmd", "labels")


@dataclass
class _Piece:
    """One bg image stage being filled; `rank` is the latest field kind applied."""

    base: str
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=list)
    run: list[Any] = field(default_factory=list)
    workdir: str = ""
    copy: list[dict[str, Any]] = field(default_factory=list)
    user: str = ""
    rank: int = 0


@dataclass
class _DockerStage:
    name: str
    pieces: list[_Piece]
    env: dict[str, Known]  # ENV so far (a parent stage's included): Docker substitutes them
    workdir: Known = Known("", "")  # effective WORKDIR so far ("" = the base image's, unknown)
    args: dict[str, Known] = field(default_factory=dict)  # ARGs declared in this stage so far
    meta: dict[str, Any] = field(default_factory=dict)
    cmd_line: int = 0  # of the last CMD


class _Importer:
    def __init__(self, file: str) -> None:
        self.file = file
        self.args: dict[str, str] = {}  # [args]: the ARGs before the first FROM
        self.stages: list[_DockerStage] = []
        self.warnings: list[str] = []
        self.escape = "\\"

    def warn(self, ins: Instruction | int, message: str) -> None:
        line = ins if isinstance(ins, int) else ins.line
        self.warnings.append(f"{self.file}:{line}: {message}")

    def read(self, text: str) -> None:
        parsed = dfsyntax.read(text, self.file)
        self.escape = parsed.escape
        for name, value in parsed.directives.items():
            # `docker/dockerfile:1…` is the builder's own frontend: nothing is lost without it.
            if name == "syntax" and not value.startswith("docker/dockerfile"):
                message = f"parser directive 'syntax={value}' is ignored: bg builds with the engine's builder"
                self.warn(1, message)
            elif name not in ("escape", "check", "syntax"):
                self.warn(1, f"parser directive '{name}' is ignored")
        for ins in parsed.instructions:
            self.instruction(ins)
        self.finish()

    def instruction(self, ins: Instruction) -> None:
        handler = getattr(self, "do_" + ins.keyword.lower(), None)
        if ins.heredoc:
            message = f"{ins.keyword} with a heredoc cannot be imported: write it as a script and copy it"
            self.warn(ins, message)
        elif handler is None:
            self.warn(ins, f"{ins.keyword} has no bg equivalent and was skipped")
        else:
            handler(ins)

    # -- words, as Docker substitutes them ---------------------------------------------

    def lookup(self, name: str) -> Known | None:
        """Inside a stage: an ENV wins over an ARG of the same name, as in Docker."""
        stage = self.stages[-1]
        return stage.env.get(name) or stage.args.get(name)

    def docker_lookup(self, name: str) -> Known | None:
        """ENV, LABEL, EXPOSE…: an ENV is left for Docker, which has it at that point of the build
        (substituted here, `PATH=/x:$PATH` in the next piece of a chain would expand twice)."""
        stage = self.stages[-1]
        return None if name in stage.env else stage.args.get(name)

    def global_lookup(self, name: str) -> Known | None:
        if name in self.args:
            return Known("${" + name + "}", self.args[name])
        return Known("${" + name + "}", "") if name in PLATFORM_ARGS else None

    def word(self, ins: Instruction, text: str, bg_resolves: bool = False, in_from: bool = False) -> str:
        return self.known(ins, text, bg_resolves, in_from).template

    def docker_word(self, ins: Instruction, text: str) -> str:
        word = process(text, self.docker_lookup, self.escape)
        self.report(ins, word, False)
        return word.template

    def known(self, ins: Instruction, text: str, bg_resolves: bool = False, in_from: bool = False) -> Known:
        word = process(text, self.global_lookup if in_from else self.lookup, self.escape)
        self.report(ins, word, bg_resolves or in_from)
        return Known(word.template, word.value)

    def known_words(self, ins: Instruction, bg_resolves: bool = False) -> list[Known]:
        """The arguments of a COPY/ADD/VOLUME: JSON items or whitespace-separated words."""
        if ins.json:
            return [self.known(ins, item, bg_resolves) for item in ins.args]
        words = process_words(ins.rest, self.lookup, self.escape)
        for word in words:
            self.report(ins, word, bg_resolves)
        return [Known(w.template, w.value) for w in words]

    def report(self, ins: Instruction, word: Word, bg_resolves: bool) -> None:
        for ref in word.decided:
            self.warn(ins, f"'{ref}' decided with the default values: --arg will not decide it again")
        if bg_resolves:
            for ref in word.unresolved:
                self.warn(ins, f"'{ref}' cannot be evaluated by bg here; write the value")

    # -- stages and args ----------------------------------------------------------------

    def do_from(self, ins: Instruction) -> None:
        flags, rest = dfsyntax.split_flags(ins.text, self.escape)
        for flag, value in flags:
            self.warn(ins, f"FROM --{flag}={value} is not supported and was dropped")
        parts = rest.split()
        image = self.word(ins, parts[0], in_from=True) if parts else ""
        named = len(parts) >= 3 and parts[1].lower() == "as"
        name = parts[2].lower() if named else f"stage{len(self.stages)}"
        parent = self.stage_named(image, len(self.stages))
        if image.lower() == "scratch":
            self.warn(ins, "FROM scratch has no bg equivalent; give the stage a real base image")
        base = parent.name if parent else image
        env = dict(parent.env) if parent else {}
        workdir = parent.workdir if parent else Known("", "")
        self.stages.append(_DockerStage(name, [_Piece(base)], env, workdir))

    def stage_named(self, name: str, earlier: int) -> _DockerStage | None:
        """One of the first `earlier` stages, by name or index (`COPY --from=0`)."""
        if name.isdigit() and int(name) < earlier:
            return self.stages[int(name)]
        return next((s for s in self.stages[:earlier] if s.name == name.lower()), None)

    def do_arg(self, ins: Instruction) -> None:
        for raw in ins.args:
            name, eq, default = raw.partition("=")
            if self.stages:
                self.stage_arg(ins, name, default if eq else None)
            else:
                self.global_arg(ins, name, default if eq else None)

    def global_arg(self, ins: Instruction, name: str, default: str | None) -> None:
        if default is None and name in PLATFORM_ARGS:
            return  # bg provides it, as BuildKit does
        word = process(default or "", self.global_lookup, self.escape)
        if word.template != word.value:
            self.warn(ins, f"ARG {name}'s default uses other args; [args] holds its value '{word.value}'")
        if name in self.args and default is not None and word.value != self.args[name]:
            self.warn(ins, f"ARG {name} declared again with another default; bg keeps '{self.args[name]}'")
            return
        # No default: "" in bg, unset in Docker: the same but for `${X-w}`, `${X+w}`.
        self.args.setdefault(name, word.value)

    def stage_arg(self, ins: Instruction, name: str, default: str | None) -> None:
        stage = self.stages[-1]
        if default is not None:
            word = process(default, self.lookup, self.escape)
            self.report(ins, word, False)
            known = Known(word.template, word.value)
        elif name in self.args or name in PLATFORM_ARGS:
            known = Known("${" + name + "}", self.args.get(name, ""))
        else:
            known = Known("", "")  # as for a global ARG with no default
        piece = stage.pieces[-1]
        if piece.run:  # the RUNs before this ARG must not see it
            piece = self.new_piece(stage)
        stage.args[name] = Known("${" + name + "}", known.value)
        piece.args[name] = known.template

    # -- filesystem instructions (ordered) ---------------------------------------------

    def new_piece(self, stage: _DockerStage) -> _Piece:
        piece = _Piece(base=f"@{len(stage.pieces) - 1}", args=dict(stage.pieces[-1].args))
        stage.pieces.append(piece)
        return piece

    def piece_for(self, keyword: str) -> _Piece:
        """The current piece, or a new one chained on it when `keyword` comes too late."""
        stage = self.stages[-1]
        piece = stage.pieces[-1]
        rank = _RANK[keyword]
        again = keyword in ("WORKDIR", "SHELL", "USER") and getattr(piece, keyword.lower())
        if rank < piece.rank or again:
            piece = self.new_piece(stage)
        piece.rank = rank
        return piece

    def do_env(self, ins: Instruction) -> None:
        stage = self.stages[-1]
        # All pairs of one ENV see the environment from before it, as in Docker.
        words = [(key, process(value, self.docker_lookup, self.escape)) for key, value in ins.pairs()]
        piece = self.piece_for("ENV")
        if any(key in piece.env for key, _ in words):
            # `env` is a table, one value a key: a second ENV of the same key (often
            # `ENV P=$P:/more`) goes to a chained stage, so that it sees the first one's value
            piece = self.new_piece(self.stages[-1])
            piece.rank = _RANK["ENV"]
        for key, word in words:
            self.report(ins, word, False)
            piece.env[key] = word.template
            stage.env[key] = Known(word.template, word.value)

    def do_shell(self, ins: Instruction) -> None:
        self.piece_for("SHELL").shell = list(ins.args)

    def do_run(self, ins: Instruction) -> None:
        mounts = [m for m in (self.mount(ins, f) for f in self.flags(ins, "RUN", ("mount",))) if m]
        command = _literal_dollars(shlex.join(ins.args) if ins.json else self.shell_text(ins))
        self.piece_for("RUN").run.append({"command": command, "mounts": mounts} if mounts else command)

    def shell_text(self, ins: Instruction) -> str:
        """The command with its line continuations kept where sh reads them as Docker joins them."""
        return ins.rest if self.escape != "\\" else dfsyntax.shell_lines(ins)

    def flags(self, ins: Instruction, keyword: str, kept: tuple[str, ...]) -> list[tuple[str, str]]:
        pairs = [(n.lower(), v) for n, _, v in (f[2:].partition("=") for f in ins.flags)]
        for name, value in pairs:
            if name not in kept and name != "link":
                self.warn(ins, f"{keyword} --{name}={value} is not supported and was dropped")
        return [(n, v) for n, v in pairs if n in kept]

    def mount(self, ins: Instruction, flag: tuple[str, str]) -> dict[str, str] | None:
        options = dict(part.partition("=")[::2] for part in flag[1].split(","))
        kind = options.get("type", "bind")
        target = options.get("target") or options.get("dst") or options.get("destination") or ""
        if kind == "cache" and target:
            found = {"type": "cache", "target": target}
            for name in ("id", "sharing"):  # two builds share a cache by id: dropping it would merge caches
                if options.get(name):
                    found[name] = options[name]
            return found
        if kind == "secret" and options.get("id"):
            if target or options.get("env"):
                self.warn(ins, "secret mounted elsewhere than /run/secrets/<id>; bg mounts it there")
            return {"type": "secret", "id": options["id"]}
        self.warn(ins, f"RUN --mount={flag[1]} cannot be expressed and was dropped")
        return None

    def do_workdir(self, ins: Instruction) -> None:
        stage = self.stages[-1]
        path = self.known(ins, ins.rest)
        if not _rooted(path.value):
            base = stage.workdir
            if not _rooted(base.value):
                where = f"WORKDIR '{path.template}'"
                self.warn(ins, f"{where} is relative to the base image's WORKDIR, taken to be /")
                base = Known("/", "/")
            path = Known(posixpath.join(base.template, path.template), posixpath.join(base.value, path.value))
        self.piece_for("WORKDIR").workdir = path.template
        stage.workdir = path

    def do_copy(self, ins: Instruction, keyword: str = "COPY") -> None:
        flags = dict(self.flags(ins, keyword, ("from", "chown") if keyword == "COPY" else ("chown",)))
        paths = self.known_words(ins)
        if len(paths) < 2:
            self.warn(ins, f"{keyword} needs a source and a destination")
            return
        entry: dict[str, Any] = {}
        if "from" in flags:
            source = self.stage_named(self.word(ins, flags["from"]), len(self.stages) - 1)
            entry["from"] = source.name if source else self.word(ins, flags["from"])
        sources = self.copy_sources(ins, keyword, paths[:-1], bool(entry))
        if sources:
            entry = {**entry, "src": sources, "dest": self.absolute_dest(ins, paths[-1])}
            if "chown" in flags:
                entry["chown"] = self.word(ins, flags["chown"])
            self.piece_for("COPY").copy.append(entry)

    def absolute_dest(self, ins: Instruction, dest: Known) -> str:
        """bg wants absolute destinations: resolve a relative one against the WORKDIR, as Docker does."""
        if _rooted(dest.value):
            return dest.template
        workdir = self.stages[-1].workdir
        if not _rooted(workdir.value):
            where = f"destination '{dest.template}'"
            self.warn(ins, f"{where} is relative to the base image's WORKDIR, taken to be /")
            workdir = Known("/" + workdir.template, "/")
        absolute = posixpath.normpath(posixpath.join(workdir.template, dest.template))
        directory = dest.template.endswith("/") or dest.template in (".", "..")
        return absolute + "/" if directory and absolute != "/" else absolute

    def copy_sources(
        self, ins: Instruction, keyword: str, paths: list[Known], other_image: bool
    ) -> list[str]:
        kept = []
        for path in paths:
            source = path.template
            if re.match(r"^[a-z]+://|^git@", source):
                self.warn(ins, f"{keyword} of a URL ({source}) cannot be mapped: download it in a run stage")
                continue
            if keyword == "ADD" and _ARCHIVE.search(source):
                self.warn(ins, f"ADD {source}: Docker extracts archives, bg copies the file as it is")
            if "$" in source and not path.value.strip("/."):
                self.warn(ins, f"{keyword} source '{source}' is empty with the args' defaults: pass --arg")
            elif not other_image and "$" in path.value:
                self.warn(ins, f"{keyword} source '{source}' uses a variable bg cannot know")
            if not other_image:
                # the build context is the root of a COPY source: Docker reads `/x` as `x`
                source = posixpath.normpath(source).lstrip("/") or "."
            kept.append(source)
        return kept

    def do_add(self, ins: Instruction) -> None:
        self.do_copy(ins, "ADD")

    def do_user(self, ins: Instruction) -> None:
        self.piece_for("USER").user = self.word(ins, ins.rest)

    # -- metadata (order-free: kept on the Docker stage's last piece) ---------------------

    def do_entrypoint(self, ins: Instruction) -> None:
        self.stages[-1].meta["entrypoint"] = _process(ins)

    def do_cmd(self, ins: Instruction) -> None:
        stage = self.stages[-1]
        stage.meta["cmd"] = _process(ins)
        stage.cmd_line = ins.line

    def finish(self) -> None:
        for stage in self.stages:
            # `CMD []` clears the base image's CMD; so does an ENTRYPOINT, which bg writes
            if stage.meta.get("cmd") == [] and "entrypoint" not in stage.meta:
                self.warn(stage.cmd_line, "CMD [] (clearing the base image's CMD) cannot be expressed")

    def do_label(self, ins: Instruction) -> None:
        labels = self.stages[-1].meta.setdefault("labels", {})
        for key, value in ins.pairs():
            labels[self.docker_word(ins, key)] = self.docker_word(ins, value)

    def do_maintainer(self, ins: Instruction) -> None:
        authors = "org.opencontainers.image.authors"
        self.warn(ins, f"MAINTAINER sets the image's Author field; bg writes the label {authors}")
        self.stages[-1].meta.setdefault("labels", {})["org.opencontainers.image.authors"] = ins.rest

    def do_expose(self, ins: Instruction) -> None:
        ports = [p.template for p in self.known_words(ins)]
        self.stages[-1].meta.setdefault("expose", []).extend(ports)

    def do_volume(self, ins: Instruction) -> None:
        paths = [p.template for p in self.known_words(ins)]
        self.stages[-1].meta.setdefault("volume", []).extend(paths)

    def do_stopsignal(self, ins: Instruction) -> None:
        self.stages[-1].meta["stopsignal"] = self.docker_word(ins, ins.rest)

    def do_onbuild(self, ins: Instruction) -> None:
        self.stages[-1].meta.setdefault("onbuild", []).append(ins.rest)

    def do_healthcheck(self, ins: Instruction) -> None:
        check: dict[str, Any] = {}
        for name, value in self.flags(ins, "HEALTHCHECK", _HEALTH_FLAGS):
            check[name.replace("-", "_")] = int(value) if name == "retries" and value.isdigit() else value
        kind = ins.args[0].upper() if ins.args else "NONE"
        command: Any = list(ins.args[1:]) if ins.json else " ".join(ins.args[1:])
        check["test"] = "NONE" if kind == "NONE" else command
        self.stages[-1].meta["healthcheck"] = check


def _process(ins: Instruction) -> list[str] | str:
    """ENTRYPOINT / CMD as written: a list (exec form) or a string (shell form); Docker
    substitutes no variables in them, so neither may bg."""
    return [_literal_dollars(a) for a in ins.args] if ins.json else _literal_dollars(ins.rest)


def _literal_dollars(command: str) -> str:
    """A shell command as a Buildfile string that bg does not interpolate: `${` → `$${`."""
    return command.replace("${", "$${")


def import_dockerfile(
    text: str, file: str = "Dockerfile", project: str = "imported"
) -> tuple[str, list[str]]:
    """The Buildfile.toml for a Dockerfile's `text`, and a warning per thing not mapped.

    Raises BuildfileError (naming the line) for a file Docker would refuse to build."""
    import tomli_w

    importer = _Importer(file)
    importer.read(text)
    document: dict[str, Any] = {"project": {"name": project}}
    if importer.args:
        document["args"] = dict(importer.args)
    document["stages"] = _stages_table(importer.stages)
    header = [f"# Imported from {file} by `bg import`."]
    header += [f"# warning: {w}" for w in importer.warnings]
    body = tomli_w.dumps(document, multiline_strings=True)
    return "\n".join(header) + "\n\n" + body, importer.warnings


def _stages_table(stages: list[_DockerStage]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for stage in stages:
        names = [f"{stage.name}-{i + 1}" for i in range(len(stage.pieces) - 1)] + [stage.name]
        for i, piece in enumerate(stage.pieces):
            base = names[int(piece.base[1:])] if piece.base.startswith("@") else piece.base
            table[names[i]] = _piece_table(piece, base)
        table[stage.name] |= {k: stage.meta[k] for k in _METADATA if k in stage.meta}
    return table


def _piece_table(piece: _Piece, base: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"from": base, "args": piece.args, "env": piece.env, "shell": piece.shell}
    fields |= {"run": piece.run, "workdir": piece.workdir, "copy": piece.copy, "user": piece.user}
    return {k: v for k, v in fields.items() if v}


def _rooted(value: str) -> bool:
    """Absolute, or starting with a variable only the base image knows (`${HOME}`, `$CONDA_DIR`):
    Docker substitutes it first and joins only a relative result, so bg must not join it either."""
    return value.startswith("/") or bool(re.match(r"\$(\{)?[A-Za-z_]", value))
