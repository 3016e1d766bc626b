"""What an offline Debian base was built into: the tarball's digest and the packages installed.

    {"tar": "<sha256 of the mmdebstrap tarball>", "packages": {"libc6": "2.36-9+deb12u10", ...}}

An image stage built on `from = { debian = … }` keeps this in its lock entry (`LockEntry.debian`),
so the lock says exactly what the base held, and a later build on another machine pins those
versions (`images/debian.py`). Package names map to versions as `dpkg` installed them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buildgraph.records.errors import RecordError, required


@dataclass(frozen=True)
class DebianRecord:
    tar: str  # hex sha256 of the root-filesystem tarball
    packages: Mapping[str, str] = field(default_factory=dict)  # name → installed version

    def to_json(self) -> dict[str, Any]:
        return {"tar": self.tar, "packages": dict(sorted(self.packages.items()))}

    @classmethod
    def from_json(cls, data: Any, what: str = "debian record") -> DebianRecord:
        if not isinstance(data, Mapping):
            raise RecordError(f"{what}: not a JSON object")
        packages = required(data, "packages", dict, what)
        if not all(isinstance(v, str) for v in packages.values()):
            raise RecordError(f"{what}: `packages` must map names to version strings")
        return cls(tar=required(data, "tar", str, what), packages=packages)
