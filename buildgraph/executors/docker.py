"""Run a job inside a container: the docker executor.

Layout inside the container (the same contract as the local executor):

    <job.workdir>/                 ← job.scratch/out on the host, read-write: outputs land here
    <job.workdir>/<input relpath>  ← each input, bind-mounted READ-ONLY on top
    /run/secrets/<name>            ← each secret file, read-only; never in env, labels or logs
    /tmp/home                      ← HOME, a tmpfs owned by the container user

The container runs as the invoking user (`os.getuid():os.getgid()`, or `user=`), so
outputs are never root-owned; with no network (`network_mode="none"`) unless the job
asks for it; with every capability dropped and `no-new-privileges`; under docker's
init so signals reach the command. It is labelled `org.buildgraph.run=<run_id>`,
`org.buildgraph.pid=<our pid>`, `org.buildgraph.host=<hostname>`, and removed when
the job ends, fails, times out, is cancelled, or the engine raises (Ctrl-C included).

A killed bg (SIGKILL, OOM killer) leaves no container running either: each container gets
a fresh name (`bg-<stage>-<random>`), listed with a guardian (guardian.py) from before it
is created until after it is removed, and the guardian — a stdlib-only Python process that
outlives bg — force-removes the listed containers through the Engine API as soon as bg is
gone (a second or so), started or not. It talks to the endpoint the SDK uses: DOCKER_HOST's
unix socket or plain tcp. A TLS or ssh DOCKER_HOST has no guardian; there, and if the
guardian itself was killed, `reap` removes what a killed bg left at the next `bg run`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from buildgraph import faults
from buildgraph.diskfull import writing
from buildgraph.docker_sdk import sdk
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.base import Cancel, Job, LineSink, Result, shell_argv

if TYPE_CHECKING:
    from buildgraph.executors.guardian import Guardian

RUN_LABEL = "org.buildgraph.run"
PID_LABEL = "org.buildgraph.pid"
HOST_LABEL = "org.buildgraph.host"
STAGE_LABEL = "org.buildgraph.stage"
HOME = "/tmp/home"
_NO_GPU_RUNTIME = ("could not select device driver", "nvidia-container-cli", "unknown or invalid runtime")


class DockerExecutor:
    name = "docker"

    def __init__(self, client: Any = None, user: str | None = None, poll_interval: float = 0.1) -> None:
        self._client = client
        self._owns_client = client is None
        self.user = user or f"{os.getuid()}:{os.getgid()}"
        self.poll_interval = poll_interval
        self._guardian: Guardian | None = None  # made with the first container (a null run needs none)
        self._guardian_lock = threading.Lock()

    def close(self) -> None:
        """Stop the guardian; close the client this executor opened itself (not one it was given)."""
        if self._guardian is not None:
            self._guardian.close()
            self._guardian = None
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = sdk().from_env()
        return self._client

    def run(self, job: Job, on_line: LineSink | None = None, cancel: Cancel | None = None) -> Result:
        out = job.scratch / "out"
        stubs = _prepare_output_root(out, job, self.user)
        start = time.monotonic()
        sdk()  # on a worker thread, maybe beside an image build: import the SDK once, whole
        with self._guarded(job) as name:
            container = self._create(job, out, name)
            faults.point("container-created")
            watchdog = _Watchdog(container, job.timeout, cancel, self.poll_interval)
            try:
                _start(container, job)
                watchdog.start()
                with writing(f"the log of stage '{job.stage}'", job.log_path):  # full: the container goes
                    _stream_logs(container, job.log_path, on_line)
                status = int(container.wait().get("StatusCode", -1))
            finally:
                watchdog.finish()
                _remove(container)
                _remove_stubs(stubs)
        return _result(job, out, status, time.monotonic() - start, watchdog)

    @contextlib.contextmanager
    def _guarded(self, job: Job) -> Iterator[str]:
        """A fresh container name, listed with the guardian from before the container exists
        until after it is removed: a bg killed anywhere in between leaves no container."""
        name = f"bg-{job.stage}-{os.urandom(6).hex()}"
        guardian = self._get_guardian()
        if guardian is not None:
            guardian.add(name)
        try:
            yield name
        finally:
            if guardian is not None:
                guardian.discard(name)

    def _get_guardian(self) -> Guardian | None:
        with self._guardian_lock:
            if self._guardian is None:
                address = engine_address()
                if address is None:
                    return None
                from buildgraph.executors.guardian import Guardian, container_remover

                self._guardian = Guardian(command=container_remover(address))
            return self._guardian

    def _create(self, job: Job, out: Path, name: str) -> Any:
        uid, _, gid = self.user.partition(":")
        try:
            return self.client.containers.create(
                job.image,
                shell_argv(job.command),
                user=self.user,
                working_dir=job.workdir,
                environment={**dict(job.env), "HOME": HOME},
                mounts=_mounts(job, out),
                tmpfs={HOME: f"rw,exec,mode=0700,uid={uid},gid={gid or uid}"},
                network_mode="bridge" if job.network else "none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                shm_size=job.shm_size or None,
                device_requests=_device_requests(job.gpus),
                labels=_labels(job),
                name=name,
                init=True,
                detach=True,
            )
        except Exception as exc:
            raise _translate(job, exc) from exc


def _prepare_output_root(out: Path, job: Job, user: str) -> list[Path]:
    """Create `out` with the outputs' parents and the inputs' mount points, owned by `user`.

    Docker would create missing mount points itself, as root, inside `out`; creating
    them first keeps every path under `out` removable by the invoking user. Returns
    what was created for inputs, to remove afterwards.
    """
    out.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    for relpath in job.outputs:
        _makedirs(out, PurePosixPath(relpath).parent, created)
    for relpath, source in _outermost_inputs(job.inputs):
        target = out / relpath
        _makedirs(out, PurePosixPath(relpath).parent, created)
        if not target.exists():
            if source.is_dir():
                target.mkdir()
            else:
                target.touch()
            created.append(target)
    _chown_all([out, *created], user)
    return created


def _makedirs(out: Path, rel: PurePosixPath, created: list[Path]) -> None:
    path = out
    for part in rel.parts:
        path = path / part
        if not path.exists():
            path.mkdir()
            created.append(path)


def _chown_all(paths: Iterable[Path], user: str) -> None:
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (int(uid) == os.getuid() and (gid or uid) == str(os.getgid())):
        return
    for path in paths:
        os.chown(path, int(uid), int(gid or uid))  # only root gets here: running as another user


def _outermost_inputs(inputs: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Inputs not inside another input (those are visible through the outer mount already)."""
    ordered = sorted(inputs, key=lambda i: PurePosixPath(i[0]).parts)
    kept: list[tuple[str, Path]] = []
    for relpath, source in ordered:
        parts = PurePosixPath(relpath).parts
        if not any(parts[: len(PurePosixPath(k).parts)] == PurePosixPath(k).parts for k, _ in kept):
            kept.append((relpath, source))
    return kept


