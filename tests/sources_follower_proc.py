"""A follower process for the kill -9 tests: follows a log, appends what it reads to a file.

Run as ``python -m tests.sources_follower_proc LOG STATE_DIR OUT``. After each batch
it appends the lines, then a ``#pos <position>`` marker, then commits the position.
A kill can land between the append and the commit; on start the output is cut back to
the marker of the committed position (to nothing if that is the start position the
follower saved by itself before its first batch), as a consumer whose own state must
agree with the log position would do. What is left is then exactly what the follower handed out,
up to the committed position, so the test can check it against the writer's sequence.
It prints ``ready`` once it takes SIGTERM, on which it exits after printing its peak
RSS in KiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

from exporters.postfix_logs.sources import FileFollower, FileSettings
from monitor.state import LogPositions, StateStore

MARK = b"#pos "


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM; ru_maxrss would include the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def read_nothing(position: str) -> bool:
    """Whether ``position`` is past no line: the position FileFollower saves by itself
    when it starts without one (start=beginning), before any batch and so before any
    marker of ours."""
    files: list[list[int | str]] = json.loads(position)["files"]
    return all(offset == 0 for _dev, _ino, offset, _fp, _len in files)


def cut_back(out: Path, committed: str | None) -> None:
    """Drop what was appended after the committed position's marker."""
    data = out.read_bytes() if out.exists() else b""
    keep = 0
    if committed is not None:
        marker = MARK + committed.encode() + b"\n"
        found = data.rfind(marker)
        if found >= 0:
            keep = found + len(marker)
        elif not read_nothing(committed):
            raise SystemExit(f"committed position {committed} not in {out}")
    with out.open("r+b" if out.exists() else "wb") as f:
        f.truncate(keep)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log", type=Path)
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--poll", type=float, default=0.01)
    parser.add_argument("--rotate-wait", type=float, default=0.05)
    args = parser.parse_args()

    store = await StateStore.open(args.state_dir)
    positions = LogPositions(store)
    settings = FileSettings(
        path=args.log, poll_interval=args.poll, start="beginning", rotate_wait=args.rotate_wait
    )
    follower = FileFollower(settings, positions)
    cut_back(args.out, await positions.get(follower.key))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)

    async def follow() -> None:
        fd = os.open(args.out, os.O_WRONLY | os.O_APPEND)
        try:
            async for batch in follower.batches():
                assert batch.position is not None
                os.write(fd, b"".join(line + b"\n" for line in batch.items))
                os.write(fd, MARK + batch.position.encode() + b"\n")
                await follower.commit(batch)
        finally:
            os.close(fd)

    task = asyncio.create_task(follow())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()
    print(peak_rss_kib(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
