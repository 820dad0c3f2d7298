"""The DMARC parser's worker processes end with the process that started them.

A ``kill -9`` of ``serve`` (or of ``dmarc import``) must not leave parser workers waiting
for work forever: they would pile up under init, one set per crash."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Starts a pool, has it parse one (invalid) item so that its workers exist, prints their
# pids, then dies without any clean-up.
_CRASHING_PARENT = """
import asyncio, os, signal, sys
from exporters.dmarc.limits import Limits
from exporters.dmarc.pool import ParsePool

async def main() -> None:
    pool = ParsePool(workers=2, in_flight=2, limits=Limits())
    analysis = await pool.analyse(b"not a report", is_message=False)
    assert analysis.report is None
    workers = pool._pool()._processes
    with open(sys.argv[1], "w") as out:
        out.write(" ".join(str(pid) for pid in workers))
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "workers"
    # Not a pipe: orphans holding it would keep the test waiting instead of failing.
    parent = subprocess.run(
        [sys.executable, "-c", _CRASHING_PARENT, str(pids)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert parent.returncode == -9
    workers = [int(pid) for pid in pids.read_text().split()]
    assert workers, "the pool started no worker"
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphans = [pid for pid in workers if _alive(pid)]
    for pid in orphans:
        os.kill(pid, 9)
    assert not orphans, f"parser workers {orphans} outlived their killed parent"
