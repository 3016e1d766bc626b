"""Errors that reach the user, and the exit status each one means.

    BgError                     exit_status, one located message + hint
    ├── BuildfileError          2  invalid Buildfile.toml (carries every Problem found)
    ├── UsageError              2  bad command line (unknown stage, bad --param …)
    ├── EnvironmentProblem      3  no Docker daemon, corrupt store, lock held …
    ├── StageFailed             1  a stage's command failed (or its outputs were missing)
    └── Interrupted           130  Ctrl-C / SIGTERM

Anything else escaping a command is a bug in bg: one `internal error` line, exit
INTERNAL_ERROR (70, sysexits' EX_SOFTWARE), with or without `--debug` (which adds the
traceback).

The CLI prints `bg: error: <message>` and `bg: hint: <hint>` and exits with
`exit_status`; a traceback is printed only under `--debug`.
"""

from __future__ import annotations

from dataclasses import dataclass

INTERNAL_ERROR = 70


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a Buildfile, located as precisely as we know.

    `where` is either `"12:5"` (line:column, for TOML syntax) or a key path such as
    `"stages.train.outputs[1]"`. Rendered: `Buildfile.toml:12:5: msg` or
    `Buildfile.toml: stages.train.outputs[1]: msg`.
    """

    file: str
    where: str
    message: str
    hint: str = ""

    def render(self) -> str:
        if not self.where:
            return f"{self.file}: {self.message}"
        sep = ":" if self.where[:1].isdigit() else ": "
        return f"{self.file}{sep}{self.where}: {self.message}"


class BgError(Exception):
    exit_status = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BuildfileError(BgError):
    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem("Buildfile.toml", "", "invalid")
        super().__init__(first.render(), first.hint)


class UsageError(BgError):
    exit_status = 2


class EnvironmentProblem(BgError):
    exit_status = 3


class StageFailed(BgError):
    exit_status = 1


class Interrupted(BgError):
    exit_status = 130
