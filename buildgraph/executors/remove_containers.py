"""The docker executor's guardian: `python -I -S remove_containers.py ADDRESS FILE`.

Run by bg's own interpreter, started with the first container (see guardian.py): it blocks
reading a pipe whose only writer is bg; when the kernel closes that pipe (bg exited, however)
it force-removes every container named in FILE through the Docker Engine API at ADDRESS
(`unix:/path/docker.sock` or `tcp:host:port`, as `dockerd.address.engine_address` reads
DOCKER_HOST), then deletes FILE. Standard library only: after bg died, neither the docker SDK
nor a docker CLI (often absent, and its context may name another daemon than the SDK's) is
needed. `-I` also keeps this folder off sys.path, where a sibling module could shadow the
standard library.
"""

import contextlib
import os
import socket
import sys
import time

_RETRIES = 4  # a name the engine does not know yet may be a create bg sent just before dying
_RETRY_PAUSE = 0.5


def main(address: str, path: str) -> None:
    while os.read(0, 65536):
        pass  # bg writes nothing: this returns only at end of file
    names = _listed(path)
    for attempt in range(_RETRIES):
        names = [name for name in names if not _remove(address, name)]
        if not names or attempt == _RETRIES - 1:
            break
        time.sleep(_RETRY_PAUSE)
    with contextlib.suppress(OSError):
        os.unlink(path)


def _listed(path: str) -> list[str]:
    try:
        with open(path) as file:
            return file.read().split()
    except OSError:
        return []


def _remove(address: str, name: str) -> bool:
    """DELETE /containers/NAME?force=1 (kills it first); False only when the engine has no such name."""
    try:
        with _connect(address) as sock:
            sock.settimeout(60)
            sock.sendall(f"DELETE /containers/{name}?force=1 HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            status_line = sock.recv(64)
    except OSError:
        return True  # the engine is gone too: nothing left to ask
    return b" 404 " not in status_line


def _connect(address: str) -> socket.socket:
    kind, _, where = address.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(where)
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = where.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=60)


if __name__ == "__main__":
    main(*sys.argv[1:])
