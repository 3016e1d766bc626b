"""Image stages (`[stages.NAME]` with `from`): their keys, declared in `IMAGE_STAGE`, and the
readers of the values peculiar to them (the base, `copy` entries, Debian bases)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.forms import (
    ARGS,
    BOOLEAN,
    CONTAINER_PATH,
    DESCRIPTION_KEY,
    ENV_KEY,
    LABELS,
    PATH,
    PATH_DOC,
    SECRETS_KEY,
    TEXT,
    TEXTS,
    Fields,
    Form,
    Key,
    Skip,
    Table,
    choice,
    list_of,
    pattern,
)
from buildgraph.core.interpolate import ARG_NAME, ArgRef, Expander, Issue, arg_parts
from buildgraph.core.spec import Copy, DebianBase, Healthcheck, ImageRef, ImageStage, Mount, StageRef
from buildgraph.core.suggest import closest

__all__ = [
    "IMAGE_STAGE",
    "StageArgs",
    "mark_shell_forms",
    "read_base_in_global_scope",
    "read_stage_args",
    "split_run_lines",
]

_DOMAIN = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
# The schema's patterns are made from these: they are written for JSON Schema too (no flags).
# a name or id, or a variable Docker substitutes at build time from the image's ENV (`USER ${NB_UID}`)
_USER_PART = r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)"
_USER = re.compile(f"{_USER_PART}(?::{_USER_PART})?")
_SUITE = re.compile(r"[a-z][a-z0-9.-]*")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(?:=\S+)?")
_MIRROR = re.compile(r"(?:https?|file)://\S+")


def _base(f: Fields, where: str, value: object) -> object:
    if isinstance(value, dict):
        f.out.unknown_keys(value, where, DEBIAN.names)
        return DebianBase(**DEBIAN.read(f, where, value, whole_value=True))
    f.check(
        value, where, isinstance(value, str), "an image reference, a stage name or a table {debian, packages}"
    )
    ref = f.text(where, value)
    if ref in f.all_stages:  # like Dockerfile `FROM x AS y`: a declared stage name wins
        return StageRef(ref)
    if not ref:
        raise f.fail(where, Issue("empty `from`", 'name a base image ("python:3.12-slim") or an image stage'))
    if not IMAGE_REF.fullmatch(ref):
        if IMAGE_REF.fullmatch(ref.lower()):
            raise f.fail(
                where, Issue(f"{v.show(ref)}: image names are lowercase", f"write {v.show(ref.lower())}")
            )
        match = closest(ref, f.all_stages)
        hint = (
            f"did you mean the stage '{match}'?"
            if match
            else "e.g. python:3.12-slim or ghcr.io/org/image:tag"
        )
        raise f.fail(
            where, Issue(f"{v.show(ref)} is neither a stage of this Buildfile nor an image reference", hint)
        )
    return ImageRef(ref)


DEBIAN = Table(
    (
        Key(
            "debian",
            pattern(_SUITE, 'a Debian suite such as "bookworm"'),
            'The Debian suite, e.g. "bookworm".',
            field="suite",
            missing=Issue("missing (the Debian suite)", 'e.g. debian = "bookworm"'),
        ),
        Key(
            "packages",
            list_of(pattern(_PACKAGE, "a Debian package name"), "a list of package names"),
            "Debian packages to install (name or name=version).",
        ),
        Key(
            "mirror",
            pattern(_MIRROR, "a URL"),
            "The Debian mirror URL; empty = the host's configured mirror.",
        ),
    ),
    DebianBase,
)


class StageArgs:
    """A stage's own ARGs as read (`args = { NAME = "default" }`), and the `[args]` their defaults used."""

    def __init__(self, values: tuple[tuple[str, str], ...] = (), globals_used: frozenset[str] = frozenset()):
        self.values, self.globals_used = values, globals_used


