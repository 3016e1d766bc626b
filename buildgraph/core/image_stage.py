"""Image stages (`[stages.NAME]` with `from`): their keys, declared in `IMAGE_STAGE`, and the
readers of the values peculiar to them (the base, `copy` entries, Debian bases)."""

from __future__ import annotations

import re
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.forms import (
    CONTAINER_PATH,
    DESCRIPTION_KEY,
    ENV_KEY,
    LABELS,
    PATH,
    PATH_DOC,
    PATH_SCHEMA,
    SECRETS_KEY,
    TEXTS,
    Fields,
    Form,
    Key,
    Table,
    list_of,
    pattern,
)
from buildgraph.core.interpolate import Issue
from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, StageRef
from buildgraph.core.suggest import closest

__all__ = ["IMAGE_STAGE"]

_DOMAIN = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
# The schema's patterns are made from these: they are written for JSON Schema too (no flags).
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
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


def _copy_entry(f: Fields, where: str, value: object) -> Copy:
    f.check(value, where, isinstance(value, dict), 'a table { src = ..., dest = "/..." }')
    assert isinstance(value, dict)
    f.out.unknown_keys(value, where, COPY.names)
    return Copy(**COPY.read(f, where, value, whole_value=True))


def _sources(f: Fields, where: str, value: object) -> tuple[str, ...]:
    sources = f.each(where, value, lambda at, item: f.path(at, item, globs=True)[0], "a list of paths", True)
    if not sources:
        raise f.fail(where, Issue("no sources", "list the files or directories to copy"))
    return sources


_SOURCE: dict[str, Any] = {**PATH_SCHEMA, "description": PATH_DOC}
_COPY_MISSING = Issue("missing", 'e.g. { src = ["stages/"], dest = "/opt/app/" }')
COPY = Table(
    (
        Key(
            "src",
            Form({"anyOf": [_SOURCE, {"type": "array", "items": _SOURCE, "minItems": 1}]}, _sources),
            "Project-relative sources: files, directories or glob patterns.",
            field="sources",
            missing=_COPY_MISSING,
        ),
        Key("dest", CONTAINER_PATH, "An absolute path inside the image.", missing=_COPY_MISSING),
        Key(
            "chown", pattern(_USER, "user[:group]"), "Owner of the copied files: user[:group], names or ids."
        ),
    ),
    Copy,
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
        ENV_KEY,
        Key("run", TEXTS, "Shell commands run while building the image (Dockerfile RUN), in order."),
        Key(
            "copy",
            list_of(Form(COPY.schema(), _copy_entry), "a list of tables"),
            "Project files copied into the image (Dockerfile COPY).",
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
        SECRETS_KEY,
        DESCRIPTION_KEY,
    ),
    ImageStage,
    name="image_stage",
    title="image stage",
    doc="An image stage (it has `from`): a Docker image built on a registry image, another image stage"
    " or a Debian suite.",
)
