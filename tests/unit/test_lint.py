"""`bg lint` rules: each one fires on the bad case and stays quiet on the fixed one."""

from __future__ import annotations

from typing import Any

from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, Mount, RunStage, Spec, StageRef
from buildgraph.lint import LintWarning, lint


def spec_of(*stages: ImageStage | RunStage, args: tuple[tuple[str, str], ...] = ()) -> Spec:
    return Spec(name="demo", args=args, stages={s.name: s for s in stages})


def image(name: str = "img", base: object = None, **fields: object) -> ImageStage:
    fields.setdefault("user", "1000")
    return ImageStage(name, base or ImageRef("debian:bookworm"), **fields)  # type: ignore[arg-type]


def where(warnings: list[LintWarning], rule: str = "") -> list[str]:
    return [w.where for w in warnings if w.rule == rule or not rule]


def rules(stage: ImageStage) -> list[tuple[str, str]]:
    return [(w.field, w.rule) for w in lint(spec_of(stage))]


CLEAN_APT = "apt-get install -y --no-install-recommends tzdata=2024a-0 && rm -rf /var/lib/apt/lists/*"


def test_clean_stage_has_no_warnings() -> None:
    stage = image(
        env=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=(
            "apt-get update && apt-get install -y --no-install-recommends gcc=4:12.2.0-3"
            " && rm -rf /var/lib/apt/lists/*",
            "pip install --no-cache-dir numpy==1.26.4",
        ),
    )
    assert lint(spec_of(stage)) == []


def test_pip_without_no_cache_dir() -> None:
    warnings = lint(spec_of(image(run=("echo ok", "pip3 install -U numpy==1", "python -m pip install x==2"))))
    assert where(warnings, "pip-cache") == ["stages.img.run[1]", "stages.img.run[2]"]
    assert "--no-cache-dir" in warnings[0].fix


def test_pip_cache_disabled_by_env_or_short_flag_is_fine() -> None:
    assert lint(spec_of(image(run=("pip --no-cache install matplotlib==3.8",)))) == []
    assert lint(spec_of(image(run=("pip install --no-cach matplotlib==3.8",)))) == []
    assert lint(spec_of(image(env=(("PIP_NO_CACHE_DIR", "1"),), run=("pip install x==1",)))) == []
    assert lint(spec_of(image(run=("PIP_NO_CACHE_DIR=1 pip install x==1",)))) == []


def test_apt_without_cleanup_in_the_same_step() -> None:
    stage = image(
        env=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=(
            "apt-get update && apt-get install -y --no-install-recommends curl=7 && echo done",
            "rm -rf /var/lib/apt/lists/*",
        ),
    )
    warnings = lint(spec_of(stage))
    assert where(warnings) == ["stages.img.run[0]"]
    assert "rm -rf /var/lib/apt/lists/*" in warnings[0].fix


def test_apt_install_needs_noninteractive_env_inherited_or_inline() -> None:
    bare = image("a", run=(CLEAN_APT,))
    inline = image("b", run=("DEBIAN_FRONTEND=noninteractive " + CLEAN_APT,))
    parent = image("c", env=(("DEBIAN_FRONTEND", "noninteractive"),))
    child = image("d", base=StageRef("c"), run=(CLEAN_APT,))
    arg = image("e", args=(("DEBIAN_FRONTEND", "noninteractive"),), run=(CLEAN_APT,))
    warnings = lint(spec_of(bare, inline, parent, child, arg))
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
    warning = lint(spec_of(image(run=("pip install x==1",))))[0]
    assert (
        warning.render()
        == "Buildfile.toml: stages.img.run[0]: pip install keeps its download cache in the image"
    )


def test_bg_lint_prints_each_warning_with_its_fix(tmp_path: Any, capsys: Any) -> None:
    from buildgraph.cli import main

    (tmp_path / "Buildfile.toml").write_text(
        '[project]\nname = "demo"\n\n[stages.img]\nfrom = "python:3.12-slim"\nuser = "1000"\n'
        'run = ["pip install numpy==1.26.4"]\n'
    )
    assert main(["-C", str(tmp_path), "lint"]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "Buildfile.toml:7: stages.img.run[0]: pip install keeps its download cache in the image\n"
        '  fix: add --no-cache-dir (or set env PIP_NO_CACHE_DIR = "1")\n'
    )
    assert err == "bg lint: 1 warning\n"
    assert main(["-C", str(tmp_path), "lint", "--strict"]) == 1


def test_each_command_of_a_run_entry_is_judged_on_its_own() -> None:
    flagged = (
        "pip install x==1 && pip install --no-cache-dir y==2",
        "pip install --no-cache-dir y==2; pip install x==1",
        "apk add --no-cache gcc=13 && pip install x==1",
        "cd /src && (make || pip install x==1)",
    )
    for command in flagged:
        assert rules(image(run=(command,))) == [("run[0]", "pip-cache")], command
    quiet = (
        'echo "pip install x" && pip install --no-cache-dir y==2',
        "pip install --no-cache-dir y==2 # pip install x",
        "pip install --no-cache-dir \\\n  y==2 && pip download x",
    )
    for command in quiet:
        assert rules(image(run=(command,))) == [], command


def test_apt_lists_must_be_removed_after_the_last_apt_command() -> None:
    before = "rm -rf /var/lib/apt/lists/* && apt-get update && apt-get install -y --no-install-recommends x=1"
    frontend = (("DEBIAN_FRONTEND", "noninteractive"),)
    assert rules(image(args=frontend, run=(before,))) == [("run[0]", "apt-lists")]
    assert rules(image(args=frontend, run=(CLEAN_APT,))) == []