def read_stage_args(
    f: Fields, value: object, global_args: Mapping[str, str], overrides: Mapping[str, str]
) -> StageArgs:
    """Dockerfile ARG inside a stage: each default may use `[args]` and the args declared before it
    (`B = "${A}-x"`), as Docker expands an ARG's default; `--arg NAME=…` replaces the default."""
    where = v.at(f.where, "args")
    try:
        example = 'e.g. { DEBIAN_FRONTEND = "noninteractive" }'
        f.check(value, where, isinstance(value, dict), "a table", example)
    except Skip:
        return StageArgs()
    assert isinstance(value, dict)
    scope, found, globals_used = dict(global_args), {}, set()
    for name, default in value.items():
        at = v.at(where, name)
        if not ARG_NAME.fullmatch(name):
            f.out.add(at, "invalid arg name", "letters, digits and _, not starting with a digit")
            continue
        expander = Expander(scope, {}, params_allowed=False)
        try:
            text = Fields(f.out, f.where, expander, f.name, f.all_stages, f.templates).text(at, default, True)
        except Skip:
            text = ""  # still declared: references to it are not reported as undefined too
        globals_used |= {n for n in expander.args_used if n not in found}
        found[name] = scope[name] = overrides.get(name, text)
    return StageArgs(tuple(found.items()), frozenset(globals_used))


def read_base_in_global_scope(
    f: Fields, body: Mapping[str, object], global_args: Mapping[str, str], own: Mapping[str, str]
) -> tuple[Any, set[str]] | None:
    """`from` read again as a FROM line sees ARGs: only those before the first FROM (`[args]`), so
    a stage arg re-declaring one (`args = { V = "${V}" }`) does not change it. The base and the
    [args] it used; None when `from` names no arg of the stage; Skip when it names one of only its own."""
    written = (f.templates or {}).get("from", "")
    if not any(isinstance(p, ArgRef) and p.name in own for p in arg_parts(written)):
        return None
    scoped = Fields(f.out, f.where, Expander(global_args, {}, params_allowed=False), f.name, f.all_stages)
    base = IMAGE_STAGE.read_key(scoped, f.where, body, "from")
    return base, scoped.expander.args_used


def _copy_entry(f: Fields, where: str, value: object) -> Copy:
    f.check(value, where, isinstance(value, dict), 'a table { src = ..., dest = "/..." }')
    assert isinstance(value, dict)
    f.out.unknown_keys(value, where, COPY.names)
    table = COPY_FROM if "from" in value else COPY  # from another image: its sources are its paths
    found = table.read(f, where, value, whole_value=True)
    if found.get("from_stage", "") not in f.all_stages:
        found["from_image"] = found.pop("from_stage", "")
    return Copy(**found)


# `COPY . /app/`, the most common Dockerfile line: the whole project (filtered by the ignore file).
_PROJECT_ROOT = (".", "./")


def _source(f: Fields, where: str, value: object) -> str:
    if value in _PROJECT_ROOT:
        return "."
    return f.path(where, value, globs=True)[0]


def _sources(f: Fields, where: str, value: object) -> tuple[str, ...]:
    sources = f.each(where, value, lambda at, item: _source(f, at, item), "a list of paths", True)
    if not sources:
        raise f.fail(where, Issue("no sources", "list the files or directories to copy"))
    return sources


def _image_sources(f: Fields, where: str, value: object) -> tuple[str, ...]:
    sources = f.each(where, value, f.container_path, "a list of absolute paths", True)
    if not sources:
        raise f.fail(where, Issue("no sources", "list the paths to copy from that image"))
    return sources


def _copy_from(f: Fields, where: str, value: object) -> str:
    """An image stage of this Buildfile (a declared name wins, as for `from`) or an image reference."""
    f.check(value, where, isinstance(value, str), "an image stage name or an image reference")
    ref = f.text(where, value)
    body = f.all_stages.get(ref)
    if ref == f.name:
        raise f.fail(where, Issue("a stage cannot copy from its own image", "name another image stage"))
    if isinstance(body, dict) and "from" not in body:
        raise f.fail(where, Issue(f"'{ref}' is a run stage", "copy from an image stage or an image"))
    if body is None and not IMAGE_REF.fullmatch(ref):
        match = closest(ref, f.all_stages)
        hint = f"did you mean the stage '{match}'?" if match else "e.g. a stage name, or python:3.12-slim"
        issue = Issue(f"{v.show(ref)} is neither a stage of this Buildfile nor an image reference", hint)
        raise f.fail(where, issue)
    return ref


