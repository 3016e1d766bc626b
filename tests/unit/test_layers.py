"""The layering contract of docs/architecture.md, checked on the source (ast), not hoped for."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "buildgraph"
IO_MODULES = {
    "os",
    "subprocess",
    "time",
    "socket",
    "shutil",
    "sqlite3",
    "docker",
    "pathlib",
    "tempfile",
    "threading",
    "random",
    "datetime",
    "io",
    "glob",
    "fcntl",
    "signal",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_is_pure() -> None:
    for path in sorted((PACKAGE / "core").glob("*.py")):
        bad = {m for m in imports(path) if m.split(".")[0] in IO_MODULES}
        outside = {
            m
            for m in imports(path)
            if m.startswith("buildgraph.")
            and not m.startswith("buildgraph.core")
            and m != "buildgraph.errors"
        }
        assert not bad, f"{path.name} imports I/O modules {bad}"
        assert not outside, f"{path.name} imports outside the core: {outside}"


def test_executors_and_stores_do_not_import_core() -> None:
    for folder in ("executors", "stores"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            core = {m for m in imports(path) if m.startswith("buildgraph.core")}
            assert not core, f"{folder}/{path.name} imports {core}"


def test_cli_start_up_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    heavy = "('rich', 'docker', 'torch', 'networkx', 'jsonschema')"
    code = f"import sys, buildgraph.cli; print(','.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