def test_apt_install_needs_yes_no_recommends_and_pins() -> None:
    stage = image(
        args=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=("apt-get update && apt-get install git curl=7 ./local.deb && rm -rf /var/lib/apt/lists/*",),
    )
    warnings = lint(spec_of(stage))
    assert [w.rule for w in warnings] == ["apt-yes", "apt-recommends", "apt-pin"]
    assert "(git)" in warnings[2].message
    options = "apt-get -qy -o APT::Install-Recommends=false install git=1 && rm -rf /var/lib/apt/lists/*"
    assert rules(image(args=(("DEBIAN_FRONTEND", "noninteractive"),), run=(options,))) == []


def test_pip_pins_follow_hadolint_dl3013() -> None:
    pinned = (
        "pip install --no-cache-dir -r requirements.txt",
        "pip install --no-cache-dir -e . ",
        "pip install --no-cache-dir 'torch>=2' numpy==1.26 ./pkg /wheels/a.whl git+https://h/r.git@v1",
        "pip install --no-cache-dir -U pip setuptools wheel",
        "pip install --no-cache-dir $PACKAGES",
        "pip install --no-cache-dir -i https://mirror/simple torch==2.1",
    )
    for command in pinned:
        assert rules(image(run=(command,))) == [], command
    warning = lint(spec_of(image(run=("pip install --no-cache-dir torch torchvision git+https://h/r.git",))))
    assert [w.rule for w in warning] == ["pip-pin"]
    assert "(torch, torchvision, git+https://h/r.git)" in warning[0].message


def test_apk_cache_and_pins() -> None:
    assert rules(image(run=("apk add gcc",))) == [("run[0]", "apk-cache"), ("run[0]", "apk-pin")]
    assert rules(image(run=("apk add --no-cache --virtual .deps gcc=13.2",))) == []
    assert rules(image(run=("apk add gcc=13.2 && rm -rf /var/cache/apk/*",))) == []


def test_conda_clean_and_pins() -> None:
    assert rules(image(run=("conda install -y numpy",))) == [
        ("run[0]", "conda-clean"),
        ("run[0]", "conda-pin"),
    ]
    clean = "conda install -y -c pytorch pytorch=2.1 python=3.11 && conda clean -afy"
    assert rules(image(run=(clean,))) == []
    assert rules(image(run=("mamba install -y --file env.txt && mamba clean -a",))) == []


def test_pipefail_for_piped_entries() -> None:
    assert rules(image(run=("curl -fsSL https://x/install.sh | sh",))) == [("run[0]", "pipefail")]
    assert rules(image(run=("set -o pipefail && curl -fsSL https://x | sh",))) == []
    assert rules(image(run=("echo 'a | b' || true",))) == []


def test_consecutive_short_entries_could_merge() -> None:
    three = "apt-get update && apt-get install -y x=1 && rm -rf /var/lib/apt/lists/*"
    stage = image(run=(three, "echo a", "echo b"))
    assert [(f, r) for f, r in rules(stage) if r == "merge-runs"] == [("run[2]", "merge-runs")]


def test_root_user_on_a_parent_that_a_run_stage_uses() -> None:
    parent = image("env", user="")
    child = image("tool", base=StageRef("env"), user="app")
    job = RunStage("train", "python train.py", image="env")
    assert [(w.stage, w.rule) for w in lint(spec_of(parent, child, job))] == [("env", "root-user")]


def test_pipefail_from_the_stage_shell_or_an_ancestors() -> None:
    piped = ("curl -fsSL https://x | sh",)
    bash = ("/bin/bash", "-euo", "pipefail", "-c")
    parent = image("p", shell=bash, run=piped)
    child = image("c", base=StageRef("p"), run=piped)
    plain = image("q", shell=("/bin/bash", "-c"), run=piped)
    warnings = lint(spec_of(parent, child, plain))
    assert [(w.stage, w.rule) for w in warnings] == [("q", "pipefail")]


def test_a_stage_only_copied_from_ships_neither_its_layers_nor_its_user() -> None:
    builder = image("builder", user="", run=("pip install wheel-tool==1",))
    app = image("app", copy=(Copy(("/opt/venv",), "/opt/venv", from_stage="builder"),))
    assert lint(spec_of(builder, app)) == []
    alone = image("builder", user="", run=("pip install wheel-tool==1",))
    assert [w.rule for w in lint(spec_of(alone))] == ["pip-cache", "root-user"]


def test_apt_install_alone_writes_no_lists() -> None:
    stage = image(args=(("DEBIAN_FRONTEND", "noninteractive"),), run=(CLEAN_APT.split(" && ")[0],))
    assert rules(stage) == []


def test_a_cache_mount_keeps_the_cache_out_of_the_image() -> None:
    pip = Mount("cache", "/root/.cache/pip")
    lists = Mount("cache", "/var/lib/apt/lists", sharing="locked")
    stage = image(
        args=(("DEBIAN_FRONTEND", "noninteractive"),),
        run=("pip install x==1", "apt-get update && apt-get install -y --no-install-recommends x=1"),
        run_mounts=((pip,), (lists,)),
    )
    assert rules(stage) == []
    assert [r for _, r in rules(image(run=("pip install x==1",), run_mounts=((lists,),)))] == ["pip-cache"]
