"""`${NAME}` (an arg), `${params.name}` (a param) and `$${` (a literal `${`) in Buildfile strings.

Every string value of a stage is expanded once, at parse time. An `Expander` is made per stage
and remembers which args and params that stage used, because a stage's cache key includes
only those: changing an unused param must not rerun it. Shell variables stay available as
`$HOME` (no braces) or `$${HOME}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from buildgraph.core.spec import ParamValue
from buildgraph.core.suggest import closest

ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# `$${` first, so that it is consumed before `${` could match its second half.
_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}$]*)(?P<close>\}?)")
_LITERAL_HINT = "write $${ for a literal ${ (e.g. a shell variable: $${HOME} or $HOME)"


@dataclass(frozen=True)
class Issue:
    """A reference that cannot be expanded; the caller locates it."""

    message: str
    hint: str = ""


def param_text(value: ParamValue) -> str:
    """A param's value as it appears in an expanded string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class ArgRef:
    """`${NAME}` in a Buildfile string."""

    name: str


def arg_parts(text: str) -> tuple[str | ArgRef, ...]:
    """A string that expanded without issues, as literal text (`$${` read as `${`) and arg references.

    Joining the parts, each reference replaced by its arg's value, gives `Expander.expand`'s result.
    """
    parts: list[str | ArgRef] = []
    end = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[end : match.start()])
        body = match.group("body")
        if match.group(0) != "$${" and body is not None and ARG_NAME.fullmatch(body):
            parts.append(ArgRef(body))
        else:
            parts.append("${" if match.group(0) == "$${" else match.group(0))
        end = match.end()
    parts.append(text[end:])
    return _merged(parts)


def _merged(parts: list[str | ArgRef]) -> tuple[str | ArgRef, ...]:
    merged: list[str | ArgRef] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)


class Expander:
    """Expands references for one stage and records the args and params it used."""

    def __init__(
        self,
        args: Mapping[str, str],
        params: Mapping[str, ParamValue],
        params_allowed: bool = True,
        file_params: Mapping[str, str] | None = None,
    ) -> None:
        self._args = args
        self._params = params
        self._file_params = file_params or {}  # dotted key -> text, from the stage's params files
        self._params_allowed = params_allowed
        self.args_used: set[str] = set()
        self.params_used: set[str] = set()

    def with_file_params(self, file_params: Mapping[str, str]) -> Expander:
        """A fresh expander (nothing used yet) for a stage that reads these params-file values."""
        return Expander(self._args, self._params, self._params_allowed, file_params)

    def expand(self, text: str) -> tuple[str, list[Issue]]:
        if "$" not in text:  # the common case, kept cheap: most strings have no references
            return text, []
        issues: list[Issue] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            value, issue = self._resolve(match.group("body"), bool(match.group("close")))
            if issue is not None:
                issues.append(issue)
            return value

        return _TOKEN.sub(replace, text), issues

    def _resolve(self, body: str, closed: bool) -> tuple[str, Issue | None]:
        if not closed:
            return "", Issue(f"unterminated reference '${{{body}'", "close it with '}'; " + _LITERAL_HINT)
        if body.startswith("params."):
            return self._param(body[len("params.") :])
        if ARG_NAME.fullmatch(body):
            return self._arg(body)
        return "", Issue(
            f"invalid reference '${{{body}}}'",
            "write ${NAME} for an arg, ${params.NAME} for a param; " + _LITERAL_HINT,
        )

    def _arg(self, name: str) -> tuple[str, Issue | None]:
        if name in self._args:
            self.args_used.add(name)
            return self._args[name], None
        match = closest(name, self._args)
        hint = f"did you mean ${{{match}}}?" if match else f"declare {name} under [args]; or " + _LITERAL_HINT
        return "", Issue(f"undefined arg '${{{name}}}'", hint)

    def _param(self, name: str) -> tuple[str, Issue | None]:
        if not self._params_allowed:
            return "", Issue(
                f"'${{params.{name}}}': params are for run stages",
                "an image stage is configured by [args]: use ${NAME}",
            )
        if name in self._file_params:  # keyed by the stage's `params` key, whether used here or not
            return self._file_params[name], None
        if name in self._params:
            self.params_used.add(name)
            return param_text(self._params[name]), None
        match = closest(name, self._params)
        hint = f"did you mean ${{params.{match}}}?" if match else f"declare {name} under [params]"
        if "." in name:  # a dotted name is a params file's key
            hint = f"list '{name}' in the stage's params = {{ file = ..., keys = [...] }}"
        return "", Issue(f"undefined param '${{params.{name}}}'", hint)
