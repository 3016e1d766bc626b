"""The up-to-date stamp: a null `bg run` or `bg status` answered with one `stat` per path.

make and ninja answer "nothing to do" from timestamps alone; bg decides from content (keys,
digests, the lock), which costs its imports, the Buildfile, sqlite's stat cache and a decision
per step. So when a run or a status found every selected step up to date, it leaves a stamp
in `.bg/uptodate/`: the (inode, size, mtime_ns, ctime_ns, mode) of every path that answer
depended on, and the text it printed. The next identical invocation checks the stamp before
anything else is imported; one path whose stat differs, and the normal path decides.

This module is the CLI's first import: stdlib only (os, sys, marshal, zlib, time), nothing of
bg that imports more. What the stamp records is chosen by `commands/stamp.py`; why it is safe
is docs/architecture.md, "Null runs: the up-to-date stamp".
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import time
import zlib

from buildgraph import __version__

FORMAT = 1  # bumped whenever the stamp's layout or meaning changes
FOLDER = ".bg/uptodate"
JOURNAL = ".bg/journal.jsonl"  # a journal present: the lock is not final, never a null run
# stores/digests.py's windows (a test keeps them equal): a path changed this close to when bg
# started reading may change again within one timestamp tick, unseen by its stat
RACY_WINDOW_NS = 2_000_000_000
FINE_RACY_WINDOW_NS = 100_000_000
# Environment that may change what bg decides or prints. BG_* (fault injection, --debug) turns
# the stamp off; under the local executor (the only one stamped) no other variable enters a key
# or a decision; CUDA_VISIBLE_DEVICES sizes the GPU pool, recorded to stay on the safe side.
RECORDED_ENV = ("CUDA_VISIBLE_DEVICES",)
PACKAGE = os.path.dirname(os.path.abspath(__file__))

Key = tuple[int, int, int, int, int]  # st_ino, st_size, st_mtime_ns, st_ctime_ns, st_mode
Entry = tuple[str, bool, "Key | None"]  # path, stat follows a symlink, key (None: must be absent)
Watch = tuple[str, bool, bool]  # project path, every entry below it, must exist
Glob = tuple[str, int, bool]  # a glob's root, the directory levels it reads (-1: all), hidden names


class Request:
    """A null-run candidate: `run [-q] [-j N] [-k] [TARGET…]` or `status [TARGET…]` in `root`."""

    __slots__ = ("command", "path", "quiet", "root", "started_ns", "targets")

    def __init__(self, command: str, targets: tuple[str, ...], quiet: bool, started_ns: int) -> None:
        self.command, self.targets, self.quiet, self.started_ns = command, targets, quiet, started_ns
        self.root = os.getcwd()  # a physical path already: no symlink to resolve
        self.path = f"{self.root}/{FOLDER}/{stamp_name(targets)}"


def request(argv: list[str], environ: os._Environ[str] | dict[str, str] = os.environ) -> Request | None:
    """The request `argv` makes, when the stamp may answer it; None: the normal path."""
    started = time.time_ns()  # before anything is read: the racy rule's reference
    if not argv or argv[0] not in ("run", "status") or any(name.startswith("BG_") for name in environ):
        return None
    parsed = _words(argv[0], argv[1:])
    return None if parsed is None else Request(argv[0], parsed[0], parsed[1], started)


def _words(command: str, words: list[str]) -> tuple[tuple[str, ...], bool] | None:
    """(targets, quiet) of the words after the command; None for anything else (-C, --force …)."""
    targets: list[str] = []
    quiet, i = False, 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            targets.append(word)
        elif command != "run":
            return None
        elif word in ("-q", "--quiet"):
            quiet = True
        elif word in ("-j", "--jobs"):
            i += 1
            if i == len(words) or not _count(words[i]):
                return None
        elif not (word in ("-k", "--keep-going") or _jobs(word)):
            return None
        i += 1
    return tuple(targets), quiet


def _jobs(word: str) -> bool:
    """`-jN` or `--jobs=N` with a valid N (an invalid one: argparse says why)."""
    for prefix in ("--jobs=", "-j"):
        if word.startswith(prefix):
            return _count(word[len(prefix) :])
    return False


def _count(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) >= 1


def stamp_name(targets: tuple[str, ...]) -> str:
    """One stamp per selection. A collision only overwrites: the stamp holds its targets."""
    if not targets:
        return "default"
    return f"t{zlib.crc32(chr(0).join(targets).encode('utf-8', 'surrogateescape')):08x}"


# ---------------------------------------------------------------- the fast path
def answer(req: Request | None) -> int | None:
    """Print what the normal path would and return 0, when the stamp proves nothing changed."""
    if req is None or sys.stdout is None:
        return None
    try:
        if req.command == "run" and not req.quiet and _interactive():
            return None  # a terminal gets rich's live table: the normal path draws it
        texts = _valid(req)
    except Exception:  # noqa: BLE001 - absent, torn, another format: the normal path decides
        return None
    if texts is None:
        return None
    run_head, status_text = texts
    took = (time.time_ns() - req.started_ns) / 1e9
    try:
        sys.stdout.write(status_text if req.command == "status" else f"{run_head} in {took:.1f}s\n")
        sys.stdout.flush()
    except BrokenPipeError:  # as the CLI treats it: the reader has gone
        pass
    return 0


def _interactive() -> bool:
    """What `report.make_reporter` asks before it draws a live table."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def _valid(req: Request) -> tuple[str, str] | None:
    with open(req.path, "rb") as f:
        stamp = marshal.loads(f.read())
    if not isinstance(stamp, tuple) or len(stamp) != 7 or stamp[0] != FORMAT:
        return None
    _, context, targets, root, run_head, status_text, entries = stamp
    if context != _context() or targets != req.targets or root != req.root:
        return None
    return (run_head, status_text) if unchanged(entries) else None


