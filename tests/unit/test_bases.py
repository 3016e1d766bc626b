"""The alternative bases a failed pull's hint names (core/bases.py), on parsed Buildfiles."""

from __future__ import annotations

from buildgraph.core.bases import base_alternatives
from buildgraph.core.parse import parse

HEAD = '[project]\nname = "p"\n'


def test_the_arg_that_names_the_failing_base_can_name_another_root_offline_first() -> None:
    spec = parse(
        HEAD + '[args]\nBASE = "remote"\n'
        '[stages.remote]\nfrom = "registry.invalid/x:1"\n'
        '[stages.other]\nfrom = "registry.invalid/y:1"\n'
        '[stages.offline]\nfrom = { debian = "bookworm" }\n'
        '[stages.deps]\nfrom = "${BASE}"\n'
        '[stages.code]\nfrom = "deps"\n'
    )
    assert base_alternatives(spec, "remote") == ["--arg BASE=offline", "--arg BASE=other"]
    assert base_alternatives(spec, "deps") == [], "code is built from deps directly, not through an arg"


def test_a_base_named_outright_offers_nothing() -> None:
    spec = parse(HEAD + '[stages.remote]\nfrom = "registry.invalid/x:1"\n[stages.deps]\nfrom = "remote"\n'
                 '[stages.offline]\nfrom = { debian = "bookworm" }\n')
    assert base_alternatives(spec, "remote") == []
