"""The JSON Schema (for editors) and the parser agree on what a Buildfile is: `bg schema` prints the
schema made from the parser's own key tables, and the checks below hold each side to the other."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomli_w

from buildgraph.buildfile import ParamsFiles
from buildgraph.core.parse import analyse, parse
from buildgraph.core.schema import buildfile_schema, schema_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.toml"))
HEAD = '[project]\nname = "x"\n'


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return buildfile_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_bg_schema_prints_the_schema_of_the_parser_tables(schema: dict[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buildgraph", "schema"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == schema_text() and json.loads(done.stdout) == schema


def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_there_are_examples_including_the_quickstart() -> None:
    assert "quickstart.toml" in [path.name for path in EXAMPLES] and len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES + [REPO / "Buildfile.toml"], ids=lambda p: p.name)
def test_examples_are_valid_for_schema_and_parser(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    text = path.read_text()
    assert [e.message for e in validator.iter_errors(tomllib.loads(text))] == []
    assert analyse(text, load_params=ParamsFiles(path.parent)).problems == []  # the example reads params.yaml


INVALID = {
    "unknown top-level key": HEAD + '[stage.a]\ncommand = "x"\n',
    "unknown stage key": HEAD + '[stages.a]\ncommand = "x"\nouputs = ["m"]\n',
    "unknown project key": '[project]\nname = "x"\ncolour = "red"\n[stages.a]\ncommand = "x"\n',
    "missing project name": '[project]\nexecutor = "local"\n[stages.a]\ncommand = "x"\n',
    "no stages": HEAD,
    "bad executor": '[project]\nname = "x"\nexecutor = "k8s"\n[stages.a]\ncommand = "x"\n',
    "negative keep_runs": '[project]\nname = "x"\nkeep_runs = -1\n[stages.a]\ncommand = "x"\n',
    "both from and command": HEAD + '[stages.a]\nfrom = "python:3"\ncommand = "x"\n',
    "neither from nor command": HEAD + '[stages.a]\ninputs = ["x"]\n',
    "bad stage name": HEAD + '[stages."a b"]\ncommand = "x"\n',
    "gpus as a word": HEAD + '[stages.a]\ncommand = "x"\ngpus = "two"\n',
    "negative timeout": HEAD + '[stages.a]\ncommand = "x"\ntimeout = -5\n',
    "timeout not a duration": HEAD + '[stages.a]\ncommand = "x"\ntimeout = "soon"\n',
    "absolute input": HEAD + '[stages.a]\ncommand = "x"\ninputs = ["/etc/passwd"]\n',
    "home input": HEAD + '[stages.a]\ncommand = "x"\ninputs = ["~/x"]\n',
    "inputs not a list": HEAD + '[stages.a]\ncommand = "x"\ninputs = "data/"\n',
    "network not a bool": HEAD + '[stages.a]\ncommand = "x"\nnetwork = "yes"\n',
    "relative copy dest": HEAD + '[stages.a]\nfrom = "python:3"\ncopy = [{ src = "a", dest = "opt" }]\n',
    "copy without src": HEAD + '[stages.a]\nfrom = "python:3"\ncopy = [{ dest = "/opt" }]\n',
    "debian base without suite": HEAD + '[stages.a]\nfrom = { packages = ["git"] }\n',
    "param table without default": HEAD + '[params]\nx = { type = "int" }\n[stages.a]\ncommand = "x"\n',
    "param of unknown type": HEAD
    + '[params]\nx = { default = 1, type = "integer" }\n[stages.a]\ncommand = "x"\n',
    "list as a param": HEAD + '[params]\nx = [1, 2]\n[stages.a]\ncommand = "x"\n',
    "boolean arg": HEAD + '[args]\nA = true\n[stages.a]\ncommand = "x"\n',
    "bad env name": HEAD + '[stages.a]\ncommand = "x"\nenv = { "A-B" = "1" }\n',
}


@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_invalid_buildfiles_are_rejected_by_both(
    text: str, validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(tomllib.loads(text))
    assert analyse(text).problems


# Every table, as the schema shows it and as a Buildfile holds it: (the schema node, a document
# with `key = value` in that table, the key's location in problems).
DATE = datetime.date(1979, 5, 27)  # a TOML value no key accepts
Place = Callable[[str, object], dict[str, Any]]


def _doc(stage: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"project": {"name": "x"}, "stages": {"a": stage or {"command": "x"}}, **top}


TABLES: dict[str, tuple[tuple[str | int, ...], Place, str]] = {
    "top level": ((), lambda k, x: {**_doc(), k: x}, "{key}"),
    "project": (("properties", "project"), lambda k, x: _doc(project={"name": "x", k: x}), "project.{key}"),
    "param table": (
        ("properties", "params", "additionalProperties", "anyOf", 1),
        lambda k, x: _doc(params={"p": {"default": 1, k: x}}),
        "params.p.{key}",
    ),
    "image stage": (("$defs", "image_stage"), lambda k, x: _doc({"from": "py:3", k: x}), "stages.a.{key}"),
    "run stage": (("$defs", "run_stage"), lambda k, x: _doc({"command": "x", k: x}), "stages.a.{key}"),
    "copy entry": (
        ("$defs", "image_stage", "properties", "copy", "items"),
        lambda k, x: _doc({"from": "python:3", "copy": [{"src": "a", "dest": "/d", k: x}]}),
        "stages.a.copy[0].{key}",
    ),
    "debian base": (
        ("$defs", "image_stage", "properties", "from", "anyOf", 1),
        lambda k, x: _doc({"from": {"debian": "bookworm", k: x}}),
        "stages.a.from.{key}",
    ),
}


def node_at(schema: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    node: Any = schema
    for step in path:
        node = node[step]
    return node  # type: ignore[no-any-return]


def found(doc: dict[str, Any]) -> dict[str, str]:
    return {p.where: p.message for p in analyse(tomli_w.dumps(doc)).problems}


@pytest.mark.parametrize("table", TABLES)
def test_every_key_the_schema_lists_is_read_by_the_parser(schema: dict[str, Any], table: str) -> None:
    """A wrong value under each listed key is a type error at that key, never an unknown key."""
    path, place, where = TABLES[table]
    keys = list(node_at(schema, path)["properties"])
    assert keys
    for key in keys:
        problems = found(place(key, DATE))
        assert "got a date/time" in problems.get(where.format(key=key), ""), (key, problems)
        assert "unknown key" not in problems.values(), (key, problems)


@pytest.mark.parametrize("table", TABLES)
def test_a_key_the_schema_does_not_list_is_unknown_to_both(
    table: str, validator: jsonschema.Draft202012Validator
) -> None:
    path, place, where = TABLES[table]
    doc = place("colour", "red")
    assert found(doc).get(where.format(key="colour")) == "unknown key"
    assert not validator.is_valid(doc)


EVERY_KEY = HEAD + """executor = "docker"
link = "hardlink"
keep_runs = 2
default = ["train"]
[args]
UID = 1000
SUITE = "bookworm"
[params]
t = "90m"
m = { default = "a", type = "str", choices = ["a", "b"], help = "model" }
[stages.deb.from]
debian = "${SUITE}"
packages = ["python3-torch=2.1.2-1", "git"]
mirror = "http://deb.debian.org/debian"
[stages.img]
from = "deb"
args = { DEBIAN_FRONTEND = "noninteractive", TAG = "${UID}-x" }
env = { A = 1 }
run = ["make", { command = "pip install .", mounts = [
  { type = "cache", target = "/root/.cache/pip", id = "pip", sharing = "locked" },
  { type = "secret", id = "TOKEN", target = "/tok", required = true },
] }]
shell = ["/bin/bash", "-c"]
copy = [
  { src = "stages/", dest = "/opt/${UID}/", chown = "${UID}:${UID}" },
  { src = ["a", "b/*.py"], dest = "/o" },
  { src = ["."], dest = "/app/" },
  { from = "deb", src = ["/etc/hosts"], dest = "/o/", chown = "1" },
]
expose = ["8080/tcp"]
volume = ["/data"]
stopsignal = "SIGINT"
healthcheck = { test = ["true"], interval = "30s", timeout = "5s", start_period = "1s", retries = 3 }
onbuild = ["RUN echo child"]
ignore = ".dockerignore"
workdir = "/opt"
user = "${UID}"
entrypoint = ["python3"]
cmd = "train"
labels = { "a.b" = "c" }
secrets = ["TOKEN"]
description = "an image"
[stages.train]
image = "img"
command = ["python3", "t.py", "${params.m}"]
inputs = ["t.py"]
outputs = ["m.json", "curves/"]
env = { B = "2" }
gpus = [0, 1]
network = true
timeout = "${params.t}"
metrics = "m.json"
shm_size = "512MiB"
secrets = ["TOKEN"]
description = "train"
"""


def test_a_buildfile_using_every_key_is_valid_for_both(validator: jsonschema.Draft202012Validator) -> None:
    assert [e.message for e in validator.iter_errors(tomllib.loads(EVERY_KEY))] == []
    assert analyse(EVERY_KEY).problems == []


def test_the_defaults_the_schema_shows_are_what_an_absent_key_means(schema: dict[str, Any]) -> None:
    spec = parse(HEAD + '[stages.a]\ncommand = "x"\n')
    shown = {
        (table, key): node["default"]
        for table, (path, _, _) in TABLES.items()
        for key, node in node_at(schema, path)["properties"].items()
        if "default" in node
    }
    parsed = {"project": spec, "run stage": spec.stages["a"]}
    read = {(table, key): getattr(parsed[table], key) for table, key in shown}
    assert shown == read and len(shown) >= 4


def test_every_property_is_described_for_editors(schema: dict[str, Any]) -> None:
    missing = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for index, sub in enumerate(node):
                walk(sub, f"{where}[{index}]")

    walk(schema, "")
    assert missing == []


def test_reference_shows_the_quickstart_example_verbatim() -> None:
    """docs/buildfile.md's complete example is docs/examples/quickstart.toml (less its header)."""
    reference = (REPO / "docs" / "buildfile.md").read_text()
    section = reference.split("## A complete example", 1)[1]
    shown = section.split("```toml\n", 1)[1].split("```", 1)[0]
    example = (REPO / "docs" / "examples" / "quickstart.toml").read_text()
    assert example.endswith(shown)
    assert all(line.startswith("#") or not line for line in example[: -len(shown)].splitlines())
