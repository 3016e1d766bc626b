"""What one simple command does, as far as `bg lint` cares (pure).

Each function reads a `lint_shell.Command` the way the program itself reads its argv:
pip, apt-get/apt, apk and conda/mamba/micromamba, with the options that take a value
skipped, so `apk add --virtual .deps gcc` installs gcc, not `.deps`. A word holding `$`
is a value only the build knows: it is never called unpinned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from buildgraph.lint_shell import Command

_PIP = re.compile(r"pip(\d(\.\d+)?)?")
_PYTHON = re.compile(r"python(\d(\.\d+)?)?")


def _options(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PIP_VALUED = _options(
    "-r --requirement -c --constraint -e --editable -i --index-url --extra-index-url -f --find-links"
    " -t --target --prefix --root --src --platform --python-version --implementation --abi --no-binary"
    " --only-binary --progress-bar --proxy --trusted-host --upgrade-strategy -b --build -C --config-settings"
    " --cache-dir --log --report --python --retries --timeout"
)
_APT_VALUED = _options("-o --option -c --config-file -t --target-release --default-release")
_APK_VALUED = _options("-t --virtual -X --repository -p --root --arch --keys-dir --repositories-file")
_CONDA_VALUED = _options("-n --name -p --prefix -c --channel --file --solver --repodata-fn")
_CONDA = frozenset({"conda", "mamba", "micromamba"})
_VCS = re.compile(r"^(git|hg|svn|bzr)(\+[a-z-]+)?:")
_PIP_VERSION = ("==", ">=", "<=", ">", "<", "!=", "~=")
# Upgrading the installer itself (`pip install -U pip setuptools wheel`) is not what a pin is for.
_PIP_TOOLS = frozenset({"pip", "setuptools", "wheel"})


def operands(args: Iterable[str], valued: frozenset[str]) -> list[str]:
    """The non-option words of `args`, skipping the value of each option in `valued`."""
    found: list[str] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word == "--" or not word.startswith("-"):
            found.append(word)
        else:
            skip = word in valued
    return [w for w in found if w != "--"]


def subcommand(command: Command, programs: Iterable[str], valued: frozenset[str]) -> tuple[str, list[str]]:
    """`install`, `[pkgs…]` for `apt-get -q install pkgs…`; ("", []) for another program."""
    if command.program not in programs:
        return "", []
    words = operands(command.words[1:], valued)
    return (words[0], words[1:]) if words else ("", [])


def pip_args(command: Command) -> list[str] | None:
    """pip's arguments (`pip3 …`, `python -m pip …`), or None for another program."""
    words = command.words
    if _PIP.fullmatch(command.program):
        return list(words[1:])
    if _PYTHON.fullmatch(command.program) and "-m" in words:
        at = words.index("-m")
        if words[at + 1 : at + 2] == ("pip",):
            return list(words[at + 2 :])
    return None


def pip_install(command: Command) -> list[str] | None:
    """The arguments of a `pip install`, or None when the command is something else."""
    args = pip_args(command)
    if args is None:
        return None
    words = operands(args, _PIP_VALUED)
    return args[args.index("install") + 1 :] if words[:1] == ["install"] else None


def pip_no_cache(args: Iterable[str]) -> bool:
    """`--no-cache-dir`, or any abbreviation pip accepts for it (`--no-cache`, `--no-cach`)."""
    return any(len(w) >= len("--no-cach") and "--no-cache-dir".startswith(w) for w in args)


def pip_unpinned(args: list[str]) -> list[str]:
    """hadolint DL3013: packages named without a version (not from a requirements or constraints file)."""
    if any(w in args for w in ("-r", "--requirement", "-c", "--constraint", ".")):
        return []
    return [p for p in operands(args, _PIP_VALUED) if not _pip_pinned(p) and p.lower() not in _PIP_TOOLS]


def _pip_pinned(package: str) -> bool:
    if _VCS.match(package):
        return "@" in package.split(":", 1)[1]
    return (
        "$" in package
        or any(s in package for s in _PIP_VERSION)
        or package.endswith((".whl", ".tar.gz", ".zip"))
        or package.startswith(".")
        or "/" in package
    )


def apt(command: Command) -> tuple[str, list[str]]:
    """(`install`/`update`/…, its packages) for apt-get or apt; ("", []) otherwise."""
    return subcommand(command, ("apt-get", "apt"), _APT_VALUED)


def apt_yes(command: Command) -> bool:
    """hadolint DL3014: `-y` (or `--yes`, `--assume-yes`, `-qq`, `-qy`…): no question stops the build."""
    return any(
        w in ("--yes", "--assume-yes", "-qq") or re.fullmatch(r"-[a-z]*y[a-z]*", w) for w in command.words
    )


def apt_no_recommends(command: Command) -> bool:
    """hadolint DL3015: `--no-install-recommends`, or the same as an `-o` option."""
    return any(
        w == "--no-install-recommends" or re.search(r"APT::Install-Recommends=[\"']?(false|0|no)", w, re.I)
        for w in command.words
    )


def apt_unpinned(packages: list[str]) -> list[str]:
    """hadolint DL3008: `pkg=version`, `pkg/release` and `.deb` files count as pinned."""
    return [p for p in packages if not ("=" in p or "/" in p or "$" in p or p.endswith(".deb"))]


def apk_add(command: Command) -> list[str] | None:
    """The packages of an `apk add`, or None."""
    verb, packages = subcommand(command, ("apk",), _APK_VALUED)
    return packages if verb == "add" else None


def apk_unpinned(packages: list[str]) -> list[str]:
    """hadolint DL3018: `pkg=1.2`, `pkg>1`, `pkg~1.2` and `.apk` files count as pinned."""
    return [p for p in packages if not (re.search(r"[=<>~$]", p) or p.endswith(".apk"))]


def conda_install(command: Command) -> list[str] | None:
    """The packages of `conda|mamba|micromamba install|create`, or None (also for `--file` lists)."""
    verb, packages = subcommand(command, _CONDA, _CONDA_VALUED)
    from_file = any(w == "--file" or w.startswith("--file=") for w in command.words)
    return None if verb not in ("install", "create") or from_file else packages


def conda_unpinned(packages: list[str]) -> list[str]:
    return [p for p in packages if not re.search(r"[=<>$]", p) and not p.endswith((".tar.bz2", ".conda"))]


def is_conda_clean(command: Command) -> bool:
    return command.program in _CONDA and "clean" in command.words[1:2]


def removes(command: Command, path: str) -> bool:
    """`rm -rf …path…` (or `-fr`, `-r`, `--recursive`)."""
    if command.program != "rm":
        return False
    recursive = any(re.fullmatch(r"-[a-zA-Z]*[rR][a-zA-Z]*|--recursive", w) for w in command.words[1:])
    return recursive and any(path in w for w in command.words[1:])


def sets_pipefail(command: Command) -> bool:
    """`set -o pipefail`, `set -euxo pipefail`, …"""
    return command.program == "set" and "pipefail" in command.words[1:]
