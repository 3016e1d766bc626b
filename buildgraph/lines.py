"""`LineSink`: where output goes, one line at a time (no trailing newline).

A job's output (executors) and an image build's or pull's progress (images) both end up in
the reporter; the type lives here so that neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

LineSink = Callable[[str], None]
