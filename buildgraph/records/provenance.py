"""A run's provenance: an in-toto Statement v1 whose predicate is SLSA Provenance v1.

Built when a run stage's command succeeded and stored in its run manifest (one atomic write
with it), read back by `bg provenance`. The shape is documented in docs/provenance.md:

    subject                 every output file with its sha256 (a directory output: each file
                            of its tree, named `dir/relpath`), project-relative names
    buildDefinition
      buildType             BUILD_TYPE
      externalParameters    what the Buildfile says: stage, command, params, args, env, outputs,
                            secret NAMES (never their values: bg never has them here)
      internalParameters    what bg chose: executor, key, key version, where the key says it
                            runs, and the environment extension (`environment`: Python, torch,
                            CUDA, driver, GPU model, thread settings, OS)
      resolvedDependencies  each input with its digest (a directory: bg's tree digest, so
                            annotated), the image and its base when the stage runs in one
    runDetails              builder id and version, invocation id, start and finish times,
                            the command's log as a byproduct

Pure: times, versions and digests are handed in (records do no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildgraph.records.errors import RecordError, required

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://buildgraph.dev/provenance/run-stage/v1"
BUILDER_ID = "https://buildgraph.dev/builder/bg"
TREE_DIGEST = "bg tree digest: sha256 of the directory's canonical listing (docs/provenance.md)"
_LINK_MODE = "120000"  # a symlink in a tree record: its digest is of the target's name, no subject


@dataclass(frozen=True)
class Run:
    """Everything a statement says about one successful run of a run stage."""

    stage: str
    key: str
    key_version: int
    material: Mapping[str, Any]  # core.keys.run_material
    outputs: Mapping[str, Mapping[str, Any]]  # path → the store's output record (a dir: its tree)
    environment: Mapping[str, Any]  # as the executor reported it (executors/fingerprint.py)
    executor: str
    started: str  # UTC, RFC 3339 (`2026-12-01T22:38:30Z`)
    finished: str
    invocation: str  # unique per run of a stage: `<bg run id>/<stage>`
    version: str  # bg's
    log: str = ""  # digest of the command's log object; "" when it printed nothing
    producers: Mapping[str, str] = field(default_factory=dict)  # input path → the stage making it
    dir_inputs: frozenset[str] = frozenset()  # inputs that are directories (tree digests)
    secrets: Sequence[str] = ()  # names only
    base: Mapping[str, Any] | None = None  # the image's base: {"image", "digest"} or {"debian", …}


def statement(run: Run) -> dict[str, Any]:
    """The in-toto Statement of `run`, as JSON."""
    material = run.material
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(run.outputs),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "stage": run.stage,
                    "command": material.get("command", ""),
                    "params": dict(material.get("params", {})),
                    "args": dict(material.get("args", {})),
                    "env": [list(kv) for kv in material.get("env", [])],
                    "outputs": list(material.get("outputs", [])),
                    "secrets": sorted(run.secrets),
                },
                "internalParameters": {
                    "executor": run.executor,
                    "key": run.key,
                    "keyVersion": run.key_version,
                    "runsOn": dict(material.get("environment", {})),
                    "environment": dict(run.environment),
                },
                "resolvedDependencies": dependencies(run),
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"buildgraph": run.version}},
                "metadata": {
                    "invocationId": run.invocation,
                    "startedOn": run.started,
                    "finishedOn": run.finished,
                },
                "byproducts": [{"name": "log", "digest": {"sha256": run.log}}] if run.log else [],
            },
        },
    }


def subjects(outputs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each output file with its sha256: what a verifier can hash. A directory output with no
    file at all is itself the subject, with its tree digest (a Statement needs one)."""
    found: list[dict[str, Any]] = []
    for path, record in outputs.items():
        if record.get("kind") != "dir":
            found.append({"name": path, "digest": {"sha256": record["digest"]}})
            continue
        files = [e for e in record.get("tree", []) if e[1] != _LINK_MODE]
        found += [{"name": f"{path}/{rel}", "digest": {"sha256": digest}} for rel, _, digest, _ in files]
        if not files:
            found.append(_tree(path, record["digest"]))
    return found


