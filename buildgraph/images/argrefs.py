"""Args kept as `${NAME}` in an exported Dockerfile, so that `docker build --build-arg` works (pure).

bg interpolates `${NAME}` when it reads the Buildfile. `bg dockerfile` writes a string as it
was written instead (`ImageStage.templates`), each reference left to whatever substitutes it
in a Dockerfile, with the ARG's default standing for the Buildfile's value:

- Docker itself in FROM, ENV, LABEL, WORKDIR, USER and COPY paths: `${NAME}`;
- the shell in RUN, where the ARG is an environment variable: `${NAME}`, or `'"${NAME}"'`
  inside single quotes, where the shell would not expand it;
- nothing in ENTRYPOINT, CMD (exec form) and `--chown`: they keep the value.

A reference is kept only where the result is certain to be what bg builds; elsewhere the
value is written, as bg interpolated it:
- an arg whose value is not plain (`[A-Za-z0-9_.,:/@%+=^-]*`): a space, quote, `$` or `;`
  reads differently as the shell's data than as part of the command;
- an arg named like an `env` variable of the chain: Docker lets an ENV override an ARG;
- a field bg normalised after interpolating (a `copy` source loses its trailing `/`);
- in RUN, after a backslash, and after `$(`, a backtick, a heredoc or a comment, whose
  quoting this module does not follow.

Not known here: the base image's own ENV. An arg named like one of them (`PYTHON_VERSION`
in the `python` images) is overridden by it in the exported file; name args apart from them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set

from buildgraph.core.interpolate import ArgRef, arg_parts
from buildgraph.core.spec import ImageStage

Parts = tuple[str | ArgRef, ...]
PLAIN = re.compile(r"[A-Za-z0-9_.,:/@%+=^-]*")
_UNFOLLOWED = re.compile(r"\$\(|`|<<|(?:^|(?<=\s))#")


def body_args(stage: ImageStage) -> set[str]:
    """The args the stage's strings other than `from` refer to: those a Dockerfile must declare
    inside the stage (a FROM line sees the ARGs before it, and they stay out of every RUN's
    environment unless declared again, as in Docker). A stage made in code, with no templates:
    all it used."""
    if not stage.templates:
        return set(stage.args_used)
    return {
        part.name
        for where, raw in stage.templates
        if where != "from"
        for part in arg_parts(raw)
        if isinstance(part, ArgRef)
    }


class Values:
    """Field values as Dockerfile text the way bg builds them: interpolated."""

    def docker(self, where: str, value: str) -> str:
        return value

    def shell(self, where: str, value: str) -> str:
        return value

    def kept(self, where: str, value: str) -> list[str]:
        """The args `docker(where, value)` refers to (none: values are interpolated)."""
        return []


class Templates(Values):
    """Field values of `stage` with their arg references kept (see the module docstring)."""

    def __init__(self, stage: ImageStage, args: Mapping[str, str], env_names: Set[str]) -> None:
        self.templates = dict(stage.templates)
        self.values = args
        self.env_names = env_names  # set by an `env` of the chain: an ENV overrides an ARG

    def docker(self, where: str, value: str) -> str:
        parts = self._parts(where, value)
        if parts is None:
            return value
        return "".join(p if isinstance(p, str) else self._kept(p, "${%s}") for p in parts)

    def shell(self, where: str, value: str) -> str:
        parts = self._parts(where, value)
        if parts is None:
            return value
        out: list[str] = []
        quote, sure = "", True  # the shell's quoting where the next part starts
        for part in parts:
            if isinstance(part, ArgRef) and sure:
                text = self._kept(part, "'\"${%s}\"'" if quote == "'" else "${%s}")
            else:
                text = part if isinstance(part, str) else self.values[part.name]
            quote, sure = _scan(text, quote, sure)  # a kept reference leaves the quoting as it was
            out.append(text)
        return "".join(out)

    def kept(self, where: str, value: str) -> list[str]:
        parts = self._parts(where, value) or ()
        return [p.name for p in parts if isinstance(p, ArgRef) and self._keeps(p)]

    def _parts(self, where: str, value: str) -> Parts | None:
        """The string at `where` as written, if it holds a reference and expands to `value`."""
        raw = self.templates.get(where)
        if raw is None and where.endswith("[0]"):  # a one-item list may be written as a string
            raw = self.templates.get(where[:-3])
        if raw is None:
            return None
        parts = arg_parts(raw)
        expanded = "".join(p if isinstance(p, str) else self.values.get(p.name, "") for p in parts)
        return parts if expanded == value and any(isinstance(p, ArgRef) for p in parts) else None

    def _keeps(self, ref: ArgRef) -> bool:
        return ref.name not in self.env_names and bool(PLAIN.fullmatch(self.values[ref.name]))

    def _kept(self, ref: ArgRef, form: str) -> str:
        return form % ref.name if self._keeps(ref) else self.values[ref.name]


def _scan(text: str, quote: str, sure: bool) -> tuple[str, bool]:
    """The shell's quoting ("", "'" or '"') after reading `text` from `quote`, and whether this
    module still knows it: not after syntax it does not follow, or a backslash escaping what comes next."""
    escaped = False
    for i, char in enumerate(text):
        if not sure:
            break
        if escaped:
            escaped = False
        elif quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            escaped = True
        elif char == '"':
            quote = "" if quote else '"'
        elif char == "'" and not quote:
            quote = "'"
        elif _UNFOLLOWED.match(text, i):
            sure = False
    return quote, sure and not escaped
