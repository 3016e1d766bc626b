"""`bg import`: a Dockerfile → an equivalent Buildfile.toml, plus what could not be mapped.

Mapping (everything else is named in a warning with its line number):

- `ARG` before the first `FROM` → `[args]`; `${X}`/`$X` of a visible arg → bg's `${X}`;
  any other `${…}` is written `$${…}` so Docker, not bg, expands it.
- `FROM image [AS name]` → an image stage `name` (unnamed: `stage0`, `stage1`, …);
  `FROM <earlier stage>` → `from = "<stage>"`.
- `ENV` (both forms), `RUN` (shell form kept with its line continuations; exec form
  quoted for sh), `WORKDIR`, `COPY`/`ADD` (`--chown` kept), `USER`, `ENTRYPOINT`/`CMD`
  (always lists), `LABEL`, `MAINTAINER` (a label), `RUN --mount=type=secret` (secrets).
- bg applies a stage's fields in a fixed order (env, run, workdir, copy, user; see
  `images/dockerfile.py`). Where the Dockerfile's order differs — a `RUN` after a
  `COPY`, an `ENV` after a `RUN`, a second `WORKDIR` — the Dockerfile stage becomes a
  chain of image stages `name-1`, `name-2`, …, `name`, each built on the previous, so
  the image is the same. Metadata (`LABEL`, `ENTRYPOINT`, `CMD`) goes on the last one.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from buildgraph.core.interpolate import arg_parts
from buildgraph.images import dfsyntax
from buildgraph.images.dfsyntax import Instruction

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst)$")
_RANK = {"ENV": 0, "RUN": 1, "WORKDIR": 2, "COPY": 3, "USER": 4}


@dataclass
class _Piece:
    """One bg image stage being filled; `rank` is the latest field kind applied."""

    base: str
    env: dict[str, str] = field(default_factory=dict)
    run: list[str] = field(default_factory=list)
    workdir: str = ""
    copy: list[dict[str, Any]] = field(default_factory=list)
    user: str = ""
    secrets: list[str] = field(default_factory=list)
    rank: int = 0


@dataclass
class _DockerStage:
    name: str
    pieces: list[_Piece]
    scope: set[str]  # args visible to instructions of this stage
    workdir: str = ""  # effective WORKDIR so far ("" = the base image's, unknown)
    labels: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


class _Importer:
    def __init__(self, file: str) -> None:
        self.file = file
        self.args: dict[str, str] = {}
        self.stages: list[_DockerStage] = []
        self.warnings: list[str] = []
        self.escape = "\\"

    def warn(self, ins: Instruction | int, message: str) -> None:
        line = ins if isinstance(ins, int) else ins.line
        self.warnings.append(f"{self.file}:{line}: {message}")

    def read(self, text: str) -> None:
        parsed = dfsyntax.parse(text)
        self.escape = parsed.escape
        for name in parsed.directives:
            if name not in ("escape", "check"):
                self.warn(1, f"parser directive '{name}' is ignored: bg builds with the engine's builder")
        for ins in parsed.instructions:
            self.instruction(ins)

    def instruction(self, ins: Instruction) -> None:
        if ins.heredoc:
            self.warn(
                ins, f"{ins.keyword} with a heredoc cannot be imported: write it as a script and copy it"
            )
        elif ins.keyword == "FROM":
            self.from_(ins)
        elif ins.keyword == "ARG":
            self.arg(ins)
        elif not self.stages:
            self.warn(ins, f"{ins.keyword} before the first FROM is ignored")
        else:
            handler = getattr(self, ins.keyword.lower(), None)
            if handler is None or ins.keyword not in _HANDLED:
                self.warn(ins, f"{ins.keyword} has no bg equivalent and was skipped")
            else:
                handler(ins)

    # -- stages and args ----------------------------------------------------------

    def from_(self, ins: Instruction) -> None:
        flags, rest = dfsyntax.split_flags(ins.text)
        for flag, _ in flags:
            self.warn(ins, f"FROM --{flag} is not supported and was dropped")
        parts = rest.split()
        image = parts[0] if parts else ""
        name = (
            parts[2].lower() if len(parts) >= 3 and parts[1].lower() == "as" else f"stage{len(self.stages)}"
        )
        earlier = {s.name: s for s in self.stages}
        parent = earlier.get(image.lower())
        base = parent.name if parent else self.refs(ins, image, set(self.args))
        if image.lower() == "scratch":
            self.warn(ins, "FROM scratch has no bg equivalent; give the stage a real base image")
        self.stages.append(_DockerStage(name, [_Piece(base)], set(), parent.workdir if parent else ""))

    def arg(self, ins: Instruction) -> None:
        for word in dfsyntax.words(ins.text, self.escape):
            name, eq, default = word.partition("=")
            if name in self.args and eq and default != self.args[name]:
                self.warn(
                    ins, f"ARG {name} declared again with another default; bg keeps '{self.args[name]}'"
                )
            elif name not in self.args:
                self.args[name] = default
                if not eq:
                    self.warn(ins, f"ARG {name} has no default; set one in [args] or pass --arg {name}=…")
            if self.stages:
                self.stages[-1].scope.add(name)

    def refs(self, ins: Instruction, text: str, scope: set[str]) -> str:
        """Docker `$X`/`${X}` of visible args → bg `${X}`; other `${…}` escaped as `$${…}`."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(3)
            if name in scope:
                if match.group(2):
                    self.warn(
                        ins, f"'${{{name}{match.group(2)}}}' modifier dropped: bg substitutes the arg's value"
                    )
                return "${" + name + "}"
            return "$" + match.group(0) if match.group(1) else match.group(0)

        return _REF.sub(replace, text)

    # -- filesystem instructions (ordered) ---------------------------------------

    def piece_for(self, keyword: str) -> _Piece:
        """The current piece, or a new one chained on it when `keyword` comes too late."""
        stage = self.stages[-1]
        piece = stage.pieces[-1]
        rank = _RANK[keyword]
        if rank < piece.rank or (keyword == "WORKDIR" and piece.workdir):
            piece = _Piece(base=f"@{len(stage.pieces) - 1}")
            stage.pieces.append(piece)
        piece.rank = rank
        return piece

    def env(self, ins: Instruction) -> None:
        pairs = dfsyntax.split_assignments(ins.text, self.escape)
        if pairs is None:
            key, _, value = ins.text.partition(" ")
            pairs = [(key, " ".join(dfsyntax.words(value.strip(), self.escape)))]
        piece = self.piece_for("ENV")
        for key, value in pairs:
            piece.env[key] = self.refs(ins, value, self.stages[-1].scope)

    def run(self, ins: Instruction) -> None:
        flags, _ = dfsyntax.split_flags(ins.text)
        secrets = [self.secret_flag(ins, value) for flag, value in flags if flag == "mount"]
        for flag, value in flags:
            if flag != "mount":
                self.warn(ins, f"RUN --{flag}={value} is not supported and was dropped")
        command = self.run_command(ins, len(flags))
        piece = self.piece_for("RUN")
        piece.run.append(self.refs(ins, command, self.stages[-1].scope))
        piece.secrets += [s for s in secrets if s and s not in piece.secrets]

    def run_command(self, ins: Instruction, n_flags: int) -> str:
        _, text = dfsyntax.split_flags(ins.text)
        argv = dfsyntax.exec_form(text)
        if argv is not None:
            return shlex.join(argv)
        if self.escape != "\\" or len(ins.pieces) == 1:
            return text
        first = dfsyntax.split_flags(ins.pieces[0])[1] if n_flags else ins.pieces[0]
        lines = [first.rstrip(), *(p.rstrip() for p in ins.pieces[1:])]
        return " \\\n".join(line for line in lines if line.strip()).strip()

    def secret_flag(self, ins: Instruction, value: str) -> str:
        options = dict(part.partition("=")[::2] for part in value.split(","))
        if options.get("type") != "secret":
            self.warn(ins, f"RUN --mount={value} is not supported and was dropped")
            return ""
        if options.get("target") or options.get("dst") or options.get("env"):
            self.warn(ins, "secret mounted elsewhere than /run/secrets/<id>; bg mounts it there")
        return options.get("id", "")

    def workdir(self, ins: Instruction) -> None:
        stage = self.stages[-1]
        path = self.refs(ins, ins.text.strip(), stage.scope)
        if not self.absolute(path) and stage.workdir:
            path = posixpath.join(stage.workdir, path)
        self.piece_for("WORKDIR").workdir = stage.workdir = path

    def copy(self, ins: Instruction, add: bool = False) -> None:
        keyword = "ADD" if add else "COPY"
        flags, text = dfsyntax.split_flags(ins.text)
        entry: dict[str, Any] = {}
        for flag, value in flags:
            if flag == "from":
                self.warn(
                    ins, f"COPY --from={value} cannot be mapped: bg image stages do not copy between images"
                )
                return
            if flag == "chown":
                entry["chown"] = value
            else:
                self.warn(ins, f"{keyword} --{flag} is not supported and was dropped")
        paths = dfsyntax.exec_form(text) or dfsyntax.words(text, self.escape)
        if len(paths) < 2:
            self.warn(ins, f"{keyword} needs a source and a destination")
            return
        sources = self.copy_sources(ins, keyword, paths[:-1])
        if sources:
            scope = self.stages[-1].scope
            dest = self.absolute_dest(ins, self.refs(ins, paths[-1], scope))
            entry = {"src": [self.refs(ins, s, scope) for s in sources], "dest": dest, **entry}
            self.piece_for("COPY").copy.append(entry)

    def absolute_dest(self, ins: Instruction, dest: str) -> str:
        """bg wants absolute destinations: resolve a relative one against the WORKDIR, as Docker does."""
        if self.absolute(dest):
            return dest
        workdir = self.stages[-1].workdir
        if not self.absolute(workdir):
            self.warn(ins, f"destination '{dest}' is relative to the base image's WORKDIR, taken to be /")
            workdir = "/" + workdir
        absolute = posixpath.normpath(posixpath.join(workdir, dest))
        directory = dest.endswith("/") or dest in (".", "..")
        return absolute + "/" if directory and absolute != "/" else absolute

    def absolute(self, path: str) -> bool:
        """Whether `path` (bg's `${NAME}` in it) is absolute once the args take their defaults:
        `${PREFIX}/app` is, where PREFIX is `/opt`, as Docker would substitute it."""
        parts = arg_parts(path)
        return "".join(p if isinstance(p, str) else self.args.get(p.name, "") for p in parts).startswith("/")

    def copy_sources(self, ins: Instruction, keyword: str, sources: list[str]) -> list[str]:
        kept = []
        for source in sources:
            if re.match(r"^[a-z]+://|^git@", source):
                self.warn(ins, f"{keyword} of a URL ({source}) cannot be mapped: download it in a run stage")
            else:
                if keyword == "ADD" and _ARCHIVE.search(source):
                    self.warn(ins, f"ADD {source}: Docker extracts archives, bg copies the file as it is")
                kept.append(posixpath.normpath(source))
        return kept

    def add(self, ins: Instruction) -> None:
        self.copy(ins, add=True)

    def user(self, ins: Instruction) -> None:
        self.piece_for("USER").user = self.refs(ins, ins.text.strip(), self.stages[-1].scope)

    # -- metadata (order-free: kept on the Docker stage's last piece) ---------------

    def entrypoint(self, ins: Instruction) -> None:
        self.stages[-1].entrypoint = self.command_list(ins)

    def cmd(self, ins: Instruction) -> None:
        self.stages[-1].cmd = self.command_list(ins)

    def command_list(self, ins: Instruction) -> list[str]:
        argv = dfsyntax.exec_form(ins.text)
        return argv if argv is not None else ["/bin/sh", "-c", ins.text]

    def label(self, ins: Instruction) -> None:
        pairs = dfsyntax.split_assignments(ins.text, self.escape)
        if pairs is None:
            key, _, value = ins.text.partition(" ")
            pairs = [(key, " ".join(dfsyntax.words(value, self.escape)))]
        for key, value in pairs:
            self.stages[-1].labels[key] = self.refs(ins, value, self.stages[-1].scope)

    def maintainer(self, ins: Instruction) -> None:
        self.stages[-1].labels["org.opencontainers.image.authors"] = ins.text.strip()

    def expose(self, ins: Instruction) -> None:
        self.warn(ins, f"EXPOSE {ins.text} was skipped: bg has no ports; publish them when you run the image")


_HANDLED = {
    "ENV",
    "RUN",
    "WORKDIR",
    "COPY",
    "ADD",
    "USER",
    "ENTRYPOINT",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
}


def import_dockerfile(
    text: str, file: str = "Dockerfile", project: str = "imported"
) -> tuple[str, list[str]]:
    """The Buildfile.toml for a Dockerfile's `text`, and a warning per thing not mapped."""
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
        last = table[stage.name]
        if stage.entrypoint is not None:
            last["entrypoint"] = stage.entrypoint
        if stage.cmd is not None:
            last["cmd"] = stage.cmd
        if stage.labels:
            last["labels"] = stage.labels
    return table


def _piece_table(piece: _Piece, base: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"from": base, "env": piece.env, "run": piece.run, "workdir": piece.workdir}
    fields |= {"copy": piece.copy, "user": piece.user, "secrets": piece.secrets}
    return {k: v for k, v in fields.items() if v}