_SOURCE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": PATH_DOC + " With `from`: an absolute path in that image.",
}
_COPY_MISSING = Issue("missing", 'e.g. { src = ["stages/"], dest = "/opt/app/" }')
_SRC_DOC = (
    "Project-relative sources: files, directories or glob patterns; \".\" copies the whole project"
    " (filtered by `ignore`; never .bg/ or Buildfile.lock). With `from`: absolute paths in that image."
)
_DEST = Key("dest", CONTAINER_PATH, "An absolute path inside the image.", missing=_COPY_MISSING)
_CHOWN = Key(
    "chown", pattern(_USER, "user[:group]"), "Owner of the copied files: user[:group], names or ids."
)
_FROM = Key(
    "from",
    Form({"type": "string", "minLength": 1}, _copy_from),
    "Copy from another image (Dockerfile COPY --from): an image stage of this Buildfile, or an image"
    " reference (pinned by digest like a base).",
    field="from_stage",
)
_SRC_FORM: dict[str, Any] = {"anyOf": [_SOURCE, {"type": "array", "items": _SOURCE, "minItems": 1}]}
COPY = Table(
    (
        Key("src", Form(_SRC_FORM, _sources), _SRC_DOC, field="sources", missing=_COPY_MISSING),
        _DEST,
        _CHOWN,
        _FROM,
    ),
    Copy,
)
COPY_FROM = Table(
    (
        _FROM,
        Key("src", Form(_SRC_FORM, _image_sources), _SRC_DOC, field="sources", missing=_COPY_MISSING),
        _DEST,
        _CHOWN,
    ),
    Copy,
)

# `run` lines with mounts (Dockerfile RUN --mount) ---------------------------------------------

_MOUNT_TYPES = ("cache", "secret", "tmpfs")
_SHARING = ("shared", "private", "locked")
_UNSUPPORTED_MOUNTS = {
    "bind": "bg copies project files with `copy`; from another image: copy = [{ from = ..., src = ... }]",
    "ssh": "name the credential in `secrets` and mount it with type = \"secret\"",
}


class RunLine:
    """A `run` item written as a table, until `split_run_lines` files its mounts apart."""

    __slots__ = ("command", "mounts")

    def __init__(self, command: str, mounts: tuple[Mount, ...]) -> None:
        self.command, self.mounts = command, mounts


def _run_item(f: Fields, where: str, value: object) -> str | RunLine:
    if not isinstance(value, dict):
        return f.text(where, value)
    f.out.unknown_keys(value, where, RUN_LINE.names)
    found = RUN_LINE.read(f, where, value, whole_value=True)
    return RunLine(found["command"], found.get("mounts", ()))


def _mount(f: Fields, where: str, value: object) -> Mount:
    f.check(value, where, isinstance(value, dict), 'a table { type = "cache", target = "/..." }')
    assert isinstance(value, dict)
    kind = value.get("type")
    if isinstance(kind, str) and kind in _UNSUPPORTED_MOUNTS:
        issue = Issue(f"type = {v.show(kind)} is not supported", _UNSUPPORTED_MOUNTS[kind])
        raise f.fail(v.at(where, "type"), issue)
    f.out.unknown_keys(value, where, MOUNT.names)
    mount = Mount(**MOUNT.read(f, where, value, whole_value=True))
    if mount.type == "secret" and not mount.id:
        raise f.fail(v.at(where, "id"), Issue("missing (the secret's name)", 'e.g. id = "HF_TOKEN"'))
    if mount.type != "secret" and not mount.target:
        raise f.fail(v.at(where, "target"), Issue("missing", 'e.g. target = "/root/.cache/pip"'))
    return mount


def split_run_lines(kw: dict[str, Any], templates: dict[str, str] | None) -> None:
    """`run` items written as tables → their commands in `run` and their mounts in `run_mounts`;
    a secret a mount names becomes one of the stage's `secrets` (bg provides it to the build)."""
    items = kw.get("run", ())
    if not any(isinstance(item, RunLine) for item in items):
        return
    kw["run"] = tuple(item.command if isinstance(item, RunLine) else item for item in items)
    kw["run_mounts"] = tuple(item.mounts if isinstance(item, RunLine) else () for item in items)
    named = [m.id for mounts in kw["run_mounts"] for m in mounts if m.type == "secret"]
    kw["secrets"] = tuple(dict.fromkeys([*kw.get("secrets", ()), *named]))
    for index in range(len(items)):  # the export finds a command's template at `run[i]`
        if templates is not None and f"run[{index}].command" in templates:
            templates[f"run[{index}]"] = templates.pop(f"run[{index}].command")


