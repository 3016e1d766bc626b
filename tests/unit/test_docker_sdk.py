"""The docker SDK is imported whole, once, under a lock (buildgraph/dockerd/sdk.py)."""

from __future__ import annotations

import subprocess
import sys


def test_sdk_returns_the_finished_package_with_the_submodules_workers_use() -> None:
    code = (
        "import sys, threading\n"
        "from buildgraph.dockerd.sdk import sdk\n"
        "got = []\n"
        "barrier = threading.Barrier(4)\n"
        "def go():\n"
        "    barrier.wait()\n"
        "    got.append(sdk())\n"
        "ts = [threading.Thread(target=go) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert len(got) == 4 and len({id(m) for m in got}) == 1\n"
        "d = got[0]\n"
        "assert d.from_env and d.errors.ImageNotFound and d.types.Mount and d.utils.parse_host\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