def _context() -> tuple[object, ...]:
    """What else the answer depends on: bg's version and code, the host, the environment."""
    uname = os.uname()  # = engine.context.host_fingerprint(), part of every local run key
    env = tuple(os.environ.get(name) for name in RECORDED_ENV)
    return (__version__, PACKAGE, f"{uname.sysname.lower()}/{uname.machine}", env)


def unchanged(entries: list[Entry] | tuple[Entry, ...]) -> bool:
    """Whether every path still has its recorded stat (or is still absent)."""
    lstat, follow_stat = os.lstat, os.stat
    for path, follow, key in entries:
        try:
            st = follow_stat(path) if follow else lstat(path)
        except OSError:
            if key is None:
                continue
            return False
        if key is None or (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode) != key:
            return False
    return True


# ---------------------------------------------------------------- writing
def write(req: Request, run_head: str, status_text: str, watches: list[Watch], globs: list[Glob]) -> bool:
    """Stamp `req`'s answer: `run_head` (the run's summary line before " in …s") and the
    status table. No stamp (and none left from before) when a required path is missing, a
    symlink leads to a directory, or a path changed too recently to trust its stat."""
    try:
        entries = _code_entries() + snapshot(req.root, watches, globs)
        if entries and not _racy(entries, req.started_ns):
            stamp = (FORMAT, _context(), req.targets, req.root, run_head, status_text, tuple(entries))
            _replace(req.path, marshal.dumps(stamp))  # type: ignore[arg-type]  # plain values only
            return True
    except (_GiveUp, OSError):
        pass
    remove(req.path)
    return False


class _GiveUp(Exception):
    """A path the stamp cannot vouch for with stats: the normal path keeps deciding."""


