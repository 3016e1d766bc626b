"""The JSON Schema of Buildfile.toml that `bg schema` prints, made from the tables the parser reads
(`parse.TOP` and the tables it holds, `stages.STAGE_TABLES`): a key declared there is in both."""

from __future__ import annotations

import json
from typing import Any

from buildgraph.core.parse import TOP
from buildgraph.core.stages import STAGE_TABLES

__all__ = ["DRAFT", "buildfile_schema", "schema_text"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def buildfile_schema() -> dict[str, Any]:
    return {"$schema": DRAFT, **TOP.schema(), "$defs": {table.name: table.schema() for table in STAGE_TABLES}}


def schema_text() -> str:
    """The schema as `bg schema` prints it: stable bytes (key order as declared), one trailing newline."""
    return json.dumps(buildfile_schema(), indent=2, ensure_ascii=False) + "\n"
