"""Keys: stable (golden), sensitive to exactly what they should be, blind to the rest."""

from __future__ import annotations

from buildgraph.core.keys import KEY_VERSION, canonical_json, image_material, key_of, run_material
from buildgraph.core.spec import Copy, ImageRef, ImageStage, Output, Param, RunStage, Spec, StageRef

TRAIN = RunStage(
    name="train",
    command="python3 train.py --epochs 2",
    image="deps",
    inputs=("data", "train.py"),
    outputs=(Output("model.pt"),),
    params_used=("epochs",),
)
SPEC = Spec(
    name="demo",
    args=(("PYTORCH", "2.5.1"),),
    params=(Param("epochs", 2, "int"), Param("lr", 0.001, "float")),
    stages={"train": TRAIN},
)
DIGESTS = {"data": "a" * 64, "train.py": "b" * 64}


def train_key(**changes: object) -> str:
    digests = {**DIGESTS, **changes.pop("digests", {})}  # type: ignore[dict-item]
    spec = changes.pop("spec", SPEC)
    stage = changes.pop("stage", TRAIN)
    env = changes.pop("environment", {"host": "linux/x86_64"})
    return key_of(run_material(stage, spec, env, digests))  # type: ignore[arg-type]


def test_golden_run_key() -> None:
    # Changing this value means every user's cache is invalidated: bump KEY_VERSION instead.
    # 2: copy digests became canonical tree listings (modes included); every key moved with it.
    assert KEY_VERSION == 2
    assert train_key() == "e5d04421aae954e7c5f8a07b004ebd03d57f38047eaa992a5e4b421f255afcff"


def test_golden_image_key() -> None:
    stage = ImageStage(
        name="deps",
        base=ImageRef("pytorch/pytorch:${PYTORCH}"),
        run=("pip install --no-cache-dir matplotlib",),
        copy=(Copy(("stages/",), "/opt/stages/"),),
        args_used=("PYTORCH",),
    )
    material = image_material(
        stage, SPEC, {}, ("c" * 64,), {"pytorch/pytorch:${PYTORCH}": "sha256:" + "d" * 64}
    )
    assert key_of(material) == "8812c049384675b012179de3a8d9f36a6fdf18b4dfab03bee6007639b2cc73b2"


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})


def test_key_changes_with_what_matters() -> None:
    base = train_key()
    assert train_key(digests={"train.py": "e" * 64}) != base
    assert train_key(stage=RunStage(**{**TRAIN.__dict__, "command": "python3 train.py --epochs 3"})) != base
    assert (
        train_key(
            spec=Spec(**{**SPEC.__dict__, "params": (Param("epochs", 3, "int"), Param("lr", 0.001, "float"))})
        )
        != base
    )
    assert train_key(environment={"image": "f" * 64}) != base


def test_key_ignores_params_the_stage_does_not_use() -> None:
    other = Spec(**{**SPEC.__dict__, "params": (Param("epochs", 2, "int"), Param("lr", 0.5, "float"))})
    assert train_key(spec=other) == train_key()


def test_image_key_follows_parent_key() -> None:
    child = ImageStage(name="code", base=StageRef("deps"))
    one = key_of(image_material(child, SPEC, {"deps": "1" * 64}, ()))
    two = key_of(image_material(child, SPEC, {"deps": "2" * 64}, ()))
    assert one != two
