"""Which bases a Buildfile offers in place of one that cannot be had — pure.

A Buildfile often names its base through an arg (`from = "${BASE}"`, `BASE = "base-pytorch"`)
and declares another stage that could stand in (`base-debian`, built offline). When a pull
fails, the hint names that switch instead of a generic one.
"""

from __future__ import annotations

from buildgraph.core.spec import DebianBase, Spec, StageRef


def base_alternatives(spec: Spec, failing: str) -> list[str]:
    """`--arg NAME=STAGE` choices instead of image stage `failing`: where another image stage is
    built `from = "${NAME}"` and NAME names `failing`, every other image stage with a base of its
    own (offline Debian bases first) could stand in."""
    roots = [s for s in spec.image_stages() if s.name != failing and not isinstance(s.base, StageRef)]
    roots.sort(key=lambda s: not isinstance(s.base, DebianBase))
    args = dict(spec.args)
    users = [s for s in spec.image_stages() if s.base == StageRef(failing)]
    names = [n for s in users for n in s.args_used if args.get(n) == failing]
    return list(dict.fromkeys(f"--arg {name}={root.name}" for name in names for root in roots))
