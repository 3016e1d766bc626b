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
unix socket or plain tcp (`dockerd/address.py`). A TLS or ssh DOCKER_HOST has no guardian;
there, and if the guardian itself was killed, `dockerd.containers.reap` removes what a killed
bg left at the next `bg run`. The container policy itself is `dockerd/policy.py`, shared with
`bg shell`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from buildgraph import faults
from buildgraph.diskfull import writing
from buildgraph.dockerd.address import engine_address
from buildgraph.dockerd.containers import owner_labels, remove
from buildgraph.dockerd.policy import Policy, outermost, run_policy
from buildgraph.dockerd.sdk import sdk
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.base import Cancel, Job, Result, not_admitted, shell_argv
from buildgraph.lines import LineSink

if TYPE_CHECKING:
    from buildgraph.executors.guardian import Guardian

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
        self._images: dict[str, dict[str, Any]] = {}  # image id → its probed environment
        self._images_lock = threading.Lock()

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
        if not job.admit():  # a container is quick to make, not worth preparing ahead of a slot
            return not_admitted(job, out)
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
                remove(container)
                _remove_stubs(stubs)
        result = _result(job, out, status, time.monotonic() - start, watchdog)
        result.environment = self.environment(job, str(container.attrs.get("Image", "")))
        return result

    def environment(self, job: Job, image_id: str) -> dict[str, Any]:
        """Where `job` ran: its image, probed once per image id (a container of its own), and
        the host's GPU model and driver when the job was given GPUs."""
        from buildgraph.executors import fingerprint

        with self._images_lock:
            if image_id not in self._images:
                self._images[image_id] = {**self._probe(job, image_id), **fingerprint.host_gpus()}
        found = {**self._images[image_id], "image": job.image, "image_id": image_id}
        return fingerprint.for_job(found, self.name, dict(job.env), job.gpus not in (None, 0, ()))

    def _probe(self, job: Job, image_id: str) -> dict[str, Any]:
        """The probe's answer in `image_id`, confined like a job; an image the probe cannot
        run in (no `sh`) has an unknown environment, which fails no job."""
        from buildgraph.executors.fingerprint import PROBE_ARGV, PROBE_TIMEOUT, parse_probe

        output = b""
        with self._guarded(job) as name:
            try:
                container = self.client.containers.create(
                    image_id, list(PROBE_ARGV[1:]), entrypoint=[PROBE_ARGV[0]], name=name,
                    user=self.user, network_mode="none", environment={"HOME": "/tmp"},
                    cap_drop=["ALL"], security_opt=["no-new-privileges"],
                    labels=owner_labels(job.run_id, job.stage),
                )
            except Exception:  # docker.errors.APIError, and whatever the SDK raises for an odd image
                return parse_probe("")
            try:
                container.start()
                container.wait(timeout=PROBE_TIMEOUT)
                output = container.logs(stdout=True, stderr=False)
            except Exception:
                pass  # unknown environment (see above)
            finally:
                remove(container)
        return parse_probe(output.decode("utf-8", "replace"))

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
        kwargs = job_policy(job, out, self.user).sdk_kwargs()
        if job.hostname:  # `bg audit --vary`
            kwargs["hostname"] = job.hostname
        try:
            return self.client.containers.create(
                job.image, shell_argv(job.command), name=name, detach=True, **kwargs
            )
        except Exception as exc:
            raise _translate(job, exc) from exc


def job_policy(job: Job, out: Path, user: str) -> Policy:
    """The job's container: `out` as its project root, as `user`, labelled with its owner."""
    return run_policy(
        user=user,
        workdir=job.workdir,
        root=out,
        inputs=job.inputs,
        env=job.env,
        network=job.network,
        shm_size=job.shm_size,
        gpus=job.gpus,
        secrets=job.secrets,
        labels=owner_labels(job.run_id, job.stage),
    )


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
    for relpath, source in outermost(job.inputs):
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