def mark_shell_forms(kw: dict[str, Any], body: Mapping[str, object]) -> None:
    """`entrypoint` / `cmd` written as a string are shell form (`CMD python app.py`), not a
    one-word exec form: the export writes them so, and Docker runs them with the image's SHELL."""
    for name in ("entrypoint", "cmd"):
        if isinstance(body.get(name), str) and kw.get(name):
            kw[f"{name}_shell"] = True


MOUNT = Table(
    (
        Key("type", choice(_MOUNT_TYPES), "cache, secret or tmpfs.", missing=Issue("missing", "e.g. cache")),
        Key("target", CONTAINER_PATH, "Where it is mounted (a secret's default: /run/secrets/<id>)."),
        Key("id", TEXT, "A cache's id (default: its target); a secret's name, one of bg's secrets."),
        Key("sharing", choice(_SHARING), "A cache shared by concurrent builds: shared, private or locked."),
        Key("required", BOOLEAN, "A secret: fail when it is not provided."),
    ),
    Mount,
)
RUN_LINE = Table(
    (
        Key("command", TEXT, "The shell command.", missing=Issue("missing", 'command = "pip install ."')),
        Key(
            "mounts",
            list_of(Form(MOUNT.schema(), _mount), "a list of tables"),
            "Mounts for this command only (Dockerfile RUN --mount): in neither the key nor the image.",
        ),
    ),
)
_RUN_ITEM: dict[str, Any] = {"anyOf": [{"type": "string"}, RUN_LINE.schema()]}
RUN_LINES = Form(
    {"anyOf": [{"type": "string"}, {"type": "array", "items": _RUN_ITEM}]},
    lambda f, where, value: f.each(where, value, lambda at, x: _run_item(f, at, x), "a list", single=True),
)


# Dockerfile instructions that only set the image's configuration ------------------------------

_PORT = re.compile(r"[0-9]{1,5}(?:-[0-9]{1,5})?(?:/(?:tcp|udp|sctp))?")
_SIGNAL = re.compile(r"SIG[A-Z0-9+-]+|[0-9]{1,2}")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|s|m|h))+")
# Docker refuses these after ONBUILD.
_NOT_ONBUILD = ("ONBUILD", "FROM", "MAINTAINER")


def _exec_form(f: Fields, where: str, value: object) -> tuple[str, ...]:
    words = f.each(where, value, f.text, "a list of strings (exec form)")
    if not words:
        raise f.fail(where, Issue("empty", 'e.g. ["/bin/bash", "-o", "pipefail", "-c"]'))
    return words


def _onbuild(f: Fields, where: str, value: object) -> tuple[str, ...]:
    def instruction(at: str, item: object) -> str:
        text = f.text(at, item).strip()
        keyword = text.split(None, 1)[0].upper() if text else ""
        if not keyword or keyword in _NOT_ONBUILD:
            issue = Issue(f"{v.show(text)} cannot follow ONBUILD", 'e.g. "RUN make", "COPY . /app/"')
            raise f.fail(at, issue)
        return text

    return f.each(where, value, instruction, "a list of Dockerfile instructions", single=True)


def _retries(f: Fields, where: str, value: object) -> int:
    f.check(value, where, v.is_int(value) and value >= 0, "an integer ≥ 0")
    assert isinstance(value, int)
    return value


def _healthcheck(f: Fields, where: str, value: object) -> Healthcheck:
    if value == "NONE":  # HEALTHCHECK NONE: turn off the base image's
        return Healthcheck()
    f.check(value, where, isinstance(value, dict), 'a table { test = [...] } or "NONE"')
    assert isinstance(value, dict)
    f.out.unknown_keys(value, where, HEALTHCHECK.names)
    found = HEALTHCHECK.read(f, where, value, whole_value=True)
    return Healthcheck(shell=isinstance(value.get("test"), str), **found)


