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


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """`buildgraph.engine.walk` → `engine`; a top-level module is its own layer (`cli`, `errors`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(package: Path, rules: dict[str, set[str]]) -> list[str]:
    """Every import of a buildgraph module breaking `rules` (layer → layers it may not import)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        here = module_name(path, package)
        for imported in imports(path):
            if imported.startswith("buildgraph.") and layer(imported) in rules.get(layer(here), set()):
                found.append(f"{here} imports {imported}")
    return found


def private_imports(package: Path) -> list[str]:
    """`from buildgraph.x import _name` in another module: reaching into what x keeps to itself."""
    found = []
    for path in sorted(package.rglob("*.py")):
        here = module_name(path, package)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("buildgraph"):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and node.module != here:
                        found.append(f"{here} imports {node.module}.{alias.name}")
    return found


# every top-level module and package: a new one is under every "all but …" rule at once
EVERYTHING = {
    p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
} - {"__init__", "__main__"}
UPPER = {"cli", "commands", "audit", "engine"}  # who drives; nothing they drive imports them
# layer → layers it may not import (docs/architecture.md, "Layers"); each line is one rule there
RULES: dict[str, set[str]] = {
    "core": EVERYTHING - {"core", "errors"},  # pure: specs, graphs, keys, decisions
    "records": EVERYTHING - {"records"},  # plain data with a JSON shape
    "dockerd": EVERYTHING - {"dockerd", "errors"},  # the one room for the Docker daemon
    "images": UPPER | {"executors", "stores", "workspace", "lockfile", "report"},
    "executors": UPPER | {"core", "images", "workspace", "lockfile", "report", "records"},
    "stores": UPPER | {"core", "executors", "images", "dockerd", "workspace", "lockfile"},
    "lockfile": UPPER | {"core", "executors", "images", "dockerd", "stores", "workspace"},
    "report": UPPER | {"executors", "images", "dockerd", "stores", "workspace"},
    # gets Files, a Store, an Executor
    "engine": {"cli", "commands", "audit", "workspace", "buildfile", "dockerd"},
    "audit": {"cli", "commands", "workspace", "buildfile", "dockerd"},  # the engine run on a sandbox
    "importers": EVERYTHING - {"importers", "errors"},  # other tools' files → Buildfile text; no I/O
    "commands": {"cli"},  # the CLI hands commands what they need (shell-init: the command names)
    **{low: EVERYTHING - {low, "errors", "atomic", "faults", "diskfull"} for low in ("errors", "atomic")},
}
for _name in EVERYTHING - {"cli", "commands"}:
    RULES.setdefault(_name, set()).update({"cli", "commands"})  # nothing below the CLI imports it


def test_every_layer_rule_holds() -> None:
    assert violations(PACKAGE, RULES) == []


def test_no_module_reaches_into_another_ones_private_names() -> None:
    assert private_imports(PACKAGE) == []


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    """Shown once with a real edit, kept as a test: an executor importing the engine is caught."""
    package = tmp_path / "buildgraph"
    (package / "executors").mkdir(parents=True)
    (package / "executors" / "local.py").write_text("from buildgraph.engine.walk import Walk\n")
    (package / "images").mkdir()
    (package / "images" / "x.py").write_text("from buildgraph.executors.docker import _owner_alive\n")
    assert violations(package, RULES) == [
        "buildgraph.executors.local imports buildgraph.engine.walk",
        "buildgraph.images.x imports buildgraph.executors.docker",
    ]
    assert private_imports(package) == [
        "buildgraph.images.x imports buildgraph.executors.docker._owner_alive"
    ]


def test_core_is_pure() -> None:
    for path in sorted((PACKAGE / "core").glob("*.py")):
        bad = {m for m in imports(path) if m.split(".")[0] in IO_MODULES}
        assert not bad, f"{path.name} imports I/O modules {bad}"


def test_records_do_no_io() -> None:
    for path in sorted((PACKAGE / "records").glob("*.py")):
        bad = {m for m in imports(path) if m.split(".")[0] in IO_MODULES}
        assert not bad, f"records/{path.name} imports I/O modules {bad}"


def test_cli_start_up_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    heavy = "('rich', 'docker', 'torch', 'networkx', 'jsonschema')"
    code = f"import sys, buildgraph.cli; print(','.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
