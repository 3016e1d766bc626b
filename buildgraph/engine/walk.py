"""Which steps may go now, on step ids alone (ninja's `Plan`): pure, tested on string graphs.

A step is waiting (for upstream steps), ready, running, then done or failed; the downstream
steps of a failed one are blocked. "Running" starts when the builder takes a ready step,
before it is decided: a step found up to date is finished at once, on the builder's thread.
A step handed out but stopped before it started (the run is stopping) is given up: neither
done nor failed, its downstream steps stay waiting, and the run reports it as cancelled.

Order is the caller's: steps are kept in the order of `upstreams`, which is the order ready
steps are handed out (the engine passes the Buildfile's order), and a step finishing
readies its downstream steps in that order too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

State = Literal["waiting", "ready", "running", "done", "failed", "blocked", "given-up"]
_SETTLED = ("done", "failed", "blocked")


class Walk:
    def __init__(self, upstreams: Mapping[str, Iterable[str]]) -> None:
        """`upstreams`: each step → the steps it needs; needs outside the mapping are ignored
        (stages not selected into this run)."""
        ups = {n: list(dict.fromkeys(u for u in needs if u in upstreams)) for n, needs in upstreams.items()}
        self._waiting = {name: set(needs) for name, needs in ups.items()}
        self._down: dict[str, list[str]] = {name: [] for name in ups}
        for name, needs in ups.items():
            for upstream in needs:
                self._down[upstream].append(name)
        self.state: dict[str, State] = {n: "waiting" if w else "ready" for n, w in self._waiting.items()}
        self.ready: list[str] = [name for name, state in self.state.items() if state == "ready"]
        self.running: set[str] = set()

    @property
    def active(self) -> bool:
        """Some step is ready or running."""
        return bool(self.ready or self.running)

    def start(self, name: str) -> None:
        """The builder took ready step `name`."""
        self._move(name, "ready", "running")
        self.ready.remove(name)
        self.running.add(name)

    def finish(self, name: str) -> list[str]:
        """Step `name` is done: the downstream steps that became ready (appended to `ready`)."""
        self._stop_running(name, "done")
        became: list[str] = []
        for down in self._down[name]:
            waiting = self._waiting[down]
            waiting.discard(name)
            if not waiting and self.state[down] == "waiting":
                self.state[down] = "ready"
                became.append(down)
        self.ready += became
        return became

    def fail(self, name: str) -> list[str]:
        """Step `name` failed (or was cancelled): every step below it not blocked yet is
        blocked now; returns those, nearest first along each path."""
        self._stop_running(name, "failed")
        blocked: list[str] = []
        seen: set[str] = set()
        stack = [name]
        while stack:
            for down in self._down[stack.pop()]:
                if down in seen:
                    continue
                seen.add(down)
                stack.append(down)
                if self.state[down] in ("waiting", "ready"):
                    if self.state[down] == "ready":
                        self.ready.remove(down)
                    self.state[down] = "blocked"
                    blocked.append(down)
        return blocked

    def give_up(self, name: str) -> None:
        """Step `name` was handed out but never started: the run is stopping."""
        self._stop_running(name, "given-up")

    def unsettled(self) -> list[str]:
        """Steps neither done, failed nor blocked (never reached), in order."""
        return [name for name, state in self.state.items() if state not in _SETTLED]

    def _stop_running(self, name: str, state: State) -> None:
        self._move(name, "running", state)
        self.running.discard(name)

    def _move(self, name: str, expected: State, state: State) -> None:
        if self.state[name] != expected:
            raise ValueError(f"step {name!r} is {self.state[name]}, not {expected}")
        self.state[name] = state
