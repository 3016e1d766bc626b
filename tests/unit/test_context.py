"""Build contexts: exactly the copy sources, .dockerignore rules, byte-identical tars."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from buildgraph.core.keys import image_material, key_of
from buildgraph.core.spec import Copy, ImageRef, ImageStage, Spec
from buildgraph.engine.image_step import copy_digests
from buildgraph.errors import BuildfileError
from buildgraph.images.context import DOCKERFILE_NAME, build_context, copy_sources_listing
from buildgraph.images.ignore import IgnoreRules
from buildgraph.stores.digests import DigestCache


def stage(*copies: Copy, ignore: str = "") -> ImageStage:
    return ImageStage(name="app", base=ImageRef("debian:bookworm"), copy=copies, ignore=ignore)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "src/a.py": "a",
            "src/b.py": "b",
            "src/.hidden": "h",
            "src/__pycache__/a.pyc": "x",
            "src/sub/c.py": "c",
            "data/big.bin": "0" * 100,
            "README.md": "r",
            ".bg/cache/x": "no",
        },
    )
    return tmp_path


def rels(listing: list[tuple[str, Path]]) -> list[str]:
    return [rel for rel, _ in listing]


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["*.pyc"], "a.pyc", True),
        (["*.pyc"], "src/a.pyc", False),  # `*` stays in one segment
        (["**/*.pyc"], "src/deep/a.pyc", True),
        (["**/*.pyc"], "a.pyc", True),  # `**/` may match nothing
        (["src"], "src/sub/c.py", True),  # a directory pattern covers what is under it
        (["/src/sub"], "src/sub/c.py", True),  # a leading slash is dropped
        (["src", "!src/a.py"], "src/a.py", False),
        (["src", "!src/a.py"], "src/b.py", True),
        (["!src/a.py", "src"], "src/a.py", True),  # the last match wins
        (["# comment", "", "data?"], "data1", True),
        (["data/[ab]*"], "data/big.bin", True),
        (["data/[!b]*"], "data/big.bin", False),
        (["src/**"], "src/a.py", True),
        (["src/**"], "src", False),
    ],
)
def test_ignore_rules_follow_dockerignore_syntax(patterns: list[str], path: str, ignored: bool) -> None:
    assert IgnoreRules(patterns).ignored(path) is ignored


def test_listing_is_exactly_the_declared_sources(project: Path) -> None:
    listing = copy_sources_listing(project, stage(Copy(("src/a.py", "src/sub"), "/app/")))
    assert rels(listing) == ["src/a.py", "src/sub/c.py"]
    assert listing[0][1] == project / "src/a.py"


def test_listing_of_one_copy_entry(project: Path) -> None:
    spec = stage(Copy(("src/a.py",), "/a/"), Copy(("README.md", "src/b.py"), "/b/"))
    assert rels(copy_sources_listing(project, spec, index=1)) == ["README.md", "src/b.py"]


def test_directory_source_walks_everything_but_ignored_files(project: Path) -> None:
    (project / ".dockerignore").write_text("**/__pycache__\n")
    listing = copy_sources_listing(project, stage(Copy(("src/",), "/app/src/")))
    assert rels(listing) == ["src/.hidden", "src/a.py", "src/b.py", "src/sub/c.py"]


def test_stage_ignore_file_with_exception(project: Path) -> None:
    (project / "ctx.ignore").write_text("src\n!src/b.py\n")
    listing = copy_sources_listing(project, stage(Copy(("src",), "/app/"), ignore="ctx.ignore"))
    assert rels(listing) == ["src/b.py"]


def test_whole_project_source_never_includes_bg_state(project: Path) -> None:
    listing = rels(copy_sources_listing(project, stage(Copy((".",), "/app/"))))
    assert "README.md" in listing and "data/big.bin" in listing
    assert not [r for r in listing if r.startswith(".bg")]


def test_globs_match_dotfiles_within_one_segment(project: Path) -> None:
    listing = copy_sources_listing(project, stage(Copy(("src/*",), "/app/")))
    assert "src/.hidden" in rels(listing) and "src/sub/c.py" in rels(listing)
    assert rels(copy_sources_listing(project, stage(Copy(("*.md",), "/app/")))) == ["README.md"]


def test_missing_source_is_a_located_buildfile_error(project: Path) -> None:
    with pytest.raises(BuildfileError) as info:
        copy_sources_listing(project, stage(Copy(("src/a.py",), "/a/"), Copy(("nope.py",), "/b/")))
    assert info.value.problems[0].where == "stages.app.copy[1].src[0]"


def test_symlinks_are_kept_as_links(project: Path) -> None:
    os.symlink("a.py", project / "src/link.py")
    context = build_context(project, stage(Copy(("src",), "/app/")))
    with tarfile.open(fileobj=io.BytesIO(context.to_bytes("FROM x\n"))) as tar:
        link = tar.getmember("src/link.py")
    assert link.issym() and link.linkname == "a.py"


def test_tar_is_normalised_and_holds_the_dockerfile(project: Path) -> None:
    os.chmod(project / "src/a.py", 0o700)
    os.chmod(project / "src/b.py", 0o600)
    data = build_context(project, stage(Copy(("src/a.py", "src/b.py"), "/app/"))).to_bytes("FROM x\n")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        dockerfile = tar.extractfile(DOCKERFILE_NAME).read()  # type: ignore[union-attr]
    assert list(members) == ["src", "src/a.py", "src/b.py", DOCKERFILE_NAME, ".dockerignore"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, 0, "", "")}
    assert (members["src"].mode, members["src/a.py"].mode, members["src/b.py"].mode) == (0o755, 0o755, 0o644)
    assert dockerfile == b"FROM x\n"


def test_same_files_give_byte_identical_tars(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    spec = stage(Copy(("src",), "/app/"), Copy(("README.md",), "/"))
    first = build_context(project, spec).to_bytes("FROM x\n")
    os.utime(project / "src/a.py", (1, 1))  # times and order of creation do not matter
    other = tmp_path_factory.mktemp("other")
    write(
        other,
        {
            "src/sub/c.py": "c",
            "README.md": "r",
            "src/b.py": "b",
            "src/a.py": "a",
            "src/.hidden": "h",
            "src/__pycache__/a.pyc": "x",
        },
    )
    assert build_context(project, spec).to_bytes("FROM x\n") == first
    assert build_context(other, spec).to_bytes("FROM x\n") == first
    (other / "src/a.py").write_text("changed")
    assert build_context(other, spec).to_bytes("FROM x\n") != first


def image_key(root: Path, spec: ImageStage) -> str:
    with DigestCache(root / ".bg/stat.db") as digests:
        return key_of(image_material(spec, Spec(name="p"), {}, copy_digests(root, spec, digests)))


def test_copy_digest_is_the_canonical_tree_listing_of_each_entry(project: Path) -> None:
    (project / ".dockerignore").write_text("**/__pycache__\n")
    os.chmod(project / "src/a.py", 0o700)
    os.chmod(project / "src/b.py", 0o600)
    os.symlink("a.py", project / "src/link.py")
    spec = stage(Copy(("src/a.py", "src/b.py", "src/link.py"), "/app/"), Copy(("README.md",), "/"))
    with DigestCache(project / ".bg/stat.db") as digests:
        found = copy_digests(project, spec, digests)

    def sha(data: str) -> str:
        return hashlib.sha256(data.encode()).hexdigest()

    # one format for every tree bg digests: "{mode:o} {digest} {relpath}\n", sorted (stores.digests)
    listing = f"755 {sha('a')} src/a.py\n644 {sha('b')} src/b.py\n120000 {sha('a.py')} src/link.py\n"
    assert found == (sha(listing), sha(f"644 {sha('r')} README.md\n"))


def test_chmod_x_of_a_copied_file_changes_the_image_key(project: Path) -> None:
    os.chmod(project / "src/a.py", 0o644)
    spec = stage(Copy(("src/",), "/app/src/"))
    before = image_key(project, spec)
    assert image_key(project, spec) == before
    os.chmod(project / "src/a.py", 0o755)
    after = image_key(project, spec)
    assert after != before
    os.chmod(project / "src/a.py", 0o744)  # any exec bit is "executable", as in the build context
    assert image_key(project, spec) == after