_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_DURATION_FORM = pattern(_DURATION, 'a duration such as "30s" or "1m30s"')
HEALTHCHECK = Table(
    (
        Key(
            "test",
            Form(
                {"anyOf": [{"type": "string", "minLength": 1}, _STRINGS]},
                lambda f, where, value: f.texts(where, value, single=True),
            ),
            "The check: a string is shell form (CMD-SHELL), a list is exec form.",
            missing=Issue("missing", 'e.g. test = ["curl", "-f", "http://localhost/"]'),
        ),
        Key("interval", _DURATION_FORM, "Time between checks (Docker's default: 30s)."),
        Key("timeout", _DURATION_FORM, "Time a check may take (Docker's default: 30s)."),
        Key("start_period", _DURATION_FORM, "Start-up time during which failures do not count."),
        Key("start_interval", _DURATION_FORM, "Time between checks during the start period."),
        Key(
            "retries",
            Form({"type": "integer", "minimum": 0}, _retries),
            "Failures in a row that mean unhealthy.",
        ),
    ),
    Healthcheck,
)
CONFIG_KEYS = (
    Key(
        "shell",
        Form({**_STRINGS, "minItems": 1}, _exec_form),
        "The shell the `run` lines run in (Dockerfile SHELL, exec form), e.g."
        ' ["/bin/bash", "-o", "pipefail", "-c"]; images built on this one keep it.',
    ),
    Key(
        "expose",
        list_of(pattern(_PORT, 'a port such as "8080" or "8080/tcp"'), "a list of ports"),
        "Ports the container listens on (Dockerfile EXPOSE): 8080, 8080/tcp, 53/udp.",
    ),
    Key("volume", list_of(CONTAINER_PATH, "a list of absolute paths"), "Mount points (Dockerfile VOLUME)."),
    Key("stopsignal", pattern(_SIGNAL, 'a signal such as "SIGTERM"'), "The signal that stops the container."),
    Key(
        "healthcheck",
        Form({"anyOf": [{"const": "NONE"}, HEALTHCHECK.schema()]}, _healthcheck),
        'How Docker checks the container is healthy (Dockerfile HEALTHCHECK); "NONE" turns the base\'s off.',
    ),
    Key(
        "onbuild",
        Form({"anyOf": [{"type": "string"}, _STRINGS]}, _onbuild),
        "Dockerfile instructions run when another image is built on this one (ONBUILD), as written.",
    ),
)

_FROM_DOC = (
    "The base: an image stage of this Buildfile (a declared stage name wins, like Dockerfile `FROM x AS y`),"
    ' a registry reference such as "python:3.12-slim", or a Debian suite built offline.'
)
IMAGE_STAGE = Table(
    (
        Key(
            "from",
            Form({"anyOf": [{"type": "string", "minLength": 1}, DEBIAN.schema()]}, _base),
            _FROM_DOC,
            field="base",
            required=True,
        ),
        Key(
            "args",
            ARGS,
            "The stage's own build args (Dockerfile ARG after FROM), in order: a default may use [args] and"
            " the args before it; every one is in the environment of each `run` line; --arg NAME=VALUE"
            " overrides it.",
        ),
        ENV_KEY,
        Key(
            "run",
            RUN_LINES,
            "Shell commands run while building the image (Dockerfile RUN), in order; an item may be a"
            " table { command, mounts } (RUN --mount=type=cache|secret|tmpfs).",
        ),
        Key(
            "copy",
            list_of(Form(COPY.schema(), _copy_entry), "a list of tables"),
            "Files copied into the image (Dockerfile COPY): project files, or paths of another image"
            " (`from`).",
        ),
        Key("ignore", PATH, "A project file with .dockerignore rules applied to `copy` sources."),
        Key("workdir", CONTAINER_PATH, "The working directory inside the image (Dockerfile WORKDIR)."),
        Key(
            "user",
            pattern(_USER, "user[:group] (names or ids)"),
            "The user the image runs as: user[:group], names or ids (Dockerfile USER).",
        ),
        Key("entrypoint", TEXTS, "Dockerfile ENTRYPOINT: a string is shell form, a list is exec form."),
        Key("cmd", TEXTS, "Dockerfile CMD: a string is shell form, a list is exec form."),
        Key("labels", LABELS, "Image labels (e.g. org.opencontainers.image.*)."),
        *CONFIG_KEYS,
        SECRETS_KEY,
        DESCRIPTION_KEY,
    ),
    ImageStage,
    name="image_stage",
    title="image stage",
    doc="An image stage (it has `from`): a Docker image built on a registry image, another image stage"
    " or a Debian suite.",
)
