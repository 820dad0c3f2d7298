"""The lab's own record of itself (DIR/lab.json): what it is and what is running."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class LabState:
    net: str
    domain: str
    world: str
    running: bool = False
    holder: int | None = None
    mnt_ns: str | None = None
    faults: list[str] = field(default_factory=list)
    serial: int = 0
    up_seconds: float | None = None

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialize lab commands on one folder (two `up`s at once would fight over ports)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
