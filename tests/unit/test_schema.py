"""The JSON Schema (for editors) and the parser agree on what a Buildfile is."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from buildgraph.core import parse as parse_module
from buildgraph.core import stages
from buildgraph.core.parse import analyse

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.toml"))
HEAD = '[project]\nname = "x"\n'


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = resources.files("buildgraph").joinpath("schema/buildfile.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


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
    assert analyse(text).problems == []


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


def properties(schema: dict[str, Any], *path: str) -> set[str]:
    node = schema
    for key in path:
        node = node[key]
    return set(node["properties"])


def test_schema_knows_exactly_the_keys_the_parser_knows(schema: dict[str, Any]) -> None:
    image, run = ("$defs", "image_stage"), ("$defs", "run_stage")
    assert properties(schema) == set(parse_module.TOP_KEYS)
    assert properties(schema, "properties", "project") == set(parse_module.PROJECT_KEYS)
    assert properties(schema, *image) == set(stages.IMAGE_KEYS)
    assert properties(schema, *run) == set(stages.RUN_KEYS)
    copy_item = schema["$defs"]["image_stage"]["properties"]["copy"]["items"]
    assert set(copy_item["properties"]) == set(stages.COPY_KEYS)
    debian = schema["$defs"]["image_stage"]["properties"]["from"]["anyOf"][1]
    assert set(debian["properties"]) == set(stages.DEBIAN_KEYS)
    param_table = schema["properties"]["params"]["additionalProperties"]["anyOf"][1]
    assert set(param_table["properties"]) == set(parse_module.PARAM_KEYS)


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