def dependencies(run: Run) -> list[dict[str, Any]]:
    """Each input with its digest, then the image the command ran in and that image's base."""
    found = []
    for path, digest in run.material.get("inputs", {}).items():
        entry: dict[str, Any] = _tree(path, digest) if path in run.dir_inputs else {"name": path}
        if digest is not None and "digest" not in entry:
            entry["digest"] = {"sha256": digest}
        producer = run.producers.get(path)
        source = f"output of stage {producer}" if producer else "project"
        entry.setdefault("annotations", {})["source"] = source
        found.append(entry)
    image_key = run.material.get("environment", {}).get("image")
    if image_key:
        found.append(_image(image_key, run.environment))
    if run.base:
        found.append(_base(run.base))
    return found


def _tree(path: str, digest: str) -> dict[str, Any]:
    return {"name": path, "digest": {"sha256": digest}, "annotations": {"digest": TREE_DIGEST}}


def _image(key: str, environment: Mapping[str, Any]) -> dict[str, Any]:
    """The image the command ran in: its tag, its docker id (when the executor reported it)
    and the key bg built it under."""
    entry: dict[str, Any] = {"name": environment.get("image") or f"image with key {key}"}
    image_id = str(environment.get("image_id") or "")
    if image_id.startswith("sha256:"):
        entry["digest"] = {"sha256": image_id.removeprefix("sha256:")}
    entry["annotations"] = {"source": "image", "key": key}
    return entry


def _base(base: Mapping[str, Any]) -> dict[str, Any]:
    """The image's base: a registry image pinned by digest, or an offline Debian base."""
    entry: dict[str, Any]
    if "debian" in base:  # `tar`: the digest of the root filesystem it was built from, when locked
        notes = {k: v for k, v in base.items() if k not in ("debian", "tar")}
        entry = {"name": f"debian:{base['debian']}", "annotations": {"source": "base image", **notes}}
        digest = str(base.get("tar") or "")
    else:
        entry = {"uri": f"docker://{base.get('image', '')}", "annotations": {"source": "base image"}}
        _, _, digest = str(base.get("digest", "")).rpartition("@sha256:")
    if digest:
        entry["digest"] = {"sha256": digest}
    return entry


# ---------------------------------------------------------------- reading
@dataclass(frozen=True)
class Provenance:
    """What `bg provenance` shows of a stored statement."""

    statement: Mapping[str, Any]
    subjects: tuple[tuple[str, str], ...]  # (name, sha256)
    stage: str
    key: str
    executor: str
    environment: Mapping[str, Any]
    dependencies: tuple[Mapping[str, Any], ...]
    invocation: str
    started: str
    finished: str
    builder: str


def read(data: Any) -> Provenance:
    """A stored statement, checked to be bg's (Statement v1, SLSA Provenance v1, our buildType)."""
    what = "provenance"
    if not isinstance(data, Mapping):
        raise RecordError(f"{what}: not a JSON object")
    if data.get("_type") != STATEMENT_TYPE or data.get("predicateType") != PREDICATE_TYPE:
        raise RecordError(f"{what}: not an in-toto Statement v1 of SLSA Provenance v1")
    predicate = required(data, "predicate", dict, what)
    build = required(predicate, "buildDefinition", dict, f"{what} predicate")
    if build.get("buildType") != BUILD_TYPE:
        raise RecordError(f"{what}: buildType {build.get('buildType')!r} is not bg's ({BUILD_TYPE})")
    internal, external = build.get("internalParameters", {}), build.get("externalParameters", {})
    details = predicate.get("runDetails", {})
    metadata = details.get("metadata", {})
    listed = required(data, "subject", list, what)
    try:
        found = tuple((str(s["name"]), str(s["digest"]["sha256"])) for s in listed)
    except (KeyError, TypeError):
        raise RecordError(f"{what}: a subject without a name or sha256 digest") from None
    return Provenance(
        statement=data,
        subjects=found,
        stage=str(external.get("stage", "")),
        key=str(internal.get("key", "")),
        executor=str(internal.get("executor", "")),
        environment=dict(internal.get("environment", {})),
        dependencies=tuple(build.get("resolvedDependencies", [])),
        invocation=str(metadata.get("invocationId", "")),
        started=str(metadata.get("startedOn", "")),
        finished=str(metadata.get("finishedOn", "")),
        builder=str(details.get("builder", {}).get("id", "")),
    )
