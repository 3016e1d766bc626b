"""`bg lint` rules: each one fires on the bad case and stays quiet on the fixed one."""

from __future__ import annotations

from typing import Any

from buildgraph.core.spec import DebianBase, ImageRef, ImageStage, RunStage, Spec, StageRef
from buildgraph.lint import LintWarning, lint


def spec_of(*stages: ImageStage | RunStage, args: tuple[tuple[str, str], ...] = ()) -> Spec:
    return Spec(name="demo", args=args, stages={s.name: s for s in stages})


def image(name: str = "img", base: object = None, **fields: object) -> ImageStage:
    fields.setdefault("user", "1000")
    return ImageStage(name, base or ImageRef("debian:bookworm"), **fields)  # type: ignore[arg-type]


def where(warnings: list[LintWarning]) -> list[str]:
    return [w.where for w in warnings]


def test_clean_stage_has_no_warnings() -> None:
    stage = image(
        env=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=(
            "apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*",
            "pip install --no-cache-dir numpy",
        ),
    )
    assert lint(spec_of(stage)) == []


def test_pip_without_no_cache_dir() -> None:
    warnings = lint(spec_of(image(run=("echo ok", "pip3 install -U numpy", "python -m pip install x"))))
    assert where(warnings) == ["stages.img.run[1]", "stages.img.run[2]"]
    assert "--no-cache-dir" in warnings[0].fix


def test_pip_cache_disabled_by_env_or_short_flag_is_fine() -> None:
    assert lint(spec_of(image(run=("pip --no-cache install matplotlib",)))) == []
    assert lint(spec_of(image(env=(("PIP_NO_CACHE_DIR", "1"),), run=("pip install x",)))) == []


def test_apt_without_cleanup_in_the_same_step() -> None:
    stage = image(
        env=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=("apt-get update && apt-get install -y curl", "rm -rf /var/lib/apt/lists/*"),
    )
    warnings = lint(spec_of(stage))
    assert where(warnings) == ["stages.img.run[0]"]
    assert "rm -rf /var/lib/apt/lists/*" in warnings[0].fix


def test_apt_install_needs_noninteractive_env_inherited_or_inline() -> None:
    cleanup = " && rm -rf /var/lib/apt/lists/*"
    bare = image("a", run=("apt-get install -y tzdata" + cleanup,))
    inline = image("b", run=("DEBIAN_FRONTEND=noninteractive apt-get install -y tzdata" + cleanup,))
    parent = image("c", env=(("DEBIAN_FRONTEND", "noninteractive"),))
    child = image("d", base=StageRef("c"), run=("apt-get install -y tzdata" + cleanup,))
    warnings = lint(spec_of(bare, inline, parent, child))
    assert [(w.stage, w.field) for w in warnings] == [("a", "run[0]")]
    assert "DEBIAN_FRONTEND" in warnings[0].message + warnings[0].fix


def test_unpinned_or_latest_base() -> None:
    stages = [
        image("a", ImageRef("python")),
        image("b", ImageRef("ghcr.io/org/img:latest")),
        image("c", ImageRef("localhost:5000/img")),
        image("ok1", ImageRef("python:3.12-slim")),
        image("ok2", ImageRef("python@sha256:" + "a" * 64)),
        image("ok3", DebianBase("bookworm")),
    ]
    assert [w.stage for w in lint(spec_of(*stages))] == ["a", "b", "c"]


def test_secret_looking_args_and_env() -> None:
    stage = image(env=(("API_TOKEN", "x"), ("HOME_DIR", "/h"), ("GH", "ghp_" + "a" * 30), ("SSH_KEY", "k")))
    warnings = lint(spec_of(stage, args=(("DB_PASSWORD", "pw"), ("VERSION", "1"))))
    assert where(warnings) == [
        "stages.img.env.API_TOKEN",
        "stages.img.env.GH",
        "stages.img.env.SSH_KEY",
        "args.DB_PASSWORD",
    ]
    assert "secrets" in warnings[0].fix


def test_root_user_on_leaf_images_only() -> None:
    base = image("base", user="")
    leaf_root = image("leaf", base=StageRef("base"), user="")
    leaf_inherits = image("leaf2", base=StageRef("named"), user="")
    named = image("named", user="app")
    explicit_root = image("r", user="0:0")
    warnings = lint(spec_of(base, leaf_root, named, leaf_inherits, explicit_root))
    assert [(w.stage, w.field) for w in warnings] == [("leaf", "user"), ("r", "user")]


def test_render_locates_the_field() -> None:
    warning = lint(spec_of(image(run=("pip install x",))))[0]
    assert (
        warning.render()
        == "Buildfile.toml: stages.img.run[0]: pip install keeps its download cache in the image"
    )


def test_bg_lint_prints_each_warning_with_its_fix(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Buildfile.toml").write_text(
        '[project]\nname = "demo"\n\n[stages.img]\nfrom = "python:3.12-slim"\nuser = "1000"\n'
        'run = ["pip install numpy"]\n'
    )
    assert main(["-C", str(tmp_path), "lint"]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "Buildfile.toml: stages.img.run[0]: pip install keeps its download cache in the image\n"
        '  fix: add --no-cache-dir (or set env PIP_NO_CACHE_DIR = "1")\n'
    )
    assert err == "bg lint: 1 warning\n"
    assert main(["-C", str(tmp_path), "lint", "--strict"]) == 1
