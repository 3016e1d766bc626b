"""Crash points for the fault-injection tests: `BG_CRASH_AT=<point>` makes bg SIGKILL itself there,
`BG_FAIL_AT=<point>` makes it raise an unexpected exception there (how bg treats its own bugs).

The points sit where a real crash would hurt most (half an object written, objects stored
but no manifest, half a lock file written); tests/cli/test_crash.py kills bg at each and
checks that the next run redoes exactly the interrupted stage and finds no corrupt entry.
Costs two dict lookups when unset.
"""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    if os.environ.get("BG_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("BG_FAIL_AT") == name:
        raise RuntimeError(f"fault injected at {name}")