def snapshot(root: str, watches: list[Watch], globs: list[Glob] | None = None) -> list[Entry]:
    """The entries of the watched project paths (plus "no journal"), relative to `root`."""
    entries: list[Entry] = []
    for path, below, required in watches:
        _watch(root, path, below, required, entries)
    for base, levels, hidden in globs or ():
        _glob_dirs(root, base, levels, hidden, entries)
    _watch(root, JOURNAL, False, False, entries)
    if entries[-1][2] is not None:
        raise _GiveUp("a journal: the lock is not final")
    return entries


def _watch(root: str, rel: str, below: bool, required: bool, entries: list[Entry]) -> None:
    full = f"{root}/{rel}" if rel else root
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        if required:
            raise _GiveUp(rel) from None
        entries.append((rel, False, None))
        return
    entries.append((rel, False, _key(st)))
    if stat.S_ISLNK(st.st_mode):  # digests follow links inside the project: stamp the target too
        st = os.stat(full)
        if stat.S_ISDIR(st.st_mode):
            raise _GiveUp(f"{rel} links to a directory")
        entries.append((rel, True, _key(st)))
    elif below and stat.S_ISDIR(st.st_mode):  # each dir's mtime moves when an entry comes or goes
        with os.scandir(full) as found:
            names = sorted(e.name for e in found)
        for name in names:
            _watch(root, f"{rel}/{name}", True, True, entries)


def _glob_dirs(root: str, rel: str, levels: int, hidden: bool, entries: list[Entry]) -> None:
    """The directories whose listings a glob reads, `levels` deep (-1: all): what it matches
    changes only when one of their entries comes or goes, which moves that directory's mtime."""
    full = f"{root}/{rel}" if rel else root
    rel = rel or "."  # how the check names the project root (its working directory)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        entries.append((rel, True, None))
        return
    if not stat.S_ISDIR(st.st_mode):
        entries.append((rel, True, _key(st)))
        return
    entries.append((rel, True, _key(st)))
    if levels == 0:
        return
    with os.scandir(full) as found:
        subdirs = [e for e in found if e.is_dir() and (hidden or not e.name.startswith("."))]
    for entry in sorted(subdirs, key=lambda e: e.name):
        if entry.is_symlink():
            raise _GiveUp(f"{rel}/{entry.name}: a glob follows this link")
        _glob_dirs(root, entry.name if rel == "." else f"{rel}/{entry.name}", levels - 1, hidden, entries)


def _code_entries() -> list[Entry]:
    """bg's own modules: an edited checkout (a new key version, say) reads no old stamp."""
    found: list[Entry] = []
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found += [
            (f"{folder}/{n}", False, _key(os.lstat(f"{folder}/{n}")))
            for n in sorted(files)
            if n.endswith(".py")
        ]
    return found


def _key(st: os.stat_result) -> Key:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _racy(entries: list[Entry], started_ns: int) -> bool:
    """Whether a path changed within the racy window before bg started, or since: its stat
    might not show a change made in the same timestamp tick (git's racy-git problem), or the
    answer was decided on other bytes than those the stat now describes. ctime counts too:
    `touch -d` or an extracted archive set an old mtime, never an old ctime."""
    for _, _, key in entries:
        if key is not None:
            mtime, ctime = key[2], key[3]
            window = FINE_RACY_WINDOW_NS if mtime % 1_000_000 else RACY_WINDOW_NS
            if max(mtime, ctime) >= started_ns - window:
                return True
    return False


def _replace(path: str, data: bytes) -> None:
    """Temp file + rename, no fsync: a cache; a torn stamp fails to load and is not trusted."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise


def remove(path: str) -> None:
    try:  # noqa: SIM105 - contextlib costs an import on the fast path
        os.unlink(path)
    except OSError:
        pass


def remove_all(state: str | os.PathLike[str]) -> None:
    """Forget every stamp of the project whose `.bg` is `state`: called by whatever may change
    the workspace, the lock or the outputs, before it changes anything."""
    folder = os.path.join(state, "uptodate")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        remove(os.path.join(folder, name))