def _mounts(job: Job, out: Path) -> list[Any]:
    from docker.types import Mount

    workdir = PurePosixPath(job.workdir)
    mounts = [Mount(str(workdir), str(out.resolve()), type="bind", read_only=False)]
    for relpath, source in _outermost_inputs(job.inputs):
        target = str(workdir / relpath)
        mounts.append(Mount(target, str(source.resolve()), type="bind", read_only=True))
    for name, path in job.secrets:
        mounts.append(Mount(f"/run/secrets/{name}", str(path.resolve()), type="bind", read_only=True))
    return mounts


def _device_requests(gpus: None | str | int | tuple[int, ...]) -> list[Any] | None:
    from docker.types import DeviceRequest

    if gpus is None or gpus == 0:
        return None
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if isinstance(gpus, int):
        return [DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])]


def _labels(job: Job) -> dict[str, str]:
    return {
        RUN_LABEL: job.run_id,
        PID_LABEL: str(os.getpid()),
        HOST_LABEL: socket.gethostname(),
        STAGE_LABEL: job.stage,
    }


def _start(container: Any, job: Job) -> None:
    try:
        container.start()
    except Exception as exc:
        raise _translate(job, exc) from exc


def _translate(job: Job, exc: Exception) -> Exception:
    """Docker API errors a user can act on → EnvironmentProblem with a hint."""
    text = str(getattr(exc, "explanation", None) or exc)
    if job.gpus not in (None, 0) and any(marker in text for marker in _NO_GPU_RUNTIME):
        return EnvironmentProblem(
            f"stage '{job.stage}' asks for GPUs but this Docker engine has no GPU runtime",
            hint="install nvidia-container-toolkit and restart dockerd, or set gpus = 0",
        )
    if "No such image" in text or "not found" in text.lower() and job.image in text:
        return EnvironmentProblem(f"stage '{job.stage}': image '{job.image}' is not in the Docker engine")
    return exc


def _stream_logs(container: Any, log_path: Path, on_line: LineSink | None) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
    try:
        with log_path.open("wb") as log:
            _copy_lines(stream, log, on_line)
    finally:
        _close_stream(stream)


