"""Secrets: read from bg's environment, handed to commands and builds as files only.

A stage lists the names of its secrets; their values come from bg's environment variables of
the same names and reach a command as 0600 files (`/run/secrets/NAME` in a container,
`$BG_SECRETS_DIR/NAME` on the host) or an image build as BuildKit secret mounts. They are in
no key, lock, manifest, log or layer, so changing a secret's value reruns nothing.

One module for all of it, so that the rules (which names are missing, the file modes, where
the files live and when they go) are written once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from buildgraph.errors import EnvironmentProblem

_HINT = "export each secret's value as an environment variable of the same name"


def missing(names: Iterable[str]) -> list[str]:
    """The secrets among `names` that bg's environment does not set."""
    return [name for name in names if name not in os.environ]


def require(by_stage: Mapping[str, Sequence[str]]) -> None:
    """EnvironmentProblem naming each missing secret with its stage, if any is missing.

    `by_stage`: stage → its missing secrets; called only for steps that will run (a stage
    that is up to date or restored needs none)."""
    found = sorted(f"{name} (stage {stage})" for stage, names in by_stage.items() for name in names)
    if found:
        raise EnvironmentProblem(
            f"secret(s) not set in the environment: {', '.join(found)}", hint=f"{_HINT} before `bg run`"
        )


def write_files(folder: Path, names: Iterable[str]) -> tuple[tuple[str, Path], ...]:
    """Each secret's value in a 0600 file in the new 0700 `folder`: (name, path) pairs.

    The folder is a run step's scratch folder, outside the command's work dir, and goes with it."""
    folder.mkdir(mode=0o700)
    return tuple((name, _write(folder / name, os.environ[name])) for name in names)


@contextlib.contextmanager
def temporary_files(names: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """Each secret's value in a 0600 file that lives only during an image build: name → path."""
    if not names:
        yield {}
        return
    unset = missing(names)
    if unset:
        message = f"build secret(s) not set in the environment: {', '.join(unset)}"
        raise EnvironmentProblem(message, hint=_HINT)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bg-secrets-") as folder:
        yield {name: _write(Path(folder) / name, os.environ[name]) for name in names}


def _write(path: Path, value: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return path