def _close_stream(stream: Any) -> None:
    """Free the daemon connection, also when on_line raised mid-stream.

    The SDK's `CancellableStream.close()` leaves its socket to the garbage collector
    (a ResourceWarning); closing the underlying HTTP response releases it properly.
    """
    response = getattr(stream, "_response", None)
    (response or stream).close()


def _copy_lines(stream: Iterable[bytes], log: Any, on_line: LineSink | None) -> None:
    pending = b""
    for chunk in stream:
        log.write(chunk)
        log.flush()
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if on_line:
                on_line(line.decode(errors="replace").rstrip("\r"))
    if pending and on_line:
        on_line(pending.decode(errors="replace"))


class _Watchdog(threading.Thread):
    """Stops the container on timeout or cancel; the main thread keeps reading logs."""

    def __init__(self, container: Any, timeout: float, cancel: Cancel | None, interval: float) -> None:
        super().__init__(daemon=True)
        self.container = container
        self.deadline = time.monotonic() + timeout if timeout > 0 else None
        self.cancel = cancel
        self.interval = interval
        self.done = threading.Event()
        self.timed_out = False
        self.cancelled = False

    def run(self) -> None:
        while not self.done.wait(self.interval):
            if self.cancel is not None and self.cancel.is_set():
                self.cancelled = True
            elif self.deadline is not None and time.monotonic() > self.deadline:
                self.timed_out = True
            else:
                continue
            _kill(self.container)
            return

    def finish(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()


def _kill(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):  # it may have exited already
        container.kill()


def _remove(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def _remove_stubs(stubs: list[Path]) -> None:
    """Remove the input mount points we created, if they are still empty placeholders."""
    for path in reversed(stubs):
        try:
            if path.is_dir():
                path.rmdir()
            elif path.stat().st_size == 0:
                path.unlink()
        except OSError:
            pass  # the command wrote there: it is output, keep it


def _result(job: Job, out: Path, status: int, duration: float, watchdog: _Watchdog) -> Result:
    result = Result(exit_status=status, output_root=out, duration=duration, log_path=job.log_path)
    if watchdog.timed_out:
        result.error = f"timed out after {job.timeout:g}s"
        result.exit_status = -9
    elif watchdog.cancelled:
        result.interrupted = True
        result.exit_status = -2
    return result


def reap(client: Any, live_run_ids: Iterable[str] = ()) -> list[str]:
    """Remove containers left by a `bg` that died; return their ids.

    A container is left over when its run id is not live and the `bg` process that
    started it (pid label, same host) no longer exists.
    """
    live = set(live_run_ids)
    removed = []
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        labels = container.labels or {}
        if labels.get(RUN_LABEL) in live or _owner_alive(labels):
            continue
        _remove(container)
        removed.append(container.id)
    return removed


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get(HOST_LABEL) != socket.gethostname():
        return True  # another machine's bg: we cannot tell, leave it
    try:
        os.kill(int(labels.get(PID_LABEL, "")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def engine_address() -> str | None:
    """Where the SDK reaches the engine, as the guardian's `unix:PATH` or `tcp:HOST:PORT`.

    None for a TLS or ssh DOCKER_HOST, which the stdlib-only guardian cannot speak. The
    variables are read as the SDK's `kwargs_from_env` reads them (without its check that the
    TLS files exist) and parsed by its own `parse_host`, so both mean the same engine.
    """
    parse_host = sdk().utils.parse_host
    tls = bool(os.environ.get("DOCKER_CERT_PATH")) or os.environ.get("DOCKER_TLS_VERIFY", "") != ""
    url = str(parse_host(os.environ.get("DOCKER_HOST") or None, is_win32=False, tls=tls))
    for scheme, kind in (("http+unix://", "unix:"), ("http://", "tcp:")):
        if url.startswith(scheme):
            return kind + url[len(scheme) :]
    return None


def docker_available(timeout: float = 3.0) -> str | None:
    """None when a Docker daemon answers; otherwise why not, in one line."""
    reason = _ping(sdk(), timeout)
    if reason:
        _drop_leaked_sockets()
    return reason


def _ping(docker: Any, timeout: float) -> str | None:
    try:
        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises several unrelated types here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"no Docker daemon answers: {reason}"
    return None


def _drop_leaked_sockets() -> None:
    """The SDK leaks its socket when the daemon is absent (it fails inside `from_env`).

    Collect it now, quietly, rather than as a ResourceWarning at some later moment.
    """
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
